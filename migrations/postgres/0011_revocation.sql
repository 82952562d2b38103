-- Revocation. A machine can be disabled (its login and tokens refused until it is enabled again)
-- or deleted (kept, because its signals refer to it, but gone from listings and logins); admin
-- tokens record their last use. Every revocation appends a row to `revocations`, the list each
-- replica reads again when its generation (row count and highest id) changes: which machine's
-- tokens issued up to `at` are refused, which console session (by nonce) ended, from when all
-- sessions (subject `*`) or the operator's (`operator`) were ended.
ALTER TABLE machines ADD COLUMN disabled_at TIMESTAMPTZ;
ALTER TABLE machines ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE admin_tokens ADD COLUMN last_used_at TIMESTAMPTZ;

CREATE TABLE revocations (
    id       BIGSERIAL PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('machine', 'admin_token', 'api_key', 'session', 'sessions')),
    subject  TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX revocations_at ON revocations (at);
