//! Network benchmark: the server CPU a network of CrowdSec machines costs per machine-day at
//! CrowdSec's own cadence, and the largest network one server core sustains with p99 under 1 s
//! on every route.
//!
//! The cadence of one CrowdSec 1.4.6 machine (`../shared/protocol/crowdsec-capi.md`, and the
//! constants below), per day:
//! - **login**: `POST /v2/watchers/login` (argon2id, as the server is configured) when its JWT is
//!   within a minute of expiry: `86,400 / (token lifetime − 60 s)` a day, the lifetime read from
//!   the server's own login answer (`expire`);
//! - **pull**: `GET /v2/decisions/stream?` every 2 hours (12 a day; `startup=true` only when the
//!   process starts, not counted);
//! - **metrics**: `POST /v2/metrics/` every 30 minutes (48 a day);
//! - **push**: `POST /v2/signals` in batches of 50, [`SIGNALS_PER_DAY`] signals a day (6 batches);
//!   CrowdSec's ticker sends whatever accumulated every 30 s, so a quiet machine sends smaller
//!   batches more often: a single-signal push is measured too and reported as the other bound;
//! - **consensus**: the worker's CPU per stored signal, times [`SIGNALS_PER_DAY`];
//! - **lookup**: `GET /v2/smoke/{ip}` with an API key, [`LOOKUPS_PER_DAY`] per machine-day (API
//!   consumers, not machines, drive lookups; this rate is a stated assumption).
//!
//! A day cannot run in real time, so each activity runs in its own phase, as fast as the server
//! takes it (a few requests in flight), against a release server with the consensus worker off
//! (server A); its CPU time (`/proc/PID/stat`, user + system) before and after, less its idle
//! rate, divided by the requests, is the CPU per request. A second release server (B) on the same
//! database runs the consensus worker and nothing else is sent to it: its CPU from the first push
//! until the worker's watermark reaches the last stored signal, less its idle rate, divided by the
//! signals, is the worker's CPU per signal. CPU per machine-day = Σ CPU per operation × daily
//! operations; machines per core = 86,400 core-seconds / CPU per machine-day. On PostgreSQL the
//! database's own CPU (every `postgres` process) and Redis's (every `redis-server`) are reported
//! beside it, not counted in the core.
//!
//! Then the verification: server A stops, and the deployment serves a mixed load at a network's
//! real request rate for a fixed time, open loop (a slow answer does not slow the arrivals), all
//! of it pinned to CPU 0 with `taskset` while this program moves to the other CPUs. On SQLite the
//! deployment is one replica, B (worker on). On PostgreSQL it is two replicas on the same
//! database: B and a new server C (worker off), the requests spread round-robin between them, one
//! by one, as a load balancer without sticky sessions would; the server CPU of a phase is the sum
//! of both. The load runs first at the CPU-derived capacity, then a quarter smaller each time
//! until every route holds (p99 under 1 s, no failure, nothing dropped), then at the
//! 50,000-machine target if it was not among them. The registered machines stand in for the
//! network: each carries `N / machines` machines' share of the rate (the time compression). The
//! largest network that held is what one core sustains; the CPU-derived figure is its upper bound
//! (a core at 100%).
//!
//! On PostgreSQL every server of the run (A included, so the per-request costs are those of the
//! deployment) shares lookup rate limits through Redis: `REDIS_URL` names the server, and the run
//! uses its logical database [`REDIS_DB`], flushed before and after, so it neither sees nor
//! leaves other programs' counters (two runs at once on one Redis would share it; publish and
//! subscribe channels are not per database, so list-change notifications of other Palisade
//! servers on that Redis reach these ones). Without `REDIS_URL` the PostgreSQL leg runs one
//! replica without Redis after a notice, or fails under `CI=true`. Logins are usable on either
//! replica: every server is given the same JWT key.
//!
//! Machines register (`POST /v2/watchers`) and log in up front, CrowdSec's way; registration is
//! not counted. One sensor machine (made by the admin API) reports a thousand addresses first, so
//! the served lists are not empty. Pushed addresses come from a pool of [`ADDRESS_POOL`], so
//! several machines report the same attacker, as in a real network. SQLite and, when
//! `DATABASE_URL` is set, PostgreSQL (with `REDIS_URL`, two serving replicas). A 5xx or a
//! transport error in a measuring phase is a wrong result (the program exits 1); in a mixed
//! phase it is an overloaded server (a 503 when the hashing slots stay busy), so that network did
//! not hold.
//!
//! Usage: `cargo run --release -p palisade-tests --bin bench_network [-- --quick] [--backend sqlite|pg]`
//! (`--quick`: 30 machines, small phases, mixed phases of 5 s, at most three per backend; what
//! `tests/bench-quick` runs), with `DATABASE_URL` and `REDIS_URL` set for the PostgreSQL leg.
//! Prints `RATIO network.machines_per_core_{sqlite,pg}` (the largest network that held; target
//! ≥ 50,000) and `RATIO network.{sqlite,pg}.cpu_derived_machines`.

use std::collections::BTreeMap;
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_server::config::Backend;
use palisade_tests::bench::{Goal, UNLIMITED_TIERS, open_loop, ratio_line};
use palisade_tests::http::metric_sum;
use palisade_tests::signals::{crowdsec_signal, public_ipv4};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{RwLock, Semaphore};
use tokio::time::MissedTickBehavior;

/// Signals one machine pushes a day. A machine facing the internet with the ssh collection
/// raises from a few to a few hundred alerts a day; the upper end errs on the costly side.
const SIGNALS_PER_DAY: f64 = 300.0;
/// Signals per push, CrowdSec's chunk size.
const BATCH: usize = 50;
/// `/v2/smoke` lookups per machine-day (a stated assumption: lookups grow with API consumers).
const LOOKUPS_PER_DAY: f64 = 100.0;
/// Stream pulls a day: CrowdSec 1.4.6 pulls every 2 hours.
const PULLS_PER_DAY: f64 = 12.0;
/// Metrics pushes a day: every 30 minutes.
const METRICS_PER_DAY: f64 = 48.0;
/// CrowdSec logs in again this long before its token expires.
const RENEW_BEFORE_SECS: f64 = 60.0;
/// Distinct attackers the network's pushes name.
const ADDRESS_POOL: usize = 20_000;
/// The target: machines one core sustains.
const TARGET_MACHINES: f64 = 50_000.0;
/// Requests of one activity waiting at once in the mixed phase before arrivals are dropped (and
/// counted: a dropped arrival is reported as a failed verification).
const IN_FLIGHT: usize = 512;
/// A shared JWT key, so the tokens one server issues are valid on the others.
const JWT_SECRET: &str = "bench-network-jwt-secret-0123456789abcdef";
/// The logical database of `REDIS_URL`'s server the PostgreSQL replicas share: the last of
/// Redis's default sixteen, which the test suites (database 0, in namespaces) do not use.
const REDIS_DB: u32 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Activity {
    Login,
    Pull,
    Metrics,
    Push,
    PushOne,
    Lookup,
}

