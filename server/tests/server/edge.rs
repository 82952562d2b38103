//! What a hostile client may cost at the edge, reproduced in-process and shown bounded: a login
//! flood against bounded password hashing; guessing admin tokens (API and console form), API keys, enrollment keys and
//! machine passwords against the failed-credential limit; registrations and logins spread over
//! the addresses of one IPv4 /24 or IPv6 /64.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use palisade_server::testing::TestDb;
use serde_json::json;

use crate::common::{MACHINE_PASSWORD, PEER, Reply, TestApp, request};

/// Misses allowed per client in the guessing tests.
const MISSES: u32 = 3;

/// An app on SQLite that believes the test peer's `X-Forwarded-For`, so each test request can
/// come from the client it names, with [`MISSES`] wrong credentials allowed per client.
async fn guarded_app() -> TestApp {
    TestApp::start(TestDb::sqlite(), &|config| {
        config.trusted_proxies = vec![ipnet::IpNet::from(PEER.ip())];
        config.edge.max_credential_failures = MISSES;
    })
    .await
}

/// A request from `client` (through the trusted test peer).
async fn send_from(
    app: &TestApp,
    client: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Reply {
    let mut all = vec![("x-forwarded-for", client)];
    all.extend_from_slice(headers);
    let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
    app.send(request(method, path, token, &all, body)).await
}

/// Asserts a 429 with a `Retry-After` of at least a second.
#[track_caller]
fn expect_locked_out(reply: &Reply) {
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry = reply.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    assert!(retry.is_some_and(|secs| secs >= 1), "{}: 429 without Retry-After", reply.what);
}

const GUESSER: &str = "203.0.113.66";
const BYSTANDER: &str = "203.0.113.77";

#[tokio::test]
async fn guessing_admin_tokens_is_cut_off_before_the_lookup() {
    let app = guarded_app().await;
    let admin = app.admin_token().await;
    for i in 0..MISSES {
        let guess = format!("pal_admin_guess{i:040}");
        send_from(&app, GUESSER, Method::GET, "/v1/admin/accounts", Some(&guess), &[], &json!(null))
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    expect_locked_out(
        &send_from(&app, GUESSER, Method::GET, "/v1/admin/accounts", Some("pal_admin_next"), &[], &json!(null)).await,
    );
    // Refused before it is looked up: even the right token, from the guesser, until the window ends.
    expect_locked_out(&send_from(&app, GUESSER, Method::GET, "/v1/admin/accounts", Some(&admin), &[], &json!(null)).await);
    let bystander = send_from(&app, BYSTANDER, Method::GET, "/v1/admin/accounts", Some(&admin), &[], &json!(null)).await;
    bystander.expect_ok(StatusCode::OK);
}

/// A console sign-in from `client` with `token`, as the browser posts the form.
async fn console_sign_in(app: &TestApp, client: &str, token: &str) -> Reply {
    let form = format!("token={token}");
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/console/login")
        .header(header::HOST, "palisade.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-for", client)
        .body(Body::from(form))
        .expect("a valid request");
    app.send(req).await
}

#[tokio::test]
async fn guessing_admin_tokens_through_the_console_form_is_cut_off_too() {
    let app = guarded_app().await;
    let admin = app.admin_token().await;
    for i in 0..MISSES {
        let reply = console_sign_in(&app, GUESSER, &format!("pal_admin_guess{i:040}")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    }
    // Refused before it is looked up, even the right token, and the page says when to retry.
    let locked = console_sign_in(&app, GUESSER, &admin).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{}", locked.text());
    assert!(locked.headers.get(header::RETRY_AFTER).is_some(), "429 without Retry-After");
    assert!(locked.text().contains("Too many wrong tokens"), "{}", locked.text());
    // The API shares the count: the guesser is locked out there as well.
    expect_locked_out(&send_from(&app, GUESSER, Method::GET, "/v1/admin/accounts", Some(&admin), &[], &json!(null)).await);
    let bystander = console_sign_in(&app, BYSTANDER, &admin).await;
    assert_eq!(bystander.status, StatusCode::SEE_OTHER, "{}", bystander.text());
}

#[tokio::test]
async fn guessing_api_keys_is_cut_off_before_the_lookup() {
    let app = guarded_app().await;
    let admin = app.admin_token().await;
    let key = crate::common::api_key(&app, &admin, "acme").await;
    let path = "/v2/smoke/192.0.2.1";
    for i in 0..MISSES {
        let guess = format!("guess{i:032}");
        send_from(&app, GUESSER, Method::GET, path, None, &[("x-api-key", &guess)], &json!(null))
            .await
            .expect_error(StatusCode::FORBIDDEN, "forbidden");
    }
    expect_locked_out(&send_from(&app, GUESSER, Method::GET, path, None, &[("x-api-key", "another guess")], &json!(null)).await);
    expect_locked_out(&send_from(&app, GUESSER, Method::GET, path, None, &[("x-api-key", &key)], &json!(null)).await);
    let bystander = send_from(&app, BYSTANDER, Method::GET, path, None, &[("x-api-key", &key)], &json!(null)).await;
    assert_ne!(bystander.status, StatusCode::TOO_MANY_REQUESTS, "{}", bystander.text());
    assert_ne!(bystander.status, StatusCode::FORBIDDEN, "{}", bystander.text());
}

#[tokio::test]
async fn guessing_enrollment_keys_is_cut_off_before_the_lookup() {
    let app = guarded_app().await;
    palisade_server::manage::create_account(app.state.store.as_ref(), "acme").await.expect("account");
    let key = palisade_server::manage::create_enroll_key(app.state.store.as_ref(), "acme").await.expect("enroll key").key;
    let machine = app.machine("enrolling-machine").await;
    let enroll = |key: &str| json!({"attachment_key": key, "name": "", "tags": [], "overwrite": false});
    for i in 0..MISSES {
        let guess = format!("guess{i:027}");
        send_from(&app, GUESSER, Method::POST, "/v2/watchers/enroll", Some(&machine.token), &[], &enroll(&guess))
            .await
            .expect_error(StatusCode::FORBIDDEN, "invalid_enroll_key");
    }
    expect_locked_out(
        &send_from(
            &app,
            GUESSER,
            Method::POST,
            "/v2/watchers/enroll",
            Some(&machine.token),
            &[],
            &enroll("x".repeat(32).as_str()),
        )
        .await,
    );
    expect_locked_out(
        &send_from(&app, GUESSER, Method::POST, "/v2/watchers/enroll", Some(&machine.token), &[], &enroll(&key)).await,
    );
    send_from(&app, BYSTANDER, Method::POST, "/v2/watchers/enroll", Some(&machine.token), &[], &enroll(&key))
        .await
        .expect_ok(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn guessing_machine_passwords_is_cut_off_before_the_lookup() {
    let app = guarded_app().await;
    let machine = app.machine("guessed-machine").await;
    let login = |password: &str| json!({"machine_id": machine.login, "password": password, "scenarios": []});
    for i in 0..MISSES {
        send_from(&app, GUESSER, Method::POST, "/v2/watchers/login", None, &[], &login(&format!("wrong password {i}")))
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    expect_locked_out(
        &send_from(&app, GUESSER, Method::POST, "/v2/watchers/login", None, &[], &login("yet another guess")).await,
    );
    expect_locked_out(&send_from(&app, GUESSER, Method::POST, "/v2/watchers/login", None, &[], &login(MACHINE_PASSWORD)).await);
    // Registering the taken id again is the same guess, and is refused the same way.
    let register = json!({"machine_id": machine.login, "password": "a guess that is long enough"});
    expect_locked_out(&send_from(&app, GUESSER, Method::POST, "/v2/watchers", None, &[], &register).await);
    send_from(&app, BYSTANDER, Method::POST, "/v2/watchers/login", None, &[], &login(MACHINE_PASSWORD))
        .await
        .expect_ok(StatusCode::OK);
}

/// Fifty concurrent logins for unknown machines (each pays a decoy argon2 verification) against
/// two hashing slots and a 1 ms wait: every answer is a 401 (it got a slot) or a 503 with
/// `Retry-After` (it did not), none a 500, and never more than two hashes ran at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_queues_for_two_hashing_slots_then_gets_503() {
    let app = Arc::new(
        TestApp::start(TestDb::sqlite(), &|config| {
            config.edge.max_concurrent_hashes = 2;
            config.edge.hash_wait_ms = 1;
        })
        .await,
    );
    let logins = (0..50).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let body =
                json!({"machine_id": format!("unknown-{i}"), "password": "a wrong password, long enough", "scenarios": []});
            app.send(request(Method::POST, "/v2/watchers/login", None, &[], Body::from(body.to_string()))).await
        })
    });
    let replies = futures::future::join_all(logins).await;
    let (mut refused, mut busy) = (0, 0);
    for reply in replies {
        let reply = reply.expect("the login task panicked");
        match reply.status {
            StatusCode::UNAUTHORIZED => {
                reply.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
                refused += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.json()["code"], "busy", "{}", reply.text());
                let retry =
                    reply.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
                assert!(retry.is_some_and(|secs| secs >= 1), "503 without Retry-After: {:?}", reply.headers);
                busy += 1;
            }
            other => panic!("a login answered {other}: {}", reply.text()),
        }
    }
    assert!(refused >= 1 && busy >= 1, "{refused} logins got a slot and {busy} were refused");
    let hashing = &app.state.hashing;
    assert!(hashing.peak_in_flight() <= 2, "{} hashes ran at once, above the bound of 2", hashing.peak_in_flight());
    assert_eq!(hashing.in_flight(), 0);
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.text().contains("palisade_password_hashes_in_flight"), "no hashing gauge in /metrics");
}

