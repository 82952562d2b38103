//! An account's self-service under `/v1/account`, authenticated by the token of a machine
//! enrolled in it (so no new kind of credential is needed): its API keys (created, listed,
//! revoked; a key is shown once, only its hash is kept) and the calling machine's own summary.
//! Revoking clears this replica's key cache; others follow within
//! [`crate::state::API_KEY_CACHE_TTL`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_api::native::{ApiKeyCreated, ApiKeyView, CreateApiKeyRequest, OwnMachineView};
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AuthMachine, JsonBody, PathParam};
use super::responses::{NotEnrolled, NotFound, Unauthorized};
use crate::error::ApiError;
use crate::manage;
use crate::state::AppState;

/// Account self-service routes, nested under `/v1/account`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_own_api_keys, create_own_api_key))
        .routes(routes!(revoke_own_api_key))
        .routes(routes!(get_own_machine))
}

/// The calling machine: account, sensor flag, trust in words (never the number) and signals sent.
#[utoipa::path(get, path = "/machine", tag = "account", security(("machine" = [])),
    responses((status = 200, body = OwnMachineView), Unauthorized))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn get_own_machine(State(state): State<AppState>, machine: AuthMachine) -> Result<Json<OwnMachineView>, ApiError> {
    let found = state.store.machine_by_login(&machine.login).await?.ok_or(ApiError::InvalidToken)?;
    Ok(Json(OwnMachineView {
        machine_id: found.machine_id,
        account: found.account_name,
        sensor: found.sensor,
        trust: crate::console::data::trust_words(found.trust).to_string(),
        signals: state.store.machine_signal_count(found.key).await?,
    }))
}

/// The account the calling machine is enrolled in; 403 when it is in none.
async fn own_account(state: &AppState, machine: &AuthMachine) -> Result<String, ApiError> {
    let found = state.store.machine_by_login(&machine.login).await?;
    found.and_then(|m| m.account_name).ok_or_else(|| ApiError::Forbidden("this machine is not enrolled in an account".into()))
}

/// Create an API key for the calling machine's account. The key is shown once.
#[utoipa::path(post, path = "/api-keys", tag = "account", request_body = CreateApiKeyRequest, security(("machine" = [])),
    responses((status = 201, body = ApiKeyCreated), Unauthorized, NotEnrolled))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn create_own_api_key(
    State(state): State<AppState>,
    machine: AuthMachine,
    JsonBody(_request): JsonBody<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let account = own_account(&state, &machine).await?;
    Ok((StatusCode::CREATED, Json(manage::create_api_key(state.store.as_ref(), &account).await?)))
}

/// List the calling machine's account's API keys.
#[utoipa::path(get, path = "/api-keys", tag = "account", security(("machine" = [])),
    responses((status = 200, body = Vec<ApiKeyView>), Unauthorized, NotEnrolled))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn list_own_api_keys(State(state): State<AppState>, machine: AuthMachine) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let account = own_account(&state, &machine).await?;
    Ok(Json(manage::list_api_keys(state.store.as_ref(), Some(&account)).await?))
}

/// Revoke one of the calling machine's account's API keys.
#[utoipa::path(delete, path = "/api-keys/{prefix}", tag = "account", security(("machine" = [])),
    params(("prefix" = String, Path, description = "the key's visible prefix")),
    responses((status = 204, description = "revoked"), NotEnrolled, NotFound))]
#[instrument(skip_all, fields(machine.id = %machine.login, api_key.prefix = %prefix))]
pub async fn revoke_own_api_key(
    State(state): State<AppState>,
    machine: AuthMachine,
    PathParam(prefix): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let account = own_account(&state, &machine).await?;
    manage::revoke_api_key(state.store.as_ref(), &prefix, Some(&account)).await?;
    state.revocations.revoked().await;
    Ok(StatusCode::NO_CONTENT)
}
