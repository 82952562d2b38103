//! SQLite's [`FeedStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::config::Secret;
use crate::store::feeds::{AttemptOutcome, Feed, FeedAttempt, FeedDefinition, FeedState, FeedStore};

fn feed_from_row(row: &SqliteRow) -> Result<Feed, sqlx::Error> {
    let at = |column: &str| -> Result<Option<OffsetDateTime>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(from_micros))
    };
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
        created_at: from_micros(row.try_get("created_at")?),
        state: FeedState {
            etag: row.try_get("etag")?,
            last_modified: row.try_get("last_modified")?,
            last_attempt_at: at("last_attempt_at")?,
            last_success_at: at("last_success_at")?,
            last_loaded_at: at("last_loaded_at")?,
            last_error: row.try_get("last_error")?,
            entries: row.try_get("entry_count")?,
            failures: row.try_get("failures")?,
        },
    })
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn create_feed(&self, list: &CustomList, feed: &FeedDefinition, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO custom_lists (name, kind, description, created_at, visibility) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(storable(&list.name).as_ref())
        .bind(&list.kind)
        .bind(storable(&list.description).as_ref())
        .bind(to_micros(list.created_at))
        .bind(&list.visibility)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("list {}", list.name)));
        }
        sqlx::query(
            "INSERT INTO feeds (name, url, format, api_key, every_secs, max_bytes, max_entries, min_count, lifetime_secs, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(to_micros(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn feeds(&self) -> Result<Vec<Feed>, StoreError> {
        let rows = sqlx::query("SELECT * FROM feeds ORDER BY name").fetch_all(&self.reader).await?;
        Ok(rows.iter().map(feed_from_row).collect::<Result<_, _>>()?)
    }

    async fn claim_feed(&self, name: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool, StoreError> {
        let claimed =
            sqlx::query("UPDATE feeds SET claimed_until = ? WHERE name = ? AND (claimed_until IS NULL OR claimed_until <= ?)")
                .bind(to_micros(until))
                .bind(storable(name).as_ref())
                .bind(to_micros(now))
                .execute(&self.writer)
                .await?;
        Ok(claimed.rows_affected() > 0)
    }

    async fn record_feed_attempt(&self, name: &str, attempt: &FeedAttempt) -> Result<bool, StoreError> {
        let at = to_micros(attempt.at);
        let name = storable(name);
        let done = match &attempt.outcome {
            AttemptOutcome::Loaded { etag, last_modified, entries } => {
                sqlx::query(
                    "UPDATE feeds SET etag = ?, last_modified = ?, last_attempt_at = ?, last_success_at = ?, last_loaded_at = ?, \
                     last_error = NULL, entry_count = ?, failures = 0, claimed_until = NULL WHERE name = ?",
                )
                .bind(storable_opt(etag.as_deref()))
                .bind(storable_opt(last_modified.as_deref()))
                .bind(at)
                .bind(at)
                .bind(at)
                .bind(entries)
                .bind(name.as_ref())
                .execute(&self.writer)
                .await?
            }
            AttemptOutcome::NotModified => {
                sqlx::query(
                    "UPDATE feeds SET last_attempt_at = ?, last_success_at = ?, last_error = NULL, failures = 0, claimed_until = NULL \
                     WHERE name = ?",
                )
                .bind(at)
                .bind(at)
                .bind(name.as_ref())
                .execute(&self.writer)
                .await?
            }
            AttemptOutcome::Failed { error } => {
                sqlx::query(
                    "UPDATE feeds SET last_attempt_at = ?, last_error = ?, failures = failures + 1, claimed_until = NULL WHERE name = ?",
                )
                .bind(at)
                .bind(storable(error).as_ref())
                .bind(name.as_ref())
                .execute(&self.writer)
                .await?
            }
        };
        Ok(done.rows_affected() > 0)
    }
}
