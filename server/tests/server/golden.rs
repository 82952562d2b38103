//! The golden test: the wire output of every route, recorded for one fixed world and compared on
//! every run, so that moving code around cannot change what clients receive unnoticed.
//!
//! It builds the world through the API itself, on the in-process router (`common`): an account
//! with an enrollment key, operator-made machines (one a sensor) and CrowdSec-registered ones,
//! logins and enrollments with the CrowdSec 1.4.6 fixture bodies, the fixture signal waves (moved
//! to public addresses), canaries and never-block ranges, two runs of the consensus worker (a
//! listing by the sensor, then an upheld false positive), operator lists with entries and
//! subscribers, API keys on two tiers, the decision streams and their presigned links, lookups,
//! the console signed in as the operator and as an account, and at the end access taken back
//! (an admin token revoked, a machine disabled, reset and deleted, every console session ended),
//! then the lifecycle commands (enrollment keys listed and revoked, a delisting, accounts
//! deleted, the audit log read). Every answer on the way is
//! recorded: status, headers, body, normalised as `golden/normalise.rs` documents (generated
//! secrets, request ids, times of the run and countdowns become placeholders; nothing is sorted).
//!
//! The recording is `golden/routes.txt`, shared by every backend: the test runs on SQLite, and on
//! PostgreSQL too when `DATABASE_URL` is set, and both must answer exactly the same (PostgreSQL
//! is compared with SQLite's run, in update mode too). After an intended change of the wire
//! output, rewrite it with
//!
//! ```text
//! GOLDEN_UPDATE=1 cargo test -p palisade-server --test server golden::
//! ```
//!
//! and review the diff. Without `GOLDEN_UPDATE` a difference fails with the first differing
//! answers; the whole run is written to `target/tmp/golden/<backend>.txt` for a closer look.
//!
//! Coverage is checked too: every path and method of the OpenAPI document, and each route the
//! document leaves out (listed in [`UNDOCUMENTED`]), must have been answered with a 2xx or 3xx
//! at least once, so a new route cannot slip past this test.
//!
//! Known limits: a run that crosses midnight UTC fails (per-day counts and chart labels move);
//! the benchmark-only route is not served here.

use crate::common;
mod json;
mod normalise;
mod recording;

use std::collections::BTreeMap;

use axum::http::Method;
use common::{Reply, TestApp, fixture, fixture_json};
use palisade_server::auth::links::{LinkKind, LinkTarget};
use palisade_server::auth::secrets::visible_prefix;
use palisade_server::config::Config;
use palisade_server::jobs::consensus::{ConsensusWorker, WorkerConfig};
use palisade_server::limits::Tier;
use palisade_server::testing::TestDb;
use recording::{Call, Exercised, Recorder, Shows, compare};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Routes the OpenAPI document does not describe, by method and path template. Each must be
/// answered with a 2xx or 3xx by the script, like every documented one.
const UNDOCUMENTED: &[(&str, &str)] = &[
    ("GET", "/console"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/login/link"),
    ("POST", "/console/login/link"),
    ("POST", "/console/logout"),
    ("GET", "/console/account"),
    ("POST", "/console/account/enroll-keys"),
    ("POST", "/console/account/enroll-keys/revoke"),
    ("POST", "/console/account/api-keys"),
    ("POST", "/console/account/api-keys/revoke"),
    ("POST", "/console/account/pool"),
    ("GET", "/console/ips"),
    ("GET", "/console/operator"),
    ("GET", "/console/operator/machines"),
    ("POST", "/console/operator/machines/action"),
    ("GET", "/console/operator/community"),
    ("POST", "/console/operator/community/delist"),
    ("GET", "/console/operator/canaries"),
    ("POST", "/console/operator/canaries"),
    ("GET", "/console/operator/never-block"),
    ("POST", "/console/operator/never-block"),
    ("GET", "/console/operator/accounts"),
    ("POST", "/console/operator/accounts"),
    ("GET", "/console/operator/audit"),
    ("GET", "/console/assets/console.css"),
    ("GET", "/console/assets/console.js"),
    ("GET", "/docs"),
    ("GET", "/docs/"),
];

/// Password of the machines registered the CrowdSec way (64 characters, as cscli makes them).
const LAPI_PASSWORD: &str = "GoldenLapiPassword0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

/// The `Host` a browser sends to the console.
const HOST: &str = "palisade.test";
/// The `Origin` of the console's own forms.
const ORIGIN: &str = "http://palisade.test";

/// The configuration of the world: the defaults, plus a tier small enough to exhaust in two
/// lookups and a change log short enough that an old cursor is refused.
fn world_config(config: &mut Config) {
    config.tiers.insert(
        "trial".into(),
        Tier {
            lookups_per_day: 2,
            lookups_per_month: 60,
            rate_per_sec: 10.0,
            burst: 10,
            bulk_max: 2,
            blocklists: BTreeMap::from([("community".to_string(), 1)]),
        },
    );
    config.distribution.retained_changes = 3;
}

#[tokio::test]
async fn every_route_answers_as_recorded() {
    let update = std::env::var("GOLDEN_UPDATE").is_ok_and(|v| !v.is_empty() && v != "0");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/server/golden/routes.txt");
    let mut recorded: Option<(String, String)> = None;
    for db in TestDb::all().await {
        let app = TestApp::start(db, &world_config).await;
        let (text, exercised) = run_world(&app).await;
        check_coverage(&exercised);
        let scratch = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("golden");
        std::fs::create_dir_all(&scratch).expect("cannot create the scratch directory");
        std::fs::write(scratch.join(format!("{}.txt", app.label)), &text).expect("cannot write the scratch recording");
        match &recorded {
            // The backends must answer alike: the second compares with the first.
            Some((first, label)) => {
                if let Err(report) = compare(first, &text) {
                    panic!("{} answers differently from {label}:\n{report}", app.label);
                }
            }
            None if update => {
                std::fs::write(&path, &text).expect("cannot write the recording");
                recorded = Some((text, app.label.to_string()));
            }
            None => {
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                if let Err(report) = compare(&committed, &text) {
                    panic!(
                        "the answers on {} differ from {}:\n{report}\nThe whole run is in {}. If the change is intended, \
                         rewrite the recording with `GOLDEN_UPDATE=1 cargo test -p palisade-server --test server golden::` and review it.",
                        app.label,
                        path.display(),
                        scratch.join(format!("{}.txt", app.label)).display()
                    );
                }
                recorded = Some((text, app.label.to_string()));
            }
        }
    }
}

/// Fails when a documented operation, or one of [`UNDOCUMENTED`], was never answered with a
/// 2xx or 3xx.
fn check_coverage(exercised: &[Exercised]) {
    let doc = palisade_server::http::openapi();
    let mut routes: Vec<(Method, String)> = Vec::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::OPTIONS, &item.options),
            (Method::HEAD, &item.head),
            (Method::PATCH, &item.patch),
            (Method::TRACE, &item.trace),
        ];
        routes.extend(operations.into_iter().filter(|(_, op)| op.is_some()).map(|(method, _)| (method, path.clone())));
    }
    let documented = routes.len();
    routes.extend(UNDOCUMENTED.iter().map(|(method, path)| (method.parse().expect("a method"), path.to_string())));
    let missing: Vec<String> = routes
        .iter()
        .filter(|(method, template)| {
            !exercised.iter().any(|e| {
                e.method == *method
                    && (e.status.is_success() || e.status.is_redirection())
                    && best_template(&routes, &e.method, &e.path) == Some(template.as_str())
            })
        })
        .map(|(method, template)| format!("{method} {template}"))
        .collect();
    assert!(
        missing.is_empty(),
        "the golden script never got a 2xx/3xx from {} of {} routes ({documented} documented); add requests for:\n{}",
        missing.len(),
        routes.len(),
        missing.join("\n")
    );
}

