//! The driver: feeds one subject (the engine or a baseline) the event stream step by step, as the
//! server's consensus worker would (register machines, `process` each report, `advance` at every
//! step), lets wrongly listed owners (and attackers) appeal, keeps the engine's copy of the public
//! feed, and hands every change to the scorer. Only the calls into the subject are timed, for the
//! throughput and CPU figures.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use palisade_server::engine::ipset::IpSet;
use palisade_server::engine::{ChangedState, Consensus, Engine, Report, Time};

use super::baseline::{Naive, Unit};
use super::generate::{Entity, Event, Generator};
use super::rng::mix;
use super::scenario::{AppealSpec, Scenario};
use super::score::{STALE_AFTER, Scorecard, Scorer};
use super::world::{HOUR, Role, World, secs, stream};

/// What the simulator needs of a subject beyond the [`Consensus`] interface: a name, and whether
/// it penalised a machine (for the scorecard only; the run itself uses `Consensus` alone).
pub trait Subject: Consensus {
    /// Name in the scorecard.
    fn label(&self) -> String;
    /// Whether `machine` is penalised at `now`: zeroed by a canary, or carrying negative evidence
    /// about as heavy as one upheld false positive (90% of it, to allow for decay).
    fn penalised(&self, machine: i64, now: Time) -> bool;
    /// When a canary penalty of `machine` became visible outside the admin view, and the
    /// batching period of such penalties (`None`: never, or the subject does not say).
    fn penalty_visible(&self, _machine: i64) -> Option<(Time, Time)> {
        None
    }
    /// Replaces what public feeds carry (`Engine::set_public`); ignored by default.
    fn set_public(&mut self, _set: IpSet) {}
    /// The state changed since the last call, as the worker would persist it (`None`: the
    /// subject does not say).
    fn take_state(&mut self) -> Option<ChangedState> {
        None
    }
}

impl Subject for Engine {
    fn label(&self) -> String {
        "engine".into()
    }

    fn penalised(&self, machine: i64, now: Time) -> bool {
        let heavy = 0.9 * self.params().false_positive_penalty;
        self.machine(machine).is_some_and(|m| m.zeroed_at.is_some() || m.evidence(now, self.params()).1 >= heavy)
    }

    fn set_public(&mut self, set: IpSet) {
        Engine::set_public(self, set);
    }

    fn penalty_visible(&self, machine: i64) -> Option<(Time, Time)> {
        let state = self.machine(machine)?;
        state.zeroed_at?;
        Some((state.penalty_visible_at?, self.params().penalty_batch_secs.max(1)))
    }

    fn take_state(&mut self) -> Option<ChangedState> {
        Some(self.take_changed())
    }
}

impl Subject for Naive {
    fn label(&self) -> String {
        Naive::label(self)
    }

    fn penalised(&self, _machine: i64, _now: Time) -> bool {
        false
    }
}

/// The subjects of a scenario, in scorecard order: the engine, then the baselines.
pub fn subjects(scenario: &Scenario, world: &World) -> anyhow::Result<Vec<Box<dyn Subject + Send>>> {
    let mut engine = Engine::new(scenario.params()?, scenario.run.use_asn);
    engine.set_never_block(world.never_block_set());
    engine.set_canaries(world.canary_set());
    engine.set_shared(world.shared_set());
    engine.set_hosting(world.hosting_set(scenario));
    let b = &scenario.baselines;
    let honoured = if b.honour_never_block {
        palisade_server::engine::ipset::IpSet::new(world.never_block.iter().chain(world.canaries.iter()).copied())
    } else {
        palisade_server::engine::ipset::IpSet::default()
    };
    let window = secs(b.window_hours, HOUR);
    let ttl = secs(b.ttl_hours, HOUR);
    Ok(vec![
        Box::new(engine),
        Box::new(Naive::new(Unit::Machines, b.machines, window, ttl, honoured.clone())),
        Box::new(Naive::new(Unit::Accounts, b.accounts, window, ttl, honoured)),
    ])
}

/// The result of one subject's run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The deterministic scorecard.
    pub card: Scorecard,
    /// Wall-clock time spent inside the subject's calls.
    pub busy: Duration,
    /// CPU time of the same calls (null where the platform does not tell).
    pub cpu: Option<Duration>,
}

