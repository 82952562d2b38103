//! Network namespaces for agent tests and benchmarks: a namespace of its own (so nftables rules
//! never touch the host's firewall) joined to the host by a veth pair, with a small TCP relay
//! that makes a server listening on the host's 127.0.0.1 reachable from inside. The namespace
//! (and with it the veth pair) is deleted when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use anyhow::{Context, bail};

/// Why namespaces cannot be used here, if they cannot: not root, or `ip`/`nft` missing.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref().ok() != Some("0") {
        return Some("not running as root (network namespaces and nftables need it)".into());
    }
    for (tool, args) in [("ip", &["-V"][..]), ("nft", &["--version"][..])] {
        if Command::new(tool).args(args).output().is_err() {
            return Some(format!("`{tool}` is not installed (apt-get install iproute2 nftables)"));
        }
    }
    None
}

/// Whether a test needing namespaces (and the given extra tools) can run here: true, or false
/// after printing why it skips; in CI a missing piece fails the test instead.
pub fn ready(test: &str, tools: &[&str]) -> bool {
    let missing = unavailable().or_else(|| {
        tools
            .iter()
            .find(|tool| Command::new(tool).arg("--version").output().is_err())
            .map(|tool| format!("`{tool}` is not installed"))
    });
    match missing {
        None => true,
        Some(why) if crate::testing::in_ci() => panic!("{test}: {why}"),
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

/// A network namespace, deleted on drop.
pub struct NetNs {
    /// Its name (for `ip netns exec NAME …`).
    pub name: String,
    /// Address of the host's end of the veth pair, reachable from inside.
    pub host_addr: String,
    /// Address of the namespace's end of the veth pair.
    pub inner_addr: String,
    /// The host's end of the veth pair.
    outer_link: String,
    /// The namespace's end of the veth pair.
    inner_link: String,
    /// Which /30 of 10.213.0.0/16 this namespace has (it also picks its [`Sources`]).
    block: u32,
    relays: Vec<Relay>,
}

/// Addresses to send from on the host's end of a namespace's veth pair, and those to reach
/// inside ([`NetNs::sources`]).
#[derive(Debug, Clone)]
pub struct Sources {
    /// Two extra IPv4 addresses of the host (from 45.213.0.0/16), routed back from inside.
    pub v4: [std::net::IpAddr; 2],
    /// Two extra IPv6 addresses of the host, on the veth pair's own /64.
    pub v6: [std::net::IpAddr; 2],
    /// The host's IPv6 address on the veth pair, beside `v6`.
    pub host_v6: std::net::IpAddr,
    /// The namespace's IPv4 address.
    pub inner_v4: std::net::IpAddr,
    /// The namespace's IPv6 address.
    pub inner_v6: std::net::IpAddr,
}

/// What became of a TCP connection attempt ([`probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The destination's stack answered: connected, or refused by a closed port (its RST
    /// proves the SYN got through).
    Answered,
    /// No answer at all within the wait: the SYN (or its answer) was dropped.
    Silent,
}

/// Tries a TCP connection from `source` (an address of this host) to `target`, waiting at most
/// `wait` for any answer.
pub fn probe(source: std::net::IpAddr, target: std::net::SocketAddr, wait: std::time::Duration) -> anyhow::Result<Probe> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let socket = if source.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(std::net::SocketAddr::new(source, 0)).with_context(|| format!("binding {source}"))?;
        match tokio::time::timeout(wait, socket.connect(target)).await {
            Err(_) => Ok(Probe::Silent),
            Ok(Ok(_)) => Ok(Probe::Answered),
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => Ok(Probe::Answered),
            Ok(Err(error)) => Err(anyhow::Error::new(error).context(format!("connecting from {source} to {target}"))),
        }
    })
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!("{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl NetNs {
    /// Creates a namespace with loopback up and a veth link to the host.
    pub fn create() -> anyhow::Result<NetNs> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}x{n}", pid % 100_000);
        let name = format!("paltest{tag}");
        // A /30 per namespace inside 10.213.0.0/16, chosen from the pid and the counter.
        let block = (pid.wrapping_mul(31).wrapping_add(n * 7)) % 16_384;
        let (third, fourth) = (block / 64, (block % 64) * 4);
        let host_addr = format!("10.213.{third}.{}", fourth + 1);
        let inner_addr = format!("10.213.{third}.{}", fourth + 2);
        drop(run("ip", &["netns", "del", &name]));
        run("ip", &["netns", "add", &name])?;
        let (outer, inner) = (format!("pvh{tag}"), format!("pvn{tag}"));
        let ns = NetNs {
            name: name.clone(),
            host_addr: host_addr.clone(),
            inner_addr: inner_addr.clone(),
            outer_link: outer.clone(),
            inner_link: inner.clone(),
            block,
            relays: Vec::new(),
        };
        run("ip", &["link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &name])?;
        run("ip", &["addr", "add", &format!("{host_addr}/30"), "dev", &outer])?;
        run("ip", &["link", "set", &outer, "up"])?;
        run("ip", &["-n", &name, "addr", "add", &format!("{inner_addr}/30"), "dev", &inner])?;
        run("ip", &["-n", &name, "link", "set", &inner, "up"])?;
        run("ip", &["-n", &name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Adds addresses to the veth pair for firewall tests: two more IPv4 addresses on the host's
    /// end (in the /30 of 45.213.0.0/16 matching this namespace's, with routes back from inside)
    /// and IPv6 on both ends (2a02:213:BLOCK::/64: `::1`, `::3` and `::4` on the host's end, `::2`
    /// inside; no duplicate address detection, so they are usable at once). They are publicly
    /// routed addresses because a Palisade server never serves special-purpose ranges; while the
    /// namespace lives the host holds them on the veth, and cannot reach their real owners.
    pub fn sources(&self) -> anyhow::Result<Sources> {
        let (third, fourth) = (self.block / 64, (self.block % 64) * 4);
        let v4 = [format!("45.213.{third}.{}", fourth + 1), format!("45.213.{third}.{}", fourth + 2)];
        for addr in &v4 {
            self.add_source(addr.parse()?)?;
        }
        let prefix = format!("2a02:213:{:x}", self.block);
        for (addr, link, netns) in [
            (format!("{prefix}::1/64"), &self.outer_link, None),
            (format!("{prefix}::3/128"), &self.outer_link, None),
            (format!("{prefix}::4/128"), &self.outer_link, None),
            (format!("{prefix}::2/64"), &self.inner_link, Some(self.name.as_str())),
        ] {
            let mut args = Vec::new();
            if let Some(netns) = netns {
                args.extend(["-n", netns]);
            }
            args.extend(["addr", "add", &addr, "dev", link, "nodad"]);
            run("ip", &args)?;
        }
        let ip = |text: &str| -> anyhow::Result<std::net::IpAddr> { text.parse().with_context(|| format!("address {text}")) };
        Ok(Sources {
            v4: [ip(&v4[0])?, ip(&v4[1])?],
            v6: [ip(&format!("{prefix}::3"))?, ip(&format!("{prefix}::4"))?],
            host_v6: ip(&format!("{prefix}::1"))?,
            inner_v4: ip(&self.inner_addr)?,
            inner_v6: ip(&format!("{prefix}::2"))?,
        })
    }

    /// Puts an IPv4 address on the host's end of the veth pair, routed back from inside, so
    /// connections from it reach the namespace as from an outside host (see [`probe`]).
    pub fn add_source(&self, addr: std::net::Ipv4Addr) -> anyhow::Result<()> {
        run("ip", &["addr", "add", &format!("{addr}/32"), "dev", &self.outer_link])?;
        run("ip", &["-n", &self.name, "route", "add", &format!("{addr}/32"), "via", &self.host_addr])?;
        Ok(())
    }

    /// `ip netns exec NAME program`, to add arguments to.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Makes `127.0.0.1:port` on the host reachable from inside; returns the URL to use there.
    pub fn relay_to(&mut self, port: u16) -> anyhow::Result<String> {
        let relay = Relay::start(&self.host_addr, port)?;
        let url = format!("http://{}:{}/", self.host_addr, relay.port);
        self.relays.push(relay);
        Ok(url)
    }

    /// Runs `nft ARGS` inside.
    pub fn nft(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", &self.name, "nft"];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// The elements of an nftables set inside (addresses and prefixes as text); empty when the
    /// set does not exist yet.
    pub fn set_elements(&self, table: &str, set: &str) -> anyhow::Result<Vec<String>> {
        let Ok(text) = self.nft(&["-j", "list", "set", "inet", table, set]) else { return Ok(Vec::new()) };
        let json: serde_json::Value = serde_json::from_str(&text)?;
        let mut out = Vec::new();
        for item in json["nftables"].as_array().into_iter().flatten() {
            for elem in item["set"]["elem"].as_array().into_iter().flatten() {
                out.push(element_text(elem));
            }
        }
        Ok(out)
    }
}

fn element_text(elem: &serde_json::Value) -> String {
    if let Some(s) = elem.as_str() {
        return s.to_string();
    }
    if let Some(inner) = elem.get("elem") {
        return element_text(&inner["val"]);
    }
    if let Some(prefix) = elem.get("prefix") {
        return format!("{}/{}", prefix["addr"].as_str().unwrap_or("?"), prefix["len"]);
    }
    if let Some(range) = elem.get("range").and_then(|r| r.as_array()) {
        return format!("{}-{}", range[0].as_str().unwrap_or("?"), range.get(1).and_then(|v| v.as_str()).unwrap_or("?"));
    }
    elem.to_string()
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.relays.clear();
        drop(run("ip", &["netns", "del", &self.name]));
    }
}

/// A TCP relay from `addr:ephemeral` to `127.0.0.1:target`, stopped on drop.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    addr: String,
}

impl Relay {
    fn start(addr: &str, target: u16) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind((addr, 0)).with_context(|| format!("binding the relay on {addr}"))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = incoming else { continue };
                std::thread::spawn(move || {
                    // The server may be down on purpose: then the client sees its connection closed.
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { return };
                    pipe(client, server);
                });
            }
        });
        Ok(Relay { port, stop, addr: addr.to_string() })
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return };
    let forward = std::thread::spawn(move || copy(a, b));
    copy(b2, a2);
    drop(forward.join());
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    drop(to.shutdown(Shutdown::Write));
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        drop(TcpStream::connect((self.addr.as_str(), self.port)));
    }
}
