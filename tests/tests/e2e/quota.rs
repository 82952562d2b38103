//! One global quota across replicas: two server processes share PostgreSQL and a Redis of this
//! test's own, and a key whose tier allows 100 lookups a day gets exactly 100 successes however
//! its requests are spread over the two. Then Redis is killed mid-run: both replicas keep
//! answering (with per-replica limits), never with a 5xx.
//!
//! Needs `DATABASE_URL` (PostgreSQL) and a `redis-server` binary; skips with a notice without
//! them, except under `CI=true`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_tests::testing::{TestDb, in_ci};
use palisade_tests::{ServerOptions, ServerProcess, free_port, wait_until};

/// The test's own Redis, killed when dropped.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> anyhow::Result<Option<Redis>> {
        let port = free_port()?;
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(_) if !in_ci() => {
                eprintln!("notice: redis-server is not installed; skipping the global quota test");
                return Ok(None);
            }
            Err(e) => return Err(e).context("redis-server is required in CI"),
        };
        let redis = Redis { child, url: format!("redis://127.0.0.1:{port}") };
        wait_until(Duration::from_secs(10), "redis-server to accept connections", || {
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()))
        })?;
        Ok(Some(redis))
    }

    fn kill(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

const TIERS: &str = r#"
[tiers.free]
lookups_per_day = 100
lookups_per_month = 1000
rate_per_sec = 100000.0
burst = 100000
bulk_max = 10
"#;

/// Sends `n` lookups spread over `servers` (round robin, 16 at a time); returns the statuses.
async fn lookups(client: &reqwest::Client, servers: &[String], key: &str, n: usize) -> anyhow::Result<Vec<u16>> {
    let mut statuses = Vec::new();
    let mut pending = Vec::new();
    for i in 0..n {
        let url = format!("{}v2/smoke/8.8.4.4", servers[i % servers.len()]);
        let request = client.get(url).header("x-api-key", key).send();
        pending.push(request);
        if pending.len() == 16 || i + 1 == n {
            for reply in futures::future::join_all(std::mem::take(&mut pending)).await {
                let reply = reply?;
                ensure!(reply.headers().contains_key("x-ratelimit-remaining"), "no rate-limit headers");
                statuses.push(reply.status().as_u16());
            }
        }
    }
    Ok(statuses)
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[test]
fn two_replicas_enforce_one_global_quota_and_survive_losing_redis() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let Some(db) = runtime.block_on(TestDb::postgres()) else { return Ok(()) };
    let Some(mut redis) = Redis::start()? else { return Ok(()) };
    let options = ServerOptions {
        env: vec![("REDIS_URL".into(), redis.url.clone()), ("PALISADE_CONSENSUS__ENABLED".into(), "false".into())],
        config_toml: TIERS.into(),
    };
    let a = ServerProcess::start(&db, options.clone())?;
    let b = ServerProcess::start(&db, options)?;
    a.admin(&["account", "create", "acme"])?;
    let key = a.admin(&["api-key", "create", "--account", "acme"])?.trim().to_string();
    a.admin(&["account", "create", "other"])?;
    let other = a.admin(&["api-key", "create", "--account", "other"])?.trim().to_string();
    let servers = vec![a.url.clone(), b.url.clone()];
    let client = reqwest::Client::new();

    let statuses = runtime.block_on(lookups(&client, &servers, &key, 160))?;
    assert_eq!(count(&statuses, 404), 100, "exactly the quota succeeds across both replicas: {statuses:?}");
    assert_eq!(count(&statuses, 429), 60, "the rest is refused: {statuses:?}");

    let before = runtime.block_on(lookups(&client, &servers, &other, 10))?;
    assert_eq!(count(&before, 404), 10);
    redis.kill();
    for server in &servers {
        let after = runtime.block_on(lookups(&client, std::slice::from_ref(server), &other, 20))?;
        assert!(after.iter().all(|s| *s == 404 || *s == 429), "{server}: only lookups and refusals without Redis: {after:?}");
        assert!(count(&after, 404) > 0, "{server} keeps serving without Redis: {after:?}");
    }
    drop((a, b));
    Ok(())
}
