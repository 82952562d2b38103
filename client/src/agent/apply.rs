//! Applying lists and bans to the host's firewall. [`plan`] (pure) compares what the firewall
//! holds with what it should hold and decides between a full replacement and a delta; a
//! [`Backend`] carries the plan out atomically, one module per backend: [`nftables`] (one
//! `nft -f` transaction), [`ipset`] (`ipset restore` with a swap), [`file`] (temporary file and
//! rename) and [`command`] (a program given the changes on its standard input). A delta that the
//! firewall refuses (its table was flushed, a reboot) falls back to a full replacement.
//!
//! The allowlist is applied before a plan is made ([`crate::agent::safety`]); backends trust
//! their input.

pub mod command;
pub mod file;
pub mod ipset;
pub mod nftables;
mod tool;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::agent::config::{ApplyConfig, BackendKind};

pub use self::tool::ApplyError;

/// What to change in the firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Everything the firewall should hold afterwards.
    pub wanted: BTreeSet<IpNet>,
    /// Entries to add (a delta).
    pub add: Vec<IpNet>,
    /// Entries to remove (a delta).
    pub remove: Vec<IpNet>,
    /// Replace everything with `wanted` instead of applying the delta.
    pub full: bool,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_noop(&self) -> bool {
        !self.full && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Most removals applied as a delta; beyond it the set is replaced whole. Deleting elements
/// from a large nftables interval set costs time in proportion to the set (about 150 ms per
/// element at 100,000 entries with nft 1.0.6) while a full replacement of 100,000 entries takes
/// about a second, so a handful of removals is where the full replacement starts to win.
pub const MAX_DELTA_REMOVALS: usize = 8;

/// The plan taking the firewall from `applied` (`None`: unknown, so replace everything) to
/// `wanted`: the difference when it is small, else a full replacement.
pub fn plan(applied: Option<&BTreeSet<IpNet>>, wanted: BTreeSet<IpNet>) -> Plan {
    match applied {
        None => Plan { wanted, add: Vec::new(), remove: Vec::new(), full: true },
        Some(applied) => {
            let remove: Vec<IpNet> = applied.difference(&wanted).copied().collect();
            if remove.len() > MAX_DELTA_REMOVALS {
                return Plan { wanted, add: Vec::new(), remove: Vec::new(), full: true };
            }
            let add = wanted.difference(applied).copied().collect();
            Plan { wanted, add, remove, full: false }
        }
    }
}

/// A firewall backend.
#[derive(Debug, Clone)]
pub enum Backend {
    /// nftables.
    Nftables(nftables::Nftables),
    /// ipset.
    Ipset(ipset::Ipset),
    /// A plain file.
    File(file::FileBackend),
    /// A command hook.
    Command(command::CommandHook),
    /// Apply nothing.
    None,
}

/// How a plan was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Nothing needed doing.
    Nothing,
    /// The delta was applied.
    Delta,
    /// Everything was replaced.
    Full,
    /// The delta was refused and everything was replaced instead.
    FullAfterFailedDelta,
}

impl Backend {
    /// The backend `config` names; `max_entries` sizes the sets.
    pub fn from_config(config: &ApplyConfig, max_entries: usize) -> Backend {
        match config.backend {
            BackendKind::Nftables => Backend::Nftables(nftables::Nftables::new(&config.table, config.nft.clone())),
            BackendKind::Ipset => Backend::Ipset(ipset::Ipset::new(&config.ipset_prefix, config.ipset.clone(), max_entries)),
            BackendKind::File => Backend::File(file::FileBackend::new(config.file.clone().unwrap_or_default())),
            BackendKind::Command => Backend::Command(command::CommandHook::new(config.command.clone())),
            BackendKind::None => Backend::None,
        }
    }

