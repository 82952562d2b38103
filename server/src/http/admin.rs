//! The operator's API under `/v1/admin`: accounts (enrollment keys, levels, console login
//! links), machines, stored signals, canaries, allowlists, false positives, explanations and
//! operator delistings, API keys and tiers in [`api_keys`], operator-managed lists in
//! [`blocklists`], external feeds in [`feeds`], disabling, deleting and resetting machines,
//! admin tokens, enrollment keys, deleting accounts and console sessions in [`access`], the
//! audit log (and the layer recording every admin mutation) in [`audit`]. Every route requires
//! an admin token (`palisade-server admin token create`).

pub mod access;
pub mod api_keys;
pub mod audit;
pub mod blocklists;
pub mod feeds;
pub mod pools;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_api::native::{
    AccountView, AllowlistEntryView, AllowlistImportRequest, AllowlistImportResponse, CanaryRequest, CanaryView,
    CreateAccountRequest, CreateMachineRequest, DelistRequest, EnrollKeyCreated, ExplanationResponse, FalsePositiveRequest,
    LoginLinkResponse, MachineCredentials, MachineTrustView, MachineView, QueuedResponse, SetLevelRequest, SetSensorRequest,
    SignalPage,
};
use serde::Deserialize;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Admin, JsonBody, PathParam, QueryParams};
use super::responses::{BadRequest, Conflict, NotFound, Unauthorized, Unprocessable};
use crate::domain::names::check_name;
use crate::domain::text::has_nul;
use crate::error::ApiError;
use crate::manage;
use crate::state::AppState;
use crate::store::SignalFilter;

/// Admin routes under `/v1/admin`, but for the operator's lists ([`blocklists::routes`], nested
/// under `/v1/admin/blocklists` at the root).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(create_enroll_key))
        .routes(routes!(create_machine, list_machines))
        .routes(routes!(get_machine))
        .routes(routes!(set_machine_sensor))
        .routes(routes!(get_machine_trust))
        .routes(routes!(set_account_level))
        .routes(routes!(list_signals))
        .routes(routes!(create_canary, list_canaries, delete_canary))
        .routes(routes!(import_allowlist, list_allowlist, delete_allowlist))
        .routes(routes!(report_false_positive))
        .routes(routes!(create_delisting))
        .routes(routes!(get_ip_explanation_admin))
        .routes(routes!(create_login_link))
        .merge(api_keys::routes())
        .merge(access::routes())
        .merge(pools::routes())
        .merge(audit::routes())
}

/// Create an account.
#[utoipa::path(post, path = "/accounts", tag = "admin", request_body = CreateAccountRequest, security(("admin" = [])),
    responses((status = 201, body = AccountView), Conflict, Unprocessable))]
#[instrument(skip_all, fields(account.name = %request.name))]
pub async fn create_account(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<CreateAccountRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::create_account(state.store.as_ref(), &request.name).await?)))
}

/// List accounts.
#[utoipa::path(get, path = "/accounts", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<AccountView>)))]
#[instrument(skip_all)]
pub async fn list_accounts(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<AccountView>>, ApiError> {
    Ok(Json(state.store.list_accounts().await?.iter().map(manage::account_view).collect()))
}

/// Create a console sign-in link for an account's users. It signs in whoever opens it within 15
/// minutes; hand it over privately.
#[utoipa::path(post, path = "/accounts/{name}/login-link", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 201, body = LoginLinkResponse), Unauthorized,
        NotFound))]
#[instrument(skip_all, fields(account = %name))]
pub async fn create_login_link(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<(StatusCode, Json<LoginLinkResponse>), ApiError> {
    let link = manage::login_link(state.store.as_ref(), state.jwt.console_key(), &state.public_url, &name).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Create an enrollment key for an account. The key is shown once.
#[utoipa::path(post, path = "/accounts/{name}/enroll-keys", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 201, body = EnrollKeyCreated), NotFound))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn create_enroll_key(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<(StatusCode, Json<EnrollKeyCreated>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::create_enroll_key(state.store.as_ref(), &name).await?)))
}

/// Create a machine with a generated password (shown once); optionally an operator sensor.
#[utoipa::path(post, path = "/machines", tag = "admin", request_body = CreateMachineRequest, security(("admin" = [])),
    responses((status = 201, body = MachineCredentials), Conflict, Unprocessable))]
