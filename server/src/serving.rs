//! In-memory blocklist snapshots, advanced by seq, and what is rendered from them. Each replica
//! holds the current membership of every served list in memory together with the recent part of
//! its change log; readers take an `Arc` of the current snapshot and never wait for a writer, and
//! a new snapshot replaces the old one atomically. The poller (one background task per replica)
//! reads `Store::list_changes` after the snapshot's seq; the consensus worker can poke it so a
//! commit is served at once. Readers long-polling for a change wait on a counter bumped at every
//! advance, and are let go at shutdown. This module owns no HTTP and no SQL: it reaches the store only
//! through the `Store` trait, and the renderers in [`render`] are pure.

pub mod cache;
pub mod changelog;
pub mod custom;
pub mod entry;
pub mod render;

pub use self::cache::RenderCache;
pub use self::changelog::{Change, ChangeLog, Op};
pub use self::entry::{Entry, Meta, SharedEntry, Value};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::lists::{COMMUNITY, pool_account};
use crate::engine::never_block::NeverBlock;
use crate::store::{ChangeOp, CustomList, ListChange, ListEntry, ListStore, MemberPages, StoreError};

/// How many changes a fetch from the store asks for at a time: as many as a page of members, for
/// the same reason ([`crate::store::MEMBER_PAGE`]).
const FETCH_BATCH: u32 = crate::store::MEMBER_PAGE;

/// The membership of one list at one seq, and the changes that led to it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// List name.
    pub list: String,
    /// Newest seq applied.
    pub seq: i64,
    /// Current members, sorted by prefix, one per prefix (shared with what the list serves when
    /// every member is served).
    pub entries: Arc<Vec<SharedEntry>>,
    /// Retained changes, in seq order.
    pub changes: ChangeLog,
    /// Oldest cursor a delta can be computed from: changes after it are all retained.
    pub oldest_cursor: i64,
    /// When the newest change applied was made (`Last-Modified` of the list), if known.
    pub changed_at: Option<OffsetDateTime>,
}

/// A delta computed for a cursor.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// Entries added or updated since the cursor (their latest state).
    pub added: Vec<SharedEntry>,
    /// Entries removed since the cursor (as they were when removed).
    pub removed: Vec<SharedEntry>,
    /// The cursor to send next time.
    pub seq: i64,
}

/// Why a delta cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The cursor predates the retained change log: the client must download the full list.
    #[error("cursor {cursor} is older than the retained change log (oldest usable cursor {oldest}); download the full list")]
    TooOld {
        /// The cursor given.
        cursor: i64,
        /// The oldest usable cursor.
        oldest: i64,
    },
}

impl Snapshot {
    /// The changes since `cursor`, collapsed per value (the latest change wins). A cursor ahead
    /// of this snapshot (another replica is further along) yields an empty delta at that cursor.
    pub fn delta(&self, cursor: i64) -> Result<Delta, DeltaError> {
        self.delta_upto(cursor, self.seq.max(cursor))
    }

    /// [`Snapshot::delta`] limited to changes with `seq <= upto`, the cursor returned being `upto`
    /// (used when one cursor follows several lists: each is read up to the same point).
    pub fn delta_upto(&self, cursor: i64, upto: i64) -> Result<Delta, DeltaError> {
        if cursor < self.oldest_cursor {
            return Err(DeltaError::TooOld { cursor, oldest: self.oldest_cursor });
        }
        let mut delta = Delta { seq: upto.max(cursor), ..Delta::default() };
        if cursor >= self.seq {
            return Ok(delta);
        }
        let mut latest: HashMap<IpNet, (Op, &SharedEntry)> = HashMap::new();
        let mut order = Vec::new();
        for (op, entry) in self.changes.between(cursor, upto) {
            if latest.insert(entry.net, (op, entry)).is_none() {
                order.push(entry.net);
            }
        }
        for net in order {
            if let Some(&(op, entry)) = latest.get(&net) {
                match op {
                    Op::Add => delta.added.push(entry.clone()),
                    Op::Remove => delta.removed.push(entry.clone()),
                }
            }
        }
        Ok(delta)
    }

