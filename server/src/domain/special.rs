//! Special-purpose address ranges that are never a community-list subject: the IANA IPv4 and
//! IPv6 Special-Purpose Address Registries plus multicast and the reserved class E space.
//!
//! Source: <https://www.iana.org/assignments/iana-ipv4-special-registry/> and
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/> (both as of 2026-11), RFC 5771
//! (IPv4 multicast) and RFC 4291 (IPv6 multicast). Every registry entry is included, also the few
//! marked "globally reachable" (AS112, PCP/TURN anycast): they are infrastructure, not attackers.

use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;

/// (range, registry name) pairs.
const RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private use"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link local"),
    ("172.16.0.0/12", "private use"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112-v4"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private use"),
    ("192.175.48.0/24", "direct delegation AS112 service"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "limited broadcast"),
    ("::/128", "unspecified address"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped address"),
    ("64:ff9b::/96", "IPv4-IPv6 translation"),
    ("64:ff9b:1::/48", "IPv4-IPv6 translation"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy IPv6 prefix"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("2620:4f:8000::/48", "direct delegation AS112 service"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing SIDs"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local unicast"),
    ("ff00::/8", "multicast"),
];

static PARSED: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    RANGES
        .iter()
        .map(|(net, name)| {
            let net = net.parse::<IpNet>().unwrap_or_else(|e| panic!("built-in range {net} does not parse: {e}"));
            (net, *name)
        })
        .collect()
});

/// Every special-purpose range.
pub fn ranges() -> impl Iterator<Item = IpNet> {
    PARSED.iter().map(|(net, _)| *net)
}

/// The registry name of the special-purpose range holding `ip`, if any.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    PARSED.iter().find(|(net, _)| net.contains(&ip)).map(|(_, name)| *name)
}

/// The registry name of a special-purpose range that overlaps `net`, if any.
pub fn overlaps_special_purpose(net: IpNet) -> Option<&'static str> {
    PARSED.iter().find(|(special, _)| special.contains(&net.network()) || net.contains(&special.network())).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_range_parses() {
        assert_eq!(PARSED.len(), RANGES.len());
    }

    #[test]
    fn private_loopback_documentation_and_multicast_are_special() {
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "192.0.2.10",
            "203.0.113.77",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "2001:db8::1",
            "fd00::1",
            "ff02::1",
            "100.64.1.1",
        ] {
            assert!(special_purpose(ip.parse().unwrap()).is_some(), "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_not_special() {
        for ip in ["8.8.8.8", "1.1.1.1", "45.33.32.156", "2a00:1450:4001:82a::200e", "2606:4700::1111"] {
            assert_eq!(special_purpose(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn ranges_overlapping_special_space_are_detected() {
        assert!(overlaps_special_purpose("10.0.0.0/16".parse().unwrap()).is_some());
        assert!(overlaps_special_purpose("0.0.0.0/0".parse().unwrap()).is_some());
        assert!(overlaps_special_purpose("8.0.0.0/8".parse().unwrap()).is_none());
    }
}
