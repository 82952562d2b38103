//! The Redis limiter backend: one Lua script reads the GCRA time and both quota counters of an
//! account and advances all three only when every limit allows, so concurrent replicas cannot
//! overshoot. Keys expire with their window. Calls time out quickly so a lost Redis never holds a
//! request; the caller falls back to in-process limits.
//!
//! Checks of one account that arrive while a call for it is in flight are coalesced, the way a
//! database commits a group: they wait for that call and then go to Redis together, as one script
//! run that decides each of them in arrival order. One round trip then serves every concurrent
//! lookup of a busy key, and the decisions are exactly those of one call per check.
//!
//! A key with plenty left also gets a lease: the same script run reserves up to 64 lookups (at
//! most 1/64 of what its burst and quotas still allow) for this replica, counted in Redis at once,
//! and the replica spends them without a round trip. What is not spent within a second is given
//! back (by the key's next script run or a sweeper). Replicas together never exceed a limit, since
//! every lookup was counted in Redis before it was allowed; near any limit no lease is made and
//! checks go one by one, so a quota is used exactly. Between replicas, `X-RateLimit-Remaining`
//! does not see what the others hold leased (at most 64 each); a replica that dies holding a
//! lease leaves those lookups counted until the window ends.
//!
//! A circuit breaker keeps a lost Redis from costing every lookup its timeout: after a failed
//! call the limiter stops asking Redis for a while ([`DEFAULT_BREAKER_OPEN`], configurable) and
//! each check fails at once, so the caller serves its local limits; then a single check probes
//! Redis (half-open) while the others still fall back, and its answer closes the breaker or opens
//! it again. `palisade_ratelimit_redis_breaker_state` shows where it stands (0 closed, 1 open,
//! 2 half-open), `palisade_ratelimit_redis_breaker_opened_total` counts its openings and
//! `palisade_ratelimit_redis_breaker_skipped_total` the checks it kept from Redis. Its clock is
//! the time a check is made at, the same as the limits'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::oneshot;

use super::quota::{Counted, Limits, Tier, Usage, windows};

/// KEYS: gcra, day counter, month counter. ARGV: now µs, interval µs, burst, day limit, month
/// limit, day ttl s, month ttl s, then a lease given back (lookups on the GCRA time, on the day
/// counter, on the month counter), the largest lease wanted, then the cost of each check in
/// arrival order.
///
/// Takes back the lease, applies [`super::quota::Usage::check`]'s arithmetic to each check in turn,
/// then reserves a new lease when plenty is left (at most 1/64 of what the burst and both quotas
/// still allow, and only two or more: a key near any limit is decided check by check). Writes
/// the keys once and returns the usage it started from, after the give-back, and the lease:
/// {tat, day, month, lease}. The caller replays the checks from that usage to learn each verdict.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local day_limit = tonumber(ARGV[4])
local month_limit = tonumber(ARGV[5])
local stored = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local tat0 = (tonumber(stored[1]) or 0) - interval * tonumber(ARGV[8])
local day = math.max((tonumber(stored[2]) or 0) - tonumber(ARGV[9]), 0)
local month = math.max((tonumber(stored[3]) or 0) - tonumber(ARGV[10]), 0)
local start = {tat0, day, month}
local tat = math.max(tat0, now)
local changed = tonumber(ARGV[8]) + tonumber(ARGV[9]) + tonumber(ARGV[10]) > 0
for i = 12, #ARGV do
  local cost = tonumber(ARGV[i])
  local new_tat = tat + interval * cost
  if new_tat - interval * burst <= now and day + cost <= day_limit and month + cost <= month_limit then
    tat = new_tat
    day = day + cost
    month = month + cost
    changed = true
  end
end
local lease = 0
if tonumber(ARGV[11]) > 0 then
  local free = math.min(math.floor((now + interval * burst - tat) / interval), day_limit - day, month_limit - month)
  lease = math.min(tonumber(ARGV[11]), math.floor(free / 64))
  if lease < 2 then lease = 0 end
  if lease > 0 then
    tat = tat + interval * lease
    day = day + lease
    month = month + lease
    changed = true
  end
end
if changed then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  redis.call('SET', KEYS[2], string.format('%d', day), 'EX', tonumber(ARGV[6]) + 60)
  redis.call('SET', KEYS[3], string.format('%d', month), 'EX', tonumber(ARGV[7]) + 60)
end
start[4] = lease
return start
";

/// How long one check may take before the caller falls back.
const TIMEOUT: Duration = Duration::from_millis(250);

