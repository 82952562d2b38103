//! Account pools: an account's own machines trust each other, so what one of them reports is
//! listed for all of them at once, with no consensus. Each account has a private pool (the list
//! `pool-<account id>`) governed by a [`PoolPolicy`]: how many of its machines must report an
//! address, which scenarios count, how long a listing lasts (renewed by new reports) and its
//! remediation.
//!
//! Ground truth still wins over the fleet: a report of a never-block address (special-purpose
//! ranges, the server's own addresses, allowlists) or of a canary lists nothing, and its reporter
//! is excluded from its pool from then on, its support withdrawn from every pool entry it upheld.
//! An address that becomes never-block later is delisted at the next sweep.
//!
//! This room is pure: reports and time go in, [`PoolChange`]s come out; the consensus worker
//! feeds it the same signals the engine counts (each still counts for consensus exactly once)
//! and commits the changes with its own.

use std::collections::{HashMap, HashSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::listing::Remediation;
use crate::engine::never_block::NeverBlock;

/// Seconds since the Unix epoch.
pub type Time = i64;

/// The longest a pool listing may last, and the most machines a policy may ask for.
pub const MAX_DURATION_SECS: i64 = 30 * 86_400;
/// The shortest a pool listing may last.
pub const MIN_DURATION_SECS: i64 = 60;
/// The most machines a policy may require to agree.
pub const MAX_MIN_MACHINES: u32 = 1_000;
/// The most scenario patterns in a policy, and the longest one.
pub const MAX_PATTERNS: usize = 64;
const MAX_PATTERN_LEN: usize = 200;
/// How often listed entries are checked for expiry and against the never-block set.
const SWEEP_EVERY: Time = 5;

/// How an account's pool lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolPolicy {
    /// Whether the pool lists anything; a disabled pool is emptied at the next step.
    pub enabled: bool,
    /// Distinct machines of the account that must report an address within `duration_secs`.
    pub min_machines: u32,
    /// How long a listing lasts after the report that made or renewed it.
    pub duration_secs: i64,
    /// The remediation served (`ban` or `captcha`).
    pub remediation: Remediation,
    /// Scenario patterns that count (`*` matches any run of characters).
    pub allow: Vec<String>,
    /// Scenario patterns that never count, even when allowed.
    pub deny: Vec<String>,
}

impl Default for PoolPolicy {
    fn default() -> Self {
        PoolPolicy {
            enabled: true,
            min_machines: 1,
            duration_secs: 4 * 3600,
            remediation: Remediation::Ban,
            allow: vec!["*".into()],
            deny: Vec::new(),
        }
    }
}

impl PoolPolicy {
    /// Whether a report of `scenario` counts for the pool.
    pub fn admits(&self, scenario: &str) -> bool {
        self.allow.iter().any(|p| glob(p, scenario)) && !self.deny.iter().any(|p| glob(p, scenario))
    }

    /// Checks the bounds; the error is a sentence naming the field.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_MIN_MACHINES).contains(&self.min_machines) {
            return Err(format!("min_machines must be between 1 and {MAX_MIN_MACHINES}, not {}", self.min_machines));
        }
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&self.duration_secs) {
            return Err(format!(
                "duration_secs must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS} (30 days), not {}",
                self.duration_secs
            ));
        }
        for (field, patterns) in [("allow", &self.allow), ("deny", &self.deny)] {
            if patterns.len() > MAX_PATTERNS {
                return Err(format!("{field} has {} patterns; at most {MAX_PATTERNS}", patterns.len()));
            }
            if let Some(bad) =
                patterns.iter().find(|p| p.is_empty() || p.len() > MAX_PATTERN_LEN || p.chars().any(char::is_control))
            {
                return Err(format!("{field} pattern {bad:?} must be 1 to {MAX_PATTERN_LEN} printable characters"));
            }
        }
        Ok(())
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none) and
/// every other character itself. Linear in the lengths (no backtracking blow-up).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// One report as the pool sees it.
#[derive(Debug, Clone, Copy)]
pub struct PoolReport<'a> {
    /// The reporting machine's account.
    pub account: i64,
    /// The reporting machine.
    pub machine: i64,
    /// The reported address or range.
    pub target: IpNet,
    /// Its scenario.
    pub scenario: &'a str,
    /// Whether the scenario can be triggered with a forged source (a UDP flood, a SYN scan):
    /// such a report never lists, on a pool as on the community list, and costs nothing.
    pub spoofable: bool,
    /// When it was received.
    pub at: Time,
}

