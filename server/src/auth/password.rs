//! Machine password hashing with argon2id. Hashing is CPU-heavy by design, so both operations
//! run on the blocking pool, never on the async workers. Requests hash through [`Hashing`],
//! which bounds how many hashes run at once (each holds 7 MiB, given back to the operating
//! system when it is done: see [`working_memory`]): a login flood queues for a bounded time,
//! then is refused, instead of taking the server's memory.
//!
//! A CrowdSec machine logs in again each time its token expires, with the same password: across
//! a network those renewals were nine tenths of the server's CPU (`docs/scaling.md`). Once a
//! password has verified against a stored hash, this process remembers a keyed tag of the pair
//! ([`Verified`]) and a later login with the same pair is checked against the tag instead of
//! running argon2 again; a registration remembers the pair it has just hashed and stored, so the
//! login that follows it needs no argon2 run either. Only passwords that verified are
//! remembered, so a wrong guess still costs a full argon2 run; the tag covers the stored hash, so
//! a password reset (a new hash) makes every remembered tag of the old one useless; the key is
//! random per process and never leaves it, so the tags are worthless outside it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most (stored hash, password) pairs remembered as verified; past it the set starts over (32
/// bytes each: about 8 MiB, a renewal for each of 250,000 machines).
pub const VERIFIED_MAX: usize = 262_144;

/// Hashing failed (never expected: the inputs are bounded strings).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The argon2id setting new hashes are written with.
fn params() -> Params {
    // One of OWASP's argon2id settings: 7 MiB, 5 passes, 1 lane, which it holds equivalent in
    // defence to its 19 MiB × 2 passes and which costs about the same CPU (35 MiB-passes to 38).
    // The working memory is what every hash in flight holds, on top of a replica's lists: the
    // smaller setting keeps a login flood (or one registration beside a million-entry list)
    // from adding 19 MiB per slot. Stored hashes carry their own parameters, so hashes written
    // with the earlier 19 MiB setting keep verifying.
    Params::new(7 * 1024, 5, 1, None).unwrap_or_default()
}

/// Hashes a password into a PHC string, unbounded: for the operator's commands; requests go
/// through [`Hashing`].
pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_now(&password)).await.map_err(|e| HashError(e.to_string()))?
}

/// An argon2 working memory of `blocks` blocks that goes back to the operating system when it
/// is dropped. glibc serves an allocation of more than 32 MiB (its largest mmap threshold) with a
/// mapping of its own, unmapped when freed; a smaller one, once the threshold has risen (every
/// large vector freed raises it), comes from the arena of the thread that asks and stays resident
/// there after it is freed: 7 MiB for each blocking thread that ever hashed (measured: the
/// registration and login before a v2 stream left 14.8 MB resident beside a loaded list). So
/// the vector reserves past the threshold and initialises only the blocks the hash uses: only
/// those pages are ever resident, and all of them go back when the hash is done.
fn working_memory(blocks: usize) -> Vec<Block> {
    const RESERVED_BYTES: usize = 33 << 20;
    let mut memory = Vec::with_capacity(blocks.max(RESERVED_BYTES / Block::SIZE));
    memory.resize(blocks, Block::default());
    memory
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError(e.to_string());
    let params = params();
    // A fresh random salt from the operating system's generator.
    let salt = argon2::password_hash::generate_salt();
    let mut out = vec![0; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let memory = working_memory(params.block_count());
    argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory).map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to the stored `phc` (argon2 of any variant, version and setting;
/// the outputs compared in constant time). An unparsable stored hash verifies nothing.
fn verify_now(password: &str, phc: &str) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str());
    let version = stored.version.map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, Params::try_from(&stored)) else {
        return false;
    };
    let mut out = vec![0; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let memory = working_memory(params.block_count());
    let hashed = argon2.hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), &mut out, memory);
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| &computed == expected)
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

/// The (stored hash, password) pairs that verified in this process, as HMAC-SHA256 tags under a
/// key drawn at start-up.
struct Verified {
    key: String,
    tags: Mutex<HashSet<[u8; 32]>>,
}

impl Default for Verified {
    fn default() -> Self {
        Verified { key: super::secrets::random_alnum(32), tags: Mutex::default() }
    }
}

