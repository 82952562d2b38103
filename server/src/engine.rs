//! The pure consensus engine: from reports of attackers by machines, decide which addresses are
//! listed, and keep every machine's trust. No I/O and no clock: time is a parameter, state lives
//! in memory and is handed to the caller for persistence. The server's consensus worker and the
//! simulator drive the same [`Engine`] through the same [`Consensus`] interface.
//!
//! The model (`docs/trust.md` explains it to operators, `shared` TRUST notes are its origin):
//! - reports of one address are clustered so many machines of one account, one /24 or one AS
//!   count about as much as one: max within an account, max within an origin prefix, a capped
//!   geometric sum within an AS, summed across ASes ([`support`]);
//! - a machine's weight is its trust ([`trust`]): earned only by leading reports, lost fast,
//!   ramped by age, capped by its account's level; sensors are pre-trusted; a canary report zeroes it;
//! - listing rules: sensor fast path; crowd path (support, AS and account diversity, and an
//!   anchor of established machines or a sensor); a broad path with no anchor but far more
//!   support; a higher bar and a captcha hint for shared addresses; never-block ranges always win;
//! - entries expire (TTL doubling on renewal with fresh evidence); nobody can vote an address off:
//!   removal is by expiry, never-block, slashing of its supporters, or an upheld false positive.

pub mod expand;
pub mod explain;
pub mod ipset;
pub mod never_block;
pub mod params;
pub mod scenarios;
pub mod support;
pub mod trust;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use self::ipset::IpSet;
use self::params::Params;
use self::scenarios::Scenarios;
use self::support::{ClusterId, Contribution, OriginAs, Support};
use self::trust::{Level, MachineState};

pub use crate::domain::listing::{Remediation, Rule};
pub use crate::domain::time::Time;

/// One report of an attacker by a machine, as the engine needs it.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Reporting machine.
    pub machine: i64,
    /// The attacker (canonical address as /32 or /128, or a range).
    pub target: IpNet,
    /// Scenario name.
    pub scenario: &'a str,
    /// Whether the scenario is an unmodified hub scenario (`certified`).
    pub certified: bool,
    /// The reporter's network (/24 or /48).
    pub origin_prefix: IpNet,
    /// The reporter's AS, when an AS database is configured.
    pub origin_asn: Option<u32>,
    /// When the report was received.
    pub at: Time,
}

/// Why an address left the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelistReason {
    /// Its lifetime ran out without fresh evidence.
    Expired,
    /// It is (now) in a never-block range.
    NeverBlock,
    /// Its supporters were slashed and it no longer qualifies.
    Slashed,
    /// The operator upheld a false-positive report.
    FalsePositive,
    /// The operator delisted it, blaming nobody.
    Operator,
    /// A reporter took its reports back and it no longer qualifies without them.
    Withdrawn,
}

impl DelistReason {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DelistReason::Expired => "expired",
            DelistReason::NeverBlock => "never_block",
            DelistReason::Slashed => "slashed",
            DelistReason::FalsePositive => "false_positive",
            DelistReason::Operator => "operator",
            DelistReason::Withdrawn => "withdrawn",
        }
    }
}

/// A change of list membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// Added, or renewed with a later expiry.
    Listed {
        /// The address or range.
        target: IpNet,
        /// Which rule.
        rule: Rule,
        /// The most reported scenario.
        scenario: String,
        /// Suggested remediation.
        remediation: Remediation,
        /// When it expires unless renewed.
        expires_at: Time,
    },
    /// Removed.
    Delisted {
        /// The address or range.
        target: IpNet,
        /// Why.
        reason: DelistReason,
    },
}

/// One machine's reports of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reporter {
    /// The machine.
    pub machine: i64,
    /// Its network at its latest report.
    pub origin_prefix: IpNet,
    /// Its AS (or the fallback prefix) at its latest report.
    pub origin_as: OriginAs,
    /// First report.
    pub first_at: Time,
    /// Latest report.
    pub last_at: Time,
    /// Reports.
    pub count: u32,
    /// Latest scenario.
    pub scenario: String,
    /// Scenario trust × burst damping at the latest report.
    pub factor: f64,
    /// Every report of this machine for this target so far was spoofable: it counts for
    /// nothing ([`scenarios`]).
    #[serde(default)]
    pub spoofable: bool,
    /// A sensor's report with a non-spoofable scenario.
    pub sensor_sighting: bool,
    /// Voided by a canary hit of its account (or made after its machine was zeroed).
    pub voided: bool,
    /// When a voiding becomes visible outside the admin view: the penalty batch boundary of
    /// the hit. Until then public answers count the report as before, so a probe cannot tell
    /// which of its reports was a canary by watching the others lose their reporter.
    #[serde(default)]
    pub voided_visible_at: Time,
    /// Lead credit already given.
    pub credited: bool,
}

/// Listing of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// Rule that listed it.
    pub rule: Rule,
    /// First listed.
    pub listed_at: Time,
    /// Last renewal (or listing).
    pub renewed_at: Time,
    /// Expiry.
    pub expires_at: Time,
    /// Renewals so far.
    pub renewals: u32,
    /// Scenario shown.
    pub scenario: String,
    /// Remediation.
    pub remediation: Remediation,
}

/// Everything the engine holds about one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// One entry per reporting machine.
    pub reporters: Vec<Reporter>,
    /// Current listing.
    pub listing: Option<Listing>,
    /// After an upheld false positive, only a sensor may list it until then.
    pub protected_until: Time,
    /// First report ever.
    pub first_seen: Time,
    /// Latest report.
    pub last_seen: Time,
    /// When its latest listing expired or was delisted by the operator: only reports after it
    /// can list it again, so a listing that ran out without fresh evidence is not revived by the
    /// evidence that made it.
    #[serde(default)]
    pub expired_at: Time,
    /// After an operator delisting with a hold, nothing lists it (not even a sensor) until then.
    #[serde(default)]
    pub held_until: Time,
    /// Where each machine's entry sits in `reporters`, once there are many (derived, not persisted).
    #[serde(skip)]
    index: ReporterIndex,
}

/// Reporters from which a target keeps a machine → position index. Below it a scan is cheaper;
/// above it a scan per report would make a flood of n machines on one address cost O(n²).
const INDEX_REPORTERS_FROM: usize = 32;

