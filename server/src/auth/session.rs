//! Console sessions, CSRF tokens and account login links: signed, stateless values (HMAC-SHA256
//! under keys derived from the server secret), so any replica accepts what another issued and
//! nothing is stored. Pure: time is a parameter, randomness comes in as the nonce. It must not
//! read cookies or headers; the console's routes do that.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::jwt::derive_key;

/// Name of the session cookie.
pub const COOKIE: &str = "palisade_console";

/// How long a console session lasts (seconds).
pub const SESSION_TTL_SECS: i64 = 8 * 3600;

/// How long an account login link can be used (seconds). Links are not single-use: being
/// stateless, a link stays valid until it expires, so the time is short.
pub const LINK_TTL_SECS: i64 = 15 * 60;

/// How long the outcome of a console form waits for the page it redirects to.
pub const FLASH_TTL_SECS: i64 = 60;

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The operator (signed in with an admin token).
    Operator,
    /// A user of one account (signed in with a login link).
    Account {
        /// The account's internal id.
        id: i64,
        /// The account's name.
        name: String,
    },
}

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who.
    pub role: Role,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Random value the CSRF token is bound to.
    pub nonce: String,
}

/// Why a signed value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not of our shape, or the signature does not match.
    #[error("invalid or tampered value")]
    Invalid,
    /// Past its expiry.
    #[error("expired")]
    Expired,
}

/// The console's keys, one per purpose, derived from the server's console key.
#[derive(Clone)]
pub struct Keys {
    session: [u8; 32],
    csrf: [u8; 32],
    link: [u8; 32],
    flash: [u8; 32],
}

impl Keys {
    /// Derives the per-purpose keys.
    pub fn new(console_key: &[u8; 32]) -> Self {
        Keys {
            session: derive_key(console_key, b"session"),
            csrf: derive_key(console_key, b"csrf"),
            link: derive_key(console_key, b"login-link"),
            flash: derive_key(console_key, b"flash"),
        }
    }

    /// A session cookie value for `role`, valid from `now` for [`SESSION_TTL_SECS`].
    pub fn issue_session(&self, role: &Role, now: i64, nonce: &str) -> String {
        let expires_at = now + SESSION_TTL_SECS;
        let body = match role {
            Role::Operator => format!("o|0|-|{expires_at}|{nonce}"),
            Role::Account { id, name } => format!("a|{id}|{name}|{expires_at}|{nonce}"),
        };
        sign(&self.session, &body)
    }

    /// Verifies a session cookie value at `now`.
    pub fn verify_session(&self, value: &str, now: i64) -> Result<Session, Refused> {
        let body = verify(&self.session, value)?;
        let parts: Vec<&str> = body.split('|').collect();
        let [kind, id, name, expires_at, nonce] = parts[..] else { return Err(Refused::Invalid) };
        let expires_at: i64 = expires_at.parse().map_err(|_| Refused::Invalid)?;
        let role = match kind {
            "o" => Role::Operator,
            "a" => Role::Account { id: id.parse().map_err(|_| Refused::Invalid)?, name: name.to_string() },
            _ => return Err(Refused::Invalid),
        };
        if now >= expires_at {
            return Err(Refused::Expired);
        }
        Ok(Session { role, expires_at, nonce: nonce.to_string() })
    }

    /// The CSRF token of a session: every form carries it, every POST must send it back.
    pub fn csrf_token(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(mac(&self.csrf, session.nonce.as_bytes()))
    }

    /// Whether `sent` is the CSRF token of `session` (constant time).
    pub fn csrf_matches(&self, session: &Session, sent: &str) -> bool {
        let expected = self.csrf_token(session);
        expected.len() == sent.len() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes()))
    }

    /// A flash: the outcome of a form, carried across the redirect that follows it (so a reload
    /// shows the page, not a second submission) for [`FLASH_TTL_SECS`], bound to the session.
    pub fn issue_flash(&self, session: &Session, kind: &str, text: &str, now: i64) -> String {
        sign(&self.flash, &format!("{kind}|{}|{}|{text}", session.nonce, now + FLASH_TTL_SECS))
    }

    /// Verifies a flash for `session` at `now`; its kind and text.
    pub fn verify_flash(&self, session: &Session, value: &str, now: i64) -> Result<(String, String), Refused> {
        let body = verify(&self.flash, value)?;
        let mut parts = body.splitn(4, '|');
        let (Some(kind), Some(nonce), Some(expires_at), Some(text)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Invalid);
        };
        let expires_at: i64 = expires_at.parse().map_err(|_| Refused::Invalid)?;
        if nonce != session.nonce {
            return Err(Refused::Invalid);
        }
        if now >= expires_at {
            return Err(Refused::Expired);
        }
        Ok((kind.to_string(), text.to_string()))
    }

    /// A login link token for an account, valid from `now` for [`LINK_TTL_SECS`].
    pub fn issue_link(&self, account_id: i64, account: &str, now: i64, nonce: &str) -> String {
        sign(&self.link, &format!("{account_id}|{account}|{}|{nonce}", now + LINK_TTL_SECS))
    }

    /// Verifies a login link token at `now`; the account's id and name.
    pub fn verify_link(&self, token: &str, now: i64) -> Result<(i64, String), Refused> {
        let body = verify(&self.link, token)?;
        let parts: Vec<&str> = body.split('|').collect();
        let [id, name, expires_at, _nonce] = parts[..] else { return Err(Refused::Invalid) };
        let expires_at: i64 = expires_at.parse().map_err(|_| Refused::Invalid)?;
        let id = id.parse().map_err(|_| Refused::Invalid)?;
        if now >= expires_at {
            return Err(Refused::Expired);
        }
        Ok((id, name.to_string()))
    }
}

