//! [`Client`]: a machine's side of the CrowdSec Central API as Palisade serves it (register, log
//! in, enroll, push signals and metrics, pull the decision stream). It owns the machine's session:
//! the token from the last login, renewed before it expires and once after a 401 when the
//! credentials are known. It does not retry anything else; that policy belongs to the caller.

use std::sync::{Arc, Mutex, MutexGuard};

use palisade_api::capi::{
    DecisionsStreamV2, DecisionsStreamV3, EnrollRequest, LoginRequest, LoginResponse, MetricsRequest, RegisterRequest,
    SignalItem, SignalsResponse,
};
use palisade_api::native::BlocklistView;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::transport::{Transport, default_http_client, json};

/// A token is renewed when it is this close to its `expire` (what CrowdSec does).
const RENEW_BEFORE: Duration = Duration::seconds(60);

/// Header carrying the seq a blocklist answer reflects.
const SEQ_HEADER: &str = "x-palisade-seq";

/// A blocklist answer of [`Client::get_blocklist_entries`].
#[derive(Debug, Clone)]
pub struct BlocklistBody {
    /// The `x-palisade-seq` header: the cursor to pass as `since` next time.
    pub seq: Option<i64>,
    /// The body, in the format asked for.
    pub body: Vec<u8>,
}

/// Outcome of [`Client::enroll_machine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// The machine is now attached to the key's account (HTTP 202).
    Enrolled,
    /// It already was attached and `overwrite` was false: nothing changed (HTTP 200).
    AlreadyEnrolled,
}

/// A machine's client. Cheap to clone; clones share the session, so one login serves every task.
///
/// ```no_run
/// # async fn demo() -> Result<(), palisade::Error> {
/// let client = palisade::Client::new("https://palisade.example.org")?;
/// client.register_machine("web-01", "a-long-random-password").await?;
/// client.login_machine("web-01", "a-long-random-password", &[]).await?;
/// let stream = client.get_decisions_stream_v3(true).await?;
/// # drop(stream);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    session: Mutex<Session>,
    /// Held while logging in, so concurrent calls that find the token stale log in once.
    renewing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Session {
    credentials: Option<Credentials>,
    token: Option<Token>,
}

#[derive(Clone)]
struct Credentials {
    machine_id: String,
    password: String,
    scenarios: Vec<String>,
}

#[derive(Clone)]
struct Token {
    value: String,
    /// `None` when the server's `expire` did not parse: then only a 401 renews the token.
    expires_at: Option<OffsetDateTime>,
}

