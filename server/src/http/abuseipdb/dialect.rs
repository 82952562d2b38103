//! What every AbuseIPDB route shares: the key as AbuseIPDB's clients present it, the merged
//! query and form parameters, AbuseIPDB's error body ([`Failure`]), charging the key's tier,
//! the quota clock, and the 0–100 score of a reputation.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Json;
use axum::extract::FromRequest;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_api::abuseipdb::{AbuseError, AbuseErrorSource, AbuseErrors};

use crate::error::ApiError;
use crate::http::extract::live_api_key;
use crate::http::quota::{charge, with_limit_headers};
use crate::limits::{Decision, LimitKey, Tier};
use crate::state::AppState;
use crate::store::ApiKeyRecord;

/// AbuseIPDB's sentence for a bad key.
pub const AUTH_FAILED: &str = "Authentication failed. Your API key is either missing, incorrect, or revoked. Note: The APIv2 key differs from the APIv1 key.";

/// A refusal in AbuseIPDB's shape.
#[derive(Debug)]
pub enum Failure {
    /// Missing, unknown or revoked key: 401.
    Auth,
    /// A parameter is refused: 422 naming it.
    Invalid {
        /// For a person.
        detail: String,
        /// AbuseIPDB's parameter name.
        parameter: &'static str,
    },
    /// The same address from the same key within 15 minutes: 429 with `Retry-After`.
    TooSoon {
        /// For a person.
        detail: String,
        /// Seconds until it may be reported again.
        retry_after: u64,
    },
    /// The key's tier does not include what was asked: 403.
    Forbidden(String),
    /// Any other failure, answered with its own status.
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure::Api(error)
    }
}

impl From<crate::use_case::UseCaseError> for Failure {
    fn from(error: crate::use_case::UseCaseError) -> Self {
        Failure::Api(error.into())
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(error: crate::store::StoreError) -> Self {
        Failure::Api(error.into())
    }
}

/// An invalid `parameter`.
pub fn invalid(parameter: &'static str, detail: impl Into<String>) -> Failure {
    Failure::Invalid { detail: detail.into(), parameter }
}

fn body(status: StatusCode, detail: String, parameter: Option<&str>) -> Response {
    let error =
        AbuseError { detail, status: status.as_u16(), source: parameter.map(|p| AbuseErrorSource { parameter: p.to_string() }) };
    (status, Json(AbuseErrors { errors: vec![error] })).into_response()
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Auth => body(StatusCode::UNAUTHORIZED, AUTH_FAILED.into(), None),
            Failure::Invalid { detail, parameter } => body(StatusCode::UNPROCESSABLE_ENTITY, detail, Some(parameter)),
            Failure::TooSoon { detail, retry_after } => {
                let mut response = body(StatusCode::TOO_MANY_REQUESTS, detail, Some("ip"));
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
                response
            }
            Failure::Forbidden(detail) => body(StatusCode::FORBIDDEN, detail, None),
            // Server-side failures keep the one logging and `Retry-After` of `ApiError`.
            Failure::Api(error) if error.status().is_server_error() => error.into_response(),
            Failure::Api(error) => {
                let status = error.status();
                let detail = match &error {
                    ApiError::RateLimited(secs) => {
                        format!("Daily rate limit exceeded or too many requests. Retry in {} seconds.", secs.max(&1))
                    }
                    other => other.to_string(),
                };
                let retry_after = match error {
                    ApiError::RateLimited(secs) => Some(secs.max(1)),
                    _ => None,
                };
                let mut response = body(status, detail, None);
                if let Some(secs) = retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                response
            }
        }
    }
}

/// Query or form parameters, by name (the last of a repeated name wins). A POST's form body and
/// its query are merged, the body winning.
#[derive(Debug, Default, Clone)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    /// The parameters of a query string alone (a route whose body is not a form).
    pub fn from_query(query: Option<&str>) -> Params {
        Params(parse_pairs(query.unwrap_or_default().as_bytes()))
    }

    /// The trimmed value of `name`, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The raw value of `name` (untrimmed), `None` when absent.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether boolean flag `name` is set: present and not `false`/`0` (AbuseIPDB's `verbose`
    /// and `plaintext` are set by their mere presence).
    pub fn flag(&self, name: &str) -> bool {
        match self.0.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(value) => !matches!(value.as_str(), "false" | "0"),
        }
    }

    /// An integer parameter within `range`, `default` when absent.
    pub fn int(
        &self,
        name: &'static str,
        range: std::ops::RangeInclusive<i64>,
        default: Option<i64>,
    ) -> Result<Option<i64>, Failure> {
        let Some(text) = self.get(name) else { return Ok(default) };
        match text.parse::<i64>() {
            Ok(value) if range.contains(&value) => Ok(Some(value)),
            _ => Err(invalid(name, format!("The {name} must be an integer between {} and {}.", range.start(), range.end()))),
        }
    }
}

