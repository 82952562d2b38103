//! What a detector is, as written in the agent's configuration (`[[detector]]` tables) and as
//! the built-ins are defined: the pattern, the bucket it feeds and the scenario it reports.

use std::time::Duration;

/// One detector: a regex with a named `ip` capture feeding a leaky bucket per IP.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    /// Unique name, e.g. `sshd-auth-failure`; detections carry it.
    pub name: String,
    /// Scenario reported with the signal; a CrowdSec hub name where one matches.
    pub scenario: String,
    /// Regex (Rust `regex` syntax) with a `(?P<ip>...)` capture holding the address to blame.
    pub pattern: String,
    /// Events the bucket holds; the event that exceeds it triggers (so `capacity + 1` in a burst).
    pub capacity: u32,
    /// Time for one event to leak out: seconds as a number, or `"10s"`, `"1m"`, `"500ms"`.
    #[serde(with = "super::duration")]
    pub leak_speed: Duration,
    /// After a detection, the same address is not detected again by this detector for this long.
    #[serde(with = "super::duration", default = "default_blackout")]
    pub blackout: Duration,
    /// Literals of which every line the pattern matches contains at least one. Lines with none
    /// skip the regex. Leave empty if unsure: a wrong prefilter hides matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefilter: Vec<String>,
    /// Regex for lines the pattern matches that must not count (e.g. requests for static files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// What one event is, in the plural, for the detection message ("failed SSH logins").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

fn default_blackout() -> Duration {
    Duration::from_secs(60)
}

/// A TOML (or JSON) document of custom detectors: `[[detector]]` tables.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorFile {
    /// The detectors, in file order.
    #[serde(default)]
    pub detector: Vec<DetectorSpec>,
}
