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
//! therefore at most [`TARGET_TTL`] behind the consensus worker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use palisade_api::cti::{AttackDetail, Classifications, History, Location, Named, Score, Scores, SmokeItem};
use palisade_api::native::IpLookupResponse;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::domain::lists::COMMUNITY;
use crate::domain::net::{display_target, parse_address, parse_network};
use crate::domain::time::rfc3339;
use crate::engine::params::Params;
use crate::engine::{Engine, TargetState};
use crate::enrich::Enricher;
use crate::reputation::{Evidence, Reputation, WindowScore, assess};
use crate::serving::Lists;
use crate::store::{ConsensusStore, Enrichment, ListStore, Store};
use crate::use_case::UseCaseError;

/// How long the never-block ranges are reused before being read again.
const ALLOWLIST_TTL: Duration = Duration::from_secs(10);

/// How long an address's engine state (or its absence) is reused before being read again.
pub const TARGET_TTL: Duration = Duration::from_secs(5);

/// Most addresses whose engine state is kept; past it the cache starts over (a burst of
/// one-off lookups must not grow memory without bound).
const TARGET_CACHE_MAX: usize = 200_000;

/// Never-block ranges with their categories.
type Ranges = Arc<Vec<(IpNet, String)>>;

/// An engine state read at an instant (`None`: the engine knows nothing of the address).
type CachedTarget = (Instant, Option<Arc<TargetState>>);

/// What one replica remembers between lookups: the never-block ranges with their categories
/// (reread at most every [`ALLOWLIST_TTL`]) and recently read engine states (for [`TARGET_TTL`]).
#[derive(Default)]
pub struct LookupCache {
    snapshot: Mutex<Option<(Instant, Ranges)>>,
    targets: Mutex<HashMap<IpNet, CachedTarget>>,
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

/// Everything the lookup found about one address.
#[derive(Debug, Clone)]
pub struct Found {
    /// The address.
    pub ip: IpAddr,
    /// The engine target covering it (the address, or its IPv6 /64).
    pub target: String,
    /// The scored reputation.
    pub reputation: Reputation,
    /// AS and country.
    pub enrichment: Enrichment,
    /// Announced range.
    pub range: Option<IpNet>,
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
        Lookup { store, lists, enricher, own_addresses, params, cache: LookupCache::default() }
    }

    /// Looks one address up at `now` (seconds since the epoch).
    pub async fn find(&self, ip: IpAddr, now: i64) -> Result<Found, UseCaseError> {
        let target = Engine::key(IpNet::from(ip));
        let own = self.own_addresses.iter().any(|net| net.contains(&ip));
        let shown = display_target(target);
        let (engine_state, listed) = if own {
            (None, false)
        } else {
            let engine_state = self.cache.target(self.store.as_ref(), target).await?;
            let community = self.lists.get_or_load(COMMUNITY).await?;
            let expiry = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            // Listed itself, or inside a listed /24 (selective expansion).
            let listed = |net: IpNet| community.get(&net).is_some_and(|entry| entry.live_at(expiry));
            (engine_state, listed(target) || Engine::block_of(target).is_some_and(listed))
        };
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
        };
        Ok(Found {
            ip,
            target: shown,
            reputation: assess(&evidence, now),
            enrichment: self.enricher.lookup(ip),
            range: self.enricher.range(ip),
        })
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

/// `2022-05-28T16:00:00+00:00`, the form CTI answers use.
fn cti_time(at: i64) -> Option<String> {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    OffsetDateTime::from_unix_timestamp(at).ok()?.format(&format).ok()
}

fn score(window: WindowScore) -> Score {
    Score {
        aggressiveness: window.aggressiveness,
        threat: window.threat,
        trust: window.trust,
        anomaly: window.anomaly,
        total: window.total,
    }
}

/// The four windows as the CTI `scores` object.
pub fn scores(reputation: &Reputation) -> Scores {
    let [last_day, last_week, last_month, overall] = reputation.scores;
    Scores { overall: score(overall), last_day: score(last_day), last_week: score(last_week), last_month: score(last_month) }
}

fn named(name: &str, label: &str, description: &str) -> Named {
    Named { name: name.into(), label: label.into(), description: description.into() }
}

/// The CTI `SmokeItem` of a lookup at `now` (seconds since the epoch).
pub fn smoke_item(found: &Found, now: i64) -> SmokeItem {
    let rep = &found.reputation;
    let days = |from: i64, to: i64| u32::try_from((to - from).max(0) / 86_400).unwrap_or(u32::MAX);
    let range_24 = match found.ip {
        IpAddr::V4(v4) => IpNet::new(IpAddr::V4(v4), 24),
        IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), 64),
    }
    .ok()
    .map(|net| net.trunc().to_string());
    let mut classifications = Vec::new();
    if rep.blocklists.iter().any(|l| l == COMMUNITY) {
        classifications.push(named("community-blocklist", "Community Blocklist", "In the community blocklist"));
    }
    if rep.reputation == "benign" {
        classifications.push(named("scanner:known", "Known Scanner", "A known, declared internet scanner"));
    }
    SmokeItem {
        ip: found.ip.to_string(),
        ip_range: found.range.map(|r| r.to_string()),
        ip_range_score: if found.target.contains('/') { rep.scores[3].total } else { 0 },
        ip_range_24: range_24,
        ip_range_24_reputation: None,
        ip_range_24_score: None,
        as_name: found.enrichment.as_name.clone(),
        as_num: found.enrichment.as_number,
        reverse_dns: None,
        location: Location { country: found.enrichment.country.clone(), ..Location::default() },
        reputation: rep.reputation.into(),
        confidence: rep.confidence.into(),
        background_noise: rep.background_noise.into(),
        background_noise_score: Some(rep.background_noise_score),
        proxy_or_vpn: false,
        history: History {
            first_seen: rep.first_seen.and_then(cti_time),
            last_seen: rep.last_seen.and_then(cti_time),
            full_age: rep.first_seen.map_or(0, |first| days(first, now)),
            days_age: match (rep.first_seen, rep.last_seen) {
                (Some(first), Some(last)) => days(first, last),
                _ => 0,
            },
        },
        behaviors: rep.behaviors.iter().map(|b| named(b.name, b.label, b.description)).collect(),
        classifications: Classifications {
            false_positives: rep
                .false_positives
                .iter()
                .map(|c| named(&format!("{c}:allowlisted"), &c.to_uppercase(), &format!("Listed by the operator as {c}")))
                .collect(),
            classifications,
        },
        attack_details: rep
            .scenarios
            .iter()
            .map(|s| AttackDetail {
                name: s.clone(),
                label: s.rsplit('/').next().unwrap_or(s).to_string(),
                description: format!("Reported for scenario {s}"),
                references: Vec::new(),
            })
            .collect(),
        mitre_techniques: Vec::new(),
        cves: Vec::new(),
        references: rep.blocklists.iter().map(|l| named(&format!("list:{l}"), l, &format!("Palisade {l} blocklist"))).collect(),
        target_countries: Default::default(),
        scores: scores(rep),
    }
}
