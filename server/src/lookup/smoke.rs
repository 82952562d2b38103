//! What a lookup found about one address ([`Found`]) and its CTI shape: the `SmokeItem` every
//! CTI route answers (one address, bulk, search, `fire`), with behaviours, attack details, MITRE
//! techniques and CVEs from the scenario table ([`crate::reputation::scenarios`]), the /24's
//! reputation, and the reporters' countries. Pure: the caller gathers the evidence and passes
//! the time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use palisade_api::cti::{AttackDetail, Classifications, History, Location, Named, Score, Scores, SmokeItem};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::domain::lists::COMMUNITY;
use crate::reputation::scenarios::{self, Technique};
use crate::reputation::{Reputation, WindowScore};
use crate::store::Enrichment;

/// How many countries `target_countries` names at most (as the CTI does).
const TOP_COUNTRIES: usize = 10;

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
    /// Its /24 (IPv4) or /64 (IPv6) and that range's 0–5 score ([`range_score`]).
    pub range_24: (IpNet, u8),
    /// Percent of reports per country of the reporters' networks, in tens ([`target_countries`]).
    pub target_countries: BTreeMap<String, u32>,
}

/// The /24 (IPv4) or /64 (IPv6) holding `ip`.
pub fn range_24_of(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, prefix).map_or(IpNet::from(ip), |net| net.trunc())
}

/// The 0–5 score of a /24 (or /64): 5 when it is listed whole or holds three or more listed
/// entries, 4 with one or two, otherwise what the address's own class says (a suspicious
/// address 2, a known one 1, else 0).
pub fn range_score(listed_inside: usize, whole_listed: bool, own_reputation: &str) -> u8 {
    match (whole_listed, listed_inside) {
        (true, _) | (_, 3..) => 5,
        (_, 1..) => 4,
        _ => match own_reputation {
            "malicious" => 4,
            "suspicious" => 2,
            "known" => 1,
            _ => 0,
        },
    }
}

/// The class of a range score, as the CTI documents it: 0 unknown, 1 known, 2–3 suspicious,
/// 4–5 malicious.
pub fn range_reputation(score: u8) -> &'static str {
    match score {
        0 => "unknown",
        1 => "known",
        2 | 3 => "suspicious",
        _ => "malicious",
    }
}

/// Percentages per country from report counts, rounded to the nearest ten (a share that rounds
/// to 0 is left out), the [`TOP_COUNTRIES`] largest (ties by country code); reports of unknown
/// country are left out of the shares. Coarse on purpose: like the reputation's bucketed counts,
/// one more report must not visibly move the answer, or repeated lookups would show a poisoner
/// which of its reports the engine kept.
pub fn target_countries(reports: impl IntoIterator<Item = (String, u64)>) -> BTreeMap<String, u32> {
    let mut per_country: BTreeMap<String, u64> = BTreeMap::new();
    for (country, count) in reports {
        *per_country.entry(country).or_default() += count;
    }
    let total: u64 = per_country.values().sum();
    if total == 0 {
        return BTreeMap::new();
    }
    let mut ranked: Vec<(String, u64)> = per_country.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(TOP_COUNTRIES)
        .map(|(country, count)| (country, u32::try_from((count * 10 + total / 2) / total * 10).unwrap_or(100)))
        .filter(|(_, share)| *share > 0)
        .collect()
}

/// `2022-05-28T16:00:00+00:00`, the form CTI answers use.
fn cti_time(at: i64) -> Option<String> {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    OffsetDateTime::from_unix_timestamp(at).ok()?.format(&format).ok()
}

/// `2022-12-11T14:15:47.553000`: UTC without a time zone, the layout the Go client parses a
/// `fire` item's `expiration` with.
pub fn fire_time(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
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

/// The classification names of a reputation (what a search's `classifications` term matches).
pub fn classification_names(reputation: &Reputation) -> Vec<&'static str> {
    let mut names = Vec::new();
    if reputation.blocklists.iter().any(|l| l == COMMUNITY) {
        names.push("community-blocklist");
    }
    if reputation.reputation == "benign" {
        names.push("scanner:known");
    }
    names
}

