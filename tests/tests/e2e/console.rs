//! The web console against the real server process: a headless Chromium, driven through
//! chromedriver, signs in as the operator and as an account user (with a login link), creates
//! an enrollment key that a machine then uses, watches its signals arrive, creates and revokes
//! an API key, looks addresses up and signs out, saving a screenshot of every page into
//! `target/console-screenshots/`. Plain HTTP requests check that forged forms and tampered or
//! expired sessions are refused. Without chromium and chromedriver the browser test is skipped
//! with a notice, except in CI.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration as StdDuration;

use anyhow::{Context, bail, ensure};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use palisade::Client;
use palisade_server::auth::session::{Keys, Role, SESSION_TTL_SECS};
use palisade_tests::signals::crowdsec_signal;
use palisade_tests::testing::{TestDb, in_ci};
use palisade_tests::{ServerOptions, ServerProcess, free_port, workspace_root};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use time::{Duration, OffsetDateTime};
use tokio::task::block_in_place;

type TestResult = anyhow::Result<()>;

const PASSWORD: &str = "Zb0WQ1tF6mJ8xqgA3rVuY5kNs2cD7eHp";

/// A server on SQLite with an account `acme` and an admin token. The database lives as long as
/// the returned `TestDb`.
fn start() -> anyhow::Result<(ServerProcess, String, TestDb)> {
    block_in_place(|| {
        let db = TestDb::sqlite();
        let server = ServerProcess::start(&db, ServerOptions::default())?;
        server.admin(&["account", "create", "acme"])?;
        let token = server.admin_token()?;
        Ok((server, token, db))
    })
}

/// The path and query of the login link the CLI prints (its host is the configured public URL,
/// which a test server on port 0 does not know), appended to this server's URL.
fn login_link(server: &ServerProcess, account: &str) -> anyhow::Result<String> {
    let printed = block_in_place(|| server.admin(&["account", "login-link", account]))?;
    let at = printed.find("console/login/link?token=").context("no link printed")?;
    Ok(format!("{}{}", server.url, printed[at..].trim()))
}

/// The server's console keys, read from its data directory as any replica would derive them.
fn server_keys(server: &ServerProcess) -> anyhow::Result<Keys> {
    let secret = std::fs::read_to_string(server.data_dir.join("jwt.key"))?;
    Ok(Keys::new(&palisade_server::auth::jwt::console_key(secret.trim().as_bytes())))
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?)
}

fn session_cookie(response: &reqwest::Response) -> anyhow::Result<String> {
    let header = response.headers().get(SET_COOKIE).context("no Set-Cookie")?.to_str()?;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        ensure!(header.contains(attribute), "cookie lacks {attribute}: {header}");
    }
    Ok(header.split(';').next().context("empty cookie")?.to_string())
}

fn csrf_of(html: &str) -> anyhow::Result<String> {
    let at = html.find("name=\"csrf\" value=\"").context("no CSRF field")? + "name=\"csrf\" value=\"".len();
    Ok(html[at..].split('"').next().context("unterminated CSRF field")?.to_string())
}

