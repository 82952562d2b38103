//! `AppState`: the cheap, cloneable handles every handler may reach through `State`, built once
//! from the configuration ([`AppState::from_config`]) and the parts that take I/O to make.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;
use time::Duration;

use crate::auth::jwt::JwtKeys;
use crate::auth::links::LinkSigner;
use crate::auth::password::Hashing;
use crate::bus::ChangeBus;
use crate::config::{Config, IngestConfig, RegistrationPolicy};
use crate::console::usage::UsageRecorder;
use crate::distribution::Distribution;
use crate::domain::signal::SignalRules;
use crate::enrich::Enricher;
use crate::limits::failures::FailureLimiter;
use crate::limits::sources::{NetworkWidth, Rate, SourceLimits, SourceRates};
use crate::limits::{Limiter, Tier};
use crate::lookup::Lookup;
use crate::revocation::Revocations;
use crate::store::{ApiKeyRecord, Store};

/// Shared state of the HTTP layer, built once from the configuration by [`AppState::from_config`].
#[derive(Clone)]
pub struct AppState {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Machine token keys.
    pub jwt: Arc<JwtKeys>,
    /// AS/country lookups.
    pub enricher: Arc<Enricher>,
    /// Who may register.
    pub registration: RegistrationPolicy,
    /// Ingestion limits.
    pub ingest: Arc<IngestConfig>,
    /// Per-machine signal rate (per process).
    pub ingest_limiter: Arc<DefaultKeyedRateLimiter<i64>>,
    /// Per-machine limit on metrics and usage-metrics pushes (per process).
    pub metrics_limiter: Arc<DefaultKeyedRateLimiter<i64>>,
    /// Bytes of signals each machine had stored today, against `ingest.signal_bytes_per_machine_per_day`.
    pub signal_bytes: Arc<crate::limits::daily_bytes::DailyBytes>,
    /// Register and login rates per client address and network, which cost an argon2 hash each.
    pub source_limits: Arc<SourceLimits>,
    /// Machines that may register from one client network per 24 hours (0: no cap).
    pub registrations_per_network_per_day: u32,
    /// Password hashing, bounded (`edge.max_concurrent_hashes`).
    pub hashing: Arc<Hashing>,
    /// Wrong credentials per client (`edge.max_credential_failures`), per process.
    pub credential_failures: Arc<FailureLimiter>,
    /// Prometheus exposition.
    pub metrics: PrometheusHandle,
    /// Wakes the consensus worker (new signals, operator requests).
    pub consensus_wake: Arc<tokio::sync::Notify>,
    /// Engine parameters (for explanations computed outside the worker).
    pub engine_params: Arc<crate::engine::params::Params>,
    /// The served lists, and what each consumer receives of them.
    pub distribution: Arc<Distribution>,
    /// Lookup tiers, who is on which, and the limiter that counts.
    pub quotas: Quotas,
    /// The revocations every credential is checked against, and the live admin tokens.
    pub revocations: Arc<Revocations>,
    /// The IP lookup, with what it keeps between requests.
    pub lookup: Arc<Lookup>,
    /// Proxies whose forwarding headers name the client (`trusted_proxies`); empty by default.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// The base URL machines and browsers use (ending in `/`); empty when unknown. The console
    /// builds copy-ready URLs from it and marks its cookies `Secure` when it is https.
    pub public_url: Arc<str>,
    /// Benchmarks only: the bytes served at `/v1/bench/static` when configured.
    pub bench_static: Option<bytes::Bytes>,
    /// The pool policy of accounts without their own (`[pools]`).
    pub pool_policy: Arc<crate::pools::PoolPolicy>,
    /// Refreshes the external feeds (the operator's "refresh now", and the feeds job).
    pub feeds: Arc<crate::feeds::Feeds>,
}

/// Lookup quotas: the tiers, which one a machine token gets, the limiter that counts, and what
/// it keeps between requests.
#[derive(Clone)]
pub struct Quotas {
    /// Lookup tiers by name.
    pub tiers: Arc<BTreeMap<String, Tier>>,
    /// Tier of lookups made with a machine token.
    pub machine_tier: Arc<str>,
    /// Burst and quota enforcement (global through Redis when configured).
    pub limiter: Arc<Limiter>,
    /// Recently authenticated API keys.
    pub api_keys: Arc<ApiKeyCache>,
    /// Lookups charged to accounts, counted per day for the console's usage history.
    pub usage: Arc<UsageRecorder>,
}

