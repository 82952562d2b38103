//! Properties of the consensus engine under random inputs, generated and shrunk by proptest:
//! reports from zero-trust machines (new, or old but without a single lead) never list anything; never-block addresses and canaries are
//! never listed, even when sensors and trusted machines report them and the set changes mid-run;
//! the same signals processed twice from scratch, or across a restart that restores persisted
//! state, give the same lists; evidence under spoofable scenarios alone never lists, even from
//! sensors and trusted machines; echoing a public list earns nothing; an upheld false positive
//! never raises a supporter's trust. A failure is reported with the smallest world proptest finds.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use palisade_server::engine::ipset::IpSet;
use palisade_server::engine::params::Params;
use palisade_server::engine::trust::{Level, MachineState};
use palisade_server::engine::{Change, Consensus, Engine, Report, TargetState, Time};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

const DAY: Time = 86_400;
const T0: Time = 1_767_225_600;
/// Worlds per property: as many as the seeded loops these replaced ran.
const CASES: u32 = 48;

const LEVELS: [Level; 5] = [Level::Anonymous, Level::Email, Level::Verified, Level::Paid, Level::Partner];
const SCENARIOS: [&str; 4] =
    ["crowdsecurity/ssh-bf", "crowdsecurity/http-probing", "custom/udp-flood", "crowdsecurity/http-crawl"];

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpNet {
    IpNet::from(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

/// A reporting machine of a random world.
#[derive(Debug, Clone)]
struct Machine {
    id: i64,
    account: Option<i64>,
    level: Level,
    sensor: bool,
    created_at: Time,
    asn: u32,
    prefix: IpNet,
}

/// One input of a random stream.
#[derive(Debug, Clone)]
enum Input {
    Report { machine: usize, target: IpNet, scenario: usize, certified: bool, at: Time },
    Advance(Time),
    FalsePositive(IpNet, Time),
    NeverBlock(Vec<IpNet>),
}

/// A machine as generated: `account` picks among about half as many accounts as machines (70 %
/// have one), `age` is how long before the start it was created (its unit set by the property).
#[derive(Debug, Clone)]
struct MachineSeed {
    account: Option<Index>,
    level: Index,
    sensor: bool,
    age: u64,
    asn: u32,
    subnet: u8,
}

fn machine_seeds(count: std::ops::Range<usize>, max_age: u64) -> impl Strategy<Value = Vec<MachineSeed>> {
    let seed = (
        proptest::option::weighted(0.7, any::<Index>()),
        any::<Index>(),
        prop::bool::weighted(0.1),
        0..max_age,
        0..12u32,
        0..4u8,
    )
        .prop_map(|(account, level, sensor, age, asn, subnet)| MachineSeed { account, level, sensor, age, asn, subnet });
    vec(seed, count)
}

/// The machines of `seeds`, created `created(age)`; sensors only when `sensors`.
fn machines(seeds: &[MachineSeed], created: impl Fn(u64) -> Time, sensors: bool) -> Vec<Machine> {
    let accounts = seeds.len() / 2 + 1;
    seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            let asn = 100 + seed.asn;
            Machine {
                id: i as i64 + 1,
                account: seed.account.map(|a| 1 + a.index(accounts) as i64),
                level: LEVELS[seed.level.index(LEVELS.len())],
                sensor: sensors && seed.sensor,
                created_at: created(seed.age),
                asn,
                prefix: IpNet::new(IpAddr::V4(Ipv4Addr::new(64, asn as u8, seed.subnet, 0)), 24).expect("valid /24"),
            }
        })
        .collect()
}

