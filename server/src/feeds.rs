//! External feeds: operator-managed block lists whose entries come from a URL (plain lists, CSV,
//! FireHOL, Spamhaus, ipsum, another Palisade). This module owns one refresh of one feed: claim
//! it, fetch the body conditionally ([`fetch`]), read it ([`parse`]), drop what may never be
//! listed, and apply the difference from the list's current entries through
//! [`ListStore::apply_list_ops`](crate::store::ListStore::apply_list_ops). A failing fetch or an
//! unusable body changes no entry: the last good copy stands, and the feed's state says why.
//! Scheduling is [`crate::jobs::feeds`]; the operator's actions are [`crate::manage::feeds`].
//! Making a change visible (snapshots, other replicas) is the caller's part.

pub mod fetch;
pub mod parse;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ipnet::IpNet;
use time::OffsetDateTime;

use self::fetch::{FetchRequest, Fetched};
use self::parse::FeedFormat;
use crate::config::Secret;
use crate::domain::listing::{Remediation, Rule};
use crate::domain::signal::Scope;
use crate::store::{AttemptOutcome, Feed, FeedAttempt, ListEntry, ListOp, Store, StoreError};

/// How long a refresh holds its claim: longer than a fetch may take, so a live refresh is never
/// doubled, and short enough that one whose replica died is retried soon.
pub const CLAIM: time::Duration = time::Duration::minutes(10);

/// The removal reason of an entry the source no longer lists.
pub const REMOVED_REASON: &str = "feed";

/// How a refresh went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// A copy was read and applied.
    Loaded(LoadReport),
    /// The source answered 304; nothing was read or written.
    NotModified,
    /// Nothing was applied; the last good copy stands.
    Failed(String),
    /// Another refresh of the feed is under way.
    Busy,
}

impl Refresh {
    /// A short name: `loaded`, `not_modified`, `failed`, `busy`.
    pub fn name(&self) -> &'static str {
        match self {
            Refresh::Loaded(_) => "loaded",
            Refresh::NotModified => "not_modified",
            Refresh::Failed(_) => "failed",
            Refresh::Busy => "busy",
        }
    }
}

/// What a load changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Entries the list did not hold.
    pub added: usize,
    /// Entries held whose lifetime was renewed.
    pub renewed: usize,
    /// Entries the source no longer lists.
    pub removed: usize,
    /// Entries dropped for lying in never-block space.
    pub never_block: usize,
    /// Lines that were not an address or CIDR.
    pub rejected: usize,
    /// The first few of those, `line N: why`.
    pub reasons: Vec<String>,
    /// Entries the list holds now.
    pub entries: usize,
}

impl LoadReport {
    /// Whether the list's entries changed.
    pub fn changed(&self) -> bool {
        self.added + self.renewed + self.removed > 0
    }
}

/// Refreshes feeds: the store, the HTTP client and the server's own addresses (never listed).
pub struct Feeds {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    own_addresses: Vec<IpNet>,
}

impl Feeds {
    /// Feeds over `store`, never listing `own_addresses`.
    pub fn new(store: Arc<dyn Store>, own_addresses: Vec<IpNet>) -> Self {
        Feeds { store, client: fetch::client(), own_addresses }
    }

    /// The store the feeds live in.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Refreshes one feed now. A conditional GET unless `force`, or unless the entries' lifetime
    /// is half spent since the last load (only a load renews them). Records the attempt and sets
    /// the feed's metrics. `Err` only when the store fails (the attempt is then recorded as
    /// failed when the store still answers).
    pub async fn refresh(&self, feed: &Feed, now: OffsetDateTime, force: bool) -> Result<Refresh, StoreError> {
        let name = feed.definition.name.as_str();
        if !self.store.claim_feed(name, now, now + CLAIM).await? {
            return Ok(Refresh::Busy);
        }
        let (refresh, outcome) = match self.attempt(feed, now, force).await {
            Ok(Attempt::Loaded { report, etag, last_modified }) => {
                let entries = i64::try_from(report.entries).unwrap_or(i64::MAX);
                (Refresh::Loaded(report), AttemptOutcome::Loaded { etag, last_modified, entries })
            }
            Ok(Attempt::NotModified) => (Refresh::NotModified, AttemptOutcome::NotModified),
            Ok(Attempt::Failed(error)) => (Refresh::Failed(error.clone()), AttemptOutcome::Failed { error }),
            Err(error) => {
                let failed = AttemptOutcome::Failed { error: format!("the database failed: {error}") };
                drop(self.store.record_feed_attempt(name, &FeedAttempt { at: now, outcome: failed }).await);
                record_failure(name);
                return Err(error);
            }
        };
        match &refresh {
            Refresh::Loaded(report) => {
                tracing::info!(
                    feed = name,
                    added = report.added,
                    renewed = report.renewed,
                    removed = report.removed,
                    never_block = report.never_block,
                    rejected = report.rejected,
                    entries = report.entries,
                    "feed loaded"
                );
                metrics::gauge!("palisade_feed_entries", "feed" => name.to_string()).set(report.entries as f64);
                record_success(name, now);
            }
            Refresh::NotModified => record_success(name, now),
            Refresh::Failed(error) => {
                tracing::warn!(feed = name, %error, "feed refresh failed; the last good copy stands");
                record_failure(name);
            }
            Refresh::Busy => {}
        }
        self.store.record_feed_attempt(name, &FeedAttempt { at: now, outcome }).await?;
        Ok(refresh)
    }

