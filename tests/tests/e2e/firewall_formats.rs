//! The firewall formats of `/v1/blocklists/{name}` loaded exactly as the README says, inside a
//! network namespace with the real tools (nft, iptables-restore and ip6tables-restore, both the
//! system's nf_tables variant and legacy, ipset), judged by real packets: a TCP connection
//! attempt from a listed source (an address of the host's end of the veth pair) gets no answer,
//! one from an unlisted source is answered (refused by the closed port, which proves the SYN got
//! through). Reloading converges on one copy of the rules with the newer members, the change
//! forms apply on top of a loaded list, and `rules=none` loads sets that drop nothing. Each
//! loader line is checked to be in the README. Tests needing root, `ip` and `nft` skip with a
//! notice outside CI.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_api::capi::LoginResponse;
use palisade_api::native::BlocklistView;
use palisade_tests::http::Http;
use palisade_tests::netns::{self, NetNs, Probe, Sources, probe};
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, wait_until, workspace_root};
use serde_json::json;

/// The list the tests serve (a public custom list, so a machine reads it whole).
const LIST: &str = "attackers";
/// A closed port inside the namespace: an answered attempt is refused there.
const CLOSED_PORT: u16 = 9;
/// How long an attempt may stay unanswered before it counts as dropped. An answer on a veth
/// pair takes well under a millisecond; a dropped SYN never gets one.
const SILENCE: Duration = Duration::from_secs(3);
/// How long an attempt that must be answered may take.
const ANSWER: Duration = Duration::from_secs(20);

/// The README's loader lines (with `http://127.0.0.1:8470`, `$TOKEN` and the community list).
const NFT: &str = r#"curl -fsS -H "Authorization: Bearer $TOKEN" --compressed "http://127.0.0.1:8470/v1/blocklists/community?format=nftables" | nft -f -"#;
const IPTABLES: [&str; 2] = [
    r#"curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8470/v1/blocklists/community?format=iptables" | iptables-restore --noflush"#,
    "iptables -C INPUT -j PALISADE-COMMUNITY 2>/dev/null || iptables -I INPUT -j PALISADE-COMMUNITY",
];
const IP6TABLES: [&str; 2] = [
    r#"curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8470/v1/blocklists/community?format=iptables&family=v6" | ip6tables-restore --noflush"#,
    "ip6tables -C INPUT -j PALISADE-COMMUNITY 2>/dev/null || ip6tables -I INPUT -j PALISADE-COMMUNITY",
];
const IPSET: [&str; 3] = [
    r#"curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8470/v1/blocklists/community?format=ipset" | ipset restore"#,
    "iptables -C INPUT -m set --match-set palisade-community-v4 src -j DROP 2>/dev/null || iptables -I INPUT -m set --match-set palisade-community-v4 src -j DROP",
    "ip6tables -C INPUT -m set --match-set palisade-community-v6 src -j DROP 2>/dev/null || ip6tables -I INPUT -m set --match-set palisade-community-v6 src -j DROP",
];

/// A server serving [`LIST`], a machine token to read it, and a namespace with sources.
struct Lab {
    server: ServerProcess,
    http: Http,
    token: String,
    ns: NetNs,
    /// The server's URL inside the namespace (through the relay), without the trailing `/`.
    base: String,
    sources: Sources,
    /// Kept for the admin commands (the database is removed when dropped).
    _db: TestDb,
}