/// Machine → position in `TargetState::reporters`. Reporters are only ever appended, so the
/// index catches up with the entries added since it was last used.
#[derive(Debug, Clone, Default)]
struct ReporterIndex(HashMap<i64, u32>);

impl PartialEq for ReporterIndex {
    /// Derived data: two states with the same reporters are equal whatever their index holds.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl TargetState {
    /// The state as answers outside the admin view may show it at `now`: a voiding whose
    /// penalty boundary has not come yet is not visible, as the reporter's zeroing is not.
    pub fn public_at(&self, now: Time) -> std::borrow::Cow<'_, TargetState> {
        if !self.reporters.iter().any(|r| r.voided && r.voided_visible_at > now) {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut shown = self.clone();
        for reporter in shown.reporters.iter_mut().filter(|r| r.voided && r.voided_visible_at > now) {
            reporter.voided = false;
        }
        std::borrow::Cow::Owned(shown)
    }

    /// Position of `machine`'s entry in `reporters`.
    fn reporter_position(&mut self, machine: i64) -> Option<usize> {
        if self.reporters.len() < INDEX_REPORTERS_FROM {
            return self.reporters.iter().position(|r| r.machine == machine);
        }
        let indexed = self.index.0.len();
        if indexed < self.reporters.len() {
            for (position, reporter) in self.reporters.iter().enumerate().skip(indexed) {
                self.index.0.insert(reporter.machine, position as u32);
            }
        }
        self.index.0.get(&machine).map(|&position| position as usize)
    }
}

/// Why a target is (or is not) listed, without naming reporters unless asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Current listing, if any.
    pub listing: Option<Listing>,
    /// Weighted support now.
    pub support: f64,
    /// Distinct ASes (or fallback prefixes) supporting it.
    pub ases: usize,
    /// Distinct accounts supporting it.
    pub accounts: usize,
    /// Scenarios reported.
    pub scenarios: Vec<String>,
    /// First report.
    pub first_seen: Time,
    /// Latest report.
    pub last_seen: Time,
    /// Reporting machines (for the admin view only).
    pub supporters: Vec<i64>,
}

/// State changed since the last [`Engine::take_changed`].
#[derive(Debug, Default)]
pub struct ChangedState {
    /// Machines whose state changed.
    pub machines: Vec<(i64, MachineState)>,
    /// Targets whose state changed; `None` when the engine forgot them.
    pub targets: Vec<(IpNet, Option<TargetState>)>,
}

/// The interface the worker and the simulator drive; the engine and the naive baselines implement it.
pub trait Consensus {
    /// Registers or updates what is known about a machine.
    fn upsert_machine(&mut self, machine: i64, account: Option<i64>, level: Level, sensor: bool, created_at: Time);
    /// Takes one report into account (cheap; evaluation happens in `advance`).
    fn process(&mut self, report: &Report<'_>);
    /// Evaluates what changed up to `now` and returns the membership changes, in order.
    fn advance(&mut self, now: Time) -> Vec<Change>;
    /// The operator upholds a false-positive report on `target`.
    fn report_false_positive(&mut self, target: IpNet, now: Time) -> Vec<Change>;
    /// Current trust of a machine.
    fn machine_trust(&self, machine: i64, now: Time) -> f64;
}

/// The consensus engine.
#[derive(Debug, Clone)]
pub struct Engine {
    params: Params,
    never_block: IpSet,
    canaries: IpSet,
    shared: IpSet,
    hosting: IpSet,
    public: IpSet,
    scenarios: Scenarios,
    use_asn: bool,
    machines: HashMap<i64, MachineState>,
    targets: HashMap<IpNet, TargetState>,
    recent_targets: HashMap<i64, VecDeque<(Time, IpNet)>>,
    dirty: HashSet<IpNet>,
    slashed: HashSet<IpNet>,
    expiries: BTreeSet<(Time, IpNet)>,
    /// When to check whether an unlisted target can be forgotten (its reports left the window).
    forget_checks: BTreeSet<(Time, IpNet)>,
    changed_machines: HashSet<i64>,
    changed_targets: HashSet<IpNet>,
    /// New targets added today by the machines below the trust floor of each cluster (derived).
    untrusted_days: HashMap<UntrustedCluster, (Time, u32)>,
    /// Recent reporters of each never-block address, to share the penalty of a common mistake
    /// (derived from the machines' never-block hits on restore).
    never_block_reports: HashMap<IpNet, Vec<NeverBlockReport>>,
    /// When `never_block_reports` was last cleared of what left the memory window.
    never_block_pruned_at: Time,
}

/// One machine's report of a never-block address, as its penalty was charged.
#[derive(Debug, Clone, Copy)]
struct NeverBlockReport {
    machine: i64,
    cluster: ClusterId,
    /// Its AS (or stand-in), unknown for reports restored from a machine's hits.
    origin_as: Option<OriginAs>,
    at: Time,
    /// An established machine of an account (or a sensor): an independent witness that the
    /// mistake is a common one.
    independent: bool,
    /// The full penalty of the address for this machine (0: a repeat, which cost nothing).
    penalty: f64,
    /// The share of it charged so far.
    strength: f64,
}

/// Reporters remembered per never-block address: past this many independent ones the share of
/// each is negligible.
const NEVER_BLOCK_REPORTERS: usize = 64;

/// Who shares a daily allowance of new targets while below the trust floor: an account, or the
/// network of machines without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum UntrustedCluster {
    Account(i64),
    Network(IpNet),
}

/// Most recent targets remembered per machine, for voiding its reports after a canary hit.
const RECENT_TARGETS_PER_MACHINE: usize = 50_000;

