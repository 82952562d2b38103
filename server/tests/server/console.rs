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

/// Signs account `name` in through a login link; returns the session cookie (`name=value`).
async fn account_session(app: &crate::common::TestApp, admin: &str, name: &str) -> String {
    app.post("/v1/admin/accounts", Some(admin), &json!({"name": name})).await.expect_ok(StatusCode::CREATED);
    let link = app.post(&format!("/v1/admin/accounts/{name}/login-link"), Some(admin), &json!({})).await;
    let link: serde_json::Value = serde_json::from_str(&link.text()).expect("JSON");
    let token = link["url"].as_str().and_then(|u| u.split("token=").nth(1)).expect("a token in the link").to_string();
    let reply = app.send(form("/console/login/link", None, &format!("token={token}"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    set_cookie(&reply, "palisade_console").expect("a session cookie")
}

const HOST: &str = "palisade.test";

/// A browser's form POST: same origin, form-encoded, with the cookies given.
fn form(path: &str, cookies: Option<&str>, body: &str) -> axum::http::Request<Body> {
    let mut request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", HOST)
        .header("origin", format!("http://{HOST}"));
    if let Some(cookies) = cookies {
        request = request.header("cookie", cookies);
    }
    request.body(Body::from(body.to_string())).expect("a valid request")
}

fn page(path: &str, cookies: &str) -> axum::http::Request<Body> {
    axum::http::Request::builder().uri(path).header("host", HOST).header("cookie", cookies).body(Body::empty()).expect("request")
}

/// The `name=value` a response sets for cookie `name`.
fn set_cookie(reply: &crate::common::Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_console_form_redirects_and_a_reload_shows_the_page_without_submitting_again() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let session = account_session(&app, &admin, "acme").await;
        let account = app.send(page("/console/account", &session)).await;
        let csrf = csrf_of(&account.text());

        let created = app.send(form("/console/account/enroll-keys", Some(&session), &format!("csrf={csrf}"))).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{label}: a created key redirects: {}", created.text());
        assert_eq!(created.headers.get("location").and_then(|v| v.to_str().ok()), Some("/console/account"));
        let flash = set_cookie(&created, "palisade_flash").expect("the outcome travels in a cookie");
        let keys = app.state.store.list_enroll_keys(None).await.expect("keys");
        assert_eq!(keys.len(), 1, "{label}: one key made");

        // The page it leads to shows the new key once and drops the cookie.
        let shown = app.send(page("/console/account", &format!("{session}; {flash}"))).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(shown.text().contains("id=\"new-enroll-key\""), "{label}: the key is shown: {}", shown.text());
        assert_eq!(set_cookie(&shown, "palisade_flash").as_deref(), Some("palisade_flash="), "{label}: read once");
        // A reload is a GET: the page again, no key shown, nothing created.
        let reloaded = app.send(page("/console/account", &session)).await;
        assert!(!reloaded.text().contains("id=\"new-enroll-key\""), "{label}: shown only once");
        assert_eq!(app.state.store.list_enroll_keys(None).await.expect("keys").len(), 1, "{label}: no second key");

        // A flash is the session's own: another account's session does not see it.
        let other = account_session(&app, &admin, "globex").await;
        let foreign = app.send(page("/console/account", &format!("{other}; {flash}"))).await;
        assert!(!foreign.text().contains("id=\"new-enroll-key\""), "{label}: another session's outcome is ignored");
    }
}

/// Signs the operator in with an admin token; returns the session cookie (`name=value`).
async fn operator_session(app: &crate::common::TestApp, admin: &str) -> String {
    let reply = app.send(form("/console/login", None, &format!("token={admin}"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    set_cookie(&reply, "palisade_console").expect("a session cookie")
}

#[tokio::test]
async fn the_operator_manages_machines_and_delists_from_the_console_and_every_action_is_audited() {
    use palisade_server::engine::Rule;
    use palisade_server::store::RequestKind;
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let operator = operator_session(&app, &admin).await;
        app.machine("web-01").await;
        app.machine("db-01").await;
        crate::common::commit_lists(&app, vec![crate::common::listing("45.33.32.156", SCENARIO, Rule::Crowd)]).await;

        // Every machine, searchable; the page carries the forms.
        let all = app.send(page("/console/operator/machines", &operator)).await;
        assert_eq!(all.status, StatusCode::OK, "{label}: {}", all.text());
        let csrf = csrf_of(&all.text());
        assert!(table(&all.text(), "all-machines").contains("web-01") && table(&all.text(), "all-machines").contains("db-01"));
        let searched = app.send(page("/console/operator/machines?q=WEB", &operator)).await.text();
        assert!(table(&searched, "all-machines").contains("web-01") && !table(&searched, "all-machines").contains("db-01"));

        // Forged, cross-origin and account-user requests are refused and change nothing.
        let act = |cookies: &str, body: &str| form("/console/operator/machines/action", Some(cookies), body);
        let forged = app.send(act(&operator, "csrf=forged&machine=web-01&action=sensor-on")).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{label}: a forged token");
        let mut foreign = act(&operator, &format!("csrf={csrf}&machine=web-01&action=sensor-on"));
        foreign.headers_mut().insert("origin", "https://evil.example".parse().expect("header"));
        assert_eq!(app.send(foreign).await.status, StatusCode::FORBIDDEN, "{label}: another origin");
        let account = account_session(&app, &admin, "acme").await;
        assert_eq!(app.send(page("/console/operator/machines", &account)).await.status, StatusCode::FORBIDDEN);
        let account_csrf = csrf_of(&app.send(page("/console/account", &account)).await.text());
        let as_account = app.send(act(&account, &format!("csrf={account_csrf}&machine=web-01&action=delete"))).await;
        assert_eq!(as_account.status, StatusCode::FORBIDDEN, "{label}: an account user");
        let web = app.state.store.machine_by_login("web-01").await.expect("lookup").expect("exists");
        assert!(!web.sensor && web.disabled_at.is_none(), "{label}: nothing changed");

        // The operator's actions: sensor, disable, delete; each redirects back with its outcome.
        let done = app.send(act(&operator, &format!("csrf={csrf}&machine=web-01&action=sensor-on"))).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{label}: {}", done.text());
        assert_eq!(done.headers.get("location").and_then(|v| v.to_str().ok()), Some("/console/operator/machines"));
        let flash = set_cookie(&done, "palisade_flash").expect("an outcome");
        let shown = app.send(page("/console/operator/machines", &format!("{operator}; {flash}"))).await.text();
        assert!(shown.contains("web-01 is now a sensor."), "{label}: {shown}");
        app.send(act(&operator, &format!("csrf={csrf}&machine=db-01&action=disable"))).await;
        let db = app.state.store.machine_by_login("db-01").await.expect("lookup").expect("exists");
        assert!(db.disabled_at.is_some(), "{label}: disabled");
        app.send(act(&operator, &format!("csrf={csrf}&machine=db-01&action=delete"))).await;
        let unknown = app.send(act(&operator, &format!("csrf={csrf}&machine=ghost&action=delete"))).await;
        let flash = set_cookie(&unknown, "palisade_flash").expect("an outcome");
        let shown = app.send(page("/console/operator/machines", &format!("{operator}; {flash}"))).await.text();
        assert!(shown.contains("class=\"error\""), "{label}: an unknown machine is a sentence: {shown}");
        let web = app.state.store.machine_by_login("web-01").await.expect("lookup").expect("exists");
        assert!(web.sensor, "{label}: web-01 is a sensor");

        // The community list, searchable, and a delisting that blames nobody.
        let community = app.send(page("/console/operator/community?q=45.33", &operator)).await.text();
        assert!(table(&community, "community").contains("45.33.32.156"), "{label}: {community}");
        let delisted = app
            .send(form("/console/operator/community/delist", Some(&operator), &format!("csrf={csrf}&value=45.33.32.156")))
            .await;
        assert_eq!(delisted.status, StatusCode::SEE_OTHER, "{label}: {}", delisted.text());
        let pending = app.state.store.pending_consensus_requests().await.expect("requests");
        assert!(
            pending.iter().any(|r| r.kind == RequestKind::Delist && r.value.to_string() == "45.33.32.156/32"),
            "{label}: {pending:?}"
        );

        // The audit log names the console, the action, the target and the client, and shows it.
        let entries = app
            .state
            .store
            .list_audit(&palisade_server::store::AuditFilter { limit: 50, ..Default::default() })
            .await
            .expect("audit");
        let console: Vec<_> = entries.iter().filter(|e| e.entry.actor == "console:operator").collect();
        for (action, target) in [
            ("set_machine_sensor", "web-01"),
            ("set_machine_disabled", "db-01"),
            ("delete_machine", "db-01"),
            ("create_delisting", "45.33.32.156"),
        ] {
            assert!(
                console.iter().any(|e| e.entry.action == action && e.entry.target == target && e.entry.client.is_some()),
                "{label}: {action} {target}: {console:?}"
            );
        }
        assert!(
            console.iter().any(|e| e.entry.target == "ghost" && e.entry.status == Some(422)),
            "{label}: refused actions are recorded"
        );
        assert_eq!(console.len(), 5, "{label}: refused forms record nothing: {console:?}");
        let log = app.send(page("/console/operator/audit", &operator)).await.text();
        assert!(
            table(&log, "audit").contains("set_machine_sensor") && table(&log, "audit").contains("console:operator"),
            "{label}: {log}"
        );
    }
}

#[tokio::test]
async fn the_operator_adds_and_removes_canaries_in_the_console() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let operator = operator_session(&app, &admin).await;
        let csrf = csrf_of(&app.send(page("/console/operator/canaries", &operator)).await.text());
        let change = |body: String| form("/console/operator/canaries", Some(&operator), &body);

        let added = app.send(change(format!("csrf={csrf}&action=add&value=81.2.69.160&note=honeypot+7"))).await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{label}: {}", added.text());
        let canaries = app.state.store.list_canaries().await.expect("canaries");
        assert_eq!(canaries.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(), ["81.2.69.160"], "{label}");
        let shown = app.send(page("/console/operator/canaries", &operator)).await.text();
        assert!(table(&shown, "canaries").contains("honeypot 7"), "{label}: {shown}");

        // A second time, or garbage: a sentence on the page, nothing stored.
        for body in ["action=add&value=81.2.69.160", "action=add&value=not-an-address", "action=explode&value=81.2.69.160"] {
            let refused = app.send(change(format!("csrf={csrf}&{body}"))).await;
            let flash = set_cookie(&refused, "palisade_flash").expect("an outcome");
            let shown = app.send(page("/console/operator/canaries", &format!("{operator}; {flash}"))).await.text();
            assert!(shown.contains("class=\"error\""), "{label}: {body}: {shown}");
        }
        assert_eq!(app.state.store.list_canaries().await.expect("canaries").len(), 1, "{label}");

        // Not without the token, not for an account user.
        assert_eq!(app.send(change("action=remove&value=81.2.69.160".into())).await.status, StatusCode::FORBIDDEN);
        let account = account_session(&app, &admin, "acme").await;
        assert_eq!(app.send(page("/console/operator/canaries", &account)).await.status, StatusCode::FORBIDDEN, "{label}");

        let removed = app.send(change(format!("csrf={csrf}&action=remove&value=81.2.69.160"))).await;
        assert_eq!(removed.status, StatusCode::SEE_OTHER);
        assert!(app.state.store.list_canaries().await.expect("canaries").is_empty(), "{label}: removed");
        let entries = app
            .state
            .store
            .list_audit(&palisade_server::store::AuditFilter { limit: 50, ..Default::default() })
            .await
            .expect("audit");
        let console: Vec<_> = entries.iter().filter(|e| e.entry.actor == "console:operator").collect();
        assert!(console.iter().any(|e| e.entry.action == "create_canary" && e.entry.status == Some(200)), "{label}: {console:?}");
        assert!(console.iter().any(|e| e.entry.action == "delete_canary"), "{label}: {console:?}");
        assert!(console.iter().all(|e| !e.entry.detail.contains("honeypot")), "{label}: the note is not copied into the log");
    }
}

#[tokio::test]
async fn an_account_sees_its_pool_and_edits_its_policy_and_a_refused_value_changes_nothing() {
    use palisade_server::engine::Rule;
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let session = account_session(&app, &admin, "acme").await;
        let acme = app.state.store.account_by_name("acme").await.expect("read").expect("acme").key;
        let pool = palisade_server::domain::lists::pool_list(acme.0);
        let mut entry = crate::common::listing("45.33.32.156", SCENARIO, Rule::Sensor);
        if let palisade_server::store::ListOp::Add(listed) = &mut entry {
            listed.list = pool.clone();
        }
        crate::common::commit_lists(&app, vec![entry]).await;

        let shown = app.send(page("/console/account", &session)).await.text();
        let entries = table(&shown, "pool-entries");
        assert!(entries.contains("45.33.32.156") && entries.contains(SCENARIO), "{label}: the pool's entry: {entries}");
        assert!(shown.contains(&pool) && shown.contains("(the server's default)"), "{label}");

        let csrf = csrf_of(&shown);
        let body = format!(
            "csrf={csrf}&enabled=true&min_machines=2&duration_hours=12&remediation=captcha&allow=crowdsecurity%2Fssh-*%0Acrowdsecurity%2Fhttp-*&deny="
        );
        let saved = app.send(form("/console/account/pool", Some(&session), &body)).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{label}: {}", saved.text());
        let view = app.get("/v1/admin/accounts/acme/pool", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(view["own_policy"], true, "{label}");
        assert_eq!(view["policy"]["min_machines"], 2, "{label}");
        assert_eq!(view["policy"]["duration_secs"], 12 * 3600, "{label}");
        assert_eq!(view["policy"]["remediation"], "captcha", "{label}");
        assert_eq!(view["policy"]["allow"], json!(["crowdsecurity/ssh-*", "crowdsecurity/http-*"]), "{label}");

        // Refused values come back as the page's error and leave the policy as it was; an
        // unchecked box turns the pool off only when the rest is valid.
        for bad in [
            "min_machines=0&duration_hours=4",
            "min_machines=two&duration_hours=4",
            "min_machines=1&duration_hours=4&remediation=tarpit",
        ] {
            let refused = app.send(form("/console/account/pool", Some(&session), &format!("csrf={csrf}&{bad}"))).await;
            let flash = set_cookie(&refused, "palisade_flash").expect("an outcome");
            let page_after = app.send(page("/console/account", &format!("{session}; {flash}"))).await;
            assert_eq!(page_after.status, StatusCode::UNPROCESSABLE_ENTITY, "{label} {bad}: {}", page_after.text());
            let view = app.get("/v1/admin/accounts/acme/pool", Some(&admin)).await.expect_ok(StatusCode::OK);
            assert_eq!(
                (view["policy"]["enabled"].clone(), view["policy"]["min_machines"].clone()),
                (json!(true), json!(2)),
                "{label} {bad}"
            );
        }
        // Without the CSRF token, or as the operator, nothing changes.
        let forged = app.send(form("/console/account/pool", Some(&session), "min_machines=5&duration_hours=1")).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{label}");
        let operator = operator_session(&app, &admin).await;
        let operator_page = app.send(page("/console/operator", &operator)).await.text();
        let as_operator = app
            .send(form(
                "/console/account/pool",
                Some(&operator),
                &format!("csrf={}&min_machines=5&duration_hours=1", csrf_of(&operator_page)),
            ))
            .await;
        assert_eq!(as_operator.status, StatusCode::FORBIDDEN, "{label}");
        let view = app.get("/v1/admin/accounts/acme/pool", Some(&admin)).await.expect_ok(StatusCode::OK);
        assert_eq!(view["policy"]["min_machines"], 2, "{label}: unchanged");
    }
}

#[tokio::test]
async fn the_operator_upholds_a_false_positive_edits_never_block_ranges_and_deletes_accounts_in_the_console() {
    use palisade_server::engine::Rule;
    use palisade_server::store::RequestKind;
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let operator = operator_session(&app, &admin).await;
        let csrf = csrf_of(&app.send(page("/console/operator/never-block", &operator)).await.text());
        let audited = |action: &'static str| {
            let store = app.state.store.clone();
            async move {
                let entries = store
                    .list_audit(&palisade_server::store::AuditFilter { limit: 100, ..Default::default() })
                    .await
                    .expect("audit");
                entries.iter().any(|e| e.entry.actor == "console:operator" && e.entry.action == action)
            }
        };

        // A false positive: queued as one, so the reporters are blamed.
        crate::common::commit_lists(&app, vec![crate::common::listing("45.33.32.156", SCENARIO, Rule::Crowd)]).await;
        let body = format!("csrf={csrf}&value=45.33.32.156&blame=true");
        let upheld = app.send(form("/console/operator/community/delist", Some(&operator), &body)).await;
        assert_eq!(upheld.status, StatusCode::SEE_OTHER, "{label}: {}", upheld.text());
        let pending = app.state.store.pending_consensus_requests().await.expect("requests");
        assert!(pending.iter().any(|r| r.kind == RequestKind::FalsePositive), "{label}: {pending:?}");
        assert!(audited("create_false_positive").await, "{label}");

        // Never-block ranges: added (several lines), shown, refused when garbage, removed.
        let change = |body: String| form("/console/operator/never-block", Some(&operator), &body);
        let added = app
            .send(change(format!(
                "csrf={csrf}&action=add&text=81.2.69.0%2F24%0A2a01%3A4f8%3A1%3A%3A%2F48&category=infrastructure&source=office"
            )))
            .await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{label}: {}", added.text());
        let ranges = app.state.store.list_allowlist().await.expect("ranges");
        assert_eq!(ranges.len(), 2, "{label}: {ranges:?}");
        let shown = app.send(page("/console/operator/never-block", &operator)).await.text();
        assert!(table(&shown, "never-block").contains("81.2.69.0/24") && shown.contains("office"), "{label}: {shown}");
        for bad in [
            "action=add&text=not-a-range&category=custom&source=x",
            "action=add&text=10.0.0.0%2F8&category=bogus&source=x",
            "action=remove&value=1.2.3.4",
        ] {
            let refused = app.send(change(format!("csrf={csrf}&{bad}"))).await;
            let flash = set_cookie(&refused, "palisade_flash").expect("an outcome");
            let shown = app.send(page("/console/operator/never-block", &format!("{operator}; {flash}"))).await.text();
            assert!(shown.contains("class=\"error\""), "{label}: {bad}: {shown}");
        }
        assert_eq!(app.state.store.list_allowlist().await.expect("ranges").len(), 2, "{label}: nothing more stored");
        let removed = app.send(change(format!("csrf={csrf}&action=remove&value=81.2.69.0%2F24"))).await;
        assert_eq!(removed.status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(app.state.store.list_allowlist().await.expect("ranges").len(), 1, "{label}: one left");
        assert!(audited("import_allowlist").await && audited("delete_allowlist").await, "{label}");

        // Accounts: created, given an enrollment key and a login link (shown once, never in the
        // audit log), listed and searched; one with machines is refused unless told what to do
        // with them.
        let act = |body: String| form("/console/operator/accounts", Some(&operator), &body);
        let created = app.send(act(format!("csrf={csrf}&action=create&name=globex"))).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{label}");
        assert!(app.state.store.account_by_name("globex").await.expect("read").is_some(), "{label}: created");
        for (action, shown_as) in [("enroll-key", "palisade enroll "), ("login-link", "/console/login/link?token=")] {
            let made = app.send(act(format!("csrf={csrf}&action={action}&name=globex"))).await;
            let flash = set_cookie(&made, "palisade_flash").expect("an outcome");
            let shown = app.send(page("/console/operator/accounts", &format!("{operator}; {flash}"))).await.text();
            assert!(shown.contains(shown_as), "{label} {action}: {shown}");
        }
        assert_eq!(app.state.store.list_enroll_keys(None).await.expect("keys").len(), 1, "{label}: one key made");
        let entries = app
            .state
            .store
            .list_audit(&palisade_server::store::AuditFilter { limit: 100, ..Default::default() })
            .await
            .expect("audit");
        assert!(
            entries.iter().all(|e| !e.entry.detail.contains("token=") && !e.entry.detail.contains("enroll ")),
            "{label}: no secret logged"
        );
        let refused = app.send(act(format!("csrf={csrf}&action=create&name=globex"))).await;
        let flash = set_cookie(&refused, "palisade_flash").expect("an outcome");
        assert!(
            app.send(page("/console/operator/accounts", &format!("{operator}; {flash}")))
                .await
                .text()
                .contains("class=\"error\""),
            "{label}: a second globex"
        );
        let session = account_session(&app, &admin, "acme").await;
        let key = app.post("/v1/admin/accounts/acme/enroll-keys", Some(&admin), &json!({})).await.expect_ok(StatusCode::CREATED);
        let machine = app.machine("web-07").await;
        let enroll = json!({"attachment_key": key["key"], "name": "web", "tags": [], "overwrite": false});
        assert_eq!(app.post("/v2/watchers/enroll", Some(&machine.token), &enroll).await.status, StatusCode::ACCEPTED, "{label}");
        let listed = app.send(page("/console/operator/accounts?q=glob", &operator)).await.text();
        assert!(
            table(&listed, "accounts").contains("globex") && !table(&listed, "accounts").contains("acme"),
            "{label}: {listed}"
        );
        let refused = app.send(act(format!("csrf={csrf}&action=delete&name=acme"))).await;
        let flash = set_cookie(&refused, "palisade_flash").expect("an outcome");
        let shown = app.send(page("/console/operator/accounts", &format!("{operator}; {flash}"))).await.text();
        assert!(shown.contains("class=\"error\"") && shown.contains("web-07"), "{label}: {shown}");
        assert!(app.state.store.account_by_name("acme").await.expect("read").is_some(), "{label}: still there");
        let deleted = app.send(act(format!("csrf={csrf}&action=delete&name=acme&machines=detach"))).await;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{label}");
        assert!(app.state.store.account_by_name("acme").await.expect("read").is_none(), "{label}: deleted");
        assert_eq!(
            app.send(page("/console/account", &session)).await.status,
            StatusCode::SEE_OTHER,
            "{label}: its session ended"
        );
        assert!(audited("delete_account").await, "{label}");

        // Not without the token, not for an account user.
        assert_eq!(app.send(act("action=delete&name=globex".into())).await.status, StatusCode::FORBIDDEN, "{label}");
        let other = account_session(&app, &admin, "initech").await;
        for path in ["/console/operator/accounts", "/console/operator/never-block"] {
            assert_eq!(app.send(page(path, &other)).await.status, StatusCode::FORBIDDEN, "{label} {path}");
        }
        assert!(app.state.store.account_by_name("globex").await.expect("read").is_some(), "{label}");
    }
}

#[tokio::test]
async fn an_account_reads_its_machines_alerts_newest_first_and_never_another_accounts() {
    for app in apps().await {
        let label = app.label;
        let admin = app.admin_token().await;
        let session = account_session(&app, &admin, "acme").await;
        let quiet = app.send(page("/console/account", &session)).await.text();
        assert!(quiet.contains("None of your machines reported anything"), "{label}");
        let enrolled = |account: &'static str, login: &'static str| {
            let app = &app;
            let admin = admin.clone();
            async move {
                let key = app.post(&format!("/v1/admin/accounts/{account}/enroll-keys"), Some(&admin), &json!({})).await;
                let machine = app.machine(login).await;
                let enroll = json!({"attachment_key": key.json()["key"], "name": login, "tags": [], "overwrite": false});
                assert_eq!(app.post("/v2/watchers/enroll", Some(&machine.token), &enroll).await.status, StatusCode::ACCEPTED);
                machine
            }
        };
        let web = enrolled("acme", "web-01").await;
        app.post("/v1/admin/accounts", Some(&admin), &json!({"name": "globex"})).await.expect_ok(StatusCode::CREATED);
        let theirs = enrolled("globex", "globex-01").await;
        app.post("/v2/signals", Some(&web.token), &json!([signal("45.33.32.156", SCENARIO)])).await.expect_ok(StatusCode::OK);
        app.post("/v2/signals", Some(&theirs.token), &json!([signal("81.2.69.160", SCENARIO)])).await.expect_ok(StatusCode::OK);
        app.post("/v2/signals", Some(&web.token), &json!([signal("45.33.32.157", "crowdsecurity/http-probing")]))
            .await
            .expect_ok(StatusCode::OK);

        let shown = app.send(page("/console/account", &session)).await.text();
        let alerts = table(&shown, "alerts");
        let newest = alerts.find("45.33.32.157").expect("the newest alert");
        let older = alerts.find("45.33.32.156").expect("the older alert");
        assert!(newest < older, "{label}: newest first: {alerts}");
        assert!(alerts.contains("web-01") && alerts.contains("crowdsecurity/http-probing"), "{label}: {alerts}");
        assert!(!alerts.contains("81.2.69.160") && !alerts.contains("globex-01"), "{label}: another account's alert: {alerts}");
    }
}