impl Lab {
    /// A server whose list holds two decoy ranges, and a namespace with sources to load it in.
    fn start() -> anyhow::Result<Lab> {
        let db = TestDb::sqlite();
        let server = ServerProcess::start(&db, ServerOptions::default())?;
        let http = Http::new()?;
        let created = server.admin(&["machine", "add", "firewall-1"])?;
        let field = |name: &str| {
            created
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_string)
                .with_context(|| format!("no {name} in {created}"))
        };
        let body = json!({"machine_id": field("machine_id")?, "password": field("password")?, "scenarios": []});
        let login: LoginResponse = http.post(&format!("{}v2/watchers/login", server.url), None, &body)?.json()?;
        server.admin(&["blocklist", "create", LIST, "--visibility", "public"])?;
        // Decoys (a server never serves special-purpose ranges: these are publicly routed).
        server.admin(&["blocklist", "add", LIST, "81.2.69.0/24"])?;
        server.admin(&["blocklist", "add", LIST, "2a00:1450:4001::/48"])?;
        let mut ns = NetNs::create()?;
        let port: u16 = server.addr().rsplit(':').next().context("port")?.parse()?;
        let base = ns.relay_to(port)?.trim_end_matches('/').to_string();
        let sources = ns.sources()?;
        Ok(Lab { server, http, token: login.token, ns, base, sources, _db: db })
    }

    /// Lists `add`, delists `remove`, and waits until the server serves the change.
    fn set(&self, add: &[IpAddr], remove: &[IpAddr]) -> anyhow::Result<()> {
        for addr in add {
            self.server.admin(&["blocklist", "add", LIST, &addr.to_string()])?;
        }
        for addr in remove {
            self.server.admin(&["blocklist", "remove", LIST, &addr.to_string()])?;
        }
        let url = format!("{}v1/blocklists/{LIST}", self.server.url);
        let mut last = String::new();
        wait_until(Duration::from_secs(30), "the server to serve the list's change", || {
            let reply = self.http.get(&url, Some(&self.token))?;
            ensure!(reply.status == 200, "{} {}", reply.status, reply.body);
            let served: Vec<&str> = reply.body.lines().collect();
            let done = add.iter().all(|a| served.contains(&a.to_string().as_str()))
                && remove.iter().all(|r| !served.contains(&r.to_string().as_str()));
            last.clone_from(&reply.body);
            Ok(done.then_some(()))
        })
        .with_context(|| format!("adding {add:?}, removing {remove:?}; served:\n{last}"))
    }

    /// The list's current seq (the next `since` cursor).
    fn seq(&self) -> anyhow::Result<i64> {
        let views: Vec<BlocklistView> = self.http.get(&format!("{}v1/blocklists", self.server.url), Some(&self.token))?.json()?;
        Ok(views.iter().find(|v| v.name == LIST).context("the list is listed")?.seq)
    }

    /// Runs a README line inside the namespace, for [`LIST`] on this server, as `bash -o
    /// pipefail` (so a failing download fails the step); `query` is appended to the URL.
    fn load(&self, line: &str, query: &str) -> anyhow::Result<()> {
        let line = for_list(line).replace("http://127.0.0.1:8470", &self.base).replace("?format=", &format!("?{query}format="));
        let output =
            self.ns.command(Path::new("bash")).args(["-o", "pipefail", "-c", &line]).env("TOKEN", &self.token).output()?;
        ensure!(
            output.status.success(),
            "`{line}` failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// The body of `/v1/blocklists/LIST?QUERY`, fetched from the host.
    fn fetch(&self, query: &str) -> anyhow::Result<String> {
        let reply = self.http.get(&format!("{}v1/blocklists/{LIST}?{query}", self.server.url), Some(&self.token))?;
        ensure!(reply.status == 200, "{query}: {} {}", reply.status, reply.body);
        Ok(reply.body)
    }

    /// Runs `program args…` inside; its standard output.
    fn inside(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = self.ns.command(Path::new(program)).args(args).output()?;
        ensure!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Where a probe from `source` goes: the namespace's address of the same family.
    fn target(&self, source: IpAddr) -> SocketAddr {
        let inner = if source.is_ipv4() { self.sources.inner_v4 } else { self.sources.inner_v6 };
        SocketAddr::new(inner, CLOSED_PORT)
    }

    /// Checks that traffic from each of `dropped` gets no answer and from each of `passed` does.
    fn expect(&self, step: &str, dropped: &[IpAddr], passed: &[IpAddr]) -> anyhow::Result<()> {
        for &source in passed {
            let got = probe(source, self.target(source), ANSWER)?;
            ensure!(got == Probe::Answered, "{step}: traffic from unlisted {source} was dropped");
        }
        for &source in dropped {
            let got = probe(source, self.target(source), SILENCE)?;
            ensure!(got == Probe::Silent, "{step}: traffic from listed {source} got through");
        }
        Ok(())
    }
}

/// A README line about the community list, made about [`LIST`].
fn for_list(line: &str) -> String {
    line.replace("community", LIST).replace("COMMUNITY", &LIST.to_ascii_uppercase())
}

/// The commands a script names in its comment lines (`#   command`).
fn commented_commands(script: &str) -> Vec<String> {
    script.lines().filter_map(|l| l.strip_prefix("#   ")).map(str::to_string).collect()
}

/// Lines of `text` containing `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn loader_lines_are_the_readmes() -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    for line in [NFT].iter().chain(&IPTABLES).chain(&IP6TABLES).chain(&IPSET) {
        ensure!(readme.lines().any(|l| l.trim() == *line), "README.md lacks the line\n{line}");
    }
    Ok(())
}

