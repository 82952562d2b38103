//! Scoring one subject's run: what it listed and when, set against what the world knows each
//! address to be. Definitions (also in `docs/simulator.md`):
//! - an attacker *qualifies* when its third distinct honest account reports it (machines without
//!   an account and the operator's sensors are not accounts); time-to-list is first listing minus
//!   that, 0 if earlier;
//! - recall by breadth: attackers that started in the scored period and were reported by at least
//!   N distinct honest accounts, and the share of them listed at any time;
//! - innocent: addresses adversary groups wanted listed (never-block ones are counted apart);
//! - benign false-positive rate: benign addresses honest machines reported in the scored period
//!   that were listed, over all of them;
//! - a group succeeds when any of its victims is listed; its cost is the sum over its machines of
//!   their age in days when its first victim was listed;
//! - a malicious machine's penalty counts when it took effect: penalised at the end, and no victim
//!   of its group listed after its penalty;
//! - a reassigned address exposes its new, innocent user for the hours it is listed within
//!   `STALE_AFTER` of the handover, whether or not it was listed at the handover itself.

use std::collections::HashMap;

use ipnet::IpNet;
use palisade_server::engine::ipset::IpSet;
use palisade_server::engine::{Change, ChangedState, TargetState, Time};
use serde::Serialize;

use super::generate::{Entity, Generator};
use super::world::{DAY, HOUR, Role, World};

/// Distinct honest accounts counted per attacker (enough for every breadth threshold).
const BREADTH_CAP: usize = 10;
/// An attacker qualifies at this many distinct honest accounts.
pub const QUALIFY_ACCOUNTS: usize = 3;
/// A reassigned address is checked this long after the handover.
pub const STALE_AFTER: Time = 48 * HOUR;

#[derive(Debug, Clone, Default)]
struct AttackerStat {
    clusters: Vec<i64>,
    qualified_at: Option<Time>,
    first_listed: Option<Time>,
}

#[derive(Debug, Clone, Default)]
struct BenignStat {
    reported_at: Option<Time>,
    listed: bool,
}

#[derive(Debug, Clone, Default)]
struct VictimStat {
    listed: bool,
    listed_secs: Time,
    /// Every time it was newly listed.
    listed_at: Vec<Time>,
}

/// A reassigned address during the `STALE_AFTER` after its handover.
#[derive(Debug, Clone, Copy)]
struct Watch {
    listed_from: Option<Time>,
    listed_secs: Time,
}

/// Estimated bytes of one target's state as the engine holds and persists it.
fn target_bytes(state: &TargetState) -> u64 {
    let reporters: usize = state.reporters.iter().map(|r| std::mem::size_of_val(r) + r.scenario.len()).sum();
    let listing = state.listing.as_ref().map_or(0, |l| l.scenario.len());
    (std::mem::size_of::<IpNet>() + std::mem::size_of::<TargetState>() + reporters + listing) as u64
}

