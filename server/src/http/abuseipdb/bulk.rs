//! AbuseIPDB's `POST /api/v2/bulk-report`: a CSV file of reports, each validated as
//! `POST /api/v2/report` validates one ([`crate::domain::abuseipdb::validate`]), the valid ones
//! stored as signals of the key's reporter in one batch (`report::store_reports`), the
//! others answered line by line. The file is read within its 2 MB cap as it arrives, never
//! buffered beyond it; a refused file (too large, too many lines, no header, not multipart)
//! stores nothing and costs nothing.

use std::collections::HashSet;
use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use palisade_api::abuseipdb::{AbuseErrors, BulkReportData, BulkReportResponse, InvalidReport};
use time::OffsetDateTime;
use tracing::instrument;

use super::dialect::{Caller, Failure, Params, answer, authenticate, invalid, now};
use super::report::{REPORT_INTERVAL, reporter, rules, store_reports};
use crate::domain::abuseipdb::{BULK_HEADER, BULK_MAX_BYTES, BulkRow, Report, Submitted, parse_bulk_csv, truncate, validate};
use crate::error::ApiError;
use crate::http::extract::ClientAddr;
use crate::state::AppState;
use crate::store::MachineKey;

/// The largest request body the route reads: the file's cap and room for the multipart framing
/// and any other field. The router's default (`ingest.max_body_bytes`) is sized for agents' JSON.
pub const BULK_BODY_BYTES: usize = BULK_MAX_BYTES + 64 * 1024;

/// Report many addresses at once: a multipart/form-data field `csv` holding AbuseIPDB's CSV
/// (header `IP,Categories,ReportDate,Comment`, then one report per line: categories
/// comma-separated inside double quotes, `ReportDate` ISO 8601 or empty for now, `Comment` free
/// text), at most 10,000 reports and 2 MB. Each line is validated as a single report is; a line
/// refused (bad or non-public address, bad category, a date in the future or older than signal
/// retention, an address already on an earlier line, or reported by this key within 15 minutes)
/// is listed in `invalidReports` with its number (1 is the first line after the header) and the
/// others are stored, in one batch, as signals of the key's account. 200 whenever the file was
/// read, even if every line was refused. Costs one lookup.
#[utoipa::path(post, path = "/bulk-report", tag = "abuseipdb", security(("abuseipdb_key" = [])),
    params(("key" = Option<String>, Query, description = "the API key, when not sent in the `Key` header")),
    request_body(content = palisade_api::abuseipdb::BulkReportForm, content_type = "multipart/form-data"),
    responses((status = 200, body = BulkReportResponse),
        (status = 401, description = "missing, unknown or revoked key", body = AbuseErrors),
        (status = 403, description = "the key's reporter was disabled by the operator", body = AbuseErrors),
        (status = 413, description = "the request body is larger than the file's 2 MB and its framing", body = AbuseErrors),
        (status = 422, description = "no `csv` file, or a file that is larger than 2 MB, holds more than 10,000 reports, is not UTF-8 or lacks the header", body = AbuseErrors),
        (status = 429, description = "over the tier's quota, or over the reporter's daily signal bytes; see `Retry-After`", body = AbuseErrors)))]
#[instrument(skip_all, fields(report.count))]
pub async fn bulk_report(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let params = Params::from_query(uri.query());
    let caller = match authenticate(&state, client, &headers, &params).await {
        Ok(caller) => caller,
        Err(failure) => return failure.into_response(),
    };
    let now = now(&state);
    let rows = match read_file(multipart).await {
        Ok(rows) => rows,
        Err(failure) => return answer(Err(failure), &caller.standing(&state).await),
    };
    tracing::Span::current().record("report.count", rows.len());
    let reporter = match reporter(&state, &caller.key, now).await {
        Ok(reporter) => reporter,
        Err(failure) => return answer(Err(failure), &caller.standing(&state).await),
    };
    let (valid, mut refused) = match sort_rows(&state, client, reporter, &rows, now).await {
        Ok(sorted) => sorted,
        Err(failure) => return answer(Err(failure), &caller.standing(&state).await),
    };
    let (decision, charged) = caller.charge(&state).await;
    if let Err(failure) = charged {
        return answer(Err(failure), &decision);
    }
    let outcome = save(&state, &caller, reporter, client, valid, now).await.map(|saved| {
        refused.sort_by_key(|line| line.row_number);
        Json(BulkReportResponse { data: BulkReportData { saved_reports: saved as u64, invalid_reports: refused } })
            .into_response()
    });
    answer(outcome, &decision)
}

