//! The typed configuration and its validation. This is the only module that reads the
//! environment: a TOML file (optional), overridden by `PALISADE_*` variables (nested keys joined
//! with `__`, e.g. `PALISADE_INGEST__MAX_SIGNALS_PER_REQUEST`), then `DATABASE_URL` and
//! `REDIS_URL` by their usual names, then command-line flags. Components receive the parts they
//! need, never the whole `Config`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
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
    /// Base URL machines use to reach this server (written into CrowdSec credential files).
    /// Default: `http://<listen>/`.
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
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
    /// Benchmarks only: serve this file's bytes, read once at start-up, at
    /// `GET /v1/bench/static`, as the baseline the blocklist export is measured against. Off
    /// unless set; never set it in production.
    pub bench_static_file: Option<PathBuf>,
}

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
            bench_static_file: None,
        }
    }
}

/// Raw-signal retention and the maintenance job (run by the consensus leader) that applies it.
/// Aggregates (engine state, trust, listings) are kept; only raw signals expire, and never
/// before the consensus worker has processed them.
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
    /// Rows deleted per transaction on SQLite.
    pub delete_batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { signals_days: 90, partitions_ahead_days: 7, interval_secs: 3600, delete_batch: 5000 }
    }
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
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
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::prefixed("PALISADE_").split("__"))
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]).map(|k| k.as_str().to_ascii_lowercase().into()));
        let mut config: Config = figment.extract().context("invalid configuration")?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(dir) = overrides.data_dir {
            config.data_dir = dir;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the values make sense together, with a sentence a person understands.
    pub fn validate(&self) -> anyhow::Result<()> {
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
        if distribution.link_ttl_secs <= 0 {
            bail!("distribution.link_ttl_secs must be above zero");
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
        if retention.partitions_ahead_days == 0 || retention.partitions_ahead_days > 366 {
            bail!("retention.partitions_ahead_days must be between 1 and 366");
        }
        if retention.interval_secs == 0 || retention.delete_batch == 0 {
            bail!("retention.interval_secs and retention.delete_batch must be above zero");
        }
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

    /// Base URL machines use, always ending in `/` (CrowdSec requires it).
    pub fn public_url(&self) -> String {
        let url = self.public_url.clone().unwrap_or_else(|| format!("http://{}/", self.listen));
        if url.ends_with('/') { url } else { format!("{url}/") }
    }
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
        assert_eq!(Config::default().public_url(), "http://127.0.0.1:8080/");
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
    fn nonsense_is_refused_with_a_sentence() {
        let mut config = Config::default();
        config.auth.jwt_ttl_secs = 5;
        assert!(config.validate().unwrap_err().to_string().contains("jwt_ttl_secs"));
        let config = Config { database_url: Some(Secret::new("mysql://x")), ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("DATABASE_URL"));
        let mut config = Config::default();
        config.retention.signals_days = 3;
        assert!(config.validate().unwrap_err().to_string().contains("retention.signals_days"));
    }
}
