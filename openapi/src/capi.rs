//! CrowdSec Central API (CAPI) bodies, as CrowdSec 1.4.6 (`/v2`) and newer (`/v3`) send and read
//! them. Field names, optionality and defaults follow what real clients put on the wire, which is
//! looser than the official swagger in places (noted per field).

use serde::{Deserialize, Serialize};

/// `POST /v{2,3}/watchers`: register a machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// Machine login. CrowdSec generates 48 characters `[a-zA-Z0-9]`.
    pub machine_id: String,
    /// Machine password. CrowdSec generates 64 characters `[a-zA-Z0-9]`.
    pub password: String,
}

/// `POST /v{2,3}/watchers/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// Machine login.
    pub machine_id: String,
    /// Machine password.
    pub password: String,
    /// Hub scenarios installed on the machine; may be empty, in any order.
    #[serde(default)]
    pub scenarios: Vec<String>,
}

/// Answer to a successful login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// Always 200 (CrowdSec ignores it).
    pub code: u16,
    /// Token expiry, RFC 3339 (CrowdSec parses it and logs in again a minute before).
    pub expire: String,
    /// A signed JWT with an `exp` claim.
    pub token: String,
}

/// `POST /v{2,3}/watchers/enroll`: attach the machine to an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// The account's enrollment key.
    pub attachment_key: String,
    /// Display name for the machine (`""` when not given).
    #[serde(default)]
    pub name: String,
    /// Free-form tags (`[]` when not given).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Re-attach even when the machine is already enrolled.
    #[serde(default)]
    pub overwrite: bool,
}

/// `{"message": ...}`: CAPI's success and error body. Palisade's error body is a superset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MessageResponse {
    /// Human-readable outcome.
    pub message: String,
}

/// Where a signal's attacker is: CrowdSec's `source` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Source {
    /// `Ip` or `Range` (any case). Other scopes are rejected per item.
    pub scope: String,
    /// The address or CIDR range.
    pub value: String,
    /// The address, repeated by CrowdSec for `Ip` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The range the agent's GeoIP placed the address in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// AS name from the agent's GeoIP database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
    /// AS number from the agent's GeoIP database, as a string (CrowdSec's type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<String>,
    /// Country code from the agent's GeoIP database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cn: Option<String>,
    /// Latitude from the agent's GeoIP database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude from the agent's GeoIP database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

/// One decision attached to a signal (CrowdSec ≥ 1.5); stored as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SignalDecision {
    /// Go duration, e.g. `4h`.
    #[serde(default)]
    pub duration: String,
    /// Local decision id; may be 0.
    #[serde(default)]
    pub id: i64,
    /// `crowdsec` or `cscli`.
    #[serde(default)]
    pub origin: String,
    /// Scenario that produced the decision.
    #[serde(default)]
    pub scenario: String,
    /// Decision scope.
    #[serde(default)]
    pub scope: String,
    /// `ban`, `captcha`, …
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Decided value.
    #[serde(default)]
    pub value: String,
    /// Decision UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Expiry, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Simulated decisions are never acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
}

/// One `{"key","value"}` context pair (CrowdSec ≥ 1.5, only when context sharing is on).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ContextItem {
    /// Context key.
    pub key: String,
    /// Context value.
    pub value: String,
}

/// One item of `POST /v{2,3}/signals`. Every field any CrowdSec version sends is accepted; the
/// server validates items one by one so a bad item never costs the good ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SignalItem {
    /// The *local* agent name that raised the alert (not the CAPI login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Free text describing the alert.
    #[serde(default)]
    pub message: String,
    /// Scenario (bucket) name, e.g. `crowdsecurity/ssh-bf`.
    pub scenario: String,
    /// SHA-256 of the hub scenario file; `""` for custom scenarios.
    #[serde(default)]
    pub scenario_hash: String,
    /// Hub version; `""` or `?` when tainted.
    #[serde(default)]
    pub scenario_version: String,
    /// `certified`, `tainted`, `custom` or `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_trust: Option<String>,
    /// The attacker.
    pub source: Source,
    /// First event of the alert, RFC 3339.
    pub start_at: String,
    /// Last event of the alert, RFC 3339.
    pub stop_at: String,
    /// Alert creation time (absent in 1.4.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Alert id (never set by CrowdSec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<i64>,
    /// Alert UUID (CrowdSec ≥ 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Decisions the agent's profiles produced (CrowdSec ≥ 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<SignalDecision>>,
    /// Shared context; `null` unless context sharing is on (CrowdSec ≥ 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<ContextItem>>,
    /// Alert origin, e.g. `crowdsec`, `waf` (CrowdSec ≥ 1.7.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One item the server refused, by its index in the request array.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct RejectedSignal {
    /// Zero-based index in the request array.
    pub index: usize,
    /// Stable snake_case reason, e.g. `invalid_ip`, `reserved_address`.
    pub code: String,
    /// What was wrong, for a person.
    pub message: String,
}

