//! The poisoning simulator behind `palisade-sim`: builds a world and its adversaries from a TOML
//! scenario, generates a deterministic stream of reports in simulated time, drives the production
//! consensus engine and the naive baselines through the same [`Consensus`] interface, and scores
//! what each listed. No clock and no global state reach the scorecard: the same scenario and seed
//! give the same scorecard, byte for byte. Wall-clock throughput is measured too, and kept apart.
//!
//! [`Consensus`]: palisade_server::engine::Consensus

pub mod baseline;
pub mod generate;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod score;
pub mod world;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use self::run::Outcome;
use self::scenario::Scenario;
use self::score::Scorecard;
use self::world::{DAY, World};

/// Presets shipped with the simulator, by name.
pub const PRESETS: &[(&str, &str)] =
    &[("ci", include_str!("../scenarios/ci.toml")), ("standard", include_str!("../scenarios/standard.toml"))];

/// The deterministic result of a run: what is printed on standard output.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// World summary lines.
    pub world: Vec<String>,
    /// One scorecard per subject: the engine first, then the baselines.
    pub scorecards: Vec<Scorecard>,
}

/// Wall-clock figures of a run (not deterministic; printed apart).
#[derive(Debug, Clone)]
pub struct Timing {
    /// `(subject, signals per second of subject time, subject time)`.
    pub subjects: Vec<(String, f64, Duration)>,
}

/// Runs every subject of `scenario` for `seed`, on up to `threads` threads (the engine on one,
/// the baselines on another).
pub fn simulate(scenario: &Scenario, seed: u64, threads: usize) -> anyhow::Result<(Results, Timing)> {
    let world = World::build(scenario, seed);
    let subjects = run::subjects(scenario, &world)?;
    let outcomes: Vec<Outcome> = if threads <= 1 {
        subjects.into_iter().map(|mut s| run::run(scenario, &world, seed, s.as_mut())).collect()
    } else {
        let mut subjects = subjects.into_iter();
        let engine = subjects.next();
        let rest: Vec<_> = subjects.collect();
        std::thread::scope(|scope| {
            let world = &world;
            let engine = scope.spawn(move || engine.map(|mut s| run::run(scenario, world, seed, s.as_mut())));
            let others: Vec<Outcome> = rest.into_iter().map(|mut s| run::run(scenario, world, seed, s.as_mut())).collect();
            let mut all: Vec<Outcome> = engine.join().expect("engine thread panicked").into_iter().collect();
            all.extend(others);
            all
        })
    };
    let timing = Timing { subjects: outcomes.iter().map(|o| (o.card.subject.clone(), o.signals_per_s(), o.busy)).collect() };
    let results = Results {
        scenario: scenario.name.clone(),
        seed,
        world: summary(scenario, &world),
        scorecards: outcomes.into_iter().map(|o| o.card).collect(),
    };
    Ok((results, timing))
}

fn summary(scenario: &Scenario, world: &World) -> Vec<String> {
    let honest = world.honest.len();
    let mut lines = vec![
        format!(
            "{honest} honest machines ({} accounts, {} ASes), {} sensors; {:.0} days warm-up + {:.0} days scored, step {} s, {}",
            world.honest_accounts,
            world.honest_ases(),
            world.sensors.len(),
            (world.scored_from - world.start) as f64 / DAY as f64,
            (world.end - world.scored_from) as f64 / DAY as f64,
            scenario.run.step_secs,
            if scenario.run.use_asn { "AS database" } else { "no AS database (/16 fallback)" },
        ),
        format!(
            "never-block: {} ranges; canaries: {}; shared ranges: {}; attacker populations: {}",
            world.never_block.len(),
            world.canaries.len(),
            world.shared.len(),
            scenario.attackers.len()
        ),
    ];
    for group in &world.groups {
        let spec = &scenario.adversaries[group.spec];
        lines.push(format!(
            "adversary {}: {} machines, {} accounts, {} ASes, strikes on day {:.1} of scoring, {} {:?} victims",
            spec.name,
            group.machines.len(),
            group.accounts,
            group.ases,
            (group.strike_at - world.scored_from) as f64 / DAY as f64,
            spec.victim_count,
            spec.victims,
        ));
    }
    lines
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "none".into())
}

