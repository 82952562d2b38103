//! Set-up shared by the in-process API tests: an app (the real router and state) over a fresh
//! database and data directory, requests driven through `oneshot` without a socket, cheap
//! machines and tokens, API keys, community-list changes committed the way the consensus worker
//! commits them (the one listing fixture the families share), and the checks every error answer
//! must pass. It builds nothing the server does not build itself: state comes from
//! `cli::build_state`, routes from `http::router`.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use ipnet::IpNet;
use palisade_server::config::Config;
use palisade_server::domain::net::list_target;
use palisade_server::domain::signal::Scope;
use palisade_server::engine::{Remediation, Rule, TargetState};
use palisade_server::state::AppState;
use palisade_server::store::{ConsensusCommit, CreatedBy, ListEntry, ListOp, MachineKey, NewMachine};
use palisade_server::testing::TestDb;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt;

/// The address every test request comes from (documentation range: it is never a signal subject).
pub const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 41000));

/// Body limits small enough that the oversized-body and gzip-bomb tests stay cheap.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Decompressed-body limit of test apps.
pub const MAX_DECOMPRESSED_BYTES: usize = 1024 * 1024;

/// Password of the machines made by [`TestApp::machine`], hashed once per test process.
pub const MACHINE_PASSWORD: &str = "TestMachinePassword0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";

/// One application under test, with the database and data directory it owns.
pub struct TestApp {
    /// The state the router was built from, for direct store access and token minting.
    pub state: AppState,
    /// Backend label for assertion messages (`sqlite`, `postgres`).
    pub label: &'static str,
    router: Router,
    /// The database, for [`TestApp::replica`].
    database_url: palisade_server::config::Secret,
    // Declared last so they are dropped after the router and state that use them. A replica
    // owns no database: the app it copies does.
    _db: Option<TestDb>,
    _data_dir: tempfile::TempDir,
}

/// One app per available backend, default test configuration.
pub async fn apps() -> Vec<TestApp> {
    apps_with(|_| {}).await
}

/// One app per available backend, with the configuration adjusted by `edit`.
pub async fn apps_with(edit: impl Fn(&mut Config)) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for db in TestDb::all().await {
        apps.push(TestApp::start(db, &edit).await);
    }
    apps
}

/// An app on SQLite only, for behaviour that never reaches the database layer.
pub async fn sqlite_app() -> TestApp {
    TestApp::start(TestDb::sqlite(), &|_| {}).await
}

impl TestApp {
    /// Builds the state and router the way `serve` does, over `db`.
    pub async fn start(db: TestDb, edit: &dyn Fn(&mut Config)) -> TestApp {
        let mut app = TestApp::over(db.url.clone(), db.label(), edit).await;
        app._db = Some(db);
        app
    }

    /// Another replica over this app's database: its own state (lists, caches, limiter) and
    /// router, as a second server process would have, configured by `edit`.
    pub async fn replica(&self, edit: &dyn Fn(&mut Config)) -> TestApp {
        TestApp::over(self.database_url.clone(), self.label, edit).await
    }

    async fn over(database_url: palisade_server::config::Secret, label: &'static str, edit: &dyn Fn(&mut Config)) -> TestApp {
        let data_dir = tempfile::tempdir().expect("cannot create a data directory");
        let mut config =
            Config { data_dir: data_dir.path().to_path_buf(), database_url: Some(database_url.clone()), ..Config::default() };
        config.ingest.max_body_bytes = MAX_BODY_BYTES;
        config.ingest.max_decompressed_bytes = MAX_DECOMPRESSED_BYTES;
        // The CrowdSec fixtures were recorded on 2026-11-25 and are replayed with their own
        // timestamps; a ten-year window keeps them acceptable for the life of this repository.
        config.ingest.max_signal_age_days = 3650;
        edit(&mut config);
        config.validate().expect("test configuration is invalid");
        let state = palisade_server::cli::build_state(&config).await.expect("cannot build the application state");
        let router = palisade_server::http::router(state.clone()).layer(MockConnectInfo(PEER));
        TestApp { state, label, router, database_url, _db: None, _data_dir: data_dir }
    }

