//! Benchmark: applying a 100,000-entry list to an nftables set through the agent's apply path
//! (allowlist filter, plan, render, one `nft -f` transaction) against the baseline of `nft -f`
//! on a pre-rendered file of the same set, both inside a fresh network namespace, best of N each,
//! alternating. Also times a delta (1,000 added, 1,000 removed) for information. Needs root and
//! `nft`; the ratio must stay at or below 1.5 (with `--quick`, 20,000 entries, best of 3, what
//! `tests/bench-quick` runs, it is only reported, as a `RATIO` line).
//!
//! `cargo run --release -p palisade-tests --bin bench_apply -- [--quick] [--entries N] [--runs N]`

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ipnet::IpNet;
use palisade::agent::apply::nftables::Nftables;
use palisade::agent::apply::{self, Backend};
use palisade::agent::safety::{Allowlist, filter};
use palisade_tests::bench::{Goal, ratio_line};
use palisade_tests::netns::{self, NetNs};

/// Entry `i`: distinct public addresses spread over 11.0.0.0/8.
fn address(i: u32) -> IpNet {
    IpNet::from(IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(11, 0, 0, 0)) + i.wrapping_mul(97) % (1 << 24))))
}

fn main() -> anyhow::Result<()> {
    let mut entries = 100_000u32;
    let mut runs = 5usize;
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--quick" {
            (entries, runs, quick) = (20_000, 3, true);
            continue;
        }
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--entries" => entries = value.parse()?,
            "--runs" => runs = value.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    if let Some(why) = netns::unavailable() {
        bail!("bench_apply needs a network namespace and nft: {why}");
    }
    let ns = NetNs::create()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let set: BTreeSet<IpNet> = (0..entries).map(address).collect();
    ensure!(set.len() == entries as usize, "addresses are distinct");
    let nft = vec!["ip".to_string(), "netns".into(), "exec".into(), ns.name.clone(), "nft".into()];
    let renderer = Nftables::new("palisade", nft.clone());
    let backend = Backend::Nftables(Nftables::new("palisade", nft));
    let allowlist = Allowlist::special();

    // The baseline's file: the same full transaction, rendered beforehand.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("full.nft");
    std::fs::write(&file, renderer.render_full(&set))?;
    let baseline = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let output = Command::new("ip").args(["netns", "exec", &ns.name, "nft", "-f"]).arg(&file).output()?;
        let elapsed = started.elapsed();
        ensure!(output.status.success(), "nft -f: {}", String::from_utf8_lossy(&output.stderr));
        Ok(elapsed)
    };
    let agent = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let filtered = filter(&set, &allowlist, usize::MAX);
        let plan = apply::plan(None, filtered.kept);
        runtime.block_on(backend.apply(&plan))?;
        Ok(started.elapsed())
    };
    // Warm-up: creates the table so every measured run replaces a full set.
    baseline()?;
    let (mut best_baseline, mut best_agent) = (Duration::MAX, Duration::MAX);
    for run in 0..runs {
        let (b, a) = if run % 2 == 0 {
            let b = baseline()?;
            (b, agent()?)
        } else {
            let a = agent()?;
            (baseline()?, a)
        };
        println!("run {}: nft -f {:>8.1} ms   agent {:>8.1} ms", run + 1, ms(b), ms(a));
        best_baseline = best_baseline.min(b);
        best_agent = best_agent.min(a);
    }
    let members = ns.set_elements("palisade", "blocklist_v4")?.len();
    ensure!(members == entries as usize, "the set holds {members} entries, not {entries}");

    // A delta for information: 1,000 removed, 1,000 added.
    let applied: BTreeSet<IpNet> = set.clone();
    let mut next: BTreeSet<IpNet> = set.iter().skip(1000).copied().collect();
    next.extend((entries..entries + 1000).map(address));
    let delta = apply::plan(Some(&applied), next);
    let started = Instant::now();
    runtime.block_on(backend.apply(&delta))?;
    let delta_time = started.elapsed();

    let ratio = best_agent.as_secs_f64() / best_baseline.as_secs_f64();
    println!("entries: {entries}, best of {runs}");
    println!("nft -f pre-rendered file: {:.1} ms", ms(best_baseline));
    println!("agent apply path:         {:.1} ms", ms(best_agent));
    println!("ratio agent / nft -f:     {ratio:.2} (limit 1.50)");
    println!("delta (+1000 -1000):      {:.1} ms", ms(delta_time));
    println!("{}", ratio_line("apply.nftables_vs_nft_f", ratio, Goal::AtMost, 1.5));
    ensure!(quick || ratio <= 1.5, "the agent's apply path is {ratio:.2}x nft -f, over 1.5x");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
