//! SQLite's [`SignalStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::signals::{RecentReport, ReportQuery, ReportSummary, SignalStore, ValueReports};

#[async_trait]
impl SignalStore for SqliteStore {
    async fn insert_signals(&self, signals: &[NewSignal]) -> Result<InsertOutcome, StoreError> {
        if signals.is_empty() {
            return Ok(InsertOutcome::default());
        }
        self.signals.insert(&self.writer, SignalRow::batch(signals)).await
    }

    async fn list_signals(&self, filter: &SignalFilter) -> Result<Vec<StoredSignal>, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT s.id, m.machine_id AS login, s.agent, s.scope, s.value, s.scenario, s.scenario_hash, s.scenario_version, \
             s.scenario_trust, s.message, s.alert_uuid, s.start_at, s.stop_at, s.received_at, s.origin_ip, s.origin_prefix, \
             s.origin_asn, s.as_number, s.as_name, s.country, s.extra \
             FROM signals s JOIN machines m ON m.id = s.machine_id WHERE s.id > ",
        );
        builder.push_bind(filter.after.unwrap_or(0));
        if let Some(login) = &filter.machine_id {
            builder.push(" AND m.machine_id = ").push_bind(storable(login));
        }
        if let Some(value) = &filter.value {
            builder.push(" AND s.value = ").push_bind(storable(value));
        }
        builder.push(" ORDER BY s.id LIMIT ").push_bind(i64::from(filter.limit));
        let rows = builder.build().fetch_all(&self.reader).await?;
        Ok(rows.iter().map(signal_from_row).collect::<Result<_, _>>()?)
    }

    async fn count_signals(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM signals").fetch_one(&self.reader).await?;
        Ok(count.max(0) as u64)
    }

    async fn prepare_signal_partitions(&self, _from: OffsetDateTime, _days_ahead: u32) -> Result<Vec<time::Date>, StoreError> {
        Ok(Vec::new())
    }

    async fn expire_signals(&self, before: OffsetDateTime, up_to_id: i64, batch: u32) -> Result<ExpireOutcome, StoreError> {
        let mut outcome = ExpireOutcome::default();
        let batch = i64::from(batch.max(1));
        // Short transactions, so signal inserts wait for one batch at a time, not the whole pass.
        loop {
            let done = sqlx::query(
                "DELETE FROM signals WHERE id IN \
                 (SELECT id FROM signals WHERE received_at < ? AND id <= ? ORDER BY id LIMIT ?)",
            )
            .bind(to_micros(before))
            .bind(up_to_id)
            .bind(batch)
            .execute(&self.writer)
            .await?;
            outcome.rows_deleted += done.rows_affected();
            if (done.rows_affected() as i64) < batch {
                return Ok(outcome);
            }
        }
    }

    async fn signal_partitions(&self) -> Result<Vec<time::Date>, StoreError> {
        Ok(Vec::new())
    }

    async fn signal_backlog(&self, after: i64, cap: u32) -> Result<SignalBacklog, StoreError> {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(received_at) FROM (SELECT received_at FROM signals WHERE id > ? ORDER BY id LIMIT ?)",
        )
        .bind(after)
        .bind(i64::from(cap))
        .fetch_one(&self.reader)
        .await?;
        Ok(SignalBacklog { count: count.max(0) as u64, oldest_received_at: oldest.map(from_micros) })
    }

    async fn report_summary(&self, query: &ReportQuery) -> Result<ReportSummary, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT count(*), count(DISTINCT CASE WHEN m.account_id IS NULL THEN -s.machine_id ELSE m.account_id END), \
             max(s.stop_at) FROM signals s JOIN machines m ON m.id = s.machine_id WHERE ",
        );
        push_report_filter(&mut builder, query);
        let (reports, reporters, last): (i64, i64, Option<i64>) = builder.build_query_as().fetch_one(&self.reader).await?;
        Ok(ReportSummary {
            reports: reports.max(0) as u64,
            reporters: reporters.max(0) as u64,
            last_reported_at: last.map(from_micros),
        })
    }

    async fn recent_reports(&self, query: &ReportQuery) -> Result<Vec<RecentReport>, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT s.id, s.machine_id, m.account_id, s.scenario, s.message, s.stop_at, s.origin_ip, s.extra \
             FROM signals s JOIN machines m ON m.id = s.machine_id WHERE ",
        );
        push_report_filter(&mut builder, query);
        builder.push(" ORDER BY s.stop_at DESC, s.id DESC LIMIT ").push_bind(i64::from(query.limit));
        builder.push(" OFFSET ").push_bind(i64::from(query.offset));
        let rows = builder.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| {
                Ok(RecentReport {
                    id: row.try_get("id")?,
                    machine: MachineKey(row.try_get("machine_id")?),
                    account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
                    scenario: row.try_get("scenario")?,
                    message: row.try_get("message")?,
                    stop_at: from_micros(row.try_get("stop_at")?),
                    origin_ip: decoded(row, "origin_ip", |text| text.parse().ok())?,
                    extra: row.try_get("extra")?,
                })
            })
            .collect()
    }

    async fn report_counts(&self, values: &[String], since: OffsetDateTime) -> Result<Vec<ValueReports>, StoreError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT value, count(*) AS reports, max(stop_at) AS last FROM signals WHERE stop_at >= ");
        builder.push_bind(to_micros(since)).push(" AND value IN (");
        let mut separated = builder.separated(", ");
        for value in values {
            separated.push_bind(storable(value));
        }
        builder.push(") GROUP BY value");
        let rows = builder.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| {
                Ok(ValueReports {
                    value: row.try_get("value")?,
                    reports: row.try_get::<i64, _>("reports")?.max(0) as u64,
                    last_reported_at: from_micros(row.try_get("last")?),
                })
            })
            .collect()
    }

    async fn reported_since(
        &self,
        machine: MachineKey,
        values: &[String],
        since: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        // Well under SQLite's 32766 parameters per statement.
        for chunk in values.chunks(1000) {
            let mut builder: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT DISTINCT value FROM signals INDEXED BY signals_machine_received WHERE machine_id = ");
            builder.push_bind(machine.0).push(" AND received_at >= ").push_bind(to_micros(since)).push(" AND value IN (");
            let mut separated = builder.separated(", ");
            for value in chunk {
                separated.push_bind(storable(value));
            }
            builder.push(")");
            let rows: Vec<String> = builder.build_query_scalar().fetch_all(&self.reader).await?;
            found.extend(rows);
        }
        found.sort();
        found.dedup();
        Ok(found)
    }
}

/// The `WHERE` conditions of a [`ReportQuery`].
fn push_report_filter(builder: &mut QueryBuilder<Sqlite>, query: &ReportQuery) {
    builder.push("s.value = ").push_bind(storable(&query.value));
    builder.push(" AND s.stop_at >= ").push_bind(to_micros(query.reported_since));
    if let Some(since) = query.received_since {
        builder.push(" AND s.received_at >= ").push_bind(to_micros(since));
    }
    if let Some(machine) = query.machine {
        builder.push(" AND s.machine_id = ").push_bind(machine.0);
    }
}
