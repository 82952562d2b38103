//! The operator's console as a first-time operator met it: a brand-new machine is not "flagged
//! for review" for having earned no trust yet (only a machine its own reports counted against
//! is), its agent and version show from its first login (not only after a metrics push), and
//! times read to the minute in UTC instead of raw RFC 3339 with microseconds.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use palisade_server::jobs::consensus::{ConsensusWorker, WorkerConfig};
use serde_json::json;
use time::OffsetDateTime;

use crate::common::{MACHINE_PASSWORD, apps, operator_overview, request, signal};

const SCENARIO: &str = "crowdsecurity/ssh-bf";
const CANARY: &str = "81.2.69.144";

/// The rows of the table with `id` on a page, as HTML.
fn table<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page.find(&format!("<table id=\"{id}\"")).unwrap_or(page.len());
    let end = page[start..].find("</table>").map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[tokio::test]
async fn a_new_machine_is_not_flagged_a_penalised_one_is_and_versions_and_times_read_for_people() {
    for app in apps().await {
        let label = app.label;
        let now = OffsetDateTime::now_utc();
        app.state.store.add_canary(CANARY, "honeypot", now).await.expect("a canary");
        let fresh = app.machine("fresh-01").await;
        let liar = app.machine("liar-01").await;
        app.post("/v2/signals", Some(&fresh.token), &json!([signal("45.33.32.156", SCENARIO)])).await.expect_ok(StatusCode::OK);
        app.post("/v2/signals", Some(&liar.token), &json!([signal(CANARY, SCENARIO)])).await.expect_ok(StatusCode::OK);
        // CrowdSec logs in with its User-Agent; no metrics push has come yet.
        let login = json!({"machine_id": "liar-01", "password": MACHINE_PASSWORD, "scenarios": [SCENARIO]});
        let headers = [("user-agent", "crowdsec/v1.4.6-6~deb12u1+b1-linux-debian"), ("content-type", "application/json")];
        let reply = app.send(request(Method::POST, "/v2/watchers/login", None, &headers, Body::from(login.to_string()))).await;
        assert_eq!(reply.status, StatusCode::OK, "{label}: login: {}", reply.text());
        let config = WorkerConfig { params: app.state.engine_params.as_ref().clone(), ..WorkerConfig::default() };
        let mut worker = ConsensusWorker::load(app.state.store.clone(), config).await.expect("the worker loads");
        worker.run_once(OffsetDateTime::now_utc()).await.expect("a consensus step");

        let admin = app.admin_token().await;
        let page = operator_overview(&app, &admin).await;
        let flagged = table(&page, "flagged");
        assert!(flagged.contains("liar-01"), "{label}: the canary reporter is flagged: {flagged}");
        assert!(!flagged.contains("fresh-01"), "{label}: a new machine is not flagged: {flagged}");
        assert!(flagged.contains("<td>crowdsec v1.4.6-6~deb12u1+b1</td>"), "{label}: the version from the login: {flagged}");
        // Today is labelled on the day charts.
        let today = format!("{:02}-{:02}", u8::from(now.month()), now.day());
        assert!(page.contains(&format!(">{today}</text>")), "{label}: no label for today ({today})");
        // Times are shown to the minute; the exact value stays in the datetime attribute only.
        assert!(page.contains(" UTC</time>"), "{label}: {page}");
        let raw = page
            .split('>')
            .filter_map(|text| text.split('<').next())
            .any(|text| text.len() >= 20 && text.as_bytes()[4] == b'-' && text.as_bytes()[10] == b'T' && text.ends_with('Z'));
        assert!(!raw, "{label}: a raw RFC 3339 time is shown: {page}");
    }
}
