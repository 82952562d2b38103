//! The `palisade` agent against a real server: `palisade watch` inside a network namespace with
//! real nftables (its own detections banned and reported, a consensus listing applied by sync
//! and removed when delisted); an account's pool (one agent's detection blocked by the account's
//! other agents at once, by a partner's only while shared; a watching agent applies it through
//! its long-poll, long before its next sync); signals spooled while the server is down and each delivered
//! exactly once after it returns, across an agent restart; and the error paths (bad
//! configuration, unreachable server, missing privileges). Tests needing root, `ip` and `nft`
//! skip with a notice outside CI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_api::capi::LoginResponse;
use palisade_api::native::{ExplanationResponse, MachineCredentials};
use palisade_tests::http::Http;
use palisade_tests::netns::{self, NetNs};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, wait_until, workspace_binary};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Publicly routed documentation-free addresses (outside every special-purpose range).
const BRUTE_FORCER: &str = "45.33.32.156";
const LISTED: &str = "81.2.69.142";

/// An agent's files: configuration, credentials, state, a log file it follows.
struct AgentHome {
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
}

impl AgentHome {
    /// A home whose configuration is `extra` plus paths inside a temporary directory.
    fn new(extra: &str) -> anyhow::Result<AgentHome> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("agent.toml");
        let log = dir.path().join("auth.log");
        std::fs::write(&log, "")?;
        let text = format!(
            "credentials = {:?}\nstate_dir = {:?}\n{extra}\n[[source]]\npath = {:?}\nfrom_start = true\n",
            dir.path().join("credentials.json"),
            dir.path().join("state"),
            log
        );
        std::fs::write(&config, text)?;
        Ok(AgentHome { dir, config, log })
    }

    fn spool_len(&self) -> anyhow::Result<usize> {
        let spool = self.dir.path().join("state/spool");
        if !spool.exists() {
            return Ok(0);
        }
        Ok(std::fs::read_dir(spool)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count())
    }

    fn append_log(&self, lines: &[String]) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new().append(true).open(&self.log)?;
        for line in lines {
            writeln!(file, "{line}")?;
        }
        file.sync_all()?;
        Ok(())
    }

    fn machine_id(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(self.dir.path().join("credentials.json"))?;
        let value: Value = serde_json::from_str(&text)?;
        Ok(value["machine_id"].as_str().context("machine_id")?.to_string())
    }
}

fn palisade() -> PathBuf {
    workspace_binary("palisade", "palisade")
}

fn run(command: &mut Command) -> anyhow::Result<Output> {
    Ok(command.env_remove("PALISADE_AGENT_CONFIG").env_remove("PALISADE_AGENT_SERVER").output()?)
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn agent(home: &AgentHome, args: &[&str]) -> anyhow::Result<Output> {
    run(Command::new(palisade()).arg("--config").arg(&home.config).args(args))
}

/// A child process killed (SIGKILL) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

impl Running {
    fn is_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.0.try_wait()? {
            anyhow::bail!("palisade watch exited with {status}");
        }
        Ok(())
    }
}

fn watch(command: &mut Command) -> anyhow::Result<Running> {
    let child = command.env_remove("PALISADE_CONFIG").stdout(Stdio::null()).stderr(Stdio::inherit()).spawn()?;
    Ok(Running(child))
}

/// Auth.log lines of a password brute force from `ip`.
fn ssh_failures(ip: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            format!(
                "Nov 25 12:00:{i:02} web sshd[4242]: Failed password for invalid user admin from {ip} port {} ssh2",
                40000 + i
            )
        })
        .collect()
}

/// A machine created by the operator, logged in.
fn operator_machine(http: &Http, server: &ServerProcess, admin: &str, name: &str, sensor: bool) -> anyhow::Result<String> {
    let reply = http.post(&format!("{}v1/admin/machines", server.url), Some(admin), &json!({"name": name, "sensor": sensor}))?;
    ensure!(reply.status == 201, "create {name}: {} {}", reply.status, reply.body);
    let created: MachineCredentials = reply.json()?;
    let body = json!({"machine_id": created.machine_id, "password": created.password, "scenarios": []});
    let login: LoginResponse = http.post(&format!("{}v2/watchers/login", server.url), None, &body)?.json()?;
    Ok(login.token)
}

