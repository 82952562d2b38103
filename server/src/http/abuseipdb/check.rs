//! The AbuseIPDB reads: `GET /api/v2/check` (one address: the reputation's score, the reports
//! about it within `maxAgeInDays`, and with `verbose` the latest of them) and
//! `GET /api/v2/blacklist` (the community list as the key's tier serves it).

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use palisade_api::abuseipdb::{
    AbuseErrors, BlacklistEntry, BlacklistMeta, BlacklistResponse, CheckData, CheckReport, CheckResponse,
};
use time::Duration;
use tracing::instrument;

use super::dialect::{Caller, Failure, Params, admit, answer, confidence_score, invalid, now, whitelisted};
use crate::domain::abuseipdb::{categories_of, categories_of_scenario};
use crate::domain::lists::COMMUNITY;
use crate::domain::net::parse_ip;
use crate::domain::special::special_purpose;
use crate::domain::time::rfc3339;
use crate::http::extract::ClientAddr;
use crate::serving;
use crate::state::AppState;
use crate::store::ReportQuery;

/// Most reports a verbose check lists (AbuseIPDB lists up to 10,000; Palisade the newest 100).
pub const MAX_VERBOSE_REPORTS: u32 = 100;

/// Most entries a blacklist answer holds when the caller gives no `limit` and the tier does not
/// cap the list lower (AbuseIPDB's own default is 10,000).
pub const DEFAULT_BLACKLIST_LIMIT: usize = 10_000;

/// Everything known about one address: `ipAddress` (required), `maxAgeInDays` (1–365, default
/// 30), `verbose` (adds the latest reports; comments only of the caller's own account). An
/// address nobody reported answers 200 with zeros, as AbuseIPDB does. Costs one lookup.
#[utoipa::path(get, path = "/check", tag = "abuseipdb", security(("abuseipdb_key" = [])),
    params(("ipAddress" = String, Query, description = "IPv4 or IPv6 address"),
           ("maxAgeInDays" = Option<u16>, Query, description = "1 to 365, default 30"),
           ("verbose" = Option<String>, Query, description = "present: list the latest reports"),
           ("key" = Option<String>, Query, description = "the API key, when not sent in the `Key` header")),
    responses((status = 200, body = CheckResponse),
        (status = 401, description = "missing, unknown or revoked key", body = AbuseErrors),
        (status = 422, description = "an invalid parameter", body = AbuseErrors),
        (status = 429, description = "over the tier's quota; see `Retry-After`", body = AbuseErrors)))]
#[instrument(skip_all)]
pub async fn check_address(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let (caller, (ip, max_age, verbose), decision) =
        match admit(&state, client, &headers, &params, |params, _| parse_check(params)).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
    answer(check(&state, &caller, ip, max_age, verbose).await.map(|data| Json(CheckResponse { data }).into_response()), &decision)
}

/// `ipAddress` and `maxAgeInDays` as check and reports take them, and `verbose`.
pub fn parse_check(params: &Params) -> Result<(IpAddr, i64, bool), Failure> {
    let text = params.get("ipAddress").ok_or_else(|| invalid("ipAddress", "The ip address field is required."))?;
    let ip = parse_ip(text).ok_or_else(|| {
        invalid(
            "ipAddress",
            format!("The ip address {:?} must be a valid IPv4 or IPv6 address.", crate::domain::abuseipdb::truncate(text, 64)),
        )
    })?;
    let max_age = params.int("maxAgeInDays", 1..=365, Some(30))?.unwrap_or(30);
    Ok((ip, max_age, params.flag("verbose")))
}

