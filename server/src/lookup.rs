//! The IP lookup use case shared by the CTI-compatible and native routes and the console's
//! analyzer: gathers the evidence about one address (engine state, blocklist membership,
//! never-block ranges, enrichment), has [`crate::reputation`] score it, and shapes the CTI
//! `SmokeItem` and the native answer. A [`Lookup`] holds the handles it reads (the store through
//! the `Store` trait, the served lists, the enrichment databases) and fails with a
//! [`UseCaseError`]: it knows neither HTTP nor SQL, and charging the caller's quota is the
//! caller's part. The time is a parameter.
//!
//! Lookups are the most frequent request a paying user makes, so a repeated lookup touches no
//! database: list membership comes from the replica's in-memory snapshot, and the engine state
//! and never-block ranges it reads are kept for a few seconds ([`LookupCache`]). An answer is
//! therefore at most [`TARGET_TTL`] behind the consensus worker. The /24 around the address is
//! judged from the same in-memory community snapshot (a binary search, at most
//! [`RANGE_EXAMINED_MAX`] entries looked at), never from the store.
//!
//! The query search and the `fire` feed ([`Lookup::search`], [`Lookup::fire`]) cover the
//! addresses Palisade has an opinion it publishes about: the served community list (live,
//! never-block ranges, allowlists and canaries removed). Matching runs in memory over at most
//! [`SEARCH_SCAN_MAX`] entries of it, from the listing's scenario, the enrichment databases and
//! the never-block categories; only the entries of the page asked for are then looked up in full.

pub mod query;
pub mod smoke;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use palisade_api::cti::{FireItem, SmokeItem};
use palisade_api::native::IpLookupResponse;
use time::OffsetDateTime;

use self::query::{Facts, Query};
pub use self::smoke::{Found, scores, smoke_item};
use crate::domain::lists::COMMUNITY;
use crate::domain::net::{display_target, parse_address, parse_network};
use crate::domain::time::rfc3339;
use crate::engine::params::Params;
use crate::engine::{Engine, TargetState};
use crate::enrich::Enricher;
use crate::reputation::{Evidence, assess, scenarios};
use crate::serving::{Lists, SharedEntry, Snapshot};
use crate::store::{ConsensusStore, ListStore, ReportQuery, ReportSummary, SignalStore, Store};
use crate::use_case::UseCaseError;

/// How long the never-block ranges are reused before being read again.
const ALLOWLIST_TTL: Duration = Duration::from_secs(10);

/// How long an address's engine state (or its absence) is reused before being read again.
pub const TARGET_TTL: Duration = Duration::from_secs(5);

/// Most addresses whose engine state is kept; past it the cache starts over (a burst of
/// one-off lookups must not grow memory without bound).
const TARGET_CACHE_MAX: usize = 200_000;

/// Most community entries inside one /24 (or /64) examined to judge that range.
pub const RANGE_EXAMINED_MAX: usize = 256;

/// Most entries of the served community list a search examines (the first ones in prefix
/// order): a search's in-memory work is bounded whatever the list's size.
pub const SEARCH_SCAN_MAX: usize = 100_000;

/// Most items on one page of a search or of the `fire` feed.
pub const PAGE_MAX: u64 = 100;

/// Never-block ranges with their categories.
type Ranges = Arc<Vec<(IpNet, String)>>;

/// An engine state read at an instant (`None`: the engine knows nothing of the address).
type CachedTarget = (Instant, Option<Arc<TargetState>>);

/// Report counts about one address read at an instant, per `maxAgeInDays` asked.
type CachedSummaries = Vec<(i64, Instant, ReportSummary)>;

/// What one replica remembers between lookups: the never-block ranges with their categories
/// (reread at most every [`ALLOWLIST_TTL`]), recently read engine states and report counts (for
/// [`TARGET_TTL`]).
#[derive(Default)]
pub struct LookupCache {
    snapshot: Mutex<Option<(Instant, Ranges)>>,
    targets: Mutex<HashMap<IpNet, CachedTarget>>,
    summaries: Mutex<HashMap<IpAddr, CachedSummaries>>,
}

impl LookupCache {
    /// The engine state of `target`, from the cache or the store.
    async fn target(&self, store: &dyn ConsensusStore, target: IpNet) -> Result<Option<Arc<TargetState>>, UseCaseError> {
        if let Some((at, found)) = self.targets.lock().unwrap_or_else(|p| p.into_inner()).get(&target)
            && at.elapsed() < TARGET_TTL
        {
            return Ok(found.clone());
        }
        let found = store.engine_target(target).await?.map(Arc::new);
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if targets.len() >= TARGET_CACHE_MAX {
            targets.clear();
        }
        targets.insert(target, (Instant::now(), found.clone()));
        Ok(found)
    }

