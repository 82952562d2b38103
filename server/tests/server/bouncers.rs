//! CrowdSec bouncers' routes (`/v1/decisions/stream`, `/v1/decisions`), in-process on every
//! backend: what a key receives (the community list as its tier caps it, the operator lists its
//! tier names, its account's pool), the per-key cursor in the store, LAPI's wire shape (`null`
//! sides, field order), quotas, and the hostile paths (no key, bad key, unknown scopes and
//! origins, malformed flags and addresses).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use palisade_server::config::Config;
use palisade_server::engine::Rule;
use palisade_server::jobs::consensus::{ConsensusWorker, WorkerConfig};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{self, Reply, TestApp, apps_with, commit_lists, delisting, listing, request, signal, tier};

fn config(config: &mut Config) {
    config.tiers = BTreeMap::from([
        ("free".to_string(), tier(1000, &[("community", 0), ("partners", 0)])),
        ("small".to_string(), tier(1000, &[("community", 1)])),
        ("tight".to_string(), tier(2, &[("community", 0)])),
        ("basic".to_string(), tier(1000, &[("community", 0)])),
    ]);
}

async fn apps() -> Vec<TestApp> {
    apps_with(config).await
}

/// The stored prefix of the only API key of `account`.
async fn prefix_of(app: &TestApp, account: &str) -> String {
    let account = app.state.store.account_by_name(account).await.expect("lookup").expect("exists").key;
    let keys = app.state.store.list_api_keys(Some(account)).await.expect("keys");
    keys.into_iter().next().expect("a key").prefix
}

async fn send(app: &TestApp, method: Method, path: &str, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("X-Api-Key", k)).into_iter().collect();
    app.send(request(method, path, None, &headers, Body::empty())).await
}

async fn pull(app: &TestApp, key: &str, query: &str) -> Value {
    send(app, Method::GET, &format!("/v1/decisions/stream{query}"), Some(key)).await.expect_ok(StatusCode::OK)
}