/// Targets: one in five an IPv6 address under 2a0b::/16, the rest in 45.0-3.0-3.0-7.
fn targets(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<IpNet>> {
    let v6 = (0..8u64, any::<u64>()).prop_map(|(block, low)| {
        let high = 0x2a0b_0000_0000_0000_0000_0000_0000_0000u128 | (u128::from(block) << 64) | u128::from(low);
        IpNet::from(IpAddr::from(high.to_be_bytes()))
    });
    let v4 = (0..4u8, 0..4u8, 0..8u8).prop_map(|(b, c, d)| v4(45, b, c, d));
    vec(prop_oneof![1 => v6, 4 => v4], count)
}

/// One report of a step: who, about which target, and when within the step's minute.
#[derive(Debug, Clone)]
struct ReportSeed {
    machine: Index,
    target: Index,
    scenario: Index,
    certified: bool,
    second: Time,
}

/// One step of a stream: reports, then time moves on by at least a minute; now and then an
/// upheld false positive, or (when the property allows) a new never-block set.
#[derive(Debug, Clone)]
struct StepSeed {
    reports: Vec<ReportSeed>,
    gap: u64,
    false_positive: Option<Index>,
    never_block: Option<Vec<Index>>,
}

/// 40 to 119 steps of up to 29 reports each.
fn steps(never_block_changes: bool) -> impl Strategy<Value = Vec<StepSeed>> {
    let report = (any::<Index>(), any::<Index>(), any::<Index>(), prop::bool::weighted(0.8), 0..60 as Time)
        .prop_map(|(machine, target, scenario, certified, second)| ReportSeed { machine, target, scenario, certified, second });
    let never_block = if never_block_changes {
        proptest::option::weighted(0.05, vec(any::<Index>(), 1..5)).boxed()
    } else {
        Just(None).boxed()
    };
    let step = (vec(report, 0..30), any::<u64>(), proptest::option::weighted(0.03, any::<Index>()), never_block)
        .prop_map(|(reports, gap, false_positive, never_block)| StepSeed { reports, gap, false_positive, never_block });
    vec(step, 40..120)
}

/// The stream of `steps` over `machines` and `targets` from `start`, spread over about `span`.
fn stream(steps: &[StepSeed], machines: &[Machine], targets: &[IpNet], start: Time, span: Time) -> Vec<Input> {
    let mut inputs = Vec::new();
    let mut now = start;
    let stride = (span / steps.len().max(1) as Time).max(1) as u64;
    for step in steps {
        for report in &step.reports {
            inputs.push(Input::Report {
                machine: report.machine.index(machines.len()),
                target: *report.target.get(targets),
                scenario: report.scenario.index(SCENARIOS.len()),
                certified: report.certified,
                at: now + report.second,
            });
        }
        now += 60 + (step.gap % stride) as Time;
        inputs.push(Input::Advance(now));
        if let Some(target) = &step.false_positive {
            inputs.push(Input::FalsePositive(*target.get(targets), now));
        }
        if let Some(picked) = &step.never_block {
            inputs.push(Input::NeverBlock(picked.iter().map(|i| *i.get(targets)).collect()));
        }
    }
    inputs
}

fn register(engine: &mut impl Consensus, machines: &[Machine]) {
    for m in machines {
        engine.upsert_machine(m.id, m.account, m.level, m.sensor, m.created_at);
    }
}

fn feed(engine: &mut Engine, machines: &[Machine], input: &Input) -> Vec<Change> {
    match input {
        Input::Report { machine, target, scenario, certified, at } => {
            let m = &machines[*machine];
            engine.process(&Report {
                machine: m.id,
                target: *target,
                scenario: SCENARIOS[*scenario],
                certified: *certified,
                origin_prefix: m.prefix,
                origin_asn: Some(m.asn),
                at: *at,
            });
            Vec::new()
        }
        Input::Advance(now) => engine.advance(*now),
        Input::FalsePositive(target, now) => engine.report_false_positive(*target, *now),
        Input::NeverBlock(nets) => {
            engine.set_never_block(IpSet::new(nets.iter().copied()));
            Vec::new()
        }
    }
}

/// Rounds of the honest warm-up; in each, every machine takes part or not (60 %).
const WARM_ROUNDS: usize = 30;

/// Who takes part in each warm-up round: `WARM_ROUNDS` × `machines` flags, row by row.
fn warm_up_rounds(machines: usize) -> impl Strategy<Value = Vec<bool>> {
    vec(prop::bool::weighted(0.6), WARM_ROUNDS * machines)
}

/// Lets machines earn trust the honest way: sensors confirm attackers they reported first.
fn warm_up(engine: &mut Engine, machines: &[Machine], rounds: &[bool], start: Time) -> Time {
    const SENSOR: i64 = 10_000;
    let sensor_prefix = IpNet::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 24).expect("valid /24");
    engine.upsert_machine(SENSOR, None, Level::Partner, true, start - 400 * DAY);
    let mut now = start;
    for (k, takes_part) in rounds.chunks(machines.len()).take(WARM_ROUNDS).enumerate() {
        let k = k as u32;
        let target = v4(77, (k / 250) as u8, (k % 250) as u8, 1);
        for (m, _) in machines.iter().zip(takes_part).filter(|(_, takes_part)| **takes_part) {
            engine.process(&Report {
                machine: m.id,
                target,
                scenario: SCENARIOS[0],
                certified: true,
                origin_prefix: m.prefix,
                origin_asn: Some(m.asn),
                at: now,
            });
        }
        now += 60;
        engine.advance(now);
        engine.process(&Report {
            machine: SENSOR,
            target,
            scenario: SCENARIOS[0],
            certified: true,
            origin_prefix: sensor_prefix,
            origin_asn: Some(1),
            at: now,
        });
        now += 3600;
        engine.advance(now);
    }
    now
}

