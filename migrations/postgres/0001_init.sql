-- Palisade schema, PostgreSQL.

CREATE TABLE accounts (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    level       TEXT NOT NULL DEFAULT 'anonymous',
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE machines (
    id             BIGSERIAL PRIMARY KEY,
    machine_id     TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    account_id     BIGINT REFERENCES accounts(id),
    display_name   TEXT,
    tags           JSONB NOT NULL DEFAULT '[]',
    is_sensor      BOOLEAN NOT NULL DEFAULT FALSE,
    created_by     TEXT NOT NULL,
    trust          DOUBLE PRECISION NOT NULL DEFAULT 0,
    scenarios      JSONB NOT NULL DEFAULT '[]',
    origin_prefix  TEXT,
    user_agent     TEXT,
    version        TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    last_login_at  TIMESTAMPTZ,
    enrolled_at    TIMESTAMPTZ
);

CREATE TABLE enroll_keys (
    id          BIGSERIAL PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    account_id  BIGINT NOT NULL REFERENCES accounts(id),
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE TABLE admin_tokens (
    id          BIGSERIAL PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- Append-only.
CREATE TABLE signals (
    id                BIGSERIAL PRIMARY KEY,
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
    UNIQUE (machine_id, dedup_key)
);
CREATE INDEX signals_value ON signals (value);

CREATE TABLE machine_metrics (
    id           BIGSERIAL PRIMARY KEY,
    machine_id   BIGINT NOT NULL REFERENCES machines(id),
    kind         TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    payload      JSONB NOT NULL
);
CREATE INDEX machine_metrics_machine ON machine_metrics (machine_id, received_at);
