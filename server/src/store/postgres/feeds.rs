//! PostgreSQL's [`FeedStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::config::Secret;
use crate::store::feeds::{AttemptOutcome, Feed, FeedAttempt, FeedDefinition, FeedState, FeedStore};

fn feed_from_row(row: &PgRow) -> Result<Feed, sqlx::Error> {
    Ok(Feed {
        definition: FeedDefinition {
            name: row.try_get("name")?,
            url: row.try_get("url")?,
            format: row.try_get("format")?,
            api_key: row.try_get::<Option<String>, _>("api_key")?.map(Secret::new),
            every_secs: row.try_get("every_secs")?,
            max_bytes: row.try_get("max_bytes")?,
            max_entries: row.try_get("max_entries")?,
            min_count: row.try_get("min_count")?,
            lifetime_secs: row.try_get("lifetime_secs")?,
        },
        created_at: row.try_get("created_at")?,
        state: FeedState {
            etag: row.try_get("etag")?,
            last_modified: row.try_get("last_modified")?,
            last_attempt_at: row.try_get("last_attempt_at")?,
            last_success_at: row.try_get("last_success_at")?,
            last_loaded_at: row.try_get("last_loaded_at")?,
            last_error: row.try_get("last_error")?,
            entries: row.try_get("entry_count")?,
            failures: row.try_get("failures")?,
        },
    })
}

#[async_trait]
impl FeedStore for PgStore {
    async fn create_feed(&self, list: &CustomList, feed: &FeedDefinition, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO custom_lists (name, kind, description, created_at, visibility) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(storable(&list.name).as_ref())
        .bind(&list.kind)
        .bind(storable(&list.description).as_ref())
        .bind(list.created_at)
        .bind(&list.visibility)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("list {}", list.name)));
        }
        sqlx::query(
            "INSERT INTO feeds (name, url, format, api_key, every_secs, max_bytes, max_entries, min_count, lifetime_secs, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(storable(&feed.name).as_ref())
        .bind(storable(&feed.url).as_ref())
        .bind(&feed.format)
        .bind(feed.api_key.as_ref().map(|key| storable(key.expose()).into_owned()))
        .bind(feed.every_secs)
        .bind(feed.max_bytes)
        .bind(feed.max_entries)
        .bind(feed.min_count)
        .bind(feed.lifetime_secs)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn feeds(&self) -> Result<Vec<Feed>, StoreError> {
        let rows = sqlx::query("SELECT * FROM feeds ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(feed_from_row).collect::<Result<_, _>>()?)
    }

    async fn claim_feed(&self, name: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool, StoreError> {
        let claimed =
            sqlx::query("UPDATE feeds SET claimed_until = $1 WHERE name = $2 AND (claimed_until IS NULL OR claimed_until <= $3)")
                .bind(until)
                .bind(storable(name).as_ref())
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(claimed.rows_affected() > 0)
    }

    async fn record_feed_attempt(&self, name: &str, attempt: &FeedAttempt) -> Result<bool, StoreError> {
        let at = attempt.at;
        let name = storable(name);
        let done = match &attempt.outcome {
            AttemptOutcome::Loaded { etag, last_modified, entries } => {
                sqlx::query(
                    "UPDATE feeds SET etag = $1, last_modified = $2, last_attempt_at = $3, last_success_at = $4, last_loaded_at = $5, \
                     last_error = NULL, entry_count = $6, failures = 0, claimed_until = NULL WHERE name = $7",
                )
                .bind(storable_opt(etag.as_deref()))
                .bind(storable_opt(last_modified.as_deref()))
                .bind(at)
                .bind(at)
                .bind(at)
                .bind(entries)
                .bind(name.as_ref())
                .execute(&self.pool)
                .await?
            }
            AttemptOutcome::NotModified => {
                sqlx::query(
                    "UPDATE feeds SET last_attempt_at = $1, last_success_at = $2, last_error = NULL, failures = 0, claimed_until = NULL \
                     WHERE name = $3",
                )
                .bind(at)
                .bind(at)
                .bind(name.as_ref())
                .execute(&self.pool)
                .await?
            }
            AttemptOutcome::Failed { error } => {
                sqlx::query(
                    "UPDATE feeds SET last_attempt_at = $1, last_error = $2, failures = failures + 1, claimed_until = NULL WHERE name = $3",
                )
                .bind(at)
                .bind(storable(error).as_ref())
                .bind(name.as_ref())
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() > 0)
    }
}
