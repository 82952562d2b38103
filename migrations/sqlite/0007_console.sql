-- The console's per-day and "today" aggregates read signals and list changes by time.
CREATE INDEX IF NOT EXISTS signals_received_at ON signals (received_at);
CREATE INDEX IF NOT EXISTS blocklist_changes_at ON blocklist_changes (at);

-- Lookups per account and UTC day (days since the epoch), for the console's usage chart. The
-- quota itself is enforced by the limiter; this is history, written in batches.
CREATE TABLE lookup_usage (
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    day         INTEGER NOT NULL,
    lookups     INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
);
