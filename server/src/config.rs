//! The typed configuration and its validation. This is the only module that reads the
//! environment: a TOML file (optional), overridden by `PALISADE_*` variables (nested keys joined
//! with `__`, e.g. `PALISADE_INGEST__MAX_SIGNALS_PER_REQUEST`), then `DATABASE_URL` and
//! `REDIS_URL` by their usual names, then command-line flags. Components receive the parts they
//! need, never the whole `Config`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A secret string: `Debug` and `Display` never show it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

/// The port the server listens on unless told otherwise: not 8080, where CrowdSec's local API
/// listens on the hosts Palisade is most often installed beside.
pub const DEFAULT_PORT: u16 = 8470;

/// Whole server configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the embedded database and the generated JWT key live.
    pub data_dir: PathBuf,
    /// `sqlite://…` (default: `<data_dir>/palisade.db`) or `postgres://…`.
    pub database_url: Option<Secret>,
    /// Optional Redis for shared limits and notifications.
    pub redis_url: Option<Secret>,
    /// After Redis fails, how long (seconds) the rate limiter stops asking it and enforces
    /// limits per replica before one probe; 0 asks Redis at every check.
    pub redis_breaker_secs: u64,
    /// Base URL machines use to reach this server (written into CrowdSec credential files,
    /// stream links and login links). Default: `http://<listen>/`, which only works when `listen`
    /// names one address: on `0.0.0.0` or `[::]` it must be set.
    pub public_url: Option<String>,
    /// `human` (default) or `json`.
    pub log_format: LogFormat,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Who may register machines.
    pub registration: RegistrationConfig,
    /// Signal ingestion limits.
    pub ingest: IngestConfig,
    /// Optional AS/country databases.
    pub enrich: EnrichConfig,
    /// The consensus worker and engine.
    pub consensus: ConsensusConfig,
    /// Blocklist serving: snapshots, change-log retention, per-consumer caps.
    pub distribution: DistributionConfig,
    /// API tiers by name (`[tiers.<name>]`); `free` must exist. Replaces the defaults when given.
    pub tiers: std::collections::BTreeMap<String, crate::limits::Tier>,
    /// Tier applied to lookups made with a machine token (contributors: give to get).
    pub machine_tier: String,
    /// Reverse proxies and load balancers (CIDRs) whose `X-Forwarded-For` / `Forwarded` header
    /// names the client. Empty by default: the TCP peer is the client, and no header is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long raw signals are kept, and the maintenance job that expires them.
    pub retention: RetentionConfig,
    /// What a hostile client may cost at the edge: connections, password hashing, credential
    /// guessing, registrations and logins per address and network.
    pub edge: EdgeConfig,
    /// The default policy of every account's private pool (`[pools]`); an account may have its
    /// own, set with `admin pool set` or the admin API.
    pub pools: crate::pools::PoolPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            data_dir: PathBuf::from("./palisade-data"),
            database_url: None,
            redis_url: None,
            redis_breaker_secs: 5,
            public_url: None,
            log_format: LogFormat::Human,
            auth: AuthConfig::default(),
            registration: RegistrationConfig::default(),
            ingest: IngestConfig::default(),
            enrich: EnrichConfig::default(),
            consensus: ConsensusConfig::default(),
            distribution: DistributionConfig::default(),
            tiers: crate::limits::default_tiers(),
            machine_tier: "basic".into(),
            trusted_proxies: Vec::new(),
            retention: RetentionConfig::default(),
            edge: EdgeConfig::default(),
            pools: crate::pools::PoolPolicy::default(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Machine token lifetime in seconds. CrowdSec logs in again a minute before expiry.
    pub jwt_ttl_secs: u64,
    /// HS256 key shared by all replicas. When absent, one is generated and kept in
    /// `<data_dir>/jwt.key` (mode 0600).
    pub jwt_secret: Option<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { jwt_ttl_secs: 3600, jwt_secret: None }
    }
}

/// Registration policy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Anyone may register a machine; new machines start with zero trust.
    #[default]
    Open,
    /// Only machines created by the operator (`admin machine add`) exist.
    Closed,
}

/// Who may register machines.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// `open` or `closed`.
    pub policy: RegistrationPolicy,
}

