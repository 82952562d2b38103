//! What both clients share: the base URL and how paths join onto it, the HTTP client with its
//! timeouts and user agent, and turning answers into values or [`Error`]s. It knows nothing about
//! tokens or endpoints.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use crate::error::{Error, api_error};

/// Header carrying the request id the server logs under.
const REQUEST_ID: &str = "x-request-id";

/// A base URL and an HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
}

/// The HTTP client used when the caller does not bring one.
pub(crate) fn default_http_client() -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?)
}

impl Transport {
    /// Parses the base URL: `http` or `https`, no query or fragment. A missing trailing slash
    /// is added, so `https://host/palisade` serves `https://host/palisade/v3/…`.
    pub(crate) fn new(base_url: &str, http: reqwest::Client) -> Result<Transport, Error> {
        let invalid = |reason: &str| Error::InvalidUrl { url: base_url.to_string(), reason: reason.to_string() };
        let mut base = Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a base URL cannot have a query or a fragment"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Transport { http, base })
    }

    /// The base URL, ending in `/`.
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (relative, e.g. `v3/signals`) joined onto the base URL, with each of `segments`
    /// appended as one percent-encoded path segment.
    pub(crate) fn url(&self, path: &str, segments: &[&str]) -> Result<Url, Error> {
        let mut url =
            self.base.join(path).map_err(|e| Error::InvalidUrl { url: format!("{}{path}", self.base), reason: e.to_string() })?;
        if !segments.is_empty() {
            // WHATWG URL parsing turns `.` and `..` (even percent-encoded) into navigation, so such
            // a segment could only ever address another resource.
            if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
                return Err(Error::InvalidUrl { url: (*bad).to_string(), reason: "not usable as a path segment".into() });
            }
            let base = url.to_string();
            url.path_segments_mut()
                .map_err(|()| Error::InvalidUrl { url: base, reason: "the URL cannot have path segments".into() })?
                .pop_if_empty()
                .extend(segments);
        }
        Ok(url)
    }

    /// A request to `url`.
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends a request: a success answer is returned as is, any other becomes [`Error::Api`].
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        let response = request.send().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let (request_id, retry_after) = error_headers(response.headers());
        // A body that cannot be read still leaves a useful error: the status and its reason.
        let body = response.bytes().await.unwrap_or_default();
        Err(api_error(status, request_id, retry_after, &body))
    }
}

/// Reads a success answer's JSON body as `T`.
pub(crate) async fn json<T: DeserializeOwned>(response: Response, endpoint: &str) -> Result<T, Error> {
    let body = response.bytes().await?;
    serde_json::from_slice(&body).map_err(|source| Error::Decode { endpoint: endpoint.to_string(), source })
}

fn error_headers(headers: &HeaderMap) -> (Option<String>, Option<Duration>) {
    let request_id = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    (request_id, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(base: &str) -> Result<Transport, Error> {
        Transport::new(base, reqwest::Client::new())
    }

    #[test]
    fn base_urls_get_a_trailing_slash_and_keep_their_path() -> Result<(), Error> {
        assert_eq!(transport("http://127.0.0.1:8080")?.url("v3/signals", &[])?.as_str(), "http://127.0.0.1:8080/v3/signals");
        assert_eq!(transport("https://h/palisade")?.url("v3/signals", &[])?.as_str(), "https://h/palisade/v3/signals");
        assert_eq!(transport("https://h/palisade/")?.url("v3/signals", &[])?.as_str(), "https://h/palisade/v3/signals");
        Ok(())
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for base in ["", "127.0.0.1:8080", "ftp://h/", "http://h/?x=1", "http://h/#top"] {
            assert!(matches!(transport(base), Err(Error::InvalidUrl { .. })), "{base:?} was accepted");
        }
    }

    #[test]
    fn path_parameters_are_one_encoded_segment() -> Result<(), Error> {
        let t = transport("http://h/")?;
        assert_eq!(t.url("v1/admin/machines", &["a b/c"])?.as_str(), "http://h/v1/admin/machines/a%20b%2Fc");
        assert_eq!(t.url("v1/admin/accounts", &["acme", "enroll-keys"])?.as_str(), "http://h/v1/admin/accounts/acme/enroll-keys");
        for bad in ["", ".", ".."] {
            assert!(matches!(t.url("v1/admin/machines", &[bad]), Err(Error::InvalidUrl { .. })));
        }
        Ok(())
    }
}