    /// The report counts about `ip` over the last `max_age_days`, from the cache or the store.
    async fn summary(
        &self,
        store: &dyn SignalStore,
        ip: IpAddr,
        max_age_days: i64,
        now: OffsetDateTime,
    ) -> Result<ReportSummary, UseCaseError> {
        let cached = |summaries: &HashMap<IpAddr, CachedSummaries>| {
            summaries.get(&ip)?.iter().find(|(days, at, _)| *days == max_age_days && at.elapsed() < TARGET_TTL).map(|c| c.2)
        };
        if let Some(summary) = cached(&self.summaries.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(summary);
        }
        let query = ReportQuery {
            value: ip.to_string(),
            reported_since: now - time::Duration::days(max_age_days),
            received_since: None,
            machine: None,
            limit: 1,
            offset: 0,
        };
        let summary = store.report_summary(&query).await?;
        let mut summaries = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        if summaries.len() >= TARGET_CACHE_MAX {
            summaries.clear();
        }
        let kept = summaries.entry(ip).or_default();
        kept.retain(|(days, at, _)| *days != max_age_days && at.elapsed() < TARGET_TTL);
        kept.push((max_age_days, Instant::now(), summary));
        Ok(summary)
    }

    async fn ranges(&self, store: &dyn ListStore) -> Result<Ranges, UseCaseError> {
        if let Some((at, ranges)) = self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < ALLOWLIST_TTL
        {
            return Ok(ranges.clone());
        }
        let ranges: Ranges = Arc::new(
            store
                .list_allowlist()
                .await?
                .into_iter()
                .filter_map(|entry| parse_network(&entry.value).ok().map(|net| (net, entry.category)))
                .collect(),
        );
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), ranges.clone()));
        Ok(ranges)
    }
}

/// The entries a capped tier receives, in prefix order.
type FireView = Arc<Vec<SharedEntry>>;

/// Most capped `fire` views kept (one per tier cap in use); past it they are rebuilt.
const FIRE_VIEWS_MAX: usize = 16;

/// A page of a search or of the `fire` feed: 1-based page number and items per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// From 1.
    pub page: u64,
    /// 1 to [`PAGE_MAX`].
    pub limit: u64,
}

impl Paging {
    /// This page's slice of `all` (empty past the end).
    pub fn of<T>(self, all: &[T]) -> &[T] {
        let start = usize::try_from(self.page.saturating_sub(1).saturating_mul(self.limit)).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(self.limit).unwrap_or(usize::MAX));
        all.get(start.min(all.len())..end.min(all.len())).unwrap_or_default()
    }

    /// Whether a page follows this one when `total` items match.
    pub fn has_next(self, total: u64) -> bool {
        self.page.saturating_mul(self.limit) < total
    }
}

/// How many live community entries lie inside `range`, and whether `range` itself is listed:
/// a binary search in the prefix-sorted snapshot, at most [`RANGE_EXAMINED_MAX`] entries read.
fn listed_inside(community: &Snapshot, range: IpNet, at: OffsetDateTime) -> (usize, bool) {
    let start = community.entries.partition_point(|e| e.net < range);
    let last = range.broadcast();
    let mut inside = 0;
    let mut whole = false;
    for entry in community.entries[start..].iter().take(RANGE_EXAMINED_MAX).take_while(|e| e.net.addr() <= last) {
        if range.contains(&entry.net) && entry.live_at(at) {
            inside += 1;
            whole |= entry.net == range;
        }
    }
    (inside, whole)
}

/// Parses an address as the lookup accepts it; anything else is a bad request.
pub fn parse(text: &str) -> Result<IpAddr, UseCaseError> {
    parse_address(text).map_err(UseCaseError::BadRequest)
}

/// The lookup of one replica: what it reads, and what it remembers between lookups.
pub struct Lookup {
    store: Arc<dyn Store>,
    lists: Arc<Lists>,
    enricher: Arc<Enricher>,
    own_addresses: Vec<IpNet>,
    params: Arc<Params>,
    cache: LookupCache,
    /// Capped `fire` views by (seq, policy, cap).
    fire_views: Mutex<HashMap<(i64, u64, usize), FireView>>,
}

impl Lookup {
    /// A lookup over these handles; `own_addresses` (the server's) are never reported, and
    /// `params` are the engine's, for explanations.
    pub fn new(
        store: Arc<dyn Store>,
        lists: Arc<Lists>,
        enricher: Arc<Enricher>,
        own_addresses: Vec<IpNet>,
        params: Arc<Params>,
    ) -> Self {
        Lookup { store, lists, enricher, own_addresses, params, cache: LookupCache::default(), fire_views: Mutex::default() }
    }

