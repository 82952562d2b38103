//! Durability under a crash: several machines push signal batches without pause, the server is
//! killed with SIGKILL in the middle, restarted, and then every batch it acknowledged must be
//! stored exactly once. Batches cut off by the kill may or may not be stored, but only whole and
//! never twice; when the clients retry them after the restart, nothing is duplicated. Runs on
//! every backend this machine offers.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use palisade_api::capi::SignalsResponse;
use palisade_api::native::MachineCredentials;
use palisade_tests::http::{Http, test_client};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, wait_until};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MACHINES: usize = 6;
/// CrowdSec's own batch size.
const BATCH: usize = 50;
/// Acknowledged batches to wait for before the kill, so the crash lands in a sustained ingest.
const ACKED_BEFORE_KILL: usize = 30;

/// One batch exactly as sent; a retry sends the same bytes.
#[derive(Debug, Clone)]
struct Batch {
    machine: usize,
    body: Value,
    values: Vec<String>,
}

/// Batch `index` of machine `machine`: 50 signals about addresses no other batch uses, all in
/// 11.0.0.0/8 (publicly routed, outside every special-purpose range).
fn batch(machine: usize, index: usize, at: OffsetDateTime) -> Batch {
    let stamp = at.format(&Rfc3339).expect("RFC 3339 formats any UTC time");
    let values: Vec<String> = (0..BATCH)
        .map(|i| {
            let n = ((machine as u32) << 20) | (index * BATCH + i) as u32;
            Ipv4Addr::from(u32::from(Ipv4Addr::new(11, 0, 0, 0)) | n).to_string()
        })
        .collect();
    let items: Vec<Value> = values
        .iter()
        .map(|ip| {
            json!({
                "machine_id": format!("agent-{machine}"),
                "message": format!("Ip {ip} performed 'crowdsecurity/ssh-bf' (6 events over 1s)"),
                "scenario": "crowdsecurity/ssh-bf",
                "scenario_hash": "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f",
                "scenario_trust": "certified",
                "scenario_version": "0.1",
                "source": {"ip": ip, "scope": "Ip", "value": ip},
                "start_at": stamp,
                "stop_at": stamp,
            })
        })
        .collect();
    Batch { machine, body: Value::Array(items), values }
}

/// Pushes one batch; `Ok` only for a 2xx answer accounting for every item.
async fn push(client: &reqwest::Client, base: &str, token: &str, batch: &Batch) -> anyhow::Result<SignalsResponse> {
    let response = client.post(format!("{base}v2/signals")).bearer_auth(token).json(&batch.body).send().await?;
    let status = response.status();
    let body = response.text().await?;
    ensure!(status.is_success(), "HTTP {status}: {body}");
    let answer: SignalsResponse = serde_json::from_str(&body).with_context(|| format!("signals answer: {body}"))?;
    ensure!(answer.rejected.is_empty() && answer.accepted + answer.duplicates == BATCH, "partial answer: {body}");
    Ok(answer)
}

/// What one client saw before the crash.
#[derive(Debug, Default)]
struct ClientRecord {
    acked: Vec<Batch>,
    unacked: Vec<Batch>,
}

/// Pushes new batches until one is not acknowledged (the server died) or `stop` is set.
async fn ingest(
    machine: usize,
    base: String,
    token: String,
    acked_total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<ClientRecord> {
    let client = test_client();
    let at = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let mut record = ClientRecord::default();
    for index in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let batch = batch(machine, index, at);
        match push(&client, &base, &token, &batch).await {
            Ok(answer) => {
                ensure!(answer.accepted == BATCH, "a first delivery was reported as duplicate: {answer:?}");
                record.acked.push(batch);
                acked_total.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                record.unacked.push(batch);
                break;
            }
        }
    }
    Ok(record)
}

/// How many times each value is stored, and under which machine login.
fn stored(http: &Http, server: &ServerProcess, admin: &str) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let mut by_value: HashMap<String, Vec<String>> = HashMap::new();
    for signal in http.admin_signals(&server.url, admin, None)? {
        by_value.entry(signal.value).or_default().push(signal.machine_id);
    }
    Ok(by_value)
}

/// How many of a batch's values are stored (each at most once, under the right machine).
fn stored_count(by_value: &HashMap<String, Vec<String>>, batch: &Batch, logins: &[String]) -> anyhow::Result<usize> {
    let mut count = 0;
    for value in &batch.values {
        match by_value.get(value).map(Vec::as_slice) {
            None => {}
            Some([login]) => {
                ensure!(*login == logins[batch.machine], "{value} stored under {login}, sent by {}", logins[batch.machine]);
                count += 1;
            }
            Some(many) => anyhow::bail!("{value} is stored {} times", many.len()),
        }
    }
    Ok(count)
}

