//! External feeds through the admin API and the feeds job, on every backend: a test HTTP server
//! on 127.0.0.1:0 serves real-format fixtures of each kind (`tests/fixtures/feeds/`: comments,
//! CIDRs, IPv6, garbage lines) with `ETag`s. Entries arrive with the feed as their scenario; a
//! second refresh is a conditional request answered 304 that reloads nothing; an error status,
//! an HTML page, an unreachable host and an oversized body each keep the last good copy and say
//! why (admin API, `/metrics`, the console's overview); never-block values never arrive; a value the source drops is
//! removed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_server::domain::net::display_target;
use palisade_server::store::Store;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{TestApp, apps, operator_overview};

/// The API key the upstream Palisade expects.
const UPSTREAM_KEY: &str = "pk_upstream_0123456789";

/// What the test server answers for one path.
#[derive(Clone)]
enum Answer {
    /// 200 with this body and `ETag`, or 304 to a request that names the `ETag`.
    Body { text: String, etag: String },
    /// This status, with a short text body.
    Status(StatusCode),
    /// 200 with this body streamed in chunks, without a `Content-Length`.
    Streamed(String),
}

/// A list to delete from a store (see [`Source::delete_while_serving`]).
type Deletion = (Arc<dyn Store>, String);

/// One request the test server received.
#[derive(Debug, Clone)]
struct Hit {
    if_none_match: Option<String>,
    status: StatusCode,
}

/// A test HTTP server: what each path answers, and the requests it received.
#[derive(Clone, Default)]
struct Source {
    answers: Arc<Mutex<BTreeMap<String, Answer>>>,
    hits: Arc<Mutex<BTreeMap<String, Vec<Hit>>>>,
    /// When set, the list of this name is deleted from this store while its body is served.
    delete_while_serving: Arc<Mutex<Option<Deletion>>>,
    addr: Option<SocketAddr>,
}

impl Source {
    async fn start() -> Source {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("cannot bind the test source");
        let source = Source { addr: Some(listener.local_addr().expect("address")), ..Source::default() };
        let router = Router::new().route("/{name}", axum::routing::get(answer)).with_state(source.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        source
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr.expect("started"))
    }

    fn set(&self, name: &str, answer: Answer) {
        self.answers.lock().expect("lock").insert(name.into(), answer);
    }

    fn serve(&self, name: &str, text: &str, etag: &str) {
        self.set(name, Answer::Body { text: text.into(), etag: format!("\"{etag}\"") });
    }

    fn hits(&self, name: &str) -> Vec<Hit> {
        self.hits.lock().expect("lock").get(name).cloned().unwrap_or_default()
    }
}

