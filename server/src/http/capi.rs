//! CrowdSec Central API compatibility (`/v2` for CrowdSec 1.4.x, `/v3` for ≥ 1.5): register, log
//! in, enroll, push signals and metrics, pull the decision stream.
//!
//! Protocol quirks kept here on purpose (each proven by a fixture in `tests/fixtures/`):
//! - error bodies carry `message` (CrowdSec prints it); our `code`/`request_id` ride along;
//! - `/metrics/` is called *with* a trailing slash by CrowdSec and without by other clients;
//! - the token may arrive as `Bearer X` or bare `X` (the Python SDK);
//! - 2xx bodies are always JSON: a bare `OK` makes CrowdSec log a failure;
//! - enrollment answers 202 for a new enrollment and 200 for "already enrolled" (cscli reads it);
//! - every stream decision carries all six fields (a missing one crashes CrowdSec 1.4.6).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::num::NonZeroU32;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_api::capi::{
    Decision, DecisionValue, DecisionsStreamV2, DecisionsStreamV3, DeletedDecisionsGroup, EnrollRequest, LoginRequest,
    LoginResponse, MessageResponse, MetricsRequest, RegisterRequest, RejectedSignal, SignalsResponse,
};
use palisade_api::native::FieldError;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::openapi::path::Paths;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use super::extract::{AuthMachine, ClientAddr, JsonBody, QueryParams, guard_credentials, parse_flag, record_miss};
use super::responses::{BadRequest, Busy, RateLimited, Unauthorized, Unprocessable};
use crate::auth::password::{self, HashingError, Saturated};
use crate::auth::secrets::hash_secret;
use crate::config::RegistrationPolicy;
use crate::domain::names::{check_name, check_scenario};
use crate::domain::net::origin_prefix;
use crate::domain::signal::{bounded_extra, parse_item, stored_size};
use crate::domain::text::{contains_nul, has_nul};
use crate::domain::time::{go_duration, rfc3339};
use crate::error::ApiError;
use crate::limits::failures::CredentialKind;
use crate::serving::Entry;
use crate::state::AppState;
use crate::store::{CreatedBy, EnrollOutcome, LoginRecord, NewMachine, NewSignal, Origin, StoreError};

/// CrowdSec's protocol generations: `/v2` (CrowdSec 1.4.x) and `/v3` (≥ 1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// `/v2`.
    V2,
    /// `/v3`.
    V3,
}

/// The paths both generations serve with the same handlers, nested under `/v2` and under `/v3`
/// at the root; [`v2_routes`] and [`v3_routes`] add what only one of them has. An operationId
/// must be unique in the document, so the v3 copies carry `_v3` (`register_machine_v3`), and
/// `/metrics/` (the trailing slash CrowdSec sends) carries `_slash` (`push_metrics_v3_slash`).
pub fn routes(generation: Generation) -> OpenApiRouter<AppState> {
    let id = match generation {
        Generation::V2 => "",
        Generation::V3 => "_v3",
    };
    OpenApiRouter::default()
        .routes(relabel(routes!(register_machine), "", id))
        .routes(relabel(routes!(login_machine), "", id))
        .routes(relabel(routes!(enroll_machine), "", id))
        .routes(relabel(routes!(push_signals), "", id))
        .routes(relabel(routes!(push_metrics), "", id))
        .routes(relabel(routes!(push_metrics), "/", &format!("{id}_slash")))
}

/// What only `/v2` serves: the decision stream in its v2 shape.
pub fn v2_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(get_decisions_stream_v2))
}

/// What only `/v3` serves: the decision stream in its v3 shape, and usage metrics.
pub fn v3_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(get_decisions_stream_v3)).routes(routes!(push_usage_metrics))
}

