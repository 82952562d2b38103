//! PostgreSQL's [`AuditStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::audit::{AuditEntry, AuditFilter, AuditStore, NewAuditEntry};

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, target, detail, client, status) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(entry.at)
        .bind(storable(&entry.actor))
        .bind(storable(&entry.action))
        .bind(storable(&entry.target))
        .bind(storable_json(&entry.detail))
        .bind(storable_opt(entry.client.as_deref()))
        .bind(entry.status.map(i32::from))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail, client, status FROM audit_log \
             WHERE ($1::BIGINT IS NULL OR id < $1) AND ($2::TEXT IS NULL OR actor = $2) AND ($3::TEXT IS NULL OR action = $3) \
             AND ($4::TIMESTAMPTZ IS NULL OR at >= $4) ORDER BY id DESC LIMIT $5",
        )
        .bind(filter.before)
        .bind(storable_opt(filter.actor.as_deref()))
        .bind(storable_opt(filter.action.as_deref()))
        .bind(filter.since)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    entry: NewAuditEntry {
                        at: row.try_get("at")?,
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        target: row.try_get("target")?,
                        detail: row.try_get("detail")?,
                        client: row.try_get("client")?,
                        status: row.try_get::<Option<i32>, _>("status")?.and_then(|s| u16::try_from(s).ok()),
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
