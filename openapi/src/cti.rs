//! CrowdSec CTI ("smoke") bodies: `SmokeItem` and the bulk answer, shaped as CrowdSec's Go
//! `cticlient` decodes them. Every key is always emitted; `null` only where the protocol allows it
//! (ints such as `ip_range_score`, `full_age`, `days_age` and every score are never null).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything known about one address (`GET /v2/smoke/{ip}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SmokeItem {
    /// The address asked about.
    pub ip: String,
    /// The enclosing announced range, when a range database is configured.
    pub ip_range: Option<String>,
    /// 0–5 score of the range.
    pub ip_range_score: u8,
    /// The enclosing /24 (IPv4) or /64 (IPv6).
    pub ip_range_24: Option<String>,
    /// Reputation class of that /24.
    pub ip_range_24_reputation: Option<String>,
    /// 0–5 score of that /24.
    pub ip_range_24_score: Option<u8>,
    /// AS name.
    pub as_name: Option<String>,
    /// AS number.
    pub as_num: Option<u32>,
    /// Reverse DNS name (never resolved by this server).
    pub reverse_dns: Option<String>,
    /// Where the address is.
    pub location: Location,
    /// `malicious`, `suspicious`, `known`, `safe`, `benign` or `unknown`.
    pub reputation: String,
    /// `high`, `medium`, `low` or `none`.
    pub confidence: String,
    /// `high`, `medium`, `low` or `none`.
    pub background_noise: String,
    /// 0–10.
    pub background_noise_score: Option<u8>,
    /// Whether the address is a known proxy or VPN exit (not tracked: always false).
    pub proxy_or_vpn: bool,
    /// First and last sightings.
    pub history: History,
    /// Behaviours derived from the reported scenarios.
    pub behaviors: Vec<Named>,
    /// Classifications and false-positive classes.
    pub classifications: Classifications,
    /// Scenarios reported.
    pub attack_details: Vec<AttackDetail>,
    /// MITRE ATT&CK techniques (not tracked: always empty).
    pub mitre_techniques: Vec<Named>,
    /// CVEs (not tracked: always empty).
    pub cves: Vec<String>,
    /// Blocklists the address is in (`list:<name>`).
    pub references: Vec<Named>,
    /// Share of reports by target country, in percent (not tracked: always empty).
    pub target_countries: BTreeMap<String, u32>,
    /// 0–5 scores per window.
    pub scores: Scores,
}

/// `location` of a [`SmokeItem`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Location {
    /// ISO 3166 alpha-2 country.
    pub country: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
}

/// `history` of a [`SmokeItem`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct History {
    /// RFC 3339 with `+00:00`.
    pub first_seen: Option<String>,
    /// RFC 3339 with `+00:00`.
    pub last_seen: Option<String>,
    /// Days between first sighting and now.
    pub full_age: u32,
    /// Days between first and last sighting.
    pub days_age: u32,
}

/// A named, labelled, described item (behaviour, classification, reference, technique).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Named {
    /// Machine name, e.g. `ssh:bruteforce`.
    pub name: String,
    /// Short label.
    pub label: String,
    /// One sentence.
    pub description: String,
}

/// `classifications` of a [`SmokeItem`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Classifications {
    /// Why blocking it would be a mistake (`cdn`, `crawler`, `resolver`…).
    pub false_positives: Vec<Named>,
    /// Other classes; `community-blocklist` when in the community list.
    pub classifications: Vec<Named>,
}

/// One scenario in `attack_details`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AttackDetail {
    /// Scenario, e.g. `crowdsecurity/ssh-bf`.
    pub name: String,
    /// Label.
    pub label: String,
    /// Description.
    pub description: String,
    /// References (none tracked).
    pub references: Vec<String>,
}

/// The four windows of `scores`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Scores {
    /// About three months.
    pub overall: Score,
    /// Last 24 hours.
    pub last_day: Score,
    /// Last 7 days.
    pub last_week: Score,
    /// Last 30 days.
    pub last_month: Score,
}

/// One window's 0–5 scores.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Score {
    /// How often it is reported.
    pub aggressiveness: u8,
    /// How dangerous the reported behaviour is.
    pub threat: u8,
    /// How independent and trusted the reporters are.
    pub trust: u8,
    /// How unusual it is for its network.
    pub anomaly: u8,
    /// Overall.
    pub total: u8,
}

/// `GET /v2/smoke?ips=…`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SmokeBulkResponse {
    /// Items found.
    pub total: u64,
    /// Addresses not found.
    pub not_found: u64,
    /// The items found.
    pub items: Vec<SmokeItem>,
}

/// The body of every CTI error (`{"message": …}`); CTI clients read only the status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CtiMessage {
    /// E.g. `IP address information not found`.
    pub message: String,
}
