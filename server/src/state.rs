//! `AppState`: the cheap, cloneable handles every handler may reach through `State`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;
use time::Duration;

use crate::auth::jwt::JwtKeys;
use crate::config::{IngestConfig, RegistrationPolicy};
use crate::domain::signal::SignalRules;
use crate::enrich::Enricher;
use crate::store::Store;

/// Shared state of the HTTP layer.
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
    /// Per-source-address limit on register and login, which cost an argon2 hash each.
    pub auth_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Prometheus exposition.
    pub metrics: PrometheusHandle,
    /// Wakes the consensus worker (new signals, operator requests).
    pub consensus_wake: Arc<tokio::sync::Notify>,
    /// Engine parameters (for explanations computed outside the worker).
    pub engine_params: Arc<crate::engine::params::Params>,
    /// The server's own addresses: never listed, never served.
    pub own_addresses: Arc<Vec<ipnet::IpNet>>,
    /// In-memory blocklist snapshots and rendered bytes.
    pub lists: Arc<crate::serving::Lists>,
    /// Blocklist serving settings (caps, contribution window).
    pub distribution: Arc<crate::config::DistributionConfig>,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(
        store: Arc<dyn Store>,
        jwt: JwtKeys,
        enricher: Enricher,
        registration: RegistrationPolicy,
        ingest: IngestConfig,
        metrics: PrometheusHandle,
    ) -> Self {
        let rate = NonZeroU32::new(ingest.per_machine_signals_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(ingest.per_machine_burst).unwrap_or(rate);
        let auth_quota = Quota::per_minute(NonZeroU32::new(300).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN));
        let distribution = crate::config::DistributionConfig::default();
        AppState {
            lists: Arc::new(crate::serving::Lists::new(store.clone(), distribution.retained_changes, Vec::new())),
            distribution: Arc::new(distribution),
            store,
            jwt: Arc::new(jwt),
            enricher: Arc::new(enricher),
            registration,
            ingest_limiter: Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))),
            auth_limiter: Arc::new(RateLimiter::keyed(auth_quota)),
            ingest: Arc::new(ingest),
            metrics,
            consensus_wake: Arc::new(tokio::sync::Notify::new()),
            engine_params: Arc::new(crate::engine::params::Params::default()),
            own_addresses: Arc::new(Vec::new()),
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