/// `route` with `path_suffix` appended to its path and `id_suffix` to its operationId.
fn relabel(route: UtoipaMethodRouter<AppState>, path_suffix: &str, id_suffix: &str) -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, method_router) = route;
    let mut relabelled = Paths::new();
    for (path, mut item) in paths.paths {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            operation.operation_id = operation.operation_id.take().map(|operation_id| format!("{operation_id}{id_suffix}"));
        }
        relabelled.paths.insert(format!("{path}{path_suffix}"), item);
    }
    (schemas, relabelled, method_router)
}

fn ok() -> Json<MessageResponse> {
    Json(MessageResponse { message: "OK".into() })
}

/// Every password hashing slot stayed busy: 503 `busy` with `Retry-After`.
fn saturated(busy: Saturated) -> ApiError {
    tracing::debug!(%busy, "password hashing saturated");
    ApiError::Busy
}

/// Register a machine (`cscli capi register`). Open registration creates a machine with zero
/// trust; closed registration refuses. Registering an existing id with its own password again
/// succeeds (a re-run installer); with another password it is a conflict.
#[utoipa::path(post, path = "/watchers", tag = "crowdsec", request_body = RegisterRequest,
    responses((status = 200, body = MessageResponse), (status = 403, description = "registration closed", body = palisade_api::native::ErrorBody),
              (status = 409, description = "id taken", body = palisade_api::native::ErrorBody), Unprocessable, RateLimited, Busy))]
#[instrument(skip_all, fields(machine.id = %request.machine_id))]
pub async fn register_machine(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    state.source_limits.check_register(peer).map_err(ApiError::RateLimited)?;
    let mut problems = Vec::new();
    if let Err(message) = check_name(&request.machine_id, 128) {
        problems.push(FieldError { field: "machine_id".into(), message });
    }
    if !(16..=256).contains(&request.password.len()) {
        problems.push(FieldError { field: "password".into(), message: "must be 16 to 256 characters long".into() });
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    if state.registration == RegistrationPolicy::Closed {
        return Err(ApiError::Forbidden("registration is closed on this server: ask its operator for credentials".into()));
    }
    // Registering an existing id answers whether the password matches: a guess like a login.
    guard_credentials(&state, CredentialKind::MachinePassword, peer)?;
    if let Some(existing) = state.store.machine_by_login(&request.machine_id).await? {
        return if state.hashing.verify(request.password, existing.password_hash).await.map_err(saturated)? {
            Ok(ok())
        } else {
            record_miss(&state, CredentialKind::MachinePassword, peer);
            Err(ApiError::Conflict("User already registered.".into()))
        };
    }
    let network = state.source_limits.network(peer);
    let cap = state.registrations_per_network_per_day;
    if cap > 0 {
        let since = OffsetDateTime::now_utc() - time::Duration::days(1);
        if state.store.count_registrations(network, since).await? >= u64::from(cap) {
            metrics::counter!("palisade_registrations_capped_total").increment(1);
            return Err(ApiError::RateLimited(3600));
        }
    }
    let password = request.password;
    let password_hash = state.hashing.hash(password.clone()).await.map_err(|e| match e {
        HashingError::Saturated(busy) => saturated(busy),
        HashingError::Failed(e) => ApiError::Internal(e.into()),
    })?;
    let machine = NewMachine {
        machine_id: request.machine_id,
        password_hash,
        sensor: false,
        created_by: CreatedBy::Register,
        created_at: OffsetDateTime::now_utc(),
    };
    match state.store.create_machine(&machine).await {
        Ok(key) => {
            state.store.set_registration_network(key, network).await?;
            // CrowdSec logs in right after registering: that login needs no second argon2 run.
            state.hashing.remember(&password, &machine.password_hash);
            metrics::counter!("palisade_machines_registered_total").increment(1);
            Ok(ok())
        }
        Err(StoreError::Conflict(_)) => Err(ApiError::Conflict("User already registered.".into())),
        Err(other) => Err(other.into()),
    }
}

/// Log a machine in: returns a short-lived JWT (with `exp`) and remembers the scenarios the
/// machine declares, which tailor its blocklist.
#[utoipa::path(post, path = "/watchers/login", tag = "crowdsec", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, description = "wrong id or password, or a disabled machine", body = palisade_api::native::ErrorBody),
              Unprocessable, RateLimited, Busy))]