    /// Sends one request and collects the whole answer. Every answer, success or error, must
    /// carry an `x-request-id` header.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let what = format!("{} {} on {}", request.method(), request.uri(), self.label);
        let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("cannot read the response body").to_bytes();
        let reply = Reply { what, status, headers, body };
        assert!(reply.headers.contains_key("x-request-id"), "{}: no x-request-id header", reply.what);
        reply
    }

    /// `GET path`, with a bearer token when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(request(Method::GET, path, token, &[], Body::empty())).await
    }

    /// `POST path` with a JSON body, with a bearer token when given.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.post_raw(path, token, &[], body.to_string().into_bytes()).await
    }

    /// `POST path` with raw body bytes and extra headers, declared as JSON.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        self.send(request(Method::POST, path, token, headers, Body::from(body))).await
    }

    /// A new admin token, created the way `palisade-server admin token create` does.
    pub async fn admin_token(&self) -> String {
        palisade_server::manage::create_admin_token(self.state.store.as_ref()).await.expect("cannot create an admin token")
    }

    /// A machine stored directly (password [`MACHINE_PASSWORD`]) with a token from the server's
    /// own keys: authenticated requests without paying an argon2 hash and a login per test.
    pub async fn machine(&self, login: &str) -> TestMachine {
        let machine = NewMachine {
            machine_id: login.to_string(),
            password_hash: machine_password_hash().await,
            sensor: false,
            created_by: CreatedBy::Register,
            created_at: OffsetDateTime::now_utc(),
        };
        let key = self.state.store.create_machine(&machine).await.expect("cannot store a machine");
        let token = self.state.jwt.issue(key, login, OffsetDateTime::now_utc()).expect("cannot issue a token").token;
        TestMachine { login: login.to_string(), key, token }
    }
}

/// A machine made by [`TestApp::machine`].
pub struct TestMachine {
    /// Login (`machine_id`).
    pub login: String,
    /// Internal id.
    pub key: MachineKey,
    /// A valid token.
    pub token: String,
}

async fn machine_password_hash() -> String {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_init(|| async {
        palisade_server::auth::password::hash(MACHINE_PASSWORD.to_string()).await.expect("cannot hash the test password")
    })
    .await
    .clone()
}

/// A request as CrowdSec sends it: JSON content type, optional bearer token, extra headers.
pub fn request(method: Method, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Body) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).expect("invalid test request")
}

/// A collected response.
pub struct Reply {
    /// Method, path and backend, for assertion messages.
    pub what: String,
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.text()))
    }

    /// Asserts the status and a JSON body, and returns the body.
    #[track_caller]
    pub fn expect_ok(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}: {}", self.what, self.text());
        self.expect_json_content_type();
        self.json()
    }

    /// Asserts a client error with our error contract: the given 4xx status, a JSON body with
    /// the stable `code`, a `message`, and a `request_id` equal to the `x-request-id` header.
    /// Returns the body.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> Value {
        assert!(status.is_client_error(), "tests only expect client errors, not {status}");
        assert_eq!(self.status, status, "{}: {}", self.what, self.text());
        self.expect_json_content_type();
        let body = self.json();
        assert_eq!(body["code"], code, "{}: {body}", self.what);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}: no message in {body}", self.what);
        let header = self.headers.get("x-request-id").and_then(|v| v.to_str().ok());
        assert!(
            body["request_id"].as_str().is_some_and(|id| Some(id) == header),
            "{}: request_id {body} vs {header:?}",
            self.what
        );
        body
    }

    #[track_caller]
    fn expect_json_content_type(&self) {
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(content_type.starts_with("application/json"), "{}: content type {content_type:?}", self.what);
    }
}

/// A CrowdSec 1.4.6 signal item about `ip`, timed just now.
pub fn signal(ip: &str, scenario: &str) -> Value {
    let stop = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let start = stop - time::Duration::seconds(2);
    serde_json::json!({
        "machine_id": "harness-agent",
        "message": format!("Ip {ip} performed '{scenario}' (6 events over 2s)"),
        "scenario": scenario,
        "scenario_hash": "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f",
        "scenario_trust": "certified",
        "scenario_version": "0.1",
        "source": {"ip": ip, "scope": "Ip", "value": ip},
        "start_at": start.format(&Rfc3339).expect("formattable time"),
        "stop_at": stop.format(&Rfc3339).expect("formattable time"),
    })
}

/// A CrowdSec 1.4.6 fixture body, by file name.
pub fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/crowdsec-1.4.6").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// A CrowdSec 1.4.6 fixture body parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}

