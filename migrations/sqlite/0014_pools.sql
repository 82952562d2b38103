-- Account pools. An account without a row in pool_policies follows the configuration's [pools]
-- policy; a row holds its own (JSON: enabled, min_machines, duration_secs, remediation, allow,
-- deny). pool_shares: the owner's pool is delivered, read-only, to the partner's machines and
-- API keys too. The pools' entries themselves are lists (`pool-<account id>`) like any other.
CREATE TABLE pool_policies (
    account_id  INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    policy      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE pool_shares (
    owner_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    partner_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (owner_id, partner_id),
    CHECK (owner_id <> partner_id)
);
CREATE INDEX pool_shares_partner ON pool_shares (partner_id);
