-- Consensus: engine state, blocklist membership and its seq-numbered change log, operator
-- ground truth (canaries, allowlists). Times are INTEGER microseconds since the Unix epoch.

-- Singleton row: the id of the last signal the consensus worker has processed.
CREATE TABLE consensus_watermark (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    signal_id  INTEGER NOT NULL
);
INSERT INTO consensus_watermark (id, signal_id) VALUES (1, 0);

-- The engine's per-machine and per-target state, as opaque JSON owned by the engine.
CREATE TABLE engine_machines (
    machine_id  INTEGER PRIMARY KEY REFERENCES machines(id),
    state       TEXT NOT NULL
);
CREATE TABLE engine_targets (
    target  TEXT PRIMARY KEY,
    state   TEXT NOT NULL
);

-- Current membership of every blocklist.
CREATE TABLE blocklist_entries (
    list         TEXT NOT NULL,
    value        TEXT NOT NULL,
    scope        TEXT NOT NULL,
    scenario     TEXT NOT NULL,
    remediation  TEXT NOT NULL,
    rule         TEXT NOT NULL,
    listed_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (list, value)
);

-- Every membership change, in order. A consumer's delta cursor is a seq.
CREATE TABLE blocklist_changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    list         TEXT NOT NULL,
    value        TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    scope        TEXT NOT NULL,
    scenario     TEXT NOT NULL,
    remediation  TEXT NOT NULL,
    rule         TEXT NOT NULL,
    reason       TEXT,
    expires_at   INTEGER NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX blocklist_changes_list ON blocklist_changes (list, seq);

-- Addresses the operator controls that never send traffic: reporting one is proof of lying.
CREATE TABLE canaries (
    value       TEXT PRIMARY KEY,
    note        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

-- Never-block ranges (CDN egress, crawlers, resolvers, the operator's own infrastructure, …).
CREATE TABLE allowlist_entries (
    value       TEXT NOT NULL,
    category    TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (value, source)
);

-- What each machine was last sent on the CrowdSec v2 stream.
ALTER TABLE machines ADD COLUMN stream_seq INTEGER;

-- Operator requests the consensus leader carries out (false-positive reports), so any replica
-- can accept them.
CREATE TABLE consensus_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER
);
