//! The operator's lists under `/v1/admin/blocklists`: create, list, edit, import, delete, and
//! subscribe machines, through the same actions as `palisade-server admin blocklist`
//! ([`crate::manage::lists`]). Each change is served at once on this replica and announced to
//! the others ([`crate::distribution::Distribution::publish`]).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_api::native::{CreateListRequest, CustomListView, ListEntriesRequest, ListEntriesResponse, UpdateListRequest};
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::{Admin, JsonBody, PathParam};
use crate::http::responses::{Conflict, NotFound, Unprocessable};
use crate::manage::lists;
use crate::state::AppState;

/// Operator routes under `/v1/admin/blocklists`: create, edit, import, delete, subscribe.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_custom_list, list_custom_lists))
        .routes(routes!(delete_custom_list, update_custom_list))
        .routes(routes!(update_list_entries))
        .routes(routes!(import_list_entries))
        .routes(routes!(subscribe_machine, unsubscribe_machine))
}

/// Create an operator-managed list (`block`, served like the community list and to subscribed
/// machines with origin `lists`; or `allow`).
#[utoipa::path(post, path = "/", tag = "admin", request_body = CreateListRequest, security(("admin" = [])),
    responses((status = 201, body = CustomListView), Conflict, Unprocessable))]
#[instrument(skip_all, fields(list = %request.name))]
pub async fn create_custom_list(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<CreateListRequest>,
) -> Result<(StatusCode, Json<CustomListView>), ApiError> {
    let view = lists::create_list(state.store.as_ref(), request).await?;
    state.distribution.publish().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// List the operator-managed lists.
#[utoipa::path(get, path = "/", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<CustomListView>)))]
#[instrument(skip_all)]
pub async fn list_custom_lists(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<CustomListView>>, ApiError> {
    Ok(Json(lists::list_lists(state.store.as_ref()).await?))
}

/// Delete an operator-managed list: consumers following a cursor receive the removal of each entry.
#[utoipa::path(delete, path = "/{name}", tag = "admin", params(("name" = String, Path, description = "list name")), security(("admin" = [])),
    responses((status = 204), NotFound))]
#[instrument(skip_all, fields(list = %name))]
pub async fn delete_custom_list(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    lists::delete_list(state.store.as_ref(), &name).await?;
    state.distribution.publish().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change an operator-managed list's settings: who may read it (`public`, `subscribers`,
/// `operator`).
#[utoipa::path(patch, path = "/{name}", tag = "admin", params(("name" = String, Path, description = "list name")),
    request_body = UpdateListRequest, security(("admin" = [])),
    responses((status = 200, body = CustomListView), NotFound, Unprocessable))]
#[instrument(skip_all, fields(list = %name))]
pub async fn update_custom_list(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<UpdateListRequest>,
) -> Result<Json<CustomListView>, ApiError> {
    let view = lists::update_list(state.store.as_ref(), &name, request).await?;
    state.distribution.publish().await?;
    Ok(Json(view))
}

/// Add (or renew) and remove entries of an operator-managed list. Values that are not addresses
/// or CIDRs are reported in `rejected`; the others are applied.
#[utoipa::path(post, path = "/{name}/entries", tag = "admin", params(("name" = String, Path, description = "list name")), request_body = ListEntriesRequest, security(("admin" = [])),
    responses((status = 200, body = ListEntriesResponse), NotFound, Unprocessable))]
#[instrument(skip_all, fields(list = %name))]
pub async fn update_list_entries(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<ListEntriesRequest>,
) -> Result<Json<ListEntriesResponse>, ApiError> {
    let outcome = lists::update_entries(state.store.as_ref(), &name, &request).await?;
    state.distribution.publish().await?;
    Ok(Json(outcome))
}

/// Largest import body: 32 MiB, about two million lines of addresses (a 1,000,000-line file is
/// about 16 MB). The whole import is parsed and written in one transaction, so its memory grows
/// with it; a larger list is split into several imports, or imported with `palisade-server admin
/// blocklist import`, which reads the file itself and has no such limit.
pub const IMPORT_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Import entries into an operator-managed list from a text body: one address or CIDR per line,
/// or CSV `value[,remediation[,duration_secs]]` (a header line is skipped, `#` starts a comment).
///
/// The body may be up to 32 MiB (about two million lines), whatever the server's
/// `ingest.max_body_bytes`; a larger one is refused with 413 `body_too_large`.
#[utoipa::path(post, path = "/{name}/import", tag = "admin", params(("name" = String, Path, description = "list name")),
    request_body(content = String, content_type = "text/plain"), security(("admin" = [])),
    responses((status = 200, body = ListEntriesResponse), NotFound, Unprocessable,
              (status = 413, description = "body larger than 32 MiB", body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(list = %name))]
pub async fn import_list_entries(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
    body: Body,
) -> Result<Json<ListEntriesResponse>, ApiError> {
    lists::existing_list(state.store.as_ref(), &name).await?;
    // Read here with the import's own limit: the router's default (`ingest.max_body_bytes`, sized
    // for agents' JSON) would refuse an ordinary large list.
    let body = axum::body::to_bytes(body, IMPORT_MAX_BYTES).await.map_err(|_| ApiError::BodyTooLarge(IMPORT_MAX_BYTES))?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::InvalidBody("the import must be UTF-8 text".into()))?;
    let outcome = lists::import_entries(state.store.as_ref(), &name, text).await?;
    state.distribution.publish().await?;
    Ok(Json(outcome))
}

/// Subscribe a machine to an operator-managed list: its CrowdSec stream carries the list's
/// entries with origin `lists` and the list name as scenario.
#[utoipa::path(put, path = "/{name}/subscribers/{machine}", tag = "admin",
    params(("name" = String, Path, description = "list name"), ("machine" = String, Path, description = "machine login")), security(("admin" = [])),
    responses((status = 204), NotFound))]
#[instrument(skip_all, fields(list = %name, machine.id = %machine))]
pub async fn subscribe_machine(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam((name, machine)): PathParam<(String, String)>,
) -> Result<StatusCode, ApiError> {
    lists::set_subscription(state.store.as_ref(), &name, &machine, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End a machine's subscription to an operator-managed list.
#[utoipa::path(delete, path = "/{name}/subscribers/{machine}", tag = "admin",
    params(("name" = String, Path, description = "list name"), ("machine" = String, Path, description = "machine login")), security(("admin" = [])),
    responses((status = 204), NotFound))]
#[instrument(skip_all, fields(list = %name, machine.id = %machine))]
pub async fn unsubscribe_machine(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam((name, machine)): PathParam<(String, String)>,
) -> Result<StatusCode, ApiError> {
    lists::set_subscription(state.store.as_ref(), &name, &machine, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
