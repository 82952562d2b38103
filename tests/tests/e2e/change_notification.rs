//! List changes reach every replica through Redis: two server processes share PostgreSQL and a
//! Redis of this test's own, and poll the store only once a minute. A listing made by the leader
//! (the consensus worker, from a sensor's report) and an operator's edit of a custom list on one
//! replica are served by the other within seconds, as its received-notification counter shows.
//! Then Redis is restarted: the subscriber reconnects and changes flow again, still without
//! waiting for the poll.
//!
//! Needs `DATABASE_URL` (PostgreSQL) and a `redis-server` binary; skips with a notice without
//! them, except under `CI=true`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_api::capi::LoginResponse;
use palisade_api::native::MachineCredentials;
use palisade_tests::http::Http;
use palisade_tests::testing::{TestDb, in_ci};
use palisade_tests::{ServerOptions, ServerProcess, free_port, wait_until};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The test's own Redis on a fixed port, killed when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start() -> anyhow::Result<Option<Redis>> {
        let mut redis = Redis { child: None, port: free_port()? };
        match redis.spawn() {
            Ok(()) => Ok(Some(redis)),
            Err(_) if !in_ci() => {
                eprintln!("notice: redis-server is not installed; skipping the change notification test");
                Ok(None)
            }
            Err(e) => Err(e).context("redis-server is required in CI"),
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(10), "redis-server to accept connections", || {
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()))
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Both replicas poll once a minute (the most the configuration allows) and share one JWT key.
const CONFIG: &str = r#"
[auth]
jwt_secret = "change-notification-test-secret-0123456789abcdef"

[distribution]
poll_interval_ms = 60000
"#;

/// How long a change may take to reach the other replica: well below its poll interval.
const WITHIN: Duration = Duration::from_secs(20);

const ATTACKER: &str = "45.33.32.156";

fn signal(ip: &str) -> Value {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("formats");
    json!([{
        "machine_id": "agent", "message": format!("Ip {ip} performed 'crowdsecurity/ssh-bf'"), "scenario": "crowdsecurity/ssh-bf",
        "scenario_hash": "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f",
        "scenario_trust": "certified", "scenario_version": "0.1",
        "source": {"ip": ip, "scope": "Ip", "value": ip}, "start_at": now, "stop_at": now
    }])
}

fn machine(http: &Http, server: &ServerProcess, admin: &str, name: &str, sensor: bool) -> anyhow::Result<String> {
    let reply = http.post(&format!("{}v1/admin/machines", server.url), Some(admin), &json!({"name": name, "sensor": sensor}))?;
    ensure!(reply.status == 201, "create {name}: {} {}", reply.status, reply.body);
    let created: MachineCredentials = reply.json()?;
    let body = json!({"machine_id": created.machine_id, "password": created.password, "scenarios": ["crowdsecurity/ssh-bf"]});
    let login: LoginResponse = http.post(&format!("{}v2/watchers/login", server.url), None, &body)?.json()?;
    Ok(login.token)
}

fn served(http: &Http, server: &ServerProcess, list: &str, token: &str) -> anyhow::Result<String> {
    let reply = http.get(&format!("{}v1/blocklists/{list}", server.url), Some(token))?;
    ensure!(reply.status == 200, "GET {list}: {} {}", reply.status, reply.body);
    Ok(reply.body)
}

fn add(http: &Http, server: &ServerProcess, admin: &str, list: &str, value: &str) -> anyhow::Result<()> {
    let reply = http.post(&format!("{}v1/admin/blocklists/{list}/entries", server.url), Some(admin), &json!({"add": [value]}))?;
    ensure!(reply.status == 200, "add {value}: {} {}", reply.status, reply.body);
    Ok(())
}

#[test]
fn changes_reach_the_other_replica_through_redis_before_its_poll() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let Some(db) = runtime.block_on(TestDb::postgres()) else { return Ok(()) };
    let Some(mut redis) = Redis::start()? else { return Ok(()) };
    let env = vec![("REDIS_URL".to_string(), redis.url())];
    let leader = ServerProcess::start(&db, ServerOptions { env: env.clone(), config_toml: CONFIG.into() })?;
    // The other replica runs no consensus worker: every listing is the leader's.
    let mut follower_env = env;
    follower_env.push(("PALISADE_CONSENSUS__ENABLED".into(), "false".into()));
    let follower = ServerProcess::start(&db, ServerOptions { env: follower_env, config_toml: CONFIG.into() })?;
    let http = Http::new()?;
    let admin = leader.admin_token()?;
    let sensor = machine(&http, &leader, &admin, "honeypot-1", true)?;
    let consumer = machine(&http, &leader, &admin, "consumer-1", false)?;
    ensure!(!served(&http, &follower, "community", &consumer)?.contains(ATTACKER), "nothing is listed yet");

    // A listing committed by the leader's consensus worker.
    let reply = http.post(&format!("{}v2/signals", leader.url), Some(&sensor), &signal(ATTACKER))?;
    ensure!(reply.status == 200, "push: {} {}", reply.status, reply.body);
    wait_until(WITHIN, "the leader's listing on the other replica", || {
        Ok(served(&http, &follower, "community", &consumer)?.contains(ATTACKER).then_some(()))
    })?;
    let received = http.metric_sum(&follower.url, "palisade_list_change_received_total")?;
    ensure!(received >= 1.0, "the follower was told through Redis, not by its poll ({received})");

    // An operator's edit of a custom list on the leader.
    let reply = http.post(
        &format!("{}v1/admin/blocklists", leader.url),
        Some(&admin),
        &json!({"name": "partners", "visibility": "public"}),
    )?;
    ensure!(reply.status == 201, "create list: {} {}", reply.status, reply.body);
    ensure!(served(&http, &follower, "partners", &consumer)?.is_empty(), "the new list starts empty");
    add(&http, &leader, &admin, "partners", "81.2.69.160")?;
    wait_until(WITHIN, "the custom list edit on the other replica", || {
        Ok(served(&http, &follower, "partners", &consumer)?.contains("81.2.69.160").then_some(()))
    })?;

    // Redis restarts: the subscriber comes back and changes flow again. Each probe makes a new
    // change, so the first one made after both sides reconnected is the one observed.
    redis.kill();
    redis.spawn()?;
    let before = http.metric_sum(&follower.url, "palisade_list_change_received_total")?;
    let mut n = 0;
    wait_until(WITHIN, "a change after the Redis restart on the other replica", || {
        n += 1;
        add(&http, &leader, &admin, "partners", &format!("185.220.101.{n}"))?;
        let list = served(&http, &follower, "partners", &consumer)?;
        Ok(list.contains("185.220.101.").then_some(()))
    })?;
    let after = http.metric_sum(&follower.url, "palisade_list_change_received_total")?;
    ensure!(after > before, "delivered through the restored subscription ({before} -> {after})");
    drop((leader, follower));
    Ok(())
}