#[test]
fn nftables_as_documented_drops_listed_sources_of_both_families_and_reloads_in_place() -> anyhow::Result<()> {
    if !netns::ready("nftables_as_documented", &["curl"]) {
        return Ok(());
    }
    let lab = Lab::start()?;
    let s = lab.sources.clone();
    let (a4, b4, a6, b6) = (s.v4[0], s.v4[1], s.v6[0], s.v6[1]);
    let unlisted = [lab.ns.host_addr.parse()?, s.host_v6];
    lab.set(&[a4, a6], &[])?;
    // An operator's own table accepting everything at the usual priority does not let listed
    // traffic through.
    lab.inside("nft", &["add table inet operator"])?;
    lab.inside("nft", &["add chain inet operator input { type filter hook input priority filter; policy accept; }"])?;
    lab.inside("nft", &["add rule inet operator input tcp dport 9 accept"])?;

    lab.load(NFT, "")?;
    lab.expect("first load", &[a4, a6], &[b4, b6, unlisted[0], unlisted[1]])?;
    let seq = lab.seq()?;
    lab.load(NFT, "")?;
    let table = lab.inside("nft", &["list", "table", "inet", "palisade_attackers"])?;
    ensure!(count(&table, "hook input") == 1, "one base chain after a reload:\n{table}");
    ensure!(count(&table, "saddr @v4 drop") == 1 && count(&table, "saddr @v6 drop") == 1, "one rule per set:\n{table}");
    lab.expect("reloaded", &[a4, a6], &[b4, b6])?;

    // The change form on top of the loaded list: a4/a6 delisted, b4/b6 listed.
    lab.set(&[b4, b6], &[a4, a6])?;
    lab.load(NFT, &format!("since={seq}&"))?;
    lab.expect("change applied", &[b4, b6], &[a4, a6])?;
    // A full reload of the newer list: its members, one chain.
    lab.load(NFT, "")?;
    lab.load(NFT, "")?;
    let table = lab.inside("nft", &["list", "table", "inet", "palisade_attackers"])?;
    ensure!(count(&table, "hook input") == 1 && count(&table, "saddr @v4 drop") == 1, "{table}");
    lab.expect("newer list reloaded", &[b4, b6], &[a4, a6])?;

    // Sets only: the table keeps its sets, nothing drops; a chain the operator adds to the
    // table survives the next reload.
    lab.inside("nft", &["delete", "table", "inet", "palisade_attackers"])?;
    lab.load(NFT, "rules=none&")?;
    lab.load(NFT, "rules=none&")?;
    let elements = lab.ns.set_elements("palisade_attackers", "v4")?;
    ensure!(elements.contains(&b4.to_string()), "the sets are filled: {elements:?}");
    lab.expect("sets only", &[], &[a4, a6, b4, b6])?;
    lab.inside("nft", &["add chain inet palisade_attackers mine { type filter hook input priority 0; }"])?;
    lab.inside("nft", &["add rule inet palisade_attackers mine ip saddr @v4 drop"])?;
    lab.load(NFT, "rules=none&")?;
    lab.expect("the operator's own chain on the sets", &[b4], &[a4])?;
    Ok(())
}

/// Which iptables the README's lines run: the system's (`iptables`, nf_tables on Debian 12) or
/// `legacy` (x_tables, still the default elsewhere).
fn iptables_variant(line: &str, legacy: bool) -> String {
    if !legacy {
        return line.to_string();
    }
    line.replace("iptables-restore", "iptables-legacy-restore")
        .replace("ip6tables-restore", "ip6tables-legacy-restore")
        .replace("iptables ", "iptables-legacy ")
        .replace("ip6tables ", "ip6tables-legacy ")
}

#[test]
fn iptables_as_documented_drops_listed_sources_of_both_families_before_an_accept_and_reloads_in_place() -> anyhow::Result<()> {
    if !netns::ready("iptables_as_documented", &["curl", "iptables", "ip6tables"]) {
        return Ok(());
    }
    iptables_as_documented(false)
}

#[test]
fn iptables_legacy_as_documented_drops_listed_sources_of_both_families_and_reloads_in_place() -> anyhow::Result<()> {
    if !netns::ready("iptables_legacy_as_documented", &["curl", "iptables-legacy", "ip6tables-legacy"]) {
        return Ok(());
    }
    iptables_as_documented(true)
}

