//! Raw signals: the bulk insert, listing and counting, and their retention (daily partitions on
//! PostgreSQL, batched deletes on SQLite) and the backlog the consensus worker has not read.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{ExpireOutcome, InsertOutcome, NewSignal, SignalBacklog, SignalFilter, StoreError, StoredSignal};

/// Raw signal storage and retention.
#[async_trait]
pub trait SignalStore: Send + Sync {
    /// Stores signals in one transaction; redeliveries (same machine, same dedup key) are skipped.
    /// Returns only after the transaction committed.
    async fn insert_signals(&self, signals: &[NewSignal]) -> Result<InsertOutcome, StoreError>;

    /// Lists signals, oldest first.
    async fn list_signals(&self, filter: &SignalFilter) -> Result<Vec<StoredSignal>, StoreError>;

    /// Counts every stored signal.
    async fn count_signals(&self) -> Result<u64, StoreError>;

    /// Prepares signal storage for the UTC days from `from` to `days_ahead` days later. PostgreSQL
    /// creates the missing daily partitions of `signals` and returns their days; SQLite has
    /// nothing to prepare.
    async fn prepare_signal_partitions(&self, from: OffsetDateTime, days_ahead: u32) -> Result<Vec<time::Date>, StoreError>;

    /// Expires raw signals received before `before`, never one with an id above `up_to_id` (the
    /// consensus watermark: unprocessed signals stay). PostgreSQL drops whole daily partitions that
    /// end at or before `before` and hold nothing above `up_to_id`; SQLite deletes matching rows in
    /// transactions of `batch` rows.
    async fn expire_signals(&self, before: OffsetDateTime, up_to_id: i64, batch: u32) -> Result<ExpireOutcome, StoreError>;

    /// The days of the existing signal partitions, oldest first (always empty on SQLite).
    async fn signal_partitions(&self) -> Result<Vec<time::Date>, StoreError>;

    /// Signals with an id above `after` (the consensus backlog): how many, counted up to `cap`,
    /// and when the first of them was received.
    async fn signal_backlog(&self, after: i64, cap: u32) -> Result<SignalBacklog, StoreError>;
}