impl Engine {
    /// A new engine. `use_asn` says whether reports carry real AS numbers; without them origins
    /// are clustered by a coarser prefix standing in for the AS (see [`Params::fallback_v4_as_prefix`]).
    pub fn new(params: Params, use_asn: bool) -> Self {
        let scenarios = Scenarios::new(&params.scenarios, &params.spoofable_scenarios);
        Engine {
            params,
            never_block: IpSet::default(),
            canaries: IpSet::default(),
            shared: IpSet::default(),
            hosting: IpSet::default(),
            public: IpSet::default(),
            scenarios,
            use_asn,
            machines: HashMap::new(),
            targets: HashMap::new(),
            recent_targets: HashMap::new(),
            dirty: HashSet::new(),
            slashed: HashSet::new(),
            expiries: BTreeSet::new(),
            forget_checks: BTreeSet::new(),
            changed_machines: HashSet::new(),
            changed_targets: HashSet::new(),
            untrusted_days: HashMap::new(),
            never_block_reports: HashMap::new(),
            never_block_pruned_at: 0,
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Replaces the never-block ranges (special-purpose, own infrastructure, allowlists). Listed
    /// targets now inside them are delisted at the next `advance`.
    pub fn set_never_block(&mut self, set: IpSet) {
        self.never_block = set;
        let listed: Vec<IpNet> = self.targets.iter().filter(|(_, s)| s.listing.is_some()).map(|(t, _)| *t).collect();
        self.dirty.extend(listed.into_iter().filter(|t| self.never_block.overlaps(*t)));
    }

    /// Replaces the canaries (never listed; reporting one zeroes the reporter).
    pub fn set_canaries(&mut self, set: IpSet) {
        self.canaries = set;
    }

    /// Replaces the shared-address ranges (higher bar, captcha).
    pub fn set_shared(&mut self, set: IpSet) {
        self.shared = set;
    }

    /// Replaces the hosting space: the only place a /24 is listed whole ([`expand`]).
    pub fn set_hosting(&mut self, set: IpSet) {
        self.hosting = set;
    }

    /// Replaces what public lists already carry (imported feeds): reporting an address in it is
    /// an echo, which earns nothing, like reporting an address this engine lists.
    pub fn set_public(&mut self, set: IpSet) {
        self.public = set;
    }

    /// Whether `target` may never be listed.
    pub fn is_never_block(&self, target: IpNet) -> bool {
        (self.params.never_block_guard && self.never_block.overlaps(target)) || self.canaries.overlaps(target)
    }

    /// The key a target is aggregated under: IPv6 addresses by their /64.
    pub fn key(target: IpNet) -> IpNet {
        match target {
            IpNet::V6(v6) if v6.prefix_len() > 64 => IpNet::new(IpAddr::V6(v6.addr()), 64).map(|n| n.trunc()).unwrap_or(target),
            other => other.trunc(),
        }
    }

    /// Whether reports under `scenario` may come from forged sources ([`scenarios`]).
    pub fn is_spoofable(&self, scenario: &str) -> bool {
        self.scenarios.is_spoofable(scenario)
    }

    fn origin_as(&self, prefix: IpNet, asn: Option<u32>) -> OriginAs {
        match asn {
            Some(asn) if self.use_asn => OriginAs::Asn(asn),
            _ => {
                let len =
                    if prefix.addr().is_ipv4() { self.params.fallback_v4_as_prefix } else { self.params.fallback_v6_as_prefix };
                OriginAs::Prefix(IpNet::new(prefix.addr(), len.min(prefix.max_prefix_len())).map(|n| n.trunc()).unwrap_or(prefix))
            }
        }
    }

    /// A machine's state, if known.
    pub fn machine(&self, machine: i64) -> Option<&MachineState> {
        self.machines.get(&machine)
    }

    /// A target's state, if any report of it is remembered.
    pub fn target(&self, target: IpNet) -> Option<&TargetState> {
        self.targets.get(&Self::key(target))
    }

    /// Every listed target.
    pub fn listed(&self) -> impl Iterator<Item = (&IpNet, &Listing)> {
        self.targets.iter().filter_map(|(t, s)| s.listing.as_ref().map(|l| (t, l)))
    }

    /// Restores persisted state (the worker's restart path).
    pub fn restore(
        &mut self,
        machines: impl IntoIterator<Item = (i64, MachineState)>,
        targets: impl IntoIterator<Item = (IpNet, TargetState)>,
    ) {
        self.machines.extend(machines);
        for (target, state) in targets {
            if let Some(listing) = &state.listing {
                self.expiries.insert((listing.expires_at, target));
            }
            for reporter in &state.reporters {
                // As `process` remembers it: at the machine's first report of the target.
                self.recent_targets.entry(reporter.machine).or_default().push_back((reporter.first_at, target));
            }
            self.forget_checks.insert((self.forget_check_at(&state), target));
            self.targets.insert(target, state);
        }
        for recent in self.recent_targets.values_mut() {
            recent.make_contiguous().sort_unstable();
        }
        self.rebuild_never_block_reports();
    }

    /// Rebuilds the reporters of never-block addresses from the machines' hits, as if each
    /// penalty had been shared among all of them (which a running engine's refunds converge to).
    fn rebuild_never_block_reports(&mut self) {
        self.never_block_reports.clear();
        for (&machine, state) in &self.machines {
            for (i, &(at, target)) in state.never_block_hits.iter().enumerate() {
                let penalty = self.params.never_block_penalty * self.params.never_block_compounding.powi(i.min(30) as i32);
                let entry = NeverBlockReport {
                    machine,
                    cluster: ClusterId::of(machine, state.account),
                    // Where it reported from is not kept: its cluster stands in for its AS.
                    origin_as: None,
                    at,
                    independent: self.independent(state, at),
                    penalty,
                    strength: 1.0,
                };
                let reports = self.never_block_reports.entry(target).or_default();
                if reports.len() < NEVER_BLOCK_REPORTERS {
                    reports.push(entry);
                }
            }
        }
        for reports in self.never_block_reports.values_mut() {
            let strength = trust::mistake_strength(independent_clusters(reports), &self.params);
            for r in reports.iter_mut() {
                r.strength = strength;
            }
        }
    }

    /// Whether `machine` is an independent witness of a common mistake: a sensor, or an
    /// established machine (old, in good standing) of an account.
    fn independent(&self, machine: &MachineState, now: Time) -> bool {
        machine.sensor
            || (machine.account.is_some()
                && now - machine.created_at >= self.params.established_age_secs
                && machine.trust(now, &self.params) >= self.params.established_trust)
    }

    /// A handshake report of the never-block address `key`. A machine that reports one pays
    /// `never_block_penalty` for it, shared like a proven lie's ([`trust::mistake_strength`])
    /// with the independent established clusters that reported the same address recently: an
    /// address many unrelated, long-standing installations misreport (a crawler, a resolver) is
    /// a common mistake, and each of its reporters bears a small share of it, the earlier ones
    /// refunded as the others come. A sprayer gains nothing from its own fresh machines or from
    /// accounts that share its AS: only established clusters in distinct ASes count, and a
    /// second address still withdraws its support at once.
    fn never_block_report(&mut self, report: &Report<'_>, key: IpNet) {
        let now = report.at;
        let Some(machine) = self.machines.get(&report.machine) else { return };
        let entry = NeverBlockReport {
            machine: report.machine,
            cluster: ClusterId::of(report.machine, machine.account),
            origin_as: Some(self.origin_as(report.origin_prefix, report.origin_asn)),
            at: now,
            independent: self.independent(machine, now),
            penalty: 0.0,
            strength: 1.0,
        };
        let trusted = machine.trust(now, &self.params) >= self.params.trust_floor;
        let since = now - self.params.never_block_memory_secs;
        let mut reports = self.never_block_reports.remove(&key).unwrap_or_default();
        reports.retain(|r| r.at >= since);
        // Only machines above the trust floor open an address's record (a flood of worthless
        // machines cannot grow it), and a record holds a bounded number of reporters.
        let position = match reports.iter().position(|r| r.machine == report.machine) {
            Some(position) => Some(position),
            None if (trusted || !reports.is_empty()) && reports.len() < NEVER_BLOCK_REPORTERS => {
                reports.push(entry);
                Some(reports.len() - 1)
            }
            None => None,
        };
        let strength = trust::mistake_strength(independent_clusters(&reports), &self.params);
        let params = &self.params;
        let charged = self.machines.get_mut(&report.machine).and_then(|state| {
            let penalty = state.never_block_hit(key, now, strength, params)?;
            Some((penalty, state.never_block_hits.len() > 1))
        });
        if let Some((penalty, repeated)) = charged {
            if let Some(position) = position {
                reports[position].penalty = penalty;
                reports[position].strength = strength;
                reports[position].at = now;
            }
            self.touch_machine(report.machine);
            if repeated {
                self.withdraw_support(report.machine, now);
            }
        }
        for r in reports.iter_mut().filter(|r| r.machine != report.machine && r.strength > strength) {
            if r.penalty > 0.0
                && let Some(state) = self.machines.get_mut(&r.machine)
            {
                state.refund(r.penalty * (r.strength - strength), r.at, now, &self.params);
                self.changed_machines.insert(r.machine);
            }
            r.strength = strength;
        }
        if !reports.is_empty() {
            self.never_block_reports.insert(key, reports);
        }
        if now >= self.never_block_pruned_at + 86_400 {
            self.never_block_pruned_at = now;
            self.never_block_reports.retain(|_, reports| reports.iter().any(|r| r.at >= since));
        }
    }

    /// Machines and targets changed since the last call, for persistence.
    pub fn take_changed(&mut self) -> ChangedState {
        let machines = self.changed_machines.drain().filter_map(|m| self.machines.get(&m).map(|s| (m, s.clone()))).collect();
        let targets = self.changed_targets.drain().map(|t| (t, self.targets.get(&t).cloned())).collect();
        ChangedState { machines, targets }
    }

    fn touch_machine(&mut self, machine: i64) {
        self.changed_machines.insert(machine);
    }

    fn canary_hit(&mut self, machine: i64, now: Time) {
        let batch = self.params.penalty_batch_secs.max(1);
        let (account, visible_at) = match self.machines.get_mut(&machine) {
            Some(state) => {
                if state.zeroed_at.is_none() {
                    state.zeroed_at = Some(now);
                    state.penalty_visible_at = Some((now / batch + 1) * batch);
                }
                (state.account, state.penalty_visible_at.unwrap_or(now))
            }
            None => return,
        };
        self.touch_machine(machine);
        let members: Vec<i64> = match account {
            Some(account) => self.machines.iter().filter(|(_, s)| s.account == Some(account)).map(|(m, _)| *m).collect(),
            None => vec![machine],
        };
        let since = now - self.params.canary_void_window_secs;
        for member in members {
            let Some(recent) = self.recent_targets.get(&member) else { continue };
            let targets: Vec<IpNet> = recent.iter().filter(|(at, _)| *at >= since).map(|(_, t)| *t).collect();
            for target in targets {
                if let Some(state) = self.targets.get_mut(&target) {
                    for reporter in state.reporters.iter_mut().filter(|r| r.machine == member && r.last_at >= since) {
                        if !reporter.voided {
                            reporter.voided = true;
                            reporter.voided_visible_at = visible_at;
                        }
                    }
                    self.changed_targets.insert(target);
                    self.dirty.insert(target);
                    self.slashed.insert(target);
                }
            }
        }
    }

    /// Whether a report may take engine memory (the engine's cost is bounded per address and per
    /// machine; refused reports stay in the store). A further report of a target the machine
    /// already reports, and any sensor report, always may. A new reporter is refused once the
    /// target holds `max_reporters_per_target`, or `untrusted_reporters_per_target` if the
    /// machine is below the trust floor; and once the machine has spent its daily allowance of
    /// new targets, or below the floor, once its cluster has spent theirs.
    fn admit(&mut self, report: &Report<'_>, key: IpNet) -> bool {
        let p = &self.params;
        let reporters = match self.targets.get_mut(&key) {
            Some(state) => match state.reporter_position(report.machine) {
                Some(_) => return true,
                None => state.reporters.len(),
            },
            None => 0,
        };
        let Some(machine) = self.machines.get(&report.machine) else { return false };
        if machine.sensor {
            return true;
        }
        let trusted = machine.trust(report.at, p) >= p.trust_floor;
        if reporters >= p.max_reporters_per_target || (!trusted && reporters >= p.untrusted_reporters_per_target) {
            return false;
        }
        if !trusted {
            let cluster = match machine.account {
                Some(account) => UntrustedCluster::Account(account),
                None => UntrustedCluster::Network(report.origin_prefix),
            };
            let day = trust::day_of(report.at);
            let spent = self.untrusted_days.entry(cluster).or_insert((day, 0));
            if spent.0 != day {
                *spent = (day, 0);
            }
            if spent.1 >= p.max_new_targets_per_untrusted_cluster_day {
                return false;
            }
            spent.1 += 1;
        }
        self.machines.get_mut(&report.machine).is_some_and(|m| m.take_daily_target(report.at, p))
    }

    /// Re-evaluates at once every target `machine` supported within the evidence window, after
    /// a penalty: a listing that no longer qualifies without its full weight is delisted.
    fn withdraw_support(&mut self, machine: i64, now: Time) {
        let since = now - self.params.evidence_window_secs;
        let void_from = now - self.params.canary_void_window_secs;
        let Some(recent) = self.recent_targets.get(&machine) else { return };
        // Judged on the persisted target state (the machine's latest report of it), so a
        // restarted engine withdraws exactly what a running one would.
        let supported = recent.iter().filter(|(at, _)| *at >= void_from).map(|(_, t)| *t).filter(|t| {
            self.targets
                .get(t)
                .is_some_and(|state| state.reporters.iter().any(|r| r.machine == machine && r.last_at >= since && !r.voided))
        });
        let supported: Vec<IpNet> = supported.collect();
        for target in supported {
            self.dirty.insert(target);
            self.slashed.insert(target);
        }
    }

    /// When a target may next be forgotten: once its latest report has left the evidence window,
    /// its protection has run out and it is not listed.
    fn forget_check_at(&self, state: &TargetState) -> Time {
        let listed_until = state.listing.as_ref().map_or(0, |l| l.expires_at);
        (state.last_seen + self.params.evidence_window_secs).max(state.protected_until).max(state.held_until).max(listed_until)
            + 1
    }

    /// Forgets the unlisted targets whose reports all left the evidence window. Without it, an
    /// address reported once and never again would be remembered for ever.
    fn forget_stale(&mut self, now: Time) {
        let window_start = now - self.params.evidence_window_secs;
        while let Some(&(at, target)) = self.forget_checks.first() {
            if at > now {
                break;
            }
            self.forget_checks.pop_first();
            let Some(state) = self.targets.get(&target) else { continue };
            let keep = state.listing.is_some()
                || state.last_seen >= window_start
                || state.protected_until > now
                || state.held_until > now
                || self.dirty.contains(&target);
            if keep {
                let next = self.forget_check_at(state).max(now + 1);
                self.forget_checks.insert((next, target));
            } else {
                self.targets.remove(&target);
                self.changed_targets.insert(target);
            }
        }
    }

    /// Reports before this no longer count towards a listing: older than the evidence window, or
    /// from before the latest expiry.
    fn evidence_start(&self, state: &TargetState, now: Time) -> Time {
        (now - self.params.evidence_window_secs).max(state.expired_at + 1)
    }

    /// Support from the reports in the evidence window, of machines at least `min_age` old with
    /// a weight of at least `floor`. Spoofable reports count for nothing, and neither do machines
    /// without an account (sensors excepted): an account is what the operator can hold to account.
    fn support(&self, state: &TargetState, now: Time, floor: f64, min_age: Time, exclude_cluster: Option<ClusterId>) -> Support {
        let window_start = self.evidence_start(state, now);
        let counted = state.reporters.iter().filter(|r| !r.voided && !r.spoofable && r.last_at >= window_start);
        let contributions = counted.filter_map(|r| {
            let machine = self.machines.get(&r.machine)?;
            if (machine.account.is_none() && !machine.sensor) || now - machine.created_at < min_age {
                return None;
            }
            let trust = machine.trust(now, &self.params);
            let weight = trust * r.factor;
            let cluster = ClusterId::of(r.machine, machine.account);
            (weight >= floor && weight > 0.0 && Some(cluster) != exclude_cluster).then(|| Contribution {
                cluster,
                prefix: r.origin_prefix,
                origin_as: r.origin_as,
                weight,
                established: machine.sensor
                    || (now - machine.created_at >= self.params.established_age_secs && trust >= self.params.established_trust),
                seasoning: if machine.sensor {
                    1.0
                } else if trust >= self.params.established_trust {
                    ((now - machine.created_at) as f64 / self.params.established_age_secs.max(1) as f64).clamp(0.0, 1.0)
                } else {
                    0.0
                },
            })
        });
        support::aggregate(contributions)
    }

    fn qualifies(&self, state: &TargetState, key: IpNet, now: Time, exclude: Option<ClusterId>) -> Option<(Rule, Remediation)> {
        if state.held_until > now {
            return None;
        }
        let p = &self.params;
        let window_start = self.evidence_start(state, now);
        let shared = self.shared.overlaps(key);
        let remediation = if shared { Remediation::Captcha } else { Remediation::Ban };
        let sensor_seen = state.reporters.iter().any(|r| {
            r.sensor_sighting
                && !r.voided
                && r.last_at >= window_start
                && Some(ClusterId::of(r.machine, self.machines.get(&r.machine).and_then(|m| m.account))) != exclude
        });
        if sensor_seen {
            return Some((Rule::Sensor, remediation));
        }
        if state.protected_until > now {
            return None;
        }
        let mult = if shared { p.shared_multiplier } else { 1.0 };
        let need = |n: usize| (n as f64 * mult).ceil() as usize;
        let crowd = self.support(state, now, p.trust_floor, 0, exclude);
        if crowd.total >= p.crowd_support * mult
            && crowd.ases >= need(p.crowd_min_ases)
            && crowd.accounts >= need(p.crowd_min_accounts)
            && anchored(&crowd, p.anchor_min_ases)
        {
            return Some((Rule::Crowd, remediation));
        }
        if crowd.total >= p.broad_support * mult {
            let broad = self.support(state, now, p.broad_cluster_trust, p.broad_min_age_secs, exclude);
            if broad.total >= p.broad_support * mult
                && broad.ases >= need(p.broad_min_clusters)
                && broad.accounts >= need(p.broad_min_clusters)
            {
                return Some((Rule::Broad, remediation));
            }
        }
        None
    }

    fn top_scenario(state: &TargetState) -> String {
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for r in state.reporters.iter().filter(|r| !r.voided) {
            *counts.entry(r.scenario.as_str()).or_default() += r.count;
        }
        counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))).map(|(s, _)| s.to_string()).unwrap_or_default()
    }

    /// Gives lead credit to the clusters whose reports came before the listing and without which
    /// the listing still holds (their report was independent evidence that turned out right).
    fn credit_leaders(&mut self, key: IpNet, now: Time) {
        let Some(state) = self.targets.get(&key) else { return };
        let Some(listing) = &state.listing else { return };
        let listed_at = listing.listed_at;
        let leading = |r: &Reporter| !r.credited && !r.voided && !r.spoofable && !r.sensor_sighting && r.first_at <= listed_at;
        let clusters: Vec<ClusterId> = {
            let mut seen = Vec::new();
            for r in state.reporters.iter().filter(|r| leading(r)) {
                let cluster = ClusterId::of(r.machine, self.machines.get(&r.machine).and_then(|m| m.account));
                if !seen.contains(&cluster) {
                    seen.push(cluster);
                }
            }
            seen
        };
        let mut credited = Vec::new();
        for cluster in clusters.into_iter().take(64) {
            if self.qualifies(state, key, now, Some(cluster)).is_some() {
                credited.push(cluster);
            }
        }
        if credited.is_empty() {
            return;
        }
        let mut machines = Vec::new();
        if let Some(state) = self.targets.get_mut(&key) {
            for r in state.reporters.iter_mut().filter(|r| leading(r)) {
                let cluster = ClusterId::of(r.machine, self.machines.get(&r.machine).and_then(|m| m.account));
                if credited.contains(&cluster) {
                    r.credited = true;
                    machines.push(r.machine);
                }
            }
        }
        self.changed_targets.insert(key);
        for machine in machines {
            if let Some(state) = self.machines.get_mut(&machine) {
                state.add_evidence(self.params.lead_credit, 0.0, now, &self.params);
                state.leads += 1;
                self.changed_machines.insert(machine);
            }
        }
    }

    /// A listing is renewed once past half its current lifetime, if it was reported in that second
    /// half: the attacker is still active. (Renewing at any report since the last renewal, with
    /// the next, doubled lifetime as the yardstick, took a listing to the longest lifetime within
    /// minutes and renewed it on evidence a day old, so reassigned addresses stayed listed.)
    fn renewal_due(state: &TargetState, listing: &Listing, now: Time) -> bool {
        let halfway = listing.expires_at - (listing.expires_at - listing.renewed_at) / 2;
        now >= halfway && state.reporters.iter().any(|r| !r.voided && r.last_at >= halfway)
    }

    /// Stores a new or renewed listing, announces it, schedules its expiry, and credits the
    /// reporters who led it.
    fn write_listing(&mut self, key: IpNet, listing: Listing, now: Time, out: &mut Vec<Change>) {
        out.push(Change::Listed {
            target: key,
            rule: listing.rule,
            scenario: listing.scenario.clone(),
            remediation: listing.remediation,
            expires_at: listing.expires_at,
        });
        self.expiries.insert((listing.expires_at, key));
        if let Some(state) = self.targets.get_mut(&key) {
            state.listing = Some(listing);
        }
        self.changed_targets.insert(key);
        self.credit_leaders(key, now);
    }

    fn evaluate(&mut self, key: IpNet, now: Time, out: &mut Vec<Change>) {
        let slashed = self.slashed.remove(&key);
        if self.is_never_block(key) {
            if let Some(state) = self.targets.get_mut(&key)
                && state.listing.take().is_some()
            {
                self.changed_targets.insert(key);
                out.push(Change::Delisted { target: key, reason: DelistReason::NeverBlock });
            }
            return;
        }
        let Some(state) = self.targets.get(&key) else { return };
        // A listing that is neither slashed nor due for renewal cannot change: skip the support
        // computation (the hot path for widely reported attackers, evaluated at every step).
        if let Some(listing) = &state.listing
            && !slashed
            && !Self::renewal_due(state, listing, now)
        {
            return;
        }
        let verdict = self.qualifies(state, key, now, None);
        let window_start = now - self.params.evidence_window_secs;
        let p = &self.params;
        match (verdict, &state.listing) {
            (Some((rule, remediation)), None) => {
                let listing = Listing {
                    rule,
                    listed_at: now,
                    renewed_at: now,
                    expires_at: now + p.base_ttl_secs,
                    renewals: 0,
                    scenario: Self::top_scenario(state),
                    remediation,
                };
                self.write_listing(key, listing, now, out);
            }
            (Some((rule, remediation)), Some(listing)) => {
                if Self::renewal_due(state, listing, now) {
                    let ttl = (p.base_ttl_secs.saturating_mul(1 << (listing.renewals + 1).min(30))).min(p.max_ttl_secs);
                    let mut listing = listing.clone();
                    listing.renewals += 1;
                    listing.renewed_at = now;
                    listing.expires_at = now + ttl;
                    listing.rule = rule;
                    listing.remediation = remediation;
                    listing.scenario = Self::top_scenario(state);
                    self.write_listing(key, listing, now, out);
                }
            }
            (None, Some(_)) if slashed => {
                if let Some(state) = self.targets.get_mut(&key) {
                    state.listing = None;
                }
                self.changed_targets.insert(key);
                out.push(Change::Delisted { target: key, reason: DelistReason::Slashed });
            }
            (None, Some(listing)) if listing.expires_at <= now => {
                // Due for renewal at its expiry but no longer qualifying: it expires.
                if let Some(state) = self.targets.get_mut(&key) {
                    state.listing = None;
                    state.expired_at = now;
                }
                self.changed_targets.insert(key);
                out.push(Change::Delisted { target: key, reason: DelistReason::Expired });
            }
            (None, None) => {
                // Forget what can no longer matter.
                let keep = state.reporters.iter().any(|r| r.last_at >= window_start)
                    || state.protected_until > now
                    || state.held_until > now;
                if !keep {
                    self.targets.remove(&key);
                    self.changed_targets.insert(key);
                }
            }
            (None, Some(_)) => {}
        }
    }

    /// The operator delists `target` without blaming anyone: it leaves the list now, the reports
    /// made so far no longer count towards listing it again (only reports after `now` do), and
    /// until `hold_until` nothing lists it, not even a sensor. No machine's trust changes. An
    /// address's /24 listed by expansion is evaluated again without it.
    pub fn delist(&mut self, target: IpNet, hold_until: Time, now: Time) -> Vec<Change> {
        let key = Self::key(target);
        let mut out = Vec::new();
        if !self.targets.contains_key(&key) && hold_until <= now {
            return out;
        }
        if !self.targets.contains_key(&key) {
            self.forget_checks.insert((hold_until + 1, key));
        }
        let state =
            self.targets.entry(key).or_insert_with(|| TargetState { first_seen: now, last_seen: now, ..TargetState::default() });
        state.expired_at = state.expired_at.max(now);
        state.held_until = state.held_until.max(hold_until);
        if state.listing.take().is_some() {
            out.push(Change::Delisted { target: key, reason: DelistReason::Operator });
        }
        self.changed_targets.insert(key);
        self.dirty.remove(&key);
        self.expand_blocks(now, &mut out);
        out
    }

    /// `machine` takes back its reports of `target` (an AbuseIPDB key cleared its reports): its
    /// reporter entry leaves the target, and a listing that no longer qualifies without it is
    /// delisted now (`withdrawn`); one that still qualifies stays as it is. Nobody's trust
    /// changes: lead credit already given is kept, and nobody is blamed. IPv6 addresses are
    /// counted per /64 ([`Engine::key`]), so the machine's support of the whole /64 goes.
    pub fn withdraw(&mut self, machine: i64, target: IpNet, now: Time) -> Vec<Change> {
        let key = Self::key(target);
        let mut out = Vec::new();
        let Some(state) = self.targets.get_mut(&key) else { return out };
        let before = state.reporters.len();
        state.reporters.retain(|r| r.machine != machine);
        if state.reporters.len() == before {
            return out;
        }
        // Positions moved: the index is rebuilt from scratch when next needed.
        state.index = ReporterIndex::default();
        self.changed_targets.insert(key);
        let still_listed = match self.targets.get(&key) {
            Some(state) if state.listing.is_some() => self.qualifies(state, key, now, None).is_some(),
            _ => true,
        };
        if !still_listed {
            if let Some(state) = self.targets.get_mut(&key) {
                state.listing = None;
            }
            out.push(Change::Delisted { target: key, reason: DelistReason::Withdrawn });
            self.expand_blocks(now, &mut out);
        }
        self.dirty.insert(key);
        out
    }

    /// Explains a target. `with_supporters` adds the reporting machines (admin view only).
    pub fn explain(&self, target: IpNet, now: Time, with_supporters: bool) -> Option<Explanation> {
        let state = self.targets.get(&Self::key(target))?;
        let support = self.support(state, now, self.params.trust_floor, 0, None);
        let mut scenarios: Vec<String> = state.reporters.iter().map(|r| r.scenario.clone()).collect();
        scenarios.sort();
        scenarios.dedup();
        Some(Explanation {
            listing: state.listing.clone(),
            support: support.total,
            ases: support.ases,
            accounts: support.accounts,
            scenarios,
            first_seen: state.first_seen,
            last_seen: state.last_seen,
            supporters: if with_supporters { state.reporters.iter().map(|r| r.machine).collect() } else { Vec::new() },
        })
    }
}