/// Signs in to account `acme` over plain HTTP through a login link; returns the cookie.
async fn account_cookie(http: &reqwest::Client, server: &ServerProcess) -> anyhow::Result<String> {
    let link = login_link(server, "acme")?;
    let token = link.split("token=").nth(1).context("no token")?.to_string();
    let page = http.get(&link).send().await?;
    ensure!(page.status() == StatusCode::OK, "link page: {}", page.status());
    let signed = http
        .post(format!("{}console/login/link", server.url))
        .header(ORIGIN, server.url.trim_end_matches('/'))
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    ensure!(signed.status() == StatusCode::SEE_OTHER, "link sign-in: {}", signed.status());
    session_cookie(&signed)
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_posts_and_tampered_or_expired_sessions_are_refused() -> TestResult {
    let (server, admin_token, _db) = start()?;
    let http = http()?;
    let base = server.url.clone();
    let origin = base.trim_end_matches('/').to_string();

    // Operator sign-in: a wrong token is 401, a foreign origin 403, the right token a cookie.
    let wrong = http.post(format!("{base}console/login")).header(ORIGIN, &origin).form(&[("token", "nope")]).send().await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let foreign = http
        .post(format!("{base}console/login"))
        .header(ORIGIN, "https://evil.example")
        .form(&[("token", admin_token.as_str())])
        .send()
        .await?;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let signed =
        http.post(format!("{base}console/login")).header(ORIGIN, &origin).form(&[("token", admin_token.as_str())]).send().await?;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed.headers().get(LOCATION).map(|v| v.to_str().unwrap_or("")), Some("/console/operator"));
    let operator = session_cookie(&signed)?;
    let overview = http.get(format!("{base}console/operator")).header(COOKIE, &operator).send().await?;
    assert_eq!(overview.status(), StatusCode::OK);
    assert!(overview.text().await?.contains("Network overview"));

    // An account session, and its CSRF token.
    let cookie = account_cookie(&http, &server).await?;
    let page = http.get(format!("{base}console/account")).header(COOKIE, &cookie).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await?)?;
    let operator_csrf =
        csrf_of(&http.get(format!("{base}console/operator")).header(COOKIE, &operator).send().await?.text().await?)?;
    assert_ne!(csrf, operator_csrf, "tokens are per session");

    let create = |form: Vec<(&'static str, String)>, origin: Option<&str>| {
        let mut request = http.post(format!("{base}console/account/enroll-keys")).header(COOKIE, &cookie).form(&form);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.send()
    };
    assert_eq!(create(vec![], Some(&origin)).await?.status(), StatusCode::FORBIDDEN, "no token");
    assert_eq!(create(vec![("csrf", "forged".into())], Some(&origin)).await?.status(), StatusCode::FORBIDDEN, "wrong token");
    assert_eq!(
        create(vec![("csrf", operator_csrf.clone())], Some(&origin)).await?.status(),
        StatusCode::FORBIDDEN,
        "another session's token"
    );
    assert_eq!(
        create(vec![("csrf", csrf.clone())], Some("https://evil.example")).await?.status(),
        StatusCode::FORBIDDEN,
        "right token from another origin"
    );
    // Redirect after POST: the new key is on the page the answer leads to, carried by a cookie.
    let made = create(vec![("csrf", csrf.clone())], Some(&origin)).await?;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let flash = made
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .find(|pair| pair.starts_with("palisade_flash="))
        .context("the outcome's cookie")?
        .to_string();
    let shown = http.get(format!("{base}console/account")).header(COOKIE, format!("{cookie}; {flash}")).send().await?;
    assert!(shown.text().await?.contains("id=\"new-enroll-key\""), "the key is shown once");
    let logout = http.post(format!("{base}console/logout")).header(COOKIE, &cookie).header(ORIGIN, &origin).send().await?;
    assert_eq!(logout.status(), StatusCode::FORBIDDEN, "sign-out needs the token too");

    // Tampered, foreign, expired and absent sessions all lead back to the sign-in page.
    let (name, value) = cookie.split_once('=').context("cookie shape")?;
    let (body, tag) = value.split_once('.').context("signed value shape")?;
    let mut flipped: Vec<char> = body.chars().collect();
    flipped[3] = if flipped[3] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{name}={}.{tag}", flipped.into_iter().collect::<String>());
    let keys = server_keys(&server)?;
    let account = Role::Account { id: 1, name: "acme".into() };
    let long_ago = OffsetDateTime::now_utc().unix_timestamp() - SESSION_TTL_SECS - 60;
    let expired = format!("{name}={}", keys.issue_session(&account, long_ago, "old"));
    let foreign = format!("{name}={}", Keys::new(&[9; 32]).issue_session(&account, long_ago + SESSION_TTL_SECS, "x"));
    for (what, cookie) in [("tampered", Some(tampered)), ("expired", Some(expired)), ("foreign", Some(foreign)), ("absent", None)]
    {
        let mut request = http.get(format!("{base}console/account"));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{what}");
        assert_eq!(response.headers().get(LOCATION).map(|v| v.to_str().unwrap_or("")), Some("/console/login"), "{what}");
    }
    // A still-valid session the server itself would issue is accepted (the check above can fail).
    let fresh = format!("{name}={}", keys.issue_session(&account, long_ago + SESSION_TTL_SECS, "y"));
    assert_eq!(http.get(format!("{base}console/account")).header(COOKIE, fresh).send().await?.status(), StatusCode::OK);

    // Login links: an expired one is refused; the admin API issues them for existing accounts only.
    let old_link = keys.issue_link(1, "acme", long_ago, "n");
    let stale = http.get(format!("{base}console/login/link?token={old_link}")).send().await?;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let api = http.post(format!("{base}v1/admin/accounts/acme/login-link")).bearer_auth(&admin_token).send().await?;
    assert_eq!(api.status(), StatusCode::CREATED);
    let body: serde_json::Value = api.json().await?;
    assert!(body["url"].as_str().is_some_and(|u| u.contains("/console/login/link?token=")), "{body}");
    let ghost = http.post(format!("{base}v1/admin/accounts/ghost/login-link")).bearer_auth(&admin_token).send().await?;
    assert_eq!(ghost.status(), StatusCode::NOT_FOUND);
    let anonymous = http.post(format!("{base}v1/admin/accounts/acme/login-link")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The operator's and the account's new forms refuse a missing token, another origin and the
    // other role.
    for (path, body) in [
        (
            "console/operator/never-block",
            vec![("action", "add"), ("text", "93.184.216.0/24"), ("category", "custom"), ("source", "x")],
        ),
        ("console/operator/accounts", vec![("action", "create"), ("name", "intruder")]),
        ("console/operator/community/delist", vec![("value", "45.33.32.10"), ("blame", "true")]),
    ] {
        let post = |cookie: &str, csrf: &str, from: &str| {
            let mut form: Vec<(&str, &str)> = body.clone();
            form.push(("csrf", csrf));
            http.post(format!("{base}{path}")).header(COOKIE, cookie).header(ORIGIN, from).form(&form).send()
        };
        assert_eq!(post(&operator, "", &origin).await?.status(), StatusCode::FORBIDDEN, "{path}: no token");
        assert_eq!(
            post(&operator, &operator_csrf, "https://evil.example").await?.status(),
            StatusCode::FORBIDDEN,
            "{path}: origin"
        );
        assert_eq!(post(&cookie, &csrf, &origin).await?.status(), StatusCode::FORBIDDEN, "{path}: an account user");
    }
    let pool = |cookie: &str, csrf: &str| {
        let form = [("csrf", csrf), ("min_machines", "3"), ("duration_hours", "4"), ("enabled", "true")];
        http.post(format!("{base}console/account/pool")).header(COOKIE, cookie).header(ORIGIN, &origin).form(&form).send()
    };
    assert_eq!(pool(&cookie, "forged").await?.status(), StatusCode::FORBIDDEN, "pool policy: wrong token");
    assert_eq!(pool(&operator, &operator_csrf).await?.status(), StatusCode::FORBIDDEN, "pool policy: the operator");
    let policy: serde_json::Value =
        http.get(format!("{base}v1/admin/accounts/acme/pool")).bearer_auth(&admin_token).send().await?.json().await?;
    assert_eq!(policy["policy"]["min_machines"], 1, "nothing changed: {policy}");
    assert!(
        !http
            .get(format!("{base}v1/admin/allowlists"))
            .bearer_auth(&admin_token)
            .send()
            .await?
            .text()
            .await?
            .contains("93.184.216"),
        "nothing added"
    );

    // An operator is not an account user, and an account user is not the operator.
    assert_eq!(
        http.get(format!("{base}console/account")).header(COOKIE, &operator).send().await?.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(http.get(format!("{base}console/operator")).header(COOKIE, &cookie).send().await?.status(), StatusCode::FORBIDDEN);
    Ok(())
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// Whether chromium and chromedriver are installed; outside CI their absence skips the test.
fn browser_available() -> bool {
    let found = |name: &str| Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    let ok = found("chromedriver") && (found("chromium") || found("chromium-browser"));
    if !ok {
        assert!(!in_ci(), "chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)");
        println!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
    }
    ok
}

async fn open_browser() -> anyhow::Result<(Driver, Browser)> {
    let port = free_port()?;
    let child = Command::new("chromedriver").arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let driver = Driver { child, port };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"]}),
    );
    let url = format!("http://127.0.0.1:{}", driver.port);
    // chromedriver takes a moment to listen; retry the connection, not an assertion.
    let mut last = None;
    for _ in 0..80 {
        // chromedriver speaks plain HTTP on loopback: no TLS connector needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
            Ok(browser) => return Ok((driver, browser)),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    bail!("chromedriver did not accept a session: {last:?}")
}

fn screenshot_dir() -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target").join("console-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Saves a PNG of the current page, and checks that nothing on it points off this server.
async fn snap(browser: &Browser, server: &ServerProcess, name: &str) -> TestResult {
    let png = browser.screenshot().await?;
    std::fs::write(screenshot_dir()?.join(format!("{name}.png")), png)?;
    let refs = browser
        .execute(
            "return Array.from(document.querySelectorAll('[src],[href],[action]')).map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('action'));",
            vec![],
        )
        .await?;
    let refs: Vec<String> = serde_json::from_value(refs)?;
    ensure!(!refs.is_empty(), "{name}: the page references nothing, not even its stylesheet");
    for r in refs {
        let same = (r.starts_with('/') && !r.starts_with("//")) || r.starts_with('#') || r.starts_with(&server.url);
        ensure!(same, "{name}: {r:?} is not on this server");
    }
    Ok(())
}

async fn text(browser: &Browser, css: &str) -> anyhow::Result<String> {
    Ok(browser.find(Locator::Css(css)).await?.text().await?)
}

async fn value(browser: &Browser, css: &str) -> anyhow::Result<String> {
    browser.find(Locator::Css(css)).await?.prop("value").await?.context("no value")
}

/// Clicks something that loads a new page, and waits until that page has loaded: a mark set on
/// the old page's window is gone and the new document is complete.
async fn click(browser: &Browser, css: &str) -> TestResult {
    browser.execute("window.__palisadeOld = true;", vec![]).await?;
    browser.find(Locator::Css(css)).await?.click().await?;
    for _ in 0..300 {
        let loaded =
            browser.execute("return window.__palisadeOld === undefined && document.readyState === 'complete';", vec![]).await?;
        if loaded == serde_json::Value::Bool(true) {
            return Ok(());
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    bail!("clicking {css} loaded no new page within 30 s")
}

async fn path(browser: &Browser) -> anyhow::Result<String> {
    Ok(browser.current_url().await?.path().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_and_account_users_work_the_console_in_a_browser() -> TestResult {
    if !browser_available() {
        return Ok(());
    }
    let (server, admin_token, _db) = start()?;
    let (_driver, browser) = open_browser().await?;
    let outcome = browse(&browser, &server, &admin_token).await;
    drop(browser.close().await);
    outcome
}

async fn browse(browser: &Browser, server: &ServerProcess, admin_token: &str) -> TestResult {
    let base = &server.url;

    // Signed out, every page leads to the sign-in form.
    browser.goto(&format!("{base}console/account")).await?;
    assert_eq!(path(browser).await?, "/console/login");
    snap(browser, server, "01-sign-in").await?;

    // Operator: a wrong token is refused, the right one opens the overview.
    browser.find(Locator::Css("#token")).await?.send_keys("wrong").await?;
    click(browser, "form[action='/console/login'] button").await?;
    assert!(text(browser, ".error").await?.contains("not valid"));
    browser.find(Locator::Css("#token")).await?.send_keys(admin_token).await?;
    click(browser, "form[action='/console/login'] button").await?;
    assert_eq!(path(browser).await?, "/console/operator");
    assert_eq!(text(browser, "h1").await?, "Network overview");
    snap(browser, server, "02-operator-overview").await?;
    click(browser, "#sign-out").await?;
    assert_eq!(path(browser).await?, "/console/login");
    browser.goto(&format!("{base}console/operator")).await?;
    assert_eq!(path(browser).await?, "/console/login", "signed out for good");

    // Account user through a login link.
    browser.goto(&login_link(server, "acme")?).await?;
    snap(browser, server, "03-login-link").await?;
    click(browser, "#continue").await?;
    assert_eq!(path(browser).await?, "/console/account");
    assert_eq!(text(browser, "h1").await?, "Account acme");

    // An enrollment key made in the console enrolls a machine.
    click(browser, "#create-enroll-key").await?;
    let enroll_key = value(browser, "#new-enroll-key").await?;
    assert_eq!(value(browser, "#enroll-cscli").await?, format!("cscli console enroll {enroll_key}"));
    snap(browser, server, "04-enrollment-key").await?;
    // A reload shows the page again without submitting the form a second time (redirect after
    // POST), and the key is not shown again.
    let keys_before = browser.find_all(Locator::Css("#enroll-keys tbody tr")).await?.len();
    browser.refresh().await?;
    assert_eq!(path(browser).await?, "/console/account");
    assert!(browser.find(Locator::Css("#new-enroll-key")).await.is_err(), "the key is shown once");
    assert_eq!(browser.find_all(Locator::Css("#enroll-keys tbody tr")).await?.len(), keys_before, "no second key");
    let machine = Client::new(base)?;
    machine.register_machine("web-01.acme", PASSWORD).await?;
    machine.login_machine("web-01.acme", PASSWORD, &["crowdsecurity/ssh-bf".to_string()]).await?;
    machine.enroll_machine(&enroll_key, "web-01", &[], false).await?;
    let now = OffsetDateTime::now_utc() - Duration::minutes(2);
    let batch: Vec<_> = (0..3).map(|i| crowdsec_signal("agent", Ipv4Addr::new(45, 33, 32, 10 + i), 0, now)).collect();
    assert_eq!(machine.push_signals(&batch).await?.accepted, 3);

    browser.goto(&format!("{base}console/account")).await?;
    let row = text(browser, "#machines tbody tr").await?;
    assert!(row.contains("web-01.acme") && row.contains("web-01"), "{row}");
    let cells = browser.find_all(Locator::Css("#machines tbody tr td.num")).await?;
    assert_eq!(cells[0].text().await?, "3", "signals today");
    snap(browser, server, "05-account-machines").await?;

    // An API key made in the console works, and stops working once revoked there.
    click(browser, "#create-api-key").await?;
    let api_key = value(browser, "#new-api-key").await?;
    snap(browser, server, "06-api-key").await?;
    let lookup = |key: String| async move {
        http()?.get(format!("{base}v1/ips/45.33.32.10")).header("x-api-key", key).send().await.map_err(anyhow::Error::from)
    };
    assert_eq!(lookup(api_key.clone()).await?.status(), StatusCode::OK);
    browser.goto(&format!("{base}console/account")).await?;
    assert_eq!(text(browser, "#usage").await?, "1", "the API lookup counts against the account");

    // The analyzer costs the account one lookup per search.
    browser.goto(&format!("{base}console/ips")).await?;
    browser.find(Locator::Css("#q")).await?.send_keys("45.33.32.10").await?;
    click(browser, "form.search button").await?;
    assert!(text(browser, "#ip-card h2").await?.starts_with("45.33.32.10"));
    assert!(!text(browser, "#reputation").await?.is_empty());
    snap(browser, server, "07-ip-analyzer").await?;
    browser.goto(&format!("{base}console/ips?q=45.33.32.0/24")).await?;
    assert!(text(browser, "h2").await?.contains("45.33.32.0/24"));
    browser.goto(&format!("{base}console/ips?q=not-an-ip")).await?;
    assert!(text(browser, ".error").await?.contains("not an IP"));
    browser.goto(&format!("{base}console/account")).await?;
    assert_eq!(text(browser, "#usage").await?, "3", "two analyzer searches were counted, the invalid one was not");
    let chart = browser.find(Locator::Css("#usage-chart svg")).await?.attr("aria-label").await?.unwrap_or_default();
    assert!(chart.contains("3 in all"), "the usage history holds today's lookups: {chart}");

    // The machine's reports are the account's recent alerts; its pool policy is edited here.
    assert!(text(browser, "#alerts tbody").await?.contains("45.33.32.10"), "the account's alerts");
    // Opening the policy's <details> loads no page: a plain click.
    browser.find(Locator::Css("#pool-h ~ details summary")).await?.click().await?;
    let min_machines = browser.find(Locator::Css("#pool-policy input[name='min_machines']")).await?;
    min_machines.clear().await?;
    min_machines.send_keys("2").await?;
    click(browser, "#pool-policy button").await?;
    assert!(text(browser, ".notice").await?.contains("Pool policy saved"));
    assert!(text(browser, "#pool-h + p").await?.contains("2 of your machines"));
    browser.execute("document.getElementById('alerts-h').scrollIntoView();", vec![]).await?;
    snap(browser, server, "15-account-alerts-and-pool").await?;

    let prefix = text(browser, "#api-keys tbody th code").await?;
    click(browser, "#api-keys tbody form button").await?;
    assert!(text(browser, ".notice").await?.contains("revoked"));
    assert!(text(browser, "#api-keys tbody").await?.contains("revoked"), "{prefix} shows as revoked");
    assert_eq!(lookup(api_key).await?.status(), StatusCode::FORBIDDEN, "a revoked key is refused");

    // Revoking the enrollment key leaves the enrolled machine alone but enrolls nothing more.
    click(browser, "#enroll-keys tbody form button").await?;
    assert!(text(browser, "#enroll-keys tbody").await?.contains("revoked"));
    let other = Client::new(base)?;
    other.register_machine("web-02.acme", PASSWORD).await?;
    other.login_machine("web-02.acme", PASSWORD, &[]).await?;
    assert!(other.enroll_machine(&enroll_key, "web-02", &[], false).await.is_err(), "a revoked key enrolls nothing");
    snap(browser, server, "08-account-after-revoking").await?;

    // On a phone-sized window the page reflows instead of scrolling sideways (wide tables scroll
    // inside their own box).
    browser.set_window_size(390, 844).await?;
    browser.goto(&format!("{base}console/account")).await?;
    let overflow = browser.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await?;
    assert!(overflow.as_i64().is_some_and(|px| px <= 0), "the page is wider than a phone by {overflow} px");
    snap(browser, server, "08b-account-on-a-phone").await?;
    browser.set_window_size(1200, 900).await?;

    click(browser, "#sign-out").await?;
    assert_eq!(path(browser).await?, "/console/login");
    browser.goto(&format!("{base}console/account")).await?;
    assert_eq!(path(browser).await?, "/console/login");

    // The operator sees the new machine and its signals in the overview.
    browser.find(Locator::Css("#token")).await?.send_keys(admin_token).await?;
    click(browser, "form[action='/console/login'] button").await?;
    let stats = text(browser, "#stats").await?;
    assert!(stats.contains("Consensus lag"), "{stats}");
    assert!(stats.contains("Machines\n2") || stats.contains("Machines 2"), "{stats}");
    assert!(text(browser, "#top-scenarios").await?.contains("crowdsecurity/"), "top scenarios");
    snap(browser, server, "09-operator-with-data").await?;
    browser.goto(&format!("{base}console/ips?q=45.33.32.11")).await?;
    snap(browser, server, "10-operator-ip-analyzer").await?;

    // The operator acts: finds the machine, makes it a sensor, disables it; each action comes
    // back to the page with its outcome, and a reload does not repeat it.
    click(browser, "nav a[href='/console/operator/machines']").await?;
    browser.find(Locator::Css("#q")).await?.send_keys("web-01").await?;
    click(browser, "form.search button").await?;
    assert!(text(browser, "#all-machines tbody").await?.contains("web-01.acme"));
    click(browser, "button[data-action='sensor-on'][data-machine='web-01.acme']").await?;
    assert_eq!(path(browser).await?, "/console/operator/machines");
    assert!(text(browser, ".notice").await?.contains("web-01.acme is now a sensor."));
    browser.refresh().await?;
    assert!(browser.find(Locator::Css(".notice")).await.is_err(), "the outcome is shown once");
    // A sensor's reports list at once: one entry is delisted, another upheld as a false positive.
    let later = OffsetDateTime::now_utc();
    let sightings: Vec<_> = (20..22).map(|i| crowdsec_signal("agent", Ipv4Addr::new(45, 33, 32, i), 0, later)).collect();
    assert_eq!(machine.push_signals(&sightings).await?.accepted, 2);
    let mut listed = false;
    for _ in 0..120 {
        browser.goto(&format!("{base}console/operator/community")).await?;
        if text(browser, "#community tbody").await.unwrap_or_default().contains("45.33.32.21") {
            listed = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    ensure!(listed, "the sensor's reports were not listed within 30 s");
    assert_eq!(text(browser, "h1").await?, "Community list");
    snap(browser, server, "12-operator-community-list").await?;
    click(browser, "button[data-delist='45.33.32.20']").await?;
    assert!(text(browser, ".notice").await?.contains("its reporters are not blamed"));
    click(browser, "button[data-false-positive='45.33.32.21']").await?;
    assert!(text(browser, ".notice").await?.contains("is a false positive"));

    click(browser, "nav a[href='/console/operator/machines']").await?;
    click(browser, "button[data-action='disable'][data-machine='web-01.acme']").await?;
    assert!(text(browser, ".notice").await?.contains("is disabled"));
    snap(browser, server, "11-operator-machines").await?;
    click(browser, "button[data-action='enable'][data-machine='web-01.acme']").await?;
    assert!(text(browser, ".notice").await?.contains("web-01.acme"));
    click(browser, "button[data-action='delete'][data-machine='web-01.acme']").await?;
    assert!(text(browser, ".notice").await?.contains("web-01.acme"));
    assert!(!text(browser, "#all-machines tbody").await?.contains("web-01.acme"), "deleted machines are not listed");
    click(browser, "nav a[href='/console/operator/canaries']").await?;
    browser.find(Locator::Css("#canary-value")).await?.send_keys("81.2.69.160").await?;
    browser.find(Locator::Css("#canary-note")).await?.send_keys("honeypot in Frankfurt").await?;
    click(browser, "#add-canary").await?;
    assert!(text(browser, ".notice").await?.contains("81.2.69.160 is a canary."));
    assert!(text(browser, "#canaries tbody").await?.contains("honeypot in Frankfurt"));
    snap(browser, server, "14-operator-canaries").await?;
    click(browser, "button[data-remove='81.2.69.160']").await?;
    assert!(text(browser, ".notice").await?.contains("no longer a canary"));

    // Never-block ranges, a false positive, and accounts, each with its outcome on its page.
    click(browser, "nav a[href='/console/operator/never-block']").await?;
    browser.find(Locator::Css("#never-block-text")).await?.send_keys("93.184.216.0/24").await?;
    click(browser, "#add-never-block").await?;
    assert!(text(browser, ".notice").await?.contains("1 of 1 ranges added"));
    assert!(text(browser, "#never-block tbody").await?.contains("93.184.216.0/24"));
    snap(browser, server, "16-operator-never-block").await?;
    click(browser, "button[data-remove='93.184.216.0/24']").await?;
    assert!(text(browser, ".notice").await?.contains("may be listed again"));
    click(browser, "nav a[href='/console/operator/accounts']").await?;
    browser.find(Locator::Css("#account-name")).await?.send_keys("globex").await?;
    click(browser, "#create-account").await?;
    assert!(text(browser, ".notice").await?.contains("Account globex created."));
    click(browser, "button[data-action='enroll-key'][data-account='globex']").await?;
    assert!(text(browser, ".notice").await?.contains("palisade enroll "), "the key is shown once");
    snap(browser, server, "17-operator-accounts").await?;
    click(browser, "button[data-action='login-link'][data-account='globex']").await?;
    assert!(text(browser, ".notice").await?.contains("/console/login/link?token="));
    click(browser, "button[data-delete='globex']").await?;
    assert!(text(browser, ".notice").await?.contains("Account globex deleted"));
    assert!(!text(browser, "#accounts tbody").await?.contains("globex"));

    click(browser, "nav a[href='/console/operator/audit']").await?;
    let audit = text(browser, "#audit tbody").await?;
    assert!(
        audit.contains("console:operator")
            && audit.contains("set_machine_disabled")
            && audit.contains("create_canary")
            && audit.contains("import_allowlist")
            && audit.contains("create_account")
            && audit.contains("delete_account")
            && audit.contains("create_false_positive")
            && audit.contains("create_delisting"),
        "{audit}"
    );
    snap(browser, server, "13-operator-audit-log").await?;
    Ok(())
}
