//! In-process tests of the AbuseIPDB dialect (`/api/v2/check`, `/api/v2/report`,
//! `/api/v2/blacklist`, the v1 `/report/json`) on both backends: keys in the `Key` header and
//! the legacy `key` parameter, AbuseIPDB's error body and statuses (401, 422, 429), quota per
//! endpoint with its headers, the 15-minute rule on the quota clock, reports stored as signals of
//! the key's account with their comments scrubbed and shown only to that account, and the
//! blacklist as the key's tier serves the community list.

use crate::common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use common::{Reply, TestApp, api_key, api_key_on_tier, apps_with, commit_lists, listing, tier};
use palisade_server::config::Config;
use palisade_server::engine::Rule;
use palisade_server::store::SignalFilter;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn tiers(config: &mut Config) {
    config.tiers = BTreeMap::from([
        ("free".to_string(), tier(1000, &[("community", 0)])),
        ("tiny".to_string(), tier(2, &[("community", 0)])),
        ("capped".to_string(), tier(1000, &[("community", 2)])),
        ("nolist".to_string(), tier(1000, &[])),
        ("basic".to_string(), tier(1000, &[("community", 0)])),
    ]);
}

async fn apps() -> Vec<TestApp> {
    apps_with(tiers).await
}

/// `GET path` with the key in AbuseIPDB's `Key` header.
async fn get(app: &TestApp, path: &str, key: Option<&str>) -> Reply {
    let mut builder = axum::http::Request::builder().method(Method::GET).uri(path).header(header::ACCEPT, "application/json");
    if let Some(key) = key {
        builder = builder.header("Key", key);
    }
    app.send(builder.body(Body::empty()).expect("a request")).await
}

/// `POST path` with a form body, the key in the `Key` header when given.
async fn post_form(app: &TestApp, path: &str, key: Option<&str>, form: &[(&str, &str)]) -> Reply {
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut builder = axum::http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(key) = key {
        builder = builder.header("Key", key);
    }
    app.send(builder.body(Body::from(body)).expect("a request")).await
}

async fn report(app: &TestApp, key: &str, ip: &str, categories: &str, comment: &str) -> Reply {
    post_form(app, "/api/v2/report", Some(key), &[("ip", ip), ("categories", categories), ("comment", comment)]).await
}

#[track_caller]
fn ok(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}: {}", reply.what, reply.text());
    reply.json()
}

/// Asserts AbuseIPDB's error body with `status`, naming `parameter` when given; returns the detail.
#[track_caller]
fn abuse_error(reply: &Reply, status: StatusCode, parameter: Option<&str>) -> String {
    assert_eq!(reply.status, status, "{}: {}", reply.what, reply.text());
    let body = reply.json();
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{}: no errors array: {body}", reply.what));
    assert_eq!(errors.len(), 1, "{}: {body}", reply.what);
    assert_eq!(errors[0]["status"], status.as_u16(), "{}: {body}", reply.what);
    assert_eq!(errors[0]["source"]["parameter"].as_str(), parameter, "{}: {body}", reply.what);
    errors[0]["detail"].as_str().expect("a detail").to_string()
}

#[track_caller]
fn header_number(reply: &Reply, name: &str) -> u64 {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}: no numeric {name} header", reply.what))
}

async fn key_prefix(app: &TestApp, admin: &str, account: &str) -> String {
    let listed = app.get(&format!("/v1/admin/accounts/{account}/api-keys"), Some(admin)).await.expect_ok(StatusCode::OK);
    listed[0]["prefix"].as_str().expect("prefix").to_string()
}