impl Quotas {
    /// A tier by name; an account whose tier is no longer configured gets the default one.
    pub fn tier(&self, name: &str) -> Tier {
        self.tiers
            .get(name)
            .or_else(|| self.tiers.get(crate::limits::DEFAULT_TIER))
            .cloned()
            .unwrap_or_else(|| crate::limits::default_tiers().remove(crate::limits::DEFAULT_TIER).unwrap_or_else(fallback_tier))
    }
}

/// What the state is made of besides the configuration: the handles whose making takes I/O
/// (opening the database, reaching Redis, reading files), made by the caller.
pub struct Parts {
    /// The opened, migrated store.
    pub store: Arc<dyn Store>,
    /// The server secret: machine tokens, console sessions and (unless configured apart) list
    /// links are signed with keys derived from it.
    pub secret: Vec<u8>,
    /// AS/country databases.
    pub enricher: Enricher,
    /// Prometheus exposition.
    pub metrics: PrometheusHandle,
    /// The lookup limiter (with Redis when configured and reachable).
    pub limiter: Limiter,
    /// The change bus (disabled without Redis).
    pub bus: ChangeBus,
    /// Benchmarks only: the bytes of `distribution.bench_static_file`, when set.
    pub bench_static: Option<bytes::Bytes>,
}

impl AppState {
    /// Builds the state from the configuration and the parts made from it.
    pub fn from_config(config: &Config, parts: Parts) -> Self {
        let ingest = config.ingest.clone();
        let rate = NonZeroU32::new(ingest.per_machine_signals_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(ingest.per_machine_burst).unwrap_or(rate);
        let metrics_quota = Quota::per_hour(NonZeroU32::new(ingest.metrics_per_machine_per_hour).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(ingest.metrics_burst).unwrap_or(NonZeroU32::MIN));
        let own_addresses = &config.consensus.own_addresses;
        // `serve` refuses to start without a usable URL; a state built otherwise (tests, tools)
        // without one serves links relative to the server.
        let public_url: Arc<str> = Arc::from(config.public_url().unwrap_or_default().as_str());
        let lists = Arc::new(
            crate::serving::Lists::new(parts.store.clone(), config.distribution.retained_changes, own_addresses.clone())
                .with_render_cache_bytes(config.distribution.render_cache_mb.saturating_mul(1 << 20)),
        );
        // List links are signed with the server secret unless a key of their own is configured.
        let api_keys = Arc::new(ApiKeyCache::default());
        let revocations = {
            let api_keys = api_keys.clone();
            Revocations::new(parts.store.clone(), parts.bus.clone(), config.auth.jwt_ttl_secs, Box::new(move || api_keys.clear()))
        };
        let link_secret =
            config.distribution.link_secret.as_ref().map_or(parts.secret.clone(), |s| s.expose().as_bytes().to_vec());
        let distribution = Distribution::new(
            parts.store.clone(),
            lists.clone(),
            config.distribution.clone(),
            LinkSigner::derive(&link_secret, config.distribution.link_ttl_secs),
            parts.bus,
            public_url.clone(),
            own_addresses.clone(),
        );
        let enricher = Arc::new(parts.enricher);
        let engine_params = Arc::new(config.consensus.params.clone());
        let lookup =
            Lookup::new(parts.store.clone(), lists.clone(), enricher.clone(), own_addresses.clone(), engine_params.clone());
        let feeds = Arc::new(crate::feeds::Feeds::new(parts.store.clone(), own_addresses.clone()));
        AppState {
            distribution: Arc::new(distribution),
            store: parts.store,
            jwt: Arc::new(JwtKeys::new(&parts.secret, Duration::seconds(config.auth.jwt_ttl_secs as i64))),
            enricher,
            registration: config.registration.policy,
            ingest_limiter: Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))),
            metrics_limiter: Arc::new(RateLimiter::keyed(metrics_quota)),
            signal_bytes: Arc::default(),
            source_limits: Arc::new(source_limits(&config.edge)),
            registrations_per_network_per_day: config.edge.registrations_per_network_per_day,
            ingest: Arc::new(ingest),
            hashing: Arc::new(Hashing::new(
                config.edge.max_concurrent_hashes,
                std::time::Duration::from_millis(config.edge.hash_wait_ms),
            )),
            credential_failures: Arc::new(FailureLimiter::new(
                config.edge.max_credential_failures,
                std::time::Duration::from_secs(config.edge.credential_failure_window_secs),
            )),
            metrics: parts.metrics,
            consensus_wake: Arc::new(tokio::sync::Notify::new()),
            engine_params,
            quotas: Quotas {
                tiers: Arc::new(config.tiers.clone()),
                machine_tier: Arc::from(config.machine_tier.as_str()),
                limiter: Arc::new(parts.limiter),
                api_keys,
                usage: Arc::new(UsageRecorder::default()),
            },
            revocations: Arc::new(revocations),
            lookup: Arc::new(lookup),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            public_url,
            bench_static: parts.bench_static,
            pool_policy: Arc::new(config.pools.clone()),
            feeds,
        }
    }

    /// The per-item signal rules at `now`.
    pub fn signal_rules(&self, now: time::OffsetDateTime) -> SignalRules {
        SignalRules {
            now,
            max_age: Duration::days(self.ingest.max_signal_age_days),
            max_clock_skew: Duration::seconds(self.ingest.max_clock_skew_secs),
            min_v4_prefix: self.ingest.min_v4_prefix,
            min_v6_prefix: self.ingest.min_v6_prefix,
        }
    }
}