impl Activity {
    /// What the mixed phase sends (the single-signal push is a bound, not part of the cadence).
    const MIXED: [Activity; 5] = [Activity::Login, Activity::Pull, Activity::Metrics, Activity::Push, Activity::Lookup];

    fn name(self) -> &'static str {
        match self {
            Activity::Login => "login",
            Activity::Pull => "pull",
            Activity::Metrics => "metrics",
            Activity::Push => "push",
            Activity::PushOne => "push_1",
            Activity::Lookup => "lookup",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Activity::Login => "POST /v2/watchers/login",
            Activity::Pull => "GET /v2/decisions/stream",
            Activity::Metrics => "POST /v2/metrics/",
            Activity::Push => "POST /v2/signals (50)",
            Activity::PushOne => "POST /v2/signals (1)",
            Activity::Lookup => "GET /v2/smoke/{ip}",
        }
    }

    /// Times one machine does it a day, for a token lifetime of `ttl` seconds.
    fn per_day(self, ttl: f64) -> f64 {
        match self {
            Activity::Login => 86_400.0 / (ttl - RENEW_BEFORE_SECS),
            Activity::Pull => PULLS_PER_DAY,
            Activity::Metrics => METRICS_PER_DAY,
            Activity::Push => SIGNALS_PER_DAY / BATCH as f64,
            Activity::PushOne => SIGNALS_PER_DAY,
            Activity::Lookup => LOOKUPS_PER_DAY,
        }
    }

    /// Signals one request carries.
    fn signals(self) -> usize {
        match self {
            Activity::Push => BATCH,
            Activity::PushOne => 1,
            _ => 0,
        }
    }
}

struct Options {
    machines: usize,
    /// Requests of each activity in its own phase, as a multiple of the machines (lookups ×10).
    rounds: usize,
    mixed: Duration,
    /// Mixed phases at most in the search down from the CPU-derived capacity.
    steps: usize,
    /// Verify at the target as well as at the derived capacity.
    verify_target: bool,
    /// Only this backend (`sqlite` or `pg`); both when `None`.
    only: Option<String>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options =
        Options { machines: 1000, rounds: 3, mixed: Duration::from_secs(40), steps: 5, verify_target: true, only: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                options =
                    Options { machines: 30, rounds: 2, mixed: Duration::from_secs(5), steps: 3, verify_target: false, ..options }
            }
            "--backend" => {
                let only = args.next().context("--backend needs sqlite or pg")?;
                ensure!(only == "sqlite" || only == "pg", "--backend is sqlite or pg, not {only:?}");
                options.only = Some(only);
            }
            other => bail!("unknown argument {other:?}; usage: bench_network [--quick] [--backend sqlite|pg]"),
        }
    }
    Ok(options)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    proc_stat_cpu(&stat).context("unexpected /proc/PID/stat format")
}

/// utime + stime of one `/proc/PID/stat` line, in seconds.
fn proc_stat_cpu(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name, which may itself contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime (fields 14 and 15), in USER_HZ ticks, which Linux fixes at 100 per second.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// CPU seconds all `postgres` processes on this machine have used so far (0 without any).
fn postgres_cpu_seconds() -> f64 {
    named_cpu_seconds("postgres")
}

/// CPU seconds all `redis-server` processes on this machine have used so far (0 without any).
fn redis_cpu_seconds() -> f64 {
    named_cpu_seconds("redis-server")
}

/// CPU seconds all processes whose command name is `name` have used so far (0 without any).
fn named_cpu_seconds(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.split_once('(').and_then(|(_, rest)| rest.split_once(')')).is_some_and(|(comm, _)| comm == name))
        .filter_map(|stat| proc_stat_cpu(&stat))
        .sum()
}

