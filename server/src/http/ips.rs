//! Native IP endpoints under `/v1/ips`: the lookup (the CTI data in Palisade's own shape, with
//! the explanation summary) and the explanation of a listing, each charged to the caller's tier.
//! Reporters are never named here (the admin variant is in `admin`).

use axum::Json;
use axum::extract::State;
use palisade_api::native::ExplanationResponse;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::response::{IntoResponse, Response};
use palisade_api::native::IpLookupResponse;

use super::extract::{AuthMachine, LookupCaller, PathParam};
use super::quota::{charge, with_limit_headers};
use super::responses::{BadRequest, InvalidApiKey, RateLimited, Unauthorized};
use crate::error::ApiError;
use crate::limits::LimitKey;
use crate::lookup;
use crate::manage;
use crate::state::AppState;

/// IP routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(get_ip)).routes(routes!(get_ip_explanation))
}

/// Why an address is (or is not) on the community list: the rule, how many independent clusters
/// and ASes reported it, which scenarios, since when, until when. Never who reported it. Costs one
/// lookup of the machine tier, per machine; only a refusal (429) carries the `X-RateLimit-*`
/// headers and `Retry-After`.
#[utoipa::path(get, path = "/{ip}/explanation", tag = "ips", security(("machine" = [])),
    params(("ip" = String, Path, description = "IPv4 or IPv6 address")),
    responses((status = 200, body = ExplanationResponse), BadRequest, Unauthorized, RateLimited))]
#[instrument(skip_all, fields(ip = %ip, machine.id = %machine.login))]
pub async fn get_ip_explanation(
    State(state): State<AppState>,
    machine: AuthMachine,
    PathParam(ip): PathParam<String>,
) -> Response {
    if let Err(error) = lookup::parse(&ip) {
        return ApiError::from(error).into_response();
    }
    // Counted against the machine's limits, but not as a lookup in the usage figures.
    let tier = state.quotas.tier(&state.quotas.machine_tier);
    let decision = state.quotas.limiter.check(&LimitKey::Machine(machine.key.0), &tier, 1).await;
    if !decision.allowed {
        metrics::counter!("palisade_quota_denials_total").increment(1);
        return with_limit_headers(ApiError::RateLimited(decision.retry_after_secs).into_response(), &decision);
    }
    match manage::explain(state.store.as_ref(), &state.engine_params, &ip, false).await {
        Ok(body) => Json(body).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// Everything known about an address: reputation, confidence, scores per window, behaviours,
/// false-positive classes, blocklists, AS and country, and why it is (or is not) listed. Costs
/// one lookup of the caller's tier (an API key's account, or the machine tier for a machine
/// token). Unlike the CTI route, an unknown address is a 200 with reputation `unknown`.
#[utoipa::path(get, path = "/{ip}", tag = "ips", security(("api_key" = []), ("machine" = [])),
    params(("ip" = String, Path, description = "IPv4 or IPv6 address")),
    responses((status = 200, body = IpLookupResponse), BadRequest,
        Unauthorized, InvalidApiKey,
        RateLimited))]
#[instrument(skip_all, fields(ip = %ip, limit.key = %caller.limit_key))]
pub async fn get_ip(State(state): State<AppState>, caller: LookupCaller, PathParam(ip): PathParam<String>) -> Response {
    let tier = state.quotas.tier(&caller.tier);
    let addr = match lookup::parse(&ip).map_err(ApiError::from) {
        Ok(addr) => addr,
        Err(error) => {
            return with_limit_headers(error.into_response(), &state.quotas.limiter.check(&caller.limit_key, &tier, 0).await);
        }
    };
    let (decision, charged) = charge(&state, &caller.limit_key, &tier, 1).await;
    let response = match charged {
        Err(error) => error.into_response(),
        Ok(()) => match state.lookup.native(addr, &ip, state.quotas.limiter.now_us() / 1_000_000).await {
            Ok(body) => Json(body).into_response(),
            Err(error) => ApiError::from(error).into_response(),
        },
    };
    with_limit_headers(response, &decision)
}
