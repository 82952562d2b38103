//! Blocklist distribution beyond machines, in process: API-key readers on the native endpoints
//! (lists of their tier, caps, quota and refusals), caps for machine readers, and the v3
//! stream's presigned links (self-authorising URLs, expiry, tampering, `If-Modified-Since`) and
//! its decision groups.

use crate::common::{self, tier};
use palisade_server::engine::Rule;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use common::{TestApp, apps_with, commit_consensus, commit_lists, delisting, get_with_key, lines, listing, request};
use palisade_server::auth::links::{LinkKind, LinkTarget};
use palisade_server::config::Config;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn config(config: &mut Config) {
    config.tiers = BTreeMap::from([
        ("free".to_string(), tier(3, &[("community", 2)])),
        ("paid".to_string(), tier(1000, &[("community", 0), ("partners", 0)])),
        ("basic".to_string(), tier(1000, &[("community", 0)])),
    ]);
    config.distribution.non_contributor_cap = 3;
}

async fn apps() -> Vec<TestApp> {
    apps_with(config).await
}

/// Lists `values` on the community list in this order (one commit each, so each has its own seq).
async fn list_in_order(app: &TestApp, values: &[&str]) {
    for value in values {
        commit_consensus(app, vec![], vec![listing(value, "crowdsecurity/ssh-bf", Rule::Sensor)]).await;
    }
    app.state.distribution.lists.refresh_all().await.expect("refresh");
}

const LISTED: [&str; 4] = ["45.33.32.156", "81.2.69.160", "185.220.101.7", "103.251.167.10"];

#[tokio::test]
async fn api_key_pulls_its_tier_lists_with_rate_limit_headers() {
    for app in apps().await {
        list_in_order(&app, &LISTED).await;
        let admin = app.admin_token().await;
        let key = common::api_key_on_tier(&app, &admin, "acme", "paid").await;
        let reply = get_with_key(&app, "/v1/blocklists/community", &key).await;
        assert_eq!(reply.status, StatusCode::OK, "{}: {}", app.label, reply.text());
        assert_eq!(lines(&reply.text()), LISTED.iter().map(|v| v.to_string()).collect(), "{}", app.label);
        assert_eq!(reply.headers["x-ratelimit-limit"], "1000");
        assert_eq!(reply.headers["x-ratelimit-remaining"], "999", "a pull costs one");
        let cursor = reply.headers["x-palisade-seq"].to_str().expect("seq").to_string();
        let delta = get_with_key(&app, &format!("/v1/blocklists/community?since={cursor}"), &key).await;
        assert_eq!(delta.status, StatusCode::OK);
        assert_eq!(delta.headers["x-ratelimit-remaining"], "998", "a delta pull costs one too");

        let listing = get_with_key(&app, "/v1/blocklists", &key).await.expect_ok(StatusCode::OK);
        let names: Vec<&str> = listing.as_array().expect("array").iter().filter_map(|l| l["name"].as_str()).collect();
        let acme = app.state.store.account_by_name("acme").await.expect("lookup").expect("exists");
        let pool = format!("pool-{}", acme.key.0);
        assert_eq!(names, ["community", pool.as_str()], "only the lists of the tier that exist, and the account's own pool");
    }
}

#[tokio::test]
async fn list_outside_the_tier_and_revoked_keys_are_403() {
    for app in apps().await {
        let admin = app.admin_token().await;
        app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "partners", "description": "shared"}))
            .await
            .expect_ok(StatusCode::CREATED);
        let free = common::api_key_on_tier(&app, &admin, "small", "free").await;
        let refused = get_with_key(&app, "/v1/blocklists/partners", &free).await;
        let body = refused.expect_error(StatusCode::FORBIDDEN, "forbidden");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("partners")), "{body}");
        assert_eq!(refused.headers["x-ratelimit-remaining"], "3", "a refusal costs nothing");
        let paid = common::api_key_on_tier(&app, &admin, "big", "paid").await;
        assert_eq!(get_with_key(&app, "/v1/blocklists/partners", &paid).await.status, StatusCode::OK);
        get_with_key(&app, "/v1/blocklists/nope", &paid).await.expect_error(StatusCode::NOT_FOUND, "not_found");

        let keys = app.get("/v1/admin/api-keys", Some(&admin)).await.expect_ok(StatusCode::OK);
        let prefix = keys.as_array().expect("keys").iter().find(|k| k["account"] == "big").expect("big's key")["prefix"]
            .as_str()
            .expect("prefix")
            .to_string();
        let revoked =
            app.send(request(Method::DELETE, &format!("/v1/admin/api-keys/{prefix}"), Some(&admin), &[], Body::empty())).await;
        assert!(revoked.status.is_success(), "{}", revoked.text());
        app.state.quotas.api_keys.clear();
        get_with_key(&app, "/v1/blocklists/partners", &paid).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
        get_with_key(&app, "/v1/blocklists/community", "not-a-key").await.expect_error(StatusCode::FORBIDDEN, "forbidden");
        app.get("/v1/blocklists/community", None).await.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    }
}

