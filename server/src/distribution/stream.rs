//! The decision stream of the CrowdSec API, v2 and v3 alike: what a machine receives of the
//! community list and of the other lists it receives (the operator lists it is subscribed to,
//! its account's pool and the pools shared with its account), since its last pull. The v2
//! protocol expects the server to remember what each machine was sent, so this is the one path
//! that keeps a cursor per machine (in the store). The wire shapes are the route family's.

use std::collections::HashSet;
use std::sync::Arc;

use time::OffsetDateTime;

use super::Distribution;
use crate::domain::lists::{COMMUNITY, pool_list};
use crate::serving::{self, SharedEntry};
use crate::store::MachineKey;
use crate::use_case::UseCaseError;

/// Decisions to send, grouped by the list they come from: `None` for the community list (origin
/// `CAPI`), else the list's name (origin `lists`, the name as the decisions' scenario). A full
/// pull is a million decisions, so each is one pointer to its entry (the list is named once per
/// group), and a group that is a whole list is that list's member vector, shared: it is copied
/// only if a filter drops something from it.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    groups: Vec<Group>,
}

/// The decisions of one list (`None`: the community list).
type Group = (Option<Arc<str>>, Arc<Vec<SharedEntry>>);

impl Sent {
    /// Appends `entries` of `list` (`None`: the community list).
    pub fn push(&mut self, list: Option<Arc<str>>, entries: impl Into<Arc<Vec<SharedEntry>>>) {
        let entries = entries.into();
        if entries.is_empty() {
            return;
        }
        match self.groups.iter_mut().find(|(l, _)| *l == list) {
            Some((_, group)) => Arc::make_mut(group).extend(entries.iter().cloned()),
            None => self.groups.push((list, entries)),
        }
    }

    /// Every decision with the list it comes from, group by group in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&SharedEntry, Option<&str>)> {
        self.groups.iter().flat_map(|(list, entries)| entries.iter().map(move |e| (e, list.as_deref())))
    }

    /// The groups: the list (`None`: the community list) and its decisions.
    pub fn groups(&self) -> impl Iterator<Item = (Option<&str>, &[SharedEntry])> {
        self.groups.iter().map(|(list, entries)| (list.as_deref(), entries.as_slice()))
    }

    /// How many decisions.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|(_, entries)| entries.len()).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(|(_, entries)| entries.is_empty())
    }

    /// Keeps the decisions `keep` accepts, asking once for each, in place. A group loses its
    /// sharing only when something is dropped from it.
    pub fn retain(&mut self, mut keep: impl FnMut(&SharedEntry, Option<&str>) -> bool) {
        for (list, entries) in &mut self.groups {
            let list = list.as_deref();
            let Some(first) = entries.iter().position(|e| !keep(e, list)) else {
                continue;
            };
            let mut index = 0;
            Arc::make_mut(entries).retain(|e| {
                let kept = index < first || (index > first && keep(e, list));
                index += 1;
                kept
            });
        }
        self.groups.retain(|(_, entries)| !entries.is_empty());
    }

    /// Keeps the decisions whose flag is set: `keep` holds one flag list per group, as
    /// [`Sent::groups`] gives them.
    pub fn retain_flagged(&mut self, keep: &[Vec<bool>]) {
        for ((_, entries), flags) in self.groups.iter_mut().zip(keep) {
            if flags.iter().all(|&f| f) {
                continue;
            }
            let mut flags = flags.iter();
            Arc::make_mut(entries).retain(|_| flags.next().copied().unwrap_or(true));
        }
        self.groups.retain(|(_, entries)| !entries.is_empty());
    }
}

/// What a stream reader receives: the community list with its view of it (declared scenarios
/// first, at most `cap` entries), when it receives it at all, and other lists whole, by name.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The reader's declared scenarios and cap on the community list, if it receives that list.
    pub community: Option<(Vec<String>, usize)>,
    /// The other lists it receives.
    pub lists: Vec<String>,
}

