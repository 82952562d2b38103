//! SQLite's [`ListStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::lists::ListStore;

#[async_trait]
impl ListStore for SqliteStore {
    async fn list_entries(&self, list: &str) -> Result<Vec<ListEntry>, StoreError> {
        use futures::TryStreamExt;
        // Converted row by row as they arrive: a large list's raw rows are never all held at once.
        let mut rows = sqlx::query("SELECT * FROM blocklist_entries WHERE list = ? ORDER BY seq").bind(list).fetch(&self.reader);
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            entries.push(entry_from_row(&row)?);
        }
        Ok(entries)
    }

    async fn list_entry(&self, list: &str, value: IpNet) -> Result<Option<ListEntry>, StoreError> {
        let row = sqlx::query("SELECT * FROM blocklist_entries WHERE list = ? AND value = ?")
            .bind(list)
            .bind(display_target(value))
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(entry_from_row).transpose()?)
    }

    async fn list_changes(&self, list: &str, after: i64, limit: u32) -> Result<Vec<ListChange>, StoreError> {
        let mut rows = sqlx::query("SELECT * FROM blocklist_changes WHERE list = ? AND seq > ? ORDER BY seq LIMIT ?")
            .bind(list)
            .bind(after)
            .bind(i64::from(limit))
            .fetch(&self.reader);
        // Converted row by row as they arrive, so a batch's raw rows are never all held at once.
        let mut changes = Vec::new();
        while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await? {
            changes.push({
                let row = &row;
                ListChange {
                    seq: row.try_get("seq")?,
                    op: decoded(row, "op", ChangeOp::from_stored)?,
                    entry: ListEntry {
                        list: row.try_get("list")?,
                        value: decoded(row, "value", parse_target)?,
                        scope: decoded(row, "scope", Scope::from_stored)?,
                        scenario: row.try_get("scenario")?,
                        remediation: decoded(row, "remediation", Remediation::from_stored)?,
                        rule: decoded(row, "rule", Rule::from_stored)?,
                        listed_at: from_micros(row.try_get("at")?),
                        expires_at: from_micros(row.try_get("expires_at")?),
                        seq: row.try_get("seq")?,
                    },
                    reason: row.try_get("reason")?,
                    at: from_micros(row.try_get("at")?),
                }
            });
        }
        Ok(changes)
    }

    async fn list_seq(&self, list: &str) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM blocklist_changes WHERE list = ?")
            .bind(list)
            .fetch_one(&self.reader)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn list_entries_page(&self, list: &str, after: &str, limit: u32) -> Result<Vec<ListEntry>, StoreError> {
        use futures::TryStreamExt;
        // The primary key (list, value) serves both the filter and the order.
        let mut rows = sqlx::query("SELECT * FROM blocklist_entries WHERE list = ? AND value > ? ORDER BY value LIMIT ?")
            .bind(list)
            .bind(after)
            .bind(i64::from(limit))
            .fetch(&self.reader);
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            entries.push(entry_from_row(&row)?);
        }
        Ok(entries)
    }

    async fn create_custom_list(&self, list: &CustomList) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO custom_lists (name, kind, description, created_at, visibility) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(storable(&list.name).as_ref())
        .bind(&list.kind)
        .bind(storable(&list.description).as_ref())
        .bind(to_micros(list.created_at))
        .bind(&list.visibility)
        .execute(&self.writer)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("list {}", list.name)));
        }
        Ok(())
    }

    async fn custom_lists(&self) -> Result<Vec<CustomList>, StoreError> {
        let rows = sqlx::query("SELECT name, kind, description, created_at, visibility FROM custom_lists ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CustomList {
                    name: row.try_get("name")?,
                    kind: row.try_get("kind")?,
                    description: row.try_get("description")?,
                    created_at: from_micros(row.try_get("created_at")?),
                    visibility: row.try_get("visibility")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn set_custom_list_visibility(&self, name: &str, visibility: &str) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE custom_lists SET visibility = ? WHERE name = ?")
            .bind(visibility)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn delete_custom_list(&self, name: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let values: Vec<String> =
            sqlx::query_scalar("SELECT value FROM blocklist_entries WHERE list = ?").bind(name).fetch_all(&mut *tx).await?;
        let ops: Vec<ListOp> = values
            .iter()
            .map(|text| {
                let value = parse_target(text).ok_or_else(|| StoreError::corrupt("value", text))?;
                Ok(ListOp::Remove { list: name.to_string(), value, reason: "list deleted".into() })
            })
            .collect::<Result<_, StoreError>>()?;
        apply_list_ops(&mut tx, &ops, to_micros(at)).await?;
        let deleted = sqlx::query("DELETE FROM custom_lists WHERE name = ?").bind(name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn apply_list_ops(&self, ops: &[ListOp], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        apply_list_ops(&mut tx, ops, to_micros(at)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_canary(&self, value: &str, note: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO canaries (value, note, created_at) VALUES (?, ?, ?)")
            .bind(value)
            .bind(note)
            .bind(to_micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn remove_canary(&self, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM canaries WHERE value = ?").bind(value).execute(&self.writer).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_canaries(&self) -> Result<Vec<Canary>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String, i64)>("SELECT value, note, created_at FROM canaries ORDER BY value")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|(value, note, at)| Canary { value, note, created_at: from_micros(at) }).collect())
    }

    async fn add_allowlist(
        &self,
        values: &[String],
        category: &str,
        source: &str,
        at: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut added = 0;
        for value in values {
            added += sqlx::query(
                "INSERT INTO allowlist_entries (value, category, source, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(value)
            .bind(category)
            .bind(source)
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_allowlist(&self, value: Option<&str>, source: Option<&str>) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM allowlist_entries WHERE (? IS NULL OR value = ?) AND (? IS NULL OR source = ?)")
            .bind(value)
            .bind(value)
            .bind(source)
            .bind(source)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() as usize)
    }

    async fn list_allowlist(&self) -> Result<Vec<AllowlistEntry>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT value, category, source, created_at FROM allowlist_entries ORDER BY source, value",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(value, category, source, at)| AllowlistEntry { value, category, source, created_at: from_micros(at) })
            .collect())
    }
}