/// Runs `property` over `CASES` generated worlds; a failure panics with the shrunk world.
fn check<S: Strategy>(strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    if let Err(failure) = runner.run(&strategy, property) {
        panic!("{failure}");
    }
}

/// A world of machines that never earned a lead: fresh (inside the age ramp's zero, created
/// within the day before the start) or old (40 to 339 days) but without a sensor to confirm them.
#[derive(Debug)]
struct ZeroTrustWorld {
    start_day: Time,
    fresh: bool,
    machines: Vec<MachineSeed>,
    use_asn: bool,
    targets: Vec<IpNet>,
    steps: Vec<StepSeed>,
}

#[test]
fn reports_from_zero_trust_machines_never_list_anything() {
    let world = (0..100 as Time, any::<bool>(), machine_seeds(20..420, DAY as u64), any::<bool>(), targets(1..61), steps(false))
        .prop_map(|(start_day, fresh, machines, use_asn, targets, steps)| ZeroTrustWorld {
            start_day,
            fresh,
            machines,
            use_asn,
            targets,
            steps,
        });
    check(world, |world| {
        let start = T0 + world.start_day * DAY;
        let fresh = world.fresh;
        let population = machines(
            &world.machines,
            // `age` is below a day: fresh machines are that old, old ones 40 to 339 days.
            |age| if fresh { start - age as Time } else { start - (40 + (age % 300) as Time) * DAY },
            false,
        );
        let mut engine = Engine::new(Params::default(), world.use_asn);
        register(&mut engine, &population);
        let span = if fresh { DAY } else { 30 * DAY };
        for input in stream(&world.steps, &population, &world.targets, start, span) {
            if let Input::Report { machine, at, .. } = &input {
                let trust = engine.machine_trust(population[*machine].id, *at);
                prop_assert!(trust < engine.params().trust_floor, "a machine earned trust {} without any lead", trust);
            }
            let changes = feed(&mut engine, &population, &input);
            prop_assert!(!changes.iter().any(|c| matches!(c, Change::Listed { .. })), "zero-trust reports listed {:?}", changes);
        }
        prop_assert_eq!(engine.listed().count(), 0);
        Ok(())
    });
}

/// A world with sensors and warmed-up machines, some targets never to be blocked (singly, or a
/// whole /24 holding several) and some canaries, and a stream that also replaces the set.
#[derive(Debug)]
struct NeverBlockWorld {
    machines: Vec<MachineSeed>,
    use_asn: bool,
    rounds: Vec<bool>,
    targets: Vec<IpNet>,
    never_block: Vec<bool>,
    whole_24: Option<(u8, u8)>,
    canaries: Vec<bool>,
    steps: Vec<StepSeed>,
}

