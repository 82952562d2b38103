//! Debian's `crowdsec-firewall-bouncer` (0.0.25, nftables mode) against a real server, with no
//! CrowdSec agent or Local API anywhere: only its `api_url` and `api_key` point at Palisade. It
//! runs inside a network namespace with its own nftables; packets from an address a list of the
//! key's tier holds are dropped, and pass again once the address is removed and the bouncer has
//! pulled. The packets are real: TCP connections made inside the namespace from addresses on its
//! loopback, which cross the bouncer's input chain like any arriving packet. An address that
//! gets through reaches the namespace's stack and is refused (nothing listens on the port); one
//! that is dropped gets no answer at all. Needs root, `ip`, `nft`, `curl` and the package (the
//! test skips with a notice outside CI, and fails in CI, where `.ci/run` installs it).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use palisade_tests::netns::{self, NetNs};
use palisade_tests::testing::{TestDb, in_ci};
use palisade_tests::{ServerOptions, ServerProcess, wait_until};

const BOUNCER: &str = "/usr/bin/crowdsec-firewall-bouncer";

/// Publicly routed addresses (outside every special-purpose range, which Palisade never serves),
/// put on the namespace's loopback to send from.
const LISTED: &str = "45.33.32.156";
const PASSING: &str = "81.2.69.142";
/// Where the connections go (on the same loopback): never listed, so its answers pass.
const TARGET: &str = "81.2.69.150";

/// The bouncer's table and set in nftables mode (its defaults, spelled out in its configuration).
const TABLE: &str = "crowdsec";
const SET: &str = "crowdsec-blacklists";

