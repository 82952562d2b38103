//! The nftables backend: one table (family `inet`) owned by the agent, with interval sets
//! `blocklist_v4`/`blocklist_v6` for the pulled lists, timeout sets `local_v4`/`local_v6` for the
//! agent's own bans, and an input chain dropping traffic from all four. Every change is one
//! `nft -f` script, which nft applies as one transaction: a full sync declares the table, flushes
//! the list sets and adds every entry in large `add element` batches; a delta only adds and
//! deletes elements (and fails, to be retried in full, when the table is missing). Rendering is
//! pure; only [`Nftables::apply_full`], [`Nftables::apply_delta`] and [`Nftables::ban`] run nft.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::tool::{ApplyError, run_tool};

/// Elements per `add element` statement: large batches keep the script short and fast to parse.
const BATCH: usize = 8192;

/// The nftables backend.
#[derive(Debug, Clone)]
pub struct Nftables {
    table: String,
    program: Vec<String>,
}

impl Nftables {
    /// The backend for table `inet TABLE`, running nft as `program` (e.g. `["nft"]`).
    pub fn new(table: &str, program: Vec<String>) -> Nftables {
        Nftables { table: table.to_string(), program }
    }

    /// The table's declaration (idempotent: nft creates what is missing) and its rules, reset.
    pub fn render_setup(&self) -> String {
        let t = &self.table;
        let mut out = String::new();
        let _ = writeln!(out, "table inet {t} {{");
        let _ = writeln!(out, "\tset blocklist_v4 {{ type ipv4_addr; flags interval; }}");
        let _ = writeln!(out, "\tset blocklist_v6 {{ type ipv6_addr; flags interval; }}");
        let _ = writeln!(out, "\tset local_v4 {{ type ipv4_addr; flags timeout; }}");
        let _ = writeln!(out, "\tset local_v6 {{ type ipv6_addr; flags timeout; }}");
        let _ = writeln!(out, "\tchain input {{ type filter hook input priority filter - 10; policy accept; }}");
        let _ = writeln!(out, "}}");
        // Rules are not idempotent: flush and re-add them in the same transaction.
        let _ = writeln!(out, "flush chain inet {t} input");
        for (family, set) in [("ip", "local_v4"), ("ip6", "local_v6"), ("ip", "blocklist_v4"), ("ip6", "blocklist_v6")] {
            let _ = writeln!(out, "add rule inet {t} input {family} saddr @{set} counter drop");
        }
        out
    }

    /// The script replacing the list sets with `entries`.
    pub fn render_full(&self, entries: &BTreeSet<IpNet>) -> String {
        let mut out = self.render_setup();
        out.reserve(entries.len() * 20);
        let _ = writeln!(out, "flush set inet {} blocklist_v4", self.table);
        let _ = writeln!(out, "flush set inet {} blocklist_v6", self.table);
        self.render_elements(&mut out, "add", entries.iter());
        out
    }

    /// The script adding `add` and deleting `remove` (without declaring anything, so a missing
    /// table makes it fail instead of leaving a half-filled set).
    pub fn render_delta(&self, add: &[IpNet], remove: &[IpNet]) -> String {
        let mut out = String::with_capacity((add.len() + remove.len()) * 20);
        self.render_elements(&mut out, "delete", remove.iter());
        self.render_elements(&mut out, "add", add.iter());
        out
    }

    /// The script banning `ip` for `duration` in the local sets.
    pub fn render_ban(&self, ip: IpAddr, duration: Duration) -> String {
        let mut out = self.render_setup();
        let set = if ip.is_ipv4() { "local_v4" } else { "local_v6" };
        let _ = writeln!(out, "add element inet {} {set} {{ {ip} timeout {}s }}", self.table, duration.as_secs().max(1));
        out
    }