/// Signal ingestion limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted on the wire, in bytes.
    pub max_body_bytes: usize,
    /// Largest body after gzip/deflate decompression, in bytes.
    pub max_decompressed_bytes: usize,
    /// Most signals in one request (CrowdSec sends 50).
    pub max_signals_per_request: usize,
    /// Signals per second each machine may push on average (per process).
    pub per_machine_signals_per_sec: u32,
    /// Signals a machine may push in one burst (per process).
    pub per_machine_burst: u32,
    /// Oldest accepted signal, in days.
    pub max_signal_age_days: i64,
    /// How far in the future a signal's times may be, in seconds.
    pub max_clock_skew_secs: i64,
    /// Shortest IPv4 range prefix accepted in `Range` signals.
    pub min_v4_prefix: u8,
    /// Shortest IPv6 range prefix accepted in `Range` signals.
    pub min_v6_prefix: u8,
    /// Largest metrics or usage-metrics document stored per push, in bytes of compact JSON (what
    /// the database keeps); a larger push is refused with 413. CrowdSec's are a few KiB.
    pub max_metrics_bytes: usize,
    /// Largest `extra` kept per signal (the fields Palisade does not read, such as `decisions`
    /// and `context`), in bytes of compact JSON. Above it the largest fields are dropped until the
    /// rest fits; the signal itself is always kept.
    pub max_signal_extra_bytes: usize,
    /// Metrics and usage-metrics pushes each machine may make per hour on average (per process);
    /// CrowdSec sends one of each every 30 minutes. Beyond it: 429 with `Retry-After`.
    pub metrics_per_machine_per_hour: u32,
    /// Metrics pushes a machine may make in one burst (a restart sends both kinds at once).
    pub metrics_burst: u32,
    /// Bytes of signals (text fields and `extra`) each machine may have stored per UTC day (per
    /// process); a push that would pass it is refused whole with 429 and `Retry-After` (the next
    /// day), before anything is stored or acknowledged.
    pub signal_bytes_per_machine_per_day: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 2 * 1024 * 1024,
            max_decompressed_bytes: 16 * 1024 * 1024,
            max_signals_per_request: 1000,
            per_machine_signals_per_sec: 200,
            per_machine_burst: 5000,
            max_signal_age_days: 60,
            max_clock_skew_secs: 24 * 3600,
            min_v4_prefix: 16,
            min_v6_prefix: 32,
            max_metrics_bytes: 64 * 1024,
            max_signal_extra_bytes: 4 * 1024,
            metrics_per_machine_per_hour: 60,
            metrics_burst: 10,
            signal_bytes_per_machine_per_day: 50 * 1024 * 1024,
        }
    }
}

/// Optional enrichment databases: MaxMind `.mmdb` files (GeoLite2, DB-IP, ip-location-db) or
/// ip-location-db CSV range files; one source per kind.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichConfig {
    /// ASN database (`autonomous_system_number`, `autonomous_system_organization`).
    pub asn_mmdb: Option<PathBuf>,
    /// Country database (`country.iso_code`).
    pub country_mmdb: Option<PathBuf>,
    /// ip-location-db ASN CSV (`start,end,number,organisation`), instead of `asn_mmdb`.
    pub asn_csv: Option<PathBuf>,
    /// ip-location-db country CSV (`start,end,country_code`), instead of `country_mmdb`.
    pub country_csv: Option<PathBuf>,
}

/// The consensus worker and engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Run the worker in this process (a replica still takes part only while it holds the leadership).
    pub enabled: bool,
    /// The server's own addresses and infrastructure: never listed.
    pub own_addresses: Vec<ipnet::IpNet>,
    /// Shared addresses (CGNAT pools, VPN and Tor exits, known proxies): listed only on a higher
    /// bar, with a captcha remediation.
    pub shared_ranges: Vec<ipnet::IpNet>,
    /// Longest pause between steps when no signal arrives, in milliseconds.
    pub interval_ms: u64,
    /// Engine parameters (`docs/trust.md` explains each one).
    pub params: crate::engine::params::Params,
    /// Hosting space (cloud and server providers' ranges): the only place an IPv4 /24 with many
    /// listed addresses is listed whole.
    pub hosting_ranges: Vec<ipnet::IpNet>,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            enabled: true,
            own_addresses: Vec::new(),
            shared_ranges: Vec::new(),
            interval_ms: 1000,
            params: Default::default(),
            hosting_ranges: Vec::new(),
        }
    }
}