fn classification(name: &str) -> Named {
    match name {
        "community-blocklist" => named(name, "Community Blocklist", "In the community blocklist"),
        _ => named(name, "Known Scanner", "A known, declared internet scanner"),
    }
}

/// The CTI `SmokeItem` of a lookup at `now` (seconds since the epoch).
pub fn smoke_item(found: &Found, now: i64) -> SmokeItem {
    let rep = &found.reputation;
    let days = |from: i64, to: i64| u32::try_from((to - from).max(0) / 86_400).unwrap_or(u32::MAX);
    let described: Vec<_> = rep.scenarios.iter().map(|s| (s, scenarios::describe(s))).collect();
    let techniques: BTreeSet<Technique> = described.iter().flat_map(|(_, d)| d.techniques.iter().copied()).collect();
    let cves: BTreeSet<&str> = described.iter().flat_map(|(_, d)| d.cves.iter().map(String::as_str)).collect();
    let (range_24, range_24_score) = found.range_24;
    SmokeItem {
        ip: found.ip.to_string(),
        ip_range: found.range.map(|r| r.to_string()),
        ip_range_score: if found.target.contains('/') { rep.scores[3].total } else { 0 },
        ip_range_24: range_24.to_string(),
        ip_range_24_reputation: range_reputation(range_24_score).to_string(),
        ip_range_24_score: range_24_score,
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
            classifications: classification_names(rep).into_iter().map(classification).collect(),
        },
        attack_details: described
            .iter()
            .map(|(name, d)| AttackDetail {
                name: name.to_string(),
                label: d.label.clone(),
                description: d.description.clone(),
                references: Vec::new(),
            })
            .collect(),
        mitre_techniques: techniques.iter().map(|t| named(t.id, t.label, t.description)).collect(),
        cves: cves.into_iter().map(str::to_string).collect(),
        references: rep.blocklists.iter().map(|l| named(&format!("list:{l}"), l, &format!("Palisade {l} blocklist"))).collect(),
        target_countries: found.target_countries.clone(),
        scores: scores(rep),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_scores_follow_listed_neighbours_then_the_address() {
        assert_eq!(range_score(0, true, "unknown"), 5);
        assert_eq!(range_score(3, false, "unknown"), 5);
        assert_eq!(range_score(1, false, "safe"), 4);
        assert_eq!(range_score(0, false, "suspicious"), 2);
        assert_eq!(range_score(0, false, "known"), 1);
        assert_eq!(range_score(0, false, "benign"), 0);
        let classes: Vec<_> = (0..=5).map(range_reputation).collect();
        assert_eq!(classes, ["unknown", "known", "suspicious", "suspicious", "malicious", "malicious"]);
    }

    #[test]
    fn target_countries_are_percent_in_tens_of_the_ten_largest() {
        let shares = target_countries([("FR".into(), 2), ("DE".into(), 1), ("FR".into(), 1)]);
        assert_eq!(shares, BTreeMap::from([("FR".into(), 80), ("DE".into(), 30)]));
        let one_more = target_countries([("FR".into(), 41), ("DE".into(), 60)]);
        assert_eq!(one_more, target_countries([("FR".into(), 40), ("DE".into(), 60)]), "one report does not show");
        let many = target_countries((0..12u64).map(|i| (format!("C{i:02}"), 12 - i)));
        assert!(many.len() <= 10 && many.values().all(|share| share % 10 == 0), "{many:?}");
        assert!(!many.contains_key("C10") && !many.contains_key("C11"), "the smallest are left out: {many:?}");
        assert!(target_countries(Vec::new()).is_empty());
    }

    #[test]
    fn ranges_and_fire_times_have_the_cti_forms() {
        assert_eq!(range_24_of("45.33.32.156".parse().expect("ip")).to_string(), "45.33.32.0/24");
        assert_eq!(range_24_of("2001:db8:1:2:3::4".parse().expect("ip")).to_string(), "2001:db8:1:2::/64");
        let at = OffsetDateTime::from_unix_timestamp(1_670_768_147).expect("time") + time::Duration::milliseconds(553);
        assert_eq!(fire_time(at), "2022-12-11T14:15:47.553000");
    }
}
