//! The operator's lifecycle commands over the admin API, on every backend: listing and revoking
//! enrollment keys (a revoked key enrolls nothing, as CrowdSec's `cscli console enroll` sends
//! it), deleting an account (refused while machines are attached; its keys refused at once),
//! delisting an address without blaming its reporters, and the audit log every admin mutation
//! writes to, including a walk over every mutating admin route of the document.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use palisade_server::domain::lists::COMMUNITY;
use palisade_server::jobs::consensus::{ConsensusWorker, WorkerConfig};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{PEER, TestApp, TestMachine, api_key, apps, get_with_key, request, signal};

async fn send(app: &TestApp, method: Method, path: &str, admin: &str, body: Option<&Value>) -> crate::common::Reply {
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    app.send(request(method, path, Some(admin), &[], body)).await
}

async fn enroll_key(app: &TestApp, admin: &str, account: &str) -> (String, String) {
    let created = app
        .post(&format!("/v1/admin/accounts/{account}/enroll-keys"), Some(admin), &json!({}))
        .await
        .expect_ok(StatusCode::CREATED);
    (created["key"].as_str().expect("key").to_string(), created["prefix"].as_str().expect("prefix").to_string())
}

/// `cscli console enroll KEY` as CrowdSec sends it.
async fn enroll(app: &TestApp, machine: &TestMachine, key: &str) -> crate::common::Reply {
    let body = json!({"attachment_key": key, "name": "", "tags": [], "overwrite": false});
    app.post("/v2/watchers/enroll", Some(&machine.token), &body).await
}