/// Blocklist serving.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributionConfig {
    /// How often each replica looks for list changes in the store, in milliseconds (the consensus
    /// worker of the same process also wakes it after each commit).
    pub poll_interval_ms: u64,
    /// Changes kept in memory per list: a delta cursor older than these gets 410 (resync).
    pub retained_changes: usize,
    /// Community-list entries a contributing machine receives on the CrowdSec streams.
    pub contributor_cap: usize,
    /// Community-list entries a machine that has not contributed recently receives.
    pub non_contributor_cap: usize,
    /// A machine counts as contributing while its last signal is at most this many days old.
    pub contribution_window_days: i64,
    /// Tailor the community view to the scenarios a machine declared at login (entries of other
    /// scenarios come after them when there is room).
    pub tailor_to_scenarios: bool,
    /// How long a presigned list link of the v3 stream stays valid, in seconds.
    pub link_ttl_secs: i64,
    /// Key material for presigned list links. When absent, the key is derived from the JWT
    /// secret, which every replica shares already.
    pub link_secret: Option<Secret>,
    /// Megabytes of full-list renderings each replica keeps for the next download (every
    /// format, family, aggregation and cap is one; the least recently used go first, one larger
    /// than the whole budget is rendered again for each download). 0 keeps none.
    pub render_cache_mb: usize,
    /// Benchmarks only: serve this file's bytes, read once at start-up, at
    /// `GET /v1/bench/static`, as the baseline the blocklist export is measured against. Off
    /// unless set; never set it in production.
    pub bench_static_file: Option<PathBuf>,
}

/// Megabytes of full-list renderings a replica keeps unless configured
/// (`distribution.render_cache_mb`).
pub const DEFAULT_RENDER_CACHE_MB: usize = 128;

impl Default for DistributionConfig {
    fn default() -> Self {
        DistributionConfig {
            poll_interval_ms: 1000,
            retained_changes: 1_000_000,
            contributor_cap: 15_000,
            non_contributor_cap: 3_000,
            contribution_window_days: 7,
            tailor_to_scenarios: true,
            link_ttl_secs: 24 * 3600,
            link_secret: None,
            render_cache_mb: DEFAULT_RENDER_CACHE_MB,
            bench_static_file: None,
        }
    }
}

/// Raw-signal and metrics-document retention and the maintenance job (run by the consensus
/// leader) that applies it. Aggregates (engine state, trust, listings) are kept; raw signals
/// expire, never before the consensus worker has processed them, and so do metrics documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw signals older than this many days are deleted (PostgreSQL: whole daily partitions
    /// dropped; SQLite: deleted in batches). 0 keeps them forever.
    pub signals_days: u32,
    /// Daily signal partitions created ahead of time on PostgreSQL.
    pub partitions_ahead_days: u32,
    /// How often the maintenance job runs, in seconds.
    pub interval_secs: u64,
    /// Rows deleted per statement: signals on SQLite, metrics documents on both backends.
    pub delete_batch: u32,
    /// Metrics and usage-metrics documents older than this many days are deleted (0 keeps them).
    pub metrics_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { signals_days: 90, partitions_ahead_days: 7, interval_secs: 3600, delete_batch: 5000, metrics_days: 30 }
    }
}