/// Register and login rates from the configuration: registrations with an hour's worth at
/// once, logins with a fifth of a minute's.
fn source_limits(edge: &crate::config::EdgeConfig) -> SourceLimits {
    let hourly = |per_hour: u32| Rate { per_hour, burst: per_hour };
    let per_minute = |per_minute: u32| Rate { per_hour: per_minute.saturating_mul(60), burst: (per_minute / 5).max(1) };
    SourceLimits::new(
        NetworkWidth { v4_prefix: edge.network_prefix_v4, v6_prefix: edge.network_prefix_v6 },
        SourceRates {
            per_address: hourly(edge.registrations_per_hour_per_address),
            per_network: hourly(edge.registrations_per_hour_per_network),
        },
        SourceRates {
            per_address: per_minute(edge.logins_per_minute_per_address),
            per_network: per_minute(edge.logins_per_minute_per_network),
        },
    )
}

/// A tier that admits almost nothing, for a configuration with no tiers at all (validation
/// prevents it; this keeps the lookup path free of panics regardless).
fn fallback_tier() -> Tier {
    Tier { lookups_per_day: 1, lookups_per_month: 1, rate_per_sec: 1.0, burst: 1, bulk_max: 1, blocklists: BTreeMap::new() }
}

/// How long an authenticated API key is trusted without asking the database again. Revocation
/// and tier changes made on this replica clear the cache at once; a revocation clears it on
/// every replica as soon as they see it ([`crate::revocation`]); tier changes made elsewhere take
/// effect within this time.
pub const API_KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// API keys by hash, as last read from the store (`None`: no such key).
#[derive(Default)]
pub struct ApiKeyCache {
    entries: Mutex<HashMap<String, (Instant, Option<ApiKeyRecord>)>>,
}

impl ApiKeyCache {
    /// The cached record for a hash, if fresh.
    pub fn get(&self, hash: &str) -> Option<Option<ApiKeyRecord>> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(hash).filter(|(at, _)| at.elapsed() < API_KEY_CACHE_TTL).map(|(_, record)| record.clone())
    }

    /// Remembers a record.
    pub fn put(&self, hash: String, record: Option<ApiKeyRecord>) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() > 100_000 {
            entries.retain(|_, (at, _)| at.elapsed() < API_KEY_CACHE_TTL);
        }
        entries.insert(hash, (Instant::now(), record));
    }

    /// Forgets everything (after a revocation or a tier change).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}
