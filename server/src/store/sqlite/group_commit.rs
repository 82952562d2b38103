//! Group commit of signal inserts. SQLite has one writer and, with `synchronous = FULL`, every
//! commit writes each page it touched to the WAL and waits for an fsync. Signals land on
//! scattered pages of the dedup index, so committing each request on its own rewrites most of
//! that index again and again. Here concurrent `insert_signals` calls share one transaction: the
//! first caller to find the writer free takes every batch waiting at that moment, and each caller
//! still gets its own outcome only after the shared commit.
//!
//! When the shared transaction fails (one batch's statement error fails it whole), every batch
//! is written again in a transaction of its own, so each caller gets its own outcome or error:
//! the error path costs a second write, and the common path no savepoint round trips.
//! The write runs in a spawned task: a caller that goes away (a client disconnecting) cannot
//! abandon the other callers' batches half-way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::oneshot;

use crate::store::codec::{storable, storable_json, storable_opt, to_micros};
use crate::store::error::StoreError;
use crate::store::signals::{InsertOutcome, NewSignal};

/// Columns of one signal row, in insert order.
const SIGNAL_COLUMNS: usize = 21;
/// SQLite allows 32766 bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 32766 / SIGNAL_COLUMNS;

/// Most rows one shared transaction takes (a single larger batch still goes alone).
const MAX_GROUP_ROWS: usize = 20_000;

/// One signal as bound to the insert, with every derived column already rendered, so the
/// single writer spends its time writing rather than formatting.
pub(super) struct SignalRow {
    machine: i64,
    dedup_key: Arc<str>,
    scope: &'static str,
    value: Arc<str>,
    scenario: Arc<str>,
    scenario_hash: Arc<str>,
    scenario_version: Arc<str>,
    scenario_trust: Arc<str>,
    message: Arc<str>,
    agent: Option<Arc<str>>,
    alert_uuid: Option<Arc<str>>,
    start_at: i64,
    stop_at: i64,
    received_at: i64,
    origin_ip: Arc<str>,
    origin_prefix: Arc<str>,
    origin_asn: Option<i64>,
    as_number: Option<i64>,
    as_name: Option<Arc<str>>,
    country: Option<Arc<str>>,
    extra: Arc<str>,
}

impl SignalRow {
    /// The rows of a batch. A text equal to the previous row's is shared, not copied again: a
    /// batch's signals mostly come from one agent and one origin, under a few scenarios.
    pub(super) fn batch(signals: &[NewSignal]) -> Vec<SignalRow> {
        let mut rows: Vec<SignalRow> = Vec::with_capacity(signals.len());
        for (i, signal) in signals.iter().enumerate() {
            let previous = i.checked_sub(1).map(|before| &signals[before]).zip(rows.last());
            let row = SignalRow::new(signal, previous);
            rows.push(row);
        }
        rows
    }

    fn new(signal: &NewSignal, previous: Option<(&NewSignal, &SignalRow)>) -> Self {
        let report = &signal.report;
        let prior = previous.map(|(_, row)| row);
        let same_origin = previous.filter(|(before, _)| before.origin == signal.origin).map(|(_, row)| row);
        SignalRow {
            machine: signal.machine.0,
            dedup_key: report.dedup_key.as_str().into(),
            scope: report.scope.as_str(),
            value: report.value_text().into(),
            scenario: reuse(&storable(&report.scenario), prior.map(|row| &row.scenario)),
            scenario_hash: reuse(&storable(&report.scenario_hash), prior.map(|row| &row.scenario_hash)),
            scenario_version: reuse(&storable(&report.scenario_version), prior.map(|row| &row.scenario_version)),
            scenario_trust: reuse(&storable(&report.scenario_trust), prior.map(|row| &row.scenario_trust)),
            message: storable(&report.message).into(),
            agent: storable_opt(report.agent.as_deref()).map(|agent| reuse(&agent, prior.and_then(|row| row.agent.as_ref()))),
            alert_uuid: storable_opt(report.alert_uuid.as_deref()).map(Into::into),
            start_at: to_micros(report.start_at),
            stop_at: to_micros(report.stop_at),
            received_at: to_micros(signal.received_at),
            origin_ip: same_origin.map_or_else(|| signal.origin.ip.to_string().into(), |row| row.origin_ip.clone()),
            origin_prefix: same_origin.map_or_else(|| signal.origin.prefix.to_string().into(), |row| row.origin_prefix.clone()),
            origin_asn: signal.origin.asn.map(i64::from),
            as_number: signal.enrichment.as_number.map(i64::from),
            as_name: storable_opt(signal.enrichment.as_name.as_deref()).map(Into::into),
            country: storable_opt(signal.enrichment.country.as_deref()).map(Into::into),
            extra: storable_json(&report.extra).into(),
        }
    }
}

