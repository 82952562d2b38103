//! In-process API tests: every endpoint through the real router and state, on every available
//! backend where the database takes part. Happy paths replay the CrowdSec 1.4.6 fixture bodies as
//! CrowdSec sends them; bad input (malformed JSON, wrong types, invalid and reserved addresses,
//! oversized and gzip-bomb bodies, bad tokens and credentials) must get the right 4xx with the
//! JSON error body, never a 500.

use crate::common;
use palisade_server::engine::Rule;

use std::io::Write;

use axum::http::{Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{MACHINE_PASSWORD, MAX_BODY_BYTES, TestApp, apps, apps_with, fixture, fixture_json, signal, sqlite_app};
use flate2::Compression;
use flate2::write::GzEncoder;
use palisade_server::auth::jwt::JwtKeys;
use palisade_server::config::RegistrationPolicy;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The login the fixtures were recorded with (`cscli capi register` output).
const FIXTURE_LOGIN: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4sV1RGoaK1b5hzliP";
/// Stands in for the fixtures' redacted 64-character password.
const FIXTURE_PASSWORD: &str = "Kq3vN8xTzR1mWb7YcH2pLd9sFg4jA6eU0oIiXn5tBwMkZyVrQaCuEhGlSfDjPe1x";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip to memory");
    encoder.finish().expect("gzip to memory")
}

/// A fixture body with its redacted password replaced by a real-shaped one.
fn with_password(mut body: Value, password: &str) -> Value {
    body["password"] = json!(password);
    body
}

/// The fixture signal batch with its documentation-range attackers moved to public addresses.
fn public_signals(name: &str) -> Value {
    serde_json::from_str(&fixture(name).replace("203.0.113.", "45.33.32.")).expect("fixture is JSON")
}

async fn register(app: &TestApp, version: &str, login: &str, password: &str) -> common::Reply {
    app.post(&format!("/{version}/watchers"), None, &json!({"machine_id": login, "password": password})).await
}

async fn login(app: &TestApp, login: &str, password: &str, scenarios: &[&str]) -> common::Reply {
    app.post("/v2/watchers/login", None, &json!({"machine_id": login, "password": password, "scenarios": scenarios})).await
}

async fn admin_machine(app: &TestApp, admin: &str, login: &str) -> Value {
    app.get(&format!("/v1/admin/machines/{login}"), Some(admin)).await.expect_ok(StatusCode::OK)
}

async fn admin_signals(app: &TestApp, admin: &str, query: &str) -> Value {
    app.get(&format!("/v1/admin/signals{query}"), Some(admin)).await.expect_ok(StatusCode::OK)
}

/// An enrollment key for a new account, through the admin API.
async fn enroll_key(app: &TestApp, admin: &str, account: &str) -> String {
    app.post("/v1/admin/accounts", Some(admin), &json!({"name": account})).await.expect_ok(StatusCode::CREATED);
    let created = app
        .post(&format!("/v1/admin/accounts/{account}/enroll-keys"), Some(admin), &json!({}))
        .await
        .expect_ok(StatusCode::CREATED);
    created["key"].as_str().expect("key is a string").to_string()
}

fn unverified_payload(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a three-part JWT: {token}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload is base64url")).expect("payload is JSON")
}

// ---------------------------------------------------------------------------------------------
// POST /v{2,3}/watchers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn register_fixture_body_returns_200_ok_on_v2_and_v3() {
    for app in apps().await {
        let body = with_password(fixture_json("register.request.json"), FIXTURE_PASSWORD);
        let reply = app.post("/v2/watchers", None, &body).await;
        assert_eq!(reply.expect_ok(StatusCode::OK), json!({"message": "OK"}));
        let reply = register(&app, "v3", "v3-machine-0123456789", FIXTURE_PASSWORD).await;
        assert_eq!(reply.expect_ok(StatusCode::OK), json!({"message": "OK"}));
    }
}

#[tokio::test]
async fn register_again_with_same_password_returns_200() {
    for app in apps().await {
        register(&app, "v2", FIXTURE_LOGIN, FIXTURE_PASSWORD).await.expect_ok(StatusCode::OK);
        register(&app, "v2", FIXTURE_LOGIN, FIXTURE_PASSWORD).await.expect_ok(StatusCode::OK);
    }
}

#[tokio::test]
async fn register_again_with_different_password_returns_409() {
    for app in apps().await {
        app.machine(FIXTURE_LOGIN).await;
        let body = register(&app, "v2", FIXTURE_LOGIN, FIXTURE_PASSWORD).await.expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(body["message"], "User already registered.");
    }
}

