//! IP reputation for the lookup (CTI "smoke" and `GET /v1/ips/{ip}`): a pure function from the
//! evidence the consensus engine keeps about one target, its blocklist memberships and the
//! never-block ranges that cover it, to a reputation class, confidence and 0–5 scores. No I/O and
//! no clock: the caller passes `now`.
//!
//! Every count that leaves this module is bucketed (0, 1, 2–4, 5–9, 10+) and reporters are
//! never named, so repeated lookups cannot be used to watch a poisoning attempt make progress one
//! report at a time. Reporters are counted by distinct origin AS (or stand-in prefix), the same
//! independence the listing rule uses.
//!
//! Class, in this order (`TRUST.md`): `safe` (a never-block range of a false-positive category),
//! `benign` (a never-block range of category `scanner`), `malicious` (in the community list),
//! `suspicious` (two or more independent reporters in the last 30 days, or any in the last day),
//! `known` (any evidence), `unknown`.
//!
//! Behaviours and their threat come from the scenario table ([`scenarios`], documented in
//! `docs/lookup.md`), which the CTI answer's attack details, MITRE techniques and CVEs also use.

pub mod scenarios;

use std::collections::BTreeSet;

pub use self::scenarios::Behavior;
use crate::engine::{TargetState, Time};

/// Seconds per day.
const DAY: Time = 86_400;

/// The windows scored, as (name, length in seconds). `overall` is about three months.
pub const WINDOWS: [(&str, Time); 4] =
    [("last_day", DAY), ("last_week", 7 * DAY), ("last_month", 30 * DAY), ("overall", 90 * DAY)];

/// Never-block categories that make a listing a false positive (shown as `false_positives`).
pub const FALSE_POSITIVE_CATEGORIES: [&str; 3] = ["cdn", "crawler", "resolver"];

/// Everything the lookup knows about one address.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    /// The engine's state of the target covering the address, if any.
    pub state: Option<&'a TargetState>,
    /// Blocklists the address is in.
    pub blocklists: Vec<String>,
    /// Categories of the never-block ranges covering it.
    pub allowlist_categories: Vec<String>,
    /// Scenarios its listings name (the consensus's summary of the reports; kept when the
    /// reports themselves have aged out of the engine's state).
    pub listing_scenarios: Vec<String>,
}

/// A bucket of a count: what a lookup may reveal about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bucket {
    /// 0.
    None,
    /// 1.
    One,
    /// 2–4.
    Few,
    /// 5–9.
    Several,
    /// 10 or more.
    Many,
}

impl Bucket {
    /// The bucket of a count.
    pub fn of(count: usize) -> Bucket {
        match count {
            0 => Bucket::None,
            1 => Bucket::One,
            2..=4 => Bucket::Few,
            5..=9 => Bucket::Several,
            _ => Bucket::Many,
        }
    }

    /// Display form: `0`, `1`, `2-4`, `5-9`, `10+`.
    pub fn label(self) -> &'static str {
        match self {
            Bucket::None => "0",
            Bucket::One => "1",
            Bucket::Few => "2-4",
            Bucket::Several => "5-9",
            Bucket::Many => "10+",
        }
    }

    /// 0–4, for scores.
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// One window's 0–5 scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowScore {
    /// From the bucketed number of reports.
    pub aggressiveness: u8,
    /// From the worst behaviour reported.
    pub threat: u8,
    /// From the bucketed number of independent reporters.
    pub trust: u8,
    /// Listed while few report it (a targeted attacker rather than background noise).
    pub anomaly: u8,
    /// Weighted mean, at least 3 while listed.
    pub total: u8,
}

/// The behaviour of a scenario name: the first of its behaviours in the scenario table
/// ([`scenarios`]), the one mapping from scenarios to behaviours.
pub fn behavior_of(scenario: &str) -> Behavior {
    scenarios::behaviors_of(scenario).first().copied().unwrap_or_else(scenarios::fallback)
}

/// The lookup's view of one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Reputation {
    /// Whether anything at all is known (otherwise the lookup answers 404).
    pub found: bool,
    /// Class (see the module doc).
    pub reputation: &'static str,
    /// `high`, `medium`, `low`, `none`.
    pub confidence: &'static str,
    /// How many independent reporters see it (overall), as CrowdSec's noise level.
    pub background_noise: &'static str,
    /// 0–10.
    pub background_noise_score: u8,
    /// Independent reporters in the overall window, bucketed.
    pub reporters: Bucket,
    /// Scores per window, in [`WINDOWS`] order.
    pub scores: [WindowScore; 4],
    /// Behaviours, sorted, deduplicated.
    pub behaviors: Vec<Behavior>,
    /// Scenarios reported (not voided) and those its listings name, sorted.
    pub scenarios: Vec<String>,
    /// False-positive categories that apply, sorted.
    pub false_positives: Vec<String>,
    /// Blocklists, sorted.
    pub blocklists: Vec<String>,
    /// First report.
    pub first_seen: Option<Time>,
    /// Latest report.
    pub last_seen: Option<Time>,
}

