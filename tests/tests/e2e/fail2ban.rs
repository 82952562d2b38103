//! Debian's fail2ban (1.0.2) reporting to Palisade through its stock `abuseipdb` action, with no
//! AbuseIPDB anywhere: a jail with the stock `sshd` filter watches a log file this test writes
//! (backend `polling`), and its only action is the stock `abuseipdb` action. Real sshd
//! "Failed password" lines for a public address make fail2ban ban it and run the action's
//! `curl`, which Palisade must store as a signal of the key's account.
//!
//! The stock action is used as shipped, with only what must change overridden in an
//! `abuseipdb.local` beside it: `[Init] abuseipdb_apikey` (the key), and `actionban`, because
//! Debian's 1.0.2 hard-codes `https://api.abuseipdb.com/api/v2/report` inside that command
//! rather than in a variable; the override is the stock command with only the URL replaced
//! (asserted below, so a changed stock action fails this test instead of testing something else).
//!
//! fail2ban runs as this test's own `fail2ban-server` in the foreground, with its configuration,
//! socket, pid file, database and log in a temporary directory, so it never touches the system's
//! fail2ban (whose service `.ci/run` never starts); it is killed when the test ends. Skips with a
//! notice when fail2ban or curl is missing, except in CI, where `.ci/run` installs them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use palisade_tests::testing::{TestDb, in_ci};
use palisade_tests::{ServerOptions, ServerProcess, wait_until};

const STOCK: &str = "/etc/fail2ban";
const SERVER: &str = "/usr/bin/fail2ban-server";
const CLIENT: &str = "/usr/bin/fail2ban-client";
/// The URL the stock action hard-codes.
const STOCK_URL: &str = "https://api.abuseipdb.com/api/v2/report";
/// A publicly routed attacker (outside every special-purpose range).
const ATTACKER: &str = "45.33.32.156";

/// Whether the test can run here; prints why not (and fails in CI).
fn fail2ban_ready(test: &str) -> bool {
    let why = [SERVER, CLIENT, "/usr/bin/curl"]
        .into_iter()
        .find(|program| !Path::new(program).exists())
        .map(|program| format!("{program} is missing (apt-get install fail2ban curl)"))
        .or_else(|| {
            (!Path::new(STOCK).join("action.d/abuseipdb.conf").exists())
                .then(|| format!("{STOCK}/action.d/abuseipdb.conf is missing"))
        });
    match why {
        None => true,
        Some(why) if in_ci() => panic!("{test}: {why}"),
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

/// This test's fail2ban-server, stopped (and its log shown on failure) when dropped.
struct Fail2ban {
    child: Child,
    socket: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Fail2ban {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(CLIENT).arg("-s").arg(&self.socket).args(args).output()?;
        ensure!(output.status.success(), "fail2ban-client {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("fail2ban-server exited ({status}):\n{}", self.output());
        }
        Ok(())
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        drop(Command::new(CLIENT).arg("-s").arg(&self.socket).arg("stop").stdout(Stdio::null()).stderr(Stdio::null()).status());
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(500));
            drop(self.child.kill());
        }
        drop(self.child.wait());
    }
}

/// The stock `actionban` line of the stock action.
fn stock_actionban(stock: &str) -> anyhow::Result<&str> {
    stock.lines().find(|line| line.starts_with("actionban =")).context("the stock action has no one-line actionban")
}

/// Writes fail2ban's configuration into `dir`: its own fail2ban.conf (socket, pid file, database
/// and log in `dir`), the stock sshd filter and abuseipdb action, the `.local` override, and one
/// jail.
fn configure(dir: &Path, url: &str, key: &str, log_file: &Path) -> anyhow::Result<()> {
    let conf = dir.join("conf");
    std::fs::create_dir_all(conf.join("action.d"))?;
    std::fs::create_dir_all(conf.join("filter.d"))?;
    for stock in ["action.d/abuseipdb.conf", "filter.d/sshd.conf", "filter.d/common.conf"] {
        std::fs::copy(Path::new(STOCK).join(stock), conf.join(stock)).with_context(|| format!("copying {stock}"))?;
    }
    let d = dir.display();
    std::fs::write(
        conf.join("fail2ban.conf"),
        format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {d}/fail2ban.log\nsyslogsocket = auto\nsocket = {d}/fail2ban.sock\n\
             pidfile = {d}/fail2ban.pid\nallowipv6 = auto\ndbfile = {d}/fail2ban.sqlite3\ndbmaxmatches = 10\ndbpurgeage = 1d\n"
        ),
    )?;
    let stock = std::fs::read_to_string(conf.join("action.d/abuseipdb.conf"))?;
    let actionban = stock_actionban(&stock)?;
    ensure!(actionban.contains(STOCK_URL), "the stock action no longer hard-codes {STOCK_URL}: {actionban}");
    let report_url = format!("{}api/v2/report", url);
    std::fs::write(
        conf.join("action.d/abuseipdb.local"),
        format!("[Definition]\n{}\n\n[Init]\nabuseipdb_apikey = {key}\n", actionban.replace(STOCK_URL, &report_url)),
    )?;
    std::fs::write(
        conf.join("jail.conf"),
        format!(
            "[DEFAULT]\nbackend = polling\nusedns = no\nignoreself = false\nignoreip =\nbantime = 1h\nfindtime = 10m\nmaxretry = 3\n\n\
             [sshd]\nenabled = true\nfilter = sshd\nport = ssh\nlogpath = {}\naction = abuseipdb[abuseipdb_category=\"18,22\"]\n",
            log_file.display()
        ),
    )?;
    Ok(())
}

