//! Raw signals: the bulk insert, listing and counting, and their retention (daily partitions on
//! PostgreSQL, batched deletes on SQLite) and the backlog the consensus worker has not read.
//! The [`SignalStore`] trait and its records; of the store's files it imports only `keys` and
//! `error`.

use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;
use time::OffsetDateTime;

use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};
use crate::domain::signal::{Scope, SignalReport};

/// Raw signal storage and retention.
#[async_trait]
pub trait SignalStore: Send + Sync {
    /// Stores signals in one transaction; redeliveries (same machine, same dedup key) are skipped.
    /// Returns only after the transaction committed.
    async fn insert_signals(&self, signals: &[NewSignal]) -> Result<InsertOutcome, StoreError>;

    /// How long before its `start_at` a signal can have been received: the clock skew ingest
    /// accepts (`ingest.max_clock_skew_secs`, at most 7 days, which is the default here). A
    /// redelivery carries its original's `start_at`, so PostgreSQL looks for the original only in
    /// the partitions of the days from `start_at` less this to now. Lowering the setting shortens
    /// how far back a redelivery of a signal whose `start_at` lay ahead of its receipt is found.
    fn set_redelivery_window(&self, _skew: time::Duration) {}

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

    /// The signals about exactly `value` matching `query`: how many, from how many distinct
    /// reporters (an account counts once however many machines it has; a machine outside any
    /// account counts alone), and the latest `stop_at`. Ignores `query.limit` and `query.offset`.
    async fn report_summary(&self, query: &ReportQuery) -> Result<ReportSummary, StoreError>;

    /// The signals about exactly `value` matching `query`, newest (`stop_at`) first, at most
    /// `query.limit` after skipping `query.offset`.
    async fn recent_reports(&self, query: &ReportQuery) -> Result<Vec<RecentReport>, StoreError>;

    /// For each of `values` (at most a few hundred, each looked up by the value index) that has
    /// signals whose activity ended at or after `since`: how many and the latest `stop_at`, in
    /// no particular order.
    async fn report_counts(&self, values: &[String], since: OffsetDateTime) -> Result<Vec<ValueReports>, StoreError>;

    /// Which of `values` (any number) `machine` has signals about that were received at or after
    /// `since`: each once, in no particular order. Read through the machine's recent signals
    /// (the machine-and-receive-time index), so a bulk report's thousands of addresses cost one
    /// scan of what the machine sent lately, not a query each.
    async fn reported_since(
        &self,
        machine: MachineKey,
        values: &[String],
        since: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError>;
}

/// The signals about one value, counted ([`SignalStore::report_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueReports {
    /// The canonical value.
    pub value: String,
    /// Signals.
    pub reports: u64,
    /// Latest `stop_at`.
    pub last_reported_at: OffsetDateTime,
}

/// Which signals about one value [`SignalStore::report_summary`] and
/// [`SignalStore::recent_reports`] read. Bounded: one value (indexed), and a row limit.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// The canonical value (a bare address or a CIDR).
    pub value: String,
    /// Only those whose activity ended (`stop_at`) at or after this time.
    pub reported_since: OffsetDateTime,
    /// Only those received at or after this time, when given.
    pub received_since: Option<OffsetDateTime>,
    /// Only those of this machine, when given.
    pub machine: Option<MachineKey>,
    /// Most rows returned by [`SignalStore::recent_reports`].
    pub limit: u32,
    /// Rows skipped first by [`SignalStore::recent_reports`] (paging).
    pub offset: u32,
}

/// Counts over the signals about one value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportSummary {
    /// Signals.
    pub reports: u64,
    /// Distinct reporters (accounts, or machines outside any account).
    pub reporters: u64,
    /// Latest `stop_at`.
    pub last_reported_at: Option<OffsetDateTime>,
}

/// One signal about a value, as a report listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentReport {
    /// Its id.
    pub id: i64,
    /// Reporting machine.
    pub machine: MachineKey,
    /// The machine's account, when enrolled.
    pub account: Option<AccountKey>,
    /// Scenario.
    pub scenario: String,
    /// Free text as stored.
    pub message: String,
    /// Last event.
    pub stop_at: OffsetDateTime,
    /// Reporter's address.
    pub origin_ip: IpAddr,
    /// Other fields as stored (a JSON object).
    pub extra: String,
}

/// The reporting side of a signal, added by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// Source address of the request.
    pub ip: IpAddr,
    /// Its /24 or /48.
    pub prefix: IpNet,
    /// Its AS, when an AS database is configured.
    pub asn: Option<u32>,
}

/// Server-side enrichment of the attacker's address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enrichment {
    /// AS number.
    pub as_number: Option<u32>,
    /// AS name.
    pub as_name: Option<String>,
    /// ISO country code.
    pub country: Option<String>,
}

/// A signal ready to be stored.
#[derive(Debug, Clone)]
pub struct NewSignal {
    /// Reporting machine.
    pub machine: MachineKey,
    /// The validated report.
    pub report: SignalReport,
    /// Where the report came from.
    pub origin: Origin,
    /// Attacker enrichment.
    pub enrichment: Enrichment,
    /// Server receive time.
    pub received_at: OffsetDateTime,
}

/// Outcome of a bulk insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// Rows stored now.
    pub inserted: usize,
    /// Rows that were already stored (a redelivery).
    pub duplicates: usize,
}

/// A stored signal.
#[derive(Debug, Clone)]
pub struct StoredSignal {
    /// Monotonic id.
    pub id: i64,
    /// Reporter login.
    pub machine_id: String,
    /// Local agent name.
    pub agent: Option<String>,
    /// Scope.
    pub scope: Scope,
    /// Canonical value.
    pub value: String,
    /// Scenario.
    pub scenario: String,
    /// Hub hash of the scenario file.
    pub scenario_hash: String,
    /// Hub version of the scenario.
    pub scenario_version: String,
    /// Scenario trust as sent.
    pub scenario_trust: String,
    /// Free text as sent.
    pub message: String,
    /// Alert UUID, when sent.
    pub alert_uuid: Option<String>,
    /// First event.
    pub start_at: OffsetDateTime,
    /// Last event.
    pub stop_at: OffsetDateTime,
    /// Server receive time.
    pub received_at: OffsetDateTime,
    /// Reporter's address.
    pub origin_ip: IpAddr,
    /// Reporter's network.
    pub origin_prefix: IpNet,
    /// Reporter's AS, when known.
    pub origin_asn: Option<u32>,
    /// Attacker enrichment.
    pub enrichment: Enrichment,
    /// Other fields as sent (JSON object).
    pub extra: String,
}

/// Which signals to list.
#[derive(Debug, Clone, Default)]
pub struct SignalFilter {
    /// Only those with `id > after`.
    pub after: Option<i64>,
    /// Only those from this machine login.
    pub machine_id: Option<String>,
    /// Only those about this canonical value.
    pub value: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireOutcome {
    /// Daily partitions dropped (PostgreSQL).
    pub partitions_dropped: Vec<time::Date>,
    /// Rows deleted one by one (SQLite; PostgreSQL drops partitions without counting their rows).
    pub rows_deleted: u64,
}

/// The signals the consensus worker has not processed yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalBacklog {
    /// How many, up to the cap asked for.
    pub count: u64,
    /// When the first of them (lowest id) was received.
    pub oldest_received_at: Option<OffsetDateTime>,
}
