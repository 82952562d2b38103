//! Pushing the spool: batches of the oldest signals, each deleted from the spool only after the
//! server answered 2xx for it. A transport failure, a 5xx or a 429 leaves the batch where it is
//! for the next attempt (the caller waits [`backoff`] between attempts); a 4xx saying the batch can
//! never be accepted moves it aside, so one bad item cannot stop the queue.

use std::time::Duration;

use crate::Client;
use crate::Error;
use crate::agent::spool::Spool;

/// What one [`push_spool`] call achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    /// Signals the server has now (stored now or earlier), removed from the spool.
    pub delivered: usize,
    /// Of those, stored by this push.
    pub accepted: usize,
    /// Of those, already stored by an earlier delivery.
    pub duplicates: usize,
    /// Signals the server refused for good, moved to `rejected/`.
    pub rejected: usize,
    /// Signals still waiting.
    pub remaining: usize,
}

/// Why a push stopped early; what was delivered before stays delivered.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The spool could not be read or updated.
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
    /// The server could not be reached or refused for a reason that may pass.
    #[error("push failed, signals stay spooled: {0}")]
    Server(#[source] Error),
}

/// Whether a refusal means the batch can never be accepted (as opposed to a server or
/// authentication problem that may pass).
pub fn is_permanent_refusal(error: &Error) -> bool {
    matches!(error.status(), Some(400 | 413 | 422))
}

/// Pushes the whole spool in batches of `batch_size`, oldest first, until it is empty or a push
/// fails.
pub async fn push_spool(client: &Client, spool: &Spool, batch_size: usize) -> Result<PushReport, PushError> {
    let mut report = PushReport::default();
    loop {
        let batch = spool.oldest(batch_size)?;
        if batch.is_empty() {
            break;
        }
        let items: Vec<_> = batch.iter().map(|s| s.item.clone()).collect();
        let paths: Vec<_> = batch.iter().map(|s| s.path.clone()).collect();
        match client.push_signals(&items).await {
            Ok(answer) => {
                let refused: std::collections::BTreeSet<usize> = answer.rejected.iter().map(|r| r.index).collect();
                let (bad, good): (Vec<_>, Vec<_>) = paths.into_iter().enumerate().partition(|(i, _)| refused.contains(i));
                spool.reject(&bad.into_iter().map(|(_, p)| p).collect::<Vec<_>>())?;
                report.rejected += refused.len();
                report.delivered += good.len();
                spool.remove(&good.into_iter().map(|(_, p)| p).collect::<Vec<_>>())?;
                report.accepted += answer.accepted;
                report.duplicates += answer.duplicates;
            }
            Err(error) if is_permanent_refusal(&error) && batch.len() > 1 => {
                // Find the bad items one by one rather than dropping the good ones with them.
                for one in &batch {
                    match client.push_signals(std::slice::from_ref(&one.item)).await {
                        Ok(answer) if answer.rejected.is_empty() => {
                            spool.remove(std::slice::from_ref(&one.path))?;
                            report.delivered += 1;
                            report.accepted += answer.accepted;
                            report.duplicates += answer.duplicates;
                        }
                        Ok(_) => {
                            spool.reject(std::slice::from_ref(&one.path))?;
                            report.rejected += 1;
                        }
                        Err(error) if is_permanent_refusal(&error) => {
                            spool.reject(std::slice::from_ref(&one.path))?;
                            report.rejected += 1;
                        }
                        Err(error) => return Err(PushError::Server(error)),
                    }
                }
            }
            Err(error) if is_permanent_refusal(&error) => {
                spool.reject(&paths)?;
                report.rejected += paths.len();
            }
            Err(error) => return Err(PushError::Server(error)),
        }
    }
    report.remaining = spool.len()?;
    Ok(report)
}

/// The wait before attempt `failures + 1` after `failures` failed ones in a row: `base` doubled
/// per failure, at most `max`. `jitter` in `[0, 1)` takes up to a quarter off, so a fleet that
/// lost its server at the same moment does not come back at the same moment.
pub fn backoff(failures: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    if failures == 0 {
        return base.min(max);
    }
    let factor = 2u32.saturating_pow(failures.min(30));
    let full = base.saturating_mul(factor).min(max);
    full.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (0..8).map(|n| backoff(n, base, max, 0.0).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX, base, max, 0.0), max);
    }

    #[test]
    fn jitter_only_shortens_the_wait_by_a_quarter_at_most() {
        let wait = backoff(3, Duration::from_secs(10), Duration::from_secs(300), 0.999);
        assert!(wait > Duration::from_secs(60) && wait <= Duration::from_secs(80), "{wait:?}");
    }

    #[test]
    fn only_refusals_of_the_content_are_permanent() {
        let api = |status| Error::Api {
            status,
            code: String::new(),
            message: String::new(),
            request_id: None,
            fields: Vec::new(),
            retry_after: None,
        };
        assert!(is_permanent_refusal(&api(422)) && is_permanent_refusal(&api(400)));
        for status in [401, 403, 429, 500, 503] {
            assert!(!is_permanent_refusal(&api(status)), "{status}");
        }
    }
}
