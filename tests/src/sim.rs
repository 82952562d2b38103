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
    /// `(subject, signals per second of subject time, subject time, subject CPU time)`.
    pub subjects: Vec<(String, f64, Duration, Option<Duration>)>,
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
    let timing =
        Timing { subjects: outcomes.iter().map(|o| (o.card.subject.clone(), o.signals_per_s(), o.busy, o.cpu)).collect() };
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
            "never-block: {} ranges (guard {}); canaries: {}; shared ranges: {}; attacker populations: {}",
            world.never_block.len(),
            if scenario.run.never_block_guard { "on" } else { "off" },
            world.canaries.len(),
            world.shared.len(),
            scenario.attackers.len()
        ),
    ];
    let feed = &scenario.public_feed;
    if feed.coverage > 0.0 {
        lines.push(format!(
            "public feed: {:.0}% of attacker addresses, {}-{} h after they start, for {} days",
            feed.coverage * 100.0,
            feed.delay_hours[0],
            feed.delay_hours[1],
            feed.ttl_days
        ));
    }
    for group in &world.groups {
        let spec = &scenario.adversaries[group.spec];
        let mut extras = Vec::new();
        if spec.spoofed {
            extras.push(format!("spoofed traffic seen by {:?} honest machines", spec.spoof_seen_by));
        }
        if spec.strikes > 1 {
            extras.push(format!("{} strikes every {} days", spec.strikes, spec.strike_every_days));
        }
        if spec.echo_feed > 0.0 {
            extras.push(format!("echoes {:.0}% of the public feed", spec.echo_feed * 100.0));
        }
        if !spec.ages_days.is_empty() {
            extras.push(format!("ages {:?} days", spec.ages_days));
        }
        if spec.junk_per_machine > 0 {
            extras.push(format!("{} junk reports per machine per strike", spec.junk_per_machine));
        }
        lines.push(format!(
            "adversary {}: {} machines, {} accounts, {} ASes, strikes on day {:.1} of scoring, {} {:?} victims{}{}",
            spec.name,
            group.machines.len(),
            group.accounts,
            group.ases,
            (group.strike_at - world.scored_from) as f64 / DAY as f64,
            spec.victim_count,
            spec.victims,
            if extras.is_empty() { "" } else { "; " },
            extras.join(", "),
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
        row("reassigned_listed_hours_48h", &|c| format!("{:.1}", c.reassigned_listed_hours_48h)),
        row("malicious_machines_penalised", &|c| c.malicious_machines_penalised.to_string()),
        row("innocent_listed_after_penalty", &|c| c.innocent_listed_after_penalty.to_string()),
        row("honest_machines_penalised", &|c| c.honest_machines_penalised.to_string()),
        row("honest_machines_penalised_rate", &|c| format!("{:.4}", c.honest_machines_penalised_rate)),
        row("attacker_appeals_upheld", &|c| c.attacker_appeals_upheld.to_string()),
        row("cheapest_success_machine_days", &|c| opt(&c.cheapest_success_machine_days.map(|d| format!("{d:.1}")))),
        row("cheapest_success_accounts", &|c| opt(&c.cheapest_success_accounts)),
        row("cheapest_success_ases", &|c| opt(&c.cheapest_success_ases)),
        row("cheapest_success_group", &|c| opt(&c.cheapest_success_group)),
        row("engine_state_mb_peak", &|c| opt(&c.engine_state_mb_peak.map(|m| format!("{m:.1}")))),
        row("engine_targets_peak", &|c| opt(&c.engine_targets_peak)),
        row("real_attackers_displaced", &|c| opt(&c.real_attackers_displaced)),
        row("canaries_identified", &|c| opt(&c.canaries_identified)),
        row("ranges_listed", &|c| c.ranges_listed.to_string()),
        row("ranges_listed_with_victims", &|c| c.ranges_listed_with_victims.to_string()),
        row("-- context", &|_| String::new()),
        row("signals", &|c| c.signals.to_string()),
        row("attackers_seen_by_10plus", &|c| c.attackers_seen_by_10plus.to_string()),
        row("attackers_seen_by_3plus", &|c| c.attackers_seen_by_3plus.to_string()),
        row("attackers_spoofable_only_10plus", &|c| c.attackers_spoofable_only_10plus.to_string()),
        row("benign_reported", &|c| c.benign_reported.to_string()),
        row("benign_listed", &|c| c.benign_listed.to_string()),
        row("victims", &|c| c.victims.to_string()),
        row("canaries_probed", &|c| c.canaries_probed.to_string()),
        row("reassigned", &|c| c.reassigned.to_string()),
        row("reassigned_listed_at_handover", &|c| c.reassigned_listed_at_handover.to_string()),
        row("malicious_machines", &|c| c.malicious_machines.to_string()),
        row("malicious_machines_flagged", &|c| c.malicious_machines_flagged.to_string()),
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
    let parts: Vec<String> = timing
        .subjects
        .iter()
        .map(|(name, rate, busy, cpu)| {
            let cpu = cpu.map_or_else(
                || "cpu unknown".to_string(),
                |c| {
                    format!(
                        "cpu {:.1} s, {:.0} per cpu s",
                        c.as_secs_f64(),
                        rate * busy.as_secs_f64() / c.as_secs_f64().max(1e-9)
                    )
                },
            );
            format!("{name}={rate:.0} ({:.1} s, {cpu})", busy.as_secs_f64())
        })
        .collect();
    format!("signals_per_s (wall clock, not part of the deterministic scorecard): {}", parts.join("  "))
}

#[cfg(test)]
mod tests {
    use super::generate::{Entity, Event, Generator};
    use super::world::Role;
    use super::*;

    /// A small world that runs in a second or two even unoptimised.
    const SMALL: &str = r#"
        name = "small"
        [run]
        warmup_days = 4
        days = 3
        step_secs = 600
        [world]
        ases = 40
        honest_machines = 200
        registered_days = [100, 200]
        sensors = 4
        sensor_ases = 2
        [honest_fp]
        random_per_machine_day = 0.0
        correlated_per_day = 0.0
        never_block_per_day = 0.0
        [[attackers]]
        per_day = 40
        seen_by = [5, 60]
        sensor_chance = 0.5
    "#;

    fn small(extra: &str) -> Scenario {
        Scenario::parse(&format!("{SMALL}\n{extra}")).expect("valid scenario")
    }

    #[test]
    fn machines_without_an_account_are_not_accounts_and_ages_set_creation() {
        let scenario = small(
            "[[adversaries]]\nname = \"old\"\nmachines = 3\naccounts = 0\nases = 3\nages_days = [90, 90, 10]\nregister_day = 1\n",
        );
        let world = World::build(&scenario, 1);
        let group = &world.groups[0];
        assert_eq!((group.machines.len(), group.accounts, group.ases), (3, 0, 3));
        let ages: Vec<i64> =
            group.machines.iter().map(|&m| (group.strike_at - world.machines[m as usize].created_at) / DAY).collect();
        assert_eq!(ages, vec![90, 90, 10]);
        assert_eq!(group.register_at, world.start, "the oldest machine exists from the start of the run");
    }

    #[test]
    fn spoofed_victims_are_reported_by_honest_machines_and_sensors_only() {
        let scenario = small(
            "[[adversaries]]\nname = \"spoof\"\nmachines = 0\nspoofed = true\nspoof_seen_by = [20, 20]\n\
             spoof_sensor_chance = 1.0\nvictim_count = 3\nregister_day = 1\nscenario = \"crowdsecurity/iptables-scan-multi_ports\"\n",
        );
        let world = World::build(&scenario, 2);
        let mut generator = Generator::new(&scenario, &world, 2);
        let mut events = Vec::new();
        generator.drain_until(world.end, &mut events);
        let (mut honest, mut sensors) = (0, 0);
        for (_, event) in &events {
            if let Event::Report { machine, target, .. } = event
                && matches!(generator.entity(target), Some(Entity::Victim(_)))
            {
                match world.machines[*machine as usize].role {
                    Role::Honest => honest += 1,
                    Role::Sensor => sensors += 1,
                    Role::Adversary(_) => panic!("a spoofed victim reported by the adversary"),
                }
            }
        }
        assert_eq!(generator.victim_count(), 3);
        assert!(honest >= 60, "{honest} honest reports of victims");
        assert_eq!(sensors, 3 * 4);
    }

    #[test]
    fn strike_phases_make_new_victims_each_time() {
        let scenario = small("[[adversaries]]\nmachines = 5\nvictim_count = 4\nstrikes = 3\nstrike_every_days = 0.5\n");
        let world = World::build(&scenario, 3);
        let mut generator = Generator::new(&scenario, &world, 3);
        generator.drain_until(world.end, &mut Vec::new());
        assert_eq!(world.groups[0].strikes.len(), 3);
        assert_eq!(generator.victim_count(), 12);
    }

    #[test]
    fn never_block_listed_moves_only_with_the_guard_off() {
        let mut scenario = small("");
        scenario.honest_fp.never_block_per_day = 20.0;
        scenario.honest_fp.never_block_machines = [40, 80];
        let on = simulate(&scenario, 4, 1).expect("runs").0;
        scenario.run.never_block_guard = false;
        let off = simulate(&scenario, 4, 1).expect("runs").0;
        assert_eq!(on.scorecards[0].never_block_listed, 0);
        assert!(off.scorecards[0].never_block_listed > 0, "guard off: {}", off.scorecards[0].never_block_listed);
        assert!(off.world[1].contains("guard off"));
    }

    #[test]
    fn the_engine_reports_its_state_size_and_the_baselines_do_not() {
        let results = simulate(&small(""), 5, 1).expect("runs").0;
        let engine = &results.scorecards[0];
        assert!(engine.engine_state_mb_peak.is_some_and(|mb| mb > 0.0));
        assert!(engine.engine_targets_peak.is_some_and(|n| n > 100));
        assert!(results.scorecards[1..].iter().all(|c| c.engine_state_mb_peak.is_none()));
    }

    #[test]
    fn fresh_victims_displace_real_attackers_from_a_capped_list() {
        let mut scenario = small("[[adversaries]]\nmachines = 10\nases = 5\nregister_day = 2.9\nvictim_count = 30\n");
        scenario.run.consumer_list_cap = 5;
        let capped = simulate(&scenario, 6, 1).expect("runs").0;
        let naive = &capped.scorecards[1];
        assert!(naive.innocent_listed > 5, "the baseline lists the victims: {}", naive.innocent_listed);
        assert!(naive.real_attackers_displaced.is_some_and(|d| d >= 5), "{:?}", naive.real_attackers_displaced);
        scenario.run.consumer_list_cap = 1_000_000;
        let roomy = simulate(&scenario, 6, 1).expect("runs").0;
        assert_eq!(roomy.scorecards[1].real_attackers_displaced, Some(0));
        scenario.run.consumer_list_cap = 0;
        assert_eq!(simulate(&scenario, 6, 1).expect("runs").0.scorecards[1].real_attackers_displaced, None);
    }

    #[test]
    fn canaries_probed_one_per_machine_are_identified_and_a_burst_hides_them() {
        let spread = small(
            "[[adversaries]]\nmachines = 20\nases = 4\nregister_day = 1\nprobe = true\nvictims = \"canary\"\n\
             victim_count = 20\nstrike_hours = 24\n",
        );
        let card = simulate(&spread, 7, 1).expect("runs").0.scorecards.remove(0);
        assert!(card.canaries_probed > 5, "{}", card.canaries_probed);
        assert_eq!(card.canaries_identified, Some(card.canaries_probed));
        let burst = small(
            "[[adversaries]]\nmachines = 2\nases = 2\nregister_day = 1\nprobe = true\nvictims = \"canary\"\n\
             victim_count = 20\nstrike_hours = 0.5\n",
        );
        let card = simulate(&burst, 7, 1).expect("runs").0.scorecards.remove(0);
        assert!(card.canaries_probed > 5 && card.canaries_identified.is_some_and(|n| n < card.canaries_probed));
    }

    #[test]
    fn victims_side_by_side_in_hosting_space_get_their_24_listed() {
        let mut scenario = small(
            "[[adversaries]]\nsource = \"compromised\"\ncompromised_fraction = 0.2\nregister_day = 1\n\
             victims_one_24 = true\nvictim_count = 12\n",
        );
        scenario.run.warmup_days = 20.0;
        let without = simulate(&scenario, 8, 1).expect("runs").0.scorecards.remove(0);
        assert!(without.innocent_listed >= 8, "{} victims listed", without.innocent_listed);
        assert_eq!(without.ranges_listed, 0);
        scenario.world.hosting_ranges = true;
        let with = simulate(&scenario, 8, 1).expect("runs").0.scorecards.remove(0);
        assert_eq!((with.ranges_listed, with.ranges_listed_with_victims), (1, 1));
    }
}