#[instrument(skip_all, fields(machine.id = %request.machine_id, scenario.count = request.scenarios.len()))]
pub async fn login_machine(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    state.source_limits.check_login(peer).map_err(ApiError::RateLimited)?;
    guard_credentials(&state, CredentialKind::MachinePassword, peer)?;
    // A login that breaks the naming rules cannot exist (register and `admin machine add` both
    // enforce them), so it is refused before the store sees it.
    if check_name(&request.machine_id, 128).is_err() || request.password.len() > 256 {
        metrics::counter!("palisade_logins_total", "outcome" => "failure").increment(1);
        record_miss(&state, CredentialKind::MachinePassword, peer);
        return Err(ApiError::InvalidCredentials);
    }
    if request.scenarios.len() > 10_000 {
        return Err(ApiError::field("scenarios", "at most 10000 scenarios"));
    }
    if let Some((i, message)) = request.scenarios.iter().enumerate().find_map(|(i, s)| check_scenario(s).err().map(|m| (i, m))) {
        return Err(ApiError::field(&format!("scenarios[{i}]"), message));
    }
    let machine = state.store.machine_by_login(&request.machine_id).await?;
    let (hash, machine) = match machine {
        Some(machine) => (machine.password_hash.clone(), Some(machine)),
        None => (password::decoy_hash().await, None),
    };
    let valid = state.hashing.verify(request.password, hash).await.map_err(saturated)?;
    let Some(machine) = machine.filter(|_| valid) else {
        metrics::counter!("palisade_logins_total", "outcome" => "failure").increment(1);
        record_miss(&state, CredentialKind::MachinePassword, peer);
        return Err(ApiError::InvalidCredentials);
    };
    if machine.disabled_at.is_some() {
        metrics::counter!("palisade_logins_total", "outcome" => "failure").increment(1);
        return Err(ApiError::Revoked("this machine is disabled by the operator of this server".into()));
    }
    let now = OffsetDateTime::now_utc();
    // Up to date with the revocations committed before this login (a reset or an enabling made
    // on another replica a moment ago), and a token issued in the second of a revocation would
    // be refused: issue it from the next one.
    let floor = state.revocations.current_fresh().await?.machine_token_floor(machine.key);
    let issued_at = if now.unix_timestamp() < floor { OffsetDateTime::from_unix_timestamp(floor).unwrap_or(now) } else { now };
    let scenarios: BTreeSet<String> = request.scenarios.into_iter().collect();
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(256).collect());
    let record =
        LoginRecord { scenarios: scenarios.into_iter().collect(), origin_prefix: origin_prefix(peer), user_agent, at: now };
    state.store.record_login(machine.key, &record).await?;
    let issued = state.jwt.issue(machine.key, &machine.machine_id, issued_at).map_err(|e| ApiError::Internal(e.into()))?;
    metrics::counter!("palisade_logins_total", "outcome" => "success").increment(1);
    Ok(Json(LoginResponse { code: 200, expire: rfc3339(issued.expires_at), token: issued.token }))
}

