//! The in-process limiter backend: the same GCRA and calendar windows as the Redis script, over a
//! mutex-guarded map. Per process: with several replicas it is only the fallback.

use std::collections::HashMap;
use std::sync::Mutex;

use super::quota::{Counted, Limits, Tier, Usage, windows};

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    usage: Usage,
    day_id: i64,
    month_id: i64,
}

/// Counters per key, in this process.
#[derive(Debug, Default)]
pub struct LocalLimiter {
    counters: Mutex<HashMap<String, Counters>>,
}

impl LocalLimiter {
    /// Checks and, when allowed, counts `cost` lookups.
    pub fn check(&self, key: &str, tier: &Tier, cost: u32, now_us: i64) -> Counted {
        let (day_id, _, month_id, _) = windows(now_us);
        let mut map = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counters = map.entry(key.to_string()).or_default();
        // A counter of an earlier window counts nothing.
        if counters.day_id != day_id {
            (counters.day_id, counters.usage.day) = (day_id, 0);
        }
        if counters.month_id != month_id {
            (counters.month_id, counters.usage.month) = (month_id, 0);
        }
        counters.usage.check(Limits::of(tier), cost, now_us)
    }
}
