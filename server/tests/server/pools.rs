//! Account pools, through the routes machines and API keys use: what one machine of an account
//! reports is listed at once for every machine of that account (the CrowdSec v2 stream inline,
//! the v3 stream as a presigned link, `/v1/blocklists/pool-<id>` for its API keys), for no other
//! account unless shared, and never for a never-block address or a canary, whose reporter is
//! excluded from its pool. The policy and the shares are the operator's, through the admin API.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use palisade_server::jobs::consensus::{ConsensusWorker, WorkerConfig};
use palisade_server::store::AccountKey;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{TestApp, TestMachine, api_key, apps, get_with_key, lines, request, signal};

const SSH: &str = "crowdsecurity/ssh-bf";

/// A machine of `account`, enrolled.
async fn enrolled(app: &TestApp, account: AccountKey, login: &str) -> TestMachine {
    let machine = app.machine(login).await;
    app.state.store.enroll_machine(machine.key, account, None, &[], false, OffsetDateTime::now_utc()).await.expect("enroll");
    machine
}

/// The account `name` (made through the admin API, with an API key) and its key.
async fn account(app: &TestApp, admin: &str, name: &str) -> (AccountKey, String) {
    let key = api_key(app, admin, name).await;
    let account = app.state.store.account_by_name(name).await.expect("lookup").expect("exists");
    (account.key, key)
}

/// A worker that re-reads operator data (policies, allowlists, canaries) at every step.
async fn worker(app: &TestApp) -> ConsensusWorker {
    let config = WorkerConfig {
        params: app.state.engine_params.as_ref().clone(),
        refresh_every: Duration::ZERO,
        ..WorkerConfig::default()
    };
    ConsensusWorker::load(app.state.store.clone(), config).await.expect("the worker loads")
}

/// One consensus step, then the lists caught up as the poller would.
async fn step(app: &TestApp, worker: &mut ConsensusWorker) {
    worker.run_once(OffsetDateTime::now_utc()).await.expect("a consensus step");
    app.state.distribution.lists.refresh_all().await.expect("refresh");
}

async fn push(app: &TestApp, machine: &TestMachine, ips: &[&str], scenario: &str) {
    let items: Vec<Value> = ips.iter().map(|ip| signal(ip, scenario)).collect();
    app.post("/v2/signals", Some(&machine.token), &json!(items)).await.expect_ok(StatusCode::OK);
}

/// The decisions of a machine's v2 stream as (value, origin, scenario).
async fn v2_stream(app: &TestApp, machine: &TestMachine, startup: bool) -> (Vec<(String, String, String)>, Vec<String>) {
    let body = app.get(&format!("/v2/decisions/stream?startup={startup}"), Some(&machine.token)).await.expect_ok(StatusCode::OK);
    let decisions = |key: &str| -> Vec<Value> { body[key].as_array().cloned().unwrap_or_default() };
    let new = decisions("new")
        .iter()
        .map(|d| {
            let text = |field: &str| d[field].as_str().unwrap_or_default().to_string();
            (text("value"), text("origin"), text("scenario"))
        })
        .collect();
    let deleted = decisions("deleted").iter().map(|d| d["value"].as_str().unwrap_or_default().to_string()).collect();
    (new, deleted)
}

/// The values of the pool `list` as the v3 stream's presigned link serves it to `machine`;
/// `None` when the stream has no link to it.
async fn v3_link_values(app: &TestApp, machine: &TestMachine, list: &str) -> Option<Vec<String>> {
    let body = app.get("/v3/decisions/stream?startup=true", Some(&machine.token)).await.expect_ok(StatusCode::OK);
    let links = body["links"]["blocklists"].as_array().cloned().unwrap_or_default();
    let link = links.iter().find(|l| l["name"] == list)?;
    let url = link["url"].as_str().expect("url");
    let path = &url[url.find("/v1/links/").expect("a link path")..];
    let reply = app.send(request(axum::http::Method::GET, path, None, &[], axum::body::Body::empty())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}: {}", app.label, reply.text());
    Some(reply.text().lines().map(str::to_string).collect())
}

/// What a pool serves to an API key of its account.
async fn served(app: &TestApp, pool: &str, key: &str) -> BTreeSet<String> {
    let reply = get_with_key(app, pool, key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}: {}", app.label, reply.text());
    lines(&reply.text())
}

