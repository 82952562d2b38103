//! The Redis limiter backend: one Lua script reads the GCRA time and both quota counters of an
//! account and advances all three only when every limit allows, so concurrent replicas cannot
//! overshoot. Keys expire with their window. Calls time out quickly so a lost Redis never holds a
//! request; the caller falls back to in-process limits.

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use super::{Counted, Tier, Verdict, interval_us, windows};

/// KEYS: gcra, day counter, month counter. ARGV: now µs, interval µs, burst, cost, day limit,
/// month limit, day ttl s, month ttl s. Returns {verdict (1 allowed, 0 burst, 2 quota), day used,
/// month used, wait µs}. The arithmetic is [`super::gcra`]'s.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
local day = tonumber(redis.call('GET', KEYS[2]) or 0)
local month = tonumber(redis.call('GET', KEYS[3]) or 0)
if allow_at > now then return {0, day, month, allow_at - now} end
if day + cost > tonumber(ARGV[5]) or month + cost > tonumber(ARGV[6]) then return {2, day, month, 0} end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
day = redis.call('INCRBY', KEYS[2], cost)
if day == cost then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]) + 60) end
month = redis.call('INCRBY', KEYS[3], cost)
if month == cost then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[8]) + 60) end
return {1, day, month, 0}
";

/// How long one check may take before the caller falls back.
const TIMEOUT: Duration = Duration::from_millis(250);

/// Limits shared by every replica through Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    namespace: String,
}

impl RedisLimiter {
    /// Connects (the connection manager reconnects by itself after a loss).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| anyhow::anyhow!("timed out connecting to Redis"))??;
        Ok(RedisLimiter { connection, script: Script::new(SCRIPT), namespace: "palisade:rl".into() })
    }

    /// Uses a key namespace of its own (tests share one Redis).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Checks and, when allowed, counts `cost` lookups, atomically.
    pub async fn check(&self, key: &str, tier: &Tier, cost: u32, now_us: i64) -> anyhow::Result<Counted> {
        let (day_id, day_ttl, month_id, month_ttl) = windows(now_us);
        let ns = &self.namespace;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{ns}:{{{key}}}:gcra"))
            .key(format!("{ns}:{{{key}}}:d:{day_id}"))
            .key(format!("{ns}:{{{key}}}:m:{month_id}"))
            .arg(now_us)
            .arg(interval_us(tier))
            .arg(tier.burst)
            .arg(cost)
            .arg(tier.lookups_per_day)
            .arg(tier.lookups_per_month)
            .arg(day_ttl)
            .arg(month_ttl);
        let mut connection = self.connection.clone();
        let (verdict, day_used, month_used, wait): (i64, u64, u64, i64) =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| anyhow::anyhow!("Redis did not answer within {} ms", TIMEOUT.as_millis()))??;
        let verdict = match verdict {
            1 => Verdict::Allowed,
            0 => Verdict::Burst(wait),
            _ => Verdict::Quota,
        };
        Ok(Counted { verdict, day_used, month_used })
    }
}
