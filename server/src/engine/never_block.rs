//! The addresses that may never be listed: special-purpose ranges, the server's own addresses,
//! the operator's allowlists and canaries. The consensus worker builds lists with it and serving
//! re-checks every entry against it, so a range allowed since the last step is never served.
//! Pure: the caller reads the operator's values and hands them in.

use ipnet::IpNet;

use super::ipset::IpSet;
use crate::domain::net::parse_target;
use crate::domain::special;

/// The addresses that may never be listed, as the worker builds lists and as serving re-checks them.
#[derive(Debug, Clone, Default)]
pub struct NeverBlock {
    /// Special-purpose ranges, the server's own addresses, and the operator's allowlists.
    pub ranges: IpSet,
    /// The operator's canaries.
    pub canaries: IpSet,
}

impl NeverBlock {
    /// The fixed ranges with the server's own addresses and the operator's allowlist and canary
    /// values (stored text; a value that does not parse is skipped).
    pub fn new<'a>(
        own_addresses: &[IpNet],
        allowlist: impl IntoIterator<Item = &'a str>,
        canaries: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let canaries: Vec<IpNet> = canaries.into_iter().filter_map(parse_target).collect();
        let allowlist: Vec<IpNet> = allowlist.into_iter().filter_map(parse_target).collect();
        let ranges = special::ranges().chain(own_addresses.iter().copied()).chain(allowlist);
        NeverBlock { ranges: IpSet::new(ranges), canaries: IpSet::new(canaries) }
    }

    /// Whether a stored list value may be served.
    pub fn allows(&self, value: &str) -> bool {
        parse_target(value).is_some_and(|net| self.allows_net(net))
    }

    /// Whether a parsed list value may be served.
    pub fn allows_net(&self, net: IpNet) -> bool {
        !self.ranges.overlaps(net) && !self.canaries.overlaps(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_canaries_and_special_ranges_are_never_served() {
        let own: IpNet = "198.51.100.10/32".parse().unwrap();
        let never = NeverBlock::new(&[own], ["66.249.64.0/19", "junk"], ["45.33.32.156"]);
        assert!(!never.allows("66.249.66.1"), "allowlisted");
        assert!(!never.allows("45.33.32.156"), "canary");
        assert!(!never.allows("45.33.32.0/24"), "a range holding a canary");
        assert!(!never.allows("198.51.100.10"), "own address");
        assert!(!never.allows("10.0.0.1"), "special purpose");
        assert!(never.allows("81.2.69.1"));
        assert!(!never.allows("not-a-value"));
    }
}
