//! Tracing (human or JSON lines) and the process-wide Prometheus recorder, and the metric
//! families a server exports from its start (so dashboards and alerts find them before the first
//! event).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG` overrides the default `info` filter.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colour only for a person at a terminal: escape codes in a journal or a file are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
                )
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours still renders.
            drop(metrics::set_global_recorder(recorder));
            handle
        })
        .clone()
}

/// Metric families present from start-up, at zero, so that a scrape shows them before their first
/// event (an alert on a rate of errors needs the series to exist). Families with labels appear
/// with their first labelled event.
pub fn register_families() {
    // The recorder must be installed first, or these go to the no-op recorder.
    drop(metrics_handle());
    for name in [
        "palisade_signals_accepted_total",
        "palisade_signals_duplicate_total",
        "palisade_abuseipdb_reports_total",
        "palisade_lookups_total",
        "palisade_quota_denials_total",
        "palisade_redis_errors_total",
        "palisade_retention_partitions_dropped_total",
        "palisade_retention_signals_deleted_total",
        "palisade_retention_metrics_deleted_total",
        "palisade_connections_timed_out_total",
        "palisade_password_hash_saturated_total",
        "palisade_registrations_capped_total",
        "palisade_ratelimit_redis_breaker_opened_total",
        "palisade_ratelimit_redis_breaker_skipped_total",
        "palisade_store_fail_fast_total",
        "palisade_revocation_reloads_total",
        "palisade_revocation_refresh_failures_total",
        "palisade_revocation_announce_failures_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for kind in ["unavailable", "database"] {
        metrics::counter!("palisade_store_errors_total", "kind" => kind).increment(0);
    }
    for name in [
        "palisade_consensus_leader",
        "palisade_consensus_lag_signals",
        "palisade_consensus_lag_seconds",
        "palisade_connections_open",
        "palisade_password_hashes_in_flight",
    ] {
        metrics::gauge!(name).set(0.0);
    }
}
