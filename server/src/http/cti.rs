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
//! Every answer to an authenticated caller carries `X-RateLimit-Limit`, `-Remaining` and
//! `-Reset` (seconds). Requests refused before counting (a malformed address, a bulk larger than
//! the tier allows) report the quota without spending it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use palisade_api::cti::{CtiMessage, SmokeBulkResponse, SmokeItem};
use serde::Deserialize;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiKey, PathParam, QueryParams};
use super::quota::{charge, with_limit_headers};
use super::responses::{BadRequest, InvalidApiKey, RateLimited};
use crate::error::ApiError;
use crate::lookup;
use crate::state::AppState;

/// CTI routes (merged at the root: `/v2/smoke…`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(search_smoke)).routes(routes!(get_smoke))
}

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
