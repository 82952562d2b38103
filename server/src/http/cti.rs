//! The CTI-compatible lookup, `GET /v2/smoke/{ip}` and `GET /v2/smoke?ips=a,b,c`, answering as
//! CrowdSec's CTI clients expect (protocol notes §7), including its quirks:
//!
//! - a missing, unknown or revoked `x-api-key` is **403**, never 401: the Go client treats only
//!   403 as a bad key (and then disables CTI for the process);
//! - an unknown address is 404 with `{"message": "IP address information not found"}`, which the
//!   Go client turns into an empty item rather than an error;
//! - over quota or burst is 429 with `Retry-After`;
//! - `ips` missing from the bulk route is 400.
//!
//! Two paged routes complete the CTI surface: `GET /v2/smoke/search?query=` (ipdex's search;
//! the query language is [`lookup::query`]) and `GET /v2/fire` (the Go client's `Fire` and
//! `FirePaginator`), both answering `_links` whose hrefs are this server's path and query (the
//! clients only test whether `next` is there). Pages start at 1; `limit` is 1 to
//! [`lookup::PAGE_MAX`]; `since` is `<n>h` or `<n>d`. A search page costs one lookup per item
//! on it (at least one); a `fire` page costs one lookup, as a blocklist pull does, and is
//! served only to tiers that include the community list (403 otherwise).
//!
//! Every answer to an authenticated caller carries `X-RateLimit-Limit`, `-Remaining` and
//! `-Reset` (seconds). Requests refused before counting (a malformed address, a bulk larger than
//! the tier allows) report the quota without spending it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use palisade_api::cti::{CtiMessage, FireResponse, Href, Links, SmokeBulkResponse, SmokeItem, SmokeSearchResponse};
use serde::Deserialize;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiKey, PathParam, QueryParams};
use super::quota::{charge, with_limit_headers};
use super::responses::{BadRequest, InvalidApiKey, RateLimited};
use crate::domain::lists::COMMUNITY;
use crate::error::ApiError;
use crate::lookup::{self, PAGE_MAX, Paging};
use crate::state::AppState;
use crate::use_case::UseCaseError;

/// CTI routes (merged at the root: `/v2/smoke…`, `/v2/fire`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(search_smoke))
        .routes(routes!(query_smoke))
        .routes(routes!(get_smoke))
        .routes(routes!(get_fire))
}

/// Items on a search page when `limit` is not given.
const SEARCH_DEFAULT_LIMIT: u64 = 10;

/// Items on a `fire` page when `limit` is not given.
const FIRE_DEFAULT_LIMIT: u64 = 100;

/// The longest `since` accepted, in days.
const SINCE_MAX_DAYS: i64 = 3650;

/// The CTI body of a 404.
pub const NOT_FOUND_MESSAGE: &str = "IP address information not found";

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(CtiMessage { message: NOT_FOUND_MESSAGE.into() })).into_response()
}

fn now_secs(state: &AppState) -> i64 {
    state.quotas.limiter.now_us() / 1_000_000
}

/// Everything known about one address, as a CTI `SmokeItem`. Costs one lookup.
#[utoipa::path(get, path = "/v2/smoke/{ip}", tag = "cti", security(("api_key" = [])),
    params(("ip" = String, Path, description = "IPv4 or IPv6 address")),
    responses((status = 200, body = SmokeItem), BadRequest,
        InvalidApiKey, (status = 404, body = CtiMessage),
        RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn get_smoke(State(state): State<AppState>, key: ApiKey, PathParam(ip): PathParam<String>) -> Response {
    let tier = state.quotas.tier(&key.record.tier);
    let ip = match lookup::parse(&ip).map_err(ApiError::from) {
        Ok(ip) => ip,
        Err(error) => {
            return with_limit_headers(error.into_response(), &state.quotas.limiter.check(&key.limit_key(), &tier, 0).await);
        }
    };
    let (decision, charged) = charge(&state, &key.limit_key(), &tier, 1).await;
    let response = match charged {
        Err(error) => error.into_response(),
        Ok(()) => {
            let now = now_secs(&state);
            match state.lookup.find(ip, now).await {
                Ok(found) if found.reputation.found => Json(lookup::smoke_item(&found, now)).into_response(),
                Ok(_) => not_found(),
                Err(error) => ApiError::from(error).into_response(),
            }
        }
    };
    with_limit_headers(response, &decision)
}

/// `GET /v2/smoke` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SmokeQuery {
    /// Comma-separated addresses.
    pub ips: Option<String>,
}

