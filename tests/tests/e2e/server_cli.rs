//! The `palisade-server` command line as an operator meets it: `serve` with no configuration at
//! all, its JWT key kept in the data directory across restarts, a clean exit on SIGTERM,
//! `migrate`, `admin machine add --crowdsec-credentials`, `admin machine list --json`, closed
//! registration, and the lifecycle commands (enrollment keys, account deletion, delisting, the
//! audit log); the traps an operator fell into: admin commands run without the server's flags
//! (refused, never a new database), the start-up line's admin command, a taken port, a listen
//! address no machine could use, the agent's variables, private files, the access log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_api::native::MachineView;
use palisade_tests::http::Http;
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, first_stdout_lines, workspace_binary};
use serde_json::json;

/// `palisade-server ARGS…` run in `cwd` with none of the configuration variables of the
/// surrounding environment: only what the test passes counts.
fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(workspace_binary("palisade-server", "palisade-server"));
    cmd.current_dir(cwd).env_remove("DATABASE_URL").env_remove("REDIS_URL").env("RUST_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("PALISADE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<Output> {
    let output = cmd.output()?;
    ensure!(output.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(output)
}

/// A `serve` process started by hand (the harness always passes a config file). Killed on drop.
struct Serve {
    child: Option<Child>,
    first_line: String,
    /// The second line: how to create an admin token for this server.
    hint: String,
    url: String,
}

impl Serve {
    /// `palisade-server serve --listen 127.0.0.1:0` in `cwd`, with no config file and no flags else.
    fn start(cwd: &Path) -> anyhow::Result<Serve> {
        Serve::start_with(cwd, &[])
    }

    /// `palisade-server GLOBAL… serve --listen 127.0.0.1:0` in `cwd`.
    fn start_with(cwd: &Path, global: &[&std::ffi::OsStr]) -> anyhow::Result<Serve> {
        let mut cmd = command(cwd);
        cmd.args(global);
        Serve::spawn(cwd, cmd)
    }

    /// `cmd serve --listen 127.0.0.1:0`, its standard error appended to `cwd/serve.stderr`.
    fn spawn(cwd: &Path, mut cmd: Command) -> anyhow::Result<Serve> {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(cwd.join("serve.stderr"))?;
        let mut child = cmd.args(["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(stderr).spawn()?;
        let lines = first_stdout_lines(&mut child, 2, Duration::from_secs(60)).context("serve printed no first lines");
        let mut serve = Serve { child: Some(child), first_line: String::new(), hint: String::new(), url: String::new() };
        let mut lines = lines?;
        serve.hint = lines.pop().unwrap_or_default();
        serve.first_line = lines.pop().unwrap_or_default();
        serve.url = serve
            .first_line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no URL in {:?}", serve.first_line))?
            .to_string();
        Ok(serve)
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit.
    fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                drop(child.kill());
                drop(child.wait());
                bail!("serve did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }
}

/// Logs a machine in over CAPI v2 and returns its token.
fn login(http: &Http, base: &str, machine_id: &str, password: &str) -> anyhow::Result<String> {
    let reply = http.post(
        &format!("{base}v2/watchers/login"),
        None,
        &json!({"machine_id": machine_id, "password": password, "scenarios": []}),
    )?;
    ensure!(reply.status == 200, "login: HTTP {}: {}", reply.status, reply.body);
    let body: serde_json::Value = reply.json()?;
    body["token"].as_str().map(str::to_string).context("no token")
}

/// `key: value` lines of a small flat YAML file, in order.
fn yaml_pairs(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|line| line.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
}

#[test]
fn serve_without_config_prints_its_address_keeps_its_jwt_key_and_exits_0_on_sigterm() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let http = Http::new()?;
    let mut serve = Serve::start(dir.path())?;
    ensure!(serve.first_line.contains("listening on http://127.0.0.1:"), "first line: {:?}", serve.first_line);
    ensure!(serve.first_line.contains("palisade-data"), "first line does not say where the data is: {:?}", serve.first_line);
    let port: u16 = serve.url.trim_start_matches("http://127.0.0.1:").trim_end_matches('/').parse()?;
    ensure!(port != 0, "reported port 0");
    ensure!(http.get(&format!("{}healthz", serve.url), None)?.status == 200, "healthz");

    // The default data dir is ./palisade-data, holding the generated key, owner-only.
    let key_path = dir.path().join("palisade-data/jwt.key");
    let key = std::fs::read_to_string(&key_path).context("jwt.key not in the default data dir")?;
    ensure!(key.trim().len() >= 32, "jwt.key is too short");
    ensure!(mode(&key_path) == 0o600, "jwt.key has mode {:o}", mode(&key_path));

    let added = run_ok(command(dir.path()).args(["admin", "machine", "add", "cli-machine"]))?;
    let added = String::from_utf8(added.stdout)?;
    let pairs = yaml_pairs(&added);
    let password = pairs.iter().find(|(k, _)| k == "password").map(|(_, v)| v.clone()).context("no password printed")?;
    let token = login(&http, &serve.url, "cli-machine", &password)?;
    ensure!(http.get(&format!("{}v2/decisions/stream?startup=true", serve.url), Some(&token))?.status == 200, "stream");

    let status = serve.terminate()?;
    ensure!(status.code() == Some(0), "SIGTERM ended serve with {status}");

    // Same key after a restart, so a token issued before it still works.
    let mut again = Serve::start(dir.path())?;
    ensure!(std::fs::read_to_string(&key_path)? == key, "jwt.key changed across a restart");
    let reply = http.get(&format!("{}v2/decisions/stream", again.url), Some(&token))?;
    ensure!(reply.status == 200, "a token from before the restart is refused: HTTP {}: {}", reply.status, reply.body);
    let status = again.terminate()?;
    ensure!(status.code() == Some(0), "SIGTERM ended serve with {status}");
    Ok(())
}

#[test]
fn sigterm_exits_0_and_migrate_is_idempotent_on_every_backend() -> anyhow::Result<()> {
    for db in tokio::runtime::Runtime::new()?.block_on(TestDb::all()) {
        let label = db.label();
        let dir = tempfile::tempdir()?;
        for round in 0..2 {
            let output = run_ok(
                command(dir.path()).arg("--data-dir").arg(dir.path()).arg("migrate").env("DATABASE_URL", db.url.expose()),
            )?;
            let text = String::from_utf8(output.stdout)?;
            ensure!(text.contains("migrations applied"), "[{label}] migrate round {round} printed {text:?}");
        }
        let mut server = ServerProcess::start(&db, ServerOptions::default())?;
        ensure!(server.terminate()?, "[{label}] SIGTERM did not end the server with exit code 0");
    }
    Ok(())
}

#[test]
fn machine_add_writes_crowdsec_credentials_that_log_in_and_machine_list_json_parses() -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let http = Http::new()?;
    let dir = tempfile::tempdir()?;

    // The Debian package leaves a world-readable file with a comment in it; writing over it
    // must not leave the password readable.
    let file = dir.path().join("online_api_credentials.yaml");
    std::fs::write(&file, "# registration skipped\n")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
    let without_slash = server.url.trim_end_matches('/');
    server.admin(&["machine", "add", "cs-machine", "--crowdsec-credentials", &file.to_string_lossy(), "--url", without_slash])?;
    ensure!(mode(&file) == 0o600, "credentials file has mode {:o}", mode(&file));
    let pairs = yaml_pairs(&std::fs::read_to_string(&file)?);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    ensure!(keys == ["url", "login", "password"], "CrowdSec 1.4.6 refuses any other key, got {keys:?}");
    let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_default();
    ensure!(
        value("url") == server.url && value("url").ends_with('/'),
        "url {:?} (CrowdSec needs the trailing slash)",
        value("url")
    );
    ensure!(value("login") == "cs-machine", "login {:?}", value("login"));
    ensure!(value("password").len() == 64 && value("password").chars().all(|c| c.is_ascii_alphanumeric()), "password shape");
    login(&http, &server.url, value("login"), value("password"))?;

    // A given URL that already ends in a slash is kept as it is.
    let second = dir.path().join("second.yaml");
    server.admin(&[
        "machine",
        "add",
        "cs-second",
        "--crowdsec-credentials",
        &second.to_string_lossy(),
        "--url",
        "http://h:9/capi/",
    ])?;
    ensure!(std::fs::read_to_string(&second)?.lines().next() == Some("url: http://h:9/capi/"), "prefixed URL changed");

    let listed: Vec<MachineView> = serde_json::from_str(&server.admin(&["machine", "list", "--json"])?)?;
    let names: Vec<&str> = listed.iter().map(|m| m.machine_id.as_str()).collect();
    ensure!(names == ["cs-machine", "cs-second"], "machine list --json: {names:?}");
    ensure!(listed.iter().all(|m| m.created_by == "operator"), "operator-created machines: {listed:?}");
    ensure!(listed[0].last_login_at.is_some() && listed[1].last_login_at.is_none(), "last logins: {listed:?}");
    Ok(())
}

#[test]
fn closed_registration_refuses_new_watchers_with_403_but_operator_machines_log_in() -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let env = vec![("PALISADE_REGISTRATION__POLICY".to_string(), "closed".to_string())];
    let server = ServerProcess::start(&db, ServerOptions { env, ..ServerOptions::default() })?;
    let http = Http::new()?;
    let register = json!({"machine_id": "a".repeat(48), "password": "b".repeat(64)});
    let reply = http.post(&format!("{}v2/watchers", server.url), None, &register)?;
    ensure!(reply.status == 403, "closed registration answered HTTP {}: {}", reply.status, reply.body);
    let body: serde_json::Value = reply.json()?;
    ensure!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "CrowdSec prints `message`: {body}");
    ensure!(http.post(&format!("{}v3/watchers", server.url), None, &register)?.status == 403, "v3 registration not refused");

    let added = server.admin(&["machine", "add", "operator-made"])?;
    let pairs = yaml_pairs(&added);
    let password = pairs.iter().find(|(k, _)| k == "password").map(|(_, v)| v.as_str()).context("no password")?;
    login(&http, &server.url, "operator-made", password)?;

    // The default policy is open.
    let open_db = TestDb::sqlite();
    let open = ServerProcess::start(&open_db, ServerOptions::default())?;
    let reply = http.post(&format!("{}v2/watchers", open.url), None, &register)?;
    ensure!(reply.status == 200, "open registration answered HTTP {}: {}", reply.status, reply.body);
    Ok(())
}

/// The operator's consensus controls on the command line: allowlist import from a provider file,
/// canaries, sensors, account levels, trust, explanations and false positives.
#[test]
fn admin_consensus_commands_work_and_refuse_bad_input() -> anyhow::Result<()> {
    let http = Http::new()?;
    let db = http.block_on(TestDb::all()).remove(0);
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("googlebot.json");
    std::fs::write(&file, r#"{"prefixes":[{"ipv4Prefix":"66.249.64.0/27"},{"ipv6Prefix":"2001:4860:4801:10::/64"}]}"#)?;
    let out = server.admin(&[
        "allowlist",
        "import",
        file.to_str().unwrap_or_default(),
        "--source",
        "googlebot",
        "--category",
        "crawler",
    ])?;
    ensure!(out.contains("2 ranges found, 2 new"), "{out}");
    let listed: serde_json::Value = serde_json::from_str(&server.admin(&["allowlist", "list", "--json"])?)?;
    ensure!(listed.as_array().map(Vec::len) == Some(2), "{listed}");
    ensure!(
        server.admin(&["allowlist", "import", file.to_str().unwrap_or_default(), "--source", "x", "--category", "nope"]).is_err()
    );
    server.admin(&["canary", "add", "81.2.69.160", "--note", "decoy"])?;
    ensure!(server.admin(&["canary", "add", "81.2.69.160"]).is_err(), "a duplicate canary is refused");
    ensure!(server.admin(&["canary", "add", "not-an-ip"]).is_err());
    ensure!(server.admin(&["canary", "list"])?.contains("81.2.69.160"));
    server.admin(&["canary", "remove", "81.2.69.160"])?;
    server.admin(&["machine", "add", "honeypot"])?;
    server.admin(&["machine", "sensor", "honeypot"])?;
    let trust: serde_json::Value = serde_json::from_str(&server.admin(&["machine", "trust", "honeypot"])?)?;
    ensure!(trust["sensor"] == true && trust["trust"] == 1.0, "{trust}");
    ensure!(server.admin(&["machine", "sensor", "nobody"]).is_err());
    server.admin(&["account", "create", "acme"])?;
    server.admin(&["account", "level", "acme", "verified"])?;
    ensure!(server.admin(&["account", "level", "acme", "emperor"]).is_err());
    let explanation: serde_json::Value = serde_json::from_str(&server.admin(&["explain", "45.33.32.156"])?)?;
    ensure!(explanation["listed"] == false && explanation["supporters"] == serde_json::json!([]), "{explanation}");
    ensure!(server.admin(&["false-positive", "45.33.32.156"])?.contains("45.33.32.156"));
    Ok(())
}

/// The text of a failed run's standard error, after checking it failed.
fn refusal(cmd: &mut Command) -> anyhow::Result<String> {
    let output = cmd.output()?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(!output.status.success(), "{cmd:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
    ensure!(output.stdout.is_empty(), "{cmd:?} printed {:?}", String::from_utf8_lossy(&output.stdout));
    Ok(stderr)
}

#[test]
fn admin_commands_never_create_a_database_and_name_the_one_they_use() -> anyhow::Result<()> {
    // Where no server ever ran: refused with the path and the way out; nothing is created.
    let dir = tempfile::tempdir()?;
    let stderr = refusal(command(dir.path()).args(["admin", "token", "create"]))?;
    ensure!(stderr.contains("there is no Palisade database at ./palisade-data/palisade.db"), "{stderr}");
    ensure!(stderr.contains("--data-dir") && stderr.contains("--config"), "{stderr}");
    ensure!(!dir.path().join("palisade-data").exists(), "the refused command made a data dir");
    let elsewhere = dir.path().join("elsewhere");
    let stderr = refusal(command(dir.path()).arg("--data-dir").arg(&elsewhere).args(["admin", "machine", "list"]))?;
    ensure!(stderr.contains(&elsewhere.join("palisade.db").display().to_string()), "{stderr}");
    ensure!(!elsewhere.exists(), "the refused command made {}", elsewhere.display());

    // An empty PostgreSQL database (no Palisade tables) is refused the same way, and left empty.
    if let Some(empty) = tokio::runtime::Runtime::new()?.block_on(TestDb::postgres_empty()) {
        let stderr = refusal(command(dir.path()).args(["admin", "token", "create"]).env("DATABASE_URL", empty.url.expose()))?;
        ensure!(stderr.contains("there is no Palisade database at PostgreSQL database palisade_test_"), "{stderr}");
        let stderr = refusal(command(dir.path()).args(["admin", "token", "list"]).env("DATABASE_URL", empty.url.expose()))?;
        ensure!(stderr.contains("no Palisade database"), "a second command finds it still empty: {stderr}");
    }

    // The server's database: the command says which one it used.
    let mut serve = Serve::start(dir.path())?;
    let output = run_ok(command(dir.path()).args(["admin", "token", "list"]))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(stderr.contains("using the SQLite database ./palisade-data/palisade.db"), "{stderr}");
    ensure!(serve.terminate()?.success(), "serve exits 0");
    Ok(())
}

#[test]
fn the_start_up_line_gives_the_admin_command_that_reaches_this_server_from_anywhere() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("var/palisade");
    // The agent's variables, set in the same shell, are not the server's business.
    let mut serve = Serve::start_with(dir.path(), &[std::ffi::OsStr::new("--data-dir"), std::ffi::OsStr::new("var/palisade")])?;
    let hint = serve.hint.strip_prefix("create an admin token with: ").with_context(|| serve.hint.clone())?;
    let words: Vec<&str> = hint.split_whitespace().collect();
    ensure!(words.first() == Some(&"palisade-server"), "{hint}");
    ensure!(hint.contains(&format!("--data-dir {}", std::path::absolute(&data)?.display())), "{hint}");

    // Run exactly that from another directory: the token it prints opens the admin API.
    let other = tempfile::tempdir()?;
    let token = run_ok(command(other.path()).args(&words[1..]))?;
    let token = String::from_utf8(token.stdout)?.trim().to_string();
    let reply = Http::new()?.get(&format!("{}v1/admin/accounts", serve.url), Some(&token))?;
    ensure!(reply.status == 200, "the hinted command's token is refused: HTTP {} {}", reply.status, reply.body);

    // What the server created is private to its user.
    ensure!(mode(&data) == 0o700, "data dir mode {:o}", mode(&data));
    for file in ["palisade.db", "palisade.db-wal", "jwt.key"] {
        ensure!(mode(&data.join(file)) == 0o600, "{file} mode {:o}", mode(&data.join(file)));
    }
    ensure!(serve.terminate()?.success(), "serve exits 0");
    Ok(())
}

#[test]
fn a_taken_port_a_useless_public_url_and_a_stray_variable_are_refused_with_a_sentence() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut first = Serve::start(dir.path())?;
    let taken = first.url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let port = taken.rsplit(':').next().context("a port")?.to_string();
    let other = tempfile::tempdir()?;
    let stderr = refusal(command(other.path()).args(["serve", "--listen", &taken]))?;
    ensure!(stderr.contains(&format!("port {port} is already in use")) && stderr.contains("--listen"), "{stderr}");

    // Every interface names no address a machine could use: refused before binding anything.
    let stderr = refusal(command(other.path()).args(["serve", "--listen", "0.0.0.0:0"]))?;
    ensure!(stderr.contains("public_url must be set") && stderr.contains("--public-url"), "{stderr}");
    let stderr = refusal(command(other.path()).args(["serve", "--listen", "[::]:0"]))?;
    ensure!(stderr.contains("public_url must be set"), "{stderr}");

    // An agent variable of an older agent names itself.
    let stderr = refusal(command(other.path()).args(["admin", "token", "list"]).env("PALISADE_SERVER", "http://x/"))?;
    ensure!(stderr.contains("PALISADE_SERVER is not a palisade-server setting"), "{stderr}");
    // The agent's own variables are left alone.
    let output = run_ok(
        command(dir.path())
            .args(["admin", "token", "list"])
            .env("PALISADE_AGENT_SERVER", "http://x/")
            .env("PALISADE_AGENT_CONFIG", "/etc/palisade/agent.toml")
            .env("PALISADE_AGENT_API_KEY", "pal_x"),
    )?;
    ensure!(output.status.success());
    ensure!(first.terminate()?.success(), "serve exits 0");
    Ok(())
}

#[test]
fn every_request_leaves_one_access_log_line_without_colour_or_secrets() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cmd = command(dir.path());
    // The default level, as an operator runs it.
    cmd.env_remove("RUST_LOG");
    let mut serve = Serve::spawn(dir.path(), cmd)?;
    let http = Http::new()?;
    let added = String::from_utf8(run_ok(command(dir.path()).args(["admin", "machine", "add", "logged-machine"]))?.stdout)?;
    let password = yaml_pairs(&added).into_iter().find(|(k, _)| k == "password").map(|(_, v)| v).context("password")?;
    let token = login(&http, &serve.url, "logged-machine", &password)?;
    let client = palisade_tests::http::test_client();
    let request_id = "access-log-test-stream";
    let url = format!("{}v2/decisions/stream?startup=true", serve.url);
    let reply = http.block_on(async { client.get(url).bearer_auth(&token).header("x-request-id", request_id).send().await })?;
    ensure!(reply.status() == 200, "stream: {}", reply.status());
    let api_key = "pal_not_a_real_key_0123456789";
    let url = format!("{}v2/smoke/45.33.32.156", serve.url);
    let refused = http.block_on(async { client.get(url).header("x-api-key", api_key).send().await })?;
    ensure!(refused.status() == 403, "bad key: {}", refused.status());
    ensure!(serve.terminate()?.success(), "serve exits 0");

    let log = std::fs::read_to_string(dir.path().join("serve.stderr"))?;
    let stream: Vec<&str> = log.lines().filter(|l| l.contains(request_id)).collect();
    ensure!(stream.len() == 1, "one line for the request {request_id}: {stream:?}\n{log}");
    for field in ["method=GET", "route=/v2/decisions/stream", "status=200", "caller=machine:logged-machine", "latency="] {
        ensure!(stream[0].contains(field), "{field} missing from {:?}", stream[0]);
    }
    ensure!(log.lines().any(|l| l.contains("route=/v2/smoke/{ip}") && l.contains("status=403")), "the refusal is logged:\n{log}");
    ensure!(!log.contains('\u{1b}'), "colour escapes in a log that is not a terminal:\n{log}");
    for secret in [password.as_str(), token.as_str(), api_key] {
        ensure!(!log.contains(secret), "a secret in the log:\n{log}");
    }
    Ok(())
}

/// The lifecycle commands on the command line against a running server: enrollment keys listed
/// (with their uses) and revoked (a CrowdSec-style enrollment with it is then refused), an
/// account deleted only when told what to do with its machines, a delisting with a hold and a
/// bad duration, and the audit log, which names the host user for the command line and the
/// admin token for the API.
#[test]
fn lifecycle_commands_revoke_delete_delist_and_are_audited() -> anyhow::Result<()> {
    use palisade_api::native::{AuditEntryView, EnrollKeyView};
    let http = Http::new()?;
    let db = http.block_on(TestDb::all()).remove(0);
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    server.admin(&["account", "create", "acme"])?;
    let key = server.admin(&["enroll-key", "create", "--account", "acme"])?.trim().to_string();
    let password = |added: &str| yaml_pairs(added).into_iter().find(|(k, _)| k == "password").map(|(_, v)| v);
    let first = password(&server.admin(&["machine", "add", "lapi-1"])?).context("no password")?;
    let second = password(&server.admin(&["machine", "add", "lapi-2"])?).context("no password")?;
    let enroll = |login_id: &str, password: &str| -> anyhow::Result<u16> {
        let token = login(&http, &server.url, login_id, password)?;
        let body = json!({"attachment_key": key, "name": "", "tags": [], "overwrite": false});
        Ok(http.post(&format!("{}v2/watchers/enroll", server.url), Some(&token), &body)?.status)
    };
    ensure!(enroll("lapi-1", &first)? == 202, "enrollment with a live key");

    let keys: Vec<EnrollKeyView> = serde_json::from_str(&server.admin(&["enroll-key", "list", "--json"])?)?;
    ensure!(keys.len() == 1 && keys[0].account == "acme" && keys[0].uses == 1, "{keys:?}");
    ensure!(!server.admin(&["enroll-key", "list"])?.contains(&key), "the key itself is never listed");
    let prefix = keys[0].prefix.clone();
    ensure!(server.admin(&["enroll-key", "list", "--account", "ghost"]).is_err(), "an unknown account");
    server.admin(&["enroll-key", "revoke", &prefix])?;
    ensure!(enroll("lapi-2", &second)? == 403, "a revoked key enrolls nothing");
    ensure!(server.admin(&["enroll-key", "revoke", &prefix]).is_err(), "revoking twice");
    ensure!(server.admin(&["enroll-key", "revoke", "nope00"]).is_err(), "an unknown prefix");

    let refused = server.admin(&["account", "delete", "acme"]).expect_err("an account with machines");
    ensure!(refused.to_string().contains("--detach-machines"), "the refusal says what to do: {refused}");
    let deleted = server.admin(&["account", "delete", "acme", "--detach-machines"])?;
    ensure!(deleted.contains("lapi-1"), "{deleted}");
    ensure!(server.admin(&["account", "list", "--json"])?.trim() == "[]", "acme is gone");
    ensure!(server.admin(&["account", "delete", "acme"]).is_err(), "deleting twice");

    ensure!(server.admin(&["delist", "45.33.32.156", "--for", "2h"])?.contains("no reporter is penalised"));
    let bad = server.admin(&["delist", "45.33.32.156", "--for", "forever"]).expect_err("a bad duration");
    ensure!(bad.to_string().contains("hold"), "{bad}");

    let admin = server.admin_token()?;
    let reply = http.post(&format!("{}v1/admin/accounts", server.url), Some(&admin), &json!({"name": "globex"}))?;
    ensure!(reply.status == 201, "HTTP {}: {}", reply.status, reply.body);

    let entries: Vec<AuditEntryView> = serde_json::from_str(&server.admin(&["audit", "--json"])?)?;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    ensure!(
        actions
            == [
                "create_account",
                "create_admin_token",
                "create_delisting",
                "delete_account",
                "revoke_enroll_key",
                "create_machine",
                "create_machine",
                "create_enroll_key",
                "create_account"
            ],
        "newest first, only what succeeded: {actions:?}"
    );
    let api = &entries[0];
    ensure!(api.actor.starts_with("token:pal_admin_") && api.status == Some(201) && api.target == "globex", "{api:?}");
    let cli_user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).ok().filter(|u| !u.is_empty());
    for entry in &entries[1..] {
        ensure!(entry.actor.starts_with("cli:") && entry.client.is_none() && entry.status.is_none(), "{entry:?}");
        if let Some(user) = &cli_user {
            ensure!(entry.actor == format!("cli:{user}"), "{entry:?}");
        }
    }
    ensure!(entries[3].target == "acme" && entries[3].detail == json!({"machines": "detach"}), "{:?}", entries[3]);
    ensure!(admin.starts_with(&entries[1].target) && entries[1].target.len() > 10, "the new token's prefix: {:?}", entries[1]);
    ensure!(api.actor == format!("token:{}", entries[1].target), "the API entry names that token: {api:?}");
    let filtered: Vec<AuditEntryView> =
        serde_json::from_str(&server.admin(&["audit", "--action", "delete_account", "--since", "1h", "--json"])?)?;
    ensure!(filtered.len() == 1, "{filtered:?}");
    let human = server.admin(&["audit", "--limit", "2"])?;
    ensure!(human.lines().next().is_some_and(|l| l.starts_with("AT")) && human.lines().count() == 3, "{human}");
    ensure!(server.admin(&["audit", "--since", "yesterday"]).is_err(), "a bad --since");
    Ok(())
}