/// The scorecard of one subject: the deterministic part of the output.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    /// Subject name (`engine`, `machines>=3`, …).
    pub subject: String,
    /// Distinct innocent (victim) addresses listed.
    pub innocent_listed: u64,
    /// Hours innocent addresses spent listed, summed.
    pub innocent_listed_hours: f64,
    /// Distinct never-block addresses or ranges listed.
    pub never_block_listed: u64,
    /// Benign addresses listed over benign addresses reported.
    pub benign_fp_rate: f64,
    /// Share listed of attackers reported by ≥ 10 distinct honest accounts (null: none).
    pub recall_seen_by_10plus_accounts: Option<f64>,
    /// Share listed of attackers reported by ≥ 3 distinct honest accounts (null: none).
    pub recall_seen_by_3plus_accounts: Option<f64>,
    /// Median seconds from qualifying to listing.
    pub time_to_list_p50_s: Option<i64>,
    /// 95th percentile of the same.
    pub time_to_list_p95_s: Option<i64>,
    /// Reassigned (dynamic) addresses still listed 48 hours after the handover.
    pub reassigned_still_listed_48h: u64,
    /// Hours reassigned addresses were listed within 48 hours of their handover, summed.
    pub reassigned_listed_hours_48h: f64,
    /// Adversary and compromised machines whose penalty took effect: penalised at the end, and
    /// no victim of their group listed after it.
    pub malicious_machines_penalised: u64,
    /// Adversary and compromised machines penalised at the end, effect or not.
    pub malicious_machines_flagged: u64,
    /// Victim listings made after a machine of the victim's group was penalised.
    pub innocent_listed_after_penalty: u64,
    /// Honest machines penalised by the end.
    pub honest_machines_penalised: u64,
    /// The same as a share of honest machines.
    pub honest_machines_penalised_rate: f64,
    /// Real attackers' appeals against their own listing upheld by the operator.
    pub attacker_appeals_upheld: u64,
    /// Peak estimated size of the engine's target state (what it holds and persists), MB
    /// (null: the subject does not report its state).
    pub engine_state_mb_peak: Option<f64>,
    /// Peak number of targets the engine held.
    pub engine_targets_peak: Option<u64>,
    /// With `run.consumer_list_cap`: the most listed real attackers kept out of the capped list
    /// (newest listings first) while something else held a slot, at an hourly look in the
    /// scored period (null: no cap).
    pub real_attackers_displaced: Option<u64>,
    /// Canaries a probing group can pin down: a probe machine's penalty became visible by the
    /// end, and it reported exactly one address in the batch period that made it visible
    /// (null: no probing group, or a subject without visible penalties).
    pub canaries_identified: Option<u64>,
    /// Ranges (IPv4 shorter than /32, IPv6 shorter than /64) ever listed.
    pub ranges_listed: u64,
    /// Of which ranges holding a victim address.
    pub ranges_listed_with_victims: u64,
    /// Context: distinct canaries the probing groups reported.
    pub canaries_probed: u64,
    /// Machine-days of the cheapest group that got a victim listed (null: none succeeded).
    pub cheapest_success_machine_days: Option<f64>,
    /// Its accounts.
    pub cheapest_success_accounts: Option<u64>,
    /// Its ASes.
    pub cheapest_success_ases: Option<u64>,
    /// Its name.
    pub cheapest_success_group: Option<String>,
    /// Every group that got at least one victim listed, with how many.
    pub groups_succeeded: Vec<String>,
    /// Context: signals processed.
    pub signals: u64,
    /// Context: attackers scored that reached 10 accounts.
    pub attackers_seen_by_10plus: u64,
    /// Context: attackers scored that reached 3 accounts.
    pub attackers_seen_by_3plus: u64,
    /// Context: attackers scored that reached 10 accounts but were seen only through spoofable
    /// scenarios (left out of recall and time to list).
    pub attackers_spoofable_only_10plus: u64,
    /// Context: benign addresses reported in the scored period.
    pub benign_reported: u64,
    /// Context: of which listed.
    pub benign_listed: u64,
    /// Context: victim addresses.
    pub victims: u64,
    /// Context: dynamic addresses listed when handed over.
    pub reassigned_listed_at_handover: u64,
    /// Context: dynamic addresses handed over in the scored period.
    pub reassigned: u64,
    /// Context: adversary and compromised machines.
    pub malicious_machines: u64,
    /// Context: honest machines (sensors excluded).
    pub honest_machines: u64,
}

/// Follows one subject's listings.
#[derive(Debug)]
pub struct Scorer {
    scored_from: Time,
    never_block: IpSet,
    attackers: Vec<AttackerStat>,
    benign: Vec<BenignStat>,
    victims: Vec<VictimStat>,
    listed_since: HashMap<IpNet, Time>,
    never_block_listed: Vec<IpNet>,
    signals: u64,
    reassigned_listed_at_handover: u64,
    reassigned: u64,
    watches: HashMap<IpNet, Watch>,
    stale_still_listed: u64,
    stale_listed_secs: Time,
    /// Per machine index: when it was first seen penalised.
    penalised_at: Vec<Option<Time>>,
    /// Per adversary group: when one of its machines was first penalised.
    group_penalised_at: Vec<Option<Time>>,
    machine_group: Vec<Option<usize>>,
    listed_after_penalty: u64,
    attacker_appeals_upheld: u64,
    state: HashMap<IpNet, u64>,
    state_bytes: u64,
    state_bytes_peak: Option<u64>,
    targets_peak: u64,
    displaced_peak: Option<u64>,
    canaries_identified: Option<u64>,
    canaries_probed: u64,
    ranges: Vec<IpNet>,
    ranges_with_victims: u64,
}