/// The values of one side of a stream answer, sorted; `None` when the side is `null`.
fn values(body: &Value, side: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = body[side].as_array()?.iter().map(|d| d["value"].as_str().expect("value").to_string()).collect();
    out.sort();
    Some(out)
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

#[tokio::test]
async fn startup_sends_everything_then_each_key_gets_only_what_changed_since_its_own_last_pull() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        commit_lists(&app, vec![listing("45.33.32.156", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        commit_lists(&app, vec![listing("81.2.69.0/24", "crowdsecurity/http-probing", Rule::Sensor)]).await;
        let acme = common::api_key_on_tier(&app, &admin, "acme", "free").await;
        let globex = common::api_key_on_tier(&app, &admin, "globex", "free").await;

        let reply = send(&app, Method::GET, "/v1/decisions/stream?startup=true", Some(&acme)).await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.text());
        let text = reply.text();
        assert!(text.starts_with("{\"deleted\":null,\"new\":[{\"duration\":\""), "{label}: LAPI's shape and order: {text}");
        let body = reply.json();
        assert_eq!(values(&body, "new"), strings(&["45.33.32.156", "81.2.69.0/24"]), "{label}");
        let first = body["new"].as_array().expect("new").iter().find(|d| d["value"] == "45.33.32.156").expect("listed").clone();
        let keys: Vec<&str> = first.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["duration", "id", "origin", "scenario", "scope", "type", "value"], "{label}: {first}");
        assert_eq!(
            (first["origin"].as_str(), first["scope"].as_str(), first["type"].as_str()),
            (Some("CAPI"), Some("Ip"), Some("ban"))
        );
        assert_eq!(first["scenario"], "crowdsecurity/ssh-bf", "{label}");
        let duration = first["duration"].as_str().expect("duration");
        assert!(duration.starts_with("23h") && duration.ends_with('s'), "{label}: a Go duration: {duration}");
        assert!(first["id"].as_i64().is_some_and(|id| id > 0), "{label}: {first}");
        let range = body["new"].as_array().expect("new").iter().find(|d| d["value"] == "81.2.69.0/24").expect("range").clone();
        assert_eq!(range["scope"], "Range", "{label}");

        let nothing = send(&app, Method::GET, "/v1/decisions/stream", Some(&acme)).await;
        assert_eq!(nothing.text(), "{\"deleted\":null,\"new\":null}", "{label}: nothing changed");

        commit_lists(&app, vec![listing("185.220.101.7", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        commit_lists(&app, vec![delisting("45.33.32.156")]).await;
        let changed = pull(&app, &acme, "?startup=false").await;
        assert_eq!(values(&changed, "new"), strings(&["185.220.101.7"]), "{label}");
        assert_eq!(values(&changed, "deleted"), strings(&["45.33.32.156"]), "{label}");
        assert_eq!(changed["deleted"][0]["duration"], "0s", "{label}");
        let again = pull(&app, &acme, "").await;
        assert_eq!((values(&again, "new"), values(&again, "deleted")), (None, None), "{label}: sent once");

        // The other key never pulled: its first pull is its whole view, whatever acme did.
        let first_pull = pull(&app, &globex, "").await;
        assert_eq!(values(&first_pull, "new"), strings(&["185.220.101.7", "81.2.69.0/24"]), "{label}");

        // The cursor is the store's, so another replica or a restart continues from it.
        let prefix = prefix_of(&app, "acme").await;
        let stored = app.state.store.api_key_stream_seq(&prefix).await.expect("read");
        assert_eq!(stored, Some(app.state.store.list_seq("community").await.expect("seq")), "{label}: {prefix}");

        // Startup again: everything current, and the removal it may have missed.
        let restarted = pull(&app, &acme, "?startup=true").await;
        assert_eq!(values(&restarted, "new"), strings(&["185.220.101.7", "81.2.69.0/24"]), "{label}");
    }
}

#[tokio::test]
async fn a_key_receives_its_tiers_operator_lists_and_its_accounts_pool_as_origin_lists() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "partners", "visibility": "subscribers"}))
            .await
            .expect_ok(StatusCode::CREATED);
        app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "others"})).await.expect_ok(StatusCode::CREATED);
        for (list, value) in [("partners", "91.240.118.5"), ("others", "91.240.118.6")] {
            app.post(&format!("/v1/admin/blocklists/{list}/entries"), Some(&admin), &json!({"add": [value]}))
                .await
                .expect_ok(StatusCode::OK);
        }
        let key = common::api_key_on_tier(&app, &admin, "acme", "free").await;
        let account = app.state.store.account_by_name("acme").await.expect("lookup").expect("exists").key;
        let machine = app.machine("acme-web").await;
        app.state.store.enroll_machine(machine.key, account, None, &[], false, OffsetDateTime::now_utc()).await.expect("enroll");
        app.post("/v2/signals", Some(&machine.token), &json!([signal("45.10.0.1", "crowdsecurity/ssh-bf")]))
            .await
            .expect_ok(StatusCode::OK);
        let config = WorkerConfig {
            params: app.state.engine_params.as_ref().clone(),
            refresh_every: Duration::ZERO,
            ..WorkerConfig::default()
        };
        let mut worker = ConsensusWorker::load(app.state.store.clone(), config).await.expect("worker");
        worker.run_once(OffsetDateTime::now_utc()).await.expect("a consensus step");
        app.state.distribution.lists.refresh_all().await.expect("refresh");

        let body = pull(&app, &key, "?startup=true").await;
        let mut sent: Vec<(String, String, String)> = body["new"]
            .as_array()
            .expect("new")
            .iter()
            .map(|d| {
                let text = |field: &str| d[field].as_str().expect("text").to_string();
                (text("value"), text("origin"), text("scenario"))
            })
            .collect();
        sent.sort();
        let pool = format!("pool-{}", account.0);
        assert_eq!(
            sent,
            [("45.10.0.1".into(), "lists".into(), pool.clone()), ("91.240.118.5".into(), "lists".into(), "partners".into())],
            "{label}: the tier's list and the pool, not a list outside the tier"
        );

        let only_capi = pull(&app, &key, "?startup=true&origins=CAPI").await;
        assert_eq!(values(&only_capi, "new"), None, "{label}: origins filter");
        let by_scenario = pull(&app, &key, "?startup=true&scenarios_containing=PARTNER").await;
        assert_eq!(values(&by_scenario, "new"), strings(&["91.240.118.5"]), "{label}");
        let without = pull(&app, &key, "?startup=true&scenarios_not_containing=pool").await;
        assert_eq!(values(&without, "new"), strings(&["91.240.118.5"]), "{label}");
        let ranges = pull(&app, &key, "?startup=true&scopes=range").await;
        assert_eq!(values(&ranges, "new"), None, "{label}: scopes filter");

        // Removed from the list: deleted on the next pull.
        app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &json!({"remove": ["91.240.118.5"]}))
            .await
            .expect_ok(StatusCode::OK);
        app.state.distribution.lists.refresh_all().await.expect("refresh");
        let changed = pull(&app, &key, "").await;
        assert_eq!(values(&changed, "deleted"), strings(&["91.240.118.5"]), "{label}");
        assert_eq!(values(&changed, "new"), None, "{label}");
    }
}