    /// Members that have not expired at `now`, sorted by prefix.
    pub fn live(&self, now: OffsetDateTime) -> impl Iterator<Item = &SharedEntry> {
        self.entries.iter().filter(move |e| e.live_at(now))
    }

    /// The members live at `now`, sorted by prefix: the member vector itself, shared, when none
    /// has expired (a startup pull of a million entries then copies nothing), else a copy of those
    /// live.
    pub fn live_shared(&self, now: OffsetDateTime) -> Arc<Vec<SharedEntry>> {
        if self.entries.iter().all(|e| e.live_at(now)) {
            return Arc::clone(&self.entries);
        }
        Arc::new(self.live(now).cloned().collect())
    }

    /// The member for exactly `net`, if any.
    pub fn get(&self, net: &IpNet) -> Option<&SharedEntry> {
        self.entries.binary_search_by(|e| e.net.cmp(net)).ok().map(|i| &self.entries[i])
    }
}

/// Orders entries for a consumer: those of its declared scenarios first (when tailoring), then
/// the most recently written. Pure: the same snapshot and request give the same view everywhere.
pub fn rank(entries: &mut [SharedEntry], scenarios: &[String], tailor: bool) {
    let declared: std::collections::HashSet<&str> = scenarios.iter().map(String::as_str).collect();
    let key = |e: &SharedEntry| (!(tailor && declared.contains(e.scenario())), std::cmp::Reverse(e.seq), e.net);
    entries.sort_unstable_by_key(key);
}

/// The per-consumer view: the live entries, all of them in prefix order (shared with the
/// snapshot when none has expired: see [`Snapshot::live_shared`]) when they fit in `cap`, else
/// the `cap` first as [`rank`] orders them, in that order. Ranking only decides what a cap keeps.
pub fn view(snapshot: &Snapshot, now: OffsetDateTime, scenarios: &[String], tailor: bool, cap: usize) -> Arc<Vec<SharedEntry>> {
    if snapshot.entries.len() <= cap {
        return snapshot.live_shared(now);
    }
    // Sized for every member up front: grown by doubling, a million-entry view would briefly hold
    // one and a half times itself.
    let mut live: Vec<SharedEntry> = Vec::with_capacity(snapshot.entries.len());
    live.extend(snapshot.live(now).cloned());
    if live.len() > cap {
        let declared: std::collections::HashSet<&str> = scenarios.iter().map(String::as_str).collect();
        let key = |e: &SharedEntry| (!(tailor && declared.contains(e.scenario())), std::cmp::Reverse(e.seq), e.net);
        live.select_nth_unstable_by_key(cap, key);
        live.truncate(cap);
    }
    rank(&mut live, scenarios, tailor);
    Arc::new(live)
}

/// The `cap` entries a capped reader of a native endpoint gets: ranked as the community view
/// ranks them (without tailoring: a native reader declares no scenarios), then sorted by prefix
/// as full lists are. `entries` is what the list serves (live, allowed); all of it when it
/// holds at most `cap`.
pub fn top(entries: &[SharedEntry], cap: usize) -> Vec<SharedEntry> {
    let mut chosen: Vec<SharedEntry> = entries.to_vec();
    if chosen.len() > cap {
        let key = |e: &SharedEntry| (std::cmp::Reverse(e.seq), e.net);
        chosen.select_nth_unstable_by_key(cap, key);
        chosen.truncate(cap);
        chosen.sort_unstable_by_key(|e| e.net);
    }
    chosen
}

/// Holds each distinct [`Meta`] once. Looked up by a hash of the four texts, so finding the
/// shared copy allocates nothing.
#[derive(Debug, Default)]
struct Interner(HashMap<u64, Vec<Arc<Meta>>>);

