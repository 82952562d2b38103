//! The consensus worker inside the running server: a sensor's report lists an address, which
//! then appears in the CrowdSec stream (v2 and v3) and in the explanation; a canary report zeroes
//! its reporter (seen through the admin API); an upheld false positive delists and the next
//! stream pull deletes it. Runs on every backend this machine offers.

use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_api::capi::{DecisionsStreamV2, DecisionsStreamV3, LoginResponse};
use palisade_api::native::{ExplanationResponse, MachineCredentials, MachineTrustView};
use palisade_tests::http::Http;
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, wait_until};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ATTACKER: &str = "45.33.32.156";
const CANARY: &str = "81.2.69.160";

fn signal(ip: &str, scenario: &str) -> Value {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("formats");
    json!([{
        "machine_id": "agent", "message": format!("Ip {ip} performed '{scenario}'"), "scenario": scenario,
        "scenario_hash": "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f",
        "scenario_trust": "certified", "scenario_version": "0.1",
        "source": {"ip": ip, "scope": "Ip", "value": ip}, "start_at": now, "stop_at": now
    }])
}

struct Machine {
    token: String,
}

fn machine(http: &Http, server: &ServerProcess, admin: &str, name: &str, sensor: bool) -> anyhow::Result<Machine> {
    let reply = http.post(&format!("{}v1/admin/machines", server.url), Some(admin), &json!({"name": name, "sensor": sensor}))?;
    ensure!(reply.status == 201, "create {name}: {} {}", reply.status, reply.body);
    let created: MachineCredentials = reply.json()?;
    let body = json!({"machine_id": created.machine_id, "password": created.password, "scenarios": ["crowdsecurity/ssh-bf"]});
    let login: LoginResponse = http.post(&format!("{}v2/watchers/login", server.url), None, &body)?.json()?;
    Ok(Machine { token: login.token })
}

fn push(http: &Http, server: &ServerProcess, machine: &Machine, body: &Value) -> anyhow::Result<()> {
    let reply = http.post(&format!("{}v2/signals", server.url), Some(&machine.token), body)?;
    ensure!(reply.status == 200, "push: {} {}", reply.status, reply.body);
    Ok(())
}

fn sensor_listing_reaches_the_stream_and_the_explanation(db: &TestDb) -> anyhow::Result<()> {
    let server = ServerProcess::start(db, ServerOptions::default())?;
    let http = Http::new()?;
    let admin = server.admin_token()?;
    let base = &server.url;
    let sensor = machine(&http, &server, &admin, "honeypot-1", true)?;
    let watcher = machine(&http, &server, &admin, "watcher-1", false)?;
    let consumer = machine(&http, &server, &admin, "consumer-1", false)?;

    // A first (startup) pull before anything is listed: empty, and it sets the consumer's cursor.
    let first: DecisionsStreamV2 = http.get(&format!("{base}v2/decisions/stream?startup=true"), Some(&consumer.token))?.json()?;
    ensure!(first.new.is_empty(), "nothing is listed yet: {first:?}");

    // An ordinary machine's report alone lists nothing; the sensor's sighting lists at once.
    push(&http, &server, &watcher, &signal(ATTACKER, "crowdsecurity/ssh-bf"))?;
    push(&http, &server, &sensor, &signal(ATTACKER, "crowdsecurity/ssh-bf"))?;
    let explanation: ExplanationResponse = wait_until(Duration::from_secs(30), "the sensor's listing", || {
        let e: ExplanationResponse = http.get(&format!("{base}v1/ips/{ATTACKER}/explanation"), Some(&watcher.token))?.json()?;
        Ok(e.listed.then_some(e))
    })?;
    ensure!(explanation.rule.as_deref() == Some("sensor"), "{explanation:?}");
    ensure!(explanation.clusters == 2 && explanation.scenarios == ["crowdsecurity/ssh-bf"], "{explanation:?}");
    ensure!(explanation.first_seen.is_some() && explanation.expires_at.is_some(), "{explanation:?}");
    ensure!(explanation.supporters.is_none(), "reporters are never named outside the admin view");
    let admin_view: ExplanationResponse =
        http.get(&format!("{base}v1/admin/ips/{ATTACKER}/explanation"), Some(&admin))?.json()?;
    let mut supporters = admin_view.supporters.context("the admin view names supporters")?;
    supporters.sort();
    ensure!(supporters == ["honeypot-1", "watcher-1"], "{supporters:?}");

    // The consumer's next (delta) pull carries it, with all six fields and a Go duration.
    let delta: Value = http.get(&format!("{base}v2/decisions/stream"), Some(&consumer.token))?.json()?;
    let decision = &delta["new"][0];
    ensure!(decision["value"] == ATTACKER && decision["origin"] == "CAPI" && decision["scope"] == "Ip", "{delta}");
    ensure!(decision["type"] == "ban" && decision["scenario"] == "crowdsecurity/ssh-bf", "{delta}");
    let duration = decision["duration"].as_str().context("duration")?;
    ensure!(duration.ends_with('s') && !duration.contains('d'), "Go duration: {duration}");
    let again: DecisionsStreamV2 = http.get(&format!("{base}v2/decisions/stream"), Some(&consumer.token))?.json()?;
    ensure!(again.new.is_empty() && again.deleted.is_empty(), "nothing new since the last pull: {again:?}");
    let v3: DecisionsStreamV3 = http.get(&format!("{base}v3/decisions/stream?startup=true"), Some(&watcher.token))?.json()?;
    ensure!(v3.new.iter().any(|g| g.decisions.iter().any(|d| d.value == ATTACKER)), "{v3:?}");

    // The operator upholds a false positive: delisted, and the next pull deletes it.
    let reply = http.post(&format!("{base}v1/admin/false-positives"), Some(&admin), &json!({"value": ATTACKER}))?;
    ensure!(reply.status == 202, "{} {}", reply.status, reply.body);
    wait_until(Duration::from_secs(30), "the delisting", || {
        let e: ExplanationResponse = http.get(&format!("{base}v1/ips/{ATTACKER}/explanation"), Some(&watcher.token))?.json()?;
        Ok((!e.listed).then_some(()))
    })?;
    let after: DecisionsStreamV2 = http.get(&format!("{base}v2/decisions/stream"), Some(&consumer.token))?.json()?;
    ensure!(after.deleted.iter().any(|d| d.value == ATTACKER && d.origin == "CAPI"), "{after:?}");
    Ok(())
}

