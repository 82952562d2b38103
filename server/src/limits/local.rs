//! The in-process limiter backend: the same GCRA and calendar windows as the Redis script, over a
//! mutex-guarded map. Per process: with several replicas it is only the fallback.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Counted, Tier, Verdict, gcra, interval_us, windows};

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    tat: i64,
    day: (i64, u64),
    month: (i64, u64),
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
        let day_used = if counters.day.0 == day_id { counters.day.1 } else { 0 };
        let month_used = if counters.month.0 == month_id { counters.month.1 } else { 0 };
        let verdict = match gcra(counters.tat, now_us, interval_us(tier), tier.burst, cost) {
            Err(wait) => Verdict::Burst(wait),
            Ok(_)
                if day_used + u64::from(cost) > tier.lookups_per_day || month_used + u64::from(cost) > tier.lookups_per_month =>
            {
                Verdict::Quota
            }
            Ok(new_tat) => {
                counters.tat = new_tat;
                Verdict::Allowed
            }
        };
        let (day_used, month_used) = if verdict == Verdict::Allowed {
            (day_used + u64::from(cost), month_used + u64::from(cost))
        } else {
            (day_used, month_used)
        };
        counters.day = (day_id, day_used);
        counters.month = (month_id, month_used);
        Counted { verdict, day_used, month_used }
    }
}
