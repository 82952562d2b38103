//! Revocation across replicas: three server processes share one PostgreSQL database; A and B
//! also share Redis, C has none. Each credential is first used on B and C (so they have checked
//! and cached it), then revoked through A, and B and C are polled until they refuse it: a
//! disabled machine's token, a revoked admin token, a console session signed out on A, a machine
//! whose password the CLI reset. Each must be refused on both within 5 s of the revocation being
//! sent (B hears of it through Redis at once; C reads the revocation list within a second), or
//! the test fails. The times taken are printed.
//!
//! The operator's commands for it are exercised on one server on SQLite, with the CLI as an
//! operator runs it beside the server: `admin token list|revoke`, `admin machine
//! disable|enable|delete`, `admin sessions revoke-all`.
//!
//! The replicas need `DATABASE_URL` (PostgreSQL) and `REDIS_URL`; that test skips with a notice
//! without them, except under `CI=true`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_api::capi::LoginResponse;
use palisade_api::native::{AdminTokenView, MachineCredentials};
use palisade_tests::http::{Http, Reply};
use palisade_tests::testing::{TestDb, service_url};
use palisade_tests::{ServerOptions, ServerProcess};
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::json;

const SECRET: &str = "revocation-test-shared-jwt-secret-0123456789";

/// How long a revocation may take to reach every replica.
const LIMIT: Duration = Duration::from_secs(5);

/// A client that does not follow redirects (the console answers sign-ins and refusals with one).
struct Browser {
    http: Http,
    client: reqwest::Client,
}

impl Browser {
    fn new() -> anyhow::Result<Browser> {
        let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Browser { http: Http::new()?, client })
    }

    /// Sends one request; the status, the body and the `Set-Cookie` and `Location` headers.
    fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> anyhow::Result<(Reply, String, String)> {
        let mut request = self.client.request(method, url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(form) = form {
            // The console's forms must come from its own origin.
            let origin = url.split("/console").next().unwrap_or_default().to_string();
            request =
                request.header(ORIGIN, origin).header("content-type", "application/x-www-form-urlencoded").body(form.to_string());
        }
        self.http.block_on(async {
            let response = request.send().await?;
            let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let (set_cookie, location) = (header(SET_COOKIE), header(LOCATION));
            let status = response.status().as_u16();
            Ok((Reply { status, body: response.text().await? }, set_cookie, location))
        })
    }

    /// Signs the operator in on `server`; the session cookie.
    fn sign_in(&self, server: &ServerProcess, admin: &str) -> anyhow::Result<String> {
        let (reply, set_cookie, _) =
            self.send(Method::POST, &format!("{}console/login", server.url), None, None, Some(&format!("token={admin}")))?;
        ensure!(reply.status == 303, "sign-in: {} {}", reply.status, reply.body);
        Ok(set_cookie.split(';').next().unwrap_or_default().to_string())
    }

    /// The operator overview on `server` with `cookie`: its page when signed in, `None` when sent
    /// to sign in.
    fn overview(&self, server: &ServerProcess, cookie: &str) -> anyhow::Result<Option<String>> {
        let (reply, _, location) =
            self.send(Method::GET, &format!("{}console/operator", server.url), None, Some(cookie), None)?;
        match reply.status {
            200 => Ok(Some(reply.body)),
            303 if location == "/console/login" => Ok(None),
            other => bail!("{}: operator overview answered {other} {}", server.url, reply.body),
        }
    }
}

/// Whether a machine token is refused as revoked (401 `revoked`); any other refusal fails.
fn token_refused(http: &Http, server: &ServerProcess, token: &str) -> anyhow::Result<bool> {
    let reply = http.get(&format!("{}v2/decisions/stream?startup=true", server.url), Some(token))?;
    match reply.status {
        200 => Ok(false),
        401 if reply.body.contains("\"revoked\"") => Ok(true),
        other => bail!("{}: the stream answered {other} {}", server.url, reply.body),
    }
}

/// Whether an admin token is refused (401).
fn admin_refused(http: &Http, server: &ServerProcess, admin: &str) -> anyhow::Result<bool> {
    let reply = http.get(&format!("{}v1/admin/accounts", server.url), Some(admin))?;
    match reply.status {
        200 => Ok(false),
        401 => Ok(true),
        other => bail!("{}: the admin API answered {other} {}", server.url, reply.body),
    }
}

