//! What the agent must never ban, and the ceiling on what it applies. The [`Allowlist`] holds
//! loopback and the other private and special-purpose ranges, the host's own addresses, the
//! server's address and the operator's configured ranges; an entry that overlaps any of them is
//! left out (a list entry `10.0.0.0/7` would cover a protected range, so it goes too). The pure
//! parts ([`Allowlist`], [`filter`], [`parse_ip_json`]) do no I/O; [`host_addresses`] and
//! [`server_addresses`] read the system.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// Ranges that are never anyone's attacker on the internet: loopback, private, link-local,
/// CGNAT, documentation, benchmarking, multicast, reserved (IANA special-purpose registries).
pub const SPECIAL_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Networks that must never be banned.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    nets: Vec<(IpNet, String)>,
}

impl Allowlist {
    /// The special-purpose ranges only.
    pub fn special() -> Allowlist {
        let mut allowlist = Allowlist::default();
        for range in SPECIAL_RANGES {
            if let Ok(net) = range.parse() {
                allowlist.add(net, "special-purpose range");
            }
        }
        allowlist
    }

    /// Adds a protected network, with why it is protected.
    pub fn add(&mut self, net: IpNet, why: &str) {
        self.nets.push((net.trunc(), why.to_string()));
    }

    /// Adds one protected address.
    pub fn add_ip(&mut self, ip: IpAddr, why: &str) {
        self.add(IpNet::from(canonical_ip(ip)), why);
    }

    /// Why `net` may not be banned, when it overlaps a protected network.
    pub fn protects(&self, net: &IpNet) -> Option<&str> {
        let net = canonical_net(*net);
        self.nets.iter().find(|(allowed, _)| overlaps(allowed, &net)).map(|(_, why)| why.as_str())
    }

    /// Why `ip` may not be banned, if so.
    pub fn protects_ip(&self, ip: IpAddr) -> Option<&str> {
        self.protects(&IpNet::from(canonical_ip(ip)))
    }

