-- Palisade schema, SQLite. Times are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    level       TEXT NOT NULL DEFAULT 'anonymous',
    created_at  INTEGER NOT NULL
);

CREATE TABLE machines (
    id             INTEGER PRIMARY KEY,
    machine_id     TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    account_id     INTEGER REFERENCES accounts(id),
    display_name   TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',
    is_sensor      INTEGER NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,
    trust          REAL NOT NULL DEFAULT 0,
    scenarios      TEXT NOT NULL DEFAULT '[]',
    origin_prefix  TEXT,
    user_agent     TEXT,
    version        TEXT,
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER,
    enrolled_at    INTEGER
);

CREATE TABLE enroll_keys (
    id          INTEGER PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE admin_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Append-only. AUTOINCREMENT: ids are never reused, so a consumer's watermark stays valid.
CREATE TABLE signals (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id        INTEGER NOT NULL REFERENCES machines(id),
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
    start_at          INTEGER NOT NULL,
    stop_at           INTEGER NOT NULL,
    received_at       INTEGER NOT NULL,
    origin_ip         TEXT NOT NULL,
    origin_prefix     TEXT NOT NULL,
    origin_asn        INTEGER,
    as_number         INTEGER,
    as_name           TEXT,
    country           TEXT,
    extra             TEXT NOT NULL,
    UNIQUE (machine_id, dedup_key)
);
CREATE INDEX signals_value ON signals (value);

CREATE TABLE machine_metrics (
    id           INTEGER PRIMARY KEY,
    machine_id   INTEGER NOT NULL REFERENCES machines(id),
    kind         TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    payload      TEXT NOT NULL
);
CREATE INDEX machine_metrics_machine ON machine_metrics (machine_id, received_at);