async fn check(state: &AppState, caller: &Caller, ip: IpAddr, max_age: i64, verbose: bool) -> Result<CheckData, Failure> {
    let now = now(state);
    let public = special_purpose(ip).is_none();
    let enrichment = state.enricher.lookup(ip);
    let mut data = CheckData {
        ip_address: ip.to_string(),
        is_public: public,
        ip_version: if ip.is_ipv4() { 4 } else { 6 },
        is_whitelisted: None,
        abuse_confidence_score: 0,
        country_code: enrichment.country.clone(),
        country_name: None,
        usage_type: None,
        isp: enrichment.as_name.clone(),
        domain: None,
        hostnames: Vec::new(),
        is_tor: false,
        total_reports: 0,
        num_distinct_users: 0,
        last_reported_at: None,
        reports: verbose.then(Vec::new),
    };
    if !public {
        // Never reported nor scored: special-purpose addresses are refused at ingest.
        return Ok(data);
    }
    let found = state.lookup.find(ip, now.unix_timestamp()).await?;
    data.abuse_confidence_score = confidence_score(&found.reputation);
    data.is_whitelisted = Some(whitelisted(&found.reputation));
    let summary = state.lookup.report_summary(ip, max_age, now).await?;
    data.total_reports = summary.reports;
    data.num_distinct_users = summary.reporters;
    data.last_reported_at = summary.last_reported_at.map(rfc3339);
    if verbose {
        let query = ReportQuery {
            value: ip.to_string(),
            reported_since: now - Duration::days(max_age),
            received_since: None,
            machine: None,
            limit: MAX_VERBOSE_REPORTS,
            offset: 0,
        };
        let reports = state.store.recent_reports(&query).await?;
        let listed = reports.into_iter().map(|report| shown_report(state, caller, report)).collect();
        data.reports = Some(listed);
    }
    Ok(data)
}

/// One stored report as `caller` may see it: its comment only when `caller`'s account made it,
/// its categories as reported (a signal made otherwise under one of the table's scenarios gets
/// that category, any other signal none), its reporter as an opaque number.
pub fn shown_report(state: &AppState, caller: &Caller, report: crate::store::RecentReport) -> CheckReport {
    let mut categories = categories_of(&report.extra);
    if categories.is_empty() {
        categories = categories_of_scenario(&report.scenario);
    }
    let own = report.account == Some(caller.key.account);
    CheckReport {
        reported_at: rfc3339(report.stop_at),
        comment: if own { report.message } else { String::new() },
        categories,
        reporter_id: reporter_id(&state.jwt, report.account, report.machine),
        reporter_country_code: state.enricher.lookup(report.origin_ip).country,
    }
}

/// The `reporterId` of a report: an opaque number per account (per machine for a machine in no
/// account), the same in every answer and on every replica (keyed with the server secret), from
/// which neither the account nor how many accounts exist can be read. At most 2^53 - 1, so
/// JavaScript clients read it exactly.
pub fn reporter_id(
    keys: &crate::auth::jwt::JwtKeys,
    account: Option<crate::store::AccountKey>,
    machine: crate::store::MachineKey,
) -> u64 {
    let label = match account {
        Some(account) => format!("abuseipdb reporter account {}", account.0),
        None => format!("abuseipdb reporter machine {}", machine.0),
    };
    let derived = crate::auth::jwt::derive_key(keys.console_key(), label.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&derived[..8]);
    u64::from_be_bytes(first) >> 11
}

/// The addresses the key's account receives: the community list as its tier serves it (the
/// most recently listed entries first when capped), filtered. `confidenceMinimum` (25–100,
/// default 100), `limit`, `plaintext`, `ipVersion` (4 or 6), `onlyCountries` / `exceptCountries`
/// (comma-separated ISO codes; one of them). Every community entry scores 100 (`docs/abuseipdb.md`),
/// so the minimum filters nothing out. Costs one lookup; a tier without the community list is 403.
#[utoipa::path(get, path = "/blacklist", tag = "abuseipdb", security(("abuseipdb_key" = [])),
    params(("confidenceMinimum" = Option<u8>, Query, description = "25 to 100, default 100"),
           ("limit" = Option<u32>, Query, description = "most entries; the tier's cap applies"),
           ("plaintext" = Option<String>, Query, description = "present: one address per line, text/plain"),
           ("ipVersion" = Option<u8>, Query, description = "4 or 6"),
           ("onlyCountries" = Option<String>, Query, description = "comma-separated ISO country codes"),
           ("exceptCountries" = Option<String>, Query, description = "comma-separated ISO country codes"),
           ("key" = Option<String>, Query, description = "the API key, when not sent in the `Key` header")),
    responses((status = 200, body = BlacklistResponse),
        (status = 401, description = "missing, unknown or revoked key", body = AbuseErrors),
        (status = 403, description = "the key's tier does not include the community list", body = AbuseErrors),
        (status = 422, description = "an invalid parameter", body = AbuseErrors),
        (status = 429, description = "over the tier's quota; see `Retry-After`", body = AbuseErrors)))]