/// Whether the bouncer test can run here; prints why not (and fails in CI).
fn bouncer_ready(test: &str) -> bool {
    let why = netns::unavailable()
        .or_else(|| {
            (!Path::new(BOUNCER).exists()).then(|| format!("{BOUNCER} is missing (apt-get install crowdsec-firewall-bouncer)"))
        })
        .or_else(|| {
            std::process::Command::new("curl").arg("--version").output().is_err().then(|| "`curl` is not installed".to_string())
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

/// A running bouncer, killed (and its output shown) when dropped.
struct Bouncer {
    child: Child,
    log: std::path::PathBuf,
}

impl Bouncer {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails with the bouncer's output when it has exited.
    fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the bouncer exited ({status}):\n{}", self.output());
        }
        Ok(())
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// The bouncer's configuration: Palisade's URL and an API key, nftables in its own table, a pull
/// every second, no daemon, no metrics listener, its log on stdout.
fn bouncer_config(url: &str, key: &str, pid_dir: &Path) -> String {
    format!(
        "mode: nftables
pid_dir: {pid_dir}/
update_frequency: 1s
daemonize: false
log_mode: stdout
log_level: info
api_url: {url}
api_key: {key}
insecure_skip_verify: false
disable_ipv6: true
deny_action: DROP
deny_log: false
supported_decisions_types:
  - ban
blacklists_ipv4: {SET}
blacklists_ipv6: crowdsec6-blacklists
nftables:
  ipv4:
    enabled: true
    set-only: false
    table: {TABLE}
    chain: crowdsec-chain
  ipv6:
    enabled: false
    set-only: false
    table: crowdsec6
    chain: crowdsec6-chain
prometheus:
  enabled: false
  listen_addr: 127.0.0.1
  listen_port: 60601
",
        pid_dir = pid_dir.display()
    )
}

/// The addresses in the bouncer's set (its elements carry a timeout, so each is an object).
fn banned(ns: &NetNs) -> anyhow::Result<Vec<String>> {
    let Ok(text) = ns.nft(&["-j", "list", "set", "ip", TABLE, SET]) else { return Ok(Vec::new()) };
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let mut out = Vec::new();
    for item in json["nftables"].as_array().into_iter().flatten() {
        for elem in item["set"]["elem"].as_array().into_iter().flatten() {
            let value = elem["elem"]["val"].as_str().or_else(|| elem.as_str()).unwrap_or_default();
            out.push(value.to_string());
        }
    }
    Ok(out)
}

/// What became of a TCP connection attempt.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// The namespace's stack answered (a refusal: nothing listens there).
    Reached,
    /// Nothing answered: the packets were dropped.
    Dropped,
}

/// Opens a TCP connection from `from` to `to` inside the namespace (both on its loopback); the
/// bouncer's input chain sees a packet with source `from`. curl's exit status says which fate:
/// 7 (refused) or 28 (no answer before the connect timeout).
fn connect(ns: &NetNs, from: &str, to: &str) -> anyhow::Result<Fate> {
    let output = ns
        .command(Path::new("curl"))
        .args(["--silent", "--interface", from, "--connect-timeout", "3", &format!("http://{to}:9/")])
        .output()
        .context("running curl in the namespace")?;
    match output.status.code() {
        Some(7) => Ok(Fate::Reached),
        Some(28) => Ok(Fate::Dropped),
        other => bail!("curl from {from} to {to} ended with {other:?}: {}", String::from_utf8_lossy(&output.stderr)),
    }
}

#[test]
fn crowdsec_firewall_bouncer_drops_a_listed_address_and_lets_it_through_once_removed() -> anyhow::Result<()> {
    if !bouncer_ready("crowdsec_firewall_bouncer_drops_a_listed_address") {
        return Ok(());
    }
    let db = TestDb::sqlite();
    // A pull a second for the whole test: a tier with the quota for it, receiving the community
    // list and the operator list `edge-blocks`.
    let tier = "[tiers.bouncers]\nlookups_per_day = 100000\nlookups_per_month = 3000000\nrate_per_sec = 100.0\n\
                burst = 100\nbulk_max = 10\nblocklists = { community = 0, edge-blocks = 0 }\n";
    let server = ServerProcess::start(&db, ServerOptions { config_toml: tier.into(), ..ServerOptions::default() })?;
    server.admin(&["account", "create", "acme"])?;
    let key = server.admin(&["api-key", "create", "--account", "acme", "--tier", "bouncers"])?.trim().to_string();
    server.admin(&["blocklist", "create", "edge-blocks", "--description", "blocked at the edge"])?;
    server.admin(&["blocklist", "add", "edge-blocks", LISTED, "--expires", "12h"])?;

    let mut ns = NetNs::create()?;
    let port: u16 = server.addr().rsplit(':').next().context("a port")?.parse()?;
    let url = ns.relay_to(port)?;
    for address in [LISTED, PASSING, TARGET] {
        let added = ns.command(Path::new("ip")).args(["addr", "add", &format!("{address}/32"), "dev", "lo"]).output()?;
        ensure!(added.status.success(), "ip addr add {address}: {}", String::from_utf8_lossy(&added.stderr));
    }
    ensure!(connect(&ns, LISTED, TARGET)? == Fate::Reached, "before the bouncer, every address gets through");

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("crowdsec-firewall-bouncer.yaml");
    std::fs::write(&config, bouncer_config(&url, &key, dir.path()))?;
    let log = dir.path().join("bouncer.log");
    let out = std::fs::File::create(&log)?;
    let child = ns
        .command(Path::new(BOUNCER))
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting crowdsec-firewall-bouncer")?;
    let mut bouncer = Bouncer { child, log };

    let waited = wait_until(Duration::from_secs(60), "the listed address in the bouncer's nftables set", || {
        bouncer.alive()?;
        Ok(banned(&ns)?.iter().any(|a| a == LISTED).then_some(()))
    });
    if let Err(error) = waited {
        bail!("{error}\nbouncer output:\n{}", bouncer.output());
    }
    ensure!(connect(&ns, LISTED, TARGET)? == Fate::Dropped, "the listed address gets through:\n{}", bouncer.output());
    ensure!(connect(&ns, PASSING, TARGET)? == Fate::Reached, "an unlisted address is dropped too:\n{}", bouncer.output());

    server.admin(&["blocklist", "remove", "edge-blocks", LISTED])?;
    let waited = wait_until(Duration::from_secs(60), "the removed address to leave the bouncer's set", || {
        bouncer.alive()?;
        Ok((!banned(&ns)?.iter().any(|a| a == LISTED)).then_some(()))
    });
    if let Err(error) = waited {
        bail!("{error}\nbouncer output:\n{}", bouncer.output());
    }
    ensure!(connect(&ns, LISTED, TARGET)? == Fate::Reached, "the removed address is still dropped:\n{}", bouncer.output());
    let output = bouncer.output();
    ensure!(output.contains("1 decision added") && output.contains("1 decision deleted"), "the bouncer's own account:\n{output}");
    drop(bouncer);
    Ok(())
}
