//! The operator's API keys routes under `/v1/admin`: create, list and revoke any account's keys,
//! and set an account's tier. A key is shown once, at creation; only its hash is kept. Revoking
//! clears every replica's key cache within seconds ([`crate::revocation`]); changing a tier
//! clears this replica's, and others follow within [`crate::state::API_KEY_CACHE_TTL`]. An account manages its own keys under `/v1/account`
//! ([`crate::http::account`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_api::native::{ApiKeyCreated, ApiKeyView, CreateApiKeyRequest, SetTierRequest};
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::{Admin, JsonBody, PathParam};
use crate::http::responses::{NotFound, Unprocessable};
use crate::manage;
use crate::state::AppState;

/// Operator routes, merged into those under `/v1/admin`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_api_keys_admin, create_api_key_admin))
        .routes(routes!(list_all_api_keys))
        .routes(routes!(revoke_api_key_admin))
        .routes(routes!(set_account_tier))
}

/// Create an API key for an account. The key is shown once.
#[utoipa::path(post, path = "/accounts/{name}/api-keys", tag = "admin", request_body = CreateApiKeyRequest, security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 201, body = ApiKeyCreated), NotFound))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn create_api_key_admin(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    JsonBody(_request): JsonBody<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::create_api_key(state.store.as_ref(), &name).await?)))
}

/// List an account's API keys (prefixes only).
#[utoipa::path(get, path = "/accounts/{name}/api-keys", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = Vec<ApiKeyView>), NotFound))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn list_api_keys_admin(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    Ok(Json(manage::list_api_keys(state.store.as_ref(), Some(&name)).await?))
}

/// List every API key (prefixes only).
#[utoipa::path(get, path = "/api-keys", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<ApiKeyView>)))]
#[instrument(skip_all)]
pub async fn list_all_api_keys(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    Ok(Json(manage::list_api_keys(state.store.as_ref(), None).await?))
}

/// Revoke an API key by its prefix.
#[utoipa::path(delete, path = "/api-keys/{prefix}", tag = "admin", security(("admin" = [])),
    params(("prefix" = String, Path, description = "the key's visible prefix")),
    responses((status = 204, description = "revoked"), NotFound))]
#[instrument(skip_all, fields(api_key.prefix = %prefix))]
pub async fn revoke_api_key_admin(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(prefix): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    manage::revoke_api_key(state.store.as_ref(), &prefix, None).await?;
    state.revocations.revoked().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Set an account's tier (one named in the configuration).
#[utoipa::path(put, path = "/accounts/{name}/tier", tag = "admin", request_body = SetTierRequest, security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 204, description = "done"), NotFound, Unprocessable))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn set_account_tier(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<SetTierRequest>,
) -> Result<StatusCode, ApiError> {
    manage::set_account_tier(state.store.as_ref(), &state.quotas.tiers, &name, &request.tier).await?;
    state.quotas.api_keys.clear();
    Ok(StatusCode::NO_CONTENT)
}