/// `n` sshd "Failed password" lines from `ip`, dated now as rsyslog writes (ISO 8601 with
/// microseconds and an offset: fail2ban's date detector takes no more than six decimals).
fn failed_passwords(ip: &str, n: usize) -> anyhow::Result<String> {
    let t = time::OffsetDateTime::now_utc();
    let now = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
    Ok((0..n)
        .map(|i| format!("{now} bastion sshd[{}]: Failed password for root from {ip} port {} ssh2\n", 4100 + i, 51000 + i))
        .collect())
}

#[test]
fn fail2bans_stock_abuseipdb_action_reports_a_ban_as_a_signal_of_the_keys_account() -> anyhow::Result<()> {
    if !fail2ban_ready("fail2bans_stock_abuseipdb_action_reports_a_ban") {
        return Ok(());
    }
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    server.admin(&["account", "create", "acme"])?;
    let key = server.admin(&["api-key", "create", "--account", "acme"])?.trim().to_string();
    let admin = server.admin_token()?;

    let dir = tempfile::tempdir()?;
    let log_file = dir.path().join("auth.log");
    std::fs::write(&log_file, "")?;
    configure(dir.path(), &server.url, &key, &log_file)?;
    let log = dir.path().join("fail2ban.log");
    let child = Command::new(SERVER)
        .args(["-f", "-x", "-c"])
        .arg(dir.path().join("conf"))
        .args(["start"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting fail2ban-server")?;
    let mut fail2ban = Fail2ban { child, socket: dir.path().join("fail2ban.sock"), log };
    let started = wait_until(Duration::from_secs(60), "fail2ban's sshd jail to start", || {
        fail2ban.alive()?;
        Ok(fail2ban.client(&["status", "sshd"]).ok().map(|_| ()))
    });
    if let Err(error) = started {
        bail!("{error}\nfail2ban log:\n{}", fail2ban.output());
    }

    let mut auth_log = std::fs::OpenOptions::new().append(true).open(&log_file)?;
    std::io::Write::write_all(&mut auth_log, failed_passwords(ATTACKER, 5)?.as_bytes())?;
    let banned = wait_until(Duration::from_secs(60), "fail2ban to ban the attacker", || {
        fail2ban.alive()?;
        Ok(fail2ban.client(&["status", "sshd"])?.contains(ATTACKER).then_some(()))
    });
    if let Err(error) = banned {
        bail!("{error}\nfail2ban log:\n{}", fail2ban.output());
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let http = reqwest::Client::new();
    let signals = wait_until(Duration::from_secs(60), "the report stored as a signal", || {
        let url = format!("{}v1/admin/signals?value={ATTACKER}", server.url);
        let body: serde_json::Value =
            runtime.block_on(async { http.get(&url).bearer_auth(&admin).send().await?.error_for_status()?.json().await })?;
        Ok(body["items"].as_array().filter(|signals| !signals.is_empty()).cloned())
    });
    let signals = match signals {
        Ok(signals) => signals,
        Err(error) => bail!("{error}\nfail2ban log:\n{}", fail2ban.output()),
    };
    ensure!(signals.len() == 1, "one ban, one report: {signals:?}");
    let signal = &signals[0];
    ensure!(signal["scenario"] == "abuseipdb/brute-force", "category 18 first: {signal}");
    let reporter = signal["machine_id"].as_str().context("a reporter")?;
    ensure!(reporter.starts_with("abuseipdb-pal_"), "the key's reporter: {reporter}");
    let url = format!("{}v1/admin/machines/{reporter}", server.url);
    let machine: serde_json::Value =
        runtime.block_on(async { http.get(&url).bearer_auth(&admin).send().await?.error_for_status()?.json().await })?;
    ensure!(machine["account"] == "acme", "the reporter belongs to the key's account: {machine}");

    // The comment fail2ban sent (the matched log lines) is the account's to read back.
    let url = format!("{}api/v2/check?ipAddress={ATTACKER}&verbose", server.url);
    let check: serde_json::Value =
        runtime.block_on(async { http.get(&url).header("Key", &key).send().await?.error_for_status()?.json().await })?;
    ensure!(check["data"]["totalReports"] == 1, "{check}");
    let comment = check["data"]["reports"][0]["comment"].as_str().unwrap_or_default();
    ensure!(comment.contains("Failed password for root from 45.33.32.156"), "the matched lines as comment: {check}");
    drop(fail2ban);
    Ok(())
}
