//! The agent's configuration: one typed [`AgentConfig`] read once from a TOML file
//! (`/etc/palisade/agent.toml` unless `--config` or `PALISADE_AGENT_CONFIG` say otherwise), with
//! defaults for every key, unknown keys refused, and [`AgentConfig::validate`] turning a bad value
//! into a sentence. `deploy/agent.toml` is the annotated example; a test loads it.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::detect::{DetectorSpec, Detectors, builtin_specs};

/// Where the configuration is read from when no path is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/palisade/agent.toml";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or type.
    #[error("invalid configuration {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole agent configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Machine credentials file (written by `palisade register`, mode 0600).
    pub credentials: PathBuf,
    /// Directory of the spool and the sync state.
    pub state_dir: PathBuf,
    /// Name this host gives itself in the signals it sends (`machine_id` of each item).
    pub agent_name: String,
    /// Pushing signals.
    pub push: PushConfig,
    /// Pulling blocklists.
    pub sync: SyncConfig,
    /// Where lists and bans are applied.
    pub apply: ApplyConfig,
    /// Local bans for the agent's own detections.
    pub ban: BanConfig,
    /// Addresses that are never banned.
    pub allowlist: AllowlistConfig,
    /// Log files `palisade watch` follows.
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Extra detectors, added to the built-in ones.
    #[serde(rename = "detector")]
    pub detectors: Vec<DetectorSpec>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            credentials: PathBuf::from("/etc/palisade/credentials.json"),
            state_dir: PathBuf::from("/var/lib/palisade"),
            agent_name: "palisade-agent".into(),
            push: PushConfig::default(),
            sync: SyncConfig::default(),
            apply: ApplyConfig::default(),
            ban: BanConfig::default(),
            allowlist: AllowlistConfig::default(),
            sources: Vec::new(),
            detectors: Vec::new(),
        }
    }
}

/// `[push]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Seconds between two pushes of the spool while it is not empty.
    pub interval_secs: u64,
    /// Signals per request (the server accepts up to 1000 by default).
    pub batch_size: usize,
    /// Longest wait between retries after failures, in seconds (the wait doubles from `interval_secs`).
    pub max_backoff_secs: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig { interval_secs: 10, batch_size: 100, max_backoff_secs: 300 }
    }
}

/// `[sync]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Seconds between two pulls.
    pub interval_secs: u64,
    /// Lists to pull (`community` is the consensus list; operator lists by name).
    pub lists: Vec<String>,
    /// Also pull the pools this machine receives: its account's (what the account's own
    /// machines report, listed at once) and those other accounts share with it.
    pub pools: bool,
    /// `palisade watch` holds a long-poll on each pool it receives and syncs as soon as one
    /// changes, so an entry reported by one of the account's machines is applied within a second
    /// or two rather than at the next `interval_secs` (the community list, which changes at every
    /// consensus step, keeps to the interval).
    pub long_poll: bool,
    /// Most entries applied; beyond it the rest are left out (and reported).
    pub max_entries: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { interval_secs: 60, lists: vec!["community".into()], pools: true, long_poll: true, max_entries: 200_000 }
    }
}

/// Which firewall the agent drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// An nftables table with its sets and an input chain, through `nft -f`.
    #[default]
    Nftables,
    /// ipsets swapped in through `ipset restore` (referencing them in iptables is yours).
    Ipset,
    /// A plain file of CIDRs, replaced atomically.
    File,
    /// A program called with the changes on its standard input.
    Command,
    /// Nothing is applied (report and share only).
    None,
}

/// `[apply]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplyConfig {
    /// `nftables`, `ipset`, `file`, `command` or `none`.
    pub backend: BackendKind,
    /// nftables table name (family `inet`).
    pub table: String,
    /// Program that runs nft (a wrapper such as `["ip", "netns", "exec", "fw", "nft"]` works).
    pub nft: Vec<String>,
    /// Prefix of the ipset names (`PREFIX-v4`, `PREFIX-v6`, `PREFIX-local-v4`, `PREFIX-local-v6`).
    pub ipset_prefix: String,
    /// Program that runs ipset.
    pub ipset: Vec<String>,
    /// File written by the `file` backend.
    pub file: Option<PathBuf>,
    /// Program (and arguments) called by the `command` backend.
    pub command: Vec<String>,
}

impl Default for ApplyConfig {
    fn default() -> Self {
        ApplyConfig {
            backend: BackendKind::Nftables,
            table: "palisade".into(),
            nft: vec!["nft".into()],
            ipset_prefix: "palisade".into(),
            ipset: vec!["ipset".into()],
            file: None,
            command: Vec::new(),
        }
    }
}

/// `[ban]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BanConfig {
    /// Whether the agent's own detections are banned locally (they are reported either way).
    pub enabled: bool,
    /// How long a local ban lasts, in seconds.
    pub duration_secs: u64,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig { enabled: true, duration_secs: 4 * 3600 }
    }
}

/// `[allowlist]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowlistConfig {
    /// Addresses and CIDRs never banned (your offices, monitoring, bastions).
    pub ranges: Vec<IpNet>,
    /// Protect this host's own addresses (read with `ip -j addr`).
    pub own_addresses: bool,
}

impl Default for AllowlistConfig {
    fn default() -> Self {
        AllowlistConfig { ranges: Vec::new(), own_addresses: true }
    }
}

