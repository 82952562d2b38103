//! Naive baselines implementing the engine's [`Consensus`] interface, so they run over the very
//! same event stream: "list after N distinct machines" and "list after N distinct accounts" (a
//! machine without an account counts as its own). No trust, no clustering by network, no anchors:
//! they show what the engine's model buys.

use std::collections::{BTreeSet, HashMap, HashSet};

use ipnet::IpNet;
use palisade_server::engine::ipset::IpSet;
use palisade_server::engine::trust::Level;
use palisade_server::engine::{Change, Consensus, DelistReason, Engine, Remediation, Report, Rule, Time};

/// What a baseline counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Distinct machines.
    Machines,
    /// Distinct accounts (a machine without one is its own).
    Accounts,
}

#[derive(Debug, Default)]
struct Target {
    /// Unit id → latest report.
    reporters: HashMap<i64, Time>,
    /// Latest report of anyone.
    last: Time,
    /// Listed until, when listed.
    listed_until: Option<Time>,
}

/// "List after N distinct units reported it within the window."
#[derive(Debug)]
pub struct Naive {
    unit: Unit,
    n: usize,
    window: Time,
    ttl: Time,
    never_block: IpSet,
    accounts: HashMap<i64, Option<i64>>,
    targets: HashMap<IpNet, Target>,
    dirty: HashSet<IpNet>,
    expiries: BTreeSet<(Time, IpNet)>,
    next_sweep: Time,
}

impl Naive {
    /// A baseline counting `unit`s, listing at `n`, counting reports of the last `window`
    /// seconds, keeping a listing `ttl` seconds after its latest report, and never listing what
    /// `never_block` holds.
    pub fn new(unit: Unit, n: usize, window: Time, ttl: Time, never_block: IpSet) -> Self {
        Naive {
            unit,
            n: n.max(1),
            window,
            ttl,
            never_block,
            accounts: HashMap::new(),
            targets: HashMap::new(),
            dirty: HashSet::new(),
            expiries: BTreeSet::new(),
            next_sweep: Time::MIN,
        }
    }

    /// Its name in the scorecard.
    pub fn label(&self) -> String {
        match self.unit {
            Unit::Machines => format!("machines>={}", self.n),
            Unit::Accounts => format!("accounts>={}", self.n),
        }
    }

    fn unit_of(&self, machine: i64) -> i64 {
        match self.unit {
            Unit::Machines => machine,
            Unit::Accounts => self.accounts.get(&machine).copied().flatten().unwrap_or(-machine),
        }
    }
}

impl Consensus for Naive {
    fn upsert_machine(&mut self, machine: i64, account: Option<i64>, _level: Level, _sensor: bool, _created_at: Time) {
        self.accounts.insert(machine, account);
    }

    fn process(&mut self, report: &Report<'_>) {
        let key = Engine::key(report.target);
        if self.never_block.overlaps(key) {
            return;
        }
        let unit = self.unit_of(report.machine);
        let target = self.targets.entry(key).or_default();
        let latest = target.reporters.entry(unit).or_insert(report.at);
        *latest = (*latest).max(report.at);
        target.last = target.last.max(report.at);
        self.dirty.insert(key);
    }

    fn advance(&mut self, now: Time) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some(&(at, key)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            let Some(target) = self.targets.get_mut(&key) else { continue };
            if target.listed_until == Some(at) {
                target.listed_until = None;
                out.push(Change::Delisted { target: key, reason: DelistReason::Expired });
                self.dirty.insert(key);
            }
        }
        // Forget, once a window, the unlisted addresses nobody reported within it.
        if now >= self.next_sweep {
            let since = now - self.window;
            self.targets.retain(|_, t| t.listed_until.is_some() || t.last >= since);
            self.next_sweep = now + self.window;
        }
        let mut dirty: Vec<IpNet> = self.dirty.drain().collect();
        dirty.sort();
        for key in dirty {
            let Some(target) = self.targets.get_mut(&key) else { continue };
            let since = now - self.window;
            target.reporters.retain(|_, at| *at >= since);
            if target.reporters.is_empty() && target.listed_until.is_none() {
                self.targets.remove(&key);
                continue;
            }
            let until = target.last + self.ttl;
            let qualifies = target.reporters.len() >= self.n && until > now;
            match target.listed_until {
                None if qualifies => {
                    target.listed_until = Some(until);
                    self.expiries.insert((until, key));
                    out.push(Change::Listed {
                        target: key,
                        rule: Rule::Crowd,
                        scenario: String::new(),
                        remediation: Remediation::Ban,
                        expires_at: until,
                    });
                }
                Some(current) if qualifies && until > current => {
                    target.listed_until = Some(until);
                    self.expiries.insert((until, key));
                    out.push(Change::Listed {
                        target: key,
                        rule: Rule::Crowd,
                        scenario: String::new(),
                        remediation: Remediation::Ban,
                        expires_at: until,
                    });
                }
                _ => {}
            }
        }
        out
    }

    fn report_false_positive(&mut self, target: IpNet, _now: Time) -> Vec<Change> {
        let key = Engine::key(target);
        match self.targets.remove(&key) {
            Some(t) if t.listed_until.is_some() => vec![Change::Delisted { target: key, reason: DelistReason::FalsePositive }],
            _ => Vec::new(),
        }
    }

    fn machine_trust(&self, _machine: i64, _now: Time) -> f64 {
        1.0
    }
}
