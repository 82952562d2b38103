//! Address helpers: canonical forms (IPv4-mapped IPv6 becomes IPv4) and the origin prefix a
//! reporting machine is clustered by (its /24 for IPv4, /48 for IPv6).

use std::net::IpAddr;

use ipnet::IpNet;

/// The canonical form of an address: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
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
}
