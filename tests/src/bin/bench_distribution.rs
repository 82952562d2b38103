//! Distribution benchmark: 1,000,000 blocklist entries pulled from Palisade and, in the same run,
//! the same 1,000,000 decisions pulled from Debian's CrowdSec 1.4.6 local API
//! (`GET /v1/decisions/stream?startup=true`, the call every bouncer makes at start).
//!
//! CrowdSec: its LAPI is started once so it creates its SQLite schema, stopped, the decisions
//! (and the one alert they reference) are bulk-inserted in one transaction, it is started again
//! and a bouncer key is made with `cscli bouncers add`. Palisade: the entries are written to the
//! community list straight through the store (bulk), then the server is started on that
//! database and pulled with an API key of an unlimited tier.
//!
//! The writes are timed too (wall clock of the insert alone, the values already in memory):
//! CrowdSec's bulk insert against Palisade's store write (`apply_list_ops`, its bulk path) and,
//! on a database of its own, the operator's import (`manage::lists::import_entries` on the text
//! of the list, parsing included); each must take ≤ 2× CrowdSec's insert. When `DATABASE_URL`
//! names a PostgreSQL server, the store write and the import are measured on it too.
//!
//! For each pull: time to first byte, time to last byte, bytes, and the server's peak RSS
//! (`VmHWM`) before and after. Then the targets' ratios: full pull time ≤ 0.1× CrowdSec's, peak
//! memory ≤ 0.1× CrowdSec's ([`MEMORY_TARGET`]), first byte ≤ 100 ms, a delta after 1% churn ≤ 0.02× the full
//! list's bytes, and plain-text export throughput ≥ 0.7× the same bytes served as a static file
//! by the same binary (`distribution.bench_static_file`, a benchmark-only route that streams
//! bytes held in memory through the same HTTP stack: it measures the rendering and snapshot
//! cost of the export, not disk I/O). That comparison, the 1% churn and its delta run on a
//! server of their own, so the servers whose memory is measured hold no benchmark-only copy of
//! the list.
//!
//! Usage: `cargo run --release -p palisade-tests --bin bench_distribution [-- ENTRIES | --quick]`
//! (`--quick`: 100,000 entries, what `tests/bench-quick` runs). Every target's ratio is also
//! printed as a `RATIO` line for it.
//!
//! The bouncer comparison: the very call CrowdSec's LAPI answered above,
//! `GET /v1/decisions/stream?startup=true` with `X-Api-Key`, made to Palisade with its API key
//! on a second server started on the same database at the end (so its peak is that pull's, not
//! what the earlier pulls left allocated): time to last byte ≤ 0.1× CrowdSec's, and that
//! server's peak memory once it has served the stream ≤ 0.1× CrowdSec's.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_server::store::{ListEntry, ListOp};
use palisade_tests::bench::{Goal, ratio_line};
use palisade_tests::signals::public_ipv4;
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, free_port, wait_until};
use time::OffsetDateTime;

const CROWDSEC: &str = "/usr/bin/crowdsec";
const CSCLI: &str = "/usr/bin/cscli";

/// The server's peak memory, at most this share of CrowdSec's: with plain pulls, with a full v2
/// stream, and (its own server) with a bouncer's stream.
const MEMORY_TARGET: f64 = 0.1;

/// One timed pull.
#[derive(Debug, Clone, Copy)]
struct Pull {
    first_byte: Duration,
    last_byte: Duration,
    bytes: u64,
}

/// A server's write of the list, pulls and memory.
struct Measured {
    /// Wall clock of writing the list into its database.
    write: Duration,
    full: Pull,
    hwm_before_kb: u64,
    hwm_after_kb: u64,
}

fn hwm_kb(pid: u32) -> anyhow::Result<u64> {
    status_kb(pid, "VmHWM:")
}

/// A `kB` figure of `/proc/PID/status`.
fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/PID/status"))
}

fn client() -> anyhow::Result<reqwest::Client> {
    // No compression: both servers send the same kind of bytes, uncompressed.
    Ok(reqwest::Client::builder().no_gzip().timeout(Duration::from_secs(600)).build()?)
}

