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

/// Runs of additions from which [`begin_entry_rows`] works on another thread.
const ENTRY_ROWS_ELSEWHERE_AT_LEAST: usize = 10_000;

/// Starts working out the entry rows a run of additions leaves, one per (list, value), sorted by
/// (list, stored text): a value added twice is written once, as its later addition left it (one
/// upsert statement may not touch a row twice on PostgreSQL), and once the run has no repeats its
/// rows may be written in any order. Key order lets a large run walk the primary key's pages once
/// instead of at random (a million values inserted in seq order would miss SQLite's page cache
/// on nearly every row). A large run's are worked out on another thread, so that they are ready
/// once the caller has written the run's changes (the database works for seconds on a large
/// run's log, and the caller mostly waits for it); a small run's when they are asked for.
pub(crate) fn begin_entry_rows(adds: &[ChangeRow<'_>]) -> PendingEntryRows {
    PendingEntryRows((adds.len() >= ENTRY_ROWS_ELSEWHERE_AT_LEAST).then(|| {
        let keys = EntryOrder::keys(adds);
        tokio::task::spawn_blocking(move || EntryOrder::of(keys))
    }))
}

/// Entry rows being worked out ([`begin_entry_rows`]).
pub(crate) struct PendingEntryRows(Option<tokio::task::JoinHandle<EntryOrder>>);

impl PendingEntryRows {
    /// The entry rows of `adds`, the run given to [`begin_entry_rows`].
    pub(crate) async fn rows<'a>(self, adds: &[ChangeRow<'a>]) -> Vec<EntryRow<'a>> {
        let finished = match self.0 {
            None => None,
            Some(worker) => match worker.await {
                Ok(order) => Some(order),
                Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
                // Cancelled: the runtime is shutting down; finish here.
                Err(_) => None,
            },
        };
        finished.unwrap_or_else(|| EntryOrder::of(EntryOrder::keys(adds))).rows(adds)
    }
}

/// The work of [`begin_entry_rows`] on data of its own, so that it can be done on another thread: for
/// each (list, value), its stored text and its first and last position in the run, in key order.
struct EntryOrder(Vec<(usize, String, usize, usize)>);

impl EntryOrder {
    /// The run's keys by position: the value, and its list as a rank among the run's lists by
    /// name (so that (rank, text) order is (list, text) order).
    fn keys(adds: &[ChangeRow<'_>]) -> Vec<(usize, IpNet)> {
        // A run's additions mostly share their list: skipping repeats first leaves a handful.
        let mut names: Vec<&str> = Vec::new();
        for add in adds {
            if names.last() != Some(&add.entry.list.as_str()) {
                names.push(&add.entry.list);
            }
        }
        names.sort_unstable();
        names.dedup();
        let mut last = ("", 0);
        adds.iter()
            .map(|add| {
                let list = add.entry.list.as_str();
                if list != last.0 {
                    last = (list, names.binary_search(&list).unwrap_or_default());
                }
                (last.1, add.entry.value)
            })
            .collect()
    }

    /// Each key once, with its first and last position, sorted by (list rank, stored text).
    fn of(keys: Vec<(usize, IpNet)>) -> Self {
        use std::collections::hash_map::Entry;
        let mut order: Vec<(usize, String, usize, usize)> = Vec::with_capacity(keys.len());
        let mut index: std::collections::HashMap<(usize, IpNet), usize> = std::collections::HashMap::with_capacity(keys.len());
        for (at, key) in keys.into_iter().enumerate() {
            match index.entry(key) {
                Entry::Occupied(slot) => order[*slot.get()].3 = at,
                Entry::Vacant(slot) => {
                    slot.insert(order.len());
                    order.push((key.0, display_target(key.1), at, at));
                }
            }
        }
        order.sort_unstable_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
        EntryOrder(order)
    }

    /// The entry rows of `adds`, the run the keys were taken from.
    fn rows<'a>(self, adds: &[ChangeRow<'a>]) -> Vec<EntryRow<'a>> {
        self.0
            .into_iter()
            .map(|(_, value, first, last)| EntryRow {
                entry: adds[last].entry,
                value,
                listed_at: adds[first].entry.listed_at,
                seq: adds[last].seq,
            })
            .collect()
    }
}

/// The (list, stored text) pairs a run of removals names, each once, sorted (for the same reason
/// as [`begin_entry_rows`]); deleting them in any order removes the same rows.
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::macros::datetime;

    use super::*;
    use crate::domain::net::parse_target;

    /// `n` additions over three lists, every value added about three times, the `i`th listed and
    /// expiring `i` seconds after a base time (so first and last additions can be told apart).
    fn additions(n: usize) -> Vec<ListOp> {
        let base = datetime!(2026-12-07 12:00 UTC);
        (0..n)
            .map(|i| {
                let k = i % (n / 3).max(1);
                let list = ["community", "a-list", "zz"][k % 3];
                let value = parse_target(&format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)).expect("an address");
                let at = base + time::Duration::seconds(i as i64);
                ListOp::Add(ListEntry {
                    list: list.into(),
                    value,
                    scope: Scope::of(value),
                    scenario: format!("s{i}"),
                    remediation: Remediation::Ban,
                    rule: Rule::Operator,
                    listed_at: at,
                    expires_at: at + time::Duration::hours(1),
                    seq: 0,
                })
            })
            .collect()
    }

    /// An entry row's (list, stored text), and its `listed_at`, scenario and seq.
    type Key = (String, String);
    type Row = (OffsetDateTime, String, i64);

    #[tokio::test]
    async fn entry_rows_hold_each_key_once_as_its_last_addition_left_it_in_key_order() {
        // Below and above the size worked out on another thread.
        for n in [40, 3 * ENTRY_ROWS_ELSEWHERE_AT_LEAST] {
            let ops = additions(n);
            let adds = numbered_adds(&ops, 100);
            let mut expected: BTreeMap<Key, Row> = BTreeMap::new();
            for add in &adds {
                let e = add.entry;
                let slot = expected.entry((e.list.clone(), display_target(e.value))).or_insert((e.listed_at, String::new(), 0));
                slot.1.clone_from(&e.scenario);
                slot.2 = add.seq;
            }
            assert!(expected.len() < adds.len(), "the run repeats values");
            let rows = begin_entry_rows(&adds).rows(&adds).await;
            let got: Vec<(Key, Row)> = rows
                .iter()
                .map(|r| ((r.entry.list.clone(), r.value.clone()), (r.listed_at, r.entry.scenario.clone(), r.seq)))
                .collect();
            assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{n} additions");
        }
    }
}
