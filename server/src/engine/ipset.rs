//! `IpSet`: a set of IPv4 and IPv6 ranges with fast membership tests (sorted, merged intervals
//! and binary search). Used for never-block ranges, canaries and allowlists, where the check
//! runs once per signal and must cost nanoseconds, not a scan.

use std::net::IpAddr;

use ipnet::IpNet;

/// A set of address ranges.
#[derive(Debug, Clone, Default)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// Builds a set from ranges (overlapping or adjacent ranges are merged).
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net.trunc() {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IpSet { v4: merge(v4), v6: merge(v6) }
    }

    /// Whether the set holds no range.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => find(&self.v4, u32::from(v4), u32::from(v4)),
            IpAddr::V6(v6) => find(&self.v6, u128::from(v6), u128::from(v6)),
        }
    }

    /// Whether every address of `net` is in the set.
    pub fn covers(&self, net: IpNet) -> bool {
        match net.trunc() {
            IpNet::V4(n) => covered(&self.v4, u32::from(n.network()), u32::from(n.broadcast())),
            IpNet::V6(n) => covered(&self.v6, u128::from(n.network()), u128::from(n.broadcast())),
        }
    }

    /// Whether any address of `net` is in the set.
    pub fn overlaps(&self, net: IpNet) -> bool {
        match net.trunc() {
            IpNet::V4(n) => find(&self.v4, u32::from(n.network()), u32::from(n.broadcast())),
            IpNet::V6(n) => find(&self.v6, u128::from(n.network()), u128::from(n.broadcast())),
        }
    }
}

fn merge<T: Ord + Copy + num_like::One>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_next() => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Whether any interval intersects `[start, end]`.
fn find<T: Ord + Copy>(ranges: &[(T, T)], start: T, end: T) -> bool {
    // First interval whose end is >= start; it intersects iff it begins <= end.
    let i = ranges.partition_point(|&(_, e)| e < start);
    ranges.get(i).is_some_and(|&(s, _)| s <= end)
}

/// Whether one interval holds all of `[start, end]` (intervals are merged, so one must).
fn covered<T: Ord + Copy>(ranges: &[(T, T)], start: T, end: T) -> bool {
    let i = ranges.partition_point(|&(_, e)| e < start);
    ranges.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
}

mod num_like {
    /// `x + 1` without overflow, for merging adjacent intervals.
    pub trait One {
        fn saturating_next(self) -> Self;
    }
    impl One for u32 {
        fn saturating_next(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl One for u128 {
        fn saturating_next(self) -> Self {
            self.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(nets: &[&str]) -> IpSet {
        IpSet::new(nets.iter().map(|n| n.parse().unwrap()))
    }

    #[test]
    fn covers_needs_the_whole_range() {
        let s = set(&["192.0.2.0/24", "192.0.3.0/24", "10.0.0.0/25"]);
        assert!(s.covers("192.0.2.0/23".parse().unwrap()), "merged neighbours cover their union");
        assert!(s.covers("192.0.3.7/32".parse().unwrap()));
        assert!(!s.covers("10.0.0.0/24".parse().unwrap()));
        assert!(!s.covers("192.0.0.0/22".parse().unwrap()));
        assert!(!IpSet::default().covers("10.0.0.0/32".parse().unwrap()));
    }

    #[test]
    fn membership_and_overlap() {
        let s = set(&["10.0.0.0/8", "192.0.2.0/24", "192.0.3.0/24", "2001:db8::/32", "8.8.8.8/32"]);
        assert_eq!(s.v4.len(), 3, "adjacent /24s merge");
        for ip in ["10.1.2.3", "192.0.3.255", "8.8.8.8", "2001:db8::1"] {
            assert!(s.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.9", "11.0.0.0", "2001:db9::1", "9.255.255.255"] {
            assert!(!s.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(s.overlaps("8.0.0.0/8".parse().unwrap()));
        assert!(!s.overlaps("9.0.0.0/8".parse().unwrap()));
        assert!(set(&[]).is_empty());
    }
}
