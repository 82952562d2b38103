//! Fleet benchmark: how fast an account's own machines protect each other, and what a fleet
//! waiting for that costs while nothing happens.
//!
//! A release `palisade-server` gets 1,000 machines in 100 accounts (10 each), made by the admin
//! API, logged in and enrolled with their account's key as CrowdSec does. Every machine holds a
//! long-poll on its account's pool (`GET /v1/blocklists/pool-<id>?since=…&wait=50`, renewed when
//! it answers), as `palisade watch` does. Then:
//!
//! 1. **Idle.** The server's CPU time (`/proc/PID/stat`, user + system) over a quiet window
//!    before any long-poll is held, and over the same window with all of them held (renewals
//!    included): the difference is what the idle fleet costs, in percent of one core (target
//!    under 1).
//! 2. **Delivery.** Every machine pushes one CrowdSec signal about an address of its own every
//!    `machines / rate` seconds (all of them concurrently, open loop), and each of the other
//!    nine machines of its account records when that address arrives on its long-poll. Latency
//!    is arrival minus the moment the push was acknowledged (0 if the entry arrived first);
//!    targets p50 ≤ 1 s, p99 ≤ 3 s. An address that has not arrived 10 s after the pushes stop
//!    counts as 10 s.
//!
//! Both backends when `DATABASE_URL` is set (SQLite otherwise, with a notice). The targets are
//! absolute (seconds and percent of a core), printed as `RATIO fleet.*` lines for
//! `tests/bench-quick`. A 5xx or a transport error is a wrong result: the program exits 1.
//!
//! Usage: `cargo run --release -p palisade-tests --bin bench_fleet [-- --quick]`
//! (`--quick`: 200 machines in 20 accounts, idle windows of 55 s and 10 s of pushes, what
//! `tests/bench-quick` runs). The idle windows are longer than a long-poll, so they include each
//! machine's renewals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_tests::bench::{Goal, ratio_line};
use palisade_tests::signals::{crowdsec_signal, public_ipv4};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

/// Machines per account.
const PER_ACCOUNT: usize = 10;
/// How long the server is asked to hold each long-poll.
const WAIT_SECS: u64 = 50;
/// How long an address may take to arrive before it counts as this late.
const GIVE_UP: Duration = Duration::from_secs(10);

struct Options {
    machines: usize,
    idle: Duration,
    delivery: Duration,
    /// Pushes per second, all machines together.
    rate: f64,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options { machines: 1000, idle: Duration::from_secs(100), delivery: Duration::from_secs(60), rate: 50.0 };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => {
                options = Options { machines: 200, idle: Duration::from_secs(55), delivery: Duration::from_secs(10), rate: 20.0 };
            }
            other => bail!("unknown argument {other:?}; usage: bench_fleet [--quick]"),
        }
    }
    Ok(options)
}

/// The server's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("no command name in /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11..13).context("short /proc/PID/stat")?.iter().map(|f| f.parse::<u64>().unwrap_or(0)).sum();
    // Counted in USER_HZ, which Linux fixes at 100 per second for user space.
    Ok(Duration::from_millis(ticks * 10))
}

/// Server CPU over `window`, in percent of one core.
async fn cpu_percent(pid: u32, window: Duration) -> anyhow::Result<f64> {
    let before = cpu_time(pid)?;
    tokio::time::sleep(window).await;
    let spent = cpu_time(pid)?.saturating_sub(before);
    Ok(100.0 * spent.as_secs_f64() / window.as_secs_f64())
}

/// The nearest-rank `q`-quantile of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One machine: its account, its login token and the pool it long-polls.
struct Machine {
    account: usize,
    token: String,
    pool: String,
}

/// What the long-polls and the pushers share.
#[derive(Default)]
struct Ledger {
    /// Address → (pushing machine, when its push was acknowledged).
    acked: HashMap<String, (usize, Instant)>,
    /// Address → when each receiving machine saw it arrive.
    arrived: HashMap<String, Vec<(usize, Instant)>>,
}

struct Fleet {
    base: String,
    http: reqwest::Client,
    machines: Vec<Machine>,
    ledger: Mutex<Ledger>,
    stop: AtomicBool,
    /// Long-poll answers received, and those with nothing new (renewals).
    answers: AtomicU64,
    empty_answers: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    held: AtomicUsize,
}