    /// The backend's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Nftables(_) => "nftables",
            Backend::Ipset(_) => "ipset",
            Backend::File(_) => "file",
            Backend::Command(_) => "command",
            Backend::None => "none",
        }
    }

    /// Carries `plan` out; a refused delta is retried as a full replacement.
    pub async fn apply(&self, plan: &Plan) -> Result<Applied, ApplyError> {
        if plan.is_noop() {
            return Ok(Applied::Nothing);
        }
        if plan.full {
            self.apply_full(&plan.wanted).await?;
            return Ok(Applied::Full);
        }
        match self.apply_delta(plan).await {
            Ok(()) => Ok(Applied::Delta),
            Err(error) if error.worth_a_full_retry() => {
                self.apply_full(&plan.wanted).await?;
                Ok(Applied::FullAfterFailedDelta)
            }
            Err(error) => Err(error),
        }
    }

    /// Replaces the list entries with `wanted`, atomically.
    pub async fn apply_full(&self, wanted: &BTreeSet<IpNet>) -> Result<(), ApplyError> {
        match self {
            Backend::Nftables(b) => b.apply_full(wanted).await,
            Backend::Ipset(b) => b.apply_full(wanted).await,
            Backend::File(b) => b.apply_full(wanted),
            Backend::Command(b) => b.apply_full(wanted).await,
            Backend::None => Ok(()),
        }
    }

    async fn apply_delta(&self, plan: &Plan) -> Result<(), ApplyError> {
        match self {
            Backend::Nftables(b) => b.apply_delta(&plan.add, &plan.remove).await,
            Backend::Ipset(b) => b.apply_delta(&plan.add, &plan.remove).await,
            // A file is always rewritten whole: that is its atomic operation.
            Backend::File(b) => b.apply_full(&plan.wanted),
            Backend::Command(b) => b.apply_delta(&plan.add, &plan.remove).await,
            Backend::None => Ok(()),
        }
    }

    /// Bans one address for `duration` (the agent's own detection).
    pub async fn ban(&self, ip: IpAddr, duration: Duration) -> Result<(), ApplyError> {
        match self {
            Backend::Nftables(b) => b.ban(ip, duration).await,
            Backend::Ipset(b) => b.ban(ip, duration).await,
            Backend::File(b) => b.ban(ip, duration, time::OffsetDateTime::now_utc()),
            Backend::Command(b) => b.ban(ip, duration).await,
            Backend::None => Ok(()),
        }
    }

    /// What applying `plan` would run or write, for `--dry-run`.
    pub fn preview(&self, plan: &Plan) -> String {
        match self {
            Backend::Nftables(b) if plan.full => b.render_full(&plan.wanted),
            Backend::Nftables(b) => b.render_delta(&plan.add, &plan.remove),
            Backend::Ipset(b) if plan.full => b.render_full(&plan.wanted),
            Backend::Ipset(b) => b.render_delta(&plan.add, &plan.remove),
            Backend::File(b) => format!("write {} entries to {}\n", plan.wanted.len(), b.path().display()),
            Backend::Command(b) if plan.full => b.describe("full", plan.wanted.len()),
            Backend::Command(b) => b.describe("delta", plan.add.len() + plan.remove.len()),
            Backend::None => "apply.backend = \"none\": nothing is applied\n".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(items: &[&str]) -> BTreeSet<IpNet> {
        items.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn an_unknown_firewall_state_gets_a_full_replacement() {
        let p = plan(None, nets(&["45.33.32.1/32"]));
        assert!(p.full && p.add.is_empty() && p.remove.is_empty());
    }

    #[test]
    fn many_removals_get_a_full_replacement() {
        let applied: BTreeSet<IpNet> = (0..100u8).map(|i| IpNet::from(std::net::IpAddr::from([203, 0, 113, i]))).collect();
        let keep: BTreeSet<IpNet> = applied.iter().copied().skip(MAX_DELTA_REMOVALS).collect();
        let few = plan(Some(&applied), keep.clone());
        assert!(!few.full && few.remove.len() == MAX_DELTA_REMOVALS, "{few:?}");
        let fewer: BTreeSet<IpNet> = keep.iter().copied().skip(1).collect();
        let many = plan(Some(&applied), fewer.clone());
        assert!(many.full && many.add.is_empty() && many.remove.is_empty() && many.wanted == fewer, "{many:?}");
    }

    #[test]
    fn a_known_state_gets_only_the_difference() {
        let p = plan(Some(&nets(&["45.33.32.1/32", "45.33.32.2/32"])), nets(&["45.33.32.2/32", "45.33.32.3/32"]));
        assert!(!p.full);
        assert_eq!(p.add, Vec::from_iter(nets(&["45.33.32.3/32"])));
        assert_eq!(p.remove, Vec::from_iter(nets(&["45.33.32.1/32"])));
        assert!(plan(Some(&nets(&["45.33.32.1/32"])), nets(&["45.33.32.1/32"])).is_noop());
    }
}