/// What a pool step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolChange {
    /// List (or renew) `target` on `account`'s pool.
    Listed {
        /// Whose pool.
        account: i64,
        /// The address or range.
        target: IpNet,
        /// The scenario of the report that listed or renewed it.
        scenario: String,
        /// Served remediation.
        remediation: Remediation,
        /// When first listed.
        listed_at: Time,
        /// Until when.
        expires_at: Time,
    },
    /// Remove `target` from `account`'s pool.
    Delisted {
        /// Whose pool.
        account: i64,
        /// The address or range.
        target: IpNet,
        /// Why: `expired`, `never_block`, `excluded` (its reporters were excluded), `disabled`.
        reason: &'static str,
    },
}

/// What happened to one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The pool does not take it (disabled, scenario not admitted or spoofable, or an excluded
    /// reporter).
    Ignored,
    /// Counted; listed or renewed when enough machines agree.
    Counted,
    /// A never-block address or a canary: nothing listed, and the reporter excluded.
    Refused,
}

#[derive(Debug, Clone)]
struct Listing {
    listed_at: Time,
    expires_at: Time,
    /// When last written to the store (renewals are written at most every quarter duration).
    written_at: Time,
}

#[derive(Debug, Clone, Default)]
struct PoolTarget {
    /// Distinct reporting machines with their latest report.
    reporters: Vec<(i64, Time)>,
    listing: Option<Listing>,
}

/// Every account's pool.
#[derive(Debug, Default)]
pub struct Pools {
    default: PoolPolicy,
    policies: HashMap<i64, PoolPolicy>,
    targets: HashMap<(i64, IpNet), PoolTarget>,
    excluded: HashSet<i64>,
    never_block: NeverBlock,
    /// When the last sweep ran (`None`: one is due at once).
    swept_at: Option<Time>,
    changes: Vec<PoolChange>,
}

impl Pools {
    /// Pools under `default` unless an account has its own policy.
    pub fn new(default: PoolPolicy) -> Self {
        Pools { default, ..Pools::default() }
    }

    /// The policy of `account`.
    pub fn policy(&self, account: i64) -> &PoolPolicy {
        self.policies.get(&account).unwrap_or(&self.default)
    }

    /// Replaces the per-account policies; a pool disabled by it is emptied at the next sweep.
    pub fn set_policies(&mut self, policies: HashMap<i64, PoolPolicy>) {
        if policies != self.policies {
            self.policies = policies;
            self.swept_at = None;
        }
    }

    /// Replaces the never-block set (ranges and canaries); listed entries it now covers go at
    /// the next sweep.
    pub fn set_never_block(&mut self, never_block: NeverBlock) {
        self.never_block = never_block;
        self.swept_at = None;
    }

    /// Excludes machines (the engine zeroed them, or they reported a never-block address): they
    /// count no more, and what they upheld alone is delisted.
    pub fn exclude(&mut self, machines: impl IntoIterator<Item = i64>) {
        let new: HashSet<i64> = machines.into_iter().filter(|m| !self.excluded.contains(m)).collect();
        if new.is_empty() {
            return;
        }
        self.excluded.extend(new.iter().copied());
        for ((account, target), state) in &mut self.targets {
            state.reporters.retain(|(machine, _)| !new.contains(machine));
            let policy = self.policies.get(account).unwrap_or(&self.default);
            if state.listing.is_some() && (state.reporters.len() as u32) < policy.min_machines {
                state.listing = None;
                self.changes.push(PoolChange::Delisted { account: *account, target: *target, reason: "excluded" });
            }
        }
    }

    /// Whether `machine` is excluded from its pool.
    pub fn is_excluded(&self, machine: i64) -> bool {
        self.excluded.contains(&machine)
    }