impl Fleet {
    fn failed(&self, what: &str, status: Option<reqwest::StatusCode>, error: Option<reqwest::Error>) {
        match (status, error) {
            (Some(status), _) if status.is_server_error() => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("{what}: {status}");
            }
            (Some(status), _) => eprintln!("{what}: unexpected {status}"),
            (None, Some(error)) => {
                self.transport_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("{what}: {error}");
            }
            (None, None) => {}
        }
    }

    /// The long-poll loop of machine `index`: from the pool's current cursor, until `stop`.
    async fn follow(self: Arc<Self>, index: usize) {
        let machine = &self.machines[index];
        let url = format!("{}v1/blocklists/{}", self.base, machine.pool);
        let mut cursor: Option<i64> = None;
        let mut counted = false;
        while !self.stop.load(Ordering::Relaxed) {
            let mut request = self.http.get(&url).bearer_auth(&machine.token).query(&[("format", "json")]);
            if let Some(since) = cursor {
                request = request.query(&[("since", since.to_string()), ("wait", WAIT_SECS.to_string())]);
                if !counted {
                    counted = true;
                    self.held.fetch_add(1, Ordering::Relaxed);
                }
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    self.failed("long-poll", None, Some(error));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let status = response.status();
            let seq = response.headers().get("x-palisade-seq").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            let body = match response.bytes().await {
                Ok(body) => body,
                Err(error) => {
                    self.failed("long-poll body", None, Some(error));
                    continue;
                }
            };
            let arrived_at = Instant::now();
            if !status.is_success() || seq.is_none() {
                self.failed("long-poll", Some(status), None);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if cursor.is_some() {
                self.answers.fetch_add(1, Ordering::Relaxed);
                let added: Vec<String> = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|delta| {
                        delta["added"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|e| e["value"].as_str().map(str::to_string)).collect())
                    })
                    .unwrap_or_default();
                if added.is_empty() {
                    self.empty_answers.fetch_add(1, Ordering::Relaxed);
                }
                let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
                for value in added {
                    ledger.arrived.entry(value).or_default().push((index, arrived_at));
                }
            }
            cursor = seq;
        }
    }

    /// Machine `index` pushes one signal about `address`; the acknowledgement is recorded.
    async fn push(&self, index: usize, address: String, variant: usize) {
        let machine = &self.machines[index];
        let ip = address.parse().unwrap_or(std::net::Ipv4Addr::new(45, 0, 0, 1));
        let item = crowdsec_signal(&format!("fleet-{index}"), ip, variant, OffsetDateTime::now_utc());
        let sent = self.http.post(format!("{}v2/signals", self.base)).bearer_auth(&machine.token).json(&[item]).send().await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let acked = Instant::now();
                drop(response.bytes().await);
                self.ledger.lock().unwrap_or_else(|e| e.into_inner()).acked.insert(address, (index, acked));
            }
            Ok(response) => self.failed("push", Some(response.status()), None),
            Err(error) => self.failed("push", None, Some(error)),
        }
    }
}