impl Distribution {
    /// The block lists `machine` receives beside the community list: the operator's block lists
    /// it is subscribed to (unless operator-only), then its account's pool and the pools other
    /// accounts share with its account.
    pub async fn received_lists(&self, machine: MachineKey) -> Result<Vec<String>, UseCaseError> {
        let mut names = Vec::new();
        let subscriptions = self.store.machine_subscriptions(machine).await?;
        if !subscriptions.is_empty() {
            self.lists.refresh_custom().await?;
            names.extend(subscriptions.into_iter().filter(|name| {
                self.lists.custom(name).is_some_and(|list| list.kind == "block") && self.lists.serves_subscribers(name)
            }));
        }
        names.extend(self.store.pools_received(machine).await?.into_iter().map(|account| pool_list(account.0)));
        Ok(names)
    }

    /// What changed on the community list and on the machine's subscribed lists since its last pull
    /// (its whole view on startup, on its first pull, or when its cursor predates the retained
    /// change log). Advances the machine's cursor, one seq for all its lists (see [`Self::pull`]).
    ///
    /// The v2 protocol keeps a cursor per machine, so this path reaches the database anyway; it
    /// catches the in-memory snapshots up first, so a pull sees everything committed before it.
    pub async fn stream_delta(
        &self,
        machine: MachineKey,
        login: &str,
        startup: bool,
        community: bool,
        additional: bool,
    ) -> Result<(Sent, Sent), UseCaseError> {
        let now = OffsetDateTime::now_utc();
        let lists = if additional { self.received_lists(machine).await? } else { Vec::new() };
        let community = if community { Some(self.consumer_view(machine, login, now).await?) } else { None };
        let sources = Sources { community, lists };
        let stored = self.store.machine_stream_seq(machine).await?;
        let (new, deleted, cursor) = self.pull(&sources, stored, startup, now).await?;
        if let Some(cursor) = cursor {
            self.store.set_machine_stream_seq(machine, cursor).await?;
        }
        Ok((new, deleted))
    }

