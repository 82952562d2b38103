//! Selective /24 expansion: an IPv4 /24 inside the operator's hosting space (rented servers,
//! where one tenant's block of addresses attacks together) is listed whole while at least
//! [`Params::expand_v4_24_after`](super::params::Params) of its addresses are listed with a ban.
//!
//! The block's listing follows its members: it expires when, without renewals, fewer than the
//! threshold would remain (the threshold-th latest member expiry), it is recomputed whenever a
//! member is listed, renewed or delisted, and it is never made where any address of the /24 is
//! never-block, a canary or shared. An upheld false positive on any address of the /24 delists
//! the block and keeps it from expanding again for the protection period, so an innocent
//! neighbour is never held by its block. Outside hosting space nothing is ever expanded: on
//! residential and mobile networks neighbours are unrelated people.
//!
//! The block is kept as an ordinary target (no reporters, a listing with [`Rule::Expanded`]), so
//! it is persisted, restored, explained, served and expired by the same code as every listing.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use super::{Change, DelistReason, Engine, Listing, Remediation, Rule, TargetState, Time};

impl Engine {
    /// The /24 holding an IPv4 target narrower than or equal to a /24.
    pub(crate) fn block_of(target: IpNet) -> Option<IpNet> {
        match target {
            IpNet::V4(v4) if v4.prefix_len() > 24 => Ipv4Net::new(v4.addr(), 24).ok().map(|n| IpNet::V4(n.trunc())),
            _ => None,
        }
    }

    /// Re-evaluates the /24 of every IPv4 address that `out` listed or delisted.
    pub(super) fn expand_blocks(&mut self, now: Time, out: &mut Vec<Change>) {
        if self.params.expand_v4_24_after == 0 || self.hosting.is_empty() {
            return;
        }
        let blocks: BTreeSet<IpNet> = out
            .iter()
            .filter_map(|change| match change {
                Change::Listed { target, .. } | Change::Delisted { target, .. } => Self::block_of(*target),
            })
            .filter(|block| self.hosting.covers(*block))
            .collect();
        for block in blocks {
            self.evaluate_block(block, now, out);
        }
    }

    /// Lists, renews, shortens or delists one block according to its members.
    fn evaluate_block(&mut self, block: IpNet, now: Time, out: &mut Vec<Change>) {
        let current = self.targets.get(&block).and_then(|s| s.listing.as_ref());
        if current.is_some_and(|l| l.rule != Rule::Expanded) {
            return; // listed on its own evidence (a range report): not ours to change
        }
        let protected = self.targets.get(&block).is_some_and(|s| s.protected_until > now || s.held_until > now);
        let eligible = !protected && !self.is_never_block(block) && !self.shared.overlaps(block);
        let (mut expiries, scenario) = if eligible { self.block_members(block, now) } else { (Vec::new(), String::new()) };
        let threshold = self.params.expand_v4_24_after as usize;
        if expiries.len() >= threshold {
            expiries.sort_unstable_by(|a, b| b.cmp(a));
            let expires_at = expiries[threshold - 1];
            if current.is_some_and(|l| l.expires_at == expires_at) {
                return;
            }
            let listing = match current {
                Some(l) => Listing { expires_at, renewed_at: now, renewals: l.renewals + 1, scenario, ..l.clone() },
                None => Listing {
                    rule: Rule::Expanded,
                    listed_at: now,
                    renewed_at: now,
                    expires_at,
                    renewals: 0,
                    scenario,
                    remediation: Remediation::Ban,
                },
            };
            out.push(Change::Listed {
                target: block,
                rule: Rule::Expanded,
                scenario: listing.scenario.clone(),
                remediation: Remediation::Ban,
                expires_at,
            });
            self.expiries.insert((expires_at, block));
            if !self.targets.contains_key(&block) {
                self.forget_checks.insert((expires_at + 1, block));
            }
            let state = self.targets.entry(block).or_insert_with(|| TargetState {
                first_seen: now,
                last_seen: now,
                ..TargetState::default()
            });
            state.listing = Some(listing);
            self.changed_targets.insert(block);
        } else if current.is_some() {
            let reason = if protected {
                DelistReason::FalsePositive
            } else if self.is_never_block(block) {
                DelistReason::NeverBlock
            } else {
                DelistReason::Expired
            };
            if let Some(state) = self.targets.get_mut(&block) {
                state.listing = None;
                state.expired_at = now;
            }
            self.changed_targets.insert(block);
            out.push(Change::Delisted { target: block, reason });
        }
    }

    /// Expiries of the block's addresses listed with a ban now, and their most common scenario.
    fn block_members(&self, block: IpNet, now: Time) -> (Vec<Time>, String) {
        let IpAddr::V4(base) = block.network() else { return (Vec::new(), String::new()) };
        let base = u32::from(base);
        let mut expiries = Vec::new();
        let mut scenarios: Vec<&str> = Vec::new();
        for host in 0..=255u32 {
            let address = IpNet::from(IpAddr::V4(Ipv4Addr::from(base | host)));
            if let Some(listing) = self.targets.get(&address).and_then(|s| s.listing.as_ref())
                && listing.remediation == Remediation::Ban
                && listing.expires_at > now
            {
                expiries.push(listing.expires_at);
                scenarios.push(&listing.scenario);
            }
        }
        scenarios.sort_unstable();
        let scenario = scenarios
            .chunk_by(|a, b| a == b)
            .max_by_key(|run| run.len())
            .and_then(|run| run.first())
            .map_or_else(String::new, |s| s.to_string());
        (expiries, scenario)
    }

    /// An upheld false positive on an address protects its /24 from expansion, and delists the
    /// block when it is listed, so the innocent address is not held by its neighbours.
    pub(super) fn protect_block(&mut self, target: IpNet, now: Time, out: &mut Vec<Change>) {
        let Some(block) = Self::block_of(target).filter(|block| self.hosting.covers(*block)) else { return };
        let until = now + self.params.false_positive_protection_secs;
        if !self.targets.contains_key(&block) {
            self.forget_checks.insert((until + 1, block));
        }
        let state = self.targets.entry(block).or_insert_with(|| TargetState {
            first_seen: now,
            last_seen: now,
            ..TargetState::default()
        });
        state.protected_until = state.protected_until.max(until);
        self.changed_targets.insert(block);
        if state.listing.as_ref().is_some_and(|l| l.rule == Rule::Expanded) {
            state.listing = None;
            state.expired_at = now;
            out.push(Change::Delisted { target: block, reason: DelistReason::FalsePositive });
        }
    }
}