impl Verified {
    fn tag(&self, password: &str, phc: &str) -> Option<[u8; 32]> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_bytes()).ok()?;
        // Length-prefixed, so no (hash, password) pair can be read as another.
        mac.update(&(phc.len() as u64).to_be_bytes());
        mac.update(phc.as_bytes());
        mac.update(password.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    fn contains(&self, tag: &[u8; 32]) -> bool {
        self.tags.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(tag)
    }

    fn insert(&self, tag: [u8; 32]) {
        let mut tags = self.tags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tags.len() >= VERIFIED_MAX {
            tags.clear();
        }
        tags.insert(tag);
    }
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
    verified: Verified,
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
        Hashing {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            wait,
            in_flight: Arc::default(),
            verified: Verified::default(),
        }
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

    /// Remembers that `password` verifies against `phc`, a hash just made from it and stored: the
    /// first login of a machine that has just registered then needs no argon2 run of its own.
    pub fn remember(&self, password: &str, phc: &str) {
        if let Some(tag) = self.verified.tag(password, phc) {
            self.verified.insert(tag);
        }
    }

    /// [`verify`] within the bound; a pair that verified before in this process is answered from
    /// its tag, without argon2 and without a slot.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, Saturated> {
        let tag = self.verified.tag(&password, &phc);
        if tag.is_some_and(|tag| self.verified.contains(&tag)) {
            metrics::counter!("palisade_password_verifications_total", "via" => "remembered").increment(1);
            return Ok(true);
        }
        let running = self.slot().await?;
        let valid = tokio::task::spawn_blocking(move || {
            let _running = running;
            verify_now(&password, &phc)
        })
        .await
        .unwrap_or(false);
        metrics::counter!("palisade_password_verifications_total", "via" => "argon2").increment(1);
        if let Some(tag) = tag.filter(|_| valid) {
            self.verified.insert(tag);
        }
        Ok(valid)
    }
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_are_argon2s_own_in_both_directions() {
        let library = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let phc = hash_now("correct horse").unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(library.verify_password(b"correct horse", &parsed).is_ok(), "{phc}");
        assert!(library.verify_password(b"correct horsf", &parsed).is_err());
        let theirs = library.hash_password(b"correct horse").unwrap().to_string();
        assert!(verify_now("correct horse", &theirs));
        assert!(!verify_now("correct horsf", &theirs));
        // Other variants and versions verify with their own parameters.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::new(64, 1, 1, None).unwrap())
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(verify_now("correct horse", &argon2i));
        assert!(!verify_now("correct horsf", &argon2i));
        for broken in
            ["", "$argon2id$v=19$m=7168,t=5,p=1$c29tZXNhbHQ", "$argon2id$v=99$m=64,t=1,p=1$c29tZXNhbHQ$AAAA", "$md5$x$y"]
        {
            assert!(!verify_now("correct horse", broken), "{broken}");
        }
        // The working memory holds the blocks asked for, reserved past glibc's mmap threshold.
        let memory = working_memory(params().block_count());
        assert_eq!(memory.len(), 7 * 1024);
        assert!(memory.capacity() * Block::SIZE > 32 << 20);
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), phc.clone()).await);
        assert!(!verify("wrong".into(), phc).await);
        assert!(!verify("x".into(), "not a hash".into()).await);
    }

    #[tokio::test]
    async fn new_hashes_use_7_mib_and_5_passes_and_earlier_19_mib_hashes_still_verify() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{phc}");
        let earlier = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19 * 1024, 2, 1, None).unwrap())
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(earlier.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{earlier}");
        assert!(verify("correct horse".into(), earlier.clone()).await);
        assert!(!verify("correct horsf".into(), earlier).await);
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

    #[tokio::test]
    async fn a_registered_password_is_remembered_for_its_own_hash_only() {
        let hashing = Hashing::new(1, Duration::from_millis(1));
        let phc = hashing.hash("correct horse".into()).await.unwrap();
        let other = hash("correct horse".into()).await.unwrap();
        hashing.remember("correct horse", &phc);
        // Every slot taken: only what needs no argon2 can answer.
        let held = hashing.slot().await.unwrap();
        assert!(hashing.verify("correct horse".into(), phc.clone()).await.unwrap(), "the first login after registering");
        assert!(matches!(hashing.verify("wrong horse".into(), phc).await, Err(Saturated(1))), "a guess runs argon2");
        assert!(matches!(hashing.verify("correct horse".into(), other).await, Err(Saturated(1))), "another hash runs argon2");
        drop(held);
    }

    #[tokio::test]
    async fn a_renewal_with_a_verified_password_skips_argon2_and_nothing_else_does() {
        let hashing = Hashing::new(1, Duration::from_millis(1));
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(hashing.verify("correct horse".into(), phc.clone()).await.unwrap(), "first login: argon2");
        // Every slot taken: only what needs no argon2 can answer.
        let held = hashing.slot().await.unwrap();
        assert!(hashing.verify("correct horse".into(), phc.clone()).await.unwrap(), "the renewal is remembered");
        assert!(matches!(hashing.verify("wrong horse".into(), phc.clone()).await, Err(Saturated(1))), "a guess runs argon2");
        let reset = hash("correct horse".into()).await.unwrap();
        assert!(
            matches!(hashing.verify("correct horse".into(), reset.clone()).await, Err(Saturated(1))),
            "a new stored hash (a reset) is verified afresh"
        );
        drop(held);
        assert!(!hashing.verify("wrong horse".into(), phc).await.unwrap());
        assert!(hashing.verify("correct horse".into(), reset).await.unwrap());
        // Another process (another key) remembers nothing of this one.
        let other = Hashing::new(1, Duration::from_millis(1));
        let _held = other.slot().await.unwrap();
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(matches!(other.verify("correct horse".into(), phc).await, Err(Saturated(1))));
    }
}
