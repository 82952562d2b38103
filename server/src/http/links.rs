//! Presigned list links, `GET /v1/links/blocklists/{name}` and `GET /v1/links/allowlists/{name}`:
//! what the v3 decision stream points CrowdSec (≥ 1.5) at for the operator lists a machine is
//! subscribed to. CrowdSec fetches them with a plain GET and no credential, so each URL
//! authorises itself: it names the list, the filter and an expiry, signed with HMAC-SHA256
//! ([`crate::auth::links`]). A bad or expired signature is 403 with our JSON error body.
//!
//! Wire facts (protocol notes §4.6): a block list link answers plain text, one value per line,
//! with `Last-Modified`, and 304 to an `If-Modified-Since` that is not older than the list's
//! last change; an allowlist link answers JSON Lines of `{value, description, created_at,
//! expiration}`. Answers come from the in-memory snapshots, never the database.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{PathParam, QueryParams};
use super::responses::{BadLinkSignature, NotFound};
use crate::auth::links::{LinkKind, LinkTarget};
use crate::domain::time::rfc3339;
use crate::error::ApiError;
use crate::state::AppState;

/// Routes under `/v1/links`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(get_blocklist_link)).routes(routes!(get_allowlist_link))
}

/// Query of a presigned link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Only entries with this remediation (block lists).
    pub remediation: Option<String>,
    /// Only entries with this scope, `ip` or `range` (block lists).
    pub scope: Option<String>,
    /// Unix time the link expires at.
    pub expires: Option<String>,
    /// HMAC-SHA256 signature, hex.
    pub sig: Option<String>,
}

/// Checks a link's signature and expiry; anything wrong is 403.
fn verify(state: &AppState, kind: LinkKind, name: &str, query: &LinkQuery) -> Result<LinkTarget, ApiError> {
    let incomplete = || {
        ApiError::Forbidden(
            "the link is incomplete (expires and sig are required): use the URL exactly as the decision stream gave it".into(),
        )
    };
    let expires = query.expires.as_deref().ok_or_else(incomplete)?.parse::<i64>().map_err(|_| incomplete())?;
    let signature = query.sig.as_deref().ok_or_else(incomplete)?;
    let target = LinkTarget {
        kind,
        name: name.to_string(),
        remediation: query.remediation.clone().unwrap_or_default(),
        scope: query.scope.clone().unwrap_or_default(),
        expires,
    };
    state.distribution.links.verify(&target, signature, OffsetDateTime::now_utc().unix_timestamp()).map_err(|e| {
        metrics::counter!("palisade_list_links_refused_total", "reason" => format!("{e:?}")).increment(1);
        ApiError::Forbidden(e.to_string())
    })?;
    Ok(target)
}

fn http_date(at: OffsetDateTime) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at.unix_timestamp().max(0) as u64))
}

/// Whether `If-Modified-Since` says the client has the list as of `changed_at` already.
fn not_modified(headers: &HeaderMap, changed_at: Option<OffsetDateTime>) -> bool {
    let (Some(changed_at), Some(since)) = (changed_at, headers.get(header::IF_MODIFIED_SINCE)) else { return false };
    let Some(since) = since.to_str().ok().and_then(|s| httpdate::parse_http_date(s).ok()) else { return false };
    let since = since.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    changed_at.unix_timestamp() <= since
}

/// Content of a block list link: one value per line (plain text), the list's entries with the
/// link's remediation and scope. `Last-Modified` is the list's last change; `If-Modified-Since`
/// at or after it answers 304. No credential: the signed URL is the authorisation.
#[utoipa::path(get, path = "/blocklists/{name}", tag = "blocklists", params(("name" = String, Path, description = "list name"), LinkQuery),
    responses((status = 200, description = "one value per line", content_type = "text/plain"),
              (status = 304, description = "unchanged since If-Modified-Since"),
              BadLinkSignature,
              NotFound))]