/// `value` added to the community list as the consensus worker adds it: by `rule`, listed now
/// for a day, as an `ip` or (with a `/`) a `range`.
pub fn listing(value: &str, scenario: &str, rule: Rule) -> ListOp {
    let now = OffsetDateTime::now_utc();
    ListOp::Add(ListEntry {
        list: "community".into(),
        value: list_target(value).expect("an address or a range"),
        scope: if value.contains('/') { Scope::Range } else { Scope::Ip },
        scenario: scenario.into(),
        remediation: Remediation::Ban,
        rule,
        listed_at: now,
        expires_at: now + time::Duration::hours(24),
        seq: 0,
    })
}

/// `value` removed from the community list by a delisting.
pub fn delisting(value: &str) -> ListOp {
    ListOp::Remove {
        list: "community".into(),
        value: list_target(value).expect("an address or a range"),
        reason: "delisted".into(),
    }
}

/// Commits engine target states and list changes in one step, the way the consensus worker
/// does. The app's served lists do not see the changes until [`commit_lists`] or a refresh.
pub async fn commit_consensus(app: &TestApp, targets: Vec<(IpNet, Option<TargetState>)>, list_ops: Vec<ListOp>) {
    let commit = ConsensusCommit {
        watermark: 0,
        machines: vec![],
        targets,
        done_requests: vec![],
        list_ops,
        at: OffsetDateTime::now_utc(),
    };
    app.state.store.commit_consensus(&commit).await.expect("cannot commit a consensus step");
}

/// Commits list changes the way the consensus worker does, then lets the app's lists catch up
/// (the background poller does this in a running server).
pub async fn commit_lists(app: &TestApp, list_ops: Vec<ListOp>) {
    commit_consensus(app, vec![], list_ops).await;
    app.state.distribution.lists.refresh_all().await.expect("cannot refresh the lists");
}

/// An account with an API key, made through the admin API. Returns the key.
pub async fn api_key(app: &TestApp, admin: &str, account: &str) -> String {
    app.post("/v1/admin/accounts", Some(admin), &serde_json::json!({"name": account})).await;
    let created = app
        .post(&format!("/v1/admin/accounts/{account}/api-keys"), Some(admin), &serde_json::json!({}))
        .await
        .expect_ok(StatusCode::CREATED);
    created["key"].as_str().expect("key is a string").to_string()
}

/// [`api_key`], with the account put on `tier` (and the key cache cleared so it applies at once).
pub async fn api_key_on_tier(app: &TestApp, admin: &str, account: &str, tier: &str) -> String {
    let key = api_key(app, admin, account).await;
    palisade_server::manage::set_account_tier(app.state.store.as_ref(), &app.state.quotas.tiers, account, tier)
        .await
        .expect("tier");
    app.state.quotas.api_keys.clear();
    key
}

/// `GET path` with an `x-api-key` header.
pub async fn get_with_key(app: &TestApp, path: &str, key: &str) -> Reply {
    app.send(request(Method::GET, path, None, &[("x-api-key", key)], Body::empty())).await
}

/// The lines of a served list, as a set.
pub fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

/// The operator's console overview page, signed in with `admin`.
pub async fn operator_overview(app: &TestApp, admin: &str) -> String {
    const HOST: &str = "palisade.test";
    let sign_in = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, format!("http://{HOST}"))
        .body(Body::from(format!("token={admin}")))
        .expect("a valid request");
    let signed_in = app.send(sign_in).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}: {}", signed_in.what, signed_in.text());
    let cookie = signed_in.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).expect("a session cookie");
    let cookie = cookie.split(';').next().unwrap_or_default().to_string();
    let page = axum::http::Request::builder()
        .uri("/console/operator")
        .header(header::HOST, HOST)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("a valid request");
    let reply = app.send(page).await;
    assert_eq!(reply.status, StatusCode::OK, "{}: {}", reply.what, reply.text());
    reply.text()
}

/// A tier with `day` lookups a day (30 times that a month), generous rates, and the given lists
/// with their caps (0: the whole list).
pub fn tier(day: u64, lists: &[(&str, u64)]) -> palisade_server::limits::Tier {
    palisade_server::limits::Tier {
        lookups_per_day: day,
        lookups_per_month: day * 30,
        rate_per_sec: 1000.0,
        burst: 1000,
        bulk_max: 10,
        blocklists: lists.iter().map(|(name, cap)| (name.to_string(), *cap)).collect(),
    }
}