fn a_canary_report_zeroes_its_reporter(db: &TestDb) -> anyhow::Result<()> {
    let server = ServerProcess::start(db, ServerOptions::default())?;
    let http = Http::new()?;
    let admin = server.admin_token()?;
    let base = &server.url;
    // The canary before the machine: the worker re-reads operator data (canaries included) when
    // a signal comes from a machine it does not know yet, or on a later periodic refresh, and
    // either read sees a canary made before the machine, so its first signal meets the canary.
    let reply = http.post(&format!("{base}v1/admin/canaries"), Some(&admin), &json!({"value": CANARY, "note": "decoy"}))?;
    ensure!(reply.status == 201, "{} {}", reply.status, reply.body);
    let liar = machine(&http, &server, &admin, "liar-1", false)?;
    push(&http, &server, &liar, &signal(CANARY, "crowdsecurity/ssh-bf"))?;
    let trust: MachineTrustView = wait_until(Duration::from_secs(30), "the canary penalty", || {
        let t: MachineTrustView = http.get(&format!("{base}v1/admin/machines/liar-1/trust"), Some(&admin))?.json()?;
        Ok(t.zeroed_at.is_some().then_some(t))
    })?;
    ensure!(trust.trust == 0.0, "{trust:?}");
    // The reporter cannot tell the canary from any other address it reported and that is not listed.
    let honest = machine(&http, &server, &admin, "honest-1", false)?;
    push(&http, &server, &honest, &signal("81.2.69.161", "crowdsecurity/ssh-bf"))?;
    wait_until(Duration::from_secs(30), "the worker to keep honest-1's report of 81.2.69.161 as evidence (admin view)", || {
        let e: ExplanationResponse = http.get(&format!("{base}v1/admin/ips/81.2.69.161/explanation"), Some(&admin))?.json()?;
        Ok((e.clusters >= 1).then_some(()))
    })?;
    let canary: Value = http.get(&format!("{base}v1/ips/{CANARY}/explanation"), Some(&liar.token))?.json()?;
    let ordinary: Value = http.get(&format!("{base}v1/ips/81.2.69.161/explanation"), Some(&honest.token))?.json()?;
    let strip = |mut v: Value| {
        for key in ["ip", "target"] {
            v.as_object_mut().map(|o| o.remove(key));
        }
        v
    };
    ensure!(canary["listed"] == false, "a canary is never listed: {canary}");
    ensure!(strip(canary.clone()) == strip(ordinary.clone()), "canary {canary} looks different from {ordinary}");
    Ok(())
}

#[test]
fn sensor_report_lists_through_the_worker_and_reaches_stream_and_explanation() -> anyhow::Result<()> {
    let http = Http::new()?;
    for db in http.block_on(TestDb::all()) {
        sensor_listing_reaches_the_stream_and_the_explanation(&db).with_context(|| db.label())?;
    }
    Ok(())
}

#[test]
fn canary_report_zeroes_the_reporter() -> anyhow::Result<()> {
    let http = Http::new()?;
    for db in http.block_on(TestDb::all()) {
        a_canary_report_zeroes_its_reporter(&db).with_context(|| db.label())?;
    }
    Ok(())
}
