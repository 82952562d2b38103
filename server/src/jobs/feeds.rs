//! Feed refreshes: every due feed is refreshed ([`crate::feeds::Feeds::refresh`]), one at a time.
//! A feed is due when it was never attempted or its interval has passed since its last attempt
//! (a failed one too: the interval is the retry delay). The loop runs on every replica that runs
//! the consensus worker; each feed is claimed in the store before it is fetched, so only one
//! replica fetches it however many run the loop, and a replica that dies mid-refresh leaves a claim
//! that lapses ([`crate::feeds::CLAIM`]).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::feeds::{Feeds, Refresh, publish_metrics};
use crate::store::Feed;

/// How often the loop looks for due feeds.
pub const TICK: Duration = Duration::from_secs(30);

/// What one pass did, by feed name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedsOutcome {
    /// Each feed refreshed in this pass and how it went.
    pub refreshed: Vec<(String, Refresh)>,
}

impl FeedsOutcome {
    /// Whether a list's entries changed.
    pub fn changed(&self) -> bool {
        self.refreshed.iter().any(|(_, refresh)| matches!(refresh, Refresh::Loaded(report) if report.changed()))
    }
}

/// Whether `feed` is due at `now`.
pub fn due(feed: &Feed, now: OffsetDateTime) -> bool {
    feed.state.last_attempt_at.is_none_or(|at| now - at >= time::Duration::seconds(feed.definition.every_secs))
}

/// One pass: refreshes every feed due at `now` and sets every feed's metrics.
pub async fn run_once(feeds: &Feeds, now: OffsetDateTime) -> anyhow::Result<FeedsOutcome> {
    let all = feeds.store().feeds().await?;
    publish_metrics(&all);
    let mut outcome = FeedsOutcome::default();
    for feed in all.iter().filter(|feed| due(feed, now)) {
        let refresh = feeds.refresh(feed, now, false).await?;
        outcome.refreshed.push((feed.definition.name.clone(), refresh));
    }
    Ok(outcome)
}

/// Refreshes due feeds every [`TICK`] until `cancel`; pokes `changed` after a pass that changed
/// a list, so it is served at once (and announced to the other replicas).
pub async fn run(feeds: Arc<Feeds>, changed: Arc<Notify>, cancel: CancellationToken) {
    loop {
        match run_once(&feeds, OffsetDateTime::now_utc()).await {
            Ok(outcome) if outcome.changed() => changed.notify_one(),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot refresh the feeds"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}