    /// How many reports about `ip` were made in the last `max_age_days` before `now`, by how many
    /// reporters, and the latest: read again at most every [`TARGET_TTL`], and at once after this
    /// replica stored a report of `ip` ([`Lookup::forget_reports`]).
    pub async fn report_summary(
        &self,
        ip: IpAddr,
        max_age_days: i64,
        now: OffsetDateTime,
    ) -> Result<ReportSummary, UseCaseError> {
        self.cache.summary(self.store.as_ref(), ip, max_age_days, now).await
    }

    /// Drops the remembered report counts about `ip` (this replica just stored a report of it).
    pub fn forget_reports(&self, ip: IpAddr) {
        self.cache.summaries.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }

    /// Looks one address up at `now` (seconds since the epoch).
    pub async fn find(&self, ip: IpAddr, now: i64) -> Result<Found, UseCaseError> {
        let target = Engine::key(IpNet::from(ip));
        let own = self.own_addresses.iter().any(|net| net.contains(&ip));
        let shown = display_target(target);
        let expiry = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let range_24 = smoke::range_24_of(ip);
        let (engine_state, listings, neighbours) = if own {
            (None, Vec::new(), (0, false))
        } else {
            let engine_state = self.cache.target(self.store.as_ref(), target).await?;
            let community = self.lists.get_or_load(COMMUNITY).await?;
            // Listed itself, or inside a listed /24 (selective expansion).
            let listing = |net: IpNet| community.get(&net).filter(|entry| entry.live_at(expiry)).cloned();
            let listings: Vec<_> = listing(target).into_iter().chain(Engine::block_of(target).and_then(listing)).collect();
            let neighbours = listed_inside(&community, range_24, expiry);
            (engine_state, listings, neighbours)
        };
        let listed = !listings.is_empty();
        let categories = self
            .cache
            .ranges(self.store.as_ref())
            .await?
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .map(|(_, category)| category.clone())
            .collect();
        // A canary's effect on its reporter stays hidden until the reporter's penalty boundary.
        let shown_state = engine_state.as_deref().map(|state| state.public_at(now));
        let evidence = Evidence {
            state: shown_state.as_deref(),
            blocklists: if listed { vec![COMMUNITY.to_string()] } else { Vec::new() },
            allowlist_categories: categories,
            listing_scenarios: listings.iter().map(|entry| entry.scenario().to_string()).collect(),
        };
        let reputation = assess(&evidence, now);
        // Reports per country of the reporters' networks, from the shown state only.
        let reports = shown_state.as_deref().into_iter().flat_map(|state| state.reporters.iter()).filter(|r| !r.voided);
        let target_countries = smoke::target_countries(
            reports.filter_map(|r| Some((self.enricher.lookup(r.origin_prefix.addr()).country?, u64::from(r.count)))),
        );
        let range_score = smoke::range_score(neighbours.0, neighbours.1, reputation.reputation);
        Ok(Found {
            ip,
            target: shown,
            reputation,
            enrichment: self.enricher.lookup(ip),
            range: self.enricher.range(ip),
            range_24: (range_24, range_score),
            target_countries,
        })
    }

