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
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;

use self::group_commit::{SignalRow, SignalWriter};
use super::{
    Account, AccountKey, AllowlistEntry, ApiKeyRecord, Canary, ConsensusCommit, ConsensusRequest, ConsensusSnapshot, CustomList,
    DayCount, EngineMachine, EngineSignal, Enrichment, EnrollKey, EnrollKeyRecord, EnrollOutcome, ExpireOutcome, InsertOutcome,
    Leadership, ListChange, ListEntry, ListOp, LoginRecord, Machine, MachineKey, NewMachine, NewSignal, SignalBacklog,
    SignalFilter, Store, StoreError, StoredSignal, from_micros, storable, storable_json, storable_opt, to_micros,
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
        scenario_hash: row.try_get("scenario_hash")?,
        scenario_version: row.try_get("scenario_version")?,
        scenario_trust: row.try_get("scenario_trust")?,
        message: row.try_get("message")?,
        alert_uuid: row.try_get("alert_uuid")?,
        start_at: from_micros(row.try_get("start_at")?),
        stop_at: from_micros(row.try_get("stop_at")?),
        received_at: from_micros(row.try_get("received_at")?),
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
        .bind(storable(&machine.machine_id))
        .bind(storable(&machine.password_hash))
        .bind(machine.sensor)
        .bind(machine.created_by.as_str())
        .bind(to_micros(machine.created_at))
        .fetch_one(&self.writer)
        .await?;
        Ok(MachineKey(id))
    }

    async fn machine_by_login(&self, machine_id: &str) -> Result<Option<Machine>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{MACHINE_SELECT} WHERE m.machine_id = ?")))
            .bind(storable(machine_id))
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(machine_from_row).transpose()?)
    }

    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{MACHINE_SELECT} ORDER BY m.id"))).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(machine_from_row).collect::<Result<_, _>>()?)
    }

    async fn record_login(&self, machine: MachineKey, login: &LoginRecord) -> Result<(), StoreError> {
        let scenarios = serde_json::to_string(&login.scenarios).unwrap_or_else(|_| "[]".into());
        sqlx::query("UPDATE machines SET scenarios = ?, origin_prefix = ?, user_agent = ?, last_login_at = ? WHERE id = ?")
            .bind(storable_json(&scenarios))
            .bind(login.origin_prefix.to_string())
            .bind(storable_opt(login.user_agent.as_deref()))
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
        // json() refuses what is not JSON, as PostgreSQL's jsonb does.
        sqlx::query("INSERT INTO machine_metrics (machine_id, kind, received_at, payload) VALUES (?, ?, ?, json(?))")
            .bind(machine.0)
            .bind(storable(kind))
            .bind(to_micros(at))
            .bind(storable_json(payload))
            .execute(&mut *tx)
            .await?;
        if let Some(version) = version {
            sqlx::query("UPDATE machines SET version = ? WHERE id = ?")
                .bind(storable(version))
                .bind(machine.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_account(&self, name: &str, at: OffsetDateTime) -> Result<AccountKey, StoreError> {
        let id: i64 = sqlx::query_scalar("INSERT INTO accounts (name, created_at) VALUES (?, ?) RETURNING id")
            .bind(storable(name))
            .bind(to_micros(at))
            .fetch_one(&self.writer)
            .await?;
        Ok(AccountKey(id))
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{ACCOUNT_SELECT} WHERE a.name = ?")))
            .bind(storable(name))
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{ACCOUNT_SELECT} ORDER BY a.id"))).fetch_all(&self.reader).await?;
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
            .bind(storable(key_hash))
            .bind(storable(prefix))
            .bind(account.0)
            .bind(to_micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn enroll_key_by_hash(&self, key_hash: &str) -> Result<Option<EnrollKey>, StoreError> {
        let row = sqlx::query("SELECT account_id, prefix, revoked_at FROM enroll_keys WHERE key_hash = ?")
            .bind(storable(key_hash))
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
            .bind(storable_opt(name))
            .bind(storable_json(&tags))
            .bind(to_micros(at))
            .bind(machine.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(EnrollOutcome::Enrolled)
    }

    async fn create_admin_token(&self, token_hash: &str, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_tokens (token_hash, prefix, created_at) VALUES (?, ?, ?)")
            .bind(storable(token_hash))
            .bind(storable(prefix))
            .bind(to_micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn admin_token_exists(&self, token_hash: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(storable(token_hash))
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
            "SELECT s.id, m.machine_id AS login, s.agent, s.scope, s.value, s.scenario, s.scenario_hash, s.scenario_version, \
             s.scenario_trust, s.message, s.alert_uuid, s.start_at, s.stop_at, s.received_at, s.origin_ip, s.origin_prefix, \
             s.origin_asn, s.as_number, s.as_name, s.country, s.extra \
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
        let rows = builder.build().fetch_all(&self.reader).await?;
        Ok(rows.iter().map(signal_from_row).collect::<Result<_, _>>()?)
    }

    async fn count_signals(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM signals").fetch_one(&self.reader).await?;
        Ok(count.max(0) as u64)
    }

    async fn signals_for_engine(&self, after: i64, limit: u32) -> Result<Vec<EngineSignal>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, machine_id, value, scenario, scenario_trust, origin_prefix, origin_asn, received_at \
             FROM signals WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
                    received_at: from_micros(row.try_get("received_at")?),
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
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EngineMachine {
                    key: MachineKey(row.try_get("id")?),
                    account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
                    level: row.try_get("level")?,
                    sensor: row.try_get("is_sensor")?,
                    created_at: from_micros(row.try_get("created_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn consensus_snapshot(&self) -> Result<ConsensusSnapshot, StoreError> {
        let mut tx = self.reader.begin().await?;
        let watermark: i64 =
            sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&mut *tx).await?;
        let machines = sqlx::query_as::<_, (i64, String)>("SELECT machine_id, state FROM engine_machines")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(k, s)| (MachineKey(k), s))
            .collect();
        let targets =
            sqlx::query_as::<_, (String, String)>("SELECT target, state FROM engine_targets").fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(ConsensusSnapshot { watermark, machines, targets })
    }

    async fn commit_consensus(&self, commit: &ConsensusCommit) -> Result<(), StoreError> {
        let at = to_micros(commit.at);
        let mut tx = self.writer.begin().await?;
        for (machine, state, trust) in &commit.machines {
            sqlx::query("INSERT INTO engine_machines (machine_id, state) VALUES (?, ?) ON CONFLICT (machine_id) DO UPDATE SET state = excluded.state")
                .bind(machine.0)
                .bind(state)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE machines SET trust = ? WHERE id = ?").bind(trust).bind(machine.0).execute(&mut *tx).await?;
        }
        for (target, state) in &commit.targets {
            match state {
                Some(state) => sqlx::query("INSERT INTO engine_targets (target, state) VALUES (?, ?) ON CONFLICT (target) DO UPDATE SET state = excluded.state")
                    .bind(target)
                    .bind(state)
                    .execute(&mut *tx)
                    .await?,
                None => sqlx::query("DELETE FROM engine_targets WHERE target = ?").bind(target).execute(&mut *tx).await?,
            };
        }
        apply_list_ops(&mut tx, &commit.list_ops, at).await?;
        for id in &commit.done_requests {
            sqlx::query("UPDATE consensus_requests SET done_at = ? WHERE id = ?")
                .bind(to_micros(commit.at))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE consensus_watermark SET signal_id = ? WHERE id = 1").bind(commit.watermark).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_entries(&self, list: &str) -> Result<Vec<ListEntry>, StoreError> {
        use futures::TryStreamExt;
        // Converted row by row as they arrive: a large list's raw rows are never all held at once.
        let mut rows = sqlx::query("SELECT * FROM blocklist_entries WHERE list = ? ORDER BY seq").bind(list).fetch(&self.reader);
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            entries.push(entry_from_row(&row)?);
        }
        Ok(entries)
    }

    async fn list_entry(&self, list: &str, value: &str) -> Result<Option<ListEntry>, StoreError> {
        let row = sqlx::query("SELECT * FROM blocklist_entries WHERE list = ? AND value = ?")
            .bind(list)
            .bind(value)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(entry_from_row).transpose()?)
    }

    async fn list_changes(&self, list: &str, after: i64, limit: u32) -> Result<Vec<ListChange>, StoreError> {
        let mut rows = sqlx::query("SELECT * FROM blocklist_changes WHERE list = ? AND seq > ? ORDER BY seq LIMIT ?")
            .bind(list)
            .bind(after)
            .bind(i64::from(limit))
            .fetch(&self.reader);
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
                        listed_at: from_micros(row.try_get("at")?),
                        expires_at: from_micros(row.try_get("expires_at")?),
                        seq: row.try_get("seq")?,
                    },
                    reason: row.try_get("reason")?,
                    at: from_micros(row.try_get("at")?),
                }
            });
        }
        Ok(changes)
    }

    async fn list_seq(&self, list: &str) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM blocklist_changes WHERE list = ?")
            .bind(list)
            .fetch_one(&self.reader)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn machine_stream_seq(&self, machine: MachineKey) -> Result<Option<i64>, StoreError> {
        let seq: Option<Option<i64>> = sqlx::query_scalar("SELECT stream_seq FROM machines WHERE id = ?")
            .bind(machine.0)
            .fetch_optional(&self.reader)
            .await?;
        Ok(seq.flatten())
    }

    async fn set_machine_stream_seq(&self, machine: MachineKey, seq: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE machines SET stream_seq = ? WHERE id = ?").bind(seq).bind(machine.0).execute(&self.writer).await?;
        Ok(())
    }

    async fn add_canary(&self, value: &str, note: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO canaries (value, note, created_at) VALUES (?, ?, ?)")
            .bind(value)
            .bind(note)
            .bind(to_micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn remove_canary(&self, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM canaries WHERE value = ?").bind(value).execute(&self.writer).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_canaries(&self) -> Result<Vec<Canary>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String, i64)>("SELECT value, note, created_at FROM canaries ORDER BY value")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|(value, note, at)| Canary { value, note, created_at: from_micros(at) }).collect())
    }

    async fn add_allowlist(
        &self,
        values: &[String],
        category: &str,
        source: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut added = 0;
        for value in values {
            added += sqlx::query(
                "INSERT INTO allowlist_entries (value, category, source, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(value)
            .bind(category)
            .bind(source)
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_allowlist(&self, value: Option<&str>, source: Option<&str>) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM allowlist_entries WHERE (? IS NULL OR value = ?) AND (? IS NULL OR source = ?)")
            .bind(value)
            .bind(value)
            .bind(source)
            .bind(source)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() as usize)
    }

    async fn list_allowlist(&self) -> Result<Vec<AllowlistEntry>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT value, category, source, created_at FROM allowlist_entries ORDER BY source, value",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(value, category, source, at)| AllowlistEntry { value, category, source, created_at: from_micros(at) })
            .collect())
    }

    async fn set_machine_sensor(&self, machine_id: &str, sensor: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE machines SET is_sensor = ? WHERE machine_id = ?")
            .bind(sensor)
            .bind(machine_id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("machine {machine_id:?}")));
        }
        Ok(())
    }

    async fn set_account_level(&self, name: &str, level: &str) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE accounts SET level = ? WHERE name = ?").bind(level).bind(name).execute(&self.writer).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {name:?}")));
        }
        Ok(())
    }

    async fn engine_machine(&self, machine: MachineKey) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT state FROM engine_machines WHERE machine_id = ?")
            .bind(machine.0)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn engine_target(&self, target: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT state FROM engine_targets WHERE target = ?")
            .bind(target)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn queue_consensus_request(&self, kind: &str, value: &str, at: OffsetDateTime) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("INSERT INTO consensus_requests (kind, value, created_at) VALUES (?, ?, ?) RETURNING id")
            .bind(kind)
            .bind(value)
            .bind(to_micros(at))
            .fetch_one(&self.writer)
            .await?)
    }

    async fn pending_consensus_requests(&self) -> Result<Vec<ConsensusRequest>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, String, String)>(
            "SELECT id, kind, value FROM consensus_requests WHERE done_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(id, kind, value)| ConsensusRequest { id, kind, value }).collect())
    }

    async fn acquire_leadership(&self) -> Result<Option<Leadership>, StoreError> {
        Ok(Some(Leadership::local()))
    }

    async fn machine_last_signal_at(&self, machine: MachineKey) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar("SELECT MAX(received_at) FROM signals WHERE machine_id = ?")
            .bind(machine.0)
            .fetch_one(&self.reader)
            .await?;
        Ok(at.map(from_micros))
    }

    async fn create_custom_list(&self, list: &CustomList) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO custom_lists (name, kind, description, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(storable(&list.name).as_ref())
        .bind(&list.kind)
        .bind(storable(&list.description).as_ref())
        .bind(to_micros(list.created_at))
        .execute(&self.writer)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("list {}", list.name)));
        }
        Ok(())
    }

    async fn custom_lists(&self) -> Result<Vec<CustomList>, StoreError> {
        let rows = sqlx::query("SELECT name, kind, description, created_at FROM custom_lists ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CustomList {
                    name: row.try_get("name")?,
                    kind: row.try_get("kind")?,
                    description: row.try_get("description")?,
                    created_at: from_micros(row.try_get("created_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn delete_custom_list(&self, name: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let values: Vec<String> =
            sqlx::query_scalar("SELECT value FROM blocklist_entries WHERE list = ?").bind(name).fetch_all(&mut *tx).await?;
        let ops: Vec<ListOp> = values
            .into_iter()
            .map(|value| ListOp::Remove { list: name.to_string(), value, reason: "list deleted".into() })
            .collect();
        apply_list_ops(&mut tx, &ops, to_micros(at)).await?;
        let deleted = sqlx::query("DELETE FROM custom_lists WHERE name = ?").bind(name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn apply_list_ops(&self, ops: &[ListOp], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        apply_list_ops(&mut tx, ops, to_micros(at)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_list_subscription(&self, machine_id: &str, list: &str, subscribed: bool) -> Result<(), StoreError> {
        let machine: Option<i64> = sqlx::query_scalar("SELECT id FROM machines WHERE machine_id = ?")
            .bind(machine_id)
            .fetch_optional(&self.writer)
            .await?;
        let machine = machine.ok_or_else(|| StoreError::NotFound(format!("machine {machine_id}")))?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM custom_lists WHERE name = ?").bind(list).fetch_optional(&self.writer).await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("list {list}")));
        }
        let statement = if subscribed {
            "INSERT INTO list_subscriptions (machine_id, list) VALUES (?, ?) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM list_subscriptions WHERE machine_id = ? AND list = ?"
        };
        sqlx::query(statement).bind(machine).bind(list).execute(&self.writer).await?;
        Ok(())
    }

    async fn machine_subscriptions(&self, machine: MachineKey) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT list FROM list_subscriptions WHERE machine_id = ? ORDER BY list")
            .bind(machine.0)
            .fetch_all(&self.reader)
            .await?)
    }

    async fn create_api_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (key_hash, prefix, account_id, created_at) VALUES (?, ?, ?, ?)")
            .bind(storable(key_hash))
            .bind(storable(prefix))
            .bind(account.0)
            .bind(to_micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{API_KEY_SELECT} WHERE k.key_hash = ?")))
            .bind(storable(key_hash))
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(api_key_from_row).transpose()?)
    }

    async fn list_api_keys(&self, account: Option<AccountKey>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{API_KEY_SELECT} WHERE (? IS NULL OR k.account_id = ?) ORDER BY k.id")))
            .bind(account.map(|a| a.0))
            .bind(account.map(|a| a.0))
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(api_key_from_row).collect::<Result<_, _>>()?)
    }

    async fn revoke_api_key(&self, prefix: &str, account: Option<AccountKey>, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL AND (? IS NULL OR account_id = ?)",
        )
        .bind(to_micros(at))
        .bind(storable(prefix))
        .bind(account.map(|a| a.0))
        .bind(account.map(|a| a.0))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE prefix = ?")
            .bind(to_micros(at))
            .bind(storable(prefix))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_account_tier(&self, name: &str, tier: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET tier = ? WHERE name = ?")
            .bind(storable(tier))
            .bind(storable(name))
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {name:?}")));
        }
        Ok(())
    }

    async fn prepare_signal_partitions(&self, _from: OffsetDateTime, _days_ahead: u32) -> Result<Vec<time::Date>, StoreError> {
        Ok(Vec::new())
    }

    async fn expire_signals(&self, before: OffsetDateTime, up_to_id: i64, batch: u32) -> Result<ExpireOutcome, StoreError> {
        let mut outcome = ExpireOutcome::default();
        let batch = i64::from(batch.max(1));
        // Short transactions, so signal inserts wait for one batch at a time, not the whole pass.
        loop {
            let done = sqlx::query(
                "DELETE FROM signals WHERE id IN \
                 (SELECT id FROM signals WHERE received_at < ? AND id <= ? ORDER BY id LIMIT ?)",
            )
            .bind(to_micros(before))
            .bind(up_to_id)
            .bind(batch)
            .execute(&self.writer)
            .await?;
            outcome.rows_deleted += done.rows_affected();
            if (done.rows_affected() as i64) < batch {
                return Ok(outcome);
            }
        }
    }

    async fn signal_partitions(&self) -> Result<Vec<time::Date>, StoreError> {
        Ok(Vec::new())
    }

    async fn signal_backlog(&self, after: i64, cap: u32) -> Result<SignalBacklog, StoreError> {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(received_at) FROM (SELECT received_at FROM signals WHERE id > ? ORDER BY id LIMIT ?)",
        )
        .bind(after)
        .bind(i64::from(cap))
        .fetch_one(&self.reader)
        .await?;
        Ok(SignalBacklog { count: count.max(0) as u64, oldest_received_at: oldest.map(from_micros) })
    }

    async fn list_enroll_keys(&self, account: AccountKey) -> Result<Vec<EnrollKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT prefix, created_at, revoked_at FROM enroll_keys WHERE account_id = ? ORDER BY id")
            .bind(account.0)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EnrollKeyRecord {
                    prefix: row.try_get("prefix")?,
                    created_at: from_micros(row.try_get("created_at")?),
                    revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_micros),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn revoke_enroll_key(&self, account: AccountKey, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE enroll_keys SET revoked_at = ? WHERE account_id = ? AND prefix = ? AND revoked_at IS NULL")
                .bind(to_micros(at))
                .bind(account.0)
                .bind(storable(prefix))
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn account_tier(&self, account: AccountKey) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT tier FROM accounts WHERE id = ?").bind(account.0).fetch_optional(&self.reader).await?)
    }

    async fn signal_counts_since(&self, since: OffsetDateTime) -> Result<Vec<(MachineKey, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT machine_id, COUNT(*) FROM signals WHERE received_at >= ? GROUP BY machine_id ORDER BY machine_id",
        )
        .bind(to_micros(since))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(machine, n)| (MachineKey(machine), n as u64)).collect())
    }

    async fn signals_per_day(&self, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT received_at / 86400000000 AS day, COUNT(*) FROM signals WHERE received_at >= ? GROUP BY day ORDER BY day",
        )
        .bind(to_micros(since))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(day, n)| DayCount { day, count: n as u64, other: 0 }).collect())
    }

    async fn list_changes_per_day(&self, list: &str, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT at / 86400000000 AS day, SUM(op = 'add'), SUM(op = 'remove') FROM blocklist_changes \
             WHERE list = ? AND at >= ? GROUP BY day ORDER BY day",
        )
        .bind(storable(list))
        .bind(to_micros(since))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(day, adds, removes)| DayCount { day, count: adds as u64, other: removes as u64 }).collect())
    }

    async fn consensus_watermark(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&self.reader).await?)
    }

    async fn add_lookup_usage(&self, usage: &[(AccountKey, i64, u64)]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for (account, day, lookups) in usage {
            sqlx::query(
                "INSERT INTO lookup_usage (account_id, day, lookups) VALUES (?, ?, ?) \
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
            sqlx::query_as("SELECT day, lookups FROM lookup_usage WHERE account_id = ? AND day >= ? ORDER BY day")
                .bind(account.0)
                .bind(since_day)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(day, n)| DayCount { day, count: n as u64, other: 0 }).collect())
    }

    async fn list_entries_page(&self, list: &str, after: &str, limit: u32) -> Result<Vec<ListEntry>, StoreError> {
        use futures::TryStreamExt;
        // The primary key (list, value) serves both the filter and the order.
        let mut rows = sqlx::query("SELECT * FROM blocklist_entries WHERE list = ? AND value > ? ORDER BY value LIMIT ?")
            .bind(list)
            .bind(after)
            .bind(i64::from(limit))
            .fetch(&self.reader);
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            entries.push(entry_from_row(&row)?);
        }
        Ok(entries)
    }
}