    fn render_elements<'a>(&self, out: &mut String, verb: &str, entries: impl Iterator<Item = &'a IpNet>) {
        let (v4, v6): (Vec<&IpNet>, Vec<&IpNet>) = entries.partition(|n| matches!(n, IpNet::V4(_)));
        for (set, members) in [("blocklist_v4", v4), ("blocklist_v6", v6)] {
            for chunk in members.chunks(BATCH) {
                let _ = write!(out, "{verb} element inet {} {set} {{ ", self.table);
                for (i, net) in chunk.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_element(out, net);
                }
                out.push_str(" }\n");
            }
        }
    }

    /// Replaces the list sets with `entries` in one transaction.
    pub async fn apply_full(&self, entries: &BTreeSet<IpNet>) -> Result<(), ApplyError> {
        self.run(self.render_full(entries)).await
    }

    /// Adds and deletes elements in one transaction.
    pub async fn apply_delta(&self, add: &[IpNet], remove: &[IpNet]) -> Result<(), ApplyError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        self.run(self.render_delta(add, remove)).await
    }

    /// Bans one address for `duration`.
    pub async fn ban(&self, ip: IpAddr, duration: Duration) -> Result<(), ApplyError> {
        self.run(self.render_ban(ip, duration)).await
    }

    async fn run(&self, script: String) -> Result<(), ApplyError> {
        run_tool("nft", &self.program, &["-f", "-"], Some(script.into_bytes())).await
    }
}

/// A single address is written bare (`1.2.3.4`), a range as a prefix.
fn write_element(out: &mut String, net: &IpNet) {
    if net.prefix_len() == net.max_prefix_len() {
        let _ = write!(out, "{}", net.addr());
    } else {
        let _ = write!(out, "{net}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(items: &[&str]) -> BTreeSet<IpNet> {
        items.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn a_full_script_declares_flushes_and_fills_each_family() {
        let nft = Nftables::new("palisade", vec!["nft".into()]);
        let script = nft.render_full(&nets(&["45.33.32.156/32", "45.33.33.0/24", "2600:3c00::1/128"]));
        assert!(script.starts_with("table inet palisade {\n"), "{script}");
        assert!(script.contains("flush chain inet palisade input\n"));
        assert!(script.contains("add rule inet palisade input ip saddr @blocklist_v4 counter drop\n"));
        let flush = script.find("flush set inet palisade blocklist_v4").unwrap_or(usize::MAX);
        let add = script.find("add element inet palisade blocklist_v4 { 45.33.32.156, 45.33.33.0/24 }").unwrap_or(0);
        assert!(flush < add, "the flush comes before the adds in the same script:\n{script}");
        assert!(script.contains("add element inet palisade blocklist_v6 { 2600:3c00::1 }"));
    }

    #[test]
    fn large_sets_are_cut_into_batches() {
        let nft = Nftables::new("t", vec!["nft".into()]);
        let entries: BTreeSet<IpNet> =
            (0..(BATCH as u32 + 10)).map(|i| IpNet::from(IpAddr::from((0x2d00_0000u32 + i).to_be_bytes()))).collect();
        let script = nft.render_full(&entries);
        assert_eq!(script.matches("add element inet t blocklist_v4").count(), 2);
        assert_eq!(script.matches(", ").count() + 2, entries.len());
    }

    #[test]
    fn a_delta_deletes_then_adds_without_redeclaring() {
        let nft = Nftables::new("palisade", vec!["nft".into()]);
        let add = Vec::from_iter(nets(&["45.33.32.1/32"]));
        let remove = Vec::from_iter(nets(&["45.33.32.2/32"]));
        assert_eq!(
            nft.render_delta(&add, &remove),
            "delete element inet palisade blocklist_v4 { 45.33.32.2 }\nadd element inet palisade blocklist_v4 { 45.33.32.1 }\n"
        );
    }

    #[test]
    fn a_ban_goes_to_the_local_set_with_its_timeout() {
        let nft = Nftables::new("palisade", vec!["nft".into()]);
        let script = nft.render_ban(IpAddr::from([45, 33, 32, 156]), Duration::from_secs(3600));
        assert!(script.ends_with("add element inet palisade local_v4 { 45.33.32.156 timeout 3600s }\n"), "{script}");
    }
}