/// The nearest-rank `q`-quantile of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Pins every thread of `pid` to the given CPU list (`taskset` syntax, e.g. `0` or `1-3`).
fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let output = Command::new("taskset").args(["-a", "-p", "-c", cpus, &pid.to_string()]).output().context("taskset")?;
    ensure!(output.status.success(), "taskset -c {cpus} {pid}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// What one activity saw: latencies of the answered requests and the failures.
#[derive(Debug, Default)]
struct Seen {
    latencies: Vec<Duration>,
    server_errors: u64,
    transport_errors: u64,
    other: u64,
    dropped: u64,
}

/// The registered machines, their tokens, and where requests go.
struct World {
    /// Base URLs of the serving replicas, each ending in `/`.
    bases: std::sync::RwLock<Vec<String>>,
    http: reqwest::Client,
    /// Login and password of each machine.
    machines: Vec<(String, String)>,
    tokens: RwLock<Vec<String>>,
    api_key: String,
    next: AtomicU64,
    seen: Mutex<BTreeMap<Activity, Seen>>,
}

impl World {
    /// The URL of `path` on the replica that serves request number `n`.
    fn url(&self, n: usize, path: &str) -> String {
        let bases = self.bases.read().unwrap_or_else(|e| e.into_inner());
        format!("{}{path}", bases[replica(n, self.machines.len(), bases.len())])
    }

    fn record(&self, activity: Activity, started: Instant, outcome: Result<reqwest::StatusCode, reqwest::Error>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = seen.entry(activity).or_default();
        match outcome {
            // The CTI answers 404 for an address it knows nothing about, as CrowdSec's does.
            Ok(status) if status.is_success() || (activity == Activity::Lookup && status == reqwest::StatusCode::NOT_FOUND) => {
                seen.latencies.push(started.elapsed());
            }
            Ok(status) if status.is_server_error() => {
                seen.server_errors += 1;
                eprintln!("{}: {status}", activity.name());
            }
            Ok(status) => {
                seen.other += 1;
                eprintln!("{}: unexpected {status}", activity.name());
            }
            Err(error) => {
                seen.transport_errors += 1;
                eprintln!("{}: {error}", activity.name());
            }
        }
    }

    fn take(&self) -> BTreeMap<Activity, Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// One request of `activity`; returns its status (the body read to the end).
    async fn act(&self, activity: Activity) -> Result<reqwest::StatusCode, reqwest::Error> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let machine = n % self.machines.len();
        match activity {
            Activity::Login => {
                let (login, password) = &self.machines[machine];
                let body = json!({"machine_id": login, "password": password, "scenarios": ["crowdsecurity/ssh-bf", "crowdsecurity/ssh-slow-bf"]});
                let response = self.http.post(self.url(n, "v2/watchers/login")).json(&body).send().await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                if let Some(token) =
                    serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v["token"].as_str().map(str::to_string))
                {
                    self.tokens.write().await[machine] = token;
                }
                Ok(status)
            }
            Activity::Pull => {
                let token = self.tokens.read().await[machine].clone();
                finish(self.http.get(self.url(n, "v2/decisions/stream?")).bearer_auth(token).send().await?).await
            }
            Activity::Metrics => {
                let token = self.tokens.read().await[machine].clone();
                let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
                let body = json!({
                    "apil_version": "v1.4.6-6~deb12u1+b1-linux-debian",
                    "bouncers": [{"custom_name": "firewall-bouncer", "last_pull": now}],
                    "machines": [{"last_push": now, "last_update": now, "name": self.machines[machine].0, "version": "v1.4.6-6~deb12u1+b1-linux-debian"}]
                });
                finish(self.http.post(self.url(n, "v2/metrics/")).bearer_auth(token).json(&body).send().await?).await
            }
            Activity::Push | Activity::PushOne => {
                let token = self.tokens.read().await[machine].clone();
                let now = OffsetDateTime::now_utc();
                let items: Vec<_> = (0..activity.signals())
                    .map(|i| {
                        // A pseudo-random attacker of the pool, so machines share attackers.
                        let address = ((n * BATCH + i) as u64).wrapping_mul(2_654_435_761) % ADDRESS_POOL as u64;
                        crowdsec_signal(&self.machines[machine].0, public_ipv4(address as u32), i, now)
                    })
                    .collect();
                finish(self.http.post(self.url(n, "v2/signals")).bearer_auth(token).json(&items).send().await?).await
            }
            Activity::Lookup => {
                // Half pushed addresses, half never seen.
                let address = if n.is_multiple_of(2) { n % ADDRESS_POOL } else { 1_000_000 + n % 100_000 };
                let url = self.url(n, &format!("v2/smoke/{}", public_ipv4(address as u32)));
                finish(self.http.get(url).header("x-api-key", &self.api_key).send().await?).await
            }
        }
    }
}

async fn finish(response: reqwest::Response) -> Result<reqwest::StatusCode, reqwest::Error> {
    let status = response.status();
    response.bytes().await?;
    Ok(status)
}

/// Which of `replicas` serves request number `n` (0-based), of the machine `n % machines`:
/// consecutive requests alternate, as a round-robin balancer sends them, and each machine's
/// successive requests go round the replicas too. Taking `n % replicas` alone would send every
/// request of a machine to one replica whenever `machines` is a multiple of `replicas` (sticky
/// sessions, which a balancer does not promise).
fn replica(n: usize, machines: usize, replicas: usize) -> usize {
    (n % machines + n / machines) % replicas
}

/// Sends `count` requests of `activity`, `concurrency` at a time, and waits for them all.
async fn burst(world: &Arc<World>, activity: Activity, count: usize, concurrency: usize) {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let Ok(permit) = gate.clone().acquire_owned().await else { break };
        let world = world.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let outcome = world.act(activity).await;
            world.record(activity, started, outcome);
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Sends `activity` at `rate` per second until `until`, open loop, catching up on ticks it fell
/// behind on.
async fn drive(world: Arc<World>, activity: Activity, rate: f64, until: Instant) {
    let send = || {
        let world = world.clone();
        async move {
            let started = Instant::now();
            let outcome = world.act(activity).await;
            world.record(activity, started, outcome);
        }
    };
    let dropped = || world.seen.lock().unwrap_or_else(|e| e.into_inner()).entry(activity).or_default().dropped += 1;
    open_loop(rate, until, IN_FLIGHT, MissedTickBehavior::Burst, send, dropped).await;
}

/// Whether the consensus worker's watermark has reached the last stored signal.
async fn worker_caught_up(backend: Backend, url: &str) -> anyhow::Result<bool> {
    let query = "SELECT (SELECT signal_id FROM consensus_watermark WHERE id = 1) >= (SELECT coalesce(max(id), 0) FROM signals)";
    Ok(match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect_with(&SqliteConnectOptions::from_str(url)?.read_only(true)).await?;
            sqlx::query_scalar(query).fetch_one(&mut conn).await?
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query_scalar(query).fetch_one(&mut conn).await?
        }
    })
}

/// Waits (polling every 100 ms, at most 120 s) until the worker has processed every signal.
async fn wait_for_worker(backend: Backend, url: &str) -> anyhow::Result<()> {
    wait_for_worker_within(backend, url, Duration::from_secs(120)).await.map(drop)
}

