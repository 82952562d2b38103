//! placeholder
//!
//! [`lookup`]: IP lookups with an API key (CTI-compatible and native).
pub mod lookup;
