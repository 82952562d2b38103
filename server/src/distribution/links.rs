//! The presigned links of the v3 decision stream: for each operator list a machine is
//! subscribed to, a URL its CrowdSec agent fetches with a plain GET and no credential (one per
//! remediation and scope of a block list, one per allowlist), signed by [`crate::auth::links`]
//! for the configured lifetime. The route family serving them is `http/links.rs`.

use std::collections::BTreeSet;

use palisade_api::capi::{AllowlistLink, BlocklistLink, StreamLinks};
use time::OffsetDateTime;

use super::Distribution;
use crate::auth::links::{LinkKind, LinkTarget};
use crate::domain::lists::pool_list;
use crate::domain::time::{go_duration, rfc3339};
use crate::store::MachineKey;
use crate::use_case::UseCaseError;

/// The lifetime CrowdSec gives every value of a block list link: longer than its two-hour gap
/// between pulls, after which the list is fetched again (an entry removed meanwhile goes then).
pub const LINK_DECISION_SECS: i64 = 24 * 3600;

impl Distribution {
    /// The links of the v3 stream for `machine`: one per (remediation, scope) present in each
    /// block list it receives (when `blocklists`: the subscribed ones, its account's pool and the
    /// pools shared with its account), and one per subscribed allowlist. Each is signed for the
    /// configured link lifetime from `now`.
    pub async fn stream_links(
        &self,
        machine: MachineKey,
        blocklists: bool,
        now: OffsetDateTime,
    ) -> Result<StreamLinks, UseCaseError> {
        let mut links = StreamLinks::default();
        let subscribed = self.store.machine_subscriptions(machine).await?;
        let pools = if blocklists { self.store.pools_received(machine).await? } else { Vec::new() };
        if subscribed.is_empty() && pools.is_empty() {
            return Ok(links);
        }
        let mut received = Vec::new();
        if !subscribed.is_empty() {
            self.lists.refresh_custom().await?;
            received.extend(
                self.lists
                    .names()
                    .into_iter()
                    .filter(|(name, _)| subscribed.contains(name) && self.lists.serves_subscribers(name)),
            );
        }
        received.extend(pools.into_iter().map(|account| (pool_list(account.0), "pool".to_string())));
        let expires = now.unix_timestamp() + self.links.ttl_secs;
        let url = |target: &LinkTarget| format!("{}{}", self.public_url, self.links.path(target));
        for (name, kind) in received {
            match kind.as_str() {
                "block" | "pool" if blocklists => {
                    let served = self.lists.served(&name).await?;
                    let mut groups: BTreeSet<(String, String)> =
                        served.entries.iter().map(|e| (e.remediation().to_string(), e.scope().to_string())).collect();
                    if groups.is_empty() {
                        // An empty list still gets a link, so the machine sees it empty.
                        groups.insert(("ban".into(), "ip".into()));
                    }
                    for (remediation, scope) in groups {
                        let target = LinkTarget { kind: LinkKind::Blocklist, name: name.clone(), remediation, scope, expires };
                        links.blocklists.push(BlocklistLink {
                            name: name.clone(),
                            url: url(&target),
                            remediation: target.remediation.clone(),
                            scope: target.scope.clone(),
                            duration: go_duration(LINK_DECISION_SECS),
                        });
                    }
                }
                "allow" => {
                    let Some(list) = self.lists.custom(&name) else { continue };
                    let snapshot = self.lists.get_or_load(&name).await?;
                    let target = LinkTarget {
                        kind: LinkKind::Allowlist,
                        name: name.clone(),
                        remediation: String::new(),
                        scope: String::new(),
                        expires,
                    };
                    links.allowlists.push(AllowlistLink {
                        name: name.clone(),
                        description: list.description.clone(),
                        url: url(&target),
                        id: name.clone(),
                        created_at: rfc3339(list.created_at),
                        updated_at: rfc3339(snapshot.changed_at.unwrap_or(list.created_at)),
                    });
                }
                _ => {}
            }
        }
        Ok(links)
    }
}