#[tokio::test]
async fn check_answers_zeros_for_unknown_addresses_and_100_for_a_listed_one() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let unknown = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.156", Some(&key)).await);
        let data = &unknown["data"];
        assert_eq!(data["ipAddress"], "45.33.32.156", "{}", app.label);
        assert_eq!((data["isPublic"].as_bool(), data["ipVersion"].as_u64()), (Some(true), Some(4)));
        assert_eq!((data["abuseConfidenceScore"].as_u64(), data["totalReports"].as_u64()), (Some(0), Some(0)));
        assert_eq!((data["numDistinctUsers"].as_u64(), data["isWhitelisted"].as_bool()), (Some(0), Some(false)));
        assert!(data["lastReportedAt"].is_null() && data["usageType"].is_null() && data["hostnames"] == serde_json::json!([]));
        assert!(data.get("reports").is_none(), "reports only with verbose: {data}");

        let v6 = ok(&get(&app, "/api/v2/check?ipAddress=2a01:4f8::1&verbose", Some(&key)).await);
        assert_eq!(v6["data"]["ipVersion"], 6);
        assert_eq!(v6["data"]["reports"], serde_json::json!([]));
        let private = ok(&get(&app, "/api/v2/check?ipAddress=10.1.2.3", Some(&key)).await);
        assert_eq!(
            (private["data"]["isPublic"].as_bool(), private["data"]["abuseConfidenceScore"].as_u64()),
            (Some(false), Some(0))
        );

        commit_lists(&app, vec![listing("45.33.32.157", "crowdsecurity/ssh-bf", Rule::Crowd)]).await;
        let listed = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.157", Some(&key)).await);
        assert_eq!(listed["data"]["abuseConfidenceScore"], 100, "{}: {listed}", app.label);
    }
}

#[tokio::test]
async fn missing_bad_and_revoked_keys_are_401_and_the_legacy_key_parameter_works() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        for path in ["/api/v2/check?ipAddress=45.33.32.156", "/api/v2/blacklist"] {
            let detail = abuse_error(&get(&app, path, None).await, StatusCode::UNAUTHORIZED, None);
            assert!(detail.starts_with("Authentication failed."), "{detail}");
            abuse_error(&get(&app, path, Some("pal_nonsense")).await, StatusCode::UNAUTHORIZED, None);
        }
        abuse_error(&report(&app, "pal_nonsense", "45.33.32.156", "22", "").await, StatusCode::UNAUTHORIZED, None);
        let v1 =
            post_form(&app, "/report/json", None, &[("key", "pal_nonsense"), ("category", "22"), ("ip", "45.33.32.156")]).await;
        assert_eq!(v1.status, StatusCode::UNAUTHORIZED, "{}", v1.text());
        assert_eq!(v1.json()["success"], false);

        ok(&get(&app, &format!("/api/v2/check?ipAddress=45.33.32.156&key={key}"), None).await);
        ok(&post_form(&app, "/api/v2/report", None, &[("key", &key), ("ip", "45.33.32.156"), ("categories", "22")]).await);

        let prefix = key_prefix(&app, &admin, "acme").await;
        let revoke = app
            .send(common::request(Method::DELETE, &format!("/v1/admin/api-keys/{prefix}"), Some(&admin), &[], Body::empty()))
            .await;
        assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text());
        abuse_error(&get(&app, "/api/v2/check?ipAddress=45.33.32.156", Some(&key)).await, StatusCode::UNAUTHORIZED, None);
        abuse_error(&report(&app, &key, "45.33.32.158", "22", "").await, StatusCode::UNAUTHORIZED, None);
    }
}