#[tokio::test]
async fn one_machines_report_reaches_every_machine_of_its_account_at_once_and_no_other_account_unless_shared() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let (acme, acme_key) = account(&app, &admin, "acme").await;
        let (other, other_key) = account(&app, &admin, "other").await;
        let (reporter, colleague) = (enrolled(&app, acme, "acme-web").await, enrolled(&app, acme, "acme-mail").await);
        let outsider = enrolled(&app, other, "other-web").await;
        let pool = format!("pool-{}", acme.0);
        let mut worker = worker(&app).await;

        push(&app, &reporter, &["45.10.0.1"], SSH).await;
        step(&app, &mut worker).await;

        let (new, _) = v2_stream(&app, &colleague, true).await;
        assert!(
            new.contains(&("45.10.0.1".into(), "lists".into(), pool.clone())),
            "{label}: the colleague receives it, origin lists, scenario {pool}: {new:?}"
        );
        let (new, _) = v2_stream(&app, &outsider, true).await;
        assert!(!new.iter().any(|d| d.0 == "45.10.0.1"), "{label}: another account does not: {new:?}");
        let community = app.get("/v1/blocklists/community", Some(&colleague.token)).await;
        assert!(!lines(&community.text()).contains("45.10.0.1"), "{label}: the community list still needs consensus");

        assert_eq!(v3_link_values(&app, &colleague, &pool).await, Some(vec!["45.10.0.1".to_string()]), "{label}: v3 link");
        assert_eq!(v3_link_values(&app, &outsider, &pool).await, None, "{label}: no link for another account");

        let reply = get_with_key(&app, &format!("/v1/blocklists/{pool}"), &acme_key).await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: the account's key reads its pool: {}", reply.text());
        assert_eq!(lines(&reply.text()), lines("45.10.0.1"), "{label}");
        let listed = get_with_key(&app, "/v1/blocklists", &acme_key).await.expect_ok(StatusCode::OK);
        let kinds: Vec<(String, String)> = listed
            .as_array()
            .expect("array")
            .iter()
            .map(|v| (v["name"].as_str().unwrap_or_default().into(), v["kind"].as_str().unwrap_or_default().into()))
            .collect();
        assert!(kinds.contains(&(pool.clone(), "pool".into())), "{label}: listed with kind pool: {kinds:?}");
        let refused = get_with_key(&app, &format!("/v1/blocklists/{pool}"), &other_key).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{label}: another account's key does not know it");
        let refused = app.get(&format!("/v1/blocklists/{pool}"), Some(&outsider.token)).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{label}: nor does its machine");

        // Shared, read-only: the partner's machine and key receive it, marked with its origin.
        let put = request(
            axum::http::Method::PUT,
            "/v1/admin/accounts/acme/pool/shares/other",
            Some(&admin),
            &[],
            axum::body::Body::empty(),
        );
        let view = app.send(put).await.expect_ok(StatusCode::OK);
        assert_eq!(view["shared_with"], json!(["other"]), "{label}: {view}");
        let (new, _) = v2_stream(&app, &outsider, false).await;
        assert!(new.contains(&("45.10.0.1".into(), "lists".into(), pool.clone())), "{label}: shared: {new:?}");
        let reply = get_with_key(&app, &format!("/v1/blocklists/{pool}"), &other_key).await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: the partner's key reads it");
        let mine = format!("pool-{}", other.0);
        push(&app, &outsider, &["45.10.0.2"], SSH).await;
        step(&app, &mut worker).await;
        let (new, _) = v2_stream(&app, &colleague, false).await;
        assert!(!new.iter().any(|d| d.0 == "45.10.0.2"), "{label}: sharing is one way: {new:?}");
        let (new, _) = v2_stream(&app, &outsider, false).await;
        assert!(new.contains(&("45.10.0.2".into(), "lists".into(), mine.clone())), "{label}: its own pool: {new:?}");

        // Unshared: gone for the partner from its next pull.
        let delete = request(
            axum::http::Method::DELETE,
            "/v1/admin/accounts/acme/pool/shares/other",
            Some(&admin),
            &[],
            axum::body::Body::empty(),
        );
        app.send(delete).await.expect_ok(StatusCode::OK);
        let refused = get_with_key(&app, &format!("/v1/blocklists/{pool}"), &other_key).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{label}: unshared");
        let (new, _) = v2_stream(&app, &outsider, true).await;
        assert!(!new.iter().any(|d| d.0 == "45.10.0.1"), "{label}: no longer received: {new:?}");
    }
}

