//! Pulling the blocklists the machine is entitled to and applying them. Each list is pulled from
//! `GET /v1/blocklists/{name}?format=json`, in full the first time and afterwards as the changes
//! `since` the cursor of the last answer (its `x-palisade-seq` header); a 410 (cursor older than
//! the server's change log) means a full pull. The union of the lists, minus what the
//! [`Allowlist`] protects and beyond the ceiling, is planned against what the firewall holds and
//! applied by the [`Backend`]. Parsing answers and updating a list are pure functions.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Client;
use crate::Error;
use crate::agent::apply::{self, Applied, ApplyError, Backend};
use crate::agent::config::SyncConfig;
use crate::agent::safety::{Allowlist, filter};
use crate::agent::state::{AgentState, ListState, now_rfc3339};

/// One entry of a JSON answer (only what the agent uses).
#[derive(Debug, Deserialize)]
struct JsonEntry {
    value: String,
    #[serde(default)]
    remediation: Option<String>,
}

/// A delta answer in JSON.
#[derive(Debug, Deserialize)]
struct JsonDelta {
    #[serde(default)]
    added: Vec<JsonEntry>,
    #[serde(default)]
    removed: Vec<String>,
}

/// What a list answer changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Entries to ban from now on.
    pub ban: Vec<IpNet>,
    /// Entries no longer to ban (removed, or now served with a remediation other than `ban`).
    pub unban: Vec<IpNet>,
}

fn net_of(value: &str) -> Option<IpNet> {
    let value = value.trim();
    value.parse::<IpNet>().ok().or_else(|| value.parse::<IpAddr>().ok().map(IpNet::from)).map(|n| n.trunc())
}

fn is_ban(entry: &JsonEntry) -> bool {
    entry.remediation.as_deref().is_none_or(|r| r.eq_ignore_ascii_case("ban"))
}

/// The entries to ban in a full JSON answer (an array of entries). Entries whose remediation is
/// not `ban` (a captcha cannot be served by a firewall) and unparsable values are left out.
pub fn parse_full(body: &[u8]) -> Result<BTreeSet<IpNet>, String> {
    let entries: Vec<JsonEntry> = serde_json::from_slice(body).map_err(|e| format!("not a JSON list of entries: {e}"))?;
    Ok(entries.iter().filter(|e| is_ban(e)).filter_map(|e| net_of(&e.value)).collect())
}

/// The changes in a delta JSON answer (`{seq, added, removed}`).
pub fn parse_delta(body: &[u8]) -> Result<Changes, String> {
    let delta: JsonDelta = serde_json::from_slice(body).map_err(|e| format!("not a JSON delta: {e}"))?;
    let mut changes = Changes::default();
    for entry in &delta.added {
        if let Some(net) = net_of(&entry.value) {
            if is_ban(entry) { changes.ban.push(net) } else { changes.unban.push(net) }
        }
    }
    changes.unban.extend(delta.removed.iter().filter_map(|v| net_of(v)));
    Ok(changes)
}

/// Applies `changes` to a list's members (removals first, so an entry re-added in the same delta
/// stays).
pub fn update(list: &mut ListState, changes: &Changes) {
    for net in &changes.unban {
        list.entries.remove(net);
    }
    list.entries.extend(changes.ban.iter().copied());
}

