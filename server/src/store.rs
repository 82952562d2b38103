//! Persistence: one trait per capability (machines, accounts and keys, signals, consensus, lists,
//! aggregates; each in its own file), the [`Store`] supertrait of them all, and one backend per
//! engine (`sqlite`, `postgres`, each with one file per capability). Only this module and its children know SQL. Rows become domain
//! types at the edge; callers never see a driver type except inside [`StoreError`].
//!
//! Both backends pass the same conformance suite (`store/conformance.rs`).
//!
//! PostgreSQL `text` and `jsonb` cannot hold U+0000, which clients can send (as `\u0000` in a
//! JSON string). The routes refuse NUL in the free text they take ([`crate::domain::text`]); as
//! the last line of defence, so that both engines accept, store and find the same values, every
//! text a store writes or looks up has its NULs replaced by U+FFFD first (`storable`,
//! `storable_json`).

mod accounts;
mod consensus;
mod lists;
mod machines;
pub mod postgres;
mod signals;
pub mod sqlite;
mod stats;

#[cfg(test)]
mod conformance;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;
use time::OffsetDateTime;

pub use self::accounts::AccountStore;
pub use self::consensus::ConsensusStore;
pub use self::lists::ListStore;
pub use self::machines::MachineStore;
pub use self::signals::SignalStore;
pub use self::stats::StatsStore;
use crate::config::{Backend, Secret};
use crate::domain::signal::{Scope, SignalReport};

/// Internal numeric id of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineKey(pub i64);

/// Internal numeric id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountKey(pub i64);

/// Storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value already exists (e.g. a machine login).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A referenced row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database cannot be reached or the pool is exhausted: try again later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else the driver reported.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is outside the closed set its column may hold (e.g. an unknown
    /// `created_by`): the row was written by something other than Palisade, or by a newer version.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A stored value that does not decode, counted in `palisade_store_errors_total` like the
    /// driver's errors.
    pub(crate) fn corrupt(column: &str, text: &str) -> Self {
        metrics::counter!("palisade_store_errors_total", "kind" => "corrupt").increment(1);
        StoreError::Corrupt(format!("{column} = {text:?}"))
    }
}

/// Every driver error passes through here, so this is where `palisade_store_errors_total` counts
/// them by kind (a unique violation is an answer, not an error, and is not counted).
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                metrics::counter!("palisade_store_errors_total", "kind" => "unavailable").increment(1);
                StoreError::Unavailable(error)
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
            other => {
                metrics::counter!("palisade_store_errors_total", "kind" => "database").increment(1);
                StoreError::Database(other)
            }
        }
    }
}

/// Who created a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedBy {
    /// Self-registered through `POST /watchers`.
    Register,
    /// Created by the operator.
    Operator,
}

impl CreatedBy {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedBy::Register => "register",
            CreatedBy::Operator => "operator",
        }
    }
}

impl std::str::FromStr for CreatedBy {
    type Err = StoreError;

    /// The inverse of [`CreatedBy::as_str`]; any other text is [`StoreError::Corrupt`].
    fn from_str(text: &str) -> Result<Self, StoreError> {
        match text {
            "register" => Ok(CreatedBy::Register),
            "operator" => Ok(CreatedBy::Operator),
            other => Err(StoreError::corrupt("machines.created_by", other)),
        }
    }
}

/// A machine to create.
#[derive(Debug, Clone)]
pub struct NewMachine {
    /// Login.
    pub machine_id: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Operator's sensor.
    pub sensor: bool,
    /// Who created it.
    pub created_by: CreatedBy,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A stored machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Internal id.
    pub key: MachineKey,
    /// Login.
    pub machine_id: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Account it is enrolled in.
    pub account: Option<AccountKey>,
    /// Account name, when enrolled.
    pub account_name: Option<String>,
    /// Display name given at enrollment.
    pub display_name: Option<String>,
    /// Operator's sensor.
    pub sensor: bool,
    /// Who created it.
    pub created_by: CreatedBy,
    /// Trust in [0, 1].
    pub trust: f64,
    /// Scenarios declared at the last login.
    pub scenarios: Vec<String>,
    /// Network of the last login.
    pub origin_prefix: Option<String>,
    /// Version from the last metrics push.
    pub version: Option<String>,
    /// Signals stored from it.
    pub signal_count: u64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last successful login.
    pub last_login_at: Option<OffsetDateTime>,
}

/// What a login records about the machine.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    /// Scenarios declared.
    pub scenarios: Vec<String>,
    /// Network the login came from.
    pub origin_prefix: IpNet,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// Server time.
    pub at: OffsetDateTime,
}

