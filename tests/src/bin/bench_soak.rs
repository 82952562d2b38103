//! Soak benchmark: a release `palisade-server` under 30 minutes of mixed traffic, sampled every
//! minute, to show that memory, file descriptors and latency stay flat once it is warm.
//!
//! The traffic, each activity at a fixed rate (open loop: a slow answer does not slow the
//! arrivals, up to 64 requests in flight per activity):
//! - pushes: 50-signal CrowdSec batches from 100 machines (one a sensor, so addresses get listed
//!   and the streams change); each machine reports from its own window of 200 addresses that
//!   overlaps its neighbours'. Before the traffic starts the sensor reports every address of
//!   that space once, so the community list is at its full size from the first sample: what is
//!   compared is the server's own cost over time, not a list that grows as the run goes on (the
//!   `listed` column shows the list's size at each sample);
//! - pulls: `GET /v3/decisions/stream` (one in ten with `startup=true`, the rest deltas);
//! - lookups: `GET /v2/smoke/{ip}` with an API key over the reported addresses and others;
//! - logins: `POST /v2/watchers/login` (argon2), each renewing one machine's token;
//! - console: an operator signs in with the admin token, then reads the operator page and an
//!   address page with the session cookie.
//!
//! Each sample prints the server's resident memory and open file descriptors and, per activity,
//! requests, p50 and p99 latency, 429s and 5xx. After the first fifth (warm-up), the mean of the
//! last third of the samples is compared with the mean of the first third: resident memory, file
//! descriptors and each activity's p99 must not grow (`RATIO soak.*` lines; targets 1.25× for
//! memory and descriptors, 2× for p99 on two shared cores). A 5xx or a transport error is a
//! wrong result: the program exits 1.
//!
//! Usage: `cargo run --release -p palisade-tests --bin bench_soak [-- --quick | --minutes N]
//! [--postgres]` (`--quick`: one minute sampled every 10 s, what `tests/bench-quick` runs;
//! `--postgres` uses `DATABASE_URL`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_tests::bench::{Goal, UNLIMITED_TIERS, open_loop, ratio_line};
use palisade_tests::signals::{crowdsec_signal, public_ipv4};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess};
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::RwLock;
use tokio::time::MissedTickBehavior;

const MACHINES: usize = 100;
/// Addresses each machine reports from; neighbours' windows overlap by three quarters.
const WINDOW: usize = 200;
const STRIDE: usize = 50;
const IN_FLIGHT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Activity {
    Push,
    Pull,
    Lookup,
    Login,
    Console,
}

impl Activity {
    const ALL: [Activity; 5] = [Activity::Push, Activity::Pull, Activity::Lookup, Activity::Login, Activity::Console];

    fn name(self) -> &'static str {
        match self {
            Activity::Push => "push",
            Activity::Pull => "pull",
            Activity::Lookup => "lookup",
            Activity::Login => "login",
            Activity::Console => "console",
        }
    }

    /// Requests per second.
    fn rate(self) -> f64 {
        match self {
            Activity::Push => 4.0,
            Activity::Pull => 8.0,
            Activity::Lookup => 50.0,
            Activity::Login => 0.5,
            Activity::Console => 0.5,
        }
    }
}

/// What one activity saw during one sample.
#[derive(Debug, Default)]
struct Seen {
    micros: Vec<u64>,
    limited: u64,
    server_errors: u64,
    transport_errors: u64,
    /// Ticks dropped because the activity already had `IN_FLIGHT` requests waiting.
    dropped: u64,
}

type Window = BTreeMap<Activity, Seen>;

/// One printed sample.
#[derive(Debug, Clone)]
struct Sample {
    rss_kib: u64,
    listed: f64,
    fds: u64,
    p99_ms: BTreeMap<Activity, f64>,
}

struct Options {
    total: Duration,
    every: Duration,
    postgres: bool,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options { total: Duration::from_secs(30 * 60), every: Duration::from_secs(60), postgres: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                options.total = Duration::from_secs(60);
                options.every = Duration::from_secs(10);
            }
            "--minutes" => {
                let minutes: u64 = args.next().context("--minutes needs a number")?.parse().context("--minutes")?;
                ensure!(minutes >= 3, "--minutes must be at least 3 (warm-up, then two thirds to compare)");
                options.total = Duration::from_secs(minutes * 60);
            }
            "--postgres" => options.postgres = true,
            other => bail!("unknown argument {other:?}; usage: bench_soak [--quick | --minutes N] [--postgres]"),
        }
    }
    Ok(options)
}

