//! The ipset backend: `PREFIX-v4`/`PREFIX-v6` (`hash:net`) hold the pulled lists,
//! `PREFIX-local-v4`/`PREFIX-local-v6` (`hash:ip` with timeouts) the agent's own bans. A full
//! sync fills a fresh `-new` set and swaps it in, all in one `ipset restore` run, so matching
//! rules never see a half-filled set; a delta adds and deletes with `-exist`. Referencing the
//! sets from iptables (`-m set --match-set PREFIX-v4 src -j DROP`) is the operator's part.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::tool::{ApplyError, run_tool};

/// The ipset backend.
#[derive(Debug, Clone)]
pub struct Ipset {
    prefix: String,
    program: Vec<String>,
    maxelem: usize,
}

impl Ipset {
    /// The backend for sets named `PREFIX-…`, sized for `max_entries`.
    pub fn new(prefix: &str, program: Vec<String>, max_entries: usize) -> Ipset {
        Ipset { prefix: prefix.to_string(), program, maxelem: max_entries.max(65536) }
    }

    fn create_lines(&self, out: &mut String) {
        let p = &self.prefix;
        let m = self.maxelem;
        let _ = writeln!(out, "create {p}-v4 hash:net family inet maxelem {m} -exist");
        let _ = writeln!(out, "create {p}-v6 hash:net family inet6 maxelem {m} -exist");
        let _ = writeln!(out, "create {p}-local-v4 hash:ip family inet timeout 0 -exist");
        let _ = writeln!(out, "create {p}-local-v6 hash:ip family inet6 timeout 0 -exist");
    }

    /// The `ipset restore` input replacing both list sets with `entries`.
    pub fn render_full(&self, entries: &BTreeSet<IpNet>) -> String {
        let p = &self.prefix;
        let m = self.maxelem;
        let mut out = String::with_capacity(entries.len() * 30 + 512);
        self.create_lines(&mut out);
        for (family, tag) in [("inet", "v4"), ("inet6", "v6")] {
            let _ = writeln!(out, "create {p}-{tag}-new hash:net family {family} maxelem {m} -exist");
            let _ = writeln!(out, "flush {p}-{tag}-new");
            for net in entries.iter().filter(|n| matches!((n, tag), (IpNet::V4(_), "v4") | (IpNet::V6(_), "v6"))) {
                let _ = writeln!(out, "add {p}-{tag}-new {net}");
            }
            let _ = writeln!(out, "swap {p}-{tag}-new {p}-{tag}");
            let _ = writeln!(out, "destroy {p}-{tag}-new");
        }
        out
    }

    /// The `ipset restore` input for a delta. It creates nothing, so missing sets make it fail
    /// (and the caller replaces everything).
    pub fn render_delta(&self, add: &[IpNet], remove: &[IpNet]) -> String {
        let mut out = String::new();
        for net in remove {
            let _ = writeln!(out, "del {}-{} {net} -exist", self.prefix, tag(net));
        }
        for net in add {
            let _ = writeln!(out, "add {}-{} {net} -exist", self.prefix, tag(net));
        }
        out
    }

    /// The `ipset restore` input banning `ip` for `duration`.
    pub fn render_ban(&self, ip: IpAddr, duration: Duration) -> String {
        let mut out = String::new();
        self.create_lines(&mut out);
        let tag = if ip.is_ipv4() { "v4" } else { "v6" };
        let _ = writeln!(out, "add {}-local-{tag} {ip} timeout {} -exist", self.prefix, duration.as_secs().max(1));
        out
    }

    /// Replaces the list sets.
    pub async fn apply_full(&self, entries: &BTreeSet<IpNet>) -> Result<(), ApplyError> {
        self.run(self.render_full(entries)).await
    }

    /// Applies a delta.
    pub async fn apply_delta(&self, add: &[IpNet], remove: &[IpNet]) -> Result<(), ApplyError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        self.run(self.render_delta(add, remove)).await
    }

    /// Bans one address.
    pub async fn ban(&self, ip: IpAddr, duration: Duration) -> Result<(), ApplyError> {
        self.run(self.render_ban(ip, duration)).await
    }

    async fn run(&self, input: String) -> Result<(), ApplyError> {
        run_tool("ipset", &self.program, &["restore"], Some(input.into_bytes())).await
    }
}

fn tag(net: &IpNet) -> &'static str {
    if matches!(net, IpNet::V4(_)) { "v4" } else { "v6" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_sync_fills_a_new_set_and_swaps_it_in() {
        let ipset = Ipset::new("pal", vec!["ipset".into()], 10);
        let entries: BTreeSet<IpNet> = ["45.33.32.156/32", "2600:3c00::/32"].iter().filter_map(|s| s.parse().ok()).collect();
        let text = ipset.render_full(&entries);
        let add = text.find("add pal-v4-new 45.33.32.156/32").unwrap_or(usize::MAX);
        let swap = text.find("swap pal-v4-new pal-v4").unwrap_or(0);
        assert!(add < swap, "{text}");
        assert!(text.contains("add pal-v6-new 2600:3c00::/32\n"));
        assert!(text.contains("maxelem 65536"));
    }

    #[test]
    fn a_delta_creates_nothing() {
        let ipset = Ipset::new("pal", vec!["ipset".into()], 10);
        let text = ipset.render_delta(&["45.33.32.1/32".parse().unwrap_or(IpNet::V4(Default::default()))], &[]);
        assert_eq!(text, "add pal-v4 45.33.32.1/32 -exist\n");
    }
}
