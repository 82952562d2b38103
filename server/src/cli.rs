//! Command line and composition root: parses arguments, loads the configuration, builds the
//! parts (store, keys, enrichment, state) and runs the chosen subcommand.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::jwt::load_or_create_secret;
use crate::config::{Backend, Config, Overrides};
use crate::enrich::Enricher;
use crate::jobs::consensus::{self, WorkerConfig};
use crate::manage;
use crate::state::{AppState, Parts};
use crate::store::{self, Store};
use crate::telemetry;
use crate::use_case::UseCaseError;

/// Palisade server: a community IP-reputation network that speaks CrowdSec's protocol.
#[derive(Debug, Parser)]
#[command(name = "palisade-server", version)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "PALISADE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, generated JWT key). Default `./palisade-data`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on. Default 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Operator commands, run on the host against the configured database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Admin tokens for `/v1/admin/*`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// API keys for the IP lookup.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Enrollment keys.
    #[command(subcommand, name = "enroll-key")]
    EnrollKey(EnrollKeyCommand),
    /// Machines.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Canaries: addresses you control that never send traffic; reporting one zeroes the reporter.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Never-block ranges (CDN egress, crawlers, resolvers, your infrastructure).
    #[command(subcommand)]
    Allowlist(AllowlistCommand),
    /// Uphold a false-positive report: delist the address and penalise its supporters.
    FalsePositive {
        /// The listed address or range.
        value: String,
    },
    /// Explain an address: rule, clusters, ASes, scenarios, and the machines that reported it.
    Explain {
        /// IPv4 or IPv6 address.
        ip: String,
    },
    /// Operator-managed block lists and allowlists (the same actions as /v1/admin/blocklists).
    #[command(subcommand)]
    Blocklist(BlocklistCommand),
}

/// `admin blocklist …`
#[derive(Debug, Subcommand)]
pub enum BlocklistCommand {
    /// Create a list.
    Create {
        /// Name: lowercase letters, digits, '-', '_', '.'.
        name: String,
        /// block (served to subscribed machines and readers) or allow.
        #[arg(long, default_value = "block")]
        kind: String,
        /// What the list is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the operator-managed lists.
    List(JsonFlag),
    /// Add (or renew) an address or CIDR.
    Add {
        /// List name.
        name: String,
        /// Address or CIDR.
        value: String,
        /// Lifetime: seconds, or with s, m, h or d (default one year).
        #[arg(long)]
        expires: Option<String>,
        /// ban (default) or captcha.
        #[arg(long)]
        remediation: Option<String>,
    },
    /// Remove an address or CIDR.
    Remove {
        /// List name.
        name: String,
        /// Address or CIDR.
        value: String,
    },
    /// Import a file: one address or CIDR per line, or CSV value[,remediation[,duration_secs]].
    Import {
        /// List name.
        name: String,
        /// The file.
        file: PathBuf,
    },
    /// Delete a list.
    Delete {
        /// List name.
        name: String,
    },
    /// Subscribe a machine to a list, or end the subscription with --off.
    Subscribe {
        /// List name.
        name: String,
        /// Machine login.
        machine: String,
        /// End the subscription instead.
        #[arg(long)]
        off: bool,
    },
}

/// `admin canary …`
#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Add a canary.
    Add {
        /// Address or CIDR.
        value: String,
        /// A note for yourself.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Remove a canary.
    Remove {
        /// Address or CIDR.
        value: String,
    },
    /// List canaries.
    List(JsonFlag),
}

/// `admin allowlist …`
#[derive(Debug, Subcommand)]
pub enum AllowlistCommand {
    /// Import a provider's published range file (JSON, CSV or one range per line).
    Import {
        /// The file.
        file: PathBuf,
        /// Name of the source, e.g. googlebot.
        #[arg(long)]
        source: String,
        /// cdn, crawler, resolver, infrastructure or custom.
        #[arg(long)]
        category: String,
    },
    /// Remove ranges by value and/or source.
    Remove {
        /// Address or CIDR.
        #[arg(long)]
        value: Option<String>,
        /// Source name.
        #[arg(long)]
        source: Option<String>,
    },
    /// List never-block ranges.
    List(JsonFlag),
}

/// `admin token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an admin token and print it (shown once).
    Create,
}

