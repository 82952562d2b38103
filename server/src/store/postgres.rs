//! PostgreSQL backend, for scale-out. Bulk signal inserts use one `INSERT … SELECT FROM UNNEST`
//! per batch (one plan, arrays bound as parameters) that skips redeliveries (`signals.rs` says
//! how); `COPY` would be faster still but cannot skip them.
//!
//! Signal ids are a consumer's watermark (`id > after`), but a sequence does not make them visible
//! in id order: concurrent inserts interleave their ids and commit in any order, and a reader that
//! saw id 200 would never see an id 150 committed after it. Inserts therefore hold the signal
//! writer lock *shared* from before their ids are drawn until their commit, so they run and commit
//! side by side (PostgreSQL flushes concurrent commits together), and a reader that pages by id
//! first passes a barrier: it takes the same lock exclusively for a moment, which waits out every
//! insert in flight, and reads the sequence. Every id up to that frontier is then final, and the
//! reader reads no further ([`PgStore::signal_frontier`]). Redelivery dedup needs inserts of one
//! machine to be one at a time: they also hold a lock of their machine.
//!
//! Every statement passes [`gate::Gate`], which fails fast for a moment after the server was
//! found unreachable instead of letting each caller wait out the pool's acquire timeout.

mod accounts;
mod audit;
mod consensus;
mod copy;
mod feeds;
mod gate;
mod lists;
mod machines;
mod pools;
mod revocations;
mod signals;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use super::accounts::{Account, ApiKeyRecord, EnrollKey, EnrollKeyRecord, EnrollOutcome};
use super::codec::{decoded, storable, storable_json, storable_opt};
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

/// Session advisory lock key of the consensus leader ("leader" in ASCII).
const LEADER_LOCK: i64 = 0x6c65_6164_6572;
/// Transaction lock taken by every writer of list changes, so seqs commit in their own order and
/// a reader that has seen seq N has seen every change below it.
const LIST_WRITE_LOCK: i64 = 0x6c69_7374_7772;

/// Advisory lock key of signal inserts ("palisade" in ASCII): held shared by every insert, and
/// exclusively by the id-frontier barrier and by whatever creates or drops a partition.
const SIGNAL_WRITER_LOCK: i64 = 0x7061_6c69_7361_6465;

/// First key of the two-key advisory locks that serialise one machine's signal inserts (the
/// second is the machine id's low 31 bits; the two-key form never collides with the one-key
/// locks above).
const SIGNAL_MACHINE_LOCK: i32 = 0x7369_676e;

/// How long before its `start_at` the original of a redelivery can have been received, at
/// most: the largest clock skew the configuration accepts (`Config::validate`). A redelivery
/// carries its original's `start_at` (part of the dedup key), and the original was accepted
/// only if its `start_at` was no later than its receipt plus the skew. (The store does not rely
/// on `stop_at`: ingest bounds it as well, other writers need not.) The store narrows it to the
/// configured skew (`set_redelivery_window`); the probe's per-row condition keeps this bound.
const REDELIVERY_MAX: time::Duration = time::Duration::days(7);

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
    /// Every statement passes the gate, which fails fast while the server is known to be down.
    pool: gate::Gate,
    /// Days whose signal partition exists, as this process last read them all (under the writer
    /// lock held alone: when it made a partition, at each maintenance pass) less those it dropped.
    /// An insert into them needs no partition check and shares the writer lock, and its
    /// redelivery probe reads those of the days the batch can repeat. Partitions of past days are
    /// dropped, but signals are received now, never on a past day; a name another process dropped
    /// fails the insert, which then reads them all again.
    partitions: Arc<std::sync::Mutex<std::collections::BTreeSet<time::Date>>>,
    /// Seconds before a signal's `start_at` it can have been received
    /// ([`SignalStore::set_redelivery_window`]).
    redelivery_secs: Arc<std::sync::atomic::AtomicI64>,
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        Ok(PgStore {
            pool: gate::Gate::new(pool),
            partitions: Arc::default(),
            redelivery_secs: Arc::new(std::sync::atomic::AtomicI64::new(REDELIVERY_MAX.whole_seconds())),
        })
    }

    /// The pool, for tests and benchmarks that need raw access.
    pub fn pool(&self) -> &PgPool {
        self.pool.pool()
    }
}

