//! `palisade-sim`: runs a poisoning scenario against the consensus engine and the naive
//! baselines and prints their scorecards side by side. Standard output is deterministic (same
//! scenario and seed, same bytes); wall-clock throughput goes to standard error.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use palisade_tests::sim::{self, PRESETS, scenario::Scenario};

/// Scenario simulator for the consensus engine (`docs/simulator.md`).
#[derive(Debug, Parser)]
#[command(name = "palisade-sim", version)]
struct Args {
    /// Scenario file (TOML).
    #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
    scenario: Option<PathBuf>,
    /// A shipped preset instead of a file: `ci` or `standard`.
    #[arg(long)]
    preset: Option<String>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the scorecards as JSON.
    #[arg(long)]
    json: bool,
    /// Threads: 1 runs the subjects one after the other; 2 runs the engine beside the baselines.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = match (&args.scenario, &args.preset) {
        (Some(path), _) => Scenario::load(path)?,
        (None, Some(name)) => match PRESETS.iter().find(|(n, _)| n == name) {
            Some((_, text)) => Scenario::parse(text).with_context(|| format!("preset {name}"))?,
            None => bail!("unknown preset {name}; known: {}", PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")),
        },
        (None, None) => bail!("give --scenario FILE or --preset NAME"),
    };
    let started = Instant::now();
    let (results, timing) = sim::simulate(&scenario, args.seed, args.threads)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", sim::render_text(&results));
    }
    eprintln!("{}", sim::render_timing(&timing));
    eprintln!("run time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
