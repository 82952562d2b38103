//! The distribution use case: which lists a consumer may receive and how much of each, what
//! changed for it since its cursor, and where its CrowdSec agent fetches the rest. It reads the
//! in-memory snapshots of [`crate::serving`] (and the store, through the `Store` trait, for the
//! per-machine facts: declared scenarios, last contribution, subscriptions, the v2 cursor), and
//! fails with a [`UseCaseError`]. It knows neither HTTP nor SQL: the route families turn what it
//! answers into CrowdSec's or Palisade's wire shapes, and render and stream the bytes.
//!
//! - [`Distribution`] (here): the consumer's view (community cap by "give to get"), native
//!   deltas, which lists exist, and telling every replica about a change;
//! - [`stream`]: the decision stream of the CrowdSec API (community list and subscribed lists,
//!   one cursor per machine);
//! - [`links`]: the presigned links of the v3 stream;
//! - [`bouncers`]: what CrowdSec bouncers pulling with an API key receive (one cursor per key).

pub mod bouncers;
pub mod links;
pub mod stream;

use std::collections::HashSet;
use std::sync::Arc;

use ipnet::IpNet;
use time::OffsetDateTime;

use crate::auth::links::LinkSigner;
use crate::bus::ChangeBus;
use crate::config::DistributionConfig;
use crate::domain::lists::{pool_account, pool_list};
use crate::serving::{self, DeltaError, Lists};
use crate::store::{AccountKey, MachineKey, Store};
use crate::use_case::UseCaseError;

/// What distribution works with: the served lists and the handles around them.
pub struct Distribution {
    store: Arc<dyn Store>,
    /// In-memory blocklist snapshots and rendered bytes.
    pub lists: Arc<Lists>,
    /// Serving settings: caps, contribution window, tailoring, link lifetime.
    pub config: DistributionConfig,
    /// Signs and verifies the presigned list links of the v3 stream.
    pub links: LinkSigner,
    /// Tells the other replicas that a list changed (Redis), when configured.
    pub bus: ChangeBus,
    /// The base URL links are made under (ends in `/`).
    public_url: Arc<str>,
    /// The server's own addresses: never served.
    own_addresses: Vec<IpNet>,
}

impl Distribution {
    /// Distribution over `lists` (read from `store`), links signed by `links` under `public_url`.
    pub fn new(
        store: Arc<dyn Store>,
        lists: Arc<Lists>,
        config: DistributionConfig,
        links: LinkSigner,
        bus: ChangeBus,
        public_url: Arc<str>,
        own_addresses: Vec<IpNet>,
    ) -> Self {
        Distribution { store, lists, config, links, bus, public_url, own_addresses }
    }

    /// The size and order of the community view a machine gets: its declared scenarios (from its
    /// last login) first, capped by whether it contributed a signal within the configured window
    /// ("give to get").
    pub async fn consumer_view(
        &self,
        machine: MachineKey,
        login: &str,
        now: OffsetDateTime,
    ) -> Result<(Vec<String>, usize), UseCaseError> {
        let config = &self.config;
        let scenarios = self.store.machine_by_login(login).await?.map(|m| m.scenarios).unwrap_or_default();
        let window = time::Duration::days(config.contribution_window_days);
        let contributes = self.store.machine_last_signal_at(machine).await?.is_some_and(|at| at >= now - window);
        let cap = if contributes { config.contributor_cap } else { config.non_contributor_cap };
        Ok((scenarios, cap))
    }

    /// The kind of a served list (`consensus`, `block`, `allow` or `pool`), re-reading the operator's
    /// lists once when `name` is not known yet (it may have been created through another replica).
    pub async fn list_kind(&self, name: &str) -> Result<Option<String>, UseCaseError> {
        if pool_account(name).is_some() {
            // Every account has a pool, empty until one of its machines reports.
            return Ok(Some("pool".into()));
        }
        let find = || self.lists.names().into_iter().find(|(n, _)| n == name).map(|(_, kind)| kind);
        if let Some(kind) = find() {
            return Ok(Some(kind));
        }
        self.lists.refresh_custom().await?;
        Ok(find())
    }

    /// The pools `account`'s API keys receive: its own, then those other accounts share with it.
    pub async fn account_pools(&self, account: AccountKey) -> Result<Vec<String>, UseCaseError> {
        let mut names = vec![pool_list(account.0)];
        let shares = self.store.pool_shares().await?;
        names.extend(shares.into_iter().filter(|share| share.partner == account).map(|share| pool_list(share.owner.0)));
        Ok(names)
    }

    /// The changes of list `name` after `cursor` for a reader capped at `cap` entries, at `now`:
    /// live entries that may be served, as on a full list; a capped reader gets only the
    /// additions within its view. A cursor older than the retained change log is
    /// [`UseCaseError::CursorExpired`].
    pub async fn delta(&self, name: &str, cursor: i64, cap: usize, now: OffsetDateTime) -> Result<serving::Delta, UseCaseError> {
        let snapshot = self.lists.get_or_load(name).await?;
        // The same policy as full lists: live entries that may be served.
        let never_block = self.lists.never_block().await?;
        let mut delta = snapshot.delta(cursor).map_err(|DeltaError::TooOld { cursor, oldest }| {
            UseCaseError::CursorExpired(format!(
                "cursor {cursor} is older than the retained change log (oldest usable cursor {oldest}); download the full list without since and continue from its x-palisade-seq"
            ))
        })?;
        delta.added.retain(|e| e.live_at(now) && never_block.allows_net(e.net));
        if snapshot.entries.len() > cap && !delta.added.is_empty() {
            // As on the CrowdSec stream: only additions within the reader's view; an entry pushed
            // out of the view stays with the reader until its own expiry.
            let served = self.lists.served(name).await?;
            let shown: HashSet<IpNet> = serving::top(&served.entries, cap).into_iter().map(|e| e.net).collect();
            delta.added.retain(|e| shown.contains(&e.net));
        }
        Ok(delta)
    }

    /// Serves an operator's change at once on this replica, and tells the others through the
    /// change bus (with Redis; without it they pick the change up at their next poll).
    pub async fn publish(&self) -> Result<(), UseCaseError> {
        self.lists.refresh_all().await?;
        let seq = self.lists.summary().iter().map(|(_, seq, _)| *seq).max().unwrap_or(0);
        self.bus.publish(seq).await;
        Ok(())
    }
}