const MACHINE_SELECT: &str = "SELECT m.id, m.machine_id, m.password_hash, m.account_id, a.name AS account_name, m.display_name, \
     m.is_sensor, m.created_by, m.trust, m.scenarios::text AS scenarios, m.origin_prefix, m.version, m.user_agent, m.created_at, m.last_login_at, m.disabled_at \
     FROM machines m LEFT JOIN accounts a ON a.id = m.account_id";

/// [`MACHINE_SELECT`] with each machine's signals counted, for listings.
const MACHINE_SELECT_COUNTED: &str = "SELECT m.id, m.machine_id, m.password_hash, m.account_id, a.name AS account_name, m.display_name, \
     m.is_sensor, m.created_by, m.trust, m.scenarios::text AS scenarios, m.origin_prefix, m.version, m.user_agent, m.created_at, m.last_login_at, m.disabled_at, \
     (SELECT count(*) FROM signals s WHERE s.machine_id = m.id) AS signal_count \
     FROM machines m LEFT JOIN accounts a ON a.id = m.account_id";

const ACCOUNT_SELECT: &str = "SELECT a.id, a.name, a.level, a.created_at, \
     (SELECT count(*) FROM machines m WHERE m.account_id = a.id AND m.deleted_at IS NULL) AS machine_count FROM accounts a";

fn machine_from_row(row: &PgRow) -> Result<Machine, StoreError> {
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
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

fn account_from_row(row: &PgRow) -> Result<Account, StoreError> {
    Ok(Account {
        key: AccountKey(row.try_get("id")?),
        name: row.try_get("name")?,
        level: decoded(row, "level", Level::parse)?,
        machine_count: row.try_get::<i64, _>("machine_count")?.max(0) as u64,
        created_at: row.try_get("created_at")?,
    })
}

fn signal_from_row(row: &PgRow) -> Result<StoredSignal, StoreError> {
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
        start_at: row.try_get("start_at")?,
        stop_at: row.try_get("stop_at")?,
        received_at: row.try_get("received_at")?,
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

#[async_trait]
impl Database for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/postgres").run(self.pool.pool()).await?;
        Ok(())
    }

    async fn initialised(&self) -> Result<bool, StoreError> {
        // Two statements: PostgreSQL resolves every table a statement names before running it.
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(self.pool.pool()).await?;
        if !exists {
            return Ok(false);
        }
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(self.pool.pool()).await?;
        Ok(applied > 0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The probe reopens the gate when the server answers, and shuts it when it does not.
        self.pool.probe().await?;
        Ok(())
    }
}

fn entry_from_row(row: &PgRow) -> Result<ListEntry, StoreError> {
    Ok(ListEntry {
        list: row.try_get("list")?,
        value: decoded(row, "value", parse_target)?,
        scope: decoded(row, "scope", Scope::from_stored)?,
        scenario: row.try_get("scenario")?,
        remediation: decoded(row, "remediation", Remediation::from_stored)?,
        rule: decoded(row, "rule", Rule::from_stored)?,
        listed_at: row.try_get("listed_at")?,
        expires_at: row.try_get("expires_at")?,
        seq: row.try_get("seq")?,
    })
}

/// Rows per statement: arrays of this many values bound to one `UNNEST` keep each statement's
/// parameters a few hundred KiB while the per-statement round trip stays negligible.
const LIST_OPS_PER_STATEMENT: usize = 2000;

/// The sequence behind `blocklist_changes.seq`.
const CHANGES_SEQUENCE: &str = "pg_get_serial_sequence('blocklist_changes', 'seq')";

/// Writes membership changes, each with the next seq, inside the caller's transaction: a run of
/// additions as `UNNEST` inserts of its changes and upserts of its entries (in key order; `COPY`
/// for a large run, see [`copy`]), a run
/// of removals as deletes whose returned rows become its changes (see
/// [`op_runs`](super::lists::op_runs)). Every writer of list changes holds `LIST_WRITE_LOCK`, so
/// the seqs are numbered here, in op order, from the sequence's next value, and the sequence is
/// moved past the last one used before the transaction commits (a failed write leaves a gap, as
/// a rolled-back `nextval` always did).
async fn apply_list_ops(tx: &mut sqlx::Transaction<'_, Postgres>, ops: &[ListOp], at: OffsetDateTime) -> Result<(), StoreError> {
    if ops.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LIST_WRITE_LOCK).execute(&mut **tx).await?;
    let mut next: i64 =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT nextval({CHANGES_SEQUENCE})"))).fetch_one(&mut **tx).await?;
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
        if changes.len() >= copy::COPY_AT_LEAST {
            copy::copy_changes(tx, &changes, at).await?;
        } else {
            for chunk in changes.chunks(LIST_OPS_PER_STATEMENT) {
                insert_changes(tx, chunk, at).await?;
            }
        }
        if let Some(pending) = pending {
            let rows = pending.rows(&changes).await;
            if rows.len() >= copy::COPY_AT_LEAST {
                copy::copy_entries(tx, &rows).await?;
            } else {
                for chunk in rows.chunks(LIST_OPS_PER_STATEMENT) {
                    upsert_entries(tx, chunk).await?;
                }
            }
        }
        next += changes.len() as i64;
    }
    // `false`: the next `nextval` returns `next` itself, the first seq not used.
    sqlx::query(AssertSqlSafe(format!("SELECT setval({CHANGES_SEQUENCE}, $1, false)"))).bind(next).execute(&mut **tx).await?;
    Ok(())
}