/// The value of a `/proc/PID/status` field, in its unit (kB for memory).
fn proc_status(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> anyhow::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// The `q`-quantile of sorted values (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Growth across a run: the mean of the last third of `values` (warm-up already removed) over
/// the mean of the first third. 1.0 is flat.
fn growth(values: &[f64]) -> f64 {
    let third = (values.len() / 3).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let first = mean(&values[..third]);
    let last = mean(&values[values.len() - third..]);
    if first > 0.0 { last / first } else { f64::NAN }
}

/// Machines, their current tokens, and what the traffic needs to reach the server.
struct World {
    base: String,
    http: reqwest::Client,
    /// Login and password of each machine.
    machines: Vec<(String, String)>,
    tokens: RwLock<Vec<String>>,
    api_key: String,
    admin_token: String,
    next: AtomicUsize,
    window: Mutex<Window>,
}

impl World {
    fn record(&self, activity: Activity, started: Instant, outcome: Result<reqwest::StatusCode, reqwest::Error>) {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let seen = window.entry(activity).or_default();
        match outcome {
            Ok(status) => {
                seen.micros.push(started.elapsed().as_micros() as u64);
                if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    seen.limited += 1;
                } else if status.is_server_error() {
                    seen.server_errors += 1;
                    eprintln!("{}: {status}", activity.name());
                }
            }
            Err(error) => {
                seen.transport_errors += 1;
                eprintln!("{}: {error}", activity.name());
            }
        }
    }

    fn tick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// One request of `activity`; returns its status (the body is read to the end).
    async fn act(&self, activity: Activity) -> Result<reqwest::StatusCode, reqwest::Error> {
        let n = self.tick();
        let machine = n % MACHINES;
        match activity {
            Activity::Push => {
                // One push in ten comes from the sensor (machine 0), which lists at once.
                let machine = if n.is_multiple_of(10) { 0 } else { machine };
                let token = self.tokens.read().await[machine].clone();
                let now = OffsetDateTime::now_utc();
                let items: Vec<_> = (0..50)
                    .map(|i| {
                        let address = machine * STRIDE + (n * 7 + i * 13) % WINDOW;
                        crowdsec_signal(&self.machines[machine].0, public_ipv4(address as u32), i, now)
                    })
                    .collect();
                let response = self.http.post(format!("{}v2/signals", self.base)).bearer_auth(token).json(&items).send().await?;
                finish(response).await
            }
            Activity::Pull => {
                let token = self.tokens.read().await[machine].clone();
                let startup = n.is_multiple_of(10);
                let url = format!("{}v3/decisions/stream?startup={startup}", self.base);
                finish(self.http.get(url).bearer_auth(token).send().await?).await
            }
            Activity::Lookup => {
                // Half reported addresses, half never seen.
                let address = if n.is_multiple_of(2) { (n * 31) % (MACHINES * STRIDE + WINDOW) } else { 1_000_000 + n % 100_000 };
                let url = format!("{}v2/smoke/{}", self.base, public_ipv4(address as u32));
                finish(self.http.get(url).header("x-api-key", &self.api_key).send().await?).await
            }
            Activity::Login => {
                let (login, password) = &self.machines[machine];
                let body = json!({"machine_id": login, "password": password, "scenarios": ["crowdsecurity/ssh-bf"]});
                let response = self.http.post(format!("{}v2/watchers/login", self.base)).json(&body).send().await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                if status.is_success()
                    && let Some(token) = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["token"].as_str().map(str::to_string))
                {
                    self.tokens.write().await[machine] = token;
                }
                Ok(status)
            }
            Activity::Console => {
                let origin = self.base.trim_end_matches('/');
                let response = self
                    .http
                    .post(format!("{}console/login", self.base))
                    .header(ORIGIN, origin)
                    .form(&[("token", self.admin_token.as_str())])
                    .send()
                    .await?;
                let status = response.status();
                let cookie = response
                    .headers()
                    .get(SET_COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .map(str::to_string);
                response.bytes().await?;
                let Some(cookie) = cookie else { return Ok(status) };
                let page = self.http.get(format!("{}console/operator", self.base)).header(COOKIE, &cookie).send().await?;
                let status = finish(page).await?;
                if !status.is_success() {
                    return Ok(status);
                }
                let ip = public_ipv4((n % (MACHINES * STRIDE)) as u32);
                finish(self.http.get(format!("{}console/ips?ip={ip}", self.base)).header(COOKIE, &cookie).send().await?).await
            }
        }
    }
}

async fn finish(response: reqwest::Response) -> Result<reqwest::StatusCode, reqwest::Error> {
    let status = response.status();
    response.bytes().await?;
    Ok(status)
}