impl Consensus for Engine {
    fn upsert_machine(&mut self, machine: i64, account: Option<i64>, level: Level, sensor: bool, created_at: Time) {
        let state = self.machines.entry(machine).or_insert_with(|| MachineState::new(account, level, sensor, created_at));
        if state.account != account || state.level != level || state.sensor != sensor || state.created_at != created_at {
            state.account = account;
            state.level = level;
            state.sensor = sensor;
            state.created_at = created_at;
            self.changed_machines.insert(machine);
        }
    }

    fn process(&mut self, report: &Report<'_>) {
        let key = Self::key(report.target);
        if !self.machines.contains_key(&report.machine) {
            self.upsert_machine(report.machine, None, Level::Anonymous, false, report.at);
        }
        let spoofable = self.is_spoofable(report.scenario);
        // A canary report is recorded as any other (the target state, its reporters, first and
        // last seen), so no answer and no timing tells a canary from an ordinary unlisted
        // address; it is never listed (`is_never_block`), and only its effect on the reporter
        // differs, applied once the report is in.
        let canary = self.canaries.overlaps(key);
        if !canary && self.params.never_block_guard && self.never_block.overlaps(key) {
            // Forged traffic can make anybody report anything: only a handshake costs.
            if spoofable {
                return;
            }
            self.never_block_report(report, key);
            return;
        }
        if !self.admit(report, key) {
            if canary && !spoofable {
                self.canary_hit(report.machine, report.at);
            }
            return;
        }
        let origin_as = self.origin_as(report.origin_prefix, report.origin_asn);
        let scenario_weight = if report.certified { 1.0 } else { self.params.uncertified_weight };
        let params = &self.params;
        let Some(machine) = self.machines.get_mut(&report.machine) else { return };
        let sensor_sighting = machine.sensor && !spoofable;
        // A zeroed machine's reports count for nothing, and are voided like those before its
        // hit (visible at the same boundary), so voided and counted reports do not meet at the
        // report that hit the canary.
        let zeroed = match (machine.sensor, machine.zeroed_at) {
            (false, Some(_)) => Some(machine.penalty_visible_at.unwrap_or(report.at)),
            _ => None,
        };
        if !self.targets.contains_key(&key) {
            self.forget_checks.insert((report.at + params.evidence_window_secs + 1, key));
        }
        let state = self.targets.entry(key).or_insert_with(|| TargetState { first_seen: report.at, ..TargetState::default() });
        state.last_seen = state.last_seen.max(report.at);
        let echo = state.listing.is_some() || self.public.overlaps(key);
        match state.reporter_position(report.machine).map(|position| &mut state.reporters[position]) {
            Some(r) => {
                r.last_at = r.last_at.max(report.at);
                r.count = r.count.saturating_add(1);
                r.scenario.clear();
                r.scenario.push_str(report.scenario);
                r.origin_prefix = report.origin_prefix;
                r.origin_as = origin_as;
                r.factor = scenario_weight * machine.burst_damping(report.at, params);
                r.sensor_sighting |= sensor_sighting;
                r.spoofable &= spoofable;
            }
            None => {
                let damping = machine.count_new_target(report.at, params);
                if echo && !spoofable {
                    machine.add_evidence(params.echo_credit, 0.0, report.at, params);
                }
                state.reporters.push(Reporter {
                    machine: report.machine,
                    origin_prefix: report.origin_prefix,
                    origin_as,
                    first_at: report.at,
                    last_at: report.at,
                    count: 1,
                    scenario: report.scenario.to_string(),
                    factor: scenario_weight * damping,
                    spoofable,
                    sensor_sighting,
                    voided: zeroed.is_some(),
                    voided_visible_at: zeroed.unwrap_or(0),
                    credited: echo,
                });
                let recent = self.recent_targets.entry(report.machine).or_default();
                recent.push_back((report.at, key));
                // A canary voids only the reports of its window: older entries are dead weight.
                let void_from = report.at - params.canary_void_window_secs;
                while recent.len() > RECENT_TARGETS_PER_MACHINE || recent.front().is_some_and(|(at, _)| *at < void_from) {
                    recent.pop_front();
                }
                self.changed_machines.insert(report.machine);
            }
        }
        self.changed_targets.insert(key);
        self.dirty.insert(key);
        if canary && !spoofable {
            self.canary_hit(report.machine, report.at);
        }
    }