/// How one list was pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListReport {
    /// The list.
    pub name: String,
    /// `full`, `delta`, or `resync` (a full pull after a 410).
    pub mode: String,
    /// Entries added by this pull.
    pub added: usize,
    /// Entries removed by this pull.
    pub removed: usize,
    /// Members afterwards.
    pub size: usize,
    /// The new cursor.
    pub cursor: Option<i64>,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Per list.
    pub lists: Vec<ListReport>,
    /// Entries the firewall should hold (after the allowlist and the ceiling).
    pub wanted: usize,
    /// Entries left out because they overlap a protected network.
    pub protected: usize,
    /// Entries left out because of the ceiling.
    pub over_ceiling: usize,
    /// Entries added to the firewall.
    pub add: usize,
    /// Entries removed from the firewall.
    pub remove: usize,
    /// `nothing`, `delta`, `full`, `full-after-failed-delta`, or `dry-run`.
    pub applied: String,
    /// With `--dry-run`: what would be run or written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Pulling a list failed.
    #[error("pulling {list}: {source}")]
    Pull {
        /// The list.
        list: String,
        /// Why.
        #[source]
        source: Error,
    },
    /// A list answer could not be read.
    #[error("pulling {list}: {message}")]
    Decode {
        /// The list.
        list: String,
        /// What was wrong.
        message: String,
    },
    /// Applying failed (the pulled lists are kept; the next sync applies them in full).
    #[error("{0}")]
    Apply(#[from] ApplyError),
    /// The state file could not be written.
    #[error("saving the sync state: {0}")]
    State(#[from] std::io::Error),
}

/// Options of one sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// Pull and plan, print what would be done, change nothing.
    pub dry_run: bool,
    /// Pull every list in full and replace the firewall's content.
    pub full: bool,
}

/// Pulls one list, returning its new state and what changed.
pub async fn pull_list(
    client: &Client,
    name: &str,
    current: &ListState,
    full: bool,
) -> Result<(ListState, ListReport), SyncError> {
    let pull_error = |source| SyncError::Pull { list: name.to_string(), source };
    let decode_error = |message| SyncError::Decode { list: name.to_string(), message };
    let since = if full { None } else { current.cursor };
    let mut mode = if since.is_some() { "delta" } else { "full" };
    let answer = match client.get_blocklist_entries(name, since, "json").await {
        Err(error) if error.status() == Some(410) => {
            mode = "resync";
            client.get_blocklist_entries(name, None, "json").await.map_err(pull_error)?
        }
        other => other.map_err(pull_error)?,
    };
    let cursor = answer.seq.ok_or_else(|| decode_error("the answer has no x-palisade-seq header".into()))?;
    let (next, added, removed) = if mode == "delta" {
        let changes = parse_delta(&answer.body).map_err(decode_error)?;
        let mut next = current.clone();
        update(&mut next, &changes);
        let added = next.entries.difference(&current.entries).count();
        let removed = current.entries.difference(&next.entries).count();
        (next, added, removed)
    } else {
        let entries = parse_full(&answer.body).map_err(decode_error)?;
        let added = entries.difference(&current.entries).count();
        let removed = current.entries.difference(&entries).count();
        (ListState { cursor: None, entries }, added, removed)
    };
    let next = ListState { cursor: Some(cursor), ..next };
    let report =
        ListReport { name: name.to_string(), mode: mode.into(), added, removed, size: next.entries.len(), cursor: Some(cursor) };
    Ok((next, report))
}

/// The pools the server says this machine receives (its account's own and those other accounts
/// share with it), when `sync.pools` is on, less those configured by name already.
async fn pools_to_pull(client: &Client, config: &SyncConfig, on_step: &(dyn Fn(&str) + Sync)) -> Result<Vec<String>, SyncError> {
    if !config.pools {
        return Ok(Vec::new());
    }
    on_step("finding the pools this machine receives");
    let served = client
        .list_blocklists()
        .await
        .map_err(|source| SyncError::Pull { list: "the server's list of blocklists".into(), source })?;
    Ok(served
        .into_iter()
        .filter(|view| view.kind == "pool" && !config.lists.contains(&view.name))
        .map(|view| view.name)
        .collect())
}

/// Pulls each of `lists` into `pulled`.
async fn pull_each(
    client: &Client,
    lists: &[String],
    pulled: &mut AgentState,
    full: bool,
    on_step: &(dyn Fn(&str) + Sync),
) -> Result<Vec<ListReport>, SyncError> {
    let mut reports = Vec::new();
    for name in lists {
        on_step(&format!("pulling {name}"));
        let current = pulled.lists.get(name).cloned().unwrap_or_default();
        let (next, report) = pull_list(client, name, &current, full).await?;
        pulled.lists.insert(name.clone(), next);
        reports.push(report);
    }
    Ok(reports)
}

