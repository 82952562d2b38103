//! Benchmarks only: `GET /v1/bench/static` answers the bytes of the file named by
//! `distribution.bench_static_file`, read once at start-up and held in memory. It exists so the
//! blocklist export can be compared with the same bytes served by the same binary, the same
//! HTTP stack and the same layers, without any rendering: the best a list download could do.
//! The route is mounted only when that setting is present; never set it in production. It is
//! not part of the API (absent from the OpenAPI document).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

/// The static route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/bench/static", get(bench_static))
}

/// The configured bytes, streamed in 64 KiB chunks as a rendered list is.
async fn bench_static(State(state): State<AppState>) -> Result<Response, ApiError> {
    let bytes = state.bench_static.clone().ok_or_else(|| ApiError::NotFound("no such endpoint".into()))?;
    let chunks: Vec<bytes::Bytes> =
        (0..bytes.len()).step_by(64 * 1024).map(|i| bytes.slice(i..(i + 64 * 1024).min(bytes.len()))).collect();
    let mut response = Response::new(Body::from_stream(futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>))));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}