    /// One page of the served community list entries `query` matches, listed at or after `since`
    /// (seconds since the epoch), and how many match in all (see the module doc for the bound).
    pub async fn search(
        &self,
        query: &Query,
        since: Option<i64>,
        page: Paging,
        now: i64,
    ) -> Result<(u64, Vec<SharedEntry>), UseCaseError> {
        let served = self.lists.served(COMMUNITY).await?;
        let ranges = self.cache.ranges(self.store.as_ref()).await?;
        // What each distinct listing scenario means, worked out once per search.
        let mut described: HashMap<&str, (Vec<&'static str>, Vec<String>)> = HashMap::new();
        let mut matched = Vec::new();
        for entry in served.entries.iter().take(SEARCH_SCAN_MAX) {
            if since.is_some_and(|since| entry.listed_at().unix_timestamp() < since) {
                continue;
            }
            let scenario = entry.scenario();
            let (behaviors, cves) = described.entry(scenario).or_insert_with(|| {
                let meaning = scenarios::describe(scenario);
                (meaning.behaviors.iter().map(|b| b.name).collect(), meaning.cves)
            });
            let addr = entry.net.addr();
            let categories: Vec<String> =
                ranges.iter().filter(|(net, _)| net.contains(&addr)).map(|(_, category)| category.clone()).collect();
            // Listed, so malicious unless a never-block range says otherwise.
            let reputation = if categories.is_empty() {
                None
            } else {
                let evidence = Evidence {
                    state: None,
                    blocklists: vec![COMMUNITY.to_string()],
                    allowlist_categories: categories,
                    listing_scenarios: Vec::new(),
                };
                Some(assess(&evidence, now))
            };
            let enrichment = if query.needs_enrichment() { self.enricher.lookup(addr) } else { Default::default() };
            let owned;
            let classifications: &[&str] = match &reputation {
                None => &["community-blocklist"],
                Some(reputation) => {
                    owned = smoke::classification_names(reputation);
                    &owned
                }
            };
            let facts = Facts {
                as_num: enrichment.as_number,
                country: enrichment.country.as_deref(),
                reputation: reputation.as_ref().map_or("malicious", |r| r.reputation),
                behaviors,
                classifications,
                cves,
                scenarios: &[scenario],
            };
            if query.matches(&facts) {
                matched.push(entry.clone());
            }
        }
        let total = matched.len() as u64;
        Ok((total, page.of(&matched).to_vec()))
    }

    /// One page of the community list as a tier capped at `cap` entries receives it (the newest
    /// `cap`, sorted by prefix, as a blocklist pull gives them), listed at or after `since`, and
    /// how many such entries there are. The capped view is kept per (seq, policy, cap).
    pub async fn fire(&self, cap: usize, since: Option<i64>, page: Paging) -> Result<(u64, Vec<SharedEntry>), UseCaseError> {
        let served = self.lists.served(COMMUNITY).await?;
        let capped: FireView;
        let view: &[SharedEntry] = if served.entries.len() <= cap {
            &served.entries
        } else {
            let key = (served.seq, served.policy, cap);
            let mut views = self.fire_views.lock().unwrap_or_else(|p| p.into_inner());
            capped = match views.get(&key) {
                Some(view) => view.clone(),
                None => {
                    if views.len() >= FIRE_VIEWS_MAX {
                        views.clear();
                    }
                    let view = Arc::new(crate::serving::top(&served.entries, cap));
                    views.insert(key, view.clone());
                    view
                }
            };
            &capped
        };
        match since {
            None => Ok((view.len() as u64, page.of(view).to_vec())),
            Some(since) => {
                let recent: Vec<SharedEntry> = view.iter().filter(|e| e.listed_at().unix_timestamp() >= since).cloned().collect();
                Ok((recent.len() as u64, page.of(&recent).to_vec()))
            }
        }
    }

    /// The full answer for each entry of a page: its `SmokeItem` (the `ip` of a range entry is
    /// the range), looked up as `GET /v2/smoke` would.
    pub async fn items(&self, entries: &[SharedEntry], now: i64) -> Result<Vec<SmokeItem>, UseCaseError> {
        let mut items = Vec::with_capacity(entries.len());
        for entry in entries {
            let found = self.find(entry.net.addr(), now).await?;
            let mut item = smoke_item(&found, now);
            item.ip = display_target(entry.net);
            items.push(item);
        }
        Ok(items)
    }

    /// [`Lookup::items`] as `fire` items: each with its listing's state and expiry.
    pub async fn fire_items(&self, entries: &[SharedEntry], now: i64) -> Result<Vec<FireItem>, UseCaseError> {
        let items = self.items(entries, now).await?;
        Ok(items
            .into_iter()
            .zip(entries)
            .map(|(item, entry)| FireItem { item, state: "validated".into(), expiration: smoke::fire_time(entry.expires_at()) })
            .collect())
    }

    /// The native answer for `addr` (typed as `text`) at `now`: the lookup in Palisade's own
    /// shape, with the explanation of its listing (never naming the reporters).
    pub async fn native(&self, addr: IpAddr, text: &str, now: i64) -> Result<IpLookupResponse, UseCaseError> {
        let found = self.find(addr, now).await?;
        let explanation = crate::manage::explain(self.store.as_ref(), &self.params, text, false).await?;
        let rep = &found.reputation;
        let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).ok().map(rfc3339);
        Ok(IpLookupResponse {
            ip: addr.to_string(),
            reputation: rep.reputation.into(),
            confidence: rep.confidence.into(),
            background_noise: rep.background_noise.into(),
            as_num: found.enrichment.as_number,
            as_name: found.enrichment.as_name.clone(),
            country: found.enrichment.country.clone(),
            ip_range: found.range.map(|r| r.to_string()),
            first_seen: rep.first_seen.and_then(at),
            last_seen: rep.last_seen.and_then(at),
            behaviors: rep.behaviors.iter().map(|b| b.name.to_string()).collect(),
            scenarios: rep.scenarios.clone(),
            false_positives: rep.false_positives.clone(),
            blocklists: rep.blocklists.clone(),
            reporters: rep.reporters.label().into(),
            scores: scores(rep),
            explanation,
        })
    }
}
