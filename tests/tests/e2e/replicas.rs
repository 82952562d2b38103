//! Two stateless replicas behind a real nginx, sharing PostgreSQL and Redis, as operators run
//! them: machines register, log in and push through the balancer; a JWT or an API key issued by
//! one replica works on the other; the listing the leader makes from a sensor's report is served
//! by both replicas; the client address is taken from the balancer's `X-Forwarded-For` and a
//! forged one is ignored; when the leader is killed (SIGKILL) the other replica takes over the
//! consensus worker, and every acknowledged signal is stored once and processed exactly once.
//!
//! Needs `DATABASE_URL` (PostgreSQL), `REDIS_URL` and nginx; skips with a notice without them,
//! except under `CI=true`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use palisade_api::capi::{DecisionsStreamV3, LoginResponse, SignalsResponse};
use palisade_api::native::MachineCredentials;
use palisade_tests::http::{Http, metric_sum};
use palisade_tests::signals::{crowdsec_signal, public_ipv4};
use palisade_tests::testing::{TestDb, in_ci, service_url};
use palisade_tests::{ServerOptions, ServerProcess, nginx, wait_until};
use serde_json::json;
use sqlx::Connection;
use time::OffsetDateTime;

/// The balancer connects to the replicas from this address; only it is a trusted proxy.
const BALANCER_ADDR: &str = "127.0.0.3";
/// A client of the network, in a /24 of its own.
const CLIENT_ADDR: &str = "127.0.1.5";
const SECRET: &str = "replicas-test-shared-jwt-secret-0123456789";
const LISTED: &str = "45.200.0.7";
const LISTED_AFTER_FAILOVER: &str = "45.200.0.8";

struct Machine {
    login: String,
    token: String,
}

/// Creates a machine through `base` and logs it in through `login_base`.
fn machine(http: &Http, base: &str, login_base: &str, admin: &str, name: &str, sensor: bool) -> anyhow::Result<Machine> {
    let reply = http.post(&format!("{base}v1/admin/machines"), Some(admin), &json!({"name": name, "sensor": sensor}))?;
    ensure!(reply.status == 201, "create {name}: {} {}", reply.status, reply.body);
    let created: MachineCredentials = reply.json()?;
    let body = json!({"machine_id": created.machine_id, "password": created.password, "scenarios": ["crowdsecurity/ssh-bf"]});
    let reply = http.post(&format!("{login_base}v2/watchers/login"), None, &body)?;
    ensure!(reply.status == 200, "login {name}: {} {}", reply.status, reply.body);
    let login: LoginResponse = reply.json()?;
    Ok(Machine { login: created.machine_id, token: login.token })
}