/// An app on SQLite that believes the test peer's `X-Forwarded-For`, with small registration
/// and login rates per address and per network.
async fn rated_app() -> TestApp {
    TestApp::start(TestDb::sqlite(), &|config| {
        config.trusted_proxies = vec![ipnet::IpNet::from(PEER.ip())];
        config.edge.registrations_per_hour_per_address = 2;
        config.edge.registrations_per_hour_per_network = 5;
        config.edge.logins_per_minute_per_network = 5;
    })
    .await
}

/// Registers a new machine from each client in turn; returns how many were admitted. Every
/// refusal must be a 429 with `Retry-After`.
async fn register_from(app: &TestApp, clients: &[String], tag: &str) -> usize {
    let mut admitted = 0;
    for (i, client) in clients.iter().enumerate() {
        let body = json!({"machine_id": format!("{tag}-{i}"), "password": "a password long enough for it"});
        let reply = send_from(app, client, Method::POST, "/v2/watchers", None, &[], &body).await;
        if reply.status == StatusCode::OK {
            admitted += 1;
        } else {
            expect_locked_out(&reply);
        }
    }
    admitted
}

#[tokio::test]
async fn registrations_spread_over_one_ipv4_24_are_cut_off_at_the_network_rate() {
    let app = rated_app().await;
    let clients: Vec<String> = (1..=30).map(|i| format!("203.0.113.{i}")).collect();
    assert_eq!(register_from(&app, &clients, "v4").await, 5);
    assert_eq!(register_from(&app, &["203.0.114.1".to_string()], "v4-next-network").await, 1);
}