fn parse_pairs(text: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(text).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

impl<S> FromRequest<S> for Params
where
    S: Send + Sync,
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = Failure;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = <AppState as axum::extract::FromRef<S>>::from_ref(state).ingest.max_body_bytes;
        let mut params = parse_pairs(req.uri().query().unwrap_or_default().as_bytes());
        if req.method() != axum::http::Method::GET {
            let form = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
            // Within the server's body limit: a larger body is 413.
            let bytes =
                axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| Failure::Api(ApiError::BodyTooLarge(limit)))?;
            if form || !bytes.is_empty() {
                params.extend(parse_pairs(&bytes));
            }
        }
        Ok(Params(params))
    }
}

/// The key as AbuseIPDB's clients send it: the `Key` header, else the `key` parameter.
fn presented_key<'a>(headers: &'a HeaderMap, params: &'a Params) -> Option<&'a str> {
    headers.get("key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty()).or_else(|| params.get("key"))
}

/// An authenticated AbuseIPDB caller: its key and its tier.
pub struct Caller {
    /// The key, with its account.
    pub key: ApiKeyRecord,
    /// The key's tier.
    pub tier: Tier,
}

impl Caller {
    /// What the limiter counts against: the account, as on every API-key route.
    pub fn limit_key(&self) -> LimitKey {
        LimitKey::Account(self.key.account.0)
    }

    /// Where the caller stands, without spending anything.
    pub async fn standing(&self, state: &AppState) -> Decision {
        state.quotas.limiter.check(&self.limit_key(), &self.tier, 0).await
    }

    /// Charges one call; a refusal is the 429 to answer.
    pub async fn charge(&self, state: &AppState) -> (Decision, Result<(), Failure>) {
        let (decision, charged) = charge(state, &self.limit_key(), &self.tier, 1).await;
        (decision, charged.map_err(Failure::Api))
    }
}

/// The start of every read route: the key authenticated, the parameters parsed by `parse`
/// (which may look at the caller's tier), and one lookup charged. `Err` is the whole answer: 401,
/// a 422 carrying the quota as it stands (a refused call costs nothing), or the 429.
pub async fn admit<T>(
    state: &AppState,
    client: IpAddr,
    headers: &HeaderMap,
    params: &Params,
    parse: impl FnOnce(&Params, &Caller) -> Result<T, Failure>,
) -> Result<(Caller, T, Decision), Response> {
    let caller = authenticate(state, client, headers, params).await.map_err(IntoResponse::into_response)?;
    let parsed = match parse(params, &caller) {
        Ok(parsed) => parsed,
        Err(failure) => return Err(answer(Err(failure), &caller.standing(state).await)),
    };
    let (decision, charged) = caller.charge(state).await;
    match charged {
        Ok(()) => Ok((caller, parsed, decision)),
        Err(failure) => Err(answer(Err(failure), &decision)),
    }
}

/// Authenticates the key the request presents (401 in AbuseIPDB's shape otherwise; 429 while
/// the client address is locked out for wrong keys).
pub async fn authenticate(state: &AppState, client: IpAddr, headers: &HeaderMap, params: &Params) -> Result<Caller, Failure> {
    let key = presented_key(headers, params).ok_or(Failure::Auth)?;
    let key = live_api_key(state, client, key).await?.ok_or(Failure::Auth)?;
    let tier = state.quotas.tier(&key.tier);
    Ok(Caller { key, tier })
}

/// `outcome` as a response, with the caller's standing in the rate-limit headers.
pub fn answer(outcome: Result<Response, Failure>, decision: &Decision) -> Response {
    let response = match outcome {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    };
    with_limit_headers(response, decision)
}

/// Now on the quota clock, which tests move forward ([`crate::limits::Limiter::advance_clock`]).
pub fn now(state: &AppState) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(state.quotas.limiter.now_us()) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The 0–100 `abuseConfidenceScore` of a reputation (`docs/abuseipdb.md`): an address listed on
/// the community blocklist (consensus reached) is 100; evidence short of a listing is 75
/// (suspicious, medium confidence), 50 (suspicious, low) or 25 (known); an address in a
/// never-block range, or of which nothing is known, is 0.
pub fn confidence_score(reputation: &crate::reputation::Reputation) -> u8 {
    match (reputation.reputation, reputation.confidence) {
        ("safe" | "benign", _) => 0,
        ("malicious", _) => 100,
        ("suspicious", "high" | "medium") => 75,
        ("suspicious", _) => 50,
        ("known", _) => 25,
        _ => 0,
    }
}

/// Whether a reputation comes from a never-block (allow) range.
pub fn whitelisted(reputation: &crate::reputation::Reputation) -> bool {
    matches!(reputation.reputation, "safe" | "benign")
}
