//! In-process tests of the IP lookup and its tiers: the CTI-compatible routes as CrowdSec's Go
//! client reads them (field types, 403/404/429), the native route, API keys (operator and
//! self-service, revocation), and the limits: quota exhaustion and reset at the day boundary,
//! burst, tier changes, bulk size, and `X-RateLimit-*` headers on every answer.

use crate::common;
use palisade_server::engine::Rule;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::StatusCode;
use common::{Reply, TestApp, api_key, apps_with, commit_consensus, get_with_key, listing};
use palisade_api::cti::{SmokeBulkResponse, SmokeItem};
use palisade_server::config::Config;
use palisade_server::limits::Tier;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn tier(day: u64, rate: f64, burst: u32, bulk: usize) -> Tier {
    Tier {
        lookups_per_day: day,
        lookups_per_month: day * 30,
        rate_per_sec: rate,
        burst,
        bulk_max: bulk,
        blocklists: BTreeMap::new(),
    }
}

/// Small tiers so limits are reached in a few requests.
fn small_tiers(config: &mut Config) {
    config.tiers = BTreeMap::from([
        ("free".to_string(), tier(3, 1000.0, 1000, 3)),
        ("big".to_string(), tier(1000, 1000.0, 1000, 100)),
        ("bursty".to_string(), tier(1000, 0.01, 2, 10)),
        ("basic".to_string(), tier(1000, 1000.0, 1000, 10)),
    ]);
}

async fn apps() -> Vec<TestApp> {
    apps_with(small_tiers).await
}

/// Stores consensus evidence about `ip` as the worker would: `reporters` machines in distinct
/// ASes seen a minute ago with `scenario`, listed in the community list when `listed`.
async fn seed_evidence(app: &TestApp, ip: &str, reporters: u32, scenario: &str, listed: bool) {
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp();
    let reporters: Vec<Value> = (0..reporters)
        .map(|i| {
            json!({
                "machine": 1000 + i, "origin_prefix": format!("10.{i}.0.0/24"), "origin_as": {"Asn": 64500 + i},
                "first_at": t - 3 * 86_400, "last_at": t - 60, "count": 2, "scenario": scenario, "factor": 1.0,
                "sensor_sighting": false, "voided": false, "credited": false,
            })
        })
        .collect();
    let state = json!({
        "reporters": reporters, "listing": null, "protected_until": 0, "first_seen": t - 3 * 86_400, "last_seen": t - 60,
    });
    let list_ops = if listed { vec![listing(ip, scenario, Rule::Crowd)] } else { Vec::new() };
    commit_consensus(
        app,
        vec![(format!("{ip}/32").parse().expect("an address"), Some(serde_json::from_value(state).expect("an engine state")))],
        list_ops,
    )
    .await;
}

#[track_caller]
fn limit_headers(reply: &Reply) -> (u64, u64, u64) {
    let get = |name: &str| -> u64 {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no numeric {name} header", reply.what))
    };
    (get("x-ratelimit-limit"), get("x-ratelimit-remaining"), get("x-ratelimit-reset"))
}

#[tokio::test]
async fn smoke_answers_every_cti_key_with_the_types_the_go_client_needs() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        app.send(common::request(
            axum::http::Method::PUT,
            "/v1/admin/accounts/acme/tier",
            Some(&admin),
            &[],
            Body::from(json!({"tier": "big"}).to_string()),
        ))
        .await;
        seed_evidence(&app, "45.33.32.156", 6, "crowdsecurity/ssh-bf", true).await;
        let reply = get_with_key(&app, "/v2/smoke/45.33.32.156", &key).await;
        let body = reply.expect_ok(StatusCode::OK);
        limit_headers(&reply);
        for field in [
            "ip",
            "ip_range",
            "ip_range_score",
            "ip_range_24",
            "ip_range_24_reputation",
            "ip_range_24_score",
            "as_name",
            "as_num",
            "reverse_dns",
            "location",
            "reputation",
            "confidence",
            "background_noise",
            "background_noise_score",
            "proxy_or_vpn",
            "history",
            "behaviors",
            "classifications",
            "attack_details",
            "mitre_techniques",
            "cves",
            "references",
            "target_countries",
            "scores",
        ] {
            assert!(body.get(field).is_some(), "{}: key {field} missing in {body}", app.label);
        }
        // Ints the Go struct declares as `int` must be numbers, never null.
        assert!(body["ip_range_score"].is_u64(), "{body}");
        assert!(body["history"]["full_age"].is_u64() && body["history"]["days_age"].is_u64(), "{body}");
        for window in ["overall", "last_day", "last_week", "last_month"] {
            for score in ["aggressiveness", "threat", "trust", "anomaly", "total"] {
                let value = body["scores"][window][score].as_u64().unwrap_or_else(|| panic!("{window}.{score} in {body}"));
                assert!(value <= 5, "{window}.{score} = {value}");
            }
        }
        for key in ["country", "city", "latitude", "longitude"] {
            assert!(body["location"].get(key).is_some(), "location.{key}");
        }
        assert!(body["history"]["first_seen"].as_str().is_some_and(|t| t.ends_with("+00:00")), "{body}");
        let item: SmokeItem = serde_json::from_value(body.clone()).expect("decodes as a SmokeItem");
        assert_eq!((item.reputation.as_str(), item.confidence.as_str()), ("malicious", "high"));
        assert_eq!(item.behaviors[0].name, "ssh:bruteforce");
        assert_eq!(item.attack_details[0].name, "crowdsecurity/ssh-bf");
        assert!(item.classifications.classifications.iter().any(|c| c.name == "community-blocklist"));
        assert_eq!(item.references[0].name, "list:community");
        assert_eq!(item.ip_range_24, "45.33.32.0/24");
        assert_eq!((item.as_num, item.as_name), (None, None), "no AS database configured");
        assert!(!body.to_string().contains("1000"), "reporters are never named: {body}");
    }
}