#[instrument(skip_all, fields(machine.id = %request.name))]
pub async fn create_machine(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<CreateMachineRequest>,
) -> Result<(StatusCode, Json<MachineCredentials>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::add_machine(state.store.as_ref(), &request.name, request.sensor).await?)))
}

/// List machines.
#[utoipa::path(get, path = "/machines", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<MachineView>)))]
#[instrument(skip_all)]
pub async fn list_machines(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<MachineView>>, ApiError> {
    Ok(Json(state.store.list_machines().await?.iter().map(manage::machine_view).collect()))
}

/// One machine.
#[utoipa::path(get, path = "/machines/{machine_id}", tag = "admin", security(("admin" = [])),
    params(("machine_id" = String, Path, description = "machine login")),
    responses((status = 200, body = MachineView), NotFound))]
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
    let mut machine = state.store.machine_by_login(&machine_id).await?.ok_or_else(not_found)?;
    machine.signal_count = Some(state.store.machine_signal_count(machine.key).await?);
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
#[utoipa::path(get, path = "/signals", tag = "admin", params(SignalQuery), security(("admin" = [])),
    responses((status = 200, body = SignalPage), BadRequest))]
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

/// Mark or unmark a machine as one of the operator's sensors (trusted ground truth: a sensor's
/// sighting lists an address at once).
#[utoipa::path(put, path = "/machines/{machine_id}/sensor", tag = "admin", request_body = SetSensorRequest, security(("admin" = [])),
    params(("machine_id" = String, Path, description = "machine login")),
    responses((status = 204, description = "done"), NotFound))]
#[instrument(skip_all, fields(machine.id = %machine_id, sensor = request.sensor))]
pub async fn set_machine_sensor(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(machine_id): PathParam<String>,
    JsonBody(request): JsonBody<SetSensorRequest>,
) -> Result<StatusCode, ApiError> {
    manage::set_sensor(state.store.as_ref(), &machine_id, request.sensor).await?;
    state.consensus_wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// A machine's trust and the evidence behind it.
#[utoipa::path(get, path = "/machines/{machine_id}/trust", tag = "admin", security(("admin" = [])),
    params(("machine_id" = String, Path, description = "machine login")),
    responses((status = 200, body = MachineTrustView), NotFound))]
#[instrument(skip_all, fields(machine.id = %machine_id))]
pub async fn get_machine_trust(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(machine_id): PathParam<String>,
) -> Result<Json<MachineTrustView>, ApiError> {
    Ok(Json(manage::machine_trust(state.store.as_ref(), &state.engine_params, &machine_id).await?))
}

/// Set an account's verification level (it caps its machines' trust).
#[utoipa::path(put, path = "/accounts/{name}/level", tag = "admin", request_body = SetLevelRequest, security(("admin" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 204, description = "done"), NotFound, Unprocessable))]
#[instrument(skip_all, fields(account.name = %name))]
pub async fn set_account_level(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<SetLevelRequest>,
) -> Result<StatusCode, ApiError> {
    manage::set_account_level(state.store.as_ref(), &name, &request.level).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a canary: an address the operator controls that never sends traffic. Reporting it zeroes
/// the reporter. Canaries are shown by no endpoint but these.
#[utoipa::path(post, path = "/canaries", tag = "admin", request_body = CanaryRequest, security(("admin" = [])),
    responses((status = 201, body = CanaryView), Conflict, Unprocessable))]
#[instrument(skip_all)]
pub async fn create_canary(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<CanaryRequest>,
) -> Result<(StatusCode, Json<CanaryView>), ApiError> {
    Ok((StatusCode::CREATED, Json(manage::add_canary(state.store.as_ref(), &request.value, &request.note).await?)))
}

/// List canaries.
#[utoipa::path(get, path = "/canaries", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<CanaryView>)))]
#[instrument(skip_all)]
pub async fn list_canaries(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<CanaryView>>, ApiError> {
    Ok(Json(manage::list_canaries(state.store.as_ref()).await?))
}

/// Which entries a DELETE removes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ValueQuery {
    /// Address or CIDR.
    pub value: Option<String>,
    /// Allowlist source.
    pub source: Option<String>,
}

