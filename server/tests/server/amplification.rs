//! Storage amplification, reproduced at a small scale on both backends: a few KiB of gzip that
//! decompress to hundreds of KiB of JSON, pushed as usage metrics and as the unread fields of
//! signals. What the database keeps stays bounded by `ingest.max_metrics_bytes` (larger pushes
//! are refused with 413) and `ingest.max_signal_extra_bytes` per signal (the signal is kept, its
//! largest unread fields dropped), measured on the stored rows; real CrowdSec bodies are stored
//! as before.

use crate::common;

use std::io::Write;

use axum::http::StatusCode;
use common::{TestApp, signal};
use flate2::Compression;
use flate2::write::GzEncoder;
use palisade_server::config::Backend;
use palisade_server::store::SignalFilter;
use palisade_server::testing::TestDb;
use serde_json::{Value, json};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).expect("gzip to memory");
    encoder.finish().expect("gzip to memory")
}

/// Bytes of metrics payload stored, read from the table itself.
async fn stored_metrics_bytes(backend: Backend, url: &str) -> i64 {
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
            let bytes: i64 = sqlx::query_scalar("SELECT coalesce(sum(length(payload)), 0) FROM machine_metrics")
                .fetch_one(&pool)
                .await
                .expect("sum");
            pool.close().await;
            bytes
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("postgres");
            let bytes: i64 =
                sqlx::query_scalar("SELECT coalesce(sum(octet_length(payload::text)), 0)::bigint FROM machine_metrics")
                    .fetch_one(&pool)
                    .await
                    .expect("sum");
            pool.close().await;
            bytes
        }
    }
}

async fn apps_with_urls(edit: &dyn Fn(&mut palisade_server::config::Config)) -> Vec<(TestApp, String)> {
    let mut apps = Vec::new();
    for db in TestDb::all().await {
        let url = db.url.expose().to_string();
        apps.push((TestApp::start(db, edit).await, url));
    }
    apps
}

#[tokio::test]
async fn a_small_gzip_of_usage_metrics_cannot_become_a_large_stored_row() {
    // The size cap alone: the rate limit is lifted here and tested below.
    for (app, url) in apps_with_urls(&|c| c.ingest.metrics_burst = 100).await {
        let machine = app.machine("web-01").await;
        let real = json!({"lapi": {"version": "v1.6.3", "feature_flags": [], "metrics": []}, "remediation_components": []});
        let reply = app
            .post_raw(
                "/v3/usage-metrics",
                Some(&machine.token),
                &[("content-encoding", "gzip")],
                gzip(real.to_string().as_bytes()),
            )
            .await;
        assert_eq!(reply.expect_ok(StatusCode::OK), json!({"message": "OK"}), "{}", app.label);
        let real_size = stored_metrics_bytes(app.state.store.backend(), &url).await;

        // 512 KiB of JSON in a few KiB of gzip, ten times.
        let bomb = json!({"lapi": {"version": "v1.6.3"}, "padding": "A".repeat(512 * 1024)}).to_string();
        let compressed = gzip(bomb.as_bytes());
        assert!(compressed.len() < 4 * 1024, "the reproduction is a small gzip: {}", compressed.len());
        for _ in 0..10 {
            let reply = app
                .post_raw("/v3/usage-metrics", Some(&machine.token), &[("content-encoding", "gzip")], compressed.clone())
                .await;
            assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}: {}", app.label, reply.text());
            assert!(reply.text().contains("65536"), "the answer names the limit: {}", reply.text());
        }
        let stored = stored_metrics_bytes(app.state.store.backend(), &url).await;
        assert_eq!(stored, real_size, "{}: nothing of the refused pushes is stored", app.label);
        assert!(stored < 64 * 1024, "{}: {stored}", app.label);
    }
}

/// Signals with 64 KiB of unread context each: 768 KiB of JSON, inside the test's decompressed limit.
const BLOATED: usize = 12;

