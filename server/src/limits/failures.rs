//! Failed-credential limits: how many wrong admin tokens, API keys, enrollment keys and machine
//! passwords one client may present in a window before its next attempts of that kind are
//! refused unseen, without a database query or a hash. A fixed window per client and credential
//! kind, in this process (each replica counts its own misses; the bound across N replicas is N
//! times the configured one). An IPv6 client is counted by its /64, the block one subscriber
//! gets, so rotating addresses inside it gains nothing. Time is a parameter: tests cross a
//! window without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept: bounds the memory a spray of addresses can take.
const SWEEP_ABOVE: usize = 100_000;

/// What was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An admin token (`Authorization` on `/v1/admin`).
    AdminToken,
    /// An API key (`x-api-key`).
    ApiKey,
    /// An enrollment key (`/watchers/enroll`).
    EnrollKey,
    /// A machine id and password (`/watchers/login`).
    MachinePassword,
}

impl CredentialKind {
    /// Label of the `palisade_credential_failures_total` and `palisade_credential_lockouts_total`
    /// metrics.
    pub fn label(self) -> &'static str {
        match self {
            CredentialKind::AdminToken => "admin_token",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::EnrollKey => "enroll_key",
            CredentialKind::MachinePassword => "machine_password",
        }
    }
}

/// The client a miss is counted against: the address, or an IPv6 address's /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    misses: u32,
}

/// Misses per client and credential kind, in fixed windows.
#[derive(Debug)]
pub struct FailureLimiter {
    max_misses: u32,
    window: Duration,
    windows: Mutex<HashMap<(CredentialKind, IpAddr), Window>>,
}

impl FailureLimiter {
    /// At most `max_misses` misses of a kind per client in `window`. Zero misses disables the
    /// limit.
    pub fn new(max_misses: u32, window: Duration) -> Self {
        FailureLimiter { max_misses, window, windows: Mutex::default() }
    }

    /// Whether `ip` may present a credential of `kind` at `now`: `Err(seconds)` until its window
    /// ends once it has used up its misses.
    pub fn check(&self, kind: CredentialKind, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.max_misses == 0 {
            return Ok(());
        }
        let windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match windows.get(&(kind, client_key(ip))) {
            Some(window) if window.misses >= self.max_misses => {
                let left = (window.started + self.window).saturating_duration_since(now);
                if left.is_zero() {
                    Ok(())
                } else {
                    metrics::counter!("palisade_credential_lockouts_total", "kind" => kind.label()).increment(1);
                    Err(left.as_secs() + 1)
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one wrong credential of `kind` from `ip` at `now`.
    pub fn record_miss(&self, kind: CredentialKind, ip: IpAddr, now: Instant) {
        metrics::counter!("palisade_credential_failures_total", "kind" => kind.label()).increment(1);
        if self.max_misses == 0 {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > SWEEP_ABOVE {
            let span = self.window;
            windows.retain(|_, w| now.saturating_duration_since(w.started) < span);
        }
        let window = windows.entry((kind, client_key(ip))).or_insert(Window { started: now, misses: 0 });
        if now.saturating_duration_since(window.started) >= self.window {
            *window = Window { started: now, misses: 0 };
        }
        window.misses = window.misses.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_lock_a_client_out_of_one_kind_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(CredentialKind::ApiKey, ip, start), Ok(()));
            limiter.record_miss(CredentialKind::ApiKey, ip, start);
        }
        assert_eq!(limiter.check(CredentialKind::ApiKey, ip, start), Err(61));
        assert_eq!(limiter.check(CredentialKind::ApiKey, ip, start + Duration::from_secs(30)), Err(31));
        assert_eq!(limiter.check(CredentialKind::AdminToken, ip, start), Ok(()));
        assert_eq!(limiter.check(CredentialKind::ApiKey, "192.0.2.2".parse().unwrap(), start), Ok(()));
        let later = start + Duration::from_secs(60);
        assert_eq!(limiter.check(CredentialKind::ApiKey, ip, later), Ok(()));
        limiter.record_miss(CredentialKind::ApiKey, ip, later);
        assert_eq!(limiter.check(CredentialKind::ApiKey, ip, later), Ok(()));
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let now = Instant::now();
        limiter.record_miss(CredentialKind::EnrollKey, "2001:db8:1:2::1".parse().unwrap(), now);
        limiter.record_miss(CredentialKind::EnrollKey, "2001:db8:1:2:ffff::9".parse().unwrap(), now);
        assert!(limiter.check(CredentialKind::EnrollKey, "2001:db8:1:2::abcd".parse().unwrap(), now).is_err());
        assert!(limiter.check(CredentialKind::EnrollKey, "2001:db8:1:3::1".parse().unwrap(), now).is_ok());
    }

    #[test]
    fn zero_disables_the_limit() {
        let limiter = FailureLimiter::new(0, Duration::from_secs(60));
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            limiter.record_miss(CredentialKind::AdminToken, ip, now);
        }
        assert_eq!(limiter.check(CredentialKind::AdminToken, ip, now), Ok(()));
    }
}
