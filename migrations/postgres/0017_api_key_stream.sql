-- What each API key's CrowdSec bouncer was last sent on GET /v1/decisions/stream: the seq its
-- next pull continues from. NULL until its first pull.
ALTER TABLE api_keys ADD COLUMN stream_seq BIGINT;
