//! SQLite's [`ConsensusStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::consensus::{ConsensusStore, state_from, state_text, target_key};

/// Engine target rows per statement: two parameters each, well under SQLite's 32766.
const TARGETS_PER_STATEMENT: usize = 1000;

#[async_trait]
impl ConsensusStore for SqliteStore {
    async fn signals_for_engine(&self, after: i64, limit: u32) -> Result<Vec<EngineSignal>, StoreError> {
        // One row holding the whole batch as a JSON array: sqlx hands a statement's rows from its
        // connection thread to the caller one message at a time, and a row per signal made this
        // read a tenth of the server's CPU under ingest.
        let batch: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, machine_id, value, scenario, scenario_trust, origin_prefix, \
             origin_asn, received_at, is_sensor, account_id)) FROM (SELECT s.id, s.machine_id, s.value, s.scenario, \
             s.scenario_trust, s.origin_prefix, s.origin_asn, s.received_at, m.is_sensor, m.account_id FROM signals s \
             LEFT JOIN machines m ON m.id = s.machine_id WHERE s.id > ? ORDER BY s.id LIMIT ?)",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_one(&self.reader)
        .await?;
        type Row = (i64, i64, String, String, String, String, Option<i64>, i64, Option<i64>, Option<i64>);
        let rows: Vec<Row> = serde_json::from_str(&batch).map_err(|e| StoreError::Corrupt(format!("engine batch: {e}")))?;
        let mut signals: Vec<EngineSignal> = rows
            .into_iter()
            .map(|(id, machine, value, scenario, scenario_trust, origin_prefix, origin_asn, received_at, sensor, account)| {
                EngineSignal {
                    id,
                    machine: MachineKey(machine),
                    value,
                    scenario,
                    scenario_trust,
                    origin_prefix,
                    origin_asn: origin_asn.map(|n| n as u32),
                    received_at: from_micros(received_at),
                    reporter_sensor: sensor.map(|flag| flag != 0),
                    reporter_account: account.map(AccountKey),
                }
            })
            .collect();
        // An aggregate keeps its subquery's order in SQLite, but SQL does not promise it.
        signals.sort_unstable_by_key(|signal| signal.id);
        Ok(signals)
    }

    async fn engine_machines(&self) -> Result<Vec<EngineMachine>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.account_id, COALESCE(a.level, 'anonymous') AS level, m.is_sensor, m.created_at \
             FROM machines m LEFT JOIN accounts a ON a.id = m.account_id ORDER BY m.id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EngineMachine {
                    key: MachineKey(row.try_get("id")?),
                    account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
                    level: decoded(row, "level", Level::parse)?,
                    sensor: row.try_get("is_sensor")?,
                    created_at: from_micros(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn consensus_snapshot(&self) -> Result<ConsensusSnapshot, StoreError> {
        let mut tx = self.reader.begin().await?;
        let watermark: i64 =
            sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&mut *tx).await?;
        let machines =
            sqlx::query_as::<_, (i64, String)>("SELECT machine_id, state FROM engine_machines").fetch_all(&mut *tx).await?;
        let targets =
            sqlx::query_as::<_, (String, String)>("SELECT target, state FROM engine_targets").fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(ConsensusSnapshot::from_rows(watermark, machines, targets))
    }

    async fn commit_consensus(&self, commit: &ConsensusCommit) -> Result<(), StoreError> {
        let at = to_micros(commit.at);
        let mut tx = self.writer.begin().await?;
        for (machine, state, trust) in &commit.machines {
            sqlx::query("INSERT INTO engine_machines (machine_id, state) VALUES (?, ?) ON CONFLICT (machine_id) DO UPDATE SET state = excluded.state")
                .bind(machine.0)
                .bind(state_text(state)?)
                .execute(&mut *tx)
                .await?;
            // Only when it moved: most machines of a step keep their trust, and an unchanged row
            // need not be written.
            sqlx::query("UPDATE machines SET trust = ? WHERE id = ? AND trust IS NOT ?")
                .bind(trust)
                .bind(machine.0)
                .bind(trust)
                .execute(&mut *tx)
                .await?;
        }
        // A step touches about one target per signal: multi-row statements, because through sqlx
        // each statement is a round trip to the connection's thread, and one per target made
        // the worker's commit cost more than the signals' own insert.
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for (target, state) in &commit.targets {
            match state {
                Some(state) => kept.push((target_key(*target), state_text(state)?)),
                None => gone.push(target_key(*target)),
            }
        }
        for chunk in kept.chunks(TARGETS_PER_STATEMENT) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("INSERT INTO engine_targets (target, state) ");
            builder.push_values(chunk, |mut row, (target, state)| {
                row.push_bind(target).push_bind(state);
            });
            builder.push(" ON CONFLICT (target) DO UPDATE SET state = excluded.state");
            builder.build().execute(&mut *tx).await?;
        }
        for chunk in gone.chunks(TARGETS_PER_STATEMENT) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("DELETE FROM engine_targets WHERE target IN (");
            let mut list = builder.separated(", ");
            for target in chunk {
                list.push_bind(target);
            }
            builder.push(")");
            builder.build().execute(&mut *tx).await?;
        }
        apply_list_ops(&mut tx, &commit.list_ops, at).await?;
        for id in &commit.done_requests {
            sqlx::query("UPDATE consensus_requests SET done_at = ? WHERE id = ?")
                .bind(to_micros(commit.at))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE consensus_watermark SET signal_id = ? WHERE id = 1").bind(commit.watermark).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn consensus_watermark(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&self.reader).await?)
    }

    async fn engine_machine(&self, machine: MachineKey) -> Result<Option<MachineState>, StoreError> {
        let text: Option<String> = sqlx::query_scalar("SELECT state FROM engine_machines WHERE machine_id = ?")
            .bind(machine.0)
            .fetch_optional(&self.reader)
            .await?;
        text.map(|text| state_from("engine_machines.state", &text)).transpose()
    }

    async fn engine_target(&self, target: IpNet) -> Result<Option<TargetState>, StoreError> {
        let text: Option<String> = sqlx::query_scalar("SELECT state FROM engine_targets WHERE target = ?")
            .bind(target_key(target))
            .fetch_optional(&self.reader)
            .await?;
        text.map(|text| state_from("engine_targets.state", &text)).transpose()
    }

    async fn queue_consensus_request(
        &self,
        kind: RequestKind,
        target: IpNet,
        hold_until: Option<OffsetDateTime>,
        at: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO consensus_requests (kind, value, hold_until, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(target_key(target))
        .bind(hold_until.map(to_micros))
        .bind(to_micros(at))
        .fetch_one(&self.writer)
        .await?)
    }

    async fn withdraw_reports(&self, machine: MachineKey, value: IpNet, at: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let deleted: Vec<i64> = sqlx::query_scalar("DELETE FROM signals WHERE machine_id = ? AND value = ? RETURNING id")
            .bind(machine.0)
            .bind(display_target(value))
            .fetch_all(&mut *tx)
            .await?;
        if let Some(up_to) = deleted.iter().max() {
            sqlx::query(
                "INSERT INTO consensus_requests (kind, value, machine_id, up_to_signal, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(RequestKind::Withdraw.as_str())
            .bind(target_key(value))
            .bind(machine.0)
            .bind(up_to)
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(deleted.len() as u64)
    }

    async fn pending_consensus_requests(&self) -> Result<Vec<ConsensusRequest>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, value, hold_until, machine_id, up_to_signal FROM consensus_requests WHERE done_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConsensusRequest {
                    id: row.try_get("id")?,
                    kind: decoded(row, "kind", RequestKind::from_stored)?,
                    value: decoded(row, "value", parse_target)?,
                    hold_until: row.try_get::<Option<i64>, _>("hold_until")?.map(from_micros),
                    machine: row.try_get::<Option<i64>, _>("machine_id")?.map(MachineKey),
                    up_to_signal: row.try_get("up_to_signal")?,
                })
            })
            .collect()
    }

    async fn acquire_leadership(&self) -> Result<Option<Leadership>, StoreError> {
        Ok(Some(Leadership::local()))
    }
}