/// Drives one activity at its rate until `until`, open loop, shifting its schedule when it falls
/// behind.
async fn drive(world: Arc<World>, activity: Activity, until: Instant) {
    let send = || {
        let world = world.clone();
        async move {
            let started = Instant::now();
            let outcome = world.act(activity).await;
            world.record(activity, started, outcome);
        }
    };
    let dropped = || world.window.lock().unwrap_or_else(|e| e.into_inner()).entry(activity).or_default().dropped += 1;
    open_loop(activity.rate(), until, IN_FLIGHT, MissedTickBehavior::Delay, send, dropped).await;
}

async fn setup(server: &ServerProcess) -> anyhow::Result<World> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let admin_token = server.admin_token()?;
    let mut machines = Vec::new();
    let mut tokens = Vec::new();
    for m in 0..MACHINES {
        let name = format!("soak-{m:03}");
        let body = json!({"name": name, "sensor": m == 0});
        let reply = http.post(format!("{}v1/admin/machines", server.url)).bearer_auth(&admin_token).json(&body).send().await?;
        ensure!(reply.status() == 201, "create {name}: {} {}", reply.status(), reply.text().await?);
        let created: serde_json::Value = reply.json().await?;
        let login = created["machine_id"].as_str().context("machine_id")?.to_string();
        let password = created["password"].as_str().context("password")?.to_string();
        let body = json!({"machine_id": login, "password": password, "scenarios": ["crowdsecurity/ssh-bf"]});
        let reply = http.post(format!("{}v2/watchers/login", server.url)).json(&body).send().await?;
        ensure!(reply.status() == 200, "login {name}: {}", reply.status());
        let answer: serde_json::Value = reply.json().await?;
        tokens.push(answer["token"].as_str().context("token")?.to_string());
        machines.push((login, password));
    }
    server.admin(&["account", "create", "soak"])?;
    let api_key = server.admin(&["api-key", "create", "--account", "soak"])?.trim().to_string();
    Ok(World {
        base: server.url.clone(),
        http,
        machines,
        tokens: RwLock::new(tokens),
        api_key,
        admin_token,
        next: AtomicUsize::new(0),
        window: Mutex::new(Window::new()),
    })
}

/// The community list's size on the server's `/metrics`.
async fn listed(http: &reqwest::Client, base: &str) -> anyhow::Result<f64> {
    let text = http.get(format!("{base}metrics")).send().await?.error_for_status()?.text().await?;
    Ok(palisade_tests::http::metric_sum(&text, "palisade_serving_list_entries{list=\"community\"}"))
}