/// `admin account …`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Create {
        /// Account name.
        name: String,
    },
    /// List accounts.
    List(JsonFlag),
    /// Set an account's verification level (caps its machines' trust).
    Level {
        /// Account name.
        name: String,
        /// anonymous, email, verified, paid or partner.
        level: String,
    },
    /// Set an account's lookup tier (one of the configured `[tiers.*]`).
    Tier {
        /// Account name.
        name: String,
        /// Tier name.
        tier: String,
    },
    /// Print a console sign-in link for the account's users (valid 15 minutes).
    LoginLink {
        /// Account name.
        name: String,
    },
}

/// `admin api-key …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for an account and print it (shown once).
    Create {
        /// Owning account.
        #[arg(long)]
        account: String,
        /// Also set the account's tier.
        #[arg(long)]
        tier: Option<String>,
    },
    /// List API keys (prefixes only).
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by its prefix.
    Revoke {
        /// The prefix shown at creation and in listings.
        prefix: String,
    },
}

/// `admin enroll-key …`
#[derive(Debug, Subcommand)]
pub enum EnrollKeyCommand {
    /// Create an enrollment key for an account and print it (shown once).
    Create {
        /// Account the key enrolls machines into.
        #[arg(long)]
        account: String,
    },
}

/// `admin machine …`
#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Create a machine and print its id and password (or write CrowdSec credentials).
    Add {
        /// Machine login.
        name: String,
        /// Mark it as one of the operator's own sensors.
        #[arg(long)]
        sensor: bool,
        /// Write a ready CrowdSec `online_api_credentials.yaml` here instead of printing.
        #[arg(long, value_name = "FILE")]
        crowdsec_credentials: Option<PathBuf>,
        /// Server URL to put in the credentials file (default: public_url, else http://<listen>/).
        #[arg(long)]
        url: Option<String>,
    },
    /// List machines.
    List(JsonFlag),
    /// Mark a machine as one of your sensors (honeypots), or unmark it with --off.
    Sensor {
        /// Machine login.
        name: String,
        /// Unmark instead.
        #[arg(long)]
        off: bool,
    },
    /// Show a machine's trust and the evidence behind it.
    Trust {
        /// Machine login.
        name: String,
    },
}

/// `--json` output switch.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve { listen } => *listen,
        _ => None,
    };
    let config = Config::load(cli.config.as_deref(), Overrides { listen, data_dir: cli.data_dir.clone() })?;
    telemetry::init_tracing(config.log_format);
    match cli.command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("migrations applied ({})", describe_backend(&config));
            drop(store);
            Ok(())
        }
        Command::Openapi => {
            println!("{}", crate::http::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Admin(command) => admin(&config, command).await,
    }
}

fn describe_backend(config: &Config) -> String {
    match config.backend() {
        Backend::Sqlite => format!("SQLite in {}", config.data_dir.display()),
        Backend::Postgres => "PostgreSQL".into(),
    }
}

/// Opens the configured store and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if config.backend() == Backend::Sqlite {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    }
    let store = store::open(&config.database_url()).await.context("cannot open the database")?;
    store.migrate().await.context("cannot apply migrations")?;
    Ok(store)
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
            Ok(redis) => limiter = crate::limits::Limiter::with_redis(redis),
            Err(error) => {
                metrics::counter!("palisade_redis_errors_total").increment(1);
                tracing::error!(%error, "cannot reach Redis: rate limits are per replica");
            }
        }
    }
    let parts = Parts { store, secret, enricher, metrics: telemetry::metrics_handle(), limiter, bus, bench_static };
    Ok(AppState::from_config(config, parts))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    telemetry::register_families();
    let state = build_state(&config).await?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "palisade-server {} listening on http://{addr}/ ({})", env!("CARGO_PKG_VERSION"), describe_backend(&config))?;
    writeln!(out, "create an admin token with: palisade-server admin token create")?;
    out.flush()?;
    drop(out);
    tracing::info!(%addr, backend = describe_backend(&config), "listening");
    // The worker pokes `committed` after each commit that changed a list: this replica advances
    // at once and, through Redis, so do the others.
    let committed = std::sync::Arc::new(tokio::sync::Notify::new());
    let relay = tokio::spawn(relay_commits(state.clone(), committed.clone(), shutdown.clone()));
    let subscriber = config.redis_url.as_ref().filter(|_| state.distribution.bus.is_enabled()).map(|url| {
        tokio::spawn(crate::bus::run_subscriber(
            url.expose().to_string(),
            state.distribution.lists.changed.clone(),
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
            ..WorkerConfig::default()
        };
        let interval = std::time::Duration::from_millis(config.consensus.interval_ms);
        tokio::spawn(consensus::run(state.store.clone(), worker_config, state.consensus_wake.clone(), interval, shutdown.clone()))
    });
    let poll = std::time::Duration::from_millis(config.distribution.poll_interval_ms);
    let poller = tokio::spawn(crate::serving::run_poller(state.distribution.lists.clone(), poll, shutdown.clone()));
    let usage = tokio::spawn(crate::console::usage::run(state.quotas.usage.clone(), state.store.clone(), shutdown.clone()));
    let app = crate::http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned()).await?;
    shutdown.cancel();
    if let Some(worker) = worker {
        drop(worker.await);
    }
    drop(poller.await);
    drop(usage.await);
    drop(relay.await);
    if let Some(subscriber) = subscriber {
        drop(subscriber.await);
    }
    state.quotas.limiter.give_back_leases().await;
    tracing::info!("stopped accepting; in-flight requests finished");
    Ok(())
}

