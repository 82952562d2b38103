//! `palisade-server serve`: the composition root. Opens the store, builds the application
//! state once from the configuration, starts the background tasks (consensus worker, feed
//! refreshes, list poller, change bus subscriber, revocation listener, usage recorder), serves the router until SIGINT or SIGTERM,
//! then shuts down gracefully. [`connections`] is the accept loop and its limits.

pub mod connections;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::jwt::load_or_create_secret;
use crate::config::{Backend, Config};
use crate::domain::lists::COMMUNITY;
use crate::enrich::Enricher;
use crate::jobs::consensus::{self, WorkerConfig};
use crate::state::{AppState, Parts};
use crate::store::{self, Store};
use crate::telemetry;

/// Where the data lives, for the start-up line and `migrate`.
pub fn describe_backend(config: &Config) -> String {
    match config.backend() {
        Backend::Sqlite => format!("SQLite in {}", config.data_dir.display()),
        Backend::Postgres => "PostgreSQL".into(),
    }
}

/// Opens the configured store, creating it when missing, and applies migrations: `serve` and
/// `migrate`.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if config.backend() == Backend::Sqlite {
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    }
    let store = store::open(&config.database_url()).await.context("cannot open the database")?;
    store.migrate().await.context("cannot apply migrations")?;
    store.set_redelivery_window(time::Duration::seconds(config.ingest.max_clock_skew_secs));
    Ok(store)
}

/// Opens the server's existing database for an admin command, and says on standard error which
/// one it is. Never creates one: a command run without the server's `--config`/`--data-dir`
/// would otherwise make an empty database beside the real one and act on it (a token the server
/// rejects, a machine it does not know).
pub async fn open_existing_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    let described = store::describe(&url);
    let Some(store) = store::open_existing(&url).await.with_context(|| format!("cannot open the {described}"))? else {
        anyhow::bail!(
            "there is no Palisade database at {}: admin commands act on the server's own database, so give them the \
             same --config, --data-dir or DATABASE_URL the server runs with (its start-up lines print the command)",
            described.trim_start_matches("SQLite database ")
        );
    };
    eprintln!("using the {described}");
    Ok(store)
}

/// The admin command line that reaches the database this configuration names, as the server
/// prints it at start-up: the configuration file and the data directory, absolute, so it works
/// from any directory; for PostgreSQL, which database `DATABASE_URL` must name.
pub fn admin_command(config: &Config, file: Option<&std::path::Path>, rest: &str) -> String {
    let absolute = |path: &std::path::Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut command = String::from("palisade-server");
    if let Some(file) = file {
        command.push_str(&format!(" --config {}", absolute(file).display()));
    }
    command.push_str(&format!(" --data-dir {} {rest}", absolute(&config.data_dir).display()));
    if config.backend() == Backend::Postgres {
        command.push_str(&format!("   (with DATABASE_URL naming the {})", store::describe(&config.database_url())));
    }
    command
}

/// Builds the application state from the configuration: opens the store, reads the secret and
/// the enrichment databases, reaches Redis when configured, then [`AppState::from_config`].
pub async fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let store = open_store(config).await?;
    let secret = load_or_create_secret(config.auth.jwt_secret.as_ref(), &config.data_dir)?;
    let enricher = Enricher::open(&config.enrich)?;
    let bench_static = match &config.distribution.bench_static_file {
        Some(path) => Some(bytes::Bytes::from(
            std::fs::read(path).with_context(|| format!("cannot read bench_static_file {}", path.display()))?,
        )),
        None => None,
    };
    let mut bus = crate::bus::ChangeBus::disabled();
    let mut limiter = crate::limits::Limiter::local();
    if let Some(url) = &config.redis_url {
        match crate::bus::ChangeBus::connect(url.expose()).await {
            Ok(connected) => bus = connected,
            Err(error) => tracing::error!(%error, "cannot reach Redis: list changes reach other replicas at their next poll"),
        }
        // Without Redis at start-up the replica still serves, with per-process limits.
        match crate::limits::redis::RedisLimiter::connect(url.expose()).await {
            Ok(redis) => {
                let breaker = std::time::Duration::from_secs(config.redis_breaker_secs);
                limiter = crate::limits::Limiter::with_redis(redis.with_breaker(breaker));
            }
            Err(error) => {
                metrics::counter!("palisade_redis_errors_total").increment(1);
                tracing::error!(%error, "cannot reach Redis: rate limits are per replica");
            }
        }
    }
    let parts = Parts { store, secret, enricher, metrics: telemetry::metrics_handle(), limiter, bus, bench_static };
    Ok(AppState::from_config(config, parts))
}

/// Binds the listening socket, with a sentence naming the address and the way out when it is
/// taken (CrowdSec's local API on 8080 is the usual neighbour).
async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(listen).await {
        Ok(listener) => Ok(listener),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "cannot listen on {listen}: port {} is already in use by another program (`ss -ltnp 'sport = :{}'` \
             names it); choose another address with --listen or `listen` in the configuration",
            listen.port(),
            listen.port()
        ),
        Err(error) => Err(error).with_context(|| format!("cannot listen on {listen}")),
    }
}

