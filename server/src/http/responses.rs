//! The error answers many operations share, declared once for the OpenAPI document and named in
//! each handler's `responses(...)`. Each is one status with our error body
//! ([`palisade_api::native::ErrorBody`]); the doc comment is its description. They only describe:
//! handlers answer with [`crate::error::ApiError`], the one place error bodies are built. An
//! answer whose meaning belongs to one operation (CrowdSec's "registration closed", a link's "bad
//! or expired signature") stays written out beside its handler.

use palisade_api::native::ErrorBody;
use utoipa::IntoResponses;

/// A path segment or query parameter is malformed.
#[derive(IntoResponses)]
#[response(status = 400)]
pub struct BadRequest(pub ErrorBody);

/// The bearer token is missing, malformed, forged, expired or revoked (code `revoked` when the
/// operator disabled the machine or reset its password since the token was issued).
#[derive(IntoResponses)]
#[response(status = 401)]
pub struct Unauthorized(pub ErrorBody);

/// The `x-api-key` header is missing, or names an unknown or revoked key.
#[derive(IntoResponses)]
#[response(status = 403)]
pub struct InvalidApiKey(pub ErrorBody);

/// The calling machine is not enrolled in an account.
#[derive(IntoResponses)]
#[response(status = 403)]
pub struct NotEnrolled(pub ErrorBody);

/// Nothing of that name exists.
#[derive(IntoResponses)]
#[response(status = 404)]
pub struct NotFound(pub ErrorBody);

/// One of that name already exists.
#[derive(IntoResponses)]
#[response(status = 409)]
pub struct Conflict(pub ErrorBody);

/// The body is not of the expected shape, or a value in it is refused (`fields` names each).
#[derive(IntoResponses)]
#[response(status = 422)]
pub struct Unprocessable(pub ErrorBody);

/// Over a rate limit or quota, or too many wrong credentials from this client address (every
/// admin-token and API-key operation); `Retry-After` says in how many seconds to try again.
#[derive(IntoResponses)]
#[response(status = 429)]
pub struct RateLimited(pub ErrorBody);

/// The link's signature does not match what it names, or the link has expired.
#[derive(IntoResponses)]
#[response(status = 403)]
pub struct BadLinkSignature(pub ErrorBody);

/// Every slot of a bounded, costly operation (password hashing) stayed taken; `Retry-After` says
/// when to try again.
#[derive(IntoResponses)]
#[response(status = 503)]
pub struct Busy(pub ErrorBody);