impl Interner {
    fn meta(&mut self, scope: &str, scenario: &str, remediation: &str, rule: &str) -> Arc<Meta> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (scope, scenario, remediation, rule).hash(&mut hasher);
        let same = hasher.finish();
        let candidates = self.0.entry(same).or_default();
        let found = candidates
            .iter()
            .find(|m| (&*m.scope, &*m.scenario, &*m.remediation, &*m.rule) == (scope, scenario, remediation, rule));
        if let Some(meta) = found {
            return meta.clone();
        }
        let meta =
            Arc::new(Meta { scope: scope.into(), scenario: scenario.into(), remediation: remediation.into(), rule: rule.into() });
        candidates.push(meta.clone());
        meta
    }

    fn entry(&mut self, entry: &ListEntry, seq: i64) -> Entry {
        let meta = self.meta(entry.scope.as_str(), &entry.scenario, entry.remediation.as_str(), entry.rule.as_str());
        Entry::new(entry.value, meta, entry.listed_at, entry.expires_at, seq)
    }
}

/// Key of a rendered full list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenderKey {
    /// List name.
    pub list: String,
    /// Seq rendered.
    pub seq: i64,
    /// Never-block policy generation applied.
    pub policy: u64,
    /// Format and options.
    pub options: render::Options,
    /// Most entries served (`usize::MAX`: all of them).
    pub cap: usize,
    /// The rendering gzip-compressed (for clients that take gzip and not zstd): compressed once
    /// per rendering rather than once per download.
    pub gzip: bool,
}

/// What a list serves to firewalls and native clients at one seq: live entries that pass the
/// never-block policy, sorted by prefix. Prepared once per (seq, policy) so a request starts
/// streaming at once.
#[derive(Debug)]
pub struct Served {
    /// Seq of the snapshot it was prepared from.
    pub seq: i64,
    /// Generation of the never-block policy applied.
    pub policy: u64,
    /// The entries, sorted by prefix: the snapshot's own members when all of them are served.
    pub entries: Arc<Vec<SharedEntry>>,
}

/// The never-block policy with a generation that changes whenever its contents do.
#[derive(Debug, Default)]
struct Policy {
    fingerprint: u64,
    generation: u64,
    never_block: Arc<NeverBlock>,
}

/// Every served list of this replica, and the bytes rendered from them.
pub struct Lists {
    store: Arc<dyn ListStore>,
    own_addresses: Vec<IpNet>,
    custom: RwLock<Vec<CustomList>>,
    policy: RwLock<Policy>,
    served: Mutex<HashMap<String, Arc<Served>>>,
    snapshots: RwLock<HashMap<String, Arc<Snapshot>>>,
    /// Serialises refreshes so two callers never build the same snapshot twice.
    refreshing: tokio::sync::Mutex<()>,
    /// Lists whose first load runs in the background for [`Lists::loaded_by`].
    loading: Mutex<std::collections::HashSet<String>>,
    interner: Mutex<Interner>,
    cache: Mutex<RenderCache<RenderKey>>,
    retained_changes: usize,
    /// Poked after a commit so the poller does not wait for its next tick.
    pub changed: Arc<Notify>,
    /// Bumped whenever a snapshot advances: what long-polling readers wait on.
    advanced: tokio::sync::watch::Sender<u64>,
    /// Cancelled at shutdown, so long-polling readers answer at once instead of holding the drain.
    closing: CancellationToken,
}

impl std::fmt::Debug for Lists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lists").field("retained_changes", &self.retained_changes).finish_non_exhaustive()
    }
}

