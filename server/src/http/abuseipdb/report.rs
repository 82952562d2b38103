//! AbuseIPDB reports: `POST /api/v2/report` and the v1 `POST /report/json`. Each report becomes
//! one signal of the key's reporter, a machine of the key's account created on the key's first
//! report (login `abuseipdb-<key prefix>`, a password hash nothing verifies against, so it can
//! never log in), stored through the same path as a CrowdSec push (enrichment, the machine's
//! daily byte allowance, the consensus worker woken). The reporter earns trust like any machine;
//! revoking the key stops its reports, and the operator can disable the reporter machine. The
//! reporter and the batch store path (`store_reports`) are shared with `bulk-report`
//! ([`super::bulk`]) and `clear-address` ([`super::clear`]); validation is the domain's.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use palisade_api::abuseipdb::{AbuseErrors, ReportData, ReportResponse, V1ReportResponse};
use time::{Duration, OffsetDateTime};
use tracing::instrument;

use super::dialect::{Caller, Failure, Params, authenticate, confidence_score, invalid, now};
use crate::domain::abuseipdb::{Field, Report, Rules, Submitted, truncate, validate};
use crate::domain::net::origin_prefix;
use crate::domain::signal::stored_size;
use crate::error::ApiError;
use crate::http::extract::ClientAddr;
use crate::limits::Decision;
use crate::state::AppState;
use crate::store::{ApiKeyRecord, CreatedBy, MachineKey, NewMachine, NewSignal, Origin, ReportQuery, StoreError};

/// How long the same key may not report the same address again (AbuseIPDB's rule).
pub const REPORT_INTERVAL: Duration = Duration::minutes(15);

/// The password "hash" of a reporter machine: not a PHC string, so no password verifies.
const NO_LOGIN: &str = "!abuseipdb-reporter: logs in with no password";

/// The names a dialect gives the report's parameters.
struct Names {
    ip: &'static str,
    categories: &'static str,
}

/// Report one address: form-encoded `ip`, `categories` (comma-separated numbers 1–23),
/// `comment` (stored scrubbed of the caller's address, at most 1,024 bytes, shown only to the
/// caller's account) and an optional ISO 8601 `timestamp` (not in the future, not older than
/// signal retention). The same address from the same key within 15 minutes is 429. The report
/// becomes a signal of the key's account; the answer's score is the address's score now (the
/// report counts once the consensus worker has read it). Costs one lookup.
#[utoipa::path(post, path = "/report", tag = "abuseipdb", security(("abuseipdb_key" = [])),
    request_body(content = palisade_api::abuseipdb::ReportForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = ReportResponse),
        (status = 401, description = "missing, unknown or revoked key", body = AbuseErrors),
        (status = 403, description = "the key's reporter was disabled by the operator", body = AbuseErrors),
        (status = 422, description = "an invalid parameter", body = AbuseErrors),
        (status = 429, description = "over the tier's quota, or the same address within 15 minutes; see `Retry-After`", body = AbuseErrors)))]
#[instrument(skip_all)]
pub async fn report_address(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let (decision, outcome) = submit(&state, client, &headers, &params, Names { ip: "ip", categories: "categories" }).await;
    let response = match outcome {
        Ok((ip, score)) => {
            Json(ReportResponse { data: ReportData { ip_address: ip.to_string(), abuse_confidence_score: score } })
                .into_response()
        }
        Err(failure) => failure.into_response(),
    };
    with_standing(response, decision.as_ref())
}

/// AbuseIPDB's v1 report, as fail2ban's older `abuseipdb` action sends it: `key`, `category`,
/// `ip`, `comment` in the query or a form body. Answers `{"ip", "success": true}`; a refusal
/// keeps that shape with `"success": false` and a `message`, under the same statuses as v2.
#[utoipa::path(post, path = "/report/json", tag = "abuseipdb",
    request_body(content = palisade_api::abuseipdb::V1ReportForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = V1ReportResponse),
        (status = 401, description = "missing, unknown or revoked key", body = V1ReportResponse),
        (status = 403, description = "the key's reporter was disabled by the operator", body = V1ReportResponse),
        (status = 422, description = "an invalid parameter", body = V1ReportResponse),
        (status = 429, description = "over the tier's quota, or the same address within 15 minutes; see `Retry-After`", body = V1ReportResponse)))]