    fn advance(&mut self, now: Time) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some(&(at, target)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            // A listing renewed since this entry was queued has a later entry of its own: it is
            // handled there, in the order of its real expiry, as an engine restored from the store
            // (which queues only the real expiries) would handle it.
            let expired =
                self.targets.get(&target).and_then(|s| s.listing.as_ref()).is_some_and(|l| {
                    l.expires_at <= now && (l.expires_at == at || !self.expiries.contains(&(l.expires_at, target)))
                });
            if expired {
                // Fresh evidence renews instead of expiring (in `evaluate`).
                let renewable = self.targets.get(&target).is_some_and(|s| {
                    s.listing.as_ref().is_some_and(|l| Self::renewal_due(s, l, now))
                        && self.qualifies(s, target, now, None).is_some()
                });
                if renewable {
                    self.dirty.insert(target);
                    continue;
                }
                if let Some(state) = self.targets.get_mut(&target) {
                    state.listing = None;
                    state.expired_at = now;
                }
                self.changed_targets.insert(target);
                out.push(Change::Delisted { target, reason: DelistReason::Expired });
                self.dirty.insert(target);
            }
        }
        let mut dirty: Vec<IpNet> = self.dirty.drain().collect();
        dirty.sort();
        for key in dirty {
            self.evaluate(key, now, &mut out);
        }
        self.expand_blocks(now, &mut out);
        self.forget_stale(now);
        out
    }

    fn report_false_positive(&mut self, target: IpNet, now: Time) -> Vec<Change> {
        let key = Self::key(target);
        let mut out = Vec::new();
        self.protect_block(key, now, &mut out);
        let Some(state) = self.targets.get(&key) else { return out };
        let window_start = now - self.params.evidence_window_secs;
        // Reports forged traffic could cause, and sensors (the operator's own), prove no lie.
        let supporters: Vec<(i64, ClusterId, bool)> = state
            .reporters
            .iter()
            .filter(|r| !r.voided && !r.spoofable && !r.sensor_sighting && r.last_at >= window_start)
            .filter_map(|r| {
                let machine = self.machines.get(&r.machine)?;
                let counted = machine.trust(now, &self.params) * r.factor >= self.params.trust_floor;
                Some((r.machine, ClusterId::of(r.machine, machine.account), counted))
            })
            .collect();
        // A lie told by few is decisive for each of them; a mistake shared by many independent,
        // trusted clusters (misled together, or an operator fooled by an attacker's appeal)
        // costs each little: the strength falls with the square of their number.
        let mut clusters: Vec<ClusterId> = supporters.iter().filter(|(_, _, counted)| *counted).map(|(_, c, _)| *c).collect();
        clusters.sort();
        clusters.dedup();
        // A sensor of the operator's saw it attack (a handshake): the appeal contradicts the
        // operator's own ground truth, so upholding it proves no reporter lied.
        let sensor_saw = state.reporters.iter().any(|r| r.sensor_sighting && !r.voided && r.last_at >= window_start);
        let strength = if sensor_saw { 0.0 } else { trust::mistake_strength(clusters.len(), &self.params) };
        let Some(state) = self.targets.get_mut(&key) else { return out };
        state.protected_until = now + self.params.false_positive_protection_secs;
        if state.listing.take().is_some() {
            out.push(Change::Delisted { target: key, reason: DelistReason::FalsePositive });
        }
        self.changed_targets.insert(key);
        if strength == 0.0 {
            return out;
        }
        for (machine, _, _) in supporters {
            if let Some(m) = self.machines.get_mut(&machine) {
                m.proven_lie(strength, self.params.false_positive_penalty, now, &self.params);
                self.changed_machines.insert(machine);
            }
            self.withdraw_support(machine, now);
        }
        out
    }

    fn machine_trust(&self, machine: i64, now: Time) -> f64 {
        self.machines.get(&machine).map(|m| m.trust(now, &self.params)).unwrap_or(0.0)
    }
}

