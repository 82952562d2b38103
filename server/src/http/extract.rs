//! Extractors that turn untrusted request parts into typed values or an [`ApiError`]:
//! JSON bodies with size and decompression limits, machine and admin authentication, and the
//! peer address. Authentication lives here so a handler's signature states what it requires.
//! A client that has presented too many wrong credentials of a kind is refused (429) before its
//! next credential is even looked up ([`guard_credentials`], [`record_miss`]).

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use flate2::read::{GzDecoder, ZlibDecoder};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::error::Category;

use crate::auth::secrets::hash_secret;
use crate::error::ApiError;
use crate::limits::LimitKey;
use crate::limits::failures::CredentialKind;
use crate::state::AppState;
use crate::store::MachineKey;

/// A JSON body: at most `ingest.max_body_bytes` on the wire, inflated (gzip or deflate) up to
/// `ingest.max_decompressed_bytes`, then decoded into `T`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let encoding = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let limit = state.ingest.max_body_bytes;
        let raw = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::BodyTooLarge(limit))?;
        let bytes = inflate(&encoding, raw, state.ingest.max_decompressed_bytes)?;
        decode_json(&bytes).map(JsonBody)
    }
}

/// Inflates a body per its `Content-Encoding`, refusing to produce more than `limit` bytes (a
/// gzip bomb stops at the limit instead of filling memory).
fn inflate(encoding: &str, raw: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let reader: Box<dyn Read + '_> = match encoding {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => Box::new(GzDecoder::new(&raw[..])),
        "deflate" => Box::new(ZlibDecoder::new(&raw[..])),
        other => return Err(ApiError::UnsupportedEncoding(other.to_string())),
    };
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid {encoding}: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::BodyTooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// Decodes JSON: syntax errors are 400 `malformed_json`, shape errors 422 `invalid_body`.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::MalformedJson(e.to_string()),
        // Decoding stops at the first wrong type, which can come before a syntax error later in
        // the body (`[1,` for a struct): a body that is not JSON at all is malformed, whatever
        // was noticed first.
        Category::Data => match serde_json::from_slice::<IgnoredAny>(bytes) {
            Err(syntax) => ApiError::MalformedJson(syntax.to_string()),
            Ok(_) => ApiError::InvalidBody(e.to_string()),
        },
    })
}

/// The token in `Authorization: Bearer <token>`, or the bare `Authorization: <token>` the
/// official Python CAPI SDK sends.
fn authorization_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(ApiError::MissingCredentials)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return Err(ApiError::InvalidToken),
        // `Bearer ` with nothing after it (CrowdSec 1.4.6 after a login answer without a
        // token), seen here with its trailing space trimmed: no token, not a bare token "Bearer".
        None if value.eq_ignore_ascii_case("bearer") => "",
        None => value,
    };
    if token.is_empty() {
        return Err(ApiError::MissingCredentials);
    }
    Ok(token)
}

/// An authenticated machine: a valid, unexpired JWT issued by this network, for a machine that is
/// neither disabled nor deleted, issued after the machine's last revocation (checked against
/// the replica's revocation snapshot, [`crate::revocation`]).
#[derive(Debug, Clone)]
pub struct AuthMachine {
    /// Internal id.
    pub key: MachineKey,
    /// Login.
    pub login: String,
}

impl<S> FromRequestParts<S> for AuthMachine
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = authorization_token(parts)?;
        let claims = state.jwt.verify(token).map_err(|_| ApiError::InvalidToken)?;
        let key = MachineKey(claims.mid);
        if let Some(refusal) = state.revocations.current().await?.machine_refusal(key, claims.iat) {
            return Err(ApiError::Revoked(refusal.message().into()));
        }
        tracing::Span::current().record("caller", tracing::field::display(format_args!("machine:{}", claims.sub)));
        Ok(AuthMachine { key, login: claims.sub })
    }
}

/// The operator, authenticated by a live admin token (confirmed against the store at most once a
/// minute per replica, and again at once after any revocation: [`crate::revocation`]).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, state).await?;
        let state = AppState::from_ref(state);
        let token = authorization_token(parts)?;
        guard_credentials(&state, CredentialKind::AdminToken, client)?;
        // Looked up by SHA-256: comparing hashes of a high-entropy secret leaks nothing useful.
        if state.revocations.admin_token_valid(&hash_secret(token)).await? {
            let prefix = crate::auth::secrets::visible_prefix(token);
            tracing::Span::current().record("caller", tracing::field::display(format_args!("admin:{prefix}")));
            // The audit log's recording layer, when the route has one, learns who acted.
            if let Some(actor) = parts.extensions.get::<AuditActor>() {
                actor.set(prefix);
            }
            Ok(Admin)
        } else {
            record_miss(&state, CredentialKind::AdminToken, client);
            Err(ApiError::InvalidToken)
        }
    }
}

/// Who the operator behind an admin request is, for the audit log: its recording layer
/// (`http::admin::audit`) puts an empty one in the request, and the [`Admin`] extractor fills it
/// in with the token's visible prefix once it accepted the token.
#[derive(Debug, Clone, Default)]
pub struct AuditActor(std::sync::Arc<std::sync::OnceLock<String>>);

impl AuditActor {
    /// Records who the authenticated operator is (the first call wins).
    pub fn set(&self, actor: String) {
        let _ = self.0.set(actor);
    }

    /// The operator, once authenticated.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// A caller authenticated by `x-api-key` (the CTI header). Missing, unknown and revoked keys are
/// 403, not 401: CrowdSec's CTI client treats only 403 as "bad key" (protocol notes §7.3).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The stored key, with its account and tier.
    pub record: crate::store::ApiKeyRecord,
}