#[test]
fn never_block_addresses_and_canaries_are_never_listed_under_random_inputs() {
    let listings = Cell::new(0u32);
    let world = (machine_seeds(10..70, 300), any::<bool>(), targets(4..44))
        .prop_flat_map(|(machines, use_asn, targets)| {
            let (n, t) = (machines.len(), targets.len());
            (
                Just(machines),
                Just(use_asn),
                warm_up_rounds(n),
                Just(targets),
                vec(prop::bool::weighted(0.2), t),
                proptest::option::weighted(0.5, (0..4u8, 0..4u8)),
                vec(prop::bool::weighted(0.1), t),
                steps(true),
            )
        })
        .prop_map(|(machines, use_asn, rounds, targets, never_block, whole_24, canaries, steps)| NeverBlockWorld {
            machines,
            use_asn,
            rounds,
            targets,
            never_block,
            whole_24,
            canaries,
            steps,
        });
    check(world, |world| {
        let start = T0;
        let population = machines(&world.machines, |age| start - (60 + age as Time) * DAY, true);
        let mut engine = Engine::new(Params::default(), world.use_asn);
        register(&mut engine, &population);
        let now = warm_up(&mut engine, &population, &world.rounds, start);
        let targets = &world.targets;
        let mut never_block: Vec<IpNet> =
            targets.iter().zip(&world.never_block).filter(|(_, nb)| **nb).map(|(t, _)| *t).collect();
        if let Some((b, c)) = world.whole_24 {
            never_block.push(IpNet::new(IpAddr::V4(Ipv4Addr::new(45, b, c, 0)), 24).expect("valid /24"));
        }
        let canaries: Vec<IpNet> = targets
            .iter()
            .zip(&world.canaries)
            .filter(|(t, canary)| **canary && !never_block.contains(t))
            .map(|(t, _)| *t)
            .collect();
        engine.set_never_block(IpSet::new(never_block.iter().copied()));
        engine.set_canaries(IpSet::new(canaries.iter().copied()));
        let mut blocked = IpSet::new(never_block.iter().chain(canaries.iter()).copied());
        for input in stream(&world.steps, &population, targets, now, 10 * DAY) {
            if let Input::NeverBlock(nets) = &input {
                blocked = IpSet::new(nets.iter().chain(canaries.iter()).copied());
            }
            let changes = feed(&mut engine, &population, &input);
            for change in &changes {
                if let Change::Listed { target, .. } = change {
                    prop_assert!(!blocked.overlaps(*target), "listed never-block {}", target);
                    listings.set(listings.get() + 1);
                }
            }
            if matches!(input, Input::Advance(_)) {
                for (target, _) in engine.listed() {
                    prop_assert!(!blocked.overlaps(*target), "{} still listed after the never-block set changed", target);
                }
            }
        }
        Ok(())
    });
    let listings = listings.get();
    assert!(listings > CASES, "the random inputs list other addresses ({listings} listings), so the property is not vacuous");
}

/// Persisted state, as the worker's store would hold it.
#[derive(Default)]
struct Store {
    machines: BTreeMap<i64, MachineState>,
    targets: BTreeMap<IpNet, TargetState>,
}

impl Store {
    fn save(&mut self, engine: &mut Engine) {
        let changed = engine.take_changed();
        self.machines.extend(changed.machines);
        for (target, state) in changed.targets {
            match state {
                Some(state) => {
                    self.targets.insert(target, state);
                }
                None => {
                    self.targets.remove(&target);
                }
            }
        }
    }
}

fn listed(engine: &Engine) -> Vec<(IpNet, Time)> {
    let mut out: Vec<(IpNet, Time)> = engine.listed().map(|(t, l)| (*t, l.expires_at)).collect();
    out.sort();
    out
}

/// A world with warmed-up machines, a few canaries, and a stream cut at some input for a restart.
#[derive(Debug)]
struct RestartWorld {
    machines: Vec<MachineSeed>,
    targets: Vec<IpNet>,
    canaries: Vec<bool>,
    use_asn: bool,
    rounds: Vec<bool>,
    steps: Vec<StepSeed>,
    cut: Index,
}

