//! Ingest benchmark: signals per second stored over HTTP by concurrent machines pushing
//! CrowdSec-shaped batches to a release `palisade-server`, beside a baseline measured in the same
//! run: a raw bulk load of the same rows into a fresh table of the same shape (PostgreSQL `COPY`;
//! SQLite one transaction of prepared inserts, with the server's durability settings).
//!
//! ```text
//! cargo run --release -p palisade-tests --bin bench_ingest -- \
//!     [--quick] [--signals-per-machine N] [--machines M] [--batch-sizes 50,500] [--backends sqlite,postgres] [--repeat R]
//!     [--without-consensus] [--statements] [--past-days D]
//! ```
//!
//! The server runs its consensus worker, as every deployment does; after the pushes the bench
//! waits until the worker's watermark reaches the last stored signal and prints that lag.
//! `--without-consensus` turns the worker off, to measure what it costs. On PostgreSQL it also
//! reads the CPU time of the server's database connections (their backends' `/proc` entries, so
//! PostgreSQL must run on this machine) and, with `--statements`, prints the time PostgreSQL spent
//! in each statement on the measurement's database (`pg_stat_statements`, which must be loaded and
//! created in the database `DATABASE_URL` names). `--quick` (4 machines ×
//! 2,000 signals, a few seconds per measurement) is what
//! `tests/bench-quick` runs; every ratio is also printed as a `RATIO` line for it.
//!
//! PostgreSQL runs on the server `DATABASE_URL` names (a fresh database per measurement, created
//! today). `--past-days 90` starts each one, the server's and the baseline's alike, with the
//! signal partitions of the 90 days before today, as a deployment has them once it has kept
//! signals for the default retention (empty: what an insert pays for them is their number and
//! the redelivery probe's reach, not their rows); its ratios are named `….past90d`. Results are
//! recorded in `docs/benchmarks.md`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use palisade::api::capi::SignalItem;
use palisade::{AdminClient, Client};
use palisade_server::config::Backend;
use palisade_server::domain::signal::{SignalRules, parse_item};
use palisade_server::store::{self, CreatedBy, Enrichment, NewMachine, NewSignal, Origin};
use palisade_tests::bench::{Goal, ratio_line};
use palisade_tests::signals::{crowdsec_signal, public_ipv4};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::block_in_place;

const PASSWORD: &str = "bench-password-0123456789abcdef";

/// Columns the server writes for each signal, in the order both loaders use.
const COLUMNS: &str = "machine_id, dedup_key, scope, value, scenario, scenario_hash, scenario_version, scenario_trust, \
     message, agent, alert_uuid, start_at, stop_at, received_at, origin_ip, origin_prefix, origin_asn, as_number, as_name, \
     country, extra";
const COLUMN_COUNT: usize = 21;

struct Options {
    signals_per_machine: usize,
    machines: usize,
    batch_sizes: Vec<usize>,
    backends: Vec<Backend>,
    repeat: usize,
    /// Whether the server runs its consensus worker (off only to measure what the worker costs).
    consensus: bool,
    /// Whether to print PostgreSQL's time per statement for each PostgreSQL measurement.
    statements: bool,
    /// Days of signal partitions before today each PostgreSQL database starts with.
    past_days: u32,
}

