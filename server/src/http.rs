//! The HTTP surface: the route families composed in one place, the layers applied once at the
//! root, and the OpenAPI document. Each family's `routes()` declares a route and its operation
//! together (`utoipa_axum::routes!` over the handler's `#[utoipa::path]`), so the document is
//! gathered from the very composition that serves requests ([`documented`]), not from a second
//! list; error answers many operations share are declared once in [`responses`]. Routes the
//! document leaves out (the console, the benchmark route, `/docs`) are plain axum routes merged
//! afterwards. `router(state)` is pure, so in-process tests call it without a socket.

pub mod abuseipdb;
pub mod account;
pub mod admin;
pub mod bench;
pub mod blocklists;
pub mod bouncers;
pub mod capi;
pub mod cti;
pub mod extract;
pub mod forwarded;
pub mod ips;
pub mod links;
pub mod ops;
pub mod quota;
pub mod responses;
pub mod stream;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::RefOr;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, REQUEST_ID};
use crate::state::AppState;
use capi::Generation;

/// What the document says beyond its operations: title, tags, security schemes. The operations
/// come from the routes themselves ([`documented`]).
#[derive(OpenApi)]
#[openapi(
    info(title = "Palisade", description = "Community IP-reputation network: CrowdSec-compatible machine API, admin API and operations."),
    modifiers(&SecuritySchemes),
    tags((name = "crowdsec", description = "CrowdSec Central API, v2 and v3"), (name = "admin", description = "Operator API"),
         (name = "ips", description = "IP lookups and explanations"),
         (name = "blocklists", description = "Blocklist downloads: full lists, changes since a cursor, firewall formats"),
         (name = "cti", description = "CrowdSec CTI (smoke) compatible lookups"),
         (name = "bouncers", description = "CrowdSec Local API compatible decisions for bouncers (X-Api-Key)"),
         (name = "account", description = "An account's own API keys"),
         (name = "abuseipdb", description = "AbuseIPDB compatible check, report and blacklist (`Key` header)"),
         (name = "operations", description = "Health and metrics")),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build())
        };
        components.add_security_scheme("machine", bearer("Machine JWT from /v2/watchers/login"));
        components.add_security_scheme("admin", bearer("Admin token from `palisade-server admin token create`"));
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(utoipa::openapi::security::ApiKeyValue::new(
                "x-api-key",
            ))),
        );
        components.add_security_scheme(
            "abuseipdb_key",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(utoipa::openapi::security::ApiKeyValue::new("Key"))),
        );
    }
}

/// Every documented route, under the prefix it is served at, with its documentation: each route
/// family declares a route and its operation together (`routes!`), so nothing here lists them.
/// The CrowdSec paths both generations share are one router nested twice.
fn documented() -> OpenApiRouter<AppState> {
    let mut documented = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v2", capi::routes(Generation::V2).merge(capi::v2_routes()))
        .nest("/v3", capi::routes(Generation::V3).merge(capi::v3_routes()))
        .nest("/v1/admin/blocklists", admin::blocklists::routes())
        .nest("/v1/admin/feeds", admin::feeds::routes())
        .merge(cti::routes())
        .nest("/v1/admin", admin::routes())
        .nest("/v1/account", account::routes())
        .nest("/v1/ips", ips::routes())
        .nest("/v1/blocklists", blocklists::routes())
        .nest("/v1/decisions", bouncers::routes())
        .nest("/v1/links", links::routes())
        .nest("/api/v2", abuseipdb::routes())
        .merge(abuseipdb::v1_routes())
        .merge(ops::routes());
    document_credential_lockout(documented.get_openapi_mut());
    describe_bare_responses(documented.get_openapi_mut());
    documented
}

