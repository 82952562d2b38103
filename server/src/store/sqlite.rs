//! SQLite backend (the embedded default). WAL mode with `synchronous = FULL`, so a committed
//! signal survives a crash or power loss. Writes go through a single-connection pool (SQLite
//! allows one writer at a time; queueing in-process avoids busy retries), reads through a small
//! pool of their own. Concurrent signal inserts share transactions ([`group_commit`]). Times are
//! stored as integer microseconds.

mod group_commit;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;

use self::group_commit::{SignalRow, SignalWriter};
use super::{
    Account, AccountKey, Enrichment, EnrollKey, EnrollOutcome, InsertOutcome, LoginRecord, Machine, MachineKey, NewMachine,
    NewSignal, SignalFilter, Store, StoreError, StoredSignal, from_micros, to_micros,
};
use crate::config::Backend;
use crate::domain::signal::Scope;

/// Columns of one signal row, in insert order.
const SIGNAL_COLUMNS: usize = 21;
/// SQLite allows 32766 bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 32766 / SIGNAL_COLUMNS;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    signals: Arc<SignalWriter>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database a `sqlite:` URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Multi-row inserts keep a statement journal; in memory it costs no file writes.
            .pragma("temp_store", "memory");
        if let Some(dir) = Path::new(options.get_filename()).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(false))
            .await?;
        Ok(SqliteStore { writer, reader, signals: Arc::default() })
    }
}

const MACHINE_SELECT: &str = "SELECT m.id, m.machine_id, m.password_hash, m.account_id, a.name AS account_name, m.display_name, \
     m.is_sensor, m.created_by, m.trust, m.scenarios, m.origin_prefix, m.version, m.created_at, m.last_login_at, \
     (SELECT count(*) FROM signals s WHERE s.machine_id = m.id) AS signal_count \
     FROM machines m LEFT JOIN accounts a ON a.id = m.account_id";

fn machine_from_row(row: &SqliteRow) -> Result<Machine, sqlx::Error> {
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
        created_at: from_micros(row.try_get("created_at")?),
        last_login_at: row.try_get::<Option<i64>, _>("last_login_at")?.map(from_micros),
    })
}

fn account_from_row(row: &SqliteRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        key: AccountKey(row.try_get("id")?),
        name: row.try_get("name")?,
        level: row.try_get("level")?,
        machine_count: row.try_get::<i64, _>("machine_count")?.max(0) as u64,
        created_at: from_micros(row.try_get("created_at")?),
    })
}

fn signal_from_row(row: &SqliteRow) -> Result<StoredSignal, sqlx::Error> {
    let scope: String = row.try_get("scope")?;
    Ok(StoredSignal {
        id: row.try_get("id")?,
        machine_id: row.try_get("login")?,
        agent: row.try_get("agent")?,
        scope: Scope::from_stored(&scope).unwrap_or(Scope::Ip),
        value: row.try_get("value")?,
        scenario: row.try_get("scenario")?,
        scenario_trust: row.try_get("scenario_trust")?,
        start_at: from_micros(row.try_get("start_at")?),
        stop_at: from_micros(row.try_get("stop_at")?),
        received_at: from_micros(row.try_get("received_at")?),
        origin_prefix: row.try_get("origin_prefix")?,
        enrichment: Enrichment {
            as_number: row.try_get::<Option<i64>, _>("as_number")?.map(|n| n as u32),
            as_name: row.try_get("as_name")?,
            country: row.try_get("country")?,
        },
        extra: row.try_get("extra")?,
    })
}