async fn answer(State(source): State<Source>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let deletion = source.delete_while_serving.lock().expect("lock").clone();
    if let Some((store, list)) = deletion.filter(|(_, list)| *list == name) {
        store.delete_custom_list(&list, OffsetDateTime::now_utc()).await.expect("delete while serving");
    }
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let answer = source.answers.lock().expect("lock").get(&name).cloned();
    let key_ok = headers.get("x-api-key").is_some_and(|v| v == UPSTREAM_KEY);
    let response = match answer {
        _ if name == "upstream" && !key_ok => (StatusCode::FORBIDDEN, "an API key is required").into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Answer::Status(status)) => (status, "failing on purpose").into_response(),
        Some(Answer::Body { etag, .. }) if if_none_match.as_deref() == Some(etag.as_str()) => {
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
        }
        Some(Answer::Body { text, etag }) => (StatusCode::OK, [(header::ETAG, etag)], text).into_response(),
        Some(Answer::Streamed(text)) => {
            let chunks: Vec<Result<String, std::io::Error>> =
                text.as_bytes().chunks(512).map(|c| Ok(String::from_utf8_lossy(c).into_owned())).collect();
            Response::new(Body::from_stream(futures::stream::iter(chunks)))
        }
    };
    source.hits.lock().expect("lock").entry(name).or_default().push(Hit { if_none_match, status: response.status() });
    response
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/feeds").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The values of a list, as stored.
async fn values(app: &TestApp, list: &str) -> BTreeSet<String> {
    let entries = app.state.store.list_entries(list).await.expect("entries");
    for entry in &entries {
        assert_eq!(entry.scenario, list, "{}: a feed's entries carry its name", app.label);
    }
    entries.iter().map(|e| display_target(e.value)).collect()
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

async fn add_feed(app: &TestApp, admin: &str, body: Value) -> Value {
    app.post("/v1/admin/feeds", Some(admin), &body).await.expect_ok(StatusCode::CREATED)
}

async fn refresh(app: &TestApp, admin: &str, name: &str) -> Value {
    app.post(&format!("/v1/admin/feeds/{name}/refresh"), Some(admin), &json!({})).await.expect_ok(StatusCode::OK)
}

async fn feed_view(app: &TestApp, admin: &str, name: &str) -> Value {
    let all = app.get("/v1/admin/feeds", Some(admin)).await.expect_ok(StatusCode::OK);
    all.as_array().expect("array").iter().find(|f| f["name"] == name).cloned().unwrap_or_else(|| panic!("no feed {name}"))
}

/// The fixtures of every kind, their feed names, formats and the values that must arrive (never-
/// block space, the too-broad /3 and the garbage lines left out).
fn kinds() -> Vec<(&'static str, &'static str, &'static str, BTreeSet<String>)> {
    vec![
        (
            "firehol-level1",
            "firehol_level1.netset",
            "netset",
            set(&[
                "1.10.16.0/20",
                "1.19.0.0/16",
                "1.32.128.0/18",
                "2.56.192.0/22",
                "5.134.128.0/19",
                "27.126.160.0/20",
                "31.24.81.0/24",
                "45.14.71.0/24",
                "185.224.128.17",
                "223.254.0.0/16",
            ]),
        ),
        (
            "spamhaus-drop",
            "drop.txt",
            "spamhaus",
            set(&[
                "1.10.16.0/20",
                "1.19.0.0/16",
                "1.32.128.0/18",
                "2.56.192.0/22",
                "5.134.128.0/19",
                "27.126.160.0/20",
                "31.24.81.0/24",
                "45.14.71.0/24",
                "2a06:e480::/29",
                "2a0d:8480::/29",
            ]),
        ),
        (
            "ipsum",
            "ipsum.txt",
            "ipsum",
            set(&["185.224.128.17", "80.94.95.115", "218.92.0.112", "45.148.10.121", "194.0.234.37", "92.118.39.95"]),
        ),
        (
            "feodo",
            "feodo_ipblocklist.csv",
            "csv",
            set(&["162.243.103.246", "50.16.16.211", "2604:a880:400:d1::9d4:f001", "139.59.80.108"]),
        ),
        (
            "blocklist-de",
            "blocklist.txt",
            "auto",
            // 81.2.69.160 and 81.2.69.0/28 lie in the allowlisted 81.2.69.0/24.
            set(&["1.234.58.162", "103.142.21.30", "2001:470:1f0b:13a::2", "2400:cb00::/32", "89.248.165.74"]),
        ),
        ("upstream", "palisade.txt", "palisade", set(&["45.33.32.156", "89.160.20.128/28", "2a01:4f8:c17:b8f::2"])),
    ]
}

#[tokio::test]
async fn feeds_of_every_kind_arrive_then_304_reloads_nothing_and_failures_keep_the_last_good_copy() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let source = Source::start().await;
        // An operator allowlist entry; special-purpose ranges (FireHOL's bogons) are never-block too.
        let now = OffsetDateTime::now_utc();
        app.state.store.add_allowlist(&["81.2.69.0/24".into()], "custom", "test", now).await.expect("allowlist");

        for (name, file, format, expected) in kinds() {
            source.serve(name, &fixture(file), &format!("{name}-v1"));
            let mut body = json!({"name": name, "url": source.url(name), "format": format, "visibility": "public"});
            if name == "upstream" {
                body["api_key"] = json!(UPSTREAM_KEY);
            }
            let created = add_feed(&app, &admin, body).await;
            assert_eq!(created["has_api_key"], name == "upstream", "{label} {name}");
            assert!(!created.to_string().contains(UPSTREAM_KEY), "{label}: the API key is never shown back");
            let outcome = refresh(&app, &admin, name).await;
            assert_eq!(outcome["outcome"], "loaded", "{label} {name}: {outcome}");
            assert_eq!(values(&app, name).await, expected, "{label} {name}");
            assert_eq!(outcome["feed"]["entries"], expected.len(), "{label} {name}");
            assert_eq!(outcome["feed"]["up"], true, "{label} {name}");
        }
        let firehol = refresh_counts(&app, &admin, &source, "firehol-level1").await;
        assert_eq!(firehol, ("not_modified".to_string(), 2), "{label}: a 304 the second time");

        // Every kind: the second refresh is a conditional request, answered 304, reloading nothing.
        for (name, ..) in kinds().into_iter().skip(1) {
            let seq = app.state.store.list_seq(name).await.expect("seq");
            let outcome = refresh(&app, &admin, name).await;
            assert_eq!(outcome["outcome"], "not_modified", "{label} {name}: {outcome}");
            let hits = source.hits(name);
            assert_eq!(hits.len(), 2, "{label} {name}: {hits:?}");
            assert_eq!(hits[1].if_none_match.as_deref(), Some(format!("\"{name}-v1\"").as_str()), "{label} {name}");
            assert_eq!(hits[1].status, StatusCode::NOT_MODIFIED, "{label} {name}");
            assert_eq!(app.state.store.list_seq(name).await.expect("seq"), seq, "{label} {name}: nothing reloaded");
        }

        // A failing source: the last good copy stands, and the admin API and /metrics say why.
        let spamhaus = kinds()[1].3.clone();
        let seq = app.state.store.list_seq("spamhaus-drop").await.expect("seq");
        for (answer, why) in [
            (Answer::Status(StatusCode::INTERNAL_SERVER_ERROR), "the source answered HTTP 500 Internal Server Error"),
            (
                Answer::Body { text: fixture("outage.html"), etag: "\"page\"".into() },
                "the answer is an HTML or XML page, not a list",
            ),
            (Answer::Body { text: "Service Unavailable\nretry later\n".into(), etag: "\"text\"".into() }, "none of its 2 lines"),
        ] {
            source.set("spamhaus-drop", answer);
            let outcome = refresh(&app, &admin, "spamhaus-drop").await;
            assert_eq!(outcome["outcome"], "failed", "{label}: {outcome}");
            let view = feed_view(&app, &admin, "spamhaus-drop").await;
            let error = view["last_error"].as_str().unwrap_or_default();
            assert!(error.starts_with(why), "{label}: {error}");
            assert_eq!((view["up"].clone(), view["entries"].clone()), (json!(false), json!(spamhaus.len())), "{label}: {view}");
            assert_eq!(values(&app, "spamhaus-drop").await, spamhaus, "{label}: the last good copy stands");
            assert_eq!(app.state.store.list_seq("spamhaus-drop").await.expect("seq"), seq, "{label}: nothing written");
            let metrics = app.get("/metrics", None).await.text();
            assert!(metrics.contains("palisade_feed_up{feed=\"spamhaus-drop\"} 0"), "{label}: {metrics}");
            assert!(metrics.contains("palisade_feed_failures_total{feed=\"spamhaus-drop\"}"), "{label}");
        }
        assert_eq!(feed_view(&app, &admin, "spamhaus-drop").await["failures"], 3, "{label}");

        // The source recovers without one range: it is removed, the rest stays; the feed is up.
        let trimmed: String =
            fixture("drop.txt").lines().filter(|l| !l.starts_with("1.19.0.0/16")).map(|l| format!("{l}\n")).collect();
        source.serve("spamhaus-drop", &trimmed, "spamhaus-drop-v2");
        let outcome = refresh(&app, &admin, "spamhaus-drop").await;
        assert_eq!(
            (outcome["outcome"].as_str(), outcome["added"].as_u64(), outcome["removed"].as_u64()),
            (Some("loaded"), Some(0), Some(1)),
            "{label}: {outcome}"
        );
        let mut expected = spamhaus.clone();
        expected.remove("1.19.0.0/16");
        assert_eq!(values(&app, "spamhaus-drop").await, expected, "{label}");
        let view = feed_view(&app, &admin, "spamhaus-drop").await;
        assert_eq!(
            (view["up"].clone(), view["last_error"].clone(), view["failures"].clone()),
            (json!(true), Value::Null, json!(0)),
            "{label}"
        );
        let metrics = app.get("/metrics", None).await.text();
        assert!(metrics.contains("palisade_feed_up{feed=\"spamhaus-drop\"} 1"), "{label}");
        assert!(metrics.contains("palisade_feed_entries{feed=\"spamhaus-drop\"} 9"), "{label}");

        // The upstream Palisade refuses a request without the key.
        let keyless =
            add_feed(&app, &admin, json!({"name": "upstream-nokey", "url": source.url("upstream"), "format": "palisade"})).await;
        assert_eq!(keyless["has_api_key"], false);
        let outcome = refresh(&app, &admin, "upstream-nokey").await;
        assert_eq!(outcome["feed"]["last_error"], "the source answered HTTP 403 Forbidden", "{label}: {outcome}");

        // The console's operator overview shows every feed and why one fails.
        let overview = operator_overview(&app, &admin).await;
        for (name, ..) in kinds() {
            assert!(overview.contains(&format!("<th scope=\"row\">{name}</th>")), "{label}: {name} not on the overview");
        }
        assert!(overview.contains("<strong>failing</strong> (1): the source answered HTTP 403 Forbidden"), "{label}: {overview}");
        drop(source);
    }
}