    /// Restores a listing read back from the store after a restart (its reporters are not kept:
    /// it lasts until its expiry unless new reports renew it).
    pub fn restore(&mut self, account: i64, target: IpNet, listed_at: Time, expires_at: Time) {
        let listing =
            Listing { listed_at, expires_at, written_at: listed_at.max(expires_at - self.policy(account).duration_secs) };
        self.targets.entry((account, target)).or_default().listing = Some(listing);
    }

    /// Takes one report.
    pub fn report(&mut self, report: &PoolReport) -> Outcome {
        // Only the policy's numbers are kept: this runs for every signal of an enrolled machine,
        // and cloning its pattern lists there would allocate per signal.
        let policy = self.policies.get(&report.account).unwrap_or(&self.default);
        if !policy.enabled || report.spoofable || self.excluded.contains(&report.machine) || !policy.admits(report.scenario) {
            return Outcome::Ignored;
        }
        let (duration_secs, min_machines, remediation) = (policy.duration_secs, policy.min_machines, policy.remediation);
        if !self.never_block.allows_net(report.target) {
            self.exclude([report.machine]);
            return Outcome::Refused;
        }
        let state = self.targets.entry((report.account, report.target)).or_default();
        let since = report.at - duration_secs;
        state.reporters.retain(|(_, at)| *at > since);
        match state.reporters.iter_mut().find(|(machine, _)| *machine == report.machine) {
            Some(seen) => seen.1 = seen.1.max(report.at),
            None => state.reporters.push((report.machine, report.at)),
        }
        if (state.reporters.len() as u32) < min_machines {
            return Outcome::Counted;
        }
        let expires_at = report.at + duration_secs;
        let write = match &mut state.listing {
            Some(listing) => {
                listing.expires_at = listing.expires_at.max(expires_at);
                // A renewal is written once a quarter of the duration has passed since the last
                // write, not at every report of a busy attacker.
                listing.expires_at - listing.written_at >= duration_secs + duration_secs / 4
            }
            None => {
                state.listing = Some(Listing { listed_at: report.at, expires_at, written_at: report.at });
                true
            }
        };
        if write && let Some(listing) = &mut state.listing {
            listing.written_at = listing.expires_at - duration_secs;
            self.changes.push(PoolChange::Listed {
                account: report.account,
                target: report.target,
                scenario: report.scenario.to_string(),
                remediation,
                listed_at: listing.listed_at,
                expires_at: listing.expires_at,
            });
        }
        Outcome::Counted
    }

    /// The changes since the last call: those of the reports, then (every few seconds) expiries,
    /// never-block and disabled pools; forgotten reporters are dropped at the same time.
    pub fn advance(&mut self, now: Time) -> Vec<PoolChange> {
        if self.swept_at.is_none_or(|at| now - at >= SWEEP_EVERY) {
            self.swept_at = Some(now);
            let (default, policies, never_block) = (&self.default, &self.policies, &self.never_block);
            let changes = &mut self.changes;
            self.targets.retain(|&(account, target), state| {
                let policy = policies.get(&account).unwrap_or(default);
                state.reporters.retain(|(_, at)| *at > now - policy.duration_secs);
                if let Some(listing) = &state.listing {
                    let reason = if !policy.enabled {
                        Some("disabled")
                    } else if !never_block.allows_net(target) {
                        Some("never_block")
                    } else if listing.expires_at <= now {
                        Some("expired")
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        state.listing = None;
                        changes.push(PoolChange::Delisted { account, target, reason });
                    }
                }
                state.listing.is_some() || !state.reporters.is_empty()
            });
        }
        std::mem::take(&mut self.changes)
    }

    /// Addresses tracked (listed or with recent reports), for the state-size gauge.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ipset::IpSet;

    fn net(text: &str) -> IpNet {
        crate::domain::net::parse_target(text).expect("target")
    }

