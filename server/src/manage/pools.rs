//! The operator's actions on account pools, shared by the admin API and the CLI: reading an
//! account's pool, giving it its own policy or returning it to the server's default, and sharing
//! it with another account or ending the share. The worker picks a change up at its next
//! refresh (seconds); ending a share removes the pool from the partner's next pull.

use palisade_api::native::{PoolPolicyRequest, PoolPolicyView, PoolView};
use time::OffsetDateTime;

use crate::domain::listing::Remediation;
use crate::domain::lists::pool_list;
use crate::pools::PoolPolicy;
use crate::store::{Account, AccountStore, PoolStore};
use crate::use_case::UseCaseError;

/// The store capabilities pool management uses.
pub trait PoolAdminStore: AccountStore + PoolStore {}
impl<T: AccountStore + PoolStore + ?Sized> PoolAdminStore for T {}

async fn account(store: &(impl PoolAdminStore + ?Sized), name: &str) -> Result<Account, UseCaseError> {
    store.account_by_name(name).await?.ok_or_else(|| UseCaseError::NotFound(format!("no account named {name:?}")))
}

/// The wire form of a policy.
pub fn policy_view(policy: &PoolPolicy) -> PoolPolicyView {
    PoolPolicyView {
        enabled: policy.enabled,
        min_machines: policy.min_machines,
        duration_secs: policy.duration_secs,
        remediation: policy.remediation.as_str().into(),
        allow: policy.allow.clone(),
        deny: policy.deny.clone(),
    }
}

/// An account's pool as the operator sees it; `entries` is the caller's to fill (it reads the
/// served list, which this use case does not hold).
pub async fn pool_view(
    store: &(impl PoolAdminStore + ?Sized),
    default: &PoolPolicy,
    name: &str,
) -> Result<PoolView, UseCaseError> {
    let owner = account(store, name).await?;
    let own = store.pool_policies().await?.into_iter().find(|(key, _)| *key == owner.key).map(|(_, policy)| policy);
    let accounts = store.list_accounts().await?;
    let name_of = |key| accounts.iter().find(|a| a.key == key).map(|a| a.name.clone()).unwrap_or_default();
    let shares = store.pool_shares().await?;
    Ok(PoolView {
        account: owner.name.clone(),
        list: pool_list(owner.key.0),
        policy: policy_view(own.as_ref().unwrap_or(default)),
        own_policy: own.is_some(),
        entries: 0,
        shared_with: shares.iter().filter(|s| s.owner == owner.key).map(|s| name_of(s.partner)).collect(),
        received_from: shares.iter().filter(|s| s.partner == owner.key).map(|s| name_of(s.owner)).collect(),
    })
}

/// Gives an account its own policy: the one in force with the request's fields changed.
pub async fn set_pool_policy(
    store: &(impl PoolAdminStore + ?Sized),
    default: &PoolPolicy,
    name: &str,
    request: &PoolPolicyRequest,
) -> Result<PoolView, UseCaseError> {
    let owner = account(store, name).await?;
    let current = store.pool_policies().await?.into_iter().find(|(key, _)| *key == owner.key).map(|(_, policy)| policy);
    let mut policy = current.unwrap_or_else(|| default.clone());
    if let Some(enabled) = request.enabled {
        policy.enabled = enabled;
    }
    if let Some(min_machines) = request.min_machines {
        policy.min_machines = min_machines;
    }
    if let Some(duration_secs) = request.duration_secs {
        policy.duration_secs = duration_secs;
    }
    if let Some(remediation) = &request.remediation {
        policy.remediation = Remediation::from_stored(remediation).ok_or_else(|| {
            UseCaseError::invalid("remediation", format!("remediation must be ban or captcha, not {remediation:?}"))
        })?;
    }
    if let Some(allow) = &request.allow {
        policy.allow.clone_from(allow);
    }
    if let Some(deny) = &request.deny {
        policy.deny.clone_from(deny);
    }
    policy.check().map_err(|problem| {
        let field = problem.split_whitespace().next().unwrap_or("policy").to_string();
        UseCaseError::invalid(&field, problem)
    })?;
    store.set_pool_policy(owner.key, &policy, OffsetDateTime::now_utc()).await?;
    pool_view(store, default, name).await
}

/// Returns an account to the server's default policy.
pub async fn reset_pool_policy(
    store: &(impl PoolAdminStore + ?Sized),
    default: &PoolPolicy,
    name: &str,
) -> Result<PoolView, UseCaseError> {
    let owner = account(store, name).await?;
    store.clear_pool_policy(owner.key).await?;
    pool_view(store, default, name).await
}

/// Shares `owner`'s pool with `partner` (read-only: the partner's machines and API keys receive
/// it too), or ends the share. Answers the owner's pool.
pub async fn set_pool_share(
    store: &(impl PoolAdminStore + ?Sized),
    default: &PoolPolicy,
    owner: &str,
    partner: &str,
    shared: bool,
) -> Result<PoolView, UseCaseError> {
    let (from, to) = (account(store, owner).await?, account(store, partner).await?);
    if from.key == to.key {
        return Err(UseCaseError::invalid("partner", "an account always receives its own pool; share it with another account"));
    }
    store.set_pool_share(from.key, to.key, shared, OffsetDateTime::now_utc()).await?;
    pool_view(store, default, owner).await
}
