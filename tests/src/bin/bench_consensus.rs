//! Benchmark: how fast the consensus worker digests stored signals, on SQLite and PostgreSQL,
//! to show it keeps up with ingestion. Loads N signals from M machines about K addresses into a
//! fresh database (through the store's bulk insert), then times the worker's steps from
//! watermark 0 until it has caught up, and prints signals/s.
//!
//! `cargo run --release -p palisade-tests --bin bench_consensus -- [--quick] [--signals N] [--backends sqlite,postgres]`
//! (PostgreSQL needs `DATABASE_URL`). `--quick` (20,000 signals from 200 machines about 5,000
//! addresses) is what `tests/bench-quick` runs; the worker's rate over the bulk insert's is also
//! printed as a `RATIO` line (target: at least 1, the worker keeps up with the store).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::Context;
use palisade_server::domain::net::origin_prefix;
use palisade_server::domain::signal::{SignalRules, parse_item};
use palisade_server::jobs::consensus::{ConsensusWorker, WorkerConfig};
use palisade_server::store::{CreatedBy, Enrichment, MachineKey, NewMachine, NewSignal, Origin};
use palisade_server::testing::TestDb;
use palisade_tests::bench::{Goal, ratio_line};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

struct Options {
    signals: usize,
    machines: usize,
    targets: usize,
    backends: Vec<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut options =
        Options { signals: 200_000, machines: 2_000, targets: 50_000, backends: vec!["sqlite".into(), "postgres".into()] };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--quick" {
            (options.signals, options.machines, options.targets) = (20_000, 200, 5_000);
            continue;
        }
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--signals" => options.signals = value.parse()?,
            "--machines" => options.machines = value.parse()?,
            "--targets" => options.targets = value.parse()?,
            "--backends" => options.backends = value.split(',').map(str::to_string).collect(),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

/// A deterministic, public-looking address for index `i` (inside 11.0.0.0/8 and 45.0.0.0/8).
fn address(base: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(base, 0, 0, 0)) | (i as u32 & 0x00ff_ffff)))
}

async fn run(db: &TestDb, o: &Options) -> anyhow::Result<(f64, f64)> {
    let store = palisade_server::store::open(&db.url).await?;
    store.migrate().await?;
    let now = OffsetDateTime::now_utc();
    let mut machines = Vec::with_capacity(o.machines);
    for m in 0..o.machines {
        let machine = NewMachine {
            machine_id: format!("bench-{m}"),
            password_hash: "x".into(),
            sensor: m % 500 == 0,
            created_by: CreatedBy::Operator,
            created_at: now,
        };
        machines.push(store.create_machine(&machine).await?);
    }
    let rules = SignalRules {
        now,
        max_age: time::Duration::days(60),
        max_clock_skew: time::Duration::hours(1),
        min_v4_prefix: 16,
        min_v6_prefix: 32,
    };
    let stamp = now.format(&Rfc3339)?;
    let load_start = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..o.signals {
        let machine: MachineKey = machines[(i * 7919) % o.machines];
        let target = address(45, (i * 104_729) % o.targets);
        let raw = json!({"scenario": "crowdsecurity/ssh-bf", "scenario_trust": "certified", "message": "bench",
            "source": {"scope": "Ip", "value": target.to_string()}, "start_at": stamp, "stop_at": format!("{stamp}"),
            "uuid": format!("{i}")});
        let origin = address(11, machine.0 as usize * 256);
        batch.push(NewSignal {
            machine,
            report: parse_item(&raw.to_string(), &rules).map_err(|r| anyhow::anyhow!("{}", r.message))?,
            origin: Origin { ip: origin, prefix: origin_prefix(origin), asn: Some(64_512 + (machine.0 as u32 % 300)) },
            enrichment: Enrichment::default(),
            received_at: now,
        });
        if batch.len() == 1000 {
            store.insert_signals(&batch).await?;
            batch.clear();
        }
    }
    store.insert_signals(&batch).await?;
    let load = load_start.elapsed().as_secs_f64();

    let config = WorkerConfig { use_asn: true, ..WorkerConfig::default() };
    let mut worker = ConsensusWorker::load(store.clone(), config).await?;
    let start = Instant::now();
    let mut processed = 0;
    loop {
        let step = worker.run_once(OffsetDateTime::now_utc()).await?;
        processed += step.processed;
        if step.processed == 0 {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(processed == o.signals, "processed {processed} of {}", o.signals);
    Ok((o.signals as f64 / elapsed, o.signals as f64 / load))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    println!(
        "consensus worker: {} signals from {} machines about {} addresses, batches of {}",
        o.signals,
        o.machines,
        o.targets,
        WorkerConfig::default().batch
    );
    println!("{:<10} {:>16} {:>22}", "backend", "worker signals/s", "bulk-insert signals/s");
    let mut ratios = Vec::new();
    for backend in &o.backends {
        let db = match backend.as_str() {
            "sqlite" => TestDb::sqlite(),
            "postgres" => match TestDb::postgres().await {
                Some(db) => db,
                None => continue,
            },
            other => anyhow::bail!("unknown backend {other}"),
        };
        let (worker_rate, insert_rate) = run(&db, &o).await?;
        println!("{:<10} {:>16.0} {:>22.0}", db.label(), worker_rate, insert_rate);
        ratios.push(ratio_line(&format!("consensus.{}", db.label()), worker_rate / insert_rate, Goal::AtLeast, 1.0));
    }
    for line in ratios {
        println!("{line}");
    }
    Ok(())
}
