//! AbuseIPDB-compatible bodies (API v2, and the v1 `report/json` answer fail2ban's older action
//! reads), with AbuseIPDB's own camelCase field names, so tools written for AbuseIPDB decode them
//! unchanged. Every field AbuseIPDB always sends is always emitted (`null` where it sends null).

use serde::{Deserialize, Serialize};

/// AbuseIPDB's error body: `{"errors":[{"detail", "status", "source"?}]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AbuseErrors {
    /// One entry per problem (Palisade sends one).
    pub errors: Vec<AbuseError>,
}

/// One AbuseIPDB error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AbuseError {
    /// For a person.
    pub detail: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// The parameter at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<AbuseErrorSource>,
}

/// Which parameter an error is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AbuseErrorSource {
    /// Parameter name as AbuseIPDB spells it (`ipAddress`, `categories`, …).
    pub parameter: String,
}

/// `GET /api/v2/check` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CheckResponse {
    /// The address's report.
    pub data: CheckData,
}

/// What is known about one address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CheckData {
    /// The address asked about, canonical.
    pub ip_address: String,
    /// Whether it is globally routable.
    pub is_public: bool,
    /// 4 or 6.
    pub ip_version: u8,
    /// Whether it is in a never-block range (`null` for non-public addresses).
    pub is_whitelisted: Option<bool>,
    /// 0–100, from Palisade's reputation (see `docs/abuseipdb.md`).
    pub abuse_confidence_score: u8,
    /// ISO country code, when known.
    pub country_code: Option<String>,
    /// Country name (only with `verbose`; Palisade sends the code, it keeps no name table).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country_name: Option<String>,
    /// Palisade has no usage-type database: always `null`.
    pub usage_type: Option<String>,
    /// The AS name, when an AS database is configured.
    pub isp: Option<String>,
    /// Palisade resolves no domains: always `null`.
    pub domain: Option<String>,
    /// Palisade resolves no names: always empty.
    pub hostnames: Vec<String>,
    /// Palisade has no Tor exit list: always `false`.
    pub is_tor: bool,
    /// Reports within `maxAgeInDays`.
    pub total_reports: u64,
    /// Distinct reporters (accounts, or machines outside any account) within `maxAgeInDays`.
    pub num_distinct_users: u64,
    /// Latest report within `maxAgeInDays` (ISO 8601).
    pub last_reported_at: Option<String>,
    /// The latest reports, newest first, only with `verbose`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reports: Option<Vec<CheckReport>>,
}

/// One report in a verbose check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// When the reported activity happened (ISO 8601).
    pub reported_at: String,
    /// The comment, only to the account that wrote it; `""` to everybody else.
    pub comment: String,
    /// AbuseIPDB category numbers (empty for reports that were not made through this API).
    pub categories: Vec<u8>,
    /// An opaque number per reporting account (or machine), stable, never an identity.
    pub reporter_id: u64,
    /// Country of the reporter's address, when known.
    pub reporter_country_code: Option<String>,
}

/// `GET /api/v2/check-block` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CheckBlockResponse {
    /// The network and its reported addresses.
    pub data: CheckBlockData,
}

/// A network and the addresses in it reported within `maxAgeInDays`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CheckBlockData {
    /// The network's first address.
    pub network_address: String,
    /// Its netmask, dotted.
    pub netmask: String,
    /// First host address.
    pub min_address: String,
    /// Last host address.
    pub max_address: String,
    /// How many host addresses it has.
    pub num_possible_hosts: u64,
    /// The special-purpose range it is in, or `Internet`.
    pub address_space_desc: String,
    /// Its reported addresses.
    pub reported_address: Vec<BlockAddress>,
}

/// One reported address of a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BlockAddress {
    /// The address.
    pub ip_address: String,
    /// Reports within `maxAgeInDays`.
    pub num_reports: u64,
    /// The latest of them (ISO 8601).
    pub most_recent_report: String,
    /// 0–100, as `check` scores it.
    pub abuse_confidence_score: u8,
    /// ISO country code, when known.
    pub country_code: Option<String>,
}

/// `GET /api/v2/reports` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ReportsResponse {
    /// One page of reports.
    pub data: ReportsPage,
}

