//! The operator's routes under `/v1/admin` that take access back: disable, enable and delete a
//! machine, reset its password, list and revoke admin tokens and enrollment keys, delete an
//! account, end every console session. Each
//! revocation is stored, reloaded into this replica's snapshot before the answer, and announced
//! to the other replicas ([`crate::revocation`]); it is in force everywhere within seconds.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_api::native::{AccountDeletedResponse, AdminTokenView, EnrollKeyView, MachineCredentials, SetDisabledRequest};
use serde::Deserialize;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::{Admin, JsonBody, PathParam, QueryParams};
use crate::http::responses::{Conflict, NotFound, Unprocessable};
use crate::manage;
use crate::state::AppState;

/// Operator routes, merged into those under `/v1/admin`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(set_machine_disabled))
        .routes(routes!(delete_machine))
        .routes(routes!(reset_machine_password))
        .routes(routes!(list_admin_tokens))
        .routes(routes!(revoke_admin_token))
        .routes(routes!(end_all_sessions))
        .routes(routes!(list_enroll_keys))
        .routes(routes!(revoke_enroll_key))
        .routes(routes!(delete_account))
}

/// Filter of `GET /v1/admin/enroll-keys`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EnrollKeyQuery {
    /// Only this account's keys.
    pub account: Option<String>,
}

/// List enrollment keys (prefixes only, never the keys), oldest first, with their account,
/// creation, uses, last use and revocation.
#[utoipa::path(get, path = "/enroll-keys", tag = "admin", params(EnrollKeyQuery), security(("admin" = [])),
    responses((status = 200, body = Vec<EnrollKeyView>), NotFound))]
#[instrument(skip_all)]
pub async fn list_enroll_keys(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(query): QueryParams<EnrollKeyQuery>,
) -> Result<Json<Vec<EnrollKeyView>>, ApiError> {
    Ok(Json(manage::list_enroll_keys(state.store.as_ref(), query.account.as_deref()).await?))
}

/// Revoke an enrollment key by its prefix: from now on it enrolls nothing, on every replica
/// (each enrollment reads the key from the database). Machines it enrolled stay enrolled.
#[utoipa::path(delete, path = "/enroll-keys/{prefix}", tag = "admin", security(("admin" = [])),
    params(("prefix" = String, Path, description = "the key's visible prefix")),
    responses((status = 204, description = "revoked"), NotFound))]
#[instrument(skip_all, fields(enroll_key.prefix = %prefix))]
pub async fn revoke_enroll_key(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(prefix): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    manage::revoke_enroll_key(state.store.as_ref(), &prefix).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What `DELETE /v1/admin/accounts/{name}` does with the account's machines.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeleteAccountQuery {
    /// `detach` (they stay, without an account) or `delete` (deleted with it). Without it, an
    /// account that still has machines is not deleted (409).
    pub machines: Option<String>,
}

/// Delete an account. While machines are attached it is refused (409) unless `?machines=detach`
/// keeps them without an account or `?machines=delete` deletes them too. Its API keys and
/// enrollment keys are deleted and refused on every replica at once, its console sessions end,
/// its lookup usage, pool policy and pool shares are removed, and its name is free again.
#[utoipa::path(delete, path = "/accounts/{name}", tag = "admin", params(("name" = String, Path, description = "account name"), DeleteAccountQuery),
    security(("admin" = [])),
    responses((status = 200, body = AccountDeletedResponse), NotFound, Conflict, Unprocessable))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn delete_account(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<DeleteAccountQuery>,
) -> Result<Json<AccountDeletedResponse>, ApiError> {
    let machines = query.machines.as_deref().map(manage::AttachedMachines::parse).transpose()?.unwrap_or_default();
    let deleted = manage::delete_account(state.store.as_ref(), &name, machines).await?;
    state.revocations.revoked().await;
    Ok(Json(deleted))
}

/// Disable a machine (its login and every token it holds are refused, on every replica within
/// seconds) or enable it again (it logs in anew: the tokens it held stay refused).
#[utoipa::path(put, path = "/machines/{machine_id}/disabled", tag = "admin", request_body = SetDisabledRequest, security(("admin" = [])),
    params(("machine_id" = String, Path, description = "machine login")),
    responses((status = 204, description = "done"), NotFound, Unprocessable))]
#[instrument(skip_all, fields(machine.id = %machine_id, disabled = request.disabled))]
pub async fn set_machine_disabled(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(machine_id): PathParam<String>,
    JsonBody(request): JsonBody<SetDisabledRequest>,
) -> Result<StatusCode, ApiError> {
    manage::set_machine_disabled(state.store.as_ref(), &machine_id, request.disabled).await?;
    state.revocations.revoked().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a machine: disabled for good and gone from listings. Its stored signals stay as
/// evidence, and its login stays taken.
#[utoipa::path(delete, path = "/machines/{machine_id}", tag = "admin", security(("admin" = [])),
    params(("machine_id" = String, Path, description = "machine login")),
    responses((status = 204, description = "deleted"), NotFound))]
#[instrument(skip_all, fields(machine.id = %machine_id))]
pub async fn delete_machine(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(machine_id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    manage::delete_machine(state.store.as_ref(), &machine_id).await?;
    state.revocations.revoked().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a machine a new random password, shown once. The old password stops working, and so
/// do the tokens the machine holds.
#[utoipa::path(post, path = "/machines/{machine_id}/password", tag = "admin", security(("admin" = [])),
    params(("machine_id" = String, Path, description = "machine login")),
    responses((status = 200, body = MachineCredentials), NotFound))]
#[instrument(skip_all, fields(machine.id = %machine_id))]
pub async fn reset_machine_password(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(machine_id): PathParam<String>,
) -> Result<Json<MachineCredentials>, ApiError> {
    let credentials = manage::reset_machine_password(state.store.as_ref(), &machine_id).await?;
    state.revocations.revoked().await;
    Ok(Json(credentials))
}

/// List admin tokens (prefixes only), with their creation, last use and revocation.
#[utoipa::path(get, path = "/admin-tokens", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = Vec<AdminTokenView>)))]
#[instrument(skip_all)]
pub async fn list_admin_tokens(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<AdminTokenView>>, ApiError> {
    Ok(Json(manage::list_admin_tokens(state.store.as_ref()).await?))
}

/// Revoke an admin token by its prefix. The operator's console sessions end with it (they were
/// opened with an admin token); sign in again with another.
#[utoipa::path(delete, path = "/admin-tokens/{prefix}", tag = "admin", security(("admin" = [])),
    params(("prefix" = String, Path, description = "the token's visible prefix")),
    responses((status = 204, description = "revoked"), NotFound))]
#[instrument(skip_all, fields(admin_token.prefix = %prefix))]
pub async fn revoke_admin_token(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(prefix): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    manage::revoke_admin_token(state.store.as_ref(), &prefix).await?;
    state.revocations.revoked().await;
    Ok(StatusCode::NO_CONTENT)
}

/// End every web console session, the operator's and every account's: each browser signs in again.
#[utoipa::path(delete, path = "/sessions", tag = "admin", security(("admin" = [])),
    responses((status = 204, description = "ended")))]
#[instrument(skip_all)]
pub async fn end_all_sessions(State(state): State<AppState>, _admin: Admin) -> Result<StatusCode, ApiError> {
    manage::end_all_sessions(state.store.as_ref()).await?;
    state.revocations.revoked().await;
    Ok(StatusCode::NO_CONTENT)
}
