//! PostgreSQL's [`SignalStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::signals::{RecentReport, ReportQuery, ReportSummary, SignalStore, ValueReports};

#[async_trait]
impl SignalStore for PgStore {
    async fn insert_signals(&self, signals: &[NewSignal]) -> Result<InsertOutcome, StoreError> {
        if signals.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let n = signals.len();
        let mut machine = Vec::with_capacity(n);
        let mut dedup = Vec::with_capacity(n);
        let mut scope = Vec::with_capacity(n);
        let mut value = Vec::with_capacity(n);
        let mut scenario = Vec::with_capacity(n);
        let mut scenario_hash = Vec::with_capacity(n);
        let mut scenario_version = Vec::with_capacity(n);
        let mut scenario_trust = Vec::with_capacity(n);
        let mut message = Vec::with_capacity(n);
        let mut agent = Vec::with_capacity(n);
        let mut alert_uuid = Vec::with_capacity(n);
        let mut start_at = Vec::with_capacity(n);
        let mut stop_at = Vec::with_capacity(n);
        let mut received_at = Vec::with_capacity(n);
        let mut origin_ip = Vec::with_capacity(n);
        let mut origin_prefix = Vec::with_capacity(n);
        let mut origin_asn = Vec::with_capacity(n);
        let mut as_number = Vec::with_capacity(n);
        let mut as_name = Vec::with_capacity(n);
        let mut country = Vec::with_capacity(n);
        let mut extra = Vec::with_capacity(n);
        for signal in signals {
            let report = &signal.report;
            machine.push(signal.machine.0);
            dedup.push(report.dedup_key.as_str());
            scope.push(report.scope.as_str());
            value.push(report.value_text());
            scenario.push(storable(&report.scenario));
            scenario_hash.push(storable(&report.scenario_hash));
            scenario_version.push(storable(&report.scenario_version));
            scenario_trust.push(storable(&report.scenario_trust));
            message.push(storable(&report.message));
            agent.push(storable_opt(report.agent.as_deref()));
            alert_uuid.push(storable_opt(report.alert_uuid.as_deref()));
            start_at.push(report.start_at);
            stop_at.push(report.stop_at);
            received_at.push(signal.received_at);
            origin_ip.push(signal.origin.ip.to_string());
            origin_prefix.push(signal.origin.prefix.to_string());
            origin_asn.push(signal.origin.asn.map(i64::from));
            as_number.push(signal.enrichment.as_number.map(i64::from));
            as_name.push(storable_opt(signal.enrichment.as_name.as_deref()));
            country.push(storable_opt(signal.enrichment.country.as_deref()));
            extra.push(storable_json(&report.extra));
        }
        let mut days: Vec<time::Date> =
            received_at.iter().map(|at: &OffsetDateTime| at.to_offset(time::UtcOffset::UTC).date()).collect();
        days.sort_unstable();
        days.dedup();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
        // Each day's partition exists before its rows arrive (normally made ahead by maintenance).
        sqlx::query("SELECT palisade_ensure_signal_partition(d) FROM UNNEST($1::date[]) AS d")
            .bind(&days)
            .execute(&mut *tx)
            .await?;
        // Redeliveries are skipped without a unique constraint (a partitioned table cannot have
        // one without the partition key): writers are serialised by the lock above, so a row is
        // new when no stored signal of its machine has its dedup key, and DISTINCT ON keeps the
        // first of repeats within the batch. A redelivery carries the original's stop_at, and the
        // original was received no earlier than stop_at minus the accepted clock skew (at most 7
        // days, `Config::validate`), which lets the lookup skip older partitions.
        // ORDER BY the array position: ids follow the batch order, which UNNEST alone does not promise.
        let result = sqlx::query(
            "INSERT INTO signals (machine_id, dedup_key, scope, value, scenario, scenario_hash, scenario_version, \
             scenario_trust, message, agent, alert_uuid, start_at, stop_at, received_at, origin_ip, origin_prefix, \
             origin_asn, as_number, as_name, country, extra) \
             SELECT m, d, sc, v, sn, sh, sv, st, msg, ag, au, sa, so, ra, oi, op, oa, an, am, co, ex::jsonb \
             FROM (SELECT DISTINCT ON (m, d) * \
                   FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                               $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], \
                               $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::text[], $20::text[], $21::text[]) \
                     WITH ORDINALITY AS t(m, d, sc, v, sn, sh, sv, st, msg, ag, au, sa, so, ra, oi, op, oa, an, am, co, ex, n) \
                   ORDER BY m, d, n) AS u \
             WHERE NOT EXISTS (SELECT 1 FROM signals s WHERE s.machine_id = u.m AND s.dedup_key = u.d \
                               AND s.received_at >= u.so - interval '7 days') \
             ORDER BY n",
        )
        .bind(machine)
        .bind(dedup)
        .bind(scope)
        .bind(value)
        .bind(scenario)
        .bind(scenario_hash)
        .bind(scenario_version)
        .bind(scenario_trust)
        .bind(message)
        .bind(agent)
        .bind(alert_uuid)
        .bind(start_at)
        .bind(stop_at)
        .bind(&received_at)
        .bind(origin_ip)
        .bind(origin_prefix)
        .bind(origin_asn)
        .bind(as_number)
        .bind(as_name)
        .bind(country)
        .bind(extra)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let inserted = result.rows_affected() as usize;
        Ok(InsertOutcome { inserted, duplicates: n - inserted })
    }

