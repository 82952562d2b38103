//! The client's session handling against a small in-process stand-in for the server, which can
//! issue short-lived tokens, revoke them and answer with bodies the real server never sends.
//! Behaviour against the real server is tested in the `palisade-tests` crate.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use palisade::api::capi::{LoginRequest, LoginResponse, MetricsRequest, SignalsResponse};
use palisade::{Client, Error};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Default)]
struct Stub {
    /// Logins served so far; token `tN` is issued by the Nth.
    logins: usize,
    /// Lifetime of issued tokens, in seconds.
    ttl_secs: i64,
    /// Tokens the stub accepts.
    valid: Vec<String>,
    /// Reject every token (a server whose key changed and keeps changing).
    reject_all: bool,
    /// Tokens seen on authenticated calls, in order.
    seen: Vec<String>,
}

type Shared = Arc<Mutex<Stub>>;

fn lock(stub: &Shared) -> std::sync::MutexGuard<'_, Stub> {
    stub.lock().unwrap_or_else(|e| e.into_inner())
}

async fn login(State(stub): State<Shared>, Json(request): Json<LoginRequest>) -> Response {
    if request.password != "correct-horse-battery" {
        let body =
            json!({"code": "invalid_credentials", "message": "The machine_id or password is incorrect", "request_id": "r-1"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let mut stub = lock(&stub);
    stub.logins += 1;
    let token = format!("t{}", stub.logins);
    stub.valid.push(token.clone());
    let expire = (OffsetDateTime::now_utc() + time::Duration::seconds(stub.ttl_secs)).format(&Rfc3339).unwrap_or_default();
    Json(LoginResponse { code: 200, expire, token }).into_response()
}

/// The 401 answer for a call whose token the stub does not accept, or `None` to serve it.
fn refusal(stub: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim_start_matches("Bearer ");
    let mut stub = lock(stub);
    stub.seen.push(token.to_string());
    if stub.reject_all || !stub.valid.iter().any(|t| t == token) {
        let body = json!({"code": "invalid_token", "message": "invalid or expired token", "request_id": "r-2"});
        return Some((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    None
}

async fn signals(State(stub): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = refusal(&stub, &headers) {
        return response;
    }
    Json(SignalsResponse { message: "OK".into(), accepted: 0, duplicates: 0, rejected: Vec::new() }).into_response()
}

async fn metrics(State(stub): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = refusal(&stub, &headers) {
        return response;
    }
    Json(json!({"message": "OK"})).into_response()
}

async fn stream() -> Response {
    (StatusCode::BAD_GATEWAY, [(header::CONTENT_TYPE, "text/html")], "<html><body>502 Bad Gateway</body></html>").into_response()
}

/// Serves the stub under `/prefix` and returns its base URL (without a trailing slash, on purpose).
async fn serve(ttl_secs: i64) -> Result<(String, Shared), Box<dyn std::error::Error>> {
    let stub: Shared = Arc::new(Mutex::new(Stub { ttl_secs, ..Stub::default() }));
    let routes = Router::new()
        .route("/v3/watchers/login", post(login))
        .route("/v3/signals", post(signals))
        .route("/v3/metrics", post(metrics))
        .route("/v3/decisions/stream", get(stream))
        .with_state(stub.clone());
    let app = Router::new().nest("/prefix", routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}/prefix"), stub))
}

const PASSWORD: &str = "correct-horse-battery";

#[tokio::test]
async fn a_token_within_a_minute_of_expiry_is_renewed_before_the_call() -> TestResult {
    let (url, stub) = serve(30).await?;
    let client = Client::new(&url)?;
    client.login_machine("web-01", PASSWORD, &[]).await?;
    client.push_signals(&[]).await?;
    let stub = lock(&stub);
    assert_eq!(stub.logins, 2);
    assert_eq!(stub.seen, ["t2"]);
    Ok(())
}

#[tokio::test]
async fn a_fresh_token_is_reused() -> TestResult {
    let (url, stub) = serve(3600).await?;
    let client = Client::new(&url)?;
    client.login_machine("web-01", PASSWORD, &[]).await?;
    client.push_signals(&[]).await?;
    client.push_metrics(&MetricsRequest::default()).await?;
    assert!(client.token_expires_at().is_some_and(|at| at > OffsetDateTime::now_utc() + time::Duration::minutes(59)));
    let stub = lock(&stub);
    assert_eq!((stub.logins, stub.seen.as_slice()), (1, &["t1".to_string(), "t1".to_string()][..]));
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once_and_the_call_retried() -> TestResult {
    let (url, stub) = serve(3600).await?;
    let client = Client::new(&url)?;
    client.login_machine("web-01", PASSWORD, &[]).await?;
    lock(&stub).valid.clear();
    client.push_signals(&[]).await?;
    assert_eq!(lock(&stub).seen, ["t1", "t2"]);

    // A server that refuses every token: one renewal, one retry, then the 401 is the answer.
    lock(&stub).reject_all = true;
    let error = client.push_signals(&[]).await.err().ok_or("a rejected token was accepted")?;
    assert_eq!((error.status(), error.code()), (Some(401), Some("invalid_token")));
    let stub = lock(&stub);
    assert_eq!(stub.logins, 3);
    assert_eq!(stub.seen, ["t1", "t2", "t2", "t3"]);
    Ok(())
}

#[tokio::test]
async fn concurrent_calls_share_one_login() -> TestResult {
    let (url, stub) = serve(3600).await?;
    let client = Client::new(&url)?.with_credentials("web-01", PASSWORD, &["crowdsecurity/ssh-bf".to_string()]);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.push_metrics(&MetricsRequest::default()).await })
        })
        .collect();
    for call in calls {
        call.await??;
    }
    let stub = lock(&stub);
    assert_eq!(stub.logins, 1);
    assert_eq!(stub.seen.len(), 8);
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_and_missing_login_are_distinct_errors() -> TestResult {
    let (url, _stub) = serve(3600).await?;
    let client = Client::new(&url)?;
    assert!(matches!(client.push_signals(&[]).await, Err(Error::NotLoggedIn)));
    match client.login_machine("web-01", "wrong-password-here", &[]).await {
        Err(Error::Api { status: 401, code, request_id, .. }) => {
            assert_eq!(code, "invalid_credentials");
            assert_eq!(request_id.as_deref(), Some("r-1"));
        }
        other => return Err(format!("expected a 401, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn a_proxy_error_page_becomes_an_api_error() -> TestResult {
    let (url, _stub) = serve(3600).await?;
    let client = Client::new(&url)?;
    client.login_machine("web-01", PASSWORD, &[]).await?;
    match client.get_decisions_stream_v3(true).await {
        Err(Error::Api { status: 502, code, message, .. }) => {
            assert_eq!(code, "http_502");
            assert!(message.contains("502 Bad Gateway"), "{message}");
        }
        other => return Err(format!("expected a 502, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() -> TestResult {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/", listener.local_addr()?);
    drop(listener);
    let client = Client::new(&url)?;
    assert!(matches!(client.register_machine("web-01", PASSWORD).await, Err(Error::Transport(_))));
    Ok(())
}