/// Every operation that takes an admin token or an API key can answer 429: its extractor refuses
/// a client address that has used up its wrong credentials before looking the credential up
/// ([`extract::guard_credentials`]). Said once here, from the security each operation declares,
/// so no operation behind those extractors can leave it out of its `responses(...)`.
fn document_credential_lockout(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::IntoResponses;
    let guarded = |operation: &utoipa::openapi::path::Operation| {
        operation.security.iter().flatten().any(|requirement| {
            serde_json::to_value(requirement)
                .ok()
                .and_then(|value| value.as_object().map(|names| names.contains_key("admin") || names.contains_key("api_key")))
                .unwrap_or(false)
        })
    };
    let limited = responses::RateLimited::responses();
    for item in openapi.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.head, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten().filter(|operation| guarded(operation)) {
            for (status, response) in &limited {
                operation.responses.responses.entry(status.clone()).or_insert_with(|| response.clone());
            }
        }
    }
}

/// OpenAPI 3.1 requires a description on every response, and utoipa leaves an empty one out of
/// the document: a response its handler does not describe gets its status's reason phrase ("OK",
/// "No Content").
fn describe_bare_responses(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.head, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    let reason =
                        status.parse().ok().and_then(|code| StatusCode::from_u16(code).ok()).and_then(|s| s.canonical_reason());
                    response.description = reason.unwrap_or("Response").to_string();
                }
            }
        }
    }
}

/// The OpenAPI document as served and committed.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().into_openapi()
}

/// The whole application: the documented routes, then those the document leaves out (the
/// console, the benchmark route, `/docs` itself).
pub fn router(state: AppState) -> Router {
    let body_limit = state.ingest.max_body_bytes;
    let (mut routes, openapi) = documented().split_for_parts();
    if state.bench_static.is_some() {
        // Only when a benchmark configured it: the baseline of the export benchmark.
        routes = routes.merge(bench::routes());
    }
    // After routing (a route layer) so the matched route is known; only the documented routes
    // are wrapped, and only the admin mutations among them are recorded.
    let audited = admin::audit::AuditedRoutes::from_openapi(&openapi);
    routes = routes.route_layer(middleware::from_fn_with_state((state.clone(), audited), admin::audit::record_admin_action));
    routes
        .nest("/console", crate::console::routes(crate::console::operator::routes()))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(middleware::from_fn(record_metrics))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(deadline))
        // The access log: one line per request at the default level, when the answer is ready,
        // with the span's method, path, route, request id and caller (a machine's login, an API
        // key's prefix, "admin"), never a secret: paths carry none, queries are left out.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get(&REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        uri = %req.uri().path(),
                        request_id = %id,
                        route = tracing::field::Empty,
                        caller = tracing::field::Empty,
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis)),
        )
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(middleware::from_fn(request_id))
}

static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Takes the caller's `x-request-id` when it is short and printable, otherwise makes one; makes
/// it available to error bodies and echoes it on the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if let Ok(value) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID_HEADER.clone(), value.clone());
        let mut response = REQUEST_ID.scope(id, next.run(req)).await;
        response.headers_mut().insert(REQUEST_ID_HEADER.clone(), value);
        response
    } else {
        next.run(req).await
    }
}

/// Longest time a request may take before it is answered 503 (with our error body and
/// `Retry-After`) instead of holding the client, beyond the time a long-poll asked to be held.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

async fn deadline(req: Request, next: Next) -> Response {
    let limit = REQUEST_DEADLINE + blocklists::requested_wait(req.uri());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request exceeded {} s", REQUEST_DEADLINE.as_secs());
            ApiError::Unavailable.into_response()
        }
    }
}

/// Requests by route and status, and latency by route.
async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    tracing::Span::current().record("route", tracing::field::display(&route));
    let method = req.method().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("palisade_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("palisade_http_request_duration_seconds", "route" => route.clone()).record(start.elapsed().as_secs_f64());
    let served = metrics::counter!("palisade_served_bytes_total", "route" => route);
    response.map(|body| axum::body::Body::new(CountingBody { inner: body, served }))
}

/// A response body that adds the bytes it yields (after compression, as sent) to
/// `palisade_served_bytes_total`, frame by frame, so streamed lists count too. Its size hint is
/// the inner body's, so `Content-Length` is unchanged.
struct CountingBody {
    inner: axum::body::Body,
    served: metrics::Counter,
}

impl axum::body::HttpBody for CountingBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.served.increment(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
