//! Machine tokens: HS256 JWTs with a fixed issuer and audience and a short expiry. Validation is
//! built once; the algorithm is pinned, so `alg: none` or an RSA/HMAC confusion cannot pass.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::config::Secret;
use crate::store::MachineKey;

const ISSUER: &str = "palisade";
const AUDIENCE: &str = "palisade-machine";

/// Claims of a machine token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Machine login.
    pub sub: String,
    /// Internal machine id.
    pub mid: i64,
    /// Issuer, always `palisade`.
    pub iss: String,
    /// Audience, always `palisade-machine`.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds). CrowdSec ≥ 1.6.9 reads it.
    pub exp: i64,
}

/// Signs and verifies machine tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    console_key: [u8; 32],
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

impl JwtKeys {
    /// Builds the keys from a secret.
    ///
    /// Panics on an empty secret, which the configuration never yields (it requires at least
    /// 32 characters, and a generated one has 64).
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret).expect("the JWT secret is not empty"),
            decoding: DecodingKey::from_secret(secret).expect("the JWT secret is not empty"),
            validation,
            ttl,
            console_key: console_key(secret),
        }
    }

    /// A key derived from the same secret for the web console's signed sessions and links, so
    /// every replica that shares the secret accepts them, and a console value can never pass
    /// as a machine token (or the reverse).
    pub fn console_key(&self) -> &[u8; 32] {
        &self.console_key
    }

    /// Issues a token for a machine.
    pub fn issue(
        &self,
        machine: MachineKey,
        login: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: login.to_string(),
            mid: machine.0,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken { token, expires_at })
    }

    /// Verifies a token: signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims)
    }
}

/// The console key of a server secret (see [`JwtKeys::console_key`]); the CLI derives it
/// without building machine-token keys.
pub fn console_key(secret: &[u8]) -> [u8; 32] {
    derive_key(secret, b"palisade console v1")
}

/// HMAC-SHA256 of `label` under `secret`: a key for one purpose, independent of the others.
pub fn derive_key(secret: &[u8], label: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// The configured secret, or the one kept in `<data_dir>/jwt.key`, generated (mode 0600) on first use.
pub fn load_or_create_secret(configured: Option<&Secret>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let path = data_dir.join("jwt.key");
    if path.exists() {
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = text.trim();
        anyhow::ensure!(text.len() >= 32, "{} holds fewer than 32 characters; delete it to generate a new key", path.display());
        return Ok(text.as_bytes().to_vec());
    }
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let secret = super::secrets::random_alnum(64);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", Duration::hours(1))
    }

    #[test]
    fn issued_tokens_verify_and_carry_exp() {
        let now = OffsetDateTime::now_utc();
        let issued = keys().issue(MachineKey(7), "m1", now).unwrap();
        let claims = keys().verify(&issued.token).unwrap();
        assert_eq!((claims.mid, claims.sub.as_str()), (7, "m1"));
        assert_eq!(claims.exp, (now + Duration::hours(1)).unix_timestamp());
    }

    #[test]
    fn tokens_are_byte_identical_to_an_independent_hs256() {
        // Computed outside Palisade (HMAC-SHA256 over the base64url header and claims), so a
        // change of JWT crate or crypto backend cannot silently change what clients receive.
        let issued = keys().issue(MachineKey(7), "m1", time::macros::datetime!(2026-11-25 12:00 UTC)).unwrap();
        assert_eq!(
            issued.token,
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.\
             eyJzdWIiOiJtMSIsIm1pZCI6NywiaXNzIjoicGFsaXNhZGUiLCJhdWQiOiJwYWxpc2FkZS1tYWNoaW5lIiwiaWF0IjoxNzk1NjA4MDAwLCJleHAiOjE3OTU2MTE2MDB9.\
             dPTRY8E16thCtDXC2ncCRCvBt0bVbP914sCTig2OBjU"
        );
    }

    #[test]
    fn expired_forged_and_unsigned_tokens_fail() {
        let old = OffsetDateTime::now_utc() - Duration::hours(2);
        let expired = keys().issue(MachineKey(1), "m", old).unwrap().token;
        assert!(keys().verify(&expired).is_err());

        let other = JwtKeys::new(b"another-secret-another-secret-xx", Duration::hours(1));
        let forged = other.issue(MachineKey(1), "m", OffsetDateTime::now_utc()).unwrap().token;
        assert!(keys().verify(&forged).is_err());

        let good = keys().issue(MachineKey(1), "m", OffsetDateTime::now_utc()).unwrap().token;
        let payload = good.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys().verify(&format!("{none_header}.{payload}.")).is_err());
        assert!(keys().verify("garbage").is_err());
    }

    #[test]
    fn secret_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(None, dir.path()).unwrap();
        let second = load_or_create_secret(None, dir.path()).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("jwt.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
