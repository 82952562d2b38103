//! PostgreSQL backend, for scale-out. Bulk signal inserts use one `INSERT … SELECT FROM UNNEST`
//! per batch (one plan, arrays bound as parameters) with `ON CONFLICT DO NOTHING` for
//! redeliveries; `COPY` would be faster still but cannot skip duplicates.
//!
//! Signal ids are a consumer's watermark (`id > after`), so they must become visible in id order.
//! A sequence alone does not give that: concurrent inserts interleave their ids and commit in any
//! order, and a reader that saw id 200 would never see an id 150 committed after it. Signal
//! inserts therefore take a transaction-scoped advisory lock first, which makes them one writer
//! at a time, as on SQLite; readers are never blocked.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use super::{
    Account, AccountKey, AllowlistEntry, ApiKeyRecord, Canary, ConsensusCommit, ConsensusRequest, ConsensusSnapshot, CustomList,
    DayCount, EngineMachine, EngineSignal, Enrichment, EnrollKey, EnrollKeyRecord, EnrollOutcome, ExpireOutcome, InsertOutcome,
    Leadership, ListChange, ListEntry, ListOp, LoginRecord, Machine, MachineKey, NewMachine, NewSignal, SignalBacklog,
    SignalFilter, Store, StoreError, StoredSignal, storable, storable_json, storable_opt,
};
use crate::config::Backend;
use crate::domain::signal::Scope;

/// Session advisory lock key of the consensus leader ("leader" in ASCII).
const LEADER_LOCK: i64 = 0x6c65_6164_6572;
/// Transaction lock taken by every writer of list changes, so seqs commit in their own order and
/// a reader that has seen seq N has seen every change below it.
const LIST_WRITE_LOCK: i64 = 0x6c69_7374_7772;

/// Advisory lock key serialising signal inserts ("palisade" in ASCII).
const SIGNAL_WRITER_LOCK: i64 = 0x7061_6c69_7361_6465;

/// The name of a day's signal partition (as `palisade_ensure_signal_partition` creates it).
fn partition_name(day: time::Date) -> String {
    format!("signals_p{:04}{:02}{:02}", day.year(), u8::from(day.month()), day.day())
}

/// The day of a signal partition, from its name.
fn partition_day(name: &str) -> Option<time::Date> {
    let digits = name.strip_prefix("signals_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        Ok(PgStore { pool })
    }

    /// The pool, for tests and benchmarks that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const MACHINE_SELECT: &str = "SELECT m.id, m.machine_id, m.password_hash, m.account_id, a.name AS account_name, m.display_name, \
     m.is_sensor, m.created_by, m.trust, m.scenarios::text AS scenarios, m.origin_prefix, m.version, m.created_at, m.last_login_at, \
     (SELECT count(*) FROM signals s WHERE s.machine_id = m.id) AS signal_count \
     FROM machines m LEFT JOIN accounts a ON a.id = m.account_id";

const ACCOUNT_SELECT: &str = "SELECT a.id, a.name, a.level, a.created_at, \
     (SELECT count(*) FROM machines m WHERE m.account_id = a.id) AS machine_count FROM accounts a";

fn machine_from_row(row: &PgRow) -> Result<Machine, sqlx::Error> {
    let scenarios: String = row.try_get("scenarios")?;
    Ok(Machine {
        key: MachineKey(row.try_get("id")?),
        machine_id: row.try_get("machine_id")?,
        password_hash: row.try_get("password_hash")?,
        account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
        account_name: row.try_get("account_name")?,
        display_name: row.try_get("display_name")?,
        sensor: row.try_get("is_sensor")?,
        created_by: row.try_get("created_by")?,
        trust: row.try_get("trust")?,
        scenarios: serde_json::from_str(&scenarios).unwrap_or_default(),
        origin_prefix: row.try_get("origin_prefix")?,
        version: row.try_get("version")?,
        signal_count: row.try_get::<i64, _>("signal_count")?.max(0) as u64,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
    })
}

fn account_from_row(row: &PgRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        key: AccountKey(row.try_get("id")?),
        name: row.try_get("name")?,
        level: row.try_get("level")?,
        machine_count: row.try_get::<i64, _>("machine_count")?.max(0) as u64,
        created_at: row.try_get("created_at")?,
    })
}