#[tokio::test]
async fn invalid_parameters_are_422_naming_them_and_cost_nothing() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let first = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.156", Some(&key)).await);
        assert_eq!(first["data"]["ipAddress"], "45.33.32.156");
        let remaining =
            header_number(&get(&app, "/api/v2/check?ipAddress=45.33.32.156", Some(&key)).await, "x-ratelimit-remaining");

        let checks = [
            ("/api/v2/check", "ipAddress"),
            ("/api/v2/check?ipAddress=not-an-ip", "ipAddress"),
            ("/api/v2/check?ipAddress=45.33.32.156&maxAgeInDays=0", "maxAgeInDays"),
            ("/api/v2/check?ipAddress=45.33.32.156&maxAgeInDays=366", "maxAgeInDays"),
            ("/api/v2/check?ipAddress=45.33.32.156&maxAgeInDays=x", "maxAgeInDays"),
            ("/api/v2/blacklist?confidenceMinimum=10", "confidenceMinimum"),
            ("/api/v2/blacklist?ipVersion=5", "ipVersion"),
            ("/api/v2/blacklist?onlyCountries=FRA", "onlyCountries"),
        ];
        for (path, parameter) in checks {
            let reply = get(&app, path, Some(&key)).await;
            abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some(parameter));
            assert_eq!(header_number(&reply, "x-ratelimit-remaining"), remaining, "{}: nothing spent", reply.what);
        }

        let future = (OffsetDateTime::now_utc() + time::Duration::hours(2)).format(&Rfc3339).expect("a time");
        let ancient = (OffsetDateTime::now_utc() - time::Duration::days(3651)).format(&Rfc3339).expect("a time");
        let reports: [(&[(&str, &str)], &str); 11] = [
            (&[("ip", "45.33.32.156")], "categories"),
            (&[("ip", "45.33.32.156"), ("categories", "")], "categories"),
            (&[("ip", "45.33.32.156"), ("categories", "0")], "categories"),
            (&[("ip", "45.33.32.156"), ("categories", "22,24")], "categories"),
            (&[("ip", "45.33.32.156"), ("categories", "ssh")], "categories"),
            (&[("categories", "22")], "ip"),
            (&[("ip", "10.0.0.1"), ("categories", "22")], "ip"),
            (&[("ip", "::1"), ("categories", "22")], "ip"),
            (&[("ip", "45.33.32.156"), ("categories", "22"), ("timestamp", &future)], "timestamp"),
            (&[("ip", "45.33.32.156"), ("categories", "22"), ("timestamp", &ancient)], "timestamp"),
            (&[("ip", "45.33.32.156"), ("categories", "22"), ("timestamp", "yesterday")], "timestamp"),
        ];
        for (form, parameter) in reports {
            let reply = post_form(&app, "/api/v2/report", Some(&key), form).await;
            abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some(parameter));
            assert_eq!(header_number(&reply, "x-ratelimit-remaining"), remaining, "{}: nothing spent", reply.what);
        }
        let nul =
            post_form(&app, "/api/v2/report", Some(&key), &[("ip", "45.33.32.156"), ("categories", "22"), ("comment", "a\0b")])
                .await;
        abuse_error(&nul, StatusCode::UNPROCESSABLE_ENTITY, Some("comment"));
        let signals = app.state.store.count_signals().await.expect("count");
        assert_eq!(signals, 0, "{}: no refused report was stored", app.label);

        let oversized = vec![b'a'; common::MAX_BODY_BYTES + 1];
        let reply = app
            .send(
                axum::http::Request::builder()
                    .method(Method::POST)
                    .uri("/api/v2/report")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header("Key", key.as_str())
                    .body(Body::from(oversized))
                    .expect("a request"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}: {}", reply.what, reply.text());
    }
}

