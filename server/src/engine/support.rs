//! Support S(ip) and diversity: how much independent, trusted evidence there is that an address
//! attacks. Reports are clustered so that a thousand fake machines count as one: the max within
//! an account, the max within an origin prefix (/24 or /48), then a capped geometric sum within
//! an AS (`min(1, p1 + p2/2 + p3/4 + …)`), summed across ASes.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The independent unit a machine belongs to: its account, or itself when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClusterId {
    /// An account.
    Account(i64),
    /// A machine without an account.
    Machine(i64),
}

impl ClusterId {
    /// The cluster of a machine.
    pub fn of(machine: i64, account: Option<i64>) -> Self {
        account.map(ClusterId::Account).unwrap_or(ClusterId::Machine(machine))
    }
}

/// Where a report came from at AS granularity: the AS, or a coarser prefix standing in for it
/// when no AS database is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OriginAs {
    /// An autonomous system number.
    Asn(u32),
    /// A stand-in prefix (IPv4 /16, IPv6 /32 by default).
    Prefix(IpNet),
}

/// One weighted report.
#[derive(Debug, Clone, Copy)]
pub struct Contribution {
    /// Independence unit.
    pub cluster: ClusterId,
    /// Reporter's /24 or /48.
    pub prefix: IpNet,
    /// Reporter's AS.
    pub origin_as: OriginAs,
    /// Trust × report factor.
    pub weight: f64,
    /// A sensor, or a long-standing machine in good standing.
    pub established: bool,
    /// How far a machine in good standing is towards established: its age over the established
    /// age, at most 1 (1 for a sensor or an established machine, 0 for one not in good standing).
    pub seasoning: f64,
}

/// Aggregated support.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Support {
    /// S(ip).
    pub total: f64,
    /// ASes contributing.
    pub ases: usize,
    /// Accounts (clusters) contributing.
    pub accounts: usize,
    /// ASes holding at least one established contributor.
    pub anchor_ases: usize,
    /// The ASes' seasoning added up (each AS counts its most seasoned contributor): the anchor
    /// weight, at least `anchor_ases`.
    pub anchor_weight: f64,
}

/// Aggregates contributions: account max → prefix max → capped AS sum → sum.
pub fn aggregate(contributions: impl IntoIterator<Item = Contribution>) -> Support {
    let mut items: Vec<Contribution> = contributions.into_iter().collect();
    if items.is_empty() {
        return Support::default();
    }
    // Account max: each cluster keeps its best report (and where it came from).
    items.sort_by(|a, b| a.cluster.cmp(&b.cluster).then(b.weight.total_cmp(&a.weight)));
    let mut anchors: Vec<OriginAs> = items.iter().filter(|c| c.established).map(|c| c.origin_as).collect();
    anchors.sort();
    anchors.dedup();
    let mut seasoned: Vec<(OriginAs, f64)> =
        items.iter().filter(|c| c.seasoning > 0.0).map(|c| (c.origin_as, c.seasoning.min(1.0))).collect();
    seasoned.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    seasoned.dedup_by_key(|(origin_as, _)| *origin_as);
    let anchor_weight = seasoned.iter().map(|(_, seasoning)| seasoning).sum();
    items.dedup_by_key(|c| c.cluster);
    let accounts = items.len();
    // Prefix max.
    items.sort_by(|a, b| a.origin_as.cmp(&b.origin_as).then(a.prefix.cmp(&b.prefix)).then(b.weight.total_cmp(&a.weight)));
    items.dedup_by_key(|c| (c.origin_as, c.prefix));
    // Capped geometric sum per AS, summed.
    let mut total = 0.0;
    let mut ases = 0;
    let mut start = 0;
    while start < items.len() {
        let asn = items[start].origin_as;
        let end = start + items[start..].iter().take_while(|c| c.origin_as == asn).count();
        let mut weights: Vec<f64> = items[start..end].iter().map(|c| c.weight).collect();
        weights.sort_by(|a, b| b.total_cmp(a));
        let sum: f64 = weights.iter().enumerate().map(|(i, w)| w * 0.5f64.powi(i as i32)).sum();
        total += sum.min(1.0);
        ases += 1;
        start = end;
    }
    Support { total, ases, accounts, anchor_ases: anchors.len(), anchor_weight }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(cluster: i64, prefix: &str, asn: u32, weight: f64) -> Contribution {
        Contribution {
            cluster: ClusterId::Account(cluster),
            prefix: prefix.parse().unwrap(),
            origin_as: OriginAs::Asn(asn),
            weight,
            established: false,
            seasoning: 0.0,
        }
    }

    #[test]
    fn a_thousand_machines_of_one_account_count_as_one() {
        let many = (0..1000).map(|i| c(1, &format!("10.{}.{}.0/24", i / 256, i % 256), 64500 + i as u32, 0.5));
        let s = aggregate(many);
        assert_eq!((s.accounts, s.ases), (1, 1));
        assert!((s.total - 0.5).abs() < 1e-9);
    }

    #[test]
    fn one_prefix_counts_once_and_one_as_is_capped() {
        let same_prefix = (0..50).map(|i| c(i, "45.33.32.0/24", 1, 0.9));
        assert!((aggregate(same_prefix).total - 0.9).abs() < 1e-9);
        let same_as = (0..50).map(|i| c(i, &format!("45.33.{i}.0/24"), 1, 0.9));
        let s = aggregate(same_as);
        assert!((s.total - 1.0).abs() < 1e-9, "capped at 1 per AS: {}", s.total);
        assert_eq!((s.accounts, s.ases), (50, 1));
    }

    #[test]
    fn independent_ases_add_up_and_anchors_are_counted() {
        let mut items: Vec<_> = (0..4).map(|i| c(i, &format!("45.{i}.0.0/24"), 100 + i as u32, 0.6)).collect();
        items[0].established = true;
        items[1].established = true;
        items[0].seasoning = 1.0;
        items[1].seasoning = 1.0;
        items[2].seasoning = 0.5;
        let s = aggregate(items);
        assert!((s.total - 2.4).abs() < 1e-9);
        assert_eq!((s.ases, s.accounts, s.anchor_ases), (4, 4, 2));
        assert!((s.anchor_weight - 2.5).abs() < 1e-9, "{}", s.anchor_weight);
        assert_eq!(aggregate(Vec::new()), Support::default());
    }
}
