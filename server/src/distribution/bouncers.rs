//! What CrowdSec bouncers pulling with an API key receive: the lists the key's account receives
//! (the community list as its tier caps it, the operator lists its tier names, the account's pool
//! and the pools shared with it), as a stream that keeps one cursor per key in the store (so it
//! survives restarts and every replica continues from the same point), and as the current
//! decisions covering one address or network. It reads the same snapshots and runs the same pull
//! as the CrowdSec agent's stream ([`super::stream`]); the Local API's wire shapes and filters
//! are the route family's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ipnet::IpNet;
use time::OffsetDateTime;

use super::Distribution;
use super::stream::{Sent, Sources};
use crate::domain::lists::COMMUNITY;
use crate::serving::{self, SharedEntry, Snapshot};
use crate::store::AccountKey;
use crate::use_case::UseCaseError;

/// Where an address or network given to [`Distribution::bouncer_matching`] must sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Decisions whose network contains it (LAPI's default, `contains=true`).
    Containing(IpNet),
    /// Decisions whose network lies within it (`contains=false`).
    Within(IpNet),
    /// Decisions on exactly this network (LAPI's `value`).
    Exactly(IpNet),
}

impl Distribution {
    /// The lists an API key of `account` receives under a tier allowing `blocklists` (list name →
    /// most entries, 0 for all): the community list capped at its size when the tier names it,
    /// the operator block lists the tier names (unless operator-only), then the account's pool
    /// and the pools shared with the account, whole, as on the native blocklist routes.
    pub async fn key_sources(&self, account: AccountKey, blocklists: &BTreeMap<String, u64>) -> Result<Sources, UseCaseError> {
        let community = blocklists.get(COMMUNITY).map(|&size| {
            let cap = if size == 0 { usize::MAX } else { usize::try_from(size).unwrap_or(usize::MAX) };
            (Vec::new(), cap)
        });
        let named: Vec<&String> = blocklists.keys().filter(|name| name.as_str() != COMMUNITY).collect();
        if named.iter().any(|name| self.lists.custom(name).is_none()) {
            // Created through another replica since this one last looked.
            self.lists.refresh_custom().await?;
        }
        let mut lists: Vec<String> = named
            .into_iter()
            .filter(|name| self.lists.custom(name).is_some_and(|list| list.kind == "block" && list.visibility != "operator"))
            .cloned()
            .collect();
        lists.extend(self.account_pools(account).await?);
        Ok(Sources { community, lists })
    }

    /// One stream pull for the API key `prefix`: what changed on `sources` since that key's last
    /// pull, or everything current on `startup` (or on its first pull), and its cursor advanced.
    /// A removal is left out while another of the key's lists still serves the same network (a
    /// bouncer removes a value whatever list it came from), and a network served by several
    /// lists is sent once per list: the route decides how to deduplicate.
    pub async fn bouncer_delta(&self, prefix: &str, sources: &Sources, startup: bool) -> Result<(Sent, Sent), UseCaseError> {
        let now = OffsetDateTime::now_utc();
        let stored = self.store.api_key_stream_seq(prefix).await?;
        let (new, mut deleted, cursor) = self.pull(sources, stored, startup, now).await?;
        if let Some(cursor) = cursor {
            self.store.set_api_key_stream_seq(prefix, cursor).await?;
        }
        if !deleted.is_empty() {
            // Which removed values are sent again: a set of the removals (usually few), not of a
            // start-up pull's million additions.
            let removed: HashSet<IpNet> = deleted.iter().map(|(e, _)| e.net).collect();
            let sent: HashSet<IpNet> = new.iter().map(|(e, _)| e.net).filter(|net| removed.contains(net)).collect();
            drop(removed);
            let community = match &sources.community {
                Some((_, cap)) => Some((self.lists.get_or_load(COMMUNITY).await?, *cap)),
                None => None,
            };
            let mut lists = Vec::with_capacity(sources.lists.len());
            for name in &sources.lists {
                lists.push(self.lists.get_or_load(name).await?);
            }
            // The capped community view, ranked once per pull and only when a removed value is
            // still on the community list.
            let mut shown: Option<Option<HashSet<IpNet>>> = None;
            deleted.retain(|removed, _| {
                let net = removed.net;
                if sent.contains(&net) || lists.iter().any(|list| list.get(&net).is_some_and(|e| e.live_at(now))) {
                    return false;
                }
                let Some((snapshot, cap)) = &community else { return true };
                if !snapshot.get(&net).is_some_and(|e| e.live_at(now)) {
                    return true;
                }
                let view = shown.get_or_insert_with(|| self.community_view(snapshot, *cap, now));
                view.as_ref().is_some_and(|view| !view.contains(&net))
            });
        }
        Ok((new, deleted))
    }

