//! Revocation: disabling, enabling and deleting machines, replacing their passwords, listing and
//! revoking admin tokens, and the revocation list every replica checks credentials against
//! (machines whose older tokens are refused, ended console sessions). The [`RevocationStore`]
//! trait and its records; of the store's files it imports only `keys` and `error`. It does not
//! decide what a revocation means for a request: [`crate::revocation`] does.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};

/// What Palisade stores to take credentials back.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Disables (`true`) or enables a machine, and appends a machine revocation at `at`, so its
    /// tokens issued until then stay refused even once it is enabled again. `NotFound` for an
    /// unknown or deleted login.
    async fn set_machine_disabled(&self, machine_id: &str, disabled: bool, at: OffsetDateTime) -> Result<MachineKey, StoreError>;

    /// Deletes a machine: it is disabled for good, gone from listings and logins, and its login
    /// stays taken (its stored signals still refer to it). Appends a machine revocation at `at`.
    /// `NotFound` for an unknown or already deleted login.
    async fn delete_machine(&self, machine_id: &str, at: OffsetDateTime) -> Result<MachineKey, StoreError>;

    /// Replaces a machine's password hash and appends a machine revocation at `at`, so tokens
    /// obtained with the old password are refused. `NotFound` for an unknown or deleted login.
    async fn set_machine_password(
        &self,
        machine_id: &str,
        password_hash: &str,
        at: OffsetDateTime,
    ) -> Result<MachineKey, StoreError>;

    /// Every admin token (never its hash), oldest first.
    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError>;

    /// Revokes the unrevoked admin tokens with this prefix and ends the operator's console
    /// sessions (they were opened with an admin token); whether a token was revoked.
    async fn revoke_admin_token(&self, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records that the admin token with this hash was used.
    async fn touch_admin_token(&self, token_hash: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Appends a revocation to the list (an ended session, every session, a revoked API key).
    async fn add_revocation(&self, revocation: &Revocation) -> Result<(), StoreError>;

    /// The list's generation: it changes whenever a revocation is appended (or an old one pruned).
    async fn revocation_generation(&self) -> Result<Generation, StoreError>;

    /// The revocations made at or after `since`, oldest first.
    async fn revocations_since(&self, since: OffsetDateTime) -> Result<Vec<Revocation>, StoreError>;

    /// The machines whose tokens are refused whatever their age: the disabled and the deleted.
    async fn disabled_machines(&self) -> Result<Vec<MachineKey>, StoreError>;

    /// Deletes an account and takes back every credential it held, in one transaction: its API
    /// keys and enrollment keys are deleted (each API key's prefix appended to the list, so every
    /// replica forgets it at once), its console sessions ended (`sessions`, subject
    /// `account:<id>`), its lookup usage, pool policy and pool shares removed, and the machines
    /// still attached to it detached (they stay, without an account). `NotFound` for an unknown
    /// account.
    async fn delete_account(&self, account: AccountKey, at: OffsetDateTime) -> Result<AccountDeletion, StoreError>;

    /// Deletes the revocations made before `before` (the credentials they refuse have expired
    /// by then); how many.
    async fn expire_revocations(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// What deleting an account removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountDeletion {
    /// Machines detached from it.
    pub machines_detached: u64,
    /// Its API keys (live or revoked) deleted.
    pub api_keys: u64,
    /// Its enrollment keys (live or revoked) deleted.
    pub enroll_keys: u64,
}

/// What a revocation takes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// A machine's tokens issued until then (subject: the machine's internal id).
    Machine,
    /// An admin token (subject: its prefix).
    AdminToken,
    /// An API key (subject: its prefix).
    ApiKey,
    /// One console session (subject: its nonce).
    Session,
    /// Console sessions opened until then (subject: `*` for all, `operator` for the operator's,
    /// `account:<id>` for one account's).
    Sessions,
}

impl RevocationKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Machine => "machine",
            RevocationKind::AdminToken => "admin_token",
            RevocationKind::ApiKey => "api_key",
            RevocationKind::Session => "session",
            RevocationKind::Sessions => "sessions",
        }
    }
}

impl std::str::FromStr for RevocationKind {
    type Err = StoreError;

    /// The inverse of [`RevocationKind::as_str`]; any other text is [`StoreError::Corrupt`].
    fn from_str(text: &str) -> Result<Self, StoreError> {
        match text {
            "machine" => Ok(RevocationKind::Machine),
            "admin_token" => Ok(RevocationKind::AdminToken),
            "api_key" => Ok(RevocationKind::ApiKey),
            "session" => Ok(RevocationKind::Session),
            "sessions" => Ok(RevocationKind::Sessions),
            other => Err(StoreError::corrupt("revocations.kind", other)),
        }
    }
}

/// One entry of the revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it takes back.
    pub kind: RevocationKind,
    /// Which one (see [`RevocationKind`]).
    pub subject: String,
    /// When.
    pub at: OffsetDateTime,
}

/// The revocation list's generation: its highest id, and how many entries it holds among the
/// last [`GENERATION_WINDOW`] ids. Both are needed: PostgreSQL can commit a lower id after a
/// higher one was seen, which changes that count but not the highest id. Counting only recent
/// ids keeps the read cheap however long the list grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Generation {
    /// Entries among the last [`GENERATION_WINDOW`] ids.
    pub count: i64,
    /// Highest id (0 when empty).
    pub last_id: i64,
}

/// How many of the newest ids [`Generation::count`] counts: far more than can be in flight at once.
pub const GENERATION_WINDOW: i64 = 1000;

/// An admin token as the operator sees it (the token itself is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct AdminTokenRecord {
    /// First characters, for identification and revocation.
    pub prefix: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last recorded use (at most once a minute per replica).
    pub last_used_at: Option<OffsetDateTime>,
    /// Revocation time; revoked tokens authenticate nothing.
    pub revoked_at: Option<OffsetDateTime>,
}