#[tokio::test]
async fn a_report_becomes_a_signal_of_the_keys_account_with_its_comment_scrubbed_and_private() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let other = api_key(&app, &admin, "globex").await;
        let peer = common::PEER.ip().to_string();
        let comment = format!("sshd: Failed password for root from 45.33.32.156 port 22 ssh2 (seen by {peer})");
        let answer = ok(&report(&app, &key, "45.33.32.156", "18,22", &comment).await);
        assert_eq!(answer["data"]["ipAddress"], "45.33.32.156");
        assert!(answer["data"]["abuseConfidenceScore"].as_u64().is_some_and(|s| s <= 100));

        let login = format!("abuseipdb-{}", key_prefix(&app, &admin, "acme").await);
        let machine = app.state.store.machine_by_login(&login).await.expect("lookup").expect("the reporter exists");
        assert_eq!(machine.account_name.as_deref(), Some("acme"), "{}: the key's account", app.label);
        let filter = SignalFilter { machine_id: Some(login.clone()), limit: 10, ..SignalFilter::default() };
        let signals = app.state.store.list_signals(&filter).await.expect("signals");
        assert_eq!(signals.len(), 1, "{}", app.label);
        // Stored under its first category that needs a real exchange with the address.
        assert_eq!((signals[0].value.as_str(), signals[0].scenario.as_str()), ("45.33.32.156", "abuseipdb/brute-force"));
        assert!(!signals[0].message.contains(&peer), "{}: scrubbed: {}", app.label, signals[0].message);
        assert!(signals[0].message.contains("from 45.33.32.156 port 22") && signals[0].message.contains("[reporter]"));

        // The reporter cannot log in, whatever the password.
        let login_attempt = app
            .post("/v2/watchers/login", None, &serde_json::json!({"machine_id": login, "password": "!abuseipdb-reporter: logs in with no password", "scenarios": []}))
            .await;
        assert!(login_attempt.status.is_client_error(), "{}: {}", login_attempt.what, login_attempt.text());

        let own = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.156&verbose", Some(&key)).await);
        let data = &own["data"];
        assert_eq!(
            (data["totalReports"].as_u64(), data["numDistinctUsers"].as_u64()),
            (Some(1), Some(1)),
            "{}: {data}",
            app.label
        );
        assert!(data["lastReportedAt"].is_string());
        let reports = data["reports"].as_array().expect("reports");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0]["comment"].as_str(), Some(signals[0].message.as_str()), "own account sees its comment");
        assert_eq!(reports[0]["categories"], serde_json::json!([18, 22]));
        let reporter_id = reports[0]["reporterId"].as_u64().expect("a reporter id");

        let theirs = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.156&verbose=true", Some(&other)).await);
        let reports = theirs["data"]["reports"].as_array().expect("reports");
        assert_eq!(reports[0]["comment"], "", "{}: another account never sees the comment", app.label);
        assert_eq!(reports[0]["reporterId"].as_u64(), Some(reporter_id), "stable, opaque");
        assert!(!theirs.to_string().contains("acme") && !theirs.to_string().contains(&login), "no identity: {theirs}");

        // A second key of the same account reports through its own reporter; the account counts once.
        let second = app
            .post("/v1/admin/accounts/acme/api-keys", Some(&admin), &serde_json::json!({}))
            .await
            .expect_ok(StatusCode::CREATED)["key"]
            .as_str()
            .expect("a key")
            .to_string();
        ok(&report(&app, &second, "45.33.32.156", "14", "").await);
        ok(&report(&app, &other, "45.33.32.156", "14", "").await);
        let counted = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.156&maxAgeInDays=1", Some(&key)).await);
        assert_eq!(counted["data"]["totalReports"], 3, "{}: {counted}", app.label);
        assert_eq!(counted["data"]["numDistinctUsers"], 2, "{}: acme's two keys count as one user", app.label);

        // IPv6 reports are signals too.
        ok(&report(&app, &key, "2a01:4f8::1", "21", "").await);
        let filter = SignalFilter { value: Some("2a01:4f8::1".into()), limit: 10, ..SignalFilter::default() };
        assert_eq!(app.state.store.list_signals(&filter).await.expect("signals").len(), 1, "{}", app.label);
    }
}

#[tokio::test]
async fn the_same_address_from_the_same_key_within_15_minutes_is_429() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let other = api_key(&app, &admin, "globex").await;
        ok(&report(&app, &key, "45.33.32.156", "22", "first").await);
        let again = report(&app, &key, "45.33.32.156", "22", "again").await;
        let detail = abuse_error(&again, StatusCode::TOO_MANY_REQUESTS, Some("ip"));
        assert_eq!(detail, "You can only report the same IP address (`45.33.32.156`) once in 15 minutes.");
        assert!(header_number(&again, "retry-after") > 0 && again.headers.contains_key("x-ratelimit-remaining"));
        ok(&report(&app, &key, "45.33.32.157", "22", "another address").await);
        ok(&report(&app, &other, "45.33.32.156", "22", "another key").await);

        app.state.quotas.limiter.advance_clock(time::Duration::minutes(16));
        ok(&report(&app, &key, "45.33.32.156", "22", "later").await);
        assert_eq!(app.state.store.count_signals().await.expect("count"), 4, "{}", app.label);
    }
}

/// One call of endpoint `name`, each about an address not reported before.
async fn charged_call(app: &TestApp, name: &str, key: &str) -> Reply {
    let fresh = app.state.store.count_signals().await.expect("count") + 1;
    match name {
        "check" => get(app, "/api/v2/check?ipAddress=45.33.32.156", Some(key)).await,
        "blacklist" => get(app, "/api/v2/blacklist", Some(key)).await,
        "reports" => get(app, "/api/v2/reports?ipAddress=45.33.32.156", Some(key)).await,
        "check-block" => get(app, "/api/v2/check-block?network=45.33.32.0/24", Some(key)).await,
        "report" => report(app, key, &format!("45.33.32.{fresh}"), "22", "").await,
        _ => post_form(app, &format!("/report/json?key={key}&category=22&ip=45.33.33.{fresh}"), None, &[]).await,
    }
}

