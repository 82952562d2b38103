//! The circuit breaker against a Redis of the test's own: started on a free port, stopped while
//! lookups go on, started again. Attempts are counted by the limiter's round trips, not timed.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use time::OffsetDateTime;

use super::{BreakerState, RedisLimiter};
use crate::limits::{LimitKey, Limiter, Tier};

/// Tests that stop a server one at a time: its free port is not handed to another meanwhile.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `redis-server` this test started, stopped when dropped. Its password is its own, so a
/// server another process started on the port meanwhile would not pass for it.
struct PrivateRedis {
    port: u16,
    password: String,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = crate::testing::free_port().expect("a free port");
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut redis = PrivateRedis { port, password, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// Starts the server (again) on its port, without persistence.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", &self.password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (it is installed wherever the tests run)");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }

    /// Waits until the server answers a PING (bounded).
    async fn answering(&self) {
        for _ in 0..200 {
            if let Ok(client) = ::redis::Client::open(self.url())
                && let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && ::redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} does not answer", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Few lookups left, so no lease is made and every check that asks Redis is one round trip.
fn tier() -> Tier {
    Tier {
        lookups_per_day: 100,
        lookups_per_month: 1_000,
        rate_per_sec: 1_000.0,
        burst: 100,
        bulk_max: 10,
        blocklists: BTreeMap::new(),
    }
}

fn now_us() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

const SECOND: i64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_redis_is_asked_once_then_probed_and_used_again_once_back() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut server = PrivateRedis::start();
    server.answering().await;
    let redis =
        RedisLimiter::connect(&server.url()).await.expect("the private Redis answers").with_breaker(Duration::from_secs(5));
    let limiter = Limiter::with_redis(redis.clone());
    let (key, tier) = (LimitKey::Account(1), tier());
    let start = now_us();
    assert!(limiter.check_at(&key, &tier, 1, start).await.allowed);
    assert_eq!((redis.round_trips(), redis.breaker_state()), (1, BreakerState::Closed), "Redis decides");

    server.stop();
    for i in 0..50 {
        assert!(limiter.check_at(&key, &tier, 1, start + i * 1_000).await.allowed, "lookups are served from local limits");
    }
    assert_eq!(redis.round_trips(), 2, "only the first lookup after the loss asks Redis (and pays for it)");
    assert!(matches!(redis.breaker_state(), BreakerState::Open { .. }), "{:?}", redis.breaker_state());

    // Once the breaker's time is up, one lookup probes; Redis is still down, so it opens again.
    let later = start + 6 * SECOND;
    for i in 0..20 {
        assert!(limiter.check_at(&key, &tier, 1, later + i * 1_000).await.allowed, "served while probing");
    }
    // The probe is one script run at most (none when it joins the failed run's last moments).
    let probed = redis.round_trips();
    assert!(probed <= 3, "{probed} runs: one probe, the others stay local");
    assert!(matches!(redis.breaker_state(), BreakerState::Open { .. }), "the failed probe opens it again");
    assert!(limiter.check_at(&key, &tier, 1, later + 4 * SECOND).await.allowed);
    assert_eq!(redis.round_trips(), probed, "not asked before the new opening ends");

    // Back: a probe closes the breaker (the connection may need a probe or two to come back).
    server.restart();
    server.answering().await;
    let mut at = later;
    for _ in 0..20 {
        at += 6 * SECOND;
        assert!(limiter.check_at(&key, &tier, 1, at).await.allowed);
        if redis.breaker_state() == BreakerState::Closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(redis.breaker_state(), BreakerState::Closed, "Redis is used again once it answers");
    let closed_at = redis.round_trips();
    for i in 1..=5 {
        assert!(limiter.check_at(&key, &tier, 1, at + i).await.allowed);
    }
    assert_eq!(redis.round_trips(), closed_at + 5, "every lookup goes to Redis again");
    let (day_id, ..) = crate::limits::windows(at);
    let client = ::redis::Client::open(server.url()).expect("url");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let counted: u64 =
        ::redis::cmd("GET").arg(format!("palisade:rl:{{acct:1}}:d:{day_id}")).query_async(&mut connection).await.expect("GET");
    assert!(counted >= 6, "the restarted Redis counts the closing probe and the five lookups after it: {counted}");
}

#[tokio::test]
async fn a_breaker_of_zero_never_opens() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut server = PrivateRedis::start();
    server.answering().await;
    let redis = RedisLimiter::connect(&server.url()).await.expect("the private Redis answers").with_breaker(Duration::ZERO);
    let limiter = Limiter::with_redis(redis.clone());
    server.stop();
    let start = now_us();
    for i in 0..3 {
        assert!(limiter.check_at(&LimitKey::Account(1), &tier(), 1, start + i).await.allowed);
    }
    assert_eq!((redis.round_trips(), redis.breaker_state()), (3, BreakerState::Closed), "every lookup asks Redis");
}