/// Several addresses at once (`ips=a,b,c`). Costs one lookup per address; more addresses than
/// the tier's `bulk_max` is 413 and costs nothing.
#[utoipa::path(get, path = "/v2/smoke", tag = "cti", security(("api_key" = [])), params(SmokeQuery),
    responses((status = 200, body = SmokeBulkResponse), BadRequest,
        InvalidApiKey, (status = 413, body = palisade_api::native::ErrorBody),
        RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn search_smoke(State(state): State<AppState>, key: ApiKey, QueryParams(query): QueryParams<SmokeQuery>) -> Response {
    let tier = state.quotas.tier(&key.record.tier);
    let parsed = parse_bulk(query.ips.as_deref(), tier.bulk_max);
    let ips = match parsed {
        Ok(ips) => ips,
        Err(error) => {
            return with_limit_headers(error.into_response(), &state.quotas.limiter.check(&key.limit_key(), &tier, 0).await);
        }
    };
    let (decision, charged) = charge(&state, &key.limit_key(), &tier, u32::try_from(ips.len()).unwrap_or(u32::MAX)).await;
    let response = match charged {
        Err(error) => error.into_response(),
        Ok(()) => {
            let now = now_secs(&state);
            let mut items = Vec::new();
            let mut failed = None;
            for ip in &ips {
                match state.lookup.find(*ip, now).await {
                    Ok(found) if found.reputation.found => items.push(lookup::smoke_item(&found, now)),
                    Ok(_) => {}
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            match failed {
                Some(error) => ApiError::from(error).into_response(),
                None => {
                    let total = items.len() as u64;
                    Json(SmokeBulkResponse { total, not_found: ips.len() as u64 - total, items }).into_response()
                }
            }
        }
    };
    with_limit_headers(response, &decision)
}

/// The addresses of a bulk query, deduplicated, in order.
fn parse_bulk(ips: Option<&str>, max: usize) -> Result<Vec<std::net::IpAddr>, ApiError> {
    let text = ips.map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| ApiError::BadRequest("ips is required".into()))?;
    let mut out: Vec<std::net::IpAddr> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip = lookup::parse(part)?;
        if !out.contains(&ip) {
            out.push(ip);
        }
        if out.len() > max {
            return Err(ApiError::TooManyItems(format!("at most {max} addresses per request on this tier")));
        }
    }
    if out.is_empty() {
        return Err(ApiError::BadRequest("ips is required".into()));
    }
    Ok(out)
}

/// `GET /v2/smoke/search` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SmokeSearchQuery {
    /// The search, e.g. `behaviors.name:"ssh:bruteforce" AND location.country:FR` (see the docs
    /// for the supported fields).
    pub query: Option<String>,
    /// Only addresses listed within this long: `<n>h` or `<n>d`.
    pub since: Option<String>,
    /// Page, from 1 (default 1).
    pub page: Option<String>,
    /// Items per page, 1 to 100 (default 10).
    pub limit: Option<String>,
}

