//! PostgreSQL's [`StatsStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::stats::{Alert, StatsStore};

#[async_trait]
impl StatsStore for PgStore {
    async fn signal_counts_since(&self, since: OffsetDateTime) -> Result<Vec<(MachineKey, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT machine_id, COUNT(*) FROM signals WHERE received_at >= $1 GROUP BY machine_id ORDER BY machine_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(machine, n)| (MachineKey(machine), n as u64)).collect())
    }

    async fn signals_per_day(&self, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT floor(extract(epoch FROM received_at) / 86400)::BIGINT AS day, COUNT(*) FROM signals \
             WHERE received_at >= $1 GROUP BY day ORDER BY day",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(day, n)| DayCount { day, count: n as u64, other: 0 }).collect())
    }

    async fn list_changes_per_day(&self, list: &str, since: OffsetDateTime) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT floor(extract(epoch FROM at) / 86400)::BIGINT AS day, COUNT(*) FILTER (WHERE op = 'add'), \
             COUNT(*) FILTER (WHERE op = 'remove') FROM blocklist_changes WHERE list = $1 AND at >= $2 GROUP BY day ORDER BY day",
        )
        .bind(storable(list))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(day, adds, removes)| DayCount { day, count: adds as u64, other: removes as u64 }).collect())
    }

    async fn account_alerts(&self, account: AccountKey, since: OffsetDateTime, limit: u32) -> Result<Vec<Alert>, StoreError> {
        let rows: Vec<(String, String, String, OffsetDateTime)> = sqlx::query_as(
            "SELECT m.machine_id, s.value, s.scenario, s.received_at FROM machines m \
             JOIN signals s ON s.machine_id = m.id AND s.received_at >= $2 \
             WHERE m.account_id = $1 ORDER BY s.received_at DESC, s.id DESC LIMIT $3",
        )
        .bind(account.0)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(machine_id, value, scenario, received_at)| Alert { machine_id, value, scenario, received_at })
            .collect())
    }

    async fn add_lookup_usage(&self, usage: &[(AccountKey, i64, u64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (account, day, lookups) in usage {
            sqlx::query(
                "INSERT INTO lookup_usage (account_id, day, lookups) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, day) DO UPDATE SET lookups = lookup_usage.lookups + excluded.lookups",
            )
            .bind(account.0)
            .bind(*day)
            .bind(i64::try_from(*lookups).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn lookup_usage_per_day(&self, account: AccountKey, since_day: i64) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT day, lookups FROM lookup_usage WHERE account_id = $1 AND day >= $2 ORDER BY day")
                .bind(account.0)
                .bind(since_day)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(day, n)| DayCount { day, count: n as u64, other: 0 }).collect())
    }

    async fn expire_metrics(&self, before: OffsetDateTime, batch: u32) -> Result<u64, StoreError> {
        let batch = i64::from(batch.max(1));
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM machine_metrics WHERE id IN \
                 (SELECT id FROM machine_metrics WHERE received_at < $1 ORDER BY id LIMIT $2)",
            )
            .bind(before)
            .bind(batch)
            .execute(&self.pool)
            .await?;
            deleted += done.rows_affected();
            if (done.rows_affected() as i64) < batch {
                return Ok(deleted);
            }
        }
    }
}
