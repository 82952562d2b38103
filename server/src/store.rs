//! Persistence: one trait per capability, each in its own file with the records it reads and
//! writes (`machines`, `accounts` and keys, `signals`, `consensus`, `lists`, `stats`
//! aggregates, `revocations`, `pools`, `feeds`, the `audit` log), the [`Database`] itself, the [`Store`] supertrait of them all, and one backend per
//! engine (`sqlite`, `postgres`, each with one file per capability). Ids shared across
//! capabilities live in `keys`, the one error in `error`, the stored forms of times and text in
//! `codec`; this file only re-exports them, so `crate::store::X` names every record, and no child
//! imports it. Only this module and its children know SQL. Rows become domain types at the edge;
//! callers never see a driver type except inside [`StoreError`].
//!
//! Both backends pass the same conformance suite (`store/conformance.rs`).
//!
//! PostgreSQL `text` and `jsonb` cannot hold U+0000, which clients can send (as `\u0000` in a
//! JSON string). The routes refuse NUL in the free text they take ([`crate::domain::text`]); as
//! the last line of defence, so that both engines accept, store and find the same values, every
//! text a store writes or looks up has its NULs replaced by U+FFFD first (`storable`,
//! `storable_json`).

mod accounts;
mod audit;
mod codec;
mod consensus;
mod database;
mod error;
mod feeds;
mod keys;
mod lists;
mod machines;
mod pools;
pub mod postgres;
mod revocations;
mod signals;
pub mod sqlite;
mod stats;

#[cfg(test)]
mod conformance;

use std::sync::Arc;

pub use self::accounts::{Account, AccountStore, ApiKeyRecord, EnrollKey, EnrollKeyRecord, EnrollOutcome};
pub use self::audit::{AuditEntry, AuditFilter, AuditStore, NewAuditEntry};
pub use self::consensus::{
    ConsensusCommit, ConsensusRequest, ConsensusSnapshot, ConsensusStore, EngineMachine, EngineSignal, Leadership, RequestKind,
};
pub use self::database::Database;
pub use self::error::StoreError;
pub use self::feeds::{AttemptOutcome, Feed, FeedAttempt, FeedDefinition, FeedState, FeedStore};
pub use self::keys::{AccountKey, MachineKey};
pub use self::lists::{
    AllowlistEntry, Canary, ChangeOp, CustomList, ListChange, ListEntry, ListOp, ListStore, MEMBER_PAGE, MemberPages,
};
pub use self::machines::{CreatedBy, LoginRecord, Machine, MachineStore, NewMachine};
pub use self::pools::{PoolShare, PoolStore};
pub use self::revocations::{
    AccountDeletion, AdminTokenRecord, GENERATION_WINDOW, Generation, Revocation, RevocationKind, RevocationStore,
};
pub use self::signals::{
    Enrichment, ExpireOutcome, InsertOutcome, NewSignal, Origin, RecentReport, ReportQuery, ReportSummary, SignalBacklog,
    SignalFilter, SignalStore, StoredSignal,
};
pub use self::stats::{Alert, DayCount, StatsStore};
use crate::config::Secret;

/// Everything Palisade needs from a database, for the components that really use several
/// capabilities (the HTTP state, the CLI). Implemented for every type that has them all:
/// [`sqlite::SqliteStore`] and [`postgres::PgStore`], which both pass the conformance suite.
/// Code that needs one capability takes that trait instead (`&dyn ListStore`, …).
pub trait Store:
    Database
    + MachineStore
    + AccountStore
    + SignalStore
    + ConsensusStore
    + ListStore
    + StatsStore
    + RevocationStore
    + PoolStore
    + FeedStore
    + AuditStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Database
        + MachineStore
        + AccountStore
        + SignalStore
        + ConsensusStore
        + ListStore
        + StatsStore
        + RevocationStore
        + PoolStore
        + FeedStore
        + AuditStore
        + Send
        + Sync
        + 'static
{
}

/// Where a database URL points, for people: the SQLite file, or PostgreSQL's database, host and
/// port (never the password).
pub fn describe(url: &Secret) -> String {
    let text = url.expose();
    if text.starts_with("sqlite:") {
        return match sqlite::SqliteStore::file(text) {
            Ok(file) => format!("SQLite database {}", file.display()),
            Err(_) => "SQLite database (unreadable URL)".into(),
        };
    }
    match <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(text) {
        Ok(options) => format!(
            "PostgreSQL database {} at {}:{}",
            options.get_database().unwrap_or("(default)"),
            options.get_host(),
            options.get_port()
        ),
        Err(_) => "PostgreSQL database (unreadable URL)".into(),
    }
}

/// Opens the database a URL names only when it is there and Palisade's migrations have run in
/// it, then applies any newer ones: how commands that must never create a database (the admin
/// commands) get in. `Ok(None)` when there is no such database.
pub async fn open_existing(url: &Secret) -> Result<Option<Arc<dyn Store>>, StoreError> {
    let text = url.expose();
    if text.starts_with("sqlite:") && !sqlite::SqliteStore::file(text)?.exists() {
        return Ok(None);
    }
    let store = open(url).await?;
    if !store.initialised().await? {
        return Ok(None);
    }
    store.migrate().await?;
    Ok(Some(store))
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
