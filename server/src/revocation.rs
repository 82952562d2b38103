//! Revocation on every replica: what each request's credential is checked against besides its
//! signature and expiry. Machine tokens, console sessions and admin tokens are checked against an
//! in-process [`Snapshot`] of the store's revocation list, so the steady state costs no store
//! round-trip per request: at most once per [`REFRESH_INTERVAL`] one request reads the list's
//! generation (two integers), and only when it changed is the list read again (the revocations
//! younger than the longest credential lifetime, and the disabled machines). A revocation made on
//! this replica reloads the snapshot before it answers; through Redis (when configured) it tells
//! the others on [`CHANNEL`], and their next request reloads first. Without Redis, or with a lost
//! message, a revocation reaches every replica within [`REFRESH_INTERVAL`].
//!
//! It owns the cache of live admin tokens too (confirmed against the store at most once per
//! [`ADMIN_TOKEN_TTL`], and forgotten whenever the list changes). It must not decide who may
//! revoke what: the admin API, the CLI and the console do, through [`crate::manage`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::auth::session::{Role, SESSION_TTL_SECS, Session};
use crate::bus::ChangeBus;
use crate::store::{Generation, MachineKey, Revocation, RevocationKind, Store, StoreError};

/// How often a replica asks the store whether the revocation list changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The Redis channel a replica announces its revocations on.
pub const CHANNEL: &str = "palisade:revocations";

/// How long a live admin token is trusted without asking the store again (the list's changes
/// forget it at once; this bounds what a missed change could cost).
pub const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(60);

/// The revocations in force, as last read from the store. Pure: times are parameters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    generation: Option<Generation>,
    /// Disabled or deleted machines: every token refused.
    disabled: HashSet<i64>,
    /// Per machine, the first second whose tokens are accepted (older ones were revoked).
    machine_floor: HashMap<i64, i64>,
    /// Ended sessions, by nonce.
    sessions: HashSet<String>,
    /// The first second whose sessions are accepted, for everyone.
    all_sessions_floor: i64,
    /// The first second whose operator sessions are accepted.
    operator_sessions_floor: i64,
    /// Per account id, the first second whose sessions of that account are accepted (set when
    /// the account is deleted).
    account_sessions_floor: HashMap<i64, i64>,
}

/// Why a machine's token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineRefusal {
    /// The operator disabled or deleted the machine.
    Disabled,
    /// The token was issued before a revocation (a password reset, a disable since lifted).
    Revoked,
}

impl MachineRefusal {
    /// The sentence the client receives.
    pub fn message(self) -> &'static str {
        match self {
            MachineRefusal::Disabled => "this machine is disabled by the operator of this server",
            MachineRefusal::Revoked => {
                "this token was revoked (the machine's password was reset or it was disabled): log in again"
            }
        }
    }
}

/// The whole second at or after `at`: a credential issued in an earlier second than this (its
/// issue time is in whole seconds) predates the revocation, or could.
fn ceil_secs(at: OffsetDateTime) -> i64 {
    let secs = at.unix_timestamp();
    if at.nanosecond() > 0 { secs + 1 } else { secs }
}

impl Snapshot {
    /// The snapshot of a revocation list at `generation`, with the machines disabled now.
    pub fn build(generation: Generation, revocations: &[Revocation], disabled: &[MachineKey]) -> Snapshot {
        let mut snapshot =
            Snapshot { generation: Some(generation), disabled: disabled.iter().map(|k| k.0).collect(), ..Snapshot::default() };
        for revocation in revocations {
            let floor = ceil_secs(revocation.at);
            match revocation.kind {
                RevocationKind::Machine => {
                    if let Ok(id) = revocation.subject.parse::<i64>() {
                        let entry = snapshot.machine_floor.entry(id).or_default();
                        *entry = (*entry).max(floor);
                    }
                }
                RevocationKind::Session => {
                    snapshot.sessions.insert(revocation.subject.clone());
                }
                RevocationKind::Sessions if revocation.subject == "operator" => {
                    snapshot.operator_sessions_floor = snapshot.operator_sessions_floor.max(floor);
                }
                RevocationKind::Sessions => match revocation.subject.strip_prefix("account:").map(str::parse::<i64>) {
                    Some(Ok(account)) => {
                        let entry = snapshot.account_sessions_floor.entry(account).or_default();
                        *entry = (*entry).max(floor);
                    }
                    // An unreadable account subject ends nobody's session rather than everyone's.
                    Some(Err(_)) => {}
                    None => snapshot.all_sessions_floor = snapshot.all_sessions_floor.max(floor),
                },
                // They only change the generation, which empties the key caches.
                RevocationKind::AdminToken | RevocationKind::ApiKey => {}
            }
        }
        snapshot
    }