/// Whether a crowd listing is anchored: by `anchor_min_ases` ASes holding an established
/// machine, or by one such AS and younger machines in good standing in others whose ages,
/// each over the established age, make up the rest. Either way the anchoring machines are at
/// least `anchor_min_ases` × the established age old together, so time stays what a coalition
/// cannot buy, while an attacker reported by one established installation and a few
/// long-standing ones is listed without waiting for a second established AS.
fn anchored(support: &Support, anchor_min_ases: usize) -> bool {
    support.anchor_ases >= anchor_min_ases || (support.anchor_ases >= 1 && support.anchor_weight + 1e-9 >= anchor_min_ases as f64)
}

/// Independent clusters among the reporters of a never-block address: the established ones,
/// counted by account and by AS, whichever is fewer (accounts sharing an AS are one witness).
fn independent_clusters(reports: &[NeverBlockReport]) -> usize {
    let mut clusters: Vec<ClusterId> = reports.iter().filter(|r| r.independent).map(|r| r.cluster).collect();
    clusters.sort();
    clusters.dedup();
    // A report whose AS is not known (restored) is its cluster's own.
    let mut ases: Vec<(Option<OriginAs>, Option<ClusterId>)> =
        reports.iter().filter(|r| r.independent).map(|r| (r.origin_as, r.origin_as.is_none().then_some(r.cluster))).collect();
    ases.sort();
    ases.dedup();
    clusters.len().min(ases.len())
}

#[cfg(test)]
mod tests;