#[instrument(skip_all)]
pub async fn report_address_v1(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let (decision, outcome) = submit(&state, client, &headers, &params, Names { ip: "ip", categories: "category" }).await;
    let shown_ip = params.get("ip").map(|ip| truncate(ip, 64).to_string()).unwrap_or_default();
    let response = match outcome {
        Ok((ip, _)) => Json(V1ReportResponse { ip: ip.to_string(), success: true, message: None }).into_response(),
        Err(failure) => {
            let v2 = failure.into_response();
            let status = v2.status();
            let retry_after = v2.headers().get(axum::http::header::RETRY_AFTER).cloned();
            let detail = v2_detail(v2).await;
            let mut response =
                (status, Json(V1ReportResponse { ip: shown_ip, success: false, message: Some(detail) })).into_response();
            if let Some(value) = retry_after {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
            response
        }
    };
    with_standing(response, decision.as_ref())
}

/// The `detail` of a v2 error answer (or its status's reason).
async fn v2_detail(response: Response) -> String {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    serde_json::from_slice::<AbuseErrors>(&bytes)
        .ok()
        .and_then(|body| body.errors.into_iter().next().map(|e| e.detail))
        .or_else(|| serde_json::from_slice::<palisade_api::native::ErrorBody>(&bytes).ok().map(|body| body.message))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string())
}

fn with_standing(response: Response, decision: Option<&Decision>) -> Response {
    match decision {
        Some(decision) => crate::http::quota::with_limit_headers(response, decision),
        None => response,
    }
}

/// Authenticates, validates, applies the 15-minute rule, charges and stores one report: the
/// caller's standing (once authenticated) and the address with its score.
async fn submit(
    state: &AppState,
    client: IpAddr,
    headers: &HeaderMap,
    params: &Params,
    names: Names,
) -> (Option<Decision>, Result<(IpAddr, u8), Failure>) {
    let caller = match authenticate(state, client, headers, params).await {
        Ok(caller) => caller,
        Err(failure) => return (None, Err(failure)),
    };
    let now = now(state);
    let report = match parse_report(state, params, &names, client, now) {
        Ok(report) => report,
        Err(failure) => return (Some(caller.standing(state).await), Err(failure)),
    };
    let reporter = match reporter(state, &caller.key, now).await {
        Ok(reporter) => reporter,
        Err(failure) => return (Some(caller.standing(state).await), Err(failure)),
    };
    match reported_recently(state, reporter, report.ip, now).await {
        Ok(false) => {}
        Ok(true) => {
            let detail = format!("You can only report the same IP address (`{}`) once in 15 minutes.", report.ip);
            let failure = Failure::TooSoon { detail, retry_after: REPORT_INTERVAL.whole_seconds() as u64 };
            return (Some(caller.standing(state).await), Err(failure));
        }
        Err(failure) => return (Some(caller.standing(state).await), Err(failure)),
    }
    let (decision, charged) = caller.charge(state).await;
    if let Err(failure) = charged {
        return (Some(decision), Err(failure));
    }
    let outcome = store(state, &caller, reporter, client, &report, now).await;
    (Some(decision), outcome)
}

fn parse_report(
    state: &AppState,
    params: &Params,
    names: &Names,
    client: IpAddr,
    now: OffsetDateTime,
) -> Result<Report, Failure> {
    let submitted = Submitted {
        ip: params.get(names.ip),
        categories: params.get(names.categories),
        comment: params.raw("comment").unwrap_or(""),
        timestamp: params.get("timestamp"),
    };
    validate(&submitted, &rules(state, &[client], now)).map_err(|(field, detail)| {
        let parameter = match field {
            Field::Ip => names.ip,
            Field::Categories => names.categories,
            Field::Comment => "comment",
            Field::Timestamp => "timestamp",
        };
        invalid(parameter, detail)
    })
}

/// What a report from `own` is validated against at `now`.
pub(super) fn rules<'a>(state: &AppState, own: &'a [IpAddr], now: OffsetDateTime) -> Rules<'a> {
    Rules { now, retention: Duration::days(state.ingest.max_signal_age_days), own }
}

/// The login of a key's reporter machine.
fn reporter_login(key: &ApiKeyRecord) -> String {
    format!("abuseipdb-{}", key.prefix)
}

/// The key's reporter machine if it exists and is this key's, without creating it.
pub(super) async fn existing_reporter(state: &AppState, key: &ApiKeyRecord) -> Result<Option<MachineKey>, Failure> {
    let machine = state.store.machine_by_login(&reporter_login(key)).await?;
    Ok(machine.filter(|m| m.password_hash == NO_LOGIN && m.account == Some(key.account)).map(|m| m.key))
}