/// [`wait_for_worker`] with its own limit; returns how long the wait took.
async fn wait_for_worker_within(backend: Backend, url: &str, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !worker_caught_up(backend, url).await? {
        ensure!(started.elapsed() < limit, "the consensus worker did not catch up within {} s", limit.as_secs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started.elapsed())
}

/// Registers `count` machines the CrowdSec way and logs each in; returns the world with the
/// token lifetime the server announced, in seconds.
async fn setup(server: &ServerProcess, count: usize) -> anyhow::Result<(World, f64)> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let base = server.url.clone();
    let admin = server.admin_token()?;
    server.admin(&["account", "create", "network"])?;
    let api_key = server.admin(&["api-key", "create", "--account", "network"])?.trim().to_string();

    // Registration and the first login hash a password each: a few at a time.
    let gate = Arc::new(Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for m in 0..count {
        let (http, base, gate) = (http.clone(), base.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            // CrowdSec's machine ids are 48 characters.
            let login = format!("{m:08x}{}", "0123456789abcdef0123456789abcdef01234567");
            let password = format!("network-password-{m:08}-0123456789abcdef");
            let reply =
                http.post(format!("{base}v2/watchers")).json(&json!({"machine_id": login, "password": password})).send().await?;
            ensure!(reply.status().is_success(), "register {login}: {} {}", reply.status(), reply.text().await?);
            let body = json!({"machine_id": login, "password": password, "scenarios": []});
            let reply = http.post(format!("{base}v2/watchers/login")).json(&body).send().await?;
            ensure!(reply.status() == 200, "login {login}: {}", reply.status());
            let answer: Value = reply.json().await?;
            let token = answer["token"].as_str().context("token")?.to_string();
            // The lifetime the server gives a token, as CrowdSec reads it: `expire` less now.
            let expire = OffsetDateTime::parse(answer["expire"].as_str().context("expire")?, &Rfc3339)?;
            let lifetime = (expire - OffsetDateTime::now_utc()).as_seconds_f64();
            Ok((m, login, password, token, lifetime))
        });
    }
    let mut made = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        made.push(joined??);
    }
    made.sort_by_key(|(m, ..)| *m);
    let ttl = made.iter().map(|(.., lifetime)| *lifetime).fold(0.0, f64::max).round();
    ensure!(ttl > RENEW_BEFORE_SECS, "token lifetime {ttl} s is shorter than CrowdSec's renewal margin");

    // A sensor lists what it reports at once, so the served lists hold something.
    let reply = http
        .post(format!("{base}v1/admin/machines"))
        .bearer_auth(&admin)
        .json(&json!({"name": "sensor", "sensor": true}))
        .send()
        .await?;
    ensure!(reply.status() == 201, "create the sensor: {}", reply.status());
    let created: Value = reply.json().await?;
    let body =
        json!({"machine_id": created["machine_id"], "password": created["password"], "scenarios": ["crowdsecurity/ssh-bf"]});
    let reply = http.post(format!("{base}v2/watchers/login")).json(&body).send().await?;
    ensure!(reply.status() == 200, "sensor login: {}", reply.status());
    let sensor_token = reply.json::<Value>().await?["token"].as_str().context("token")?.to_string();
    let now = OffsetDateTime::now_utc();
    for chunk in 0..20 {
        let items: Vec<_> =
            (0..BATCH).map(|i| crowdsec_signal("sensor", public_ipv4((chunk * BATCH + i) as u32), i, now)).collect();
        let reply = http.post(format!("{base}v2/signals")).bearer_auth(&sensor_token).json(&items).send().await?;
        ensure!(reply.status().is_success(), "sensor push: {}", reply.status());
    }

    let (machines, tokens) = made.into_iter().map(|(_, login, password, token, _)| ((login, password), token)).unzip();
    let world = World {
        bases: std::sync::RwLock::new(vec![base]),
        http,
        machines,
        tokens: RwLock::new(tokens),
        api_key,
        next: AtomicU64::new(0),
        seen: Mutex::new(BTreeMap::new()),
    };
    Ok((world, ttl))
}

/// CPU per request of one activity, and where it went.
#[derive(Debug, Clone, Copy)]
struct Cost {
    requests: usize,
    /// Server CPU seconds per request (idle rate removed).
    server: f64,
    /// PostgreSQL CPU seconds per request (0 on SQLite).
    database: f64,
    /// Redis CPU seconds per request (0 without Redis).
    redis: f64,
    p50: Duration,
    p99: Duration,
}

/// The mixed phase at one network size.
struct Verified {
    machines: f64,
    /// The serving replicas' CPU over the phase together, in percent of one core.
    cpu_percent: f64,
    /// Each serving replica's name and its share of that, in percent of one core.
    replicas: Vec<(&'static str, f64)>,
    /// Redis's CPU over the phase, in percent of one core, when the replicas use it.
    redis_percent: Option<f64>,
    routes: Vec<Route>,
}

/// What one route saw in a mixed phase.
struct Route {
    activity: Activity,
    answered: usize,
    p50: Duration,
    p99: Duration,
    /// 5xx (a 503 when every hashing slot stayed busy), transport errors, other refusals.
    failed: u64,
    /// Arrivals dropped because [`IN_FLIGHT`] requests were already waiting.
    dropped: u64,
}

impl Verified {
    /// `B 40%, C 38%`: each replica's CPU in percent of the core.
    fn shares(&self) -> String {
        self.replicas.iter().map(|(name, percent)| format!("{name} {percent:.0}%")).collect::<Vec<_>>().join(", ")
    }

    /// The worst p99 over every route, in seconds.
    fn worst_p99(&self) -> f64 {
        self.routes.iter().map(|r| r.p99.as_secs_f64()).fold(0.0, f64::max)
    }

