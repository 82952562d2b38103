//! The event stream: what every machine reports, and when, in simulated time. A schedule of
//! spawns (an attacker appears, an honest machine misfires, an adversary group registers or
//! strikes) is drawn up front; each spawn is expanded into timed events only when time reaches
//! it, each from its own random stream, and events come out in (time, creation) order. The stream
//! depends on the scenario and the seed only, never on what a consensus decided, so every subject
//! sees the same reports.

use std::collections::{HashMap, VecDeque};

use ipnet::IpNet;
use palisade_server::engine::{Engine, Time};

use super::rng::{Rng, mix};
use super::scenario::{AttackerKind, Scenario, Source, VictimKind};
use super::world::{DAY, HOUR, World, address_in, internet_address, residential_address, rotator_net, secs, stream};
use palisade_server::engine::scenarios::Scenarios;

/// What a listed (or reported) address is, for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// A real attacker's address (one per address: a dynamic attacker has several).
    Attacker(u32),
    /// An innocent address an adversary group wants listed.
    Victim(u32),
    /// An innocent address an honest machine reported by mistake.
    Benign(u32),
}

/// A real attacker's address, as the scorer needs it.
#[derive(Debug, Clone)]
pub struct AttackerInfo {
    /// The address as the engine keys it.
    pub key: IpNet,
    /// When it started attacking.
    pub spawned_at: Time,
    /// Seen only through a spoofable scenario: no consensus may list it on that evidence
    /// (`docs/trust.md`), so recall leaves it out and counts it apart.
    pub spoofable_only: bool,
}

/// One event.
#[derive(Debug, Clone)]
pub enum Event {
    /// An adversary's fresh machine registers.
    Register {
        /// Machine index.
        machine: u32,
    },
    /// A machine reports an address.
    Report {
        /// Machine index.
        machine: u32,
        /// Reported address.
        target: IpNet,
        /// Index into [`Generator::scenario_name`].
        scenario: u16,
        /// Whether the scenario is an unmodified hub scenario.
        certified: bool,
    },
    /// A dynamic attacker's address is reassigned to an innocent user.
    Handover {
        /// The attacker address.
        attacker: u32,
    },
    /// The public feed publishes an address (as the engine keys it) until `until`.
    Publish {
        /// The published address or /64.
        key: IpNet,
        /// When the feed drops it.
        until: Time,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SpawnKind {
    Attacker(u16),
    RandomFp,
    CorrelatedFp,
    NeverBlockFp,
    Register(u16),
    Strike(u16),
    Junk(u16),
}

#[derive(Debug, Clone, Copy)]
struct Spawn {
    at: Time,
    kind: SpawnKind,
    /// Its number among the spawns of its kind: with the kind, it names the spawn's random
    /// stream, so adding a population or an adversary leaves every other draw as it was.
    n: u64,
}

impl SpawnKind {
    /// Stream labels of this kind.
    fn labels(self) -> [u64; 2] {
        match self {
            SpawnKind::Attacker(i) => [1, u64::from(i)],
            SpawnKind::RandomFp => [2, 0],
            SpawnKind::CorrelatedFp => [3, 0],
            SpawnKind::NeverBlockFp => [4, 0],
            SpawnKind::Register(g) => [5, u64::from(g)],
            SpawnKind::Strike(g) => [6, u64::from(g)],
            SpawnKind::Junk(g) => [7, u64::from(g)],
        }
    }
}

struct Pending {
    at: Time,
    seq: u64,
    event: Event,
}

/// Recently active static attackers adversaries can echo to look honest.
const ECHO_POOL: usize = 4096;

/// The event stream of one run.
pub struct Generator<'a> {
    scenario: &'a Scenario,
    world: &'a World,
    seed: u64,
    address_key: u64,
    spawns: Vec<Spawn>,
    next_spawn: usize,
    /// Events waiting, by step (a calendar queue: a step's events are sorted when it is drained).
    buckets: Vec<Vec<Pending>>,
    next_bucket: usize,
    seq: u64,
    names: Vec<String>,
    entities: HashMap<IpNet, Entity>,
    attackers: Vec<AttackerInfo>,
    benign: u32,
    victims: u32,
    victim_groups: Vec<usize>,
    victim_addresses: Vec<IpNet>,
    next_internet: u64,
    next_residential: u64,
    next_rotator: u64,
    next_shared: u64,
    /// Groups currently in their honest phase.
    sleeping: Vec<usize>,
    echo_pool: VecDeque<IpNet>,
    probes: Vec<Probe>,
    /// The engine's scenario classes, to tell which attackers only spoofable evidence shows.
    spoofable: Scenarios,
}

/// One address a probing group reported, with one machine, to learn whether it is a canary.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// Machine index.
    pub machine: u32,
    /// The address.
    pub target: IpNet,
    /// When.
    pub at: Time,
}