/// `admin blocklist …`: the actions of `/v1/admin/blocklists`, then a change notification to the
/// running replicas (through Redis when configured; otherwise they see it at their next poll).
async fn blocklist(config: &Config, store: &dyn Store, command: BlocklistCommand) -> anyhow::Result<()> {
    let changed = blocklist_action(store, command).await.map_err(|error| match error {
        // The field messages say what is wrong; the error's own text only that something is.
        UseCaseError::Invalid { field, message } => anyhow::anyhow!("{field}: {message}"),
        other => anyhow::Error::new(other),
    })?;
    if changed && let Some(url) = &config.redis_url {
        match crate::bus::ChangeBus::connect(url.expose()).await {
            Ok(bus) => bus.publish(store.list_seq(crate::domain::lists::COMMUNITY).await.unwrap_or(0)).await,
            Err(error) => eprintln!("warning: cannot reach Redis ({error}); running servers apply the change at their next poll"),
        }
    }
    Ok(())
}

/// One `admin blocklist` action; whether it changed what is served.
async fn blocklist_action(store: &dyn Store, command: BlocklistCommand) -> Result<bool, UseCaseError> {
    use palisade_api::native::{CreateListRequest, ListEntriesRequest, ListEntriesResponse};

    use crate::manage::lists;
    fn report(outcome: &ListEntriesResponse) {
        println!("{} added, {} removed, {} rejected", outcome.added, outcome.removed, outcome.rejected.len());
        for rejected in &outcome.rejected {
            eprintln!("rejected {}: {}", rejected.field, rejected.message);
        }
    }
    Ok(match command {
        BlocklistCommand::Create { name, kind, description } => {
            let view = lists::create_list(store, CreateListRequest { name, kind: Some(kind), description }).await?;
            println!("{} list {} created", view.kind, view.name);
            true
        }
        BlocklistCommand::List(flag) => {
            let views = lists::list_lists(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for view in views {
                    println!("{:<32} {:<6} {:<26} {}", view.name, view.kind, view.created_at, view.description);
                }
            }
            false
        }
        BlocklistCommand::Add { name, value, expires, remediation } => {
            let duration_secs =
                expires.as_deref().map(lists::parse_lifetime).transpose().map_err(|m| UseCaseError::invalid("expires", m))?;
            let request = ListEntriesRequest { add: vec![value], remove: Vec::new(), remediation, duration_secs };
            let outcome = lists::update_entries(store, &name, &request).await?;
            report(&outcome);
            if !outcome.rejected.is_empty() {
                return Err(UseCaseError::BadRequest("nothing was added".into()));
            }
            true
        }
        BlocklistCommand::Remove { name, value } => {
            let request = ListEntriesRequest { add: Vec::new(), remove: vec![value], remediation: None, duration_secs: None };
            let outcome = lists::update_entries(store, &name, &request).await?;
            report(&outcome);
            if !outcome.rejected.is_empty() {
                return Err(UseCaseError::BadRequest("nothing was removed".into()));
            }
            true
        }
        BlocklistCommand::Import { name, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| UseCaseError::BadRequest(format!("cannot read {}: {e}", file.display())))?;
            let outcome = lists::import_entries(store, &name, &text).await?;
            report(&outcome);
            true
        }
        BlocklistCommand::Delete { name } => {
            lists::delete_list(store, &name).await?;
            println!("list {name} deleted");
            true
        }
        BlocklistCommand::Subscribe { name, machine, off } => {
            lists::existing_list(store, &name).await?;
            lists::set_subscription(store, &name, &machine, !off).await?;
            println!("{machine} {} {name}", if off { "unsubscribed from" } else { "subscribed to" });
            false
        }
    })
}

