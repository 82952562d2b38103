//! Palisade's own bodies: the one error body, operations answers, and the admin API.

use serde::{Deserialize, Serialize};

/// The one error body of every endpoint. CrowdSec clients read `message` (and ignore the rest).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable snake_case code, never renamed (e.g. `invalid_credentials`, `body_too_large`).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request id, also in the `x-request-id` response header.
    pub request_id: String,
    /// Per-field problems, for validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Field path, e.g. `machine_id` or `[3].source.value`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct HealthResponse {
    /// `ok`, or what is not.
    pub status: String,
    /// Storage backend: `sqlite` or `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Server version.
    pub version: String,
}

/// `POST /v1/admin/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CreateAccountRequest {
    /// Unique account name (`[A-Za-z0-9._-]`, 1–64 characters).
    pub name: String,
}

/// An account (an organisation owning machines).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AccountView {
    /// Account name.
    pub name: String,
    /// Verification level set by the operator.
    pub level: String,
    /// Machines enrolled in it.
    pub machines: u64,
    /// RFC 3339.
    pub created_at: String,
}

/// A freshly created enrollment key: shown once, stored hashed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrollKeyCreated {
    /// The key itself; use it with `cscli console enroll KEY` or `palisade enroll KEY`.
    pub key: String,
    /// The first characters, kept to identify the key later.
    pub prefix: String,
    /// Account the key enrolls into.
    pub account: String,
}

/// `POST /v1/admin/machines`: create a machine as the operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CreateMachineRequest {
    /// Machine login (`[A-Za-z0-9._-]`, 1–128 characters).
    pub name: String,
    /// Mark it as one of the operator's own sensors (honeypots).
    #[serde(default)]
    pub sensor: bool,
}

/// Credentials of a machine the operator created: the password is shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MachineCredentials {
    /// Machine login.
    pub machine_id: String,
    /// Generated password (64 characters).
    pub password: String,
}

/// A machine as the operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MachineView {
    /// Machine login.
    pub machine_id: String,
    /// Display name given at enrollment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Account it is enrolled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Operator's own sensor.
    pub sensor: bool,
    /// `register` (self-registered) or `operator`.
    pub created_by: String,
    /// Trust score in [0, 1].
    pub trust: f64,
    /// Scenarios declared at the last login.
    pub scenarios: Vec<String>,
    /// Network the machine last connected from (its /24 or /48).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_prefix: Option<String>,
    /// Agent version from its last metrics push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Signals stored from it.
    pub signals: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<String>,
    /// When the operator disabled it (RFC 3339); absent for a machine in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
}

/// `PUT /v1/admin/machines/{machine_id}/disabled`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SetDisabledRequest {
    /// `true` refuses the machine's login and every token it holds; `false` lets it log in again
    /// (the tokens it held stay refused).
    pub disabled: bool,
}

/// An admin token as the operator sees it (the token itself is shown only once, at creation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AdminTokenView {
    /// First characters of the token, to tell tokens apart and to revoke one.
    pub prefix: String,
    /// RFC 3339.
    pub created_at: String,
    /// Last use (RFC 3339), recorded at most once a minute per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// Revocation time (RFC 3339); a revoked token authenticates nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A stored signal as the operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SignalView {
    /// Monotonic id (the order the consensus worker reads signals in).
    pub id: i64,
    /// Reporting machine's login.
    pub machine_id: String,
    /// The local agent name inside the reporting installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `ip` or `range`.
    pub scope: String,
    /// Canonical address or CIDR.
    pub value: String,
    /// Scenario.
    pub scenario: String,
    /// `certified`, `tainted`, `custom`, `manual` or empty.
    pub scenario_trust: String,
    /// RFC 3339.
    pub start_at: String,
    /// RFC 3339.
    pub stop_at: String,
    /// RFC 3339, server clock.
    pub received_at: String,
    /// The reporter's network (/24 or /48).
    pub origin_prefix: String,
    /// Attacker's AS number, from the server's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    /// Attacker's AS name, from the server's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
    /// Attacker's country, from the server's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// `GET /v1/admin/signals`: one page, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SignalPage {
    /// The signals.
    pub items: Vec<SignalView>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