    /// Every route answered everything, with p99 under 1 s.
    fn held(&self) -> bool {
        self.worst_p99() < 1.0 && self.routes.iter().all(|r| r.failed == 0 && r.dropped == 0)
    }
}

struct BackendRun {
    ttl: f64,
    costs: BTreeMap<Activity, Cost>,
    /// Worker CPU seconds per signal, and the database's.
    consensus: (f64, f64),
    verified: Vec<Verified>,
}

impl BackendRun {
    /// Server CPU seconds per machine-day, per activity (the cadence's push: 50-signal batches).
    fn per_day(&self) -> Vec<(&'static str, f64, f64)> {
        let mut rows: Vec<(&'static str, f64, f64)> =
            [Activity::Login, Activity::Pull, Activity::Metrics, Activity::Push, Activity::Lookup]
                .iter()
                .map(|&a| {
                    let cost = self.costs[&a];
                    (a.name(), cost.server * a.per_day(self.ttl), cost.database * a.per_day(self.ttl))
                })
                .collect();
        rows.push(("consensus", self.consensus.0 * SIGNALS_PER_DAY, self.consensus.1 * SIGNALS_PER_DAY));
        rows
    }

    fn machine_day(&self) -> f64 {
        self.per_day().iter().map(|(_, server, _)| server).sum()
    }

    fn machines_per_core(&self) -> f64 {
        86_400.0 / self.machine_day()
    }
}

/// The environment of every server of a run: the worker on or off, the shared JWT key, edge
/// limits lifted, and Redis when the run shares limits through it.
fn server_env(consensus: bool, redis: Option<&SharedRedis>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PALISADE_CONSENSUS__ENABLED", if consensus { "true" } else { "false" }),
        ("PALISADE_AUTH__JWT_SECRET", JWT_SECRET),
        // Every machine registers and logs in from 127.0.0.1: limits that are there to refuse one
        // address doing that are lifted, and so is the metrics quota, since each registered
        // machine carries the metrics of many in the mixed phase.
        ("PALISADE_EDGE__LOGINS_PER_MINUTE_PER_ADDRESS", "100000000"),
        ("PALISADE_EDGE__LOGINS_PER_MINUTE_PER_NETWORK", "100000000"),
        ("PALISADE_EDGE__REGISTRATIONS_PER_HOUR_PER_ADDRESS", "100000000"),
        ("PALISADE_EDGE__REGISTRATIONS_PER_HOUR_PER_NETWORK", "100000000"),
        ("PALISADE_EDGE__REGISTRATIONS_PER_NETWORK_PER_DAY", "0"),
        ("PALISADE_EDGE__MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ("PALISADE_EDGE__MAX_CONNECTIONS", "100000"),
        ("PALISADE_INGEST__METRICS_PER_MACHINE_PER_HOUR", "100000000"),
        ("PALISADE_INGEST__METRICS_BURST", "100000000"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    // The server reads `REDIS_URL` under its own name (`redis_url` in the configuration).
    env.extend(redis.map(|redis| ("REDIS_URL".to_string(), redis.url.clone())));
    env
}

/// The Redis logical database ([`REDIS_DB`]) the PostgreSQL replicas share their limits in,
/// emptied when opened and when the run is done.
struct SharedRedis {
    /// `REDIS_URL` naming [`REDIS_DB`], as the servers are given it.
    url: String,
    client: redis::Client,
}

impl SharedRedis {
    /// Opens [`REDIS_DB`] on the Redis server `url` names and empties it.
    async fn open(url: &str) -> anyhow::Result<SharedRedis> {
        let url = with_database(url, REDIS_DB)?;
        let client = redis::Client::open(url.as_str()).context("REDIS_URL is not a Redis URL")?;
        let redis = SharedRedis { url, client };
        redis.flush().await.with_context(|| format!("cannot empty database {REDIS_DB} of the Redis REDIS_URL names"))?;
        Ok(redis)
    }

    async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(self.client.get_multiplexed_async_connection().await?)
    }

    /// How many keys the database holds now.
    async fn keys(&self) -> anyhow::Result<u64> {
        Ok(redis::cmd("DBSIZE").query_async(&mut self.connection().await?).await?)
    }

    /// Empties the database.
    async fn flush(&self) -> anyhow::Result<()> {
        Ok(redis::cmd("FLUSHDB").query_async(&mut self.connection().await?).await?)
    }
}

/// `url` (`redis://` or `rediss://`, with or without a database) naming the logical database
/// `db` instead, its query kept.
fn with_database(url: &str, db: u32) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(scheme, _)| *scheme == "redis" || *scheme == "rediss")
        .context("REDIS_URL must be a redis:// or rediss:// URL")?;
    let (rest, query) = rest.split_once('?').map_or((rest, String::new()), |(rest, query)| (rest, format!("?{query}")));
    let authority = rest.split_once('/').map_or(rest, |(authority, _)| authority);
    Ok(format!("{scheme}://{authority}/{db}{query}"))
}

/// The Redis limiter's counters on a replica's `/metrics`: script runs (round trips to Redis)
/// and checks that fell back to in-process limits because Redis did not answer.
async fn redis_counters(http: &reqwest::Client, base: &str) -> anyhow::Result<(f64, f64)> {
    let text = http.get(format!("{base}metrics")).send().await?.error_for_status()?.text().await?;
    Ok((
        metric_sum(&text, "palisade_ratelimit_redis_scripts_total"),
        metric_sum(&text, "palisade_ratelimit_redis_fallback_total"),
    ))
}

/// CPU a measured piece of work cost, in seconds.
struct Spent {
    /// Server A's, above its idle rate.
    server: f64,
    /// Every `postgres` process's.
    database: f64,
    /// Every `redis-server` process's.
    redis: f64,
}

/// Runs `work` and returns the CPU it cost.
struct Meter {
    pid: u32,
    idle_rate: f64,
}

impl Meter {
    async fn measure<F: std::future::Future<Output = ()>>(&self, work: F) -> anyhow::Result<Spent> {
        let (cpu0, db0, redis0, started) = (cpu_seconds(self.pid)?, postgres_cpu_seconds(), redis_cpu_seconds(), Instant::now());
        work.await;
        let wall = started.elapsed().as_secs_f64();
        let server = (cpu_seconds(self.pid)? - cpu0 - self.idle_rate * wall).max(0.0);
        Ok(Spent { server, database: postgres_cpu_seconds() - db0, redis: redis_cpu_seconds() - redis0 })
    }
}

async fn idle_rate(pid: u32, window: Duration) -> anyhow::Result<f64> {
    let before = cpu_seconds(pid)?;
    tokio::time::sleep(window).await;
    Ok((cpu_seconds(pid)? - before) / window.as_secs_f64())
}

fn check(label: &str, seen: &BTreeMap<Activity, Seen>) -> anyhow::Result<()> {
    for (activity, seen) in seen {
        ensure!(
            seen.server_errors == 0 && seen.transport_errors == 0 && seen.other == 0,
            "{label}: {}: {} 5xx, {} transport errors, {} other failures",
            activity.name(),
            seen.server_errors,
            seen.transport_errors,
            seen.other
        );
    }
    Ok(())
}

async fn run(
    db: &TestDb,
    backend: Backend,
    label: &str,
    options: &Options,
    redis: Option<&SharedRedis>,
) -> anyhow::Result<BackendRun> {
    let start = |consensus: bool| {
        tokio::task::block_in_place(|| {
            ServerProcess::start(
                db,
                ServerOptions { config_toml: UNLIMITED_TIERS.to_string(), env: server_env(consensus, redis) },
            )
        })
    };
    let mut a = start(false)?;
    let mut b = start(true)?;
    let (pid_a, pid_b) = (a.pid().context("server A is not running")?, b.pid().context("server B is not running")?);
    let started = Instant::now();
    let (world, ttl) = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(setup(&a, options.machines)))?;
    let world = Arc::new(world);
    wait_for_worker(backend, db.url.expose()).await?;
    println!(
        "{label}: {} machines registered and logged in, token lifetime {ttl:.0} s, in {:.1} s",
        options.machines,
        started.elapsed().as_secs_f64()
    );

