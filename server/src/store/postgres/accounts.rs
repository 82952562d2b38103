//! PostgreSQL's [`AccountStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::accounts::AccountStore;

#[async_trait]
impl AccountStore for PgStore {
    async fn create_account(&self, name: &str, at: OffsetDateTime) -> Result<AccountKey, StoreError> {
        let id: i64 = sqlx::query_scalar("INSERT INTO accounts (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(storable(name))
            .bind(at)
            .fetch_one(&self.pool)
            .await?;
        Ok(AccountKey(id))
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{ACCOUNT_SELECT} WHERE a.name = $1")))
            .bind(storable(name))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{ACCOUNT_SELECT} ORDER BY a.id"))).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(account_from_row).collect::<Result<_, _>>()?)
    }

    async fn set_account_level(&self, name: &str, level: Level) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET level = $1 WHERE name = $2")
            .bind(level.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {name:?}")));
        }
        Ok(())
    }

    async fn set_account_tier(&self, name: &str, tier: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET tier = $1 WHERE name = $2")
            .bind(storable(tier))
            .bind(storable(name))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {name:?}")));
        }
        Ok(())
    }

    async fn account_tier(&self, account: AccountKey) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT tier FROM accounts WHERE id = $1").bind(account.0).fetch_optional(&self.pool).await?)
    }

    async fn create_enroll_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO enroll_keys (key_hash, prefix, account_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(storable(key_hash))
            .bind(storable(prefix))
            .bind(account.0)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn enroll_key_by_hash(&self, key_hash: &str) -> Result<Option<EnrollKey>, StoreError> {
        let row = sqlx::query("SELECT account_id, prefix, revoked_at FROM enroll_keys WHERE key_hash = $1")
            .bind(storable(key_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|row| -> Result<EnrollKey, sqlx::Error> {
                Ok(EnrollKey {
                    account: AccountKey(row.try_get("account_id")?),
                    prefix: row.try_get("prefix")?,
                    revoked: row.try_get::<Option<OffsetDateTime>, _>("revoked_at")?.is_some(),
                })
            })
            .transpose()?)
    }

    async fn enroll_machine(
        &self,
        machine: MachineKey,
        account: AccountKey,
        name: Option<&str>,
        tags: &[String],
        overwrite: bool,
        at: OffsetDateTime,
    ) -> Result<EnrollOutcome, StoreError> {
        let tags = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
        let mut tx = self.pool.begin().await?;
        let current: Option<Option<i64>> = sqlx::query_scalar("SELECT account_id FROM machines WHERE id = $1 FOR UPDATE")
            .bind(machine.0)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound(format!("machine {}", machine.0)));
        };
        if current.is_some() && !overwrite {
            return Ok(EnrollOutcome::AlreadyEnrolled);
        }
        sqlx::query(
            "UPDATE machines SET account_id = $1, display_name = COALESCE($2, display_name), tags = $3::jsonb, enrolled_at = $4 WHERE id = $5",
        )
        .bind(account.0)
        .bind(storable_opt(name))
        .bind(storable_json(&tags))
        .bind(at)
        .bind(machine.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(EnrollOutcome::Enrolled)
    }

    async fn list_enroll_keys(&self, account: AccountKey) -> Result<Vec<EnrollKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT prefix, created_at, revoked_at FROM enroll_keys WHERE account_id = $1 ORDER BY id")
            .bind(account.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EnrollKeyRecord {
                    prefix: row.try_get("prefix")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn revoke_enroll_key(&self, account: AccountKey, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE enroll_keys SET revoked_at = $1 WHERE account_id = $2 AND prefix = $3 AND revoked_at IS NULL")
                .bind(at)
                .bind(account.0)
                .bind(storable(prefix))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_api_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (key_hash, prefix, account_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(storable(key_hash))
            .bind(storable(prefix))
            .bind(account.0)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{API_KEY_SELECT} WHERE k.key_hash = $1")))
            .bind(storable(key_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(api_key_from_row).transpose()?)
    }

    async fn list_api_keys(&self, account: Option<AccountKey>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{API_KEY_SELECT} WHERE ($1 IS NULL OR k.account_id = $1) ORDER BY k.id")))
            .bind(account.map(|a| a.0))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(api_key_from_row).collect::<Result<_, _>>()?)
    }

    async fn revoke_api_key(&self, prefix: &str, account: Option<AccountKey>, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL AND ($3 IS NULL OR account_id = $4)",
        )
        .bind(at)
        .bind(storable(prefix))
        .bind(account.map(|a| a.0))
        .bind(account.map(|a| a.0))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE prefix = $2")
            .bind(at)
            .bind(storable(prefix))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_admin_token(&self, token_hash: &str, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_tokens (token_hash, prefix, created_at) VALUES ($1, $2, $3)")
            .bind(storable(token_hash))
            .bind(storable(prefix))
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn admin_token_exists(&self, token_hash: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(storable(token_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }
}