#[tokio::test]
async fn register_when_registration_is_closed_returns_403() {
    for app in apps_with(|c| c.registration.policy = RegistrationPolicy::Closed).await {
        register(&app, "v2", FIXTURE_LOGIN, FIXTURE_PASSWORD).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
        register(&app, "v3", FIXTURE_LOGIN, FIXTURE_PASSWORD).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
        let admin = app.admin_token().await;
        let machines = app.get("/v1/admin/machines", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(machines, json!([]), "{}", app.label);
    }
}

#[tokio::test]
async fn register_with_invalid_machine_id_or_short_password_returns_422_with_fields() {
    let app = sqlite_app().await;
    let body = register(&app, "v2", "not a valid id!", "short")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = body["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["machine_id", "password"]);
    register(&app, "v2", &"a".repeat(129), FIXTURE_PASSWORD)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    register(&app, "v2", "", FIXTURE_PASSWORD).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

// ---------------------------------------------------------------------------------------------
// POST /v{2,3}/watchers/login
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_with_fixture_bodies_returns_code_rfc3339_expire_and_jwt_with_exp() {
    for app in apps().await {
        register(&app, "v2", FIXTURE_LOGIN, FIXTURE_PASSWORD).await.expect_ok(StatusCode::OK);
        for (path, name) in [
            ("/v2/watchers/login", "login.request.lapi-startup-empty-scenarios.json"),
            ("/v3/watchers/login", "login.request.cscli-capi-status.json"),
        ] {
            let mut body = with_password(fixture_json(name), FIXTURE_PASSWORD);
            body["machine_id"] = json!(FIXTURE_LOGIN);
            let answer = app.post(path, None, &body).await.expect_ok(StatusCode::OK);
            assert_eq!(answer["code"], 200);
            let expire = OffsetDateTime::parse(answer["expire"].as_str().unwrap(), &Rfc3339).expect("expire is RFC 3339");
            assert!(expire > OffsetDateTime::now_utc(), "{}: token already expired", app.label);
            let token = answer["token"].as_str().unwrap();
            let claims = unverified_payload(token);
            assert_eq!(claims["exp"].as_i64(), Some(expire.unix_timestamp()), "{claims}");
            assert_eq!(claims["sub"], FIXTURE_LOGIN);
            assert!(claims.get("organization_id").is_none(), "would start PAPI on newer CrowdSec: {claims}");
            // The token works.
            app.get("/v2/decisions/stream?startup=true", Some(token)).await.expect_ok(StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn login_remembers_the_latest_scenarios() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine(FIXTURE_LOGIN).await;
        // CrowdSec's first login on a fresh install carries no scenarios; the refresh carries them all.
        let empty = with_password(fixture_json("login.request.lapi-startup-empty-scenarios.json"), MACHINE_PASSWORD);
        let mut refresh = with_password(fixture_json("login.request.lapi-token-refresh.json"), MACHINE_PASSWORD);
        for body in [empty, refresh.clone()] {
            let mut body = body;
            body["machine_id"] = json!(machine.login);
            app.post("/v2/watchers/login", None, &body).await.expect_ok(StatusCode::OK);
        }
        let view = admin_machine(&app, &admin, &machine.login).await;
        let mut expected: Vec<String> =
            refresh["scenarios"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        expected.sort();
        let mut stored: Vec<String> = serde_json::from_value(view["scenarios"].clone()).unwrap();
        stored.sort();
        assert_eq!(stored, expected, "{}", app.label);
        assert!(view["last_login_at"].is_string(), "{view}");

        // The same list in another order (CrowdSec does not sort it) changes nothing.
        refresh["machine_id"] = json!(machine.login);
        refresh["scenarios"].as_array_mut().unwrap().reverse();
        app.post("/v2/watchers/login", None, &refresh).await.expect_ok(StatusCode::OK);
        let mut again: Vec<String> =
            serde_json::from_value(admin_machine(&app, &admin, &machine.login).await["scenarios"].clone()).unwrap();
        again.sort();
        assert_eq!(again, expected);
    }
}

#[tokio::test]
async fn login_with_wrong_password_returns_401() {
    for app in apps().await {
        let machine = app.machine("web-01").await;
        let body = login(&app, &machine.login, "wrong-password-wrong-password", &[]).await;
        let body = body.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(body["message"], "The machine_id or password is incorrect");
    }
}

#[tokio::test]
async fn login_with_unknown_machine_returns_401() {
    for app in apps().await {
        login(&app, FIXTURE_LOGIN, FIXTURE_PASSWORD, &[]).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
}

#[tokio::test]
async fn login_with_empty_or_oversized_credentials_returns_401() {
    let app = sqlite_app().await;
    login(&app, "", FIXTURE_PASSWORD, &[]).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    login(&app, &"a".repeat(129), FIXTURE_PASSWORD, &[]).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    login(&app, FIXTURE_LOGIN, &"p".repeat(257), &[]).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn login_with_invalid_scenario_names_returns_422() {
    let app = sqlite_app().await;
    let body = login(&app, FIXTURE_LOGIN, FIXTURE_PASSWORD, &["crowdsecurity/ssh-bf", "has space"]).await;
    let body = body.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["fields"][0]["field"], "scenarios[1]");
    login(&app, FIXTURE_LOGIN, FIXTURE_PASSWORD, &[""]).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

// ---------------------------------------------------------------------------------------------
// Machine tokens
// ---------------------------------------------------------------------------------------------

/// Every endpoint that needs a machine token, with a body it would otherwise accept.
fn machine_endpoints() -> Vec<(Method, &'static str, Value)> {
    let enroll = json!({"attachment_key": "0123456789abcdefKEY", "name": "", "tags": [], "overwrite": false});
    vec![
        (Method::POST, "/v2/watchers/enroll", enroll.clone()),
        (Method::POST, "/v3/watchers/enroll", enroll),
        (Method::POST, "/v2/signals", json!([signal("45.33.32.156", "crowdsecurity/ssh-bf")])),
        (Method::POST, "/v3/signals", json!([signal("45.33.32.156", "crowdsecurity/ssh-bf")])),
        (Method::POST, "/v2/metrics/", fixture_json("metrics.request.json")),
        (Method::POST, "/v2/metrics", fixture_json("metrics.request.json")),
        (Method::POST, "/v3/metrics/", fixture_json("metrics.request.json")),
        (Method::POST, "/v3/usage-metrics", json!({"lapi": {"version": "v1.6.3"}})),
        (Method::GET, "/v2/decisions/stream?startup=true", Value::Null),
        (Method::GET, "/v3/decisions/stream?startup=true", Value::Null),
    ]
}

async fn call_with_authorization(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: &Value,
    authorization: Option<&str>,
) -> common::Reply {
    let headers: Vec<(&str, &str)> = authorization.map(|a| vec![("authorization", a)]).unwrap_or_default();
    let body = if body.is_null() { axum::body::Body::empty() } else { axum::body::Body::from(body.to_string()) };
    app.send(common::request(method.clone(), path, None, &headers, body)).await
}

#[tokio::test]
async fn machine_endpoints_without_token_return_401() {
    let app = sqlite_app().await;
    for (method, path, body) in machine_endpoints() {
        call_with_authorization(&app, &method, path, &body, None)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
        // 1.4.6 sends `Bearer ` with an empty token when a login answer had none.
        call_with_authorization(&app, &method, path, &body, Some("Bearer "))
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    }
}

#[tokio::test]
async fn machine_endpoints_with_expired_token_return_401() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let issued_at = OffsetDateTime::now_utc() - time::Duration::days(1);
    let expired = app.state.jwt.issue(machine.key, &machine.login, issued_at).unwrap().token;
    assert!(unverified_payload(&expired)["exp"].as_i64().unwrap() < OffsetDateTime::now_utc().unix_timestamp());
    for (method, path, body) in machine_endpoints() {
        let authorization = format!("Bearer {expired}");
        call_with_authorization(&app, &method, path, &body, Some(&authorization))
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

#[tokio::test]
async fn machine_endpoints_with_token_signed_by_another_key_return_401() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let other = JwtKeys::new(b"some-other-network-secret-0123456789", time::Duration::hours(1));
    let forged = other.issue(machine.key, &machine.login, OffsetDateTime::now_utc()).unwrap().token;
    for (method, path, body) in machine_endpoints() {
        let authorization = format!("Bearer {forged}");
        call_with_authorization(&app, &method, path, &body, Some(&authorization))
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

#[tokio::test]
async fn machine_endpoints_with_alg_none_token_return_401() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = json!({"sub": machine.login, "mid": machine.key.0, "iss": "palisade", "aud": "palisade-machine", "iat": now, "exp": now + 3600});
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    for unsigned in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
        for (method, path, body) in machine_endpoints() {
            let authorization = format!("Bearer {unsigned}");
            call_with_authorization(&app, &method, path, &body, Some(&authorization))
                .await
                .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
        }
    }
}

#[tokio::test]
async fn machine_endpoints_with_garbage_or_foreign_scheme_return_401() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    for authorization in ["Bearer garbage", "Bearer a.b.c", &format!("Basic {}", machine.token), "Bearer \u{e9}"] {
        for (method, path, body) in machine_endpoints() {
            call_with_authorization(&app, &method, path, &body, Some(authorization))
                .await
                .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
        }
    }
}

#[tokio::test]
async fn machine_token_without_bearer_prefix_is_accepted_like_the_python_sdk_sends_it() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let reply = call_with_authorization(&app, &Method::GET, "/v2/decisions/stream", &Value::Null, Some(&machine.token)).await;
    reply.expect_ok(StatusCode::OK);
    let lower = format!("bearer {}", machine.token);
    call_with_authorization(&app, &Method::GET, "/v2/decisions/stream", &Value::Null, Some(&lower))
        .await
        .expect_ok(StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// POST /v{2,3}/watchers/enroll
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn enroll_answers_202_new_200_already_enrolled_202_overwrite() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let key = enroll_key(&app, &admin, "acme").await;
        let machine = app.machine(FIXTURE_LOGIN).await;
        let mut first = fixture_json("enroll.request.json");
        first["attachment_key"] = json!(key);
        let mut overwrite = fixture_json("enroll.request.overwrite-no-name-no-tags.json");
        overwrite["attachment_key"] = json!(key);

        let reply = app.post("/v2/watchers/enroll", Some(&machine.token), &first).await;
        assert_eq!(reply.expect_ok(StatusCode::ACCEPTED), json!({"message": "OK"}));
        let view = admin_machine(&app, &admin, &machine.login).await;
        assert_eq!((view["account"].as_str(), view["name"].as_str()), (Some("acme"), Some("harness-test")), "{}", app.label);

        // cscli reads 200 as "already enrolled" and does not turn the console options on.
        app.post("/v2/watchers/enroll", Some(&machine.token), &first).await.expect_ok(StatusCode::OK);
        app.post("/v3/watchers/enroll", Some(&machine.token), &first).await.expect_ok(StatusCode::OK);

        app.post("/v2/watchers/enroll", Some(&machine.token), &overwrite).await.expect_ok(StatusCode::ACCEPTED);
        let view = admin_machine(&app, &admin, &machine.login).await;
        // `--overwrite` without `--name` sends `""`: the name given earlier stays.
        assert_eq!((view["account"].as_str(), view["name"].as_str()), (Some("acme"), Some("harness-test")), "{}", app.label);

        let accounts = app.get("/v1/admin/accounts", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(accounts[0]["machines"], 1, "{accounts}");
    }
}

#[tokio::test]
async fn enroll_with_unknown_key_returns_403() {
    for app in apps().await {
        let machine = app.machine(FIXTURE_LOGIN).await;
        // The fixture's key was the mock's; this server never issued it.
        let reply = app.post("/v2/watchers/enroll", Some(&machine.token), &fixture_json("enroll.request.json")).await;
        let body = reply.expect_error(StatusCode::FORBIDDEN, "invalid_enroll_key");
        assert_eq!(body["message"], "the attachment key provided is not valid");
        let empty = json!({"attachment_key": "", "name": "", "tags": [], "overwrite": false});
        app.post("/v3/watchers/enroll", Some(&machine.token), &empty)
            .await
            .expect_error(StatusCode::FORBIDDEN, "invalid_enroll_key");
        let admin = app.admin_token().await;
        assert!(admin_machine(&app, &admin, &machine.login).await["account"].is_null());
    }
}

#[tokio::test]
async fn enroll_with_too_many_or_too_long_tags_returns_422() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let tags: Vec<String> = (0..33).map(|i| format!("tag{i}")).collect();
    let body = json!({"attachment_key": "0123456789abcdefKEY", "name": "n", "tags": tags, "overwrite": false});
    app.post("/v2/watchers/enroll", Some(&machine.token), &body)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let body = json!({"attachment_key": "0123456789abcdefKEY", "name": "n".repeat(129), "tags": [], "overwrite": false});
    app.post("/v2/watchers/enroll", Some(&machine.token), &body)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

// ---------------------------------------------------------------------------------------------
// POST /v{2,3}/signals
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fixture_signals_with_documentation_addresses_are_refused_as_reserved_with_422() {
    for app in apps().await {
        let machine = app.machine(FIXTURE_LOGIN).await;
        for name in ["signals.request.wave1.json", "signals.request.wave2.json"] {
            let reply = app.post_raw("/v2/signals", Some(&machine.token), &[], fixture(name).into_bytes()).await;
            let body = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            let fields = body["fields"].as_array().unwrap();
            assert_eq!(fields.len(), 4, "{body}");
            for (index, field) in fields.iter().enumerate() {
                assert_eq!(field["field"], format!("[{index}]"));
                assert!(field["message"].as_str().unwrap().starts_with("reserved_address: "), "{field}");
            }
        }
        let admin = app.admin_token().await;
        assert_eq!(admin_signals(&app, &admin, "").await["items"], json!([]), "{}", app.label);
    }
}

#[tokio::test]
async fn fixture_signals_with_public_addresses_are_stored() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine(FIXTURE_LOGIN).await;
        for (path, name) in [("/v2/signals", "signals.request.wave1.json"), ("/v3/signals", "signals.request.wave2.json")] {
            let reply = app.post(path, Some(&machine.token), &public_signals(name)).await;
            assert_eq!(reply.expect_ok(StatusCode::OK), json!({"message": "OK", "accepted": 4, "duplicates": 0, "rejected": []}));
        }
        let page = admin_signals(&app, &admin, "").await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 8, "{}: {page}", app.label);
        let first = &items[0];
        assert_eq!(first["machine_id"], FIXTURE_LOGIN);
        assert_eq!(first["agent"], "harness-agent");
        assert_eq!(first["scope"], "ip");
        assert_eq!(first["value"], "45.33.32.77");
        assert_eq!(first["scenario"], "crowdsecurity/ssh-bf");
        assert_eq!(first["scenario_trust"], "certified");
        assert_eq!(items[7]["value"], "45.33.32.78");
        assert_eq!(items[7]["scenario"], "crowdsecurity/ssh-slow-bf_user-enum");
        assert_eq!(admin_machine(&app, &admin, FIXTURE_LOGIN).await["signals"], 8);
    }
}

#[tokio::test]
async fn retried_signal_batch_reports_duplicates_and_stores_nothing_new() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine(FIXTURE_LOGIN).await;
        let batch = public_signals("signals.request.wave1.json");
        app.post("/v2/signals", Some(&machine.token), &batch).await.expect_ok(StatusCode::OK);
        let retried = app.post("/v2/signals", Some(&machine.token), &batch).await.expect_ok(StatusCode::OK);
        assert_eq!(retried, json!({"message": "OK", "accepted": 0, "duplicates": 4, "rejected": []}), "{}", app.label);
        assert_eq!(admin_signals(&app, &admin, "").await["items"].as_array().unwrap().len(), 4);

        // Another machine reporting the same alerts is a separate report, not a duplicate.
        let other = app.machine("other-installation").await;
        let reply = app.post("/v2/signals", Some(&other.token), &batch).await.expect_ok(StatusCode::OK);
        assert_eq!(reply["accepted"], 4);
    }
}

#[tokio::test]
async fn mixed_signal_batch_keeps_valid_items_and_lists_rejected_by_index() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine("web-01").await;
        let mut wrong_type = signal("45.33.32.10", "crowdsecurity/ssh-bf");
        wrong_type["source"] = json!("45.33.32.10");
        let mut range = signal("45.33.32.0/24", "crowdsecurity/ssh-bf");
        range["source"] = json!({"scope": "Range", "value": "45.33.32.7/24"});
        let mut country = signal("FR", "crowdsecurity/ssh-bf");
        country["source"] = json!({"scope": "Country", "value": "FR"});
        let batch = json!([
            signal("45.33.32.156", "crowdsecurity/ssh-bf"),
            signal("999.1.1.1", "crowdsecurity/ssh-bf"),
            signal("10.0.0.1", "crowdsecurity/ssh-bf"),
            signal("::ffff:127.0.0.1", "crowdsecurity/ssh-bf"),
            wrong_type,
            42,
            range,
            country,
            signal("2001:db8::1", "crowdsecurity/ssh-bf"),
            signal("2a00:1450:4001:82a::200e", "crowdsecurity/http-probing"),
        ]);
        let reply = app.post("/v2/signals", Some(&machine.token), &batch).await.expect_ok(StatusCode::OK);
        assert_eq!(reply["accepted"], 3, "{}: {reply}", app.label);
        assert_eq!(reply["duplicates"], 0);
        let rejected: Vec<(u64, &str)> = reply["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
            .collect();
        assert_eq!(
            rejected,
            [
                (1, "invalid_ip"),
                (2, "reserved_address"),
                (3, "reserved_address"),
                (4, "invalid_item"),
                (5, "invalid_item"),
                (7, "unsupported_scope"),
                (8, "reserved_address"),
            ]
        );
        assert_eq!(reply["message"], "7 signal(s) rejected");
        let values: Vec<String> = admin_signals(&app, &admin, "").await["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["value"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(values, ["45.33.32.156", "45.33.32.0/24", "2a00:1450:4001:82a::200e"]);
    }
}

#[tokio::test]
async fn signals_with_bad_times_or_fields_are_rejected_per_item() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let mut stale = signal("45.33.32.1", "crowdsecurity/ssh-bf");
    stale["start_at"] = json!("2000-01-01T00:00:00Z");
    stale["stop_at"] = json!("2000-01-01T00:00:01Z");
    let mut future = signal("45.33.32.2", "crowdsecurity/ssh-bf");
    future["start_at"] = json!("2100-01-01T00:00:00Z");
    future["stop_at"] = json!("2100-01-01T00:00:01Z");
    let mut not_a_time = signal("45.33.32.3", "crowdsecurity/ssh-bf");
    not_a_time["stop_at"] = json!("yesterday");
    let mut reversed = signal("45.33.32.4", "crowdsecurity/ssh-bf");
    reversed["stop_at"] = json!("2000-01-01T00:00:00Z");
    let mut long_message = signal("45.33.32.5", "crowdsecurity/ssh-bf");
    long_message["message"] = json!("x".repeat(9000));
    let mut bad_scenario = signal("45.33.32.6", "crowdsecurity/ssh-bf");
    bad_scenario["scenario"] = json!("two words");
    let mut broad = signal("45.0.0.0/8", "crowdsecurity/ssh-bf");
    broad["source"] = json!({"scope": "Range", "value": "45.0.0.0/8"});
    let mut missing = signal("45.33.32.7", "crowdsecurity/ssh-bf");
    missing.as_object_mut().unwrap().remove("source");
    let batch = json!([stale, future, not_a_time, reversed, long_message, bad_scenario, broad, missing]);
    let body = app
        .post("/v2/signals", Some(&machine.token), &batch)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let codes: Vec<&str> =
        body["fields"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap().split(':').next().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "stale_signal",
            "future_signal",
            "invalid_time",
            "invalid_time",
            "field_too_long",
            "invalid_scenario",
            "range_too_broad",
            "invalid_item"
        ]
    );
}