    // Warm both servers' connections and caches, then measure their idle rates.
    burst(&world, Activity::Pull, options.machines, 4).await;
    burst(&world, Activity::Lookup, 200, 4).await;
    drop(world.take());
    let window = Duration::from_secs(if options.verify_target { 10 } else { 3 });
    let (idle_a, idle_b) = tokio::join!(idle_rate(pid_a, window), idle_rate(pid_b, window));
    let (idle_a, idle_b) = (idle_a?, idle_b?);
    println!("{label}: idle server A {:.2}% of a core, worker B {:.2}%", 100.0 * idle_a, 100.0 * idle_b);

    let meter = Meter { pid: pid_a, idle_rate: idle_a };
    let m = options.machines;
    let mut costs = BTreeMap::new();
    println!();
    println!(
        "| {label} | requests | server CPU µs/request | PostgreSQL CPU µs/request | Redis CPU µs/request | p50 ms | p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (activity, count, concurrency) in [
        (Activity::Login, m, 4),
        (Activity::Pull, m * options.rounds, 4),
        (Activity::Metrics, m * options.rounds, 4),
        (Activity::Lookup, m * options.rounds * 10, 8),
        // One push per machine: the pushes go through the single signal writer one at a time.
        (Activity::PushOne, m, 4),
        (Activity::Push, m, 4),
    ] {
        // The worker drains the previous phase's signals first, so they cost nothing here.
        wait_for_worker(backend, db.url.expose()).await?;
        let spent = meter.measure(burst(&world, activity, count, concurrency)).await?;
        let mut seen = world.take();
        check(label, &seen)?;
        let latencies = &mut seen.entry(activity).or_default().latencies;
        latencies.sort_unstable();
        let cost = Cost {
            requests: latencies.len(),
            server: spent.server / count as f64,
            database: spent.database / count as f64,
            redis: spent.redis / count as f64,
            p50: quantile(latencies, 0.5),
            p99: quantile(latencies, 0.99),
        };
        let database = if backend == Backend::Postgres { format!("{:.0}", cost.database * 1e6) } else { "-".into() };
        let redis_cpu = if redis.is_some() { format!("{:.0}", cost.redis * 1e6) } else { "-".into() };
        println!(
            "| {} | {} | {:.0} | {database} | {redis_cpu} | {:.2} | {:.2} |",
            activity.route(),
            cost.requests,
            cost.server * 1e6,
            cost.p50.as_secs_f64() * 1e3,
            cost.p99.as_secs_f64() * 1e3
        );
        costs.insert(activity, cost);
    }

    // The worker's share: server B's CPU from the start of a fresh round of pushes until its
    // watermark reaches the last stored signal.
    wait_for_worker(backend, db.url.expose()).await?;
    let pushes = m;
    let (cpu0, db0, t0) = (cpu_seconds(pid_b)?, postgres_cpu_seconds(), Instant::now());
    let cpu_a0 = cpu_seconds(pid_a)?;
    burst(&world, Activity::Push, pushes, 4).await;
    check(label, &world.take())?;
    let push_cpu_a = cpu_seconds(pid_a)? - cpu_a0;
    wait_for_worker(backend, db.url.expose()).await?;
    let wall = t0.elapsed().as_secs_f64();
    let signals = (pushes * BATCH) as f64;
    let worker = ((cpu_seconds(pid_b)? - cpu0 - idle_b * wall) / signals).max(0.0);
    // PostgreSQL served both the pushes and the worker: the pushes' share (measured above) is
    // taken out.
    let worker_db = ((postgres_cpu_seconds() - db0 - costs[&Activity::Push].database * pushes as f64) / signals).max(0.0);
    println!(
        "| consensus worker (B), per signal | {} signals | {:.1} | {:.1} | - | drained in {wall:.1} s | (A spent {:.1} µs/signal meanwhile) |",
        signals,
        worker * 1e6,
        worker_db * 1e6,
        push_cpu_a / signals * 1e6
    );
    if let Some(redis) = redis {
        // The lookups' limits must have been kept in Redis, or the costs are not the deployment's.
        let (scripts, fallbacks) = redis_counters(&world.http, &a.url).await?;
        let keys = redis.keys().await?;
        println!(
            "{label}: Redis limits on server A: {scripts:.0} script runs, {fallbacks:.0} checks fell back to in-process limits; {keys} keys in Redis database {REDIS_DB}"
        );
        ensure!(scripts > 0.0 && keys > 0, "{label}: server A did not keep its lookup limits in Redis (is REDIS_URL reachable?)");
    }
    let mut outcome = BackendRun { ttl, costs, consensus: (worker, worker_db), verified: Vec::new() };