fn sensor_report(http: &Http, server: &ServerProcess, token: &str, ip: &str) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let body = json!([{
        "message": "honeypot", "scenario": "crowdsecurity/ssh-bf", "scenario_hash": "", "scenario_version": "",
        "scenario_trust": "certified", "source": {"ip": ip, "scope": "Ip", "value": ip}, "start_at": now, "stop_at": now
    }]);
    let reply = http.post(&format!("{}v2/signals", server.url), Some(token), &body)?;
    ensure!(reply.is_success(), "sensor push: {} {}", reply.status, reply.body);
    Ok(())
}

fn signals_about(http: &Http, server: &ServerProcess, admin: &str, machine: &str, ip: &str) -> anyhow::Result<usize> {
    Ok(http.admin_signals(&server.url, admin, Some(machine))?.iter().filter(|s| s.value == ip).count())
}

fn port_of(server: &ServerProcess) -> anyhow::Result<u16> {
    Ok(server.addr().rsplit(':').next().context("port")?.parse()?)
}

#[test]
fn watch_in_a_namespace_bans_and_reports_a_brute_force_and_applies_a_consensus_listing_until_delisted() -> anyhow::Result<()> {
    if !netns::ready("watch_in_a_namespace", &[]) {
        return Ok(());
    }
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let http = Http::new()?;
    let admin = server.admin_token()?;
    let mut ns = NetNs::create()?;
    let url = ns.relay_to(port_of(&server)?)?;
    let home = AgentHome::new("[push]\ninterval_secs = 1\nmax_backoff_secs = 2\n[sync]\ninterval_secs = 1\n")?;
    let registered = run(ns.command(&palisade()).arg("--config").arg(&home.config).args(["register", "--server", &url]))?;
    ensure!(registered.status.success(), "register: {}", text(&registered));
    let mut daemon = watch(ns.command(&palisade()).arg("--config").arg(&home.config).arg("watch"))?;

    // At start-up the table, its sets and its rules exist.
    wait_until(Duration::from_secs(30), "the palisade table", || {
        daemon.is_alive()?;
        Ok(ns.nft(&["list", "table", "inet", "palisade"]).ok().filter(|t| t.contains("@blocklist_v4")))
    })?;

    // An ssh brute force appears in the log it follows: banned locally, reported to the server.
    let machine = home.machine_id()?;
    home.append_log(&ssh_failures("198.51.100.7", 2))?;
    home.append_log(&ssh_failures(BRUTE_FORCER, 8))?;
    wait_until(Duration::from_secs(30), "the brute forcer in local_v4", || {
        daemon.is_alive()?;
        Ok(ns.set_elements("palisade", "local_v4")?.iter().any(|e| e == BRUTE_FORCER).then_some(()))
    })?;
    wait_until(Duration::from_secs(30), "the agent's signal on the server", || {
        daemon.is_alive()?;
        Ok((signals_about(&http, &server, &admin, &machine, BRUTE_FORCER)? == 1).then_some(()))
    })?;
    let stored = http.admin_signals(&server.url, &admin, Some(&machine))?;
    ensure!(stored.len() == 1 && stored[0].scenario == "crowdsecurity/ssh-bf", "{stored:?}");

    // A sensor's sighting lists an address; the agent's sync puts it into the set.
    let sensor = operator_machine(&http, &server, &admin, "honeypot-1", true)?;
    sensor_report(&http, &server, &sensor, LISTED)?;
    wait_until(Duration::from_secs(60), "the listed address in blocklist_v4", || {
        daemon.is_alive()?;
        Ok(ns.set_elements("palisade", "blocklist_v4")?.iter().any(|e| e == LISTED).then_some(()))
    })?;

    // The operator upholds a false positive: delisted, and the next sync takes it out.
    let reply = http.post(&format!("{}v1/admin/false-positives", server.url), Some(&admin), &json!({"value": LISTED}))?;
    ensure!(reply.status == 202, "{} {}", reply.status, reply.body);
    wait_until(Duration::from_secs(60), "the delisted address to leave blocklist_v4", || {
        daemon.is_alive()?;
        Ok((!ns.set_elements("palisade", "blocklist_v4")?.iter().any(|e| e == LISTED)).then_some(()))
    })?;
    let explanation: ExplanationResponse =
        http.get(&format!("{}v1/admin/ips/{LISTED}/explanation", server.url), Some(&admin))?.json()?;
    ensure!(!explanation.listed, "{explanation:?}");
    Ok(())
}

