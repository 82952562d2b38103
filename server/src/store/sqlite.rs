//! SQLite backend (the embedded default). WAL mode with `synchronous = FULL`, so a committed
//! signal survives a crash or power loss. Writes go through a single-connection pool (SQLite
//! allows one writer at a time; queueing in-process avoids busy retries), reads through a small
//! pool of their own. Concurrent signal inserts share transactions ([`group_commit`]). Times are
//! stored as integer microseconds.

mod accounts;
mod audit;
mod consensus;
mod feeds;
mod group_commit;
mod lists;
mod machines;
mod pools;
mod revocations;
mod signals;
mod stats;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;

use self::group_commit::{SignalRow, SignalWriter};
use super::accounts::{Account, ApiKeyRecord, EnrollKey, EnrollKeyRecord, EnrollOutcome};
use super::codec::{decoded, from_micros, storable, storable_json, storable_opt, to_micros};
use super::consensus::{
    ConsensusCommit, ConsensusRequest, ConsensusSnapshot, EngineMachine, EngineSignal, Leadership, RequestKind,
};
use super::database::Database;
use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};
use super::lists::{
    AllowlistEntry, Canary, ChangeOp, ChangeRow, CustomList, EntryRow, ListChange, ListEntry, ListOp, begin_entry_rows,
    numbered_adds, numbered_removals, op_runs, removal_targets,
};
use super::machines::{LoginRecord, Machine, NewMachine};
use super::signals::{Enrichment, ExpireOutcome, InsertOutcome, NewSignal, SignalBacklog, SignalFilter, StoredSignal};
use super::stats::DayCount;
use crate::config::Backend;
use crate::domain::level::Level;
use crate::domain::listing::{Remediation, Rule};
use crate::domain::net::{display_target, parse_target};
use crate::domain::signal::Scope;
use crate::engine::TargetState;
use crate::engine::trust::MachineState;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    signals: Arc<SignalWriter>,
}

impl SqliteStore {
    /// The database file a `sqlite:` URL names.
    pub fn file(url: &str) -> Result<std::path::PathBuf, StoreError> {
        Ok(SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf())
    }