fn mac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `base64url(body).base64url(mac)`.
fn sign(key: &[u8; 32], body: &str) -> String {
    let encoded = URL_SAFE_NO_PAD.encode(body);
    let tag = URL_SAFE_NO_PAD.encode(mac(key, encoded.as_bytes()));
    format!("{encoded}.{tag}")
}

fn verify(key: &[u8; 32], value: &str) -> Result<String, Refused> {
    let (encoded, tag) = value.split_once('.').ok_or(Refused::Invalid)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refused::Invalid)?;
    let mut check = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    check.update(encoded.as_bytes());
    check.verify_slice(&tag).map_err(|_| Refused::Invalid)?;
    let body = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| Refused::Invalid)?;
    String::from_utf8(body).map_err(|_| Refused::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[7; 32])
    }

    fn account() -> Role {
        Role::Account { id: 3, name: "acme".into() }
    }

    #[test]
    fn issued_sessions_verify_until_they_expire() {
        let cookie = keys().issue_session(&account(), 1_000, "n1");
        let session = keys().verify_session(&cookie, 1_000 + SESSION_TTL_SECS - 1).unwrap();
        assert_eq!((session.role, session.nonce.as_str()), (account(), "n1"));
        assert_eq!(keys().verify_session(&cookie, 1_000 + SESSION_TTL_SECS), Err(Refused::Expired));
        let operator = keys().issue_session(&Role::Operator, 1_000, "n2");
        assert_eq!(keys().verify_session(&operator, 1_001).unwrap().role, Role::Operator);
    }

    #[test]
    fn tampered_or_foreign_sessions_are_refused() {
        let cookie = keys().issue_session(&account(), 1_000, "n1");
        let (body, tag) = cookie.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(format!("o|0|-|{}|n1", 1_000 + SESSION_TTL_SECS));
        assert_eq!(keys().verify_session(&format!("{forged_body}.{tag}"), 1_001), Err(Refused::Invalid));
        assert_eq!(keys().verify_session(&format!("{body}.AAAA"), 1_001), Err(Refused::Invalid));
        assert_eq!(keys().verify_session("garbage", 1_001), Err(Refused::Invalid));
        let other = Keys::new(&[8; 32]).issue_session(&account(), 1_000, "n1");
        assert_eq!(keys().verify_session(&other, 1_001), Err(Refused::Invalid));
        // A login link is signed under another key: it cannot be used as a session.
        let link = keys().issue_link(3, "acme", 1_000, "n1");
        assert_eq!(keys().verify_session(&link, 1_001), Err(Refused::Invalid));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let one = keys().verify_session(&keys().issue_session(&account(), 1_000, "n1"), 1_001).unwrap();
        let two = keys().verify_session(&keys().issue_session(&account(), 1_000, "n2"), 1_001).unwrap();
        let token = keys().csrf_token(&one);
        assert!(keys().csrf_matches(&one, &token));
        assert!(!keys().csrf_matches(&two, &token), "another session's token");
        assert!(!keys().csrf_matches(&one, ""), "no token");
        assert!(!keys().csrf_matches(&one, &token[1..]), "a truncated token");
    }

    #[test]
    fn login_links_verify_until_they_expire() {
        let link = keys().issue_link(3, "acme", 1_000, "n");
        assert_eq!(keys().verify_link(&link, 1_000 + LINK_TTL_SECS - 1), Ok((3, "acme".to_string())));
        assert_eq!(keys().verify_link(&link, 1_000 + LINK_TTL_SECS), Err(Refused::Expired));
        let session = keys().issue_session(&account(), 1_000, "n");
        assert_eq!(keys().verify_link(&session, 1_001), Err(Refused::Invalid));
    }
    #[test]
    fn a_flash_is_read_only_by_its_own_session_and_only_for_a_minute() {
        let keys = Keys::new(&[3; 32]);
        let session = |nonce: &str| Session { role: Role::Operator, expires_at: 10_000, nonce: nonce.into() };
        let flash = keys.issue_flash(&session("n1"), "api_key", "pal_secret|with a bar", 100);
        assert_eq!(
            keys.verify_flash(&session("n1"), &flash, 159).expect("fresh"),
            ("api_key".into(), "pal_secret|with a bar".into())
        );
        assert!(matches!(keys.verify_flash(&session("n2"), &flash, 120), Err(Refused::Invalid)), "another session");
        assert!(matches!(keys.verify_flash(&session("n1"), &flash, 160), Err(Refused::Expired)));
        let forged = Keys::new(&[4; 32]).issue_flash(&session("n1"), "done", "x", 100);
        assert!(matches!(keys.verify_flash(&session("n1"), &forged, 120), Err(Refused::Invalid)));
    }
}
