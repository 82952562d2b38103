//! Random secrets handed to people (admin tokens, enrollment keys, generated passwords) and the
//! hashes they are stored under. Secrets have 190+ bits of entropy, so a fast hash (SHA-256) is
//! the right storage form: lookup by hash, no per-row salt needed.

use rand::RngExt;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// A random `[A-Za-z0-9]` string from the OS-seeded thread RNG.
pub fn random_alnum(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Prefix of admin tokens, so they are recognisable in a leak scan.
pub const ADMIN_TOKEN_PREFIX: &str = "pal_admin_";

/// A new admin token: `pal_admin_` + 40 random characters.
pub fn new_admin_token() -> String {
    format!("{ADMIN_TOKEN_PREFIX}{}", random_alnum(40))
}

/// A new enrollment key: 32 characters `[A-Za-z0-9]` (CrowdSec requires that alphabet).
pub fn new_enroll_key() -> String {
    random_alnum(32)
}

/// The visible part of a secret, kept to identify it later.
pub fn visible_prefix(secret: &str) -> String {
    secret.chars().take(if secret.starts_with(ADMIN_TOKEN_PREFIX) { ADMIN_TOKEN_PREFIX.len() + 4 } else { 6 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_well_formed() {
        let a = new_enroll_key();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, new_enroll_key());
        let token = new_admin_token();
        assert!(token.starts_with(ADMIN_TOKEN_PREFIX));
        assert_eq!(visible_prefix(&token).len(), ADMIN_TOKEN_PREFIX.len() + 4);
        assert_eq!(hash_secret("x").len(), 64);
    }
}
