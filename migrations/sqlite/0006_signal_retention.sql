-- Retention deletes old raw signals in batches by receive time.
CREATE INDEX signals_received ON signals (received_at);
