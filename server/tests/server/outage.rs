//! PostgreSQL going away under a running server, on the real PostgreSQL of the test
//! environment: the test's own database is reached through a TCP relay the test controls, its
//! backends are terminated (`pg_terminate_backend`: 57P01, as a fast shutdown sends) and the
//! relay closed (connections refused, as while the server is down). Requests then get 503 with
//! `Retry-After`, never 500; once one request has found the database down the following ones are
//! refused at once (counted in `palisade_store_fail_fast_total`) instead of waiting out the
//! pool's acquire timeout; `/readyz` answers 503 well within that timeout; and all of it heals
//! when the database is back.

use crate::common;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use common::TestApp;
use palisade_server::config::Secret;
use palisade_server::error::ApiError;
use palisade_server::store::StoreError;
use palisade_server::testing::{TestDb, service_url};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A TCP relay to PostgreSQL on a fixed loopback port that the test can close and reopen.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: Option<JoinHandle<()>>,
}

fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind the relay");
    socket.listen(64).expect("listen")
}

async fn relay(listener: TcpListener, upstream: SocketAddr) {
    // Dropping this task drops the set, which ends every relayed connection with it.
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                drop(tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await);
            }
        });
    }
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().expect("relay address");
        Relay { addr, upstream, task: Some(tokio::spawn(relay(listener, upstream))) }
    }

    /// Closes the port and every relayed connection: the database is gone.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            drop(task.await);
        }
    }

    /// Listens again on the same port: the database is back.
    fn restart(&mut self) {
        self.task = Some(tokio::spawn(relay(listen(self.addr), self.upstream)));
    }
}

async fn terminate_backends(admin: &PgConnectOptions, database: &str) -> u64 {
    let mut conn = admin.connect().await.expect("admin connection");
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(&mut conn)
    .await
    .expect("terminate");
    drop(conn.close().await);
    terminated.into_iter().filter(|t| *t).count() as u64
}

fn fail_fast_count(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("palisade_store_fail_fast_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_terminated_connection_is_unavailable_503_with_retry_after() {
    let Some(db) = TestDb::postgres().await else { return };
    let options = PgConnectOptions::from_str(db.url.expose()).expect("test database URL");
    let mut victim = options.connect().await.expect("connect");
    let admin_url = service_url("DATABASE_URL", "PostgreSQL").expect("DATABASE_URL");
    let admin = PgConnectOptions::from_str(&admin_url).expect("DATABASE_URL");
    let database = options.get_database().expect("a database name").to_string();
    assert!(terminate_backends(&admin, &database).await >= 1, "the victim's backend is terminated");

    let error = sqlx::query("SELECT 1").execute(&mut victim).await.expect_err("the connection was terminated");
    if let sqlx::Error::Database(db_error) = &error {
        assert_eq!(db_error.code().as_deref(), Some("57P01"), "{error}");
    }
    let error = StoreError::from(error);
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let response = ApiError::from(error).into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER), "Retry-After");
}

#[tokio::test]
async fn requests_get_503_at_once_while_postgres_is_down_and_recover_after() {
    let Some(mut db) = TestDb::postgres().await else { return };
    let options = PgConnectOptions::from_str(db.url.expose()).expect("test database URL");
    let database = options.get_database().expect("a database name").to_string();
    let upstream: SocketAddr = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .expect("the PostgreSQL host resolves")
        .find(SocketAddr::is_ipv4)
        .expect("an IPv4 address for PostgreSQL");
    let mut relay = Relay::start(upstream);
    db.url = Secret::new(options.clone().host("127.0.0.1").port(relay.addr.port()).to_url_lossy().to_string());
    let app = TestApp::start(db, &|_| {}).await;
    let admin = app.admin_token().await;
    let machine = app.machine("watcher").await;
    app.get("/v1/admin/machines", Some(&admin)).await.expect_ok(StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);

    let admin_url = service_url("DATABASE_URL", "PostgreSQL").expect("DATABASE_URL");
    terminate_backends(&PgConnectOptions::from_str(&admin_url).expect("DATABASE_URL"), &database).await;
    relay.stop().await;

    // The pool waits up to 10 s for a connection; readiness must answer well before that.
    let started = Instant::now();
    let ready = app.get("/readyz", None).await;
    let waited = started.elapsed();
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.text());
    assert_eq!(ready.json()["status"], "database unavailable");
    assert!(waited < Duration::from_secs(5), "/readyz took {waited:?}");

    let before = fail_fast_count(&app.get("/metrics", None).await.text());
    for _ in 0..3 {
        let reply = app.get("/v1/admin/machines", Some(&admin)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
        assert_eq!(reply.json()["code"], "unavailable", "{}", reply.text());
        assert!(reply.headers.contains_key(header::RETRY_AFTER), "Retry-After");
    }
    let pushed = app
        .post("/v2/signals", Some(&machine.token), &serde_json::json!([common::signal("45.33.32.156", "crowdsecurity/ssh-bf")]))
        .await;
    assert_eq!(pushed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", pushed.text());
    assert!(pushed.headers.contains_key(header::RETRY_AFTER), "Retry-After on the CrowdSec route");
    let after = fail_fast_count(&app.get("/metrics", None).await.text());
    assert!(after > before, "refused without waiting for the pool: {before} -> {after}");

    relay.restart();
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK, "a successful ping reopens at once");
    app.get("/v1/admin/machines", Some(&admin)).await.expect_ok(StatusCode::OK);
    relay.stop().await;
}
