//! API tiers and their enforcement: a burst rate by GCRA and daily and monthly lookup quotas,
//! per account. In-process by default; with `REDIS_URL` the same decision is made atomically in
//! Redis by one Lua script, so N replicas enforce one global limit, not N of them. When Redis
//! cannot be reached the limiter answers from its in-process state, logs the change once and
//! counts every fallback (`palisade_ratelimit_redis_fallback_total`): the lookup keeps serving.
//!
//! Both backends run the same arithmetic ([`gcra`] and calendar windows in UTC), with the time
//! passed in, so tests cross a day or month boundary without waiting for it. This module knows
//! nothing of HTTP; `http/quota.rs` turns a [`Decision`] into headers and a 429.
//!
//! [`failures`] counts wrong credentials per client, so guessing stops before the database;
//! [`sources`] limits registrations and logins per client address and network; [`daily_bytes`]
//! bounds the signal bytes a machine may have stored per day.

pub mod daily_bytes;
pub mod failures;
pub mod local;
pub mod quota;
pub mod redis;
pub mod sources;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use time::OffsetDateTime;

pub use self::quota::{
    Counted, DEFAULT_TIER, Decision, LimitKey, Limits, Tier, Usage, Verdict, decide, default_tiers, gcra, interval_us,
    validate_tiers, windows,
};

/// The limiter every replica holds: the Redis backend when configured, with the in-process one
/// behind it for when Redis fails.
pub struct Limiter {
    local: local::LocalLimiter,
    redis: Option<redis::RedisLimiter>,
    degraded: AtomicBool,
    /// Added to the wall clock, so tests can move time forward.
    offset_us: AtomicI64,
}

impl Limiter {
    /// An in-process limiter.
    pub fn local() -> Self {
        Limiter {
            local: local::LocalLimiter::default(),
            redis: None,
            degraded: AtomicBool::new(false),
            offset_us: AtomicI64::new(0),
        }
    }

    /// A limiter enforcing in Redis, falling back to in-process limits when Redis fails.
    pub fn with_redis(redis: redis::RedisLimiter) -> Self {
        Limiter { redis: Some(redis), ..Limiter::local() }
    }

    /// Whether limits are shared through Redis.
    pub fn is_global(&self) -> bool {
        self.redis.is_some()
    }

    /// Moves this limiter's clock by `by` (tests: cross a window boundary without waiting).
    pub fn advance_clock(&self, by: time::Duration) {
        self.offset_us.fetch_add(by.whole_microseconds() as i64, Ordering::Relaxed);
    }

    /// Now, in µs since the epoch, on this limiter's clock.
    pub fn now_us(&self) -> i64 {
        (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64 + self.offset_us.load(Ordering::Relaxed)
    }

    /// Gives back to Redis what this replica holds leased and did not spend (at shutdown).
    pub async fn give_back_leases(&self) {
        if let Some(redis) = &self.redis
            && let Err(error) = redis.give_back_leases(true).await
        {
            tracing::warn!(%error, "cannot give back unspent rate-limit leases: they stay counted until their window ends");
        }
    }

    /// Checks and, when allowed, counts `cost` lookups for `key` under `tier`.
    pub async fn check(&self, key: &LimitKey, tier: &Tier, cost: u32) -> Decision {
        self.check_at(key, tier, cost, self.now_us()).await
    }

    /// [`Limiter::check`] at a given time (µs since the epoch).
    pub async fn check_at(&self, key: &LimitKey, tier: &Tier, cost: u32, now_us: i64) -> Decision {
        // Both backends count under the key's text, which names the Redis keys.
        let key = key.to_string();
        let key = key.as_str();
        if let Some(redis) = &self.redis {
            match redis.check(key, tier, cost, now_us).await {
                Ok(counted) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::warn!("Redis answers again: rate limits are global again");
                    }
                    return decide(tier, counted, now_us);
                }
                Err(error) => {
                    metrics::counter!("palisade_ratelimit_redis_fallback_total").increment(1);
                    metrics::counter!("palisade_redis_errors_total").increment(1);
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::error!(%error, "Redis unreachable: enforcing rate limits per replica until it answers");
                    }
                }
            }
        }
        decide(tier, self.local.check(key, tier, cost, now_us), now_us)
    }
}

/// Shared handle.
pub type SharedLimiter = Arc<Limiter>;

#[cfg(test)]
mod tests;