    /// How many protected networks there are.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// Whether nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// An IPv4-mapped IPv6 address is its IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() == 128 => IpNet::from(canonical_ip(IpAddr::V6(v6.addr()))),
        other => other.trunc(),
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The entries to apply, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filtered {
    /// What may be applied.
    pub kept: BTreeSet<IpNet>,
    /// Entries left out because they overlap a protected network.
    pub protected: usize,
    /// Entries left out because the ceiling was reached.
    pub over_ceiling: usize,
}

/// Keeps the entries that do not overlap `allowlist`, at most `ceiling` of them (the first in
/// order; the rest are counted). Entries covered by a wider kept entry are dropped as redundant,
/// so an interval set never sees overlapping elements.
pub fn filter(entries: &BTreeSet<IpNet>, allowlist: &Allowlist, ceiling: usize) -> Filtered {
    let mut out = Filtered::default();
    // Widest first, so a covering range is seen before what it covers.
    let mut ordered: Vec<IpNet> = entries.iter().map(|n| n.trunc()).collect();
    ordered.sort_by_key(|n| (n.prefix_len(), *n));
    // Kept ranges and the prefix lengths they use: a covering range is found by truncating the
    // entry to each of those lengths, not by comparing it with every range.
    let mut wide = std::collections::HashSet::new();
    let mut lengths = BTreeSet::new();
    for net in ordered {
        if allowlist.protects(&net).is_some() {
            out.protected += 1;
            continue;
        }
        let covered = lengths
            .iter()
            .take_while(|len| **len < net.prefix_len())
            .any(|len| IpNet::new(net.addr(), *len).map(|n| wide.contains(&n.trunc())).unwrap_or(false));
        if covered {
            continue;
        }
        if out.kept.len() == ceiling {
            out.over_ceiling += 1;
            continue;
        }
        if net.prefix_len() < net.max_prefix_len() {
            wide.insert(net);
            lengths.insert(net.prefix_len());
        }
        out.kept.insert(net);
    }
    out
}

/// The addresses in `ip -j addr` output.
pub fn parse_ip_json(text: &str) -> Vec<IpAddr> {
    let Ok(interfaces) = serde_json::from_str::<Vec<serde_json::Value>>(text) else { return Vec::new() };
    interfaces
        .iter()
        .flat_map(|i| i["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// This host's addresses, from `ip -j addr` (empty, with the reason, when it cannot be run).
pub async fn host_addresses() -> Result<Vec<IpAddr>, String> {
    let output = tokio::process::Command::new("ip")
        .args(["-j", "addr"])
        .output()
        .await
        .map_err(|e| format!("cannot run `ip -j addr` to learn this host's addresses: {e}"))?;
    if !output.status.success() {
        return Err(format!("`ip -j addr` failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(parse_ip_json(&String::from_utf8_lossy(&output.stdout)))
}

/// The addresses the server's host name resolves to.
pub async fn server_addresses(server_url: &str) -> Vec<IpAddr> {
    let Ok(url) = reqwest::Url::parse(server_url) else { return Vec::new() };
    let Some(host) = url.host_str() else { return Vec::new() };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    let port = url.port_or_known_default().unwrap_or(443);
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(items: &[&str]) -> BTreeSet<IpNet> {
        items.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn special_ranges_and_configured_ones_are_never_kept() {
        let mut allowlist = Allowlist::special();
        allowlist.add_ip("45.33.32.1".parse().unwrap_or(IpAddr::from([0; 4])), "this host");
        let entries = nets(&["127.0.0.1/32", "10.1.2.3/32", "::1/128", "fe80::1/128", "45.33.32.1/32", "45.33.32.156/32"]);
        let out = filter(&entries, &allowlist, 100);
        assert_eq!(out.kept, nets(&["45.33.32.156/32"]));
        assert_eq!(out.protected, 5);
    }

    #[test]
    fn a_range_covering_a_protected_address_is_left_out() {
        let mut allowlist = Allowlist::default();
        allowlist.add("45.33.32.7/32".parse().unwrap_or(IpNet::from(IpAddr::from([0; 4]))), "server");
        let out = filter(&nets(&["45.33.32.0/24", "0.0.0.0/0", "45.33.33.0/24"]), &allowlist, 100);
        assert_eq!(out.kept, nets(&["45.33.33.0/24"]));
        assert_eq!(out.protected, 2);
    }

    #[test]
    fn mapped_ipv6_addresses_are_protected_like_their_ipv4_form() {
        let allowlist = Allowlist::special();
        assert!(allowlist.protects_ip("::ffff:127.0.0.1".parse().unwrap_or(IpAddr::from([1; 4]))).is_some());
        assert!(allowlist.protects_ip("45.33.32.156".parse().unwrap_or(IpAddr::from([10, 0, 0, 1]))).is_none());
    }

    #[test]
    fn the_ceiling_caps_what_is_kept_and_counts_the_rest() {
        let out = filter(&nets(&["45.33.32.1/32", "45.33.32.2/32", "45.33.32.3/32"]), &Allowlist::default(), 2);
        assert_eq!((out.kept.len(), out.over_ceiling), (2, 1));
    }

    #[test]
    fn entries_inside_a_kept_range_are_redundant() {
        let out =
            filter(&nets(&["45.33.32.0/24", "45.33.32.9/32", "2600:3c00::/32", "2600:3c00::1/128"]), &Allowlist::default(), 10);
        assert_eq!(out.kept, nets(&["45.33.32.0/24", "2600:3c00::/32"]));
    }

    #[test]
    fn ip_json_addresses_are_read() {
        let text = r#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1"},{"family":"inet6","local":"::1"}]},
                       {"ifname":"eth0","addr_info":[{"family":"inet","local":"45.33.32.1","prefixlen":24}]}]"#;
        let found = parse_ip_json(text);
        assert_eq!(found.len(), 3);
        assert!(found.contains(&IpAddr::from([45, 33, 32, 1])));
        assert!(parse_ip_json("garbage").is_empty());
    }
}
