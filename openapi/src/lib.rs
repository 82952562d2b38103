//! Palisade's wire contract: every request and response body the server accepts or sends and the
//! client decodes. Server and client both depend on this crate so they cannot drift apart.
//!
//! - [`capi`]: CrowdSec Central API bodies (v2 and v3), shaped exactly as CrowdSec sends and reads
//!   them (see the protocol notes in the repository documentation).
//! - [`cti`]: CrowdSec CTI ("smoke") bodies, as CrowdSec's Go client decodes them.
//! - [`lapi`]: CrowdSec Local API bodies for bouncers (the decisions they pull).
//! - [`native`]: Palisade's own bodies (errors, admin, operations).
//! - [`abuseipdb`]: AbuseIPDB-compatible bodies (API v2 and fail2ban's v1 report answer).
//!
//! The `schema` feature adds `utoipa::ToSchema` derives for the server's OpenAPI document; the
//! client builds without it. This crate holds data shapes only: no I/O, no validation logic.

pub mod abuseipdb;
pub mod capi;
pub mod cti;
pub mod lapi;
pub mod native;