impl Lists {
    /// Serves lists read from `store`, keeping the newest `retained_changes` changes per list and
    /// never serving `own_addresses` (nor the special-purpose ranges, allowlists and canaries).
    pub fn new(store: Arc<dyn ListStore>, retained_changes: usize, own_addresses: Vec<IpNet>) -> Self {
        Lists {
            store,
            own_addresses,
            custom: RwLock::new(Vec::new()),
            policy: RwLock::new(Policy::default()),
            served: Mutex::new(HashMap::new()),
            snapshots: RwLock::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
            loading: Mutex::default(),
            interner: Mutex::new(Interner::default()),
            cache: Mutex::new(RenderCache::new(crate::config::DEFAULT_RENDER_CACHE_MB << 20)),
            retained_changes: retained_changes.max(1),
            changed: Arc::new(Notify::new()),
            advanced: tokio::sync::watch::Sender::new(0),
            closing: CancellationToken::new(),
        }
    }

    /// Waits until some snapshot advances past what `seen` last saw, `deadline` passes or the
    /// replica shuts down ([`Lists::stop_waiting`]); returns whether a snapshot advanced. Take
    /// `seen` from [`Lists::watch_advances`] *before* reading the snapshot the caller compares
    /// with, so an advance in between is not missed. Waiting costs no work: one waker per waiter.
    pub async fn wait_for_advance(&self, seen: &mut tokio::sync::watch::Receiver<u64>, deadline: tokio::time::Instant) -> bool {
        tokio::select! {
            changed = seen.changed() => changed.is_ok(),
            () = tokio::time::sleep_until(deadline) => false,
            () = self.closing.cancelled() => false,
        }
    }

    /// A receiver of snapshot advances, for [`Lists::wait_for_advance`].
    pub fn watch_advances(&self) -> tokio::sync::watch::Receiver<u64> {
        self.advanced.subscribe()
    }

    /// How many readers hold a long-poll now (waiting in [`Lists::wait_for_advance`] or about to).
    pub fn long_polls(&self) -> usize {
        self.advanced.receiver_count()
    }

    /// Ends every wait in [`Lists::wait_for_advance`], now and later (at shutdown).
    pub fn stop_waiting(&self) {
        self.closing.cancel();
    }

    /// The current snapshot of `list`, if it was loaded.
    pub fn current(&self, list: &str) -> Option<Arc<Snapshot>> {
        self.snapshots.read().ok()?.get(list).cloned()
    }

    /// Names of the loaded lists with their seq and size.
    pub fn summary(&self) -> Vec<(String, i64, usize)> {
        let mut lists: Vec<_> = self
            .snapshots
            .read()
            .map(|map| map.values().map(|s| (s.list.clone(), s.seq, s.entries.len())).collect())
            .unwrap_or_default();
        lists.sort();
        lists
    }

    /// The current snapshot of `list`, loading it from the store on first use.
    pub async fn get_or_load(&self, list: &str) -> Result<Arc<Snapshot>, StoreError> {
        match self.current(list) {
            Some(snapshot) => Ok(snapshot),
            None => self.refresh(list).await,
        }
    }

    /// The current snapshot of `list`, or `None` if its first load (started here in the
    /// background when nobody has started it) has not finished by `deadline`: for answers that
    /// can say "still loading" rather than hold a request for the length of a million-entry load.
    pub async fn loaded_by(self: &Arc<Self>, list: &str, deadline: tokio::time::Instant) -> Option<Arc<Snapshot>> {
        if let Some(snapshot) = self.current(list) {
            return Some(snapshot);
        }
        let start = self.loading.lock().is_ok_and(|mut loading| loading.insert(list.to_string()));
        if start {
            let (lists, name) = (self.clone(), list.to_string());
            tokio::spawn(async move {
                if let Err(error) = lists.get_or_load(&name).await {
                    tracing::warn!(%error, list = %name, "cannot load the list");
                }
                if let Ok(mut loading) = lists.loading.lock() {
                    loading.remove(&name);
                }
            });
        }
        let mut advances = self.watch_advances();
        loop {
            if let Some(snapshot) = self.current(list) {
                return Some(snapshot);
            }
            if !self.wait_for_advance(&mut advances, deadline).await {
                return self.current(list);
            }
        }
    }

