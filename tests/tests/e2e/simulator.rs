//! The simulator on a tiny world: the same scenario and seed give the same scorecard, and a
//! flood of fresh Sybils lists nothing with the engine while the naive baselines list its
//! victims. (The full dev scenarios run in release with `palisade-sim`; see `docs/simulator.md`.)

use palisade_tests::sim::{self, scenario::Scenario};

const TINY: &str = r#"
name = "tiny"
[run]
warmup_days = 10
days = 4
step_secs = 300
[world]
ases = 40
honest_machines = 150
sensors = 4
sensor_ases = 2
[[attackers]]
name = "mass scanners"
per_day = 40
seen_by = [5, 60]
sensor_chance = 0.2
scenario = "crowdsecurity/http-probing"
[[attackers]]
name = "residential bots"
kind = "dynamic"
per_day = 5
seen_by = [5, 30]
active_hours = [6, 48]
[[adversaries]]
name = "flood"
machines = 400
ases = 40
as_choice = "new"
register_day = 1
victim_count = 5
"#;

#[test]
fn the_same_scenario_and_seed_give_the_same_scorecard() {
    let scenario = Scenario::parse(TINY).expect("valid scenario");
    let (first, _) = sim::simulate(&scenario, 3, 2).expect("runs");
    let (second, _) = sim::simulate(&scenario, 3, 1).expect("runs");
    assert_eq!(sim::render_text(&first), sim::render_text(&second));
    let (other_seed, _) = sim::simulate(&scenario, 4, 1).expect("runs");
    assert_ne!(sim::render_text(&first), sim::render_text(&other_seed), "the seed matters");
}

#[test]
fn fresh_sybils_list_nothing_with_the_engine_but_do_with_the_baselines() {
    let scenario = Scenario::parse(TINY).expect("valid scenario");
    let (results, _) = sim::simulate(&scenario, 1, 1).expect("runs");
    let [engine, machines, accounts] = &results.scorecards[..] else { panic!("three subjects") };
    assert_eq!((engine.subject.as_str(), engine.innocent_listed, engine.never_block_listed), ("engine", 0, 0));
    assert_eq!(engine.cheapest_success_machine_days, None);
    assert_eq!((machines.innocent_listed, accounts.innocent_listed), (5, 5));
    assert!(engine.recall_seen_by_10plus_accounts.is_some_and(|r| r > 0.9), "{engine:?}");
}