#[tokio::test]
async fn gzip_encoded_signals_are_accepted() {
    for app in apps().await {
        let machine = app.machine("web-01").await;
        let body = gzip(public_signals("signals.request.wave1.json").to_string().as_bytes());
        let reply = app.post_raw("/v2/signals", Some(&machine.token), &[("content-encoding", "gzip")], body).await;
        assert_eq!(reply.expect_ok(StatusCode::OK)["accepted"], 4, "{}", app.label);
    }
}

#[tokio::test]
async fn empty_signal_batch_returns_200_with_nothing_stored() {
    for app in apps().await {
        let machine = app.machine("web-01").await;
        let reply = app.post("/v2/signals", Some(&machine.token), &json!([])).await.expect_ok(StatusCode::OK);
        assert_eq!(reply, json!({"message": "OK", "accepted": 0, "duplicates": 0, "rejected": []}), "{}", app.label);
    }
}

#[tokio::test]
async fn signals_body_that_is_not_an_array_returns_422() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let one = signal("45.33.32.156", "crowdsecurity/ssh-bf");
    app.post("/v2/signals", Some(&machine.token), &one).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    app.post("/v2/signals", Some(&machine.token), &json!(null))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
}

#[tokio::test]
async fn more_signals_than_the_request_limit_returns_413() {
    for app in apps_with(|c| c.ingest.max_signals_per_request = 10).await {
        let machine = app.machine("web-01").await;
        let batch: Vec<Value> = (1..=11).map(|i| signal(&format!("45.33.32.{i}"), "crowdsecurity/ssh-bf")).collect();
        app.post("/v2/signals", Some(&machine.token), &json!(batch))
            .await
            .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_items");
        let admin = app.admin_token().await;
        assert_eq!(admin_signals(&app, &admin, "").await["items"], json!([]), "{}", app.label);
    }
}

