//! The accept loop: every TCP connection the server takes, within limits an operator of a
//! public service expects. At most `max_connections` at once (lowered to leave
//! [`RESERVED_FILE_DESCRIPTORS`] below the open-file limit, so the database, Redis and health
//! probes still find descriptors) and `max_connections_per_address` from one peer address; a
//! connection over either cap is accepted and closed at once, so the backlog never fills with
//! hostile ones. A request head must arrive within `header_read_timeout_secs` of the server
//! waiting for it (slowloris, and idle keep-alive connections), and a connection with no byte
//! in either direction for `idle_timeout_secs` is closed (stalled bodies, stalled readers).
//!
//! The per-address cap counts the TCP peer: at accept time no request has been read, so
//! `trusted_proxies` cannot name the client yet. Connections from a trusted proxy count only
//! against the global cap (one proxy carries many clients).
//!
//! On shutdown it stops accepting, asks every connection to finish its request in flight and
//! close, and returns when all have.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::convert::Infallible;
use std::future::Future;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EdgeConfig;

/// File descriptors left free below the open-file limit: the database and Redis pools, the
/// enrichment files, the listener itself, and the connections accepted only to be closed.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 256;

/// The limits in force, resolved against the process's open-file limit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections at once, all peers together.
    pub max_connections: usize,
    /// Connections at once from one peer address (0: no per-address cap).
    pub max_per_address: usize,
    /// Time allowed for a request head, from when the server waits for it.
    pub header_read_timeout: Duration,
    /// Time allowed with no byte read or written.
    pub idle_timeout: Duration,
    /// Peers whose connections carry many clients (`trusted_proxies`): no per-address cap.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl Limits {
    /// The configured limits, `max_connections` lowered to fit under the open-file limit
    /// (raised to its hard value first where allowed, as servers usually do).
    pub fn resolve(config: &EdgeConfig, trusted_proxies: &[ipnet::IpNet]) -> Limits {
        let mut max_connections = config.max_connections;
        if let Some(files) = open_file_limit() {
            let fit = files.saturating_sub(RESERVED_FILE_DESCRIPTORS).max(1);
            if (max_connections as u64) > fit {
                tracing::warn!(
                    configured = max_connections,
                    open_file_limit = files,
                    "edge.max_connections lowered to {fit} to keep {RESERVED_FILE_DESCRIPTORS} file descriptors free"
                );
                max_connections = usize::try_from(fit).unwrap_or(usize::MAX);
            }
        }
        Limits {
            max_connections,
            max_per_address: config.max_connections_per_address,
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            trusted_proxies: Arc::new(trusted_proxies.to_vec()),
        }
    }
}

/// The soft open-file limit, raised to the hard one when that is higher.
#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Open connections per peer address.
#[derive(Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; uncounted when dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = table.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { table: table.clone(), ip })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a served connection holds until it closes.
struct Held {
    _global: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!("palisade_connections_open").decrement(1.0);
    }
}

/// Answers each request of a connection from `peer`: the router, told who the peer is.
pub trait Handler: Clone + Send + Sync + 'static {
    /// The response body.
    type Body: Body<Data = bytes::Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static;
    /// The answer.
    fn handle(
        self,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Self::Body>, Infallible>> + Send + 'static;
}

/// Serves `handler` on `listener` within `limits` until `shutdown`, then drains.
pub async fn serve<H: Handler>(listener: TcpListener, handler: H, limits: Limits, shutdown: CancellationToken) {
    let global = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a transient network error: pause rather than spin,
                    // keeping the connections already open.
                    tracing::warn!(%error, "accept error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(global_slot) = global.clone().try_acquire_owned() else {
            refuse(stream, "global");
            continue;
        };
        let ip = crate::domain::net::canonical_ip(peer.ip());
        let address_slot = if limits.max_per_address == 0 || limits.trusted_proxies.iter().any(|proxy| proxy.contains(&ip)) {
            None
        } else {
            match PerAddress::take(&per_address, ip, limits.max_per_address) {
                Some(slot) => Some(slot),
                None => {
                    refuse(stream, "address");
                    continue;
                }
            }
        };
        metrics::gauge!("palisade_connections_open").increment(1.0);
        let held = Held { _global: global_slot, _address: address_slot };
        tracker.spawn(serve_connection(stream, peer, handler.clone(), limits.clone(), shutdown.clone(), held));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// Closes a connection over a cap at once.
fn refuse(stream: TcpStream, cap: &'static str) {
    metrics::counter!("palisade_connections_refused_total", "cap" => cap).increment(1);
    drop(stream);
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: H,
    limits: Limits,
    shutdown: CancellationToken,
    held: Held,
) {
    drop(stream.set_nodelay(true));
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let service = hyper::service::service_fn(move |request: Request<Incoming>| handler.clone().handle(peer, request));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let check_every = (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut ticks = tokio::time::interval(check_every);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                if activity.idle_for() >= limits.idle_timeout {
                    metrics::counter!("palisade_connections_timed_out_total").increment(1);
                    tracing::debug!(%peer, "idle connection closed");
                    break;
                }
            }
        }
    }
    drop(held);
}

/// When a connection last moved a byte, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { opened: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.opened.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records when it last read or wrote a byte.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Answers `ok` to everything.
    #[derive(Clone)]
    struct Ok200;

    impl Handler for Ok200 {
        type Body = http_body_util::Full<bytes::Bytes>;

        async fn handle(self, _peer: SocketAddr, _request: Request<Incoming>) -> Result<Response<Self::Body>, Infallible> {
            Ok(Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok"))))
        }
    }

    /// The start of the answer to a `GET /`; empty when the server closed the connection.
    async fn get(stream: &mut TcpStream) -> String {
        if stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").await.is_err() {
            return String::new();
        }
        let mut answer = vec![0u8; 1024];
        let n = stream.read(&mut answer).await.unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    /// Whether the server closed `stream` (end of stream or reset).
    async fn is_closed(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        !matches!(stream.read(&mut byte).await, Ok(n) if n > 0)
    }

    #[tokio::test]
    async fn connections_over_the_global_cap_are_closed_and_shutdown_drains_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let limits = Limits {
            max_connections: 2,
            max_per_address: 0,
            header_read_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(600),
            trusted_proxies: Arc::default(),
        };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Ok200, limits, shutdown.clone()));
        let mut first = TcpStream::connect(addr).await.expect("connect");
        let mut second = TcpStream::connect(addr).await.expect("connect");
        let mut third = TcpStream::connect(addr).await.expect("connect");
        assert!(is_closed(&mut third).await, "a connection over the global cap was kept");
        assert!(get(&mut first).await.starts_with("HTTP/1.1 200"));
        assert!(get(&mut second).await.starts_with("HTTP/1.1 200"));
        // A closed connection gives its slot back.
        drop(second);
        let mut admitted = None;
        for _ in 0..100 {
            let mut next = TcpStream::connect(addr).await.expect("connect");
            let answer = get(&mut next).await;
            if answer.starts_with("HTTP/1.1 200") {
                admitted = Some(next);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(admitted.is_some(), "no slot came back after a connection closed");
        shutdown.cancel();
        server.await.expect("the accept loop ends once its connections have closed");
        assert!(is_closed(&mut first).await, "an idle connection outlived the shutdown");
    }
}
