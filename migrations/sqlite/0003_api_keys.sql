-- API keys for the IP lookup, and each account's tier. Times are INTEGER microseconds since the
-- Unix epoch. Only a key's SHA-256 is stored; its first characters identify it in listings.

ALTER TABLE accounts ADD COLUMN tier TEXT NOT NULL DEFAULT 'free';

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    key_hash      TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL UNIQUE,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX api_keys_account ON api_keys (account_id);
