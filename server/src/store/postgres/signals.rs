//! PostgreSQL's [`SignalStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use std::borrow::Cow;

use super::*;
use crate::store::signals::{RecentReport, ReportQuery, ReportSummary, SignalStore, ValueReports};

#[async_trait]
impl SignalStore for PgStore {
    async fn insert_signals(&self, signals: &[NewSignal]) -> Result<InsertOutcome, StoreError> {
        if signals.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let columns = SignalColumns::of(signals);
        let mut known = self.partitions_known(&columns.days);
        loop {
            match self.write_signals(&columns, known).await {
                // Another process dropped a partition this one had seen (the batch's day, or one
                // the redelivery probe names): read them all again, under the lock held alone.
                Err(error) if known && missing_partition(&error) => {
                    self.partitions_forgotten(&columns.days);
                    known = false;
                }
                Err(error) => return Err(error.into()),
                Ok(inserted) => {
                    let inserted = inserted as usize;
                    return Ok(InsertOutcome { inserted, duplicates: signals.len() - inserted });
                }
            }
        }
    }

    fn set_redelivery_window(&self, skew: time::Duration) {
        let seconds = skew.clamp(time::Duration::ZERO, REDELIVERY_MAX).whole_seconds();
        self.redelivery_secs.store(seconds, std::sync::atomic::Ordering::Relaxed);
    }

    async fn list_signals(&self, filter: &SignalFilter) -> Result<Vec<StoredSignal>, StoreError> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT s.id, m.machine_id AS login, s.agent, s.scope, s.value, s.scenario, s.scenario_hash, s.scenario_version, \
             s.scenario_trust, s.message, s.alert_uuid, s.start_at, s.stop_at, s.received_at, s.origin_ip, s.origin_prefix, \
             s.origin_asn, s.as_number, s.as_name, s.country, s.extra::text AS extra \
             FROM signals s JOIN machines m ON m.id = s.machine_id WHERE s.id > ",
        );
        builder.push_bind(filter.after.unwrap_or(0));
        // Pages follow ids: only what is final, or a later page could miss an id committed late.
        builder.push(" AND s.id <= ").push_bind(self.signal_frontier().await?);
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
        let existing = partition_days(&mut tx).await?;
        tx.commit().await?;
        self.partitions_read(existing);
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
            self.partitions_forgotten(&[day]);
            outcome.partitions_dropped.push(day);
        }
        Ok(outcome)
    }

    async fn signal_partitions(&self) -> Result<Vec<time::Date>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(partition_days(&mut conn).await?)
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

/// Settings, for the rest of an insert's transaction, that make the redelivery probe look each
/// row up in the `(machine_id, dedup_key)` index whatever the statistics say. The insert is
/// planned once per connection and its plan kept; a plan made while the day's partition was
/// nearly empty (every day starts so) hashes or scans the whole partition at each later insert
/// until the statistics catch up: 18.8 ms per insert on average in `bench_network`'s cost phase,
/// against about 1 ms looking each row up. Nothing else in that transaction is affected.
macro_rules! probe_by_index {
    () => {
        "set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), \
         set_config('enable_mergejoin', 'off', true)"
    };
}

/// A batch of signals as the insert binds them: one array per column.
struct SignalColumns<'a> {
    /// The UTC days the batch was received on (its partitions).
    days: Vec<time::Date>,
    /// Its machines, sorted, each once.
    machines: Vec<i64>,
    machine: Vec<i64>,
    dedup: Vec<&'a str>,
    scope: Vec<&'a str>,
    value: Vec<String>,
    scenario: Vec<Cow<'a, str>>,
    scenario_hash: Vec<Cow<'a, str>>,
    scenario_version: Vec<Cow<'a, str>>,
    scenario_trust: Vec<Cow<'a, str>>,
    message: Vec<Cow<'a, str>>,
    agent: Vec<Option<Cow<'a, str>>>,
    alert_uuid: Vec<Option<Cow<'a, str>>>,
    start_at: Vec<OffsetDateTime>,
    stop_at: Vec<OffsetDateTime>,
    received_at: Vec<OffsetDateTime>,
    origin_ip: Vec<String>,
    origin_prefix: Vec<String>,
    origin_asn: Vec<Option<i64>>,
    as_number: Vec<Option<i64>>,
    as_name: Vec<Option<Cow<'a, str>>>,
    country: Vec<Option<Cow<'a, str>>>,
    extra: Vec<Cow<'a, str>>,
}

