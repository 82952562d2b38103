//! Canaries (addresses the operator controls and that never attack) must not be found by
//! probing: once a machine reports a canary and an ordinary address alike, every answer a
//! non-operator can get about the two is the same but for the address itself, and neither costs
//! the server a different amount of work. Only the effect on the reporter differs, and the
//! reporter does not see it before its penalty boundary. The explanation route, the costly one a
//! probe leans on, is limited per machine.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use palisade_server::config::Config;
use palisade_server::jobs::consensus::{ConsensusWorker, WorkerConfig};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{TestApp, api_key, apps_with, get_with_key, signal};

const CANARY: &str = "81.2.69.160";
const ORDINARY: &str = "81.2.69.161";
const SCENARIO: &str = "crowdsecurity/ssh-bf";

/// Quotas large enough for the timing samples.
fn roomy_tiers(config: &mut Config) {
    for tier in config.tiers.values_mut() {
        tier.lookups_per_day = 1_000_000;
        tier.lookups_per_month = 30_000_000;
        tier.rate_per_sec = 1_000_000.0;
        tier.burst = 1_000_000;
    }
}

/// `text` with the address replaced, so two answers differ only where the address is.
fn normalised(text: &str, ip: &str) -> String {
    text.replace(ip, "<ip>")
}

/// One machine reports the canary and the ordinary address in one push, same scenario, same
/// times; the consensus worker takes it in. Returns the reporter's token and an API key.
async fn reported(app: &TestApp) -> (String, String) {
    let now = OffsetDateTime::now_utc();
    app.state.store.add_canary(CANARY, "honeypot", now).await.expect("a canary");
    let reporter = app.machine("probe-01").await;
    let canary_signal = signal(CANARY, SCENARIO);
    let ordinary_signal: Value = serde_json::from_str(&canary_signal.to_string().replace(CANARY, ORDINARY)).expect("JSON");
    app.post("/v2/signals", Some(&reporter.token), &json!([canary_signal, ordinary_signal])).await.expect_ok(StatusCode::OK);
    let config = WorkerConfig { params: app.state.engine_params.as_ref().clone(), ..WorkerConfig::default() };
    let mut worker = ConsensusWorker::load(app.state.store.clone(), config).await.expect("the worker loads");
    let outcome = worker.run_once(OffsetDateTime::now_utc()).await.expect("a consensus step");
    assert_eq!(outcome.processed, 2, "{}: both reports reach the engine", app.label);
    let zeroed = worker.engine().machine(reporter.key.0).and_then(|m| m.zeroed_at);
    assert!(zeroed.is_some(), "{}: the canary report still zeroes its reporter", app.label);
    let admin = app.admin_token().await;
    (reporter.token, api_key(app, &admin, "prober").await)
}

/// Status and body of every answer a non-operator can get about `ip`.
async fn public_answers(app: &TestApp, ip: &str, machine: &str, key: &str) -> Vec<(String, StatusCode, String)> {
    let mut answers = Vec::new();
    for path in [format!("/v2/smoke/{ip}"), format!("/v2/smoke?ips={ip}"), format!("/v1/ips/{ip}")] {
        let reply = get_with_key(app, &path, key).await;
        answers.push((normalised(&path, ip), reply.status, normalised(&reply.text(), ip)));
    }
    for path in [format!("/v1/ips/{ip}"), format!("/v1/ips/{ip}/explanation")] {
        let reply = app.get(&path, Some(machine)).await;
        answers.push((normalised(&path, ip), reply.status, normalised(&reply.text(), ip)));
    }
    answers
}

#[tokio::test]
async fn a_reported_canary_answers_exactly_as_an_ordinary_reported_address() {
    for app in apps_with(roomy_tiers).await {
        let label = app.label;
        let (machine, key) = reported(&app).await;
        let canary = public_answers(&app, CANARY, &machine, &key).await;
        let ordinary = public_answers(&app, ORDINARY, &machine, &key).await;
        assert_eq!(canary, ordinary, "{label}: the canary is told apart");
        let smoke = &ordinary[0];
        assert_eq!(smoke.1, StatusCode::OK, "{label}: a reported address is known to the CTI route: {}", smoke.2);
        let body: Value = serde_json::from_str(&smoke.2).expect("JSON");
        assert_eq!(body["reputation"], "suspicious", "{label}: {body}");
    }
}

/// Median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// The explanation route was ten times faster for a canary (nothing recorded, so nothing to
/// load, where an ordinary address loaded every machine). The bound is deliberately generous (medians within 2×, over 200 interleaved samples
/// each): this checks that the work done is the same, not how fast it is.
#[tokio::test]
async fn a_reported_canary_costs_what_an_ordinary_reported_address_costs() {
    for app in apps_with(roomy_tiers).await {
        let label = app.label;
        let (machine, key) = reported(&app).await;
        // Many registered machines, as with open registration: work that grows with them shows.
        for i in 0..1_000 {
            app.machine(&format!("bystander-{i:04}")).await;
        }
        for route in ["/v1/ips/{ip}/explanation", "/v1/ips/{ip}"] {
            let (mut canary, mut ordinary) = (Vec::new(), Vec::new());
            for round in 0..400 {
                let ip = if round % 2 == 0 { CANARY } else { ORDINARY };
                let path = route.replace("{ip}", ip);
                let started = Instant::now();
                let reply = if route.ends_with("explanation") {
                    app.get(&path, Some(&machine)).await
                } else {
                    get_with_key(&app, &path, &key).await
                };
                let took = started.elapsed();
                assert_eq!(reply.status, StatusCode::OK, "{label} {path}: {}", reply.text());
                if ip == CANARY { canary.push(took) } else { ordinary.push(took) }
            }
            let (canary, ordinary) = (median(canary), median(ordinary));
            let (fast, slow) = if canary < ordinary { (canary, ordinary) } else { (ordinary, canary) };
            assert!(slow <= fast * 2, "{label} {route}: median {canary:?} for the canary against {ordinary:?}");
        }
    }
}

/// Explanations cost each machine one lookup of the machine tier: a machine cannot ask for them
/// without bound, and another machine is not held back by it.
#[tokio::test]
async fn explanations_are_limited_per_machine() {
    let tiny = |config: &mut Config| {
        let tier = config.tiers.get_mut(&config.machine_tier).expect("the machine tier");
        tier.lookups_per_day = 2;
        tier.lookups_per_month = 60;
    };
    for app in apps_with(tiny).await {
        let label = app.label;
        let (one, other) = (app.machine("curious-01").await, app.machine("curious-02").await);
        let path = format!("/v1/ips/{ORDINARY}/explanation");
        for _ in 0..2 {
            let reply = app.get(&path, Some(&one.token)).await;
            assert_eq!(reply.status, StatusCode::OK, "{label}: {}", reply.text());
            assert!(!reply.headers.contains_key("x-ratelimit-remaining"), "{label}: an answer as before");
        }
        let refused = app.get(&path, Some(&one.token)).await;
        refused.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(refused.headers.contains_key("retry-after"), "{label}: {:?}", refused.headers);
        assert_eq!(app.get(&path, Some(&other.token)).await.status, StatusCode::OK, "{label}: per machine");
        let malformed = app.get("/v1/ips/not-an-ip/explanation", Some(&other.token)).await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{label}: costs nothing");
        assert_eq!(app.get(&path, Some(&other.token)).await.status, StatusCode::OK, "{label}: the bad request was free");
    }
}