/// The scorecard as a text table: one row per metric, one column per subject.
pub fn render_text(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "palisade-sim  scenario={}  seed={}", results.scenario, results.seed);
    for line in &results.world {
        let _ = writeln!(out, "  {line}");
    }
    let cards = &results.scorecards;
    let row = |name: &'static str, value: &dyn Fn(&Scorecard) -> String| (name, cards.iter().map(value).collect::<Vec<_>>());
    let rows: Vec<(&str, Vec<String>)> = vec![
        row("innocent_listed", &|c| c.innocent_listed.to_string()),
        row("innocent_listed_hours", &|c| format!("{:.1}", c.innocent_listed_hours)),
        row("never_block_listed", &|c| c.never_block_listed.to_string()),
        row("benign_fp_rate", &|c| format!("{:.6}", c.benign_fp_rate)),
        row("recall_seen_by_10plus_accounts", &|c| opt(&c.recall_seen_by_10plus_accounts.map(|r| format!("{r:.4}")))),
        row("recall_seen_by_3plus_accounts", &|c| opt(&c.recall_seen_by_3plus_accounts.map(|r| format!("{r:.4}")))),
        row("time_to_list_p50_s", &|c| opt(&c.time_to_list_p50_s)),
        row("time_to_list_p95_s", &|c| opt(&c.time_to_list_p95_s)),
        row("reassigned_still_listed_48h", &|c| c.reassigned_still_listed_48h.to_string()),
        row("malicious_machines_penalised", &|c| c.malicious_machines_penalised.to_string()),
        row("honest_machines_penalised", &|c| c.honest_machines_penalised.to_string()),
        row("cheapest_success_machine_days", &|c| opt(&c.cheapest_success_machine_days.map(|d| format!("{d:.1}")))),
        row("cheapest_success_accounts", &|c| opt(&c.cheapest_success_accounts)),
        row("cheapest_success_ases", &|c| opt(&c.cheapest_success_ases)),
        row("cheapest_success_group", &|c| opt(&c.cheapest_success_group)),
        row("-- context", &|_| String::new()),
        row("signals", &|c| c.signals.to_string()),
        row("attackers_seen_by_10plus", &|c| c.attackers_seen_by_10plus.to_string()),
        row("attackers_seen_by_3plus", &|c| c.attackers_seen_by_3plus.to_string()),
        row("benign_reported", &|c| c.benign_reported.to_string()),
        row("benign_listed", &|c| c.benign_listed.to_string()),
        row("victims", &|c| c.victims.to_string()),
        row("reassigned_listed_at_handover", &|c| c.reassigned_listed_at_handover.to_string()),
        row("malicious_machines", &|c| c.malicious_machines.to_string()),
        row("honest_machines", &|c| c.honest_machines.to_string()),
    ];
    let name_width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let widths: Vec<usize> = cards
        .iter()
        .enumerate()
        .map(|(i, c)| rows.iter().map(|(_, v)| v[i].len()).max().unwrap_or(0).max(c.subject.len()))
        .collect();
    let _ = write!(out, "{:name_width$}", "metric");
    for (c, w) in cards.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", c.subject);
    }
    out.push('\n');
    for (name, values) in &rows {
        if values.iter().all(String::is_empty) {
            let _ = writeln!(out, "{name}");
            continue;
        }
        let _ = write!(out, "{name:name_width$}");
        for (v, w) in values.iter().zip(&widths) {
            let _ = write!(out, "  {v:>w$}");
        }
        out.push('\n');
    }
    for card in cards {
        let groups = if card.groups_succeeded.is_empty() { "none".to_string() } else { card.groups_succeeded.join(", ") };
        let _ = writeln!(out, "groups that got a victim listed, {}: {groups}", card.subject);
    }
    out
}

/// The timing line(s), for standard error.
pub fn render_timing(timing: &Timing) -> String {
    let parts: Vec<String> =
        timing.subjects.iter().map(|(name, rate, busy)| format!("{name}={rate:.0} ({:.1} s)", busy.as_secs_f64())).collect();
    format!("signals_per_s (wall clock, not part of the deterministic scorecard): {}", parts.join("  "))
}