/// How long the limiter stops asking Redis after a failure, unless configured otherwise.
pub const DEFAULT_BREAKER_OPEN: Duration = Duration::from_secs(5);

/// Where the circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Redis answers: every check goes to it.
    Closed,
    /// Redis failed at `since_us`: no check goes to it before `until_us`.
    Open {
        /// When it opened (µs since the epoch, on the checks' clock).
        since_us: i64,
        /// When a probe may go.
        until_us: i64,
    },
    /// One check is probing Redis since `since_us`; the others fall back until it answers (or,
    /// should the probe be abandoned, for as long as an opening lasts).
    HalfOpen {
        /// When the probe went.
        since_us: i64,
    },
}

impl BreakerState {
    /// The value of `palisade_ratelimit_redis_breaker_state`.
    fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open { .. } => 1.0,
            BreakerState::HalfOpen { .. } => 2.0,
        }
    }
}

/// What the breaker lets a check do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Go to Redis.
    Ask,
    /// Go to Redis as the one half-open probe.
    Probe,
    /// Do not ask Redis.
    Skip,
}

/// The circuit breaker in front of Redis (see the module documentation).
#[derive(Debug)]
struct Breaker {
    state: Mutex<BreakerState>,
    /// How long it stays open; zero: it never opens.
    open_us: i64,
}

impl Breaker {
    fn new(open_for: Duration) -> Self {
        let open_us = i64::try_from(open_for.as_micros()).unwrap_or(i64::MAX);
        metrics::gauge!("palisade_ratelimit_redis_breaker_state").set(0.0);
        Breaker { state: Mutex::new(BreakerState::Closed), open_us }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(state: &mut BreakerState, to: BreakerState) {
        *state = to;
        metrics::gauge!("palisade_ratelimit_redis_breaker_state").set(to.gauge());
    }

    /// Whether a check made at `now_us` may ask Redis.
    fn admit(&self, now_us: i64) -> Admission {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed => Admission::Ask,
            // A clock that went back before the opening does not keep the breaker open longer.
            BreakerState::Open { since_us, until_us } if now_us >= until_us || now_us < since_us => {
                Self::set(&mut state, BreakerState::HalfOpen { since_us: now_us });
                Admission::Probe
            }
            BreakerState::HalfOpen { since_us } if now_us >= since_us.saturating_add(self.open_us) || now_us < since_us => {
                Self::set(&mut state, BreakerState::HalfOpen { since_us: now_us });
                Admission::Probe
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => {
                metrics::counter!("palisade_ratelimit_redis_breaker_skipped_total").increment(1);
                Admission::Skip
            }
        }
    }

    /// Takes the outcome of a call admitted as `admission` at `now_us` into account.
    fn record(&self, admission: Admission, ok: bool, now_us: i64) {
        let mut state = self.lock();
        match (ok, *state) {
            (true, BreakerState::Closed) => {}
            (true, _) => Self::set(&mut state, BreakerState::Closed),
            // Nothing opens a breaker that is off; a late failure does not prolong an opening.
            _ if self.open_us == 0 => {}
            (false, BreakerState::Open { .. }) => {}
            (false, BreakerState::HalfOpen { .. }) if admission != Admission::Probe => {}
            (false, _) => {
                metrics::counter!("palisade_ratelimit_redis_breaker_opened_total").increment(1);
                Self::set(&mut state, BreakerState::Open { since_us: now_us, until_us: now_us.saturating_add(self.open_us) });
            }
        }
    }
}

/// Most checks decided by one script run (bounds the time Redis spends in it).
const MAX_GROUP: usize = 256;

/// Most lookups one replica reserves for a key at a time.
const MAX_LEASE: u64 = 64;

/// How long a replica keeps the unspent part of a lease before giving it back.
const LEASE_TTL: Duration = Duration::from_secs(1);

/// Lookups of a key reserved in Redis by this replica (counted there already) and spent here
/// without a round trip. What is not spent within [`LEASE_TTL`] is given back.
#[derive(Debug, Clone, Copy)]
struct Lease {
    limits: Limits,
    day_id: i64,
    month_id: i64,
    /// Reserved and not spent yet.
    left: u64,
    /// The day and month counts in Redis right after the reservation (the lease included).
    day_used: u64,
    month_used: u64,
    granted: std::time::Instant,
}

impl Lease {
    fn fresh(&self) -> bool {
        self.granted.elapsed() < LEASE_TTL
    }
}

/// What a script run gives back of a lease: lookups on the GCRA time, the day and the month.
#[derive(Debug, Default, Clone, Copy)]
struct GiveBack {
    tat: u64,
    day: u64,
    month: u64,
}

impl GiveBack {
    /// The unspent part of `lease`, as a run made under `limits` in the windows given can take it.
    fn of(lease: Option<Lease>, limits: Limits, day_id: i64, month_id: i64) -> Self {
        let Some(lease) = lease else { return GiveBack::default() };
        GiveBack {
            tat: if lease.limits.interval_us == limits.interval_us { lease.left } else { 0 },
            day: if lease.day_id == day_id { lease.left } else { 0 },
            month: if lease.month_id == month_id { lease.left } else { 0 },
        }
    }
}

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

/// This replica's leases, per key.
type Leases = Arc<Mutex<HashMap<String, Lease>>>;

/// Limits shared by every replica through Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    namespace: String,
    queues: Queues,
    leases: Leases,
    round_trips: Arc<std::sync::atomic::AtomicU64>,
    breaker: Arc<Breaker>,
}

