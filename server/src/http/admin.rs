//! The operator's API under `/v1/admin`: accounts, enrollment keys, machines, stored signals.
//! Every route requires an admin token (`palisade-server admin token create`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use palisade_api::native::{
    AccountView, CreateAccountRequest, CreateMachineRequest, EnrollKeyCreated, MachineCredentials, MachineView, SignalPage,
};
use serde::Deserialize;
use tracing::instrument;

use super::extract::{Admin, JsonBody, PathParam, QueryParams};
use crate::domain::names::check_name;
use crate::domain::text::has_nul;
use crate::error::ApiError;
use crate::manage;
use crate::state::AppState;
use crate::store::SignalFilter;

/// Admin routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{name}/enroll-keys", post(create_enroll_key))
        .route("/machines", post(create_machine).get(list_machines))
        .route("/machines/{machine_id}", get(get_machine))
        .route("/signals", get(list_signals))
}

/// Create an account.
#[utoipa::path(post, path = "/v1/admin/accounts", tag = "admin", request_body = CreateAccountRequest, security(("admin" = [])),
    responses((status = 201, body = AccountView), (status = 409, body = palisade_api::native::ErrorBody), (status = 422, body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(account.name = %request.name))]
pub async fn create_account(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<CreateAccountRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::create_account(state.store.as_ref(), &request.name).await?)))
}

/// List accounts.
#[utoipa::path(get, path = "/v1/admin/accounts", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<AccountView>)))]
#[instrument(skip_all)]
pub async fn list_accounts(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<AccountView>>, ApiError> {
    Ok(Json(state.store.list_accounts().await?.iter().map(manage::account_view).collect()))
}

/// Create an enrollment key for an account. The key is shown once.
#[utoipa::path(post, path = "/v1/admin/accounts/{name}/enroll-keys", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 201, body = EnrollKeyCreated), (status = 404, body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn create_enroll_key(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<(StatusCode, Json<EnrollKeyCreated>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::create_enroll_key(state.store.as_ref(), &name).await?)))
}

/// Create a machine with a generated password (shown once); optionally an operator sensor.
#[utoipa::path(post, path = "/v1/admin/machines", tag = "admin", request_body = CreateMachineRequest, security(("admin" = [])),
    responses((status = 201, body = MachineCredentials), (status = 409, body = palisade_api::native::ErrorBody), (status = 422, body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(machine.id = %request.name))]
pub async fn create_machine(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<CreateMachineRequest>,
) -> Result<(StatusCode, Json<MachineCredentials>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::add_machine(state.store.as_ref(), &request.name, request.sensor).await?)))
}

/// List machines.
#[utoipa::path(get, path = "/v1/admin/machines", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<MachineView>)))]
#[instrument(skip_all)]
pub async fn list_machines(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<MachineView>>, ApiError> {
    Ok(Json(state.store.list_machines().await?.iter().map(manage::machine_view).collect()))
}

/// One machine.
#[utoipa::path(get, path = "/v1/admin/machines/{machine_id}", tag = "admin", security(("admin" = [])),
    params(("machine_id" = String, Path, description = "machine login")),
    responses((status = 200, body = MachineView), (status = 404, body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(machine.id = %machine_id))]
pub async fn get_machine(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(machine_id): PathParam<String>,
) -> Result<Json<MachineView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no machine {machine_id:?}"));
    // A login that breaks the naming rules cannot exist; it is not worth a query.
    if check_name(&machine_id, 128).is_err() {
        return Err(not_found());
    }
    let machine = state.store.machine_by_login(&machine_id).await?.ok_or_else(not_found)?;
    Ok(Json(manage::machine_view(&machine)))
}

/// Filters of `GET /v1/admin/signals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SignalQuery {
    /// Only signals with a larger id (pagination cursor).
    pub after: Option<i64>,
    /// Only signals from this machine login.
    pub machine_id: Option<String>,
    /// Only signals about this address or CIDR (canonical form).
    pub value: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

/// List stored signals, oldest first.
#[utoipa::path(get, path = "/v1/admin/signals", tag = "admin", params(SignalQuery), security(("admin" = [])),
    responses((status = 200, body = SignalPage), (status = 400, body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all)]
pub async fn list_signals(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(query): QueryParams<SignalQuery>,
) -> Result<Json<SignalPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    if [&query.machine_id, &query.value].into_iter().flatten().any(|v| has_nul(v)) {
        return Err(ApiError::BadRequest("machine_id and value may not contain NUL characters".into()));
    }
    let filter = SignalFilter { after: query.after, machine_id: query.machine_id, value: query.value, limit };
    let signals = state.store.list_signals(&filter).await?;
    let next_after = (signals.len() == limit as usize).then(|| signals.last().map(|s| s.id)).flatten();
    Ok(Json(SignalPage { items: signals.iter().map(manage::signal_view).collect(), next_after }))
}