    // Verification: one deployment on one core, at the derived network's rate: B (worker on)
    // alone, or with Redis, B and a new replica C (worker off) sharing the load.
    a.kill();
    let mut c = if redis.is_some() { Some(start(false)?) } else { None };
    let mut deployment = Deployment { replicas: vec![("B", pid_b)], redis: redis.is_some() };
    let mut bases = vec![b.url.clone()];
    if let Some(c) = &c {
        deployment.replicas.push(("C", c.pid().context("server C is not running")?));
        bases.push(c.url.clone());
    }
    *world.bases.write().unwrap_or_else(|e| e.into_inner()) = bases.clone();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    for &(_, pid) in &deployment.replicas {
        pin(pid, "0")?;
    }
    if cores > 1 {
        pin(std::process::id(), &format!("1-{}", cores - 1))?;
    }
    burst(&world, Activity::Pull, options.machines, 4).await;
    drop(world.take());
    println!();
    println!(
        "{label}: the mixed load is served by {} on CPU 0 ({})",
        describe_replicas(deployment.replicas.len()),
        if deployment.replicas.len() == 1 { "B, worker on" } else { "B, worker on, and C, worker off, round-robin" }
    );
    // From the CPU-derived capacity down by a quarter at a time, until every route holds; then
    // the target, if it was not among them (always in the full run; in the quick one when no
    // step held, so its ratio says whether the target holds rather than 0).
    let mut machines = (outcome.machines_per_core() / 1000.0).floor().max(1.0) * 1000.0;
    for _ in 0..options.steps {
        let verified = verify(&world, backend, db, &deployment, machines, ttl, options.mixed).await?;
        let held = verified.held();
        outcome.verified.push(verified);
        if held {
            break;
        }
        machines = (machines * 0.75 / 1000.0).floor().max(1.0) * 1000.0;
    }
    let none_held = !outcome.verified.iter().any(Verified::held);
    if (options.verify_target || none_held) && outcome.verified.iter().all(|v| (v.machines - TARGET_MACHINES).abs() >= 1.0) {
        let verified = verify(&world, backend, db, &deployment, TARGET_MACHINES, ttl, options.mixed).await?;
        outcome.verified.push(verified);
    }
    if cores > 1 {
        pin(std::process::id(), &format!("0-{}", cores - 1))?;
    }
    if let Some(redis) = redis {
        for (&(name, _), base) in deployment.replicas.iter().zip(&bases) {
            let (scripts, fallbacks) = redis_counters(&world.http, base).await?;
            println!(
                "{label}: Redis limits on replica {name}: {scripts:.0} script runs, {fallbacks:.0} checks fell back to in-process limits"
            );
        }
        println!("{label}: {} keys in Redis database {REDIS_DB} after the mixed load", redis.keys().await?);
    }
    if let Some(c) = &mut c {
        drop(c.terminate());
    }
    drop(b.terminate());
    Ok(outcome)
}