/// Pulls the lists of `config`, then the pools this machine receives ([`pools_to_pull`]), applies
/// their union and updates `state` (saved by the caller). A list no longer configured, or a pool
/// no longer received (a share ended), stops contributing. A failed apply keeps the pulled lists
/// and marks the firewall's content unknown, so the next sync replaces it.
pub async fn sync(
    client: &Client,
    backend: &Backend,
    allowlist: &Allowlist,
    config: &SyncConfig,
    state: &mut AgentState,
    options: SyncOptions,
    on_step: &(dyn Fn(&str) + Sync),
) -> Result<SyncReport, SyncError> {
    let ceiling = config.max_entries;
    let mut reports = Vec::new();
    let mut pulled = state.clone();
    // The configured lists first, so an unreachable server is named by the first of them.
    reports.extend(pull_each(client, &config.lists, &mut pulled, options.full, on_step).await?);
    let pools = pools_to_pull(client, config, on_step).await?;
    reports.extend(pull_each(client, &pools, &mut pulled, options.full, on_step).await?);
    let lists: Vec<&String> = config.lists.iter().chain(&pools).collect();
    pulled.lists.retain(|name, _| lists.contains(&name));
    let filtered = filter(&pulled.wanted(), allowlist, ceiling);
    let applied_before = if options.full { None } else { state.applied.as_ref() };
    let plan = apply::plan(applied_before, filtered.kept);
    let mut report = SyncReport {
        lists: reports,
        wanted: plan.wanted.len(),
        protected: filtered.protected,
        over_ceiling: filtered.over_ceiling,
        add: if plan.full { plan.wanted.len() } else { plan.add.len() },
        remove: plan.remove.len(),
        applied: "dry-run".into(),
        preview: None,
    };
    if options.dry_run {
        report.preview = Some(backend.preview(&plan));
        return Ok(report);
    }
    on_step(&format!("applying {} entries to {}", plan.wanted.len(), backend.name()));
    pulled.protected = filtered.protected;
    pulled.over_ceiling = filtered.over_ceiling;
    pulled.last_pull = Some(now_rfc3339());
    match backend.apply(&plan).await {
        Ok(how) => {
            report.applied = match how {
                Applied::Nothing => "nothing",
                Applied::Delta => "delta",
                Applied::Full => "full",
                Applied::FullAfterFailedDelta => "full-after-failed-delta",
            }
            .into();
            pulled.applied = Some(plan.wanted);
            *state = pulled;
            Ok(report)
        }
        Err(error) => {
            pulled.applied = None;
            *state = pulled;
            Err(SyncError::Apply(error))
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
    fn a_full_answer_keeps_only_bans() -> Result<(), String> {
        let body = br#"[{"value":"45.33.32.156","scope":"Ip","remediation":"ban","seq":3},
                        {"value":"45.33.33.0/24","scope":"Range","remediation":"ban"},
                        {"value":"81.2.69.0/24","scope":"Range","remediation":"captcha"},
                        {"value":"not an ip","remediation":"ban"}]"#;
        assert_eq!(parse_full(body)?, nets(&["45.33.32.156/32", "45.33.33.0/24"]));
        assert!(parse_full(b"{}").is_err());
        Ok(())
    }

    #[test]
    fn a_delta_removes_then_adds_and_a_captcha_stops_a_ban() -> Result<(), String> {
        let mut list = ListState { cursor: Some(1), entries: nets(&["45.33.32.1/32", "45.33.32.2/32", "45.33.32.3/32"]) };
        let body =
            br#"{"seq":9,"added":[{"value":"45.33.32.4","remediation":"ban"},{"value":"45.33.32.3","remediation":"captcha"}],
                        "removed":["45.33.32.1"]}"#;
        update(&mut list, &parse_delta(body)?);
        assert_eq!(list.entries, nets(&["45.33.32.2/32", "45.33.32.4/32"]));
        Ok(())
    }
}