    /// Fetches, reads and applies one copy. `Ok(Attempt::Failed)` when nothing was applied.
    async fn attempt(&self, feed: &Feed, now: OffsetDateTime, force: bool) -> Result<Attempt, StoreError> {
        let definition = &feed.definition;
        let name = definition.name.as_str();
        let format: FeedFormat = match definition.format.parse() {
            Ok(format) => format,
            Err(message) => return Ok(Attempt::Failed(message)),
        };
        let lifetime = time::Duration::seconds(definition.lifetime_secs);
        let renewal_due = feed.state.last_loaded_at.is_none_or(|at| now - at >= lifetime / 2);
        let conditional = !force && !renewal_due;
        let request = FetchRequest {
            url: &definition.url,
            api_key: definition.api_key.as_ref().map(Secret::expose),
            etag: feed.state.etag.as_deref().filter(|_| conditional),
            last_modified: feed.state.last_modified.as_deref().filter(|_| conditional),
            max_bytes: u64::try_from(definition.max_bytes).unwrap_or(0),
        };
        let (bytes, etag, last_modified) = match fetch::fetch(&self.client, request).await {
            Ok(Fetched::NotModified) => return Ok(Attempt::NotModified),
            Ok(Fetched::Body { bytes, etag, last_modified }) => (bytes, etag, last_modified),
            Err(error) => return Ok(Attempt::Failed(error)),
        };
        let text = String::from_utf8_lossy(&bytes);
        let parsed = parse::parse(format, &text, u32::try_from(definition.min_count).unwrap_or(u32::MAX));
        if let Err(error) = parsed.verdict(usize::try_from(definition.max_entries).unwrap_or(usize::MAX)) {
            return Ok(Attempt::Failed(error));
        }
        let never_block = crate::serving::load_never_block(self.store.as_ref(), &self.own_addresses).await?;
        let current: HashMap<IpNet, ListEntry> =
            self.store.list_entries(name).await?.into_iter().map(|entry| (entry.value, entry)).collect();
        let expires_at = now + lifetime;
        let renew_before = now + lifetime / 2;
        let mut report = LoadReport { rejected: parsed.rejected, reasons: parsed.reasons, ..LoadReport::default() };
        let mut ops = Vec::new();
        let mut kept = HashSet::new();
        for net in parsed.entries {
            if !never_block.allows_net(net) {
                report.never_block += 1;
                continue;
            }
            kept.insert(net);
            match current.get(&net) {
                Some(held) if held.expires_at >= renew_before => {}
                Some(held) => {
                    report.renewed += 1;
                    ops.push(ListOp::Add(entry(name, net, held.listed_at, expires_at)));
                }
                None => {
                    report.added += 1;
                    ops.push(ListOp::Add(entry(name, net, now, expires_at)));
                }
            }
        }
        for value in current.keys().filter(|value| !kept.contains(*value)) {
            report.removed += 1;
            ops.push(ListOp::Remove { list: name.to_string(), value: *value, reason: REMOVED_REASON.into() });
        }
        if !ops.is_empty() {
            self.store.apply_list_ops(&ops, now).await?;
            // The feed may have been removed while this copy was read; what was just written must
            // not outlive its list (a list created later under the name would inherit it).
            if !self.store.custom_lists().await?.iter().any(|list| list.name == name) {
                let undo: Vec<ListOp> = kept
                    .iter()
                    .map(|value| ListOp::Remove { list: name.to_string(), value: *value, reason: "list deleted".into() })
                    .collect();
                self.store.apply_list_ops(&undo, now).await?;
                return Ok(Attempt::Failed("the feed was removed during the refresh".into()));
            }
        }
        report.entries = kept.len();
        Ok(Attempt::Loaded { report, etag, last_modified })
    }
}

/// One attempt, before it is recorded.
enum Attempt {
    Loaded { report: LoadReport, etag: Option<String>, last_modified: Option<String> },
    NotModified,
    Failed(String),
}

/// A feed's entry for `net`, served with the feed's name as scenario.
fn entry(list: &str, net: IpNet, listed_at: OffsetDateTime, expires_at: OffsetDateTime) -> ListEntry {
    ListEntry {
        list: list.to_string(),
        value: net,
        scope: Scope::of(net),
        scenario: list.to_string(),
        remediation: Remediation::Ban,
        rule: Rule::Operator,
        listed_at,
        expires_at,
        seq: 0,
    }
}

fn record_success(name: &str, now: OffsetDateTime) {
    metrics::gauge!("palisade_feed_up", "feed" => name.to_string()).set(1.0);
    metrics::gauge!("palisade_feed_last_success_timestamp_seconds", "feed" => name.to_string()).set(now.unix_timestamp() as f64);
}

fn record_failure(name: &str) {
    metrics::gauge!("palisade_feed_up", "feed" => name.to_string()).set(0.0);
    metrics::counter!("palisade_feed_failures_total", "feed" => name.to_string()).increment(1);
}

/// Sets every feed's gauges from its stored state, so any replica's `/metrics` shows them (also
/// before this process refreshed one): entries, last success, and whether the last attempt
/// succeeded.
pub fn publish_metrics(feeds: &[Feed]) {
    for feed in feeds {
        let name = feed.definition.name.clone();
        let up = if feed.state.last_error.is_some() { 0.0 } else { 1.0 };
        metrics::gauge!("palisade_feed_up", "feed" => name.clone()).set(up);
        metrics::gauge!("palisade_feed_entries", "feed" => name.clone()).set(feed.state.entries as f64);
        metrics::counter!("palisade_feed_failures_total", "feed" => name.clone()).increment(0);
        if let Some(at) = feed.state.last_success_at {
            metrics::gauge!("palisade_feed_last_success_timestamp_seconds", "feed" => name).set(at.unix_timestamp() as f64);
        }
    }
}