fn signal_from_row(row: &PgRow) -> Result<StoredSignal, sqlx::Error> {
    let scope: String = row.try_get("scope")?;
    Ok(StoredSignal {
        id: row.try_get("id")?,
        machine_id: row.try_get("login")?,
        agent: row.try_get("agent")?,
        scope: Scope::from_stored(&scope).unwrap_or(Scope::Ip),
        value: row.try_get("value")?,
        scenario: row.try_get("scenario")?,
        scenario_hash: row.try_get("scenario_hash")?,
        scenario_version: row.try_get("scenario_version")?,
        scenario_trust: row.try_get("scenario_trust")?,
        message: row.try_get("message")?,
        alert_uuid: row.try_get("alert_uuid")?,
        start_at: row.try_get("start_at")?,
        stop_at: row.try_get("stop_at")?,
        received_at: row.try_get("received_at")?,
        origin_ip: row.try_get("origin_ip")?,
        origin_prefix: row.try_get("origin_prefix")?,
        origin_asn: row.try_get::<Option<i64>, _>("origin_asn")?.map(|n| n as u32),
        enrichment: Enrichment {
            as_number: row.try_get::<Option<i64>, _>("as_number")?.map(|n| n as u32),
            as_name: row.try_get("as_name")?,
            country: row.try_get("country")?,
        },
        extra: row.try_get("extra")?,
    })
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_machine(&self, machine: &NewMachine) -> Result<MachineKey, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO machines (machine_id, password_hash, is_sensor, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(storable(&machine.machine_id))
        .bind(storable(&machine.password_hash))
        .bind(machine.sensor)
        .bind(machine.created_by.as_str())
        .bind(machine.created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(MachineKey(id))
    }

    async fn machine_by_login(&self, machine_id: &str) -> Result<Option<Machine>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{MACHINE_SELECT} WHERE m.machine_id = $1")))
            .bind(storable(machine_id))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(machine_from_row).transpose()?)
    }

    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{MACHINE_SELECT} ORDER BY m.id"))).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(machine_from_row).collect::<Result<_, _>>()?)
    }

    async fn record_login(&self, machine: MachineKey, login: &LoginRecord) -> Result<(), StoreError> {
        let scenarios = serde_json::to_string(&login.scenarios).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "UPDATE machines SET scenarios = $1::jsonb, origin_prefix = $2, user_agent = $3, last_login_at = $4 WHERE id = $5",
        )
        .bind(storable_json(&scenarios))
        .bind(login.origin_prefix.to_string())
        .bind(storable_opt(login.user_agent.as_deref()))
        .bind(login.at)
        .bind(machine.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_metrics(
        &self,
        machine: MachineKey,
        kind: &str,
        version: Option<&str>,
        payload: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO machine_metrics (machine_id, kind, received_at, payload) VALUES ($1, $2, $3, $4::jsonb)")
            .bind(machine.0)
            .bind(storable(kind))
            .bind(at)
            .bind(storable_json(payload))
            .execute(&mut *tx)
            .await?;
        if let Some(version) = version {
            sqlx::query("UPDATE machines SET version = $1 WHERE id = $2")
                .bind(storable(version))
                .bind(machine.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_account(&self, name: &str, at: OffsetDateTime) -> Result<AccountKey, StoreError> {
        let id: i64 = sqlx::query_scalar("INSERT INTO accounts (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(storable(name))
            .bind(at)
            .fetch_one(&self.pool)
            .await?;
        Ok(AccountKey(id))
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{ACCOUNT_SELECT} WHERE a.name = $1")))
            .bind(storable(name))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{ACCOUNT_SELECT} ORDER BY a.id"))).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(account_from_row).collect::<Result<_, _>>()?)
    }

    async fn create_enroll_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO enroll_keys (key_hash, prefix, account_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(storable(key_hash))
            .bind(storable(prefix))
            .bind(account.0)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn enroll_key_by_hash(&self, key_hash: &str) -> Result<Option<EnrollKey>, StoreError> {
        let row = sqlx::query("SELECT account_id, prefix, revoked_at FROM enroll_keys WHERE key_hash = $1")
            .bind(storable(key_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|row| -> Result<EnrollKey, sqlx::Error> {
                Ok(EnrollKey {
                    account: AccountKey(row.try_get("account_id")?),
                    prefix: row.try_get("prefix")?,
                    revoked: row.try_get::<Option<OffsetDateTime>, _>("revoked_at")?.is_some(),
                })
            })
            .transpose()?)
    }

    async fn enroll_machine(
        &self,
        machine: MachineKey,
        account: AccountKey,
        name: Option<&str>,
        tags: &[String],
        overwrite: bool,
        at: OffsetDateTime,
    ) -> Result<EnrollOutcome, StoreError> {
        let tags = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
        let mut tx = self.pool.begin().await?;
        let current: Option<Option<i64>> = sqlx::query_scalar("SELECT account_id FROM machines WHERE id = $1 FOR UPDATE")
            .bind(machine.0)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!("machine {}", machine.0)));
        };
        if current.is_some() && !overwrite {
            return Ok(EnrollOutcome::AlreadyEnrolled);
        }
        sqlx::query(
            "UPDATE machines SET account_id = $1, display_name = COALESCE($2, display_name), tags = $3::jsonb, enrolled_at = $4 WHERE id = $5",
        )
        .bind(account.0)
        .bind(storable_opt(name))
        .bind(storable_json(&tags))
        .bind(at)
        .bind(machine.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(EnrollOutcome::Enrolled)
    }

    async fn create_admin_token(&self, token_hash: &str, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_tokens (token_hash, prefix, created_at) VALUES ($1, $2, $3)")
            .bind(storable(token_hash))
            .bind(storable(prefix))
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn admin_token_exists(&self, token_hash: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(storable(token_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn insert_signals(&self, signals: &[NewSignal]) -> Result<InsertOutcome, StoreError> {
        if signals.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let n = signals.len();
        let mut machine = Vec::with_capacity(n);
        let mut dedup = Vec::with_capacity(n);
        let mut scope = Vec::with_capacity(n);
        let mut value = Vec::with_capacity(n);
        let mut scenario = Vec::with_capacity(n);
        let mut scenario_hash = Vec::with_capacity(n);
        let mut scenario_version = Vec::with_capacity(n);
        let mut scenario_trust = Vec::with_capacity(n);
        let mut message = Vec::with_capacity(n);
        let mut agent = Vec::with_capacity(n);
        let mut alert_uuid = Vec::with_capacity(n);
        let mut start_at = Vec::with_capacity(n);
        let mut stop_at = Vec::with_capacity(n);
        let mut received_at = Vec::with_capacity(n);
        let mut origin_ip = Vec::with_capacity(n);
        let mut origin_prefix = Vec::with_capacity(n);
        let mut origin_asn = Vec::with_capacity(n);
        let mut as_number = Vec::with_capacity(n);
        let mut as_name = Vec::with_capacity(n);
        let mut country = Vec::with_capacity(n);
        let mut extra = Vec::with_capacity(n);
        for signal in signals {
            let report = &signal.report;
            machine.push(signal.machine.0);
            dedup.push(report.dedup_key.as_str());
            scope.push(report.scope.as_str());
            value.push(report.value_text());
            scenario.push(storable(&report.scenario));
            scenario_hash.push(storable(&report.scenario_hash));
            scenario_version.push(storable(&report.scenario_version));
            scenario_trust.push(storable(&report.scenario_trust));
            message.push(storable(&report.message));
            agent.push(storable_opt(report.agent.as_deref()));
            alert_uuid.push(storable_opt(report.alert_uuid.as_deref()));
            start_at.push(report.start_at);
            stop_at.push(report.stop_at);
            received_at.push(signal.received_at);
            origin_ip.push(signal.origin.ip.to_string());
            origin_prefix.push(signal.origin.prefix.to_string());
            origin_asn.push(signal.origin.asn.map(i64::from));
            as_number.push(signal.enrichment.as_number.map(i64::from));
            as_name.push(storable_opt(signal.enrichment.as_name.as_deref()));
            country.push(storable_opt(signal.enrichment.country.as_deref()));
            extra.push(storable_json(&report.extra));
        }
        let mut days: Vec<time::Date> =
            received_at.iter().map(|at: &OffsetDateTime| at.to_offset(time::UtcOffset::UTC).date()).collect();
        days.sort_unstable();
        days.dedup();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
        // Each day's partition exists before its rows arrive (normally made ahead by maintenance).
        sqlx::query("SELECT palisade_ensure_signal_partition(d) FROM UNNEST($1::date[]) AS d")
            .bind(&days)
            .execute(&mut *tx)
            .await?;
        // Redeliveries are skipped without a unique constraint (a partitioned table cannot have
        // one without the partition key): writers are serialised by the lock above, so a row is
        // new when no stored signal of its machine has its dedup key, and DISTINCT ON keeps the
        // first of repeats within the batch. A redelivery carries the original's stop_at, and the
        // original was received no earlier than stop_at minus the accepted clock skew (at most 7
        // days, `Config::validate`), which lets the lookup skip older partitions.
        // ORDER BY the array position: ids follow the batch order, which UNNEST alone does not promise.
        let result = sqlx::query(
            "INSERT INTO signals (machine_id, dedup_key, scope, value, scenario, scenario_hash, scenario_version, \
             scenario_trust, message, agent, alert_uuid, start_at, stop_at, received_at, origin_ip, origin_prefix, \
             origin_asn, as_number, as_name, country, extra) \
             SELECT m, d, sc, v, sn, sh, sv, st, msg, ag, au, sa, so, ra, oi, op, oa, an, am, co, ex::jsonb \
             FROM (SELECT DISTINCT ON (m, d) * \
                   FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                               $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], \
                               $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::text[], $20::text[], $21::text[]) \
                     WITH ORDINALITY AS t(m, d, sc, v, sn, sh, sv, st, msg, ag, au, sa, so, ra, oi, op, oa, an, am, co, ex, n) \
                   ORDER BY m, d, n) AS u \
             WHERE NOT EXISTS (SELECT 1 FROM signals s WHERE s.machine_id = u.m AND s.dedup_key = u.d \
                               AND s.received_at >= u.so - interval '7 days') \
             ORDER BY n",
        )
        .bind(machine)
        .bind(dedup)
        .bind(scope)
        .bind(value)
        .bind(scenario)
        .bind(scenario_hash)
        .bind(scenario_version)
        .bind(scenario_trust)
        .bind(message)
        .bind(agent)
        .bind(alert_uuid)
        .bind(start_at)
        .bind(stop_at)
        .bind(&received_at)
        .bind(origin_ip)
        .bind(origin_prefix)
        .bind(origin_asn)
        .bind(as_number)
        .bind(as_name)
        .bind(country)
        .bind(extra)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let inserted = result.rows_affected() as usize;
        Ok(InsertOutcome { inserted, duplicates: n - inserted })
    }

    async fn list_signals(&self, filter: &SignalFilter) -> Result<Vec<StoredSignal>, StoreError> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT s.id, m.machine_id AS login, s.agent, s.scope, s.value, s.scenario, s.scenario_hash, s.scenario_version, \
             s.scenario_trust, s.message, s.alert_uuid, s.start_at, s.stop_at, s.received_at, s.origin_ip, s.origin_prefix, \
             s.origin_asn, s.as_number, s.as_name, s.country, s.extra::text AS extra \
             FROM signals s JOIN machines m ON m.id = s.machine_id WHERE s.id > ",
        );
        builder.push_bind(filter.after.unwrap_or(0));
        if let Some(login) = &filter.machine_id {
            builder.push(" AND m.machine_id = ").push_bind(storable(login));
        }
        if let Some(value) = &filter.value {
            builder.push(" AND s.value = ").push_bind(storable(value));
        }
        builder.push(" ORDER BY s.id LIMIT ").push_bind(i64::from(filter.limit));
        let rows = builder.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(signal_from_row).collect::<Result<_, _>>()?)
    }

    async fn count_signals(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM signals").fetch_one(&self.pool).await?;
        Ok(count.max(0) as u64)
    }

    async fn signals_for_engine(&self, after: i64, limit: u32) -> Result<Vec<EngineSignal>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, machine_id, value, scenario, scenario_trust, origin_prefix, origin_asn, received_at \
             FROM signals WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EngineSignal {
                    id: row.try_get("id")?,
                    machine: MachineKey(row.try_get("machine_id")?),
                    value: row.try_get("value")?,
                    scenario: row.try_get("scenario")?,
                    scenario_trust: row.try_get("scenario_trust")?,
                    origin_prefix: row.try_get("origin_prefix")?,
                    origin_asn: row.try_get::<Option<i64>, _>("origin_asn")?.map(|n| n as u32),
                    received_at: row.try_get("received_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn engine_machines(&self) -> Result<Vec<EngineMachine>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.account_id, COALESCE(a.level, 'anonymous') AS level, m.is_sensor, m.created_at \
             FROM machines m LEFT JOIN accounts a ON a.id = m.account_id ORDER BY m.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EngineMachine {
                    key: MachineKey(row.try_get("id")?),
                    account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
                    level: row.try_get("level")?,
                    sensor: row.try_get("is_sensor")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn consensus_snapshot(&self) -> Result<ConsensusSnapshot, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
        let watermark: i64 =
            sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&mut *tx).await?;
        let machines = sqlx::query_as::<_, (i64, String)>("SELECT machine_id, state::text FROM engine_machines")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(k, s)| (MachineKey(k), s))
            .collect();
        let targets =
            sqlx::query_as::<_, (String, String)>("SELECT target, state::text FROM engine_targets").fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(ConsensusSnapshot { watermark, machines, targets })
    }

    async fn commit_consensus(&self, commit: &ConsensusCommit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !commit.machines.is_empty() {
            let keys: Vec<i64> = commit.machines.iter().map(|(k, _, _)| k.0).collect();
            let states: Vec<&str> = commit.machines.iter().map(|(_, s, _)| s.as_str()).collect();
            let trust: Vec<f64> = commit.machines.iter().map(|(_, _, t)| *t).collect();
            sqlx::query(
                "INSERT INTO engine_machines (machine_id, state) SELECT k, s::jsonb FROM UNNEST($1::bigint[], $2::text[]) AS t(k, s) \
                 ON CONFLICT (machine_id) DO UPDATE SET state = excluded.state",
            )
            .bind(&keys)
            .bind(&states)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE machines m SET trust = t.v FROM UNNEST($1::bigint[], $2::float8[]) AS t(k, v) WHERE m.id = t.k")
                .bind(&keys)
                .bind(&trust)
                .execute(&mut *tx)
                .await?;
        }
        let (kept, gone): (Vec<_>, Vec<_>) = commit.targets.iter().partition(|(_, s)| s.is_some());
        if !kept.is_empty() {
            let targets: Vec<&str> = kept.iter().map(|(t, _)| t.as_str()).collect();
            let states: Vec<&str> = kept.iter().filter_map(|(_, s)| s.as_deref()).collect();
            sqlx::query(
                "INSERT INTO engine_targets (target, state) SELECT t, s::jsonb FROM UNNEST($1::text[], $2::text[]) AS x(t, s) \
                 ON CONFLICT (target) DO UPDATE SET state = excluded.state",
            )
            .bind(&targets)
            .bind(&states)
            .execute(&mut *tx)
            .await?;
        }
        if !gone.is_empty() {
            let targets: Vec<&str> = gone.iter().map(|(t, _)| t.as_str()).collect();
            sqlx::query("DELETE FROM engine_targets WHERE target = ANY($1)").bind(&targets).execute(&mut *tx).await?;
        }
        apply_list_ops(&mut tx, &commit.list_ops, commit.at).await?;
        for id in &commit.done_requests {
            sqlx::query("UPDATE consensus_requests SET done_at = $1 WHERE id = $2")
                .bind(commit.at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE consensus_watermark SET signal_id = $1 WHERE id = 1")
            .bind(commit.watermark)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_entries(&self, list: &str) -> Result<Vec<ListEntry>, StoreError> {
        use futures::TryStreamExt;
        // Converted row by row as they arrive: a large list's raw rows are never all held at once.
        let mut rows = sqlx::query("SELECT * FROM blocklist_entries WHERE list = $1 ORDER BY seq").bind(list).fetch(&self.pool);
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            entries.push(entry_from_row(&row)?);
        }
        Ok(entries)
    }

    async fn list_entry(&self, list: &str, value: &str) -> Result<Option<ListEntry>, StoreError> {
        let row = sqlx::query("SELECT * FROM blocklist_entries WHERE list = $1 AND value = $2")
            .bind(list)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(entry_from_row).transpose()?)
    }

    async fn list_changes(&self, list: &str, after: i64, limit: u32) -> Result<Vec<ListChange>, StoreError> {
        let mut rows = sqlx::query("SELECT * FROM blocklist_changes WHERE list = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(list)
            .bind(after)
            .bind(i64::from(limit))
            .fetch(&self.pool);
        // Converted row by row as they arrive, so a batch's raw rows are never all held at once.
        let mut changes = Vec::new();
        while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await? {
            changes.push({
                let row = &row;
                ListChange {
                    seq: row.try_get("seq")?,
                    op: row.try_get("op")?,
                    entry: ListEntry {
                        list: row.try_get("list")?,
                        value: row.try_get("value")?,
                        scope: row.try_get("scope")?,
                        scenario: row.try_get("scenario")?,
                        remediation: row.try_get("remediation")?,
                        rule: row.try_get("rule")?,
                        listed_at: row.try_get("at")?,
                        expires_at: row.try_get("expires_at")?,
                        seq: row.try_get("seq")?,
                    },
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                }
            });
        }
        Ok(changes)
    }

    async fn list_seq(&self, list: &str) -> Result<i64, StoreError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM blocklist_changes WHERE list = $1").bind(list).fetch_one(&self.pool).await?;
        Ok(seq.unwrap_or(0))
    }

    async fn machine_stream_seq(&self, machine: MachineKey) -> Result<Option<i64>, StoreError> {
        let seq: Option<Option<i64>> = sqlx::query_scalar("SELECT stream_seq FROM machines WHERE id = $1")
            .bind(machine.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.flatten())
    }

    async fn set_machine_stream_seq(&self, machine: MachineKey, seq: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE machines SET stream_seq = $1 WHERE id = $2").bind(seq).bind(machine.0).execute(&self.pool).await?;
        Ok(())
    }

    async fn add_canary(&self, value: &str, note: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO canaries (value, note, created_at) VALUES ($1, $2, $3)")
            .bind(value)
            .bind(note)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remove_canary(&self, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM canaries WHERE value = $1").bind(value).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_canaries(&self) -> Result<Vec<Canary>, StoreError> {
        let rows =
            sqlx::query_as::<_, (String, String, OffsetDateTime)>("SELECT value, note, created_at FROM canaries ORDER BY value")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(value, note, created_at)| Canary { value, note, created_at }).collect())
    }

    async fn add_allowlist(
        &self,
        values: &[String],
        category: &str,
        source: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let done = sqlx::query(
            "INSERT INTO allowlist_entries (value, category, source, created_at) \
             SELECT DISTINCT v, $2, $3, $4 FROM UNNEST($1::text[]) AS t(v) ON CONFLICT DO NOTHING",
        )
        .bind(values)
        .bind(category)
        .bind(source)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() as usize)
    }

    async fn remove_allowlist(&self, value: Option<&str>, source: Option<&str>) -> Result<usize, StoreError> {
        let done = sqlx::query(
            "DELETE FROM allowlist_entries WHERE ($1::text IS NULL OR value = $1) AND ($2::text IS NULL OR source = $2)",
        )
        .bind(value)
        .bind(source)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() as usize)
    }

    async fn list_allowlist(&self) -> Result<Vec<AllowlistEntry>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String, String, OffsetDateTime)>(
            "SELECT value, category, source, created_at FROM allowlist_entries ORDER BY source, value",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(value, category, source, created_at)| AllowlistEntry { value, category, source, created_at })
            .collect())
    }

    async fn set_machine_sensor(&self, machine_id: &str, sensor: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE machines SET is_sensor = $1 WHERE machine_id = $2")
            .bind(sensor)
            .bind(machine_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("machine {machine_id:?}")));
        }
        Ok(())
    }

    async fn set_account_level(&self, name: &str, level: &str) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE accounts SET level = $1 WHERE name = $2").bind(level).bind(name).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {name:?}")));
        }
        Ok(())
    }

    async fn engine_machine(&self, machine: MachineKey) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT state::text FROM engine_machines WHERE machine_id = $1")
            .bind(machine.0)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn engine_target(&self, target: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT state::text FROM engine_targets WHERE target = $1")
            .bind(target)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn queue_consensus_request(&self, kind: &str, value: &str, at: OffsetDateTime) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("INSERT INTO consensus_requests (kind, value, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(kind)
            .bind(value)
            .bind(at)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn pending_consensus_requests(&self) -> Result<Vec<ConsensusRequest>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, String, String)>(
            "SELECT id, kind, value FROM consensus_requests WHERE done_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, kind, value)| ConsensusRequest { id, kind, value }).collect())
    }

    async fn acquire_leadership(&self) -> Result<Option<Leadership>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut *conn).await?;
        if held {
            // The lock lives as long as this session: take the connection out of the pool, so
            // dropping the leadership closes it and releases the lock.
            Ok(Some(Leadership::holding(conn.detach())))
        } else {
            Ok(None)
        }
    }

    async fn machine_last_signal_at(&self, machine: MachineKey) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<OffsetDateTime> = sqlx::query_scalar("SELECT MAX(received_at) FROM signals WHERE machine_id = $1")
            .bind(machine.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(at)
    }

    async fn create_custom_list(&self, list: &CustomList) -> Result<(), StoreError> {
        let inserted = sqlx::query("INSERT INTO custom_lists (name, kind, description, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING")
            .bind(storable(&list.name).as_ref())
            .bind(&list.kind)
            .bind(storable(&list.description).as_ref())
            .bind(list.created_at)
            .execute(&self.pool)
            .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("list {}", list.name)));
        }
        Ok(())
    }

    async fn custom_lists(&self) -> Result<Vec<CustomList>, StoreError> {
        let rows = sqlx::query("SELECT name, kind, description, created_at FROM custom_lists ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CustomList {
                    name: row.try_get("name")?,
                    kind: row.try_get("kind")?,
                    description: row.try_get("description")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn delete_custom_list(&self, name: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let values: Vec<String> =
            sqlx::query_scalar("SELECT value FROM blocklist_entries WHERE list = $1").bind(name).fetch_all(&mut *tx).await?;
        let ops: Vec<ListOp> = values
            .into_iter()
            .map(|value| ListOp::Remove { list: name.to_string(), value, reason: "list deleted".into() })
            .collect();
        apply_list_ops(&mut tx, &ops, at).await?;
        let deleted = sqlx::query("DELETE FROM custom_lists WHERE name = $1").bind(name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn apply_list_ops(&self, ops: &[ListOp], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        apply_list_ops(&mut tx, ops, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_list_subscription(&self, machine_id: &str, list: &str, subscribed: bool) -> Result<(), StoreError> {
        let machine: Option<i64> = sqlx::query_scalar("SELECT id FROM machines WHERE machine_id = $1")
            .bind(machine_id)
            .fetch_optional(&self.pool)
            .await?;
        let machine = machine.ok_or_else(|| StoreError::NotFound(format!("machine {machine_id}")))?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM custom_lists WHERE name = $1").bind(list).fetch_optional(&self.pool).await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("list {list}")));
        }
        let statement = if subscribed {
            "INSERT INTO list_subscriptions (machine_id, list) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM list_subscriptions WHERE machine_id = $1 AND list = $2"
        };
        sqlx::query(statement).bind(machine).bind(list).execute(&self.pool).await?;
        Ok(())
    }

    async fn machine_subscriptions(&self, machine: MachineKey) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT list FROM list_subscriptions WHERE machine_id = $1 ORDER BY list")
            .bind(machine.0)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn create_api_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (key_hash, prefix, account_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(storable(key_hash))
            .bind(storable(prefix))
            .bind(account.0)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{API_KEY_SELECT} WHERE k.key_hash = $1")))
            .bind(storable(key_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(api_key_from_row).transpose()?)
    }

    async fn list_api_keys(&self, account: Option<AccountKey>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{API_KEY_SELECT} WHERE ($1 IS NULL OR k.account_id = $1) ORDER BY k.id")))
            .bind(account.map(|a| a.0))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(api_key_from_row).collect::<Result<_, _>>()?)
    }

    async fn revoke_api_key(&self, prefix: &str, account: Option<AccountKey>, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL AND ($3 IS NULL OR account_id = $4)",
        )
        .bind(at)
        .bind(storable(prefix))
        .bind(account.map(|a| a.0))
        .bind(account.map(|a| a.0))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE prefix = $2")
            .bind(at)
            .bind(storable(prefix))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_account_tier(&self, name: &str, tier: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET tier = $1 WHERE name = $2")
            .bind(storable(tier))
            .bind(storable(name))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {name:?}")));
        }
        Ok(())
    }

    async fn prepare_signal_partitions(&self, from: OffsetDateTime, days_ahead: u32) -> Result<Vec<time::Date>, StoreError> {
        let first = from.to_offset(time::UtcOffset::UTC).date();
        let days: Vec<time::Date> =
            (0..=i64::from(days_ahead)).filter_map(|n| first.checked_add(time::Duration::days(n))).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
        let created: Vec<(time::Date, bool)> =
            sqlx::query_as("SELECT d, palisade_ensure_signal_partition(d) FROM UNNEST($1::date[]) AS d ORDER BY d")
                .bind(&days)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(created.into_iter().filter(|(_, new)| *new).map(|(day, _)| day).collect())
    }

    async fn expire_signals(&self, before: OffsetDateTime, up_to_id: i64, _batch: u32) -> Result<ExpireOutcome, StoreError> {
        let mut outcome = ExpireOutcome::default();
        for day in self.signal_partitions().await? {
            let Some(end) = day.next_day().map(|d| d.midnight().assume_utc()) else { continue };
            if end > before {
                break;
            }
            let name = partition_name(day);
            // One partition per transaction, under the writer lock, so inserts that create
            // partitions never race with the drop, and readers wait only for one DROP.
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
            let unprocessed: bool =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT EXISTS (SELECT 1 FROM \"{name}\" WHERE id > $1)")))
                    .bind(up_to_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if unprocessed {
                // The consensus worker has not read it yet; newer partitions cannot be older.
                break;
            }
            sqlx::query(AssertSqlSafe(format!("DROP TABLE \"{name}\""))).execute(&mut *tx).await?;
            tx.commit().await?;
            outcome.partitions_dropped.push(day);
        }
        Ok(outcome)
    }

    async fn signal_partitions(&self) -> Result<Vec<time::Date>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'signals'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut days: Vec<time::Date> = names.iter().filter_map(|name| partition_day(name)).collect();
        days.sort_unstable();
        Ok(days)
    }

    async fn signal_backlog(&self, after: i64, cap: u32) -> Result<SignalBacklog, StoreError> {
        let (count, oldest): (i64, Option<OffsetDateTime>) = sqlx::query_as(
            "SELECT count(*), min(received_at) FROM (SELECT received_at FROM signals WHERE id > $1 ORDER BY id LIMIT $2) AS t",
        )
        .bind(after)
        .bind(i64::from(cap))
        .fetch_one(&self.pool)
        .await?;
        Ok(SignalBacklog { count: count.max(0) as u64, oldest_received_at: oldest })
    }

    async fn list_enroll_keys(&self, account: AccountKey) -> Result<Vec<EnrollKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT prefix, created_at, revoked_at FROM enroll_keys WHERE account_id = $1 ORDER BY id")
            .bind(account.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EnrollKeyRecord {
                    prefix: row.try_get("prefix")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn revoke_enroll_key(&self, account: AccountKey, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE enroll_keys SET revoked_at = $1 WHERE account_id = $2 AND prefix = $3 AND revoked_at IS NULL")
                .bind(at)
                .bind(account.0)
                .bind(storable(prefix))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn account_tier(&self, account: AccountKey) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT tier FROM accounts WHERE id = $1").bind(account.0).fetch_optional(&self.pool).await?)
    }

    async fn signal_counts_since(&self, since: OffsetDateTime) -> Result<Vec<(MachineKey, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT machine_id, COUNT(*) FROM signals WHERE received_at >= $1 GROUP BY machine_id ORDER BY machine_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(machine, n)| (MachineKey(machine), n as u64)).collect())
    }

    async fn signals_per_day(&self, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT floor(extract(epoch FROM received_at) / 86400)::BIGINT AS day, COUNT(*) FROM signals \
             WHERE received_at >= $1 GROUP BY day ORDER BY day",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(day, n)| DayCount { day, count: n as u64, other: 0 }).collect())
    }

    async fn list_changes_per_day(&self, list: &str, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT floor(extract(epoch FROM at) / 86400)::BIGINT AS day, COUNT(*) FILTER (WHERE op = 'add'), \
             COUNT(*) FILTER (WHERE op = 'remove') FROM blocklist_changes WHERE list = $1 AND at >= $2 GROUP BY day ORDER BY day",
        )
        .bind(storable(list))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(day, adds, removes)| DayCount { day, count: adds as u64, other: removes as u64 }).collect())
    }

    async fn consensus_watermark(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&self.pool).await?)
    }

    async fn add_lookup_usage(&self, usage: &[(AccountKey, i64, u64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (account, day, lookups) in usage {
            sqlx::query(
                "INSERT INTO lookup_usage (account_id, day, lookups) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, day) DO UPDATE SET lookups = lookup_usage.lookups + excluded.lookups",
            )
            .bind(account.0)
            .bind(*day)
            .bind(i64::try_from(*lookups).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn lookup_usage_per_day(&self, account: AccountKey, since_day: i64) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT day, lookups FROM lookup_usage WHERE account_id = $1 AND day >= $2 ORDER BY day")
                .bind(account.0)
                .bind(since_day)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(day, n)| DayCount { day, count: n as u64, other: 0 }).collect())
    }

    async fn list_entries_page(&self, list: &str, after: &str, limit: u32) -> Result<Vec<ListEntry>, StoreError> {
        use futures::TryStreamExt;
        // The primary key (list, value) serves both the filter and the order.
        let mut rows = sqlx::query("SELECT * FROM blocklist_entries WHERE list = $1 AND value > $2 ORDER BY value LIMIT $3")
            .bind(list)
            .bind(after)
            .bind(i64::from(limit))
            .fetch(&self.pool);
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            entries.push(entry_from_row(&row)?);
        }
        Ok(entries)
    }
}

