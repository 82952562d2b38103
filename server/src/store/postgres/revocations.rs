//! PostgreSQL's [`RevocationStore`]. Row conversions and helpers shared with the other capabilities
//! stay in the backend's root module.

use super::*;
use crate::store::revocations::{
    AccountDeletion, AdminTokenRecord, GENERATION_WINDOW, Generation, Revocation, RevocationKind, RevocationStore,
};

/// Appends one revocation inside `tx`.
async fn append(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    kind: RevocationKind,
    subject: &str,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO revocations (kind, subject, at) VALUES ($1, $2, $3)")
        .bind(kind.as_str())
        .bind(storable(subject))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl PgStore {
    /// Sets `set` (whose `$1` is `at` and `$3` is `extra`) on the live machine with this login
    /// and appends a machine revocation in the same transaction; `NotFound` when no live machine
    /// has the login.
    async fn revoke_machine(
        &self,
        machine_id: &str,
        set: &str,
        extra: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<MachineKey, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!("UPDATE machines SET {set} WHERE machine_id = $2 AND deleted_at IS NULL RETURNING id");
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).bind(at).bind(storable(machine_id));
        if let Some(extra) = extra {
            query = query.bind(storable(extra));
        }
        let Some(id) = query.fetch_optional(&mut *tx).await? else {
            return Err(StoreError::NotFound(format!("machine {machine_id:?}")));
        };
        append(&mut tx, RevocationKind::Machine, &id.to_string(), at).await?;
        tx.commit().await?;
        Ok(MachineKey(id))
    }
}

#[async_trait]
impl RevocationStore for PgStore {
    async fn set_machine_disabled(&self, machine_id: &str, disabled: bool, at: OffsetDateTime) -> Result<MachineKey, StoreError> {
        let set = if disabled { "disabled_at = COALESCE(disabled_at, $1)" } else { "disabled_at = NULL" };
        self.revoke_machine(machine_id, set, None, at).await
    }

    async fn delete_machine(&self, machine_id: &str, at: OffsetDateTime) -> Result<MachineKey, StoreError> {
        self.revoke_machine(machine_id, "deleted_at = $1, disabled_at = COALESCE(disabled_at, $1)", None, at).await
    }

    async fn set_machine_password(
        &self,
        machine_id: &str,
        password_hash: &str,
        at: OffsetDateTime,
    ) -> Result<MachineKey, StoreError> {
        self.revoke_machine(machine_id, "password_hash = $3", Some(password_hash), at).await
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        let rows = sqlx::query("SELECT prefix, created_at, last_used_at, revoked_at FROM admin_tokens ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AdminTokenRecord {
                    prefix: row.try_get("prefix")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    async fn revoke_admin_token(&self, prefix: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(storable(prefix))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append(&mut tx, RevocationKind::AdminToken, prefix, at).await?;
        append(&mut tx, RevocationKind::Sessions, "operator", at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn touch_admin_token(&self, token_hash: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE admin_tokens SET last_used_at = $1 WHERE token_hash = $2")
            .bind(at)
            .bind(storable(token_hash))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        append(&mut tx, revocation.kind, &revocation.subject, revocation.at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revocation_generation(&self) -> Result<Generation, StoreError> {
        let last_id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM revocations").fetch_one(&self.pool).await?;
        let last_id = last_id.unwrap_or(0);
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM revocations WHERE id > $1")
            .bind(last_id - GENERATION_WINDOW)
            .fetch_one(&self.pool)
            .await?;
        Ok(Generation { count, last_id })
    }

    async fn revocations_since(&self, since: OffsetDateTime) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query("SELECT kind, subject, at FROM revocations WHERE at >= $1 ORDER BY id")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                Ok(Revocation { kind: kind.parse()?, subject: row.try_get("subject")?, at: row.try_get("at")? })
            })
            .collect()
    }

    async fn delete_account(&self, account: AccountKey, at: OffsetDateTime) -> Result<AccountDeletion, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locked, so a concurrent enrollment or key creation waits for the outcome.
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account.0)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(format!("account {}", account.0)));
        }
        let live_keys: Vec<String> =
            sqlx::query_scalar("SELECT prefix FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL")
                .bind(account.0)
                .fetch_all(&mut *tx)
                .await?;
        let detached =
            sqlx::query("UPDATE machines SET account_id = NULL WHERE account_id = $1").bind(account.0).execute(&mut *tx).await?;
        let api_keys = sqlx::query("DELETE FROM api_keys WHERE account_id = $1").bind(account.0).execute(&mut *tx).await?;
        let enroll_keys = sqlx::query("DELETE FROM enroll_keys WHERE account_id = $1").bind(account.0).execute(&mut *tx).await?;
        for statement in [
            "DELETE FROM lookup_usage WHERE account_id = $1",
            "DELETE FROM pool_policies WHERE account_id = $1",
            "DELETE FROM pool_shares WHERE owner_id = $1 OR partner_id = $1",
            "DELETE FROM accounts WHERE id = $1",
        ] {
            sqlx::query(statement).bind(account.0).execute(&mut *tx).await?;
        }
        for prefix in &live_keys {
            append(&mut tx, RevocationKind::ApiKey, prefix, at).await?;
        }
        append(&mut tx, RevocationKind::Sessions, &format!("account:{}", account.0), at).await?;
        tx.commit().await?;
        Ok(AccountDeletion {
            machines_detached: detached.rows_affected(),
            api_keys: api_keys.rows_affected(),
            enroll_keys: enroll_keys.rows_affected(),
        })
    }

    async fn expire_revocations(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revocations WHERE at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn disabled_machines(&self) -> Result<Vec<MachineKey>, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM machines WHERE disabled_at IS NOT NULL ORDER BY id").fetch_all(&self.pool).await?;
        Ok(ids.into_iter().map(MachineKey).collect())
    }
}
