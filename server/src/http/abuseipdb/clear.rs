//! AbuseIPDB's `DELETE /api/v2/clear-address`: a key takes back its own reports of one address.
//! Only the signals of the key's reporter machine about exactly that value are deleted (never
//! another key's, machine's or address's), and the consensus leader withdraws the reporter's
//! support of the target in the same step as any other request
//! ([`crate::store::RequestKind::Withdraw`]), so what was counted is taken back too.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use palisade_api::abuseipdb::{AbuseErrors, ClearAddressData, ClearAddressResponse};
use tracing::instrument;

use super::check::parse_check;
use super::dialect::{Caller, Failure, Params, admit, answer, now};
use super::report::existing_reporter;
use crate::http::extract::ClientAddr;
use crate::state::AppState;

/// Delete the key's own reports of `ipAddress` (IPv4 or IPv6): `numReportsDeleted` says how
/// many, 0 when it had none. Other keys' and machines' reports of the address stay. The key's
/// support of the address is withdrawn from consensus at the worker's next step (an address
/// listed on that support alone leaves the list); the 15-minute rule no longer holds back a new
/// report of it. Costs one lookup.
#[utoipa::path(delete, path = "/clear-address", tag = "abuseipdb", security(("abuseipdb_key" = [])),
    params(("ipAddress" = String, Query, description = "IPv4 or IPv6 address"),
           ("key" = Option<String>, Query, description = "the API key, when not sent in the `Key` header")),
    responses((status = 200, body = ClearAddressResponse),
        (status = 401, description = "missing, unknown or revoked key", body = AbuseErrors),
        (status = 422, description = "an invalid parameter", body = AbuseErrors),
        (status = 429, description = "over the tier's quota; see `Retry-After`", body = AbuseErrors)))]
#[instrument(skip_all)]
pub async fn clear_address(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let parse = |params: &Params, _: &Caller| parse_check(params).map(|(ip, _, _)| ip);
    let (caller, ip, decision) = match admit(&state, client, &headers, &params, parse).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let outcome = clear(&state, &caller, IpNet::from(ip)).await;
    answer(
        outcome.map(|deleted| {
            Json(ClearAddressResponse { data: ClearAddressData { num_reports_deleted: deleted } }).into_response()
        }),
        &decision,
    )
}

async fn clear(state: &AppState, caller: &Caller, value: IpNet) -> Result<u64, Failure> {
    let Some(reporter) = existing_reporter(state, &caller.key).await? else { return Ok(0) };
    let deleted = state.store.withdraw_reports(reporter, value, now(state)).await?;
    if deleted > 0 {
        state.consensus_wake.notify_one();
        state.lookup.forget_reports(value.addr());
        metrics::counter!("palisade_abuseipdb_reports_cleared_total").increment(deleted);
    }
    tracing::debug!(api_key.prefix = %caller.key.prefix, report.deleted = deleted, "AbuseIPDB reports cleared");
    Ok(deleted)
}
