//! Machine password hashing with argon2id. Hashing is CPU-heavy by design, so both operations
//! run on the blocking pool, never on the async workers. Requests hash through [`Hashing`],
//! which bounds how many hashes run at once (each holds 19 MiB): a login flood queues for a
//! bounded time, then is refused, instead of taking the server's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hashing failed (never expected: the inputs are bounded strings).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn hasher() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string, unbounded: for the operator's commands; requests go
/// through [`Hashing`].
pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_now(&password)).await.map_err(|e| HashError(e.to_string()))?
}

fn hash_now(password: &str) -> Result<String, HashError> {
    // A fresh random salt from the operating system's generator.
    hasher().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).map(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok()).unwrap_or(false)
}

/// Checks a password against a PHC string (constant time inside argon2). An unparsable stored
/// hash verifies nothing.
pub async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_now(&password, &phc)).await.unwrap_or(false)
}

/// A hash of a random password, verified against when a login names an unknown machine so that
/// unknown and known logins take the same time.
pub async fn decoy_hash() -> String {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY.get_or_init(|| async { hash(super::secrets::random_alnum(32)).await.unwrap_or_default() }).await.clone()
}

/// Every hashing slot stayed taken for the whole wait: the caller should answer 503.
#[derive(Debug, thiserror::Error)]
#[error("all {0} password hashing slots are busy")]
pub struct Saturated(pub usize);

/// A failure of [`Hashing::hash`].
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// No slot freed up in time.
    #[error(transparent)]
    Saturated(#[from] Saturated),
    /// Hashing itself failed.
    #[error(transparent)]
    Failed(#[from] HashError),
}

/// Bounded password hashing: at most `max_concurrent` hashes or verifications run at once; a
/// caller waits at most `wait` for a slot. The slot is held by the blocking task itself, so a
/// request dropped mid-hash (its client gone) frees its slot only when the hash is done: the
/// bound holds for the work actually running, not for the requests still waiting on it.
pub struct Hashing {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    wait: Duration,
    in_flight: Arc<InFlight>,
}

/// Hashes running now and the most that ever ran at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// One running hash, counted in [`InFlight`] and the `palisade_password_hashes_in_flight` gauge
/// while it lives, with the slot it holds.
struct Running {
    in_flight: Arc<InFlight>,
    _slot: OwnedSemaphorePermit,
}

impl Running {
    fn start(in_flight: Arc<InFlight>, slot: OwnedSemaphorePermit) -> Self {
        let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.peak.fetch_max(now, Ordering::SeqCst);
        metrics::gauge!("palisade_password_hashes_in_flight").increment(1.0);
        Running { in_flight, _slot: slot }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.in_flight.now.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("palisade_password_hashes_in_flight").decrement(1.0);
    }
}

impl Hashing {
    /// At most `max_concurrent` (at least one) hashes at once, callers waiting at most `wait`.
    pub fn new(max_concurrent: usize, wait: Duration) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Hashing { slots: Arc::new(Semaphore::new(max_concurrent)), max_concurrent, wait, in_flight: Arc::default() }
    }

    /// The configured bound.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Hashes running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.now.load(Ordering::SeqCst)
    }

    /// The most hashes that ever ran at once in this process.
    pub fn peak_in_flight(&self) -> usize {
        self.in_flight.peak.load(Ordering::SeqCst)
    }

    async fn slot(&self) -> Result<Running, Saturated> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(Running::start(self.in_flight.clone(), slot)),
            // Timed out, or the semaphore was closed (it never is).
            _ => {
                metrics::counter!("palisade_password_hash_saturated_total").increment(1);
                Err(Saturated(self.max_concurrent))
            }
        }
    }

    /// [`hash`] within the bound.
    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        let running = self.slot().await?;
        let hashed = tokio::task::spawn_blocking(move || {
            let _running = running;
            hash_now(&password)
        })
        .await
        .map_err(|e| HashError(e.to_string()))??;
        Ok(hashed)
    }

    /// [`verify`] within the bound.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, Saturated> {
        let running = self.slot().await?;
        Ok(tokio::task::spawn_blocking(move || {
            let _running = running;
            verify_now(&password, &phc)
        })
        .await
        .unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), phc.clone()).await);
        assert!(!verify("wrong".into(), phc).await);
        assert!(!verify("x".into(), "not a hash".into()).await);
    }

    #[tokio::test]
    async fn reference_vectors_verify() {
        // Argon2id v1.3 vector of the reference implementation: stored hashes carry their own
        // parameters and must keep verifying whichever argon2 release wrote them.
        let phc = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
        assert!(verify("password".into(), phc.into()).await);
        assert!(!verify("passwore".into(), phc.into()).await);
    }

    #[tokio::test]
    async fn a_full_pool_refuses_after_the_wait_and_never_runs_more_than_its_bound() {
        let hashing = Arc::new(Hashing::new(1, Duration::from_millis(1)));
        let phc = hash("correct horse".into()).await.unwrap();
        let held = hashing.slot().await.unwrap();
        assert!(matches!(hashing.verify("x".into(), phc.clone()).await, Err(Saturated(1))));
        drop(held);
        assert!(hashing.verify("correct horse".into(), phc).await.unwrap());
        assert_eq!(hashing.in_flight(), 0);
        assert_eq!(hashing.peak_in_flight(), 1);
    }
}