#[tokio::test]
async fn ground_truth_wins_over_the_fleet_and_a_lying_reporter_is_excluded() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let (acme, key) = account(&app, &admin, "acme").await;
        let now = OffsetDateTime::now_utc();
        app.state.store.add_canary("45.20.0.9", "honeypot", now).await.expect("canary");
        app.state.store.add_allowlist(&["45.30.0.0/24".into()], "partners", "operator", now).await.expect("allowlist");
        let (liar, careless, honest) =
            (enrolled(&app, acme, "acme-1").await, enrolled(&app, acme, "acme-2").await, enrolled(&app, acme, "acme-3").await);
        let pool = format!("/v1/blocklists/pool-{}", acme.0);
        let mut worker = worker(&app).await;

        push(&app, &liar, &["45.10.0.1"], SSH).await;
        push(&app, &honest, &["45.10.0.2"], SSH).await;
        // A spoofable scenario (a SYN scan read from firewall logs) never lists, nor costs.
        push(&app, &careless, &["45.10.0.3", "45.20.0.9"], "crowdsecurity/iptables-scan-multi_ports").await;
        step(&app, &mut worker).await;
        assert_eq!(
            served(&app, &pool, &key).await,
            lines("45.10.0.1\n45.10.0.2"),
            "{label}: both listed, the spoofable ones not"
        );

        push(&app, &liar, &["45.20.0.9"], SSH).await;
        push(&app, &careless, &["45.30.0.7"], SSH).await;
        step(&app, &mut worker).await;
        assert_eq!(
            served(&app, &pool, &key).await,
            lines("45.10.0.2"),
            "{label}: a canary or never-block report lists nothing and takes the reporter's entries with it"
        );
        push(&app, &liar, &["45.10.0.4"], SSH).await;
        push(&app, &careless, &["45.10.0.5"], SSH).await;
        step(&app, &mut worker).await;
        assert_eq!(served(&app, &pool, &key).await, lines("45.10.0.2"), "{label}: excluded reporters count no more");

        // An address allowlisted after it was listed goes at the next step; its reporter did no wrong.
        app.state.store.add_allowlist(&["45.10.0.0/24".into()], "late", "operator", now).await.expect("allowlist");
        step(&app, &mut worker).await;
        assert!(served(&app, &pool, &key).await.is_empty(), "{label}: allowlisted later, removed");
        push(&app, &honest, &["45.11.0.1"], SSH).await;
        step(&app, &mut worker).await;
        assert_eq!(served(&app, &pool, &key).await, lines("45.11.0.1"), "{label}: the honest machine still counts");

        // A restarted worker keeps the exclusions (the engine zeroed the canary reporter).
        let mut restarted = self::worker(&app).await;
        push(&app, &liar, &["45.12.0.1"], SSH).await;
        step(&app, &mut restarted).await;
        assert_eq!(served(&app, &pool, &key).await, lines("45.11.0.1"), "{label}: still excluded after a restart");
    }
}

#[tokio::test]
async fn the_operator_sets_an_accounts_policy_and_bad_policies_are_refused() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let (acme, key) = account(&app, &admin, "acme").await;
        let (first, second) = (enrolled(&app, acme, "acme-1").await, enrolled(&app, acme, "acme-2").await);
        let patch = |body: Value| {
            request(
                axum::http::Method::PATCH,
                "/v1/admin/accounts/acme/pool",
                Some(&admin),
                &[],
                axum::body::Body::from(body.to_string()),
            )
        };

        let view = app.get("/v1/admin/accounts/acme/pool", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(view["own_policy"], false, "{label}: {view}");
        assert_eq!(view["policy"]["min_machines"], 1, "{label}");
        assert_eq!(view["policy"]["duration_secs"], 14_400, "{label}: four hours by default");

        let view = app.send(patch(json!({"min_machines": 2, "deny": ["*/http-*"]}))).await.expect_ok(StatusCode::OK);
        assert_eq!(
            (view["own_policy"].clone(), view["policy"]["min_machines"].clone()),
            (json!(true), json!(2)),
            "{label}: {view}"
        );
        assert_eq!(view["policy"]["allow"], json!(["*"]), "{label}: fields left out keep their value");

        let mut worker = worker(&app).await;
        let pool = format!("/v1/blocklists/pool-{}", acme.0);
        push(&app, &first, &["45.10.0.1", "45.10.0.2"], SSH).await;
        push(&app, &second, &["45.10.0.2"], "crowdsecurity/http-probing").await;
        step(&app, &mut worker).await;
        assert!(served(&app, &pool, &key).await.is_empty(), "{label}: one machine, or a denied scenario, is not enough");
        push(&app, &second, &["45.10.0.2"], SSH).await;
        step(&app, &mut worker).await;
        assert_eq!(served(&app, &pool, &key).await, lines("45.10.0.2"), "{label}: two machines agree");

        for (body, field) in [
            (json!({"min_machines": 0}), "min_machines"),
            (json!({"duration_secs": 5}), "duration_secs"),
            (json!({"remediation": "tarpit"}), "remediation"),
            (json!({"allow": [""]}), "allow"),
        ] {
            let reply = app.send(patch(body.clone())).await;
            let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert!(error.to_string().contains(field), "{label}: {body} names {field}: {error}");
        }
        app.send(patch(json!({"quorum": 3}))).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
        app.get("/v1/admin/accounts/nobody/pool", Some(&admin)).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        let put = request(
            axum::http::Method::PUT,
            "/v1/admin/accounts/acme/pool/shares/acme",
            Some(&admin),
            &[],
            axum::body::Body::empty(),
        );
        app.send(put).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

        // Disabled: emptied at the next step. Reset: back to the default.
        app.send(patch(json!({"enabled": false}))).await.expect_ok(StatusCode::OK);
        step(&app, &mut worker).await;
        assert!(served(&app, &pool, &key).await.is_empty(), "{label}: a disabled pool is emptied");
        let reset =
            request(axum::http::Method::DELETE, "/v1/admin/accounts/acme/pool", Some(&admin), &[], axum::body::Body::empty());
        let view = app.send(reset).await.expect_ok(StatusCode::OK);
        assert_eq!(
            (view["own_policy"].clone(), view["policy"]["enabled"].clone()),
            (json!(false), json!(true)),
            "{label}: {view}"
        );
    }
}