/// Pushes `items` until a replica acknowledges them (an agent retries what was not acknowledged;
/// a redelivery is deduplicated). A 429 is the per-machine signal rate (shared through Redis)
/// telling a tight loop to slow down: the agent waits the second it is told and retries.
/// Returns the acknowledgements.
fn push_until_acknowledged(
    http: &Http,
    base: &str,
    machine: &Machine,
    items: &serde_json::Value,
) -> anyhow::Result<Vec<SignalsResponse>> {
    let mut replies = Vec::new();
    for _ in 0..40 {
        match http.post(&format!("{base}v2/signals"), Some(&machine.token), items) {
            Ok(reply) if reply.status == 200 => {
                replies.push(reply.json()?);
                return Ok(replies);
            }
            Ok(reply) if reply.status >= 500 => {}
            Ok(reply) if reply.status == 429 => std::thread::sleep(Duration::from_millis(750)),
            Ok(reply) => bail!("push refused: {} {}", reply.status, reply.body),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("{}: signals never acknowledged", machine.login)
}

fn items(agent: &str, ips: impl Iterator<Item = String>) -> serde_json::Value {
    let now = OffsetDateTime::now_utc();
    let list: Vec<_> = ips
        .map(|ip| {
            let mut item = crowdsec_signal(agent, ip.parse().expect("ipv4"), 0, now);
            item.source.ip = Some(ip.clone());
            item.source.value = ip;
            item
        })
        .collect();
    serde_json::to_value(list).expect("serialises")
}

fn leader_flag(http: &Http, server: &ServerProcess) -> anyhow::Result<f64> {
    let reply = http.get(&format!("{}metrics", server.url), None)?;
    Ok(metric_sum(&reply.body, "palisade_consensus_leader"))
}

fn serves(http: &Http, server: &ServerProcess, token: &str, value: &str) -> anyhow::Result<bool> {
    let reply = http.get(&format!("{}v3/decisions/stream?startup=true", server.url), Some(token))?;
    ensure!(reply.status == 200, "{}: stream {} {}", server.url, reply.status, reply.body);
    let stream: DecisionsStreamV3 = reply.json()?;
    Ok(stream.new.iter().any(|group| group.decisions.iter().any(|d| d.value == value)))
}

/// Database facts: stored signals, the highest id, the consensus watermark, and the reports the
/// engine has counted (the sum of every reporter's count over every target).
async fn ledger(url: &str) -> anyhow::Result<(i64, i64, i64, i64)> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (stored, max_id): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), max(id) FROM signals").fetch_one(&mut conn).await?;
    let watermark: i64 = sqlx::query_scalar("SELECT signal_id FROM consensus_watermark").fetch_one(&mut conn).await?;
    let counted: Option<i64> = sqlx::query_scalar(
        "SELECT sum((r->>'count')::bigint)::bigint FROM engine_targets, jsonb_array_elements(state->'reporters') AS r",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok((stored, max_id.unwrap_or(0), watermark, counted.unwrap_or(0)))
}

#[test]
fn two_replicas_behind_nginx_share_work_serve_the_same_lists_and_fail_over() -> anyhow::Result<()> {
    let http = Http::new()?;
    let Some(db) = http.block_on(TestDb::postgres()) else { return Ok(()) };
    let Some(redis_url) = service_url("REDIS_URL", "Redis") else { return Ok(()) };
    let Some(nginx_binary) = nginx::binary() else {
        ensure!(!in_ci(), "nginx is required in CI (.ci/run installs it)");
        eprintln!("notice: nginx is not installed; skipping the replicas test");
        return Ok(());
    };
    let options = ServerOptions {
        env: vec![("REDIS_URL".into(), redis_url), ("PALISADE_AUTH__JWT_SECRET".into(), SECRET.into())],
        // The engine's per-machine and per-cluster bounds would leave some of these fresh
        // machines' reports to the store, and this test counts every report the engine takes.
        config_toml: format!(
            "trusted_proxies = [\"{BALANCER_ADDR}/32\"]\n\
             [consensus.params]\n\
             max_reporters_per_target = 1000000\n\
             untrusted_reporters_per_target = 1000000\n\
             max_new_targets_per_machine_day = 1000000\n\
             max_new_targets_per_untrusted_cluster_day = 1000000\n"
        ),
    };
    let mut a = ServerProcess::start(&db, options.clone())?;
    // The first replica takes the leadership before the second starts, so the test knows which to kill.
    wait_until(Duration::from_secs(30), "the first replica to lead", || Ok((leader_flag(&http, &a)? == 1.0).then_some(())))?;
    let b = ServerProcess::start(&db, options)?;
    ensure!(leader_flag(&http, &b)? == 0.0, "only one replica leads");
    let lb = nginx::Nginx::start(&nginx_binary, &[a.addr(), b.addr()], BALANCER_ADDR)?;
    let base = lb.url.clone();
    let admin = a.admin_token()?;

    // Machines are created and log in through the balancer; tokens work on either replica.
    let sensor = machine(&http, &base, &base, &admin, "honeypot-1", true)?;
    let consumer = machine(&http, &base, &a.url, &admin, "consumer-1", false)?;
    for server in [&a, &b] {
        let reply = http.get(&format!("{}v3/decisions/stream?startup=true", server.url), Some(&consumer.token))?;
        ensure!(reply.status == 200, "a token from one replica works on {}: {} {}", server.url, reply.status, reply.body);
    }
    a.admin(&["account", "create", "acme"])?;
    let key = a.admin(&["api-key", "create", "--account", "acme"])?.trim().to_string();
    for server in [&a, &b] {
        let url = format!("{}v1/ips/45.1.2.3", server.url);
        let reply =
            http.block_on(async { palisade_tests::http::test_client().get(url).header("x-api-key", &key).send().await })?;
        ensure!(reply.status() == 200, "an API key works on {}: {}", server.url, reply.status());
    }
    let mut watchers = Vec::new();
    for n in 0..4 {
        watchers.push(machine(&http, &base, &base, &admin, &format!("watcher-{n}"), false)?);
    }

    // The client address: a client at 127.0.1.5 (its own /24, apart from the balancer's). Through
    // the balancer its forged X-Forwarded-For entry is ignored and the address the balancer
    // appended is taken (not the balancer's own); sent straight to a replica, where the client is
    // no trusted proxy, the headers are ignored altogether.
    let client = reqwest::Client::builder().no_proxy().local_address(CLIENT_ADDR.parse::<std::net::IpAddr>()?).build()?;
    let forged = http.block_on(async {
        client
            .post(format!("{base}v2/signals"))
            .bearer_auth(&watchers[0].token)
            .header("x-forwarded-for", "203.0.113.66")
            .json(&items("forger", std::iter::once("45.201.0.1".to_string())))
            .send()
            .await
    })?;
    ensure!(forged.status() == 200, "push through the balancer: {}", forged.status());
    let direct = http.block_on(async {
        client
            .post(format!("{}v2/signals", b.url))
            .bearer_auth(&watchers[1].token)
            .header("x-forwarded-for", "203.0.113.67")
            .header("forwarded", "for=203.0.113.68")
            .json(&items("forger", std::iter::once("45.201.0.2".to_string())))
            .send()
            .await
    })?;
    ensure!(direct.status() == 200, "direct push: {}", direct.status());
    let origins: Vec<String> = http.admin_signals(&a.url, &admin, None)?.into_iter().map(|s| s.origin_prefix).collect();
    ensure!(origins == ["127.0.1.0/24", "127.0.1.0/24"], "origins are the real client, never a forged header: {origins:?}");
    let mut acknowledged = 2usize;

    // Traffic through the balancer; the sensor's report lists an address at once.
    let next_ip = Arc::new(AtomicUsize::new(0));
    let push_wave = |count: usize| -> anyhow::Result<usize> {
        let mut acked = 0;
        for round in 0..count {
            let watcher = &watchers[round % watchers.len()];
            let start = next_ip.fetch_add(10, Ordering::SeqCst);
            let body = items(&watcher.login, (start..start + 10).map(|n| public_ipv4(n as u32).to_string()));
            for reply in push_until_acknowledged(&http, &base, watcher, &body)? {
                acked += reply.accepted + reply.duplicates;
            }
        }
        Ok(acked)
    };
    acknowledged += push_wave(8)?;
    push_until_acknowledged(&http, &base, &sensor, &items("honeypot", std::iter::once(LISTED.to_string())))?;
    acknowledged += 1;
    wait_until(Duration::from_secs(30), "the leader to list the sensor's report", || {
        serves(&http, &a, &consumer.token, LISTED).map(|s| s.then_some(()))
    })?;
    // The other replica learns it from the store by its poll (distribution.poll_interval_ms).
    wait_until(Duration::from_secs(5), "the other replica to serve the listing", || {
        serves(&http, &b, &consumer.token, LISTED).map(|s| s.then_some(()))
    })?;

    // Signals keep flowing while the leader is killed.
    let stop = Arc::new(AtomicBool::new(false));
    // Batches the background pusher has had acknowledged so far, so the test waits for pushes
    // to happen rather than for time to pass.
    let pushed = Arc::new(AtomicUsize::new(0));
    let background = {
        let (stop, pushed) = (stop.clone(), pushed.clone());
        let base = base.clone();
        let watcher = Machine { login: watchers[3].login.clone(), token: watchers[3].token.clone() };
        std::thread::spawn(move || -> anyhow::Result<usize> {
            let http = Http::new()?;
            let mut acked = 0;
            let mut n = 1_000_000u32;
            while !stop.load(Ordering::SeqCst) {
                let body = items(&watcher.login, (n..n + 5).map(|i| public_ipv4(i).to_string()));
                n += 5;
                for reply in push_until_acknowledged(&http, &base, &watcher, &body)? {
                    acked += reply.accepted + reply.duplicates;
                }
                pushed.fetch_add(1, Ordering::SeqCst);
            }
            Ok(acked)
        })
    };
    let pushes_after = |at_least: usize, what: &str| {
        wait_until(Duration::from_secs(30), what, || {
            // A pusher that ended early failed: stop waiting, its join below reports why.
            Ok((background.is_finished() || pushed.load(Ordering::SeqCst) >= at_least).then_some(()))
        })
    };
    pushes_after(1, "the background pusher's first acknowledged batch, before the leader is killed")?;
    a.kill();
    wait_until(Duration::from_secs(30), "the surviving replica to take over the consensus worker", || {
        Ok((leader_flag(&http, &b)? == 1.0).then_some(()))
    })?;
    acknowledged += push_wave(4)?;
    let before_stop = pushed.load(Ordering::SeqCst);
    pushes_after(before_stop + 1, "a batch of the background pusher acknowledged after the takeover")?;
    stop.store(true, Ordering::SeqCst);
    let during_failover = background.join().map_err(|_| anyhow::anyhow!("pusher panicked"))??;
    ensure!(during_failover > 0, "signals were pushed while the leader died");
    acknowledged += during_failover;
    push_until_acknowledged(&http, &base, &sensor, &items("honeypot", std::iter::once(LISTED_AFTER_FAILOVER.to_string())))?;
    acknowledged += 1;
    wait_until(Duration::from_secs(30), "the new leader to list", || {
        serves(&http, &b, &consumer.token, LISTED_AFTER_FAILOVER).map(|s| s.then_some(()))
    })?;

    // Nothing lost, nothing counted twice: every acknowledged signal is stored once, the worker's
    // watermark reached the newest one, and the engine counted each exactly once.
    let url = db.url.expose().to_string();
    let (stored, max_id, watermark, counted) = wait_until(Duration::from_secs(60), "the worker to catch up", || {
        let facts = http.block_on(ledger(&url))?;
        Ok((facts.2 == facts.1).then_some(facts))
    })
    .context("ledger")?;
    ensure!(stored as usize == acknowledged, "stored {stored} signals, acknowledged {acknowledged}");
    ensure!(watermark == max_id, "watermark {watermark} at the newest signal {max_id}");
    ensure!(counted == stored, "the engine counted {counted} reports for {stored} stored signals");
    let mut server_b = b;
    drop(lb);
    ensure!(server_b.terminate()?, "the survivor stops cleanly");
    Ok(())
}