    /// Brings `list` up to the store's newest seq and returns the new snapshot.
    pub async fn refresh(&self, list: &str) -> Result<Arc<Snapshot>, StoreError> {
        let _guard = self.refreshing.lock().await;
        let previous = self.current(list);
        let snapshot = match previous {
            None => {
                let started = std::time::Instant::now();
                let snapshot = Arc::new(self.load(list).await?);
                tracing::info!(
                    list,
                    entries = snapshot.entries.len(),
                    changes = snapshot.changes.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "list loaded"
                );
                snapshot
            }
            Some(previous) => {
                let changes = self.fetch_changes(list, previous.seq).await?;
                if changes.is_empty() {
                    return Ok(previous);
                }
                let snapshot = Arc::new(self.advance(&previous, changes));
                metrics::counter!("palisade_serving_snapshot_advances_total").increment(1);
                snapshot
            }
        };
        if let Ok(mut map) = self.snapshots.write() {
            map.insert(list.to_string(), snapshot.clone());
        }
        // One series per list, but not per account: pools (one per account) are left out.
        if pool_account(list).is_none() {
            metrics::gauge!("palisade_serving_list_seq", "list" => list.to_string()).set(snapshot.seq as f64);
            metrics::gauge!("palisade_serving_list_entries", "list" => list.to_string()).set(snapshot.entries.len() as f64);
        }
        self.evict_stale(list, snapshot.seq);
        self.advanced.send_modify(|generation| *generation = generation.wrapping_add(1));
        Ok(snapshot)
    }

    /// Re-reads the never-block policy (allowlists, canaries); a change invalidates what was
    /// prepared and rendered. Returns the current generation.
    pub async fn refresh_policy(&self) -> Result<u64, StoreError> {
        use std::hash::{Hash, Hasher};
        let canaries = self.store.list_canaries().await?;
        let allowlist = self.store.list_allowlist().await?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        canaries.iter().for_each(|c| c.value.hash(&mut hasher));
        allowlist.iter().for_each(|a| a.value.hash(&mut hasher));
        let fingerprint = hasher.finish();
        let current = self.policy.read().map(|p| (p.fingerprint, p.generation)).unwrap_or_default();
        if current.1 > 0 && current.0 == fingerprint {
            return Ok(current.1);
        }
        let never_block = Arc::new(load_never_block(self.store.as_ref(), &self.own_addresses).await?);
        let generation = current.1 + 1;
        if let Ok(mut policy) = self.policy.write() {
            *policy = Policy { fingerprint, generation, never_block };
        }
        Ok(generation)
    }

    /// The never-block policy in force (as of the last refresh; read on first use).
    pub async fn never_block(&self) -> Result<Arc<NeverBlock>, StoreError> {
        if self.policy.read().map(|p| p.generation).unwrap_or_default() == 0 {
            self.refresh_policy().await?;
        }
        Ok(self.policy.read().map(|p| p.never_block.clone()).unwrap_or_default())
    }