#[test]
fn the_same_signals_give_the_same_lists_from_scratch_and_across_a_restart() {
    let listed_at_restart = Cell::new(0usize);
    let world = (machine_seeds(10..60, 300), targets(4..44))
        .prop_flat_map(|(machines, targets)| {
            let (n, t) = (machines.len(), targets.len());
            (
                Just(machines),
                Just(targets),
                vec(prop::bool::weighted(0.05), t),
                any::<bool>(),
                warm_up_rounds(n),
                steps(false),
                any::<Index>(),
            )
        })
        .prop_map(|(machines, targets, canaries, use_asn, rounds, steps, cut)| RestartWorld {
            machines,
            targets,
            canaries,
            use_asn,
            rounds,
            steps,
            cut,
        });
    check(world, |world| {
        let start = T0;
        let population = machines(&world.machines, |age| start - (40 + age as Time) * DAY, true);
        let canaries = IpSet::new(world.targets.iter().zip(&world.canaries).filter(|(_, c)| **c).map(|(t, _)| *t));
        let use_asn = world.use_asn;
        let new_engine = || {
            let mut engine = Engine::new(Params::default(), use_asn);
            engine.set_canaries(canaries.clone());
            register(&mut engine, &population);
            engine
        };
        let mut first = new_engine();
        let now = warm_up(&mut first, &population, &world.rounds, start);
        let inputs = stream(&world.steps, &population, &world.targets, now, 20 * DAY);
        let cut = world.cut.index(inputs.len());

        let mut reference = Vec::new();
        for input in &inputs {
            reference.extend(feed(&mut first, &population, input));
        }

        // The same stream from scratch.
        let mut again = new_engine();
        warm_up(&mut again, &population, &world.rounds, start);
        let replay: Vec<Change> = inputs.iter().flat_map(|input| feed(&mut again, &population, input)).collect();
        prop_assert_eq!(&replay, &reference, "a second run from scratch differs");
        prop_assert_eq!(listed(&again), listed(&first));

        // A restart after an advance: the state saved after every input, as the worker saves it
        // after every batch, is all a fresh engine gets before it takes the rest of the stream.
        let cut = inputs[..cut].iter().rposition(|i| matches!(i, Input::Advance(_))).map_or(0, |p| p + 1);
        let mut store = Store::default();
        let mut before = new_engine();
        warm_up(&mut before, &population, &world.rounds, start);
        store.save(&mut before);
        let mut resumed_changes: Vec<Change> = Vec::new();
        for input in &inputs[..cut] {
            resumed_changes.extend(feed(&mut before, &population, input));
            store.save(&mut before);
        }
        listed_at_restart.set(listed_at_restart.get() + store.targets.values().filter(|t| t.listing.is_some()).count());
        drop(before);
        let mut restored = Engine::new(Params::default(), use_asn);
        restored.set_canaries(canaries.clone());
        restored.restore(store.machines, store.targets);
        for input in &inputs[cut..] {
            resumed_changes.extend(feed(&mut restored, &population, input));
        }
        prop_assert_eq!(&resumed_changes, &reference, "a restart at input {} changed the lists", cut);
        prop_assert_eq!(listed(&restored), listed(&first));
        Ok(())
    });
    let listed_at_restart = listed_at_restart.get();
    assert!(listed_at_restart > CASES as usize, "restarts happen with listings in force ({listed_at_restart})");
}

/// Scenarios forged traffic can trigger (the engine's shipped table and name fragments).
const SPOOFABLE: [&str; 3] = ["crowdsecurity/iptables-scan-multi_ports", "custom/udp-flood", "someone/ddos-amplification"];

/// A warmed-up world (sensors included) whose whole stream is reports under spoofable scenarios.
#[derive(Debug)]
struct SpoofedWorld {
    machines: Vec<MachineSeed>,
    use_asn: bool,
    rounds: Vec<bool>,
    targets: Vec<IpNet>,
    steps: Vec<StepSeed>,
}

