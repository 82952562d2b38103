//! Maintenance: keeps the signal partitions ahead of time (PostgreSQL) and expires raw signals
//! past `retention.signals_days`, never one the consensus worker has not processed (the caller
//! passes its watermark). Run by the consensus leader, so exactly one replica does it; aggregates
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
}

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
    metrics::counter!("palisade_retention_partitions_dropped_total").increment(outcome.partitions_dropped.len() as u64);
    metrics::counter!("palisade_retention_signals_deleted_total").increment(outcome.rows_deleted);
    if !outcome.partitions_created.is_empty() || !outcome.partitions_dropped.is_empty() || outcome.rows_deleted > 0 {
        tracing::info!(
            partitions.created = outcome.partitions_created.len(),
            partitions.dropped = outcome.partitions_dropped.len(),
            signals.deleted = outcome.rows_deleted,
            "maintenance pass"
        );
    }
    Ok(outcome)
}
