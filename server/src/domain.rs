//! Domain types and the pure rules that turn wire input into them: address parsing, display and
//! normalisation, list names, account levels, how a list entry was listed (its rule and
//! remediation), special-purpose ranges, signal validation, AbuseIPDB reports as signals. No I/O and no clock: the current time
//! is a parameter.

pub mod abuseipdb;
pub mod allowlist;
pub mod level;
pub mod listing;
pub mod lists;
pub mod names;
pub mod net;
pub mod signal;
pub mod special;
pub mod text;
pub mod time;