/// Deletes entries by (list, stored text); returns those that existed, in any order.
async fn delete_entries(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    targets: &[(&str, String)],
) -> Result<Vec<ListEntry>, StoreError> {
    let (lists, values): (Vec<&str>, Vec<&str>) = targets.iter().map(|(list, value)| (*list, value.as_str())).unzip();
    let rows = sqlx::query(
        "DELETE FROM blocklist_entries e USING UNNEST($1::text[], $2::text[]) AS r(list, value) \
         WHERE e.list = r.list AND e.value = r.value RETURNING e.*",
    )
    .bind(&lists)
    .bind(&values)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(entry_from_row).collect()
}

/// Appends change rows to the log, with the seqs they carry.
async fn insert_changes(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    changes: &[ChangeRow<'_>],
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let n = changes.len();
    let (mut seq, mut list, mut value, mut op, mut scope) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut scenario, mut remediation, mut rule, mut reason, mut expires_at) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for change in changes {
        let e = change.entry;
        seq.push(change.seq);
        list.push(e.list.as_str());
        value.push(display_target(e.value));
        op.push(change.op.as_str());
        scope.push(e.scope.as_str());
        scenario.push(e.scenario.as_str());
        remediation.push(e.remediation.as_str());
        rule.push(e.rule.as_str());
        reason.push(change.reason);
        expires_at.push(e.expires_at);
    }
    sqlx::query(
        "INSERT INTO blocklist_changes (seq, list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) \
         SELECT s, l, v, o, sc, sn, rm, ru, re, ex, $11 \
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                     $9::text[], $10::timestamptz[]) AS t(s, l, v, o, sc, sn, rm, ru, re, ex)",
    )
    .bind(&seq)
    .bind(&list)
    .bind(&value)
    .bind(&op)
    .bind(&scope)
    .bind(&scenario)
    .bind(&remediation)
    .bind(&rule)
    .bind(&reason)
    .bind(&expires_at)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts or renews entries (a renewal keeps the stored `listed_at`).
async fn upsert_entries(tx: &mut sqlx::Transaction<'_, Postgres>, rows: &[EntryRow<'_>]) -> Result<(), sqlx::Error> {
    let n = rows.len();
    let (mut list, mut value, mut scope, mut scenario, mut remediation) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut rule, mut listed_at, mut expires_at, mut seq) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for row in rows {
        let e = row.entry;
        list.push(e.list.as_str());
        value.push(row.value.as_str());
        scope.push(e.scope.as_str());
        scenario.push(e.scenario.as_str());
        remediation.push(e.remediation.as_str());
        rule.push(e.rule.as_str());
        listed_at.push(row.listed_at);
        expires_at.push(e.expires_at);
        seq.push(row.seq);
    }
    sqlx::query(
        "INSERT INTO blocklist_entries (list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                              $7::timestamptz[], $8::timestamptz[], $9::bigint[]) \
         ON CONFLICT (list, value) DO UPDATE SET scope = excluded.scope, scenario = excluded.scenario, \
         remediation = excluded.remediation, rule = excluded.rule, expires_at = excluded.expires_at, seq = excluded.seq",
    )
    .bind(&list)
    .bind(&value)
    .bind(&scope)
    .bind(&scenario)
    .bind(&remediation)
    .bind(&rule)
    .bind(&listed_at)
    .bind(&expires_at)
    .bind(&seq)
    .execute(&mut **tx)
    .await?;
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
