//! What operators watch: after real traffic (registrations, signals, a sensor listing and an
//! upheld false positive, stream pulls, a blocklist download, lookups up to the quota) a scrape of
//! `/metrics` shows every family the docs and the Grafana dashboard name, with the traffic counted;
//! and every metric the dashboard (`deploy/grafana/palisade.json`, valid JSON) queries is exported.
//! Redis points at a closed port here, so the Redis error family counts a real failure.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_api::capi::LoginResponse;
use palisade_api::native::MachineCredentials;
use palisade_tests::http::{Http, metric_sum, test_client};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, free_port, wait_until, workspace_root};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TIERS: &str = r#"
[tiers.free]
lookups_per_day = 3
lookups_per_month = 100
rate_per_sec = 1000.0
burst = 1000
bulk_max = 10
"#;

/// Families that must be on `/metrics` after the traffic below, and whether the traffic must have
/// moved them above zero.
const FAMILIES: &[(&str, bool)] = &[
    ("palisade_http_requests_total", true),
    ("palisade_http_request_duration_seconds_count", true),
    ("palisade_signals_accepted_total", true),
    ("palisade_signals_duplicate_total", false),
    ("palisade_signals_rejected_total", true),
    ("palisade_consensus_leader", true),
    ("palisade_consensus_lag_signals", false),
    ("palisade_consensus_lag_seconds", false),
    ("palisade_consensus_listings_total", true),
    ("palisade_consensus_delistings_total", true),
    ("palisade_stream_pulls_total", true),
    ("palisade_blocklist_pulls_total", true),
    ("palisade_served_bytes_total", true),
    ("palisade_serving_list_entries", false),
    ("palisade_lookups_total", true),
    ("palisade_quota_denials_total", true),
    ("palisade_store_errors_total", false),
    ("palisade_redis_errors_total", true),
    ("palisade_retention_partitions_dropped_total", false),
    ("palisade_retention_signals_deleted_total", false),
];

fn signal(ip: &str) -> Value {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("formats");
    json!([{
        "machine_id": "agent", "message": "test", "scenario": "crowdsecurity/ssh-bf",
        "scenario_hash": "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f",
        "scenario_trust": "certified", "scenario_version": "0.1",
        "source": {"ip": ip, "scope": "Ip", "value": ip}, "start_at": now, "stop_at": now
    }])
}

fn login(http: &Http, base: &str, admin: &str, name: &str, sensor: bool) -> anyhow::Result<String> {
    let reply = http.post(&format!("{base}v1/admin/machines"), Some(admin), &json!({"name": name, "sensor": sensor}))?;
    ensure!(reply.status == 201, "{} {}", reply.status, reply.body);
    let created: MachineCredentials = reply.json()?;
    let body = json!({"machine_id": created.machine_id, "password": created.password, "scenarios": ["crowdsecurity/ssh-bf"]});
    Ok(http.post(&format!("{base}v2/watchers/login"), None, &body)?.json::<LoginResponse>()?.token)
}

