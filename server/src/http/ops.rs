//! Operations endpoints, unauthenticated: liveness, readiness (the database answers within a
//! second),
//! Prometheus metrics. `/openapi.json` and `/docs` are mounted by the root router.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use palisade_api::native::HealthResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Backend;
use crate::state::AppState;

/// Operations routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(prometheus_metrics))
}

fn backend_name(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => "sqlite".into(),
        Backend::Postgres => "postgres".into(),
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into(), backend: None, version: env!("CARGO_PKG_VERSION").into() })
}

/// How long readiness waits for the database: a probe (Kubernetes waits one second by default)
/// must get an answer, not wait out the pool's acquire timeout while the database is down.
pub const READY_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(900);

/// Readiness: the database answers. 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    // Within READY_PING_TIMEOUT: a probe must not wait out the pool's acquire timeout.
    let backend = Some(backend_name(state.store.backend()));
    let version = env!("CARGO_PKG_VERSION").to_string();
    let error = match tokio::time::timeout(READY_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => return (StatusCode::OK, Json(HealthResponse { status: "ok".into(), backend, version })),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {} ms", READY_PING_TIMEOUT.as_millis()),
    };
    tracing::warn!(%error, "readiness check failed");
    (StatusCode::SERVICE_UNAVAILABLE, Json(HealthResponse { status: "database unavailable".into(), backend, version }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn prometheus_metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
