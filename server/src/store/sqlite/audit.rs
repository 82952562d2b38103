//! SQLite's [`AuditStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::audit::{AuditEntry, AuditFilter, AuditStore, NewAuditEntry};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, target, detail, client, status) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(to_micros(entry.at))
        .bind(storable(&entry.actor))
        .bind(storable(&entry.action))
        .bind(storable(&entry.target))
        .bind(storable_json(&entry.detail))
        .bind(storable_opt(entry.client.as_deref()))
        .bind(entry.status.map(i64::from))
        .fetch_one(&self.writer)
        .await?)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail, client, status FROM audit_log \
             WHERE (? IS NULL OR id < ?) AND (? IS NULL OR actor = ?) AND (? IS NULL OR action = ?) AND (? IS NULL OR at >= ?) \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(filter.before)
        .bind(filter.before)
        .bind(storable_opt(filter.actor.as_deref()))
        .bind(storable_opt(filter.actor.as_deref()))
        .bind(storable_opt(filter.action.as_deref()))
        .bind(storable_opt(filter.action.as_deref()))
        .bind(filter.since.map(to_micros))
        .bind(filter.since.map(to_micros))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    entry: NewAuditEntry {
                        at: from_micros(row.try_get("at")?),
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        target: row.try_get("target")?,
                        detail: row.try_get("detail")?,
                        client: row.try_get("client")?,
                        status: row.try_get::<Option<i64>, _>("status")?.and_then(|s| u16::try_from(s).ok()),
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