impl<'a> Generator<'a> {
    /// The stream of `scenario` in `world` for `seed`.
    pub fn new(scenario: &'a Scenario, world: &'a World, seed: u64) -> Self {
        let mut names: Vec<String> = scenario.attackers.iter().map(|a| a.scenario.clone()).collect();
        names.extend(scenario.adversaries.iter().map(|a| a.scenario.clone()));
        names.push("crowdsecurity/http-probing".into());
        let mut g = Generator {
            spoofable: {
                let params = scenario.params().unwrap_or_default();
                Scenarios::new(&params.scenarios, &params.spoofable_scenarios)
            },
            scenario,
            world,
            seed,
            address_key: mix(seed, &[stream::ADDRESSES]),
            spawns: Vec::new(),
            next_spawn: 0,
            buckets: Vec::new(),
            next_bucket: 0,
            seq: 0,
            names,
            entities: HashMap::new(),
            attackers: Vec::new(),
            benign: 0,
            victims: 0,
            victim_groups: Vec::new(),
            victim_addresses: Vec::new(),
            next_internet: 0,
            next_residential: 0,
            next_rotator: 0,
            next_shared: 0,
            sleeping: Vec::new(),
            echo_pool: VecDeque::new(),
            probes: Vec::new(),
        };
        let steps = (world.end - world.start + scenario.run.step_secs - 1) / scenario.run.step_secs;
        g.buckets.resize_with(steps as usize + 1, Vec::new);
        g.schedule();
        g
    }

    fn schedule(&mut self) {
        let sc = self.scenario;
        let w = self.world;
        let seed = self.seed;
        let days = (w.end - w.start + DAY - 1) / DAY;
        let mut spawns = Vec::new();
        let per_day = |rate: f64, kind: SpawnKind, spawns: &mut Vec<Spawn>| {
            let [tag, index] = kind.labels();
            let mut rng = Rng::new(seed, &[stream::SCHEDULE, tag, index]);
            let mut n = 0;
            for day in 0..days {
                for _ in 0..rng.count(rate) {
                    let at = w.start + day * DAY + rng.below(DAY as u64) as Time;
                    if at < w.end {
                        spawns.push(Spawn { at, kind, n });
                        n += 1;
                    }
                }
            }
        };
        for (i, a) in sc.attackers.iter().enumerate() {
            per_day(a.per_day, SpawnKind::Attacker(i as u16), &mut spawns);
        }
        let fp = &sc.honest_fp;
        per_day(fp.random_per_machine_day * w.honest.len() as f64, SpawnKind::RandomFp, &mut spawns);
        per_day(fp.correlated_per_day, SpawnKind::CorrelatedFp, &mut spawns);
        per_day(fp.never_block_per_day, SpawnKind::NeverBlockFp, &mut spawns);
        for (i, group) in w.groups.iter().enumerate() {
            if sc.adversaries[group.spec].source == Source::Fresh {
                spawns.push(Spawn { at: group.register_at, kind: SpawnKind::Register(i as u16), n: 0 });
            }
            let spec = &sc.adversaries[group.spec];
            let hours = spec.strike_hours.ceil().max(1.0) as u64;
            for (k, &at) in group.strikes.iter().enumerate() {
                spawns.push(Spawn { at, kind: SpawnKind::Strike(i as u16), n: k as u64 });
                if spec.junk_per_machine > 0 {
                    for h in 0..hours {
                        let n = k as u64 * hours + h;
                        spawns.push(Spawn { at: at + h as Time * HOUR, kind: SpawnKind::Junk(i as u16), n });
                    }
                }
            }
        }
        // Stable: spawns of one kind at the same second keep their order.
        spawns.sort_by_key(|s| (s.at, s.kind));
        self.spawns = spawns;
    }

