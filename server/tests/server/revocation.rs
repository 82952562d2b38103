//! Taking access back, on the in-process router: a revoked admin token, a disabled, reset or
//! deleted machine's token and password, a signed-out or ended console session are refused at
//! once by the replica that revoked them, on both backends. That another replica follows within
//! seconds is shown end to end (`tests/tests/e2e/revocation.rs`), with two server processes.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{MACHINE_PASSWORD, Reply, TestApp, apps};

/// The console's own origin, as a browser sends it with a form.
const HOST: &str = "palisade.test";

fn form(path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    // Tokens and CSRF values are URL-safe: nothing to escape.
    let body: Vec<String> = fields.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let body = body.join("&");
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, format!("http://{HOST}"));
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::from(body)).expect("a valid request")
}

fn page(path: &str, cookie: &str) -> Request<Body> {
    Request::builder().uri(path).header(header::HOST, HOST).header(header::COOKIE, cookie).body(Body::empty()).expect("valid")
}

/// `palisade_console=VALUE` from a sign-in answer.
fn cookie_of(reply: &Reply) -> String {
    let set = reply.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).expect("a session cookie");
    set.split(';').next().unwrap_or_default().to_string()
}

fn location(reply: &Reply) -> &str {
    reply.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Signs the operator in with `admin`; the session cookie.
async fn operator_session(app: &TestApp, admin: &str) -> String {
    let signed_in = app.send(form("/console/login", None, &[("token", admin)])).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}: {}", signed_in.what, signed_in.text());
    cookie_of(&signed_in)
}

/// Whether the console lets `cookie` see the operator overview (else it sends it to sign in).
async fn signed_in(app: &TestApp, cookie: &str) -> bool {
    let reply = app.send(page("/console/operator", cookie)).await;
    match reply.status {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER if location(&reply) == "/console/login" => false,
        other => panic!("{}: unexpected {other}: {}", reply.what, reply.text()),
    }
}

async fn login(app: &TestApp, login: &str, password: &str) -> Reply {
    app.post("/v2/watchers/login", None, &json!({"machine_id": login, "password": password, "scenarios": []})).await
}

/// A machine request that needs a token.
async fn stream(app: &TestApp, token: &str) -> Reply {
    app.get("/v2/decisions/stream?startup=true", Some(token)).await
}

async fn put_disabled(app: &TestApp, admin: &str, machine: &str, disabled: bool) -> Reply {
    let request = crate::common::request(
        Method::PUT,
        &format!("/v1/admin/machines/{machine}/disabled"),
        Some(admin),
        &[],
        Body::from(json!({ "disabled": disabled }).to_string()),
    );
    app.send(request).await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    app.send(crate::common::request(Method::DELETE, path, Some(token), &[], Body::empty())).await
}