    fn report(account: i64, machine: i64, target: &str, at: Time) -> PoolReport<'static> {
        PoolReport { account, machine, target: net(target), scenario: "crowdsecurity/ssh-bf", spoofable: false, at }
    }

    fn listed(changes: &[PoolChange]) -> Vec<(i64, IpNet)> {
        changes
            .iter()
            .filter_map(|c| match c {
                PoolChange::Listed { account, target, .. } => Some((*account, *target)),
                PoolChange::Delisted { .. } => None,
            })
            .collect()
    }

    fn delisted(changes: &[PoolChange]) -> Vec<(i64, IpNet, &'static str)> {
        changes
            .iter()
            .filter_map(|c| match c {
                PoolChange::Delisted { account, target, reason } => Some((*account, *target, *reason)),
                PoolChange::Listed { .. } => None,
            })
            .collect()
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob("*", ""));
        assert!(glob("*", "crowdsecurity/ssh-bf"));
        assert!(glob("crowdsecurity/*", "crowdsecurity/ssh-bf"));
        assert!(glob("*/http-*", "crowdsecurity/http-probing"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(!glob("crowdsecurity/ssh-bf", "crowdsecurity/ssh-bf-x"));
        assert!(glob(&"*a".repeat(50), &"a".repeat(200)));
        assert!(!glob(&"*a".repeat(50), &"b".repeat(2000)));
    }

    #[test]
    fn one_machine_lists_at_once_for_its_own_account_only() {
        let mut pools = Pools::new(PoolPolicy::default());
        assert_eq!(pools.report(&report(1, 10, "45.1.2.3", 100)), Outcome::Counted);
        let changes = pools.advance(100);
        assert_eq!(listed(&changes), vec![(1, net("45.1.2.3"))]);
        match &changes[0] {
            PoolChange::Listed { expires_at, listed_at, remediation, .. } => {
                assert_eq!((*listed_at, *expires_at, *remediation), (100, 100 + 4 * 3600, Remediation::Ban));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_policy_can_ask_for_several_machines_and_filter_scenarios() {
        let policy = PoolPolicy { min_machines: 2, deny: vec!["*/http-*".into()], ..PoolPolicy::default() };
        let mut pools = Pools::new(policy);
        pools.report(&report(1, 10, "45.1.2.3", 100));
        pools.report(&report(1, 10, "45.1.2.3", 110));
        assert!(listed(&pools.advance(110)).is_empty(), "one machine twice is not two machines");
        let probe = PoolReport { scenario: "crowdsecurity/http-probing", ..report(1, 11, "45.1.2.3", 120) };
        assert_eq!(pools.report(&probe), Outcome::Ignored);
        assert!(listed(&pools.advance(120)).is_empty(), "a denied scenario does not count");
        pools.report(&report(1, 11, "45.1.2.3", 130));
        assert_eq!(listed(&pools.advance(130)), vec![(1, net("45.1.2.3"))]);
    }

    #[test]
    fn reports_older_than_the_duration_do_not_add_up() {
        let policy = PoolPolicy { min_machines: 2, duration_secs: 600, ..PoolPolicy::default() };
        let mut pools = Pools::new(policy);
        pools.report(&report(1, 10, "45.1.2.3", 100));
        pools.report(&report(1, 11, "45.1.2.3", 701));
        assert!(listed(&pools.advance(701)).is_empty());
    }

    #[test]
    fn listings_expire_and_renewals_are_written_once_a_quarter_duration() {
        let mut pools = Pools::new(PoolPolicy { duration_secs: 1000, ..PoolPolicy::default() });
        pools.report(&report(1, 10, "45.1.2.3", 0));
        assert_eq!(listed(&pools.advance(0)).len(), 1);
        pools.report(&report(1, 10, "45.1.2.3", 100));
        assert!(listed(&pools.advance(100)).is_empty(), "a renewal soon after is not written");
        pools.report(&report(1, 10, "45.1.2.3", 300));
        let renewed = pools.advance(300);
        assert_eq!(listed(&renewed).len(), 1);
        assert!(matches!(renewed[0], PoolChange::Listed { listed_at: 0, expires_at: 1300, .. }), "{renewed:?}");
        assert!(delisted(&pools.advance(1299)).is_empty());
        assert!(delisted(&pools.advance(1300)).is_empty(), "expiries are swept every {SWEEP_EVERY} s");
        assert_eq!(delisted(&pools.advance(1299 + SWEEP_EVERY)), vec![(1, net("45.1.2.3"), "expired")]);
        assert!(pools.is_empty(), "nothing is kept of an expired listing without reports");
    }

    #[test]
    fn never_block_and_canary_reports_list_nothing_and_exclude_the_reporter() {
        let mut pools = Pools::new(PoolPolicy::default());
        let canaries = IpSet::new([net("45.9.9.9")]);
        pools.set_never_block(NeverBlock { ranges: IpSet::new([net("66.249.64.0/19")]), canaries });
        pools.report(&report(1, 10, "45.1.2.3", 100));
        pools.report(&report(1, 11, "45.1.2.4", 100));
        assert_eq!(listed(&pools.advance(100)).len(), 2);
        let spoofed = PoolReport { spoofable: true, ..report(1, 10, "45.9.9.9", 105) };
        assert_eq!(pools.report(&spoofed), Outcome::Ignored, "a spoofable report neither lists nor costs");
        assert!(!pools.is_excluded(10));
        assert_eq!(pools.report(&report(1, 10, "45.9.9.9", 110)), Outcome::Refused);
        assert_eq!(pools.report(&report(1, 11, "66.249.65.1", 110)), Outcome::Refused);
        let changes = pools.advance(110);
        assert!(listed(&changes).is_empty(), "{changes:?}");
        let mut gone = delisted(&changes);
        gone.sort();
        assert_eq!(gone, vec![(1, net("45.1.2.3"), "excluded"), (1, net("45.1.2.4"), "excluded")]);
        assert!(pools.is_excluded(10) && pools.is_excluded(11));
        assert_eq!(pools.report(&report(1, 10, "45.1.2.5", 120)), Outcome::Ignored);
    }

    #[test]
    fn an_address_allowlisted_later_is_delisted_at_the_next_sweep() {
        let mut pools = Pools::new(PoolPolicy::default());
        pools.report(&report(1, 10, "45.1.2.3", 100));
        pools.report(&report(2, 20, "45.1.2.3", 100));
        assert_eq!(listed(&pools.advance(100)).len(), 2);
        pools.set_never_block(NeverBlock { ranges: IpSet::new([net("45.1.2.0/24")]), canaries: IpSet::default() });
        let mut gone = delisted(&pools.advance(101));
        gone.sort();
        assert_eq!(gone, vec![(1, net("45.1.2.3"), "never_block"), (2, net("45.1.2.3"), "never_block")]);
        assert!(!pools.is_excluded(10), "reporting it before it was allowlisted is no fault");
    }

    #[test]
    fn disabling_a_pool_empties_it() {
        let mut pools = Pools::new(PoolPolicy::default());
        pools.report(&report(1, 10, "45.1.2.3", 100));
        pools.report(&report(2, 20, "45.1.2.4", 100));
        pools.advance(100);
        pools.set_policies(HashMap::from([(1, PoolPolicy { enabled: false, ..PoolPolicy::default() })]));
        assert_eq!(delisted(&pools.advance(101)), vec![(1, net("45.1.2.3"), "disabled")]);
        assert_eq!(pools.report(&report(1, 10, "45.1.2.9", 102)), Outcome::Ignored);
    }

    #[test]
    fn a_restored_listing_lasts_until_its_expiry() {
        let mut pools = Pools::new(PoolPolicy { duration_secs: 1000, ..PoolPolicy::default() });
        pools.restore(1, net("45.1.2.3"), 0, 900);
        assert!(pools.advance(899).is_empty());
        assert_eq!(delisted(&pools.advance(905)), vec![(1, net("45.1.2.3"), "expired")]);
    }

    #[test]
    fn policies_are_bounded() {
        assert!(PoolPolicy::default().check().is_ok());
        for bad in [
            PoolPolicy { min_machines: 0, ..PoolPolicy::default() },
            PoolPolicy { duration_secs: 10, ..PoolPolicy::default() },
            PoolPolicy { duration_secs: MAX_DURATION_SECS + 1, ..PoolPolicy::default() },
            PoolPolicy { allow: vec![String::new()], ..PoolPolicy::default() },
            PoolPolicy { deny: vec!["x".repeat(201)], ..PoolPolicy::default() },
            PoolPolicy { allow: vec!["*".into(); 65], ..PoolPolicy::default() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