impl<'a> SignalColumns<'a> {
    fn of(signals: &'a [NewSignal]) -> Self {
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
        let mut days: Vec<time::Date> = received_at.iter().map(|at| at.to_offset(time::UtcOffset::UTC).date()).collect();
        days.sort_unstable();
        days.dedup();
        let mut machines = machine.clone();
        machines.sort_unstable();
        machines.dedup();
        SignalColumns {
            days,
            machines,
            machine,
            dedup,
            scope,
            value,
            scenario,
            scenario_hash,
            scenario_version,
            scenario_trust,
            message,
            agent,
            alert_uuid,
            start_at,
            stop_at,
            received_at,
            origin_ip,
            origin_prefix,
            origin_asn,
            as_number,
            as_name,
            country,
            extra,
        }
    }
}

/// Whether an insert failed because a row's day has no partition (SQLSTATE 23514, raised by
/// the partition routing) or a partition its redelivery probe names is gone (42P01).
fn missing_partition(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| match e.code().as_deref() {
        Some("23514") => e.message().contains("no partition"),
        Some("42P01") => e.message().contains("signals_p"),
        _ => false,
    })
}

/// The days of the signal partitions that exist, in order.
async fn partition_days(conn: &mut sqlx::PgConnection) -> Result<Vec<time::Date>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'signals'::regclass",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut days: Vec<time::Date> = names.iter().filter_map(|name| partition_day(name)).collect();
    days.sort_unstable();
    Ok(days)
}

/// The partitions, among `existing`, that can hold the original of a redelivery in this batch:
/// from the day of its earliest `start_at` less `window` (the accepted skew) to the day after
/// its last receipt (another replica's clock may run a little ahead of this one's).
fn probed_days<'d>(
    existing: impl IntoIterator<Item = &'d time::Date>,
    columns: &SignalColumns<'_>,
    window: time::Duration,
) -> Vec<time::Date> {
    let utc = |at: &OffsetDateTime| at.to_offset(time::UtcOffset::UTC);
    let first = columns.start_at.iter().min().map(|at| (utc(at) - window).date());
    let last = columns.days.last().map(|day| day.next_day().unwrap_or(*day));
    let (Some(first), Some(last)) = (first, last) else { return Vec::new() };
    existing.into_iter().copied().filter(|day| (first..=last).contains(day)).collect()
}

/// The batch insert, probing for redeliveries in the partitions of `days` only.
///
/// Naming them matters once a deployment holds its retention's worth: through the partitioned
/// table the probe's plan would open and lock every partition (97 with 90 days kept) at each
/// insert, and probe the week of empty ones made ahead, whatever the batch's days.
fn insert_statement(days: &[time::Date]) -> String {
    let probes: Vec<String> = days
        .iter()
        .map(|day| {
            format!(
                "SELECT 1 FROM \"{}\" s WHERE s.machine_id = u.m AND s.dedup_key = u.d \
                 AND s.received_at >= u.sa - interval '{} days'",
                partition_name(*day),
                REDELIVERY_MAX.whole_days()
            )
        })
        .collect();
    // A batch's own days always have partitions; the empty probe only keeps the text valid.
    let probe = if probes.is_empty() { "SELECT 1 WHERE false".to_string() } else { probes.join(" UNION ALL ") };
    format!(
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
         WHERE NOT EXISTS ({probe}) \
         ORDER BY n"
    )
}

