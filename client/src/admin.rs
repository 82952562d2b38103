//! [`AdminClient`]: the operator's API under `/v1/admin` (accounts, enrollment keys, machines,
//! stored signals), authenticated by an admin token from `palisade-server admin token create`.
//! Admin tokens do not expire, so there is no session to renew here.

use palisade_api::native::{
    AccountView, CreateAccountRequest, CreateMachineRequest, EnrollKeyCreated, MachineCredentials, MachineView, SignalPage,
};
use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::transport::{Transport, default_http_client, json};

/// Filters of [`AdminClient::list_signals`], mirroring the server's `GET /v1/admin/signals` query.
/// Every field is optional; the default lists the first page of every signal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignalQuery {
    /// Only signals with a larger id: pass the previous page's `next_after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// Only signals from this machine login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Only signals about this address or CIDR (canonical form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Page size, 1–1000 (the server's default is 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The operator's client.
#[derive(Clone)]
pub struct AdminClient {
    transport: Transport,
    token: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient").field("base_url", &self.transport.base().as_str()).finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for the server at `base_url` using the admin `token`.
    pub fn new(base_url: &str, token: &str) -> Result<AdminClient, Error> {
        AdminClient::with_http_client(base_url, token, default_http_client()?)
    }

    /// A client that sends through `http` (for custom TLS roots, proxies or timeouts).
    pub fn with_http_client(base_url: &str, token: &str, http: reqwest::Client) -> Result<AdminClient, Error> {
        Ok(AdminClient { transport: Transport::new(base_url, http)?, token: token.to_string() })
    }

    /// The base URL, ending in `/`.
    pub fn base_url(&self) -> &str {
        self.transport.base().as_str()
    }

    /// `POST /v1/admin/accounts`: creates an account.
    pub async fn create_account(&self, name: &str) -> Result<AccountView, Error> {
        let body = CreateAccountRequest { name: name.to_string() };
        self.call(self.request(Method::POST, "v1/admin/accounts", &[])?.json(&body), "v1/admin/accounts").await
    }

    /// `GET /v1/admin/accounts`: every account.
    pub async fn list_accounts(&self) -> Result<Vec<AccountView>, Error> {
        self.call(self.request(Method::GET, "v1/admin/accounts", &[])?, "v1/admin/accounts").await
    }

    /// `POST /v1/admin/accounts/{name}/enroll-keys`: a new enrollment key for an account (the
    /// key is shown only in this answer).
    pub async fn create_enroll_key(&self, account: &str) -> Result<EnrollKeyCreated, Error> {
        let request = self.request(Method::POST, "v1/admin/accounts", &[account, "enroll-keys"])?;
        self.call(request, "v1/admin/accounts/{name}/enroll-keys").await
    }

    /// `POST /v1/admin/machines`: creates a machine with a generated password (shown only in this
    /// answer); `sensor` marks it as one of the operator's own sensors.
    pub async fn create_machine(&self, name: &str, sensor: bool) -> Result<MachineCredentials, Error> {
        let body = CreateMachineRequest { name: name.to_string(), sensor };
        self.call(self.request(Method::POST, "v1/admin/machines", &[])?.json(&body), "v1/admin/machines").await
    }

    /// `GET /v1/admin/machines`: every machine, oldest first.
    pub async fn list_machines(&self) -> Result<Vec<MachineView>, Error> {
        self.call(self.request(Method::GET, "v1/admin/machines", &[])?, "v1/admin/machines").await
    }

    /// `GET /v1/admin/machines/{machine_id}`: one machine.
    pub async fn get_machine(&self, machine_id: &str) -> Result<MachineView, Error> {
        self.call(self.request(Method::GET, "v1/admin/machines", &[machine_id])?, "v1/admin/machines/{machine_id}").await
    }

    /// `GET /v1/admin/signals`: one page of stored signals, oldest first.
    pub async fn list_signals(&self, query: &SignalQuery) -> Result<SignalPage, Error> {
        self.call(self.request(Method::GET, "v1/admin/signals", &[])?.query(query), "v1/admin/signals").await
    }

    fn request(&self, method: Method, path: &str, segments: &[&str]) -> Result<RequestBuilder, Error> {
        Ok(self.transport.request(method, self.transport.url(path, segments)?).bearer_auth(&self.token))
    }

    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder, endpoint: &str) -> Result<T, Error> {
        json(self.transport.send(request).await?, endpoint).await
    }
}
