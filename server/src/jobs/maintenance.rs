//! Maintenance: keeps the signal partitions ahead of time (PostgreSQL), expires raw signals
//! past `retention.signals_days`, never one the consensus worker has not processed (the caller
//! passes its watermark), metrics documents past `retention.metrics_days`, and revocations
//! older than any credential they refuse. Run by the consensus leader, so exactly one replica does it; aggregates
//! (engine state, trust, listings) are never touched.

use anyhow::Context;
use time::OffsetDateTime;

use crate::config::RetentionConfig;
use crate::store::Store;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceOutcome {
    /// Partitions created ahead (PostgreSQL).
    pub partitions_created: Vec<time::Date>,
    /// Partitions dropped by retention (PostgreSQL).
    pub partitions_dropped: Vec<time::Date>,
    /// Rows deleted by retention (SQLite).
    pub rows_deleted: u64,
    /// Metrics documents deleted by retention.
    pub metrics_deleted: u64,
    /// Revocations deleted: older than [`REVOCATIONS_KEPT`].
    pub revocations_deleted: u64,
}

/// How long a revocation is kept: longer than any credential it can refuse lives (machine
/// tokens at most 7 days, console sessions 8 hours), so deleting it changes nothing.
pub const REVOCATIONS_KEPT: time::Duration = time::Duration::days(8);

/// The receive time before which raw signals expire, or `None` when they are kept forever.
pub fn expiry_cutoff(config: &RetentionConfig, now: OffsetDateTime) -> Option<OffsetDateTime> {
    (config.signals_days > 0).then(|| now - time::Duration::days(i64::from(config.signals_days)))
}