/// Polls every replica in `replicas` until `refused` says each refuses the credential; fails
/// when one still accepts it [`LIMIT`] after `since`. Prints and returns the slowest time.
fn refused_everywhere(
    what: &str,
    since: Instant,
    replicas: &[(&str, &ServerProcess)],
    mut refused: impl FnMut(&ServerProcess) -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let mut slowest = Duration::ZERO;
    for (name, server) in replicas {
        loop {
            if refused(server)? {
                let took = since.elapsed();
                eprintln!("{what}: refused on {name} {} ms after the revocation was sent", took.as_millis());
                slowest = slowest.max(took);
                break;
            }
            if since.elapsed() > LIMIT {
                bail!("{what}: still accepted on {name} {} ms after the revocation was sent", since.elapsed().as_millis());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(slowest)
}

/// Creates a machine through `server` and logs it in there; its login, password and token.
fn machine(http: &Http, server: &ServerProcess, admin: &str, name: &str) -> anyhow::Result<(String, String, String)> {
    let reply = http.post(&format!("{}v1/admin/machines", server.url), Some(admin), &json!({"name": name}))?;
    ensure!(reply.status == 201, "create {name}: {} {}", reply.status, reply.body);
    let created: MachineCredentials = reply.json()?;
    let body = json!({"machine_id": created.machine_id, "password": created.password, "scenarios": []});
    let reply = http.post(&format!("{}v2/watchers/login", server.url), None, &body)?;
    ensure!(reply.status == 200, "login {name}: {} {}", reply.status, reply.body);
    let login: LoginResponse = reply.json()?;
    Ok((created.machine_id, created.password, login.token))
}

#[test]
fn revocations_made_on_one_replica_are_refused_on_the_others_within_five_seconds() -> anyhow::Result<()> {
    let browser = Browser::new()?;
    let http = &browser.http;
    let Some(db) = http.block_on(TestDb::postgres()) else { return Ok(()) };
    let Some(redis_url) = service_url("REDIS_URL", "Redis") else { return Ok(()) };
    let with_redis = ServerOptions {
        env: vec![("REDIS_URL".into(), redis_url), ("PALISADE_AUTH__JWT_SECRET".into(), SECRET.into())],
        config_toml: String::new(),
    };
    let without_redis =
        ServerOptions { env: vec![("PALISADE_AUTH__JWT_SECRET".into(), SECRET.into())], config_toml: String::new() };
    let a = ServerProcess::start(&db, with_redis.clone())?;
    let b = ServerProcess::start(&db, with_redis)?;
    let c = ServerProcess::start(&db, without_redis)?;
    let others = [("B (Redis)", &b), ("C (no Redis)", &c)];
    let admin = a.admin_token()?;

    // A machine disabled through A: its token, valid on B and C a moment before, is refused.
    let (login, _, token) = machine(http, &a, &admin, "agent-disabled")?;
    for (name, server) in others {
        ensure!(!token_refused(http, server, &token)?, "the token works on {name} first");
    }
    let since = Instant::now();
    let reply = http.block_on(
        browser
            .client
            .put(format!("{}v1/admin/machines/{login}/disabled", a.url))
            .bearer_auth(&admin)
            .json(&json!({"disabled": true}))
            .send(),
    )?;
    ensure!(reply.status() == 204, "disable: {}", reply.status());
    refused_everywhere("a disabled machine's token", since, &others, |server| token_refused(http, server, &token))?;

    // An admin token revoked through A, just used on B and C.
    let spare = a.admin_token()?;
    for (name, server) in others {
        ensure!(!admin_refused(http, server, &spare)?, "the spare admin token works on {name} first");
    }
    let tokens: Vec<AdminTokenView> = http.get(&format!("{}v1/admin/admin-tokens", a.url), Some(&admin))?.json()?;
    let prefix =
        tokens.iter().map(|t| t.prefix.clone()).find(|p| spare.starts_with(p.as_str())).context("the spare token is listed")?;
    let since = Instant::now();
    let (reply, _, _) =
        browser.send(Method::DELETE, &format!("{}v1/admin/admin-tokens/{prefix}", a.url), Some(&admin), None, None)?;
    ensure!(reply.status == 204, "revoke the admin token: {} {}", reply.status, reply.body);
    refused_everywhere("a revoked admin token", since, &others, |server| admin_refused(http, server, &spare))?;
    ensure!(!admin_refused(http, &b, &admin)?, "the token that revoked it still works");

    // A console session signed out on A: its cookie, replayed on B and C, gets the sign-in page.
    let cookie = browser.sign_in(&a, &admin)?;
    for (name, server) in others {
        ensure!(browser.overview(server, &cookie)?.is_some(), "the session works on {name} first");
    }
    let page = browser.overview(&a, &cookie)?.context("signed in on A")?;
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).context("a CSRF token")?;
    let since = Instant::now();
    let (reply, _, location) =
        browser.send(Method::POST, &format!("{}console/logout", a.url), None, Some(&cookie), Some(&format!("csrf={csrf}")))?;
    ensure!(reply.status == 303 && location == "/console/login", "sign out: {} {location}", reply.status);
    refused_everywhere("a signed-out session", since, &others, |server| Ok(browser.overview(server, &cookie)?.is_none()))?;

    // A password reset with the CLI (a process of its own, which announces it on Redis).
    let (login, password, token) = machine(http, &a, &admin, "agent-reset")?;
    for (name, server) in others {
        ensure!(!token_refused(http, server, &token)?, "the token works on {name} first");
    }
    let since = Instant::now();
    let printed = a.admin(&["machine", "reset-password", &login])?;
    let new_password = printed.lines().find_map(|l| l.strip_prefix("password: ")).context("a new password")?.to_string();
    refused_everywhere("a reset machine's token", since, &others, |server| token_refused(http, server, &token))?;
    for (name, server) in [("A", &a), ("B (Redis)", &b), ("C (no Redis)", &c)] {
        let old =
            http.post(&format!("{}v2/watchers/login", server.url), None, &json!({"machine_id": login, "password": password}))?;
        ensure!(old.status == 401, "{name}: the old password is refused: {} {}", old.status, old.body);
    }
    let fresh =
        http.post(&format!("{}v2/watchers/login", b.url), None, &json!({"machine_id": login, "password": new_password}))?;
    ensure!(fresh.status == 200, "the new password works: {} {}", fresh.status, fresh.body);
    let fresh: LoginResponse = fresh.json()?;
    for (name, server) in others {
        ensure!(!token_refused(http, server, &fresh.token)?, "the new token works on {name}");
    }
    Ok(())
}

/// Polls `refused` until it holds; fails after [`LIMIT`].
fn refused_within_limit(what: &str, mut refused: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let since = Instant::now();
    while !refused()? {
        ensure!(since.elapsed() <= LIMIT, "{what}: still accepted {} ms after the command", since.elapsed().as_millis());
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn the_operators_revocation_commands_take_effect_on_a_running_server() -> anyhow::Result<()> {
    let browser = Browser::new()?;
    let http = &browser.http;
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let admin = server.admin_token()?;
    let spare = server.admin_token()?;

    // Admin tokens: listed by prefix (never the token), revoked by prefix, refused at once.
    ensure!(!admin_refused(http, &server, &spare)?, "the spare token works first");
    let listed: Vec<AdminTokenView> = serde_json::from_str(&server.admin(&["token", "list", "--json"])?)?;
    ensure!(listed.len() == 2 && listed.iter().all(|t| t.revoked_at.is_none()), "two live tokens: {listed:?}");
    let table = server.admin(&["token", "list"])?;
    ensure!(!table.contains(&spare) && !table.contains(&admin), "the table shows no token: {table}");
    let prefix = listed.iter().map(|t| t.prefix.clone()).find(|p| spare.starts_with(p.as_str())).context("spare listed")?;
    server.admin(&["token", "revoke", &prefix])?;
    refused_within_limit("a token revoked with the CLI", || admin_refused(http, &server, &spare))?;
    let listed: Vec<AdminTokenView> = serde_json::from_str(&server.admin(&["token", "list", "--json"])?)?;
    ensure!(listed.iter().any(|t| t.prefix == prefix && t.revoked_at.is_some()), "revoked in the list: {listed:?}");
    let again = server.admin(&["token", "revoke", &prefix]);
    ensure!(again.is_err_and(|e| e.to_string().contains("no live admin token")), "revoking twice fails with a sentence");

    // A machine disabled, enabled and deleted with the CLI.
    let added = server.admin(&["machine", "add", "web-01"])?;
    let password = added.lines().find_map(|l| l.strip_prefix("password: ")).context("a password")?.to_string();
    let log_in =
        || http.post(&format!("{}v2/watchers/login", server.url), None, &json!({"machine_id": "web-01", "password": password}));
    let login: LoginResponse = log_in()?.json()?;
    ensure!(!token_refused(http, &server, &login.token)?, "the token works first");
    server.admin(&["machine", "disable", "web-01"])?;
    refused_within_limit("a machine disabled with the CLI", || token_refused(http, &server, &login.token))?;
    ensure!(log_in()?.status == 401, "a disabled machine cannot log in");
    server.admin(&["machine", "enable", "web-01"])?;
    let login: LoginResponse = log_in()?.json()?;
    ensure!(!token_refused(http, &server, &login.token)?, "enabled: a new login works");
    server.admin(&["machine", "delete", "web-01"])?;
    refused_within_limit("a machine deleted with the CLI", || token_refused(http, &server, &login.token))?;
    ensure!(log_in()?.status == 401, "a deleted machine cannot log in");
    let machines: Vec<serde_json::Value> = serde_json::from_str(&server.admin(&["machine", "list", "--json"])?)?;
    ensure!(machines.is_empty(), "a deleted machine is not listed: {machines:?}");
    ensure!(server.admin(&["machine", "disable", "web-01"]).is_err(), "a deleted machine cannot be disabled");

    // Every console session ended with the CLI.
    let cookie = browser.sign_in(&server, &admin)?;
    ensure!(browser.overview(&server, &cookie)?.is_some(), "signed in first");
    server.admin(&["sessions", "revoke-all"])?;
    refused_within_limit("sessions ended with the CLI", || Ok(browser.overview(&server, &cookie)?.is_none()))?;
    ensure!(browser.overview(&server, &browser.sign_in(&server, &admin)?)?.is_some(), "a new sign-in works");
    Ok(())
}