const ACCOUNT_SELECT: &str = "SELECT a.id, a.name, a.level, a.created_at, \
     (SELECT count(*) FROM machines m WHERE m.account_id = a.id) AS machine_count FROM accounts a";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/sqlite").run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_machine(&self, machine: &NewMachine) -> Result<MachineKey, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO machines (machine_id, password_hash, is_sensor, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&machine.machine_id)
        .bind(&machine.password_hash)
        .bind(machine.sensor)
        .bind(machine.created_by.as_str())
        .bind(to_micros(machine.created_at))
        .fetch_one(&self.writer)
        .await?;
        Ok(MachineKey(id))
    }

    async fn machine_by_login(&self, machine_id: &str) -> Result<Option<Machine>, StoreError> {
        let row = sqlx::query(&format!("{MACHINE_SELECT} WHERE m.machine_id = ?"))
            .bind(machine_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(machine_from_row).transpose()?)
    }

    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError> {
        let rows = sqlx::query(&format!("{MACHINE_SELECT} ORDER BY m.id")).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(machine_from_row).collect::<Result<_, _>>()?)
    }

    async fn record_login(&self, machine: MachineKey, login: &LoginRecord) -> Result<(), StoreError> {
        let scenarios = serde_json::to_string(&login.scenarios).unwrap_or_else(|_| "[]".into());
        sqlx::query("UPDATE machines SET scenarios = ?, origin_prefix = ?, user_agent = ?, last_login_at = ? WHERE id = ?")
            .bind(scenarios)
            .bind(login.origin_prefix.to_string())
            .bind(&login.user_agent)
            .bind(to_micros(login.at))
            .bind(machine.0)
            .execute(&self.writer)
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
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO machine_metrics (machine_id, kind, received_at, payload) VALUES (?, ?, ?, ?)")
            .bind(machine.0)
            .bind(kind)
            .bind(to_micros(at))
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        if let Some(version) = version {
            sqlx::query("UPDATE machines SET version = ? WHERE id = ?").bind(version).bind(machine.0).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_account(&self, name: &str, at: OffsetDateTime) -> Result<AccountKey, StoreError> {
        let id: i64 = sqlx::query_scalar("INSERT INTO accounts (name, created_at) VALUES (?, ?) RETURNING id")
            .bind(name)
            .bind(to_micros(at))
            .fetch_one(&self.writer)
            .await?;
        Ok(AccountKey(id))
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!("{ACCOUNT_SELECT} WHERE a.name = ?")).bind(name).fetch_optional(&self.reader).await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(&format!("{ACCOUNT_SELECT} ORDER BY a.id")).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(account_from_row).collect::<Result<_, _>>()?)
    }

    async fn create_enroll_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO enroll_keys (key_hash, prefix, account_id, created_at) VALUES (?, ?, ?, ?)")
            .bind(key_hash)
            .bind(prefix)
            .bind(account.0)
            .bind(to_micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn enroll_key_by_hash(&self, key_hash: &str) -> Result<Option<EnrollKey>, StoreError> {
        let row = sqlx::query("SELECT account_id, prefix, revoked_at FROM enroll_keys WHERE key_hash = ?")
            .bind(key_hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row
            .map(|row| -> Result<EnrollKey, sqlx::Error> {
                Ok(EnrollKey {
                    account: AccountKey(row.try_get("account_id")?),
                    prefix: row.try_get("prefix")?,
                    revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
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
        let mut tx = self.writer.begin().await?;
        let current: Option<Option<i64>> =
            sqlx::query_scalar("SELECT account_id FROM machines WHERE id = ?").bind(machine.0).fetch_optional(&mut *tx).await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!("machine {}", machine.0)));
        };
        if current.is_some() && !overwrite {
            return Ok(EnrollOutcome::AlreadyEnrolled);
        }
        sqlx::query("UPDATE machines SET account_id = ?, display_name = COALESCE(?, display_name), tags = ?, enrolled_at = ? WHERE id = ?")
            .bind(account.0)
            .bind(name)
            .bind(tags)
            .bind(to_micros(at))
            .bind(machine.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(EnrollOutcome::Enrolled)
    }

    async fn create_admin_token(&self, token_hash: &str, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_tokens (token_hash, prefix, created_at) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(prefix)
            .bind(to_micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn admin_token_exists(&self, token_hash: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(found.is_some())
    }

    async fn insert_signals(&self, signals: &[NewSignal]) -> Result<InsertOutcome, StoreError> {
        if signals.is_empty() {
            return Ok(InsertOutcome::default());
        }
        self.signals.insert(&self.writer, signals.iter().map(SignalRow::from).collect()).await
    }

    async fn list_signals(&self, filter: &SignalFilter) -> Result<Vec<StoredSignal>, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT s.id, m.machine_id AS login, s.agent, s.scope, s.value, s.scenario, s.scenario_trust, s.start_at, \
             s.stop_at, s.received_at, s.origin_prefix, s.as_number, s.as_name, s.country, s.extra \
             FROM signals s JOIN machines m ON m.id = s.machine_id WHERE s.id > ",
        );
        builder.push_bind(filter.after.unwrap_or(0));
        if let Some(login) = &filter.machine_id {
            builder.push(" AND m.machine_id = ").push_bind(login);
        }
        if let Some(value) = &filter.value {
            builder.push(" AND s.value = ").push_bind(value);
        }
        builder.push(" ORDER BY s.id LIMIT ").push_bind(i64::from(filter.limit));
        let rows = builder.build().fetch_all(&self.reader).await?;
        Ok(rows.iter().map(signal_from_row).collect::<Result<_, _>>()?)
    }

    async fn count_signals(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM signals").fetch_one(&self.reader).await?;
        Ok(count.max(0) as u64)
    }
}