/// Enroll the machine into an account with an enrollment key (`cscli console enroll KEY`):
/// 202 when attached now, 200 when it already was (and `overwrite` is false), 403 for a bad key.
#[utoipa::path(post, path = "/watchers/enroll", tag = "crowdsec", request_body = EnrollRequest, security(("machine" = [])),
    responses((status = 202, description = "enrolled", body = MessageResponse), (status = 200, description = "already enrolled", body = MessageResponse),
              (status = 403, description = "invalid key", body = palisade_api::native::ErrorBody), Unauthorized, RateLimited))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn enroll_machine(
    State(state): State<AppState>,
    machine: AuthMachine,
    ClientAddr(peer): ClientAddr,
    JsonBody(request): JsonBody<EnrollRequest>,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    guard_credentials(&state, CredentialKind::EnrollKey, peer)?;
    if request.attachment_key.is_empty() || request.attachment_key.len() > 128 {
        record_miss(&state, CredentialKind::EnrollKey, peer);
        return Err(ApiError::InvalidEnrollKey);
    }
    if request.name.len() > 128 {
        return Err(ApiError::field("name", "at most 128 bytes"));
    }
    if request.tags.len() > 32 || request.tags.iter().any(|t| t.len() > 64) {
        return Err(ApiError::field("tags", "at most 32 tags of at most 64 bytes"));
    }
    if has_nul(&request.name) || request.tags.iter().any(|t| has_nul(t)) {
        return Err(ApiError::field("name", "name and tags may not contain NUL characters"));
    }
    let key = state.store.enroll_key_by_hash(&hash_secret(&request.attachment_key)).await?;
    let Some(key) = key.filter(|k| !k.revoked) else {
        record_miss(&state, CredentialKind::EnrollKey, peer);
        return Err(ApiError::InvalidEnrollKey);
    };
    let name = Some(request.name.as_str()).filter(|n| !n.is_empty());
    let now = OffsetDateTime::now_utc();
    let outcome = state.store.enroll_machine(machine.key, key.account, name, &request.tags, request.overwrite, now).await?;
    if outcome == EnrollOutcome::Enrolled {
        state.store.touch_enroll_key(&hash_secret(&request.attachment_key), now).await?;
    }
    Ok(match outcome {
        EnrollOutcome::Enrolled => (StatusCode::ACCEPTED, Json(MessageResponse { message: "OK".into() })),
        EnrollOutcome::AlreadyEnrolled => (StatusCode::OK, Json(MessageResponse { message: "already enrolled".into() })),
    })
}

/// Push signals. Items are validated one by one: the valid ones are stored (redeliveries of an
/// already stored item are skipped) and the response lists what was refused and why. The answer
/// comes only after the valid items are committed. A request whose every item is invalid is 422.
#[utoipa::path(post, path = "/signals", tag = "crowdsec", request_body = Vec<palisade_api::capi::SignalItem>, security(("machine" = [])),
    responses((status = 200, body = SignalsResponse), Unauthorized,
              (status = 413, description = "too many items or too large", body = palisade_api::native::ErrorBody),
              (status = 422, description = "no valid item", body = palisade_api::native::ErrorBody),
              (status = 429, description = "machine over its signal rate or its daily bytes", body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(machine.id = %machine.login, signal.count = items.len()))]