fn run(db: &TestDb) -> anyhow::Result<()> {
    let started = Instant::now();
    let label = db.label();
    // The per-machine rate limit is not under test here: a 429 would end a client early.
    let options = ServerOptions {
        env: vec![
            ("PALISADE_INGEST__PER_MACHINE_SIGNALS_PER_SEC".into(), "1000000".into()),
            ("PALISADE_INGEST__PER_MACHINE_BURST".into(), "1000000".into()),
        ],
        ..ServerOptions::default()
    };
    let mut server = ServerProcess::start(db, options)?;
    // Created before the crash: the admin token must survive it too.
    let admin = server.admin_token()?;
    let http = Http::new()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    // Machines and their tokens, made concurrently (each costs an argon2 hash on the server).
    let logins: Vec<String> = (0..MACHINES).map(|m| format!("durable-{label}-{m}")).collect();
    let tokens: Vec<String> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for login in &logins {
            let (base, admin, login) = (server.url.clone(), admin.clone(), login.clone());
            tasks.push(tokio::spawn(async move {
                let client = test_client();
                let created = client
                    .post(format!("{base}v1/admin/machines"))
                    .bearer_auth(&admin)
                    .json(&json!({"name": login}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<MachineCredentials>()
                    .await?;
                let login_body = json!({"machine_id": created.machine_id, "password": created.password, "scenarios": []});
                let answer: Value = client
                    .post(format!("{base}v2/watchers/login"))
                    .json(&login_body)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                answer["token"].as_str().map(str::to_string).context("login answer without token")
            }));
        }
        let mut tokens = Vec::new();
        for task in tasks {
            tokens.push(task.await??);
        }
        anyhow::Ok(tokens)
    })?;

    // Sustained ingest, then SIGKILL while the clients are still pushing.
    let acked_total = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(m, token)| runtime.spawn(ingest(m, server.url.clone(), token.clone(), acked_total.clone(), stop.clone())))
        .collect();
    wait_until(Duration::from_secs(120), "sustained ingest before the kill", || {
        ensure!(!clients.iter().any(|c| c.is_finished()), "a client stopped before the kill");
        Ok((acked_total.load(Ordering::SeqCst) >= ACKED_BEFORE_KILL).then_some(()))
    })?;
    server.kill();
    stop.store(true, Ordering::SeqCst);
    let records: Vec<ClientRecord> = runtime.block_on(async {
        let mut records = Vec::new();
        for client in clients {
            records.push(tokio::time::timeout(Duration::from_secs(60), client).await.context("client did not stop")???);
        }
        anyhow::Ok(records)
    })?;
    let acked: Vec<&Batch> = records.iter().flat_map(|r| &r.acked).collect();
    let unacked: Vec<&Batch> = records.iter().flat_map(|r| &r.unacked).collect();

    server.restart()?;

    // Every acknowledged batch is there exactly once; a cut-off batch is there whole or not at all.
    let before_retry = stored(&http, &server, &admin)?;
    for batch in &acked {
        ensure!(stored_count(&before_retry, batch, &logins)? == BATCH, "an acknowledged batch lost signals");
    }
    let mut unacked_but_stored = 0;
    for batch in &unacked {
        match stored_count(&before_retry, batch, &logins)? {
            0 => {}
            BATCH => unacked_but_stored += 1,
            partial => anyhow::bail!("a batch cut off by the crash is half stored ({partial} of {BATCH})"),
        }
    }
    let sent = acked.len() + unacked.len();
    ensure!(
        before_retry.len() == (acked.len() + unacked_but_stored) * BATCH,
        "{} values stored, but {} batches acknowledged and {unacked_but_stored} cut-off batches stored",
        before_retry.len(),
        acked.len()
    );

    // The clients retry what was not acknowledged, with their old tokens (the key survived), and
    // redeliver one acknowledged batch each: nothing is stored twice.
    runtime.block_on(async {
        let client = test_client();
        for batch in &unacked {
            let token = &tokens[batch.machine];
            let answer = push(&client, &server.url, token, batch).await.context("retry after restart")?;
            let was_stored = stored_count(&before_retry, batch, &logins)? == BATCH;
            let expected = if was_stored { (0, BATCH) } else { (BATCH, 0) };
            ensure!((answer.accepted, answer.duplicates) == expected, "retry answered {answer:?}, expected {expected:?}");
        }
        for record in &records {
            if let Some(batch) = record.acked.last() {
                let answer = push(&client, &server.url, &tokens[batch.machine], batch).await?;
                ensure!((answer.accepted, answer.duplicates) == (0, BATCH), "redelivery answered {answer:?}");
            }
        }
        anyhow::Ok(())
    })?;
    let after_retry = stored(&http, &server, &admin)?;
    for batch in acked.iter().chain(&unacked) {
        ensure!(stored_count(&after_retry, batch, &logins)? == BATCH, "a batch is incomplete after the retries");
    }
    ensure!(after_retry.len() == sent * BATCH, "{} values stored, {} sent", after_retry.len(), sent * BATCH);
    for (m, login) in logins.iter().enumerate() {
        let machine = http.admin_machine(&server.url, &admin, login)?.context("machine vanished")?;
        let sent_by_machine = records[m].acked.len() + records[m].unacked.len();
        ensure!(machine.signals as usize == sent_by_machine * BATCH, "{login} counts {} signals", machine.signals);
    }
    eprintln!(
        "[{label}] {} batches acknowledged before the kill, {} cut off ({unacked_but_stored} of them stored anyway), \
         {} signals after retries; {:.1} s",
        acked.len(),
        unacked.len(),
        after_retry.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn sigkill_during_ingest_keeps_every_acknowledged_signal_exactly_once() {
    let dbs = tokio::runtime::Runtime::new().expect("runtime").block_on(TestDb::all());
    for db in &dbs {
        if let Err(error) = run(db) {
            panic!("{}: {error:#}", db.label());
        }
    }
}
