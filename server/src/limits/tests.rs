//! Limiter behaviour on every backend this machine offers: in-process always, Redis when
//! `REDIS_URL` is set (each test in a namespace of its own).

use std::collections::BTreeMap;

use time::macros::datetime;

use super::*;

const ACCOUNT_1: LimitKey = LimitKey::Account(1);

fn tier(day: u64, month: u64, rate: f64, burst: u32) -> Tier {
    Tier { lookups_per_day: day, lookups_per_month: month, rate_per_sec: rate, burst, bulk_max: 10, blocklists: BTreeMap::new() }
}

fn us(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1000) as i64
}

async fn limiters() -> Vec<(&'static str, Limiter)> {
    let mut all = vec![("local", Limiter::local())];
    if let Some(url) = crate::testing::service_url("REDIS_URL", "Redis limiter") {
        let namespace = format!("palisade:test:{}", uuid::Uuid::new_v4().simple());
        let redis = redis::RedisLimiter::connect(&url).await.expect("REDIS_URL answers").with_namespace(namespace);
        all.push(("redis", Limiter::with_redis(redis)));
    }
    all
}

#[tokio::test]
async fn daily_quota_runs_out_and_resets_at_midnight_utc() {
    for (label, limiter) in limiters().await {
        let t = tier(3, 100, 1000.0, 100);
        let now = us(datetime!(2026-11-25 23:59:00 UTC));
        for left in [2, 1, 0] {
            let d = limiter.check_at(&ACCOUNT_1, &t, 1, now).await;
            assert!(d.allowed, "{label}");
            assert_eq!((d.limit, d.remaining, d.reset_secs), (3, left, 60), "{label}");
        }
        let refused = limiter.check_at(&ACCOUNT_1, &t, 1, now + 1_000_000).await;
        assert!(!refused.allowed, "{label}: over the daily quota");
        assert_eq!((refused.remaining, refused.retry_after_secs), (0, 59), "{label}: retry at midnight");
        assert!(!limiter.check_at(&ACCOUNT_1, &t, 1, us(datetime!(2026-11-25 23:59:59.999 UTC))).await.allowed, "{label}");
        let next_day = limiter.check_at(&ACCOUNT_1, &t, 1, us(datetime!(2026-11-26 00:00:00 UTC))).await;
        assert!(next_day.allowed, "{label}: a new day");
        assert_eq!((next_day.remaining, next_day.reset_secs), (2, 86_400), "{label}");
        assert!(limiter.check_at(&LimitKey::Account(2), &t, 1, now).await.allowed, "{label}: other accounts are independent");
    }
}

#[tokio::test]
async fn monthly_quota_binds_across_days_and_resets_on_the_first() {
    for (label, limiter) in limiters().await {
        let t = tier(5, 7, 1000.0, 100);
        let day1 = us(datetime!(2026-11-29 12:00:00 UTC));
        assert!(limiter.check_at(&ACCOUNT_1, &t, 5, day1).await.allowed, "{label}: a bulk of five");
        let day2 = us(datetime!(2026-11-30 12:00:00 UTC));
        let d = limiter.check_at(&ACCOUNT_1, &t, 1, day2).await;
        assert_eq!((d.allowed, d.limit, d.remaining, d.reset_secs), (true, 7, 1, 12 * 3600), "{label}: month binds");
        assert!(!limiter.check_at(&ACCOUNT_1, &t, 2, day2).await.allowed, "{label}: a bulk over the rest is refused whole");
        assert!(limiter.check_at(&ACCOUNT_1, &t, 1, day2).await.allowed, "{label}");
        assert!(!limiter.check_at(&ACCOUNT_1, &t, 1, day2).await.allowed, "{label}: month spent");
        assert!(limiter.check_at(&ACCOUNT_1, &t, 1, us(datetime!(2026-12-01 00:00:00 UTC))).await.allowed, "{label}: new month");
    }
}

#[tokio::test]
async fn burst_is_enforced_by_gcra_and_refills_at_the_rate() {
    for (label, limiter) in limiters().await {
        let t = tier(1000, 1000, 2.0, 4);
        let now = us(datetime!(2026-11-25 12:00:00 UTC));
        for i in 0..4 {
            assert!(limiter.check_at(&ACCOUNT_1, &t, 1, now).await.allowed, "{label}: burst request {i}");
        }
        let refused = limiter.check_at(&ACCOUNT_1, &t, 1, now).await;
        assert!(!refused.allowed, "{label}: fifth back to back");
        assert_eq!(refused.retry_after_secs, 1, "{label}: half a second, rounded up");
        assert_eq!(refused.remaining, 996, "{label}: a refused request is not counted");
        assert!(limiter.check_at(&ACCOUNT_1, &t, 1, now + 500_000).await.allowed, "{label}: one more after 1/rate");
        assert!(!limiter.check_at(&ACCOUNT_1, &t, 1, now + 500_000).await.allowed, "{label}");
    }
}

#[test]
fn windows_end_at_utc_midnight_and_the_first_of_the_month() {
    let (day, day_left, month, month_left) = windows(us(datetime!(2026-12-31 23:00:00 UTC)));
    assert_eq!((day_left, month_left), (3600, 3600));
    let (next_day, _, next_month, _) = windows(us(datetime!(2027-01-01 00:00:00 UTC)));
    assert_eq!((next_day - day, next_month - month), (1, 1));
}