#[tokio::test]
async fn tier_cap_serves_the_most_recent_entries_and_quota_exhaustion_is_429() {
    for app in apps().await {
        list_in_order(&app, &LISTED).await;
        let admin = app.admin_token().await;
        let key = common::api_key_on_tier(&app, &admin, "small", "free").await;
        let reply = get_with_key(&app, "/v1/blocklists/community", &key).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(lines(&reply.text()), lines("185.220.101.7\n103.251.167.10"), "{}: the two listed last", app.label);
        let json = get_with_key(&app, "/v1/blocklists/community?format=json", &key).await;
        assert_eq!(json.status, StatusCode::OK);
        let third = get_with_key(&app, "/v1/blocklists/community", &key).await;
        assert_eq!(third.status, StatusCode::OK);
        assert_eq!(third.headers["x-ratelimit-remaining"], "0");
        let over = get_with_key(&app, "/v1/blocklists/community", &key).await;
        over.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry: u64 = over.headers["retry-after"].to_str().expect("retry-after").parse().expect("seconds");
        assert!(retry >= 1);
        assert_eq!(over.headers["x-ratelimit-remaining"], "0");
    }
}

#[tokio::test]
async fn machine_readers_get_the_give_to_get_cap_on_the_native_endpoint() {
    for app in apps().await {
        list_in_order(&app, &LISTED).await;
        let machine = app.machine("quiet").await;
        let reply = app.get("/v1/blocklists/community", Some(&machine.token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            lines(&reply.text()),
            lines("81.2.69.160\n185.220.101.7\n103.251.167.10"),
            "{}: a machine that does not contribute gets non_contributor_cap entries",
            app.label
        );
        assert!(reply.headers.get("x-ratelimit-limit").is_none(), "machines are not metered here");
    }
}

/// Path and query of an absolute link of this app.
fn local(app: &TestApp, url: &str) -> String {
    let base = app.state.public_url.to_string();
    assert!(url.starts_with(&base), "{url} is not absolute under {base}");
    format!("/{}", &url[base.len()..])
}

async fn subscribed_machine_with_lists(app: &TestApp) -> common::TestMachine {
    let admin = app.admin_token().await;
    let machine = app.machine("v3-consumer").await;
    app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "partners", "description": "from partners"}))
        .await
        .expect_ok(StatusCode::CREATED);
    app.post("/v1/admin/blocklists", Some(&admin), &json!({"name": "friends", "kind": "allow", "description": "never block"}))
        .await
        .expect_ok(StatusCode::CREATED);
    app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &json!({"add": ["45.33.32.156", "81.2.69.0/24"]}))
        .await
        .expect_ok(StatusCode::OK);
    app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &json!({"add": ["185.220.101.7"], "remediation": "captcha"}))
        .await
        .expect_ok(StatusCode::OK);
    app.post("/v1/admin/blocklists/friends/entries", Some(&admin), &json!({"add": ["8.8.8.8"]})).await.expect_ok(StatusCode::OK);
    for list in ["partners", "friends"] {
        let put = app
            .send(request(
                Method::PUT,
                &format!("/v1/admin/blocklists/{list}/subscribers/{}", machine.login),
                Some(&admin),
                &[],
                Body::empty(),
            ))
            .await;
        assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.text());
    }
    machine
}