impl ApiKey {
    /// What the limiter counts against: the account, so extra keys do not add quota.
    pub fn limit_key(&self) -> LimitKey {
        LimitKey::Account(self.record.account.0)
    }
}

impl<S> FromRequestParts<S> for ApiKey
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, state).await?;
        let state = AppState::from_ref(state);
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::Forbidden("an API key is required in the x-api-key header".into()))?;
        match live_api_key(&state, client, key).await? {
            Some(record) => Ok(ApiKey { record }),
            None => Err(ApiError::Forbidden("invalid or revoked API key".into())),
        }
    }
}

/// The live (unrevoked) API key `key`, presented by `client`: `None` when it is unknown or
/// revoked, which counts as a wrong credential; 429 while `client` is locked out. Shared by the
/// [`ApiKey`] extractor and the dialects that carry the key elsewhere (AbuseIPDB's `Key` header
/// or `key` parameter), so every way of presenting a key is checked, cached and locked out alike.
pub async fn live_api_key(state: &AppState, client: IpAddr, key: &str) -> Result<Option<crate::store::ApiKeyRecord>, ApiError> {
    guard_credentials(state, CredentialKind::ApiKey, client)?;
    let hash = hash_secret(key);
    let record = match state.quotas.api_keys.get(&hash) {
        Some(record) => record,
        None => {
            let record = state.store.api_key_by_hash(&hash).await?;
            // Recorded once per cache period, not on every lookup.
            if let Some(live) = record.as_ref().filter(|r| r.revoked_at.is_none())
                && let Err(error) = state.store.touch_api_key(&live.prefix, time::OffsetDateTime::now_utc()).await
            {
                tracing::warn!(%error, "cannot record API key use");
            }
            state.quotas.api_keys.put(hash, record.clone());
            record
        }
    };
    match record {
        Some(record) if record.revoked_at.is_none() => {
            tracing::Span::current().record("caller", tracing::field::display(format_args!("key:{}", record.prefix)));
            Ok(Some(record))
        }
        _ => {
            record_miss(state, CredentialKind::ApiKey, client);
            Ok(None)
        }
    }
}

/// Who is looking an address up on the native route: an API key, or a machine token (which
/// gets the configured machine tier, per machine).
#[derive(Debug, Clone)]
pub struct LookupCaller {
    /// What the limiter counts against.
    pub limit_key: LimitKey,
    /// The tier name that applies.
    pub tier: String,
}

impl<S> FromRequestParts<S> for LookupCaller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key("x-api-key") {
            let key = ApiKey::from_request_parts(parts, state).await?;
            return Ok(LookupCaller { limit_key: key.limit_key(), tier: key.record.tier });
        }
        let machine = AuthMachine::from_request_parts(parts, state).await?;
        let state = AppState::from_ref(state);
        Ok(LookupCaller { limit_key: LimitKey::Machine(machine.key.0), tier: state.quotas.machine_tier.to_string() })
    }
}

/// The client's address, canonical (IPv4-mapped IPv6 as IPv4): the peer, or, when the peer is
/// one of the configured `trusted_proxies`, the client the forwarding headers name
/// ([`crate::http::forwarded::client_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S> FromRequestParts<S> for ClientAddr
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Through axum's extractor rather than the extension itself, so that a router served
        // in-process with `MockConnectInfo` (tests, benchmarks) gets its peer address too.
        let ConnectInfo(addr) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("router served without connect info")))?;
        let trusted = AppState::from_ref(state).trusted_proxies;
        Ok(ClientAddr(crate::http::forwarded::client_ip(addr.ip(), &parts.headers, &trusted)))
    }
}

/// Refuses `client` (429 with `Retry-After`) while it has used up its wrong credentials of
/// `kind`: called before the credential is looked up, so a locked-out guesser costs neither a
/// database query nor a hash.
pub fn guard_credentials(state: &AppState, kind: CredentialKind, client: IpAddr) -> Result<(), ApiError> {
    state.credential_failures.check(kind, client, std::time::Instant::now()).map_err(ApiError::RateLimited)
}

/// Counts a wrong credential of `kind` from `client`.
pub fn record_miss(state: &AppState, kind: CredentialKind, client: IpAddr) {
    state.credential_failures.record_miss(kind, client, std::time::Instant::now());
}

/// Query parameters, with a malformed query answered by our error body.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// A boolean query parameter: `true`/`1` or `false`/`0` in any case, `default` when absent or
/// empty, 400 naming the parameter otherwise.
pub fn parse_flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!("{name} must be true or false, not {other:?}"))),
    }
}

/// Path parameters, with a malformed segment answered by our error body.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParam(value))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![b' '; 10 * 1024 * 1024]).unwrap();
        let bomb = Bytes::from(encoder.finish().unwrap());
        assert!(bomb.len() < 64 * 1024);
        assert!(matches!(inflate("gzip", bomb, 1024 * 1024), Err(ApiError::BodyTooLarge(_))));
    }

    #[test]
    fn invalid_gzip_and_unknown_encodings_are_refused() {
        assert!(matches!(inflate("gzip", Bytes::from_static(b"not gzip"), 1024), Err(ApiError::BadRequest(_))));
        assert!(matches!(inflate("br", Bytes::from_static(b"x"), 1024), Err(ApiError::UnsupportedEncoding(_))));
    }

    #[test]
    fn json_errors_are_classified() {
        assert!(matches!(decode_json::<Vec<u8>>(b"[1,"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(decode_json::<Vec<u8>>(b"{}"), Err(ApiError::InvalidBody(_))));
        assert!(matches!(decode_json::<Vec<String>>(b"[1,"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(decode_json::<Vec<String>>(b"[1]"), Err(ApiError::InvalidBody(_))));
    }
}