    /// Whether a token of `machine` issued at `issued_at` (Unix seconds) is refused, and why.
    pub fn machine_refusal(&self, machine: MachineKey, issued_at: i64) -> Option<MachineRefusal> {
        if self.disabled.contains(&machine.0) {
            Some(MachineRefusal::Disabled)
        } else if issued_at < self.machine_token_floor(machine) {
            Some(MachineRefusal::Revoked)
        } else {
            None
        }
    }

    /// The first second whose tokens of `machine` are accepted: a login issues none older.
    pub fn machine_token_floor(&self, machine: MachineKey) -> i64 {
        self.machine_floor.get(&machine.0).copied().unwrap_or(i64::MIN)
    }

    /// Whether a verified session is still accepted: not ended, and opened after the last
    /// "end every session" that covers its role.
    pub fn session_allowed(&self, session: &Session) -> bool {
        let opened_at = session.expires_at - SESSION_TTL_SECS;
        !self.sessions.contains(&session.nonce) && opened_at >= self.session_floor(&session.role)
    }

    /// The first second whose sessions of `role` are accepted: a sign-in opens none older.
    pub fn session_floor(&self, role: &Role) -> i64 {
        match role {
            Role::Operator => self.all_sessions_floor.max(self.operator_sessions_floor),
            Role::Account { id, .. } => {
                self.all_sessions_floor.max(self.account_sessions_floor.get(id).copied().unwrap_or(i64::MIN))
            }
        }
    }
}

/// The revocation snapshot of one replica, kept fresh, and the cache of live admin tokens.
pub struct Revocations {
    store: Arc<dyn Store>,
    bus: ChangeBus,
    /// How far back revocations matter: the longest a token or session lives, and some.
    horizon: time::Duration,
    snapshot: RwLock<Arc<Snapshot>>,
    /// When the generation was last read, in ms after `started` (0: never); an atomic, so the
    /// requests between two checks take no lock for it.
    checked_at_ms: AtomicU64,
    started: Instant,
    /// Set by another replica's notice: the next request reloads first.
    stale: AtomicBool,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Live admin tokens by hash, with when the store last confirmed them.
    admin_tokens: Mutex<HashMap<String, Instant>>,
    /// Called whenever the list changed (empties the API key cache).
    on_change: Box<dyn Fn() + Send + Sync>,
}

impl Revocations {
    /// Revocations read from `store`, announced on `bus`; `max_credential_secs` is the longest a
    /// machine token lives. `on_change` runs whenever the list changed.
    pub fn new(
        store: Arc<dyn Store>,
        bus: ChangeBus,
        max_credential_secs: u64,
        on_change: Box<dyn Fn() + Send + Sync>,
    ) -> Revocations {
        let longest = i64::try_from(max_credential_secs).unwrap_or(i64::MAX / 2).max(SESSION_TTL_SECS);
        Revocations {
            store,
            bus,
            // The JWT check allows 5 s of clock leeway; a minute covers it and the clocks of replicas.
            horizon: time::Duration::seconds(longest.saturating_add(60)),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            checked_at_ms: AtomicU64::new(0),
            started: Instant::now(),
            stale: AtomicBool::new(false),
            reloading: tokio::sync::Mutex::new(()),
            admin_tokens: Mutex::new(HashMap::new()),
            on_change,
        }
    }