#[test]
fn reports_and_detections_made_while_the_server_is_down_arrive_exactly_once_after_it_returns() -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let mut server = ServerProcess::start(&db, ServerOptions::default())?;
    let http = Http::new()?;
    let admin = server.admin_token()?;
    let home = AgentHome::new("[apply]\nbackend = \"none\"\n[push]\ninterval_secs = 1\nmax_backoff_secs = 2\n")?;
    let registered = agent(&home, &["register", "--server", &server.url])?;
    ensure!(registered.status.success(), "register: {}", text(&registered));
    let machine = home.machine_id()?;

    server.kill();
    // `status` says so in one sentence and exits non-zero, with or without --json.
    let down = agent(&home, &["status"])?;
    let stderr = String::from_utf8_lossy(&down.stderr);
    ensure!(!down.status.success() && stderr.contains("is unreachable"), "{}", text(&down));
    ensure!(stderr.lines().count() == 1 && stderr.matches("cannot reach").count() == 1, "one sentence: {stderr}");
    ensure!(String::from_utf8_lossy(&down.stdout).contains("FAILED: cannot reach"), "{}", text(&down));
    let down = agent(&home, &["status", "--json"])?;
    let body: Value = serde_json::from_slice(&down.stdout).with_context(|| text(&down))?;
    ensure!(!down.status.success() && body["reachable"] == false, "{}", text(&down));
    let attackers: Vec<String> = (1..=6).map(|i| format!("45.33.40.{i}")).collect();
    for ip in &attackers[..3] {
        let reported = agent(&home, &["report", ip, "--scenario", "crowdsecurity/ssh-bf", "--reason", "fail2ban sshd"])?;
        ensure!(reported.status.success(), "a report to an unreachable server is spooled, not an error: {}", text(&reported));
        ensure!(String::from_utf8_lossy(&reported.stdout).contains("spooled"), "{}", text(&reported));
    }
    ensure!(home.spool_len()? == 3, "three signals spooled");

    // The daemon starts while the server is down, detects a brute force in its log, takes two
    // more reports, and is killed.
    let mut daemon = watch(Command::new(palisade()).arg("--config").arg(&home.config).arg("watch"))?;
    for ip in &attackers[3..5] {
        let reported = agent(&home, &["report", ip, "--scenario", "crowdsecurity/ssh-bf", "--json"])?;
        let body: Value = serde_json::from_slice(&reported.stdout).with_context(|| text(&reported))?;
        ensure!(body["spooled"] == true && body["pushed"] == false, "{body}");
    }
    // The log starts empty and is read from its start, so no line is missed however late the
    // follower starts.
    home.append_log(&ssh_failures(&attackers[5], 6))?;
    wait_until(Duration::from_secs(30), "the detection in the spool", || {
        daemon.is_alive()?;
        Ok((home.spool_len()? == 6).then_some(()))
    })?;
    drop(daemon);
    ensure!(home.spool_len()? == 6, "six signals survive the agent being killed");

    // A copy of one spooled signal, to deliver it a second time later.
    let spool = home.dir.path().join("state/spool");
    let first = std::fs::read_dir(&spool)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .min()
        .context("a spooled file")?;
    let copy = std::fs::read(&first)?;

    server.restart()?;
    // This test's agent reads its log from the start; empty it so the restarted agent does not
    // detect the same lines a second time (that would be a second, distinct signal).
    std::fs::write(&home.log, "")?;
    let _daemon = watch(Command::new(palisade()).arg("--config").arg(&home.config).arg("watch"))?;
    wait_until(Duration::from_secs(60), "the spool to drain", || Ok((home.spool_len()? == 0).then_some(())))?;
    for ip in &attackers {
        let stored = signals_about(&http, &server, &admin, &machine, ip)?;
        ensure!(
            stored == 1,
            "{ip} stored exactly once, not {stored} times; rejected: {:?}",
            std::fs::read_dir(spool.join("rejected"))?.count()
        );
    }

    // A batch the server stored but whose answer was lost is sent again, byte for byte: the
    // server recognises it and stores nothing new.
    std::fs::write(spool.join(first.file_name().context("name")?), copy)?;
    let pushed = agent(&home, &["push", "--json"])?;
    let report: Value = serde_json::from_slice(&pushed.stdout).with_context(|| text(&pushed))?;
    ensure!(report["delivered"] == 1 && report["duplicates"] == 1 && report["accepted"] == 0, "{report}");
    ensure!(http.admin_signals(&server.url, &admin, Some(&machine))?.len() == attackers.len(), "no signal stored twice");

    let status = agent(&home, &["status", "--json"])?;
    let status: Value = serde_json::from_slice(&status.stdout).with_context(|| text(&status))?;
    ensure!(status["reachable"] == true && status["login"] == true && status["spooled"] == 0, "{status}");
    ensure!(status["last_push"].is_string(), "{status}");
    // Trust only in words; this machine has just started, with no account and no sensor flag.
    ensure!(status["trust"] == "none yet" && status["sensor"] == false && status["account"].is_null(), "{status}");
    Ok(())
}