/// `kept` when it holds `text`, else a new copy of `text`.
fn reuse(text: &str, kept: Option<&Arc<str>>) -> Arc<str> {
    match kept {
        Some(kept) if **kept == *text => kept.clone(),
        _ => text.into(),
    }
}

/// A batch waiting to be written, and the caller waiting for its outcome.
struct Pending {
    rows: Vec<SignalRow>,
    done: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// Batches waiting for the writer, and the right to write them.
#[derive(Default)]
pub(super) struct SignalWriter {
    pending: Mutex<VecDeque<Pending>>,
    /// Held for the whole of a shared transaction, by the task that writes it.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SignalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalWriter").field("pending", &self.queue().len()).finish_non_exhaustive()
    }
}

impl SignalWriter {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        // The queue holds plain values; a panic elsewhere cannot leave it half-written.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `rows` in one transaction shared with whatever other batches are waiting; returns
    /// after that transaction committed. Redeliveries (same machine, same dedup key) are skipped.
    pub(super) async fn insert(&self, pool: &SqlitePool, rows: Vec<SignalRow>) -> Result<InsertOutcome, StoreError> {
        let (done, mut outcome) = oneshot::channel();
        self.queue().push_back(Pending { rows, done });
        loop {
            let writing = self.writing.clone().lock_owned().await;
            // A previous writer may have taken this batch along with its own.
            match outcome.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let group = self.take_group();
            let pool = pool.clone();
            let write = tokio::spawn(async move {
                write_group(&pool, group).await;
                drop(writing);
            });
            // Our batch is in this group unless the group filled up before reaching it; then the
            // loop makes us the next writer.
            if write.await.is_err() {
                return Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed));
            }
            match outcome.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
    }

    /// The oldest waiting batches, up to [`MAX_GROUP_ROWS`] rows (at least one batch).
    fn take_group(&self) -> Vec<Pending> {
        let mut queue = self.queue();
        let mut group = Vec::new();
        let mut rows = 0;
        while let Some(next) = queue.front() {
            if !group.is_empty() && rows + next.rows.len() > MAX_GROUP_ROWS {
                break;
            }
            rows += next.rows.len();
            group.extend(queue.pop_front());
        }
        group
    }

    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.queue().len()
    }
}

/// Writes a group and tells each caller its outcome.
async fn write_group(pool: &SqlitePool, group: Vec<Pending>) {
    match shared_transaction(pool, &group).await {
        Ok(results) => {
            for (pending, inserted) in group.into_iter().zip(results) {
                let total = pending.rows.len();
                drop(pending.done.send(Ok(InsertOutcome { inserted, duplicates: total - inserted })));
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some(pending) = group.into_iter().next() {
                drop(pending.done.send(Err(error)));
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, batches = group.len(), "shared signal transaction failed; writing each batch alone");
            for pending in group {
                let total = pending.rows.len();
                let result = own_transaction(pool, &pending.rows).await;
                drop(pending.done.send(result.map(|inserted| InsertOutcome { inserted, duplicates: total - inserted })));
            }
        }
    }
}

/// Every batch of the group in one transaction; any error fails it whole.
async fn shared_transaction(pool: &SqlitePool, group: &[Pending]) -> Result<Vec<usize>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(group.len());
    for pending in group {
        results.push(insert_rows(&mut tx, &pending.rows).await?);
    }
    tx.commit().await?;
    Ok(results)
}