fn warmed_world() -> impl Strategy<Value = SpoofedWorld> {
    (machine_seeds(10..60, 400), any::<bool>(), targets(4..44))
        .prop_flat_map(|(machines, use_asn, targets)| {
            let n = machines.len();
            (Just(machines), Just(use_asn), warm_up_rounds(n), Just(targets), steps(false))
        })
        .prop_map(|(machines, use_asn, rounds, targets, steps)| SpoofedWorld { machines, use_asn, rounds, targets, steps })
}

#[test]
fn spoofable_evidence_alone_never_lists_and_never_moves_trust() {
    check(warmed_world(), |world| {
        let start = T0;
        let population = machines(&world.machines, |age| start - (60 + age as Time) * DAY, true);
        let mut engine = Engine::new(Params::default(), world.use_asn);
        register(&mut engine, &population);
        let now = warm_up(&mut engine, &population, &world.rounds, start);
        let trust_before: Vec<f64> = population.iter().map(|m| engine.machine_trust(m.id, now)).collect();
        let canaries = IpSet::new(world.targets.iter().step_by(5).copied());
        engine.set_canaries(canaries);
        for input in stream(&world.steps, &population, &world.targets, now, 5 * DAY) {
            let changes = match &input {
                Input::Report { machine, target, scenario, certified, at } => {
                    let m = &population[*machine];
                    engine.process(&Report {
                        machine: m.id,
                        target: *target,
                        scenario: SPOOFABLE[*scenario % SPOOFABLE.len()],
                        certified: *certified,
                        origin_prefix: m.prefix,
                        origin_asn: Some(m.asn),
                        at: *at,
                    });
                    Vec::new()
                }
                other => feed(&mut engine, &population, other),
            };
            prop_assert!(!changes.iter().any(|c| matches!(c, Change::Listed { .. })), "spoofable evidence listed {:?}", changes);
        }
        for (m, before) in population.iter().zip(trust_before) {
            let state = engine.machine(m.id).expect("registered");
            prop_assert!(state.zeroed_at.is_none() && state.lies == 0.0, "machine {} was penalised by forged traffic", m.id);
            let after = engine.machine_trust(m.id, now);
            prop_assert!((after - before).abs() < 1e-9, "machine {} trust moved from {} to {}", m.id, before, after);
        }
        Ok(())
    });
}

#[test]
fn echoing_a_public_list_earns_nothing_and_upheld_false_positives_never_raise_trust() {
    check(warmed_world(), |world| {
        let start = T0;
        let population = machines(&world.machines, |age| start - (60 + age as Time) * DAY, false);
        let mut engine = Engine::new(Params::default(), world.use_asn);
        register(&mut engine, &population);
        let now = warm_up(&mut engine, &population, &world.rounds, start);
        // From now on everything the machines report is already on a public list.
        let everything = ["0.0.0.0/0", "::/0"].map(|n| n.parse::<IpNet>().expect("valid"));
        engine.set_public(IpSet::new(everything));
        let earned: Vec<(u64, f64)> =
            population.iter().map(|m| engine.machine(m.id).map_or((0, 0.0), |s| (s.leads, s.good))).collect();
        for input in stream(&world.steps, &population, &world.targets, now, 10 * DAY) {
            if let Input::FalsePositive(_, at) = &input {
                let before: Vec<f64> = population.iter().map(|m| engine.machine_trust(m.id, *at)).collect();
                feed(&mut engine, &population, &input);
                for (m, before) in population.iter().zip(before) {
                    let after = engine.machine_trust(m.id, *at);
                    prop_assert!(
                        after <= before + 1e-12,
                        "machine {} gained trust from a false positive: {} -> {}",
                        m.id,
                        before,
                        after
                    );
                }
                continue;
            }
            feed(&mut engine, &population, &input);
        }
        for (m, (leads, good)) in population.iter().zip(earned) {
            let state = engine.machine(m.id).expect("registered");
            prop_assert_eq!(state.leads, leads, "machine {} earned leads by echoing", m.id);
            prop_assert!(state.good <= good + 1e-12, "machine {} earned credit by echoing", m.id);
        }
        Ok(())
    });
}
