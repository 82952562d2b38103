//! Accounts and their credentials: verification levels, lookup tiers, enrollment keys, API keys
//! and admin tokens (hashes only; a key itself is never stored). The [`AccountStore`] trait, its
//! records, and the one description of the credential tables both backends build their
//! statements from; of the store's files it imports only `keys` and `error`.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};
use crate::domain::level::Level;

/// Accounts, their levels and tiers, and the keys and tokens that authenticate them.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account; `Conflict` when the name exists.
    async fn create_account(&self, name: &str, at: OffsetDateTime) -> Result<AccountKey, StoreError>;

    /// Finds an account by name.
    async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError>;

    /// Lists every account.
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;

    /// Sets an account's verification level; `NotFound` for an unknown account.
    async fn set_account_level(&self, name: &str, level: Level) -> Result<(), StoreError>;

    /// Sets an account's tier; `NotFound` for an unknown account.
    async fn set_account_tier(&self, name: &str, tier: &str) -> Result<(), StoreError>;

    /// An account's lookup tier name; `None` for an unknown account.
    async fn account_tier(&self, account: AccountKey) -> Result<Option<String>, StoreError>;

    /// Stores an enrollment key's hash.
    async fn create_enroll_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Finds an enrollment key by its hash.
    async fn enroll_key_by_hash(&self, key_hash: &str) -> Result<Option<EnrollKey>, StoreError>;

    /// Attaches a machine to an account.
    async fn enroll_machine(
        &self,
        machine: MachineKey,
        account: AccountKey,
        name: Option<&str>,
        tags: &[String],
        overwrite: bool,
        at: OffsetDateTime,
    ) -> Result<EnrollOutcome, StoreError>;

    /// Enrollment keys (never their hashes), oldest first: one account's, or every key.
    async fn list_enroll_keys(&self, account: Option<AccountKey>) -> Result<Vec<EnrollKeyRecord>, StoreError>;

    /// Revokes the unrevoked enrollment keys with this prefix (only within `account` when given);
    /// whether one was revoked.
    async fn revoke_enroll_key(&self, account: Option<AccountKey>, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records that the enrollment key with this hash enrolled a machine (counts its uses).
    async fn touch_enroll_key(&self, key_hash: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Stores an API key's hash for an account; `Conflict` when the hash or prefix exists.
    async fn create_api_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Finds an API key (revoked or not) by its hash.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Lists API keys, oldest first: one account's, or every key.
    async fn list_api_keys(&self, account: Option<AccountKey>) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes an unrevoked key by prefix (only within `account` when given); whether one was revoked.
    async fn revoke_api_key(&self, prefix: &str, account: Option<AccountKey>, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records that a key was used.
    async fn touch_api_key(&self, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// The seq a key's CrowdSec bouncer stream was last sent up to; `None` before its first pull
    /// (or for an unknown key).
    async fn api_key_stream_seq(&self, prefix: &str) -> Result<Option<i64>, StoreError>;

    /// Records the seq a key's CrowdSec bouncer stream was sent up to.
    async fn set_api_key_stream_seq(&self, prefix: &str, seq: i64) -> Result<(), StoreError>;

    /// Stores an admin token's hash.
    async fn create_admin_token(&self, token_hash: &str, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Whether an unrevoked admin token with this hash exists.
    async fn admin_token_exists(&self, token_hash: &str) -> Result<bool, StoreError>;
}

/// A stored account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Internal id.
    pub key: AccountKey,
    /// Unique name.
    pub name: String,
    /// Verification level.
    pub level: Level,
    /// Machines enrolled (deleted ones not counted).
    pub machine_count: u64,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A stored enrollment key (its hash; the key itself is never stored).
#[derive(Debug, Clone)]
pub struct EnrollKey {
    /// Account it enrolls into.
    pub account: AccountKey,
    /// First characters, for identification.
    pub prefix: String,
    /// Revoked keys enroll nothing.
    pub revoked: bool,
}

/// Outcome of attaching a machine to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Newly attached (or re-attached with overwrite).
    Enrolled,
    /// Already attached and no overwrite asked: nothing changed.
    AlreadyEnrolled,
}

/// A stored API key (its hash; the key itself is never stored), with its account and tier.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    /// First characters, unique, shown in listings and used to revoke.
    pub prefix: String,
    /// Owning account.
    pub account: AccountKey,
    /// Owning account's name.
    pub account_name: String,
    /// The account's tier name.
    pub tier: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Revocation time; revoked keys authenticate nothing.
    pub revoked_at: Option<OffsetDateTime>,
    /// Last recorded use.
    pub last_used_at: Option<OffsetDateTime>,
}

/// An enrollment key as its account and the operator see it (the key itself is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollKeyRecord {
    /// First characters, for identification and revocation.
    pub prefix: String,
    /// Owning account's name.
    pub account_name: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Revocation time; revoked keys enroll nothing.
    pub revoked_at: Option<OffsetDateTime>,
    /// Machines it enrolled (each enrollment counted, re-enrollments too).
    pub uses: u64,
    /// Its latest enrollment.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A table of credential hashes. Enrollment keys, API keys and admin tokens share one shape (the
/// hash, a visible prefix, a creation and a revocation time, and for the first two the owning
/// account), so each backend stores and revokes all three through one statement each, built from
/// this description.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyTable {
    /// Table name.
    pub(super) table: &'static str,
    /// Column holding the hash.
    pub(super) hash: &'static str,
    /// Whether each key belongs to an account (`account_id`).
    pub(super) owned: bool,
}

/// Enrollment keys: attach a machine to their account.
pub(super) const ENROLL_KEYS: KeyTable = KeyTable { table: "enroll_keys", hash: "key_hash", owned: true };
/// API keys: authenticate lookups as their account.
pub(super) const API_KEYS: KeyTable = KeyTable { table: "api_keys", hash: "key_hash", owned: true };
/// Admin tokens: the operator's, owned by no account.
pub(super) const ADMIN_TOKENS: KeyTable = KeyTable { table: "admin_tokens", hash: "token_hash", owned: false };

impl KeyTable {
    /// The insert of one key, with the backend's placeholders (`?` or `$1`, `$2`, …): binds the
    /// hash, the prefix, the account when the table is owned, and the creation time, in that order.
    pub(super) fn insert_sql(self, placeholder: impl Fn(usize) -> String) -> String {
        let (columns, count) = if self.owned {
            (format!("{}, prefix, account_id, created_at", self.hash), 4)
        } else {
            (format!("{}, prefix, created_at", self.hash), 3)
        };
        let values: Vec<String> = (1..=count).map(placeholder).collect();
        format!("INSERT INTO {} ({columns}) VALUES ({})", self.table, values.join(", "))
    }

    /// The revocation of the live keys with a prefix, in an owned table: binds the revocation
    /// time, the prefix and, twice, the account (`NULL`: any account), in that order.
    pub(super) fn revoke_sql(self, placeholder: impl Fn(usize) -> String) -> String {
        let p: Vec<String> = (1..=4).map(placeholder).collect();
        format!(
            "UPDATE {} SET revoked_at = {} WHERE prefix = {} AND revoked_at IS NULL AND ({} IS NULL OR account_id = {})",
            self.table, p[0], p[1], p[2], p[3]
        )
    }
}
