//! The daily allowance of stored signal bytes per machine (`ingest.signal_bytes_per_machine_per_day`):
//! charged before a push is stored, so a refused push is acknowledged for nothing. Per process.

/// Bytes of signals each machine has had stored today (UTC), against a daily allowance. Per
/// process: with several replicas each one counts what it stored. Only the current day is kept.
#[derive(Debug, Default)]
pub struct DailyBytes {
    counted: std::sync::Mutex<(i64, std::collections::HashMap<i64, u64>)>,
}

impl DailyBytes {
    /// Adds `bytes` to `machine`'s count of day `day` (days since the epoch) if it stays within
    /// `allowance`; otherwise counts nothing and says so.
    pub fn charge(&self, machine: i64, day: i64, bytes: u64, allowance: u64) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if counted.0 != day {
            *counted = (day, std::collections::HashMap::new());
        }
        let used = counted.1.entry(machine).or_insert(0);
        if used.saturating_add(bytes) > allowance {
            return false;
        }
        *used += bytes;
        true
    }

    /// Gives back bytes charged for signals that were not stored after all.
    pub fn refund(&self, machine: i64, day: i64, bytes: u64) {
        let mut counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if counted.0 == day
            && let Some(used) = counted.1.get_mut(&machine)
        {
            *used = used.saturating_sub(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_allowance_refuses_what_would_pass_it_and_starts_again_each_day() {
        let budget = DailyBytes::default();
        assert!(budget.charge(1, 100, 600, 1000));
        assert!(!budget.charge(1, 100, 500, 1000), "600 + 500 is over 1000");
        assert!(budget.charge(2, 100, 1000, 1000), "another machine has its own");
        assert!(budget.charge(1, 100, 400, 1000));
        budget.refund(1, 100, 400);
        assert!(budget.charge(1, 100, 400, 1000), "refunded bytes can be used again");
        assert!(budget.charge(1, 101, 1000, 1000), "a new day");
    }
}