    /// What `list` serves now (live, allowed, sorted), prepared on first use after a change.
    pub async fn served(&self, list: &str) -> Result<Arc<Served>, StoreError> {
        let snapshot = self.get_or_load(list).await?;
        let current = || self.policy.read().map(|p| (p.generation, p.never_block.clone())).unwrap_or_default();
        let (mut generation, mut never_block) = current();
        if generation == 0 {
            self.refresh_policy().await?;
            (generation, never_block) = current();
        }
        if let Some(served) = self.served.lock().ok().and_then(|map| map.get(list).cloned())
            && served.seq == snapshot.seq
            && served.policy == generation
        {
            return Ok(served);
        }
        // Done once per (seq, policy), normally by the poller right after it advanced the list.
        let now = OffsetDateTime::now_utc();
        // An allowlist is served as the operator wrote it; block lists pass the never-block policy.
        let allowlist = self.names().iter().any(|(name, kind)| name == list && kind == "allow");
        // Members are held sorted by prefix, so what is served is too. Usually every member is
        // served, and the members are shared rather than copied (a pointer per entry).
        let serves = |e: &SharedEntry| e.live_at(now) && (allowlist || never_block.allows_net(e.net));
        let entries = if snapshot.entries.iter().all(serves) {
            snapshot.entries.clone()
        } else {
            Arc::new(snapshot.entries.iter().filter(|e| serves(e)).cloned().collect())
        };
        let prepared = Arc::new(Served { seq: snapshot.seq, policy: generation, entries });
        if let Ok(mut map) = self.served.lock() {
            map.insert(list.to_string(), prepared.clone());
        }
        Ok(prepared)
    }

    /// Re-reads which operator-managed lists exist; snapshots of deleted ones are dropped.
    pub async fn refresh_custom(&self) -> Result<Vec<CustomList>, StoreError> {
        let custom = self.store.custom_lists().await?;
        if let Ok(mut snapshots) = self.snapshots.write() {
            snapshots
                .retain(|name, _| name == COMMUNITY || pool_account(name).is_some() || custom.iter().any(|c| &c.name == name));
        }
        if let Ok(mut current) = self.custom.write() {
            current.clone_from(&custom);
        }
        Ok(custom)
    }

    /// The operator-managed list `name`, as of the last refresh.
    pub fn custom(&self, name: &str) -> Option<CustomList> {
        self.custom.read().ok()?.iter().find(|c| c.name == name).cloned()
    }

    /// Whether machines subscribed to the operator-managed list `name` may receive it (every
    /// visibility but `operator`).
    pub fn serves_subscribers(&self, name: &str) -> bool {
        self.custom(name).is_some_and(|c| c.visibility != "operator")
    }

    /// The served lists as (name, kind): the community list (`consensus`), then the
    /// operator-managed ones (`block` or `allow`) as of the last refresh.
    pub fn names(&self) -> Vec<(String, String)> {
        let mut names = vec![(COMMUNITY.to_string(), "consensus".to_string())];
        if let Ok(custom) = self.custom.read() {
            names.extend(custom.iter().map(|c| (c.name.clone(), c.kind.clone())));
        }
        names
    }