pub async fn push_signals(
    State(state): State<AppState>,
    machine: AuthMachine,
    ClientAddr(peer): ClientAddr,
    JsonBody(items): JsonBody<Vec<Box<RawValue>>>,
) -> Result<Json<SignalsResponse>, ApiError> {
    let max = state.ingest.max_signals_per_request;
    if items.len() > max {
        return Err(ApiError::TooManyItems(format!("{} signals in one request; the limit is {max}", items.len())));
    }
    if let Some(n) = NonZeroU32::new(items.len() as u32) {
        match state.ingest_limiter.check_key_n(&machine.key.0, n) {
            Ok(Ok(())) => {}
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                return Err(ApiError::RateLimited(wait.as_secs() + 1));
            }
            Err(_) => return Err(ApiError::TooManyItems("batch larger than this machine's burst".into())),
        }
    }
    let now = OffsetDateTime::now_utc();
    let rules = state.signal_rules(now);
    let origin = Origin { ip: peer, prefix: origin_prefix(peer), asn: state.enricher.asn(peer) };
    let mut accepted = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, raw) in items.into_iter().enumerate() {
        match parse_item(raw.get(), &rules) {
            Ok(mut report) => {
                report.extra = bounded_extra(report.extra, state.ingest.max_signal_extra_bytes);
                let enrichment = state.enricher.lookup(report.value.addr());
                accepted.push(NewSignal { machine: machine.key, report, origin: origin.clone(), enrichment, received_at: now });
            }
            Err(rejection) => {
                metrics::counter!("palisade_signals_rejected_total", "code" => rejection.code).increment(1);
                rejected.push(RejectedSignal { index, code: rejection.code.into(), message: rejection.message });
            }
        }
    }
    if accepted.is_empty() && !rejected.is_empty() {
        let fields = rejected
            .into_iter()
            .map(|r| FieldError { field: format!("[{}]", r.index), message: format!("{}: {}", r.code, r.message) });
        return Err(ApiError::Validation(fields.collect()));
    }
    // The day's allowance is charged before anything is stored: a refused push is acknowledged
    // for nothing, and CrowdSec sends it again later.
    let bytes: u64 = accepted.iter().map(|s| stored_size(&s.report)).sum();
    let day = now.unix_timestamp().div_euclid(86_400);
    if !state.signal_bytes.charge(machine.key.0, day, bytes, state.ingest.signal_bytes_per_machine_per_day) {
        metrics::counter!("palisade_signals_refused_total", "reason" => "daily_bytes").increment(accepted.len() as u64);
        let until_tomorrow = (day + 1) * 86_400 - now.unix_timestamp();
        return Err(ApiError::RateLimited(until_tomorrow.max(1) as u64));
    }
    let outcome = match state.store.insert_signals(&accepted).await {
        Ok(outcome) => outcome,
        Err(error) => {
            state.signal_bytes.refund(machine.key.0, day, bytes);
            return Err(error.into());
        }
    };
    if outcome.inserted > 0 {
        state.consensus_wake.notify_one();
    }
    metrics::counter!("palisade_signals_accepted_total").increment(outcome.inserted as u64);
    metrics::counter!("palisade_signals_duplicate_total").increment(outcome.duplicates as u64);
    let message = if rejected.is_empty() { "OK".into() } else { format!("{} signal(s) rejected", rejected.len()) };
    Ok(Json(SignalsResponse { message, accepted: outcome.inserted, duplicates: outcome.duplicates, rejected }))
}

/// Push the installation's inventory (bouncers and agents), sent at start-up and every 30 minutes.
/// Also served as `/v2/metrics/` (with the trailing slash CrowdSec uses).
#[utoipa::path(post, path = "/metrics", tag = "crowdsec", request_body = MetricsRequest, security(("machine" = [])),
    responses((status = 200, body = MessageResponse), Unauthorized,
              (status = 413, description = "document larger than `ingest.max_metrics_bytes`", body = palisade_api::native::ErrorBody),
              Unprocessable, RateLimited))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn push_metrics(
    State(state): State<AppState>,
    machine: AuthMachine,
    JsonBody(request): JsonBody<MetricsRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    if request.bouncers.len() > 10_000 || request.machines.len() > 10_000 || request.apil_version.len() > 256 {
        return Err(ApiError::TooManyItems("at most 10000 bouncers and machines per metrics push".into()));
    }
    let payload = serde_json::to_value(&request).map_err(|e| ApiError::Internal(e.into()))?;
    if contains_nul(&payload) {
        return Err(ApiError::InvalidBody("text may not contain NUL characters".into()));
    }
    let payload = stored_metrics(&state, &machine, payload.to_string())?;
    let version = Some(request.apil_version.as_str()).filter(|v| !v.is_empty());
    state.store.record_metrics(machine.key, "metrics", version, &payload, OffsetDateTime::now_utc()).await?;
    Ok(ok())
}

