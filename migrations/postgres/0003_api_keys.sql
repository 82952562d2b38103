-- API keys for the IP lookup, and each account's tier. Only a key's SHA-256 is stored; its
-- first characters identify it in listings.

ALTER TABLE accounts ADD COLUMN tier TEXT NOT NULL DEFAULT 'free';

CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    key_hash      TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL UNIQUE,
    account_id    BIGINT NOT NULL REFERENCES accounts(id),
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_account ON api_keys (account_id);