#[tokio::test]
async fn unknown_ip_is_404_with_the_cti_message_and_malformed_is_400() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let unknown = get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
        assert_eq!(unknown.json(), json!({"message": "IP address information not found"}));
        assert_eq!(limit_headers(&unknown), (3, 2, limit_headers(&unknown).2), "a 404 costs a lookup");
        let malformed = get_with_key(&app, "/v2/smoke/not-an-ip", &key).await;
        malformed.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        assert_eq!(limit_headers(&malformed).1, 2, "a malformed address costs nothing");
        let native = get_with_key(&app, "/v1/ips/999.1.1.1", &key).await;
        native.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        limit_headers(&native);
        let bulk = get_with_key(&app, "/v2/smoke", &key).await;
        bulk.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        limit_headers(&bulk);
    }
}

#[tokio::test]
async fn missing_bad_and_revoked_keys_are_403() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        assert_eq!(app.get("/v2/smoke/8.8.4.4", None).await.status, StatusCode::FORBIDDEN, "no key");
        assert_eq!(get_with_key(&app, "/v2/smoke/8.8.4.4", "pal_nonsense").await.status, StatusCode::FORBIDDEN);
        assert_eq!(get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await.status, StatusCode::NOT_FOUND);
        let listed = app.get("/v1/admin/accounts/acme/api-keys", Some(&admin)).await.expect_ok(StatusCode::OK);
        let prefix = listed[0]["prefix"].as_str().expect("prefix").to_string();
        assert!(key.starts_with(&prefix) && !listed.to_string().contains(&key), "listed by prefix, never the key");
        let revoke = app
            .send(common::request(
                axum::http::Method::DELETE,
                &format!("/v1/admin/api-keys/{prefix}"),
                Some(&admin),
                &[],
                Body::empty(),
            ))
            .await;
        assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text());
        let refused = get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "revoked key: {}", refused.text());
        assert_eq!(get_with_key(&app, "/v1/ips/8.8.4.4", &key).await.status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn quota_runs_out_with_429_and_resets_at_the_day_boundary() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        for left in [2, 1, 0] {
            let reply = get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
            assert_eq!(limit_headers(&reply).0..=limit_headers(&reply).1, 3..=left);
        }
        let over = get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
        over.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let (_, remaining, reset) = limit_headers(&over);
        let retry: u64 = over.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert_eq!(remaining, 0);
        assert!(retry >= 1 && retry <= reset && reset <= 86_400, "retry {retry}, reset {reset}");
        app.state.quotas.limiter.advance_clock(time::Duration::seconds(reset as i64));
        let next_day = get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
        assert_eq!(next_day.status, StatusCode::NOT_FOUND, "a new day: {}", next_day.text());
        assert_eq!(limit_headers(&next_day).1, 2);
    }
}

#[tokio::test]
async fn burst_beyond_the_tier_is_429_with_retry_after() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        palisade_server::manage::set_account_tier(app.state.store.as_ref(), &app.state.quotas.tiers, "acme", "bursty")
            .await
            .expect("tier");
        app.state.quotas.api_keys.clear();
        for _ in 0..2 {
            assert_eq!(get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await.status, StatusCode::NOT_FOUND);
        }
        let over = get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
        over.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert_eq!(over.headers["retry-after"], "100", "1 / 0.01 per second");
        assert_eq!(limit_headers(&over).1, 998, "quota left; only the burst refused");
    }
}

#[tokio::test]
async fn tier_change_takes_effect_at_once() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        for _ in 0..3 {
            get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
        }
        assert_eq!(get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await.status, StatusCode::TOO_MANY_REQUESTS);
        let change = app
            .send(common::request(
                axum::http::Method::PUT,
                "/v1/admin/accounts/acme/tier",
                Some(&admin),
                &[],
                Body::from(json!({"tier": "big"}).to_string()),
            ))
            .await;
        assert_eq!(change.status, StatusCode::NO_CONTENT, "{}", change.text());
        let reply = get_with_key(&app, "/v2/smoke/8.8.4.4", &key).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        assert_eq!(limit_headers(&reply).0, 1000);
        let unknown = app
            .send(common::request(
                axum::http::Method::PUT,
                "/v1/admin/accounts/acme/tier",
                Some(&admin),
                &[],
                Body::from(json!({"tier": "platinum"}).to_string()),
            ))
            .await;
        unknown.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