/// The route template a request path falls under: literal segments beat `{parameters}`.
fn best_template<'r>(routes: &'r [(Method, String)], method: &Method, path: &str) -> Option<&'r str> {
    let segments: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .filter(|(m, _)| m == method)
        .filter_map(|(_, template)| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| part.starts_with('{') || part == segment);
            fits.then(|| (parts.iter().filter(|p| !p.starts_with('{')).count(), template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

fn str_of<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {value}"))
}

/// A fixture body with its redacted credentials replaced.
fn with_login(name: &str, machine_id: &str, password: &str) -> Value {
    let mut body = fixture_json(name);
    body["machine_id"] = json!(machine_id);
    body["password"] = json!(password);
    body
}

/// A fixture signal wave with its documentation-range attacker moved to a public address.
fn public_wave(name: &str) -> Vec<u8> {
    fixture(name).replace("203.0.113.", "45.33.32.").into_bytes()
}

/// The path and query of an absolute URL this server handed out.
fn local(app: &TestApp, url: &str) -> String {
    let base = app.state.public_url.to_string();
    let rest = url.strip_prefix(&base).unwrap_or_else(|| panic!("{url} is not under {base}"));
    format!("/{rest}")
}

/// The `value` of the input `id` in a console page.
fn input_value(reply: &Reply, id: &str) -> String {
    let text = reply.text();
    let start = format!("id=\"{id}\" readonly value=\"");
    let rest = text.split(&start).nth(1).unwrap_or_else(|| panic!("{}: no input {id}", reply.what));
    rest.split('"').next().unwrap_or_default().to_string()
}

/// The session's CSRF token in a console page.
fn csrf_of(reply: &Reply) -> String {
    let text = reply.text();
    let rest = text.split("name=\"csrf\" value=\"").nth(1).unwrap_or_else(|| panic!("{}: no CSRF token", reply.what));
    rest.split('"').next().unwrap_or_default().to_string()
}

/// `palisade_console=VALUE` from a sign-in answer, as a `Cookie` header value.
fn session_cookie(reply: &Reply) -> String {
    let set =
        reply.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("{}: no cookie", reply.what));
    set.split(';').next().unwrap_or_default().to_string()
}

async fn consensus_step(g: &mut Recorder<'_>, app: &TestApp, worker: &mut ConsensusWorker, why: &str) {
    let outcome = worker.run_once(OffsetDateTime::now_utc()).await.expect("a consensus step");
    // What the poller does in a running server.
    app.state.distribution.lists.refresh_all().await.expect("the lists catch up");
    g.note(&format!(
        "consensus step ({why}): {} signal(s) processed, {} listing(s), {} delisting(s)",
        outcome.processed, outcome.listed, outcome.delisted
    ));
}