/// `GET /v1/ips/{ip}/explanation`: why an address is (or is not) listed, without naming reporters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ExplanationResponse {
    /// The address asked about.
    pub ip: String,
    /// The entry it falls under (the address, or its IPv6 /64).
    pub target: String,
    /// Whether it is on the community list.
    pub listed: bool,
    /// Rule that listed it: `sensor`, `crowd` or `broad`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `ban` or `captcha`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Independent clusters (accounts, or machines without one) reporting it in the evidence window.
    pub clusters: u64,
    /// Distinct ASes those reports came from.
    pub ases: u64,
    /// Scenarios reported.
    pub scenarios: Vec<String>,
    /// RFC 3339; absent when never reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// RFC 3339, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at: Option<String>,
    /// RFC 3339, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Reporting machines: admin view only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supporters: Option<Vec<String>>,
}

/// A machine's trust and the evidence behind it (admin view).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct MachineTrustView {
    /// Machine login.
    pub machine_id: String,
    /// Trust in [0, 1] now.
    pub trust: f64,
    /// Trust as the machine itself is shown it (canary penalties surface in batches).
    pub visible_trust: f64,
    /// Decayed positive evidence (leading reports).
    pub good_evidence: f64,
    /// Decayed negative evidence (never-block reports, upheld false positives).
    pub bad_evidence: f64,
    /// Leading reports credited, ever.
    pub leads: u64,
    /// Age ramp factor in [0, 1].
    pub age_ramp: f64,
    /// Account verification level.
    pub level: String,
    /// Operator's sensor.
    pub sensor: bool,
    /// RFC 3339 time it reported a canary, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zeroed_at: Option<String>,
}

/// `PUT /v1/admin/machines/{machine_id}/sensor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SetSensorRequest {
    /// Whether the machine is one of the operator's sensors.
    pub sensor: bool,
}

/// `PUT /v1/admin/accounts/{name}/level`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SetLevelRequest {
    /// `anonymous`, `email`, `verified`, `paid` or `partner`.
    pub level: String,
}

/// `POST /v1/admin/canaries`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CanaryRequest {
    /// Address or CIDR the operator controls and that never sends traffic.
    pub value: String,
    /// Operator's note.
    #[serde(default)]
    pub note: String,
}

/// A canary (admin view only: canaries are never shown anywhere else).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CanaryView {
    /// Address or CIDR.
    pub value: String,
    /// Operator's note.
    pub note: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/admin/allowlists`: never-block ranges, given as a provider file's text or a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AllowlistImportRequest {
    /// Name of the source (e.g. `googlebot`, `cloudflare`); re-importing a source adds to it.
    pub source: String,
    /// `cdn`, `crawler`, `resolver`, `infrastructure` or `custom`.
    pub category: String,
    /// The file's text: JSON, CSV or one range per line.
    pub text: String,
}

/// Outcome of an allowlist import.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AllowlistImportResponse {
    /// Ranges found in the text.
    pub found: u64,
    /// Of which new.
    pub added: u64,
}

/// A never-block range.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AllowlistEntryView {
    /// Address or CIDR.
    pub value: String,
    /// Category.
    pub category: String,
    /// Source.
    pub source: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/admin/false-positives`: the operator upholds a false-positive report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FalsePositiveRequest {
    /// The listed address or range.
    pub value: String,
}

/// A queued request to the consensus leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct QueuedResponse {
    /// Request id.
    pub id: i64,
    /// What happens next.
    pub message: String,
}

/// One served blocklist (`GET /v1/blocklists`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BlocklistView {
    /// Name, as used in `/v1/blocklists/{name}`.
    pub name: String,
    /// `consensus` (the community list), `block` or `allow` (operator lists) or `pool` (an account's private pool).
    pub kind: String,
    /// Newest seq: the cursor to pass as `since` to get the changes after it.
    pub seq: i64,
    /// Current members.
    pub entries: usize,
    /// Oldest cursor a delta can be computed from; older ones get 410 and must download the full list.
    pub oldest_cursor: i64,
    /// The server is still reading the list from its database (after a start): `seq` is the
    /// stored one, `entries` and `oldest_cursor` are 0 until it has; ask again shortly.
    #[serde(default)]
    pub loading: bool,
}