#[tokio::test]
async fn signals_keep_their_fields_but_not_megabytes_of_unread_ones() {
    for app in common::apps().await {
        let machine = app.machine("web-01").await;
        // The recorded CrowdSec body, on public addresses (the recording used a documentation range).
        let real: Value =
            serde_json::from_str(&common::fixture("signals.request.wave1.json").replace("203.0.113.", "81.2.69.")).expect("JSON");
        let pushed = app.post("/v2/signals", Some(&machine.token), &real).await;
        assert_eq!(pushed.status, StatusCode::OK, "{}: {}", app.label, pushed.text());

        let mut bloated = Vec::new();
        for n in 1..=BLOATED {
            let mut item = signal(&format!("45.33.32.{n}"), "crowdsecurity/ssh-bf");
            item["context"] = json!([{"key": "target_uri", "value": "B".repeat(64 * 1024)}]);
            item["decisions"] = json!([{"duration": "4h", "origin": "crowdsec", "scenario": "crowdsecurity/ssh-bf", "scope": "Ip", "type": "ban", "value": format!("45.33.32.{n}")}]);
            bloated.push(item);
        }
        let body = Value::Array(bloated).to_string();
        let compressed = gzip(body.as_bytes());
        assert!(compressed.len() < 32 * 1024 && body.len() > 512 * 1024, "{} -> {}", body.len(), compressed.len());
        let reply = app.post_raw("/v2/signals", Some(&machine.token), &[("content-encoding", "gzip")], compressed).await;
        assert_eq!(reply.status, StatusCode::OK, "{}: the signals themselves are kept: {}", app.label, reply.text());

        let stored = app
            .state
            .store
            .list_signals(&SignalFilter { after: None, machine_id: Some("web-01".into()), value: None, limit: 1000 })
            .await
            .expect("signals");
        let real_items = real.as_array().expect("an array").len();
        assert_eq!(pushed.json()["accepted"], real_items, "{}: every real signal is stored", app.label);
        assert_eq!(stored.len(), real_items + BLOATED, "{}", app.label);
        let total: usize = stored.iter().map(|s| s.extra.len()).sum();
        assert!(total <= stored.len() * 4096, "{}: {total} bytes of extra", app.label);
        for (sent, kept) in real.as_array().expect("array").iter().zip(&stored) {
            let kept: Value = serde_json::from_str(&kept.extra).expect("extra is JSON");
            assert_eq!(kept["source"], sent["source"], "{}: a real signal's extra reads back as sent", app.label);
            assert!(kept.get("_dropped").is_none(), "{}", app.label);
        }
        for kept in &stored[real_items..] {
            let extra: Value = serde_json::from_str(&kept.extra).expect("extra is JSON");
            assert!(kept.extra.len() <= 4096, "{}: {}", app.label, kept.extra.len());
            assert_eq!(extra["decisions"][0]["type"], "ban", "{}: the small fields stay", app.label);
            assert!(extra.get("context").is_none() && extra["_dropped"] == 1, "{}: {extra}", app.label);
        }
    }
}

#[tokio::test]
async fn metrics_pushes_beyond_the_machine_rate_get_429_with_retry_after_and_store_nothing() {
    for (app, url) in apps_with_urls(&|c| c.ingest.metrics_burst = 2).await {
        let machine = app.machine("web-01").await;
        let other = app.machine("web-02").await;
        let body = json!({"lapi": {"version": "v1.6.3"}});
        for _ in 0..2 {
            app.post("/v3/usage-metrics", Some(&machine.token), &body).await.expect_ok(StatusCode::OK);
        }
        let stored = stored_metrics_bytes(app.state.store.backend(), &url).await;
        for (path, sent) in [("/v3/usage-metrics", body.clone()), ("/v2/metrics", common::fixture_json("metrics.request.json"))] {
            let reply = app.post(path, Some(&machine.token), &sent).await;
            assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}: {path}: {}", app.label, reply.text());
            assert!(reply.headers.contains_key("retry-after"), "{}: {path}", app.label);
        }
        assert_eq!(stored_metrics_bytes(app.state.store.backend(), &url).await, stored, "{}", app.label);
        app.post("/v3/usage-metrics", Some(&other.token), &body).await.expect_ok(StatusCode::OK);
    }
}

#[tokio::test]
async fn a_machine_past_its_daily_bytes_gets_429_before_anything_is_stored() {
    for app in common::apps_with(|c| c.ingest.signal_bytes_per_machine_per_day = 64 * 1024).await {
        let machine = app.machine("web-01").await;
        let mut refused = None;
        for batch in 0..40 {
            let items: Vec<Value> = (0..5)
                .map(|n| {
                    let mut item = signal(&format!("45.33.{batch}.{}", n + 1), "crowdsecurity/ssh-bf");
                    item["context"] = json!([{"key": "target_uri", "value": "C".repeat(3500)}]);
                    item
                })
                .collect();
            let reply = app.post("/v2/signals", Some(&machine.token), &Value::Array(items)).await;
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                refused = Some((batch, reply));
                break;
            }
            assert_eq!(reply.status, StatusCode::OK, "{}: {}", app.label, reply.text());
        }
        let (batch, reply) = refused.unwrap_or_else(|| panic!("{}: 200 signals of 3.5 KiB were all accepted", app.label));
        assert!(batch > 0, "{}: the first batches fit", app.label);
        let retry: u64 = reply.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert!((1..=86_400).contains(&retry), "{}: until the next UTC day: {retry}", app.label);
        let stored = app
            .state
            .store
            .list_signals(&SignalFilter { after: None, machine_id: Some("web-01".into()), value: None, limit: 1000 })
            .await
            .expect("signals");
        assert_eq!(stored.len(), batch * 5, "{}: the refused batch stored nothing", app.label);
        let bytes: usize = stored.iter().map(|s| s.extra.len() + s.message.len() + s.scenario.len()).sum();
        assert!(bytes <= 64 * 1024, "{}: {bytes}", app.label);

        let other = app.machine("web-02").await;
        let reply = app.post("/v2/signals", Some(&other.token), &json!([signal("45.33.99.1", "crowdsecurity/ssh-bf")])).await;
        assert_eq!(reply.status, StatusCode::OK, "{}: another machine has its own allowance", app.label);
    }
}
