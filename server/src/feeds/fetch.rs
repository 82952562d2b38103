//! Fetching a feed's body over HTTP: a conditional GET (`If-None-Match`, `If-Modified-Since`)
//! with a timeout, an optional API key, and a byte cap enforced while the body streams in, so an
//! oversized answer is refused without being held. Every failure becomes a sentence the operator
//! reads in `feed list`, the admin API and the console. It does not parse or store anything.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

/// Longest a whole fetch (connection, answer and body) may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Longest the connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// The HTTP client feeds are fetched with (one per process: it pools connections).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!("palisade-server/", env!("CARGO_PKG_VERSION"), " (feeds)"))
        .build()
        // Building fails only when the TLS backend cannot start; a default client then reports
        // the same failure on each fetch instead of the server refusing to start.
        .unwrap_or_default()
}

/// One fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchRequest<'a> {
    /// The URL.
    pub url: &'a str,
    /// Sent as `x-api-key` when set.
    pub api_key: Option<&'a str>,
    /// Sent as `If-None-Match` when set.
    pub etag: Option<&'a str>,
    /// Sent as `If-Modified-Since` when set.
    pub last_modified: Option<&'a str>,
    /// Largest body accepted.
    pub max_bytes: u64,
}

/// What the source answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 304: the copy held is current.
    NotModified,
    /// 200 with a body within the cap.
    Body {
        /// The body (decompressed).
        bytes: Vec<u8>,
        /// Its `ETag`.
        etag: Option<String>,
        /// Its `Last-Modified`.
        last_modified: Option<String>,
    },
}

/// Fetches `request.url`; `Err` is a sentence saying why nothing usable came back.
pub async fn fetch(client: &reqwest::Client, request: FetchRequest<'_>) -> Result<Fetched, String> {
    let mut builder = client.get(request.url);
    if let Some(key) = request.api_key {
        builder = builder.header("x-api-key", key);
    }
    if let Some(etag) = request.etag {
        builder = builder.header(IF_NONE_MATCH, etag);
    }
    if let Some(last_modified) = request.last_modified {
        builder = builder.header(IF_MODIFIED_SINCE, last_modified);
    }
    let mut response = builder.send().await.map_err(|e| format!("cannot fetch it: {}", chain(&e)))?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(format!("the source answered HTTP {status}"));
    }
    let too_large = || format!("it is larger than the limit of {} bytes", request.max_bytes);
    if response.content_length().is_some_and(|length| length > request.max_bytes) {
        return Err(too_large());
    }
    let etag = header(response.headers(), ETAG);
    let last_modified = header(response.headers(), LAST_MODIFIED);
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("the body broke off: {}", chain(&e)))? {
        if (bytes.len() + chunk.len()) as u64 > request.max_bytes {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body { bytes, etag, last_modified })
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// An error and its causes, as one line (reqwest's own message names only the outermost).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