    /// The scenario name behind an index in [`Event::Report`].
    pub fn scenario_name(&self, index: u16) -> &str {
        &self.names[usize::from(index)]
    }

    /// What `key` (an address as the engine keys it) is, if the world made it.
    pub fn entity(&self, key: &IpNet) -> Option<Entity> {
        self.entities.get(key).copied()
    }

    /// Real attacker addresses made so far.
    pub fn attackers(&self) -> &[AttackerInfo] {
        &self.attackers
    }

    /// Probes made so far, in the order they were drawn.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// Victim addresses made so far.
    pub fn victim_count(&self) -> u32 {
        self.victims
    }

    /// Every victim address made so far, by victim number.
    pub fn victim_addresses(&self) -> &[IpNet] {
        &self.victim_addresses
    }

    /// Group of victim `v`.
    pub fn victim_group(&self, v: u32) -> usize {
        self.victim_groups[v as usize]
    }

    /// Appends the events at or before `until` to `out`, in (time, creation) order. `until` never
    /// goes back; events after the end of the run are dropped.
    pub fn drain_until(&mut self, until: Time, out: &mut Vec<(Time, Event)>) {
        while let Some(&spawn) = self.spawns.get(self.next_spawn)
            && spawn.at <= until
        {
            self.next_spawn += 1;
            self.expand(spawn);
        }
        let last = self.bucket(until).min(self.buckets.len() - 1);
        while self.next_bucket <= last {
            let mut bucket = std::mem::take(&mut self.buckets[self.next_bucket]);
            bucket.sort_unstable_by_key(|p| (p.at, p.seq));
            let later = bucket.iter().position(|p| p.at > until).unwrap_or(bucket.len());
            let rest = bucket.split_off(later);
            out.extend(bucket.into_iter().map(|p| (p.at, p.event)));
            if !rest.is_empty() {
                self.buckets[self.next_bucket] = rest;
                break;
            }
            self.next_bucket += 1;
        }
    }

    fn bucket(&self, at: Time) -> usize {
        let step = self.scenario.run.step_secs;
        ((at - self.world.start).max(0) + step - 1) as usize / step as usize
    }

    fn push(&mut self, at: Time, event: Event) {
        self.seq += 1;
        let bucket = self.bucket(at).max(self.next_bucket);
        if let Some(events) = self.buckets.get_mut(bucket) {
            events.push(Pending { at, seq: self.seq, event });
        }
    }

    fn report(&mut self, at: Time, machine: u32, target: IpNet, scenario: u16) {
        let certified = self.world.machines[machine as usize].certified;
        self.push(at, Event::Report { machine, target, scenario, certified });
    }

    fn new_internet(&mut self) -> IpNet {
        self.next_internet += 1;
        internet_address(self.next_internet, self.address_key)
    }

    fn new_attacker(&mut self, key: IpNet, at: Time, spoofable_only: bool) -> u32 {
        let id = self.attackers.len() as u32;
        let key = Engine::key(key);
        self.attackers.push(AttackerInfo { key, spawned_at: at, spoofable_only });
        self.entities.insert(key, Entity::Attacker(id));
        id
    }

    /// A machine that sees an attack starting at `at`: honest ones by their traffic, plus sleeping
    /// adversaries (those already created).
    fn sighter(&self, rng: &mut Rng, at: Time) -> u32 {
        let w = self.world;
        let sleeping_weight: f64 = self
            .sleeping
            .iter()
            .map(|&g| w.groups[g].machines.len() as f64 * self.scenario.adversaries[w.groups[g].spec].sighting_rate)
            .sum();
        let mut x = rng.f64() * (w.activity_total + sleeping_weight);
        if x < w.activity_total || sleeping_weight <= 0.0 {
            return w.pick_honest(rng);
        }
        x -= w.activity_total;
        for &g in &self.sleeping {
            let group = &w.groups[g];
            let weight = group.machines.len() as f64 * self.scenario.adversaries[group.spec].sighting_rate;
            if x < weight {
                let machine = group.machines[rng.index(group.machines.len())];
                if w.machines[machine as usize].created_at > at {
                    return w.pick_honest(rng);
                }
                return machine;
            }
            x -= weight;
        }
        w.pick_honest(rng)
    }