impl Scorer {
    /// A scorer for `world`.
    pub fn new(world: &World) -> Self {
        let never_block = IpSet::new(world.never_block.iter().copied().chain(world.canaries.iter().copied()));
        Scorer {
            scored_from: world.scored_from,
            never_block,
            attackers: Vec::new(),
            benign: Vec::new(),
            victims: Vec::new(),
            listed_since: HashMap::new(),
            never_block_listed: Vec::new(),
            signals: 0,
            reassigned_listed_at_handover: 0,
            reassigned: 0,
            watches: HashMap::new(),
            stale_still_listed: 0,
            stale_listed_secs: 0,
            penalised_at: vec![None; world.machines.len()],
            group_penalised_at: vec![None; world.groups.len()],
            machine_group: world
                .machines
                .iter()
                .map(|m| match m.role {
                    Role::Adversary(g) => Some(g),
                    _ => m.compromised_by,
                })
                .collect(),
            listed_after_penalty: 0,
            attacker_appeals_upheld: 0,
            state: HashMap::new(),
            state_bytes: 0,
            state_bytes_peak: None,
            targets_peak: 0,
            displaced_peak: None,
            canaries_identified: None,
            canaries_probed: 0,
            ranges: Vec::new(),
            ranges_with_victims: 0,
        }
    }

    /// At the end: which canaries the probing groups can tell from what the public sees.
    /// `visible` gives when a machine's canary penalty became visible, and the batch period.
    pub fn on_probes(&mut self, world: &World, generator: &Generator<'_>, visible: impl Fn(i64) -> Option<(Time, Time)>) {
        let probes = generator.probes();
        if probes.is_empty() {
            return;
        }
        let canaries = IpSet::new(world.canaries.iter().copied());
        let mut probed: Vec<IpNet> = probes.iter().map(|p| p.target).filter(|t| canaries.overlaps(*t)).collect();
        probed.sort_unstable();
        probed.dedup();
        self.canaries_probed = probed.len() as u64;
        let mut by_machine: HashMap<u32, Vec<(Time, IpNet)>> = HashMap::new();
        for p in probes {
            by_machine.entry(p.machine).or_default().push((p.at, p.target));
        }
        let mut identified: Vec<IpNet> = Vec::new();
        let mut any_visible = false;
        for (machine, reported) in by_machine {
            let Some((shown, batch)) = visible(world.machines[machine as usize].id) else { continue };
            any_visible = true;
            if shown > world.end {
                continue;
            }
            let in_batch: Vec<IpNet> =
                reported.iter().filter(|(at, _)| *at >= shown - batch && *at < shown).map(|(_, t)| *t).collect();
            if let [only] = in_batch[..]
                && canaries.overlaps(only)
            {
                identified.push(only);
            }
        }
        identified.sort_unstable();
        identified.dedup();
        self.canaries_identified = (any_visible || !probed.is_empty()).then_some(identified.len() as u64);
    }

    /// An hourly look at a consumer list capped at `cap` entries, newest listings first: how many
    /// listed real attackers it leaves out while other entries (innocent, benign, anything not
    /// a real attacker) take a slot.
    pub fn on_capped_list(&mut self, cap: usize, generator: &Generator<'_>) {
        let is_attacker = |key: &IpNet| matches!(generator.entity(key), Some(Entity::Attacker(_)));
        let mut listed: Vec<(Time, IpNet)> = self.listed_since.iter().map(|(k, t)| (*t, *k)).collect();
        let displaced = if listed.len() <= cap {
            0
        } else {
            listed.sort_unstable_by(|a, b| b.cmp(a));
            let others_inside = listed[..cap].iter().filter(|(_, k)| !is_attacker(k)).count();
            let attackers_outside = listed[cap..].iter().filter(|(_, k)| is_attacker(k)).count();
            others_inside.min(attackers_outside) as u64
        };
        self.displaced_peak = Some(self.displaced_peak.unwrap_or(0).max(displaced));
    }

    /// Malicious machine `index` is penalised at `now` (first sighting of it counts).
    pub fn on_penalised(&mut self, index: u32, now: Time) {
        let i = index as usize;
        if self.penalised_at[i].is_some() {
            return;
        }
        self.penalised_at[i] = Some(now);
        if let Some(g) = self.machine_group[i] {
            self.group_penalised_at[g].get_or_insert(now);
        }
    }