/// A stored account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Internal id.
    pub key: AccountKey,
    /// Unique name.
    pub name: String,
    /// Verification level.
    pub level: String,
    /// Machines enrolled.
    pub machine_count: u64,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A stored enrollment key (its hash; the key itself is never stored).
#[derive(Debug, Clone)]
pub struct EnrollKey {
    /// Account it enrolls into.
    pub account: AccountKey,
    /// First characters, for identification.
    pub prefix: String,
    /// Revoked keys enroll nothing.
    pub revoked: bool,
}

/// Outcome of attaching a machine to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Newly attached (or re-attached with overwrite).
    Enrolled,
    /// Already attached and no overwrite asked: nothing changed.
    AlreadyEnrolled,
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
    pub origin_ip: String,
    /// Reporter's network.
    pub origin_prefix: String,
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

/// Machine facts the consensus engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineMachine {
    /// Internal id.
    pub key: MachineKey,
    /// Account, when enrolled.
    pub account: Option<AccountKey>,
    /// The account's verification level (`anonymous` without an account).
    pub level: String,
    /// Operator's sensor.
    pub sensor: bool,
    /// Registration time.
    pub created_at: OffsetDateTime,
}

/// A signal as the consensus worker reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSignal {
    /// Monotonic id.
    pub id: i64,
    /// Reporter.
    pub machine: MachineKey,
    /// Canonical value (address or CIDR).
    pub value: String,
    /// Scenario.
    pub scenario: String,
    /// Scenario trust as sent.
    pub scenario_trust: String,
    /// Reporter's /24 or /48.
    pub origin_prefix: String,
    /// Reporter's AS, when known.
    pub origin_asn: Option<u32>,
    /// Server receive time.
    pub received_at: OffsetDateTime,
}

/// The consensus worker's persisted state: its watermark and the engine's opaque JSON state.
#[derive(Debug, Clone, Default)]
pub struct ConsensusSnapshot {
    /// Last processed signal id.
    pub watermark: i64,
    /// Per-machine engine state.
    pub machines: Vec<(MachineKey, String)>,
    /// Per-target engine state.
    pub targets: Vec<(String, String)>,
}

/// A blocklist entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    /// List name (`community`, …).
    pub list: String,
    /// Address or CIDR.
    pub value: String,
    /// `ip` or `range`.
    pub scope: String,
    /// Scenario shown.
    pub scenario: String,
    /// `ban` or `captcha`.
    pub remediation: String,
    /// Rule that listed it.
    pub rule: String,
    /// First listed.
    pub listed_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// Seq of the change that last wrote it (0 before it is stored).
    pub seq: i64,
}

/// One membership change to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum ListOp {
    /// Insert or update.
    Add(ListEntry),
    /// Remove, with the reason.
    Remove {
        /// List name.
        list: String,
        /// Address or CIDR.
        value: String,
        /// Why.
        reason: String,
    },
}

/// A stored membership change.
#[derive(Debug, Clone, PartialEq)]
pub struct ListChange {
    /// Monotonic sequence number (the delta cursor).
    pub seq: i64,
    /// `add` or `remove`.
    pub op: String,
    /// The entry as added, or as it was when removed.
    pub entry: ListEntry,
    /// Removal reason.
    pub reason: Option<String>,
    /// When the change was made.
    pub at: OffsetDateTime,
}

/// One consensus step, committed atomically with the new watermark.
#[derive(Debug, Clone)]
pub struct ConsensusCommit {
    /// Last processed signal id.
    pub watermark: i64,
    /// Changed machine states (JSON) and their trust.
    pub machines: Vec<(MachineKey, String, f64)>,
    /// Changed target states (JSON), `None` to forget one.
    pub targets: Vec<(String, Option<String>)>,
    /// Consensus requests carried out by this step.
    pub done_requests: Vec<i64>,
    /// Membership changes, in order.
    pub list_ops: Vec<ListOp>,
    /// When.
    pub at: OffsetDateTime,
}

/// A request for the consensus leader.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsensusRequest {
    /// Id, marked done in the commit that carries it out.
    pub id: i64,
    /// `false_positive`.
    pub kind: String,
    /// Target.
    pub value: String,
}

/// Proof of holding the consensus leadership.
pub struct Leadership {
    connection: Option<sqlx::PgConnection>,
}

impl Leadership {
    /// Leadership held by a PostgreSQL session lock on `connection`.
    pub fn holding(connection: sqlx::PgConnection) -> Self {
        Leadership { connection: Some(connection) }
    }

    /// Leadership of a single-process (SQLite) deployment.
    pub fn local() -> Self {
        Leadership { connection: None }
    }

    /// Whether the lock is still held (the connection holding it still answers).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
        }
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("distributed", &self.connection.is_some()).finish()
    }
}

