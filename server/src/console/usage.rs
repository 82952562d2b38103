//! Per-day lookup history for the console's usage chart. Lookups are counted in memory per
//! (account, UTC day) as they are charged and written to the store in batches, so the lookup path
//! never waits for a database write. The quota itself is the limiter's business, not this one's:
//! a lost batch (a crash between flushes) loses history, never enforcement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::limits::LimitKey;
use crate::store::{AccountKey, StatsStore, StoreError};

/// How often counted lookups are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Lookups counted since the last write.
#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<(i64, i64), u64>>,
}

impl UsageRecorder {
    /// Counts `lookups` charged to limiter key `key` at `now_us` (microseconds since the
    /// epoch). Only accounts' lookups are kept; machine lookups have no account.
    pub fn record(&self, key: &LimitKey, now_us: i64, lookups: u32) {
        let Some(account) = key.account() else { return };
        if lookups == 0 {
            return;
        }
        let day = now_us.div_euclid(86_400_000_000);
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *pending.entry((account, day)).or_default() += u64::from(lookups);
    }

    /// Writes what was counted; on failure the counts are kept for the next attempt.
    pub async fn flush(&self, store: &dyn StatsStore) -> Result<(), StoreError> {
        let batch: Vec<((i64, i64), u64)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())).into_iter().collect();
        if batch.is_empty() {
            return Ok(());
        }
        let rows: Vec<(AccountKey, i64, u64)> = batch.iter().map(|((a, d), n)| (AccountKey(*a), *d, *n)).collect();
        if let Err(error) = store.add_lookup_usage(&rows).await {
            let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (key, n) in batch {
                *pending.entry(key).or_default() += n;
            }
            return Err(error);
        }
        Ok(())
    }
}

/// Flushes every [`FLUSH_INTERVAL`] until `shutdown`, then once more.
pub async fn run(recorder: Arc<UsageRecorder>, store: Arc<dyn StatsStore>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
        }
        if let Err(error) = recorder.flush(store.as_ref()).await {
            tracing::warn!(%error, "cannot record lookup usage; will retry");
        }
    }
    if let Err(error) = recorder.flush(store.as_ref()).await {
        tracing::warn!(%error, "cannot record lookup usage at shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_account_keys_are_counted_per_day() {
        let recorder = UsageRecorder::default();
        let day = 86_400_000_000;
        recorder.record(&LimitKey::Account(7), 3 * day + 5, 1);
        recorder.record(&LimitKey::Account(7), 3 * day + 9, 2);
        recorder.record(&LimitKey::Account(7), 4 * day, 1);
        recorder.record(&LimitKey::Machine(7), 3 * day, 1);
        recorder.record(&LimitKey::Account(8), 3 * day, 0);
        let pending = recorder.pending.lock().unwrap().clone();
        assert_eq!(pending, HashMap::from([((7, 3), 3), ((7, 4), 1)]));
    }
}