    /// Whether malicious machine `index` was seen penalised.
    pub fn was_penalised(&self, index: u32) -> bool {
        self.penalised_at[index as usize].is_some()
    }

    /// A real attacker's appeal was upheld.
    pub fn on_attacker_appeal_upheld(&mut self) {
        self.attacker_appeals_upheld += 1;
    }

    /// The engine's state changed (as `Engine::take_changed` hands it out for persistence).
    pub fn on_state(&mut self, changed: &ChangedState) {
        for (key, state) in &changed.targets {
            let bytes = state.as_ref().map_or(0, target_bytes);
            let old = match bytes {
                0 => self.state.remove(key).unwrap_or(0),
                _ => self.state.insert(*key, bytes).unwrap_or(0),
            };
            self.state_bytes = self.state_bytes + bytes - old;
        }
        self.state_bytes_peak = Some(self.state_bytes_peak.unwrap_or(0).max(self.state_bytes));
        self.targets_peak = self.targets_peak.max(self.state.len() as u64);
    }

    /// Whether `key` is listed now.
    pub fn is_listed(&self, key: &IpNet) -> bool {
        self.listed_since.contains_key(key)
    }

    fn attacker(&mut self, id: u32) -> &mut AttackerStat {
        let i = id as usize;
        if self.attackers.len() <= i {
            self.attackers.resize(i + 1, AttackerStat::default());
        }
        &mut self.attackers[i]
    }

    /// A report was processed. `honest`: by an honest machine (not a sensor, not an adversary);
    /// `account`: its account, when it is honest and has one.
    pub fn on_report(&mut self, entity: Option<Entity>, honest: bool, account: Option<i64>, at: Time) {
        self.signals += 1;
        match entity {
            Some(Entity::Attacker(id)) => {
                let Some(cluster) = account else { return };
                let stat = self.attacker(id);
                if stat.clusters.len() < BREADTH_CAP && !stat.clusters.contains(&cluster) {
                    stat.clusters.push(cluster);
                    if stat.clusters.len() == QUALIFY_ACCOUNTS {
                        stat.qualified_at = Some(at);
                    }
                }
            }
            Some(Entity::Benign(id)) if honest => {
                let i = id as usize;
                if self.benign.len() <= i {
                    self.benign.resize(i + 1, BenignStat::default());
                }
                self.benign[i].reported_at.get_or_insert(at);
            }
            _ => {}
        }
    }

    /// A dynamic attacker's address `key` was handed over to an innocent user at `now`: it is
    /// watched for `STALE_AFTER`.
    pub fn on_handover(&mut self, key: &IpNet, now: Time) {
        let listed = self.is_listed(key);
        self.reassigned += 1;
        self.reassigned_listed_at_handover += u64::from(listed);
        self.watches.insert(*key, Watch { listed_from: listed.then_some(now), listed_secs: 0 });
    }

    /// `STALE_AFTER` past a handover at `now`: is the address still listed, and how long was it?
    pub fn on_stale_check(&mut self, key: &IpNet, now: Time) {
        let Some(mut watch) = self.watches.remove(key) else { return };
        if let Some(from) = watch.listed_from {
            watch.listed_secs += now - from;
        }
        self.stale_listed_secs += watch.listed_secs;
        if self.is_listed(key) {
            self.stale_still_listed += 1;
        }
    }