/// A canary.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// Address or CIDR.
    pub value: String,
    /// Operator's note.
    pub note: String,
    /// When added.
    pub created_at: OffsetDateTime,
}

/// A never-block range.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowlistEntry {
    /// Address or CIDR.
    pub value: String,
    /// `cdn`, `crawler`, `resolver`, `infrastructure`, `custom`, …
    pub category: String,
    /// Where it came from (an import name).
    pub source: String,
    /// When added.
    pub created_at: OffsetDateTime,
}

/// An operator-managed list.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomList {
    /// Name (also the scenario its entries carry on the CrowdSec streams).
    pub name: String,
    /// `block` or `allow`.
    pub kind: String,
    /// Operator's description.
    pub description: String,
    /// When created.
    pub created_at: OffsetDateTime,
}

/// A stored API key (its hash; the key itself is never stored), with its account and tier.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    /// First characters, unique, shown in listings and used to revoke.
    pub prefix: String,
    /// Owning account.
    pub account: AccountKey,
    /// Owning account's name.
    pub account_name: String,
    /// The account's tier name.
    pub tier: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Revocation time; revoked keys authenticate nothing.
    pub revoked_at: Option<OffsetDateTime>,
    /// Last recorded use.
    pub last_used_at: Option<OffsetDateTime>,
}

/// The database itself: which engine it is, its migrations, whether it answers.
#[async_trait]
pub trait Database: Send + Sync {
    /// The engine behind this store.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Everything Palisade needs from a database, for the components that really use several
/// capabilities (the HTTP state, the CLI). Implemented for every type that has them all:
/// [`sqlite::SqliteStore`] and [`postgres::PgStore`], which both pass the conformance suite.
/// Code that needs one capability takes that trait instead (`&dyn ListStore`, …).
pub trait Store:
    Database + MachineStore + AccountStore + SignalStore + ConsensusStore + ListStore + StatsStore + Send + Sync + 'static
{
}

impl<T> Store for T where
    T: Database + MachineStore + AccountStore + SignalStore + ConsensusStore + ListStore + StatsStore + Send + Sync + 'static
{
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

/// Opens the store a database URL names, creating the SQLite file and its directory when needed.
pub async fn open(url: &Secret) -> Result<Arc<dyn Store>, StoreError> {
    let text = url.expose();
    if text.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(text).await?))
    } else {
        Ok(Arc::new(postgres::PgStore::open(text).await?))
    }
}

/// Microseconds since the Unix epoch (the SQLite time representation).
pub(crate) fn to_micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1000) as i64
}

/// Inverse of [`to_micros`]; out-of-range values clamp to the epoch.
pub(crate) fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The form of `text` every backend stores: NUL replaced by U+FFFD (see the module doc).
pub(crate) fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(text) }
}

/// [`storable`] for an optional text.
pub(crate) fn storable_opt(text: Option<&str>) -> Option<Cow<'_, str>> {
    text.map(storable)
}

/// [`storable`] for JSON text, where a NUL can only appear escaped, in a string or a key. Text that
/// is not JSON is returned as is, for the backend to refuse.
pub(crate) fn storable_json(json: &str) -> Cow<'_, str> {
    if !json.contains("\\u0000") {
        return Cow::Borrowed(json);
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut value) => {
            scrub_nul(&mut value);
            Cow::Owned(value.to_string())
        }
        Err(_) => Cow::Borrowed(json),
    }
}

fn scrub_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            if let Cow::Owned(clean) = storable(text) {
                *text = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(object) => {
            let entries = std::mem::take(object);
            for (key, mut item) in entries {
                scrub_nul(&mut item);
                object.insert(storable(&key).into_owned(), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// An enrollment key as its account sees it (the key itself is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollKeyRecord {
    /// First characters, for identification and revocation.
    pub prefix: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Revocation time; revoked keys enroll nothing.
    pub revoked_at: Option<OffsetDateTime>,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_in_text_and_json() {
        assert!(matches!(storable("plain"), Cow::Borrowed("plain")));
        assert_eq!(storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(storable_json(r#"{"a":"\\u0000"}"#), r#"{"a":"\\u0000"}"#, "an escaped backslash is no NUL");
        let dirty = json!({"k\0": ["x\0", {"n": 1, "s": "\0"}], "ok": null}).to_string();
        let clean: serde_json::Value = serde_json::from_str(&storable_json(&dirty)).expect("json");
        assert_eq!(clean, json!({"k\u{FFFD}": ["x\u{FFFD}", {"n": 1, "s": "\u{FFFD}"}], "ok": null}));
        assert_eq!(storable_json("not json \\u0000"), "not json \\u0000");
    }
}