    fn loaded(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The snapshot in force. A request waits for a reload only when there is no snapshot yet or
    /// another replica announced a revocation; the periodic check is made by one request while
    /// the others go on with the snapshot they have.
    pub async fn current(&self) -> Result<Arc<Snapshot>, StoreError> {
        let snapshot = self.loaded();
        let must_wait = snapshot.generation.is_none() || self.stale.load(Ordering::Acquire);
        let checked_at = self.checked_at_ms.load(Ordering::Acquire);
        let due = checked_at == 0 || self.elapsed_ms().saturating_sub(checked_at) >= REFRESH_INTERVAL.as_millis() as u64;
        if must_wait {
            let _guard = self.reloading.lock().await;
            // Another request may have reloaded while this one waited.
            if self.loaded().generation.is_none() || self.stale.load(Ordering::Acquire) {
                self.stale.store(false, Ordering::Release);
                if let Err(error) = self.refresh(true).await {
                    if self.loaded().generation.is_none() {
                        return Err(error);
                    }
                    // Serve with what was loaded rather than refuse everyone; the periodic check
                    // retries within a second and reloads, as the generation it sees is new.
                    metrics::counter!("palisade_revocation_refresh_failures_total").increment(1);
                    tracing::warn!(%error, "cannot read the revocation list; checking with the one loaded");
                }
            }
            return Ok(self.loaded());
        }
        if due && let Ok(_guard) = self.reloading.try_lock() {
            if let Err(error) = self.refresh(false).await {
                metrics::counter!("palisade_revocation_refresh_failures_total").increment(1);
                tracing::warn!(%error, "cannot read the revocation list; checking with the one loaded");
            }
            return Ok(self.loaded());
        }
        Ok(snapshot)
    }

    /// The snapshot after asking the store whether the list changed, whatever the time of the
    /// last check: for a login, which costs a password hash anyway, so the token it issues agrees
    /// with the revocations committed before it (a password reset or an enabling made on another
    /// replica a moment ago).
    pub async fn current_fresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        let _guard = self.reloading.lock().await;
        let force = self.loaded().generation.is_none() || self.stale.swap(false, Ordering::AcqRel);
        self.refresh(force).await?;
        Ok(self.loaded())
    }