#[instrument(skip_all)]
pub async fn get_blacklist(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let (_, query, decision) = match admit(&state, client, &headers, &params, BlacklistQuery::parse).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    answer(blacklist(&state, &query).await, &decision)
}

struct BlacklistQuery {
    /// The tier's cap on the community list.
    cap: usize,
    limit: usize,
    plaintext: bool,
    version: Option<u8>,
    only: Vec<String>,
    except: Vec<String>,
}

impl BlacklistQuery {
    fn parse(params: &Params, caller: &Caller) -> Result<Self, Failure> {
        params.int("confidenceMinimum", 25..=100, Some(100))?;
        let Some(&cap) = caller.tier.blocklists.get(COMMUNITY) else {
            return Err(Failure::Forbidden(format!(
                "The {:?} tier does not include the community blocklist, which the blacklist serves.",
                caller.key.tier
            )));
        };
        let cap = if cap == 0 { usize::MAX } else { usize::try_from(cap).unwrap_or(usize::MAX) };
        let asked = params.int("limit", 1..=10_000_000, None)?.map(|l| l as usize);
        let limit = asked.unwrap_or(DEFAULT_BLACKLIST_LIMIT);
        let version = params.int("ipVersion", 4..=6, None)?.map(|v| v as u8);
        if version == Some(5) {
            return Err(invalid("ipVersion", "The ipVersion must be 4 or 6."));
        }
        let countries = |name: &'static str| -> Result<Vec<String>, Failure> {
            let Some(text) = params.get(name) else { return Ok(Vec::new()) };
            let codes: Vec<String> = text.split(',').map(|c| c.trim().to_ascii_uppercase()).filter(|c| !c.is_empty()).collect();
            if codes.len() > 300 || codes.iter().any(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase())) {
                return Err(invalid(name, format!("The {name} must be comma-separated two-letter ISO country codes.")));
            }
            Ok(codes)
        };
        let (only, except) = (countries("onlyCountries")?, countries("exceptCountries")?);
        if !only.is_empty() && !except.is_empty() {
            return Err(invalid("onlyCountries", "Give onlyCountries or exceptCountries, not both."));
        }
        Ok(BlacklistQuery { cap, limit, plaintext: params.flag("plaintext"), version, only, except })
    }
}

async fn blacklist(state: &AppState, query: &BlacklistQuery) -> Result<Response, Failure> {
    let served = state.distribution.lists.served(COMMUNITY).await?;
    // The tier's view first, exactly as its blocklist pull chooses it, so that filters can never
    // reach entries beyond the tier's cap.
    let view = if served.entries.len() > query.cap { serving::top(&served.entries, query.cap) } else { served.entries.to_vec() };
    let mut entries: Vec<_> = view
        .iter()
        .filter(|entry| match query.version {
            Some(4) => entry.net.addr().is_ipv4(),
            Some(6) => entry.net.addr().is_ipv6(),
            _ => true,
        })
        .map(|entry| (entry, state.enricher.lookup(entry.net.addr()).country))
        .filter(|(_, country)| {
            let code = country.as_deref().unwrap_or("");
            (query.only.is_empty() || query.only.iter().any(|c| c == code)) && !query.except.iter().any(|c| c == code)
        })
        .collect();
    // The most recently listed first, as a capped list is chosen.
    entries.sort_by_key(|(entry, _)| std::cmp::Reverse(entry.seq));
    entries.truncate(query.limit);
    let generated = now(state);
    if query.plaintext {
        let mut text = String::new();
        for (entry, _) in &entries {
            text.push_str(&entry.value().to_string());
            text.push('\n');
        }
        let mut response = text.into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return Ok(response);
    }
    let data = entries
        .into_iter()
        .map(|(entry, country)| BlacklistEntry {
            ip_address: entry.value().to_string(),
            country_code: country,
            abuse_confidence_score: 100,
            last_reported_at: rfc3339(entry.listed_at()),
        })
        .collect();
    Ok(Json(BlacklistResponse { meta: BlacklistMeta { generated_at: rfc3339(generated) }, data }).into_response())
}
