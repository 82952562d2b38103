//! `GET /api/v2/reports`: the reports about one address, newest first, a page at a time, as a
//! verbose check lists them (comments only to their own account).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use palisade_api::abuseipdb::{AbuseErrors, ReportsPage, ReportsResponse};
use time::Duration;
use tracing::instrument;

use super::check::{parse_check, shown_report};
use super::dialect::{Caller, Failure, Params, admit, answer, invalid, now};
use crate::http::extract::ClientAddr;
use crate::state::AppState;
use crate::store::ReportQuery;

/// Most reports reachable by paging (`page * perPage`), AbuseIPDB's own bound.
pub const MAX_PAGED_REPORTS: i64 = 10_000;

/// The reports about `ipAddress` within `maxAgeInDays` (1–365, default 30), newest first:
/// `page` (from 1) of `perPage` (1–100, default 25), at most the newest 10,000. Comments only of
/// the caller's own account. Costs one lookup.
#[utoipa::path(get, path = "/reports", tag = "abuseipdb", security(("abuseipdb_key" = [])),
    params(("ipAddress" = String, Query, description = "IPv4 or IPv6 address"),
           ("maxAgeInDays" = Option<u16>, Query, description = "1 to 365, default 30"),
           ("page" = Option<u32>, Query, description = "from 1, default 1"),
           ("perPage" = Option<u8>, Query, description = "1 to 100, default 25"),
           ("key" = Option<String>, Query, description = "the API key, when not sent in the `Key` header")),
    responses((status = 200, body = ReportsResponse),
        (status = 401, description = "missing, unknown or revoked key", body = AbuseErrors),
        (status = 422, description = "an invalid parameter", body = AbuseErrors),
        (status = 429, description = "over the tier's quota; see `Retry-After`", body = AbuseErrors)))]
#[instrument(skip_all)]
pub async fn get_reports(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let (caller, page, decision) = match admit(&state, client, &headers, &params, |params, _| parse_page(params)).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    answer(reports(&state, &caller, &page).await.map(|data| Json(ReportsResponse { data }).into_response()), &decision)
}

struct Page {
    ip: std::net::IpAddr,
    max_age: i64,
    page: u32,
    per_page: u32,
}

fn parse_page(params: &Params) -> Result<Page, Failure> {
    let (ip, max_age, _) = parse_check(params)?;
    let page = params.int("page", 1..=MAX_PAGED_REPORTS, Some(1))?.unwrap_or(1);
    let per_page = params.int("perPage", 1..=100, Some(25))?.unwrap_or(25);
    if (page - 1) * per_page >= MAX_PAGED_REPORTS {
        return Err(invalid("page", format!("Only the newest {MAX_PAGED_REPORTS} reports can be paged through.")));
    }
    Ok(Page { ip, max_age, page: page as u32, per_page: per_page as u32 })
}

async fn reports(state: &AppState, caller: &Caller, page: &Page) -> Result<ReportsPage, Failure> {
    let query = ReportQuery {
        value: page.ip.to_string(),
        reported_since: now(state) - Duration::days(page.max_age),
        received_since: None,
        machine: None,
        limit: page.per_page,
        offset: (page.page - 1) * page.per_page,
    };
    let total = state.store.report_summary(&query).await?.reports.min(MAX_PAGED_REPORTS as u64);
    let results: Vec<_> =
        state.store.recent_reports(&query).await?.into_iter().map(|report| shown_report(state, caller, report)).collect();
    let last_page = total.div_ceil(u64::from(page.per_page)).max(1);
    let url = |to: u64| {
        format!(
            "{}/api/v2/reports?ipAddress={}&maxAgeInDays={}&page={to}&perPage={}",
            state.public_url.trim_end_matches('/'),
            page.ip,
            page.max_age,
            page.per_page
        )
    };
    let current = u64::from(page.page);
    Ok(ReportsPage {
        total,
        page: current,
        count: results.len() as u64,
        per_page: u64::from(page.per_page),
        last_page,
        next_page_url: (current < last_page).then(|| url(current + 1)),
        previous_page_url: (current > 1).then(|| url(current - 1)),
        results,
    })
}
