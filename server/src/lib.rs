//! Palisade server library: everything the `palisade-server` binary runs, exposed so tests
//! and benchmarks can build the same router and store in-process.
//!
//! # Module map
//!
//! Each room owns one thing. No two files import each other, only `store` speaks SQL, only the
//! edge speaks HTTP, and the pure core does no I/O: `tests/server/layout.rs` checks all of it.
//!
//! **Edge**: HTTP and the command line.
//! - [`http`]: the router, its layers and the OpenAPI document; one file per route family, each
//!   declaring its routes together with their documentation (utoipa-axum's `routes!`):
//!   `capi` (CrowdSec CAPI, `/v2` and `/v3`), `cti` (`/v2/smoke`), `ips` (`/v1/ips`),
//!   `blocklists` (`/v1/blocklists`), `bouncers` (CrowdSec LAPI's `/v1/decisions` for bouncers),
//!   `links` (`/v1/links`), `account` (`/v1/account`), `admin` (`/v1/admin`, with
//!   `admin::api_keys`, `admin::blocklists` and `admin::audit`, the layer recording every admin
//!   mutation), `ops` (health, metrics),
//!   `bench` (undocumented); helpers `extract` (authentication), `quota` (charging, rate-limit
//!   headers), `stream` (streamed bodies), `forwarded` (the client behind proxies), `responses`
//!   (the documented error answers operations share).
//! - [`console`]: the web console under `/console`: pages, sign-in, CSRF, usage history.
//! - [`cli`]: the command line: `args`, `serve` (the composition root), `admin` (operator commands).
//! - [`error`]: `ApiError`, the one error body, and its conversions from the layers below.
//!
//! **Use cases**: between the edge and the core; they know neither HTTP nor SQL and fail with a
//! [`use_case::UseCaseError`].
//! - [`lookup`]: the IP lookup: one address's evidence, scored, as a CTI or native answer.
//! - [`distribution`]: what each consumer receives of the lists: caps, deltas, the CrowdSec
//!   stream, bouncers' pulls, presigned links, change publication.
//! - [`manage`]: the operator's actions shared by the admin API, the console and the CLI
//!   (accounts, machines, keys, canaries, allowlists, explanations, delistings; `manage::lists`:
//!   operator lists; `manage::audit`: the audit log of these actions).
//! - [`use_case`]: `UseCaseError`, how a use case fails.
//!
//! **Pure core**: no I/O, no clock.
//! - [`domain`]: domain types and rules: addresses and networks (`domain::net`), list names
//!   (`domain::lists`), time and its text forms (`domain::time`), signals, names, special-purpose
//!   ranges, provider range files, free text, account levels (`domain::level`), the rule and
//!   remediation of a listing (`domain::listing`).
//! - [`engine`]: consensus: machine trust, clustering, the listing rule, the never-block set.
//! - [`reputation`]: one address's reputation class and scores, for the lookup.
//! - [`pools`]: each account's private pool: its own machines' reports listed for all of them at
//!   once under the account's policy, ground truth (never-block, canaries) still winning.
//! - [`serving::render`] and [`serving::entry`]: the blocklist formats, and the entry they render.
//! - [`feeds::parse`]: reading an external feed's body (plain, CSV, FireHOL, Spamhaus, ipsum).
//!
//! **Infrastructure**
//! - [`store`]: persistence, one trait per capability (each beside its records; callers take the
//!   ones they use) and the `Store` supertrait of them all, on SQLite and PostgreSQL; the only SQL.
//! - [`serving`]: each replica's in-memory list snapshots, advanced by seq, the never-block policy
//!   in force and the render cache.
//! - [`limits`]: tiers and lookup quotas (GCRA, calendar windows), in process or in Redis.
//! - [`bus`]: list-change and revocation notices between replicas, through Redis.
//! - [`revocation`]: what every credential is checked against besides its signature: the
//!   revocation list, cached per replica, refreshed each second or at a notice.
//! - [`redis_link`]: the one way a Redis connection is opened.
//! - [`enrich`]: AS and country of an address.
//! - [`feeds`]: one refresh of an external feed: conditional fetch, parse, never-block, apply.
//! - [`auth`]: credentials: passwords, machine tokens, secrets, list links, console sessions.
//! - [`jobs`]: background jobs: the consensus worker and maintenance on the leader replica, feed
//!   refreshes (each feed claimed by one replica at a time).
//! - [`telemetry`]: tracing and the Prometheus recorder.
//! - [`config`]: the one typed configuration, read once.
//! - [`state`]: `AppState`, built once from the configuration.
//! - `testing`: fresh test databases on every backend, for tests and benchmarks; only in test
//!   builds and with the `testing` feature.

pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod console;
pub mod distribution;
pub mod domain;
pub mod engine;
pub mod enrich;
pub mod error;
pub mod feeds;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod lookup;
pub mod manage;
pub mod pools;
pub mod redis_link;
pub mod reputation;
pub mod revocation;
pub mod serving;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod use_case;
