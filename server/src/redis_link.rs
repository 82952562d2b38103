//! The one way the server opens a Redis connection for commands (the limiter, the change bus):
//! a connection manager that reconnects by itself, with short timeouts so a lost Redis never
//! holds a request, given up after 5 s at start.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Connects to the Redis at `url`; each command and reconnection waits at most `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new_with_config(client, config))
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis"))?
        .map_err(Into::into)
}
