//! The audit log: who did what to which resource, when and from where, one entry per operator
//! action. The [`AuditStore`] trait and its records; of the store's files it imports only
//! `error`. It stores what it is given: what an action is called and what its detail may hold
//! (never a secret) is decided where actions are recorded ([`crate::manage::audit`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::StoreError;

/// The operator's audit log: appended to, read newest first.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry; its id (ids grow with each entry).
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError>;

    /// The entries `filter` selects, newest (highest id) first, at most `filter.limit`.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When the action was taken.
    pub at: OffsetDateTime,
    /// Who: `token:<prefix>` (an admin token), `cli:<os user>` (the command line).
    pub actor: String,
    /// A stable action name (the admin API's operationId, e.g. `delete_machine`).
    pub action: String,
    /// What it acted on (a machine login, an account name, an address…), empty when nothing.
    pub target: String,
    /// A small JSON object of the action's parameters, without secrets.
    pub detail: String,
    /// The HTTP client's address; `None` outside HTTP.
    pub client: Option<String>,
    /// The HTTP status answered; `None` outside HTTP.
    pub status: Option<u16>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Id: the paging cursor.
    pub id: i64,
    /// The entry as appended.
    pub entry: NewAuditEntry,
}

/// Which entries to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only entries with a smaller id (the previous page's last id).
    pub before: Option<i64>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this action's.
    pub action: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Page size.
    pub limit: u32,
}
