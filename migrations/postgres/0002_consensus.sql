-- Consensus: engine state, blocklist membership and its seq-numbered change log, operator
-- ground truth (canaries, allowlists).

CREATE TABLE consensus_watermark (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    signal_id  BIGINT NOT NULL
);
INSERT INTO consensus_watermark (id, signal_id) VALUES (1, 0);

CREATE TABLE engine_machines (
    machine_id  BIGINT PRIMARY KEY REFERENCES machines(id),
    state       JSONB NOT NULL
);
CREATE TABLE engine_targets (
    target  TEXT PRIMARY KEY,
    state   JSONB NOT NULL
);

CREATE TABLE blocklist_entries (
    list         TEXT NOT NULL,
    value        TEXT NOT NULL,
    scope        TEXT NOT NULL,
    scenario     TEXT NOT NULL,
    remediation  TEXT NOT NULL,
    rule         TEXT NOT NULL,
    listed_at    TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    seq          BIGINT NOT NULL,
    PRIMARY KEY (list, value)
);

-- Written only by the single consensus leader, inside its transaction: seq order is commit order.
CREATE TABLE blocklist_changes (
    seq          BIGSERIAL PRIMARY KEY,
    list         TEXT NOT NULL,
    value        TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    scope        TEXT NOT NULL,
    scenario     TEXT NOT NULL,
    remediation  TEXT NOT NULL,
    rule         TEXT NOT NULL,
    reason       TEXT,
    expires_at   TIMESTAMPTZ NOT NULL,
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX blocklist_changes_list ON blocklist_changes (list, seq);

CREATE TABLE canaries (
    value       TEXT PRIMARY KEY,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE allowlist_entries (
    value       TEXT NOT NULL,
    category    TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (value, source)
);

ALTER TABLE machines ADD COLUMN stream_seq BIGINT;

CREATE TABLE consensus_requests (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    done_at     TIMESTAMPTZ
);
