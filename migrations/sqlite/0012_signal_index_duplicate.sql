-- signals_received (retention, 0006) and signals_received_at (the console, 0007) index the same
-- column; every signal insert paid for both. One serves both readers.
DROP INDEX IF EXISTS signals_received;