/// One `[[source]]`: a log file to follow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The file.
    pub path: PathBuf,
    /// Read it from the beginning at start-up instead of only new lines.
    #[serde(default)]
    pub from_start: bool,
}

impl AgentConfig {
    /// Reads and validates the configuration at `path`. When `explicit` is false (the default
    /// path) a missing file means the defaults; a file that was asked for must exist.
    pub fn load(path: &Path, explicit: bool) -> Result<AgentConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
        };
        let config = AgentConfig::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_path_buf(), message },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values a type cannot express; the error says which key and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.push.interval_secs == 0 {
            return invalid("push.interval_secs must be at least 1".into());
        }
        if !(1..=1000).contains(&self.push.batch_size) {
            return invalid(format!("push.batch_size must be between 1 and 1000, not {}", self.push.batch_size));
        }
        if self.push.max_backoff_secs < self.push.interval_secs {
            return invalid("push.max_backoff_secs must not be shorter than push.interval_secs".into());
        }
        if self.sync.interval_secs == 0 {
            return invalid("sync.interval_secs must be at least 1".into());
        }
        if self.sync.max_entries == 0 {
            return invalid("sync.max_entries must be at least 1".into());
        }
        if let Some(bad) = self.sync.lists.iter().find(|l| !is_identifier(l, 64, &['-', '_', '.'])) {
            return invalid(format!("sync.lists: {bad:?} is not a list name (lowercase letters, digits, - _ .)"));
        }
        if self.ban.duration_secs == 0 {
            return invalid("ban.duration_secs must be at least 1".into());
        }
        if self.agent_name.is_empty() || self.agent_name.len() > 128 {
            return invalid("agent_name must have 1 to 128 characters".into());
        }
        match self.apply.backend {
            BackendKind::Nftables => {
                if !is_identifier(&self.apply.table, 32, &['_']) {
                    return invalid(format!(
                        "apply.table: {:?} is not a usable nftables table name (lowercase letters, digits, _)",
                        self.apply.table
                    ));
                }
                if self.apply.nft.is_empty() {
                    return invalid("apply.nft must name a program".into());
                }
            }
            BackendKind::Ipset => {
                // ipset names are at most 31 characters; the longest suffix added is `-local-v4`.
                if !is_identifier(&self.apply.ipset_prefix, 22, &['-', '_']) {
                    return invalid(format!(
                        "apply.ipset_prefix: {:?} must be 1 to 22 lowercase letters, digits, - or _",
                        self.apply.ipset_prefix
                    ));
                }
                if self.apply.ipset.is_empty() {
                    return invalid("apply.ipset must name a program".into());
                }
            }
            BackendKind::File if self.apply.file.is_none() => {
                return invalid("apply.backend = \"file\" needs apply.file (the path to write)".into());
            }
            BackendKind::Command if self.apply.command.is_empty() => {
                return invalid("apply.backend = \"command\" needs apply.command (the program to run)".into());
            }
            _ => {}
        }
        if let Some(source) = self.sources.iter().find(|s| s.path.as_os_str().is_empty()) {
            return invalid(format!("source.path must not be empty ({source:?})"));
        }
        self.detectors().map(|_| ())
    }

    /// The built-in detectors plus the configured ones, compiled.
    pub fn detectors(&self) -> Result<Detectors, ConfigError> {
        let mut specs = builtin_specs();
        specs.extend(self.detectors.iter().cloned());
        Detectors::new(specs).map_err(|e| ConfigError::Invalid(format!("detector: {e}")))
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }

    /// The sync state file.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}

fn is_identifier(text: &str, max: usize, extra: &[char]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_means_the_defaults() -> Result<(), ConfigError> {
        let config = AgentConfig::parse("")?;
        assert_eq!(config.apply.backend, BackendKind::Nftables);
        assert_eq!(config.sync.lists, ["community"]);
        Ok(())
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let error = AgentConfig::parse("[sync]\nintervall_secs = 5\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("intervall_secs"), "{error}");
    }

    #[test]
    fn inconsistent_values_are_explained() {
        for (text, expected) in [
            ("[apply]\nbackend = \"file\"\n", "needs apply.file"),
            ("[apply]\nbackend = \"command\"\n", "needs apply.command"),
            ("[apply]\ntable = \"Bad Name\"\n", "apply.table"),
            ("[push]\nbatch_size = 0\n", "push.batch_size"),
            ("[sync]\ninterval_secs = 0\n", "sync.interval_secs"),
            ("[ban]\nduration_secs = 0\n", "ban.duration_secs"),
            (
                "[[detector]]\nname = \"x\"\nscenario = \"s\"\npattern = \"no ip group\"\ncapacity = 1\nleak_speed = 1\n",
                "detector",
            ),
        ] {
            let error = AgentConfig::parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(expected), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn a_missing_default_file_is_the_defaults_but_a_missing_explicit_file_is_an_error() {
        let missing = Path::new("/nonexistent/palisade/agent.toml");
        assert!(AgentConfig::load(missing, false).is_ok());
        assert!(matches!(AgentConfig::load(missing, true), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn the_deploy_example_loads() -> Result<(), ConfigError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent.toml");
        let config = AgentConfig::load(&path, true)?;
        assert!(!config.sources.is_empty(), "the example follows at least one log file");
        Ok(())
    }
}