#[tokio::test]
async fn enroll_keys_are_listed_without_secrets_and_a_revoked_key_enrolls_nothing() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        for account in ["acme", "other"] {
            app.post("/v1/admin/accounts", Some(&admin), &json!({"name": account})).await.expect_ok(StatusCode::CREATED);
        }
        let (key, prefix) = enroll_key(&app, &admin, "acme").await;
        let (_, other_prefix) = enroll_key(&app, &admin, "other").await;
        let first = app.machine("lapi-1").await;
        enroll(&app, &first, &key).await.expect_ok(StatusCode::ACCEPTED);

        let listed = app.get("/v1/admin/enroll-keys", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(!listed.to_string().contains(&key), "{label}: the secret is never listed");
        let rows: Vec<(&str, &str, u64)> = listed
            .as_array()
            .expect("array")
            .iter()
            .map(|k| (k["prefix"].as_str().unwrap_or(""), k["account"].as_str().unwrap_or(""), k["uses"].as_u64().unwrap_or(9)))
            .collect();
        assert_eq!(rows, [(prefix.as_str(), "acme", 1), (other_prefix.as_str(), "other", 0)], "{label}: {listed}");
        assert!(listed[0]["last_used_at"].is_string(), "{label}: last use recorded: {listed}");
        let mine = app.get("/v1/admin/enroll-keys?account=other", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(mine.as_array().map(Vec::len), Some(1), "{label}: one account's keys: {mine}");
        app.get("/v1/admin/enroll-keys?account=ghost", Some(&admin)).await.expect_error(StatusCode::NOT_FOUND, "not_found");

        let revoked = send(&app, Method::DELETE, &format!("/v1/admin/enroll-keys/{prefix}"), &admin, None).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{label}: {}", revoked.text());
        let second = app.machine("lapi-2").await;
        let refused = enroll(&app, &second, &key).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{label}: a revoked key enrolls nothing: {}", refused.text());
        let view = app.get("/v1/admin/machines/lapi-2", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(view["account"].is_null(), "{label}: not enrolled: {view}");
        let view = app.get("/v1/admin/machines/lapi-1", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(view["account"], "acme", "{label}: what it enrolled stays enrolled");
        let listed = app.get("/v1/admin/enroll-keys?account=acme", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(listed[0]["revoked_at"].is_string(), "{label}: {listed}");

        send(&app, Method::DELETE, &format!("/v1/admin/enroll-keys/{prefix}"), &admin, None)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
        send(&app, Method::DELETE, "/v1/admin/enroll-keys/nope", &admin, None)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
        app.get("/v1/admin/enroll-keys", None).await.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    }
}

#[tokio::test]
async fn an_account_with_machines_is_deleted_only_when_told_what_to_do_with_them() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let lookup_key = api_key(&app, &admin, "acme").await;
        let (key, _) = enroll_key(&app, &admin, "acme").await;
        let machine = app.machine("lapi-1").await;
        enroll(&app, &machine, &key).await.expect_ok(StatusCode::ACCEPTED);
        assert_ne!(
            get_with_key(&app, "/v2/smoke/45.33.32.156", &lookup_key).await.status,
            StatusCode::FORBIDDEN,
            "{label}: key works"
        );

        let refused = send(&app, Method::DELETE, "/v1/admin/accounts/acme", &admin, None)
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert!(
            refused["message"].as_str().is_some_and(|m| m.contains("lapi-1") && m.contains("machines=detach")),
            "{label}: {refused}"
        );
        send(&app, Method::DELETE, "/v1/admin/accounts/acme?machines=keep", &admin, None)
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_ne!(
            get_with_key(&app, "/v2/smoke/45.33.32.156", &lookup_key).await.status,
            StatusCode::FORBIDDEN,
            "{label}: nothing done"
        );

        let deleted =
            send(&app, Method::DELETE, "/v1/admin/accounts/acme?machines=detach", &admin, None).await.expect_ok(StatusCode::OK);
        assert_eq!(
            deleted,
            json!({"account": "acme", "machines_detached": ["lapi-1"], "machines_deleted": [], "api_keys": 1, "enroll_keys": 1}),
            "{label}"
        );
        assert_eq!(
            get_with_key(&app, "/v2/smoke/45.33.32.156", &lookup_key).await.status,
            StatusCode::FORBIDDEN,
            "{label}: key refused at once"
        );
        let other = app.machine("lapi-2").await;
        assert_eq!(enroll(&app, &other, &key).await.status, StatusCode::FORBIDDEN, "{label}: enroll key refused");
        let view = app.get("/v1/admin/machines/lapi-1", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(view["account"].is_null() && view["disabled_at"].is_null(), "{label}: detached, still working: {view}");
        let accounts = app.get("/v1/admin/accounts", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(accounts, json!([]), "{label}");
        send(&app, Method::DELETE, "/v1/admin/accounts/acme", &admin, None)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");

        // Deleting the machines with it: the machine's login is refused.
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme-2"})).await.expect_ok(StatusCode::CREATED);
        let (key, _) = enroll_key(&app, &admin, "acme-2").await;
        let third = app.machine("lapi-3").await;
        enroll(&app, &third, &key).await.expect_ok(StatusCode::ACCEPTED);
        let deleted =
            send(&app, Method::DELETE, "/v1/admin/accounts/acme-2?machines=delete", &admin, None).await.expect_ok(StatusCode::OK);
        assert_eq!(deleted["machines_deleted"], json!(["lapi-3"]), "{label}: {deleted}");
        let stream = app.get("/v2/decisions/stream?startup=true", Some(&third.token)).await;
        assert_eq!(stream.status, StatusCode::UNAUTHORIZED, "{label}: a deleted machine's token is refused at once");
    }
}

/// A consensus worker that re-reads machines at every step.
async fn worker(app: &TestApp) -> ConsensusWorker {
    let config = WorkerConfig {
        params: app.state.engine_params.as_ref().clone(),
        refresh_every: Duration::ZERO,
        ..WorkerConfig::default()
    };
    ConsensusWorker::load(app.state.store.clone(), config).await.expect("the worker loads")
}

async fn step(worker: &mut ConsensusWorker) {
    worker.run_once(OffsetDateTime::now_utc()).await.expect("a consensus step");
}

async fn report(app: &TestApp, machine: &TestMachine, ip: &str) {
    app.post("/v2/signals", Some(&machine.token), &json!([signal(ip, "crowdsecurity/ssh-bf")])).await.expect_ok(StatusCode::OK);
}

async fn listed(app: &TestApp, ip: &str) -> bool {
    let target = ip.parse::<std::net::IpAddr>().map(ipnet::IpNet::from).expect("an address");
    app.state.store.list_entry(COMMUNITY, target).await.expect("lookup").is_some()
}

const ATTACKER: &str = "81.2.69.142";

/// Waits until the clock is past the whole second `at` (a condition, not a timing).
async fn next_second(at: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while OffsetDateTime::now_utc().unix_timestamp() <= at + 1 {
        assert!(std::time::Instant::now() < deadline, "the clock does not advance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_delisting_takes_an_address_off_without_touching_its_reporters_and_fresh_reports_list_it_again() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let sensor = app.machine("honeypot-1").await;
        app.state.store.set_machine_sensor("honeypot-1", true).await.expect("sensor");
        let reporter = app.machine("lapi-1").await;
        let mut worker = worker(&app).await;
        report(&app, &sensor, ATTACKER).await;
        report(&app, &reporter, ATTACKER).await;
        step(&mut worker).await;
        assert!(listed(&app, ATTACKER).await, "{label}: a sensor's sighting lists it");
        let trust_before = (
            app.state.store.engine_machine(sensor.key).await.expect("state"),
            app.state.store.engine_machine(reporter.key).await.expect("state"),
        );

        let queued =
            app.post("/v1/admin/delistings", Some(&admin), &json!({"value": ATTACKER})).await.expect_ok(StatusCode::ACCEPTED);
        assert!(queued["message"].as_str().is_some_and(|m| m.contains("no reporter is penalised")), "{label}: {queued}");
        let delisted_at = OffsetDateTime::now_utc().unix_timestamp();
        step(&mut worker).await;
        assert!(!listed(&app, ATTACKER).await, "{label}: delisted");
        let trust_after = (
            app.state.store.engine_machine(sensor.key).await.expect("state"),
            app.state.store.engine_machine(reporter.key).await.expect("state"),
        );
        assert_eq!(trust_before, trust_after, "{label}: no reporter's state changed");
        step(&mut worker).await;
        assert!(!listed(&app, ATTACKER).await, "{label}: the old evidence does not list it again");

        // The engine counts in whole seconds: a report in the delisting's own second may predate
        // it, so only one from a later second is fresh.
        next_second(delisted_at).await;
        report(&app, &sensor, ATTACKER).await;
        step(&mut worker).await;
        assert!(listed(&app, ATTACKER).await, "{label}: a fresh report lists it again");

        // With a hold, not even a sensor lists it.
        let held = json!({"value": ATTACKER, "hold": "1h"});
        let queued = app.post("/v1/admin/delistings", Some(&admin), &held).await.expect_ok(StatusCode::ACCEPTED);
        assert!(queued["message"].as_str().is_some_and(|m| m.contains("before")), "{label}: {queued}");
        let held_at = OffsetDateTime::now_utc().unix_timestamp();
        step(&mut worker).await;
        assert!(!listed(&app, ATTACKER).await, "{label}: delisted again");
        next_second(held_at).await;
        report(&app, &sensor, ATTACKER).await;
        step(&mut worker).await;
        assert!(!listed(&app, ATTACKER).await, "{label}: held off the list, even for a sensor");

        for (body, field) in [
            (json!({"value": ATTACKER, "hold": "forever"}), "hold"),
            (json!({"value": ATTACKER, "hold": "400d"}), "hold"),
            (json!({"value": "not-an-address"}), "value"),
        ] {
            let refused = app
                .post("/v1/admin/delistings", Some(&admin), &body)
                .await
                .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(refused["fields"][0]["field"], field, "{label}: {refused}");
        }
    }
}

/// The audit log's newest entries.
async fn audit(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let page = app.get(&format!("/v1/admin/audit{query}"), Some(admin)).await.expect_ok(StatusCode::OK);
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn admin_mutations_are_audited_with_actor_target_client_and_status_and_without_secrets() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let actor = format!("token:{}", palisade_server::auth::secrets::visible_prefix(&admin));
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme"})).await.expect_ok(StatusCode::CREATED);
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme"}))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        app.post("/v1/admin/accounts", None, &json!({"name": "sneaky"}))
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
        let feed = json!({"name": "upstream", "url": "https://lists.example/x.txt", "api_key": "pal_supersecretkey"});
        app.post("/v1/admin/feeds", Some(&admin), &feed).await;
        app.get("/v1/admin/accounts", Some(&admin)).await.expect_ok(StatusCode::OK);

        let entries = audit(&app, &admin, "").await;
        let rows: Vec<(&str, &str, u64)> = entries
            .iter()
            .map(|e| (e["action"].as_str().unwrap_or(""), e["target"].as_str().unwrap_or(""), e["status"].as_u64().unwrap_or(0)))
            .collect();
        let feed_status = rows.first().map_or(0, |r| r.2);
        assert_eq!(
            rows,
            [("create_feed", "upstream", feed_status), ("create_account", "acme", 409), ("create_account", "acme", 201)],
            "{label}: newest first; refused attempts after authentication too, reads and anonymous attempts not at all"
        );
        for entry in &entries {
            assert_eq!(entry["actor"], actor.as_str(), "{label}: {entry}");
            assert_eq!(entry["client"], PEER.ip().to_string(), "{label}: {entry}");
        }
        assert!(
            !serde_json::to_string(&entries).expect("json").contains("supersecret"),
            "{label}: a secret was recorded: {entries:?}"
        );
        assert_eq!(entries[0]["detail"]["api_key"], "(redacted)", "{label}: {}", entries[0]);
        assert_eq!(entries[2]["detail"], json!({"name": "acme"}), "{label}");

        let only = audit(&app, &admin, "?action=create_account&limit=1").await;
        assert_eq!(only.len(), 1, "{label}");
        let page = app.get("/v1/admin/audit?action=create_account&limit=1", Some(&admin)).await.expect_ok(StatusCode::OK);
        let before = page["next_before"].as_i64().expect("another page");
        let next = audit(&app, &admin, &format!("?action=create_account&before={before}")).await;
        assert_eq!(next.len(), 1, "{label}: the second page");
        assert_eq!(next[0]["status"], 201, "{label}");
        assert_eq!(audit(&app, &admin, &format!("?actor={actor}&since=1h")).await.len(), 3, "{label}: by actor, since");
        assert!(audit(&app, &admin, "?actor=cli:nobody").await.is_empty(), "{label}");
        assert!(audit(&app, &admin, "?since=2999-01-01T00:00:00Z").await.is_empty(), "{label}");
        app.get("/v1/admin/audit?since=yesterday", Some(&admin))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.get("/v1/admin/audit?limit=0", Some(&admin))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.get("/v1/admin/audit", None).await.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    }
}

/// Every operation of the document under `/v1/admin` whose method changes something, read from
/// the document itself (not from the recording layer's own table), so a route nested elsewhere or
/// served outside the layer fails here.
fn mutating_admin_operations() -> Vec<(Method, String, String)> {
    let document = serde_json::to_value(palisade_server::http::openapi()).expect("the document serialises");
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/admin") {
            continue;
        }
        for (method, operation) in item.as_object().expect("an item") {
            let method = match method.as_str() {
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            operations.push((method, path.clone(), operation["operationId"].as_str().expect("an operationId").to_string()));
        }
    }
    operations
}

/// `path` with each `{parameter}` replaced by `x`.
fn placeholders(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => inside = true,
            '}' => {
                inside = false;
                out.push('x');
            }
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn every_mutating_admin_route_writes_an_audit_entry() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let operations = mutating_admin_operations();
        assert!(operations.len() >= 35, "{label}: the document lists too few admin mutations: {operations:?}");
        for (method, path, action) in &operations {
            // Placeholder parameters and an empty body: most calls are refused (404, 422), which
            // is recorded too; what matters is that the call reached an audited route.
            let concrete = placeholders(path);
            let reply = send(&app, method.clone(), &concrete, &admin, Some(&json!({}))).await;
            assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{label}: {method} {concrete}");
            let found = audit(&app, &admin, &format!("?action={action}&limit=1")).await;
            assert_eq!(
                found.first().and_then(|e| e["status"].as_u64()),
                Some(u64::from(reply.status.as_u16())),
                "{label}: {method} {path} ({action}) wrote no audit entry"
            );
        }
    }
}

#[tokio::test]
async fn deleting_an_account_ends_its_console_sessions_and_no_other() {
    use axum::http::{Request, header};
    const HOST: &str = "palisade.test";
    let sign_in = |token: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/console/login/link")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, HOST)
            .header(header::ORIGIN, format!("http://{HOST}"))
            .body(Body::from(format!("token={token}")))
            .expect("a valid request")
    };
    let page = |cookie: &str| {
        Request::builder()
            .uri("/console/account")
            .header(header::HOST, HOST)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .expect("valid")
    };
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let mut cookies = Vec::new();
        for account in ["acme", "globex"] {
            app.post("/v1/admin/accounts", Some(&admin), &json!({"name": account})).await.expect_ok(StatusCode::CREATED);
            let link = app
                .post(&format!("/v1/admin/accounts/{account}/login-link"), Some(&admin), &json!({}))
                .await
                .expect_ok(StatusCode::CREATED);
            let url = link["url"].as_str().expect("a url");
            let token = &url[url.find("token=").expect("a token") + "token=".len()..];
            let signed_in = app.send(sign_in(token)).await;
            assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{label}: {}", signed_in.text());
            let set = signed_in.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).expect("a session cookie");
            cookies.push(set.split(';').next().unwrap_or_default().to_string());
        }
        for cookie in &cookies {
            assert_eq!(app.send(page(cookie)).await.status, StatusCode::OK, "{label}: signed in");
        }
        send(&app, Method::DELETE, "/v1/admin/accounts/acme", &admin, None).await.expect_ok(StatusCode::OK);
        let refused = app.send(page(&cookies[0])).await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER, "{label}: the deleted account's session is sent to sign in");
        assert_eq!(app.send(page(&cookies[1])).await.status, StatusCode::OK, "{label}: another account's session stays");
    }
}