/// One pass: create the partitions of today and the next `partitions_ahead_days` days, then
/// expire signals received before the cutoff whose id is at most `watermark`.
pub async fn run_once(
    store: &dyn Store,
    config: &RetentionConfig,
    watermark: i64,
    now: OffsetDateTime,
) -> anyhow::Result<MaintenanceOutcome> {
    let partitions_created = store
        .prepare_signal_partitions(now, config.partitions_ahead_days)
        .await
        .context("cannot create signal partitions ahead")?;
    let mut outcome = MaintenanceOutcome { partitions_created, ..MaintenanceOutcome::default() };
    if let Some(cutoff) = expiry_cutoff(config, now) {
        let expired = store.expire_signals(cutoff, watermark, config.delete_batch).await.context("cannot expire old signals")?;
        outcome.partitions_dropped = expired.partitions_dropped;
        outcome.rows_deleted = expired.rows_deleted;
    }
    if config.metrics_days > 0 {
        let cutoff = now - time::Duration::days(i64::from(config.metrics_days));
        outcome.metrics_deleted =
            store.expire_metrics(cutoff, config.delete_batch).await.context("cannot expire old metrics documents")?;
    }
    outcome.revocations_deleted =
        store.expire_revocations(now - REVOCATIONS_KEPT).await.context("cannot expire old revocations")?;
    metrics::counter!("palisade_retention_metrics_deleted_total").increment(outcome.metrics_deleted);
    metrics::counter!("palisade_retention_partitions_dropped_total").increment(outcome.partitions_dropped.len() as u64);
    metrics::counter!("palisade_retention_signals_deleted_total").increment(outcome.rows_deleted);
    if !outcome.partitions_created.is_empty()
        || !outcome.partitions_dropped.is_empty()
        || outcome.rows_deleted > 0
        || outcome.metrics_deleted > 0
        || outcome.revocations_deleted > 0
    {
        tracing::info!(
            partitions.created = outcome.partitions_created.len(),
            partitions.dropped = outcome.partitions_dropped.len(),
            signals.deleted = outcome.rows_deleted,
            metrics.deleted = outcome.metrics_deleted,
            revocations.deleted = outcome.revocations_deleted,
            "maintenance pass"
        );
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use serde_json::json;
    use time::Duration;

    use super::*;
    use crate::config::Backend;
    use crate::domain::signal::{SignalRules, parse_item};
    use crate::store::{CreatedBy, Enrichment, MachineKey, NewMachine, NewSignal, Origin, SignalFilter};
    use crate::testing::TestDb;

    fn signal(machine: MachineKey, ip: &str, received_at: OffsetDateTime) -> NewSignal {
        let stamp = received_at.format(&time::format_description::well_known::Rfc3339).expect("formats");
        let raw = json!({"scenario": "crowdsecurity/ssh-bf", "scenario_trust": "certified",
            "source": {"scope": "Ip", "value": ip}, "start_at": stamp, "stop_at": stamp});
        let rules = SignalRules {
            now: received_at,
            max_age: Duration::days(60),
            max_clock_skew: Duration::hours(1),
            min_v4_prefix: 16,
            min_v6_prefix: 32,
        };
        let origin: IpAddr = "81.2.69.1".parse().expect("origin");
        NewSignal {
            machine,
            report: parse_item(&raw.to_string(), &rules).expect("valid"),
            origin: Origin { ip: origin, prefix: crate::domain::net::origin_prefix(origin), asn: None },
            enrichment: Enrichment::default(),
            received_at,
        }
    }

    /// A migrated store on `db` with one operator-made machine.
    async fn store_with_machine(db: &TestDb) -> (std::sync::Arc<dyn crate::store::Store>, crate::store::MachineKey) {
        let store = crate::store::open(&db.url).await.expect("open");
        store.migrate().await.expect("migrate");
        let machine = NewMachine {
            machine_id: "watcher".into(),
            password_hash: "x".into(),
            sensor: false,
            created_by: CreatedBy::Operator,
            created_at: OffsetDateTime::now_utc(),
        };
        let key = store.create_machine(&machine).await.expect("machine");
        (store, key)
    }

    #[tokio::test]
    async fn a_pass_prepares_days_ahead_and_expires_only_old_processed_signals() {
        for db in TestDb::all().await {
            let label = db.label();
            let (store, key) = store_with_machine(&db).await;
            let now = OffsetDateTime::now_utc();
            let old = now - Duration::days(100);
            store.insert_signals(&[signal(key, "45.33.32.1", old), signal(key, "45.33.32.2", now)]).await.expect("insert");
            let ids: Vec<i64> = store
                .list_signals(&SignalFilter { limit: 10, ..SignalFilter::default() })
                .await
                .expect("list")
                .iter()
                .map(|s| s.id)
                .collect();
            let config = RetentionConfig { signals_days: 90, partitions_ahead_days: 3, ..RetentionConfig::default() };

            // Nothing processed yet (watermark 0): nothing expires.
            let idle = run_once(store.as_ref(), &config, 0, now).await.expect("pass");
            assert_eq!((idle.partitions_dropped.len(), idle.rows_deleted), (0, 0), "{label}");
            assert_eq!(store.count_signals().await.expect("count"), 2, "{label}");

            let pass = run_once(store.as_ref(), &config, ids[1], now).await.expect("pass");
            let left: Vec<i64> = store
                .list_signals(&SignalFilter { limit: 10, ..SignalFilter::default() })
                .await
                .expect("list")
                .iter()
                .map(|s| s.id)
                .collect();
            assert_eq!(left, [ids[1]], "{label}: the old signal expired, the recent one stayed");
            let days = store.signal_partitions().await.expect("partitions");
            match db.backend {
                Backend::Sqlite => assert_eq!((pass.rows_deleted, days.len()), (1, 0), "{label}"),
                Backend::Postgres => {
                    assert_eq!(pass.partitions_dropped, [old.date()], "{label}");
                    for n in 0..=3 {
                        assert!(days.contains(&(now.date() + Duration::days(n))), "{label}: day +{n} ahead in {days:?}");
                    }
                }
            }
            // Retention off: nothing expires whatever the age.
            let keep = RetentionConfig { signals_days: 0, ..config };
            store.insert_signals(&[signal(key, "45.33.32.3", old)]).await.expect("insert");
            let kept = run_once(store.as_ref(), &keep, i64::MAX, now).await.expect("pass");
            assert_eq!((kept.partitions_dropped.len(), kept.rows_deleted), (0, 0), "{label}");
            assert_eq!(store.count_signals().await.expect("count"), 2, "{label}");
        }
    }

    #[tokio::test]
    async fn a_pass_expires_metrics_documents_past_their_retention() {
        for db in TestDb::all().await {
            let label = db.label();
            let (store, key) = store_with_machine(&db).await;
            let now = OffsetDateTime::now_utc();
            for (age, kind) in [(40, "usage"), (31, "metrics"), (29, "usage"), (0, "metrics")] {
                store.record_metrics(key, kind, None, "{\"lapi\":{}}", now - Duration::days(age)).await.expect("metrics");
            }
            let config = RetentionConfig { metrics_days: 30, delete_batch: 1, ..RetentionConfig::default() };
            let pass = run_once(store.as_ref(), &config, 0, now).await.expect("pass");
            assert_eq!(pass.metrics_deleted, 2, "{label}: the two older than 30 days");
            let again = run_once(store.as_ref(), &config, 0, now).await.expect("pass");
            assert_eq!(again.metrics_deleted, 0, "{label}");
            let keep = RetentionConfig { metrics_days: 0, ..config };
            let kept = run_once(store.as_ref(), &keep, 0, now + Duration::days(400)).await.expect("pass");
            assert_eq!(kept.metrics_deleted, 0, "{label}: 0 keeps them");
        }
    }

    #[tokio::test]
    async fn a_pass_expires_revocations_older_than_any_credential() {
        for db in TestDb::all().await {
            let (store, machine) = store_with_machine(&db).await;
            // Whole microseconds, the finest both backends keep.
            let now = OffsetDateTime::now_utc();
            let now = now.replace_microsecond(now.microsecond()).expect("a valid microsecond");
            let revocation =
                |at| crate::store::Revocation { kind: crate::store::RevocationKind::Machine, subject: machine.0.to_string(), at };
            store.add_revocation(&revocation(now - REVOCATIONS_KEPT - Duration::hours(1))).await.expect("old");
            store.add_revocation(&revocation(now - Duration::days(7))).await.expect("within a token's life");
            let pass = run_once(store.as_ref(), &RetentionConfig::default(), 0, now).await.expect("pass");
            assert_eq!(pass.revocations_deleted, 1, "{}", db.label());
            let kept = store.revocations_since(now - Duration::days(30)).await.expect("list");
            assert_eq!(kept, vec![revocation(now - Duration::days(7))], "{}", db.label());
        }
    }
}