fn iptables_as_documented(legacy: bool) -> anyhow::Result<()> {
    let lab = Lab::start()?;
    let s = lab.sources.clone();
    let (a4, b4, a6, b6) = (s.v4[0], s.v4[1], s.v6[0], s.v6[1]);
    lab.set(&[a4, a6], &[])?;
    let tools = if legacy { ["iptables-legacy", "ip6tables-legacy"] } else { ["iptables", "ip6tables"] };
    let lines: Vec<String> = IPTABLES.iter().chain(&IP6TABLES).map(|l| iptables_variant(l, legacy)).collect();
    // The operator's own rules, which a load must neither remove nor let through a listed source.
    for tool in tools {
        lab.inside(tool, &["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT"])?;
    }

    // Each script names the README's jump line for its family.
    let body = lab.fetch("format=iptables")?;
    ensure!(commented_commands(&body) == [for_list(IPTABLES[1])], "{body}");
    let body = lab.fetch("format=iptables&family=v6")?;
    ensure!(commented_commands(&body) == [for_list(IP6TABLES[1])], "{body}");
    let body = lab.fetch("format=iptables&rules=none")?;
    ensure!(commented_commands(&body).is_empty(), "{body}");
    for _ in 0..2 {
        for line in &lines {
            lab.load(line, "")?;
        }
    }
    lab.expect("loaded twice", &[a4, a6], &[b4, b6])?;
    for tool in tools {
        let input = lab.inside(tool, &["-S", "INPUT"])?;
        ensure!(count(&input, "-j PALISADE-ATTACKERS") == 1, "{tool}: one jump:\n{input}");
        ensure!(count(&input, "--dport 9 -j ACCEPT") == 1, "{tool}: the operator's rule is kept:\n{input}");
        let chain = lab.inside(tool, &["-S", "PALISADE-ATTACKERS"])?;
        ensure!(count(&chain, "-j DROP") == 2, "{tool}: the listed address and the decoy range:\n{chain}");
    }

    lab.set(&[b4, b6], &[a4, a6])?;
    for line in &lines {
        lab.load(line, "")?;
    }
    lab.expect("newer list", &[b4, b6], &[a4, a6])?;
    for tool in tools {
        let input = lab.inside(tool, &["-S", "INPUT"])?;
        ensure!(count(&input, "-j PALISADE-ATTACKERS") == 1, "{tool}: still one jump:\n{input}");
        let chain = lab.inside(tool, &["-S", "PALISADE-ATTACKERS"])?;
        ensure!(count(&chain, "-j DROP") == 2, "{tool}: the newer members only:\n{chain}");
    }
    Ok(())
}

#[test]
fn ipset_as_documented_drops_listed_sources_of_both_families_and_takes_changes() -> anyhow::Result<()> {
    if !netns::ready("ipset_as_documented", &["curl", "iptables", "ip6tables", "ipset"]) {
        return Ok(());
    }
    let lab = Lab::start()?;
    let s = lab.sources.clone();
    let (a4, b4, a6, b6) = (s.v4[0], s.v4[1], s.v6[0], s.v6[1]);
    lab.set(&[a4, a6], &[])?;

    // The script names the README's rule lines.
    let body = lab.fetch("format=ipset")?;
    ensure!(commented_commands(&body) == [for_list(IPSET[1]), for_list(IPSET[2])], "{body}");
    let body = lab.fetch("format=ipset&rules=none")?;
    ensure!(commented_commands(&body).is_empty(), "{body}");

    // Sets only: loaded, referenced by nothing, nothing dropped.
    lab.load(IPSET[0], "rules=none&")?;
    lab.expect("sets only", &[], &[a4, a6, b4, b6])?;

    for _ in 0..2 {
        for line in IPSET {
            lab.load(line, "")?;
        }
    }
    lab.expect("loaded twice", &[a4, a6], &[b4, b6])?;
    let seq = lab.seq()?;
    for (tool, set) in [("iptables", "palisade-attackers-v4"), ("ip6tables", "palisade-attackers-v6")] {
        let input = lab.inside(tool, &["-S", "INPUT"])?;
        ensure!(count(&input, &format!("--match-set {set} src -j DROP")) == 1, "{tool}: one rule:\n{input}");
    }

    // The change form on top, then the newer list in full: a4/a6 delisted, b4/b6 listed.
    lab.set(&[b4, b6], &[a4, a6])?;
    lab.load(IPSET[0], &format!("since={seq}&"))?;
    lab.expect("change applied", &[b4, b6], &[a4, a6])?;
    for line in IPSET {
        lab.load(line, "")?;
    }
    lab.expect("newer list", &[b4, b6], &[a4, a6])?;
    let members = lab.inside("ipset", &["list", "palisade-attackers-v4"])?;
    ensure!(members.contains(&b4.to_string()) && !members.contains(&a4.to_string()), "{members}");
    for tool in ["iptables", "ip6tables"] {
        let input = lab.inside(tool, &["-S", "INPUT"])?;
        ensure!(count(&input, "--match-set") == 1, "{tool}: still one rule:\n{input}");
    }
    Ok(())
}