/// Passes each list commit of the consensus worker on: to this replica's lists at once, and to
/// the other replicas through the change bus, with the community list's new seq.
async fn relay_commits(state: AppState, committed: std::sync::Arc<tokio::sync::Notify>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = committed.notified() => {}
        }
        state.distribution.lists.changed.notify_one();
        if state.distribution.bus.is_enabled() {
            match state.store.list_seq(crate::domain::lists::COMMUNITY).await {
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

async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let store = store.as_ref();
    match command {
        AdminCommand::Token(TokenCommand::Create) => {
            let token = manage::create_admin_token(store).await?;
            println!("{token}");
            eprintln!("use it as: Authorization: Bearer {token}   (it is shown only once)");
        }
        AdminCommand::Account(AccountCommand::Create { name }) => {
            let account = manage::create_account(store, &name).await?;
            println!("account {} created", account.name);
        }
        AdminCommand::Account(AccountCommand::List(flag)) => {
            let accounts: Vec<_> = store.list_accounts().await?.iter().map(manage::account_view).collect();
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&accounts)?);
            } else {
                println!("{:<32} {:<12} {:>8}  CREATED", "NAME", "LEVEL", "MACHINES");
                for a in accounts {
                    println!("{:<32} {:<12} {:>8}  {}", a.name, a.level, a.machines, a.created_at);
                }
            }
        }
        AdminCommand::Account(AccountCommand::LoginLink { name }) => {
            let secret = load_or_create_secret(config.auth.jwt_secret.as_ref(), &config.data_dir)?;
            let key = crate::auth::jwt::console_key(&secret);
            let link = manage::login_link(store, &key, &config.public_url(), &name).await?;
            println!("{}", link.url);
            eprintln!("valid until {} for account {}", link.expires_at, link.account);
        }
        AdminCommand::Account(AccountCommand::Tier { name, tier }) => {
            manage::set_account_tier(store, &config.tiers, &name, &tier).await?;
            println!("account {name} is now on tier {tier}");
        }
        AdminCommand::ApiKey(ApiKeyCommand::Create { account, tier }) => {
            if let Some(tier) = tier {
                manage::set_account_tier(store, &config.tiers, &account, &tier).await?;
            }
            let created = manage::create_api_key(store, &account).await?;
            println!("{}", created.key);
            eprintln!(
                "API key {} for account {} (tier {}); send it as x-api-key (it is shown only once)",
                created.prefix, created.account, created.tier
            );
        }
        AdminCommand::ApiKey(ApiKeyCommand::List { account, json }) => {
            let keys = manage::list_api_keys(store, account.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<14} {:<24} {:<12} {:<26} {:<26} REVOKED", "PREFIX", "ACCOUNT", "TIER", "CREATED", "LAST USED");
                for k in keys {
                    let last = k.last_used_at.unwrap_or_else(|| "-".into());
                    let revoked = k.revoked_at.unwrap_or_else(|| "-".into());
                    println!("{:<14} {:<24} {:<12} {:<26} {:<26} {revoked}", k.prefix, k.account, k.tier, k.created_at, last);
                }
            }
        }
        AdminCommand::ApiKey(ApiKeyCommand::Revoke { prefix }) => {
            manage::revoke_api_key(store, &prefix, None).await?;
            println!("API key {prefix} revoked");
        }
        AdminCommand::Account(AccountCommand::Level { name, level }) => {
            manage::set_account_level(store, &name, &level).await?;
            println!("account {name} is now {level}");
        }
        AdminCommand::Machine(MachineCommand::Sensor { name, off }) => {
            manage::set_sensor(store, &name, !off).await?;
            println!("machine {name} is {}", if off { "no longer a sensor" } else { "now a sensor" });
        }
        AdminCommand::Machine(MachineCommand::Trust { name }) => {
            let trust = manage::machine_trust(store, &config.consensus.params, &name).await?;
            println!("{}", serde_json::to_string_pretty(&trust)?);
        }
        AdminCommand::Canary(CanaryCommand::Add { value, note }) => {
            let canary = manage::add_canary(store, &value, &note).await?;
            println!("canary {} added", canary.value);
        }
        AdminCommand::Canary(CanaryCommand::Remove { value }) => {
            manage::remove_canary(store, &value).await?;
            println!("canary {value} removed");
        }
        AdminCommand::Canary(CanaryCommand::List(flag)) => {
            let canaries = manage::list_canaries(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&canaries)?);
            } else {
                for c in canaries {
                    println!("{:<40} {}  {}", c.value, c.created_at, c.note);
                }
            }
        }
        AdminCommand::Allowlist(AllowlistCommand::Import { file, source, category }) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let request = palisade_api::native::AllowlistImportRequest { source, category, text };
            let outcome = manage::import_allowlist(store, &request).await?;
            println!("{} ranges found, {} new", outcome.found, outcome.added);
        }
        AdminCommand::Allowlist(AllowlistCommand::Remove { value, source }) => {
            let removed = manage::remove_allowlist(store, value.as_deref(), source.as_deref()).await?;
            println!("{removed} entries removed");
        }
        AdminCommand::Allowlist(AllowlistCommand::List(flag)) => {
            let entries = manage::list_allowlist(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                for e in entries {
                    println!("{:<43} {:<14} {}", e.value, e.category, e.source);
                }
            }
        }
        AdminCommand::FalsePositive { value } => {
            let queued = manage::report_false_positive(store, &value).await?;
            println!("{}", queued.message);
        }
        AdminCommand::Blocklist(command) => blocklist(config, store, command).await?,
        AdminCommand::Explain { ip } => {
            let explanation = manage::explain(store, &config.consensus.params, &ip, true).await?;
            println!("{}", serde_json::to_string_pretty(&explanation)?);
        }
        AdminCommand::EnrollKey(EnrollKeyCommand::Create { account }) => {
            let created = manage::create_enroll_key(store, &account).await?;
            println!("{}", created.key);
            eprintln!("enroll with: cscli console enroll {0}   or   palisade enroll {0}   (shown only once)", created.key);
        }
        AdminCommand::Machine(MachineCommand::Add { name, sensor, crowdsec_credentials, url }) => {
            let credentials = manage::add_machine(store, &name, sensor).await?;
            match crowdsec_credentials {
                Some(path) => {
                    let url =
                        url.map(|u| if u.ends_with('/') { u } else { format!("{u}/") }).unwrap_or_else(|| config.public_url());
                    write_private(&path, &manage::crowdsec_credentials_yaml(&url, &credentials))?;
                    println!("machine {} created; CrowdSec credentials written to {}", credentials.machine_id, path.display());
                }
                None => {
                    println!("machine_id: {}", credentials.machine_id);
                    println!("password: {}", credentials.password);
                }
            }
        }
        AdminCommand::Machine(MachineCommand::List(flag)) => {
            let machines: Vec<_> = store.list_machines().await?.iter().map(manage::machine_view).collect();
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&machines)?);
            } else {
                println!("{:<50} {:<16} {:<7} {:>5} {:>8}  LAST LOGIN", "MACHINE", "ACCOUNT", "SENSOR", "TRUST", "SIGNALS");
                for m in machines {
                    println!(
                        "{:<50} {:<16} {:<7} {:>5.2} {:>8}  {}",
                        m.machine_id,
                        m.account.as_deref().unwrap_or("-"),
                        if m.sensor { "yes" } else { "no" },
                        m.trust,
                        m.signals,
                        m.last_login_at.as_deref().unwrap_or("never")
                    );
                }
            }
        }
    }
    Ok(())
}

/// Writes a file readable by its owner only, also when it already existed with a looser mode
/// (Debian's crowdsec package leaves `online_api_credentials.yaml` world-readable).
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    // The mode above applies only when the file is created; tighten an existing one before the
    // secret goes in.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
