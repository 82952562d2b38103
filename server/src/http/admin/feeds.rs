//! The operator's external feeds under `/v1/admin/feeds`: add, list, refresh now, remove, through
//! the same actions as `palisade-server admin feed` ([`crate::manage::feeds`]). A feed's entries
//! are those of its list, read and subscribed to under `/v1/admin/blocklists` and
//! `/v1/blocklists`. Each change is served at once on this replica and announced to the others.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_api::native::{CreateFeedRequest, FeedRefreshResponse, FeedView};
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::{Admin, JsonBody, PathParam};
use crate::http::responses::{Conflict, NotFound, Unprocessable};
use crate::manage::feeds;
use crate::state::AppState;

/// Operator routes under `/v1/admin/feeds`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(create_feed, list_feeds)).routes(routes!(delete_feed)).routes(routes!(refresh_feed))
}

/// Subscribe the server to an external list by URL (plain, CSV, FireHOL netset, Spamhaus
/// DROP/EDROP, ipsum, or another Palisade's list with an API key). The feed is a block list of
/// its own, with the visibility given; its first refresh is due at once, then every `every_secs`.
#[utoipa::path(post, path = "/", tag = "admin", request_body = CreateFeedRequest, security(("admin" = [])),
    responses((status = 201, body = FeedView), Conflict, Unprocessable))]
#[instrument(skip_all, fields(feed = %request.name))]
pub async fn create_feed(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(request): JsonBody<CreateFeedRequest>,
) -> Result<(StatusCode, Json<FeedView>), ApiError> {
    let view = feeds::create_feed(state.store.as_ref(), request).await?;
    state.distribution.publish().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// List the feeds with the state of their refreshes: the last attempt and success, why the last
/// attempt failed (the last good copy then stands), and the entries held.
#[utoipa::path(get, path = "/", tag = "admin", security(("admin" = [])), responses((status = 200, body = Vec<FeedView>)))]
#[instrument(skip_all)]
pub async fn list_feeds(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<FeedView>>, ApiError> {
    Ok(Json(feeds::list_feeds(state.store.as_ref()).await?))
}

/// Remove a feed and its list: consumers following a cursor receive the removal of each entry.
#[utoipa::path(delete, path = "/{name}", tag = "admin", params(("name" = String, Path, description = "feed name")), security(("admin" = [])),
    responses((status = 204), NotFound))]
#[instrument(skip_all, fields(feed = %name))]
pub async fn delete_feed(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    feeds::delete_feed(state.store.as_ref(), &name).await?;
    state.distribution.publish().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refresh a feed now, with a conditional request as a scheduled refresh makes. A failure is
/// reported in the answer (`outcome` `failed`, `feed.last_error`), not as an error status: the
/// last good copy stands.
#[utoipa::path(post, path = "/{name}/refresh", tag = "admin", params(("name" = String, Path, description = "feed name")), security(("admin" = [])),
    responses((status = 200, body = FeedRefreshResponse), NotFound))]
#[instrument(skip_all, fields(feed = %name))]
pub async fn refresh_feed(
    State(state): State<AppState>,
    _admin: Admin,
    PathParam(name): PathParam<String>,
) -> Result<Json<FeedRefreshResponse>, ApiError> {
    let response = feeds::refresh_feed(&state.feeds, &name, false).await?;
    if response.added + response.renewed + response.removed > 0 {
        state.distribution.publish().await?;
    }
    Ok(Json(response))
}