    /// One pull of a stream that keeps a cursor per reader: what changed on `sources` since the
    /// reader's `stored` cursor, or its whole view on `startup`, on its first pull (no cursor) or
    /// when its cursor predates the retained change log; and the cursor to store (`None` when
    /// `sources` is empty). Every list is read up to the same seq, taken before reading, so no
    /// change below the new cursor can be missed.
    ///
    /// A capped community view re-ranks only what changed: an entry pushed out of the view by
    /// newer ones stays with the reader until its own expiry, which every decision carries.
    pub(super) async fn pull(
        &self,
        sources: &Sources,
        stored: Option<i64>,
        startup: bool,
        now: OffsetDateTime,
    ) -> Result<(Sent, Sent, Option<i64>), UseCaseError> {
        let mut names: Vec<&str> = sources.lists.iter().map(String::as_str).collect();
        if sources.community.is_some() {
            names.push(COMMUNITY);
        }
        let mut upto = 0;
        for name in &names {
            upto = upto.max(self.store.list_seq(name).await?);
        }
        // On a startup pull the whole view is sent, plus what was removed since the reader's previous
        // cursor: CrowdSec keeps its earlier community decisions when a startup answer has no new
        // entry for them, so a removal it has not heard of must still be spelled out.
        let last = if startup { None } else { stored };
        let removed_since = |snapshot: &serving::Snapshot| -> Vec<SharedEntry> {
            match stored.filter(|_| startup).map(|c| snapshot.delta_upto(c, upto)) {
                Some(Ok(delta)) => delta.removed.into_iter().filter(|e| snapshot.get(&e.net).is_none()).collect(),
                _ => Vec::new(),
            }
        };
        let soon = now + time::Duration::seconds(1);
        let live = |e: &SharedEntry| e.live_at(soon);
        let (mut new, mut deleted) = (Sent::default(), Sent::default());
        let mut cursor = last.unwrap_or(0).max(upto);
        if let Some((scenarios, cap)) = &sources.community {
            let (scenarios, cap) = (scenarios.as_slice(), *cap);
            let snapshot = self.lists.refresh(COMMUNITY).await?;
            let tailor = self.config.tailor_to_scenarios;
            match last.map(|c| snapshot.delta_upto(c, upto)) {
                None | Some(Err(_)) => {
                    new.push(None, serving::view(&snapshot, now, scenarios, tailor, cap));
                    deleted.push(None, removed_since(&snapshot));
                    cursor = cursor.max(snapshot.seq);
                }
                Some(Ok(delta)) => {
                    let mut added: Vec<SharedEntry> = delta.added.into_iter().filter(live).collect();
                    if snapshot.entries.len() > cap {
                        let shown: HashSet<ipnet::IpNet> =
                            serving::view(&snapshot, now, scenarios, tailor, cap).iter().map(|e| e.net).collect();
                        added.retain(|e| shown.contains(&e.net));
                    }
                    new.push(None, added);
                    deleted.push(None, delta.removed);
                }
            }
        }
        for name in &sources.lists {
            let snapshot = self.lists.refresh(name).await?;
            let from: Option<Arc<str>> = Some(Arc::from(name.as_str()));
            match last.map(|c| snapshot.delta_upto(c, upto)) {
                None | Some(Err(_)) => {
                    new.push(from.clone(), snapshot.live_shared(soon));
                    deleted.push(from, removed_since(&snapshot));
                    cursor = cursor.max(snapshot.seq);
                }
                Some(Ok(delta)) => {
                    new.push(from.clone(), delta.added.into_iter().filter(live).collect::<Vec<_>>());
                    deleted.push(from, delta.removed);
                }
            }
        }
        let cursor = (!names.is_empty()).then_some(cursor);
        // Never-block is enforced when lists are built and again here, so an allowlist or canary
        // added since takes effect at once even before the worker's next step.
        // Filtered in place: a full view of a million entries is not copied to drop a few.
        let never_block = serving::load_never_block(self.store.as_ref(), &self.own_addresses).await?;
        let before = new.len();
        new.retain(|e, _| never_block.allows_net(e.net));
        if new.len() < before {
            metrics::counter!("palisade_serving_never_block_filtered_total").increment((before - new.len()) as u64);
        }
        Ok((new, deleted, cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::{Entry, Meta};

    fn entries(values: &[&str]) -> Arc<Vec<SharedEntry>> {
        let meta = Arc::new(Meta { scope: "ip".into(), scenario: "s".into(), remediation: "ban".into(), rule: "r".into() });
        let now = OffsetDateTime::now_utc();
        let entry = |v: &&str| {
            let net = crate::domain::net::parse_target(v).expect("value");
            SharedEntry::new(Entry::new(net, meta.clone(), now, now + time::Duration::hours(1), 1))
        };
        Arc::new(values.iter().map(entry).collect())
    }

    fn values(sent: &Sent) -> Vec<(String, Option<String>)> {
        sent.iter().map(|(e, list)| (e.value().to_string(), list.map(str::to_string))).collect()
    }

    #[test]
    fn a_whole_list_stays_shared_until_a_filter_drops_something_from_it() {
        let members = entries(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let mut sent = Sent::default();
        sent.push(None, members.clone());
        sent.push(Some(Arc::from("pool")), entries(&["10.0.0.2"]));
        let mut asked = 0;
        sent.retain(|_, _| {
            asked += 1;
            true
        });
        assert_eq!(asked, 4, "each decision asked about once");
        assert!(Arc::ptr_eq(&sent.groups[0].1, &members), "nothing dropped: still the list's own vector");
        sent.retain_flagged(&[vec![true, true, true], vec![true]]);
        assert!(Arc::ptr_eq(&sent.groups[0].1, &members));

        let mut asked = Vec::new();
        sent.retain(|e, _| {
            asked.push(e.value().to_string());
            e.value().to_string() != "10.0.0.2"
        });
        assert_eq!(asked, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.2"], "each asked once, in order");
        assert_eq!(values(&sent), [("10.0.0.1".to_string(), None), ("10.0.0.3".to_string(), None)]);
        assert_eq!(members.len(), 3, "the list's own vector is untouched");

        sent.push(None, entries(&["10.0.0.7"]));
        sent.retain_flagged(&[vec![false, true, true]]);
        assert_eq!(values(&sent), [("10.0.0.3".to_string(), None), ("10.0.0.7".to_string(), None)]);
        assert_eq!(sent.len(), 2);
    }
}