impl PgStore {
    /// Writes one batch in a transaction of its own; how many rows were new. With `known`, every
    /// day of the batch has a partition this process has seen, and the insert shares the writer
    /// lock with the others; without, it holds the lock alone and makes the partitions first.
    async fn write_signals(&self, columns: &SignalColumns<'_>, known: bool) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let existing = if known {
            // The usual case: the writer lock shared with the other inserts (they commit side by
            // side), then each machine's own lock, in id order so two inserts cannot deadlock.
            sqlx::query(concat!(
                "SELECT pg_advisory_xact_lock_shared($1), \
                 (SELECT count(pg_advisory_xact_lock($2, k)) FROM \
                  (SELECT DISTINCT (m & 2147483647)::int4 AS k FROM UNNEST($3::bigint[]) AS m ORDER BY 1) AS keys), ",
                probe_by_index!()
            ))
            .bind(SIGNAL_WRITER_LOCK)
            .bind(SIGNAL_MACHINE_LOCK)
            .bind(&columns.machines)
            .execute(&mut *tx)
            .await?;
            None
        } else {
            // A day not seen yet: its partition is made (normally ahead, by maintenance) under
            // the writer lock held alone, which also keeps every other insert out meanwhile.
            sqlx::query(concat!("SELECT pg_advisory_xact_lock($1), ", probe_by_index!()))
                .bind(SIGNAL_WRITER_LOCK)
                .execute(&mut *tx)
                .await?;
            sqlx::query("SELECT palisade_ensure_signal_partition(d) FROM UNNEST($1::date[]) AS d")
                .bind(&columns.days)
                .execute(&mut *tx)
                .await?;
            // Every partition, read while none can be made or dropped: what later inserts probe.
            Some(partition_days(&mut tx).await?)
        };
        let window = time::Duration::seconds(self.redelivery_secs.load(std::sync::atomic::Ordering::Relaxed));
        let probed = match &existing {
            Some(days) => probed_days(days, columns, window),
            None => probed_days(self.known_partitions().iter(), columns, window),
        };
        // Redeliveries are skipped without a unique constraint (a partitioned table cannot have
        // one without the partition key): inserts of one machine are serialised by the locks
        // above, so a row is new when no stored signal of its machine has its dedup key, and
        // DISTINCT ON keeps the first of repeats within the batch. A redelivery carries the
        // original's start_at, and the original was received no earlier than start_at minus the
        // accepted clock skew, so the probe reads only the partitions of the days between
        // (`probed_days`, `set_redelivery_window`).
        // ORDER BY the array position: ids follow the batch order, which UNNEST alone does not promise.
        let result = sqlx::query(AssertSqlSafe(insert_statement(&probed)))
            .bind(&columns.machine)
            .bind(&columns.dedup)
            .bind(&columns.scope)
            .bind(&columns.value)
            .bind(&columns.scenario)
            .bind(&columns.scenario_hash)
            .bind(&columns.scenario_version)
            .bind(&columns.scenario_trust)
            .bind(&columns.message)
            .bind(&columns.agent)
            .bind(&columns.alert_uuid)
            .bind(&columns.start_at)
            .bind(&columns.stop_at)
            .bind(&columns.received_at)
            .bind(&columns.origin_ip)
            .bind(&columns.origin_prefix)
            .bind(&columns.origin_asn)
            .bind(&columns.as_number)
            .bind(&columns.as_name)
            .bind(&columns.country)
            .bind(&columns.extra)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Some(days) = existing {
            self.partitions_read(days);
        }
        Ok(result.rows_affected())
    }

    /// The id frontier: every signal id up to it is final (committed or never to be), so a reader
    /// paging by id may read up to it and miss nothing. Taking the writer lock exclusively waits
    /// for the inserts in flight to commit (new ones wait a moment behind it); the sequence's
    /// last value is then the last id any of them drew.
    pub(super) async fn signal_frontier(&self) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *tx).await?;
        let (last, called): (i64, bool) =
            sqlx::query_as("SELECT last_value, is_called FROM signals_id_seq").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(if called { last } else { last - 1 })
    }

    fn known_partitions(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<time::Date>> {
        // A set of dates: a panic elsewhere cannot leave it half-written.
        self.partitions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether every day of `days` has a partition this process has seen.
    fn partitions_known(&self, days: &[time::Date]) -> bool {
        let known = self.known_partitions();
        days.iter().all(|day| known.contains(day))
    }

    /// The partitions that exist, as just read under the writer lock held alone.
    fn partitions_read(&self, days: Vec<time::Date>) {
        *self.known_partitions() = days.into_iter().collect();
    }

    fn partitions_forgotten(&self, days: &[time::Date]) {
        let mut known = self.known_partitions();
        for day in days {
            known.remove(day);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::domain::signal::{SignalRules, parse_item};
    use crate::store::machines::{CreatedBy, MachineStore};
    use crate::store::signals::Origin;
    use crate::store::{ConsensusStore, Database};
    use crate::testing::TestDb;

    const T0: OffsetDateTime = datetime!(2026-11-25 12:00:00 UTC);

    fn signal(machine: MachineKey, value: &str) -> NewSignal {
        let rules = SignalRules {
            now: T0,
            max_age: time::Duration::days(60),
            max_clock_skew: time::Duration::hours(24),
            min_v4_prefix: 16,
            min_v6_prefix: 32,
        };
        let item = json!({
            "machine_id": "agent-1", "message": "ssh", "scenario": "crowdsecurity/ssh-bf",
            "scenario_hash": "", "scenario_trust": "certified", "scenario_version": "0.3",
            "source": {"ip": value, "scope": "Ip", "value": value},
            "start_at": "2026-11-25T11:59:19Z", "stop_at": "2026-11-25T11:59:20Z",
            "uuid": "c0d1e2f3-0000-4000-8000-000000000001", "kind": "crowdsec"
        });
        NewSignal {
            machine,
            report: parse_item(&item.to_string(), &rules).expect("a valid test item"),
            origin: Origin { ip: "81.2.69.160".parse().expect("ip"), prefix: "81.2.69.0/24".parse().expect("net"), asn: None },
            enrichment: Enrichment::default(),
            received_at: T0,
        }
    }

    /// The store on `db`, migrated, with one machine.
    async fn store_with_machine(db: &TestDb) -> (PgStore, MachineKey) {
        let store = PgStore::open(db.url.expose()).await.expect("open");
        store.migrate().await.expect("migrate");
        let machine = crate::store::NewMachine {
            machine_id: "watcher".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            sensor: false,
            created_by: CreatedBy::Register,
            created_at: T0,
        };
        let key = store.create_machine(&machine).await.expect("machine");
        (store, key)
    }

    /// An insert drew its id and has not committed when a later insert commits: a reader paging
    /// by id must not pass the first one's id, or it would never read it. The first insert is
    /// held open here by hand, following the inserts' own protocol (the writer lock shared).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_by_id_waits_for_an_insert_that_drew_a_smaller_id() {
        let Some(db) = TestDb::postgres().await else { return };
        let (store, first) = store_with_machine(&db).await;
        // The day's partition is seen now, so the store's insert below takes the shared path.
        store.insert_signals(&[signal(first, "45.33.0.1")]).await.expect("insert");

        let mut slow = store.pool().begin().await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)").bind(SIGNAL_WRITER_LOCK).execute(&mut *slow).await.expect("lock");
        let slow_id: i64 = sqlx::query_scalar(
            "INSERT INTO signals (machine_id, dedup_key, scope, value, scenario, scenario_hash, scenario_version, \
             scenario_trust, message, start_at, stop_at, received_at, origin_ip, origin_prefix, extra) \
             VALUES ($1, 'slow', 'ip', '45.33.0.2', 'crowdsecurity/ssh-bf', '', '0.3', 'certified', 'ssh', $2, $2, $2, \
             '81.2.69.160', '81.2.69.0/24', '{}') RETURNING id",
        )
        .bind(first.0)
        .bind(T0)
        .fetch_one(&mut *slow)
        .await
        .expect("the slow insert");
        store.insert_signals(&[signal(first, "45.33.0.3")]).await.expect("a later insert commits first");

        let reader = store.clone();
        let engine = tokio::spawn(async move { reader.signals_for_engine(0, 100).await });
        let lister = store.clone();
        let listing =
            tokio::spawn(async move { lister.list_signals(&SignalFilter { limit: 100, ..SignalFilter::default() }).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        slow.commit().await.expect("the slow insert commits");

        let engine: Vec<i64> = engine.await.expect("join").expect("read").iter().map(|s| s.id).collect();
        let listing: Vec<i64> = listing.await.expect("join").expect("list").iter().map(|s| s.id).collect();
        for (reader, ids) in [("engine", &engine), ("listing", &listing)] {
            assert_eq!(ids.len(), 3, "{reader}: every signal, the slow one included ({ids:?}, slow {slow_id})");
            assert!(ids.contains(&slow_id) && ids.windows(2).all(|w| w[0] < w[1]), "{reader}: {ids:?}");
        }
    }

    /// A partition this process saw can be dropped by another (retention on another replica): the
    /// insert into its day makes it again instead of failing.
    #[tokio::test]
    async fn an_insert_into_a_day_whose_partition_another_process_dropped_makes_it_again() {
        let Some(db) = TestDb::postgres().await else { return };
        let (store, key) = store_with_machine(&db).await;
        store.insert_signals(&[signal(key, "45.33.0.1")]).await.expect("insert");
        assert!(store.partitions_known(&[T0.date()]), "the day's partition is remembered");
        let other = PgStore::open(db.url.expose()).await.expect("open");
        sqlx::query(AssertSqlSafe(format!("DROP TABLE \"{}\"", partition_name(T0.date()))))
            .execute(other.pool())
            .await
            .expect("drop");
        let outcome = store.insert_signals(&[signal(key, "45.33.0.2")]).await.expect("insert after the drop");
        assert_eq!(outcome.inserted, 1);
        let stored = store.list_signals(&SignalFilter { limit: 10, ..SignalFilter::default() }).await.expect("list");
        assert_eq!(stored.iter().map(|s| s.value.as_str()).collect::<Vec<_>>(), ["45.33.0.2"]);
    }

    /// `signal`, received `days` after T0.
    fn received_later(machine: MachineKey, value: &str, days: i64) -> NewSignal {
        NewSignal { received_at: T0 + time::Duration::days(days), ..signal(machine, value) }
    }

    /// Another process made a partition and stored a signal in it; when this process next makes
    /// one it reads them all again, so the redelivery probe then reads that partition too (with
    /// only the partitions this process made itself, the repeat would be stored twice).
    #[tokio::test]
    async fn a_redelivery_is_found_in_a_partition_another_process_made() {
        let Some(db) = TestDb::postgres().await else { return };
        let (store, key) = store_with_machine(&db).await;
        store.insert_signals(&[signal(key, "45.33.0.1")]).await.expect("insert on T0");
        let other = PgStore::open(db.url.expose()).await.expect("open");
        let original = received_later(key, "45.33.0.2", 1);
        assert_eq!(other.insert_signals(std::slice::from_ref(&original)).await.expect("insert").inserted, 1);
        assert!(!store.partitions_known(&[(T0 + time::Duration::days(1)).date()]), "made by the other process");

        let repeat = NewSignal { received_at: T0 + time::Duration::days(2), ..original };
        let outcome = store.insert_signals(&[repeat]).await.expect("the redelivery");
        assert_eq!(outcome, InsertOutcome { inserted: 0, duplicates: 1 });
        assert_eq!(store.count_signals().await.expect("count"), 2);
    }

    /// The probe names the partitions of the days a batch can repeat; one of them dropped by
    /// another process (retention on another replica) does not fail the insert, and later
    /// inserts stop naming it.
    #[tokio::test]
    async fn an_insert_whose_probed_partition_another_process_dropped_goes_through() {
        let Some(db) = TestDb::postgres().await else { return };
        let (store, key) = store_with_machine(&db).await;
        store.prepare_signal_partitions(T0, 3).await.expect("prepare");
        store.insert_signals(&[signal(key, "45.33.0.1")]).await.expect("insert on T0");
        let other = PgStore::open(db.url.expose()).await.expect("open");
        sqlx::query(AssertSqlSafe(format!("DROP TABLE \"{}\"", partition_name(T0.date()))))
            .execute(other.pool())
            .await
            .expect("drop");
        assert!(store.partitions_known(&[T0.date()]), "this process has not seen the drop");

        let later = received_later(key, "45.33.0.2", 2);
        assert_eq!(store.insert_signals(std::slice::from_ref(&later)).await.expect("insert after the drop").inserted, 1);
        assert!(!store.partitions_known(&[T0.date()]), "read again: the dropped day is gone");
        let again = NewSignal { received_at: T0 + time::Duration::days(3), ..later };
        assert_eq!(store.insert_signals(&[again]).await.expect("the redelivery").duplicates, 1);
    }

    /// Which partitions a batch's probe reads: from its earliest start_at less the accepted skew
    /// to the day after its last receipt, among those that exist.
    #[test]
    fn the_probe_reads_the_days_a_batch_can_repeat() {
        let key = MachineKey(1);
        let batch = [signal(key, "45.33.0.1"), received_later(key, "45.33.0.2", 1)];
        let columns = SignalColumns::of(&batch);
        let existing: Vec<time::Date> = (-100..10).map(|n| (T0 + time::Duration::days(n)).date()).collect();
        let probed = probed_days(&existing, &columns, REDELIVERY_MAX);
        // start_at 2026-11-25T11:59:19Z less 7 days, to the day after 2026-11-26.
        assert_eq!(probed.first(), Some(&datetime!(2026-11-18 0:00 UTC).date()));
        assert_eq!(probed.last(), Some(&datetime!(2026-11-27 0:00 UTC).date()));
        assert_eq!(probed.len(), 10);
        // A skew of 12 hours reaches back to the day before.
        let narrow = probed_days(&existing, &columns, time::Duration::hours(12));
        assert_eq!(narrow.first(), Some(&datetime!(2026-11-24 0:00 UTC).date()));
        assert_eq!(narrow.len(), 4);
        let sparse = [datetime!(2026-11-10 0:00 UTC).date(), T0.date(), datetime!(2026-12-01 0:00 UTC).date()];
        assert_eq!(probed_days(&sparse, &columns, REDELIVERY_MAX), [T0.date()]);
    }

    /// The probe relies on `start_at` alone, which the skew bounds: a redelivery of a signal whose
    /// `stop_at` is a year ahead (ingest refuses one beyond the skew; the store does not) is
    /// still found.
    #[tokio::test]
    async fn a_redelivery_with_a_far_stop_at_is_still_a_duplicate() {
        let Some(db) = TestDb::postgres().await else { return };
        let (store, key) = store_with_machine(&db).await;
        let mut far = signal(key, "45.33.0.1");
        far.report.stop_at = T0 + time::Duration::days(365);
        assert_eq!(store.insert_signals(std::slice::from_ref(&far)).await.expect("insert").inserted, 1);
        let repeat = NewSignal { received_at: T0 + time::Duration::days(1), ..far };
        assert_eq!(store.insert_signals(&[repeat]).await.expect("the redelivery").duplicates, 1);
    }
}
