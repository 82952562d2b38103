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
use crate::serving::{self, Entry};
use crate::store::MachineKey;
use crate::use_case::UseCaseError;

/// One decision to send, and the list it comes from when that is not the community list
/// (origin `lists`, the list's name as its scenario; the community list's are origin `CAPI`).
pub type Sent = (Arc<Entry>, Option<Arc<str>>);

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
    ) -> Result<(Vec<Sent>, Vec<Sent>), UseCaseError> {
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
    ) -> Result<(Vec<Sent>, Vec<Sent>, Option<i64>), UseCaseError> {
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
        let removed_since = |snapshot: &serving::Snapshot| -> Vec<Arc<Entry>> {
            match stored.filter(|_| startup).map(|c| snapshot.delta_upto(c, upto)) {
                Some(Ok(delta)) => delta.removed.into_iter().filter(|e| snapshot.get(&e.net).is_none()).collect(),
                _ => Vec::new(),
            }
        };
        let live = |e: &Arc<Entry>| e.live_at(now + time::Duration::seconds(1));
        let (mut new, mut deleted): (Vec<Sent>, Vec<Sent>) = (Vec::new(), Vec::new());
        let mut cursor = last.unwrap_or(0).max(upto);
        if let Some((scenarios, cap)) = &sources.community {
            let (scenarios, cap) = (scenarios.as_slice(), *cap);
            let snapshot = self.lists.refresh(COMMUNITY).await?;
            let tailor = self.config.tailor_to_scenarios;
            match last.map(|c| snapshot.delta_upto(c, upto)) {
                None | Some(Err(_)) => {
                    new.extend(serving::view(&snapshot, now, scenarios, tailor, cap).into_iter().map(|e| (e, None)));
                    deleted.extend(removed_since(&snapshot).into_iter().map(|e| (e, None)));
                    cursor = cursor.max(snapshot.seq);
                }
                Some(Ok(delta)) => {
                    let mut added: Vec<Arc<Entry>> = delta.added.into_iter().filter(live).collect();
                    if snapshot.entries.len() > cap {
                        let shown: HashSet<ipnet::IpNet> =
                            serving::view(&snapshot, now, scenarios, tailor, cap).into_iter().map(|e| e.net).collect();
                        added.retain(|e| shown.contains(&e.net));
                    }
                    new.extend(added.into_iter().map(|e| (e, None)));
                    deleted.extend(delta.removed.into_iter().map(|e| (e, None)));
                }
            }
        }
        for name in &sources.lists {
            let snapshot = self.lists.refresh(name).await?;
            let from: Arc<str> = Arc::from(name.as_str());
            let from = || Some(from.clone());
            match last.map(|c| snapshot.delta_upto(c, upto)) {
                None | Some(Err(_)) => {
                    new.extend(snapshot.live(now).filter(|e| live(e)).map(|e| (e.clone(), from())));
                    deleted.extend(removed_since(&snapshot).into_iter().map(|e| (e, from())));
                    cursor = cursor.max(snapshot.seq);
                }
                Some(Ok(delta)) => {
                    new.extend(delta.added.into_iter().filter(live).map(|e| (e, from())));
                    deleted.extend(delta.removed.into_iter().map(|e| (e, from())));
                }
            }
        }
        let cursor = (!names.is_empty()).then_some(cursor);
        // Never-block is enforced when lists are built and again here, so an allowlist or canary
        // added since takes effect at once even before the worker's next step.
        // Filtered in place: a full view of a million entries is not copied to drop a few.
        let never_block = serving::load_never_block(self.store.as_ref(), &self.own_addresses).await?;
        let before = new.len();
        new.retain(|(e, _)| never_block.allows_net(e.net));
        if new.len() < before {
            metrics::counter!("palisade_serving_never_block_filtered_total").increment((before - new.len()) as u64);
        }
        Ok((new, deleted, cursor))
    }
}