#[test]
fn a_bad_configuration_is_explained_and_exits_non_zero() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cases: [(&str, &str); 4] = [
        ("[sync]\nintervall_secs = 5\n", "intervall_secs"),
        ("[apply]\nbackend = \"iptables\"\n", "backend"),
        ("[apply]\nbackend = \"file\"\n", "needs apply.file"),
        ("[push\n", "invalid configuration"),
    ];
    for (i, (body, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, body)?;
        let output = run(Command::new(palisade()).arg("--config").arg(&path).arg("status"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(!output.status.success(), "{body:?} was accepted");
        ensure!(stderr.starts_with("palisade: ") && stderr.contains(expected), "{body:?}: {stderr}");
    }
    let missing = run(Command::new(palisade()).args(["--config", "/nonexistent/agent.toml", "status"]))?;
    ensure!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("cannot read the configuration"));
    // Through the environment as well.
    let bad = dir.path().join("bad0.toml");
    let output = Command::new(palisade()).env("PALISADE_AGENT_CONFIG", &bad).arg("status").output()?;
    ensure!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("intervall_secs"), "{}", text(&output));
    // The server's variables are not the agent's: PALISADE_CONFIG names the server's file.
    let home = AgentHome::new("")?;
    let output = Command::new(palisade())
        .env("PALISADE_CONFIG", &bad)
        .env("PALISADE_AGENT_CONFIG", &home.config)
        .env("PALISADE_SERVER", "http://192.0.2.1:1/")
        .arg("status")
        .output()?;
    ensure!(String::from_utf8_lossy(&output.stderr).contains("palisade register"), "{}", text(&output));

    // Not registered yet: a sentence saying what to do.
    let home = AgentHome::new("")?;
    let output = agent(&home, &["status"])?;
    ensure!(
        !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("palisade register"),
        "{}",
        text(&output)
    );
    let output = agent(&home, &["report", "not-an-ip", "--scenario", "x"])?;
    ensure!(
        !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("not an IP address"),
        "{}",
        text(&output)
    );
    Ok(())
}