#[tokio::test]
async fn signals_over_the_machine_rate_return_429_with_retry_after() {
    let limited = |c: &mut palisade_server::config::Config| {
        c.ingest.max_signals_per_request = 50;
        c.ingest.per_machine_burst = 50;
        c.ingest.per_machine_signals_per_sec = 1;
    };
    for app in apps_with(limited).await {
        let admin = app.admin_token().await;
        let machine = app.machine("web-01").await;
        let batch = |octet: u8| -> Value {
            json!((1..=50).map(|i| signal(&format!("45.33.{octet}.{i}"), "crowdsecurity/ssh-bf")).collect::<Vec<_>>())
        };
        app.post("/v2/signals", Some(&machine.token), &batch(32)).await.expect_ok(StatusCode::OK);
        // The burst is spent; a second full batch needs fifty seconds of refill.
        let reply = app.post("/v2/signals", Some(&machine.token), &batch(33)).await;
        reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry_after: u64 = reply.headers[header::RETRY_AFTER].to_str().unwrap().parse().expect("Retry-After is in seconds");
        assert!(retry_after >= 1);
        // The limit is per machine: another machine still gets through.
        let other = app.machine("web-02").await;
        app.post("/v2/signals", Some(&other.token), &batch(33)).await.expect_ok(StatusCode::OK);
        assert_eq!(admin_machine(&app, &admin, "web-01").await["signals"], 50, "{}", app.label);
    }
}

