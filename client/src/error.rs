//! The client's one error type, [`Error`], and the decoding of the server's error bodies into
//! it. A server answer that is not a success becomes [`Error::Api`] whatever its body looks like:
//! Palisade's `{code, message, request_id, fields}`, CrowdSec's bare `{message}`, or no JSON at
//! all (a proxy's HTML page). This module never performs I/O.

use std::time::Duration;

use palisade_api::native::FieldError;
use serde::Deserialize;

impl From<reqwest::Error> for Error {
    fn from(error: reqwest::Error) -> Self {
        Error::Transport(error)
    }
}

/// One sentence for a request that did not complete: where it went and the innermost cause
/// ("Connection refused", "timed out"). reqwest nests the same failure three or four deep
/// ("error sending request … client error (Connect) … tcp connect error …"), and printing that
/// chain said the same thing several times.
pub fn transport_sentence(error: &reqwest::Error) -> String {
    let cause = if error.is_timeout() {
        "timed out".to_string()
    } else {
        let mut cause: &dyn std::error::Error = error;
        while let Some(next) = cause.source() {
            cause = next;
        }
        cause.to_string()
    };
    let reading = error.is_body() || error.is_decode();
    match (error.url(), reading) {
        (Some(url), false) => format!("cannot reach {}://{}: {cause}", url.scheme(), url.authority()),
        (Some(url), true) => format!("cannot read the answer of {}://{}: {cause}", url.scheme(), url.authority()),
        (None, _) => format!("request failed: {cause}"),
    }
}

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-success status.
    #[error("server answered {status} {code}: {message}{}", request_suffix(.request_id.as_deref()))]
    Api {
        /// HTTP status code.
        status: u16,
        /// Stable snake_case code from the body (e.g. `invalid_credentials`); `http_<status>`
        /// when the body did not carry one.
        code: String,
        /// What went wrong, for a person: the body's `message`, else the start of the body text,
        /// else the status's reason phrase.
        message: String,
        /// The request id from the body or the `x-request-id` header, for the server's logs.
        request_id: Option<String>,
        /// Per-field problems of a validation error (`validation_failed`).
        fields: Vec<FieldError>,
        /// How long the server asked to wait (`Retry-After`, on 429 and 503).
        retry_after: Option<Duration>,
    },
    /// The request did not complete: connection refused, TLS failure, timeout, reset. Shown as
    /// one sentence ([`transport_sentence`]); the reqwest error is kept for callers that look.
    #[error("{}", transport_sentence(.0))]
    Transport(reqwest::Error),
    /// A success answer whose body is not what the endpoint promises.
    #[error("unexpected answer from {endpoint}: {source}")]
    Decode {
        /// The endpoint path, e.g. `v3/signals`.
        endpoint: String,
        /// What did not match.
        #[source]
        source: serde_json::Error,
    },
    /// A request body could not be encoded as JSON.
    #[error("cannot encode the request body: {0}")]
    Encode(#[source] serde_json::Error),
    /// A URL could not be built from the base URL or a path parameter.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The offending URL or path segment.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// An authenticated call was made before any login and without credentials to log in with.
    #[error("not logged in: call login_machine or set credentials with with_credentials first")]
    NotLoggedIn,
}

impl Error {
    /// The HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable code of an [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn request_suffix(request_id: Option<&str>) -> String {
    request_id.map(|id| format!(" (request {id})")).unwrap_or_default()
}

/// The error body, read leniently: every field may be missing.
#[derive(Deserialize)]
struct LooseErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    fields: Vec<FieldError>,
}

/// Longest piece of a non-JSON body quoted in [`Error::Api::message`].
const MAX_QUOTED_BODY: usize = 300;

/// Builds the [`Error::Api`] for a failed answer from its parts.
pub(crate) fn api_error(
    status: reqwest::StatusCode,
    header_request_id: Option<String>,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Error {
    let parsed = serde_json::from_slice::<LooseErrorBody>(body).ok();
    let (code, message, request_id, fields) = match parsed {
        Some(body) => (body.code, body.message, body.request_id, body.fields),
        None => (None, None, None, Vec::new()),
    };
    let message = message.filter(|m| !m.is_empty()).unwrap_or_else(|| quoted_body(status, body));
    Error::Api {
        status: status.as_u16(),
        code: code.filter(|c| !c.is_empty()).unwrap_or_else(|| format!("http_{}", status.as_u16())),
        message,
        request_id: request_id.filter(|id| !id.is_empty() && id != "-").or(header_request_id),
        fields,
        retry_after,
    }
}

/// The start of a body that is not a usable error object, or the reason phrase when it is empty.
fn quoted_body(status: reqwest::StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no reason given").to_string();
    }
    match text.char_indices().nth(MAX_QUOTED_BODY) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn palisade_error_bodies_are_decoded_whole() {
        let body = br#"{"code":"validation_failed","message":"[0]: reserved_address: x","request_id":"abc",
            "fields":[{"field":"[0]","message":"reserved_address: x"}]}"#;
        let error = api_error(StatusCode::UNPROCESSABLE_ENTITY, Some("header-id".into()), None, body);
        let Error::Api { status, code, message, request_id, fields, retry_after } = error else { panic!("not an API error") };
        assert_eq!((status, code.as_str(), message.as_str()), (422, "validation_failed", "[0]: reserved_address: x"));
        assert_eq!(request_id.as_deref(), Some("abc"));
        assert_eq!(fields.len(), 1);
        assert_eq!(retry_after, None);
    }

    #[test]
    fn crowdsec_message_only_bodies_get_a_status_code() {
        let error = api_error(StatusCode::FORBIDDEN, Some("r1".into()), None, br#"{"message":"forbidden"}"#);
        assert_eq!(error.code(), Some("http_403"));
        assert!(
            matches!(error, Error::Api { ref message, ref request_id, .. } if message == "forbidden" && request_id.as_deref() == Some("r1"))
        );
    }

    #[test]
    fn non_json_bodies_fall_back_to_their_text_or_the_reason_phrase() {
        let html = format!("<html>{}</html>", "x".repeat(1000));
        let error = api_error(StatusCode::BAD_GATEWAY, None, Some(Duration::from_secs(5)), html.as_bytes());
        let Error::Api { code, message, retry_after, .. } = error else { panic!("not an API error") };
        assert_eq!(code, "http_502");
        assert!(message.starts_with("<html>x") && message.ends_with('…') && message.chars().count() == MAX_QUOTED_BODY + 1);
        assert_eq!(retry_after, Some(Duration::from_secs(5)));

        let empty = api_error(StatusCode::SERVICE_UNAVAILABLE, None, None, b"");
        assert!(matches!(empty, Error::Api { ref message, .. } if message == "Service Unavailable"));
        assert!(empty.to_string().starts_with("server answered 503 http_503: Service Unavailable"));
    }
}