    /// Membership changes at `now`; returns the keys newly listed (for appeals).
    pub fn on_changes(&mut self, changes: &[Change], now: Time, generator: &Generator<'_>) -> Vec<IpNet> {
        let mut newly = Vec::new();
        for change in changes {
            match change {
                Change::Listed { target, .. } => {
                    if self.listed_since.contains_key(target) {
                        continue;
                    }
                    self.listed_since.insert(*target, now);
                    newly.push(*target);
                    if let Some(watch) = self.watches.get_mut(target) {
                        watch.listed_from.get_or_insert(now);
                    }
                    let range = match target {
                        IpNet::V4(n) => n.prefix_len() < 32,
                        IpNet::V6(n) => n.prefix_len() < 64,
                    };
                    if range && !self.ranges.contains(target) {
                        self.ranges.push(*target);
                        self.ranges_with_victims += u64::from(generator.victim_addresses().iter().any(|v| target.contains(v)));
                    }
                    if self.never_block.overlaps(*target) && !self.never_block_listed.contains(target) {
                        self.never_block_listed.push(*target);
                    }
                    match generator.entity(target) {
                        Some(Entity::Attacker(id)) => {
                            self.attacker(id).first_listed.get_or_insert(now);
                        }
                        Some(Entity::Benign(id)) => {
                            let i = id as usize;
                            if self.benign.len() <= i {
                                self.benign.resize(i + 1, BenignStat::default());
                            }
                            self.benign[i].listed = true;
                        }
                        Some(Entity::Victim(id)) => {
                            let i = id as usize;
                            if self.victims.len() <= i {
                                self.victims.resize(i + 1, VictimStat::default());
                            }
                            self.victims[i].listed = true;
                            self.victims[i].listed_at.push(now);
                            let g = generator.victim_group(id);
                            if self.group_penalised_at[g].is_some_and(|at| at <= now) {
                                self.listed_after_penalty += 1;
                            }
                        }
                        None => {}
                    }
                }
                Change::Delisted { target, .. } => {
                    if let Some(watch) = self.watches.get_mut(target)
                        && let Some(from) = watch.listed_from.take()
                    {
                        watch.listed_secs += now - from;
                    }
                    if let Some(since) = self.listed_since.remove(target)
                        && let Some(Entity::Victim(id)) = generator.entity(target)
                    {
                        self.victims[id as usize].listed_secs += now - since;
                    }
                }
            }
        }
        newly
    }