// ---------------------------------------------------------------------------------------------
// POST /v{2,3}/metrics[/] and /v3/usage-metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_fixture_bodies_are_accepted_with_and_without_trailing_slash() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine(FIXTURE_LOGIN).await;
        for path in ["/v2/metrics/", "/v2/metrics", "/v3/metrics/", "/v3/metrics"] {
            for name in ["metrics.request.json", "metrics.request.with-bouncer.json"] {
                let reply = app.post_raw(path, Some(&machine.token), &[], fixture(name).into_bytes()).await;
                assert_eq!(reply.expect_ok(StatusCode::OK), json!({"message": "OK"}), "{path} {name}");
            }
        }
        let view = admin_machine(&app, &admin, FIXTURE_LOGIN).await;
        assert_eq!(view["version"], "v1.4.6-6~deb12u1+b1-linux-debian", "{}", app.label);
    }
}

#[tokio::test]
async fn usage_metrics_object_is_accepted_on_v3() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine("web-01").await;
        let body = json!({
            "lapi": {"version": "v1.6.3", "os": {"name": "debian", "family": "debian", "version": "12"}, "feature_flags": [],
                     "console_options": ["custom", "tainted"],
                     "metrics": [{"meta": {"utc_now_timestamp": 1795608352, "window_size_seconds": 1800}, "items": []}]},
            "log_processors": [{"name": "harness-agent", "version": "v1.6.3", "datasources": {"file": 1},
                                "hub_items": {"scenarios": [{"name": "crowdsecurity/ssh-bf", "version": "0.1", "status": "official"}]},
                                "metrics": [{"meta": {"utc_now_timestamp": 1795608352, "window_size_seconds": 1800},
                                             "items": [{"name": "parsed", "value": 12, "unit": "line", "labels": {"source": "file"}}]}]}],
            "remediation_components": []
        });
        let reply = app
            .post_raw(
                "/v3/usage-metrics",
                Some(&machine.token),
                &[("content-encoding", "gzip")],
                gzip(body.to_string().as_bytes()),
            )
            .await;
        assert_eq!(reply.expect_ok(StatusCode::OK), json!({"message": "OK"}));
        assert_eq!(admin_machine(&app, &admin, "web-01").await["version"], "v1.6.3", "{}", app.label);
    }
}

#[tokio::test]
async fn usage_metrics_that_are_not_an_object_return_422() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    app.post("/v3/usage-metrics", Some(&machine.token), &json!([1, 2]))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
}

#[tokio::test]
async fn usage_metrics_do_not_exist_on_v2() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    app.post("/v2/usage-metrics", Some(&machine.token), &json!({})).await.expect_error(StatusCode::NOT_FOUND, "not_found");
}

