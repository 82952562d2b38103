-- The console's per-day and "today" aggregates read signals and list changes by time.
CREATE INDEX IF NOT EXISTS signals_received_at ON signals (received_at);
CREATE INDEX IF NOT EXISTS blocklist_changes_at ON blocklist_changes (at);