/// Scores one address from its evidence at `now`.
pub fn assess(evidence: &Evidence<'_>, now: Time) -> Reputation {
    let reporters: Vec<_> = evidence.state.map(|s| s.reporters.iter().filter(|r| !r.voided).collect()).unwrap_or_default();
    let distinct_in =
        |window: Time| reporters.iter().filter(|r| r.last_at >= now - window).map(|r| r.origin_as).collect::<BTreeSet<_>>().len();
    let reports_in =
        |window: Time| reporters.iter().filter(|r| r.last_at >= now - window).map(|r| r.count as usize).sum::<usize>();
    let listed = evidence.blocklists.iter().any(|l| l == "community");
    let mut blocklists = evidence.blocklists.clone();
    blocklists.sort();
    blocklists.dedup();
    let categories: BTreeSet<&str> = evidence.allowlist_categories.iter().map(String::as_str).collect();
    let false_positives: Vec<String> =
        categories.iter().filter(|c| FALSE_POSITIVE_CATEGORIES.contains(c)).map(|c| c.to_string()).collect();
    let scenarios: Vec<String> = reporters
        .iter()
        .map(|r| r.scenario.clone())
        .chain(evidence.listing_scenarios.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let behaviors: Vec<Behavior> =
        scenarios.iter().flat_map(|s| self::scenarios::behaviors_of(s)).collect::<BTreeSet<_>>().into_iter().collect();

    let mut scores = [WindowScore::default(); 4];
    for (slot, (_, window)) in scores.iter_mut().zip(WINDOWS) {
        let in_window: Vec<_> = reporters.iter().filter(|r| r.last_at >= now - window).collect();
        let aggressiveness = Bucket::of(reports_in(window)).level() + u8::from(listed && !in_window.is_empty());
        let threat = in_window.iter().map(|r| self::scenarios::threat_of(&r.scenario)).max().unwrap_or(0);
        let trust = match Bucket::of(distinct_in(window)) {
            Bucket::None => 0,
            Bucket::One => 1,
            Bucket::Few => 2,
            Bucket::Several => 4,
            Bucket::Many => 5,
        };
        let anomaly = if listed && !in_window.is_empty() && trust <= 2 { 3 } else { u8::from(!in_window.is_empty()) };
        let mean = (u16::from(aggressiveness) + u16::from(threat) + 2 * u16::from(trust) + 2) / 4;
        let mut total = mean.min(5) as u8;
        if listed && !in_window.is_empty() {
            total = total.max(3);
        }
        *slot = WindowScore { aggressiveness: aggressiveness.min(5), threat, trust, anomaly, total };
    }

    let overall = Bucket::of(distinct_in(WINDOWS[3].1));
    let recent_month = Bucket::of(distinct_in(30 * DAY));
    let recent_day = Bucket::of(distinct_in(DAY));
    let (reputation, confidence) = if !false_positives.is_empty() {
        ("safe", "high")
    } else if categories.contains("scanner") {
        ("benign", "medium")
    } else if listed {
        ("malicious", if overall >= Bucket::Several { "high" } else { "medium" })
    } else if recent_month >= Bucket::Few || recent_day >= Bucket::One {
        ("suspicious", if recent_month >= Bucket::Few { "medium" } else { "low" })
    } else if !reporters.is_empty() || !blocklists.is_empty() {
        ("known", "low")
    } else if !categories.is_empty() {
        ("safe", "medium")
    } else {
        ("unknown", "none")
    };
    let (background_noise, background_noise_score) = match overall {
        Bucket::None => ("none", 0),
        Bucket::One => ("low", 1),
        Bucket::Few => ("low", 3),
        Bucket::Several => ("medium", 6),
        Bucket::Many => ("high", 10),
    };
    let found = evidence.state.is_some() || !blocklists.is_empty() || !categories.is_empty();
    Reputation {
        found,
        reputation,
        confidence,
        background_noise,
        background_noise_score,
        reporters: overall,
        scores,
        behaviors,
        scenarios,
        false_positives,
        blocklists,
        first_seen: evidence.state.map(|s| s.first_seen),
        last_seen: evidence.state.map(|s| s.last_seen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Reporter;

    const NOW: Time = 1_800_000_000;

    fn reporter(machine: i64, asn: u32, last_at: Time, scenario: &str) -> Reporter {
        serde_json::from_value(serde_json::json!({
            "machine": machine, "origin_prefix": format!("10.{}.0.0/24", machine % 250), "origin_as": {"Asn": asn},
            "first_at": last_at - 60, "last_at": last_at, "count": 1, "scenario": scenario, "factor": 1.0,
            "sensor_sighting": false, "voided": false, "credited": false,
        }))
        .expect("a reporter")
    }

    fn state(reporters: Vec<Reporter>) -> TargetState {
        let mut state = TargetState::default();
        state.first_seen = NOW - 3 * DAY;
        state.last_seen = NOW - 60;
        state.reporters = reporters;
        state
    }

    #[test]
    fn counts_are_bucketed() {
        let labels: Vec<_> = [0, 1, 2, 4, 5, 9, 10, 1000].into_iter().map(|n| Bucket::of(n).label()).collect();
        assert_eq!(labels, ["0", "1", "2-4", "2-4", "5-9", "5-9", "10+", "10+"]);
    }

    #[test]
    fn nothing_known_is_unknown_and_not_found() {
        let rep = assess(&Evidence::default(), NOW);
        assert!(!rep.found);
        assert_eq!((rep.reputation, rep.confidence, rep.background_noise), ("unknown", "none", "none"));
        assert_eq!(rep.scores, [WindowScore::default(); 4]);
    }

    #[test]
    fn listed_is_malicious_with_scores_and_behaviours() {
        let s = state((0..6).map(|i| reporter(i, 100 + i as u32, NOW - 3600, "crowdsecurity/ssh-bf")).collect());
        let rep = assess(&Evidence { state: Some(&s), blocklists: vec!["community".into()], ..Evidence::default() }, NOW);
        assert_eq!((rep.reputation, rep.confidence), ("malicious", "high"));
        assert_eq!(rep.reporters, Bucket::Several);
        assert_eq!(rep.behaviors.iter().map(|b| b.name).collect::<Vec<_>>(), ["ssh:bruteforce"]);
        assert!(rep.scores.iter().all(|w| w.total >= 3 && w.total <= 5 && w.trust == 4));
    }

    #[test]
    fn reporters_behind_one_as_count_once() {
        let s = state((0..8).map(|i| reporter(i, 100, NOW - 3600, "crowdsecurity/http-probing")).collect());
        let rep = assess(&Evidence { state: Some(&s), ..Evidence::default() }, NOW);
        assert_eq!(rep.reporters, Bucket::One);
        assert_eq!(rep.reputation, "suspicious");
        assert_eq!(rep.confidence, "low");
    }

    #[test]
    fn old_evidence_is_only_known_and_leaves_the_short_windows() {
        let s = state(vec![reporter(1, 100, NOW - 40 * DAY, "crowdsecurity/ssh-bf")]);
        let rep = assess(&Evidence { state: Some(&s), ..Evidence::default() }, NOW);
        assert_eq!(rep.reputation, "known");
        assert_eq!(rep.scores[0], WindowScore::default());
        assert!(rep.scores[3].total > 0);
    }

    #[test]
    fn allowlisted_is_safe_with_false_positives_even_when_reported() {
        let s = state(vec![reporter(1, 100, NOW - 60, "crowdsecurity/http-crawl-non_statics")]);
        let evidence =
            Evidence { state: Some(&s), allowlist_categories: vec!["crawler".into(), "cdn".into()], ..Evidence::default() };
        let rep = assess(&evidence, NOW);
        assert_eq!((rep.reputation, rep.confidence), ("safe", "high"));
        assert_eq!(rep.false_positives, ["cdn", "crawler"]);
        let scanner = Evidence { allowlist_categories: vec!["scanner".into()], ..Evidence::default() };
        assert_eq!(assess(&scanner, NOW).reputation, "benign");
    }

    #[test]
    fn behaviour_table() {
        assert_eq!(behavior_of("crowdsecurity/ssh-slow-bf").name, "ssh:bruteforce");
        assert_eq!(behavior_of("crowdsecurity/http-cve-2021-41773").name, "http:exploit");
        assert_eq!(behavior_of("crowdsecurity/http-bf-wordpress_bf").name, "http:bruteforce");
        assert_eq!(behavior_of("someone/wp-login-bf").name, "http:bruteforce");
        assert_eq!(behavior_of("crowdsecurity/http-probing").name, "http:scan");
        assert_eq!(behavior_of("crowdsecurity/iptables-scan-multi_ports").name, "tcp:scan");
        assert_eq!(behavior_of("someone/mystery").name, "generic:unclassified");
    }
}