    /// Refreshes the community list and every operator-managed list.
    pub async fn refresh_all(&self) -> Result<(), StoreError> {
        self.refresh_custom().await?;
        let generation = self.refresh_policy().await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|key| key.policy == generation);
        }
        let mut names: Vec<String> = self.snapshots.read().map(|map| map.keys().cloned().collect()).unwrap_or_default();
        if !names.iter().any(|n| n == COMMUNITY) {
            names.push(COMMUNITY.to_string());
        }
        for name in names {
            self.refresh(&name).await?;
            // Prepared ahead of the first request, so that request starts streaming at once.
            self.served(&name).await?;
        }
        Ok(())
    }

    async fn fetch_changes(&self, list: &str, after: i64) -> Result<Vec<ListChange>, StoreError> {
        let mut all = Vec::new();
        let mut cursor = after;
        loop {
            let batch = self.store.list_changes(list, cursor, FETCH_BATCH).await?;
            let full = batch.len() as u32 == FETCH_BATCH;
            cursor = batch.last().map_or(cursor, |c| c.seq);
            all.extend(batch);
            if !full {
                return Ok(all);
            }
        }
    }

    /// First load: the current membership, then the retained window of the change log. The seq is
    /// read first, so changes committed while the membership is read are applied again on top
    /// (adds and removes are idempotent), never missed. The membership is read in pages and the
    /// change log in batches, each converted as it arrives, the log's entries sharing the
    /// membership's objects where they are the same state: a list of a million entries is held
    /// once, not twice, and its database rows are never all in memory at once.
    async fn load(&self, list: &str) -> Result<Snapshot, StoreError> {
        let seq = self.store.list_seq(list).await?;
        let window_start = (seq - self.retained_changes as i64).max(0);
        let mut entries: Vec<SharedEntry> = Vec::new();
        let mut newest_member = 0;
        let mut pages = MemberPages::new(self.store.as_ref(), list);
        while let Some(page) = pages.next().await? {
            let mut interner = self.interner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for member in &page {
                newest_member = newest_member.max(member.seq);
                entries.push(SharedEntry::new(interner.entry(member, member.seq)));
            }
        }
        // Pages come in the store's text order; members are held in prefix order, one per prefix.
        entries.sort_unstable_by(|a, b| a.net.cmp(&b.net).then(b.seq.cmp(&a.seq)));
        entries.dedup_by_key(|e| e.net);
        entries.shrink_to_fit();
        let mut log = ChangeLog::default();
        let mut replay: Vec<ListChange> = Vec::new();
        let mut changed_at = None;
        let mut cursor = window_start;
        loop {
            let batch = self.store.list_changes(list, cursor, FETCH_BATCH).await?;
            let full = batch.len() as u32 == FETCH_BATCH;
            cursor = batch.last().map_or(cursor, |c| c.seq);
            changed_at = changed_at.max(batch.iter().filter(|c| c.seq <= seq).map(|c| c.at).max());
            replay.extend(batch.iter().filter(|c| c.seq > seq).cloned());
            log.append(&self.convert_shared(&batch, &entries));
            if !full {
                break;
            }
        }
        let base = Snapshot {
            list: list.to_string(),
            seq,
            entries: Arc::new(entries),
            changes: ChangeLog::default(),
            oldest_cursor: 0,
            changed_at,
        };
        let mut snapshot = self.advance(&base, replay);
        // Every change after `window_start` was fetched, so any cursor from there on is answerable.
        snapshot.oldest_cursor = window_start;
        snapshot.changes = log;
        snapshot.seq = snapshot.seq.max(seq).max(newest_member);
        Ok(snapshot)
    }

    /// [`Lists::convert`], reusing the entry of `members` when a change wrote exactly it.
    fn convert_shared(&self, changes: &[ListChange], members: &[SharedEntry]) -> Vec<Change> {
        let mut interner = self.interner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        changes
            .iter()
            .map(|c| {
                let op = match c.op {
                    ChangeOp::Add => Op::Add,
                    ChangeOp::Remove => Op::Remove,
                };
                let net = c.entry.value;
                let shared = members
                    .binary_search_by(|e| e.net.cmp(&net))
                    .ok()
                    .map(|i| &members[i])
                    .filter(|e| op == Op::Add && e.seq == c.seq)
                    .cloned();
                let entry = match shared {
                    Some(entry) => entry,
                    None => SharedEntry::new(interner.entry(&c.entry, c.seq)),
                };
                Change { op, entry }
            })
            .collect()
    }

    fn convert(&self, changes: &[ListChange]) -> Vec<Change> {
        let mut interner = self.interner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        changes
            .iter()
            .map(|c| {
                let entry = interner.entry(&c.entry, c.seq);
                let op = match c.op {
                    ChangeOp::Add => Op::Add,
                    ChangeOp::Remove => Op::Remove,
                };
                Change { op, entry: SharedEntry::new(entry) }
            })
            .collect()
    }

    /// A new snapshot: `previous` with `changes` applied, the log trimmed to the retained size.
    /// Costs the new changes and one pass over the members, not the length of the log.
    fn advance(&self, previous: &Snapshot, changes: Vec<ListChange>) -> Snapshot {
        let changed_at = changes.iter().map(|c| c.at).max().max(previous.changed_at);
        let new_changes = self.convert(&changes);
        let mut seq = previous.seq;
        // The latest change per prefix: the entry it leaves, or none.
        let mut updates: std::collections::BTreeMap<IpNet, Option<SharedEntry>> = std::collections::BTreeMap::new();
        for change in &new_changes {
            updates.insert(change.entry.net, (change.op == Op::Add).then(|| change.entry.clone()));
            seq = seq.max(change.seq());
        }
        let entries = Arc::new(merge(&previous.entries, updates));
        // The log is shared with `previous`: the new changes are appended as a run, not copied with it.
        let mut log = previous.changes.clone();
        log.append(&new_changes);
        let oldest_cursor = log.trim(self.retained_changes).unwrap_or(previous.oldest_cursor);
        Snapshot { list: previous.list.clone(), seq, entries, changes: log, oldest_cursor, changed_at }
    }

    /// Chunks rendered earlier for `key`, if any.
    pub fn cached(&self, key: &RenderKey) -> Option<Arc<Vec<Bytes>>> {
        self.cache.lock().ok()?.get(key)
    }

    /// Keeps the chunks rendered for `key` (only while its seq is current, and within the
    /// render cache's budget).
    pub fn store_rendered(&self, key: RenderKey, bytes: Arc<Vec<Bytes>>) {
        let current = self.current(&key.list).map(|s| s.seq);
        if current == Some(key.seq)
            && let Ok(mut cache) = self.cache.lock()
        {
            if !cache.insert(key, bytes) {
                metrics::counter!("palisade_serving_render_cache_refused_total").increment(1);
            }
            metrics::gauge!("palisade_serving_render_cache_bytes").set(cache.bytes() as f64);
        }
    }

    /// Bounds the renderings kept for the next download to `bytes` (see [`RenderCache`]).
    pub fn with_render_cache_bytes(self, bytes: usize) -> Self {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = RenderCache::new(bytes);
        }
        self
    }

    fn evict_stale(&self, list: &str, seq: i64) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|key| key.list != list || key.seq == seq);
            metrics::gauge!("palisade_serving_render_cache_bytes").set(cache.bytes() as f64);
        }
    }
}