/// Metric names a dashboard's PromQL expressions use (`palisade_…` identifiers).
fn dashboard_metrics(dashboard: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    for panel in panels {
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            let expr = target["expr"].as_str().unwrap_or_default();
            let mut rest = expr;
            while let Some(start) = rest.find("palisade_") {
                let tail = &rest[start..];
                let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    names
}

#[test]
fn metrics_show_every_family_after_traffic_and_the_dashboard_queries_only_exported_ones() -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let closed_redis = format!("redis://127.0.0.1:{}", free_port()?);
    let server =
        ServerProcess::start(&db, ServerOptions { env: vec![("REDIS_URL".into(), closed_redis)], config_toml: TIERS.into() })?;
    let http = Http::new()?;
    let base = &server.url;
    let admin = server.admin_token()?;
    let sensor = login(&http, base, &admin, "honeypot-1", true)?;
    let watcher = login(&http, base, &admin, "watcher-1", false)?;

    for (token, ip) in [(&watcher, "45.33.32.156"), (&sensor, "45.33.32.156"), (&watcher, "45.33.32.157")] {
        let reply = http.post(&format!("{base}v2/signals"), Some(token), &signal(ip))?;
        ensure!(reply.status == 200, "{} {}", reply.status, reply.body);
    }
    // A reserved address is refused, item by item (the request itself succeeds).
    http.post(&format!("{base}v2/signals"), Some(&watcher), &signal("10.0.0.1"))?;
    wait_until(Duration::from_secs(30), "the sensor listing", || {
        let e: Value = http.get(&format!("{base}v1/ips/45.33.32.156/explanation"), Some(&watcher))?.json()?;
        Ok((e["listed"] == true).then_some(()))
    })?;
    let reply = http.post(&format!("{base}v1/admin/false-positives"), Some(&admin), &json!({"value": "45.33.32.156"}))?;
    ensure!(reply.status == 202, "{} {}", reply.status, reply.body);
    wait_until(Duration::from_secs(30), "the delisting", || {
        Ok((http.metric_sum(base, "palisade_consensus_delistings_total")? > 0.0).then_some(()))
    })?;
    for path in ["v2/decisions/stream?startup=true", "v3/decisions/stream?startup=true", "v1/blocklists/community"] {
        let reply = http.get(&format!("{base}{path}"), Some(&watcher))?;
        ensure!(reply.status == 200, "{path}: {} {}", reply.status, reply.body);
    }
    server.admin(&["account", "create", "acme"])?;
    let key = server.admin(&["api-key", "create", "--account", "acme"])?.trim().to_string();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply =
            http.block_on(async { test_client().get(format!("{base}v2/smoke/8.8.4.4")).header("x-api-key", &key).send().await })?;
        statuses.push(reply.status().as_u16());
    }
    ensure!(statuses == [404, 404, 404, 429, 429], "three lookups then the quota: {statuses:?}");
    let exported = |text: &str, name: &str| text.lines().any(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']));
    // The lag gauges exist once the leader has measured its backlog (it does so every few
    // seconds); the worker has already processed every signal above (the listing and the
    // delisting were waited for), so any measurement shows it caught up.
    let text = wait_until(Duration::from_secs(30), "a /metrics scrape with the consensus lag gauges measured", || {
        let scrape = http.get(&format!("{base}metrics"), None)?;
        ensure!(scrape.status == 200, "GET /metrics: {}", scrape.status);
        let measured =
            ["palisade_consensus_lag_signals", "palisade_consensus_lag_seconds"].iter().all(|name| exported(&scrape.body, name));
        Ok(measured.then_some(scrape.body))
    })?;
    let present = |name: &str| exported(&text, name);
    for (name, moved) in FAMILIES {
        ensure!(present(name), "{name} is missing from /metrics:\n{text}");
        if *moved {
            ensure!(metric_sum(&text, name) > 0.0, "{name} did not count the traffic:\n{text}");
        }
    }
    ensure!(text.contains("palisade_consensus_listings_total{rule=\"sensor\"}"), "listings per rule:\n{text}");
    ensure!(
        metric_sum(&text, "palisade_lookups_total") == 3.0 && metric_sum(&text, "palisade_quota_denials_total") == 2.0,
        "{text}"
    );
    ensure!(metric_sum(&text, "palisade_consensus_lag_signals") == 0.0, "the worker caught up:\n{text}");

    let path = workspace_root().join("deploy/grafana/palisade.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).context("deploy/grafana/palisade.json")?)
        .context("the dashboard is valid JSON")?;
    ensure!(dashboard["title"].is_string() && dashboard["panels"].is_array(), "a Grafana dashboard");
    let used = dashboard_metrics(&dashboard);
    ensure!(used.len() >= 10, "the dashboard covers the families: {used:?}");
    for name in &used {
        let family = name.trim_end_matches("_bucket");
        ensure!(
            present(family) || present(&format!("{family}_count")) || present(&format!("{family}_bucket")),
            "the dashboard queries {name}, which the server does not export"
        );
    }
    for (name, _) in FAMILIES {
        let base_name = name.trim_end_matches("_count");
        ensure!(
            used.iter().any(|u| u.starts_with(base_name)) || !name.starts_with("palisade_consensus"),
            "dashboard lacks {name}"
        );
    }
    Ok(())
}