    /// Reads the generation and, when it changed (or `force`), the list. The caller holds `reloading`.
    async fn refresh(&self, force: bool) -> Result<(), StoreError> {
        // Marked first: a failing store is asked again after the interval, not on every request.
        self.checked_at_ms.store(self.elapsed_ms().max(1), Ordering::Release);
        let generation = self.store.revocation_generation().await?;
        if !force && self.loaded().generation == Some(generation) {
            return Ok(());
        }
        let since = OffsetDateTime::now_utc() - self.horizon;
        let revocations = self.store.revocations_since(since).await?;
        let disabled = self.store.disabled_machines().await?;
        let snapshot = Snapshot::build(generation, &revocations, &disabled);
        *self.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        self.admin_tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        (self.on_change)();
        metrics::counter!("palisade_revocation_reloads_total").increment(1);
        Ok(())
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Another replica announced a revocation: the next request reloads before it is checked.
    pub fn invalidate(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// After a revocation was stored on this replica: reloads the snapshot before the caller
    /// answers, and tells the other replicas (through Redis when configured; otherwise they see
    /// it at their next check). The revocation is stored already, so a failed reload is not the
    /// caller's failure: the next request here reloads first.
    pub async fn revoked(&self) {
        {
            let _guard = self.reloading.lock().await;
            if let Err(error) = self.refresh(true).await {
                metrics::counter!("palisade_revocation_refresh_failures_total").increment(1);
                tracing::warn!(%error, "cannot reload the revocation list after a revocation; the next request retries");
                self.stale.store(true, Ordering::Release);
            }
        }
        self.bus.announce(CHANNEL).await;
    }

    /// Whether an admin token (by hash) is live: from the cache while fresh, else from the store
    /// (recording its use). Unknown tokens are not cached; the failed-credential limit bounds them.
    pub async fn admin_token_valid(&self, token_hash: &str) -> Result<bool, StoreError> {
        // Brings the snapshot up to date first, which empties the cache when the list changed.
        let generation = self.current().await?.generation;
        let fresh = {
            let cache = self.admin_tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.get(token_hash).is_some_and(|at| at.elapsed() < ADMIN_TOKEN_TTL)
        };
        if fresh {
            return Ok(true);
        }
        if !self.store.admin_token_exists(token_hash).await? {
            return Ok(false);
        }
        if let Err(error) = self.store.touch_admin_token(token_hash, OffsetDateTime::now_utc()).await {
            tracing::warn!(%error, "cannot record admin token use");
        }
        let mut cache = self.admin_tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A reload since the store was asked may have emptied the cache for a revocation this
        // answer predates: then it is not remembered.
        if self.loaded().generation == generation {
            if cache.len() >= 1_000 {
                cache.clear();
            }
            cache.insert(token_hash.to_string(), Instant::now());
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn revocation(kind: RevocationKind, subject: &str, at: OffsetDateTime) -> Revocation {
        Revocation { kind, subject: subject.into(), at }
    }

    const AT: OffsetDateTime = datetime!(2026-11-25 12:00:00.5 UTC);

    fn session(role: Role, opened_at: i64, nonce: &str) -> Session {
        Session { role, expires_at: opened_at + SESSION_TTL_SECS, nonce: nonce.into() }
    }

    #[test]
    fn a_machine_revocation_refuses_tokens_issued_up_to_its_second() {
        let snapshot = Snapshot::build(Generation::default(), &[revocation(RevocationKind::Machine, "7", AT)], &[MachineKey(9)]);
        let second = AT.unix_timestamp();
        assert_eq!(snapshot.machine_refusal(MachineKey(7), second - 100), Some(MachineRefusal::Revoked));
        // Issued in the same second: it may predate the revocation, so it is refused too.
        assert_eq!(snapshot.machine_refusal(MachineKey(7), second), Some(MachineRefusal::Revoked));
        assert_eq!(snapshot.machine_refusal(MachineKey(7), second + 1), None);
        assert_eq!(snapshot.machine_token_floor(MachineKey(7)), second + 1);
        assert_eq!(snapshot.machine_refusal(MachineKey(8), second - 100), None, "another machine");
        assert_eq!(snapshot.machine_refusal(MachineKey(9), second + 1000), Some(MachineRefusal::Disabled));
    }

    #[test]
    fn ended_sessions_and_sessions_opened_before_a_revoke_all_are_refused() {
        let second = AT.unix_timestamp();
        let operator = Snapshot::build(
            Generation::default(),
            &[revocation(RevocationKind::Session, "n1", AT), revocation(RevocationKind::Sessions, "operator", AT)],
            &[],
        );
        let account = Role::Account { id: 3, name: "acme".into() };
        assert!(!operator.session_allowed(&session(account.clone(), second - 10, "n1")), "ended by nonce");
        assert!(operator.session_allowed(&session(account.clone(), second - 10, "n2")), "an account's other session");
        assert!(!operator.session_allowed(&session(Role::Operator, second - 10, "n3")), "operator sessions ended");
        assert!(operator.session_allowed(&session(Role::Operator, second + 1, "n4")), "a later operator session");

        let all = Snapshot::build(Generation::default(), &[revocation(RevocationKind::Sessions, "*", AT)], &[]);
        assert!(!all.session_allowed(&session(account.clone(), second, "n5")));
        assert!(!all.session_allowed(&session(Role::Operator, second - 1, "n6")));
        assert!(all.session_allowed(&session(account, second + 1, "n7")));
        assert_eq!(all.session_floor(&Role::Operator), second + 1);
    }

    #[test]
    fn a_deleted_accounts_sessions_are_refused_and_no_other() {
        let second = AT.unix_timestamp();
        let snapshot = Snapshot::build(Generation::default(), &[revocation(RevocationKind::Sessions, "account:3", AT)], &[]);
        let deleted = Role::Account { id: 3, name: "acme".into() };
        let other = Role::Account { id: 4, name: "other".into() };
        assert!(!snapshot.session_allowed(&session(deleted.clone(), second - 10, "a")));
        assert!(snapshot.session_allowed(&session(other, second - 10, "b")), "another account");
        assert!(snapshot.session_allowed(&session(Role::Operator, second - 10, "c")), "the operator");
        assert!(snapshot.session_allowed(&session(deleted, second + 1, "d")), "a later account with the same id");
    }

    #[test]
    fn an_empty_list_refuses_nothing() {
        let snapshot = Snapshot::build(Generation::default(), &[], &[]);
        assert_eq!(snapshot.machine_refusal(MachineKey(1), 0), None);
        assert!(snapshot.session_allowed(&session(Role::Operator, 0, "n")));
    }
}
