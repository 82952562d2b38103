//! In-process tests of the AbuseIPDB dialect (`/api/v2/check`, `/api/v2/report`,
//! `/api/v2/bulk-report`, `/api/v2/clear-address`, `/api/v2/blacklist`, the v1 `/report/json`)
//! on both backends: keys in the `Key` header and the legacy `key` parameter, AbuseIPDB's error
//! body and statuses (401, 413, 422, 429), quota per endpoint with its headers, the 15-minute rule
//! on the quota clock, reports stored as signals of the key's account with their comments
//! scrubbed and shown only to that account, bulk files line by line, clearing only the key's own
//! reports, and the blacklist as the key's tier serves the community list.

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

/// The header line of a bulk-report file.
const HEADER: &str = "IP,Categories,ReportDate,Comment\n";

/// The multipart body boundary the tests use.
const BOUNDARY: &str = "palisade-test-boundary";

/// A multipart/form-data body of `(field name, file name, content)` parts.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if let Some(file) = file {
            body.extend_from_slice(format!("; filename=\"{file}\"\r\nContent-Type: text/csv").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The content type of the tests' multipart bodies.
fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// `POST uri` with `body` as it is, of `content_type`.
async fn post_raw(app: &TestApp, uri: &str, key: Option<&str>, content_type: &str, body: Vec<u8>) -> Reply {
    let mut builder = axum::http::Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, "application/json");
    if let Some(key) = key {
        builder = builder.header("Key", key);
    }
    app.send(builder.body(Body::from(body)).expect("a request")).await
}

/// A bulk report of `csv` as AbuseIPDB's clients send it: the file in the multipart field `csv`.
async fn bulk(app: &TestApp, key: Option<&str>, csv: &str) -> Reply {
    let body = multipart(&[("csv", Some("report.csv"), csv.as_bytes())]);
    post_raw(app, "/api/v2/bulk-report", key, &multipart_type(), body).await
}

/// `DELETE path` with the key in the `Key` header.
async fn delete(app: &TestApp, path: &str, key: Option<&str>) -> Reply {
    let mut builder = axum::http::Request::builder().method(Method::DELETE).uri(path).header(header::ACCEPT, "application/json");
    if let Some(key) = key {
        builder = builder.header("Key", key);
    }
    app.send(builder.body(Body::empty()).expect("a request")).await
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
        "bulk-report" => bulk(app, Some(key), &format!("{HEADER}45.33.34.{fresh},22,,\n")).await,
        "clear-address" => delete(app, "/api/v2/clear-address?ipAddress=45.33.32.156", Some(key)).await,
        _ => post_form(app, &format!("/report/json?key={key}&category=22&ip=45.33.33.{fresh}"), None, &[]).await,
    }
}

