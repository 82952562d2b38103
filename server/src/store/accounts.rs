//! Accounts and their credentials: verification levels, lookup tiers, enrollment keys, API keys
//! and admin tokens (hashes only; a key itself is never stored).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Account, AccountKey, ApiKeyRecord, EnrollKey, EnrollKeyRecord, EnrollOutcome, MachineKey, StoreError};

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
    async fn set_account_level(&self, name: &str, level: &str) -> Result<(), StoreError>;

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

    /// An account's enrollment keys (never their hashes), oldest first.
    async fn list_enroll_keys(&self, account: AccountKey) -> Result<Vec<EnrollKeyRecord>, StoreError>;

    /// Revokes the unrevoked enrollment keys of `account` with this prefix; whether one was revoked.
    async fn revoke_enroll_key(&self, account: AccountKey, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError>;

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

    /// Stores an admin token's hash.
    async fn create_admin_token(&self, token_hash: &str, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Whether an unrevoked admin token with this hash exists.
    async fn admin_token_exists(&self, token_hash: &str) -> Result<bool, StoreError>;
}