impl Outcome {
    /// Signals per second of subject time (wall clock: not deterministic).
    pub fn signals_per_s(&self) -> f64 {
        self.card.signals as f64 / self.busy.as_secs_f64().max(1e-9)
    }
}

/// Something the driver does at a later time, whatever the subject decided meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// The owner's appeal against a listing is upheld (if it is still listed).
    Appeal(IpNet),
    /// Is a reassigned address still listed?
    StaleCheck(IpNet),
    /// A real attacker's appeal against its own listing, upheld by the operator.
    AttackerAppeal(IpNet),
}

/// CPU time the calling thread has used (Linux: `/proc/thread-self/schedstat`, nanoseconds).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(text.split_whitespace().next()?.parse().ok()?))
}

/// Times the calls into the subject: wall clock and, where known, CPU.
struct Meter {
    busy: Duration,
    cpu: Option<Duration>,
    started: Instant,
    cpu_started: Option<Duration>,
}

impl Meter {
    fn new() -> Self {
        let cpu_started = thread_cpu();
        Meter { busy: Duration::ZERO, cpu: cpu_started.map(|_| Duration::ZERO), started: Instant::now(), cpu_started }
    }

    fn start(&mut self) {
        // CPU first, so reading it is not inside the wall-clock window.
        self.cpu_started = self.cpu.and(thread_cpu());
        self.started = Instant::now();
    }

    fn stop(&mut self) {
        self.busy += self.started.elapsed();
        if let (Some(total), Some(from), Some(to)) = (self.cpu.as_mut(), self.cpu_started, thread_cpu()) {
            *total += to.saturating_sub(from);
        }
    }
}

/// Pending actions by time; the sequence number keeps their order stable.
#[derive(Default)]
struct Actions {
    queue: BinaryHeap<Reverse<(Time, u64, Action)>>,
    seq: u64,
}

impl Actions {
    fn at(&mut self, at: Time, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, action)));
    }

    fn due(&mut self, now: Time) -> Option<Action> {
        let Reverse((at, _, action)) = *self.queue.peek()?;
        (at <= now).then(|| {
            self.queue.pop();
            action
        })
    }
}

/// Whether and when the owner of listed `key` appeals (with `probability`), and whether the
/// operator upholds it (with `upheld`): drawn from the seed and the address alone, so every
/// subject sees the same owners appeal after the same delay.
fn appeal(seed: u64, key: IpNet, probability: f64, upheld: f64, appeals: &AppealSpec) -> Option<Time> {
    let (address, len) = match key {
        IpNet::V4(n) => (u128::from(u32::from(n.network())), n.prefix_len()),
        IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
    };
    let draw = mix(seed, &[stream::APPEALS, address as u64, (address >> 64) as u64, u64::from(len)]);
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    (unit(draw) < probability && unit(mix(draw, &[2])) < upheld).then(|| {
        let [lo, hi] = appeals.delay_hours;
        secs(lo + (hi - lo) * unit(mix(draw, &[1])), HOUR).max(1)
    })
}