#[tokio::test]
async fn each_endpoint_is_charged_to_the_tier_and_refused_over_quota() {
    for app in apps().await {
        let admin = app.admin_token().await;
        for name in ["check", "check-block", "blacklist", "reports", "report", "v1"] {
            let key = api_key_on_tier(&app, &admin, &format!("tiny-{name}"), "tiny").await;
            let first = charged_call(&app, name, &key).await;
            assert_eq!(first.status, StatusCode::OK, "{name}: {}", first.text());
            assert_eq!(
                (header_number(&first, "x-ratelimit-limit"), header_number(&first, "x-ratelimit-remaining")),
                (2, 1),
                "{name}"
            );
            assert_eq!(charged_call(&app, name, &key).await.status, StatusCode::OK, "{name}");
            let refused = charged_call(&app, name, &key).await;
            assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{name}: {}", refused.text());
            assert!(header_number(&refused, "retry-after") > 0, "{name}");
            assert_eq!(header_number(&refused, "x-ratelimit-remaining"), 0, "{name}");
            assert!(header_number(&refused, "x-ratelimit-reset") > 0, "{name}");
            if name != "v1" {
                abuse_error(&refused, StatusCode::TOO_MANY_REQUESTS, None);
            } else {
                assert_eq!(refused.json()["success"], false);
            }
        }
    }
}

#[tokio::test]
async fn the_blacklist_is_the_community_list_as_the_tier_serves_it() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let capped = api_key_on_tier(&app, &admin, "small", "capped").await;
        let none = api_key_on_tier(&app, &admin, "nothing", "nolist").await;
        commit_lists(
            &app,
            vec![
                listing("45.33.32.156", "crowdsecurity/ssh-bf", Rule::Crowd),
                listing("45.33.32.157", "crowdsecurity/ssh-bf", Rule::Crowd),
                listing("2a01:4f8::1", "crowdsecurity/ssh-bf", Rule::Crowd),
            ],
        )
        .await;
        let all = ok(&get(&app, "/api/v2/blacklist", Some(&key)).await);
        let mut listed: Vec<&str> =
            all["data"].as_array().expect("data").iter().map(|e| e["ipAddress"].as_str().expect("an address")).collect();
        listed.sort();
        assert_eq!(listed, ["2a01:4f8::1", "45.33.32.156", "45.33.32.157"], "{}: {all}", app.label);
        assert!(all["meta"]["generatedAt"].is_string());
        assert!(
            all["data"]
                .as_array()
                .expect("data")
                .iter()
                .all(|e| e["abuseConfidenceScore"] == 100 && e["lastReportedAt"].is_string())
        );

        let text = get(&app, "/api/v2/blacklist?plaintext&ipVersion=4&confidenceMinimum=90", Some(&key)).await;
        assert_eq!(text.status, StatusCode::OK, "{}", text.text());
        assert!(text.headers[header::CONTENT_TYPE].to_str().expect("ascii").starts_with("text/plain"));
        assert_eq!(common::lines(&text.text()), common::lines("45.33.32.156\n45.33.32.157\n"));
        let v6 = ok(&get(&app, "/api/v2/blacklist?ipVersion=6", Some(&key)).await);
        assert_eq!(v6["data"].as_array().map(Vec::len), Some(1));
        let one = ok(&get(&app, "/api/v2/blacklist?limit=1", Some(&key)).await);
        assert_eq!(one["data"].as_array().map(Vec::len), Some(1));

        let small = ok(&get(&app, "/api/v2/blacklist", Some(&capped)).await);
        assert_eq!(small["data"].as_array().map(Vec::len), Some(2), "{}: the tier's cap", app.label);
        let more = ok(&get(&app, "/api/v2/blacklist?limit=100", Some(&capped)).await);
        assert_eq!(more["data"].as_array().map(Vec::len), Some(2), "{}: a limit cannot lift the cap", app.label);
        let capped_view: Vec<Value> = more["data"].as_array().expect("data").clone();
        for version in ["4", "6"] {
            let filtered = ok(&get(&app, &format!("/api/v2/blacklist?ipVersion={version}"), Some(&capped)).await);
            for entry in filtered["data"].as_array().expect("data") {
                assert!(capped_view.contains(entry), "{}: a filter reaches past the tier's cap: {entry}", app.label);
            }
        }
        abuse_error(&get(&app, "/api/v2/blacklist", Some(&none)).await, StatusCode::FORBIDDEN, None);
    }
}