fn usage() -> &'static str {
    "usage: bench_ingest [--quick] [--signals-per-machine N] [--machines M] [--batch-sizes 50,500] [--backends sqlite,postgres] [--repeat R] [--without-consensus] [--statements] [--past-days D]"
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        signals_per_machine: 10_000,
        machines: 8,
        batch_sizes: vec![50, 500],
        backends: vec![Backend::Sqlite, Backend::Postgres],
        repeat: 1,
        consensus: true,
        statements: false,
        past_days: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value\n{}", usage()));
        match flag.as_str() {
            "--quick" => {
                options.signals_per_machine = 2_000;
                options.machines = 4;
            }
            "--signals-per-machine" => options.signals_per_machine = value()?.parse()?,
            "--machines" => options.machines = value()?.parse()?,
            "--repeat" => options.repeat = value()?.parse()?,
            "--without-consensus" => options.consensus = false,
            "--statements" => options.statements = true,
            "--past-days" => options.past_days = value()?.parse()?,
            "--batch-sizes" => {
                options.batch_sizes = value()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
            }
            "--backends" => {
                options.backends = value()?
                    .split(',')
                    .map(|name| match name.trim() {
                        "sqlite" => Ok(Backend::Sqlite),
                        "postgres" => Ok(Backend::Postgres),
                        other => bail!("unknown backend {other:?} (sqlite or postgres)"),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    ensure!(options.signals_per_machine > 0 && options.machines > 0 && options.repeat > 0, "counts must be positive");
    ensure!(options.batch_sizes.iter().all(|b| (1..=1000).contains(b)), "batch sizes must be 1 to 1000 (the server's limit)");
    if options.backends.contains(&Backend::Postgres) && std::env::var("DATABASE_URL").map_or(true, |url| url.is_empty()) {
        bail!("set DATABASE_URL to a PostgreSQL server to benchmark PostgreSQL, or pass --backends sqlite");
    }
    Ok(options)
}

fn label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A fresh, migrated database; on PostgreSQL with the signal partitions of the `past_days`
/// days before today, as a deployment has them once it has kept signals that long.
async fn fresh_db(backend: Backend, past_days: u32) -> anyhow::Result<TestDb> {
    let db = match backend {
        Backend::Sqlite => TestDb::sqlite(),
        Backend::Postgres => TestDb::postgres().await.context("set DATABASE_URL to benchmark PostgreSQL")?,
    };
    let store = store::open(&db.url).await?;
    store.migrate().await?;
    if backend == Backend::Postgres && past_days > 0 {
        let first = OffsetDateTime::now_utc() - time::Duration::days(i64::from(past_days));
        store.prepare_signal_partitions(first, past_days).await?;
    }
    Ok(db)
}

/// What every machine sends: its signals, one distinct public attacker each.
struct Workload {
    per_machine: Vec<Vec<SignalItem>>,
}

impl Workload {
    fn new(machines: usize, per_machine: usize) -> Workload {
        let now = OffsetDateTime::now_utc();
        let per_machine = (0..machines)
            .map(|m| {
                let agent = format!("bench-agent-{m:02}");
                (0..per_machine)
                    .map(|i| {
                        let stop_at = now - time::Duration::minutes(10) + time::Duration::milliseconds(i as i64);
                        crowdsec_signal(&agent, public_ipv4((m * per_machine + i) as u32), i, stop_at)
                    })
                    .collect()
            })
            .collect();
        Workload { per_machine }
    }

    fn total(&self) -> usize {
        self.per_machine.iter().map(Vec::len).sum()
    }
}

fn machine_id(m: usize) -> String {
    format!("bench-machine-{m:02}")
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name, which may itself contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').context("unexpected /proc stat format")?.1.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?) };
    // utime and stime (fields 14 and 15), in USER_HZ ticks, which Linux fixes at 100 per second.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// The server's connections to PostgreSQL, watched from the database `DATABASE_URL` names (so
/// the watching itself is not counted): the CPU time of their backend processes and, when
/// asked, the statements run on the measured database.
struct PgProbe {
    admin: sqlx::PgConnection,
    /// The measured database's oid.
    oid: i64,
}

impl PgProbe {
    async fn new(url: &str) -> anyhow::Result<PgProbe> {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let oid: i64 = sqlx::query_scalar("SELECT oid::bigint FROM pg_database WHERE datname = current_database()")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        let admin = sqlx::PgConnection::connect(&std::env::var("DATABASE_URL")?).await?;
        Ok(PgProbe { admin, oid })
    }

    /// CPU seconds each backend connected to the measured database has used so far. Backends
    /// that closed before this call are not seen: the server's pool keeps its connections for
    /// minutes, the bench's own short checks are left out on purpose.
    async fn backends_cpu(&mut self) -> anyhow::Result<HashMap<i32, f64>> {
        let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datid = $1::bigint::oid")
            .bind(self.oid)
            .fetch_all(&mut self.admin)
            .await?;
        Ok(pids.into_iter().filter_map(|pid| cpu_seconds(&pid.to_string()).ok().map(|cpu| (pid, cpu))).collect())
    }

    /// CPU seconds used between two [`PgProbe::backends_cpu`] readings (a backend missing from
    /// `before` started in between).
    fn used(before: &HashMap<i32, f64>, after: &HashMap<i32, f64>) -> f64 {
        after.iter().map(|(pid, cpu)| cpu - before.get(pid).copied().unwrap_or(0.0)).sum()
    }

    async fn reset_statements(&mut self) -> anyhow::Result<()> {
        sqlx::query("SELECT pg_stat_statements_reset(0, $1::bigint::oid, 0)")
            .bind(self.oid)
            .execute(&mut self.admin)
            .await
            .context("pg_stat_statements must be loaded and created in the database DATABASE_URL names")?;
        Ok(())
    }

    /// The statements run on the measured database since the reset: calls, milliseconds of
    /// execution, rows, and the start of the text.
    async fn statements(&mut self) -> anyhow::Result<Vec<(i64, f64, i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
             FROM pg_stat_statements WHERE dbid = $1::bigint::oid ORDER BY total_exec_time DESC",
        )
        .bind(self.oid)
        .fetch_all(&mut self.admin)
        .await?)
    }
}

/// One measurement over HTTP.
struct HttpRun {
    /// Wall-clock seconds the pushes took.
    seconds: f64,
    /// CPU seconds the server process used meanwhile.
    server_cpu: f64,
    /// CPU seconds the server's PostgreSQL backends used meanwhile (`None` on SQLite).
    postgres_cpu: Option<f64>,
    /// CPU seconds the server and its PostgreSQL backends used from the first push until the
    /// consensus worker had caught up (until the last answer without the worker).
    total_cpu: f64,
    /// CPU seconds this process (the machines' clients) used meanwhile.
    client_cpu: f64,
    /// Seconds from the end of the pushes until the consensus worker had processed every
    /// stored signal.
    lag: f64,
}

/// How long the bench waits for the consensus worker to catch up before giving up.
const LAG_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether the consensus worker's watermark has reached the last stored signal.
async fn worker_caught_up(backend: Backend, url: &str) -> anyhow::Result<bool> {
    let query = "SELECT (SELECT signal_id FROM consensus_watermark WHERE id = 1) >= (SELECT coalesce(max(id), 0) FROM signals)";
    Ok(match backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url)?.read_only(true).connect().await?;
            sqlx::query_scalar(query).fetch_one(&mut conn).await?
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query_scalar(query).fetch_one(&mut conn).await?
        }
    })
}