/// Remove a canary (`?value=`).
#[utoipa::path(delete, path = "/canaries", tag = "admin", params(ValueQuery), security(("admin" = [])),
    responses((status = 204, description = "removed"), NotFound))]
#[instrument(skip_all)]
pub async fn delete_canary(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(query): QueryParams<ValueQuery>,
) -> Result<StatusCode, ApiError> {
    let value = query.value.ok_or_else(|| ApiError::BadRequest("give ?value=".into()))?;
    manage::remove_canary(state.store.as_ref(), &value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Import never-block ranges from a provider file (JSON, CSV or plain list): CDN egress, crawlers,
/// resolvers, your own infrastructure. Listed addresses inside them are delisted at the next step.
#[utoipa::path(post, path = "/allowlists", tag = "admin", request_body = AllowlistImportRequest, security(("admin" = [])),
    responses((status = 200, body = AllowlistImportResponse), Unprocessable))]
#[instrument(skip_all, fields(source = %request.source))]
pub async fn import_allowlist(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<AllowlistImportRequest>,
) -> Result<Json<AllowlistImportResponse>, ApiError> {
    let outcome = manage::import_allowlist(state.store.as_ref(), &request).await?;
    state.consensus_wake.notify_one();
    Ok(Json(outcome))
}

/// List never-block ranges.
#[utoipa::path(get, path = "/allowlists", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<AllowlistEntryView>)))]
#[instrument(skip_all)]
pub async fn list_allowlist(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<AllowlistEntryView>>, ApiError> {
    Ok(Json(manage::list_allowlist(state.store.as_ref()).await?))
}

/// Remove never-block ranges by `?value=` and/or `?source=`.
#[utoipa::path(delete, path = "/allowlists", tag = "admin", params(ValueQuery), security(("admin" = [])),
    responses((status = 204, description = "removed"), BadRequest, NotFound))]
#[instrument(skip_all)]
pub async fn delete_allowlist(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(query): QueryParams<ValueQuery>,
) -> Result<StatusCode, ApiError> {
    manage::remove_allowlist(state.store.as_ref(), query.value.as_deref(), query.source.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Uphold a false-positive report: the address is delisted, its supporters are penalised, and
/// only a sensor can list it again for a while. Carried out by the consensus leader.
#[utoipa::path(post, path = "/false-positives", tag = "admin", request_body = FalsePositiveRequest, security(("admin" = [])),
    responses((status = 202, body = QueuedResponse), Unprocessable))]
#[instrument(skip_all)]
pub async fn report_false_positive(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<FalsePositiveRequest>,
) -> Result<(StatusCode, Json<QueuedResponse>), ApiError> {
    let queued = manage::report_false_positive(state.store.as_ref(), &request.value).await?;
    state.consensus_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// Delist an address or range from the community list without penalising the machines that
/// reported it (unlike a false positive): it leaves the list at the next consensus step, the
/// reports made until then no longer count towards listing it again, and no machine's trust
/// changes. With `hold`, nothing lists it (not even a sensor) until the hold ends. Carried out by
/// the consensus leader.
#[utoipa::path(post, path = "/delistings", tag = "admin", request_body = DelistRequest, security(("admin" = [])),
    responses((status = 202, body = QueuedResponse), Unprocessable))]
#[instrument(skip_all)]
pub async fn create_delisting(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<DelistRequest>,
) -> Result<(StatusCode, Json<QueuedResponse>), ApiError> {
    let queued = manage::delist(state.store.as_ref(), &request.value, request.hold.as_deref()).await?;
    state.consensus_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// Explain an address, naming the machines that reported it.
#[utoipa::path(get, path = "/ips/{ip}/explanation", tag = "admin", security(("admin" = [])),
    params(("ip" = String, Path, description = "IPv4 or IPv6 address")),
    responses((status = 200, body = ExplanationResponse), BadRequest))]
#[instrument(skip_all, fields(ip = %ip))]
pub async fn get_ip_explanation_admin(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(ip): PathParam<String>,
) -> Result<Json<ExplanationResponse>, ApiError> {
    Ok(Json(manage::explain(state.store.as_ref(), &state.engine_params, &ip, true).await?))
}