// ---------------------------------------------------------------------------------------------
// GET /v{2,3}/decisions/stream
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v2_decisions_stream_is_empty_but_valid() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    // 1.4.6 sends `?startup=true` first, then a bare `?`.
    for path in ["/v2/decisions/stream?startup=true", "/v2/decisions/stream?", "/v2/decisions/stream"] {
        assert_eq!(
            app.get(path, Some(&machine.token)).await.expect_ok(StatusCode::OK),
            json!({"new": [], "deleted": []}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn v3_decisions_stream_is_empty_with_links() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    for path in [
        "/v3/decisions/stream?startup=true",
        "/v3/decisions/stream?startup=true&community_pull=false",
        "/v3/decisions/stream?additional_pull=false",
    ] {
        let expected = json!({"new": [], "deleted": [], "links": {"blocklists": [], "allowlists": []}});
        assert_eq!(app.get(path, Some(&machine.token)).await.expect_ok(StatusCode::OK), expected, "{path}");
    }
}

#[tokio::test]
async fn decisions_stream_with_invalid_flag_returns_400() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    for path in [
        "/v2/decisions/stream?startup=maybe",
        "/v3/decisions/stream?community_pull=nope",
        "/v3/decisions/stream?additional_pull=2",
    ] {
        app.get(path, Some(&machine.token)).await.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad bodies on every JSON endpoint
// ---------------------------------------------------------------------------------------------

/// Every endpoint that reads a JSON body, with the token it needs and a body of the wrong shape.
async fn json_endpoints(app: &TestApp) -> Vec<(&'static str, Option<String>, Value)> {
    let machine = app.machine("web-01").await.token;
    let admin = app.admin_token().await;
    vec![
        ("/v2/watchers", None, json!({"machine_id": 42, "password": FIXTURE_PASSWORD})),
        ("/v3/watchers", None, json!({"machine_id": FIXTURE_LOGIN})),
        ("/v2/watchers/login", None, json!({"machine_id": FIXTURE_LOGIN, "password": FIXTURE_PASSWORD, "scenarios": "ssh-bf"})),
        ("/v3/watchers/login", None, json!(["not", "an", "object"])),
        ("/v2/watchers/enroll", Some(machine.clone()), json!({"attachment_key": 1234})),
        ("/v3/watchers/enroll", Some(machine.clone()), json!({"attachment_key": "k", "overwrite": "yes"})),
        ("/v2/signals", Some(machine.clone()), json!({"not": "an array"})),
        ("/v3/signals", Some(machine.clone()), json!("text")),
        ("/v2/metrics/", Some(machine.clone()), json!({"apil_version": 1, "bouncers": [], "machines": []})),
        ("/v3/metrics", Some(machine.clone()), json!({"apil_version": "v1", "bouncers": "none", "machines": []})),
        ("/v3/usage-metrics", Some(machine), json!("text")),
        ("/v1/admin/accounts", Some(admin.clone()), json!({"name": ["acme"]})),
        ("/v1/admin/machines", Some(admin), json!({"name": "web-9", "sensor": "yes"})),
    ]
}

#[tokio::test]
async fn json_endpoints_reject_malformed_json_with_400() {
    let app = sqlite_app().await;
    for (path, token, _) in json_endpoints(&app).await {
        for body in [&b"{"[..], b"", b"{\"machine_id\": }", b"[1,", b"\xff\xfe", b"{} trailing"] {
            app.post_raw(path, token.as_deref(), &[], body.to_vec())
                .await
                .expect_error(StatusCode::BAD_REQUEST, "malformed_json");
        }
    }
}

#[tokio::test]
async fn json_endpoints_reject_wrong_types_with_422() {
    let app = sqlite_app().await;
    for (path, token, body) in json_endpoints(&app).await {
        app.post(path, token.as_deref(), &body).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    }
}

#[tokio::test]
async fn json_endpoints_reject_oversized_bodies_with_413() {
    let app = sqlite_app().await;
    let oversized = format!("[\"{}\"]", "x".repeat(MAX_BODY_BYTES));
    for (path, token, _) in json_endpoints(&app).await {
        let reply = app.post_raw(path, token.as_deref(), &[], oversized.clone().into_bytes()).await;
        reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
}

#[tokio::test]
async fn json_endpoints_reject_gzip_bombs_with_413() {
    let app = sqlite_app().await;
    // 8 MiB of spaces (valid JSON padding) in a few KiB on the wire; the limit is 1 MiB.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let chunk = vec![b' '; 1024 * 1024];
    for _ in 0..8 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < MAX_BODY_BYTES);
    for (path, token, _) in json_endpoints(&app).await {
        let reply = app.post_raw(path, token.as_deref(), &[("content-encoding", "gzip")], bomb.clone()).await;
        reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
}

#[tokio::test]
async fn json_endpoints_reject_corrupt_gzip_with_400_and_unknown_encodings_with_415() {
    let app = sqlite_app().await;
    for (path, token, body) in json_endpoints(&app).await {
        let token = token.as_deref();
        let bytes = body.to_string().into_bytes();
        let reply = app.post_raw(path, token, &[("content-encoding", "gzip")], bytes.clone()).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        let mut truncated = gzip(&bytes);
        truncated.truncate(truncated.len() / 2);
        app.post_raw(path, token, &[("content-encoding", "gzip")], truncated)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "bad_request");
        let reply = app.post_raw(path, token, &[("content-encoding", "br")], bytes).await;
        reply.expect_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding");
    }
}

#[tokio::test]
async fn text_with_nul_characters_is_refused_with_4xx_never_a_500() {
    // PostgreSQL cannot store NUL in text or jsonb; both backends must answer the same way.
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine("web-01").await;
        let token = Some(machine.token.as_str());
        let mut replies = Vec::new();

        let mut in_message = signal("45.33.32.1", "crowdsecurity/ssh-bf");
        in_message["message"] = json!("nul \u{0} inside");
        let mut in_extra = signal("45.33.32.2", "crowdsecurity/ssh-bf");
        in_extra["context"] = json!([{"key": "target_uri", "value": "/index.php\u{0}"}]);
        let mut in_agent = signal("45.33.32.3", "crowdsecurity/ssh-bf");
        in_agent["machine_id"] = json!("agent\u{0}");
        let batch = json!([in_message, in_extra, in_agent, signal("45.33.32.4", "crowdsecurity/ssh-bf")]);
        let reply = app.post("/v2/signals", token, &batch).await;
        // A NUL costs only its own item: CrowdSec never sends a batch twice.
        let body = reply.expect_ok(StatusCode::OK);
        assert_eq!(body["accepted"], 1, "{}: {body}", app.label);
        let rejected: Vec<(u64, &str)> = body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
            .collect();
        assert_eq!(rejected, [(0, "invalid_text"), (1, "invalid_text"), (2, "invalid_text")]);

        let metrics = json!({"apil_version": "v1.4.6\u{0}", "bouncers": [], "machines": []});
        replies.push(app.post("/v2/metrics/", token, &metrics).await);
        let metrics = json!({"apil_version": "v1.4.6", "bouncers": [{"custom_name": "b\u{0}"}], "machines": []});
        replies.push(app.post("/v2/metrics/", token, &metrics).await);
        replies.push(app.post("/v3/usage-metrics", token, &json!({"lapi": {"version": "x\u{0}"}})).await);
        replies.push(app.post("/v3/usage-metrics", token, &json!({"lapi\u{0}": {}})).await);
        let key = enroll_key(&app, &admin, "acme").await;
        replies.push(app.post("/v2/watchers/enroll", token, &json!({"attachment_key": key, "name": "n\u{0}", "tags": []})).await);
        replies
            .push(app.post("/v2/watchers/enroll", token, &json!({"attachment_key": key, "name": "n", "tags": ["t\u{0}"]})).await);
        replies.push(app.post("/v2/watchers/enroll", token, &json!({"attachment_key": "k\u{0}", "name": "n", "tags": []})).await);
        replies.push(register(&app, "v2", "web\u{0}02", FIXTURE_PASSWORD).await);
        replies.push(login(&app, "web\u{0}01", MACHINE_PASSWORD, &[]).await);
        replies.push(login(&app, "web-01", MACHINE_PASSWORD, &["crowdsecurity/ssh-bf\u{0}"]).await);
        replies.push(app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "a\u{0}b"})).await);
        replies.push(app.post("/v1/admin/machines", Some(&admin), &json!({"name": "m\u{0}n"})).await);
        replies.push(app.post("/v1/admin/accounts/a%00b/enroll-keys", Some(&admin), &json!({})).await);
        replies.push(app.get("/v1/admin/machines/web%0001", Some(&admin)).await);
        replies.push(app.get("/v1/admin/signals?machine_id=web%0001", Some(&admin)).await);
        replies.push(app.get("/v1/admin/signals?value=45.33.32.1%00", Some(&admin)).await);
        let failures: Vec<String> = replies
            .iter()
            .filter(|r| !r.status.is_client_error())
            .map(|r| format!("{} -> {}: {}", r.what, r.status, r.text()))
            .collect();
        assert!(failures.is_empty(), "expected 4xx:\n{}", failures.join("\n"));
        for reply in &replies {
            reply.expect_error(reply.status, reply.json()["code"].as_str().unwrap_or("?"));
        }
        let stored = admin_machine(&app, &admin, "web-01").await;
        assert!(stored["account"].is_null() && stored["version"].is_null(), "{}: {stored}", app.label);
    }
}