fn entry_from_row(row: &SqliteRow) -> Result<ListEntry, sqlx::Error> {
    Ok(ListEntry {
        list: row.try_get("list")?,
        value: row.try_get("value")?,
        scope: row.try_get("scope")?,
        scenario: row.try_get("scenario")?,
        remediation: row.try_get("remediation")?,
        rule: row.try_get("rule")?,
        listed_at: from_micros(row.try_get("listed_at")?),
        expires_at: from_micros(row.try_get("expires_at")?),
        seq: row.try_get("seq")?,
    })
}

/// Writes membership changes, each with the next seq, inside the caller's transaction.
async fn apply_list_ops(tx: &mut sqlx::Transaction<'_, Sqlite>, ops: &[ListOp], at: i64) -> Result<(), sqlx::Error> {
    for op in ops {
        match op {
            ListOp::Add(e) => {
                let seq: i64 = sqlx::query_scalar(
                    "INSERT INTO blocklist_changes (list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) \
                     VALUES (?, ?, 'add', ?, ?, ?, ?, NULL, ?, ?) RETURNING seq",
                )
                .bind(&e.list)
                .bind(&e.value)
                .bind(&e.scope)
                .bind(&e.scenario)
                .bind(&e.remediation)
                .bind(&e.rule)
                .bind(to_micros(e.expires_at))
                .bind(at)
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO blocklist_entries (list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (list, value) DO UPDATE SET scope = excluded.scope, \
                     scenario = excluded.scenario, remediation = excluded.remediation, rule = excluded.rule, \
                     expires_at = excluded.expires_at, seq = excluded.seq",
                )
                .bind(&e.list)
                .bind(&e.value)
                .bind(&e.scope)
                .bind(&e.scenario)
                .bind(&e.remediation)
                .bind(&e.rule)
                .bind(to_micros(e.listed_at))
                .bind(to_micros(e.expires_at))
                .bind(seq)
                .execute(&mut **tx)
                .await?;
            }
            ListOp::Remove { list, value, reason } => {
                let removed = sqlx::query(
                    "DELETE FROM blocklist_entries WHERE list = ? AND value = ? \
                     RETURNING scope, scenario, remediation, rule, expires_at",
                )
                .bind(list)
                .bind(value)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(row) = removed {
                    sqlx::query(
                        "INSERT INTO blocklist_changes (list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) \
                         VALUES (?, ?, 'remove', ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(list)
                    .bind(value)
                    .bind(row.try_get::<String, _>("scope")?)
                    .bind(row.try_get::<String, _>("scenario")?)
                    .bind(row.try_get::<String, _>("remediation")?)
                    .bind(row.try_get::<String, _>("rule")?)
                    .bind(reason)
                    .bind(row.try_get::<i64, _>("expires_at")?)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
    }
    Ok(())
}

const API_KEY_SELECT: &str = "SELECT k.prefix, k.account_id, a.name AS account_name, a.tier, k.created_at, k.revoked_at, \
     k.last_used_at FROM api_keys k JOIN accounts a ON a.id = k.account_id";

fn api_key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord, sqlx::Error> {
    Ok(ApiKeyRecord {
        prefix: row.try_get("prefix")?,
        account: AccountKey(row.try_get("account_id")?),
        account_name: row.try_get("account_name")?,
        tier: row.try_get("tier")?,
        created_at: from_micros(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_micros),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(from_micros),
    })
}
