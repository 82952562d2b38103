//! The IP lookup use case shared by the CTI-compatible and native routes: gathers the evidence
//! about one address (engine state, blocklist membership, never-block ranges, enrichment), has
//! [`crate::reputation`] score it, and shapes the CTI `SmokeItem`. Knows the store, not HTTP.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use palisade_api::cti::{AttackDetail, Classifications, History, Location, Named, Score, Scores, SmokeItem};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::engine::{Engine, TargetState};
use crate::error::ApiError;
use crate::jobs::consensus::{COMMUNITY, display_target};
use crate::reputation::{Evidence, Reputation, WindowScore, assess};
use crate::state::AppState;
use crate::store::Enrichment;

/// How long the never-block ranges are reused before being read again.
const ALLOWLIST_TTL: Duration = Duration::from_secs(10);

/// Never-block ranges with their categories.
type Ranges = Arc<Vec<(IpNet, String)>>;

/// The never-block ranges with their categories, reread at most every [`ALLOWLIST_TTL`].
#[derive(Default)]
pub struct AllowlistCache {
    snapshot: Mutex<Option<(Instant, Ranges)>>,
}

impl AllowlistCache {
    async fn ranges(&self, state: &AppState) -> Result<Ranges, ApiError> {
        if let Some((at, ranges)) = self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < ALLOWLIST_TTL
        {
            return Ok(ranges.clone());
        }
        let ranges: Ranges = Arc::new(
            state
                .store
                .list_allowlist()
                .await?
                .into_iter()
                .filter_map(|entry| crate::manage::parse_network("value", &entry.value).ok().map(|net| (net, entry.category)))
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

/// Parses an address as the lookup accepts it: 400 for anything else.
pub fn parse(text: &str) -> Result<IpAddr, ApiError> {
    crate::domain::net::parse_ip(text).ok_or_else(|| ApiError::BadRequest(format!("{text:?} is not an IP address")))
}

/// Looks one address up at `now` (seconds since the epoch).
pub async fn find(state: &AppState, ip: IpAddr, now: i64) -> Result<Found, ApiError> {
    let target = Engine::key(IpNet::from(ip));
    let own = state.own_addresses.iter().any(|net| net.contains(&ip));
    let (engine_state, entry) = if own {
        (None, None)
    } else {
        let engine_state = match state.store.engine_target(&target.to_string()).await? {
            Some(json) => Some(serde_json::from_str::<TargetState>(&json).map_err(|e| ApiError::Internal(e.into()))?),
            None => None,
        };
        (engine_state, state.store.list_entry(COMMUNITY, &display_target(target)).await?)
    };
    let categories = state
        .lookup_allowlist
        .ranges(state)
        .await?
        .iter()
        .filter(|(net, _)| net.contains(&ip))
        .map(|(_, category)| category.clone())
        .collect();
    let evidence = Evidence {
        state: engine_state.as_ref(),
        blocklists: entry.map(|e| e.list).into_iter().collect(),
        allowlist_categories: categories,
    };
    Ok(Found {
        ip,
        target: display_target(target),
        reputation: assess(&evidence, now),
        enrichment: state.enricher.lookup(ip),
        range: state.enricher.range(ip),
    })
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
