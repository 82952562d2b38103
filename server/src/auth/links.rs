//! Presigned list links: the self-authorising URLs the v3 decision stream hands out for
//! subscribed lists (CrowdSec fetches them with a plain GET, without any credential). A link
//! names what it serves and until when; an HMAC-SHA256 over exactly that makes it unforgeable.
//! The key is derived from the JWT secret (or configured on its own), so every replica signs
//! and verifies the same links. Pure: the time is a parameter.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a link serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A block list: plain text, one value per line.
    Blocklist,
    /// An allowlist: JSON Lines.
    Allowlist,
}

impl LinkKind {
    /// The path segment under `/v1/links/`.
    pub fn segment(self) -> &'static str {
        match self {
            LinkKind::Blocklist => "blocklists",
            LinkKind::Allowlist => "allowlists",
        }
    }
}

/// The signed parts of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// Block list or allowlist.
    pub kind: LinkKind,
    /// List name.
    pub name: String,
    /// Only entries with this remediation (block lists; empty: all).
    pub remediation: String,
    /// Only entries with this scope, `ip` or `range` (block lists; empty: all).
    pub scope: String,
    /// Unix time after which the link is refused.
    pub expires: i64,
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The signature does not match what the link names.
    #[error("the link's signature is invalid: ask the decision stream for a new link")]
    BadSignature,
    /// The link is past its expiry.
    #[error("the link expired: ask the decision stream for a new link")]
    Expired,
}

/// Signs and verifies links with one key.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
    /// How long a new link stays valid, in seconds.
    pub ttl_secs: i64,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner").field("ttl_secs", &self.ttl_secs).finish_non_exhaustive()
    }
}

/// Context string of the derivation, so a link key is never the JWT key itself.
const DERIVATION: &[u8] = b"palisade list links v1";

impl LinkSigner {
    /// A signer whose key is derived from `secret` (the JWT secret or a dedicated one).
    pub fn derive(secret: &[u8], ttl_secs: i64) -> LinkSigner {
        LinkSigner { key: mac(secret, DERIVATION), ttl_secs: ttl_secs.max(1) }
    }

    /// The hex signature of `target`.
    pub fn sign(&self, target: &LinkTarget) -> String {
        hex::encode(mac(&self.key, message(target).as_bytes()))
    }

    /// Checks `signature` (hex) for `target` at `now` (unix seconds).
    pub fn verify(&self, target: &LinkTarget, signature: &str, now: i64) -> Result<(), LinkError> {
        let given = hex::decode(signature).map_err(|_| LinkError::BadSignature)?;
        let mut check = HmacSha256::new_from_slice(&self.key).map_err(|_| LinkError::BadSignature)?;
        check.update(message(target).as_bytes());
        // Constant-time comparison.
        check.verify_slice(&given).map_err(|_| LinkError::BadSignature)?;
        if target.expires < now {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    /// The path and query of a link for `target` (to be appended to the public URL).
    pub fn path(&self, target: &LinkTarget) -> String {
        let mut query = String::new();
        if !target.remediation.is_empty() {
            query.push_str(&format!("remediation={}&", target.remediation));
        }
        if !target.scope.is_empty() {
            query.push_str(&format!("scope={}&", target.scope));
        }
        format!("v1/links/{}/{}?{query}expires={}&sig={}", target.kind.segment(), target.name, target.expires, self.sign(target))
    }
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // An HMAC accepts keys of any length; the error branch cannot happen.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new_from_slice(&[0]).expect("HMAC key"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The text signed: every field, separated by a byte no field may contain.
fn message(target: &LinkTarget) -> String {
    format!("{}\n{}\n{}\n{}\n{}", target.kind.segment(), target.name, target.remediation, target.scope, target.expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(expires: i64) -> LinkTarget {
        LinkTarget { kind: LinkKind::Blocklist, name: "partners".into(), remediation: "ban".into(), scope: "ip".into(), expires }
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let signer = LinkSigner::derive(b"a secret of the server", 60);
        let sig = signer.sign(&target(1_000));
        assert_eq!(signer.verify(&target(1_000), &sig, 999), Ok(()));
        assert_eq!(signer.verify(&target(1_000), &sig, 1_000), Ok(()));
        assert_eq!(signer.verify(&target(1_000), &sig, 1_001), Err(LinkError::Expired));
    }

    #[test]
    fn any_changed_field_or_key_breaks_the_signature() {
        let signer = LinkSigner::derive(b"a secret of the server", 60);
        let sig = signer.sign(&target(1_000));
        let mut other = target(1_000);
        other.name = "partners2".into();
        assert_eq!(signer.verify(&other, &sig, 0), Err(LinkError::BadSignature));
        let mut other = target(2_000);
        assert_eq!(signer.verify(&other, &sig, 0), Err(LinkError::BadSignature));
        other = target(1_000);
        other.scope = "range".into();
        assert_eq!(signer.verify(&other, &sig, 0), Err(LinkError::BadSignature));
        other = target(1_000);
        other.kind = LinkKind::Allowlist;
        assert_eq!(signer.verify(&other, &sig, 0), Err(LinkError::BadSignature));
        assert_eq!(signer.verify(&target(1_000), "zz", 0), Err(LinkError::BadSignature));
        let replica = LinkSigner::derive(b"a secret of the server", 10);
        assert_eq!(replica.verify(&target(1_000), &sig, 0), Ok(()), "another replica with the same secret agrees");
        let stranger = LinkSigner::derive(b"another secret", 60);
        assert_eq!(stranger.verify(&target(1_000), &sig, 0), Err(LinkError::BadSignature));
    }
}
