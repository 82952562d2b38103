//! CrowdSec CTI bodies: `SmokeItem`, the bulk and query-search answers and the `fire` feed,
//! shaped as CrowdSec's Go `cticlient` (and ipdex, for the search) decodes them. Every key is
//! always emitted; `null` only where the protocol allows it (ints such as `ip_range_score`,
//! `ip_range_24_score`, `full_age`, `days_age` and every score are never null).

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
    pub ip_range_24: String,
    /// Reputation class of that /24 (`malicious`, `suspicious`, `known` or `unknown`, from its score).
    pub ip_range_24_reputation: String,
    /// 0–5 score of that /24: 5 with the whole range or three or more addresses in it listed,
    /// 4 with one or two, else from the address's own class (suspicious 2, known 1).
    pub ip_range_24_score: u8,
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
    /// MITRE ATT&CK techniques of the reported scenarios (`name` is the technique id).
    pub mitre_techniques: Vec<Named>,
    /// CVEs the reported scenarios exploit.
    pub cves: Vec<String>,
    /// Blocklists the address is in (`list:<name>`).
    pub references: Vec<Named>,
    /// Share of reports by the country of the reporting machines' networks, in percent rounded
    /// to tens, the ten largest (empty without a country database).
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
    /// References (none kept: always empty).
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

/// `GET /v2/smoke/search`: one page of the addresses a query matches. `total`, `not_found` and
/// `items` are the Go client's `SearchIPResponse`; `_links` is what ipdex pages with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SmokeSearchResponse {
    /// Addresses matched, over every page.
    pub total: u64,
    /// Always 0 (a query names no address that could be missing).
    pub not_found: u64,
    /// This page's items.
    pub items: Vec<SmokeItem>,
    /// Paging links.
    #[serde(rename = "_links")]
    pub links: Links,
}

/// One link of `_links`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Href {
    /// Path and query of the page (relative to the server).
    pub href: String,
}

/// `_links` of a paged CTI answer. `prev` is absent on the first page and `next` on the last
/// (the Go client's paginator stops when `next` is missing).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Links {
    /// The first page.
    pub first: Href,
    /// This page.
    #[serde(rename = "self")]
    pub this: Href,
    /// The page before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Href>,
    /// The page after, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Href>,
}

/// One listed address of `GET /v2/fire`: a [`SmokeItem`] plus its listing's state and expiry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FireItem {
    /// Everything known about the address.
    #[serde(flatten)]
    pub item: SmokeItem,
    /// `validated` (every item of the feed is a live listing).
    pub state: String,
    /// When the listing expires, UTC **without** a time zone (`2022-12-11T14:15:47.553000`), the
    /// one layout the Go client parses.
    pub expiration: String,
}

/// `GET /v2/fire`: one page of the community blocklist as the caller's tier receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FireResponse {
    /// Paging links.
    #[serde(rename = "_links")]
    pub links: Links,
    /// This page's items.
    pub items: Vec<FireItem>,
}