/// One page of the reports about an address, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReportsPage {
    /// Reports within `maxAgeInDays` (at most the 10,000 that can be paged through).
    pub total: u64,
    /// This page, from 1.
    pub page: u64,
    /// Reports on this page.
    pub count: u64,
    /// Page size asked for.
    pub per_page: u64,
    /// The last page (1 when there are none).
    pub last_page: u64,
    /// The next page, when there is one.
    pub next_page_url: Option<String>,
    /// The previous page, when there is one.
    pub previous_page_url: Option<String>,
    /// The reports, as a verbose check lists them.
    pub results: Vec<CheckReport>,
}

/// `POST /api/v2/report` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ReportResponse {
    /// The address reported and its score.
    pub data: ReportData,
}

/// The address reported, and its score now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReportData {
    /// The address, canonical.
    pub ip_address: String,
    /// 0–100 (the report itself counts once the consensus worker has read it).
    pub abuse_confidence_score: u8,
}

/// The v1 `POST /report/json` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct V1ReportResponse {
    /// The address reported.
    pub ip: String,
    /// `true` on a 200, `false` on a refusal.
    pub success: bool,
    /// Why a report was refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

/// The form of `POST /api/v2/report` (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ReportForm {
    /// The address reported.
    pub ip: String,
    /// Comma-separated AbuseIPDB category numbers (1–23).
    pub categories: String,
    /// Free text (log lines); the reporter's own address is removed, at most 1,024 bytes kept.
    #[serde(default)]
    pub comment: Option<String>,
    /// When the activity happened (ISO 8601); default: now.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The API key, when not sent in the `Key` header.
    #[serde(default)]
    pub key: Option<String>,
}

/// The form (or query) of the v1 `POST /report/json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct V1ReportForm {
    /// The API key.
    pub key: String,
    /// Comma-separated AbuseIPDB category numbers (1–23).
    pub category: String,
    /// The address reported.
    pub ip: String,
    /// Free text (log lines).
    #[serde(default)]
    pub comment: Option<String>,
}

/// `GET /api/v2/blacklist` answer (JSON form).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BlacklistResponse {
    /// When it was generated.
    pub meta: BlacklistMeta,
    /// The listed addresses.
    pub data: Vec<BlacklistEntry>,
}

/// Metadata of a blacklist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BlacklistMeta {
    /// ISO 8601.
    pub generated_at: String,
}

/// One blacklisted address (or range: Palisade lists ranges too).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BlacklistEntry {
    /// The address, or a CIDR range.
    pub ip_address: String,
    /// ISO country code, when known.
    pub country_code: Option<String>,
    /// 0–100.
    pub abuse_confidence_score: u8,
    /// When it was listed (ISO 8601).
    pub last_reported_at: String,
}

/// The multipart form of `POST /api/v2/bulk-report`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BulkReportForm {
    /// AbuseIPDB's CSV file: the header `IP,Categories,ReportDate,Comment`, then one report per
    /// line (categories comma-separated inside double quotes, `ReportDate` ISO 8601); at most
    /// 10,000 reports and 2 MB.
    #[cfg_attr(feature = "schema", schema(value_type = String, format = Binary))]
    pub csv: String,
}

/// `POST /api/v2/bulk-report` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BulkReportResponse {
    /// What was stored and what was refused.
    pub data: BulkReportData,
}

/// The outcome of one bulk report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BulkReportData {
    /// Reports stored.
    pub saved_reports: u64,
    /// The refused lines, in file order.
    pub invalid_reports: Vec<InvalidReport>,
}

/// One refused line of a bulk report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InvalidReport {
    /// Why, for a person.
    pub error: String,
    /// The line's `IP` field as sent (at most 64 bytes of it).
    pub input: String,
    /// The line's number among the file's reports: 1 is the first line after the header (blank
    /// lines are not counted).
    pub row_number: u64,
}

/// `DELETE /api/v2/clear-address` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ClearAddressResponse {
    /// How many reports were deleted.
    pub data: ClearAddressData,
}

/// The outcome of clearing an address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClearAddressData {
    /// The key's own reports of the address that were deleted.
    pub num_reports_deleted: u64,
}