#[tokio::test]
async fn a_removal_from_one_list_is_not_sent_while_another_list_of_the_key_still_serves_the_value() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "partners"})).await.expect_ok(StatusCode::CREATED);
        app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &json!({"add": ["45.33.32.156"]}))
            .await
            .expect_ok(StatusCode::OK);
        commit_lists(&app, vec![listing("45.33.32.156", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        let key = common::api_key_on_tier(&app, &admin, "acme", "free").await;
        let startup = pull(&app, &key, "?startup=true").await;
        assert_eq!(values(&startup, "new"), strings(&["45.33.32.156"]), "{label}: deduplicated by value, scope and type");
        let both = pull(&app, &key, "?startup=true&dedup=false").await;
        assert_eq!(values(&both, "new"), strings(&["45.33.32.156", "45.33.32.156"]), "{label}: once per list");

        commit_lists(&app, vec![delisting("45.33.32.156")]).await;
        let changed = pull(&app, &key, "").await;
        assert_eq!(values(&changed, "deleted"), None, "{label}: partners still lists it");

        // And the other way round: off partners, still on the community list.
        commit_lists(&app, vec![listing("81.2.69.160", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &json!({"add": ["81.2.69.160"]}))
            .await
            .expect_ok(StatusCode::OK);
        pull(&app, &key, "").await;
        app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &json!({"remove": ["81.2.69.160", "45.33.32.156"]}))
            .await
            .expect_ok(StatusCode::OK);
        app.state.distribution.lists.refresh_all().await.expect("refresh");
        let changed = pull(&app, &key, "").await;
        assert_eq!(values(&changed, "deleted"), strings(&["45.33.32.156"]), "{label}: the community list still lists the other");
    }
}

#[tokio::test]
async fn the_tier_caps_the_community_list_and_counts_every_pull() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        commit_lists(&app, vec![listing("45.33.32.156", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        commit_lists(&app, vec![listing("81.2.69.160", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        let small = common::api_key_on_tier(&app, &admin, "acme", "small").await;
        let body = pull(&app, &small, "?startup=true").await;
        assert_eq!(values(&body, "new"), strings(&["81.2.69.160"]), "{label}: one entry, the newest");

        let tight = common::api_key_on_tier(&app, &admin, "globex", "tight").await;
        for _ in 0..2 {
            let reply = send(&app, Method::GET, "/v1/decisions/stream", Some(&tight)).await;
            assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.text());
            assert!(reply.headers.contains_key("x-ratelimit-remaining"), "{label}");
        }
        let refused = send(&app, Method::GET, "/v1/decisions/stream", Some(&tight)).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{label}: {}", refused.text());
        assert!(refused.headers.contains_key("retry-after"), "{label}");
        assert!(refused.json()["message"].is_string(), "{label}: LAPI's message field");
        let lookup = send(&app, Method::GET, "/v1/decisions?ip=45.33.32.156", Some(&tight)).await;
        assert_eq!(lookup.status, StatusCode::TOO_MANY_REQUESTS, "{label}: the same quota");
        let head = send(&app, Method::HEAD, "/v1/decisions/stream", Some(&tight)).await;
        assert_eq!(head.status, StatusCode::OK, "{label}: a check spends nothing");
    }
}

#[tokio::test]
async fn decisions_for_an_address_are_those_covering_it_and_null_when_none() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        commit_lists(&app, vec![listing("45.33.32.156", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        commit_lists(&app, vec![listing("81.2.69.0/24", "crowdsecurity/http-probing", Rule::Sensor)]).await;
        let key = common::api_key_on_tier(&app, &admin, "acme", "free").await;

        let get = |query: &'static str| {
            let (app, key) = (&app, key.clone());
            async move { send(app, Method::GET, &format!("/v1/decisions{query}"), Some(&key)).await }
        };
        let hit = get("?ip=45.33.32.156").await;
        assert_eq!(hit.status, StatusCode::OK, "{label}: {}", hit.text());
        let hit = hit.json();
        assert_eq!(hit.as_array().map(Vec::len), Some(1), "{label}: {hit}");
        assert_eq!((hit[0]["value"].as_str(), hit[0]["origin"].as_str()), (Some("45.33.32.156"), Some("CAPI")));
        let in_range = get("?ip=81.2.69.160").await.json();
        assert_eq!(in_range[0]["value"], "81.2.69.0/24", "{label}: the range containing it");
        assert_eq!(get("?ip=203.0.113.9").await.text(), "null", "{label}: LAPI answers null");
        let within = get("?range=81.2.0.0/16&contains=false").await.json();
        assert_eq!(within[0]["value"], "81.2.69.0/24", "{label}");
        assert_eq!(get("?range=81.2.0.0/16").await.text(), "null", "{label}: nothing contains the /16");
        assert_eq!(get("?value=81.2.69.0/24&type=ban&scope=range").await.json()[0]["value"], "81.2.69.0/24", "{label}");
        assert_eq!(get("?value=81.2.69.0/24&type=captcha").await.text(), "null", "{label}");
        assert_eq!(get("").await.json().as_array().map(Vec::len), Some(2), "{label}: no filter, everything");
        let head = send(&app, Method::HEAD, "/v1/decisions?ip=45.33.32.156", Some(&key)).await;
        assert_eq!((head.status, head.body.len()), (StatusCode::OK, 0), "{label}");

        // Looking up never moves the stream cursor.
        let startup = pull(&app, &key, "").await;
        assert_eq!(values(&startup, "new"), strings(&["45.33.32.156", "81.2.69.0/24"]), "{label}: still the first pull");
    }
}

#[tokio::test]
async fn no_key_or_a_bad_key_is_403_and_bad_filters_are_400_with_a_message() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = common::api_key_on_tier(&app, &admin, "acme", "free").await;
        for method in [Method::GET, Method::HEAD] {
            for path in ["/v1/decisions/stream", "/v1/decisions?ip=192.0.2.1"] {
                let none = send(&app, method.clone(), path, None).await;
                assert_eq!(none.status, StatusCode::FORBIDDEN, "{label}: {method} {path} without a key");
                let wrong = send(&app, method.clone(), path, Some("pal_not_a_key")).await;
                assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{label}: {method} {path} with a wrong key");
            }
        }
        let revoked = common::api_key_on_tier(&app, &admin, "globex", "free").await;
        let prefix = prefix_of(&app, "globex").await;
        app.state.store.revoke_api_key(&prefix, None, OffsetDateTime::now_utc()).await.expect("revoke");
        app.state.quotas.api_keys.clear();
        let reply = send(&app, Method::GET, "/v1/decisions/stream", Some(&revoked)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{label}: revoked");
        assert!(reply.json()["message"].is_string(), "{label}: {}", reply.text());

        for (query, says) in [
            ("/v1/decisions/stream?scopes=ip,username", "unknown scope"),
            ("/v1/decisions/stream?scopes=", "scopes is empty"),
            ("/v1/decisions/stream?origins=somewhere", "unknown origin"),
            ("/v1/decisions/stream?startup=yes", "startup must be true or false"),
            ("/v1/decisions/stream?dedup=%00", "dedup must be true or false"),
            ("/v1/decisions?ip=999.1.1.1", "ip must be an IPv4 or IPv6 address"),
            ("/v1/decisions?range=192.0.2.0/33", "range must be"),
            ("/v1/decisions?ip=192.0.2.1&range=192.0.2.0/24", "not both"),
            ("/v1/decisions?contains=perhaps&ip=192.0.2.1", "contains must be"),
            ("/v1/decisions?scope=username", "unknown scope"),
            ("/v1/decisions?type=%3Cscript%3E", "type must be"),
        ] {
            for method in [Method::GET, Method::HEAD] {
                let reply = send(&app, method.clone(), query, Some(&key)).await;
                assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{label}: {method} {query}: {}", reply.text());
                if method == Method::GET {
                    let message = reply.json()["message"].as_str().unwrap_or_default().to_string();
                    assert!(message.contains(says), "{label}: {query}: {message}");
                }
            }
        }
        let long = format!("/v1/decisions/stream?scenarios_containing={}", "a".repeat(5000));
        assert_eq!(send(&app, Method::GET, &long, Some(&key)).await.status, StatusCode::BAD_REQUEST, "{label}");
        // None of it moved the cursor or spent the quota: the first real pull is still a first pull.
        let prefix = prefix_of(&app, "acme").await;
        assert_eq!(app.state.store.api_key_stream_seq(&prefix).await.expect("read"), None, "{label}");
    }
}

#[tokio::test]
async fn two_replicas_continue_one_keys_stream_from_the_same_cursor() {
    for app in apps().await {
        let label = app.label;
        let other = app.replica(&config).await;
        let admin = app.admin_token().await;
        commit_lists(&app, vec![listing("45.33.32.156", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        let key = common::api_key_on_tier(&app, &admin, "acme", "free").await;
        let first = pull(&app, &key, "?startup=true").await;
        assert_eq!(values(&first, "new"), strings(&["45.33.32.156"]), "{label}");

        // The other replica has not pulled for this key, nor seen the list: it still continues
        // from the cursor the first one stored, so nothing is sent twice.
        let nothing = pull(&other, &key, "").await;
        assert_eq!((values(&nothing, "new"), values(&nothing, "deleted")), (None, None), "{label}: {nothing}");

        commit_lists(&app, vec![listing("81.2.69.160", "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
        let changed = pull(&other, &key, "").await;
        assert_eq!(values(&changed, "new"), strings(&["81.2.69.160"]), "{label}: the change, once, on the other replica");
        let back = pull(&app, &key, "").await;
        assert_eq!(values(&back, "new"), None, "{label}: and not again on the first");
    }
}