#[tokio::test]
async fn v3_stream_links_subscribed_lists_and_the_links_need_no_credential() {
    for app in apps().await {
        let machine = subscribed_machine_with_lists(&app).await;
        let stream = app.get("/v3/decisions/stream?startup=true", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        let blocklists = stream["links"]["blocklists"].as_array().expect("blocklist links");
        let mut shapes: Vec<(String, String)> = Vec::new();
        for link in blocklists {
            for field in ["name", "url", "remediation", "scope", "duration"] {
                assert!(link[field].as_str().is_some_and(|v| !v.is_empty()), "{}: {field} missing in {link}", app.label);
            }
            assert_eq!(link["name"], "partners");
            assert_eq!(link["duration"], "24h0m0s");
            shapes.push((link["remediation"].as_str().unwrap_or("").into(), link["scope"].as_str().unwrap_or("").into()));
        }
        shapes.sort();
        assert_eq!(
            shapes,
            [("ban".to_string(), "ip".to_string()), ("ban".into(), "range".into()), ("captcha".into(), "ip".into())],
            "one link per remediation and scope"
        );
        let ban_ip = blocklists.iter().find(|l| l["remediation"] == "ban" && l["scope"] == "ip").expect("ban/ip link");
        let path = local(&app, ban_ip["url"].as_str().expect("url"));
        let content = app.get(&path, None).await;
        assert_eq!(content.status, StatusCode::OK, "{}: {}", app.label, content.text());
        assert_eq!(content.text(), "45.33.32.156\n");
        assert!(content.headers[header::CONTENT_TYPE].to_str().unwrap_or("").starts_with("text/plain"));
        let last_modified = content.headers[header::LAST_MODIFIED].to_str().expect("last-modified").to_string();

        let unchanged =
            app.send(request(Method::GET, &path, None, &[("if-modified-since", &last_modified)], Body::empty())).await;
        assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED, "{}", app.label);
        assert!(unchanged.body.is_empty());
        let older = "Mon, 01 Jan 2024 00:00:00 GMT";
        let stale = app.send(request(Method::GET, &path, None, &[("if-modified-since", older)], Body::empty())).await;
        assert_eq!(stale.status, StatusCode::OK);

        let allow = &stream["links"]["allowlists"].as_array().expect("allowlist links")[0];
        for field in ["name", "description", "url", "id", "created_at", "updated_at"] {
            assert!(allow[field].as_str().is_some_and(|v| !v.is_empty()), "{field} missing in {allow}");
        }
        let jsonl = app.get(&local(&app, allow["url"].as_str().expect("url")), None).await;
        assert_eq!(jsonl.status, StatusCode::OK, "{}", jsonl.text());
        let line: Value = serde_json::from_str(jsonl.text().lines().next().expect("a line")).expect("JSON line");
        assert_eq!(line["value"], "8.8.8.8");
        assert_eq!(line["description"], "never block");
        assert!(line["created_at"].is_string() && line["expiration"].is_string(), "{line}");

        let no_additional =
            app.get("/v3/decisions/stream?additional_pull=false", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(no_additional["links"]["blocklists"], json!([]));
        assert_eq!(no_additional["links"]["allowlists"].as_array().map(Vec::len), Some(1), "allowlists still apply");
        let no_community =
            app.get("/v3/decisions/stream?community_pull=false", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(no_community["new"], json!([]));
        assert_eq!(no_community["links"]["blocklists"].as_array().map(Vec::len), Some(3));

        let v2 = app.get("/v2/decisions/stream?startup=true", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        let inline: BTreeSet<&str> = v2["new"]
            .as_array()
            .expect("new")
            .iter()
            .filter(|d| d["origin"] == "lists")
            .filter_map(|d| d["value"].as_str())
            .collect();
        assert_eq!(inline, BTreeSet::from(["45.33.32.156", "81.2.69.0/24", "185.220.101.7"]), "v2 still inlines lists");
    }
}

#[tokio::test]
async fn v3_stream_groups_new_decisions_by_scenario_and_scope_and_removals_by_scope() {
    let apps = apps_with(|c| {
        config(c);
        c.distribution.non_contributor_cap = 100;
    })
    .await;
    for app in apps {
        let machine = app.machine("v3groups").await;
        let (ssh, probing) = ("crowdsecurity/ssh-bf", "crowdsecurity/http-probing");
        let listed = [("45.33.32.156", ssh), ("81.2.69.160", probing), ("103.251.167.0/24", ssh), ("185.220.101.7", ssh)];
        commit_lists(&app, listed.iter().map(|(value, scenario)| listing(value, scenario, Rule::Sensor)).collect()).await;
        let groups = |stream: &Value| -> Vec<(String, String, BTreeSet<String>)> {
            let mut groups: Vec<(String, String, BTreeSet<String>)> = stream["new"]
                .as_array()
                .expect("new")
                .iter()
                .map(|g| {
                    let values = g["decisions"].as_array().expect("decisions").iter();
                    let values = values.map(|d| d["value"].as_str().expect("value").to_string()).collect();
                    (g["scenario"].as_str().expect("scenario").into(), g["scope"].as_str().expect("scope").into(), values)
                })
                .collect();
            groups.sort();
            groups
        };
        let set = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<BTreeSet<String>>();
        let reply = app.get("/v3/decisions/stream?startup=true", Some(&machine.token)).await;
        let first = reply.expect_ok(StatusCode::OK);
        // Written as it is sent, yet the bytes are those of the wire struct serialised whole.
        let typed: palisade_api::capi::DecisionsStreamV3 = serde_json::from_value(first.clone()).expect("the v3 shape");
        assert_eq!(reply.text(), serde_json::to_string(&typed).expect("serialisable"), "{}", app.label);
        assert_eq!(
            groups(&first),
            [
                (probing.to_string(), "ip".to_string(), set(&["81.2.69.160"])),
                (ssh.into(), "ip".into(), set(&["45.33.32.156", "185.220.101.7"])),
                (ssh.into(), "range".into(), set(&["103.251.167.0/24"])),
            ],
            "{}",
            app.label
        );
        let names: Vec<&str> = first["new"].as_array().expect("new").iter().filter_map(|g| g["scenario"].as_str()).collect();
        assert_eq!(names, [probing, ssh, ssh], "{}: groups in scenario order", app.label);
        assert!(first["new"][0]["decisions"][0]["duration"].as_str().is_some_and(|d| d.ends_with('s')), "{first}");
        assert_eq!(first["deleted"], json!([]));

        commit_lists(&app, vec![delisting("45.33.32.156"), delisting("103.251.167.0/24")]).await;
        let next = app.get("/v3/decisions/stream", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(next["new"], json!([]), "{}", app.label);
        assert_eq!(
            next["deleted"],
            json!([{"scope": "ip", "decisions": ["45.33.32.156"]}, {"scope": "range", "decisions": ["103.251.167.0/24"]}]),
            "{}",
            app.label
        );
    }
}

#[tokio::test]
async fn tampered_incomplete_and_expired_links_are_403() {
    for app in apps().await {
        let machine = subscribed_machine_with_lists(&app).await;
        let stream = app.get("/v3/decisions/stream", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        let url = stream["links"]["blocklists"][0]["url"].as_str().expect("url").to_string();
        let path = local(&app, &url);
        let expires: i64 =
            path.split("expires=").nth(1).and_then(|r| r.split('&').next()).expect("expires").parse().expect("number");
        let ttl = expires - OffsetDateTime::now_utc().unix_timestamp();
        assert!(
            (app.state.distribution.links.ttl_secs - 60..=app.state.distribution.links.ttl_secs).contains(&ttl),
            "expires in the configured ttl: {ttl}"
        );

        let sig = path.split("sig=").nth(1).expect("sig").to_string();
        let flipped: String =
            sig.chars().enumerate().map(|(i, c)| if i == 0 { if c == 'a' { 'b' } else { 'a' } } else { c }).collect();
        let tampered = app.get(&path.replace(&sig, &flipped), None).await;
        let body = tampered.expect_error(StatusCode::FORBIDDEN, "forbidden");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("signature")), "{body}");
        let longer = app.get(&path.replace(&format!("expires={expires}"), &format!("expires={}", expires + 3600)), None).await;
        longer.expect_error(StatusCode::FORBIDDEN, "forbidden");
        let other_list = app.get(&path.replace("/partners?", "/friends?"), None).await;
        other_list.expect_error(StatusCode::FORBIDDEN, "forbidden");
        app.get("/v1/links/blocklists/partners", None).await.expect_error(StatusCode::FORBIDDEN, "forbidden");

        // A correctly signed link whose time has passed.
        let past = LinkTarget {
            kind: LinkKind::Blocklist,
            name: "partners".into(),
            remediation: "ban".into(),
            scope: "ip".into(),
            expires: OffsetDateTime::now_utc().unix_timestamp() - 1,
        };
        let expired = app.get(&format!("/{}", app.state.distribution.links.path(&past)), None).await;
        let body = expired.expect_error(StatusCode::FORBIDDEN, "forbidden");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("expired")), "{body}");
        let mut fresh = past.clone();
        fresh.expires += 3600;
        assert_eq!(app.get(&format!("/{}", app.state.distribution.links.path(&fresh)), None).await.status, StatusCode::OK);
        let mut missing = fresh.clone();
        missing.name = "gone".into();
        app.get(&format!("/{}", app.state.distribution.links.path(&missing)), None)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}