/// `POST /v1/admin/blocklists`: create an operator-managed list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CreateListRequest {
    /// Name: lowercase letters, digits, `-`, `_`, `.`, 1 to 64 characters (not `community`).
    pub name: String,
    /// `block` (default) or `allow`.
    #[serde(default)]
    pub kind: Option<String>,
    /// What the list is for.
    #[serde(default)]
    pub description: String,
    /// Who may read it: `public` (every machine), `subscribers` (default: the machines
    /// subscribed to it) or `operator` (no machine nor API key).
    #[serde(default)]
    pub visibility: Option<String>,
}

/// `PATCH /v1/admin/blocklists/{name}`: change a list's settings.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct UpdateListRequest {
    /// `public`, `subscribers` or `operator`; unchanged when absent.
    #[serde(default)]
    pub visibility: Option<String>,
}

/// An operator-managed list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CustomListView {
    /// Name.
    pub name: String,
    /// `block` or `allow`.
    pub kind: String,
    /// What the list is for.
    pub description: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Who may read it: `public`, `subscribers` or `operator`.
    pub visibility: String,
}

/// `POST /v1/admin/blocklists/{name}/entries`: add and remove entries.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ListEntriesRequest {
    /// Addresses or CIDRs to add (or renew).
    #[serde(default)]
    pub add: Vec<String>,
    /// Addresses or CIDRs to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// `ban` (default) or `captcha`, for added entries.
    #[serde(default)]
    pub remediation: Option<String>,
    /// Lifetime of added entries in seconds (default one year).
    #[serde(default)]
    pub duration_secs: Option<i64>,
}

/// What a change to a list did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ListEntriesResponse {
    /// Entries added or renewed.
    pub added: usize,
    /// Entries removed.
    pub removed: usize,
    /// Lines or values refused, with the reason; the rest was applied.
    pub rejected: Vec<FieldError>,
}

/// `POST /v1/admin/feeds`: subscribe the server to an external list. The feed is a block list
/// of its own (visibility and subscriptions as for any operator-managed list), refreshed on a
/// schedule.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CreateFeedRequest {
    /// The list's name: lowercase letters, digits, `-`, `_`, `.`, 1 to 64 characters.
    pub name: String,
    /// `http://` or `https://` URL of the list.
    pub url: String,
    /// `plain`, `csv`, `netset` (FireHOL), `spamhaus` (DROP/EDROP), `ipsum`, `palisade` (another
    /// Palisade's `/v1/blocklists/{name}`) or `auto` (default: told apart by content).
    #[serde(default)]
    pub format: Option<String>,
    /// What the list is for.
    #[serde(default)]
    pub description: String,
    /// Who may read it: `public`, `subscribers` (default) or `operator`.
    #[serde(default)]
    pub visibility: Option<String>,
    /// Seconds between refreshes: 300 to 604800 (default 3600).
    #[serde(default)]
    pub every_secs: Option<i64>,
    /// Sent as `x-api-key` (the `palisade` format); stored, never shown back.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Largest body accepted, in bytes: 1024 to 268435456 (default 33554432, 32 MiB).
    #[serde(default)]
    pub max_bytes: Option<i64>,
    /// Most entries accepted: 1 to 10000000 (default 1000000). A larger copy is refused whole.
    #[serde(default)]
    pub max_entries: Option<i64>,
    /// `ipsum` only: the fewest blacklists an address must be on, 1 to 100 (default 3).
    #[serde(default)]
    pub min_count: Option<i64>,
    /// Seconds an entry stays listed after the last copy that held it was loaded: at least twice
    /// `every_secs`, at most ten years (default 7 days).
    #[serde(default)]
    pub lifetime_secs: Option<i64>,
}