#[tokio::test]
async fn a_revoked_admin_token_is_refused_listed_as_revoked_and_ends_operator_sessions() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let other = app.admin_token().await;
        app.get("/v1/admin/accounts", Some(&other)).await.expect_ok(StatusCode::OK);
        let session = operator_session(&app, &other).await;
        assert!(signed_in(&app, &session).await, "{}: signed in", app.label);

        let listed = app.get("/v1/admin/admin-tokens", Some(&admin)).await.expect_ok(StatusCode::OK);
        let prefixes: Vec<&str> = listed.as_array().expect("a list").iter().filter_map(|t| t["prefix"].as_str()).collect();
        let prefix = palisade_server::auth::secrets::visible_prefix(&other);
        assert_eq!(prefixes, [palisade_server::auth::secrets::visible_prefix(&admin), prefix.clone()], "{}", app.label);
        assert!(listed[1]["last_used_at"].is_string(), "{}: its use is recorded: {listed}", app.label);
        assert!(listed[1].get("revoked_at").is_none(), "{}: live: {listed}", app.label);

        assert_eq!(delete(&app, &format!("/v1/admin/admin-tokens/{prefix}"), &admin).await.status, StatusCode::NO_CONTENT);
        // Refused at once, though this replica had just confirmed it.
        app.get("/v1/admin/accounts", Some(&other)).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(!signed_in(&app, &session).await, "{}: the operator's session ended with the token", app.label);
        let again = app.send(form("/console/login", None, &[("token", &other)])).await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}: no sign-in with a revoked token", app.label);
        let listed = app.get("/v1/admin/admin-tokens", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(listed[1]["revoked_at"].is_string(), "{}: {listed}", app.label);
        delete(&app, &format!("/v1/admin/admin-tokens/{prefix}"), &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        // The token that revoked it still works; a new operator session opens at once.
        app.get("/v1/admin/accounts", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(signed_in(&app, &operator_session(&app, &admin).await).await, "{}: a new session", app.label);
    }
}

#[tokio::test]
async fn a_disabled_machines_token_and_login_are_refused_and_enabling_needs_a_new_login() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine("agent-1").await;
        let bystander = app.machine("agent-2").await;
        stream(&app, &machine.token).await.expect_ok(StatusCode::OK);

        assert_eq!(put_disabled(&app, &admin, "agent-1", true).await.status, StatusCode::NO_CONTENT, "{}", app.label);
        let refused = stream(&app, &machine.token).await.expect_error(StatusCode::UNAUTHORIZED, "revoked");
        assert!(refused["message"].as_str().unwrap_or_default().contains("disabled"), "{}: {refused}", app.label);
        login(&app, "agent-1", MACHINE_PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "revoked");
        stream(&app, &bystander.token).await.expect_ok(StatusCode::OK);
        let view = app.get("/v1/admin/machines/agent-1", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(view["disabled_at"].is_string(), "{}: {view}", app.label);

        assert_eq!(put_disabled(&app, &admin, "agent-1", false).await.status, StatusCode::NO_CONTENT, "{}", app.label);
        // The token it held before stays refused: whoever held it may be who it was disabled for.
        stream(&app, &machine.token).await.expect_error(StatusCode::UNAUTHORIZED, "revoked");
        let fresh = login(&app, "agent-1", MACHINE_PASSWORD).await.expect_ok(StatusCode::OK);
        stream(&app, fresh["token"].as_str().expect("a token")).await.expect_ok(StatusCode::OK);
        let view = app.get("/v1/admin/machines/agent-1", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert!(view.get("disabled_at").is_none(), "{}: {view}", app.label);

        put_disabled(&app, &admin, "nobody", true).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        put_disabled(&app, &admin, "not%20a%20login", true).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        let no_body =
            crate::common::request(Method::PUT, "/v1/admin/machines/agent-1/disabled", Some(&admin), &[], Body::from("{}"));
        app.send(no_body).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
        put_disabled(&app, &machine.token, "agent-1", true).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

#[tokio::test]
async fn a_password_reset_invalidates_the_old_password_and_the_tokens_it_got() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine("agent-1").await;
        let old = login(&app, "agent-1", MACHINE_PASSWORD).await.expect_ok(StatusCode::OK);
        let old_token = old["token"].as_str().expect("a token").to_string();

        let reset = app.post("/v1/admin/machines/agent-1/password", Some(&admin), &Value::Null).await.expect_ok(StatusCode::OK);
        assert_eq!(reset["machine_id"], "agent-1", "{}", app.label);
        let password = reset["password"].as_str().expect("a new password").to_string();
        assert_ne!(password, MACHINE_PASSWORD, "{}", app.label);

        for token in [&machine.token, &old_token] {
            stream(&app, token).await.expect_error(StatusCode::UNAUTHORIZED, "revoked");
        }
        login(&app, "agent-1", MACHINE_PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        // At once, in the very second of the reset: the new token is issued after it.
        let fresh = login(&app, "agent-1", &password).await.expect_ok(StatusCode::OK);
        stream(&app, fresh["token"].as_str().expect("a token")).await.expect_ok(StatusCode::OK);

        app.post("/v1/admin/machines/nobody/password", Some(&admin), &Value::Null)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn a_deleted_machine_is_gone_and_its_token_refused() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let machine = app.machine("agent-1").await;
        app.machine("agent-2").await;
        assert_eq!(delete(&app, "/v1/admin/machines/agent-1", &admin).await.status, StatusCode::NO_CONTENT, "{}", app.label);
        stream(&app, &machine.token).await.expect_error(StatusCode::UNAUTHORIZED, "revoked");
        login(&app, "agent-1", MACHINE_PASSWORD).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        app.get("/v1/admin/machines/agent-1", Some(&admin)).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        let listed = app.get("/v1/admin/machines", Some(&admin)).await.expect_ok(StatusCode::OK);
        let logins: Vec<&str> = listed.as_array().expect("a list").iter().filter_map(|m| m["machine_id"].as_str()).collect();
        assert_eq!(logins, ["agent-2"], "{}", app.label);
        delete(&app, "/v1/admin/machines/agent-1", &admin).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        put_disabled(&app, &admin, "agent-1", false).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_so_a_replayed_cookie_gets_the_login_page() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let cookie = operator_session(&app, &admin).await;
        let overview = app.send(page("/console/operator", &cookie)).await;
        assert_eq!(overview.status, StatusCode::OK, "{}", app.label);
        let text = overview.text();
        let csrf = text.split("name=\"csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a CSRF token");
        let other = operator_session(&app, &admin).await;

        let out = app.send(form("/console/logout", Some(&cookie), &[("csrf", csrf)])).await;
        assert_eq!((out.status, location(&out)), (StatusCode::SEE_OTHER, "/console/login"), "{}", app.label);
        assert!(!signed_in(&app, &cookie).await, "{}: the replayed cookie is refused", app.label);
        assert!(signed_in(&app, &other).await, "{}: another session of the operator stays", app.label);
    }
}

#[tokio::test]
async fn ending_every_session_signs_every_browser_out() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let first = operator_session(&app, &admin).await;
        let second = operator_session(&app, &admin).await;
        assert_eq!(delete(&app, "/v1/admin/sessions", &admin).await.status, StatusCode::NO_CONTENT, "{}", app.label);
        for cookie in [&first, &second] {
            assert!(!signed_in(&app, cookie).await, "{}: ended", app.label);
        }
        // Signing in again works at once, in the very second every session was ended.
        assert!(signed_in(&app, &operator_session(&app, &admin).await).await, "{}: a new session", app.label);
        // The admin API itself is not a session: the token still works.
        app.get("/v1/admin/accounts", Some(&admin)).await.expect_ok(StatusCode::OK);
    }
}
