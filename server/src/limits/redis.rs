//! The Redis limiter backend: one Lua script reads the GCRA time and both quota counters of an
//! account and advances all three only when every limit allows, so concurrent replicas cannot
//! overshoot. Keys expire with their window. Calls time out quickly so a lost Redis never holds a
//! request; the caller falls back to in-process limits.
//!
//! Checks of one account that arrive while a call for it is in flight are coalesced, the way a
//! database commits a group: they wait for that call and then go to Redis together, as one script
//! run that decides each of them in arrival order. One round trip then serves every concurrent
//! lookup of a busy key, and the decisions are exactly those of one call per check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::oneshot;

use super::{Counted, Limits, Tier, Usage, windows};

/// KEYS: gcra, day counter, month counter. ARGV: now µs, interval µs, burst, day limit, month
/// limit, day ttl s, month ttl s, then the cost of each check in arrival order. Applies
/// [`super::Usage::check`]'s arithmetic to each check in turn, writes the keys once, and returns
/// the usage it started from {tat, day, month}: the caller replays the same checks from it to
/// learn each verdict, so the answer is three numbers however many checks were decided.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local day_limit = tonumber(ARGV[4])
local month_limit = tonumber(ARGV[5])
local stored = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local tat0 = tonumber(stored[1]) or 0
local day = tonumber(stored[2]) or 0
local month = tonumber(stored[3]) or 0
local start = {tat0, day, month}
local tat = math.max(tat0, now)
local counted = false
for i = 8, #ARGV do
  local cost = tonumber(ARGV[i])
  local new_tat = tat + interval * cost
  if new_tat - interval * burst <= now and day + cost <= day_limit and month + cost <= month_limit then
    tat = new_tat
    day = day + cost
    month = month + cost
    counted = true
  end
end
if counted then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  redis.call('SET', KEYS[2], string.format('%d', day), 'EX', tonumber(ARGV[6]) + 60)
  redis.call('SET', KEYS[3], string.format('%d', month), 'EX', tonumber(ARGV[7]) + 60)
end
return start
";

/// How long one check may take before the caller falls back.
const TIMEOUT: Duration = Duration::from_millis(250);

/// Most checks decided by one script run (bounds the time Redis spends in it).
const MAX_GROUP: usize = 256;

/// A check waiting for its group to be sent.
struct Waiting {
    limits: Limits,
    cost: u32,
    now_us: i64,
    queued_at: std::time::Instant,
    reply: oneshot::Sender<Result<Counted, String>>,
}

/// Checks queued per key; a key is present while a sender task works for it.
type Queues = Arc<Mutex<HashMap<String, Vec<Waiting>>>>;

/// Limits shared by every replica through Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    namespace: String,
    queues: Queues,
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
        Ok(RedisLimiter { connection, script: Script::new(SCRIPT), namespace: "palisade:rl".into(), queues: Queues::default() })
    }

    /// Uses a key namespace of its own (tests share one Redis).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Checks and, when allowed, counts `cost` lookups, atomically. Joins the group of checks
    /// waiting for `key`, starting a sender for it when none is at work.
    pub async fn check(&self, key: &str, tier: &Tier, cost: u32, now_us: i64) -> anyhow::Result<Counted> {
        let limits = Limits::of(tier);
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting { limits, cost, now_us, queued_at: std::time::Instant::now(), reply };
        let start = {
            let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match queues.get_mut(key) {
                Some(queue) => {
                    queue.push(waiting);
                    false
                }
                None => {
                    queues.insert(key.to_string(), vec![waiting]);
                    true
                }
            }
        };
        if start {
            // A task of its own, so a request that goes away never strands the checks behind it.
            tokio::spawn(self.clone().send_groups(key.to_string()));
        }
        // The sender bounds each script run by TIMEOUT, answers every check it takes and refuses
        // to send one that waited longer than TIMEOUT, so the wait is bounded (about twice
        // TIMEOUT) without a timer per check.
        match answer.await {
            Ok(result) => result.map_err(anyhow::Error::msg),
            Err(_) => anyhow::bail!("the Redis limiter dropped the check"),
        }
    }

    /// Sends what waits for `key`, group after group, until nothing does.
    async fn send_groups(self, key: String) {
        loop {
            let waiting = {
                let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match queues.get_mut(&key) {
                    Some(queue) if !queue.is_empty() => {
                        let take = queue.len().min(MAX_GROUP);
                        queue.drain(..take).collect::<Vec<_>>()
                    }
                    _ => {
                        queues.remove(&key);
                        return;
                    }
                }
            };
            // Redis is slow and the queue grew: what waited too long falls back now.
            let (stale, mut rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|w| w.queued_at.elapsed() > TIMEOUT);
            for waiting in stale {
                let error = format!("waited over {} ms for Redis", TIMEOUT.as_millis());
                drop(waiting.reply.send(Err(error)));
            }
            // Checks under other limits (a tier changed meanwhile) go in a script run of their own.
            while !rest.is_empty() {
                let split = rest.iter().position(|w| w.limits != rest[0].limits).unwrap_or(rest.len());
                let tail = rest.split_off(split);
                if let Err(error) = self.decide(&key, rest).await {
                    // Redis failed: every check waiting now falls back at once rather than each
                    // waiting out a timeout in turn.
                    let queued = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
                    for waiting in tail.into_iter().chain(queued.into_iter().flatten()) {
                        drop(waiting.reply.send(Err(error.clone())));
                    }
                    return;
                }
                rest = tail;
            }
        }
    }

    /// One script run for checks under the same limits, answering each (with the error when
    /// Redis failed, which is also returned).
    async fn decide(&self, key: &str, group: Vec<Waiting>) -> Result<(), String> {
        let limits = group[0].limits;
        let now_us = group.iter().map(|w| w.now_us).max().unwrap_or_default();
        let (day_id, day_ttl, month_id, month_ttl) = windows(now_us);
        let ns = &self.namespace;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{ns}:{{{key}}}:gcra"))
            .key(format!("{ns}:{{{key}}}:d:{day_id}"))
            .key(format!("{ns}:{{{key}}}:m:{month_id}"))
            .arg(now_us)
            .arg(limits.interval_us)
            .arg(limits.burst)
            .arg(limits.per_day)
            .arg(limits.per_month)
            .arg(day_ttl)
            .arg(month_ttl);
        for waiting in &group {
            invocation.arg(waiting.cost);
        }
        // Their ratio is how many checks one round trip served.
        metrics::counter!("palisade_ratelimit_redis_scripts_total").increment(1);
        metrics::counter!("palisade_ratelimit_redis_checks_total").increment(group.len() as u64);
        let mut connection = self.connection.clone();
        let result: Result<(i64, u64, u64), String> =
            match tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut connection)).await {
                Err(_) => Err(format!("Redis did not answer within {} ms", TIMEOUT.as_millis())),
                Ok(Err(error)) => Err(error.to_string()),
                Ok(Ok(start)) => Ok(start),
            };
        match result {
            Ok((tat, day, month)) => {
                // The script's decisions, replayed from the usage it started from.
                let mut usage = Usage { tat, day, month };
                for waiting in group {
                    drop(waiting.reply.send(Ok(usage.check(limits, waiting.cost, now_us))));
                }
                Ok(())
            }
            Err(error) => {
                group.into_iter().for_each(|w| drop(w.reply.send(Err(error.clone()))));
                Err(error)
            }
        }
    }
}
