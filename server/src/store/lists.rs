//! Lists: blocklist members and their change log (the delta cursor), operator-managed custom
//! lists, canaries and the never-block allowlist. The [`ListStore`] trait and its records; of the
//! store's files it imports only `error`.

use async_trait::async_trait;
use ipnet::IpNet;
use time::OffsetDateTime;

use super::error::StoreError;
use crate::domain::listing::{Remediation, Rule};
use crate::domain::signal::Scope;

/// List membership, its change log, custom lists, canaries and the allowlist.
#[async_trait]
pub trait ListStore: Send + Sync {
    /// Current members of a list.
    async fn list_entries(&self, list: &str) -> Result<Vec<ListEntry>, StoreError>;

    /// One member of a list.
    async fn list_entry(&self, list: &str, value: IpNet) -> Result<Option<ListEntry>, StoreError>;

    /// Changes of a list with `seq > after`, in order.
    async fn list_changes(&self, list: &str, after: i64, limit: u32) -> Result<Vec<ListChange>, StoreError>;

    /// The newest seq of a list (0 when it never changed).
    async fn list_seq(&self, list: &str) -> Result<i64, StoreError>;

    /// Up to `limit` members of a list whose value sorts after `after` (`""`: from the start), in
    /// value order: a large list read in pages, so its rows are never all in memory at once.
    async fn list_entries_page(&self, list: &str, after: &str, limit: u32) -> Result<Vec<ListEntry>, StoreError>;

    /// Creates an operator-managed list; `Conflict` when the name exists.
    async fn create_custom_list(&self, list: &CustomList) -> Result<(), StoreError>;

    /// Every operator-managed list, by name.
    async fn custom_lists(&self) -> Result<Vec<CustomList>, StoreError>;

    /// Sets who may read a list (`public`, `subscribers`, `operator`); false when there is no
    /// such list.
    async fn set_custom_list_visibility(&self, name: &str, visibility: &str) -> Result<bool, StoreError>;

    /// Deletes an operator-managed list: its entries are removed (each removal logged with a seq,
    /// so consumers following a cursor drop them) and its subscriptions end. Whether it existed.
    async fn delete_custom_list(&self, name: &str, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Applies membership changes to operator-managed lists, each with the next seq.
    async fn apply_list_ops(&self, ops: &[ListOp], at: OffsetDateTime) -> Result<(), StoreError>;

    /// Adds a canary; `Conflict` when it exists.
    async fn add_canary(&self, value: &str, note: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Removes a canary; whether it existed.
    async fn remove_canary(&self, value: &str) -> Result<bool, StoreError>;

    /// Every canary.
    async fn list_canaries(&self) -> Result<Vec<Canary>, StoreError>;

    /// Adds never-block ranges from one source; returns how many were new.
    async fn add_allowlist(
        &self,
        values: &[String],
        category: &str,
        source: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError>;

    /// Removes one range (from every source, or from one); returns how many rows went.
    async fn remove_allowlist(&self, value: Option<&str>, source: Option<&str>) -> Result<usize, StoreError>;

    /// Every never-block range.
    async fn list_allowlist(&self) -> Result<Vec<AllowlistEntry>, StoreError>;
}

/// A blocklist entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    /// List name (`community`, …).
    pub list: String,
    /// Address or range, stored as a bare address for a single address and in CIDR form
    /// otherwise (`domain::net::display_target`).
    pub value: IpNet,
    /// One address or a range.
    pub scope: Scope,
    /// Scenario shown.
    pub scenario: String,
    /// Suggested remediation.
    pub remediation: Remediation,
    /// Rule that listed it.
    pub rule: Rule,
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
        /// Address or range.
        value: IpNet,
        /// Why.
        reason: String,
    },
}

/// A stored membership change.
#[derive(Debug, Clone, PartialEq)]
pub struct ListChange {
    /// Monotonic sequence number (the delta cursor).
    pub seq: i64,
    /// Added or removed.
    pub op: ChangeOp,
    /// The entry as added, or as it was when removed.
    pub entry: ListEntry,
    /// Removal reason.
    pub reason: Option<String>,
    /// When the change was made.
    pub at: OffsetDateTime,
}

/// What a membership change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// The entry was added, or renewed.
    Add,
    /// The entry was removed.
    Remove,
}

impl ChangeOp {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Add => "add",
            ChangeOp::Remove => "remove",
        }
    }

    /// The inverse of [`ChangeOp::as_str`].
    pub fn from_stored(text: &str) -> Option<ChangeOp> {
        match text {
            "add" => Some(ChangeOp::Add),
            "remove" => Some(ChangeOp::Remove),
            _ => None,
        }
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
    /// Who may read it: `public` (every machine), `subscribers` (machines subscribed to it) or
    /// `operator` (no machine nor API key).
    pub visibility: String,
}