    fn expand(&mut self, spawn: Spawn) {
        let [tag, index] = spawn.kind.labels();
        let mut rng = Rng::new(self.seed, &[stream::SPAWN, tag, index, spawn.n]);
        match spawn.kind {
            SpawnKind::Attacker(i) => self.expand_attacker(spawn.at, usize::from(i), &mut rng),
            SpawnKind::RandomFp => {
                let target = self.new_internet();
                self.entities.insert(target, Entity::Benign(self.benign));
                self.benign += 1;
                let machine = self.world.pick_honest(&mut rng);
                self.report(spawn.at, machine, target, self.fp_scenario());
            }
            SpawnKind::CorrelatedFp => {
                let fp = &self.scenario.honest_fp;
                let target = self.new_internet();
                self.entities.insert(target, Entity::Benign(self.benign));
                self.benign += 1;
                let home = self.world.as_weights.pick(&mut rng);
                let k = rng.log_between(fp.correlated_machines);
                let window = secs(fp.correlated_hours, HOUR).max(1);
                for _ in 0..k {
                    let neighbours = &self.world.honest_by_as[home];
                    let machine = if !neighbours.is_empty() && rng.chance(fp.correlated_same_as) {
                        neighbours[rng.index(neighbours.len())]
                    } else {
                        self.world.pick_honest(&mut rng)
                    };
                    let at = spawn.at + rng.below(window as u64) as Time;
                    self.report(at, machine, target, self.fp_scenario());
                }
            }
            SpawnKind::NeverBlockFp => {
                if self.world.never_block.is_empty() {
                    return;
                }
                let range = self.world.never_block[rng.index(self.world.never_block.len())];
                let target = address_in(range, &mut rng);
                let k = rng.log_between(self.scenario.honest_fp.never_block_machines);
                for _ in 0..k {
                    let machine = self.world.pick_honest(&mut rng);
                    let at = spawn.at + rng.below(6 * HOUR as u64) as Time;
                    self.report(at, machine, target, self.fp_scenario());
                }
            }
            SpawnKind::Register(g) => {
                let g = usize::from(g);
                for k in 0..self.world.groups[g].machines.len() {
                    let machine = self.world.groups[g].machines[k];
                    self.push(spawn.at, Event::Register { machine });
                }
                if self.world.groups[g].strike_at > spawn.at {
                    self.sleeping.push(g);
                }
            }
            SpawnKind::Strike(g) => {
                let g = usize::from(g);
                // Between strike phases the machines go back to their honest behaviour.
                if spawn.n + 1 >= self.world.groups[g].strikes.len() as u64 {
                    self.sleeping.retain(|&s| s != g);
                }
                self.expand_strike(spawn.at, g, &mut rng);
            }
            SpawnKind::Junk(g) => self.expand_junk(spawn.at, usize::from(g), &mut rng),
        }
    }

    fn fp_scenario(&self) -> u16 {
        (self.names.len() - 1) as u16
    }