// ---------------------------------------------------------------------------------------------
// /v1/admin/*
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_endpoints_without_a_valid_admin_token_return_401() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    let requests: [(Method, &str, Value); 7] = [
        (Method::GET, "/v1/admin/accounts", Value::Null),
        (Method::POST, "/v1/admin/accounts", json!({"name": "acme"})),
        (Method::POST, "/v1/admin/accounts/acme/enroll-keys", json!({})),
        (Method::GET, "/v1/admin/machines", Value::Null),
        (Method::POST, "/v1/admin/machines", json!({"name": "web-02"})),
        (Method::GET, "/v1/admin/machines/web-01", Value::Null),
        (Method::GET, "/v1/admin/signals", Value::Null),
    ];
    for (method, path, body) in &requests {
        call_with_authorization(&app, method, path, body, None)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
        for wrong in ["Bearer pal_admin_0000000000000000000000000000000000000000", &format!("Bearer {}", machine.token)] {
            call_with_authorization(&app, method, path, body, Some(wrong))
                .await
                .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
        }
    }
}

#[tokio::test]
async fn admin_creates_and_lists_accounts() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let created = app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme"})).await.expect_ok(StatusCode::CREATED);
        assert_eq!((created["name"].as_str(), created["machines"].as_u64()), (Some("acme"), Some(0)), "{created}");
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "globex"})).await.expect_ok(StatusCode::CREATED);
        let listed = app.get("/v1/admin/accounts", Some(&admin)).await.expect_ok(StatusCode::OK);
        let names: Vec<&str> = listed.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["acme", "globex"], "{}", app.label);
    }
}

#[tokio::test]
async fn admin_create_duplicate_account_returns_409() {
    for app in apps().await {
        let admin = app.admin_token().await;
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme"})).await.expect_ok(StatusCode::CREATED);
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme"}))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
    }
}

#[tokio::test]
async fn admin_create_account_with_invalid_name_returns_422() {
    let app = sqlite_app().await;
    let admin = app.admin_token().await;
    for name in ["", "two words", "é", &"a".repeat(65)] {
        let reply = app.post("/v1/admin/accounts", Some(&admin), &json!({"name": name})).await;
        assert_eq!(reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["fields"][0]["field"], "name");
    }
}

#[tokio::test]
async fn admin_enroll_key_for_unknown_account_returns_404() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let reply = app.post("/v1/admin/accounts/nobody/enroll-keys", Some(&admin), &json!({})).await;
        reply.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn admin_enroll_key_is_alphanumeric_and_enrolls_a_machine() {
    for app in apps().await {
        let admin = app.admin_token().await;
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "acme"})).await.expect_ok(StatusCode::CREATED);
        let created =
            app.post("/v1/admin/accounts/acme/enroll-keys", Some(&admin), &json!({})).await.expect_ok(StatusCode::CREATED);
        let key = created["key"].as_str().unwrap();
        assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()), "CrowdSec requires [a-zA-Z0-9]: {key}");
        assert!(key.starts_with(created["prefix"].as_str().unwrap()));
        assert_eq!(created["account"], "acme");
        let machine = app.machine("web-01").await;
        let body = json!({"attachment_key": key, "name": "", "tags": [], "overwrite": false});
        app.post("/v2/watchers/enroll", Some(&machine.token), &body).await.expect_ok(StatusCode::ACCEPTED);
    }
}

