//! The audit log over HTTP: `GET /v1/admin/audit`, and the layer that records every admin
//! mutation. The layer wraps every documented route whose method changes something (POST, PUT,
//! PATCH, DELETE) under `/v1/admin`, so a new admin route is recorded without a line of its own:
//! the action is the route's operationId, the actor the admin token's prefix (filled in by the
//! [`Admin`] extractor, so a request refused before authentication records nothing), the target
//! the path parameters (else the body's or query's `name`, `value`, `account` or `source`), the
//! detail its parameters without secrets ([`manage::audit::sanitize`]), with the client address
//! and the status answered (refused attempts after authentication are recorded too). The entry
//! is written before the answer leaves.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use palisade_api::native::AuditPage;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::{Admin, AuditActor, ClientAddr, QueryParams};
use crate::http::responses::Unprocessable;
use crate::manage;
use crate::state::AppState;
use crate::store::NewAuditEntry;

/// Audit routes, merged into those under `/v1/admin`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list_audit))
}

/// Filters of `GET /v1/admin/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only entries older than this id (the previous page's `next_before`).
    pub before: Option<i64>,
    /// Only this actor's entries (`token:<prefix>`, `cli:<user>`).
    pub actor: Option<String>,
    /// Only this action's entries (an operationId, e.g. `delete_machine`).
    pub action: Option<String>,
    /// Only entries since this time: RFC 3339, or a duration back from now (`24h`, `7d`).
    pub since: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

/// The audit log, newest first: every admin mutation made through this API (with the admin
/// token's prefix, the client address and the status answered) or the `palisade-server admin`
/// command line (with the host user).
#[utoipa::path(get, path = "/audit", tag = "admin", params(AuditQuery), security(("admin" = [])),
    responses((status = 200, body = AuditPage), Unprocessable))]
#[instrument(skip_all)]
pub async fn list_audit(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let page = manage::audit::list_audit(
        state.store.as_ref(),
        query.before,
        query.actor,
        query.action,
        query.since.as_deref(),
        query.limit,
    )
    .await?;
    Ok(Json(page))
}

/// The action of every admin route that changes something: `(method, route template)` to its
/// operationId, read from the OpenAPI document, which the routes themselves build.
#[derive(Debug, Clone, Default)]
pub struct AuditedRoutes(Arc<HashMap<(Method, String), String>>);

impl AuditedRoutes {
    /// The mutating admin operations of `openapi`.
    pub fn from_openapi(openapi: &utoipa::openapi::OpenApi) -> AuditedRoutes {
        let mut actions = HashMap::new();
        for (path, item) in &openapi.paths.paths {
            if !path.starts_with("/v1/admin/") && path != "/v1/admin" {
                continue;
            }
            let operations = [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                if let Some(id) = operation.as_ref().and_then(|o| o.operation_id.clone()) {
                    actions.insert((method, path.clone()), id);
                }
            }
        }
        AuditedRoutes(Arc::new(actions))
    }
}

/// Largest JSON body whose parameters an entry keeps; a larger one is recorded without them.
const MAX_AUDITED_BODY: usize = 64 * 1024;

/// The recording layer (a route layer: it runs after routing, so the matched route is known).
pub async fn record_admin_action(
    State((state, routes)): State<(AppState, AuditedRoutes)>,
    request: Request,
    next: Next,
) -> Response {
    let matched = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let Some(action) = matched.and_then(|path| routes.0.get(&(request.method().clone(), path)).cloned()) else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let client = ClientAddr::from_request_parts(&mut parts, &state).await.ok().map(|ClientAddr(ip)| ip.to_string());
    let params: Vec<(String, String)> = match RawPathParams::from_request_parts(&mut parts, &state).await {
        Ok(params) => params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        Err(_) => Vec::new(),
    };
    let query: Vec<(String, String)> = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|axum::extract::Query(q)| q)
        .unwrap_or_default();
    let is_json =
        parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    // Hyper's bound comes from Content-Length; a body of unknown length is passed on unread.
    let small = axum::body::HttpBody::size_hint(&body).upper().is_some_and(|n| n <= MAX_AUDITED_BODY as u64);
    let (body, parsed) = if is_json && small {
        match axum::body::to_bytes(body, MAX_AUDITED_BODY).await {
            Ok(bytes) => {
                let parsed = serde_json::from_slice::<Value>(&bytes).ok();
                (Body::from(bytes), parsed)
            }
            // The body announced its length and did not keep to it: let the handler refuse it.
            Err(_) => (Body::empty(), None),
        }
    } else {
        (body, None)
    };
    let actor = AuditActor::default();
    parts.extensions.insert(actor.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    let Some(actor) = actor.get() else { return response };

    let mut detail = match parsed {
        Some(Value::Object(fields)) => fields,
        Some(other) => Map::from_iter([("body".to_string(), other)]),
        None => Map::new(),
    };
    let pick = |fields: &Map<String, Value>| {
        ["name", "value", "account", "source"].iter().find_map(|k| fields.get(*k).and_then(Value::as_str).map(str::to_string))
    };
    let from_query = query.iter().find(|(k, _)| k == "value" || k == "source").map(|(_, v)| v.clone());
    let target = if params.is_empty() {
        pick(&detail).or(from_query).unwrap_or_default()
    } else {
        params.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join("/")
    };
    for (name, value) in query.into_iter().chain(params) {
        detail.insert(name, Value::String(value));
    }
    let entry = NewAuditEntry {
        at: OffsetDateTime::now_utc(),
        actor: format!("token:{actor}"),
        action,
        target: target.chars().take(256).collect(),
        detail: manage::audit::sanitize(Value::Object(detail)).to_string(),
        client,
        status: Some(response.status().as_u16()),
    };
    manage::audit::record(state.store.as_ref(), entry).await;
    response
}