#[test]
fn an_unreachable_server_fails_sync_clearly_and_keeps_reports() -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let mut server = ServerProcess::start(&db, ServerOptions::default())?;
    let home = AgentHome::new("[apply]\nbackend = \"none\"\n")?;
    ensure!(agent(&home, &["register", "--server", &server.url])?.status.success());
    server.kill();
    let output = agent(&home, &["sync"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("pulling community") && stderr.matches("cannot reach").count() == 1,
        "{}",
        text(&output)
    );
    let output = agent(&home, &["report", BRUTE_FORCER, "--scenario", "crowdsecurity/ssh-bf"])?;
    ensure!(output.status.success() && home.spool_len()? == 1, "{}", text(&output));
    let status = agent(&home, &["status", "--json"])?;
    let status: Value = serde_json::from_slice(&status.stdout).with_context(|| text(&status))?;
    ensure!(status["reachable"] == false && status["spooled"] == 1, "{status}");
    // Private and loopback addresses are never reported.
    let output = agent(&home, &["report", "192.168.1.20", "--scenario", "crowdsecurity/ssh-bf"])?;
    ensure!(output.status.success() && String::from_utf8_lossy(&output.stdout).contains("not reported"), "{}", text(&output));
    ensure!(home.spool_len()? == 1);
    Ok(())
}

/// Members of an ipset inside the namespace (empty when the set does not exist).
fn ipset_members(ns: &NetNs, set: &str) -> anyhow::Result<Vec<String>> {
    let output = ns.command(Path::new("ipset")).args(["list", set]).output()?;
    if !output.status.success() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    Ok(text.split("Members:").nth(1).unwrap_or("").split_whitespace().map(str::to_string).collect())
}

#[test]
fn sync_into_a_real_ipset_adds_a_listing_and_removes_it_when_delisted() -> anyhow::Result<()> {
    if !netns::ready("sync_into_a_real_ipset", &[]) {
        return Ok(());
    }
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let http = Http::new()?;
    let admin = server.admin_token()?;
    let mut ns = NetNs::create()?;
    let url = ns.relay_to(port_of(&server)?)?;
    let home = AgentHome::new("[apply]\nbackend = \"ipset\"\n")?;
    let registered = run(ns.command(&palisade()).arg("--config").arg(&home.config).args(["register", "--server", &url]))?;
    ensure!(registered.status.success(), "register: {}", text(&registered));
    let sync = |ns: &NetNs| -> anyhow::Result<()> {
        let output = run(ns.command(&palisade()).arg("--config").arg(&home.config).arg("sync"))?;
        ensure!(output.status.success(), "sync: {}", text(&output));
        Ok(())
    };

    let sensor = operator_machine(&http, &server, &admin, "honeypot-1", true)?;
    sensor_report(&http, &server, &sensor, LISTED)?;
    wait_until(Duration::from_secs(60), "the listed address in the palisade-v4 ipset", || {
        sync(&ns)?;
        Ok(ipset_members(&ns, "palisade-v4")?.iter().any(|m| m == LISTED).then_some(()))
    })?;

    let reply = http.post(&format!("{}v1/admin/false-positives", server.url), Some(&admin), &json!({"value": LISTED}))?;
    ensure!(reply.status == 202, "{} {}", reply.status, reply.body);
    wait_until(Duration::from_secs(60), "the delisted address to leave the ipset", || {
        sync(&ns)?;
        let exists = ns.command(Path::new("ipset")).args(["list", "palisade-v4"]).output()?.status.success();
        Ok((exists && !ipset_members(&ns, "palisade-v4")?.iter().any(|m| m == LISTED)).then_some(()))
    })?;
    Ok(())
}

/// One agent of an account (`palisade watch` following its log) and the others (one-shot
/// `palisade sync`, each in its own namespace with real nftables).
struct Member {
    ns: NetNs,
    home: AgentHome,
}

impl Member {
    fn join(server: &ServerProcess, config: &str, enroll_key: &str, name: &str) -> anyhow::Result<Member> {
        let mut ns = NetNs::create()?;
        let url = ns.relay_to(port_of(server)?)?;
        let home = AgentHome::new(config)?;
        let registered = run(ns.command(&palisade()).arg("--config").arg(&home.config).args(["register", "--server", &url]))?;
        ensure!(registered.status.success(), "register {name}: {}", text(&registered));
        let enrolled =
            run(ns.command(&palisade()).arg("--config").arg(&home.config).args(["enroll", enroll_key, "--name", name]))?;
        ensure!(enrolled.status.success(), "enroll {name}: {}", text(&enrolled));
        Ok(Member { ns, home })
    }