/// The key's reporter machine, created and attached to the key's account on its first report.
/// A machine of that login that is not such a reporter of this account is never used.
pub(super) async fn reporter(state: &AppState, key: &ApiKeyRecord, now: OffsetDateTime) -> Result<MachineKey, Failure> {
    let login = reporter_login(key);
    let mut machine = state.store.machine_by_login(&login).await?;
    if machine.is_none() {
        let new = NewMachine {
            machine_id: login.clone(),
            password_hash: NO_LOGIN.into(),
            sensor: false,
            created_by: CreatedBy::Register,
            created_at: now,
        };
        match state.store.create_machine(&new).await {
            // Another replica or request created it meanwhile.
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(error) => return Err(error.into()),
        }
        machine = state.store.machine_by_login(&login).await?;
    }
    let machine = machine.ok_or_else(|| Failure::Api(ApiError::Internal(anyhow::anyhow!("reporter {login} vanished"))))?;
    if machine.password_hash != NO_LOGIN || machine.account.is_some_and(|account| account != key.account) {
        return Err(Failure::Api(ApiError::Conflict(format!(
            "The machine {login:?} exists and is not this key's reporter; ask the operator to rename it."
        ))));
    }
    if machine.disabled_at.is_some() {
        return Err(Failure::Forbidden("The operator disabled this key's reporter; its reports are refused.".into()));
    }
    if machine.account.is_none() {
        let name = format!("AbuseIPDB reports of API key {}", key.prefix);
        state.store.enroll_machine(machine.key, key.account, Some(&name), &[], false, now).await?;
    }
    Ok(machine.key)
}

/// Whether `reporter` reported `ip` within [`REPORT_INTERVAL`] before `now`.
async fn reported_recently(state: &AppState, reporter: MachineKey, ip: IpAddr, now: OffsetDateTime) -> Result<bool, Failure> {
    let query = ReportQuery {
        value: ip.to_string(),
        // Any activity time: the rule is about when reports arrive.
        reported_since: OffsetDateTime::UNIX_EPOCH,
        received_since: Some(now - REPORT_INTERVAL),
        machine: Some(reporter),
        limit: 1,
        offset: 0,
    };
    Ok(!state.store.recent_reports(&query).await?.is_empty())
}

async fn store(
    state: &AppState,
    caller: &Caller,
    reporter: MachineKey,
    client: IpAddr,
    report: &Report,
    now: OffsetDateTime,
) -> Result<(IpAddr, u8), Failure> {
    store_reports(state, reporter, client, std::slice::from_ref(report), now).await?;
    metrics::counter!("palisade_abuseipdb_reports_total").increment(1);
    tracing::debug!(api_key.prefix = %caller.key.prefix, "AbuseIPDB report stored");
    let found = state.lookup.find(report.ip, now.unix_timestamp()).await?;
    Ok((report.ip, confidence_score(&found.reputation)))
}

/// Stores `reports` as signals of `reporter` in one batch, through the same path as a CrowdSec
/// push: enrichment, the machine's daily byte allowance (all or nothing: over it, nothing is
/// stored and the answer is 429 until the next UTC day), the consensus worker woken. Returns
/// the signals stored.
pub(super) async fn store_reports(
    state: &AppState,
    reporter: MachineKey,
    client: IpAddr,
    reports: &[Report],
    now: OffsetDateTime,
) -> Result<usize, Failure> {
    if reports.is_empty() {
        return Ok(0);
    }
    let origin = Origin { ip: client, prefix: origin_prefix(client), asn: state.enricher.asn(client) };
    let signals: Vec<NewSignal> = reports
        .iter()
        .map(|report| NewSignal {
            machine: reporter,
            report: report.to_signal(now),
            origin: origin.clone(),
            enrichment: state.enricher.lookup(report.ip),
            received_at: now,
        })
        .collect();
    let bytes = signals.iter().map(|signal| stored_size(&signal.report)).sum();
    let day = now.unix_timestamp().div_euclid(86_400);
    if !state.signal_bytes.charge(reporter.0, day, bytes, state.ingest.signal_bytes_per_machine_per_day) {
        metrics::counter!("palisade_signals_refused_total", "reason" => "daily_bytes").increment(signals.len() as u64);
        let until_tomorrow = (day + 1) * 86_400 - now.unix_timestamp();
        return Err(Failure::Api(ApiError::RateLimited(until_tomorrow.max(1) as u64)));
    }
    let outcome = match state.store.insert_signals(&signals).await {
        Ok(outcome) => outcome,
        Err(error) => {
            state.signal_bytes.refund(reporter.0, day, bytes);
            return Err(error.into());
        }
    };
    if outcome.inserted > 0 {
        state.consensus_wake.notify_one();
        for report in reports {
            state.lookup.forget_reports(report.ip);
        }
    }
    metrics::counter!("palisade_signals_accepted_total").increment(outcome.inserted as u64);
    Ok(outcome.inserted)
}