#[tokio::test]
async fn each_endpoint_is_charged_to_the_tier_and_refused_over_quota() {
    for app in apps().await {
        let admin = app.admin_token().await;
        for name in ["check", "check-block", "blacklist", "reports", "report", "bulk-report", "clear-address", "v1"] {
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
        abuse_error(&bulk(&app, Some(&key), &format!("{HEADER}45.33.32.157,22,,\n")).await, StatusCode::FORBIDDEN, None);
        // Taking its own reports back stays open to the key.
        let cleared = ok(&delete(&app, "/api/v2/clear-address?ipAddress=45.33.32.156", Some(&key)).await);
        assert_eq!(cleared["data"]["numReportsDeleted"], 1, "{}", app.label);
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

/// The values of the signals stored for `login`, in id order.
async fn reported_values(app: &TestApp, login: &str) -> Vec<String> {
    let filter = SignalFilter { machine_id: Some(login.to_string()), limit: 20_000, ..SignalFilter::default() };
    app.state.store.list_signals(&filter).await.expect("signals").into_iter().map(|s| s.value).collect()
}

#[tokio::test]
async fn a_bulk_file_becomes_signals_of_the_keys_reporter_in_one_call() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let peer = common::PEER.ip().to_string();
        let earlier = (OffsetDateTime::now_utc() - time::Duration::hours(3)).format(&Rfc3339).expect("a time");
        let csv = format!(
            "{HEADER}45.33.32.156,\"18,22\",{earlier},\"sshd: Failed password, from 45.33.32.156 to {peer}\"\r\n\
             2a01:4f8::1,21,,\"GET /wp-login.php\"\n\
             \n\
             45.33.32.157,14,{earlier},\n"
        );
        let answer = ok(&bulk(&app, Some(&key), &csv).await);
        assert_eq!(answer, serde_json::json!({"data": {"savedReports": 3, "invalidReports": []}}), "{}", app.label);

        let login = format!("abuseipdb-{}", key_prefix(&app, &admin, "acme").await);
        assert_eq!(reported_values(&app, &login).await, ["45.33.32.156", "2a01:4f8::1", "45.33.32.157"], "{}", app.label);
        let filter = SignalFilter { value: Some("45.33.32.156".into()), limit: 10, ..SignalFilter::default() };
        let stored = app.state.store.list_signals(&filter).await.expect("signals");
        assert_eq!(stored[0].scenario, "abuseipdb/brute-force", "{}", app.label);
        assert!(stored[0].message.contains("Failed password, from 45.33.32.156") && !stored[0].message.contains(&peer));
        let checked = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.156&verbose", Some(&key)).await);
        let reports = checked["data"]["reports"].as_array().expect("reports");
        assert_eq!(reports[0]["categories"], serde_json::json!([18, 22]), "{}", app.label);
        assert_eq!(reports[0]["reportedAt"].as_str().map(|t| t.get(..13)), Some(earlier.get(..13)), "the ReportDate is kept");

        // The same addresses again within 15 minutes are refused, line by line.
        let again = ok(&bulk(&app, Some(&key), &format!("{HEADER}45.33.32.156,22,,\n45.33.32.158,22,,\n")).await);
        assert_eq!(again["data"]["savedReports"], 1, "{}: {again}", app.label);
        assert_eq!(again["data"]["invalidReports"][0]["rowNumber"], 1);
    }
}

#[tokio::test]
async fn bad_lines_are_listed_with_their_numbers_and_the_rest_is_stored() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        ok(&report(&app, &key, "45.33.32.160", "22", "reported a minute ago").await);
        let future = (OffsetDateTime::now_utc() + time::Duration::hours(2)).format(&Rfc3339).expect("a time");
        let ancient = (OffsetDateTime::now_utc() - time::Duration::days(3651)).format(&Rfc3339).expect("a time");
        let lines = [
            "45.33.32.156,\"18,22\",,good".to_string(),
            "45.33.32.999,22,,bad address".into(),
            "10.1.2.3,22,,private".into(),
            "45.33.32.157,99,,unknown category".into(),
            "45.33.32.158,ssh,,not a number".into(),
            "45.33.32.159,,,no category".into(),
            format!("45.33.32.161,22,{future},in the future"),
            format!("45.33.32.162,22,{ancient},older than retention"),
            "45.33.32.163,22,yesterday,not a date".into(),
            "45.33.32.156,22,,duplicate in the file".into(),
            "45.33.32.160,22,,within 15 minutes of the single report".into(),
            "45.33.32.164,22".into(),
            "45.33.32.165,22,,\"a\0b\"".into(),
            "2a01:4f8::2,21,,good v6".into(),
        ];
        let csv = format!("{HEADER}{}\n", lines.join("\n"));
        let answer = ok(&bulk(&app, Some(&key), &csv).await);
        let data = &answer["data"];
        assert_eq!(data["savedReports"], 2, "{}: {answer}", app.label);
        let refused: Vec<(u64, &str)> = data["invalidReports"]
            .as_array()
            .expect("invalid reports")
            .iter()
            .map(|r| (r["rowNumber"].as_u64().expect("a number"), r["input"].as_str().expect("an input")))
            .collect();
        assert_eq!(
            refused,
            [
                (2, "45.33.32.999"),
                (3, "10.1.2.3"),
                (4, "45.33.32.157"),
                (5, "45.33.32.158"),
                (6, "45.33.32.159"),
                (7, "45.33.32.161"),
                (8, "45.33.32.162"),
                (9, "45.33.32.163"),
                (10, "45.33.32.156"),
                (11, "45.33.32.160"),
                (12, "45.33.32.164"),
                (13, "45.33.32.165"),
            ],
            "{}: {answer}",
            app.label
        );
        let errors: Vec<&str> = data["invalidReports"]
            .as_array()
            .expect("invalid reports")
            .iter()
            .map(|r| r["error"].as_str().unwrap_or(""))
            .collect();
        assert!(errors[1].contains("public"), "{}", errors[1]);
        assert!(errors[5].contains("in the future"), "{}", errors[5]);
        assert!(errors[8].starts_with("Duplicate IP") && errors[9].starts_with("Duplicate IP"), "{errors:?}");
        assert!(errors[9].contains("15 minutes"), "{}", errors[9]);
        let login = format!("abuseipdb-{}", key_prefix(&app, &admin, "acme").await);
        assert_eq!(reported_values(&app, &login).await, ["45.33.32.160", "45.33.32.156", "2a01:4f8::2"], "{}", app.label);
    }
}