#[tokio::test]
async fn admin_creates_a_machine_that_can_log_in() {
    for app in apps_with(|c| c.registration.policy = RegistrationPolicy::Closed).await {
        let admin = app.admin_token().await;
        let body = json!({"name": "sensor-01", "sensor": true});
        let credentials = app.post("/v1/admin/machines", Some(&admin), &body).await.expect_ok(StatusCode::CREATED);
        assert_eq!(credentials["machine_id"], "sensor-01");
        let password = credentials["password"].as_str().unwrap();
        assert_eq!(password.len(), 64);
        login(&app, "sensor-01", password, &["crowdsecurity/ssh-bf"]).await.expect_ok(StatusCode::OK);
        let view = admin_machine(&app, &admin, "sensor-01").await;
        assert_eq!((view["sensor"].as_bool(), view["created_by"].as_str()), (Some(true), Some("operator")), "{}", app.label);
        let listed = app.get("/v1/admin/machines", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(listed.as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn admin_create_duplicate_machine_returns_409() {
    for app in apps().await {
        let admin = app.admin_token().await;
        app.machine("web-01").await;
        let reply = app.post("/v1/admin/machines", Some(&admin), &json!({"name": "web-01"})).await;
        reply.expect_error(StatusCode::CONFLICT, "conflict");
    }
}

#[tokio::test]
async fn admin_create_machine_with_invalid_name_returns_422() {
    let app = sqlite_app().await;
    let admin = app.admin_token().await;
    let reply = app.post("/v1/admin/machines", Some(&admin), &json!({"name": "web 01"})).await;
    reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn admin_get_unknown_machine_returns_404() {
    for app in apps().await {
        let admin = app.admin_token().await;
        app.get("/v1/admin/machines/nobody", Some(&admin)).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn admin_lists_signals_with_filters_and_pagination() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let one = app.machine("web-01").await;
        let two = app.machine("web-02").await;
        let batch = json!([signal("45.33.32.1", "crowdsecurity/ssh-bf"), signal("45.33.32.2", "crowdsecurity/ssh-bf")]);
        app.post("/v2/signals", Some(&one.token), &batch).await.expect_ok(StatusCode::OK);
        app.post("/v2/signals", Some(&two.token), &json!([signal("45.33.32.1", "crowdsecurity/http-probing")]))
            .await
            .expect_ok(StatusCode::OK);

        let first = admin_signals(&app, &admin, "?limit=2").await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2, "{}: {first}", app.label);
        let after = first["next_after"].as_i64().expect("a full page has a cursor");
        let rest = admin_signals(&app, &admin, &format!("?limit=2&after={after}")).await;
        assert_eq!(rest["items"].as_array().unwrap().len(), 1);
        assert!(rest["next_after"].is_null(), "{rest}");

        let by_machine = admin_signals(&app, &admin, "?machine_id=web-02").await;
        assert_eq!(by_machine["items"].as_array().unwrap().len(), 1);
        assert_eq!(by_machine["items"][0]["scenario"], "crowdsecurity/http-probing");
        let by_value = admin_signals(&app, &admin, "?value=45.33.32.1").await;
        assert_eq!(by_value["items"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn admin_signals_with_invalid_query_returns_400() {
    let app = sqlite_app().await;
    let admin = app.admin_token().await;
    for query in ["?limit=0", "?limit=1001", "?limit=ten", "?after=x", "?limit=-1"] {
        app.get(&format!("/v1/admin/signals{query}"), Some(&admin)).await.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
}

// ---------------------------------------------------------------------------------------------
// Operations, documentation, routing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn healthz_returns_ok() {
    let app = sqlite_app().await;
    let body = app.get("/healthz", None).await.expect_ok(StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readyz_returns_ok_with_the_backend() {
    for app in apps().await {
        let body = app.get("/readyz", None).await.expect_ok(StatusCode::OK);
        assert_eq!((body["status"].as_str(), body["backend"].as_str()), (Some("ok"), Some(app.label)));
    }
}

#[tokio::test]
async fn prometheus_metrics_list_the_palisade_families() {
    let app = sqlite_app().await;
    let machine = app.machine("web-01").await;
    app.post("/v2/signals", Some(&machine.token), &json!([signal("45.33.32.156", "crowdsecurity/ssh-bf")]))
        .await
        .expect_ok(StatusCode::OK);
    app.get("/v2/decisions/stream?startup=true", Some(&machine.token)).await.expect_ok(StatusCode::OK);
    let reply = app.get("/metrics", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
    let text = reply.text();
    for family in [
        "palisade_http_requests_total",
        "palisade_http_request_duration_seconds",
        "palisade_signals_accepted_total",
        "palisade_stream_pulls_total",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} missing from:\n{text}");
    }
    assert!(text.contains("route=\"/v2/signals\""), "{text}");
}

#[tokio::test]
async fn openapi_json_describes_every_endpoint() {
    let app = sqlite_app().await;
    let document = app.get("/openapi.json", None).await.expect_ok(StatusCode::OK);
    assert_eq!(document, serde_json::to_value(palisade_server::http::openapi()).unwrap());
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/v2/watchers",
        "/v3/watchers",
        "/v2/watchers/login",
        "/v3/watchers/login",
        "/v2/watchers/enroll",
        "/v2/signals",
        "/v3/signals",
        "/v2/metrics",
        "/v3/usage-metrics",
        "/v2/decisions/stream",
        "/v3/decisions/stream",
        "/v1/admin/accounts",
        "/v1/admin/accounts/{name}/enroll-keys",
        "/v1/admin/machines",
        "/v1/admin/machines/{machine_id}",
        "/v1/admin/signals",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
}

#[tokio::test]
async fn docs_serve_the_swagger_ui() {
    let app = sqlite_app().await;
    let reply = app.get("/docs/", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.text().contains("swagger"), "{}", reply.text());
    let reply = app.get("/docs", None).await;
    assert!(reply.status.is_success() || reply.status.is_redirection(), "{}", reply.status);
}

#[tokio::test]
async fn unknown_route_returns_404_json() {
    let app = sqlite_app().await;
    for path in ["/nope", "/v2/nope", "/v3/watchers/nope", "/v1/admin/nope", "/v2/signals/", "/v1/watchers"] {
        app.get(path, None).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        app.post(path, None, &json!({})).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn wrong_method_returns_405_json() {
    let app = sqlite_app().await;
    for (method, path) in [
        (Method::GET, "/v2/watchers"),
        (Method::GET, "/v3/watchers/login"),
        (Method::DELETE, "/v2/signals"),
        (Method::GET, "/v2/metrics/"),
        (Method::POST, "/v2/decisions/stream"),
        (Method::PUT, "/v1/admin/accounts"),
        (Method::POST, "/v1/admin/machines/web-01"),
        (Method::POST, "/healthz"),
        (Method::POST, "/metrics"),
    ] {
        let reply = app.send(common::request(method, path, None, &[], axum::body::Body::empty())).await;
        reply.expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

#[tokio::test]
async fn caller_request_id_is_echoed_in_header_and_error_body() {
    let app = sqlite_app().await;
    let reply = app
        .send(common::request(Method::GET, "/nope", None, &[("x-request-id", "trace-abc-123")], axum::body::Body::empty()))
        .await;
    assert_eq!(reply.expect_error(StatusCode::NOT_FOUND, "not_found")["request_id"], "trace-abc-123");
    let reply = app
        .send(common::request(Method::GET, "/healthz", None, &[("x-request-id", "trace-abc-124")], axum::body::Body::empty()))
        .await;
    assert_eq!(reply.headers["x-request-id"], "trace-abc-124");
    // An unusable id is replaced, not echoed.
    let long = "x".repeat(200);
    let reply = app
        .send(common::request(Method::GET, "/nope", None, &[("x-request-id", long.as_str())], axum::body::Body::empty()))
        .await;
    assert_ne!(reply.expect_error(StatusCode::NOT_FOUND, "not_found")["request_id"], long.as_str());
}

#[tokio::test]
async fn streams_never_serve_an_entry_that_became_never_block_before_the_worker_ran() {
    for app in apps().await {
        let label = app.label;
        let machine = app.machine("web-01").await;
        let now = time::OffsetDateTime::now_utc();
        let entries = ["45.33.32.156", "66.249.66.1", "81.2.69.160"]
            .map(|value| common::listing(value, "crowdsecurity/ssh-bf", Rule::Sensor));
        // Committed but not yet refreshed into the served lists: the worker has not run since.
        common::commit_consensus(&app, vec![], entries.into()).await;
        let before = app.get("/v2/decisions/stream?startup=true", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(before["new"].as_array().map(Vec::len), Some(3), "{label}: {before}");
        app.state.store.add_allowlist(&["66.249.64.0/19".into()], "crawler", "googlebot", now).await.expect("allowlist");
        app.state.store.add_canary("81.2.69.160", "", now).await.expect("canary");
        for path in ["/v2/decisions/stream?startup=true", "/v3/decisions/stream?startup=true"] {
            let after = app.get(path, Some(&machine.token)).await.expect_ok(StatusCode::OK);
            let text = after.to_string();
            assert!(text.contains("45.33.32.156"), "{label} {path}: {after}");
            assert!(!text.contains("66.249.66.1") && !text.contains("81.2.69.160"), "{label} {path}: {after}");
        }
    }
}