    fn expand_attacker(&mut self, t0: Time, spec_index: usize, rng: &mut Rng) {
        let spec = &self.scenario.attackers[spec_index];
        let duration = secs(rng.log_uniform(spec.active_hours), HOUR).max(60);
        let reach = rng.log_between(spec.seen_by);
        let scenario = spec_index as u16;
        // Addresses used over the attack: one, except for dynamic attackers (one per lease).
        let lease = match spec.kind {
            AttackerKind::Dynamic => secs(rng.uniform(spec.reassign_hours), HOUR).max(60),
            _ => duration,
        };
        let mut start = t0;
        while start < t0 + duration {
            let len = lease.min(t0 + duration - start);
            let share = len as f64 / duration as f64;
            let (key, rotating) = match spec.kind {
                AttackerKind::Static => (self.new_internet(), false),
                AttackerKind::Dynamic => {
                    self.next_residential += 1;
                    (residential_address(self.next_residential, self.address_key), false)
                }
                AttackerKind::Ipv6Rotator => {
                    self.next_rotator += 1;
                    (rotator_net(self.next_rotator, self.address_key), true)
                }
                AttackerKind::Cgnat => {
                    // Hosts 1..=1022 of each /22 in turn; past that many attackers, addresses
                    // (and their scoring) are shared, as CGNAT addresses are.
                    let ranges = self.world.shared.len().max(1) as u64;
                    let n = self.next_shared;
                    self.next_shared += 1;
                    let range = self.world.shared.get((n % ranges) as usize).copied();
                    match range {
                        Some(IpNet::V4(r)) => {
                            let host = 1 + (n / ranges) % 1022;
                            (IpNet::from(std::net::IpAddr::V4((u32::from(r.network()) + host as u32).into())), false)
                        }
                        _ => (self.new_internet(), false),
                    }
                }
            };
            let id = self.new_attacker(key, start, self.spoofable.is_spoofable(&spec.scenario));
            if spec.kind == AttackerKind::Static {
                if self.echo_pool.len() >= ECHO_POOL {
                    self.echo_pool.pop_front();
                }
                self.echo_pool.push_back(key);
            }
            let sightings = rng.count(f64::from(reach) * share);
            for _ in 0..sightings {
                let machine = self.sighter(rng, start);
                let first = start + rng.below(len as u64) as Time;
                let reports = rng.between(spec.reports_per_sighting);
                for r in 0..reports {
                    let at = if r == 0 { first } else { first + rng.below((start + len - first) as u64 + 1) as Time };
                    let target = if rotating { address_in(key, rng) } else { key };
                    self.report(at, machine, target, scenario);
                }
            }
            for k in 0..self.world.sensors.len() {
                if rng.chance(spec.sensor_chance * share) {
                    let sensor = self.world.sensors[k];
                    let at = start + rng.below(len as u64) as Time;
                    let target = if rotating { address_in(key, rng) } else { key };
                    self.report(at, sensor, target, scenario);
                }
            }
            if spec.kind == AttackerKind::Dynamic {
                self.push(start + lease, Event::Handover { attacker: id });
            }
            let feed = &self.scenario.public_feed;
            if feed.coverage > 0.0 && rng.chance(feed.coverage) {
                let published = start + secs(rng.uniform(feed.delay_hours), HOUR);
                self.publish(published, key, rotating, rng);
            }
            start += len;
        }
    }

    /// The feed publishes `key` at `at`; machines of groups echoing the feed report it right after.
    fn publish(&mut self, at: Time, key: IpNet, rotating: bool, rng: &mut Rng) {
        let until = at + secs(self.scenario.public_feed.ttl_days, DAY);
        self.push(at, Event::Publish { key: Engine::key(key), until });
        let scenario = (self.names.len() - 1) as u16;
        for g in 0..self.world.groups.len() {
            let group = &self.world.groups[g];
            let spec = &self.scenario.adversaries[group.spec];
            let last = group.strikes.last().copied().unwrap_or(group.strike_at) + secs(spec.strike_hours, HOUR);
            if spec.echo_feed <= 0.0 || at < group.register_at || at >= last {
                continue;
            }
            for k in 0..group.machines.len() {
                let machine = self.world.groups[g].machines[k];
                if self.world.machines[machine as usize].created_at > at || !rng.chance(spec.echo_feed) {
                    continue;
                }
                let t = at + rng.below(HOUR as u64) as Time;
                let target = if rotating { address_in(key, rng) } else { key };
                self.report(t, machine, target, scenario);
            }
        }
    }

    /// One hour of a group's junk flood: random addresses in 176.0.0.0/4, no entity of the world.
    fn expand_junk(&mut self, at: Time, g: usize, rng: &mut Rng) {
        let group = &self.world.groups[g];
        let spec = &self.scenario.adversaries[group.spec];
        let per_hour = spec.junk_per_machine as f64 / spec.strike_hours.ceil().max(1.0);
        let scenario = (self.scenario.attackers.len() + group.spec) as u16;
        let certified = spec.certified;
        let machines = group.machines.clone();
        for machine in machines {
            for _ in 0..rng.count(per_hour) {
                let address = (176u32 << 24) | rng.below(1 << 28) as u32;
                let target = IpNet::from(std::net::IpAddr::V4(address.into()));
                let t = at + rng.below(HOUR as u64) as Time;
                self.push(t, Event::Report { machine, target, scenario, certified });
            }
        }
    }

