//! IP lookups against a Palisade server: the CTI-compatible `GET /v2/smoke/{ip}` (as any CTI
//! client sees it) and the native `GET /v1/ips/{ip}`, both with an API key. Only HTTP and
//! decoding live here; printing is the binary's.

use palisade_api::cti::SmokeItem;
use palisade_api::native::IpLookupResponse;

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The server could not be reached or the answer not read.
    #[error("{}", crate::error::transport_sentence(.0))]
    Transport(reqwest::Error),
    /// The key is missing, unknown or revoked (403).
    #[error("the API key was refused")]
    Forbidden,
    /// Over the tier's quota or burst (429); retry after the seconds given, when sent.
    #[error("rate limited{}", .0.map(|s| format!(", retry in {s} s")).unwrap_or_default())]
    RateLimited(Option<u64>),
    /// Any other refusal.
    #[error("server answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
}

impl From<reqwest::Error> for LookupError {
    fn from(error: reqwest::Error) -> Self {
        LookupError::Transport(error)
    }
}

/// A client for the lookup routes of one server, with one API key.
#[derive(Debug, Clone)]
pub struct LookupClient {
    base: String,
    api_key: String,
    http: reqwest::Client,
}

impl LookupClient {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8470/`).
    pub fn new(base: &str, api_key: &str) -> Self {
        let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
        LookupClient { base, api_key: api_key.to_string(), http: reqwest::Client::new() }
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, LookupError> {
        let response = self.http.get(format!("{}{path}", self.base)).header("x-api-key", &self.api_key).send().await?;
        match response.status().as_u16() {
            403 => Err(LookupError::Forbidden),
            429 => Err(LookupError::RateLimited(
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()),
            )),
            _ => Ok(response),
        }
    }

    async fn refusal(response: reqwest::Response) -> LookupError {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        LookupError::Api { status, message: body["message"].as_str().unwrap_or("no message").to_string() }
    }

    /// The CTI `SmokeItem` of an address; `None` when the server knows nothing of it (404).
    pub async fn smoke(&self, ip: &str) -> Result<Option<SmokeItem>, LookupError> {
        let response = self.get(&format!("v2/smoke/{ip}")).await?;
        match response.status().as_u16() {
            200 => Ok(Some(response.json().await?)),
            404 => Ok(None),
            _ => Err(Self::refusal(response).await),
        }
    }

    /// Everything the server knows about an address, in Palisade's own shape.
    pub async fn lookup(&self, ip: &str) -> Result<IpLookupResponse, LookupError> {
        let response = self.get(&format!("v1/ips/{ip}")).await?;
        if response.status().is_success() { Ok(response.json().await?) } else { Err(Self::refusal(response).await) }
    }
}