impl std::fmt::Debug for CreateFeedRequest {
    /// Everything but the API key, which shows only whether it is set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateFeedRequest")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("format", &self.format)
            .field("description", &self.description)
            .field("visibility", &self.visibility)
            .field("every_secs", &self.every_secs)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("max_bytes", &self.max_bytes)
            .field("max_entries", &self.max_entries)
            .field("min_count", &self.min_count)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

/// An external feed and the state of its refreshes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FeedView {
    /// The list's name.
    pub name: String,
    /// Where it is fetched.
    pub url: String,
    /// How it is read.
    pub format: String,
    /// Who may read the list.
    pub visibility: String,
    /// Seconds between refreshes.
    pub every_secs: i64,
    /// Whether an API key is sent (it is never shown).
    pub has_api_key: bool,
    /// Largest body accepted, in bytes.
    pub max_bytes: i64,
    /// Most entries accepted.
    pub max_entries: i64,
    /// `ipsum` only: the fewest blacklists an address must be on.
    pub min_count: i64,
    /// Seconds an entry stays listed after the last load that held it.
    pub lifetime_secs: i64,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last attempt, RFC 3339.
    pub last_attempt_at: Option<String>,
    /// Last attempt that loaded a copy or found it unchanged, RFC 3339.
    pub last_success_at: Option<String>,
    /// Why the last attempt failed; absent when it succeeded. The last good copy stands.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub failures: i64,
    /// Entries of the last copy loaded.
    pub entries: i64,
    /// Whether the last attempt succeeded (or none was made yet).
    pub up: bool,
}

/// `POST /v1/admin/feeds/{name}/refresh`: how the refresh went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FeedRefreshResponse {
    /// `loaded`, `not_modified` (the source answered 304), `failed` (the last good copy stands)
    /// or `busy` (another refresh was under way).
    pub outcome: String,
    /// Entries added.
    pub added: usize,
    /// Entries whose lifetime was renewed.
    pub renewed: usize,
    /// Entries the source no longer lists.
    pub removed: usize,
    /// Entries dropped for lying in never-block space.
    pub never_block: usize,
    /// Lines that were not an address or CIDR.
    pub rejected: usize,
    /// The first few of those, `line N: why`.
    pub reasons: Vec<String>,
    /// The feed after the refresh.
    pub feed: FeedView,
}

/// `POST /v1/admin/accounts/{name}/api-keys` and `POST /v1/account/api-keys` (no fields yet).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CreateApiKeyRequest {}

/// A freshly created API key: shown once, stored hashed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ApiKeyCreated {
    /// The key itself; send it as `x-api-key`.
    pub key: String,
    /// Its visible prefix, to identify and revoke it.
    pub prefix: String,
    /// Owning account.
    pub account: String,
    /// The account's tier.
    pub tier: String,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    /// Visible prefix.
    pub prefix: String,
    /// Owning account.
    pub account: String,
    /// The account's tier.
    pub tier: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
    /// RFC 3339, last recorded use.
    pub last_used_at: Option<String>,
}

/// `PUT /v1/admin/accounts/{name}/tier`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SetTierRequest {
    /// A tier named in the server configuration.
    pub tier: String,
}

/// `GET /v1/ips/{ip}`: the CTI data in Palisade's shape, plus the listing explanation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct IpLookupResponse {
    /// The address.
    pub ip: String,
    /// `malicious`, `suspicious`, `known`, `safe`, `benign` or `unknown`.
    pub reputation: String,
    /// `high`, `medium`, `low` or `none`.
    pub confidence: String,
    /// `high`, `medium`, `low` or `none`.
    pub background_noise: String,
    /// AS number.
    pub as_num: Option<u32>,
    /// AS name.
    pub as_name: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Enclosing announced range.
    pub ip_range: Option<String>,
    /// RFC 3339.
    pub first_seen: Option<String>,
    /// RFC 3339.
    pub last_seen: Option<String>,
    /// Behaviour names (`ssh:bruteforce`, …).
    pub behaviors: Vec<String>,
    /// Scenarios reported.
    pub scenarios: Vec<String>,
    /// False-positive classes (`cdn`, `crawler`, `resolver`, …).
    pub false_positives: Vec<String>,
    /// Blocklists the address is in.
    pub blocklists: Vec<String>,
    /// Reporting clusters, bucketed: `0`, `1`, `2-4`, `5-9`, `10+`.
    pub reporters: String,
    /// 0–5 scores per window, as in the CTI answer.
    pub scores: crate::cti::Scores,
    /// Why it is (or is not) listed.
    pub explanation: ExplanationResponse,
}

/// `POST /v1/admin/accounts/{name}/login-link`: a console sign-in link for an account's users.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LoginLinkResponse {
    /// Open it in a browser to sign in to the account's console; usable until it expires.
    pub url: String,
    /// Account it signs in to.
    pub account: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// The calling machine as it may see itself (`GET /v1/account/machine`): its trust only in words,
