//! Credentials: machine passwords (argon2id), machine JWTs (HS256, fixed issuer, short-lived),
//! the random secrets the operator hands out (admin tokens, enrollment keys), which are stored
//! only as SHA-256 hashes, the signed list links of the v3 stream, and the console's signed
//! sessions and login links.

pub mod jwt;
pub mod links;
pub mod password;
pub mod secrets;
pub mod session;