/// Refreshes `name` and returns the outcome and how many requests the source has received.
async fn refresh_counts(app: &TestApp, admin: &str, source: &Source, name: &str) -> (String, usize) {
    let seq = app.state.store.list_seq(name).await.expect("seq");
    let outcome = refresh(app, admin, name).await;
    assert_eq!(app.state.store.list_seq(name).await.expect("seq"), seq, "{}: a 304 writes nothing", app.label);
    (outcome["outcome"].as_str().unwrap_or_default().to_string(), source.hits(name).len())
}

#[tokio::test]
async fn an_unreachable_source_or_an_oversized_body_is_refused_without_a_partial_load() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let source = Source::start().await;

        // A port nothing listens on.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead = format!("http://{}/list.txt", closed.local_addr().expect("address"));
        drop(closed);
        add_feed(&app, &admin, json!({"name": "gone", "url": dead, "format": "plain"})).await;
        let outcome = refresh(&app, &admin, "gone").await;
        assert_eq!(outcome["outcome"], "failed", "{label}: {outcome}");
        let error = outcome["feed"]["last_error"].as_str().unwrap_or_default();
        assert!(error.starts_with("cannot fetch it"), "{label}: {error}");
        assert!(values(&app, "gone").await.is_empty(), "{label}");

        // 300 addresses (about 4 KiB) against a 1 KiB cap: declared, then streamed without a length.
        let big: String = (0..300).map(|i| format!("45.{}.{}.{}\n", 100 + i / 250, i % 250, 1 + i % 200)).collect();
        assert!(big.len() > 2048);
        source.serve("big", &big, "big-v1");
        source.set("big-stream", Answer::Streamed(big.clone()));
        for name in ["big", "big-stream"] {
            add_feed(&app, &admin, json!({"name": name, "url": source.url(name), "format": "plain", "max_bytes": 1024})).await;
            let outcome = refresh(&app, &admin, name).await;
            assert_eq!(outcome["outcome"], "failed", "{label} {name}: {outcome}");
            assert_eq!(outcome["feed"]["last_error"], "it is larger than the limit of 1024 bytes", "{label} {name}");
            assert!(values(&app, name).await.is_empty(), "{label} {name}: nothing of it applied");
        }
        // The same body is welcome under the default cap, and refused whole above an entry cap.
        add_feed(&app, &admin, json!({"name": "big-ok", "url": source.url("big"), "format": "plain"})).await;
        assert_eq!(refresh(&app, &admin, "big-ok").await["added"], 300, "{label}");
        add_feed(&app, &admin, json!({"name": "big-capped", "url": source.url("big"), "format": "plain", "max_entries": 100}))
            .await;
        let outcome = refresh(&app, &admin, "big-capped").await;
        assert_eq!(outcome["feed"]["last_error"], "it holds 300 entries, more than the limit of 100", "{label}");

        // A feed removed while its copy is read: nothing of the copy outlives the list.
        source.serve("racy", &fixture("drop.txt"), "racy-v1");
        add_feed(&app, &admin, json!({"name": "racy", "url": source.url("racy"), "format": "spamhaus"})).await;
        *source.delete_while_serving.lock().expect("lock") = Some((app.state.store.clone(), "racy".into()));
        let feed = app.state.store.feeds().await.expect("feeds").into_iter().find(|f| f.definition.name == "racy").expect("racy");
        let refresh = app.state.feeds.refresh(&feed, OffsetDateTime::now_utc(), false).await.expect("refresh");
        assert_eq!(refresh, palisade_server::feeds::Refresh::Failed("the feed was removed during the refresh".into()), "{label}");
        assert!(values(&app, "racy").await.is_empty(), "{label}: no orphaned entries");

        // Removing a feed removes its list; it is then unknown.
        let deleted = app
            .send(crate::common::request(axum::http::Method::DELETE, "/v1/admin/feeds/big-ok", Some(&admin), &[], Body::empty()))
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{label}: {}", deleted.text());
        assert!(values(&app, "big-ok").await.is_empty(), "{label}");
        app.post("/v1/admin/feeds/big-ok/refresh", Some(&admin), &json!({}))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
        drop(source);
    }
}