/// `members` (sorted by prefix) with `updates` applied: an entry replaces the member of its
/// prefix or is inserted in order, `None` removes it. One pass over the members.
fn merge(members: &[SharedEntry], updates: std::collections::BTreeMap<IpNet, Option<SharedEntry>>) -> Vec<SharedEntry> {
    let mut merged = Vec::with_capacity(members.len() + updates.len());
    let mut next = 0;
    for (net, update) in updates {
        let at = next + members[next..].partition_point(|e| e.net < net);
        merged.extend_from_slice(&members[next..at]);
        next = at;
        if members.get(next).is_some_and(|e| e.net == net) {
            next += 1;
        }
        merged.extend(update);
    }
    merged.extend_from_slice(&members[next..]);
    merged
}

/// Reads the operator's allowlists and canaries and makes the never-block policy of them, the
/// fixed ranges and `own_addresses`.
pub async fn load_never_block(store: &dyn ListStore, own_addresses: &[IpNet]) -> Result<NeverBlock, StoreError> {
    let canaries = store.list_canaries().await?;
    let allowlist = store.list_allowlist().await?;
    Ok(NeverBlock::new(own_addresses, allowlist.iter().map(|a| a.value.as_str()), canaries.iter().map(|c| c.value.as_str())))
}

/// Advances every list every `interval`, or at once when [`Lists::changed`] is poked, until
/// `cancel`; then ends the long-polls waiting for an advance that will not come.
pub async fn run_poller(lists: Arc<Lists>, interval: Duration, cancel: CancellationToken) {
    let changed = lists.changed.clone();
    while !cancel.is_cancelled() {
        if let Err(error) = lists.refresh_all().await {
            tracing::warn!(%error, "cannot advance the served lists");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = changed.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
    lists.stop_waiting();
}

#[cfg(test)]
mod tests;