/// Answer to `POST /v{2,3}/signals`. CrowdSec reads only that it is 2xx JSON; our agent reads the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SignalsResponse {
    /// `OK` when everything was stored, otherwise a summary.
    pub message: String,
    /// Items stored by this request.
    pub accepted: usize,
    /// Items already stored by an earlier delivery of the same batch (not stored again).
    pub duplicates: usize,
    /// Items refused, with the reason.
    pub rejected: Vec<RejectedSignal>,
}

/// `POST /v{2,3}/metrics/`: LAPI inventory, sent at start-up and every 30 minutes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MetricsRequest {
    /// LAPI version string (sent by CrowdSec although the swagger omits it).
    #[serde(default)]
    pub apil_version: String,
    /// Bouncers registered on the LAPI.
    #[serde(default)]
    pub bouncers: Vec<MetricsBouncer>,
    /// Agents registered on the LAPI.
    #[serde(default)]
    pub machines: Vec<MetricsMachine>,
}

/// A bouncer in [`MetricsRequest`]; dates are opaque strings (their format changed across versions).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MetricsBouncer {
    /// Bouncer name given by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_name: Option<String>,
    /// Last pull, as formatted by the LAPI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pull: Option<String>,
    /// Bouncer type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bouncer version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An agent in [`MetricsRequest`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MetricsMachine {
    /// Last push, as formatted by the LAPI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push: Option<String>,
    /// Last update, as formatted by the LAPI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    /// Agent name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Agent version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A v2 stream decision. CrowdSec 1.4.6 dereferences all six fields without checks: every one
/// must be present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Decision {
    /// Go duration syntax (`h`, `m`, `s`; never `d`).
    pub duration: String,
    /// `CAPI` (community list) or `lists` (a subscribed list).
    pub origin: String,
    /// Scenario, or the list name for `lists`.
    pub scenario: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// `ban` or `captcha`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Address or CIDR.
    pub value: String,
}

/// `GET /v2/decisions/stream`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DecisionsStreamV2 {
    /// Decisions to add.
    #[serde(default)]
    pub new: Vec<Decision>,
    /// Decisions to remove.
    #[serde(default)]
    pub deleted: Vec<Decision>,
}

/// A value and its duration in a v3 `new` group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DecisionValue {
    /// Address or CIDR.
    pub value: String,
    /// Go duration.
    pub duration: String,
}

/// A v3 `new` group: decisions of one scenario and scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct NewDecisionsGroup {
    /// Scenario.
    pub scenario: String,
    /// `ip` or `range`.
    pub scope: String,
    /// The decisions.
    pub decisions: Vec<DecisionValue>,
}

/// A v3 `deleted` group: values of one scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DeletedDecisionsGroup {
    /// `ip` or `range`.
    pub scope: String,
    /// Values to remove.
    pub decisions: Vec<String>,
}

/// A presigned blocklist link in the v3 stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BlocklistLink {
    /// List name (becomes the decisions' scenario).
    pub name: String,
    /// Self-authorising URL; plain text, one value per line.
    pub url: String,
    /// `ban` or `captcha`.
    pub remediation: String,
    /// `ip` or `range`.
    pub scope: String,
    /// Go duration applied to every value.
    pub duration: String,
}

/// A presigned allowlist link in the v3 stream (JSON Lines body).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AllowlistLink {
    /// Allowlist name.
    pub name: String,
    /// What it holds.
    pub description: String,
    /// Self-authorising URL.
    pub url: String,
    /// Stable id.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `links` of the v3 stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct StreamLinks {
    /// Subscribed blocklists.
    pub blocklists: Vec<BlocklistLink>,
    /// Allowlists to apply locally.
    pub allowlists: Vec<AllowlistLink>,
}

/// `GET /v3/decisions/stream`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DecisionsStreamV3 {
    /// Decisions to add, grouped by scenario and scope.
    pub new: Vec<NewDecisionsGroup>,
    /// Values to remove, grouped by scope.
    pub deleted: Vec<DeletedDecisionsGroup>,
    /// Presigned list links.
    pub links: StreamLinks,
}