/// The addresses of the community list a query matches, one page at a time, as CTI
/// `SmokeItem`s. Costs one lookup per item on the page (at least one, charged before the search:
/// over quota, nothing is searched). An unsupported query is 400 naming what is supported.
#[utoipa::path(get, path = "/v2/smoke/search", tag = "cti", security(("api_key" = [])), params(SmokeSearchQuery),
    responses((status = 200, body = SmokeSearchResponse), BadRequest, InvalidApiKey, RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn query_smoke(
    State(state): State<AppState>,
    key: ApiKey,
    QueryParams(params): QueryParams<SmokeSearchQuery>,
) -> Response {
    let tier = state.quotas.tier(&key.record.tier);
    let now = now_secs(&state);
    let parsed = (|| {
        let text = params
            .query
            .as_deref()
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest(format!("query is required; {}", lookup::query::SUPPORTED)))?;
        let query = lookup::query::parse(text).map_err(ApiError::BadRequest)?;
        let paging = parse_paging(params.page.as_deref(), params.limit.as_deref(), SEARCH_DEFAULT_LIMIT)?;
        let since = parse_since(params.since.as_deref(), now)?;
        Ok::<_, ApiError>((text, query, paging, since))
    })();
    let (text, query, paging, since) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            return with_limit_headers(error.into_response(), &state.quotas.limiter.check(&key.limit_key(), &tier, 0).await);
        }
    };
    // The first lookup is charged before searching, so a caller over its quota costs no scan.
    let (decision, charged) = charge(&state, &key.limit_key(), &tier, 1).await;
    if let Err(error) = charged {
        return with_limit_headers(error.into_response(), &decision);
    }
    let (total, entries) = match state.lookup.search(&query, since, paging, now).await {
        Ok(found) => found,
        Err(error) => return with_limit_headers(ApiError::from(error).into_response(), &decision),
    };
    let rest = u32::try_from(entries.len().saturating_sub(1)).unwrap_or(u32::MAX);
    let (decision, charged) = if rest == 0 { (decision, Ok(())) } else { charge(&state, &key.limit_key(), &tier, rest).await };
    let response = match charged {
        Err(error) => error.into_response(),
        Ok(()) => match state.lookup.items(&entries, now).await {
            Ok(items) => {
                let mut fixed = vec![("query", text.to_string())];
                fixed.extend(params.since.clone().map(|s| ("since", s)));
                let links = links("/v2/smoke/search", &fixed, paging, total);
                Json(SmokeSearchResponse { total, not_found: 0, items, links }).into_response()
            }
            Err(error) => ApiError::from(error).into_response(),
        },
    };
    with_limit_headers(response, &decision)
}

/// `GET /v2/fire` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FireQuery {
    /// Only addresses listed within this long: `<n>h` or `<n>d`.
    pub since: Option<String>,
    /// Page, from 1 (default 1).
    pub page: Option<String>,
    /// Items per page, 1 to 100 (default 100).
    pub limit: Option<String>,
}

/// The community blocklist as the key's tier receives it (its newest entries up to the tier's
/// size, in prefix order), one page at a time, each entry as a CTI `fire` item. Costs one lookup
/// per page. A tier without the community list is 403.
#[utoipa::path(get, path = "/v2/fire", tag = "cti", security(("api_key" = [])), params(FireQuery),
    responses((status = 200, body = FireResponse), BadRequest, InvalidApiKey, RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn get_fire(State(state): State<AppState>, key: ApiKey, QueryParams(params): QueryParams<FireQuery>) -> Response {
    let tier = state.quotas.tier(&key.record.tier);
    let now = now_secs(&state);
    let parsed = (|| {
        let size = *tier.blocklists.get(COMMUNITY).ok_or_else(|| {
            ApiError::Forbidden(format!("the {:?} tier does not include the community blocklist", key.record.tier))
        })?;
        let cap = if size == 0 { usize::MAX } else { usize::try_from(size).unwrap_or(usize::MAX) };
        let paging = parse_paging(params.page.as_deref(), params.limit.as_deref(), FIRE_DEFAULT_LIMIT)?;
        Ok::<_, ApiError>((cap, paging, parse_since(params.since.as_deref(), now)?))
    })();
    let (cap, paging, since) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            return with_limit_headers(error.into_response(), &state.quotas.limiter.check(&key.limit_key(), &tier, 0).await);
        }
    };
    let (decision, charged) = charge(&state, &key.limit_key(), &tier, 1).await;
    let response = match charged {
        Err(error) => error.into_response(),
        Ok(()) => {
            let answer = async {
                let (total, entries) = state.lookup.fire(cap, since, paging).await?;
                Ok::<_, UseCaseError>((total, state.lookup.fire_items(&entries, now).await?))
            };
            match answer.await {
                Ok((total, items)) => {
                    let fixed: Vec<(&str, String)> = params.since.clone().map(|s| ("since", s)).into_iter().collect();
                    Json(FireResponse { links: links("/v2/fire", &fixed, paging, total), items }).into_response()
                }
                Err(error) => ApiError::from(error).into_response(),
            }
        }
    };
    with_limit_headers(response, &decision)
}