    /// Syncs once; whether `ip` is then in its firewall's blocklist set.
    fn blocks(&self, ip: &str) -> anyhow::Result<bool> {
        let output = run(self.ns.command(&palisade()).arg("--config").arg(&self.home.config).arg("sync"))?;
        ensure!(output.status.success(), "sync: {}", text(&output));
        Ok(self.ns.set_elements("palisade", "blocklist_v4")?.iter().any(|e| e == ip))
    }
}

#[test]
fn a_brute_force_seen_by_one_agent_is_blocked_at_once_by_its_accounts_other_agents_and_by_partners_only_while_shared()
-> anyhow::Result<()> {
    if !netns::ready("account_pool", &[]) {
        return Ok(());
    }
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    for account in ["acme", "partner"] {
        server.admin(&["account", "create", account])?;
    }
    let acme_key = server.admin(&["enroll-key", "create", "--account", "acme"])?.trim().to_string();
    let partner_key = server.admin(&["enroll-key", "create", "--account", "partner"])?.trim().to_string();
    let config = "[push]\ninterval_secs = 1\nmax_backoff_secs = 2\n[sync]\ninterval_secs = 1\n";
    let web = Member::join(&server, config, &acme_key, "web")?;
    let mail = Member::join(&server, config, &acme_key, "mail")?;
    let outsider = Member::join(&server, config, &partner_key, "partner-web")?;
    let mut daemon = watch(web.ns.command(&palisade()).arg("--config").arg(&web.home.config).arg("watch"))?;

    // The web server sees an ssh brute force; the mail server of the same account blocks it at its
    // next sync, long before any consensus (one fresh machine lists nothing on the community list).
    web.home.append_log(&ssh_failures(BRUTE_FORCER, 8))?;
    wait_until(Duration::from_secs(60), "the mail server to block the brute forcer", || {
        daemon.is_alive()?;
        Ok(mail.blocks(BRUTE_FORCER)?.then_some(()))
    })?;
    ensure!(!outsider.blocks(BRUTE_FORCER)?, "another account's agent received acme's pool");
    let community = server.admin(&["explain", BRUTE_FORCER])?;
    ensure!(community.contains("\"listed\": false"), "the community list still needs consensus: {community}");

    // Shared with the partner: its agent blocks it too; the share ended: it unblocks it.
    server.admin(&["pool", "share", "acme", "partner"])?;
    ensure!(outsider.blocks(BRUTE_FORCER)?, "the partner's agent blocks what acme shares");
    server.admin(&["pool", "unshare", "acme", "partner"])?;
    ensure!(!outsider.blocks(BRUTE_FORCER)?, "an ended share leaves the partner's firewall");
    ensure!(mail.blocks(BRUTE_FORCER)?, "acme's own agents keep it");
    Ok(())
}

/// Whether `home`'s saved sync state holds a cursor for one of its pools (its first sync ran).
fn has_pool_cursor(home: &AgentHome) -> anyhow::Result<bool> {
    let Ok(text) = std::fs::read_to_string(home.dir.path().join("state/state.json")) else { return Ok(false) };
    let state: Value = serde_json::from_str(&text)?;
    Ok(state["lists"]
        .as_object()
        .is_some_and(|lists| lists.iter().any(|(name, list)| name.starts_with("pool-") && list["cursor"].is_i64())))
}

