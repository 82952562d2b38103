//! The AbuseIPDB dialect: `GET /api/v2/check`, `POST /api/v2/report`, `POST /api/v2/bulk-report`,
//! `DELETE /api/v2/clear-address`, `GET /api/v2/blacklist`, `GET /api/v2/reports`,
//! `GET /api/v2/check-block` and the v1 `POST /report/json` older fail2ban actions send, so AbuseIPDB tools work against
//! Palisade by changing only a URL and a key (`docs/abuseipdb.md`). A view over the same
//! reputation, signals and lists as the native routes: reads go through [`crate::lookup`] and the
//! served lists, reports become signals of the key's account ([`report`]).
//!
//! What AbuseIPDB's clients expect, kept here:
//! - the key arrives in the `Key` header, or as the legacy `key` query or form parameter;
//! - errors are `{"errors":[{"detail","status","source":{"parameter"}?}]}` with AbuseIPDB's
//!   statuses: 401 for a missing, unknown or revoked key, 422 for an invalid parameter, 429 over
//!   quota (with `Retry-After`) or for the same address reported twice within 15 minutes;
//! - every answer to an authenticated caller carries `X-RateLimit-Limit/-Remaining/-Reset`.
//!
//! Quota: each call of check, check-block, reports, report, bulk-report, clear-address and
//! blacklist costs one lookup of the key's tier (tiers have one lookup quota; the dialect adds
//! none). Refused input costs nothing.

pub mod blocks;
pub mod bulk;
pub mod check;
pub mod clear;
pub mod dialect;
pub mod report;
pub mod reports;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes served under `/api/v2`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(check::check_address))
        .routes(routes!(report::report_address))
        .routes(bulk_route())
        .routes(routes!(clear::clear_address))
        .routes(routes!(check::get_blacklist))
        .routes(routes!(reports::get_reports))
        .routes(routes!(blocks::check_block))
}

/// `bulk-report` with its own body limit: a 2 MB file is larger than the router's default
/// (`ingest.max_body_bytes`, sized for agents' JSON). This route layer runs after the root's and
/// so replaces its limit.
fn bulk_route() -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, method_router) = routes!(bulk::bulk_report);
    (schemas, paths, method_router.layer(DefaultBodyLimit::max(bulk::BULK_BODY_BYTES)))
}

/// The v1 route, merged at the root (`/report/json`).
pub fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(report::report_address_v1))
}
