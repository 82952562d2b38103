//! The README's quick start, run as written. The shell blocks marked `sh quickstart` are taken
//! from README.md in order and run by one `bash` (`set -euo pipefail`) as root inside a network
//! namespace of its own (its loopback holds the server's 127.0.0.1:8470, so nothing on the host
//! is in the way), with private tmpfs mounts on the agent's default paths (/etc/palisade,
//! /var/lib/palisade) and in a pid namespace, so the server the README starts in the background
//! ends with the script. Then real packets decide: from the address the README reports, a
//! connection into the namespace gets no answer; from another address it does. If the README
//! changes, this follows it; if the README is wrong, this fails.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use palisade_tests::netns::{self, NetNs, Probe, probe};
use palisade_tests::{workspace_binary, workspace_root};

/// The bodies of the fenced blocks whose info string is `sh quickstart`, in order.
fn quickstart_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh quickstart") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The address the script reports (`palisade report ADDRESS …`).
fn reported(script: &str) -> anyhow::Result<IpAddr> {
    let mut words = script.split_whitespace().skip_while(|w| *w != "report");
    let address = words.nth(1).context("the quick start reports no address")?;
    address.parse().with_context(|| format!("{address:?} is not an address"))
}

#[test]
fn quick_start() -> anyhow::Result<()> {
    if !netns::ready("readme::quick_start", &["curl", "unshare"]) {
        return Ok(());
    }
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    let blocks = quickstart_blocks(&readme);
    ensure!(blocks.len() >= 4, "the README has {} quick start blocks", blocks.len());
    let script = blocks.concat();
    let IpAddr::V4(attacker) = reported(&script)? else { bail!("the quick start reports an IPv6 address") };

    let ns = NetNs::create()?;
    let sources = ns.sources()?;
    ns.add_source(attacker)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("quickstart.sh"), format!("set -euo pipefail\n{script}"))?;
    let bin = workspace_binary("palisade-server", "palisade-server").parent().context("a binary directory")?.to_path_buf();
    // Mount points for the agent's default paths; only those made here are removed afterwards.
    let made: Vec<&Path> =
        [Path::new("/etc/palisade"), Path::new("/var/lib/palisade")].into_iter().filter(|p| !p.exists()).collect();
    for path in &made {
        std::fs::create_dir_all(path)?;
    }
    let inside = format!(
        "mount -t tmpfs -o mode=0755 tmpfs /etc/palisade && mount -t tmpfs -o mode=0755 tmpfs /var/lib/palisade && \
         cd {} && exec bash quickstart.sh",
        dir.path().display()
    );
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &ns.name, "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"])
        .args(["bash", "-c", &inside])
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("PALISADE_")) {
        command.env_remove(key);
    }
    let ran = run_with_deadline(command, Duration::from_secs(300));
    for path in made.iter().rev() {
        drop(std::fs::remove_dir(path));
    }
    let output = ran?;
    let log =
        format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(output.status.success(), "the quick start failed ({}):\n{log}", output.status);

    // The firewall the quick start left in the namespace, tried with real connections to a closed
    // port inside (a refusal is an answer: the SYN got through).
    let target = SocketAddr::new(sources.inner_v4, 9);
    ensure!(probe(IpAddr::V4(attacker), target, Duration::from_secs(3))? == Probe::Silent, "{attacker} got through:\n{log}");
    ensure!(probe(sources.v4[0], target, Duration::from_secs(20))? == Probe::Answered, "an innocent address was dropped:\n{log}");
    Ok(())
}

/// Runs `command` to completion, killing it (and, through `--kill-child`, everything it
/// started) when it outlives `deadline`.
fn run_with_deadline(mut command: Command, deadline: Duration) -> anyhow::Result<std::process::Output> {
    let child = command.spawn().context("starting the quick start")?;
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || drop(tx.send(child.wait_with_output())));
    let started = Instant::now();
    match rx.recv_timeout(deadline) {
        Ok(output) => Ok(output?),
        Err(_) => {
            drop(Command::new("kill").arg(id.to_string()).status());
            bail!("the quick start ran longer than {} s", started.elapsed().as_secs())
        }
    }
}