/// Push usage metrics (CrowdSec ≥ 1.6.3). Stored as sent; any JSON object is accepted.
#[utoipa::path(post, path = "/usage-metrics", tag = "crowdsec", request_body = Object, security(("machine" = [])),
    responses((status = 200, body = MessageResponse), Unauthorized,
              (status = 413, description = "document larger than `ingest.max_metrics_bytes`", body = palisade_api::native::ErrorBody),
              Unprocessable, RateLimited))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn push_usage_metrics(
    State(state): State<AppState>,
    machine: AuthMachine,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<MessageResponse>, ApiError> {
    if !body.is_object() {
        return Err(ApiError::InvalidBody("usage metrics must be a JSON object".into()));
    }
    if contains_nul(&body) {
        return Err(ApiError::InvalidBody("text may not contain NUL characters".into()));
    }
    let version = body.pointer("/lapi/version").and_then(Value::as_str).filter(|v| !v.is_empty() && v.len() <= 256);
    // Up to `ingest.max_metrics_bytes` of compact JSON (413 above), at the machine's metrics rate.
    let payload = stored_metrics(&state, &machine, body.to_string())?;
    state.store.record_metrics(machine.key, "usage", version, &payload, OffsetDateTime::now_utc()).await?;
    Ok(ok())
}

/// A metrics document as it will be stored, or 413 when it is larger than
/// `ingest.max_metrics_bytes` (a 16 MiB body must not become 16 MiB in the database every push),
/// or 429 when the machine pushes more often than `ingest.metrics_per_machine_per_hour`.
fn stored_metrics(state: &AppState, machine: &AuthMachine, payload: String) -> Result<String, ApiError> {
    if let Err(not_until) = state.metrics_limiter.check_key(&machine.key.0) {
        metrics::counter!("palisade_metrics_refused_total", "reason" => "rate").increment(1);
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        return Err(ApiError::RateLimited(wait.as_secs() + 1));
    }
    let max = state.ingest.max_metrics_bytes;
    if payload.len() > max {
        metrics::counter!("palisade_metrics_refused_total", "reason" => "too_large").increment(1);
        return Err(ApiError::BodyTooLarge(max));
    }
    Ok(payload)
}

/// Stream query parameters. Values are parsed by hand so a bad one gets our error body.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StreamQuery {
    /// `true` on the first pull after the agent starts: send the full list.
    pub startup: Option<String>,
    /// v3: `false` to skip the community list.
    pub community_pull: Option<String>,
    /// v3: `false` to skip subscribed lists.
    pub additional_pull: Option<String>,
}

/// A decision of the v2 stream. One from a list other than the community list has origin
/// `lists` and the list's name as its scenario: CrowdSec files it under the alert `lists:<name>`,
/// so `cscli decisions list` tells an operator list or a pool from the community list.
fn v2_decision(entry: &Entry, from_list: Option<&str>, now: OffsetDateTime, removed: bool) -> Decision {
    Decision {
        duration: if removed { "0s".into() } else { go_duration((entry.expires_at() - now).whole_seconds()) },
        origin: if from_list.is_some() { "lists".into() } else { "CAPI".into() },
        scenario: from_list.unwrap_or(entry.scenario()).to_string(),
        scope: if entry.scope() == "range" { "Range".into() } else { "Ip".into() },
        kind: entry.remediation().to_string(),
        value: entry.value().to_string(),
    }
}