#[tokio::test]
async fn refused_files_are_4xx_in_abuseipdbs_shape_store_nothing_and_cost_nothing() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let empty = bulk(&app, Some(&key), HEADER).await;
        assert_eq!(ok(&empty), serde_json::json!({"data": {"savedReports": 0, "invalidReports": []}}), "{}", app.label);
        let remaining = header_number(&empty, "x-ratelimit-remaining");

        let too_many = format!("{HEADER}{}", "45.33.32.156,22,,\n".repeat(10_001));
        let reply = bulk(&app, Some(&key), &too_many).await;
        assert!(abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some("csv")).contains("10000"), "{}", reply.text());
        assert_eq!(header_number(&reply, "x-ratelimit-remaining"), remaining, "{}: nothing spent", app.label);
        let exactly = format!("{HEADER}{}", "45.33.32.156,22,,\n".repeat(10_000));
        let full = ok(&bulk(&app, Some(&key), &exactly).await);
        assert_eq!(full["data"]["savedReports"], 1, "{}: one address, 9,999 duplicates", app.label);
        assert_eq!(full["data"]["invalidReports"].as_array().map(Vec::len), Some(9_999));
        let remaining = remaining - 1;

        // Just over 2 MB of file, within the route's body limit: refused while it is read.
        let padding = "x".repeat(1000);
        let mut large = HEADER.to_string();
        while large.len() <= 2 * 1024 * 1024 {
            large.push_str(&format!("45.33.32.157,22,,{padding}\n"));
        }
        let reply = bulk(&app, Some(&key), &large).await;
        abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some("csv"));
        assert_eq!(header_number(&reply, "x-ratelimit-remaining"), remaining, "{}: nothing spent", app.label);
        // A body past the route's limit is 413, still in AbuseIPDB's shape.
        let huge = multipart(&[("padding", None, &vec![b'x'; 3 * 1024 * 1024]), ("csv", Some("report.csv"), HEADER.as_bytes())]);
        let reply = post_raw(&app, "/api/v2/bulk-report", Some(&key), &multipart_type(), huge).await;
        abuse_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, None);

        let no_csv = multipart(&[("file", Some("report.csv"), b"IP,Categories,ReportDate,Comment\n45.33.32.158,22,,\n")]);
        let reply = post_raw(&app, "/api/v2/bulk-report", Some(&key), &multipart_type(), no_csv).await;
        assert!(abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some("csv")).contains("csv"));
        let form = post_form(&app, "/api/v2/bulk-report", Some(&key), &[("csv", "IP,Categories,ReportDate,Comment")]).await;
        assert!(abuse_error(&form, StatusCode::UNPROCESSABLE_ENTITY, Some("csv")).contains("multipart"), "{}", form.text());
        for bad in [
            "45.33.32.158,22,,\n",
            "",
            "IP,Categories\n45.33.32.158,22\n",
            "IP,Categories,ReportDate,Comment\n45.33.32.158,\"22,,\n",
        ] {
            abuse_error(&bulk(&app, Some(&key), bad).await, StatusCode::UNPROCESSABLE_ENTITY, Some("csv"));
        }
        let latin1 = multipart(&[("csv", Some("report.csv"), b"IP,Categories,ReportDate,Comment\n45.33.32.158,22,,caf\xe9\n")]);
        let reply = post_raw(&app, "/api/v2/bulk-report", Some(&key), &multipart_type(), latin1).await;
        assert!(abuse_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, Some("csv")).contains("UTF-8"));
        abuse_error(&bulk(&app, None, HEADER).await, StatusCode::UNAUTHORIZED, None);
        abuse_error(&bulk(&app, Some("pal_nonsense"), HEADER).await, StatusCode::UNAUTHORIZED, None);
        // The legacy `key` query parameter works too.
        let file = multipart(&[("csv", Some("report.csv"), format!("{HEADER}45.33.32.159,22,,\n").as_bytes())]);
        let by_query = ok(&post_raw(&app, &format!("/api/v2/bulk-report?key={key}"), None, &multipart_type(), file).await);
        assert_eq!(by_query["data"]["savedReports"], 1, "{}", app.label);

        let standing = get(&app, "/api/v2/check?ipAddress=45.33.32.156", Some(&key)).await;
        assert_eq!(header_number(&standing, "x-ratelimit-remaining"), remaining - 2, "{}: refused files cost nothing", app.label);
        assert_eq!(app.state.store.count_signals().await.expect("count"), 2, "{}: nothing of the refused files", app.label);
    }
}