/// Runs the server until a shutdown signal, then stops gracefully. `file` is the configuration
/// file it was started with, for the admin command it suggests.
pub async fn serve(mut config: Config, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    telemetry::register_families();
    // Refused before binding when the listen address alone settles it; port 0 is known after.
    if config.listen.port() != 0 || config.listen.ip().is_unspecified() {
        config.public_url()?;
    }
    let listener = bind(config.listen).await?;
    let addr = listener.local_addr()?;
    // Port 0 is now the port the system chose, which the default public URL must name.
    config.listen = addr;
    config.public_url()?;
    let state = build_state(&config).await?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "palisade-server {} listening on http://{addr}/ ({})", env!("CARGO_PKG_VERSION"), describe_backend(&config))?;
    writeln!(out, "create an admin token with: {}", admin_command(&config, file, "admin token create"))?;
    out.flush()?;
    drop(out);
    tracing::info!(%addr, backend = describe_backend(&config), "listening");
    // The worker pokes `committed` after each commit that changed a list: this replica advances
    // at once and, through Redis, so do the others.
    let committed = Arc::new(tokio::sync::Notify::new());
    let relay = tokio::spawn(relay_commits(state.clone(), committed.clone(), shutdown.clone()));
    let subscriber = config.redis_url.as_ref().filter(|_| state.distribution.bus.is_enabled()).map(|url| {
        tokio::spawn(crate::bus::run_subscriber(
            url.expose().to_string(),
            state.distribution.lists.changed.clone(),
            shutdown.clone(),
        ))
    });
    let revocation_listener = config.redis_url.as_ref().filter(|_| state.distribution.bus.is_enabled()).map(|url| {
        let revocations = state.revocations.clone();
        tokio::spawn(crate::bus::run_listener(
            url.expose().to_string(),
            crate::revocation::CHANNEL,
            Arc::new(move || revocations.invalidate()),
            shutdown.clone(),
        ))
    });
    let worker = config.consensus.enabled.then(|| {
        let worker_config = WorkerConfig {
            params: config.consensus.params.clone(),
            use_asn: state.enricher.has_asn(),
            own_addresses: config.consensus.own_addresses.clone(),
            shared_ranges: config.consensus.shared_ranges.clone(),
            hosting_ranges: config.consensus.hosting_ranges.clone(),
            lists_changed: Some(committed.clone()),
            maintenance: Some(config.retention.clone()),
            pools: config.pools.clone(),
            ..WorkerConfig::default()
        };
        let interval = std::time::Duration::from_millis(config.consensus.interval_ms);
        tokio::spawn(consensus::run(state.store.clone(), worker_config, state.consensus_wake.clone(), interval, shutdown.clone()))
    });
    // Feeds are refreshed by the replicas that may lead the consensus worker; each feed is
    // claimed in the store, so one of them fetches it.
    let feeds = config
        .consensus
        .enabled
        .then(|| tokio::spawn(crate::jobs::feeds::run(state.feeds.clone(), committed.clone(), shutdown.clone())));
    let poll = std::time::Duration::from_millis(config.distribution.poll_interval_ms);
    let poller = tokio::spawn(crate::serving::run_poller(state.distribution.lists.clone(), poll, shutdown.clone()));
    let usage = tokio::spawn(crate::console::usage::run(state.quotas.usage.clone(), state.store.clone(), shutdown.clone()));
    let limits = connections::Limits::resolve(&config.edge, &config.trusted_proxies);
    connections::serve(listener, RouterHandler(crate::http::router(state.clone())), limits, shutdown.clone()).await;
    shutdown.cancel();
    for job in [worker, feeds].into_iter().flatten() {
        drop(job.await);
    }
    drop(poller.await);
    drop(usage.await);
    drop(relay.await);
    for listener in [subscriber, revocation_listener].into_iter().flatten() {
        drop(listener.await);
    }
    state.quotas.limiter.give_back_leases().await;
    tracing::info!("stopped accepting; in-flight requests finished");
    Ok(())
}

/// The router behind the accept loop, with each request's peer as axum's `ConnectInfo`.
#[derive(Clone)]
struct RouterHandler(axum::Router);

impl connections::Handler for RouterHandler {
    type Body = axum::body::Body;

    fn handle(
        self,
        peer: SocketAddr,
        mut request: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Result<hyper::Response<axum::body::Body>, std::convert::Infallible>> + Send + 'static {
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        hyper::service::Service::call(&hyper_util::service::TowerToHyperService::new(self.0), request)
    }
}

/// Passes each list commit of the consensus worker on: to this replica's lists at once, and to
/// the other replicas through the change bus, with the community list's new seq.
async fn relay_commits(state: AppState, committed: Arc<tokio::sync::Notify>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = committed.notified() => {}
        }
        state.distribution.lists.changed.notify_one();
        if state.distribution.bus.is_enabled() {
            match state.store.list_seq(COMMUNITY).await {
                Ok(seq) => state.distribution.bus.publish(seq).await,
                Err(error) => tracing::warn!(%error, "cannot read the community seq to publish"),
            }
        }
    }
}

/// Cancels `token` on SIGINT or SIGTERM. The handlers are installed now, synchronously, before
/// the server announces its address: a signal sent right after the announcement must find them
/// in place, or its default action kills the process without a graceful shutdown.
#[cfg(unix)]
fn cancel_on_signal(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutdown requested");
        token.cancel();
    });
    Ok(())
}

/// Cancels `token` on Ctrl-C.
#[cfg(not(unix))]
fn cancel_on_signal(token: CancellationToken) -> anyhow::Result<()> {
    tokio::spawn(async move {
        drop(tokio::signal::ctrl_c().await);
        tracing::info!("shutdown requested");
        token.cancel();
    });
    Ok(())
}
