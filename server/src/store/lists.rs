//! Lists: blocklist members and their change log (the delta cursor), operator-managed custom
//! lists, canaries and the never-block allowlist. The [`ListStore`] trait and its records, and the
//! pure part of writing changes in bulk that both backends share (splitting ops into runs, one
//! statement each, and numbering their seqs as applying them one by one would); of the store's
//! files it imports only `error`.

use async_trait::async_trait;
use ipnet::IpNet;
use time::OffsetDateTime;

use super::error::StoreError;
use crate::domain::listing::{Remediation, Rule};
use crate::domain::net::display_target;
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

/// Members per page when a whole list is read. Small on purpose: a page's rows are built on the
/// database driver's thread and freed on the reader's, so the allocator keeps up to a page's worth
/// of freed rows in each thread's arena after the read. Pages of 2,000 instead of 20,000 took
/// 14.5 MB off the peak of a server holding a million-entry list, and the load takes as long
/// (the query per page is a primary-key seek; `docs/benchmarks.md`).
pub const MEMBER_PAGE: u32 = 2_000;

/// A list's members read a page at a time, in value order: a list of a million entries (an
/// imported feed) never has all its rows in memory at once, and the primary key gives the order
/// without a sort.
pub struct MemberPages<'a> {
    store: &'a dyn ListStore,
    list: &'a str,
    /// The last value read; `None` once the last page was read.
    after: Option<String>,
    size: u32,
}

impl<'a> MemberPages<'a> {
    /// Pages of `list`, from its first member.
    pub fn new(store: &'a dyn ListStore, list: &'a str) -> Self {
        MemberPages { store, list, after: Some(String::new()), size: MEMBER_PAGE }
    }

    /// Pages of `size` members, for tests that cross page boundaries with a few entries.
    #[cfg(test)]
    pub(crate) fn of_size(store: &'a dyn ListStore, list: &'a str, size: u32) -> Self {
        MemberPages { size, ..MemberPages::new(store, list) }
    }

    /// The next page, `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<ListEntry>>, StoreError> {
        let Some(after) = self.after.take() else {
            return Ok(None);
        };
        let page = self.store.list_entries_page(self.list, &after, self.size).await?;
        if page.len() as u32 == self.size {
            self.after = page.last().map(|last| display_target(last.value));
        }
        Ok(Some(page).filter(|page| !page.is_empty()))
    }
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

/// One row of the change log as a backend writes it in bulk: the entry as added (or as it was
/// when removed), the seq it takes and, for a removal, why.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChangeRow<'a> {
    /// Its seq.
    pub seq: i64,
    /// Added or removed.
    pub op: ChangeOp,
    /// The entry as added, or as stored when removed.
    pub entry: &'a ListEntry,
    /// Removal reason.
    pub reason: Option<&'a str>,
}

/// One row of `blocklist_entries` as a run of additions leaves it.
#[derive(Debug, Clone)]
pub(crate) struct EntryRow<'a> {
    /// The last addition of the value in the run.
    pub entry: &'a ListEntry,
    /// The value's stored text ([`display_target`]).
    pub value: String,
    /// The first addition's `listed_at` (the value's stored one wins when it was already listed).
    pub listed_at: OffsetDateTime,
    /// The last addition's seq.
    pub seq: i64,
}

/// Splits `ops` into the runs a backend writes with one kind of statement each: consecutive ops
/// of one kind. Writing the runs in order, each numbered from where the previous one ended, gives
/// what applying the ops one by one gives.
pub(crate) fn op_runs(ops: &[ListOp]) -> impl Iterator<Item = &[ListOp]> {
    ops.chunk_by(|a, b| matches!((a, b), (ListOp::Add(_), ListOp::Add(_)) | (ListOp::Remove { .. }, ListOp::Remove { .. })))
}

/// The change rows of a run's additions, numbered from `first` in op order.
pub(crate) fn numbered_adds(run: &[ListOp], first: i64) -> Vec<ChangeRow<'_>> {
    run.iter()
        .filter_map(|op| match op {
            ListOp::Add(entry) => Some(entry),
            ListOp::Remove { .. } => None,
        })
        .zip(first..)
        .map(|(entry, seq)| ChangeRow { seq, op: ChangeOp::Add, entry, reason: None })
        .collect()
}

/// The entry rows a run of additions leaves, one per (list, value), sorted by (list, stored
/// text): a value added twice is written once, as its later addition left it (one upsert
/// statement may not touch a row twice on PostgreSQL), and once the run has no repeats its rows
/// may be written in any order. Key order lets a large run walk the primary key's pages once
/// instead of at random (a million values inserted in seq order would miss SQLite's page cache
/// on nearly every row).
pub(crate) fn entry_rows<'a>(adds: &[ChangeRow<'a>]) -> Vec<EntryRow<'a>> {
    use std::collections::hash_map::Entry;
    let mut rows: Vec<EntryRow<'a>> = Vec::with_capacity(adds.len());
    let mut index: std::collections::HashMap<(&str, IpNet), usize> = std::collections::HashMap::with_capacity(adds.len());
    for add in adds {
        match index.entry((add.entry.list.as_str(), add.entry.value)) {
            Entry::Occupied(at) => {
                let row = &mut rows[*at.get()];
                row.entry = add.entry;
                row.seq = add.seq;
            }
            Entry::Vacant(slot) => {
                slot.insert(rows.len());
                let value = display_target(add.entry.value);
                rows.push(EntryRow { entry: add.entry, value, listed_at: add.entry.listed_at, seq: add.seq });
            }
        }
    }
    rows.sort_unstable_by(|a, b| (a.entry.list.as_str(), a.value.as_str()).cmp(&(b.entry.list.as_str(), b.value.as_str())));
    rows
}

/// The (list, stored text) pairs a run of removals names, each once, sorted (for the same reason
/// as [`entry_rows`]); deleting them in any order removes the same rows.
pub(crate) fn removal_targets(run: &[ListOp]) -> Vec<(&str, String)> {
    let mut targets: Vec<(&str, String)> = run
        .iter()
        .filter_map(|op| match op {
            ListOp::Remove { list, value, .. } => Some((list.as_str(), display_target(*value))),
            ListOp::Add(_) => None,
        })
        .collect();
    targets.sort_unstable();
    targets.dedup();
    targets
}

/// The change rows of a run's removals, numbered from `first` in op order, given the entries the
/// run deleted (`gone`, in any order): a removal logs a change only when it removed something,
/// so of a value removed twice only the first removal counts, and an absent value none.
pub(crate) fn numbered_removals<'a>(run: &'a [ListOp], gone: &'a [ListEntry], first: i64) -> Vec<ChangeRow<'a>> {
    let mut stored: std::collections::HashMap<(&str, IpNet), &ListEntry> =
        gone.iter().map(|entry| ((entry.list.as_str(), entry.value), entry)).collect();
    let mut rows = Vec::with_capacity(gone.len());
    for op in run {
        if let ListOp::Remove { list, value, reason } = op
            && let Some(entry) = stored.remove(&(list.as_str(), *value))
        {
            let seq = first + rows.len() as i64;
            rows.push(ChangeRow { seq, op: ChangeOp::Remove, entry, reason: Some(reason.as_str()) });
        }
    }
    rows
}