#[tokio::test]
async fn a_bulk_report_over_the_reporters_daily_bytes_stores_nothing_and_is_429() {
    let apps = apps_with(|config| {
        tiers(config);
        config.ingest.signal_bytes_per_machine_per_day = 64 * 1024;
    })
    .await;
    for app in apps {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        // 200 reports of about 1 kB each: over the 64 kB allowance together.
        let lines: String =
            (1..=200).map(|i| format!("45.33.{}.{},22,,\"{}\"\n", 32 + i / 200, i % 200 + 1, "log line ".repeat(100))).collect();
        let reply = bulk(&app, Some(&key), &format!("{HEADER}{lines}")).await;
        abuse_error(&reply, StatusCode::TOO_MANY_REQUESTS, None);
        assert!(header_number(&reply, "retry-after") > 0, "{}", app.label);
        assert_eq!(app.state.store.count_signals().await.expect("count"), 0, "{}: all or nothing", app.label);
        let small = ok(&bulk(&app, Some(&key), &format!("{HEADER}45.33.32.1,22,,short\n")).await);
        assert_eq!(small["data"]["savedReports"], 1, "{}: within the allowance", app.label);
    }
}

#[tokio::test]
async fn clear_address_deletes_only_the_keys_own_reports_of_that_address() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = api_key(&app, &admin, "acme").await;
        let other = api_key(&app, &admin, "globex").await;
        let never = api_key(&app, &admin, "initech").await;
        ok(&report(&app, &key, "45.33.32.156", "22", "first").await);
        ok(&report(&app, &key, "45.33.32.157", "22", "another address").await);
        ok(&report(&app, &other, "45.33.32.156", "22", "another key").await);
        app.state.quotas.limiter.advance_clock(time::Duration::minutes(16));
        ok(&report(&app, &key, "45.33.32.156", "22", "again").await);

        let cleared = ok(&delete(&app, "/api/v2/clear-address?ipAddress=45.33.32.156", Some(&key)).await);
        assert_eq!(cleared, serde_json::json!({"data": {"numReportsDeleted": 2}}), "{}", app.label);
        let login = |prefix: String| format!("abuseipdb-{prefix}");
        let mine = login(key_prefix(&app, &admin, "acme").await);
        let theirs = login(key_prefix(&app, &admin, "globex").await);
        assert_eq!(reported_values(&app, &mine).await, ["45.33.32.157"], "{}: its other address stays", app.label);
        assert_eq!(reported_values(&app, &theirs).await, ["45.33.32.156"], "{}: another key's report stays", app.label);
        let checked = ok(&get(&app, "/api/v2/check?ipAddress=45.33.32.156", Some(&key)).await);
        assert_eq!(checked["data"]["totalReports"], 1, "{}: {checked}", app.label);
        let pending = app.state.store.pending_consensus_requests().await.expect("pending");
        assert_eq!(pending.len(), 1, "{}: the withdrawal is queued for the consensus worker", app.label);

        // Nothing left to delete, a key that never reported, an address never reported: 0.
        for (path, who) in [
            ("/api/v2/clear-address?ipAddress=45.33.32.156", &key),
            ("/api/v2/clear-address?ipAddress=45.33.32.156", &never),
            ("/api/v2/clear-address?ipAddress=2a01:4f8::9", &key),
            ("/api/v2/clear-address?ipAddress=10.1.2.3", &key),
        ] {
            let none = ok(&delete(&app, path, Some(who)).await);
            assert_eq!(none["data"]["numReportsDeleted"], 0, "{}: {path}", app.label);
        }
        assert!(
            app.state.store.machine_by_login(&login(key_prefix(&app, &admin, "initech").await)).await.expect("read").is_none()
        );
        assert_eq!(app.state.store.pending_consensus_requests().await.expect("pending").len(), 1, "{}", app.label);

        // Cleared reports no longer hold back a new one (AbuseIPDB's rule counts stored reports).
        ok(&report(&app, &key, "45.33.32.156", "22", "after clearing").await);
        ok(&report(&app, &key, "2a01:4f8::9", "21", "v6").await);
        let v6 = ok(&delete(&app, &format!("/api/v2/clear-address?ipAddress={}", "2a01:4f8:0:0::9"), Some(&key)).await);
        assert_eq!(v6["data"]["numReportsDeleted"], 1, "{}: the address in any notation", app.label);

        for (path, parameter) in [
            ("/api/v2/clear-address", "ipAddress"),
            ("/api/v2/clear-address?ipAddress=", "ipAddress"),
            ("/api/v2/clear-address?ipAddress=45.33.32.999", "ipAddress"),
            ("/api/v2/clear-address?ipAddress=45.33.32.0/24", "ipAddress"),
        ] {
            abuse_error(&delete(&app, path, Some(&key)).await, StatusCode::UNPROCESSABLE_ENTITY, Some(parameter));
        }
        abuse_error(&delete(&app, "/api/v2/clear-address?ipAddress=45.33.32.156", None).await, StatusCode::UNAUTHORIZED, None);
    }
}