/// never the number, so a machine cannot watch its score to time an attack.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct OwnMachineView {
    /// Login.
    pub machine_id: String,
    /// The account it is enrolled in.
    pub account: Option<String>,
    /// Whether the operator marked it as a sensor.
    pub sensor: bool,
    /// Trust in words: `none yet`, `low`, `building`, `established` or `high`.
    pub trust: String,
    /// Signals it has sent.
    pub signals: u64,
}

/// How an account's private pool lists: what one or several of its own machines report is
/// listed for all of them at once, without consensus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PoolPolicyView {
    /// Whether the pool lists anything.
    pub enabled: bool,
    /// Distinct machines of the account that must report an address within `duration_secs`.
    pub min_machines: u32,
    /// How long a listing lasts after the report that made or renewed it, in seconds.
    pub duration_secs: i64,
    /// `ban` or `captcha`.
    pub remediation: String,
    /// Scenario patterns that count (`*` matches any run of characters).
    pub allow: Vec<String>,
    /// Scenario patterns that never count.
    pub deny: Vec<String>,
}

/// An account's private pool: its policy, its size and who else receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PoolView {
    /// Account name.
    pub account: String,
    /// The pool's list name (`/v1/blocklists/{list}`; the scenario CrowdSec shows for it).
    pub list: String,
    /// The policy in force.
    pub policy: PoolPolicyView,
    /// Whether the account has its own policy (otherwise the server's `[pools]` default applies).
    pub own_policy: bool,
    /// Entries listed now.
    pub entries: usize,
    /// Accounts this pool is shared with (read-only).
    pub shared_with: Vec<String>,
    /// Accounts whose pools this account receives.
    pub received_from: Vec<String>,
}

/// Changes to an account's pool policy; a field left out keeps its current value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PoolPolicyRequest {
    /// Whether the pool lists anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Distinct machines that must report (1 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_machines: Option<u32>,
    /// Listing lifetime in seconds (60 to 2592000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<i64>,
    /// `ban` or `captcha`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Scenario patterns that count (at most 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Scenario patterns that never count (at most 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

/// An enrollment key as the operator sees it (the key itself is shown only once, at creation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnrollKeyView {
    /// First characters of the key, to tell keys apart and to revoke one.
    pub prefix: String,
    /// The account it enrolls machines into.
    pub account: String,
    /// RFC 3339.
    pub created_at: String,
    /// Machines it enrolled (re-enrollments counted).
    pub uses: u64,
    /// Its latest enrollment (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// Revocation time (RFC 3339); a revoked key enrolls nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// `DELETE /v1/admin/accounts/{name}`: what deleting the account removed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AccountDeletedResponse {
    /// The deleted account.
    pub account: String,
    /// Machines that were attached to it and are now without an account.
    pub machines_detached: Vec<String>,
    /// Machines deleted with it (`?machines=delete`).
    pub machines_deleted: Vec<String>,
    /// API keys deleted (the live ones are refused on every replica at once).
    pub api_keys: u64,
    /// Enrollment keys deleted.
    pub enroll_keys: u64,
}

/// `POST /v1/admin/delistings`: take an address or range off the community list without
/// penalising the machines that reported it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DelistRequest {
    /// The address or range.
    pub value: String,
    /// Keep it off the list, whoever reports it, for this long: seconds, or with s, m, h or d
    /// (`90m`, `7d`; at most 365 days). Without it, fresh reports may list it again at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AuditEntryView {
    /// Id; pass the last one of a page as `before` for the next.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who: `token:<prefix>` (an admin token) or `cli:<os user>` (the command line on the host).
    pub actor: String,
    /// What: a stable name, the admin API's operationId (`delete_machine`, `create_api_key`…).
    pub action: String,
    /// Which resource (a machine login, an account, an address…); empty when none.
    pub target: String,
    /// The action's parameters, without secrets.
    pub detail: serde_json::Value,
    /// The HTTP client's address; absent for the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The HTTP status answered (refused attempts are recorded too); absent for the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// `GET /v1/admin/audit`: one page, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntryView>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}