#[tokio::test]
async fn the_v1_report_answers_as_v1_did_and_stores_a_signal() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let reply = post_form(
            &app,
            "/report/json",
            None,
            &[("key", &key), ("category", "18,22"), ("ip", "45.33.32.156"), ("comment", "sshd")],
        )
        .await;
        assert_eq!(ok(&reply), serde_json::json!({"ip": "45.33.32.156", "success": true}), "{}", app.label);
        let query = post_form(&app, &format!("/report/json?key={key}&category=14&ip=2a01:4f8::2"), None, &[]).await;
        assert_eq!(ok(&query)["success"], true);
        let filter = SignalFilter { limit: 10, ..SignalFilter::default() };
        let scenarios: Vec<String> =
            app.state.store.list_signals(&filter).await.expect("signals").into_iter().map(|s| s.scenario).collect();
        assert_eq!(scenarios, ["abuseipdb/brute-force", "abuseipdb/port-scan"], "{}", app.label);

        let bad = post_form(&app, "/report/json", None, &[("key", &key), ("category", "99"), ("ip", "45.33.32.157")]).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text());
        let body = bad.json();
        assert_eq!((body["success"].as_bool(), body["ip"].as_str()), (Some(false), Some("45.33.32.157")));
        assert!(body["message"].as_str().is_some_and(|m| m.contains("99")), "{body}");
    }
}

#[tokio::test]
async fn reports_are_paged_newest_first_with_comments_only_for_their_account() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let mut keys = Vec::new();
        for account in ["acme", "globex", "initech"] {
            let key = api_key(&app, &admin, account).await;
            ok(&report(&app, &key, "45.33.32.156", "22", &format!("seen by {account}")).await);
            keys.push(key);
        }
        let first = ok(&get(&app, "/api/v2/reports?ipAddress=45.33.32.156&perPage=2", Some(&keys[0])).await);
        let data = &first["data"];
        assert_eq!(
            (data["total"].as_u64(), data["count"].as_u64(), data["lastPage"].as_u64()),
            (Some(3), Some(2), Some(2)),
            "{}: {data}",
            app.label
        );
        assert!(
            data["nextPageUrl"]
                .as_str()
                .is_some_and(|u| u.ends_with("/api/v2/reports?ipAddress=45.33.32.156&maxAgeInDays=30&page=2&perPage=2")),
            "{data}"
        );
        assert!(data["previousPageUrl"].is_null());
        let second = ok(&get(&app, "/api/v2/reports?ipAddress=45.33.32.156&perPage=2&page=2", Some(&keys[0])).await);
        let results = second["data"]["results"].as_array().expect("results");
        assert_eq!(results.len(), 1, "{}", app.label);
        assert_eq!(results[0]["comment"], "seen by acme", "{}: the oldest is acme's own, shown to acme", app.label);
        assert!(second["data"]["nextPageUrl"].is_null() && second["data"]["previousPageUrl"].is_string());
        let comments: Vec<&str> =
            data["results"].as_array().expect("results").iter().map(|r| r["comment"].as_str().expect("a comment")).collect();
        assert_eq!(comments, ["", ""], "{}: other accounts' comments are hidden", app.label);

        let empty = ok(&get(&app, "/api/v2/reports?ipAddress=45.33.32.200", Some(&keys[0])).await);
        assert_eq!((empty["data"]["total"].as_u64(), empty["data"]["lastPage"].as_u64()), (Some(0), Some(1)));
        for (query, parameter) in [
            ("ipAddress=45.33.32.156&page=0", "page"),
            ("ipAddress=45.33.32.156&perPage=101", "perPage"),
            ("ipAddress=45.33.32.156&page=101&perPage=100", "page"),
            ("page=1", "ipAddress"),
        ] {
            let reply = get(&app, &format!("/api/v2/reports?{query}"), Some(&keys[0])).await;
            abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some(parameter));
        }
    }
}