/// The replicas serving the mixed load, pinned together to one core.
struct Deployment {
    /// Each replica's name and process id.
    replicas: Vec<(&'static str, u32)>,
    /// Whether they share their limits in Redis (whose CPU is then reported beside theirs).
    redis: bool,
}

/// `one replica`, `2 replicas`.
fn describe_replicas(count: usize) -> String {
    if count == 1 { "one replica".to_string() } else { format!("{count} replicas") }
}

/// One mixed phase on `deployment` at the real request rate of a network of `machines`.
async fn verify(
    world: &Arc<World>,
    backend: Backend,
    db: &TestDb,
    deployment: &Deployment,
    machines: f64,
    ttl: f64,
    length: Duration,
) -> anyhow::Result<Verified> {
    // A step that did not hold leaves the signals it accepted to the worker, on the same core:
    // its backlog can take minutes to drain, and the next step starts from an idle deployment.
    let drained = wait_for_worker_within(backend, db.url.expose(), Duration::from_secs(900)).await?;
    if drained > Duration::from_secs(5) {
        println!("(the consensus worker drained the previous step's backlog in {:.0} s)", drained.as_secs_f64());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let until = Instant::now() + length;
    let cpu0 = deployment.replicas.iter().map(|&(_, pid)| cpu_seconds(pid)).collect::<anyhow::Result<Vec<_>>>()?;
    let redis0 = redis_cpu_seconds();
    let t0 = Instant::now();
    let drivers: Vec<_> = Activity::MIXED
        .iter()
        .map(|&a| tokio::spawn(drive(world.clone(), a, machines * a.per_day(ttl) / 86_400.0, until)))
        .collect();
    for driver in drivers {
        driver.await?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let mut replicas = Vec::new();
    for (&(name, pid), cpu0) in deployment.replicas.iter().zip(cpu0) {
        replicas.push((name, 100.0 * (cpu_seconds(pid)? - cpu0) / wall));
    }
    let cpu_percent: f64 = replicas.iter().map(|(_, percent)| percent).sum();
    let redis_percent = deployment.redis.then(|| 100.0 * (redis_cpu_seconds() - redis0) / wall);
    let mut seen = world.take();
    let mut routes = Vec::new();
    for activity in Activity::MIXED {
        let mut seen = seen.remove(&activity).unwrap_or_default();
        seen.latencies.sort_unstable();
        routes.push(Route {
            activity,
            answered: seen.latencies.len(),
            p50: quantile(&seen.latencies, 0.5),
            p99: quantile(&seen.latencies, 0.99),
            failed: seen.server_errors + seen.transport_errors + seen.other,
            dropped: seen.dropped,
        });
    }
    let verified = Verified { machines, cpu_percent, replicas, redis_percent, routes };
    println!(
        "mixed load of {machines:.0} machines: server CPU {cpu_percent:.0}% of its core ({}), worst p99 {:.3} s, {}",
        verified.shares(),
        verified.worst_p99(),
        if verified.held() { "held" } else { "NOT held" }
    );
    Ok(verified)
}

fn report(label: &str, run: &BackendRun, postgres: bool) {
    println!();
    println!("{label}: CPU per machine-day at CrowdSec 1.4.6's cadence (token lifetime {:.0} s)", run.ttl);
    println!(
        "| activity | per machine-day | server CPU ms/machine-day | share |{}",
        if postgres { " PostgreSQL CPU ms/machine-day |" } else { "" }
    );
    println!("|---|---:|---:|---:|{}", if postgres { "---:|" } else { "" });
    let total = run.machine_day();
    for (name, server, database) in run.per_day() {
        let count = match name {
            "login" => Activity::Login.per_day(run.ttl),
            "pull" => PULLS_PER_DAY,
            "metrics" => METRICS_PER_DAY,
            "push" => Activity::Push.per_day(run.ttl),
            "lookup" => LOOKUPS_PER_DAY,
            _ => SIGNALS_PER_DAY,
        };
        let db = if postgres { format!(" {:.2} |", database * 1e3) } else { String::new() };
        println!("| {name} | {count:.1} | {:.2} | {:.0}% |{db}", server * 1e3, 100.0 * server / total);
    }
    println!("| total | | {:.2} | 100% |", total * 1e3);
    let single = run.costs[&Activity::PushOne].server * SIGNALS_PER_DAY
        - run.costs[&Activity::Push].server * Activity::Push.per_day(run.ttl);
    println!(
        "{label}: one core (86,400 CPU-s a day) sustains {:.0} machines; with every signal pushed alone (a quiet machine's 30 s ticker) instead of in 50s: {:.0}",
        run.machines_per_core(),
        86_400.0 / (total + single)
    );
    for verified in &run.verified {
        println!();
        let redis = verified.redis_percent.map_or(String::new(), |percent| format!("; Redis beside it {percent:.0}% of a core"));
        println!(
            "{label}: mixed load of {:.0} machines on one pinned core, {} serving: server CPU {:.0}% of that core ({}){redis}; {}",
            verified.machines,
            describe_replicas(verified.replicas.len()),
            verified.cpu_percent,
            verified.shares(),
            if verified.held() { "held (p99 < 1 s, nothing failed)" } else { "NOT held" }
        );
        println!("| route | requests/s | answered | failed | dropped | p50 ms | p99 ms |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for route in &verified.routes {
            println!(
                "| {} | {:.2} | {} | {} | {} | {:.2} | {:.2} |",
                route.activity.route(),
                verified.machines * route.activity.per_day(run.ttl) / 86_400.0,
                route.answered,
                route.failed,
                route.dropped,
                route.p50.as_secs_f64() * 1e3,
                route.p99.as_secs_f64() * 1e3
            );
        }
    }
}

/// The Redis the PostgreSQL leg shares limits in: `REDIS_URL`'s database [`REDIS_DB`], or `None`
/// (one replica, no Redis) after a notice when it is not set; under `CI=true` that is an error.
async fn shared_redis() -> anyhow::Result<Option<SharedRedis>> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(Some(SharedRedis::open(url.trim()).await?)),
        _ if palisade_tests::testing::in_ci() => {
            bail!("REDIS_URL is not set: the PostgreSQL leg runs two replicas sharing limits in Redis, required under CI=true")
        }
        _ => {
            println!("notice: REDIS_URL is not set; PostgreSQL runs one replica without Redis");
            Ok(None)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let mut backends = Vec::new();
    if options.only.as_deref() != Some("pg") {
        backends.push((Backend::Sqlite, "sqlite", TestDb::sqlite(), None));
    }
    if options.only.as_deref() != Some("sqlite") {
        match TestDb::postgres().await {
            Some(db) => backends.push((Backend::Postgres, "pg", db, shared_redis().await?)),
            None if options.only.is_some() => bail!("--backend pg needs DATABASE_URL and a reachable PostgreSQL"),
            None => println!("notice: DATABASE_URL is not set or PostgreSQL is unreachable; SQLite only"),
        }
    }
    println!(
        "network: {} registered machines; cadence per machine-day: {SIGNALS_PER_DAY} signals in batches of {BATCH}, pulls every 2 h, metrics every 30 min, {LOOKUPS_PER_DAY} lookups, a login per token lifetime; mixed phases of {} s",
        options.machines,
        options.mixed.as_secs()
    );
    let mut ratios = Vec::new();
    for (backend, label, db, redis) in &backends {
        let outcome = run(db, *backend, label, &options, redis.as_ref()).await;
        // The run's counters leave with it, whether it succeeded or not.
        if let Some(redis) = redis {
            redis.flush().await.with_context(|| format!("cannot empty Redis database {REDIS_DB} after the run"))?;
        }
        let outcome = outcome?;
        report(label, &outcome, *backend == Backend::Postgres);
        // What one core sustains is the largest network whose mixed load held; the CPU-derived
        // figure is its upper bound.
        let sustained = outcome.verified.iter().filter(|v| v.held()).map(|v| v.machines).fold(0.0, f64::max);
        println!(
            "{label}: largest network held on one core: {sustained:.0} machines (CPU-derived bound {:.0})",
            outcome.machines_per_core()
        );
        ratios.push(ratio_line(&format!("network.machines_per_core_{label}"), sustained, Goal::AtLeast, TARGET_MACHINES));
        ratios.push(ratio_line(
            &format!("network.{label}.cpu_derived_machines"),
            outcome.machines_per_core(),
            Goal::AtLeast,
            TARGET_MACHINES,
        ));
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
    fn the_cadence_follows_crowdsec() {
        // A one-hour token is renewed a minute early: every 59 minutes.
        assert!((Activity::Login.per_day(3600.0) - 86_400.0 / 3540.0).abs() < 1e-9);
        assert_eq!(Activity::Pull.per_day(3600.0), 12.0);
        assert_eq!(Activity::Metrics.per_day(3600.0), 48.0);
        assert_eq!(Activity::Push.per_day(3600.0), 6.0);
    }

    #[test]
    fn proc_stat_cpu_reads_utime_and_stime() {
        let stat = "42 (palisade (x)) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(proc_stat_cpu(stat), Some(3.0));
        assert_eq!(proc_stat_cpu("garbage"), None);
    }

    #[test]
    fn requests_alternate_between_replicas_and_each_machine_visits_both() {
        let machines = 4;
        let served: Vec<usize> = (0..8).map(|n| replica(n, machines, 2)).collect();
        assert_eq!(served, [0, 1, 0, 1, 1, 0, 1, 0]);
        // Machine 0's first and second requests (numbers 0 and 4) reach different replicas.
        assert_ne!(replica(0, machines, 2), replica(machines, machines, 2));
        assert!((0..100).all(|n| replica(n, machines, 1) == 0));
    }

    #[test]
    fn the_redis_url_names_the_benchmark_database() {
        assert_eq!(with_database("redis://127.0.0.1:6379", 15).unwrap(), "redis://127.0.0.1:6379/15");
        assert_eq!(with_database("redis://:pw@redis:6379/0", 15).unwrap(), "redis://:pw@redis:6379/15");
        assert_eq!(with_database("rediss://host/2?protocol=resp3", 15).unwrap(), "rediss://host/15?protocol=resp3");
        assert!(with_database("redis+unix:///run/redis.sock", 15).is_err());
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