/// `page` (from 1) and `limit` (1 to [`PAGE_MAX`], `default` when absent).
fn parse_paging(page: Option<&str>, limit: Option<&str>, default: u64) -> Result<Paging, ApiError> {
    let number = |name: &str, text: Option<&str>, default: u64, max: u64| -> Result<u64, ApiError> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(default);
        };
        match text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "{name} must be a whole number from 1 to {max}, not {:?}",
                text.chars().take(40).collect::<String>()
            ))),
        }
    };
    Ok(Paging { page: number("page", page, 1, u64::MAX)?, limit: number("limit", limit, default, PAGE_MAX)? })
}

/// `since` (`<n>h` or `<n>d`, at most [`SINCE_MAX_DAYS`] days) as the earliest listing time.
fn parse_since(since: Option<&str>, now: i64) -> Result<Option<i64>, ApiError> {
    let Some(text) = since.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let refused = || {
        ApiError::BadRequest(format!(
            "since must be a duration such as 24h or 30d (at most {SINCE_MAX_DAYS}d), not {:?}",
            text.chars().take(40).collect::<String>()
        ))
    };
    let (number, unit) = text.split_at(text.len() - text.chars().last().map_or(0, char::len_utf8));
    let hours = match unit {
        "h" => 1,
        "d" => 24,
        _ => return Err(refused()),
    };
    let n: i64 = number.parse().map_err(|_| refused())?;
    if n < 1 || n.checked_mul(hours).is_none_or(|h| h > SINCE_MAX_DAYS * 24) {
        return Err(refused());
    }
    Ok(Some(now - n * hours * 3600))
}

/// `_links` of a page: hrefs of `path` with the `fixed` parameters and the page's.
fn links(path: &str, fixed: &[(&str, String)], paging: Paging, total: u64) -> Links {
    let href = |page: u64| {
        let mut query: String = fixed.iter().map(|(name, value)| format!("{name}={}&", encode(value))).collect();
        query.push_str(&format!("page={page}&limit={}", paging.limit));
        Href { href: format!("{path}?{query}") }
    };
    Links {
        first: href(1),
        this: href(paging.page),
        prev: (paging.page > 1).then(|| href(paging.page - 1)),
        next: paging.has_next(total).then(|| href(paging.page + 1)),
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_refuses_out_of_range() {
        assert_eq!(parse_paging(None, None, 10).expect("defaults"), Paging { page: 1, limit: 10 });
        assert_eq!(parse_paging(Some("3"), Some("100"), 10).expect("given"), Paging { page: 3, limit: 100 });
        for (page, limit) in
            [("0", "1"), ("1", "0"), ("1", "101"), ("-1", "1"), ("x", "1"), ("1", "1e3"), ("99999999999999999999999", "1")]
        {
            assert!(parse_paging(Some(page), Some(limit), 10).is_err(), "{page} {limit}");
        }
    }

    #[test]
    fn since_is_hours_or_days() {
        assert_eq!(parse_since(Some("24h"), 100_000).expect("hours"), Some(100_000 - 86_400));
        assert_eq!(parse_since(Some("2d"), 1_000_000).expect("days"), Some(1_000_000 - 172_800));
        assert_eq!(parse_since(None, 5).expect("none"), None);
        for bad in ["30", "d", "0d", "-1d", "1w", "3651d", "1✓", "99999999999999999999d", "999999999999999999d"] {
            assert!(parse_since(Some(bad), 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_carry_the_parameters_and_stop_at_the_last_page() {
        let fixed = vec![("query", "behaviors.name:\"ssh:bruteforce\" AND x".to_string())];
        let first = links("/v2/smoke/search", &fixed, Paging { page: 1, limit: 2 }, 5);
        assert_eq!(first.this.href, "/v2/smoke/search?query=behaviors.name%3A%22ssh%3Abruteforce%22%20AND%20x&page=1&limit=2");
        assert!(first.prev.is_none());
        assert!(first.next.is_some_and(|n| n.href.ends_with("page=2&limit=2")));
        let last = links("/v2/fire", &[], Paging { page: 3, limit: 2 }, 5);
        assert_eq!((last.first.href.as_str(), last.next), ("/v2/fire?page=1&limit=2", None));
        assert_eq!(last.prev.map(|p| p.href), Some("/v2/fire?page=2&limit=2".into()));
    }
}