/// Builds the world and records every answer; returns the recording and what was exercised.
async fn run_world(app: &TestApp) -> (String, Vec<Exercised>) {
    let mut g = Recorder::new(app);
    let admin = app.admin_token().await;
    g.norm.named(&admin, "<admin-token>");
    g.norm.named(&visible_prefix(&admin), "<admin-token-prefix>");

    // --- Operations, and the answers of the router itself --------------------------------------
    g.call("liveness", Call::get("/healthz")).await;
    g.call("readiness", Call::get("/readyz")).await;
    let openapi = g.call("the OpenAPI document", Call::get("/openapi.json").shows(Shows::Digest)).await;
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json")).expect("openapi.json"),
    )
    .expect("openapi.json is JSON");
    assert!(
        openapi.json() == committed,
        "/openapi.json does not serve the committed openapi/openapi.json (tests/server/openapi.rs says how to regenerate it)"
    );
    g.call("Prometheus metrics", Call::get("/metrics").shows(Shows::StatusAndContentType)).await;
    g.call("API docs", Call::get("/docs")).await;
    g.call("API docs page", Call::get("/docs/").shows(Shows::Digest)).await;
    g.call("fallback: no such route", Call::get("/no/such/route")).await;
    g.call("wrong method on a known route", Call::get("/v2/watchers")).await;
    g.call("caller's request id is echoed", Call::get("/no/such/route").header("x-request-id", "golden-request-0001")).await;
    g.call("admin route without credentials", Call::get("/v1/admin/accounts")).await;
    g.call("admin route with a token that is not an admin token", Call::get("/v1/admin/accounts").token("not-a-token")).await;

    // --- Accounts and operator-made machines ----------------------------------------------------
    g.call("create the account acme", Call::post("/v1/admin/accounts").token(&admin).json(&json!({"name": "acme"}))).await;
    g.call("create acme again", Call::post("/v1/admin/accounts").token(&admin).json(&json!({"name": "acme"}))).await;
    g.call(
        "create an account with an invalid name",
        Call::post("/v1/admin/accounts").token(&admin).json(&json!({"name": "bad name!"})),
    )
    .await;
    g.call("create the account globex", Call::post("/v1/admin/accounts").token(&admin).json(&json!({"name": "globex"}))).await;
    let enroll = g.call("enrollment key for acme", Call::post("/v1/admin/accounts/acme/enroll-keys").token(&admin)).await.json();
    let enroll_key = str_of(&enroll, "key").to_string();
    g.call("enrollment key for an unknown account", Call::post("/v1/admin/accounts/nobody/enroll-keys").token(&admin)).await;
    g.call("set acme's level", Call::put("/v1/admin/accounts/acme/level").token(&admin).json(&json!({"level": "verified"})))
        .await;
    g.call("set an unknown level", Call::put("/v1/admin/accounts/acme/level").token(&admin).json(&json!({"level": "royal"})))
        .await;
    let sensor = g
        .call(
            "operator machine sensor-1, a sensor",
            Call::post("/v1/admin/machines").token(&admin).json(&json!({"name": "sensor-1", "sensor": true})),
        )
        .await
        .json();
    let agent = g
        .call("operator machine agent-1", Call::post("/v1/admin/machines").token(&admin).json(&json!({"name": "agent-1"})))
        .await
        .json();
    g.call("operator machine agent-1 again", Call::post("/v1/admin/machines").token(&admin).json(&json!({"name": "agent-1"})))
        .await;
    g.call("operator machine with an invalid name", Call::post("/v1/admin/machines").token(&admin).json(&json!({"name": "a b"})))
        .await;

    // --- CrowdSec registration and login ------------------------------------------------------
    let register = with_login("register.request.json", "lapi-1", LAPI_PASSWORD);
    g.call("register lapi-1 (fixture body)", Call::post("/v2/watchers").json(&register)).await;
    g.call("register lapi-1 again with its password", Call::post("/v2/watchers").json(&register)).await;
    let other = with_login("register.request.json", "lapi-1", &LAPI_PASSWORD.replace("Golden", "Silver"));
    g.call("register lapi-1 with another password", Call::post("/v2/watchers").json(&other)).await;
    g.call(
        "register lapi-2 on v3",
        Call::post("/v3/watchers").json(&with_login("register.request.json", "lapi-2", LAPI_PASSWORD)),
    )
    .await;
    g.call(
        "register with an invalid id and a short password",
        Call::post("/v2/watchers").json(&json!({"machine_id": "x y", "password": "short"})),
    )
    .await;
    let login = |name: &str, machine: &str, password: &str| with_login(name, machine, password);
    let sensor_token = g
        .call(
            "log sensor-1 in (fixture: start-up, no scenarios)",
            Call::post("/v2/watchers/login").json(&login(
                "login.request.lapi-startup-empty-scenarios.json",
                "sensor-1",
                str_of(&sensor, "password"),
            )),
        )
        .await
        .json();
    let sensor_token = str_of(&sensor_token, "token").to_string();
    let agent_token = g
        .call(
            "log agent-1 in (fixture: token refresh, 35 scenarios)",
            Call::post("/v2/watchers/login")
                .json(&login("login.request.lapi-token-refresh.json", "agent-1", str_of(&agent, "password")))
                .described("fixture login.request.lapi-token-refresh.json as agent-1 with its generated password"),
        )
        .await
        .json();
    let agent_token = str_of(&agent_token, "token").to_string();
    let lapi_token = g
        .call(
            "log lapi-1 in on v3 (fixture: cscli capi status)",
            Call::post("/v3/watchers/login")
                .json(&login("login.request.cscli-capi-status.json", "lapi-1", LAPI_PASSWORD))
                .described("fixture login.request.cscli-capi-status.json as lapi-1"),
        )
        .await
        .json();
    let lapi_token = str_of(&lapi_token, "token").to_string();
    let lapi2_token = g
        .call(
            "log lapi-2 in",
            Call::post("/v2/watchers/login")
                .json(&json!({"machine_id": "lapi-2", "password": LAPI_PASSWORD, "scenarios": ["crowdsecurity/ssh-bf"]})),
        )
        .await
        .json();
    let lapi2_token = str_of(&lapi2_token, "token").to_string();
    g.call(
        "log in with a wrong password",
        Call::post("/v2/watchers/login").json(&json!({"machine_id": "lapi-1", "password": "wrong-password-0123456789"})),
    )
    .await;
    g.call("log in with malformed JSON", Call::post("/v2/watchers/login").raw("application/json", "{\"machine_id\":")).await;
    g.call("log in with a body of the wrong shape", Call::post("/v2/watchers/login").json(&json!({"machine_id": 7}))).await;

    // --- Enrollment ---------------------------------------------------------------------------
    let mut enroll_body = fixture_json("enroll.request.json");
    enroll_body["attachment_key"] = json!(enroll_key);
    g.call("enroll agent-1 (fixture body)", Call::post("/v2/watchers/enroll").token(&agent_token).json(&enroll_body)).await;
    g.call("enroll agent-1 again", Call::post("/v2/watchers/enroll").token(&agent_token).json(&enroll_body)).await;
    let mut overwrite = fixture_json("enroll.request.overwrite-no-name-no-tags.json");
    overwrite["attachment_key"] = json!(enroll_key);
    g.call(
        "enroll lapi-1 on v3 (fixture: overwrite, no name)",
        Call::post("/v3/watchers/enroll").token(&lapi_token).json(&overwrite),
    )
    .await;
    g.call(
        "enroll with the fixture's unknown key",
        Call::post("/v2/watchers/enroll").token(&lapi2_token).json(&fixture_json("enroll.request.json")),
    )
    .await;
    g.call("enroll without a token", Call::post("/v2/watchers/enroll").json(&enroll_body)).await;

    // --- Signals and metrics --------------------------------------------------------------------
    let wave1 = public_wave("signals.request.wave1.json");
    g.call(
        "sensor-1 pushes wave 1 (fixture)",
        Call::post("/v2/signals")
            .token(&sensor_token)
            .raw("application/json", wave1.clone())
            .described("fixture signals.request.wave1.json, 203.0.113.77 moved to 45.33.32.77"),
    )
    .await;
    let own = json!([
        common::signal("81.2.69.160", "crowdsecurity/http-probing"),
        common::signal("2a01:4f8:c17:b8f::2", "crowdsecurity/ssh-bf")
    ]);
    g.call(
        "sensor-1 pushes two signals made now",
        Call::post("/v2/signals")
            .token(&sensor_token)
            .json(&own)
            .described("two signals dated a few seconds ago: 81.2.69.160 and 2a01:4f8:c17:b8f::2"),
    )
    .await;
    g.call(
        "agent-1 pushes wave 2 on v3 (fixture)",
        Call::post("/v3/signals")
            .token(&agent_token)
            .raw("application/json", public_wave("signals.request.wave2.json"))
            .described("fixture signals.request.wave2.json, 203.0.113.78 moved to 45.33.32.78"),
    )
    .await;
    let mixed =
        json!([common::signal("45.33.32.78", "crowdsecurity/ssh-bf"), common::signal("192.0.2.1", "crowdsecurity/ssh-bf")]);
    g.call(
        "lapi-2 pushes one good and one reserved address",
        Call::post("/v2/signals")
            .token(&lapi2_token)
            .json(&mixed)
            .described("45.33.32.78 (valid) and 192.0.2.1 (documentation range)"),
    )
    .await;
    // Redelivered last: SQLite spends an id on each duplicate and PostgreSQL does not, so any
    // signal stored after it would carry a different id on each backend.
    g.call(
        "sensor-1 pushes wave 1 again",
        Call::post("/v2/signals").token(&sensor_token).raw("application/json", wave1).described("the same batch again"),
    )
    .await;
    g.call("a batch with no valid signal", Call::post("/v2/signals").token(&lapi2_token).json(&json!([{"scenario": "x"}]))).await;
    g.call("a signal body that is not an array", Call::post("/v2/signals").token(&lapi2_token).json(&json!({"scenario": "x"})))
        .await;
    g.call("an empty batch", Call::post("/v2/signals").token(&lapi2_token).json(&json!([]))).await;
    g.call(
        "a body over the size limit",
        Call::post("/v2/signals")
            .token(&lapi2_token)
            .raw("application/json", vec![b' '; common::MAX_BODY_BYTES + 1])
            .described("a body one byte over the limit"),
    )
    .await;
    g.call(
        "an unsupported content encoding",
        Call::post("/v2/signals").token(&lapi2_token).header("content-encoding", "br").raw("application/json", "[]"),
    )
    .await;
    g.call("signals without a token", Call::post("/v2/signals").json(&json!([]))).await;
    let metrics = fixture_json("metrics.request.json");
    let with_bouncer = fixture_json("metrics.request.with-bouncer.json");
    g.call(
        "metrics, v2 with CrowdSec's trailing slash (fixture)",
        Call::post("/v2/metrics/").token(&sensor_token).json(&metrics),
    )
    .await;
    g.call(
        "metrics, v2 without the slash (fixture with a bouncer)",
        Call::post("/v2/metrics").token(&agent_token).json(&with_bouncer),
    )
    .await;
    g.call("metrics, v3 with the slash", Call::post("/v3/metrics/").token(&lapi_token).json(&metrics)).await;
    g.call("metrics, v3 without the slash", Call::post("/v3/metrics").token(&lapi_token).json(&with_bouncer)).await;
    let usage = json!({"lapi": {"version": "v1.6.4", "os": {"name": "debian", "version": "12"}}, "bouncers": []});
    g.call("usage metrics on v3", Call::post("/v3/usage-metrics").token(&lapi_token).json(&usage)).await;
    g.call("usage metrics that are not an object", Call::post("/v3/usage-metrics").token(&lapi_token).json(&json!([1]))).await;
    g.call("usage metrics on v2", Call::post("/v2/usage-metrics").token(&lapi_token).json(&usage)).await;

    // --- The operator's views -------------------------------------------------------------------
    g.call("list accounts", Call::get("/v1/admin/accounts").token(&admin)).await;
    g.call("list machines", Call::get("/v1/admin/machines").token(&admin)).await;
    g.call("one machine", Call::get("/v1/admin/machines/agent-1").token(&admin)).await;
    g.call("an unknown machine", Call::get("/v1/admin/machines/nobody").token(&admin)).await;
    g.call("list signals", Call::get("/v1/admin/signals").token(&admin)).await;
    g.call("list signals of sensor-1, two a page", Call::get("/v1/admin/signals?machine_id=sensor-1&limit=2").token(&admin))
        .await;
    g.call("list signals about one address", Call::get("/v1/admin/signals?value=45.33.32.78").token(&admin)).await;
    g.call("list signals with a page size out of range", Call::get("/v1/admin/signals?limit=0").token(&admin)).await;
    g.call("mark lapi-2 as a sensor", Call::put("/v1/admin/machines/lapi-2/sensor").token(&admin).json(&json!({"sensor": true})))
        .await;
    g.call("unmark lapi-2", Call::put("/v1/admin/machines/lapi-2/sensor").token(&admin).json(&json!({"sensor": false}))).await;
    g.call("mark an unknown machine", Call::put("/v1/admin/machines/nobody/sensor").token(&admin).json(&json!({"sensor": true})))
        .await;

    // --- Never-block: canaries and allowlists ---------------------------------------------------
    let canary =
        |value: &str, note: &str| Call::post("/v1/admin/canaries").token(&admin).json(&json!({"value": value, "note": note}));
    g.call("add a canary", canary("93.184.215.14", "honeypot address, never used")).await;
    g.call("add a second canary", canary("93.184.215.15", "to be removed")).await;
    g.call("add the first canary again", canary("93.184.215.14", "")).await;
    g.call("add a canary that is not an address", canary("not-an-address", "")).await;
    g.call("list canaries", Call::get("/v1/admin/canaries").token(&admin)).await;
    g.call("remove the second canary", Call::delete("/v1/admin/canaries?value=93.184.215.15").token(&admin)).await;
    g.call("remove it again", Call::delete("/v1/admin/canaries?value=93.184.215.15").token(&admin)).await;
    g.call("remove a canary without ?value", Call::delete("/v1/admin/canaries").token(&admin)).await;
    let allow = |source: &str, category: &str, text: &str| {
        Call::post("/v1/admin/allowlists").token(&admin).json(&json!({"source": source, "category": category, "text": text}))
    };
    g.call("import a CDN's ranges", allow("cdn-a", "cdn", "104.16.0.0/13\n172.64.0.0/13\n2606:4700::/32\n")).await;
    g.call("import resolvers to remove later", allow("scratch", "resolver", "9.9.9.0/24\n")).await;
    g.call("import with an unknown category", allow("cdn-b", "bakery", "1.1.1.0/24")).await;
    g.call("list never-block ranges", Call::get("/v1/admin/allowlists").token(&admin)).await;
    g.call("remove the scratch source", Call::delete("/v1/admin/allowlists?source=scratch").token(&admin)).await;
    g.call("remove with neither value nor source", Call::delete("/v1/admin/allowlists").token(&admin)).await;

    // --- Consensus: the sensor's sightings are listed, then a false positive is upheld ---------
    let config = WorkerConfig { params: app.state.engine_params.as_ref().clone(), ..WorkerConfig::default() };
    let mut worker = ConsensusWorker::load(app.state.store.clone(), config).await.expect("the worker loads");
    consensus_step(&mut g, app, &mut worker, "the pushed signals").await;
    g.call("trust of sensor-1", Call::get("/v1/admin/machines/sensor-1/trust").token(&admin)).await;
    g.call("trust of agent-1", Call::get("/v1/admin/machines/agent-1/trust").token(&admin)).await;
    g.call("trust of an unknown machine", Call::get("/v1/admin/machines/nobody/trust").token(&admin)).await;
    g.call("admin explanation of a listed address", Call::get("/v1/admin/ips/45.33.32.77/explanation").token(&admin)).await;
    g.call("admin explanation of a reported, unlisted address", Call::get("/v1/admin/ips/45.33.32.78/explanation").token(&admin))
        .await;
    g.call("admin explanation of something else", Call::get("/v1/admin/ips/not-an-ip/explanation").token(&admin)).await;
    g.call(
        "uphold a false positive",
        Call::post("/v1/admin/false-positives").token(&admin).json(&json!({"value": "81.2.69.160"})),
    )
    .await;
    g.call(
        "a false positive that is not an address",
        Call::post("/v1/admin/false-positives").token(&admin).json(&json!({"value": "nope"})),
    )
    .await;
    consensus_step(&mut g, app, &mut worker, "the false positive").await;

    // --- Operator lists -------------------------------------------------------------------------
    let create_list = |body: Value| Call::post("/v1/admin/blocklists").token(&admin).json(&body);
    g.call("create the block list partners", create_list(json!({"name": "partners", "description": "shared by partners"}))).await;
    g.call("create partners again", create_list(json!({"name": "partners"}))).await;
    g.call("create a list named community", create_list(json!({"name": "community"}))).await;
    g.call(
        "create the allowlist friends",
        create_list(json!({"name": "friends", "kind": "allow", "description": "never block"})),
    )
    .await;
    g.call("create the list scratch", create_list(json!({"name": "scratch"}))).await;
    g.call("list operator lists", Call::get("/v1/admin/blocklists").token(&admin)).await;
    let entries = |list: &str, body: Value| Call::post(&format!("/v1/admin/blocklists/{list}/entries")).token(&admin).json(&body);
    g.call(
        "add entries to partners, one invalid",
        entries("partners", json!({"add": ["91.240.118.5", "81.2.69.0/24", "bogus"]})),
    )
    .await;
    g.call("add a captcha entry to partners", entries("partners", json!({"add": ["185.220.101.7"], "remediation": "captcha"})))
        .await;
    let import = "value,remediation,duration_secs\n45.33.32.156\n103.251.167.0/24,captcha,3600\nnot-an-address\n";
    g.call("import CSV into partners", Call::post("/v1/admin/blocklists/partners/import").token(&admin).raw("text/csv", import))
        .await;
    g.call(
        "import into an unknown list",
        Call::post("/v1/admin/blocklists/nope/import").token(&admin).raw("text/plain", "1.2.3.4\n"),
    )
    .await;
    g.call("add to the allowlist friends", entries("friends", json!({"add": ["8.8.8.8"]}))).await;
    g.call("add to an unknown list", entries("nope", json!({"add": ["1.2.3.4"]}))).await;
    let subscriber = |method: Method, list: &str, machine: &str| {
        Call::new(method, &format!("/v1/admin/blocklists/{list}/subscribers/{machine}")).token(&admin)
    };
    g.call("subscribe lapi-1 to partners", subscriber(Method::PUT, "partners", "lapi-1")).await;
    g.call("subscribe lapi-1 to friends", subscriber(Method::PUT, "friends", "lapi-1")).await;
    g.call("subscribe lapi-2 to scratch", subscriber(Method::PUT, "scratch", "lapi-2")).await;
    g.call("unsubscribe lapi-2 from scratch", subscriber(Method::DELETE, "scratch", "lapi-2")).await;
    g.call("subscribe an unknown machine", subscriber(Method::PUT, "partners", "nobody")).await;
    g.call("delete scratch", Call::delete("/v1/admin/blocklists/scratch").token(&admin)).await;
    g.call("delete scratch again", Call::delete("/v1/admin/blocklists/scratch").token(&admin)).await;

    // --- External feeds (removed again, so the lists below are unchanged) -----------------------
    // Nothing listens on port 9 here: the refresh fails and keeps the (empty) last good copy. Its
    // body names the operating system's error, so only its status is recorded.
    let feed = json!({"name": "drop", "url": "http://127.0.0.1:9/drop.txt", "format": "spamhaus", "visibility": "operator"});
    g.call("add the feed drop", Call::post("/v1/admin/feeds").token(&admin).json(&feed)).await;
    g.call("add the feed drop again", Call::post("/v1/admin/feeds").token(&admin).json(&feed)).await;
    g.call(
        "add a feed with an unknown format",
        Call::post("/v1/admin/feeds").token(&admin).json(&json!({"name": "x", "url": "https://example.org/x", "format": "xml"})),
    )
    .await;
    g.call("list feeds", Call::get("/v1/admin/feeds").token(&admin)).await;
    g.call(
        "refresh drop from an unreachable source",
        Call::post("/v1/admin/feeds/drop/refresh").token(&admin).shows(Shows::StatusAndContentType),
    )
    .await;
    g.call("refresh an unknown feed", Call::post("/v1/admin/feeds/nope/refresh").token(&admin)).await;
    g.call("remove the feed drop", Call::delete("/v1/admin/feeds/drop").token(&admin)).await;
    g.call("remove the feed drop again", Call::delete("/v1/admin/feeds/drop").token(&admin)).await;

    // --- API keys and tiers ---------------------------------------------------------------------
    let acme_key =
        g.call("API key for acme", Call::post("/v1/admin/accounts/acme/api-keys").token(&admin).json(&json!({}))).await.json();
    let acme_key = str_of(&acme_key, "key").to_string();
    let globex_key = g
        .call("API key for globex", Call::post("/v1/admin/accounts/globex/api-keys").token(&admin).json(&json!({})))
        .await
        .json();
    let globex_key = str_of(&globex_key, "key").to_string();
    g.call("API key for an unknown account", Call::post("/v1/admin/accounts/nobody/api-keys").token(&admin).json(&json!({})))
        .await;
    g.call(
        "put globex on the trial tier",
        Call::put("/v1/admin/accounts/globex/tier").token(&admin).json(&json!({"tier": "trial"})),
    )
    .await;
    // acme's lookups come back to back; a tier with a burst above them keeps the run's speed
    // out of the answers (the free tier's burst of 10 at 1/s would refuse the last ones only
    // when the run is fast).
    g.call("put acme on the pro tier", Call::put("/v1/admin/accounts/acme/tier").token(&admin).json(&json!({"tier": "pro"})))
        .await;
    g.call("an unknown tier", Call::put("/v1/admin/accounts/globex/tier").token(&admin).json(&json!({"tier": "gold"}))).await;
    g.call(
        "a tier for an unknown account",
        Call::put("/v1/admin/accounts/nobody/tier").token(&admin).json(&json!({"tier": "pro"})),
    )
    .await;
    g.call("acme's API keys", Call::get("/v1/admin/accounts/acme/api-keys").token(&admin)).await;
    g.call("an unknown account's API keys", Call::get("/v1/admin/accounts/nobody/api-keys").token(&admin)).await;
    let own = g
        .call("agent-1 makes a key for its account", Call::post("/v1/account/api-keys").token(&agent_token).json(&json!({})))
        .await
        .json();
    g.call("agent-1 lists its account's keys", Call::get("/v1/account/api-keys").token(&agent_token)).await;
    g.call(
        "agent-1 revokes its key",
        Call::delete(&format!("/v1/account/api-keys/{}", str_of(&own, "prefix"))).token(&agent_token),
    )
    .await;
    g.call("agent-1 revokes a key of no account", Call::delete("/v1/account/api-keys/pal_nothing0").token(&agent_token)).await;
    g.call("a machine in no account makes a key", Call::post("/v1/account/api-keys").token(&sensor_token).json(&json!({}))).await;
    g.call("a machine in no account lists keys", Call::get("/v1/account/api-keys").token(&sensor_token)).await;
    g.call("agent-1's own summary", Call::get("/v1/account/machine").token(&agent_token)).await;
    g.call("own summary without a token", Call::get("/v1/account/machine")).await;
    let spare = g
        .call("a spare key for acme", Call::post("/v1/admin/accounts/acme/api-keys").token(&admin).json(&json!({})))
        .await
        .json();
    let spare = format!("/v1/admin/api-keys/{}", str_of(&spare, "prefix"));
    g.call("revoke the spare key", Call::delete(&spare).token(&admin)).await;
    g.call("revoke it again", Call::delete(&spare).token(&admin)).await;
    g.call("every API key", Call::get("/v1/admin/api-keys").token(&admin)).await;

    // --- Native blocklists ----------------------------------------------------------------------
    g.call("lists a machine may read", Call::get("/v1/blocklists").token(&agent_token)).await;
    let lists = g.call("lists acme's key may read", Call::get("/v1/blocklists").header("x-api-key", &acme_key)).await.json();
    g.call("lists without credentials", Call::get("/v1/blocklists")).await;
    let community =
        lists.as_array().and_then(|l| l.iter().find(|v| v["name"] == "community")).expect("the community list").clone();
    let (seq, oldest) = (community["seq"].as_i64().expect("seq"), community["oldest_cursor"].as_i64().expect("cursor"));
    let list = |query: &str| Call::get(&format!("/v1/blocklists/community{query}")).token(&agent_token);
    let plain = g.call("community list, plain", list("")).await;
    for format in ["json", "csv", "nftables", "ipset", "iptables", "mikrotik", "plain"] {
        g.call(&format!("community list as {format}"), list(&format!("?format={format}"))).await;
    }
    g.call("community list as nftables, sets only", list("?format=nftables&rules=none")).await;
    g.call("community list as mikrotik, address lists only", list("?format=mikrotik&rules=none")).await;
    g.call("an unknown rules choice", list("?format=nftables&rules=accept")).await;
    g.call("community list, IPv6 only, aggregated", list("?family=v6&aggregate=true")).await;
    g.call("community list, IPv4 only", list("?family=v4")).await;
    let etag = plain.headers.get("etag").and_then(|v| v.to_str().ok()).expect("an etag").to_string();
    g.call("community list, unchanged since its ETag", list("").header("if-none-match", &etag)).await;
    g.call("community list, gzip", list("").header("accept-encoding", "gzip")).await;
    g.call("community list, zstd", list("?format=csv").header("accept-encoding", "zstd")).await;
    g.call("changes since the oldest usable cursor", list(&format!("?since={oldest}"))).await;
    g.call("changes since the oldest usable cursor, JSON", list(&format!("?since={oldest}&format=json"))).await;
    g.call("changes since the oldest usable cursor, nftables", list(&format!("?since={oldest}&format=nftables"))).await;
    g.call("changes since the current cursor", list(&format!("?since={seq}"))).await;
    g.call("changes since a cursor older than the log", list("?since=0")).await;
    g.call("changes in iptables form", list("?since=0&format=iptables")).await;
    g.call("an unknown format", list("?format=xml")).await;
    g.call("an unknown list", Call::get("/v1/blocklists/nope").token(&agent_token)).await;
    g.call("an operator list, as a machine", Call::get("/v1/blocklists/partners").token(&agent_token)).await;
    g.call("an operator list, as JSON", Call::get("/v1/blocklists/partners?format=json").token(&agent_token)).await;
    g.call("the community list with acme's key", Call::get("/v1/blocklists/community").header("x-api-key", &acme_key)).await;
    g.call(
        "the community list with globex's trial key (capped at 1)",
        Call::get("/v1/blocklists/community").header("x-api-key", &globex_key),
    )
    .await;
    g.call("a list outside globex's tier", Call::get("/v1/blocklists/partners").header("x-api-key", &globex_key)).await;
    g.call("the community list with an unknown key", Call::get("/v1/blocklists/community").header("x-api-key", "pal_unknownkey"))
        .await;

    // --- CrowdSec decision streams and presigned links -----------------------------------------
    g.call(
        "v2 stream at start-up, lapi-1 (community and partners)",
        Call::get("/v2/decisions/stream?startup=true").token(&lapi_token),
    )
    .await;
    g.call("v2 stream, nothing new", Call::get("/v2/decisions/stream").token(&lapi_token)).await;
    g.call("remove an entry from partners", entries("partners", json!({"remove": ["91.240.118.5"]}))).await;
    g.call("v2 stream, the removal", Call::get("/v2/decisions/stream").token(&lapi_token)).await;
    g.call("v2 stream at start-up, agent-1 (community only)", Call::get("/v2/decisions/stream?startup=true").token(&agent_token))
        .await;
    let v3 =
        g.call("v3 stream at start-up, lapi-1", Call::get("/v3/decisions/stream?startup=true").token(&lapi_token)).await.json();
    g.call("v3 stream without the community list", Call::get("/v3/decisions/stream?community_pull=false").token(&lapi_token))
        .await;
    g.call("v3 stream without additional lists", Call::get("/v3/decisions/stream?additional_pull=false").token(&lapi_token))
        .await;
    g.call("v3 stream, a flag that is not a boolean", Call::get("/v3/decisions/stream?startup=maybe").token(&lapi_token)).await;
    g.call("v2 stream without a token", Call::get("/v2/decisions/stream")).await;

    // --- CrowdSec bouncers (the Local API's decision routes, with an API key) -------------------
    let bouncer = |path: &str| Call::get(path).header("X-Api-Key", &acme_key);
    g.call("bouncer stream at start-up, acme's key", bouncer("/v1/decisions/stream?startup=true")).await;
    g.call("bouncer stream, nothing new", bouncer("/v1/decisions/stream")).await;
    g.call("bouncer stream at start-up, ranges only", bouncer("/v1/decisions/stream?startup=true&scopes=range")).await;
    g.call("bouncer stream, an unknown scope", bouncer("/v1/decisions/stream?scopes=username")).await;
    g.call("bouncer stream, an unknown origin", bouncer("/v1/decisions/stream?origins=elsewhere")).await;
    g.call("bouncer stream without a key", Call::get("/v1/decisions/stream")).await;
    g.call("bouncer stream with an unknown key", Call::get("/v1/decisions/stream").header("X-Api-Key", "pal_unknownkey")).await;
    g.call(
        "bouncer checks its key on the stream",
        Call::new(Method::HEAD, "/v1/decisions/stream").header("X-Api-Key", &acme_key),
    )
    .await;
    g.call("bouncer asks about a listed address", bouncer("/v1/decisions?ip=45.33.32.77")).await;
    g.call("bouncer asks about an unknown address", bouncer("/v1/decisions?ip=8.8.4.4")).await;
    g.call("bouncer asks about something else", bouncer("/v1/decisions?ip=not-an-ip")).await;
    g.call(
        "bouncer checks its key on the lookup",
        Call::new(Method::HEAD, "/v1/decisions?ip=45.33.32.77").header("X-Api-Key", &acme_key),
    )
    .await;
    let links: Vec<String> =
        v3["links"]["blocklists"].as_array().expect("block list links").iter().map(|l| local(app, str_of(l, "url"))).collect();
    for (i, link) in links.iter().enumerate() {
        g.call(&format!("block list link {}", i + 1), Call::get(link)).await;
    }
    let first = g.call("block list link 1 again", Call::get(&links[0])).await;
    let modified = first.headers.get("last-modified").and_then(|v| v.to_str().ok()).expect("last-modified").to_string();
    g.call("block list link 1, not modified since", Call::get(&links[0]).header("if-modified-since", &modified)).await;
    g.call(
        "block list link 1, modified since 2024",
        Call::get(&links[0]).header("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT"),
    )
    .await;
    let allow_link = local(app, str_of(&v3["links"]["allowlists"][0], "url"));
    g.call("allowlist link", Call::get(&allow_link)).await;
    let sig = links[0].split("&sig=").nth(1).expect("a signature").to_string();
    g.call("block list link with a wrong signature", Call::get(&links[0].replace(&sig, &"0".repeat(sig.len())))).await;
    g.call("block list link without its signature", Call::get(&links[0].replace(&format!("&sig={sig}"), ""))).await;
    let signed = |name: &str, expires: i64| {
        let target =
            LinkTarget { kind: LinkKind::Blocklist, name: name.into(), remediation: "ban".into(), scope: "ip".into(), expires };
        format!("/{}", app.state.distribution.links.path(&target))
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expired = signed("partners", now - 10);
    let missing = signed("gone", now + 3600);
    g.learn_link(&expired);
    g.learn_link(&missing);
    g.call("an expired block list link", Call::get(&expired)).await;
    g.call("a signed link to a list that does not exist", Call::get(&missing)).await;

    // --- Lookups (the world is final from here on: lookups cache what they read) ---------------
    let smoke = |path: &str, key: &str| Call::get(path).header("x-api-key", key);
    g.call("CTI smoke of a listed address", smoke("/v2/smoke/45.33.32.77", &acme_key)).await;
    g.call("CTI smoke of a reported address", smoke("/v2/smoke/45.33.32.78", &acme_key)).await;
    g.call("CTI smoke of an address in a never-block range", smoke("/v2/smoke/104.16.0.1", &acme_key)).await;
    g.call("CTI smoke of an unknown address", smoke("/v2/smoke/8.8.4.4", &acme_key)).await;
    g.call("CTI smoke of something else", smoke("/v2/smoke/not-an-ip", &acme_key)).await;
    g.call("CTI smoke without a key", Call::get("/v2/smoke/45.33.32.77")).await;
    g.call("CTI bulk smoke", smoke("/v2/smoke?ips=45.33.32.77,45.33.32.78,8.8.4.4,45.33.32.77", &acme_key)).await;
    g.call("CTI bulk smoke without ips", smoke("/v2/smoke", &acme_key)).await;
    g.call("CTI bulk smoke over globex's bulk size", smoke("/v2/smoke?ips=1.1.1.1,1.0.0.1,8.8.8.8", &globex_key)).await;
    g.call(
        "CTI search by behaviour, one per page",
        smoke("/v2/smoke/search?query=behaviors.name%3A%22ssh%3Abruteforce%22&limit=1", &acme_key),
    )
    .await;
    g.call("CTI search with an unsupported query", smoke("/v2/smoke/search?query=ip%3A45.33.32.77", &acme_key)).await;
    g.call("CTI fire, first page", smoke("/v2/fire?limit=2", &acme_key)).await;
    g.call("CTI fire past the last page", smoke("/v2/fire?page=99&limit=2", &acme_key)).await;
    g.call("native lookup with acme's key", Call::get("/v1/ips/45.33.32.77").header("x-api-key", &acme_key)).await;
    g.call(
        "native lookup of an IPv6 address in a listed /64",
        Call::get("/v1/ips/2a01:4f8:c17:b8f::99").header("x-api-key", &acme_key),
    )
    .await;
    g.call("native lookup with a machine token", Call::get("/v1/ips/45.33.32.78").token(&agent_token)).await;
    g.call("native lookup of something else", Call::get("/v1/ips/not-an-ip").token(&agent_token)).await;
    g.call("native lookup without credentials", Call::get("/v1/ips/45.33.32.77")).await;
    g.call("explanation of a listed address", Call::get("/v1/ips/45.33.32.77/explanation").token(&agent_token)).await;
    g.call("explanation of the delisted false positive", Call::get("/v1/ips/81.2.69.160/explanation").token(&agent_token)).await;
    g.call("globex's last lookup of the day", Call::get("/v1/ips/45.33.32.77").header("x-api-key", &globex_key)).await;
    g.call("globex over its daily quota", Call::get("/v1/ips/45.33.32.77").header("x-api-key", &globex_key)).await;
    g.call("globex's smoke over its daily quota", smoke("/v2/smoke/45.33.32.77", &globex_key)).await;

    // --- Console: sign-in page, the operator, then an account -----------------------------------
    let browser = |call: Call| call.header("host", HOST).header("origin", ORIGIN);
    g.call("console root, signed out", Call::get("/console")).await;
    g.call("console sign-in page", Call::get("/console/login")).await;
    g.call("console sign-in with a wrong token", browser(Call::post("/console/login")).form(&[("token", "pal_admin_wrong")]))
        .await;
    g.call(
        "console sign-in from another origin",
        Call::post("/console/login").header("host", HOST).header("origin", "https://evil.example").form(&[("token", &admin)]),
    )
    .await;
    let signed_in =
        g.call("console sign-in as the operator", browser(Call::post("/console/login")).form(&[("token", &admin)])).await;
    let operator = session_cookie(&signed_in);
    let as_operator = |call: Call| call.header("cookie", &operator);
    g.call("console root, operator", as_operator(Call::get("/console"))).await;
    let overview = g.call("operator overview", as_operator(Call::get("/console/operator"))).await;
    let operator_csrf = csrf_of(&overview);
    g.call("IP analyzer, empty", as_operator(Call::get("/console/ips"))).await;
    g.call("IP analyzer, a listed address", as_operator(Call::get("/console/ips?q=45.33.32.77"))).await;
    g.call("IP analyzer, a range", as_operator(Call::get("/console/ips?q=45.33.32.0/24"))).await;
    g.call("IP analyzer, not an address", as_operator(Call::get("/console/ips?q=example.com"))).await;
    g.call("account page as the operator", as_operator(Call::get("/console/account"))).await;
    g.call("every machine", as_operator(Call::get("/console/operator/machines"))).await;
    g.call("machines named like agent", as_operator(Call::get("/console/operator/machines?q=agent"))).await;
    for action in ["sensor-on", "sensor-off"] {
        g.call(
            &format!("{action} from the console"),
            browser(as_operator(Call::post("/console/operator/machines/action"))).form(&[
                ("csrf", &operator_csrf),
                ("machine", "agent-1"),
                ("action", action),
            ]),
        )
        .await;
    }
    g.call(
        "a machine action without the CSRF token",
        browser(as_operator(Call::post("/console/operator/machines/action")))
            .form(&[("machine", "agent-1"), ("action", "delete")]),
    )
    .await;
    g.call("the community list in the console", as_operator(Call::get("/console/operator/community"))).await;
    g.call(
        "delist an unlisted address from the console",
        browser(as_operator(Call::post("/console/operator/community/delist")))
            .form(&[("csrf", &operator_csrf), ("value", "not-an-address")]),
    )
    .await;
    g.call("the canaries in the console", as_operator(Call::get("/console/operator/canaries"))).await;
    for (what, action) in [("add a canary from the console", "add"), ("remove it from the console", "remove")] {
        g.call(
            what,
            browser(as_operator(Call::post("/console/operator/canaries"))).form(&[
                ("csrf", &operator_csrf),
                ("action", action),
                ("value", "81.2.69.161"),
                ("note", "console test"),
            ]),
        )
        .await;
    }
    g.call("the never-block ranges in the console", as_operator(Call::get("/console/operator/never-block"))).await;
    for (what, action) in [("add a never-block range from the console", "add"), ("remove it from the console", "remove")] {
        g.call(
            what,
            browser(as_operator(Call::post("/console/operator/never-block"))).form(&[
                ("csrf", &operator_csrf),
                ("action", action),
                ("text", "93.184.216.0/24"),
                ("value", "93.184.216.0/24"),
                ("category", "custom"),
                ("source", "console"),
            ]),
        )
        .await;
    }
    g.call("the accounts in the console", as_operator(Call::get("/console/operator/accounts"))).await;
    g.call(
        "delete an unknown account from the console",
        browser(as_operator(Call::post("/console/operator/accounts"))).form(&[
            ("csrf", &operator_csrf),
            ("action", "delete"),
            ("name", "nobody"),
        ]),
    )
    .await;
    g.call("the audit log in the console", as_operator(Call::get("/console/operator/audit"))).await;
    g.call("sign out without the CSRF token", browser(as_operator(Call::post("/console/logout"))).form(&[])).await;
    g.call("sign out", browser(as_operator(Call::post("/console/logout"))).form(&[("csrf", &operator_csrf)])).await;
    let link = g.call("login link for acme", Call::post("/v1/admin/accounts/acme/login-link").token(&admin)).await.json();
    g.call("login link for an unknown account", Call::post("/v1/admin/accounts/nobody/login-link").token(&admin)).await;
    let link_token = str_of(&link, "url").split("token=").nth(1).expect("a token").to_string();
    g.call("open the login link", Call::get(&format!("/console/login/link?token={link_token}"))).await;
    g.call("open a forged login link", Call::get("/console/login/link?token=forged.link")).await;
    let account_in =
        g.call("sign in with the login link", browser(Call::post("/console/login/link")).form(&[("token", &link_token)])).await;
    let account = session_cookie(&account_in);
    let as_account = |call: Call| browser(call).header("cookie", &account);
    let page = g.call("account page", as_account(Call::get("/console/account"))).await;
    let csrf = csrf_of(&page);
    let made = g
        .call(
            "make an enrollment key in the console",
            as_account(Call::post("/console/account/enroll-keys")).form(&[("csrf", &csrf)]),
        )
        .await;
    // Redirect after POST: the new key is on the page the answer leads to, carried by a cookie.
    let shown = g
        .call(
            "the account page the new enrollment key leads to",
            browser(Call::get("/console/account")).header("cookie", &format!("{account}; {}", session_cookie(&made))),
        )
        .await;
    let console_enroll = input_value(&shown, "new-enroll-key");
    g.call(
        "revoke it in the console",
        as_account(Call::post("/console/account/enroll-keys/revoke")).form(&[("csrf", &csrf), ("prefix", &console_enroll[..6])]),
    )
    .await;
    g.call(
        "revoke an unknown enrollment key",
        as_account(Call::post("/console/account/enroll-keys/revoke")).form(&[("csrf", &csrf), ("prefix", "000000")]),
    )
    .await;
    let made = g
        .call("make an API key in the console", as_account(Call::post("/console/account/api-keys")).form(&[("csrf", &csrf)]))
        .await;
    let shown = g
        .call(
            "the account page the new API key leads to",
            browser(Call::get("/console/account")).header("cookie", &format!("{account}; {}", session_cookie(&made))),
        )
        .await;
    let console_key = input_value(&shown, "new-api-key");
    g.call(
        "revoke it in the console",
        as_account(Call::post("/console/account/api-keys/revoke")).form(&[("csrf", &csrf), ("prefix", &console_key[..12])]),
    )
    .await;
    g.call("make an API key without the CSRF token", as_account(Call::post("/console/account/api-keys")).form(&[])).await;
    g.call(
        "save the pool policy in the console (the default's values)",
        as_account(Call::post("/console/account/pool")).form(&[
            ("csrf", &csrf),
            ("enabled", "true"),
            ("min_machines", "1"),
            ("duration_hours", "4"),
            ("remediation", "ban"),
            ("allow", "*"),
            ("deny", ""),
        ]),
    )
    .await;
    g.call("IP analyzer as an account (costs a lookup)", as_account(Call::get("/console/ips?q=45.33.32.77"))).await;
    g.call("operator overview as an account", as_account(Call::get("/console/operator"))).await;
    g.call("console stylesheet", Call::get("/console/assets/console.css")).await;
    g.call("console script", Call::get("/console/assets/console.js")).await;
    g.call("an unknown console page", Call::get("/console/nope")).await;
    g.call("account page, signed out", Call::get("/console/account")).await;

    // --- The world at the end -----------------------------------------------------------------
    g.call("accounts at the end", Call::get("/v1/admin/accounts").token(&admin)).await;
    g.call("machines at the end", Call::get("/v1/admin/machines").token(&admin)).await;
    g.call("acme's API keys at the end", Call::get("/v1/admin/accounts/acme/api-keys").token(&admin)).await;
    g.call("blocklists at the end", Call::get("/v1/blocklists").token(&lapi_token)).await;
    let visibility =
        |value: &str| Call::new(Method::PATCH, "/v1/admin/blocklists/partners").token(&admin).json(&json!({"visibility": value}));
    g.call("make partners public", visibility("public")).await;
    g.call("a visibility that does not exist", visibility("everyone")).await;
    g.call("partners, now public, for a machine", Call::get("/v1/blocklists/partners").token(&agent_token)).await;

    // --- Account pools: policy and shares -------------------------------------------------------
    let pool = |method: Method, path: &str| Call::new(method, &format!("/v1/admin/accounts/{path}")).token(&admin);
    g.call("acme's pool", pool(Method::GET, "acme/pool")).await;
    g.call("an unknown account's pool", pool(Method::GET, "nobody/pool")).await;
    g.call("acme's pool from two machines", pool(Method::PATCH, "acme/pool").json(&json!({"min_machines": 2}))).await;
    g.call("a pool policy out of bounds", pool(Method::PATCH, "acme/pool").json(&json!({"duration_secs": 1}))).await;
    g.call("a pool policy with an unknown field", pool(Method::PATCH, "acme/pool").json(&json!({"quorum": 2}))).await;
    g.call("acme's pool back to the default", pool(Method::DELETE, "acme/pool")).await;
    g.call("share acme's pool with globex", pool(Method::PUT, "acme/pool/shares/globex")).await;
    g.call("share acme's pool with itself", pool(Method::PUT, "acme/pool/shares/acme")).await;
    g.call("acme's pool with acme's key", Call::get("/v1/blocklists/pool-1").header("x-api-key", &acme_key)).await;
    g.call("end the share", pool(Method::DELETE, "acme/pool/shares/globex")).await;

    // --- Taking access back: admin tokens, machines, console sessions ---------------------------
    let spare_admin = app.admin_token().await;
    g.norm.named(&spare_admin, "<spare-admin-token>");
    let spare_prefix = visible_prefix(&spare_admin);
    g.norm.named(&spare_prefix, "<spare-admin-token-prefix>");
    g.call("admin tokens", Call::get("/v1/admin/admin-tokens").token(&admin)).await;
    g.call("revoke the spare admin token", Call::delete(&format!("/v1/admin/admin-tokens/{spare_prefix}")).token(&admin)).await;
    g.call("the revoked admin token", Call::get("/v1/admin/accounts").token(&spare_admin)).await;
    g.call("revoke it again", Call::delete(&format!("/v1/admin/admin-tokens/{spare_prefix}")).token(&admin)).await;
    let disabled = |value: bool| Call::put("/v1/admin/machines/agent-1/disabled").token(&admin).json(&json!({"disabled": value}));
    g.call("disable agent-1", disabled(true)).await;
    g.call("agent-1's token, disabled", Call::get("/v1/blocklists").token(&agent_token)).await;
    let agent_login =
        |password: &str| Call::post("/v2/watchers/login").json(&json!({"machine_id": "agent-1", "password": password}));
    g.call("agent-1 logs in, disabled", agent_login(str_of(&agent, "password"))).await;
    g.call(
        "disable an unknown machine",
        Call::put("/v1/admin/machines/nobody/disabled").token(&admin).json(&json!({"disabled": true})),
    )
    .await;
    g.call("disable without a body", Call::put("/v1/admin/machines/agent-1/disabled").token(&admin).json(&json!({}))).await;
    g.call("enable agent-1", disabled(false)).await;
    g.call("agent-1's old token, enabled again", Call::get("/v1/blocklists").token(&agent_token)).await;
    let reset = g.call("reset agent-1's password", Call::post("/v1/admin/machines/agent-1/password").token(&admin)).await.json();
    g.call("agent-1 logs in with its old password", agent_login(str_of(&agent, "password"))).await;
    let fresh = g.call("agent-1 logs in with its new password", agent_login(str_of(&reset, "password"))).await.json();
    g.call("agent-1's new token", Call::get("/v1/blocklists").token(str_of(&fresh, "token"))).await;
    g.call("reset an unknown machine's password", Call::post("/v1/admin/machines/nobody/password").token(&admin)).await;
    g.call("delete lapi-2", Call::delete("/v1/admin/machines/lapi-2").token(&admin)).await;
    g.call("delete lapi-2 again", Call::delete("/v1/admin/machines/lapi-2").token(&admin)).await;
    g.call("lapi-2, deleted", Call::get("/v1/admin/machines/lapi-2").token(&admin)).await;
    g.call("end every console session", Call::delete("/v1/admin/sessions").token(&admin)).await;
    g.call("account page after every session ended", as_account(Call::get("/console/account"))).await;

    // --- The AbuseIPDB dialect, with a key of a new account -------------------------------------
    g.call("create initech", Call::post("/v1/admin/accounts").token(&admin).json(&json!({"name": "initech"}))).await;
    let initech = g
        .call("API key for initech", Call::post("/v1/admin/accounts/initech/api-keys").token(&admin).json(&json!({})))
        .await
        .json();
    let initech_key = str_of(&initech, "key").to_string();
    let report = [("ip", "45.33.32.201"), ("categories", "18,22"), ("comment", "sshd: Failed password for root")];
    g.call("initech reports an address (AbuseIPDB v2)", Call::post("/api/v2/report").header("Key", &initech_key).form(&report))
        .await;
    g.call("initech reports it again within 15 minutes", Call::post("/api/v2/report").header("Key", &initech_key).form(&report))
        .await;
    g.call(
        "initech reports a port scan (AbuseIPDB v1, as older fail2ban)",
        Call::post("/report/json").form(&[("key", &initech_key), ("category", "14"), ("ip", "45.33.32.202")]),
    )
    .await;
    g.call("initech checks the address", Call::get("/api/v2/check?ipAddress=45.33.32.201").header("Key", &initech_key)).await;
    g.call("a check without a key", Call::get("/api/v2/check?ipAddress=45.33.32.201")).await;
    g.call(
        "initech pages the reports of an address nobody reported",
        Call::get("/api/v2/reports?ipAddress=45.33.32.203&perPage=10").header("Key", &initech_key),
    )
    .await;
    g.call(
        "initech checks the /30 of its reports",
        Call::get("/api/v2/check-block?network=45.33.32.200/30").header("Key", &initech_key),
    )
    .await;
    g.call("initech's blacklist", Call::get("/api/v2/blacklist?limit=5").header("Key", &initech_key)).await;
    let csv = "IP,Categories,ReportDate,Comment\r\n45.33.32.204,\"18,22\",,\"sshd: Failed password\"\r\n\
               45.33.32.999,22,,bad address\r\n45.33.32.204,22,,duplicate\r\n";
    let file = format!(
        "--golden\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"report.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{csv}\r\n--golden--\r\n"
    );
    g.call(
        "initech reports a file of addresses (AbuseIPDB bulk-report)",
        Call::post("/api/v2/bulk-report").header("Key", &initech_key).raw("multipart/form-data; boundary=golden", file),
    )
    .await;
    g.call(
        "initech clears its reports of an address (AbuseIPDB clear-address)",
        Call::delete("/api/v2/clear-address?ipAddress=45.33.32.201").header("Key", &initech_key),
    )
    .await;

    // --- Lifecycle: enrollment keys, delistings, deleting accounts, the audit log ---------------
    g.call("every enrollment key", Call::get("/v1/admin/enroll-keys").token(&admin)).await;
    g.call("acme's enrollment keys", Call::get("/v1/admin/enroll-keys?account=acme").token(&admin)).await;
    let enroll_prefix = str_of(&enroll, "prefix").to_string();
    let revoke_enroll = Call::delete(&format!("/v1/admin/enroll-keys/{enroll_prefix}")).token(&admin);
    g.call("revoke acme's first enrollment key", revoke_enroll).await;
    g.call("revoke it again", Call::delete(&format!("/v1/admin/enroll-keys/{enroll_prefix}")).token(&admin)).await;
    let delist = |body: Value| Call::post("/v1/admin/delistings").token(&admin).json(&body);
    g.call("delist an address for a day", delist(json!({"value": "45.33.32.77", "hold": "24h"}))).await;
    g.call("delist with a hold that is no duration", delist(json!({"value": "45.33.32.77", "hold": "a while"}))).await;
    g.call("delete acme, which has machines", Call::delete("/v1/admin/accounts/acme").token(&admin)).await;
    g.call("delete globex", Call::delete("/v1/admin/accounts/globex?machines=detach").token(&admin)).await;
    g.call("delete globex again", Call::delete("/v1/admin/accounts/globex").token(&admin)).await;
    g.call("the audit log of account deletions", Call::get("/v1/admin/audit?action=delete_account").token(&admin)).await;
    g.call("the audit log since a time that is none", Call::get("/v1/admin/audit?since=yesterday").token(&admin)).await;

    g.finish()
}