fn entry_from_row(row: &PgRow) -> Result<ListEntry, sqlx::Error> {
    Ok(ListEntry {
        list: row.try_get("list")?,
        value: row.try_get("value")?,
        scope: row.try_get("scope")?,
        scenario: row.try_get("scenario")?,
        remediation: row.try_get("remediation")?,
        rule: row.try_get("rule")?,
        listed_at: row.try_get("listed_at")?,
        expires_at: row.try_get("expires_at")?,
        seq: row.try_get("seq")?,
    })
}

/// Writes membership changes, each with the next seq, inside the caller's transaction.
async fn apply_list_ops(tx: &mut sqlx::Transaction<'_, Postgres>, ops: &[ListOp], at: OffsetDateTime) -> Result<(), sqlx::Error> {
    if ops.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LIST_WRITE_LOCK).execute(&mut **tx).await?;
    for op in ops {
        match op {
            ListOp::Add(e) => {
                let seq: i64 = sqlx::query_scalar(
                    "INSERT INTO blocklist_changes (list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) \
                     VALUES ($1, $2, 'add', $3, $4, $5, $6, NULL, $7, $8) RETURNING seq",
                )
                .bind(&e.list)
                .bind(&e.value)
                .bind(&e.scope)
                .bind(&e.scenario)
                .bind(&e.remediation)
                .bind(&e.rule)
                .bind(e.expires_at)
                .bind(at)
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO blocklist_entries (list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (list, value) DO UPDATE SET scope = excluded.scope, \
                     scenario = excluded.scenario, remediation = excluded.remediation, rule = excluded.rule, \
                     expires_at = excluded.expires_at, seq = excluded.seq",
                )
                .bind(&e.list)
                .bind(&e.value)
                .bind(&e.scope)
                .bind(&e.scenario)
                .bind(&e.remediation)
                .bind(&e.rule)
                .bind(e.listed_at)
                .bind(e.expires_at)
                .bind(seq)
                .execute(&mut **tx)
                .await?;
            }
            ListOp::Remove { list, value, reason } => {
                sqlx::query(
                    "WITH gone AS (DELETE FROM blocklist_entries WHERE list = $1 AND value = $2 \
                                   RETURNING list, value, scope, scenario, remediation, rule, expires_at) \
                     INSERT INTO blocklist_changes (list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) \
                     SELECT list, value, 'remove', scope, scenario, remediation, rule, $3, expires_at, $4 FROM gone",
                )
                .bind(list)
                .bind(value)
                .bind(reason)
                .bind(at)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

const API_KEY_SELECT: &str = "SELECT k.prefix, k.account_id, a.name AS account_name, a.tier, k.created_at, k.revoked_at, \
     k.last_used_at FROM api_keys k JOIN accounts a ON a.id = k.account_id";

fn api_key_from_row(row: &PgRow) -> Result<ApiKeyRecord, sqlx::Error> {
    Ok(ApiKeyRecord {
        prefix: row.try_get("prefix")?,
        account: AccountKey(row.try_get("account_id")?),
        account_name: row.try_get("account_name")?,
        tier: row.try_get("tier")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}