    async fn list_signals(&self, filter: &SignalFilter) -> Result<Vec<StoredSignal>, StoreError> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT s.id, m.machine_id AS login, s.agent, s.scope, s.value, s.scenario, s.scenario_hash, s.scenario_version, \
             s.scenario_trust, s.message, s.alert_uuid, s.start_at, s.stop_at, s.received_at, s.origin_ip, s.origin_prefix, \
             s.origin_asn, s.as_number, s.as_name, s.country, s.extra::text AS extra \
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
        let rows = builder.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(signal_from_row).collect::<Result<_, _>>()?)
    }

    async fn count_signals(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM signals").fetch_one(&self.pool).await?;
        Ok(count.max(0) as u64)
    }

    async fn prepare_signal_partitions(&self, from: OffsetDateTime, days_ahead: u32) -> Result<Vec<time::Date>, StoreError> {
        let first = from.to_offset(time::UtcOffset::UTC).date();
        let days: Vec<time::Date> =
            (0..=i64::from(days_ahead)).filter_map(|n| first.checked_add(time::Duration::days(n))).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
        let created: Vec<(time::Date, bool)> =
            sqlx::query_as("SELECT d, palisade_ensure_signal_partition(d) FROM UNNEST($1::date[]) AS d ORDER BY d")
                .bind(&days)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(created.into_iter().filter(|(_, new)| *new).map(|(day, _)| day).collect())
    }

    async fn expire_signals(&self, before: OffsetDateTime, up_to_id: i64, _batch: u32) -> Result<ExpireOutcome, StoreError> {
        let mut outcome = ExpireOutcome::default();
        for day in self.signal_partitions().await? {
            let Some(end) = day.next_day().map(|d| d.midnight().assume_utc()) else { continue };
            if end > before {
                break;
            }
            let name = partition_name(day);
            // One partition per transaction, under the writer lock, so inserts that create
            // partitions never race with the drop, and readers wait only for one DROP.
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
            let unprocessed: bool =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT EXISTS (SELECT 1 FROM \"{name}\" WHERE id > $1)")))
                    .bind(up_to_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if unprocessed {
                // The consensus worker has not read it yet; newer partitions cannot be older.
                break;
            }
            sqlx::query(AssertSqlSafe(format!("DROP TABLE \"{name}\""))).execute(&mut *tx).await?;
            tx.commit().await?;
            outcome.partitions_dropped.push(day);
        }
        Ok(outcome)
    }

    async fn signal_partitions(&self) -> Result<Vec<time::Date>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'signals'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut days: Vec<time::Date> = names.iter().filter_map(|name| partition_day(name)).collect();
        days.sort_unstable();
        Ok(days)
    }

    async fn signal_backlog(&self, after: i64, cap: u32) -> Result<SignalBacklog, StoreError> {
        let (count, oldest): (i64, Option<OffsetDateTime>) = sqlx::query_as(
            "SELECT count(*), min(received_at) FROM (SELECT received_at FROM signals WHERE id > $1 ORDER BY id LIMIT $2) AS t",
        )
        .bind(after)
        .bind(i64::from(cap))
        .fetch_one(&self.pool)
        .await?;
        Ok(SignalBacklog { count: count.max(0) as u64, oldest_received_at: oldest })
    }

    async fn report_summary(&self, query: &ReportQuery) -> Result<ReportSummary, StoreError> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT count(*), count(DISTINCT CASE WHEN m.account_id IS NULL THEN -s.machine_id ELSE m.account_id END), \
             max(s.stop_at) FROM signals s JOIN machines m ON m.id = s.machine_id WHERE ",
        );
        push_report_filter(&mut builder, query);
        let (reports, reporters, last): (i64, i64, Option<OffsetDateTime>) =
            builder.build_query_as().fetch_one(&self.pool).await?;
        Ok(ReportSummary { reports: reports.max(0) as u64, reporters: reporters.max(0) as u64, last_reported_at: last })
    }

    async fn recent_reports(&self, query: &ReportQuery) -> Result<Vec<RecentReport>, StoreError> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT s.id, s.machine_id, m.account_id, s.scenario, s.message, s.stop_at, s.origin_ip, s.extra::text AS extra \
             FROM signals s JOIN machines m ON m.id = s.machine_id WHERE ",
        );
        push_report_filter(&mut builder, query);
        builder.push(" ORDER BY s.stop_at DESC, s.id DESC LIMIT ").push_bind(i64::from(query.limit));
        builder.push(" OFFSET ").push_bind(i64::from(query.offset));
        let rows = builder.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(RecentReport {
                    id: row.try_get("id")?,
                    machine: MachineKey(row.try_get("machine_id")?),
                    account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
                    scenario: row.try_get("scenario")?,
                    message: row.try_get("message")?,
                    stop_at: row.try_get("stop_at")?,
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
        let values: Vec<String> = values.iter().map(|v| storable(v).into_owned()).collect();
        let rows = sqlx::query(
            "SELECT value, count(*) AS reports, max(stop_at) AS last FROM signals \
             WHERE stop_at >= $1 AND value = ANY($2) GROUP BY value",
        )
        .bind(since)
        .bind(&values)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ValueReports {
                    value: row.try_get("value")?,
                    reports: row.try_get::<i64, _>("reports")?.max(0) as u64,
                    last_reported_at: row.try_get("last")?,
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
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<String> = values.iter().map(|v| storable(v).into_owned()).collect();
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT value FROM signals WHERE machine_id = $1 AND received_at >= $2 AND value = ANY($3)",
        )
        .bind(machine.0)
        .bind(since)
        .bind(&values)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// The `WHERE` conditions of a [`ReportQuery`].
fn push_report_filter(builder: &mut QueryBuilder<Postgres>, query: &ReportQuery) {
    builder.push("s.value = ").push_bind(storable(&query.value));
    builder.push(" AND s.stop_at >= ").push_bind(query.reported_since);
    if let Some(since) = query.received_since {
        builder.push(" AND s.received_at >= ").push_bind(since);
    }
    if let Some(machine) = query.machine {
        builder.push(" AND s.machine_id = ").push_bind(machine.0);
    }
}