#[tokio::test]
async fn the_job_refreshes_feeds_when_due_and_refused_requests_name_the_field() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let source = Source::start().await;
        source.serve("level1", &fixture("firehol_level1.netset"), "v1");
        add_feed(&app, &admin, json!({"name": "level1", "url": source.url("level1"), "format": "netset", "every_secs": 900}))
            .await;

        let now = OffsetDateTime::now_utc();
        let jobs = |at| palisade_server::jobs::feeds::run_once(&app.state.feeds, at);
        let first = jobs(now).await.expect("pass");
        assert_eq!(first.refreshed.len(), 1, "{label}: never attempted, so due");
        assert!(first.changed(), "{label}");
        assert_eq!(values(&app, "level1").await.len(), 10, "{label}");
        assert!(jobs(now + time::Duration::minutes(5)).await.expect("pass").refreshed.is_empty(), "{label}: not due yet");
        let later = jobs(now + time::Duration::minutes(15)).await.expect("pass");
        assert_eq!(later.refreshed[0].1.name(), "not_modified", "{label}");
        assert_eq!(source.hits("level1").len(), 2, "{label}");
        // Past half the entries' lifetime, a refresh asks unconditionally and renews them.
        let renew = jobs(now + time::Duration::days(4)).await.expect("pass");
        match &renew.refreshed[0].1 {
            palisade_server::feeds::Refresh::Loaded(report) => assert_eq!((report.renewed, report.added), (10, 0), "{label}"),
            other => panic!("{label}: expected a load, got {other:?}"),
        }
        assert_eq!(source.hits("level1")[2].if_none_match, None, "{label}: unconditional");

        for (body, field) in [
            (json!({"name": "x", "url": "ftp://example.org/x", "format": "plain"}), "url"),
            (json!({"name": "x", "url": source.url("x"), "format": "xml"}), "format"),
            (json!({"name": "x", "url": source.url("x"), "every_secs": 10}), "every_secs"),
            (json!({"name": "level1", "url": source.url("x")}), ""),
        ] {
            let reply = app.post("/v1/admin/feeds", Some(&admin), &body).await;
            if field.is_empty() {
                reply.expect_error(StatusCode::CONFLICT, "conflict");
            } else {
                let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
                assert_eq!(error["fields"][0]["field"], field, "{label}: {error}");
            }
        }
        drop(source);
    }
}
