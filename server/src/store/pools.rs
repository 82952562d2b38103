//! Account pools: each account's own pool policy and the shares between accounts. The
//! [`PoolStore`] trait and its records; of the store's files it imports only `error` and `keys`.
//! The pools' entries are lists (`pool-<account id>`), written through the consensus commit.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};
use crate::pools::PoolPolicy;

/// Pool policies and shares.
#[async_trait]
pub trait PoolStore: Send + Sync {
    /// Every account that has its own policy, with it (the others follow the configuration).
    async fn pool_policies(&self) -> Result<Vec<(AccountKey, PoolPolicy)>, StoreError>;

    /// Gives an account its own policy, replacing any; `NotFound` for an unknown account.
    async fn set_pool_policy(&self, account: AccountKey, policy: &PoolPolicy, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Returns an account to the configured policy; whether it had its own.
    async fn clear_pool_policy(&self, account: AccountKey) -> Result<bool, StoreError>;

    /// Shares `owner`'s pool with `partner` (whether the share is new), or ends the share
    /// (whether it existed). `NotFound` when sharing with an unknown account.
    async fn set_pool_share(
        &self,
        owner: AccountKey,
        partner: AccountKey,
        shared: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Every share, by owner then partner.
    async fn pool_shares(&self) -> Result<Vec<PoolShare>, StoreError>;

    /// The pools `machine` receives: its account's, then those shared with its account (owners
    /// by id). Empty for a machine without an account.
    async fn pools_received(&self, machine: MachineKey) -> Result<Vec<AccountKey>, StoreError>;
}

/// One account's pool shared with another.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolShare {
    /// The account whose pool it is.
    pub owner: AccountKey,
    /// The account that receives it.
    pub partner: AccountKey,
    /// Since when.
    pub created_at: OffsetDateTime,
}