    /// Every current decision of `sources` that `target` selects, in force at `now` and allowed by
    /// the never-block policy, without touching any cursor; with no target, the whole current
    /// view (as a startup pull would send it).
    pub async fn bouncer_matching(
        &self,
        sources: &Sources,
        target: Option<Match>,
        now: OffsetDateTime,
    ) -> Result<Sent, UseCaseError> {
        let Some(target) = target else {
            let (new, _, _) = self.pull(sources, None, true, now).await?;
            return Ok(new);
        };
        let never_block = self.lists.never_block().await?;
        let mut found = Sent::default();
        if let Some((_, cap)) = &sources.community {
            let snapshot = self.lists.get_or_load(COMMUNITY).await?;
            let hits = matching(&snapshot, target, now);
            if !hits.is_empty() {
                let shown = self.community_view(&snapshot, *cap, now);
                found.push(
                    None,
                    hits.into_iter().filter(|e| shown.as_ref().is_none_or(|s| s.contains(&e.net))).collect::<Vec<_>>(),
                );
            }
        }
        for name in &sources.lists {
            let snapshot = self.lists.get_or_load(name).await?;
            found.push(Some(Arc::from(name.as_str())), matching(&snapshot, target, now));
        }
        found.retain(|e, _| never_block.allows_net(e.net));
        Ok(found)
    }

    /// The networks of a community view capped at `cap`, or `None` when the cap leaves the whole
    /// list in view.
    fn community_view(&self, snapshot: &Snapshot, cap: usize, now: OffsetDateTime) -> Option<HashSet<IpNet>> {
        (snapshot.entries.len() > cap)
            .then(|| serving::view(snapshot, now, &[], self.config.tailor_to_scenarios, cap).iter().map(|e| e.net).collect())
    }
}

/// The entries of `snapshot` live at `now` that `target` selects. Entries are sorted by network,
/// so each form is a few binary searches: the enclosing networks of an address are its prefixes,
/// and the networks within a network sit together from its first address on.
fn matching(snapshot: &Snapshot, target: Match, now: OffsetDateTime) -> Vec<SharedEntry> {
    let live = |e: &&SharedEntry| e.live_at(now);
    match target {
        Match::Exactly(net) => snapshot.get(&net).filter(live).cloned().into_iter().collect(),
        Match::Containing(net) => (0..=net.prefix_len())
            .filter_map(|len| IpNet::new(net.addr(), len).ok().map(|n| n.trunc()))
            .filter_map(|n| snapshot.get(&n).filter(live).cloned())
            .collect(),
        Match::Within(net) => {
            // Addresses order IPv4 before IPv6, as the entries do.
            let first = snapshot.entries.partition_point(|e| e.net.network() < net.network());
            snapshot.entries[first..]
                .iter()
                .take_while(|e| same_family(e.net, net) && e.net.network() <= net.broadcast())
                .filter(|e| net.contains(&e.net))
                .filter(live)
                .cloned()
                .collect()
        }
    }
}

fn same_family(a: IpNet, b: IpNet) -> bool {
    matches!((a, b), (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::entry::{Entry, Meta};

    fn snapshot(values: &[&str], now: OffsetDateTime) -> Snapshot {
        let meta = Arc::new(Meta { scope: "ip".into(), scenario: "s".into(), remediation: "ban".into(), rule: "r".into() });
        let mut entries: Vec<SharedEntry> = values
            .iter()
            .map(|v| {
                let net: IpNet = v.parse().unwrap_or_else(|_| IpNet::from(v.parse::<std::net::IpAddr>().expect("address")));
                SharedEntry::new(Entry::new(net, meta.clone(), now, now + time::Duration::hours(1), 1))
            })
            .collect();
        entries.sort_by_key(|e| e.net);
        Snapshot { entries: Arc::new(entries), ..Snapshot::default() }
    }

    fn values(found: Vec<SharedEntry>) -> Vec<String> {
        let mut out: Vec<String> = found.iter().map(|e| e.net.to_string()).collect();
        out.sort();
        out
    }

    #[test]
    fn an_address_matches_the_networks_that_contain_it_and_a_network_those_within_it() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let s = snapshot(&["192.0.2.7", "192.0.2.0/24", "198.51.100.0/24", "192.0.2.200", "2001:db8::1", "10.0.0.0/8"], now);
        let net = |t: &str| t.parse::<IpNet>().expect("net");
        assert_eq!(values(matching(&s, Match::Containing(net("192.0.2.7/32")), now)), ["192.0.2.0/24", "192.0.2.7/32"]);
        assert_eq!(values(matching(&s, Match::Containing(net("192.0.2.8/32")), now)), ["192.0.2.0/24"]);
        assert!(matching(&s, Match::Containing(net("203.0.113.1/32")), now).is_empty());
        assert_eq!(
            values(matching(&s, Match::Within(net("192.0.2.0/24")), now)),
            ["192.0.2.0/24", "192.0.2.200/32", "192.0.2.7/32"]
        );
        assert_eq!(values(matching(&s, Match::Within(net("2001:db8::/32")), now)), ["2001:db8::1/128"]);
        assert_eq!(values(matching(&s, Match::Exactly(net("192.0.2.7/32")), now)), ["192.0.2.7/32"]);
        assert!(matching(&s, Match::Exactly(net("192.0.2.0/25")), now).is_empty());
        let later = now + time::Duration::hours(2);
        assert!(matching(&s, Match::Containing(net("192.0.2.7/32")), later).is_empty(), "expired entries are not in force");
    }
}
