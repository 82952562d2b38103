//! PostgreSQL's [`AccountStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::accounts::{ADMIN_TOKENS, API_KEYS, AccountStore, ENROLL_KEYS, KeyTable};

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
        self.insert_key(ENROLL_KEYS, key_hash, prefix, Some(account), at).await
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

    async fn list_enroll_keys(&self, account: Option<AccountKey>) -> Result<Vec<EnrollKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.prefix, a.name, k.created_at, k.revoked_at, k.uses, k.last_used_at FROM enroll_keys k \
             JOIN accounts a ON a.id = k.account_id WHERE ($1::BIGINT IS NULL OR k.account_id = $1) ORDER BY k.id",
        )
        .bind(account.map(|a| a.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EnrollKeyRecord {
                    prefix: row.try_get("prefix")?,
                    account_name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    uses: row.try_get::<i64, _>("uses")?.max(0) as u64,
                    last_used_at: row.try_get("last_used_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn revoke_enroll_key(&self, account: Option<AccountKey>, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.revoke_key(ENROLL_KEYS, prefix, account, at).await
    }

    async fn touch_enroll_key(&self, key_hash: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE enroll_keys SET uses = uses + 1, last_used_at = $1 WHERE key_hash = $2")
            .bind(at)
            .bind(storable(key_hash))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_api_key(
        &self,
        account: AccountKey,
        key_hash: &str,
        prefix: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.insert_key(API_KEYS, key_hash, prefix, Some(account), at).await
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
        self.revoke_key(API_KEYS, prefix, account, at).await
    }

    async fn touch_api_key(&self, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE prefix = $2")
            .bind(at)
            .bind(storable(prefix))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn api_key_stream_seq(&self, prefix: &str) -> Result<Option<i64>, StoreError> {
        let seq: Option<Option<i64>> = sqlx::query_scalar("SELECT stream_seq FROM api_keys WHERE prefix = $1")
            .bind(storable(prefix))
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.flatten())
    }

    async fn set_api_key_stream_seq(&self, prefix: &str, seq: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET stream_seq = $1 WHERE prefix = $2")
            .bind(seq)
            .bind(storable(prefix))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_admin_token(&self, token_hash: &str, prefix: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        self.insert_key(ADMIN_TOKENS, token_hash, prefix, None, at).await
    }

    async fn admin_token_exists(&self, token_hash: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(storable(token_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }
}

impl PgStore {
    /// Stores a credential's hash (an enrollment key, an API key or an admin token): the one
    /// insert of all three.
    async fn insert_key(
        &self,
        keys: KeyTable,
        hash: &str,
        prefix: &str,
        account: Option<AccountKey>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut query =
            sqlx::query(AssertSqlSafe(keys.insert_sql(|i| format!("${i}")))).bind(storable(hash)).bind(storable(prefix));
        if keys.owned {
            query = query.bind(account.map(|a| a.0));
        }
        query.bind(at).execute(&self.pool).await?;
        Ok(())
    }

    /// Revokes the live keys of an owned table with this prefix, only within `account` when
    /// given: the one revocation of enrollment and API keys. Whether one was revoked.
    async fn revoke_key(
        &self,
        keys: KeyTable,
        prefix: &str,
        account: Option<AccountKey>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(AssertSqlSafe(keys.revoke_sql(|i| format!("${i}"))))
            .bind(at)
            .bind(storable(prefix))
            .bind(account.map(|a| a.0))
            .bind(account.map(|a| a.0))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