    /// The scorecard at the end of the run. `penalised` says whether the subject penalised a machine.
    pub fn finish(
        mut self,
        subject: String,
        world: &World,
        scenario: &super::scenario::Scenario,
        generator: &Generator<'_>,
        penalised: impl Fn(i64) -> bool,
    ) -> Scorecard {
        let end = world.end;
        for (key, since) in std::mem::take(&mut self.listed_since) {
            if let Some(Entity::Victim(id)) = generator.entity(&key) {
                self.victims[id as usize].listed_secs += end - since;
            }
        }
        let infos = generator.attackers();
        let scored = |id: usize| infos[id].spawned_at >= self.scored_from;
        // Attackers only spoofable evidence shows are left out of recall and time to list: no
        // consensus may list them on that evidence. They are counted apart.
        let listable = |id: usize| scored(id) && !infos[id].spoofable_only;
        let spoofable_only_10plus = self
            .attackers
            .iter()
            .enumerate()
            .filter(|(i, s)| scored(*i) && infos[*i].spoofable_only && s.clusters.len() >= 10)
            .count() as u64;
        let breadth = |n: usize| {
            let seen: Vec<&AttackerStat> = self
                .attackers
                .iter()
                .enumerate()
                .filter(|(i, s)| listable(*i) && s.clusters.len() >= n)
                .map(|(_, s)| s)
                .collect();
            let listed = seen.iter().filter(|s| s.first_listed.is_some()).count();
            (seen.len() as u64, (!seen.is_empty()).then(|| round(listed as f64 / seen.len() as f64, 4)))
        };
        let (seen10, recall10) = breadth(10);
        let (seen3, recall3) = breadth(QUALIFY_ACCOUNTS);
        let mut delays: Vec<i64> = self
            .attackers
            .iter()
            .enumerate()
            .filter(|(i, _)| listable(*i))
            .filter_map(|(_, s)| Some((s.first_listed? - s.qualified_at?).max(0)))
            .collect();
        delays.sort_unstable();
        let percentile =
            |p: f64| (!delays.is_empty()).then(|| delays[((p * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1]);
        let benign_reported = self.benign.iter().filter(|b| b.reported_at.is_some_and(|at| at >= self.scored_from)).count();
        let benign_listed =
            self.benign.iter().filter(|b| b.listed && b.reported_at.is_some_and(|at| at >= self.scored_from)).count();

        let mut cheapest: Option<(f64, usize)> = None;
        let mut groups_succeeded = Vec::new();
        // Per group: every time one of its victims was newly listed.
        let mut group_listings: Vec<Vec<Time>> = vec![Vec::new(); world.groups.len()];
        for v in 0..generator.victim_count() {
            if let Some(stat) = self.victims.get(v as usize) {
                group_listings[generator.victim_group(v)].extend(&stat.listed_at);
            }
        }
        for (g, group) in world.groups.iter().enumerate() {
            let listed = (0..generator.victim_count())
                .filter(|&v| generator.victim_group(v) == g && self.victims.get(v as usize).is_some_and(|s| s.listed))
                .count();
            if listed == 0 {
                continue;
            }
            groups_succeeded.push(format!("{}:{listed}", scenario.adversaries[group.spec].name));
            // The attack has paid off at its first listing: the age its machines needed by then.
            let success_at = group_listings[g].iter().copied().min().unwrap_or(group.strike_at);
            let days: f64 = group
                .machines
                .iter()
                .map(|&m| (success_at - world.machines[m as usize].created_at).max(0) as f64 / DAY as f64)
                .sum();
            if cheapest.is_none_or(|(best, _)| days < best) {
                cheapest = Some((days, g));
            }
        }
        let (mut malicious, mut malicious_penalised, mut honest, mut honest_penalised) = (0, 0, 0, 0);
        let mut malicious_flagged = 0;
        for (i, m) in world.machines.iter().enumerate() {
            if m.malicious() {
                malicious += 1;
                if !penalised(m.id) {
                    continue;
                }
                malicious_flagged += 1;
                // Effective: nothing of its group listed after its own penalty was first seen.
                let since = self.penalised_at[i].unwrap_or(end);
                let group = self.machine_group[i];
                let listed_later = group.is_some_and(|g| group_listings[g].iter().any(|&at| at > since));
                malicious_penalised += u64::from(!listed_later);
            } else if m.role == Role::Honest {
                honest += 1;
                honest_penalised += u64::from(penalised(m.id));
            }
        }
        Scorecard {
            subject,
            innocent_listed: self.victims.iter().filter(|v| v.listed).count() as u64,
            innocent_listed_hours: round(self.victims.iter().map(|v| v.listed_secs).sum::<Time>() as f64 / HOUR as f64, 1),
            never_block_listed: self.never_block_listed.len() as u64,
            benign_fp_rate: if benign_reported == 0 { 0.0 } else { round(benign_listed as f64 / benign_reported as f64, 6) },
            recall_seen_by_10plus_accounts: recall10,
            recall_seen_by_3plus_accounts: recall3,
            time_to_list_p50_s: percentile(0.5),
            time_to_list_p95_s: percentile(0.95),
            reassigned_still_listed_48h: self.stale_still_listed,
            reassigned_listed_hours_48h: round(self.stale_listed_secs as f64 / HOUR as f64, 1),
            malicious_machines_penalised: malicious_penalised,
            malicious_machines_flagged: malicious_flagged,
            innocent_listed_after_penalty: self.listed_after_penalty,
            honest_machines_penalised: honest_penalised,
            honest_machines_penalised_rate: if honest == 0 { 0.0 } else { round(honest_penalised as f64 / honest as f64, 4) },
            attacker_appeals_upheld: self.attacker_appeals_upheld,
            engine_state_mb_peak: self.state_bytes_peak.map(|b| round(b as f64 / 1e6, 1)),
            engine_targets_peak: self.state_bytes_peak.map(|_| self.targets_peak),
            real_attackers_displaced: self.displaced_peak,
            canaries_identified: self.canaries_identified,
            canaries_probed: self.canaries_probed,
            ranges_listed: self.ranges.len() as u64,
            ranges_listed_with_victims: self.ranges_with_victims,
            cheapest_success_machine_days: cheapest.map(|(days, _)| round(days, 1)),
            cheapest_success_accounts: cheapest.map(|(_, g)| world.groups[g].accounts as u64),
            cheapest_success_ases: cheapest.map(|(_, g)| world.groups[g].ases as u64),
            cheapest_success_group: cheapest.map(|(_, g)| scenario.adversaries[world.groups[g].spec].name.clone()),
            groups_succeeded,
            signals: self.signals,
            attackers_seen_by_10plus: seen10,
            attackers_spoofable_only_10plus: spoofable_only_10plus,
            attackers_seen_by_3plus: seen3,
            benign_reported: benign_reported as u64,
            benign_listed: benign_listed as u64,
            victims: u64::from(generator.victim_count()),
            reassigned_listed_at_handover: self.reassigned_listed_at_handover,
            reassigned: self.reassigned,
            malicious_machines: malicious,
            honest_machines: honest,
        }
    }
}

/// Rounds to `digits` decimals, so printed values never depend on float formatting noise.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    // `+ 0.0` turns a negative zero (an empty sum is -0.0) into 0.
    (x * scale).round() / scale + 0.0
}
