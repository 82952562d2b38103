//! Every address and network parse and display: canonical forms (IPv4-mapped IPv6 becomes
//! IPv4), the stored text of a list or signal value (a bare address for a host prefix, CIDR
//! otherwise), what people may type (an address, a bracketed IPv6 address, a CIDR range), and the
//! origin prefix a reporting machine is clustered by (its /24 for IPv4, /48 for IPv6).

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The canonical form of an address: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The canonical form of a network: an IPv4-mapped IPv6 range (`::ffff:a.b.c.d/N`, N ≥ 96)
/// becomes the IPv4 range it maps (`a.b.c.d/(N - 96)`), as [`canonical_ip`] does for an address;
/// host bits are cleared.
pub fn canonical_net(net: IpNet) -> IpNet {
    let net = match (net.addr(), canonical_ip(net.addr())) {
        (IpAddr::V6(_), IpAddr::V4(v4)) if net.prefix_len() >= 96 => {
            IpNet::new(IpAddr::V4(v4), net.prefix_len() - 96).unwrap_or(net)
        }
        _ => net,
    };
    net.trunc()
}

/// The network a machine is clustered by: /24 for IPv4, /48 for IPv6.
pub fn origin_prefix(ip: IpAddr) -> IpNet {
    let ip = canonical_ip(ip);
    let len = if ip.is_ipv4() { 24 } else { 48 };
    IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
}

/// Parses an address, accepting the bracketed IPv6 form some tools write (`[2001:db8::1]`).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let text = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    text.parse::<IpAddr>().ok().map(canonical_ip)
}

/// Parses an address as a lookup accepts it; the error says what was wrong.
pub fn parse_address(text: &str) -> Result<IpAddr, String> {
    parse_ip(text).ok_or_else(|| format!("{text:?} is not an IP address"))
}

/// Parses an address or CIDR given by a person into its canonical network (an address becomes
/// its host prefix, a range loses its host bits); the error says what was wrong.
pub fn parse_network(value: &str) -> Result<IpNet, String> {
    parse_ip(value)
        .map(IpNet::from)
        .or_else(|| value.trim().parse::<IpNet>().ok().map(canonical_net))
        .ok_or_else(|| format!("{value:?} is not an IP address or CIDR range"))
}

/// Parses a stored value: CIDR, or a bare address.
pub fn parse_target(value: &str) -> Option<IpNet> {
    IpNet::from_str(value).ok().or_else(|| value.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether a target is one address (a host prefix).
pub fn is_single_address(target: IpNet) -> bool {
    target.prefix_len() == target.max_prefix_len()
}

/// A bare address for single-address targets, CIDR otherwise.
pub fn display_target(target: IpNet) -> String {
    if is_single_address(target) { target.addr().to_string() } else { target.to_string() }
}

/// The network a list value names: an address or a CIDR in canonical form (IPv4-mapped IPv6 as
/// IPv4, host bits cleared). Its stored text is [`display_target`] of it.
pub fn list_target(value: &str) -> Option<IpNet> {
    parse_target(value.trim()).map(canonical_net)
}

/// The stored form of a list value and its scope: a bare address (`ip`) for a host prefix, else
/// the network in CIDR form with its host bits cleared (`range`).
pub fn canonical_value(value: &str) -> Option<(String, &'static str)> {
    let net = list_target(value)?;
    Some((display_target(net), if is_single_address(net) { "ip" } else { "range" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_ipv6_becomes_ipv4() {
        assert_eq!(parse_ip("::ffff:45.33.32.156"), Some("45.33.32.156".parse().unwrap()));
        assert_eq!(parse_ip("[2a00::1]"), Some("2a00::1".parse().unwrap()));
        assert_eq!(parse_ip("not-an-ip"), None);
        assert_eq!(parse_ip("1.2.3.4/32"), None);
    }

    #[test]
    fn origin_prefix_is_slash_24_or_slash_48() {
        assert_eq!(origin_prefix("45.33.32.156".parse().unwrap()).to_string(), "45.33.32.0/24");
        assert_eq!(origin_prefix("2a00:1450:4001:82a::200e".parse().unwrap()).to_string(), "2a00:1450:4001::/48");
        assert_eq!(origin_prefix("::ffff:10.1.2.3".parse().unwrap()).to_string(), "10.1.2.0/24");
    }

    #[test]
    fn values_are_stored_bare_for_one_address_and_as_cidr_otherwise() {
        assert_eq!(canonical_value(" 45.33.32.156 "), Some(("45.33.32.156".into(), "ip")));
        assert_eq!(canonical_value("81.2.69.7/16"), Some(("81.2.0.0/16".into(), "range")));
        assert_eq!(canonical_value("2001:db8::1/128"), Some(("2001:db8::1".into(), "ip")));
        assert_eq!(canonical_value("not-an-ip"), None);
        assert_eq!(parse_network("::ffff:10.1.2.3"), Ok("10.1.2.3/32".parse().unwrap()));
        assert_eq!(parse_network("10.1.2.3/8"), Ok("10.0.0.0/8".parse().unwrap()));
        assert_eq!(parse_network("x"), Err("\"x\" is not an IP address or CIDR range".into()));
        assert_eq!(parse_address("1.2.3.4/32"), Err("\"1.2.3.4/32\" is not an IP address".into()));
    }

    /// Found by fuzzing (`fuzz/`, target `net_parse`): `::ffff:203.0.55.9/128` was kept as an IPv6
    /// network while `::ffff:203.0.55.9` became IPv4, so the same host typed two ways named two
    /// networks, and a list entry written as a mapped range never matched the IPv4 address.
    #[test]
    fn ipv4_mapped_ranges_become_ipv4_like_mapped_addresses() {
        let host: IpNet = "203.0.55.9/32".parse().unwrap();
        assert_eq!(parse_network("::ffff:203.0.55.9/128"), Ok(host));
        assert_eq!(parse_network("::ffff:203.0.55.9"), Ok(host));
        assert_eq!(parse_network("::ffff:203.0.55.9/120"), Ok("203.0.55.0/24".parse().unwrap()));
        assert_eq!(list_target("::ffff:203.0.55.9/128"), Some(host));
        assert_eq!(list_target("::ffff:203.0.55.9"), Some(host));
        assert_eq!(canonical_value("::ffff:203.0.55.9/120"), Some(("203.0.55.0/24".into(), "range")));
        // Broader than the mapped block, it is an IPv6 range and stays one.
        assert_eq!(parse_network("::ffff:0:0/95"), Ok("::fffe:0:0/95".parse().unwrap()));
    }
}