impl Token {
    fn is_fresh(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|at| at - RENEW_BEFORE > now)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let session = self.session();
        f.debug_struct("Client")
            .field("base_url", &self.inner.transport.base().as_str())
            .field("machine_id", &session.credentials.as_ref().map(|c| c.machine_id.as_str()))
            .field("logged_in", &session.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server at `base_url` (`http` or `https`; a trailing `/` is optional and a
    /// path prefix is kept), with 10 s connect and 60 s request timeouts.
    pub fn new(base_url: &str) -> Result<Client, Error> {
        Client::with_http_client(base_url, default_http_client()?)
    }

    /// A client that sends through `http` (for custom TLS roots, proxies or timeouts).
    pub fn with_http_client(base_url: &str, http: reqwest::Client) -> Result<Client, Error> {
        Ok(Client {
            inner: Arc::new(Inner {
                transport: Transport::new(base_url, http)?,
                session: Mutex::new(Session::default()),
                renewing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Remembers the machine's credentials: the first authenticated call logs in with them, and
    /// the token is renewed with them before it expires. Shared with every clone.
    pub fn with_credentials(self, machine_id: &str, password: &str, scenarios: &[String]) -> Client {
        self.session().credentials = Some(Credentials {
            machine_id: machine_id.to_string(),
            password: password.to_string(),
            scenarios: scenarios.to_vec(),
        });
        self
    }

    /// The base URL, ending in `/`.
    pub fn base_url(&self) -> &str {
        self.inner.transport.base().as_str()
    }

    /// When the current token expires, as the server announced it (`None` before a login).
    pub fn token_expires_at(&self) -> Option<OffsetDateTime> {
        self.session().token.as_ref().and_then(|t| t.expires_at)
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // The session holds plain values; a panic elsewhere cannot leave it half-written.
        self.inner.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `POST /v3/watchers`: registers a machine. Succeeds again for the same id and password.
    pub async fn register_machine(&self, machine_id: &str, password: &str) -> Result<(), Error> {
        let body = RegisterRequest { machine_id: machine_id.to_string(), password: password.to_string() };
        let url = self.inner.transport.url("v3/watchers", &[])?;
        self.inner.transport.send(self.inner.transport.request(Method::POST, url).json(&body)).await?;
        Ok(())
    }

    /// `POST /v3/watchers/login`: logs in, declaring the hub scenarios installed. The token is kept
    /// for later calls and the credentials for renewing it.
    pub async fn login_machine(&self, machine_id: &str, password: &str, scenarios: &[String]) -> Result<LoginResponse, Error> {
        let credentials =
            Credentials { machine_id: machine_id.to_string(), password: password.to_string(), scenarios: scenarios.to_vec() };
        let _renewing = self.inner.renewing.lock().await;
        let response = self.login_request(&credentials).await?;
        let mut session = self.session();
        session.token = Some(token_of(&response));
        session.credentials = Some(credentials);
        Ok(response)
    }

    async fn login_request(&self, credentials: &Credentials) -> Result<LoginResponse, Error> {
        let body = LoginRequest {
            machine_id: credentials.machine_id.clone(),
            password: credentials.password.clone(),
            scenarios: credentials.scenarios.clone(),
        };
        let url = self.inner.transport.url("v3/watchers/login", &[])?;
        let response = self.inner.transport.send(self.inner.transport.request(Method::POST, url).json(&body)).await?;
        json(response, "v3/watchers/login").await
    }

    /// `POST /v3/watchers/enroll`: attaches the machine to the account an enrollment key belongs
    /// to, with a display name (`""` for none) and tags.
    pub async fn enroll_machine(
        &self,
        attachment_key: &str,
        name: &str,
        tags: &[String],
        overwrite: bool,
    ) -> Result<EnrollOutcome, Error> {
        let body =
            EnrollRequest { attachment_key: attachment_key.to_string(), name: name.to_string(), tags: tags.to_vec(), overwrite };
        let response = self.authenticated(Method::POST, "v3/watchers/enroll", Some(&body)).await?;
        Ok(if response.status() == StatusCode::OK { EnrollOutcome::AlreadyEnrolled } else { EnrollOutcome::Enrolled })
    }

    /// `POST /v3/signals`: pushes signals. Items are judged one by one; the answer counts those
    /// stored and redelivered and lists the refused ones. A batch with no valid item is an
    /// [`Error::Api`] with code `validation_failed`.
    pub async fn push_signals(&self, signals: &[SignalItem]) -> Result<SignalsResponse, Error> {
        let response = self.authenticated(Method::POST, "v3/signals", Some(signals)).await?;
        json(response, "v3/signals").await
    }

    /// `POST /v3/metrics`: pushes the installation's inventory of bouncers and agents.
    pub async fn push_metrics(&self, metrics: &MetricsRequest) -> Result<(), Error> {
        self.authenticated(Method::POST, "v3/metrics", Some(metrics)).await?;
        Ok(())
    }

    /// `POST /v3/usage-metrics`: pushes usage metrics (a JSON object, stored as sent).
    pub async fn push_usage_metrics(&self, metrics: &serde_json::Value) -> Result<(), Error> {
        self.authenticated(Method::POST, "v3/usage-metrics", Some(metrics)).await?;
        Ok(())
    }

    /// `GET /v2/decisions/stream`: the community blocklist in CrowdSec 1.4's shape; `startup`
    /// asks for the full list instead of the changes since the last pull.
    pub async fn get_decisions_stream_v2(&self, startup: bool) -> Result<DecisionsStreamV2, Error> {
        let path = if startup { "v2/decisions/stream?startup=true" } else { "v2/decisions/stream?startup=false" };
        let response = self.authenticated::<()>(Method::GET, path, None).await?;
        json(response, "v2/decisions/stream").await
    }

    /// `GET /v3/decisions/stream`: the community blocklist grouped by scenario, with links to
    /// subscribed lists; `startup` asks for the full list.
    pub async fn get_decisions_stream_v3(&self, startup: bool) -> Result<DecisionsStreamV3, Error> {
        let path = if startup { "v3/decisions/stream?startup=true" } else { "v3/decisions/stream?startup=false" };
        let response = self.authenticated::<()>(Method::GET, path, None).await?;
        json(response, "v3/decisions/stream").await
    }

    /// `GET /v1/account/machine`: this machine as the server lets it see itself (trust in words).
    pub async fn get_own_machine(&self) -> Result<palisade_api::native::OwnMachineView, Error> {
        let response = self.authenticated::<()>(Method::GET, "v1/account/machine", None).await?;
        json(response, "v1/account/machine").await
    }

    /// `GET /v1/ips/{ip}`: everything the server knows about an address, asked as this machine
    /// (counted against the machine tier's lookup quota).
    pub async fn get_ip(&self, ip: &str) -> Result<palisade_api::native::IpLookupResponse, Error> {
        let url = self.inner.transport.url("v1/ips", &[ip])?;
        let response = self.authenticated_at::<()>(Method::GET, url, None).await?;
        json(response, "v1/ips").await
    }

    /// `GET /v1/blocklists`: the blocklists this machine may read, with their seq and size.
    pub async fn list_blocklists(&self) -> Result<Vec<BlocklistView>, Error> {
        let response = self.authenticated::<()>(Method::GET, "v1/blocklists", None).await?;
        json(response, "v1/blocklists").await
    }

    /// `GET /v1/blocklists/{name}?format=FORMAT[&since=CURSOR]`: a whole list, or with `since`
    /// the changes after that cursor, as the raw body and the `x-palisade-seq` cursor it reflects.
    /// A cursor older than the server's change log is an [`Error::Api`] with status 410.
    pub async fn get_blocklist_entries(&self, name: &str, since: Option<i64>, format: &str) -> Result<BlocklistBody, Error> {
        self.blocklist(name, since, format, None).await
    }

    /// `GET /v1/blocklists/{name}?format=json&since=CURSOR&wait=SECS`: the changes after `since`,
    /// the server holding the answer up to `wait_secs` (it caps the wait at 50 s) until there are
    /// some. An answer whose cursor is still `since` means nothing changed meanwhile.
    pub async fn wait_for_blocklist_changes(&self, name: &str, since: i64, wait_secs: u64) -> Result<BlocklistBody, Error> {
        self.blocklist(name, Some(since), "json", Some(wait_secs)).await
    }

    async fn blocklist(
        &self,
        name: &str,
        since: Option<i64>,
        format: &str,
        wait_secs: Option<u64>,
    ) -> Result<BlocklistBody, Error> {
        let mut url = self.inner.transport.url("v1/blocklists", &[name])?;
        url.query_pairs_mut().append_pair("format", format);
        if let Some(since) = since {
            url.query_pairs_mut().append_pair("since", &since.to_string());
        }
        if let Some(wait) = wait_secs {
            url.query_pairs_mut().append_pair("wait", &wait.to_string());
        }
        let response = self.authenticated_at::<()>(Method::GET, url, None).await?;
        let seq = response.headers().get(SEQ_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let body = response.bytes().await?.to_vec();
        Ok(BlocklistBody { seq, body })
    }

    /// Sends a request with the machine's token, logging in first when the token is missing or
    /// about to expire, and once more after a 401 when the credentials are known (the server may
    /// have restarted with a new key).
    async fn authenticated<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, Error> {
        let url = self.inner.transport.url(path, &[])?;
        self.authenticated_at(method, url, body).await
    }

    /// [`Client::authenticated`] for a URL already built (with encoded segments and a query).
    async fn authenticated_at<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<reqwest::Response, Error> {
        // Serialised once: a retry after a 401 resends the same bytes.
        let body = body.map(serde_json::to_vec).transpose().map_err(Error::Encode)?;
        let token = self.token().await?;
        match self.send_with(&method, &url, body.as_deref(), &token).await {
            Err(Error::Api { status: 401, .. }) if self.has_credentials() => {
                self.forget_token(&token);
                let token = self.token().await?;
                self.send_with(&method, &url, body.as_deref(), &token).await
            }
            other => other,
        }
    }

    async fn send_with(&self, method: &Method, url: &Url, body: Option<&[u8]>, token: &str) -> Result<reqwest::Response, Error> {
        let mut request = self.inner.transport.request(method.clone(), url.clone()).bearer_auth(token);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body.to_vec());
        }
        self.inner.transport.send(request).await
    }

    fn has_credentials(&self) -> bool {
        self.session().credentials.is_some()
    }

    /// Drops `used` unless another task already replaced it.
    fn forget_token(&self, used: &str) {
        let mut session = self.session();
        if session.token.as_ref().is_some_and(|t| t.value == used) {
            session.token = None;
        }
    }

    /// A usable token: the current one while fresh, else one from a new login.
    async fn token(&self) -> Result<String, Error> {
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        let _renewing = self.inner.renewing.lock().await;
        // Another task may have logged in while this one waited.
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        let (credentials, stale) = {
            let session = self.session();
            (session.credentials.clone(), session.token.clone())
        };
        let Some(credentials) = credentials else {
            // Without credentials a stale token is still worth trying: the server decides.
            return stale.map(|t| t.value).ok_or(Error::NotLoggedIn);
        };
        let response = self.login_request(&credentials).await?;
        let token = token_of(&response);
        self.session().token = Some(token.clone());
        Ok(token.value)
    }

    fn fresh_token(&self) -> Option<String> {
        let now = OffsetDateTime::now_utc();
        self.session().token.as_ref().filter(|t| t.is_fresh(now)).map(|t| t.value.clone())
    }
}

fn token_of(response: &LoginResponse) -> Token {
    Token { value: response.token.clone(), expires_at: OffsetDateTime::parse(response.expire.trim(), &Rfc3339).ok() }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn tokens_are_renewed_a_minute_before_expiry() {
        let now = datetime!(2026-11-25 12:00 UTC);
        let token = |expires_at| Token { value: "t".into(), expires_at };
        assert!(token(Some(now + Duration::seconds(61))).is_fresh(now));
        assert!(!token(Some(now + Duration::seconds(60))).is_fresh(now));
        assert!(!token(Some(now - Duration::seconds(1))).is_fresh(now));
        assert!(token(None).is_fresh(now));
    }

    #[test]
    fn expiry_is_read_from_rfc3339() {
        let response = LoginResponse { code: 200, expire: "2026-11-25T13:00:00Z".into(), token: "t".into() };
        assert_eq!(token_of(&response).expires_at, Some(datetime!(2026-11-25 13:00 UTC)));
        let odd = LoginResponse { code: 200, expire: "in an hour".into(), token: "t".into() };
        assert_eq!(token_of(&odd).expires_at, None);
    }

    #[test]
    fn debug_never_shows_secrets() -> Result<(), Error> {
        let client = Client::new("http://127.0.0.1:1")?.with_credentials("web-01", "hunter2hunter2hunter2", &[]);
        let shown = format!("{client:?}");
        assert!(shown.contains("web-01") && !shown.contains("hunter2"), "{shown}");
        Ok(())
    }
}