async fn own_transaction(pool: &SqlitePool, rows: &[SignalRow]) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    let inserted = insert_rows(&mut tx, rows).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Inserts rows with as few statements as the parameter limit allows; returns how many were new.
async fn insert_rows(conn: &mut SqliteConnection, rows: &[SignalRow]) -> Result<usize, StoreError> {
    let mut inserted = 0;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO signals (machine_id, dedup_key, scope, value, scenario, scenario_hash, scenario_version, \
             scenario_trust, message, agent, alert_uuid, start_at, stop_at, received_at, origin_ip, origin_prefix, \
             origin_asn, as_number, as_name, country, extra) ",
        );
        // Texts are bound as shared pointers: sqlx copies a bound `&String` into its arguments.
        builder.push_values(chunk, |mut bind, row| {
            bind.push_bind(row.machine)
                .push_bind(row.dedup_key.clone())
                .push_bind(row.scope)
                .push_bind(row.value.clone())
                .push_bind(row.scenario.clone())
                .push_bind(row.scenario_hash.clone())
                .push_bind(row.scenario_version.clone())
                .push_bind(row.scenario_trust.clone())
                .push_bind(row.message.clone())
                .push_bind(row.agent.clone())
                .push_bind(row.alert_uuid.clone())
                .push_bind(row.start_at)
                .push_bind(row.stop_at)
                .push_bind(row.received_at)
                .push_bind(row.origin_ip.clone())
                .push_bind(row.origin_prefix.clone())
                .push_bind(row.origin_asn)
                .push_bind(row.as_number)
                .push_bind(row.as_name.clone())
                .push_bind(row.country.clone())
                // json() refuses what is not JSON, as PostgreSQL's jsonb does.
                .push("json(")
                .push_bind_unseparated(row.extra.clone())
                .push_unseparated(")");
        });
        builder.push(" ON CONFLICT (machine_id, dedup_key) DO NOTHING");
        inserted += builder.build().execute(&mut *conn).await?.rows_affected() as usize;
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;
    use time::OffsetDateTime;

    use super::SignalRow;
    use crate::domain::signal::{SignalRules, parse_item};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{
        CreatedBy, Database, Enrichment, InsertOutcome, MachineKey, MachineStore, NewMachine, NewSignal, Origin, SignalStore,
    };

    /// Signals about `ips`; the same address gives the same dedup key.
    fn signals(machine: MachineKey, ips: &[&str]) -> Vec<NewSignal> {
        let now = time::macros::datetime!(2026-11-25 12:05 UTC);
        let rules = SignalRules {
            now,
            max_age: time::Duration::days(60),
            max_clock_skew: time::Duration::days(1),
            min_v4_prefix: 16,
            min_v6_prefix: 32,
        };
        let at = "2026-11-25T12:00:00Z";
        ips.iter()
            .map(|ip| {
                let item = json!({
                    "scenario": "crowdsecurity/ssh-bf", "source": {"scope": "Ip", "value": ip}, "start_at": at, "stop_at": at
                });
                NewSignal {
                    machine,
                    report: parse_item(&item.to_string(), &rules).unwrap(),
                    origin: Origin { ip: IpAddr::V4(Ipv4Addr::LOCALHOST), prefix: "127.0.0.0/24".parse().unwrap(), asn: None },
                    enrichment: Enrichment::default(),
                    received_at: now,
                }
            })
            .collect()
    }

    /// Every column of a row, as text.
    fn columns(row: &SignalRow) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {} {:?} {:?} {} {} {} {} {} {:?} {:?} {:?} {:?} {}",
            row.machine,
            row.dedup_key,
            row.scope,
            row.value,
            row.scenario,
            row.scenario_hash,
            row.scenario_version,
            row.scenario_trust,
            row.message,
            row.agent,
            row.alert_uuid,
            row.start_at,
            row.stop_at,
            row.received_at,
            row.origin_ip,
            row.origin_prefix,
            row.origin_asn,
            row.as_number,
            row.as_name,
            row.country,
            row.extra
        )
    }

    #[test]
    fn a_batch_shares_equal_texts_and_keeps_every_other_value_its_own() {
        let mut batch = signals(MachineKey(1), &["45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4"]);
        batch[1].report.scenario = "crowdsecurity/ssh-slow-bf".into();
        batch[1].report.scenario_hash = "h".into();
        batch[1].report.scenario_version = "0.2".into();
        batch[1].report.scenario_trust = "tainted".into();
        batch[1].report.agent = Some("other".into());
        batch[1].origin = Origin { ip: "45.1.1.1".parse().unwrap(), prefix: "45.1.1.0/24".parse().unwrap(), asn: Some(7) };
        batch[2].report.agent = Some("other".into());
        batch[3].report.agent = None;
        let rows = SignalRow::batch(&batch);
        for (signal, row) in batch.iter().zip(&rows) {
            let alone = SignalRow::batch(std::slice::from_ref(signal));
            assert_eq!(columns(row), columns(&alone[0]));
        }
        assert!(Arc::ptr_eq(&rows[2].scenario_hash, &rows[3].scenario_hash), "an equal text is shared");
        assert!(Arc::ptr_eq(&rows[2].origin_ip, &rows[3].origin_ip), "an equal origin is shared");
    }

    #[tokio::test]
    async fn waiting_batches_share_one_transaction_and_each_gets_its_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("p.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        let mut machines = Vec::new();
        for name in ["a", "b"] {
            let machine = NewMachine {
                machine_id: name.into(),
                password_hash: "x".into(),
                sensor: false,
                created_by: CreatedBy::Register,
                created_at: OffsetDateTime::now_utc(),
            };
            machines.push(store.create_machine(&machine).await.unwrap());
        }
        let store = Arc::new(store);
        let insert = |batch: Vec<NewSignal>| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_signals(&batch).await })
        };

        // While the writer connection is busy the first batch waits for it alone, and the
        // batches arriving meanwhile queue up behind it.
        let busy = store.writer.acquire().await.unwrap();
        let first = insert(signals(machines[0], &["45.0.0.1", "45.0.0.2", "45.0.0.3"]));
        while store.signals.waiting() > 0 || store.signals.writing.try_lock().is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let redelivery = insert(signals(machines[0], &["45.0.0.1", "45.0.0.2", "45.0.0.4"]));
        let unknown_machine = insert(signals(MachineKey(999), &["45.0.0.5"]));
        let other = insert(signals(machines[1], &["45.0.0.1", "45.0.0.6"]));
        let same_group_redelivery = insert(signals(machines[1], &["45.0.0.1", "45.0.0.6"]));
        while store.signals.waiting() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(busy);

        assert_eq!(first.await.unwrap().unwrap(), InsertOutcome { inserted: 3, duplicates: 0 });
        assert_eq!(redelivery.await.unwrap().unwrap(), InsertOutcome { inserted: 1, duplicates: 2 });
        assert!(unknown_machine.await.unwrap().is_err(), "a batch for an unknown machine was stored");
        assert_eq!(other.await.unwrap().unwrap(), InsertOutcome { inserted: 2, duplicates: 0 });
        assert_eq!(same_group_redelivery.await.unwrap().unwrap(), InsertOutcome { inserted: 0, duplicates: 2 });
        assert_eq!(store.signals.waiting(), 0);
        assert_eq!(store.count_signals().await.unwrap(), 6);
    }
}