    fn expand_strike(&mut self, at: Time, g: usize, rng: &mut Rng) {
        let group = &self.world.groups[g];
        let spec = &self.scenario.adversaries[group.spec];
        let scenario = (self.scenario.attackers.len() + group.spec) as u16;
        let mut victims = Vec::new();
        // Side by side: hosts of the /24 of a fresh address, from .1 up.
        let one_24 = (spec.victims_one_24 && spec.victims == VictimKind::Targeted).then(|| match self.new_internet() {
            IpNet::V4(a) => u32::from(a.addr()) & !0xff,
            IpNet::V6(_) => unreachable!("internet addresses are IPv4"),
        });
        let mut host = 0u32;
        for _ in 0..spec.victim_count {
            let target = match spec.victims {
                VictimKind::Targeted => None,
                VictimKind::Random if !self.world.canaries.is_empty() && rng.chance(self.scenario.world.canary_density) => {
                    Some(self.world.canaries[rng.index(self.world.canaries.len())])
                }
                VictimKind::Random => None,
                VictimKind::NeverBlock if !self.world.never_block.is_empty() => {
                    let range = self.world.never_block[rng.index(self.world.never_block.len())];
                    Some(address_in(range, rng))
                }
                VictimKind::NeverBlock => None,
                VictimKind::Canary if !self.world.canaries.is_empty() => {
                    Some(self.world.canaries[rng.index(self.world.canaries.len())])
                }
                VictimKind::Canary => None,
            };
            let target = target.unwrap_or_else(|| {
                let target = match one_24 {
                    Some(base) => loop {
                        host = host % 254 + 1;
                        let candidate = IpNet::from(std::net::IpAddr::V4((base | host).into()));
                        if !self.entities.contains_key(&candidate) {
                            break candidate;
                        }
                    },
                    None => self.new_internet(),
                };
                self.victim_addresses.push(target);
                self.entities.insert(target, Entity::Victim(self.victims));
                self.victims += 1;
                self.victim_groups.push(g);
                target
            });
            victims.push(target);
        }
        let window = secs(spec.strike_hours, HOUR).max(1) as u64;
        if spec.spoofed {
            // Traffic spoofed from each victim: honest machines and sensors genuinely see it.
            let (seen_by, sensor_chance) = (spec.spoof_seen_by, spec.spoof_sensor_chance);
            for &victim in &victims {
                for _ in 0..rng.log_between(seen_by) {
                    let machine = self.world.pick_honest(rng);
                    let first = at + rng.below(window) as Time;
                    for r in 0..rng.between([1, 2]) {
                        let t = if r == 0 { first } else { first + rng.below((at + window as Time - first + 1) as u64) as Time };
                        self.report(t, machine, victim, scenario);
                    }
                }
                for k in 0..self.world.sensors.len() {
                    if rng.chance(sensor_chance) {
                        let sensor = self.world.sensors[k];
                        self.report(at + rng.below(window) as Time, sensor, victim, scenario);
                    }
                }
            }
        }
        let echoes_per_lie = (1.0 - spec.lie_fraction) / spec.lie_fraction;
        let machines = group.machines.clone();
        if spec.probe && !machines.is_empty() {
            // One machine per address, its addresses evenly spaced: a visible penalty then
            // points at one address.
            let per_machine = victims.len().div_ceil(machines.len()).max(1) as u64;
            let gap = window / per_machine;
            for (i, &target) in victims.iter().enumerate() {
                let machine = machines[i % machines.len()];
                let at = at + (i / machines.len()) as Time * gap as Time + rng.below(gap.max(1) / 4 + 1) as Time;
                self.probes.push(Probe { machine, target, at });
                self.push(at, Event::Report { machine, target, scenario, certified: spec.certified });
            }
            return;
        }
        let rpv = spec.reports_per_victim;
        for machine in machines {
            for &victim in &victims {
                for _ in 0..rpv {
                    let t = at + rng.below(window) as Time;
                    let certified = spec.certified;
                    self.push(t, Event::Report { machine, target: victim, scenario, certified });
                }
            }
            let echoes = rng.count(echoes_per_lie * f64::from(rpv) * victims.len() as f64);
            for _ in 0..echoes {
                if self.echo_pool.is_empty() {
                    break;
                }
                let target = self.echo_pool[rng.index(self.echo_pool.len())];
                let t = at + rng.below(window) as Time;
                self.push(t, Event::Report { machine, target, scenario, certified: spec.certified });
            }
        }
    }
}