#[test]
fn a_watching_agent_applies_its_accounts_pool_entry_through_the_long_poll_long_before_its_next_sync() -> anyhow::Result<()> {
    if !netns::ready("pool_long_poll", &[]) {
        return Ok(());
    }
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    server.admin(&["account", "create", "acme"])?;
    let acme_key = server.admin(&["enroll-key", "create", "--account", "acme"])?.trim().to_string();
    // An hour between syncs: within this test, only the long-poll can bring the pool entry.
    let config = "[push]\ninterval_secs = 1\nmax_backoff_secs = 2\n[sync]\ninterval_secs = 3600\n";
    let web = Member::join(&server, config, &acme_key, "web")?;
    let mail = Member::join(&server, config, &acme_key, "mail")?;
    let mut web_daemon = watch(web.ns.command(&palisade()).arg("--config").arg(&web.home.config).arg("watch"))?;
    let mut mail_daemon = watch(mail.ns.command(&palisade()).arg("--config").arg(&mail.home.config).arg("watch"))?;
    wait_until(Duration::from_secs(30), "the mail server's first sync", || {
        mail_daemon.is_alive()?;
        Ok(has_pool_cursor(&mail.home)?.then_some(()))
    })?;
    ensure!(!mail.ns.set_elements("palisade", "blocklist_v4")?.iter().any(|e| e == BRUTE_FORCER), "blocked before the attack");

    web.home.append_log(&ssh_failures(BRUTE_FORCER, 8))?;
    wait_until(Duration::from_secs(60), "the mail server's watch to block the brute forcer", || {
        web_daemon.is_alive()?;
        mail_daemon.is_alive()?;
        Ok(mail.ns.set_elements("palisade", "blocklist_v4")?.iter().any(|e| e == BRUTE_FORCER).then_some(()))
    })?;
    Ok(())
}

#[test]
fn sync_without_net_admin_says_to_run_as_root_or_with_the_capability() -> anyhow::Result<()> {
    if !netns::ready("sync_without_net_admin", &[]) {
        return Ok(());
    }
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let mut ns = NetNs::create()?;
    let url = ns.relay_to(port_of(&server)?)?;
    let home = AgentHome::new("")?;
    let registered = run(ns.command(&palisade()).arg("--config").arg(&home.config).args(["register", "--server", &url]))?;
    ensure!(registered.status.success(), "register: {}", text(&registered));
    // Root, but without CAP_NET_ADMIN (dropped from the bounding and inheritable sets).
    let setpriv = Path::new("/usr/bin/setpriv");
    let output = run(ns
        .command(setpriv)
        .args(["--bounding-set=-net_admin", "--inh-caps=-net_admin", "--"])
        .arg(palisade())
        .arg("--config")
        .arg(&home.config)
        .arg("sync"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "{}", text(&output));
    ensure!(stderr.contains("run palisade as root or give it CAP_NET_ADMIN"), "{}", text(&output));
    // With the capability the same sync works and creates the table.
    let output = run(ns.command(&palisade()).arg("--config").arg(&home.config).arg("sync"))?;
    ensure!(output.status.success(), "{}", text(&output));
    ensure!(ns.nft(&["list", "table", "inet", "palisade"])?.contains("blocklist_v4"));
    // A dry run prints the script and changes nothing.
    let output = run(ns.command(&palisade()).arg("--config").arg(&home.config).args(["sync", "--dry-run", "--full"]))?;
    ensure!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("flush set inet palisade blocklist_v4"),
        "{}",
        text(&output)
    );
    Ok(())
}

#[test]
fn crowdsec_connect_writes_credentials_crowdsec_accepts() -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let http = Http::new()?;
    let dir = tempfile::tempdir()?;
    let output_path = dir.path().join("online_api_credentials.yaml");
    let output = run(Command::new(palisade())
        .args(["crowdsec", "connect", "--server", server.url.trim_end_matches('/'), "--output"])
        .arg(&output_path))?;
    ensure!(output.status.success(), "{}", text(&output));
    let yaml = std::fs::read_to_string(&output_path)?;
    let field = |key: &str| -> anyhow::Result<String> {
        let line = yaml.lines().find(|l| l.starts_with(&format!("{key}: "))).context("key")?;
        Ok(line[key.len() + 2..].trim_matches('"').to_string())
    };
    ensure!(yaml.lines().count() == 3 && !yaml.contains("papi_url"), "{yaml}");
    ensure!(field("url")? == server.url, "{yaml}");
    use std::os::unix::fs::PermissionsExt;
    ensure!(std::fs::metadata(&output_path)?.permissions().mode() & 0o777 == 0o600);
    // The written credentials log in.
    let body = json!({"machine_id": field("login")?, "password": field("password")?, "scenarios": []});
    let reply = http.post(&format!("{}v2/watchers/login", server.url), None, &body)?;
    ensure!(reply.status == 200, "{} {}", reply.status, reply.body);
    Ok(())
}
