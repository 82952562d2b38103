//! Aggregates for the console and quotas: per-day signal and list-change counts, signal counts
//! per machine, an account's latest alerts, and per-account lookup usage; and the expiry of stored metrics documents. The [`StatsStore`] trait and its record; of the
//! store's files it imports only `keys` and `error`.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};

/// Per-day and per-machine aggregates.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Signals received at or after `since`, counted per machine (machines with none are absent).
    async fn signal_counts_since(&self, since: OffsetDateTime) -> Result<Vec<(MachineKey, u64)>, StoreError>;

    /// Signals received at or after `since`, counted per UTC day (days since the Unix epoch),
    /// oldest first; days without signals are absent.
    async fn signals_per_day(&self, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError>;

    /// Membership changes of `list` made at or after `since`, counted per UTC day, oldest first;
    /// `count` holds the additions and `other` the removals.
    async fn list_changes_per_day(&self, list: &str, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError>;

    /// The newest signals of `account`'s machines received at or after `since`, newest first, at
    /// most `limit`: the account's alert timeline. Its cost is bounded by the account's signals
    /// since `since` (read through the per-machine index), not by the whole table.
    async fn account_alerts(&self, account: AccountKey, since: OffsetDateTime, limit: u32) -> Result<Vec<Alert>, StoreError>;

    /// Adds lookups to accounts' per-day counts: `(account, day since the epoch, lookups)`.
    async fn add_lookup_usage(&self, usage: &[(AccountKey, i64, u64)]) -> Result<(), StoreError>;

    /// An account's lookups per UTC day from day `since_day` on, oldest first; days without any are absent.
    async fn lookup_usage_per_day(&self, account: AccountKey, since_day: i64) -> Result<Vec<DayCount>, StoreError>;

    /// Deletes metrics and usage-metrics documents received before `before`, `batch` rows per
    /// statement; returns how many went. A machine's version, kept on the machine, stays.
    async fn expire_metrics(&self, before: OffsetDateTime, batch: u32) -> Result<u64, StoreError>;
}

/// One signal of an account's alert timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The reporting machine's login.
    pub machine_id: String,
    /// The address or range reported.
    pub value: String,
    /// The scenario.
    pub scenario: String,
    /// When it was received.
    pub received_at: OffsetDateTime,
}

/// A per-day aggregate: the UTC day (days since the Unix epoch) and one or two counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    /// Days since 1970-01-01, UTC.
    pub day: i64,
    /// The counted events.
    pub count: u64,
    /// A second count where the aggregate has one (removals beside additions), else 0.
    pub other: u64,
}