/// The sensor (machine 0) reports every address the traffic uses, in 50-signal batches paced by
/// its ingest limit, and the community list is awaited until it holds them all.
async fn fill_list(world: &World) -> anyhow::Result<f64> {
    let space = MACHINES * STRIDE + WINDOW;
    let token = world.tokens.read().await[0].clone();
    let now = OffsetDateTime::now_utc();
    for first in (0..space).step_by(50) {
        let items: Vec<_> = (first..(first + 50).min(space))
            .map(|a| crowdsec_signal(&world.machines[0].0, public_ipv4(a as u32), a, now))
            .collect();
        loop {
            let reply = world.http.post(format!("{}v2/signals", world.base)).bearer_auth(&token).json(&items).send().await?;
            match reply.status() {
                reqwest::StatusCode::TOO_MANY_REQUESTS => tokio::time::sleep(Duration::from_millis(500)).await,
                status if status.is_success() => break,
                status => bail!("filling the list: HTTP {status} {}", reply.text().await?),
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count = listed(&world.http, &world.base).await?;
        if count >= space as f64 {
            return Ok(count);
        }
        ensure!(Instant::now() < deadline, "the community list holds {count} of the {space} addresses after 120 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let db = if options.postgres {
        TestDb::postgres().await.context("--postgres needs DATABASE_URL and a reachable PostgreSQL")?
    } else {
        TestDb::sqlite()
    };
    // Every machine logs in from 127.0.0.1 at set-up, a burst the per-address login limit is
    // there to refuse; the traffic itself stays far below it.
    let env = ["PALISADE_EDGE__LOGINS_PER_MINUTE_PER_ADDRESS", "PALISADE_EDGE__LOGINS_PER_MINUTE_PER_NETWORK"]
        .map(|key| (key.to_string(), "100000".to_string()))
        .to_vec();
    let server_options = ServerOptions { config_toml: UNLIMITED_TIERS.to_string(), env };
    let server = tokio::task::block_in_place(|| ServerProcess::start(&db, server_options))?;
    let pid = server.pid().context("the server is not running")?;
    let world = Arc::new(tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(setup(&server)))?);
    let full = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(fill_list(&world)))?;
    println!(
        "soak: {} on {}, {} machines, community list filled to {full} entries, {:.0} s sampled every {} s, rates per second: {}",
        server.url,
        if options.postgres { "PostgreSQL" } else { "SQLite" },
        MACHINES,
        options.total.as_secs_f64(),
        options.every.as_secs(),
        Activity::ALL.iter().map(|a| format!("{} {}", a.name(), a.rate())).collect::<Vec<_>>().join(", ")
    );
    println!();
    let mut header = String::from("| s | RSS MiB | fds | listed |");
    let mut rule = String::from("|---:|---:|---:|---:|");
    for activity in Activity::ALL {
        header.push_str(&format!(" {0} n | {0} p50 ms | {0} p99 ms | {0} 429 |", activity.name()));
        rule.push_str("---:|---:|---:|---:|");
    }
    println!("{header}");
    println!("{rule}");

    let start = Instant::now();
    let until = start + options.total;
    let drivers: Vec<_> = Activity::ALL.iter().map(|&a| tokio::spawn(drive(world.clone(), a, until))).collect();
    let mut samples = Vec::new();
    let (mut server_errors, mut transport_errors, mut dropped) = (0, 0, 0);
    let mut next = start + options.every;
    while next <= until + Duration::from_millis(10) {
        tokio::time::sleep_until(next.into()).await;
        next += options.every;
        let mut window = std::mem::take(&mut *world.window.lock().unwrap_or_else(|e| e.into_inner()));
        let mut sample = Sample {
            rss_kib: proc_status(pid, "VmRSS:")?,
            listed: listed(&world.http, &world.base).await?,
            fds: open_fds(pid)?,
            p99_ms: BTreeMap::new(),
        };
        let mut line = format!(
            "| {:.0} | {:.1} | {} | {} |",
            start.elapsed().as_secs_f64(),
            sample.rss_kib as f64 / 1024.0,
            sample.fds,
            sample.listed
        );
        for activity in Activity::ALL {
            let mut seen = window.remove(&activity).unwrap_or_default();
            seen.micros.sort_unstable();
            server_errors += seen.server_errors;
            transport_errors += seen.transport_errors;
            dropped += seen.dropped;
            let p99 = ms(quantile(&seen.micros, 0.99));
            line.push_str(&format!(
                " {} | {:.1} | {:.1} | {} |",
                seen.micros.len(),
                ms(quantile(&seen.micros, 0.5)),
                p99,
                seen.limited
            ));
            sample.p99_ms.insert(activity, p99);
        }
        println!("{line}");
        samples.push(sample);
    }
    for driver in drivers {
        driver.await?;
    }
    println!();
    println!(
        "5xx answers: {server_errors}, transport errors: {transport_errors}, arrivals dropped for {IN_FLIGHT} in flight: {dropped}"
    );

    let warm = &samples[(samples.len() / 5).max(1)..];
    let rss = growth(&warm.iter().map(|s| s.rss_kib as f64).collect::<Vec<_>>());
    let fds = growth(&warm.iter().map(|s| s.fds as f64).collect::<Vec<_>>());
    let listed = growth(&warm.iter().map(|s| s.listed).collect::<Vec<_>>());
    println!(
        "after warm-up ({} samples), last third over first third: RSS {rss:.2}×, fds {fds:.2}×, community list {listed:.2}×",
        warm.len()
    );
    let mut ratios =
        vec![ratio_line("soak.rss_growth", rss, Goal::AtMost, 1.25), ratio_line("soak.fd_growth", fds, Goal::AtMost, 1.25)];
    for activity in Activity::ALL {
        let p99 = growth(&warm.iter().map(|s| s.p99_ms[&activity]).collect::<Vec<_>>());
        println!("  {} p99 {p99:.2}×", activity.name());
        ratios.push(ratio_line(&format!("soak.{}.p99_growth", activity.name()), p99, Goal::AtMost, 2.0));
    }
    println!();
    for line in ratios {
        println!("{line}");
    }
    ensure!(server_errors == 0 && transport_errors == 0, "{server_errors} 5xx answers and {transport_errors} transport errors");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), 50);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
        assert_eq!(quantile(&[], 0.99), 0);
        assert_eq!(quantile(&[7], 0.01), 7);
    }

    #[test]
    fn growth_compares_the_last_third_with_the_first() {
        assert!((growth(&[10.0, 10.0, 10.0, 10.0, 10.0, 10.0]) - 1.0).abs() < 1e-9);
        assert!((growth(&[10.0, 10.0, 15.0, 15.0, 20.0, 20.0]) - 2.0).abs() < 1e-9);
        assert!((growth(&[4.0, 8.0]) - 2.0).abs() < 1e-9);
        assert!(growth(&[0.0, 0.0, 1.0]).is_nan());
    }
}
