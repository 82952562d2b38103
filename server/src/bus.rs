//! Change notification between replicas through Redis: after a commit that changes a served
//! list (the consensus worker's, or an operator's edit of a custom list), the replica that
//! committed PUBLISHes the new seq on one channel; every replica SUBSCRIBEs and pokes its
//! [`crate::serving::Lists::changed`], so it advances at once instead of at its next poll. A
//! revocation is announced the same way on a channel of its own
//! ([`crate::revocation::CHANNEL`]). The poll stays as the fallback: a lost message, or Redis
//! down, only delays a change to the next poll. The subscriber reconnects after a Redis restart;
//! failures are logged, never fatal.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel every replica listens on.
pub const CHANNEL: &str = "palisade:lists:changed";

/// How long a publish may take before it is given up (the poll covers a lost one).
const TIMEOUT: Duration = Duration::from_millis(500);

/// Publishes list changes to the other replicas (a no-op without Redis).
#[derive(Clone, Default)]
pub struct ChangeBus {
    connection: Option<ConnectionManager>,
}

impl std::fmt::Debug for ChangeBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeBus").field("redis", &self.connection.is_some()).finish()
    }
}

impl ChangeBus {
    /// A bus that tells nobody (no Redis configured).
    pub fn disabled() -> ChangeBus {
        ChangeBus::default()
    }

    /// A bus publishing through the Redis at `url`.
    pub async fn connect(url: &str) -> anyhow::Result<ChangeBus> {
        Ok(ChangeBus { connection: Some(crate::redis_link::connect(url, TIMEOUT).await?) })
    }

    /// Whether changes are published.
    pub fn is_enabled(&self) -> bool {
        self.connection.is_some()
    }

    /// Tells every replica that a list advanced to `seq`. Failures are logged and counted: the
    /// other replicas then see the change at their next poll.
    pub async fn publish(&self, seq: i64) {
        let Some(connection) = &self.connection else { return };
        let mut connection = connection.clone();
        let sent =
            tokio::time::timeout(TIMEOUT, redis::cmd("PUBLISH").arg(CHANNEL).arg(seq).query_async::<i64>(&mut connection)).await;
        match sent {
            Ok(Ok(_)) => metrics::counter!("palisade_list_change_published_total").increment(1),
            Ok(Err(error)) => {
                metrics::counter!("palisade_list_change_publish_failures_total").increment(1);
                tracing::warn!(%error, "cannot publish a list change; other replicas see it at their next poll");
            }
            Err(_) => {
                metrics::counter!("palisade_list_change_publish_failures_total").increment(1);
                tracing::warn!("publishing a list change timed out; other replicas see it at their next poll");
            }
        }
    }

    /// Tells every replica that something changed on `channel` (a revocation). Failures are
    /// logged and counted: the other replicas then see the change at their next poll.
    pub async fn announce(&self, channel: &str) {
        let Some(connection) = &self.connection else { return };
        let mut connection = connection.clone();
        let sent =
            tokio::time::timeout(TIMEOUT, redis::cmd("PUBLISH").arg(channel).arg(1).query_async::<i64>(&mut connection)).await;
        if !matches!(sent, Ok(Ok(_))) {
            metrics::counter!("palisade_revocation_announce_failures_total").increment(1);
            tracing::warn!(channel, "cannot announce a change; other replicas see it at their next poll");
        }
    }
}

/// Listens on [`CHANNEL`] and pokes `changed` for every message, until `cancel`. Reconnects with
/// a growing pause (up to 5 s) when Redis goes away.
pub async fn run_subscriber(url: String, changed: Arc<Notify>, cancel: CancellationToken) {
    run_listener(url, CHANNEL, Arc::new(move || changed.notify_one()), cancel).await;
}

/// Listens on `channel` and calls `on_message` for every message, and once after each
/// reconnection (whatever was published meanwhile is covered by one refresh), until `cancel`.
/// Reconnects with a growing pause (up to 5 s) when Redis goes away.
pub async fn run_listener(
    url: String,
    channel: &'static str,
    on_message: Arc<dyn Fn() + Send + Sync>,
    cancel: CancellationToken,
) {
    let changed = Notifier { channel, on_message };
    let mut pause = Duration::from_millis(100);
    let mut failing = false;
    while !cancel.is_cancelled() {
        match subscribe(&url, &changed, &cancel, &mut failing).await {
            Ok(()) => return,
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, channel, "change subscription lost; polling only until Redis answers again");
                    failing = true;
                }
                // Whatever was published while disconnected is covered by one refresh now.
                changed.notify_one();
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// What a subscription calls, and on which channel.
struct Notifier {
    channel: &'static str,
    on_message: Arc<dyn Fn() + Send + Sync>,
}

impl Notifier {
    fn notify_one(&self) {
        (self.on_message)();
    }
}

/// One subscription, until Redis goes away (error) or `cancel` (Ok).
async fn subscribe(url: &str, changed: &Notifier, cancel: &CancellationToken, failing: &mut bool) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis"))??;
    pubsub.subscribe(changed.channel).await?;
    if *failing {
        tracing::info!(channel = changed.channel, "change subscription restored");
        *failing = false;
        changed.notify_one();
    }
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(_) => {
                    if changed.channel == CHANNEL {
                        metrics::counter!("palisade_list_change_received_total").increment(1);
                    }
                    changed.notify_one();
                }
                None => anyhow::bail!("Redis closed the subscription"),
            },
        }
    }
}