/// Runs `subject` over the world of `scenario` and `seed`.
pub fn run(scenario: &Scenario, world: &World, seed: u64, subject: &mut dyn Subject) -> Outcome {
    let mut generator = Generator::new(scenario, world, seed);
    let mut scorer = Scorer::new(world);
    let mut meter = Meter::new();
    meter.start();
    for m in world.machines.iter().filter(|m| !matches!(m.role, Role::Adversary(_))) {
        subject.upsert_machine(m.id, m.account, m.level, m.role == Role::Sensor, m.created_at);
    }
    meter.stop();
    let malicious: Vec<u32> = (0..world.machines.len() as u32).filter(|&i| world.machines[i as usize].malicious()).collect();
    let mut actions = Actions::default();
    let mut batch: Vec<(Time, Event)> = Vec::new();
    let step = scenario.run.step_secs;
    let feed_refresh = secs(scenario.public_feed.refresh_hours, HOUR).max(1);
    let (mut feed, mut feed_changed, mut next_refresh) = (BTreeMap::<IpNet, Time>::new(), false, world.start);
    let mut next_penalty_check = world.start;
    let mut now = world.start;
    while now < world.end {
        now = (now + step).min(world.end);
        batch.clear();
        generator.drain_until(now, &mut batch);
        meter.start();
        for (at, event) in &batch {
            match event {
                Event::Register { machine } => {
                    let m = &world.machines[*machine as usize];
                    subject.upsert_machine(m.id, m.account, m.level, false, m.created_at);
                }
                Event::Report { machine, target, scenario, certified } => {
                    let m = &world.machines[*machine as usize];
                    subject.process(&Report {
                        machine: m.id,
                        target: *target,
                        scenario: generator.scenario_name(*scenario),
                        certified: *certified,
                        origin_prefix: m.prefix,
                        origin_asn: Some(m.asn()),
                        at: *at,
                    });
                }
                Event::Handover { .. } | Event::Publish { .. } => {}
            }
        }
        meter.stop();
        for (at, event) in &batch {
            match event {
                Event::Report { machine, target, .. } => {
                    let m = &world.machines[*machine as usize];
                    // Compromised machines count as honest until their group strikes.
                    let honest = match (m.role, m.compromised_by) {
                        (Role::Honest, None) => true,
                        (Role::Honest, Some(g)) => *at < world.groups[g].strike_at,
                        (Role::Sensor | Role::Adversary(_), _) => false,
                    };
                    let account = m.account.filter(|_| honest);
                    scorer.on_report(generator.entity(&Engine::key(*target)), honest, account, *at);
                }
                Event::Handover { attacker } => {
                    if *at >= world.scored_from {
                        let key = generator.attackers()[*attacker as usize].key;
                        scorer.on_handover(&key, *at);
                        actions.at(at + STALE_AFTER, Action::StaleCheck(key));
                    }
                }
                Event::Publish { key, until } => {
                    let until = feed.get(key).copied().unwrap_or(*until).max(*until);
                    feed.insert(*key, until);
                    feed_changed = true;
                }
                Event::Register { .. } => {}
            }
        }
        if now >= next_refresh {
            next_refresh = now + feed_refresh;
            let before = feed.len();
            feed.retain(|_, until| *until > now);
            if feed_changed || feed.len() != before {
                feed_changed = false;
                meter.start();
                subject.set_public(IpSet::new(feed.keys().copied()));
                meter.stop();
            }
        }
        while let Some(action) = actions.due(now) {
            match action {
                Action::Appeal(key) | Action::AttackerAppeal(key) => {
                    if scorer.is_listed(&key) {
                        meter.start();
                        let changes = subject.report_false_positive(key, now);
                        meter.stop();
                        if matches!(action, Action::AttackerAppeal(_)) {
                            scorer.on_attacker_appeal_upheld();
                        }
                        scorer.on_changes(&changes, now, &generator);
                    }
                }
                Action::StaleCheck(key) => scorer.on_stale_check(&key, now),
            }
        }
        meter.start();
        let changes = subject.advance(now);
        meter.stop();
        for key in scorer.on_changes(&changes, now, &generator) {
            let a = &scenario.appeals;
            match generator.entity(&key) {
                Some(Entity::Victim(_) | Entity::Benign(_)) => {
                    if let Some(delay) = appeal(seed, key, a.probability, 1.0, a) {
                        actions.at(now + delay, Action::Appeal(key));
                    }
                }
                Some(Entity::Attacker(_)) => {
                    if let Some(delay) = appeal(seed, key, a.attacker_probability, a.attacker_upheld, a) {
                        actions.at(now + delay, Action::AttackerAppeal(key));
                    }
                }
                None => {}
            }
        }
        // Penalties land at appeals and canary hits, and the worker flushes changed state every
        // so often: an hourly look at both is fine-grained enough (and keeps copies cheap).
        if now >= next_penalty_check || now >= world.end {
            next_penalty_check = now + HOUR;
            if let Some(changed) = subject.take_state() {
                scorer.on_state(&changed);
            }
            if scenario.run.consumer_list_cap > 0 && now >= world.scored_from {
                scorer.on_capped_list(scenario.run.consumer_list_cap, &generator);
            }
            for &i in &malicious {
                if !scorer.was_penalised(i) && subject.penalised(world.machines[i as usize].id, now) {
                    scorer.on_penalised(i, now);
                }
            }
        }
    }
    scorer.on_probes(world, &generator, |m| subject.penalty_visible(m));
    let label = subject.label();
    let card = scorer.finish(label, world, scenario, &generator, |m| subject.penalised(m, world.end));
    Outcome { card, busy: meter.busy, cpu: meter.cpu }
}
