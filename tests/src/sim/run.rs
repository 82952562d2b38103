//! The driver: feeds one subject (the engine or a baseline) the event stream step by step, as the
//! server's consensus worker would (register machines, `process` each report, `advance` at every
//! step), lets wrongly listed owners appeal, and hands every change to the scorer. Only the calls
//! into the subject are timed, for the throughput figure.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use palisade_server::engine::{Consensus, Engine, Report, Time};

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
}

impl Subject for Engine {
    fn label(&self) -> String {
        "engine".into()
    }

    fn penalised(&self, machine: i64, now: Time) -> bool {
        let heavy = 0.9 * self.params().false_positive_penalty;
        self.machine(machine).is_some_and(|m| m.zeroed_at.is_some() || m.evidence(now, self.params()).1 >= heavy)
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
    StaleCheck(u32, IpNet),
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

/// Whether and when the owner of wrongly listed `key` appeals: drawn from the seed and the
/// address alone, so every subject sees the same owners appeal after the same delay.
fn appeal_delay(seed: u64, key: IpNet, appeals: &AppealSpec) -> Option<Time> {
    let (address, len) = match key {
        IpNet::V4(n) => (u128::from(u32::from(n.network())), n.prefix_len()),
        IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
    };
    let draw = mix(seed, &[stream::APPEALS, address as u64, (address >> 64) as u64, u64::from(len)]);
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    (unit(draw) < appeals.probability).then(|| {
        let [lo, hi] = appeals.delay_hours;
        secs(lo + (hi - lo) * unit(mix(draw, &[1])), HOUR).max(1)
    })
}

/// Runs `subject` over the world of `scenario` and `seed`.
pub fn run(scenario: &Scenario, world: &World, seed: u64, subject: &mut dyn Subject) -> Outcome {
    let mut generator = Generator::new(scenario, world, seed);
    let mut scorer = Scorer::new(world);
    let mut busy = Duration::ZERO;
    let started = Instant::now();
    for m in world.machines.iter().filter(|m| !matches!(m.role, Role::Adversary(_))) {
        subject.upsert_machine(m.id, m.account, m.level, m.role == Role::Sensor, m.created_at);
    }
    busy += started.elapsed();
    let mut actions = Actions::default();
    let mut batch: Vec<(Time, Event)> = Vec::new();
    let step = scenario.run.step_secs;
    let mut now = world.start;
    while now < world.end {
        now = (now + step).min(world.end);
        batch.clear();
        generator.drain_until(now, &mut batch);
        let started = Instant::now();
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
                Event::Handover { .. } => {}
            }
        }
        busy += started.elapsed();
        for (at, event) in &batch {
            match event {
                Event::Report { machine, target, .. } => {
                    let m = &world.machines[*machine as usize];
                    // Compromised machines count as honest until their group strikes.
                    let honest = match (m.role, m.compromised_by) {
                        (Role::Sensor, _) | (Role::Honest, None) => true,
                        (Role::Honest, Some(g)) => *at < world.groups[g].strike_at,
                        (Role::Adversary(_), _) => false,
                    };
                    let cluster = honest.then(|| m.cluster());
                    scorer.on_report(generator.entity(&Engine::key(*target)), cluster, *at);
                }
                Event::Handover { attacker } => {
                    if *at >= world.scored_from {
                        let key = generator.attackers()[*attacker as usize].key;
                        if scorer.on_handover(&key) {
                            actions.at(at + STALE_AFTER, Action::StaleCheck(*attacker, key));
                        }
                    }
                }
                Event::Register { .. } => {}
            }
        }
        while let Some(action) = actions.due(now) {
            match action {
                Action::Appeal(key) => {
                    if scorer.is_listed(&key) {
                        let started = Instant::now();
                        let changes = subject.report_false_positive(key, now);
                        busy += started.elapsed();
                        scorer.on_changes(&changes, now, &generator);
                    }
                }
                Action::StaleCheck(attacker, key) => scorer.on_stale_check(attacker, &key),
            }
        }
        let started = Instant::now();
        let changes = subject.advance(now);
        busy += started.elapsed();
        for key in scorer.on_changes(&changes, now, &generator) {
            let wrongly = matches!(generator.entity(&key), Some(Entity::Victim(_) | Entity::Benign(_)));
            if let Some(delay) = appeal_delay(seed, key, &scenario.appeals).filter(|_| wrongly) {
                actions.at(now + delay, Action::Appeal(key));
            }
        }
    }
    let label = subject.label();
    let card = scorer.finish(label, world, scenario, &generator, |m| subject.penalised(m, world.end));
    Outcome { card, busy }
}