async fn pull(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<(Pull, Vec<u8>)> {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let start = Instant::now();
    let mut response = request.send().await?;
    ensure!(response.status().is_success(), "GET {url}: {}", response.status());
    let mut first_byte = None;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        first_byte.get_or_insert_with(|| start.elapsed());
        body.extend_from_slice(&chunk);
    }
    let last_byte = start.elapsed();
    Ok((Pull { first_byte: first_byte.unwrap_or(last_byte), last_byte, bytes: body.len() as u64 }, body))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn show(label: &str, p: &Pull) {
    println!(
        "{label:<44} first byte {:>9.1} ms   last byte {:>9.1} ms   {:>11} bytes   {:>7.1} MB/s",
        ms(p.first_byte),
        ms(p.last_byte),
        p.bytes,
        p.bytes as f64 / 1e6 / p.last_byte.as_secs_f64()
    );
}

/// CrowdSec's local API alone (`-no-cs`) in a directory of its own.
struct Crowdsec {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Crowdsec {
    fn prepare() -> anyhow::Result<Crowdsec> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        for sub in ["etc/notifications", "data", "log"] {
            fs::create_dir_all(root.join(sub))?;
        }
        for file in ["profiles.yaml", "simulation.yaml"] {
            fs::copy(Path::new("/etc/crowdsec").join(file), root.join("etc").join(file))?;
        }
        let port = free_port()?;
        let r = root.display();
        fs::write(
            root.join("etc/config.yaml"),
            format!(
                "common:\n  daemonize: false\n  log_media: file\n  log_level: warning\n  log_dir: {r}/log/\n  working_dir: .\n\
config_paths:\n  config_dir: {r}/etc/\n  data_dir: {r}/data/\n  simulation_path: {r}/etc/simulation.yaml\n  hub_dir: /var/lib/crowdsec/hub/\n  index_path: /var/lib/crowdsec/hub/.index.json\n  notification_dir: {r}/etc/notifications/\n  plugin_dir: /usr/lib/crowdsec/plugins/\n\
cscli:\n  output: human\n  hub_branch: master\n\
db_config:\n  log_level: warning\n  type: sqlite\n  db_path: {r}/data/crowdsec.db\n  use_wal: true\n\
api:\n  client:\n    insecure_skip_verify: false\n    credentials_path: {r}/etc/local_api_credentials.yaml\n  server:\n    log_level: warning\n    listen_uri: 127.0.0.1:{port}\n    profiles_path: {r}/etc/profiles.yaml\n    console_path: {r}/etc/console.yaml\n\
prometheus:\n  enabled: false\n  level: full\n"
            ),
        )?;
        Ok(Crowdsec { dir, port, child: None })
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("etc/config.yaml")
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("data/crowdsec.db")
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let child = Command::new(CROWDSEC)
            .arg("-c")
            .arg(self.config())
            .arg("-no-cs")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.dir.path().join("stderr.txt"))?)
            .spawn()
            .context("cannot start crowdsec")?;
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(120), "the CrowdSec local API to listen", || {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("crowdsec exited with {status}: {}", fs::read_to_string(self.dir.path().join("stderr.txt"))?);
            }
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()))
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).ok();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(child.kill());
            drop(child.wait());
        }
    }

    /// Inserts one alert and `values` as its ban decisions, in one transaction.
    fn load(&self, values: &[String]) -> anyhow::Result<()> {
        let mut db = rusqlite::Connection::open(self.db())?;
        let tx = db.transaction()?;
        let now = OffsetDateTime::now_utc();
        let go_time = |t: OffsetDateTime| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:09}+00:00",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.nanosecond()
            )
        };
        let (created, until) = (go_time(now), go_time(now + time::Duration::hours(24)));
        tx.execute(
            "INSERT INTO alerts (created_at, updated_at, scenario, message, events_count, started_at, stopped_at, source_scope, source_value, simulated)
             VALUES (?1, ?1, 'crowdsecurity/community-blocklist', 'bench', 0, ?1, ?1, 'Range', 'bench', 0)",
            [&created],
        )?;
        let alert = tx.last_insert_rowid();
        {
            let mut insert = tx.prepare(
                "INSERT INTO decisions (created_at, updated_at, until, scenario, type, start_ip, end_ip, start_suffix, end_suffix, ip_size, scope, value, origin, simulated, alert_decisions)
                 VALUES (?1, ?1, ?2, 'crowdsecurity/ssh-bf', 'ban', ?3, ?3, 0, 0, 4, 'Ip', ?4, 'CAPI', 0, ?5)",
            )?;
            for value in values {
                let ip: std::net::Ipv4Addr = value.parse()?;
                // The address range columns serve CrowdSec's per-address queries, not the
                // stream; the address as a number is enough here.
                let number = i64::from(u32::from(ip));
                insert.execute(rusqlite::params![created, until, number, value, alert])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn bouncer_key(&self) -> anyhow::Result<String> {
        let output = Command::new(CSCLI).arg("-c").arg(self.config()).args(["bouncers", "add", "bench", "-o", "raw"]).output()?;
        ensure!(output.status.success(), "cscli bouncers add: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8(output.stdout)?.trim().to_string())
    }
}

impl Drop for Crowdsec {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn crowdsec(values: &[String]) -> anyhow::Result<Measured> {
    let mut cs = Crowdsec::prepare()?;
    cs.start()?;
    cs.stop();
    let started = Instant::now();
    cs.load(values)?;
    let write = started.elapsed();
    println!("crowdsec: {} decisions inserted in {:.2} s (one transaction)", values.len(), write.as_secs_f64());
    let key = cs.bouncer_key()?;
    cs.start()?;
    let hwm_before_kb = hwm_kb(cs.pid())?;
    let url = format!("http://127.0.0.1:{}/v1/decisions/stream?startup=true", cs.port);
    let (full, body) = pull(&client()?, &url, &[("x-api-key", &key)]).await?;
    let hwm_after_kb = hwm_kb(cs.pid())?;
    let parsed: serde_json::Value = serde_json::from_slice(&body).context("CrowdSec's stream is not JSON")?;
    let count = parsed["new"].as_array().map_or(0, Vec::len);
    ensure!(count == values.len(), "CrowdSec streamed {count} decisions, not {}", values.len());
    show("crowdsec 1.4.6 /v1/decisions/stream?startup", &full);
    Ok(Measured { write, full, hwm_before_kb, hwm_after_kb })
}

fn entry(value: &str, now: OffsetDateTime) -> ListOp {
    ListOp::Add(ListEntry {
        list: "community".into(),
        value: palisade_server::domain::net::list_target(value).expect("address or range"),
        scope: palisade_server::domain::signal::Scope::Ip,
        scenario: "crowdsecurity/ssh-bf".into(),
        remediation: palisade_server::engine::Remediation::Ban,
        rule: palisade_server::engine::Rule::Crowd,
        listed_at: now,
        expires_at: now + time::Duration::hours(24),
        seq: 0,
    })
}

async fn apply(store: &dyn palisade_server::store::Store, ops: &[ListOp]) -> anyhow::Result<()> {
    for batch in ops.chunks(50_000) {
        store.apply_list_ops(batch, OffsetDateTime::now_utc()).await?;
    }
    Ok(())
}

/// A fresh PostgreSQL database, when `DATABASE_URL` names a server.
async fn postgres_db() -> Option<TestDb> {
    if std::env::var("DATABASE_URL").map_or(true, |url| url.is_empty()) {
        println!("palisade: DATABASE_URL is not set, PostgreSQL is not measured");
        return None;
    }
    TestDb::postgres().await
}

/// The same store write into a fresh PostgreSQL database.
async fn postgres_write(ops: &[ListOp]) -> anyhow::Result<Option<Duration>> {
    let Some(db) = postgres_db().await else { return Ok(None) };
    let store = palisade_server::store::open(&db.url).await?;
    store.migrate().await?;
    let started = Instant::now();
    apply(store.as_ref(), ops).await?;
    let took = started.elapsed();
    ensure!(store.list_seq("community").await? == ops.len() as i64, "PostgreSQL did not log every change");
    println!("palisade: {} entries written through the store on PostgreSQL in {:.2} s", ops.len(), took.as_secs_f64());
    Ok(Some(took))
}

/// Imports the values as an operator would (`admin blocklist import`, `POST
/// /v1/admin/blocklists/{name}/import`): one address per line into a new custom list of `db`, a
/// fresh database. Returns the wall clock of the import alone.
async fn import(db: &TestDb, values: &[String]) -> anyhow::Result<Duration> {
    use palisade_server::manage::lists;
    let store = palisade_server::store::open(&db.url).await?;
    store.migrate().await?;
    let request = palisade_api::native::CreateListRequest {
        name: "imported".into(),
        kind: None,
        description: "bench".into(),
        visibility: None,
    };
    lists::create_list(store.as_ref(), request).await?;
    let mut text = String::with_capacity(values.len() * 16);
    for value in values {
        text.push_str(value);
        text.push('\n');
    }
    let started = Instant::now();
    let outcome = lists::import_entries(store.as_ref(), "imported", &text).await?;
    let took = started.elapsed();
    ensure!(
        outcome.added == values.len() && outcome.rejected.is_empty(),
        "the import added {} and refused {} of {}",
        outcome.added,
        outcome.rejected.len(),
        values.len()
    );
    println!(
        "palisade: {} entries imported (import_entries, parsing included) on {} in {:.2} s",
        values.len(),
        if db.url.expose().starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" },
        took.as_secs_f64()
    );
    Ok(took)
}

const CONFIG: &str = r#"
[distribution]
contributor_cap = 100000000
non_contributor_cap = 100000000

[tiers.free]
lookups_per_day = 1000000
lookups_per_month = 30000000
rate_per_sec = 100000.0
burst = 100000
bulk_max = 10
blocklists = { community = 0 }
"#;

struct Palisade {
    measured: Measured,
    /// Wall clock of `import_entries` on the list's text, into a custom list of a fresh database.
    import: Duration,
    /// Wall clock of the same store write on PostgreSQL, when `DATABASE_URL` is set.
    postgres_write: Option<Duration>,
    /// Wall clock of the same import on PostgreSQL, when `DATABASE_URL` is set.
    postgres_import: Option<Duration>,
    hwm_after_stream_kb: u64,
    /// Resident before the stream's machine registers, then peak and resident once it has
    /// registered and logged in (what its password hashes leave behind).
    login_kb: (u64, u64, u64),
    /// Peak RSS of a second server on the same database: with the list loaded, and after one
    /// bouncer start-up stream.
    hwm_fresh_kb: u64,
    hwm_after_bouncer_kb: u64,
    cached: Pull,
    /// The bouncer's start-up pull (`/v1/decisions/stream?startup=true`), when it completed.
    bouncer: Option<Pull>,
    stream: Option<Pull>,
    delta_bytes: u64,
    export_mbps: f64,
    static_mbps: f64,
}

async fn palisade(values: &[String]) -> anyhow::Result<Palisade> {
    let db = TestDb::sqlite();
    let store = palisade_server::store::open(&db.url).await?;
    store.migrate().await?;
    let now = OffsetDateTime::now_utc();
    let ops: Vec<ListOp> = values.iter().map(|v| entry(v, now)).collect();
    let started = Instant::now();
    apply(store.as_ref(), &ops).await?;
    let write = started.elapsed();
    println!("palisade: {} entries written through the store (apply_list_ops) in {:.2} s", values.len(), write.as_secs_f64());
    let postgres_write = postgres_write(&ops).await?;
    drop(ops);
    let sqlite_import = import(&TestDb::sqlite(), values).await?;
    let postgres_import = match postgres_db().await {
        Some(db) => Some(import(&db, values).await?),
        None => None,
    };

    // The static baseline: the plain list as the server renders it (sorted by prefix).
    let mut sorted: Vec<std::net::Ipv4Addr> = values.iter().map(|v| v.parse()).collect::<Result<_, _>>()?;
    sorted.sort_unstable();
    let mut expected = String::with_capacity(values.len() * 14);
    for ip in &sorted {
        expected.push_str(&ip.to_string());
        expected.push('\n');
    }
    let dir = tempfile::tempdir()?;
    let static_file = dir.path().join("community.txt");
    fs::write(&static_file, &expected)?;
    let config = CONFIG.replacen(
        "[distribution]\n",
        &format!("[distribution]\nbench_static_file = {:?}\n", static_file.display().to_string()),
        1,
    );
    // The server measured for memory runs without the static baseline (a benchmark-only copy of
    // the list in memory that no deployment holds); the throughput comparison runs on a server
    // of its own that has it.
    let server = ServerProcess::start(&db, ServerOptions { config_toml: CONFIG.to_string(), ..ServerOptions::default() })?;
    let pid = server.pid().context("no pid")?;
    let key = server.admin(&["api-key", "create", "--account", "bench"]).or_else(|_| {
        server.admin(&["account", "create", "bench"])?;
        server.admin(&["api-key", "create", "--account", "bench"])
    })?;
    let key = key.trim().to_string();
    let client = client()?;
    let url = |path: &str| format!("{}{path}", server.url);
    // The server prepares the list at start-up (its poller loads it); wait until it is served.
    wait_until(Duration::from_secs(600), "the server to load the list", || {
        let listing = listing(&url("v1/blocklists"), &key)?;
        Ok((listing[0]["entries"].as_u64() == Some(values.len() as u64)).then_some(()))
    })?;
    let hwm_before_kb = hwm_kb(pid)?;
    let headers = [("x-api-key", key.as_str())];
    let (full, body) = pull(&client, &url("v1/blocklists/community"), &headers).await?;
    show("palisade /v1/blocklists/community (first)", &full);
    ensure!(body.len() == expected.len(), "the plain list has {} bytes, the static file {}", body.len(), expected.len());
    if body != expected.as_bytes() {
        println!("warning: the static file differs from the rendered list (same length)");
    }
    let (cached, _) = pull(&client, &url("v1/blocklists/community"), &headers).await?;
    show("palisade /v1/blocklists/community (cached)", &cached);
    let hwm_after_kb = hwm_kb(pid)?;

    // The CrowdSec v2 stream of a machine, at start-up: the whole list as JSON.
    let resident_before_login_kb = status_kb(pid, "VmRSS:")?;
    let login = "benchmachine0000000000000000000000000000000000000";
    let password = "benchpassword0000000000000000000000000000000000000000000000000000";
    let register =
        client.post(url("v2/watchers")).json(&serde_json::json!({"machine_id": login, "password": password})).send().await?;
    ensure!(register.status().is_success(), "register: {}", register.status());
    let token: serde_json::Value = client
        .post(url("v2/watchers/login"))
        .json(&serde_json::json!({"machine_id": login, "password": password, "scenarios": ["crowdsecurity/ssh-bf"]}))
        .send()
        .await?
        .json()
        .await?;
    let token = format!("Bearer {}", token["token"].as_str().context("no token")?);
    let login_kb = (resident_before_login_kb, hwm_kb(pid)?, status_kb(pid, "VmRSS:")?);
    // A server answers 503 past its 30 s request deadline: reported, not fatal.
    let stream = match pull(&client, &url("v2/decisions/stream?startup=true"), &[("authorization", &token)]).await {
        Ok((stream, stream_body)) => {
            show("palisade /v2/decisions/stream?startup=true", &stream);
            let parsed: serde_json::Value = serde_json::from_slice(&stream_body)?;
            let count = parsed["new"].as_array().map_or(0, Vec::len);
            ensure!(count == values.len(), "the v2 stream sent {count} decisions, not {}", values.len());
            Some(stream)
        }
        Err(error) => {
            println!("palisade /v2/decisions/stream?startup=true   did not complete: {error}");
            None
        }
    };
    let hwm_after_stream_kb = hwm_kb(pid)?;

    // Throughput: the cached export and the static file, alternately, best of five each, on a
    // server started with the static baseline.
    drop(server);
    let server = ServerProcess::start(&db, ServerOptions { config_toml: config, ..ServerOptions::default() })?;
    let url = |path: &str| format!("{}{path}", server.url);
    wait_until(Duration::from_secs(600), "the throughput server to load the list", || {
        let listing = listing(&url("v1/blocklists"), &key)?;
        Ok((listing[0]["entries"].as_u64() == Some(values.len() as u64)).then_some(()))
    })?;
    let (mut export_mbps, mut static_mbps) = (0.0f64, 0.0f64);
    for _ in 0..5 {
        let (p, _) = pull(&client, &url("v1/blocklists/community"), &headers).await?;
        export_mbps = export_mbps.max(p.bytes as f64 / 1e6 / p.last_byte.as_secs_f64());
        let (s, _) = pull(&client, &url("v1/bench/static"), &[]).await?;
        ensure!(s.bytes == p.bytes, "static {} bytes vs export {}", s.bytes, p.bytes);
        static_mbps = static_mbps.max(s.bytes as f64 / 1e6 / s.last_byte.as_secs_f64());
    }

    // 1% churn: remove 0.5% and add 0.5% new, then the delta since the full pull's cursor.
    let seq_header = {
        let response = client.get(url("v1/blocklists/community")).header("x-api-key", &key).send().await?;
        let seq = response.headers().get("x-palisade-seq").and_then(|v| v.to_str().ok()).unwrap_or("0").to_string();
        drop(response);
        seq
    };
    let churn = values.len() / 200;
    let mut ops: Vec<ListOp> = values[..churn]
        .iter()
        .map(|v| ListOp::Remove {
            list: "community".into(),
            value: palisade_server::domain::net::list_target(v).expect("address"),
            reason: "bench".into(),
        })
        .collect();
    let fresh: Vec<String> = (0..churn).map(|i| public_ipv4(values.len() as u32 + 1 + i as u32).to_string()).collect();
    ops.extend(fresh.iter().map(|v| entry(v, OffsetDateTime::now_utc())));
    apply(store.as_ref(), &ops).await?;
    let target = store.list_seq("community").await?;
    wait_until(Duration::from_secs(60), "the server to apply the churn", || {
        let listing = listing(&url("v1/blocklists"), &key)?;
        Ok((listing[0]["seq"].as_i64() >= Some(target)).then_some(()))
    })?;
    let (delta, delta_body) = pull(&client, &url(&format!("v1/blocklists/community?since={seq_header}")), &headers).await?;
    show("palisade delta after 1% churn", &delta);
    let text = String::from_utf8_lossy(&delta_body);
    let changed = text.lines().count();
    ensure!(changed == 2 * churn, "the delta has {changed} lines, not {}", 2 * churn);

    // A CrowdSec bouncer's start-up pull (the same call and key header as on CrowdSec's LAPI),
    // on a server of its own started on the same database: its peak memory is then what that
    // pull needs, not what the pulls above left allocated.
    drop(server);
    let server = ServerProcess::start(&db, ServerOptions { config_toml: CONFIG.to_string(), ..ServerOptions::default() })?;
    let pid = server.pid().context("no pid")?;
    let url = |path: &str| format!("{}{path}", server.url);
    // The list as the churn left it (fresh values may repeat old ones, so not quite `values`).
    let entries = wait_until(Duration::from_secs(600), "the second server to load the list", || {
        let listing = listing(&url("v1/blocklists"), &key)?;
        let loaded = listing[0]["loading"] != serde_json::json!(true) && listing[0]["seq"].as_i64() >= Some(target);
        Ok(listing[0]["entries"].as_u64().filter(|_| loaded))
    })?;
    let hwm_fresh_kb = hwm_kb(pid)?;
    let bouncer = match pull(&client, &url("v1/decisions/stream?startup=true"), &[("X-Api-Key", &key)]).await {
        Ok((pulled, bouncer_body)) => {
            show("palisade /v1/decisions/stream?startup=true", &pulled);
            let parsed: serde_json::Value = serde_json::from_slice(&bouncer_body)?;
            let count = parsed["new"].as_array().map_or(0, Vec::len);
            ensure!(count as u64 == entries, "the bouncer stream sent {count} decisions, not {entries}");
            Some(pulled)
        }
        Err(error) => {
            println!("palisade /v1/decisions/stream?startup=true   did not complete: {error}");
            None
        }
    };
    let hwm_after_bouncer_kb = hwm_kb(pid)?;
    Ok(Palisade {
        measured: Measured { write, full, hwm_before_kb, hwm_after_kb },
        import: sqlite_import,
        postgres_import,
        postgres_write,
        hwm_after_stream_kb,
        login_kb,
        hwm_fresh_kb,
        hwm_after_bouncer_kb,
        cached,
        bouncer,
        stream,
        delta_bytes: delta.bytes,
        export_mbps,
        static_mbps,
    })
}

/// `GET /v1/blocklists` with `key` (a null value while the server cannot answer it yet).
fn listing(url: &str, key: &str) -> anyhow::Result<serde_json::Value> {
    let output = Command::new("curl").args(["-s", "-H", &format!("x-api-key: {key}"), url]).output()?;
    Ok(serde_json::from_slice(&output.stdout).unwrap_or_default())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn main() -> anyhow::Result<()> {
    let entries: u32 = match std::env::args().nth(1).as_deref() {
        Some("--quick") => 100_000,
        Some(count) => count.parse()?,
        None => 1_000_000,
    };
    ensure!(Path::new(CROWDSEC).exists(), "{CROWDSEC} is not installed (apt-get install crowdsec)");
    let values: Vec<String> = (0..entries).map(|i| public_ipv4(i * 3).to_string()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!("bench_distribution: {entries} entries\n");
    let cs = runtime.block_on(crowdsec(&values))?;
    let pal = runtime.block_on(palisade(&values))?;
    let p = &pal.measured;
    println!();
    println!(
        "peak RSS (VmHWM)      crowdsec {:>8} kB -> {:>8} kB    palisade {:>8} kB -> {:>8} kB (plain pulls) -> {:>8} kB (v2 stream)",
        cs.hwm_before_kb, cs.hwm_after_kb, p.hwm_before_kb, p.hwm_after_kb, pal.hwm_after_stream_kb
    );
    println!(
        "resident (VmRSS)      palisade {:>8} kB -> {:>8} kB (registration + login; peak {} kB)",
        pal.login_kb.0, pal.login_kb.2, pal.login_kb.1
    );
    println!(
        "peak RSS (VmHWM)      palisade, a second server: {:>8} kB loaded -> {:>8} kB (bouncer stream)",
        pal.hwm_fresh_kb, pal.hwm_after_bouncer_kb
    );
    println!(
        "export throughput     palisade plain {:.1} MB/s, static file {:.1} MB/s (same binary)",
        pal.export_mbps, pal.static_mbps
    );
    println!();
    let time_ratio = p.full.last_byte.as_secs_f64() / cs.full.last_byte.as_secs_f64();
    let cached_ratio = pal.cached.last_byte.as_secs_f64() / cs.full.last_byte.as_secs_f64();
    let stream_ratio = pal.stream.map_or(f64::NAN, |s| s.last_byte.as_secs_f64() / cs.full.last_byte.as_secs_f64());
    let memory_ratio = p.hwm_after_kb as f64 / cs.hwm_after_kb as f64;
    let stream_memory_ratio = pal.hwm_after_stream_kb as f64 / cs.hwm_after_kb as f64;
    let bouncer_ratio = pal.bouncer.map_or(f64::NAN, |b| b.last_byte.as_secs_f64() / cs.full.last_byte.as_secs_f64());
    let bouncer_memory_ratio = pal.hwm_after_bouncer_kb as f64 / cs.hwm_after_kb as f64;
    let delta_ratio = pal.delta_bytes as f64 / p.full.bytes as f64;
    let throughput_ratio = pal.export_mbps / pal.static_mbps;
    let write_ratio = p.write.as_secs_f64() / cs.write.as_secs_f64();
    let import_ratio = pal.import.as_secs_f64() / cs.write.as_secs_f64();
    let postgres_write_ratio = pal.postgres_write.map(|took| took.as_secs_f64() / cs.write.as_secs_f64());
    let postgres_import_ratio = pal.postgres_import.map(|took| took.as_secs_f64() / cs.write.as_secs_f64());
    println!(
        "list write             crowdsec insert {:.2} s, palisade store write {:.2} s, palisade import {:.2} s",
        cs.write.as_secs_f64(),
        p.write.as_secs_f64(),
        pal.import.as_secs_f64()
    );
    println!();
    println!("target                                         value      target   verdict");
    println!("list write (store) vs crowdsec insert          {write_ratio:>8.3}x   <= 2.0x   {}", verdict(write_ratio <= 2.0));
    println!("list import (use case) vs crowdsec insert      {import_ratio:>8.3}x   <= 2.0x   {}", verdict(import_ratio <= 2.0));
    if let Some(ratio) = postgres_write_ratio {
        println!("list write (store, postgres) vs crowdsec       {ratio:>8.3}x   <= 2.0x   {}", verdict(ratio <= 2.0));
    }
    if let Some(ratio) = postgres_import_ratio {
        println!("list import (use case, postgres) vs crowdsec   {ratio:>8.3}x   <= 2.0x   {}", verdict(ratio <= 2.0));
    }
    println!("full pull last byte vs crowdsec (first pull)   {time_ratio:>8.3}x   <= 0.1x   {}", verdict(time_ratio <= 0.1));
    println!("full pull last byte vs crowdsec (cached)       {cached_ratio:>8.3}x   <= 0.1x   {}", verdict(cached_ratio <= 0.1));
    println!(
        "bouncer startup stream last byte vs crowdsec   {bouncer_ratio:>8.3}x   <= 0.1x   {}",
        verdict(bouncer_ratio <= 0.1)
    );
    println!(
        "peak memory incl. a bouncer stream vs crowdsec {bouncer_memory_ratio:>8.3}x   <= {MEMORY_TARGET}x   {}",
        verdict(bouncer_memory_ratio <= MEMORY_TARGET)
    );
    println!("v2 startup stream last byte vs crowdsec        {stream_ratio:>8.3}x   (same protocol family, JSON)");
    println!(
        "peak memory, plain pulls vs crowdsec           {memory_ratio:>8.3}x   <= {MEMORY_TARGET}x   {}",
        verdict(memory_ratio <= MEMORY_TARGET)
    );
    println!(
        "peak memory incl. a full v2 stream vs crowdsec {stream_memory_ratio:>8.3}x   <= {MEMORY_TARGET}x   {}",
        verdict(stream_memory_ratio <= MEMORY_TARGET)
    );
    println!(
        "first byte (first pull)                        {:>7.1} ms   <= 100 ms {}",
        ms(p.full.first_byte),
        verdict(p.full.first_byte <= Duration::from_millis(100))
    );
    println!(
        "first byte (cached)                            {:>7.1} ms   <= 100 ms {}",
        ms(pal.cached.first_byte),
        verdict(pal.cached.first_byte <= Duration::from_millis(100))
    );
    println!("delta after 1% churn vs full list bytes        {delta_ratio:>8.4}x   <= 0.02x  {}", verdict(delta_ratio <= 0.02));
    println!(
        "plain export vs static file throughput         {throughput_ratio:>8.3}x   >= 0.7x   {}",
        verdict(throughput_ratio >= 0.7)
    );
    println!();
    let ratios = [
        ("distribution.full_pull_vs_crowdsec", time_ratio, Goal::AtMost, 0.1),
        ("distribution.cached_pull_vs_crowdsec", cached_ratio, Goal::AtMost, 0.1),
        ("distribution.memory_vs_crowdsec", memory_ratio, Goal::AtMost, MEMORY_TARGET),
        ("distribution.memory_with_stream_vs_crowdsec", stream_memory_ratio, Goal::AtMost, MEMORY_TARGET),
        ("distribution.bouncer_stream_vs_crowdsec", bouncer_ratio, Goal::AtMost, 0.1),
        ("distribution.memory_with_bouncer_stream_vs_crowdsec", bouncer_memory_ratio, Goal::AtMost, MEMORY_TARGET),
        ("distribution.first_byte_ms", ms(p.full.first_byte), Goal::AtMost, 100.0),
        ("distribution.cached_first_byte_ms", ms(pal.cached.first_byte), Goal::AtMost, 100.0),
        ("distribution.delta_vs_full_bytes", delta_ratio, Goal::AtMost, 0.02),
        ("distribution.export_vs_static", throughput_ratio, Goal::AtLeast, 0.7),
        ("distribution.list_write_vs_crowdsec_insert", write_ratio, Goal::AtMost, 2.0),
        ("distribution.list_import_vs_crowdsec_insert", import_ratio, Goal::AtMost, 2.0),
    ];
    for (name, value, goal, target) in ratios {
        println!("{}", ratio_line(name, value, goal, target));
    }
    if let Some(ratio) = postgres_write_ratio {
        println!("{}", ratio_line("distribution.list_write_postgres_vs_crowdsec_insert", ratio, Goal::AtMost, 2.0));
    }
    if let Some(ratio) = postgres_import_ratio {
        println!("{}", ratio_line("distribution.list_import_postgres_vs_crowdsec_insert", ratio, Goal::AtMost, 2.0));
    }
    Ok(())
}