#[tokio::test]
async fn registrations_spread_over_one_ipv6_64_are_cut_off_at_the_network_rate() {
    let app = rated_app().await;
    let clients: Vec<String> = (1..=30).map(|i| format!("2001:db8:5:6::{i:x}")).collect();
    assert_eq!(register_from(&app, &clients, "v6").await, 5);
    assert_eq!(register_from(&app, &["2001:db8:5:7::1".to_string()], "v6-next-network").await, 1);
}

#[tokio::test]
async fn one_address_is_held_to_its_own_registration_rate() {
    let app = rated_app().await;
    let clients = vec!["203.0.113.9".to_string(); 4];
    assert_eq!(register_from(&app, &clients, "one").await, 2);
}

#[tokio::test]
async fn logins_spread_over_one_24_are_cut_off_at_the_network_rate() {
    let app = rated_app().await;
    let machine = app.machine("popular-machine").await;
    let login = json!({"machine_id": machine.login, "password": MACHINE_PASSWORD, "scenarios": []});
    let mut admitted = 0;
    for i in 1..=10 {
        let reply = send_from(&app, &format!("203.0.113.{i}"), Method::POST, "/v2/watchers/login", None, &[], &login).await;
        if reply.status == StatusCode::OK {
            admitted += 1;
        } else {
            expect_locked_out(&reply);
        }
    }
    // 5 a minute with a burst of one: one login now, the next 12 s later, far beyond this loop.
    assert_eq!(admitted, 1);
}

/// Self-registrations from one network are capped per day in the store, on every backend: the
/// count is what the database holds, so it survives a restart and binds every replica.
#[tokio::test]
async fn self_registrations_per_network_are_capped_per_day_in_the_store() {
    let apps = crate::common::apps_with(|config| {
        config.trusted_proxies = vec![ipnet::IpNet::from(PEER.ip())];
        config.edge.registrations_per_hour_per_address = 1000;
        config.edge.registrations_per_hour_per_network = 1000;
        config.edge.registrations_per_network_per_day = 3;
    })
    .await;
    for app in apps {
        let v4: Vec<String> = (1..=10).map(|i| format!("203.0.113.{i}")).collect();
        assert_eq!(register_from(&app, &v4, "daily-v4").await, 3, "{}", app.label);
        let v6: Vec<String> = (1..=10).map(|i| format!("2001:db8:9:9::{i:x}")).collect();
        assert_eq!(register_from(&app, &v6, "daily-v6").await, 3, "{}", app.label);
        let since = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        for network in ["203.0.113.0/24", "2001:db8:9:9::/64"] {
            let counted = app.state.store.count_registrations(network.parse().expect("a network"), since).await;
            assert_eq!(counted.expect("the store counts"), 3, "{network} on {}", app.label);
        }
        assert_eq!(register_from(&app, &["203.0.114.1".to_string()], "daily-next").await, 1, "{}", app.label);
    }
}
