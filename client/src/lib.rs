//! Palisade's typed async client. [`Client`] is a machine's side of the CrowdSec Central API as
//! Palisade serves it (what a CrowdSec agent or the Palisade agent does: register, log in, enroll,
//! push signals and metrics, pull the decision stream); [`AdminClient`] is the operator's API.
//!
//! Bodies are the `palisade-api` types the server itself uses, so the two cannot drift apart.
//! Method names are the server's handler names, which are also the OpenAPI operationIds.
//! Every failure is an [`Error`]; an answer the server refused is [`Error::Api`] with the stable
//! `code` from its error body.
//!
//! The clients perform HTTP calls and nothing else: no retries beyond renewing an expired
//! machine token, no logging, no configuration files. The [`agent`] module builds the agent on
//! top of them: configuration, spool, retries, blocklist sync and firewall backends.

mod admin;
/// The agent: configuration, credentials, spool, push, sync, apply backends, safety, watch loop.
pub mod agent;
mod error;
mod machine;
mod transport;

pub mod detect;
pub mod tail;

/// IP lookups with an API key (CTI-compatible and native).
pub mod lookup;

pub use admin::{AdminClient, SignalQuery};
pub use error::{Error, transport_sentence};
pub use machine::{BlocklistBody, Client, EnrollOutcome};
/// The wire types, re-exported so callers need not depend on `palisade-api` themselves.
pub use palisade_api as api;