/// Makes `machines` machines in accounts of [`PER_ACCOUNT`], logged in and enrolled, each with
/// its account's pool name.
async fn setup(server: &ServerProcess, count: usize) -> anyhow::Result<Vec<Machine>> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
    let admin = server.admin_token()?;
    let base = server.url.clone();
    let accounts = count.div_ceil(PER_ACCOUNT);
    let mut keys = Vec::new();
    for a in 0..accounts {
        let name = format!("fleet-{a:03}");
        let reply = http.post(format!("{base}v1/admin/accounts")).bearer_auth(&admin).json(&json!({"name": name})).send().await?;
        ensure!(reply.status().is_success(), "create account {name}: {}", reply.status());
        let reply = http.post(format!("{base}v1/admin/accounts/{name}/enroll-keys")).bearer_auth(&admin).send().await?;
        ensure!(reply.status().is_success(), "enroll key of {name}: {}", reply.status());
        let created: Value = reply.json().await?;
        keys.push(created["key"].as_str().context("enroll key")?.to_string());
    }
    // Password hashing is bounded on the server; a few at a time keeps every one within its wait.
    let gate = Arc::new(Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for m in 0..count {
        let (http, admin, base, gate) = (http.clone(), admin.clone(), base.clone(), gate.clone());
        let key = keys[m / PER_ACCOUNT].clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let name = format!("fleet-{m:04}");
            let reply =
                http.post(format!("{base}v1/admin/machines")).bearer_auth(&admin).json(&json!({"name": name})).send().await?;
            ensure!(reply.status() == 201, "create {name}: {}", reply.status());
            let created: Value = reply.json().await?;
            let login = created["machine_id"].as_str().context("machine_id")?.to_string();
            let password = created["password"].as_str().context("password")?.to_string();
            let body = json!({"machine_id": login, "password": password, "scenarios": ["crowdsecurity/ssh-bf"]});
            let reply = http.post(format!("{base}v2/watchers/login")).json(&body).send().await?;
            ensure!(reply.status() == 200, "login {name}: {}", reply.status());
            let token = reply.json::<Value>().await?["token"].as_str().context("token")?.to_string();
            let body = json!({"attachment_key": key, "name": name, "tags": [], "overwrite": false});
            let reply = http.post(format!("{base}v2/watchers/enroll")).bearer_auth(&token).json(&body).send().await?;
            ensure!(reply.status().is_success(), "enroll {name}: {}", reply.status());
            let lists: Value = http.get(format!("{base}v1/blocklists")).bearer_auth(&token).send().await?.json().await?;
            let pool = lists
                .as_array()
                .and_then(|l| l.iter().find(|v| v["kind"] == "pool"))
                .and_then(|v| v["name"].as_str())
                .context("no pool among the machine's lists")?
                .to_string();
            Ok((m, Machine { account: m / PER_ACCOUNT, token, pool }))
        });
    }
    let mut made: Vec<Option<Machine>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (m, machine) = joined??;
        made[m] = Some(machine);
    }
    Ok(made.into_iter().flatten().collect())
}

/// What one backend's run measured.
struct Outcome {
    idle_base: f64,
    idle_held: f64,
    latencies: Vec<Duration>,
    missing: usize,
    pushes: usize,
}