#[instrument(skip_all, fields(list = %name))]
pub async fn get_blocklist_link(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<LinkQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let target = verify(&state, LinkKind::Blocklist, &name, &query)?;
    // An operator-only list is served to no machine, through links issued earlier neither. A
    // pool's link was issued to a machine that receives it (and lasts the link's lifetime).
    let kind = state.distribution.list_kind(&name).await?;
    let servable = match kind.as_deref() {
        Some("pool") => true,
        Some("block") => state.distribution.lists.serves_subscribers(&name),
        _ => false,
    };
    if !servable {
        return Err(ApiError::NotFound(format!("no block list named {name:?}")));
    }
    let served = state.distribution.lists.served(&name).await?;
    let changed_at = state.distribution.lists.current(&name).and_then(|s| s.changed_at);
    if not_modified(&headers, changed_at) {
        return Ok(with_last_modified(StatusCode::NOT_MODIFIED.into_response(), changed_at));
    }
    let mut body = String::with_capacity(served.entries.len() * 16);
    for entry in served.entries.iter().filter(|e| {
        (target.remediation.is_empty() || e.remediation() == target.remediation)
            && (target.scope.is_empty() || e.scope() == target.scope)
    }) {
        writeln!(body, "{}", entry.value()).map_err(|e| ApiError::Internal(e.into()))?;
    }
    metrics::counter!("palisade_list_link_pulls_total", "kind" => "blocklist").increment(1);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(with_last_modified(response, changed_at))
}

/// One line of an allowlist link.
#[derive(Debug, serde::Serialize)]
struct AllowlistLine<'a> {
    value: &'a str,
    description: &'a str,
    created_at: String,
    expiration: String,
}

/// Content of an allowlist link: JSON Lines of `{value, description, created_at, expiration}`.
/// `Last-Modified` and `If-Modified-Since` as for block list links.
#[utoipa::path(get, path = "/allowlists/{name}", tag = "blocklists", params(("name" = String, Path, description = "list name"), LinkQuery),
    responses((status = 200, description = "JSON Lines", content_type = "application/x-ndjson"),
              (status = 304, description = "unchanged since If-Modified-Since"),
              BadLinkSignature,
              NotFound))]
#[instrument(skip_all, fields(list = %name))]
pub async fn get_allowlist_link(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<LinkQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    verify(&state, LinkKind::Allowlist, &name, &query)?;
    if state.distribution.list_kind(&name).await?.as_deref() != Some("allow")
        || !state.distribution.lists.serves_subscribers(&name)
    {
        return Err(ApiError::NotFound(format!("no allowlist named {name:?}")));
    }
    let served = state.distribution.lists.served(&name).await?;
    let changed_at = state.distribution.lists.current(&name).and_then(|s| s.changed_at);
    if not_modified(&headers, changed_at) {
        return Ok(with_last_modified(StatusCode::NOT_MODIFIED.into_response(), changed_at));
    }
    let description = state.distribution.lists.custom(&name).map(|c| c.description).unwrap_or_default();
    let mut body = Vec::with_capacity(served.entries.len() * 96);
    for entry in served.entries.iter() {
        let line = AllowlistLine {
            value: &entry.value().to_string(),
            description: &description,
            created_at: rfc3339(entry.listed_at()),
            expiration: rfc3339(entry.expires_at()),
        };
        serde_json::to_writer(&mut body, &line).map_err(|e| ApiError::Internal(e.into()))?;
        body.push(b'\n');
    }
    metrics::counter!("palisade_list_link_pulls_total", "kind" => "allowlist").increment(1);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(with_last_modified(response, changed_at))
}

fn with_last_modified(mut response: Response, changed_at: Option<OffsetDateTime>) -> Response {
    if let Some(value) = changed_at.and_then(|at| HeaderValue::from_str(&http_date(at)).ok()) {
        response.headers_mut().insert(header::LAST_MODIFIED, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_modified_since_at_or_after_the_change_is_not_modified() {
        let changed = time::macros::datetime!(2026-11-25 12:00:00 UTC);
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers, Some(changed)), "no header");
        headers.insert(header::IF_MODIFIED_SINCE, HeaderValue::from_str(&http_date(changed)).expect("date"));
        assert!(not_modified(&headers, Some(changed)));
        assert!(!not_modified(&headers, Some(changed + time::Duration::seconds(1))));
        assert!(!not_modified(&headers, None), "a list never changed has no date to compare");
        headers.insert(header::IF_MODIFIED_SINCE, HeaderValue::from_static("not a date"));
        assert!(!not_modified(&headers, Some(changed)));
    }
}