    /// Opens (creating when missing) the database a `sqlite:` URL names. What it creates is
    /// private: the directory 0700, the file 0600 (SQLite gives its WAL and shared-memory files
    /// the database file's mode).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Multi-row inserts keep a statement journal; in memory it costs no file writes.
            .pragma("temp_store", "memory");
        create_private(Path::new(options.get_filename())).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
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

/// Creates the database file's directory (0700) and the file itself (0600) when missing; an
/// empty file is an empty SQLite database. Existing ones keep the modes their owner gave them.
fn create_private(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
        return Ok(());
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

const MACHINE_SELECT: &str = "SELECT m.id, m.machine_id, m.password_hash, m.account_id, a.name AS account_name, m.display_name, \
     m.is_sensor, m.created_by, m.trust, m.scenarios, m.origin_prefix, m.version, m.user_agent, m.created_at, m.last_login_at, m.disabled_at \
     FROM machines m LEFT JOIN accounts a ON a.id = m.account_id";

/// [`MACHINE_SELECT`] with each machine's signals counted, for listings.
const MACHINE_SELECT_COUNTED: &str = "SELECT m.id, m.machine_id, m.password_hash, m.account_id, a.name AS account_name, m.display_name, \
     m.is_sensor, m.created_by, m.trust, m.scenarios, m.origin_prefix, m.version, m.user_agent, m.created_at, m.last_login_at, m.disabled_at, \
     (SELECT count(*) FROM signals s WHERE s.machine_id = m.id) AS signal_count \
     FROM machines m LEFT JOIN accounts a ON a.id = m.account_id";

fn machine_from_row(row: &SqliteRow) -> Result<Machine, StoreError> {
    let scenarios: String = row.try_get("scenarios")?;
    let created_by: String = row.try_get("created_by")?;
    Ok(Machine {
        key: MachineKey(row.try_get("id")?),
        machine_id: row.try_get("machine_id")?,
        password_hash: row.try_get("password_hash")?,
        account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
        account_name: row.try_get("account_name")?,
        display_name: row.try_get("display_name")?,
        sensor: row.try_get("is_sensor")?,
        created_by: created_by.parse()?,
        trust: row.try_get("trust")?,
        scenarios: serde_json::from_str(&scenarios).unwrap_or_default(),
        origin_prefix: row.try_get("origin_prefix")?,
        version: row.try_get("version")?,
        user_agent: row.try_get("user_agent")?,
        // Only the listing's query counts them.
        signal_count: match row.try_get::<i64, _>("signal_count") {
            Ok(count) => Some(count.max(0) as u64),
            Err(sqlx::Error::ColumnNotFound(_)) => None,
            Err(error) => return Err(error.into()),
        },
        created_at: from_micros(row.try_get("created_at")?),
        last_login_at: row.try_get::<Option<i64>, _>("last_login_at")?.map(from_micros),
        disabled_at: row.try_get::<Option<i64>, _>("disabled_at")?.map(from_micros),
    })
}

fn account_from_row(row: &SqliteRow) -> Result<Account, StoreError> {
    Ok(Account {
        key: AccountKey(row.try_get("id")?),
        name: row.try_get("name")?,
        level: decoded(row, "level", Level::parse)?,
        machine_count: row.try_get::<i64, _>("machine_count")?.max(0) as u64,
        created_at: from_micros(row.try_get("created_at")?),
    })
}

fn signal_from_row(row: &SqliteRow) -> Result<StoredSignal, StoreError> {
    Ok(StoredSignal {
        id: row.try_get("id")?,
        machine_id: row.try_get("login")?,
        agent: row.try_get("agent")?,
        scope: decoded(row, "scope", Scope::from_stored)?,
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
        origin_ip: decoded(row, "origin_ip", |text| text.parse().ok())?,
        origin_prefix: decoded(row, "origin_prefix", |text| text.parse().ok())?,
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
     (SELECT count(*) FROM machines m WHERE m.account_id = a.id AND m.deleted_at IS NULL) AS machine_count FROM accounts a";

#[async_trait]
impl Database for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/sqlite").run(&self.writer).await?;
        Ok(())
    }

    async fn initialised(&self) -> Result<bool, StoreError> {
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_one(&self.reader)
                .await?;
        if tables == 0 {
            return Ok(false);
        }
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.reader).await?;
        Ok(applied > 0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

fn entry_from_row(row: &SqliteRow) -> Result<ListEntry, StoreError> {
    Ok(ListEntry {
        list: row.try_get("list")?,
        value: decoded(row, "value", parse_target)?,
        scope: decoded(row, "scope", Scope::from_stored)?,
        scenario: row.try_get("scenario")?,
        remediation: decoded(row, "remediation", Remediation::from_stored)?,
        rule: decoded(row, "rule", Rule::from_stored)?,
        listed_at: from_micros(row.try_get("listed_at")?),
        expires_at: from_micros(row.try_get("expires_at")?),
        seq: row.try_get("seq")?,
    })
}

/// Rows per multi-row statement. A change row binds 11 values, so a statement stays far below
/// SQLite's limit of 32,766 bound parameters, and every full chunk reuses one prepared statement.
const LIST_OPS_PER_STATEMENT: usize = 1000;

/// Writes membership changes, each with the next seq, inside the caller's transaction: a run of
/// additions as multi-row inserts of its changes and upserts of its entries (in key order), a run
/// of removals as multi-row deletes whose returned rows become its changes (see
/// [`op_runs`](super::lists::op_runs)). The seqs are numbered here, in op order, from the highest
/// one ever given: the writer connection is the only writer, and AUTOINCREMENT's own rule (never
/// reuse a seq, even of a deleted row) is kept by reading `sqlite_sequence` too.
async fn apply_list_ops(tx: &mut sqlx::Transaction<'_, Sqlite>, ops: &[ListOp], at: i64) -> Result<(), StoreError> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut next: i64 = sqlx::query_scalar(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'blocklist_changes'), 0), \
                    coalesce((SELECT max(seq) FROM blocklist_changes), 0)) + 1",
    )
    .fetch_one(&mut **tx)
    .await?;
    for run in op_runs(ops) {
        let mut gone = Vec::new();
        let changes = match run.first() {
            Some(ListOp::Add(_)) => numbered_adds(run, next),
            Some(ListOp::Remove { .. }) => {
                for targets in removal_targets(run).chunks(LIST_OPS_PER_STATEMENT) {
                    gone.extend(delete_entries(tx, targets).await?);
                }
                numbered_removals(run, &gone, next)
            }
            None => continue,
        };
        let pending = matches!(run.first(), Some(ListOp::Add(_))).then(|| begin_entry_rows(&changes));
        for chunk in changes.chunks(LIST_OPS_PER_STATEMENT) {
            insert_changes(tx, chunk, at).await?;
        }
        if let Some(pending) = pending {
            for chunk in pending.rows(&changes).await.chunks(LIST_OPS_PER_STATEMENT) {
                upsert_entries(tx, chunk).await?;
            }
        }
        next += changes.len() as i64;
    }
    Ok(())
}

/// Deletes entries by (list, stored text); returns those that existed, in any order.
async fn delete_entries(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    targets: &[(&str, String)],
) -> Result<Vec<ListEntry>, StoreError> {
    let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("DELETE FROM blocklist_entries WHERE (list, value) IN (");
    builder.push_values(targets, |mut row, (list, value)| {
        row.push_bind(*list).push_bind(value.as_str());
    });
    builder.push(") RETURNING *");
    let rows = builder.build().fetch_all(&mut **tx).await?;
    rows.iter().map(entry_from_row).collect()
}

/// Appends change rows to the log, with the seqs they carry.
async fn insert_changes(tx: &mut sqlx::Transaction<'_, Sqlite>, changes: &[ChangeRow<'_>], at: i64) -> Result<(), sqlx::Error> {
    let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO blocklist_changes (seq, list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) ",
    );
    builder.push_values(changes, |mut row, change| {
        let e = change.entry;
        row.push_bind(change.seq)
            .push_bind(&e.list)
            .push_bind(display_target(e.value))
            .push_bind(change.op.as_str())
            .push_bind(e.scope.as_str())
            .push_bind(&e.scenario)
            .push_bind(e.remediation.as_str())
            .push_bind(e.rule.as_str())
            .push_bind(change.reason)
            .push_bind(to_micros(e.expires_at))
            .push_bind(at);
    });
    builder.build().execute(&mut **tx).await?;
    Ok(())
}

/// Inserts or renews entries (a renewal keeps the stored `listed_at`).
async fn upsert_entries(tx: &mut sqlx::Transaction<'_, Sqlite>, rows: &[EntryRow<'_>]) -> Result<(), sqlx::Error> {
    let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO blocklist_entries (list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq) ",
    );
    builder.push_values(rows, |mut row, entry| {
        let e = entry.entry;
        row.push_bind(&e.list)
            .push_bind(entry.value.as_str())
            .push_bind(e.scope.as_str())
            .push_bind(&e.scenario)
            .push_bind(e.remediation.as_str())
            .push_bind(e.rule.as_str())
            .push_bind(to_micros(entry.listed_at))
            .push_bind(to_micros(e.expires_at))
            .push_bind(entry.seq);
    });
    builder.push(
        " ON CONFLICT (list, value) DO UPDATE SET scope = excluded.scope, scenario = excluded.scenario, \
         remediation = excluded.remediation, rule = excluded.rule, expires_at = excluded.expires_at, seq = excluded.seq",
    );
    builder.build().execute(&mut **tx).await?;
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
