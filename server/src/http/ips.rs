//! Native IP endpoints under `/v1/ips`: the explanation of a listing. Reporters are never named
//! here (the admin variant is in `admin`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use palisade_api::native::ExplanationResponse;
use tracing::instrument;

use super::extract::{AuthMachine, PathParam};
use crate::error::ApiError;
use crate::manage;
use crate::state::AppState;

/// IP routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/{ip}/explanation", get(get_ip_explanation))
}

/// Why an address is (or is not) on the community list: the rule, how many independent clusters
/// and ASes reported it, which scenarios, since when, until when. Never who reported it.
#[utoipa::path(get, path = "/v1/ips/{ip}/explanation", tag = "ips", security(("machine" = [])),
    params(("ip" = String, Path, description = "IPv4 or IPv6 address")),
    responses((status = 200, body = ExplanationResponse), (status = 400, body = palisade_api::native::ErrorBody), (status = 401, body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(ip = %ip, machine.id = %machine.login))]
pub async fn get_ip_explanation(
    State(state): State<AppState>,
    machine: AuthMachine,
    PathParam(ip): PathParam<String>,
) -> Result<Json<ExplanationResponse>, ApiError> {
    Ok(Json(manage::explain(state.store.as_ref(), &state.engine_params, &ip, false).await?))
}
