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
use sqlx::{Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use super::{
    Account, AccountKey, Enrichment, EnrollKey, EnrollOutcome, InsertOutcome, LoginRecord, Machine, MachineKey, NewMachine,
    NewSignal, SignalFilter, Store, StoreError, StoredSignal, storable, storable_json, storable_opt,
};
use crate::config::Backend;
use crate::domain::signal::Scope;

/// Advisory lock key serialising signal inserts ("palisade" in ASCII).
const SIGNAL_WRITER_LOCK: i64 = 0x7061_6c69_7361_6465;

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
        let row = sqlx::query(&format!("{MACHINE_SELECT} WHERE m.machine_id = $1"))
            .bind(storable(machine_id))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(machine_from_row).transpose()?)
    }

    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError> {
        let rows = sqlx::query(&format!("{MACHINE_SELECT} ORDER BY m.id")).fetch_all(&self.pool).await?;
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
        let row =
            sqlx::query(&format!("{ACCOUNT_SELECT} WHERE a.name = $1")).bind(storable(name)).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(&format!("{ACCOUNT_SELECT} ORDER BY a.id")).fetch_all(&self.pool).await?;
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
        // ORDER BY the array position: ids follow the batch order, which UNNEST alone does not promise.
        let result = sqlx::query(
            "INSERT INTO signals (machine_id, dedup_key, scope, value, scenario, scenario_hash, scenario_version, \
             scenario_trust, message, agent, alert_uuid, start_at, stop_at, received_at, origin_ip, origin_prefix, \
             origin_asn, as_number, as_name, country, extra) \
             SELECT m, d, sc, v, sn, sh, sv, st, msg, ag, au, sa, so, ra, oi, op, oa, an, am, co, ex::jsonb \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                         $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], \
                         $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::text[], $20::text[], $21::text[]) \
               WITH ORDINALITY AS t(m, d, sc, v, sn, sh, sv, st, msg, ag, au, sa, so, ra, oi, op, oa, an, am, co, ex, n) \
             ORDER BY n \
             ON CONFLICT (machine_id, dedup_key) DO NOTHING",
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
        .bind(received_at)
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
}
