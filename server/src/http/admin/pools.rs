//! The operator's routes under `/v1/admin/accounts/{name}/pool`: an account's private pool, its
//! policy (its own, or the server's `[pools]` default) and its shares with other accounts.

use axum::Json;
use axum::extract::State;
use palisade_api::native::{PoolPolicyRequest, PoolView};
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::{Admin, JsonBody, PathParam};
use crate::http::responses::{NotFound, Unprocessable};
use crate::manage::pools as manage;
use crate::state::AppState;

/// Operator routes, merged into those under `/v1/admin`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(get_account_pool, update_account_pool, reset_account_pool))
        .routes(routes!(share_account_pool, unshare_account_pool))
}

/// Fills in what the use case does not hold: the entries the pool lists now.
async fn with_entries(state: &AppState, mut view: PoolView) -> Result<Json<PoolView>, ApiError> {
    let served = state.distribution.lists.served(&view.list).await?;
    view.entries = served.entries.len();
    Ok(Json(view))
}

/// An account's private pool: the policy in force, the entries listed now, and whom it is shared
/// with and receives from.
#[utoipa::path(get, path = "/accounts/{name}/pool", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = PoolView), NotFound))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn get_account_pool(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<Json<PoolView>, ApiError> {
    let view = manage::pool_view(state.store.as_ref(), &state.pool_policy, &name).await?;
    with_entries(&state, view).await
}

/// Give an account its own pool policy: the policy in force with the given fields changed. The
/// consensus worker applies it within seconds (a disabled pool is emptied).
#[utoipa::path(patch, path = "/accounts/{name}/pool", tag = "admin", request_body = PoolPolicyRequest, security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = PoolView), NotFound, Unprocessable))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn update_account_pool(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<PoolPolicyRequest>,
) -> Result<Json<PoolView>, ApiError> {
    let view = manage::set_pool_policy(state.store.as_ref(), &state.pool_policy, &name, &request).await?;
    state.consensus_wake.notify_one();
    with_entries(&state, view).await
}

/// Return an account's pool to the server's default policy (`[pools]`).
#[utoipa::path(delete, path = "/accounts/{name}/pool", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = PoolView), NotFound))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn reset_account_pool(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<Json<PoolView>, ApiError> {
    let view = manage::reset_pool_policy(state.store.as_ref(), &state.pool_policy, &name).await?;
    state.consensus_wake.notify_one();
    with_entries(&state, view).await
}

/// Share an account's pool, read-only, with another account: the partner's machines receive it
/// on their streams (origin `lists`, scenario the pool's list name) and its API keys may download
/// it. Sharing again is harmless.
#[utoipa::path(put, path = "/accounts/{name}/pool/shares/{partner}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name"), ("partner" = String, Path, description = "the account to share with")),
    responses((status = 200, body = PoolView), NotFound, Unprocessable))]
#[instrument(skip_all, fields(account.name = %name, partner = %partner))]
pub async fn share_account_pool(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam((name, partner)): PathParam<(String, String)>,
) -> Result<Json<PoolView>, ApiError> {
    let view = manage::set_pool_share(state.store.as_ref(), &state.pool_policy, &name, &partner, true).await?;
    with_entries(&state, view).await
}

/// End a share: the partner's machines and API keys no longer receive the pool from their next
/// pull (its list answers 404). Decisions a CrowdSec agent already applied stay until their own
/// expiry (the pool's duration on v2; a v3 link already issued lasts until it expires).
#[utoipa::path(delete, path = "/accounts/{name}/pool/shares/{partner}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name"), ("partner" = String, Path, description = "the account it was shared with")),
    responses((status = 200, body = PoolView), NotFound, Unprocessable))]
#[instrument(skip_all, fields(account.name = %name, partner = %partner))]
pub async fn unshare_account_pool(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam((name, partner)): PathParam<(String, String)>,
) -> Result<Json<PoolView>, ApiError> {
    let view = manage::set_pool_share(state.store.as_ref(), &state.pool_policy, &name, &partner, false).await?;
    with_entries(&state, view).await
}