impl RedisLimiter {
    /// Connects (the connection manager reconnects by itself after a loss).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let limiter = RedisLimiter {
            connection: crate::redis_link::connect(url, TIMEOUT).await?,
            script: Script::new(SCRIPT),
            namespace: "palisade:rl".into(),
            queues: Queues::default(),
            leases: Leases::default(),
            round_trips: Arc::default(),
            breaker: Arc::new(Breaker::new(DEFAULT_BREAKER_OPEN)),
        };
        tokio::spawn(limiter.clone().give_back_stale_leases());
        Ok(limiter)
    }

    /// Every [`LEASE_TTL`], gives back what this replica reserved and did not spend in time.
    async fn give_back_stale_leases(self) {
        loop {
            tokio::time::sleep(LEASE_TTL).await;
            if let Err(error) = self.give_back_leases(false).await {
                tracing::debug!(%error, "cannot give back unspent rate-limit leases yet");
            }
        }
    }

    /// Gives back the unspent leases of this replica: the stale ones, or all of them.
    pub async fn give_back_leases(&self, all: bool) -> Result<(), String> {
        let stale: Vec<(String, Lease)> = {
            let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let keys: Vec<String> = leases.iter().filter(|(_, l)| all || !l.fresh()).map(|(k, _)| k.clone()).collect();
            keys.into_iter().filter_map(|k| leases.remove(&k).map(|l| (k, l))).collect()
        };
        let mut result = Ok(());
        for (key, lease) in stale {
            let now_us = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64;
            // While the breaker is open the lease waits (kept) rather than pay a timeout.
            if matches!(self.breaker_state(), BreakerState::Open { until_us, .. } if now_us < until_us) {
                self.keep_lease(&key, lease);
                result = Err("Redis failed recently: leases are given back after the breaker closes".to_string());
                continue;
            }
            let (day_id, _, month_id, _) = windows(now_us);
            let give_back = GiveBack::of(Some(lease), lease.limits, day_id, month_id);
            if let Err(error) = self.run(&key, lease.limits, now_us, give_back, false, &[]).await {
                self.keep_lease(&key, lease);
                result = Err(error);
            }
        }
        result
    }

    /// Spends `cost` of this replica's lease on `key`, if it holds enough of a fresh one made
    /// under the same limits and windows.
    fn spend_lease(&self, key: &str, limits: Limits, cost: u32, now_us: i64) -> Option<Counted> {
        let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let lease = leases.get_mut(key)?;
        let (day_id, _, month_id, _) = windows(now_us);
        let usable = lease.limits == limits && lease.day_id == day_id && lease.month_id == month_id && lease.fresh();
        if !usable || lease.left < u64::from(cost) {
            return None;
        }
        lease.left -= u64::from(cost);
        // As Redis would count if the rest were given back now (other replicas' use since the
        // reservation aside).
        let counted = Counted {
            verdict: super::quota::Verdict::Allowed,
            day_used: lease.day_used - lease.left,
            month_used: lease.month_used - lease.left,
        };
        metrics::counter!("palisade_ratelimit_redis_leased_total").increment(1);
        Some(counted)
    }

    /// Uses a key namespace of its own (tests share one Redis).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Stops asking Redis for `open_for` after a failure (zero: keeps asking at every check).
    pub fn with_breaker(mut self, open_for: Duration) -> Self {
        self.breaker = Arc::new(Breaker::new(open_for));
        self
    }

    /// Where the circuit breaker stands.
    pub fn breaker_state(&self) -> BreakerState {
        *self.breaker.lock()
    }

    /// Checks and, when allowed, counts `cost` lookups, atomically. Joins the group of checks
    /// waiting for `key`, starting a sender for it when none is at work.
    pub async fn check(&self, key: &str, tier: &Tier, cost: u32, now_us: i64) -> anyhow::Result<Counted> {
        let limits = Limits::of(tier);
        if let Some(counted) = self.spend_lease(key, limits, cost, now_us) {
            return Ok(counted);
        }
        let admission = self.breaker.admit(now_us);
        if admission == Admission::Skip {
            anyhow::bail!("Redis failed recently: not asked until the breaker's probe");
        }
        let result = self.queue_check(key, limits, cost, now_us).await;
        self.breaker.record(admission, result.is_ok(), now_us);
        result
    }

    /// Queues a check for `key` and waits for its answer, starting a sender for the key when
    /// none is at work.
    async fn queue_check(&self, key: &str, limits: Limits, cost: u32, now_us: i64) -> anyhow::Result<Counted> {
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
            let (stale, waiting): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|w| w.queued_at.elapsed() > TIMEOUT);
            for waiting in stale {
                let error = format!("waited over {} ms for Redis", TIMEOUT.as_millis());
                drop(waiting.reply.send(Err(error)));
            }
            // Checks that queued while the last run reserved a lease are served from it.
            let mut rest = Vec::with_capacity(waiting.len());
            for waiting in waiting {
                match self.spend_lease(&key, waiting.limits, waiting.cost, waiting.now_us) {
                    Some(counted) => drop(waiting.reply.send(Ok(counted))),
                    None => rest.push(waiting),
                }
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
    /// Redis failed, which is also returned). The run also gives back this replica's lease on
    /// the key and reserves a new one when plenty is left.
    async fn decide(&self, key: &str, group: Vec<Waiting>) -> Result<(), String> {
        let limits = group[0].limits;
        let now_us = group.iter().map(|w| w.now_us).max().unwrap_or_default();
        let (day_id, _, month_id, _) = windows(now_us);
        let held = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
        let give_back = GiveBack::of(held, limits, day_id, month_id);
        let costs: Vec<u32> = group.iter().map(|w| w.cost).collect();
        match self.run(key, limits, now_us, give_back, true, &costs).await {
            Ok((start, lease)) => {
                // The script's decisions, replayed from the usage it started from.
                let mut usage = start;
                let counted: Vec<Counted> = group.iter().map(|w| usage.check(limits, w.cost, now_us)).collect();
                // The lease is in place before anyone is answered, so the next check finds it.
                if lease > 0 {
                    let lease = Lease {
                        limits,
                        day_id,
                        month_id,
                        left: lease,
                        day_used: usage.day + lease,
                        month_used: usage.month + lease,
                        granted: std::time::Instant::now(),
                    };
                    self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.to_string(), lease);
                }
                for (waiting, counted) in group.into_iter().zip(counted) {
                    drop(waiting.reply.send(Ok(counted)));
                }
                Ok(())
            }
            Err(error) => {
                group.into_iter().for_each(|w| drop(w.reply.send(Err(error.clone()))));
                // Still reserved in Redis: kept, to be spent or given back later.
                if let Some(held) = held {
                    self.keep_lease(key, held);
                }
                Err(error)
            }
        }
    }

    /// Puts back a lease a failed run could not give back (unless a newer one is there).
    fn keep_lease(&self, key: &str, lease: Lease) {
        let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        leases.entry(key.to_string()).or_insert(lease);
    }

    /// Script runs made by this replica (each one Redis round trip).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One script run on `key`: gives back `give_back`, decides checks of `costs` in turn and,
    /// when `lease`, reserves a lease. Returns the usage the checks started from and the lease.
    async fn run(
        &self,
        key: &str,
        limits: Limits,
        now_us: i64,
        give_back: GiveBack,
        lease: bool,
        costs: &[u32],
    ) -> Result<(Usage, u64), String> {
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
            .arg(month_ttl)
            .arg(give_back.tat)
            .arg(give_back.day)
            .arg(give_back.month)
            .arg(if lease { MAX_LEASE } else { 0 });
        for cost in costs {
            invocation.arg(*cost);
        }
        // Their ratio is how many checks one round trip served.
        self.round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("palisade_ratelimit_redis_scripts_total").increment(1);
        metrics::counter!("palisade_ratelimit_redis_checks_total").increment(costs.len() as u64);
        let mut connection = self.connection.clone();
        match tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut connection)).await {
            Err(_) => Err(format!("Redis did not answer within {} ms", TIMEOUT.as_millis())),
            Ok(Err(error)) => Err(error.to_string()),
            Ok(Ok((tat, day, month, lease))) => Ok((Usage { tat, day, month }, lease)),
        }
    }
}

#[cfg(test)]
mod tests;
