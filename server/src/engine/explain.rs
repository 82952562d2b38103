//! Explanations of one target from its stored state: which rule listed it, how many independent
//! clusters and ASes reported it, which scenarios, since when. Computed from a [`TargetState`]
//! so any replica can answer without the leader's in-memory engine.

use std::collections::BTreeSet;

use serde::Serialize;

use super::support::ClusterId;
use super::{Listing, TargetState, Time};

/// What may be shown about a target. Reporters are never named here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Current listing, if any.
    pub listing: Option<Listing>,
    /// Distinct clusters (accounts, or machines without one) reporting it in the evidence window.
    pub clusters: usize,
    /// Distinct ASes (or stand-in prefixes) those reports came from.
    pub ases: usize,
    /// Scenarios reported, sorted.
    pub scenarios: Vec<String>,
    /// First report.
    pub first_seen: Time,
    /// Latest report.
    pub last_seen: Time,
}

/// Summarises a target. `account_of` maps a machine to its account.
pub fn summarize(state: &TargetState, account_of: impl Fn(i64) -> Option<i64>, now: Time, window: i64) -> Summary {
    let current = state.reporters.iter().filter(|r| !r.voided && r.last_at >= now - window);
    let mut clusters = BTreeSet::new();
    let mut ases = BTreeSet::new();
    for reporter in current {
        clusters.insert(ClusterId::of(reporter.machine, account_of(reporter.machine)));
        ases.insert(reporter.origin_as);
    }
    let scenarios: BTreeSet<String> = state.reporters.iter().filter(|r| !r.voided).map(|r| r.scenario.clone()).collect();
    Summary {
        listing: state.listing.clone(),
        clusters: clusters.len(),
        ases: ases.len(),
        scenarios: scenarios.into_iter().collect(),
        first_seen: state.first_seen,
        last_seen: state.last_seen,
    }
}
