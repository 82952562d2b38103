-- Raw signals partitioned by day (UTC) on received_at, so retention drops whole partitions
-- instead of deleting rows. The maintenance job creates partitions ahead of time; an insert
-- whose day has none creates it first (palisade_ensure_signal_partition), under the signal
-- writer lock.
--
-- A unique index on a partitioned table must contain the partition key, so the primary key is
-- (id, received_at) and redelivery dedup on (machine_id, dedup_key) is no longer a constraint:
-- inserts are serialised by the signal writer lock and skip a row whose (machine_id, dedup_key)
-- is already stored in any partition (the store's insert says how).

ALTER TABLE signals RENAME TO signals_unpartitioned;
ALTER TABLE signals_unpartitioned RENAME CONSTRAINT signals_pkey TO signals_unpartitioned_pkey;
ALTER TABLE signals_unpartitioned RENAME CONSTRAINT signals_machine_id_dedup_key_key TO signals_unpartitioned_dedup;
ALTER TABLE signals_unpartitioned RENAME CONSTRAINT signals_machine_id_fkey TO signals_unpartitioned_machine_fkey;
ALTER INDEX signals_value RENAME TO signals_unpartitioned_value;

CREATE TABLE signals (
    id                BIGINT NOT NULL DEFAULT nextval('signals_id_seq'),
    machine_id        BIGINT NOT NULL REFERENCES machines(id),
    dedup_key         TEXT NOT NULL,
    scope             TEXT NOT NULL,
    value             TEXT NOT NULL,
    scenario          TEXT NOT NULL,
    scenario_hash     TEXT NOT NULL,
    scenario_version  TEXT NOT NULL,
    scenario_trust    TEXT NOT NULL,
    message           TEXT NOT NULL,
    agent             TEXT,
    alert_uuid        TEXT,
    start_at          TIMESTAMPTZ NOT NULL,
    stop_at           TIMESTAMPTZ NOT NULL,
    received_at       TIMESTAMPTZ NOT NULL,
    origin_ip         TEXT NOT NULL,
    origin_prefix     TEXT NOT NULL,
    origin_asn        BIGINT,
    as_number         BIGINT,
    as_name           TEXT,
    country           TEXT,
    extra             JSONB NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE signals_id_seq OWNED BY signals.id;
CREATE INDEX signals_value ON signals (value);
CREATE INDEX signals_dedup ON signals (machine_id, dedup_key);
CREATE INDEX signals_machine_received ON signals (machine_id, received_at);

-- Creates the partition of one UTC day unless it exists; whether it created one.
-- Partitions are named signals_pYYYYMMDD, which is how the store finds their days.
CREATE FUNCTION palisade_ensure_signal_partition(day date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    name text := 'signals_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF signals FOR VALUES FROM (%L) TO (%L)',
                   name, to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    RETURN true;
END
$$;

SELECT palisade_ensure_signal_partition(day)
FROM (SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date AS day FROM signals_unpartitioned
      UNION
      SELECT (now() AT TIME ZONE 'UTC')::date + n FROM generate_series(0, 7) AS n) AS days;

INSERT INTO signals SELECT * FROM signals_unpartitioned;
DROP TABLE signals_unpartitioned;
