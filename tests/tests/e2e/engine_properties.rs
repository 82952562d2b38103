//! Properties of the consensus engine under random inputs, each checked over many seeded cases:
//! reports from zero-trust machines (new, or old but without a single lead) never list anything; never-block addresses and canaries are
//! never listed, even when sensors and trusted machines report them and the set changes mid-run;
//! the same signals processed twice from scratch, or across a restart that restores persisted
//! state, give the same lists.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use palisade_server::engine::ipset::IpSet;
use palisade_server::engine::params::Params;
use palisade_server::engine::trust::{Level, MachineState};
use palisade_server::engine::{Change, Consensus, Engine, Report, TargetState, Time};
use palisade_tests::sim::rng::Rng;

const DAY: Time = 86_400;
const T0: Time = 1_767_225_600;
const CASES: u64 = 48;

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

fn machines(rng: &mut Rng, n: usize, created: impl Fn(&mut Rng) -> Time, sensors: bool) -> Vec<Machine> {
    (0..n)
        .map(|i| {
            let asn = 100 + rng.below(12) as u32;
            Machine {
                id: i as i64 + 1,
                account: rng.chance(0.7).then(|| 1 + rng.below(n as u64 / 2 + 1) as i64),
                level: LEVELS[rng.index(LEVELS.len())],
                sensor: sensors && rng.chance(0.1),
                created_at: created(rng),
                asn,
                prefix: IpNet::new(IpAddr::V4(Ipv4Addr::new(64, asn as u8, rng.below(4) as u8, 0)), 24).expect("valid /24"),
            }
        })
        .collect()
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

/// A random stream over `targets`: reports in time order, advances every few minutes, a few
/// upheld false positives, and (when `never_block_changes`) the never-block set replaced mid-run.
fn stream(
    rng: &mut Rng,
    machines: &[Machine],
    targets: &[IpNet],
    start: Time,
    span: Time,
    never_block_changes: bool,
) -> Vec<Input> {
    let mut inputs = Vec::new();
    let mut now = start;
    let steps = 40 + rng.below(80);
    for _ in 0..steps {
        for _ in 0..rng.below(30) {
            inputs.push(Input::Report {
                machine: rng.index(machines.len()),
                target: targets[rng.index(targets.len())],
                scenario: rng.index(SCENARIOS.len()),
                certified: rng.chance(0.8),
                at: now + rng.below(60) as Time,
            });
        }
        now += 60 + rng.below((span / steps as Time).max(1) as u64) as Time;
        inputs.push(Input::Advance(now));
        if rng.chance(0.03) {
            inputs.push(Input::FalsePositive(targets[rng.index(targets.len())], now));
        }
        if never_block_changes && rng.chance(0.05) {
            let picked: Vec<IpNet> = (0..1 + rng.below(4)).map(|_| targets[rng.index(targets.len())]).collect();
            inputs.push(Input::NeverBlock(picked));
        }
    }
    inputs
}

fn random_targets(rng: &mut Rng, n: usize) -> Vec<IpNet> {
    (0..n)
        .map(|_| {
            if rng.chance(0.2) {
                let high =
                    0x2a0b_0000_0000_0000_0000_0000_0000_0000u128 | (u128::from(rng.below(8)) << 64) | u128::from(rng.next_u64());
                IpNet::from(IpAddr::from(high.to_be_bytes()))
            } else {
                v4(45, rng.below(4) as u8, rng.below(4) as u8, rng.below(8) as u8)
            }
        })
        .collect()
}

/// Lets machines earn trust the honest way: sensors confirm attackers they reported first.
fn warm_up(engine: &mut Engine, machines: &[Machine], rng: &mut Rng, start: Time) -> Time {
    const SENSOR: i64 = 10_000;
    let sensor_prefix = IpNet::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 24).expect("valid /24");
    engine.upsert_machine(SENSOR, None, Level::Partner, true, start - 400 * DAY);
    let mut now = start;
    for k in 0..30u32 {
        let target = v4(77, (k / 250) as u8, (k % 250) as u8, 1);
        for m in machines.iter().filter(|_| rng.chance(0.6)) {
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

#[test]
fn reports_from_zero_trust_machines_never_list_anything() {
    for case in 0..CASES {
        let mut rng = Rng::new(case, &[1]);
        let start = T0 + rng.below(100) as Time * DAY;
        // Fresh machines (inside the age ramp's zero) and old machines that never earned a lead.
        let fresh = rng.chance(0.5);
        let n = 20 + rng.index(400);
        let mut population = machines(
            &mut rng,
            n,
            |rng| if fresh { start - rng.below(DAY as u64) as Time } else { start - (40 + rng.below(300) as Time) * DAY },
            false,
        );
        for m in &mut population {
            m.sensor = false;
        }
        let mut engine = Engine::new(Params::default(), rng.chance(0.5));
        register(&mut engine, &population);
        let n = 1 + rng.index(60);
        let targets = random_targets(&mut rng, n);
        let span = if fresh { DAY } else { 30 * DAY };
        for input in stream(&mut rng, &population, &targets, start, span, false) {
            if let Input::Report { machine, at, .. } = &input {
                let trust = engine.machine_trust(population[*machine].id, *at);
                assert!(trust < engine.params().trust_floor, "case {case}: a machine earned trust {trust} without any lead");
            }
            let changes = feed(&mut engine, &population, &input);
            assert!(
                !changes.iter().any(|c| matches!(c, Change::Listed { .. })),
                "case {case}: zero-trust reports listed {changes:?}"
            );
        }
        assert_eq!(engine.listed().count(), 0, "case {case}");
    }
}

#[test]
fn never_block_addresses_and_canaries_are_never_listed_under_random_inputs() {
    let mut listings = 0;
    for case in 0..CASES {
        let mut rng = Rng::new(case, &[2]);
        let start = T0;
        let n = 10 + rng.index(60);
        let population = machines(&mut rng, n, |rng| start - (60 + rng.below(300) as Time) * DAY, true);
        let mut engine = Engine::new(Params::default(), rng.chance(0.5));
        register(&mut engine, &population);
        let now = warm_up(&mut engine, &population, &mut rng, start);
        let n = 4 + rng.index(40);
        let targets = random_targets(&mut rng, n);
        let mut never_block: Vec<IpNet> = targets.iter().copied().filter(|_| rng.chance(0.2)).collect();
        if rng.chance(0.5) {
            // A whole /24 that holds several of the targets.
            never_block.push(
                IpNet::new(IpAddr::V4(Ipv4Addr::new(45, rng.below(4) as u8, rng.below(4) as u8, 0)), 24).expect("valid /24"),
            );
        }
        let canaries: Vec<IpNet> = targets.iter().copied().filter(|t| !never_block.contains(t) && rng.chance(0.1)).collect();
        engine.set_never_block(IpSet::new(never_block.iter().copied()));
        engine.set_canaries(IpSet::new(canaries.iter().copied()));
        let mut blocked = IpSet::new(never_block.iter().chain(canaries.iter()).copied());
        for input in stream(&mut rng, &population, &targets, now, 10 * DAY, true) {
            if let Input::NeverBlock(nets) = &input {
                blocked = IpSet::new(nets.iter().chain(canaries.iter()).copied());
            }
            let changes = feed(&mut engine, &population, &input);
            for change in &changes {
                if let Change::Listed { target, .. } = change {
                    assert!(!blocked.overlaps(*target), "case {case}: listed never-block {target}");
                    listings += 1;
                }
            }
            if matches!(input, Input::Advance(_)) {
                for (target, _) in engine.listed() {
                    assert!(!blocked.overlaps(*target), "case {case}: {target} still listed after the never-block set changed");
                }
            }
        }
    }
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

#[test]
fn the_same_signals_give_the_same_lists_from_scratch_and_across_a_restart() {
    let mut listed_at_restart = 0;
    for case in 0..CASES {
        let mut rng = Rng::new(case, &[3]);
        let start = T0;
        let n = 10 + rng.index(50);
        let population = machines(&mut rng, n, |rng| start - (40 + rng.below(300) as Time) * DAY, true);
        let n = 4 + rng.index(40);
        let targets = random_targets(&mut rng, n);
        let canaries = IpSet::new(targets.iter().copied().filter(|_| rng.chance(0.05)));
        let use_asn = rng.chance(0.5);
        let warm_seed = rng.next_u64();
        let new_engine = || {
            let mut engine = Engine::new(Params::default(), use_asn);
            engine.set_canaries(canaries.clone());
            register(&mut engine, &population);
            engine
        };
        let mut first = new_engine();
        let now = warm_up(&mut first, &population, &mut Rng::new(warm_seed, &[]), start);
        let inputs = stream(&mut rng, &population, &targets, now, 20 * DAY, false);
        let cut = rng.index(inputs.len());

        let mut reference = Vec::new();
        for input in &inputs {
            reference.extend(feed(&mut first, &population, input));
        }

        // The same stream from scratch.
        let mut again = new_engine();
        warm_up(&mut again, &population, &mut Rng::new(warm_seed, &[]), start);
        let replay: Vec<Change> = inputs.iter().flat_map(|input| feed(&mut again, &population, input)).collect();
        assert_eq!(replay, reference, "case {case}: a second run from scratch differs");
        assert_eq!(listed(&again), listed(&first), "case {case}");

        // A restart after an advance: the state saved after every input, as the worker saves it
        // after every batch, is all a fresh engine gets before it takes the rest of the stream.
        let cut = inputs[..cut].iter().rposition(|i| matches!(i, Input::Advance(_))).map_or(0, |p| p + 1);
        let mut store = Store::default();
        let mut before = new_engine();
        warm_up(&mut before, &population, &mut Rng::new(warm_seed, &[]), start);
        store.save(&mut before);
        let mut resumed_changes: Vec<Change> = Vec::new();
        for input in &inputs[..cut] {
            resumed_changes.extend(feed(&mut before, &population, input));
            store.save(&mut before);
        }
        listed_at_restart += store.targets.values().filter(|t| t.listing.is_some()).count();
        drop(before);
        let mut restored = Engine::new(Params::default(), use_asn);
        restored.set_canaries(canaries.clone());
        restored.restore(store.machines, store.targets);
        for input in &inputs[cut..] {
            resumed_changes.extend(feed(&mut restored, &population, input));
        }
        assert_eq!(resumed_changes, reference, "case {case}: a restart at input {cut} changed the lists");
        assert_eq!(listed(&restored), listed(&first), "case {case}");
    }
    assert!(listed_at_restart > CASES as usize, "restarts happen with listings in force ({listed_at_restart})");
}
