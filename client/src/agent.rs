//! The Palisade agent: what a machine owner installs. It reads its configuration
//! ([`config`]), keeps its machine credentials ([`credentials`]), writes every signal to an
//! on-disk spool before anything else ([`spool`]) and pushes it from there ([`push`]), pulls the
//! blocklists it is entitled to by delta cursor ([`sync`]) and applies them atomically to a
//! firewall backend ([`apply`]), never touching the addresses [`safety`] protects. [`watch`] is
//! the daemon that ties those together; [`state`] is what survives between runs.
//!
//! Printing belongs to the command line (`cli.rs`); this module returns values and errors.

pub mod apply;
pub mod config;
pub mod credentials;
pub mod push;
pub mod safety;
pub mod signal;
pub mod spool;
pub mod state;
pub mod sync;
pub mod watch;

use std::time::Duration;

use crate::Client;
use crate::agent::apply::Backend;
use crate::agent::config::AgentConfig;
use crate::agent::credentials::{Credentials, CredentialsError};
use crate::agent::safety::Allowlist;
use crate::agent::spool::Spool;

/// What every agent command works with: the configuration, the machine's credentials, a client
/// logged in with them on first use, the spool and the firewall backend.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The configuration.
    pub config: AgentConfig,
    /// The machine's credentials.
    pub credentials: Credentials,
    /// The machine client.
    pub client: Client,
    /// The spool.
    pub spool: Spool,
    /// The firewall backend.
    pub backend: Backend,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No usable credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The client could not be built (a bad server URL).
    #[error("the server URL in the credentials file is unusable: {0}")]
    Client(#[from] crate::Error),
    /// The spool directory could not be opened.
    #[error("cannot open the spool {path}: {source}")]
    Spool {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Agent {
    /// Opens the agent described by `config`: reads its credentials and opens its spool.
    pub fn open(config: AgentConfig) -> Result<Agent, AgentError> {
        let credentials = Credentials::load(&config.credentials)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("palisade-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(crate::Error::from)?;
        let client = Client::with_http_client(&credentials.server, http)?.with_credentials(
            &credentials.machine_id,
            &credentials.password,
            &[],
        );
        let spool_dir = config.spool_dir();
        let spool =
            Spool::open(&spool_dir).map_err(|source| AgentError::Spool { path: spool_dir.display().to_string(), source })?;
        let backend = Backend::from_config(&config.apply, config.sync.max_entries);
        Ok(Agent { config, credentials, client, spool, backend })
    }

    /// The addresses this agent must never ban: special-purpose ranges, the configured ranges,
    /// the server's addresses and (unless disabled) this host's own addresses. Problems reading
    /// the host's addresses are returned as warnings, not errors: the rest still protects.
    pub async fn allowlist(&self) -> (Allowlist, Vec<String>) {
        let mut allowlist = Allowlist::special();
        let mut warnings = Vec::new();
        for net in &self.config.allowlist.ranges {
            allowlist.add(*net, "allowlist.ranges");
        }
        for ip in safety::server_addresses(&self.credentials.server).await {
            allowlist.add_ip(ip, "the Palisade server");
        }
        if self.config.allowlist.own_addresses {
            match safety::host_addresses().await {
                Ok(ips) => ips.into_iter().for_each(|ip| allowlist.add_ip(ip, "this host's own address")),
                Err(warning) => warnings.push(warning),
            }
        }
        (allowlist, warnings)
    }
}
