//! What the agent remembers between runs, in `state.json` under its state directory: each
//! list's delta cursor and members, what was last applied to the firewall, and when it last
//! pushed and pulled. Written to a temporary file and renamed, so a crash leaves the old state,
//! which is always safe to continue from (the next pull repeats the changes after its cursor).
//! The time of the last push is a file of its own ([`record_push`]), since `palisade report` and
//! `palisade watch` both push and must not overwrite each other's state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::agent::credentials::write_private;

/// One pulled list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListState {
    /// The `x-palisade-seq` of the last answer applied: the next `since`.
    pub cursor: Option<i64>,
    /// Members to ban (remediation `ban`).
    pub entries: BTreeSet<IpNet>,
}

/// Everything the agent keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentState {
    /// Pulled lists by name.
    pub lists: BTreeMap<String, ListState>,
    /// What the firewall holds from the lists (after the allowlist and the ceiling); `None` when
    /// unknown, which makes the next apply a full one.
    pub applied: Option<BTreeSet<IpNet>>,
    /// Entries left out at the last apply because they overlap a protected network.
    pub protected: usize,
    /// Entries left out at the last apply because of the ceiling.
    pub over_ceiling: usize,
    /// Last successful pull, RFC 3339.
    pub last_pull: Option<String>,
}

impl AgentState {
    /// Reads the state (the empty state when there is none yet).
    pub fn load(path: &Path) -> std::io::Result<AgentState> {
        match std::fs::read(path) {
            Ok(body) => serde_json::from_slice(&body)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AgentState::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_private(path, &serde_json::to_vec(self).map_err(std::io::Error::other)?)
    }

    /// Every list member, once.
    pub fn wanted(&self) -> BTreeSet<IpNet> {
        self.lists.values().flat_map(|l| l.entries.iter().copied()).collect()
    }
}

/// Records that a push succeeded now (in `last-push` under `state_dir`).
pub fn record_push(state_dir: &Path) -> std::io::Result<()> {
    write_private(&state_dir.join("last-push"), now_rfc3339().as_bytes())
}

/// When a push last succeeded, if ever.
pub fn last_push(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join("last-push")).ok().map(|s| s.trim().to_string())
}

/// Now, as RFC 3339: how the state records when the agent last pushed and pulled.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_missing_file_is_empty() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.json");
        assert_eq!(AgentState::load(&path)?, AgentState::default());
        let mut state = AgentState::default();
        let net: IpNet = "45.33.32.156/32".parse().map_err(std::io::Error::other)?;
        state.lists.insert("community".into(), ListState { cursor: Some(7), entries: [net].into() });
        state.save(&path)?;
        let back = AgentState::load(&path)?;
        assert_eq!(back, state);
        assert_eq!(back.wanted().len(), 1);
        Ok(())
    }
}
