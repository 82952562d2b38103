//! `ApiError`: every way a request can fail, and its one conversion to a response. Codes are
//! stable snake_case strings, never renamed. Server errors are logged once here with their chain;
//! client errors are logged at debug only.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_api::native::{ErrorBody, FieldError};

use crate::store::StoreError;
use crate::use_case::UseCaseError;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the handler's duration.
    pub static REQUEST_ID: String;
}

/// The current request id, or `-` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".into())
}

/// Every failure an endpoint can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The JSON does not have the expected shape.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// Field-level validation failed.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A query parameter or path segment is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// Body (or decompressed body) exceeds the limit.
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// Too many items in one request.
    #[error("{0}")]
    TooManyItems(String),
    /// `Content-Encoding` is not supported.
    #[error("unsupported content encoding {0:?} (use gzip, deflate or none)")]
    UnsupportedEncoding(String),
    /// No credentials were sent.
    #[error("authentication required")]
    MissingCredentials,
    /// The token is malformed, forged or expired.
    #[error("invalid or expired token")]
    InvalidToken,
    /// A credential the operator took back: a disabled machine, a token issued before a revocation.
    #[error("{0}")]
    Revoked(String),
    /// Wrong machine id or password.
    #[error("The machine_id or password is incorrect")]
    InvalidCredentials,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The enrollment key is unknown or revoked.
    #[error("the attachment key provided is not valid")]
    InvalidEnrollKey,
    /// Something does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A unique value already exists.
    #[error("{0}")]
    Conflict(String),
    /// A delta cursor older than the retained change log: the client must download the full list.
    #[error("{0}")]
    CursorExpired(String),
    /// Rate limit hit; retry after the given seconds.
    #[error("rate limit exceeded, retry in {0} s")]
    RateLimited(u64),
    /// The database is unreachable or saturated.
    #[error("storage temporarily unavailable")]
    Unavailable,
    /// Every slot of a bounded, costly operation (password hashing) stayed taken past its wait.
    #[error("server busy, retry shortly")]
    Busy,
    /// A bug or an unexpected failure; details are in the log, not the response.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidBody(_) | ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BodyTooLarge(_) | ApiError::TooManyItems(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MissingCredentials | ApiError::InvalidToken | ApiError::Revoked(_) | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) | ApiError::InvalidEnrollKey => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::CursorExpired(_) => StatusCode::GONE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::TooManyItems(_) => "too_many_items",
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::MissingCredentials => "missing_credentials",
            ApiError::InvalidToken => "invalid_token",
            ApiError::Revoked(_) => "revoked",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::InvalidEnrollKey => "invalid_enroll_key",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::CursorExpired(_) => "cursor_expired",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Busy => "busy",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError { field: field.into(), message: message.into() }])
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<UseCaseError> for ApiError {
    fn from(error: UseCaseError) -> Self {
        match error {
            UseCaseError::NotFound(what) => ApiError::NotFound(what),
            UseCaseError::Conflict(what) => ApiError::Conflict(what),
            UseCaseError::Invalid { field, message } => ApiError::Validation(vec![FieldError { field, message }]),
            UseCaseError::BadRequest(message) => ApiError::BadRequest(message),
            UseCaseError::Forbidden(message) => ApiError::Forbidden(message),
            UseCaseError::CursorExpired(message) => ApiError::CursorExpired(message),
            UseCaseError::Unavailable => ApiError::Unavailable,
            UseCaseError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = current_request_id();
        if let ApiError::Internal(error) = &self {
            tracing::error!(request_id, error = format!("{error:#}"), "request failed");
        } else {
            tracing::debug!(request_id, code = self.code(), "request rejected: {self}");
        }
        let fields = match &self {
            ApiError::Validation(fields) => fields.clone(),
            _ => Vec::new(),
        };
        let message = match &self {
            ApiError::Validation(fields) => {
                fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
            }
            other => other.to_string(),
        };
        let body = ErrorBody { code: self.code().into(), message, request_id, fields };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            ApiError::RateLimited(secs) => Some(secs.max(1)),
            ApiError::Unavailable => Some(5),
            ApiError::Busy => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_case_errors_answer_with_the_status_code_and_message_they_always_had() {
        let cases = [
            (UseCaseError::NotFound("no account named \"x\"".into()), 404, "not_found", "no account named \"x\""),
            (UseCaseError::Conflict("account \"x\" already exists".into()), 409, "conflict", "account \"x\" already exists"),
            (UseCaseError::invalid("name", "must be 1 to 64 characters long"), 422, "validation_failed", "validation failed"),
            (
                UseCaseError::BadRequest("give a value, a source, or both".into()),
                400,
                "bad_request",
                "give a value, a source, or both",
            ),
            (UseCaseError::Forbidden("not yours".into()), 403, "forbidden", "not yours"),
            (UseCaseError::CursorExpired("cursor 3 is older".into()), 410, "cursor_expired", "cursor 3 is older"),
            (UseCaseError::Unavailable, 503, "unavailable", "storage temporarily unavailable"),
            (UseCaseError::Internal(anyhow::anyhow!("boom")), 500, "internal", "internal error"),
        ];
        for (error, status, code, message) in cases {
            assert_eq!(error.to_string(), message, "the CLI prints the use case's own text");
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code(), api.to_string().as_str()), (status, code, message));
        }
        match ApiError::from(UseCaseError::invalid("name", "too long")) {
            ApiError::Validation(fields) => assert_eq!(fields, [FieldError { field: "name".into(), message: "too long".into() }]),
            other => panic!("{other:?}"),
        }
    }
}
