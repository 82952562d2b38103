//! Credentials: machine passwords (argon2id), machine JWTs (HS256, fixed issuer, short-lived),
//! and the random secrets the operator hands out (admin tokens, enrollment keys), which are
//! stored only as SHA-256 hashes.

pub mod jwt;
pub mod links;
pub mod password;
pub mod secrets;