/// Seconds until the consensus worker has caught up, polled every 50 ms; infinite past
/// [`LAG_LIMIT`].
async fn consensus_lag(backend: Backend, url: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    while start.elapsed() < LAG_LIMIT {
        if worker_caught_up(backend, url).await? {
            return Ok(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(f64::INFINITY)
}

/// Pushes the workload through a fresh server, then checks it stored `rows`.
async fn measure_http(
    backend: Backend,
    batch_size: usize,
    workload: &Workload,
    rows: &[NewSignal],
    consensus: bool,
    statements: bool,
    past_days: u32,
) -> anyhow::Result<HttpRun> {
    let db = fresh_db(backend, past_days).await?;
    let unlimited = |key: &str| (key.to_string(), "100000000".to_string());
    let options = ServerOptions {
        env: vec![
            ("PALISADE_CONSENSUS__ENABLED".to_string(), consensus.to_string()),
            unlimited("PALISADE_INGEST__PER_MACHINE_SIGNALS_PER_SEC"),
            unlimited("PALISADE_INGEST__PER_MACHINE_BURST"),
            // Every benchmark machine registers from 127.0.0.1.
            unlimited("PALISADE_EDGE__REGISTRATIONS_PER_HOUR_PER_ADDRESS"),
            unlimited("PALISADE_EDGE__REGISTRATIONS_PER_HOUR_PER_NETWORK"),
        ],
        ..ServerOptions::default()
    };
    let (server, admin_token) = block_in_place(|| -> anyhow::Result<_> {
        let server = ServerProcess::start(&db, options)?;
        let token = server.admin_token()?;
        Ok((server, token))
    })?;

    let mut clients = Vec::with_capacity(workload.per_machine.len());
    for m in 0..workload.per_machine.len() {
        let client = Client::new(&server.url)?;
        client.register_machine(&machine_id(m), PASSWORD).await?;
        client.login_machine(&machine_id(m), PASSWORD, &["crowdsecurity/ssh-bf".to_string()]).await?;
        clients.push(client);
    }
    let batches: Vec<Vec<Vec<SignalItem>>> =
        workload.per_machine.iter().map(|items| items.chunks(batch_size).map(<[SignalItem]>::to_vec).collect()).collect();

    let server_pid = server.pid().context("the server is not running")?.to_string();
    let mut probe = match backend {
        Backend::Postgres => Some(PgProbe::new(db.url.expose()).await?),
        Backend::Sqlite => None,
    };
    if statements && let Some(probe) = &mut probe {
        probe.reset_statements().await?;
    }
    let postgres_before = match &mut probe {
        Some(probe) => probe.backends_cpu().await?,
        None => HashMap::new(),
    };
    let (server_cpu_before, client_cpu_before) = (cpu_seconds(&server_pid)?, cpu_seconds("self")?);
    let start = Instant::now();
    let pushes: Vec<_> = clients
        .into_iter()
        .zip(batches)
        .map(|(client, batches)| {
            tokio::spawn(async move {
                for batch in batches {
                    let answer = client.push_signals(&batch).await?;
                    ensure!(
                        answer.accepted == batch.len(),
                        "{} of {} signals accepted: {:?}",
                        answer.accepted,
                        batch.len(),
                        answer
                    );
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for push in pushes {
        push.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&server_pid)? - server_cpu_before;
    let client_cpu = cpu_seconds("self")? - client_cpu_before;
    let postgres_pushed = match &mut probe {
        Some(probe) => probe.backends_cpu().await?,
        None => HashMap::new(),
    };
    let lag = if consensus { consensus_lag(backend, db.url.expose()).await? } else { f64::NAN };
    let server_cpu_all = cpu_seconds(&server_pid)? - server_cpu_before;
    let postgres_all = match &mut probe {
        Some(probe) => probe.backends_cpu().await?,
        None => HashMap::new(),
    };
    let postgres_cpu = probe.is_some().then(|| PgProbe::used(&postgres_before, &postgres_pushed));
    let total_cpu = server_cpu_all + PgProbe::used(&postgres_before, &postgres_all);
    if statements && let Some(probe) = &mut probe {
        let total = workload.total() as f64;
        println!("PostgreSQL statements, {} batches of {batch_size}, from the first push until caught up:", label(backend));
        println!("| calls | ms | µs/signal | rows | statement |");
        println!("|---:|---:|---:|---:|---|");
        for (calls, ms, rows, query) in probe.statements().await? {
            println!("| {calls} | {ms:.1} | {:.2} | {rows} | `{query}` |", ms * 1e3 / total);
        }
    }

    let admin = AdminClient::new(&server.url, &admin_token)?;
    let stored: u64 = admin.list_machines().await?.iter().map(|m| m.signals).sum();
    ensure!(stored == workload.total() as u64, "the server stored {stored} signals, {} were sent", workload.total());
    verify_same_rows(backend, db.url.expose(), rows).await?;
    Ok(HttpRun { seconds, server_cpu, postgres_cpu, total_cpu, client_cpu, lag })
}

/// Checks the server stored exactly the rows the baseline loads (ids, machine keys and receive
/// times aside), so both sides write the same data.
async fn verify_same_rows(backend: Backend, url: &str, rows: &[NewSignal]) -> anyhow::Result<()> {
    let stored: Vec<(String, String, String, String)> = match backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url)?.read_only(true).connect().await?;
            sqlx::query_as("SELECT dedup_key, value, message, extra FROM signals").fetch_all(&mut conn).await?
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query_as("SELECT dedup_key, value, message, extra::text FROM signals").fetch_all(&mut conn).await?
        }
    };
    let expected: HashMap<&str, &NewSignal> = rows.iter().map(|r| (r.report.dedup_key.as_str(), r)).collect();
    ensure!(stored.len() == expected.len(), "the server stored {} rows, the baseline loads {}", stored.len(), expected.len());
    for (key, value, message, extra) in &stored {
        let signal = expected.get(key.as_str()).with_context(|| format!("the server stored a row the baseline lacks: {key}"))?;
        let same_extra =
            serde_json::from_str::<serde_json::Value>(extra)? == serde_json::from_str::<serde_json::Value>(&signal.report.extra)?;
        ensure!(
            *value == signal.report.value_text() && *message == signal.report.message && same_extra,
            "row {key} differs between the server and the baseline"
        );
    }
    Ok(())
}

/// The keys a fresh database gives the workload's machines, created in order.
fn machine_keys(machines: usize) -> Vec<store::MachineKey> {
    (1..=machines as i64).map(store::MachineKey).collect()
}

/// The rows the server stores for the workload, computed by the server's own validation code.
fn server_rows(workload: &Workload, machine_keys: &[store::MachineKey]) -> anyhow::Result<Vec<NewSignal>> {
    let now = OffsetDateTime::now_utc();
    let rules = SignalRules {
        now,
        max_age: time::Duration::days(60),
        max_clock_skew: time::Duration::days(1),
        min_v4_prefix: 16,
        min_v6_prefix: 32,
    };
    let origin = Origin { ip: IpAddr::V4(Ipv4Addr::LOCALHOST), prefix: "127.0.0.0/24".parse()?, asn: None };
    let mut rows = Vec::with_capacity(workload.total());
    for (items, key) in workload.per_machine.iter().zip(machine_keys) {
        for item in items {
            let report =
                parse_item(&serde_json::to_string(item)?, &rules).map_err(|r| anyhow::anyhow!("{}: {}", r.code, r.message))?;
            rows.push(NewSignal {
                machine: *key,
                report,
                origin: origin.clone(),
                enrichment: Enrichment::default(),
                received_at: now,
            });
        }
    }
    Ok(rows)
}

/// Loads `rows` raw into a fresh database with the workload's machines; returns the seconds the
/// load took.
async fn measure_raw(backend: Backend, workload: &Workload, rows: &[NewSignal], past_days: u32) -> anyhow::Result<f64> {
    let db = fresh_db(backend, past_days).await?;
    let store = store::open(&db.url).await?;
    let mut keys = Vec::with_capacity(workload.per_machine.len());
    for m in 0..workload.per_machine.len() {
        let machine = NewMachine {
            machine_id: machine_id(m),
            password_hash: "unused".into(),
            sensor: false,
            created_by: CreatedBy::Register,
            created_at: OffsetDateTime::now_utc(),
        };
        keys.push(store.create_machine(&machine).await?);
    }
    drop(store);
    ensure!(keys == machine_keys(workload.per_machine.len()), "a fresh database numbered its machines unexpectedly: {keys:?}");
    let seconds = match backend {
        Backend::Sqlite => block_in_place(|| load_sqlite(db.url.expose(), rows))?,
        Backend::Postgres => load_postgres(db.url.expose(), rows).await?,
    };
    Ok(seconds)
}

fn micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1000) as i64
}

/// SQLite: one transaction of single-row inserts through one prepared statement, on a connection
/// with the server's settings (WAL, synchronous FULL, foreign keys). It goes through the C API
/// directly (rusqlite, over the same bundled SQLite the server links): through sqlx every
/// statement is a round trip to its worker thread, which made this baseline several times slower.
fn load_sqlite(url: &str, rows: &[NewSignal]) -> anyhow::Result<f64> {
    let path = url.trim_start_matches("sqlite://");
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let sql = format!("INSERT INTO signals ({COLUMNS}) VALUES ({})", vec!["?"; COLUMN_COUNT].join(", "));
    let start = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut statement = tx.prepare(&sql)?;
        for signal in rows {
            let report = &signal.report;
            statement.execute(rusqlite::params![
                signal.machine.0,
                report.dedup_key,
                report.scope.as_str(),
                report.value_text(),
                report.scenario,
                report.scenario_hash,
                report.scenario_version,
                report.scenario_trust,
                report.message,
                report.agent,
                report.alert_uuid,
                micros(report.start_at),
                micros(report.stop_at),
                micros(signal.received_at),
                signal.origin.ip.to_string(),
                signal.origin.prefix.to_string(),
                signal.origin.asn.map(i64::from),
                signal.enrichment.as_number.map(i64::from),
                signal.enrichment.as_name,
                signal.enrichment.country,
                report.extra,
            ])?;
        }
    }
    tx.commit()?;
    let seconds = start.elapsed().as_secs_f64();
    let count: i64 = conn.query_row("SELECT count(*) FROM signals", [], |row| row.get(0))?;
    ensure!(count as usize == rows.len(), "SQLite baseline stored {count} rows of {}", rows.len());
    Ok(seconds)
}

/// One field of PostgreSQL's `COPY … FROM STDIN` text format.
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// PostgreSQL: the rows encoded in `COPY` text format beforehand, then one `COPY signals … FROM
/// STDIN`; only the `COPY` is timed.
async fn load_postgres(url: &str, rows: &[NewSignal]) -> anyhow::Result<f64> {
    let mut data = String::with_capacity(rows.len() * 700);
    for signal in rows {
        let report = &signal.report;
        let time = |at: OffsetDateTime| at.format(&Rfc3339).unwrap_or_default();
        let fields: [Option<String>; COLUMN_COUNT] = [
            Some(signal.machine.0.to_string()),
            Some(report.dedup_key.clone()),
            Some(report.scope.as_str().to_string()),
            Some(report.value_text()),
            Some(report.scenario.clone()),
            Some(report.scenario_hash.clone()),
            Some(report.scenario_version.clone()),
            Some(report.scenario_trust.clone()),
            Some(report.message.clone()),
            report.agent.clone(),
            report.alert_uuid.clone(),
            Some(time(report.start_at)),
            Some(time(report.stop_at)),
            Some(time(signal.received_at)),
            Some(signal.origin.ip.to_string()),
            Some(signal.origin.prefix.to_string()),
            signal.origin.asn.map(|n| n.to_string()),
            signal.enrichment.as_number.map(|n| n.to_string()),
            signal.enrichment.as_name.clone(),
            signal.enrichment.country.clone(),
            Some(report.extra.clone()),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                data.push('\t');
            }
            copy_field(&mut data, field.as_deref());
        }
        data.push('\n');
    }
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let start = Instant::now();
    let mut copy = conn.copy_in_raw(&format!("COPY signals ({COLUMNS}) FROM STDIN")).await?;
    copy.send(data.as_bytes()).await?;
    let copied = copy.finish().await?;
    let seconds = start.elapsed().as_secs_f64();
    ensure!(copied as usize == rows.len(), "PostgreSQL baseline copied {copied} rows of {}", rows.len());
    Ok(seconds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let workload = Workload::new(options.machines, options.signals_per_machine);
    let rows = server_rows(&workload, &machine_keys(options.machines))?;
    println!(
        "{} machines × {} signals = {} signals per measurement, {} CPU core(s) available",
        options.machines,
        options.signals_per_machine,
        workload.total(),
        std::thread::available_parallelism().map(usize::from).unwrap_or(1)
    );
    println!();
    println!(
        "| backend | batch | signals | seconds | signals/s | baseline signals/s | ratio | server CPU µs/signal | PostgreSQL CPU µs/signal | server + PostgreSQL CPU µs/signal until caught up | client CPU µs/signal | consensus lag s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for &backend in &options.backends {
        for &batch in &options.batch_sizes {
            for _ in 0..options.repeat {
                let http =
                    measure_http(backend, batch, &workload, &rows, options.consensus, options.statements, options.past_days)
                        .await?;
                let raw = measure_raw(backend, &workload, &rows, options.past_days).await?;
                let total = workload.total() as f64;
                println!(
                    "| {} | {batch} | {} | {:.2} | {:.0} | {:.0} | {:.2}× | {:.1} | {} | {:.1} | {:.1} | {:.2} |",
                    label(backend),
                    workload.total(),
                    http.seconds,
                    total / http.seconds,
                    total / raw,
                    raw / http.seconds,
                    http.server_cpu * 1e6 / total,
                    http.postgres_cpu.map_or("–".to_string(), |cpu| format!("{:.1}", cpu * 1e6 / total)),
                    http.total_cpu * 1e6 / total,
                    http.client_cpu * 1e6 / total,
                    http.lag,
                );
                let target = match (backend, batch >= 500) {
                    (Backend::Sqlite, false) => 0.3,
                    (Backend::Sqlite, true) => 0.5,
                    (Backend::Postgres, false) => 0.5,
                    (Backend::Postgres, true) => 0.8,
                };
                let name = match backend {
                    Backend::Postgres if options.past_days > 0 => format!("ingest.postgres.{batch}.past{}d", options.past_days),
                    _ => format!("ingest.{}.{batch}", label(backend)),
                };
                ratios.push(ratio_line(&name, raw / http.seconds, Goal::AtLeast, target));
                if options.consensus {
                    ratios.push(ratio_line(&format!("{name}.lag_s"), http.lag, Goal::AtMost, 10.0));
                }
            }
        }
    }
    println!();
    for line in ratios {
        println!("{line}");
    }
    Ok(())
}