#[tokio::test]
async fn a_disabled_or_impersonated_reporter_refuses_reports() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        ok(&report(&app, &key, "45.33.32.156", "22", "").await);
        let login = format!("abuseipdb-{}", key_prefix(&app, &admin, "acme").await);
        let disable = |disabled: bool| {
            common::request(
                Method::PUT,
                &format!("/v1/admin/machines/{login}/disabled"),
                Some(&admin),
                &[],
                Body::from(serde_json::json!({"disabled": disabled}).to_string()),
            )
        };
        let done = app.send(disable(true)).await;
        assert!(done.status.is_success(), "{}: {}", done.what, done.text());
        abuse_error(&report(&app, &key, "45.33.32.157", "22", "").await, StatusCode::FORBIDDEN, None);
        let done = app.send(disable(false)).await;
        assert!(done.status.is_success(), "{}: {}", done.what, done.text());
        ok(&report(&app, &key, "45.33.32.157", "22", "").await);

        // A machine registered under the name a key's reporter would take is never used as it.
        let other = api_key(&app, &admin, "globex").await;
        let squatted = format!("abuseipdb-{}", key_prefix(&app, &admin, "globex").await);
        app.machine(&squatted).await;
        let refused = report(&app, &other, "45.33.32.156", "22", "").await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}: {}", refused.what, refused.text());
        let filter = SignalFilter { machine_id: Some(squatted), limit: 10, ..SignalFilter::default() };
        assert!(app.state.store.list_signals(&filter).await.expect("signals").is_empty(), "{}", app.label);
    }
}

#[tokio::test]
async fn check_block_lists_the_reported_addresses_of_a_small_ipv4_network() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let other = api_key(&app, &admin, "globex").await;
        ok(&report(&app, &key, "45.33.32.156", "22", "").await);
        ok(&report(&app, &other, "45.33.32.156", "22", "").await);
        ok(&report(&app, &key, "45.33.32.7", "14", "").await);
        ok(&report(&app, &key, "45.33.33.1", "14", "outside the network").await);
        let block = ok(&get(&app, "/api/v2/check-block?network=45.33.32.77/24", Some(&key)).await);
        let data = &block["data"];
        assert_eq!(data["networkAddress"], "45.33.32.0", "{}: {data}", app.label);
        assert_eq!(
            (data["netmask"].as_str(), data["minAddress"].as_str(), data["maxAddress"].as_str()),
            (Some("255.255.255.0"), Some("45.33.32.1"), Some("45.33.32.254"))
        );
        assert_eq!((data["numPossibleHosts"].as_u64(), data["addressSpaceDesc"].as_str()), (Some(254), Some("Internet")));
        let reported: Vec<(&str, u64)> = data["reportedAddress"]
            .as_array()
            .expect("addresses")
            .iter()
            .map(|a| (a["ipAddress"].as_str().expect("an address"), a["numReports"].as_u64().expect("a count")))
            .collect();
        assert_eq!(reported, [("45.33.32.7", 1), ("45.33.32.156", 2)], "{}: in address order", app.label);
        assert!(data["reportedAddress"][0]["mostRecentReport"].is_string());
        let single = ok(&get(&app, "/api/v2/check-block?network=45.33.33.1/32", Some(&key)).await);
        assert_eq!(single["data"]["numPossibleHosts"], 1);
        assert_eq!(single["data"]["reportedAddress"].as_array().map(Vec::len), Some(1));
        for query in
            ["", "?network=45.33.0.0/16", "?network=2a01:4f8::/64", "?network=nonsense", "?network=45.33.32.0/24&maxAgeInDays=0"]
        {
            let reply = get(&app, &format!("/api/v2/check-block{query}"), Some(&key)).await;
            let parameter = if query.contains("maxAgeInDays") { "maxAgeInDays" } else { "network" };
            abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some(parameter));
        }
    }
}
