-- The audit log: one row per operator action (admin API, CLI), newest read first by id. `actor`
-- says who (`token:<prefix>` for an admin token, `cli:<os user>` for the command line), `action`
-- a stable name (the admin API's operationId), `target` what it acted on, `detail` a small JSON
-- object without secrets, `client` the HTTP client's address and `status` the HTTP status
-- (both NULL for the command line). Times are INTEGER microseconds, as everywhere.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    client  TEXT,
    status  INTEGER
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- An operator delisting may hold its target off the list until a time.
ALTER TABLE consensus_requests ADD COLUMN hold_until INTEGER;

-- How often each enrollment key enrolled a machine, and when last.
ALTER TABLE enroll_keys ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE enroll_keys ADD COLUMN last_used_at INTEGER;