#[test]
fn default_tiers_are_valid_and_ordered() {
    let tiers = default_tiers();
    validate_tiers(&tiers).expect("valid");
    assert!(tiers["free"].lookups_per_day < tiers["basic"].lookups_per_day);
    assert_eq!(tiers["basic"].lookups_per_day, 1_000);
    let mut broken = tiers.clone();
    broken.remove("free");
    assert!(validate_tiers(&broken).unwrap_err().to_string().contains("free"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_of_one_key_count_exactly() {
    for (label, limiter) in limiters().await {
        let limiter = Arc::new(limiter);
        let t = tier(100, 1000, 1_000_000.0, 1_000);
        let now = us(datetime!(2026-11-25 12:00:00 UTC));
        // More checks than one Redis group holds, all at once: the allowed ones are exactly the
        // quota, and each saw a different count, as if they had been made one after another.
        let checks: Vec<_> = (0..300)
            .map(|_| {
                let (limiter, t) = (limiter.clone(), t.clone());
                tokio::spawn(async move { limiter.check_at(&ACCOUNT_1, &t, 1, now).await })
            })
            .collect();
        let mut remaining = Vec::new();
        for check in checks {
            let decision = check.await.expect("check task");
            if decision.allowed {
                remaining.push(decision.remaining);
            } else {
                assert_eq!(decision.remaining, 0, "{label}: refused only once the quota is spent");
            }
        }
        remaining.sort_unstable();
        assert_eq!(remaining, (0..100).collect::<Vec<u64>>(), "{label}: 100 allowed, each counted once");
        assert!(!limiter.check_at(&ACCOUNT_1, &t, 1, now).await.allowed, "{label}");
    }
}

async fn redis_pair() -> Option<(String, String, redis::RedisLimiter, redis::RedisLimiter)> {
    let url = crate::testing::service_url("REDIS_URL", "Redis limiter")?;
    let namespace = format!("palisade:test:{}", uuid::Uuid::new_v4().simple());
    let one = redis::RedisLimiter::connect(&url).await.expect("REDIS_URL answers").with_namespace(namespace.clone());
    let two = redis::RedisLimiter::connect(&url).await.expect("REDIS_URL answers").with_namespace(namespace.clone());
    Some((url, namespace, one, two))
}

async fn day_count(url: &str, namespace: &str, key: &str, now_us: i64) -> u64 {
    let (day_id, ..) = windows(now_us);
    let client = ::redis::Client::open(url).expect("url");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let count: Option<u64> =
        ::redis::cmd("GET").arg(format!("{namespace}:{{{key}}}:d:{day_id}")).query_async(&mut connection).await.expect("GET");
    count.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_spends_a_lease_locally_and_gives_back_what_it_did_not_spend() {
    let Some((url, namespace, redis, _)) = redis_pair().await else { return };
    let t = tier(1_000_000, 10_000_000, 1_000_000.0, 1_000_000);
    let now = us(OffsetDateTime::now_utc());
    for _ in 0..1_000 {
        let counted = redis.check("acct:1", &t, 1, now).await.expect("Redis answers");
        assert_eq!(counted.verdict, Verdict::Allowed);
    }
    assert!(redis.round_trips() <= 40, "{} round trips for 1,000 lookups: leases are not used", redis.round_trips());
    assert!(day_count(&url, &namespace, "acct:1", now).await > 1_000, "Redis counts the unspent lease too");
    redis.give_back_leases(true).await.expect("give back");
    assert_eq!(day_count(&url, &namespace, "acct:1", now).await, 1_000, "exactly the lookups made, once given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_leases_allow_exactly_the_quota() {
    let Some((url, namespace, one, two)) = redis_pair().await else { return };
    let t = tier(5_000, 100_000, 1_000_000.0, 1_000_000);
    let now = us(OffsetDateTime::now_utc());
    let (one, two) = (Arc::new(one), Arc::new(two));
    let mut allowed = 0;
    for round in 0..600 {
        // Concurrent checks on both replicas, well past the quota.
        let checks: Vec<_> = (0..20)
            .map(|i| {
                let (replica, t) = (if (round + i) % 2 == 0 { one.clone() } else { two.clone() }, t.clone());
                tokio::spawn(async move { replica.check("acct:1", &t, 1, now).await.expect("Redis answers") })
            })
            .collect();
        for check in checks {
            if check.await.expect("task").verdict == Verdict::Allowed {
                allowed += 1;
            }
        }
    }
    assert_eq!(allowed, 5_000, "leases never let replicas exceed the quota, and near it checks go one by one");
    one.give_back_leases(true).await.expect("give back");
    two.give_back_leases(true).await.expect("give back");
    assert_eq!(day_count(&url, &namespace, "acct:1", now).await, 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_counted_in_redis_under_its_acct_key() {
    let Some((url, namespace, redis, _)) = redis_pair().await else { return };
    let limiter = Limiter::with_redis(redis);
    let t = tier(1_000, 10_000, 1_000.0, 1_000);
    let now = us(OffsetDateTime::now_utc());
    assert!(limiter.check_at(&ACCOUNT_1, &t, 3, now).await.allowed);
    limiter.give_back_leases().await;
    assert_eq!(day_count(&url, &namespace, "acct:1", now).await, 3, "the key's text names the Redis counters");
}