async fn run(db: &TestDb, label: &str, options: &Options) -> anyhow::Result<Outcome> {
    // Every machine logs in from 127.0.0.1 at set-up and holds a connection from it: limits
    // that are there to refuse one address doing that are lifted.
    let env = [
        ("PALISADE_EDGE__LOGINS_PER_MINUTE_PER_ADDRESS", "1000000"),
        ("PALISADE_EDGE__LOGINS_PER_MINUTE_PER_NETWORK", "1000000"),
        ("PALISADE_EDGE__MAX_CONNECTIONS_PER_ADDRESS", "0"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let server = tokio::task::block_in_place(|| ServerProcess::start(db, ServerOptions { config_toml: String::new(), env }))?;
    let pid = server.pid().context("the server is not running")?;
    let started = Instant::now();
    let machines = setup(&server, options.machines).await?;
    println!(
        "{label}: {} machines in {} accounts ready in {:.1} s",
        machines.len(),
        machines.len().div_ceil(PER_ACCOUNT),
        started.elapsed().as_secs_f64()
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_base = cpu_percent(pid, options.idle).await?;
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(WAIT_SECS + 30)).build()?;
    let fleet = Arc::new(Fleet {
        base: server.url.clone(),
        http,
        machines,
        ledger: Mutex::new(Ledger::default()),
        stop: AtomicBool::new(false),
        answers: AtomicU64::new(0),
        empty_answers: AtomicU64::new(0),
        server_errors: AtomicU64::new(0),
        transport_errors: AtomicU64::new(0),
        held: AtomicUsize::new(0),
    });
    let followers: Vec<_> = (0..fleet.machines.len()).map(|m| tokio::spawn(fleet.clone().follow(m))).collect();
    let ready = Instant::now();
    while fleet.held.load(Ordering::Relaxed) < fleet.machines.len() {
        ensure!(ready.elapsed() < Duration::from_secs(60), "the long-polls did not all start within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers_before = fleet.answers.load(Ordering::Relaxed);
    let idle_held = cpu_percent(pid, options.idle).await?;
    let renewals = fleet.answers.load(Ordering::Relaxed) - answers_before;
    println!(
        "{label}: server CPU idle {idle_base:.2}% of a core without long-polls, {idle_held:.2}% with {} held ({renewals} answered meanwhile)",
        fleet.machines.len()
    );

    // Delivery: open loop, each push from the next machine, about an address never used before.
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = Instant::now() + options.delivery;
    let mut pushes = tokio::task::JoinSet::new();
    let mut n = 0usize;
    while Instant::now() < until {
        ticks.tick().await;
        let machine = (n * 7919) % fleet.machines.len();
        let address = public_ipv4(100_000 + n as u32).to_string();
        let fleet = fleet.clone();
        pushes.spawn(async move { fleet.push(machine, address, 0).await });
        n += 1;
    }
    while pushes.join_next().await.is_some() {}
    let drained = Instant::now();
    loop {
        let complete = {
            let ledger = fleet.ledger.lock().unwrap_or_else(|e| e.into_inner());
            ledger.acked.keys().all(|a| ledger.arrived.get(a).is_some_and(|r| r.len() >= PER_ACCOUNT - 1))
        };
        if complete || drained.elapsed() >= GIVE_UP {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.stop.store(true, Ordering::Relaxed);
    for follower in followers {
        follower.abort();
    }

    let ledger = fleet.ledger.lock().unwrap_or_else(|e| e.into_inner());
    let mut latencies = Vec::new();
    let mut missing = 0;
    for (address, (pusher, acked)) in &ledger.acked {
        let account = fleet.machines[*pusher].account;
        let seen: HashMap<usize, Instant> = ledger.arrived.get(address).map(|r| r.iter().copied().collect()).unwrap_or_default();
        for receiver in (0..fleet.machines.len()).filter(|&r| r != *pusher && fleet.machines[r].account == account) {
            match seen.get(&receiver) {
                Some(at) => latencies.push(at.saturating_duration_since(*acked)),
                None => {
                    missing += 1;
                    latencies.push(GIVE_UP);
                }
            }
        }
    }
    latencies.sort_unstable();
    let (server_errors, transport_errors) =
        (fleet.server_errors.load(Ordering::Relaxed), fleet.transport_errors.load(Ordering::Relaxed));
    ensure!(
        server_errors == 0 && transport_errors == 0,
        "{label}: {server_errors} 5xx answers and {transport_errors} transport errors"
    );
    Ok(Outcome { idle_base, idle_held, latencies, missing, pushes: ledger.acked.len() })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let mut backends = vec![("sqlite", TestDb::sqlite())];
    match TestDb::postgres().await {
        Some(db) => backends.push(("postgres", db)),
        None => println!("notice: DATABASE_URL is not set or PostgreSQL is unreachable; SQLite only"),
    }
    println!(
        "fleet: {} machines in accounts of {PER_ACCOUNT}, {:.0} pushes/s for {} s, idle windows of {} s, long-polls of {WAIT_SECS} s",
        options.machines,
        options.rate,
        options.delivery.as_secs(),
        options.idle.as_secs()
    );
    let mut ratios = Vec::new();
    for (label, db) in &backends {
        let outcome = run(db, label, &options).await?;
        let p50 = quantile(&outcome.latencies, 0.5).as_secs_f64();
        let p99 = quantile(&outcome.latencies, 0.99).as_secs_f64();
        let max = outcome.latencies.last().copied().unwrap_or_default().as_secs_f64();
        let idle_cost = (outcome.idle_held - outcome.idle_base).max(0.0);
        println!(
            "{label}: {} pushes, {} deliveries to the account's other machines, {} missing after {} s; push acknowledged → arrival p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s; idle long-polls cost {idle_cost:.2}% of a core",
            outcome.pushes,
            outcome.latencies.len(),
            outcome.missing,
            GIVE_UP.as_secs()
        );
        ratios.push(ratio_line(&format!("fleet.{label}.delivery_p50_s"), p50, Goal::AtMost, 1.0));
        ratios.push(ratio_line(&format!("fleet.{label}.delivery_p99_s"), p99, Goal::AtMost, 3.0));
        ratios.push(ratio_line(&format!("fleet.{label}.idle_cpu_percent"), idle_cost, Goal::AtMost, 1.0));
    }
    println!();
    for line in ratios {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
