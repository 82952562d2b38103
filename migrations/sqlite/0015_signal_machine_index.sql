-- A machine's newest signal ("give to get": did it contribute within the window?) is read on
-- every stream pull. Without this index SQLite read all of the machine's signals through the
-- (machine_id, dedup_key) constraint, so a pull slowed as the machine's history grew (seen in
-- the soak benchmark); PostgreSQL has had the same index since 0006.
CREATE INDEX IF NOT EXISTS signals_machine_received ON signals (machine_id, received_at);