/// What a hostile client may cost at the edge. Every limit here is per process (per replica).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// TCP connections open at once, all clients together; one over it is accepted and closed.
    /// Lowered at start-up to leave 256 file descriptors below the open-file limit.
    pub max_connections: usize,
    /// TCP connections open at once from one peer address (0: no cap). Counted on the TCP peer:
    /// connections from a `trusted_proxies` peer count only against `max_connections`.
    pub max_connections_per_address: usize,
    /// Time for a request head to arrive once the server waits for one, in seconds: bounds
    /// slowloris clients and idle keep-alive connections.
    pub header_read_timeout_secs: u64,
    /// A connection with no byte read or written for this long is closed, in seconds (a
    /// stalled body or a client that stopped reading). Keep it above 50: a blocklist long-poll
    /// (`wait=`) holds its connection that long without a byte.
    pub idle_timeout_secs: u64,
    /// Password hashes and verifications (argon2id, 7 MiB each) running at once: memory spent
    /// on hashing is at most this × 7 MiB. Default: twice the number of CPU cores.
    pub max_concurrent_hashes: usize,
    /// How long a login or registration waits for a hashing slot before it is answered 503 with
    /// `Retry-After`, in milliseconds.
    pub hash_wait_ms: u64,
    /// Wrong credentials of one kind (admin token, API key, enrollment key, machine password)
    /// one client address (an IPv6 /64) may present per window; its further attempts of that
    /// kind get 429 until the window ends, without reaching the database. 0 disables the limit.
    pub max_credential_failures: u32,
    /// The window of `max_credential_failures`, in seconds.
    pub credential_failure_window_secs: u64,
    /// Machine registrations per hour from one client address (also the burst).
    pub registrations_per_hour_per_address: u32,
    /// Machine registrations per hour from one client network (also the burst).
    pub registrations_per_hour_per_network: u32,
    /// Machine logins per minute from one client address (bursts of a fifth of it).
    pub logins_per_minute_per_address: u32,
    /// Machine logins per minute from one client network (bursts of a fifth of it).
    pub logins_per_minute_per_network: u32,
    /// Machines that may register from one client network per 24 hours, counted in the store
    /// (so across restarts and replicas). 0: no cap.
    pub registrations_per_network_per_day: u32,
    /// The client network of an IPv4 client, as a prefix length (24: its /24).
    pub network_prefix_v4: u8,
    /// The client network of an IPv6 client, as a prefix length (64: its /64).
    pub network_prefix_v6: u8,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        EdgeConfig {
            max_connections: 10_000,
            max_connections_per_address: 128,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_concurrent_hashes: 2 * cores,
            hash_wait_ms: 2000,
            max_credential_failures: 20,
            credential_failure_window_secs: 600,
            registrations_per_hour_per_address: 10,
            registrations_per_hour_per_network: 30,
            logins_per_minute_per_address: 300,
            logins_per_minute_per_network: 1200,
            registrations_per_network_per_day: 100,
            network_prefix_v4: 24,
            network_prefix_v6: 64,
        }
    }
}