/// Pull the community blocklist, v2 shape (CrowdSec 1.4.x): the full list with `startup=true`
/// (or on a machine's first pull), otherwise what changed since this machine's last pull.
#[utoipa::path(get, path = "/decisions/stream", tag = "crowdsec", params(StreamQuery), security(("machine" = [])),
    responses((status = 200, body = DecisionsStreamV2), BadRequest, Unauthorized))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn get_decisions_stream_v2(
    State(state): State<AppState>,
    machine: AuthMachine,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response, ApiError> {
    let startup = parse_flag("startup", query.startup.as_deref(), false)?;
    metrics::counter!("palisade_stream_pulls_total", "version" => "v2", "startup" => startup.to_string()).increment(1);
    let (new, deleted) = state.distribution.stream_delta(machine.key, &machine.login, startup, true, true).await?;
    let now = OffsetDateTime::now_utc();
    // Written as it is sent, a decision at a time: a full list of a million is never held as
    // JSON. The bytes are those of `DecisionsStreamV2` serialised whole.
    let body = super::stream::streamed_body(false, move |out| {
        for (key, sent, removed) in [("{\"new\":[", &new, false), ("],\"deleted\":[", &deleted, true)] {
            out.write_all(key.as_bytes())?;
            for (i, (entry, from_list)) in sent.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, &v2_decision(entry, from_list, now, removed))?;
            }
        }
        out.write_all(b"]}")
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Pull the community blocklist, v3 shape (CrowdSec ≥ 1.5), grouped by scenario and scope.
/// Subscribed operator lists are not inlined as on v2: `links.blocklists` carries a presigned
/// URL per subscribed block list (one per remediation and scope in it), which CrowdSec fetches
/// itself, and `links.allowlists` one per subscribed allowlist. `community_pull=false` leaves
/// out the community list (cursor unchanged); `additional_pull=false` leaves out the block list
/// links (allowlists still apply).
#[utoipa::path(get, path = "/decisions/stream", tag = "crowdsec", params(StreamQuery), security(("machine" = [])),
    responses((status = 200, body = DecisionsStreamV3), BadRequest, Unauthorized))]
#[instrument(skip_all, fields(machine.id = %machine.login))]
pub async fn get_decisions_stream_v3(
    State(state): State<AppState>,
    machine: AuthMachine,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response, ApiError> {
    let startup = parse_flag("startup", query.startup.as_deref(), false)?;
    let community = parse_flag("community_pull", query.community_pull.as_deref(), true)?;
    let additional = parse_flag("additional_pull", query.additional_pull.as_deref(), true)?;
    metrics::counter!("palisade_stream_pulls_total", "version" => "v3", "startup" => startup.to_string()).increment(1);
    let now = OffsetDateTime::now_utc();
    let links = state.distribution.stream_links(machine.key, additional, now).await?;
    if !community {
        return Ok(Json(DecisionsStreamV3 { new: Vec::new(), deleted: Vec::new(), links }).into_response());
    }
    let (new, deleted) = state.distribution.stream_delta(machine.key, &machine.login, startup, true, false).await?;
    let mut removed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (entry, _) in deleted.iter() {
        removed.entry(entry.scope().to_string()).or_default().push(entry.value().to_string());
    }
    let deleted: Vec<DeletedDecisionsGroup> =
        removed.into_iter().map(|(scope, decisions)| DeletedDecisionsGroup { scope, decisions }).collect();
    // Written as it is sent, a group at a time: a full list of a million is never held as JSON
    // or as wire structs. The bytes are those of `DecisionsStreamV3` serialised whole.
    let body = super::stream::streamed_body(false, move |out| {
        let mut order: Vec<&Entry> = new.iter().map(|(entry, _)| &**entry).collect();
        // Stable: within a group, decisions keep the order of the view.
        order.sort_by(|a, b| (a.scenario(), a.scope()).cmp(&(b.scenario(), b.scope())));
        out.write_all(b"{\"new\":[")?;
        for (i, group) in order.chunk_by(|a, b| (a.scenario(), a.scope()) == (b.scenario(), b.scope())).enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"{\"scenario\":")?;
            serde_json::to_writer(&mut *out, group[0].scenario())?;
            out.write_all(b",\"scope\":")?;
            serde_json::to_writer(&mut *out, group[0].scope())?;
            out.write_all(b",\"decisions\":[")?;
            for (j, entry) in group.iter().enumerate() {
                if j > 0 {
                    out.write_all(b",")?;
                }
                let duration = go_duration((entry.expires_at() - now).whole_seconds());
                serde_json::to_writer(&mut *out, &DecisionValue { value: entry.value().to_string(), duration })?;
            }
            out.write_all(b"]}")?;
        }
        out.write_all(b"],\"deleted\":")?;
        serde_json::to_writer(&mut *out, &deleted)?;
        out.write_all(b",\"links\":")?;
        serde_json::to_writer(&mut *out, &links)?;
        out.write_all(b"}")
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
