//! PostgreSQL's [`PoolStore`]. Policies are stored as JSON text.

use super::*;
use crate::pools::PoolPolicy;
use crate::store::pools::{PoolShare, PoolStore};

fn policy_from_text(text: &str) -> Result<PoolPolicy, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::corrupt("pool_policies.policy", text))
}

#[async_trait]
impl PoolStore for PgStore {
    async fn pool_policies(&self) -> Result<Vec<(AccountKey, PoolPolicy)>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, String)>("SELECT account_id, policy FROM pool_policies ORDER BY account_id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|(account, text)| Ok((AccountKey(account), policy_from_text(&text)?))).collect()
    }

    async fn set_pool_policy(&self, account: AccountKey, policy: &PoolPolicy, at: OffsetDateTime) -> Result<(), StoreError> {
        let text = serde_json::to_string(policy).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = sqlx::query(
            "INSERT INTO pool_policies (account_id, policy, updated_at) SELECT id, $2, $3 FROM accounts WHERE id = $1 \
             ON CONFLICT (account_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
        )
        .bind(account.0)
        .bind(storable(&text))
        .bind(at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {}", account.0)));
        }
        Ok(())
    }

    async fn clear_pool_policy(&self, account: AccountKey) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM pool_policies WHERE account_id = $1").bind(account.0).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_pool_share(
        &self,
        owner: AccountKey,
        partner: AccountKey,
        shared: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if !shared {
            let done = sqlx::query("DELETE FROM pool_shares WHERE owner_id = $1 AND partner_id = $2")
                .bind(owner.0)
                .bind(partner.0)
                .execute(&self.pool)
                .await?;
            return Ok(done.rows_affected() > 0);
        }
        let mut tx = self.pool.begin().await?;
        let known: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE id IN ($1, $2)")
            .bind(owner.0)
            .bind(partner.0)
            .fetch_one(&mut *tx)
            .await?;
        if owner == partner || known != 2 {
            return Err(StoreError::NotFound(format!("accounts {} and {}", owner.0, partner.0)));
        }
        let done =
            sqlx::query("INSERT INTO pool_shares (owner_id, partner_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(owner.0)
                .bind(partner.0)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn pool_shares(&self) -> Result<Vec<PoolShare>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, i64, OffsetDateTime)>(
            "SELECT owner_id, partner_id, created_at FROM pool_shares ORDER BY owner_id, partner_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(owner, partner, at)| PoolShare { owner: AccountKey(owner), partner: AccountKey(partner), created_at: at })
            .collect())
    }

    async fn pools_received(&self, machine: MachineKey) -> Result<Vec<AccountKey>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, i32)>(
            "SELECT account_id, 0::int FROM machines WHERE id = $1 AND account_id IS NOT NULL \
             UNION ALL \
             SELECT s.owner_id, 1::int FROM pool_shares s JOIN machines m ON m.account_id = s.partner_id WHERE m.id = $1 \
             ORDER BY 2, 1",
        )
        .bind(machine.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(account, _)| AccountKey(account)).collect())
    }
}