/// The `csv` field's reports, read within [`BULK_MAX_BYTES`].
async fn read_file(multipart: Result<Multipart, MultipartRejection>) -> Result<Vec<BulkRow>, Failure> {
    let mut multipart = multipart
        .map_err(|_| invalid("csv", "The csv file is required: send it as the field `csv` of a multipart/form-data body."))?;
    let mut file = None;
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() != Some("csv") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if bytes.len() + chunk.len() > BULK_MAX_BYTES {
                return Err(invalid("csv", format!("The csv file may not be larger than {BULK_MAX_BYTES} bytes (2 MB).")));
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some(bytes);
        break;
    }
    let file = file.ok_or_else(|| invalid("csv", "The csv file is required: no field `csv` in the form."))?;
    let text = String::from_utf8(file).map_err(|_| invalid("csv", "The csv file must be UTF-8 text."))?;
    parse_bulk_csv(&text).map_err(|detail| invalid("csv", detail))
}

/// A multipart body that cannot be read: over the route's limit (413), or malformed (422).
fn unreadable(error: MultipartError) -> Failure {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Failure::Api(ApiError::BodyTooLarge(BULK_BODY_BYTES));
    }
    invalid("csv", format!("The multipart/form-data body cannot be read: {}", error.body_text()))
}

/// The rows as reports to store and lines refused, in file order. An address is stored once per
/// file (its first valid line) and not within [`REPORT_INTERVAL`] of this key's last report of it.
async fn sort_rows(
    state: &AppState,
    client: IpAddr,
    reporter: MachineKey,
    rows: &[BulkRow],
    now: OffsetDateTime,
) -> Result<(Vec<Report>, Vec<InvalidReport>), Failure> {
    let own = [client];
    let rules = rules(state, &own, now);
    let mut valid = Vec::new();
    let mut refused = Vec::new();
    let mut seen = HashSet::new();
    for row in rows {
        let input = truncate(row.fields[0].trim(), 64).to_string();
        let line = |error: String| InvalidReport { error, input: input.clone(), row_number: row.number as u64 };
        let [ip, categories, timestamp, comment] = row.fields.as_slice() else {
            let error = format!("A line has {} fields: {}.", BULK_HEADER.len(), BULK_HEADER.join(","));
            refused.push(line(error));
            continue;
        };
        let submitted = Submitted {
            ip: Some(ip.as_str()),
            categories: Some(categories.as_str()),
            comment: comment.as_str(),
            timestamp: Some(timestamp.as_str()),
        };
        let report = match validate(&submitted, &rules) {
            Ok(report) => report,
            Err((_, error)) => {
                refused.push(line(error));
                continue;
            }
        };
        if !seen.insert(report.ip) {
            refused.push(line(format!("Duplicate IP: {} is reported on an earlier line of this file.", report.ip)));
            continue;
        }
        valid.push((row.number, input, report));
    }
    let addresses: Vec<String> = valid.iter().map(|(_, _, report)| report.ip.to_string()).collect();
    let recent: HashSet<String> =
        state.store.reported_since(reporter, &addresses, now - REPORT_INTERVAL).await?.into_iter().collect();
    let mut stored = Vec::with_capacity(valid.len());
    for (number, input, report) in valid {
        if recent.contains(&report.ip.to_string()) {
            let minutes = REPORT_INTERVAL.whole_minutes();
            refused.push(InvalidReport {
                error: format!("Duplicate IP: this key reported {} within the last {minutes} minutes.", report.ip),
                input,
                row_number: number as u64,
            });
            continue;
        }
        stored.push(report);
    }
    Ok((stored, refused))
}

async fn save(
    state: &AppState,
    caller: &Caller,
    reporter: MachineKey,
    client: IpAddr,
    reports: Vec<Report>,
    now: OffsetDateTime,
) -> Result<usize, Failure> {
    let saved = store_reports(state, reporter, client, &reports, now).await?;
    metrics::counter!("palisade_abuseipdb_reports_total").increment(saved as u64);
    tracing::debug!(api_key.prefix = %caller.key.prefix, report.saved = saved, "AbuseIPDB bulk report stored");
    Ok(saved)
}