#[tokio::test]
async fn bulk_lookup_counts_each_address_and_refuses_more_than_the_tier_allows() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        seed_evidence(&app, "45.33.32.156", 1, "crowdsecurity/http-probing", false).await;
        let too_many = get_with_key(&app, "/v2/smoke?ips=1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4", &key).await;
        too_many.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_items");
        assert_eq!(limit_headers(&too_many).1, 3, "refused before counting");
        let reply = get_with_key(&app, "/v2/smoke?ips=45.33.32.156,8.8.4.4", &key).await;
        let body: SmokeBulkResponse = serde_json::from_value(reply.expect_ok(StatusCode::OK)).expect("bulk shape");
        assert_eq!((body.total, body.not_found, body.items.len()), (1, 1, 1));
        assert_eq!(body.items[0].reputation, "suspicious");
        assert_eq!(limit_headers(&reply).1, 1, "two lookups counted");
        let over = get_with_key(&app, "/v2/smoke?ips=8.8.4.4,8.8.8.8", &key).await;
        over.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
}

#[tokio::test]
async fn an_account_manages_its_own_keys_with_a_machine_token() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine("agent-1").await;
        let alone = app.post("/v1/account/api-keys", Some(&machine.token), &json!({})).await;
        alone.expect_error(StatusCode::FORBIDDEN, "forbidden");
        let own = app.get("/v1/account/machine", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(
            (own["machine_id"].as_str(), own["account"].is_null(), own["trust"].as_str()),
            (Some("agent-1"), true, Some("none yet"))
        );
        assert!(own.get("trust_value").is_none() && !own.to_string().contains("0.0"), "trust is never a number: {own}");
        app.get("/v1/account/machine", None).await.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme"})).await.expect_ok(StatusCode::CREATED);
        let account = app.state.store.account_by_name("acme").await.expect("lookup").expect("exists");
        app.state
            .store
            .enroll_machine(machine.key, account.key, None, &[], false, time::OffsetDateTime::now_utc())
            .await
            .expect("enroll");
        let created = app.post("/v1/account/api-keys", Some(&machine.token), &json!({})).await.expect_ok(StatusCode::CREATED);
        let key = created["key"].as_str().expect("key");
        assert_eq!(created["tier"], "free");
        let listed = app.get("/v1/account/api-keys", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(listed.as_array().map(Vec::len), Some(1));
        let own = app.get("/v1/account/machine", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(own["account"], "acme");
        assert_eq!(get_with_key(&app, "/v2/smoke/8.8.4.4", key).await.status, StatusCode::NOT_FOUND);
        let prefix = created["prefix"].as_str().expect("prefix");
        let revoke = app
            .send(common::request(
                axum::http::Method::DELETE,
                &format!("/v1/account/api-keys/{prefix}"),
                Some(&machine.token),
                &[],
                Body::empty(),
            ))
            .await;
        assert_eq!(revoke.status, StatusCode::NO_CONTENT);
        assert_eq!(get_with_key(&app, "/v2/smoke/8.8.4.4", key).await.status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn native_lookup_has_the_same_data_and_the_explanation() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        seed_evidence(&app, "45.33.32.156", 3, "crowdsecurity/http-cve-2021-41773", true).await;
        let reply = get_with_key(&app, "/v1/ips/45.33.32.156", &key).await;
        let body: Value = reply.expect_ok(StatusCode::OK);
        limit_headers(&reply);
        assert_eq!(body["reputation"], "malicious");
        assert_eq!(body["reporters"], "2-4");
        assert_eq!(body["behaviors"], json!(["http:exploit"]));
        assert_eq!(body["blocklists"], json!(["community"]));
        assert_eq!(body["explanation"]["listed"], true);
        assert!(body["scores"]["overall"]["total"].as_u64().is_some_and(|t| t >= 3));
        let machine = app.machine("agent-1").await;
        let by_machine = app.get("/v1/ips/8.8.4.4", Some(&machine.token)).await;
        let unknown = by_machine.expect_ok(StatusCode::OK);
        assert_eq!(unknown["reputation"], "unknown");
        assert_eq!(limit_headers(&by_machine).0, 1000, "machine tokens get the machine tier");
        assert_eq!(app.get("/v1/ips/8.8.4.4", None).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn an_address_inside_an_expanded_slash_24_is_malicious() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let block = listing("45.33.40.0/24", "crowdsecurity/ssh-bf", Rule::Expanded);
        commit_consensus(&app, vec![], vec![block]).await;
        let body: Value = get_with_key(&app, "/v1/ips/45.33.40.77", &key).await.expect_ok(StatusCode::OK);
        assert_eq!(body["reputation"], "malicious", "{body}");
        assert_eq!(body["blocklists"], json!(["community"]));
        let outside: Value = get_with_key(&app, "/v1/ips/45.33.41.77", &key).await.expect_ok(StatusCode::OK);
        assert_eq!(outside["reputation"], "unknown", "{outside}");
    }
}