impl EdgeConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.max_connections == 0 || self.max_connections_per_address > self.max_connections {
            bail!("edge.max_connections must be above zero and edge.max_connections_per_address at most edge.max_connections");
        }
        if !(1..=3600).contains(&self.header_read_timeout_secs) || !(1..=3600).contains(&self.idle_timeout_secs) {
            bail!("edge.header_read_timeout_secs and edge.idle_timeout_secs must be between 1 and 3600 seconds");
        }
        if !(1..=4096).contains(&self.max_concurrent_hashes) {
            bail!("edge.max_concurrent_hashes must be between 1 and 4096 (each hash holds 7 MiB)");
        }
        if self.hash_wait_ms > 60_000 {
            bail!("edge.hash_wait_ms must be at most 60000 (a minute)");
        }
        if !(1..=86_400).contains(&self.credential_failure_window_secs) {
            bail!("edge.credential_failure_window_secs must be between 1 and 86400 (a day)");
        }
        let rates = [
            self.registrations_per_hour_per_address,
            self.registrations_per_hour_per_network,
            self.logins_per_minute_per_address,
            self.logins_per_minute_per_network,
        ];
        if rates.contains(&0) {
            bail!("edge.registrations_per_hour_* and edge.logins_per_minute_* must be above zero");
        }
        if !(8..=32).contains(&self.network_prefix_v4) || !(32..=128).contains(&self.network_prefix_v6) {
            bail!("edge.network_prefix_v4 must be between 8 and 32 and edge.network_prefix_v6 between 32 and 128");
        }
        Ok(())
    }
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--public-url`.
    pub public_url: Option<String>,
}

/// Longest period, in days, any day-counted setting may name: durations are added to the clock,
/// and a century keeps every sum inside the calendar.
const MAX_DAYS: i64 = 36_525;

/// Variables read by the command line, not by the configuration: `PALISADE_CONFIG` names the file
/// (`--config`), so as a configuration key it would be the unknown field `config`.
const COMMAND_LINE_VARS: [&str; 1] = ["PALISADE_CONFIG"];

/// The agent's variables (`PALISADE_AGENT_SERVER`, `PALISADE_AGENT_API_KEY`, …): the `palisade`
/// agent often runs on the same host, from the same shell, so the server leaves them alone.
const AGENT_PREFIX: &str = "PALISADE_AGENT_";

/// The configuration keys an environment sets, as figment's `Env::prefixed("PALISADE_")
/// .split("__")` reads them (names matched without regard to case, keys lower-cased, `__`
/// nesting, values parsed as figment values), without [`COMMAND_LINE_VARS`], then `DATABASE_URL`
/// and `REDIS_URL` under their own names. The flag says whether a key came from a `PALISADE_`
/// variable: those are applied first, so the two URLs win as they always have.
fn environment(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, figment::value::Value, bool)> {
    const PREFIX: &str = "PALISADE_";
    let mut keys = Vec::new();
    for (name, value) in vars {
        let name = name.trim();
        let parsed = || value.parse::<figment::value::Value>().unwrap_or_else(|never| match never {});
        if ["DATABASE_URL", "REDIS_URL"].iter().any(|url| url.eq_ignore_ascii_case(name)) {
            keys.push((name.to_ascii_lowercase(), parsed(), false));
            continue;
        }
        let Some(rest) = name.get(..PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(PREFIX)).map(|_| &name[PREFIX.len()..])
        else {
            continue;
        };
        if COMMAND_LINE_VARS.iter().any(|var| var.eq_ignore_ascii_case(name))
            || name.get(..AGENT_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(AGENT_PREFIX))
        {
            continue;
        }
        let key = rest.trim().replace("__", ".").to_ascii_lowercase();
        if key.split('.').any(str::is_empty) {
            continue;
        }
        keys.push((key, parsed(), true));
    }
    keys
}

/// A configuration that does not extract, with the `PALISADE_` variable named when an unknown
/// key came from one: another program's variable (an old agent's `PALISADE_SERVER`, say) would
/// otherwise read as a mystery field.
fn name_the_variable(error: figment::Error, from_environment: &[String]) -> anyhow::Error {
    if let figment::error::Kind::UnknownField(field, _) = &error.kind {
        let nested = |key: &String| key.rsplit('.').next() == Some(field.as_str());
        if let Some(key) = from_environment.iter().find(|key| nested(key)) {
            let variable = format!("PALISADE_{}", key.replace('.', "__").to_ascii_uppercase());
            return anyhow::anyhow!(
                "invalid configuration: the environment variable {variable} is not a palisade-server setting \
                 (unset it for the server; the palisade agent's own variables are named PALISADE_AGENT_*)"
            );
        }
    }
    anyhow::Error::new(error).context("invalid configuration")
}

/// Which storage engine a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Config {
    /// Loads defaults ← TOML file ← `PALISADE_*` ← `DATABASE_URL`/`REDIS_URL` ← flags, then validates.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Config> {
        let vars = std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()));
        Config::load_with_env(file, overrides, vars)
    }

    /// [`Config::load`] with the given environment instead of the process's: how a container
    /// image's or a manifest's variables are checked without running them.
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: Overrides,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        let (prefixed, urls): (Vec<_>, Vec<_>) = environment(vars).into_iter().partition(|(_, _, prefixed)| *prefixed);
        let from_environment: Vec<String> = prefixed.iter().map(|(key, _, _)| key.clone()).collect();
        for (key, value, _) in prefixed.into_iter().chain(urls) {
            figment = figment.merge(Serialized::default(&key, value));
        }
        let mut config: Config = figment.extract().map_err(|error| name_the_variable(error, &from_environment))?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(dir) = overrides.data_dir {
            config.data_dir = dir;
        }
        if let Some(url) = overrides.public_url {
            config.public_url = Some(url);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the values make sense together, with a sentence a person understands.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Err(problem) = self.pools.check() {
            bail!("pools: {problem}");
        }
        if self.auth.jwt_ttl_secs < 120 || self.auth.jwt_ttl_secs > 7 * 24 * 3600 {
            bail!("auth.jwt_ttl_secs must be between 120 (CrowdSec renews a minute before expiry) and 604800 seconds");
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < 32
        {
            bail!("auth.jwt_secret must be at least 32 characters long");
        }
        if let Some(url) = &self.database_url {
            let url = url.expose();
            if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("DATABASE_URL must start with sqlite:, postgres:// or postgresql://");
            }
        }
        let ingest = &self.ingest;
        if ingest.max_signals_per_request == 0
            || ingest.max_body_bytes < 1024
            || ingest.max_decompressed_bytes < ingest.max_body_bytes
        {
            bail!(
                "ingest limits must allow at least one signal, 1 KiB bodies, and a decompressed limit no smaller than the body limit"
            );
        }
        if ingest.per_machine_signals_per_sec == 0 || (ingest.per_machine_burst as usize) < ingest.max_signals_per_request {
            bail!("ingest.per_machine_burst must be at least ingest.max_signals_per_request, and the rate above zero");
        }
        if !(0..=7 * 24 * 3600).contains(&ingest.max_clock_skew_secs) {
            // PostgreSQL's redelivery check looks back this far from a signal's stop_at.
            bail!("ingest.max_clock_skew_secs must be between 0 and 604800 (7 days)");
        }
        if !(1024..=ingest.max_decompressed_bytes).contains(&ingest.max_metrics_bytes) {
            bail!("ingest.max_metrics_bytes must be between 1024 and ingest.max_decompressed_bytes");
        }
        if ingest.metrics_per_machine_per_hour == 0 || ingest.metrics_burst == 0 {
            bail!("ingest.metrics_per_machine_per_hour and ingest.metrics_burst must be above zero");
        }
        if ingest.signal_bytes_per_machine_per_day < 64 * 1024 {
            bail!("ingest.signal_bytes_per_machine_per_day must be at least 65536 (64 KiB)");
        }
        if ingest.max_signal_extra_bytes > 1024 * 1024 {
            bail!("ingest.max_signal_extra_bytes must be at most 1048576 (1 MiB)");
        }
        if !(1..=MAX_DAYS).contains(&ingest.max_signal_age_days) {
            bail!("ingest.max_signal_age_days must be between 1 and {MAX_DAYS} (a century)");
        }
        if ingest.min_v4_prefix > 32 || ingest.min_v6_prefix > 128 {
            bail!("ingest.min_v4_prefix must be at most 32 and ingest.min_v6_prefix at most 128");
        }
        let distribution = &self.distribution;
        if distribution.poll_interval_ms == 0 || distribution.poll_interval_ms > 60_000 {
            bail!("distribution.poll_interval_ms must be between 1 and 60000");
        }
        if distribution.retained_changes == 0 || distribution.contribution_window_days < 0 {
            bail!("distribution.retained_changes must be above zero and distribution.contribution_window_days not negative");
        }
        if distribution.contribution_window_days > MAX_DAYS {
            bail!("distribution.contribution_window_days must be at most {MAX_DAYS} (a century)");
        }
        if !(1..=366 * 24 * 3600).contains(&distribution.link_ttl_secs) {
            bail!("distribution.link_ttl_secs must be between 1 and 31622400 (a year)");
        }
        if self.consensus.interval_ms == 0 || self.consensus.interval_ms > 60_000 {
            bail!("consensus.interval_ms must be between 1 and 60000");
        }
        crate::limits::validate_tiers(&self.tiers)?;
        if !self.tiers.contains_key(&self.machine_tier) {
            bail!("machine_tier {:?} is not a configured tier", self.machine_tier);
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("public_url must start with http:// or https://");
        }
        let retention = &self.retention;
        if retention.signals_days != 0 && i64::from(retention.signals_days) < self.distribution.contribution_window_days {
            bail!(
                "retention.signals_days must be 0 (keep forever) or at least distribution.contribution_window_days ({}): \
                 contributors are recognised by their recent signals",
                self.distribution.contribution_window_days
            );
        }
        if i64::from(retention.signals_days) > MAX_DAYS || i64::from(retention.metrics_days) > MAX_DAYS {
            bail!("retention.signals_days and retention.metrics_days must be at most {MAX_DAYS} (a century); 0 keeps forever");
        }
        if retention.interval_secs > 7 * 24 * 3600 {
            bail!("retention.interval_secs must be at most 604800 (a week)");
        }
        let params = &self.consensus.params;
        for (name, secs) in [
            ("evidence_window_secs", params.evidence_window_secs),
            ("good_half_life_secs", params.good_half_life_secs),
            ("bad_half_life_secs", params.bad_half_life_secs),
            ("ramp_start_secs", params.ramp_start_secs),
            ("ramp_full_secs", params.ramp_full_secs),
            ("established_age_secs", params.established_age_secs),
            ("base_ttl_secs", params.base_ttl_secs),
            ("max_ttl_secs", params.max_ttl_secs),
            ("false_positive_protection_secs", params.false_positive_protection_secs),
            ("canary_void_window_secs", params.canary_void_window_secs),
            ("penalty_batch_secs", params.penalty_batch_secs),
        ] {
            // Times are added to these and to each other: a century keeps every sum far from overflow.
            if !(0..=MAX_DAYS * 86_400).contains(&secs) {
                bail!("consensus.params.{name} must be between 0 and {} seconds (a century)", MAX_DAYS * 86_400);
            }
        }
        if retention.partitions_ahead_days == 0 || retention.partitions_ahead_days > 366 {
            bail!("retention.partitions_ahead_days must be between 1 and 366");
        }
        if retention.interval_secs == 0 || retention.delete_batch == 0 {
            bail!("retention.interval_secs and retention.delete_batch must be above zero");
        }
        self.edge.validate()?;
        Ok(())
    }

    /// The storage engine in use.
    pub fn backend(&self) -> Backend {
        match &self.database_url {
            Some(url) if !url.expose().starts_with("sqlite:") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// The database URL, defaulting to the SQLite file in the data dir.
    pub fn database_url(&self) -> Secret {
        self.database_url
            .clone()
            .unwrap_or_else(|| Secret::new(format!("sqlite://{}", self.data_dir.join("palisade.db").display())))
    }

    /// Base URL machines use, always ending in `/` (CrowdSec requires it). Without `public_url`
    /// it is `http://<listen>/`, refused when that names no one address (`0.0.0.0`, `[::]`,
    /// port 0): such a URL written into a credentials file or a link reaches nothing.
    pub fn public_url(&self) -> anyhow::Result<String> {
        let url = match &self.public_url {
            Some(url) => url.clone(),
            None if self.listen.ip().is_unspecified() || self.listen.port() == 0 => bail!(
                "listen is {}, which names no address machines could use, so public_url must be set: the URL \
                 machines reach this server at, e.g. public_url = \"https://palisade.example.net/\" in the \
                 configuration, PALISADE_PUBLIC_URL, or serve --public-url",
                self.listen
            ),
            None => format!("http://{}/", self.listen),
        };
        Ok(if url.ends_with('/') { url } else { format!("{url}/") })
    }
}

/// The name of the user running this process on the host (`$USER`, else `$LOGNAME`, else the
/// numeric id from `/proc/self`), for the audit log of the command line.
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
                status.lines().find_map(|line| {
                    line.strip_prefix("Uid:").and_then(|rest| rest.split_whitespace().next()).map(|uid| format!("uid {uid}"))
                })
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secrets_are_redacted() {
        let mut config = Config::default();
        config.validate().unwrap();
        config.database_url = Some(Secret::new("postgres://user:hunter2@db/palisade"));
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.backend(), Backend::Postgres);
        assert_eq!(Config::default().public_url().expect("usable"), "http://127.0.0.1:8470/");
    }

    #[test]
    fn the_example_config_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/palisade.toml");
        let text = std::fs::read_to_string(&path).expect("deploy/palisade.toml exists");
        let config: Config =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(&text)).extract().expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.listen, Config::default().listen);
    }

    #[test]
    fn scenario_classes_are_configured_by_name_and_checked() {
        let text = "[consensus.params.scenarios]\n\"acme/sip-bf\" = \"spoofable\"\n";
        let config: Config =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)).extract().expect("parses");
        let engine = crate::engine::Engine::new(config.consensus.params.clone(), false);
        assert!(engine.is_spoofable("acme/sip-bf"));
        assert!(engine.params().never_block_guard, "the guard is not configurable");
        let wrong = "[consensus.params.scenarios]\n\"acme/sip-bf\" = \"sometimes\"\n";
        let refused = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(wrong)).extract::<Config>();
        assert!(refused.is_err());
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_config_file_variable_and_the_agents_variables_are_not_configuration() {
        let env = vars(&[
            ("PALISADE_CONFIG", "/etc/palisade/palisade.toml"),
            ("PALISADE_LISTEN", "0.0.0.0:8080"),
            ("PALISADE_AGENT_SERVER", "http://palisade.example.net/"),
            ("PALISADE_AGENT_CONFIG", "/etc/palisade/agent.toml"),
            ("PALISADE_INGEST__MAX_SIGNALS_PER_REQUEST", "50"),
            ("PALISADE_TRUSTED_PROXIES", "[10.0.0.1/32]"),
            ("HOME", "/root"),
        ]);
        let config = Config::load_with_env(None, Overrides::default(), env).expect("loads");
        assert_eq!(config.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
        assert_eq!(config.ingest.max_signals_per_request, 50);
        assert_eq!(config.trusted_proxies, ["10.0.0.1/32".parse::<ipnet::IpNet>().expect("net")]);

        let unknown = Config::load_with_env(None, Overrides::default(), vars(&[("PALISADE_CONFIGURATION", "x")]));
        let refused = format!("{:#}", unknown.expect_err("unknown keys are still refused"));
        assert!(refused.contains("PALISADE_CONFIGURATION is not a palisade-server setting"), "{refused}");
        let nested = Config::load_with_env(None, Overrides::default(), vars(&[("PALISADE_INGEST__SPEED", "1")]));
        assert!(format!("{:#}", nested.expect_err("refused")).contains("PALISADE_INGEST__SPEED"));
    }

    #[test]
    fn an_address_that_names_no_one_is_not_written_as_the_public_url() {
        for listen in ["0.0.0.0:8470", "[::]:8470", "127.0.0.1:0"] {
            let config = Config { listen: listen.parse().expect("address"), ..Config::default() };
            let refused = config.public_url().expect_err("no usable URL");
            assert!(refused.to_string().contains("public_url must be set"), "{refused}");
            let config = Config { public_url: Some("https://palisade.example.net".into()), ..config };
            assert_eq!(config.public_url().expect("set"), "https://palisade.example.net/");
        }
        let config = Config { listen: "192.0.2.10:8470".parse().expect("address"), ..Config::default() };
        assert_eq!(config.public_url().expect("one address"), "http://192.0.2.10:8470/");
    }

    #[test]
    fn database_url_wins_over_its_prefixed_form() {
        let env = vars(&[("DATABASE_URL", "postgres://db/one"), ("PALISADE_DATABASE_URL", "postgres://db/two")]);
        let config = Config::load_with_env(None, Overrides::default(), env).expect("loads");
        assert_eq!(config.database_url.expect("set").expose(), "postgres://db/one");
    }

    #[test]
    fn nonsense_is_refused_with_a_sentence() {
        let mut config = Config::default();
        config.auth.jwt_ttl_secs = 5;
        assert!(config.validate().unwrap_err().to_string().contains("jwt_ttl_secs"));
        let config = Config { database_url: Some(Secret::new("mysql://x")), ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("DATABASE_URL"));
        let mut config = Config::default();
        config.retention.signals_days = 3;
        assert!(config.validate().unwrap_err().to_string().contains("retention.signals_days"));
        let mut config = Config::default();
        config.retention.signals_days = u32::MAX;
        assert!(config.validate().unwrap_err().to_string().contains("retention.signals_days"));
        let mut config = Config::default();
        config.ingest.max_signal_age_days = i64::MAX;
        assert!(config.validate().unwrap_err().to_string().contains("max_signal_age_days"));
        let mut config = Config::default();
        config.distribution.link_ttl_secs = i64::MAX;
        assert!(config.validate().unwrap_err().to_string().contains("link_ttl_secs"));
        let mut config = Config::default();
        config.consensus.params.max_ttl_secs = i64::MAX;
        assert!(config.validate().unwrap_err().to_string().contains("max_ttl_secs"));
    }
}
