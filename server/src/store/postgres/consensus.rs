//! PostgreSQL's [`ConsensusStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::consensus::{ConsensusStore, state_from, state_text, target_key};

#[async_trait]
impl ConsensusStore for PgStore {
    async fn signals_for_engine(&self, after: i64, limit: u32) -> Result<Vec<EngineSignal>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.machine_id, s.value, s.scenario, s.scenario_trust, s.origin_prefix, s.origin_asn, \
             s.received_at, m.is_sensor, m.account_id FROM signals s LEFT JOIN machines m ON m.id = s.machine_id \
             WHERE s.id > $1 AND s.id <= $3 ORDER BY s.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .bind(self.signal_frontier().await?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EngineSignal {
                    id: row.try_get("id")?,
                    machine: MachineKey(row.try_get("machine_id")?),
                    value: row.try_get("value")?,
                    scenario: row.try_get("scenario")?,
                    scenario_trust: row.try_get("scenario_trust")?,
                    origin_prefix: row.try_get("origin_prefix")?,
                    origin_asn: row.try_get::<Option<i64>, _>("origin_asn")?.map(|n| n as u32),
                    received_at: row.try_get("received_at")?,
                    reporter_sensor: row.try_get("is_sensor")?,
                    reporter_account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn engine_machines(&self) -> Result<Vec<EngineMachine>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.account_id, COALESCE(a.level, 'anonymous') AS level, m.is_sensor, m.created_at \
             FROM machines m LEFT JOIN accounts a ON a.id = m.account_id ORDER BY m.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EngineMachine {
                    key: MachineKey(row.try_get("id")?),
                    account: row.try_get::<Option<i64>, _>("account_id")?.map(AccountKey),
                    level: decoded(row, "level", Level::parse)?,
                    sensor: row.try_get("is_sensor")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn consensus_snapshot(&self) -> Result<ConsensusSnapshot, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
        let watermark: i64 =
            sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&mut *tx).await?;
        let machines =
            sqlx::query_as::<_, (i64, String)>("SELECT machine_id, state::text FROM engine_machines").fetch_all(&mut *tx).await?;
        let targets =
            sqlx::query_as::<_, (String, String)>("SELECT target, state::text FROM engine_targets").fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(ConsensusSnapshot::from_rows(watermark, machines, targets))
    }

    async fn commit_consensus(&self, commit: &ConsensusCommit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !commit.machines.is_empty() {
            let keys: Vec<i64> = commit.machines.iter().map(|(k, _, _)| k.0).collect();
            let states: Vec<String> = commit.machines.iter().map(|(_, s, _)| state_text(s)).collect::<Result<_, _>>()?;
            let trust: Vec<f64> = commit.machines.iter().map(|(_, _, t)| *t).collect();
            sqlx::query(
                "INSERT INTO engine_machines (machine_id, state) SELECT k, s::jsonb FROM UNNEST($1::bigint[], $2::text[]) AS t(k, s) \
                 ON CONFLICT (machine_id) DO UPDATE SET state = excluded.state",
            )
            .bind(&keys)
            .bind(&states)
            .execute(&mut *tx)
            .await?;
            // Only rows whose trust moved: an UPDATE writes a new row version (and WAL) even when
            // the value is the same, and most machines of a step keep their trust.
            sqlx::query(
                "UPDATE machines m SET trust = t.v FROM UNNEST($1::bigint[], $2::float8[]) AS t(k, v) \
                 WHERE m.id = t.k AND m.trust IS DISTINCT FROM t.v",
            )
            .bind(&keys)
            .bind(&trust)
            .execute(&mut *tx)
            .await?;
        }
        let (kept, gone): (Vec<_>, Vec<_>) = commit.targets.iter().partition(|(_, s)| s.is_some());
        if !kept.is_empty() {
            let targets: Vec<String> = kept.iter().map(|(t, _)| target_key(*t)).collect();
            let states: Vec<String> = kept.iter().filter_map(|(_, s)| s.as_ref().map(state_text)).collect::<Result<_, _>>()?;
            sqlx::query(
                "INSERT INTO engine_targets (target, state) SELECT t, s::jsonb FROM UNNEST($1::text[], $2::text[]) AS x(t, s) \
                 ON CONFLICT (target) DO UPDATE SET state = excluded.state",
            )
            .bind(&targets)
            .bind(&states)
            .execute(&mut *tx)
            .await?;
        }
        if !gone.is_empty() {
            let targets: Vec<String> = gone.iter().map(|(t, _)| target_key(*t)).collect();
            sqlx::query("DELETE FROM engine_targets WHERE target = ANY($1)").bind(&targets).execute(&mut *tx).await?;
        }
        apply_list_ops(&mut tx, &commit.list_ops, commit.at).await?;
        for id in &commit.done_requests {
            sqlx::query("UPDATE consensus_requests SET done_at = $1 WHERE id = $2")
                .bind(commit.at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE consensus_watermark SET signal_id = $1 WHERE id = 1")
            .bind(commit.watermark)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn consensus_watermark(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT signal_id FROM consensus_watermark WHERE id = 1").fetch_one(&self.pool).await?)
    }

    async fn engine_machine(&self, machine: MachineKey) -> Result<Option<MachineState>, StoreError> {
        let text: Option<String> = sqlx::query_scalar("SELECT state::text FROM engine_machines WHERE machine_id = $1")
            .bind(machine.0)
            .fetch_optional(&self.pool)
            .await?;
        text.map(|text| state_from("engine_machines.state", &text)).transpose()
    }

    async fn engine_target(&self, target: IpNet) -> Result<Option<TargetState>, StoreError> {
        let text: Option<String> = sqlx::query_scalar("SELECT state::text FROM engine_targets WHERE target = $1")
            .bind(target_key(target))
            .fetch_optional(&self.pool)
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
            "INSERT INTO consensus_requests (kind, value, hold_until, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(target_key(target))
        .bind(hold_until)
        .bind(at)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn withdraw_reports(&self, machine: MachineKey, value: IpNet, at: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted: Vec<i64> = sqlx::query_scalar("DELETE FROM signals WHERE machine_id = $1 AND value = $2 RETURNING id")
            .bind(machine.0)
            .bind(display_target(value))
            .fetch_all(&mut *tx)
            .await?;
        if let Some(up_to) = deleted.iter().max() {
            sqlx::query(
                "INSERT INTO consensus_requests (kind, value, machine_id, up_to_signal, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(RequestKind::Withdraw.as_str())
            .bind(target_key(value))
            .bind(machine.0)
            .bind(up_to)
            .bind(at)
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
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConsensusRequest {
                    id: row.try_get("id")?,
                    kind: decoded(row, "kind", RequestKind::from_stored)?,
                    value: decoded(row, "value", parse_target)?,
                    hold_until: row.try_get("hold_until")?,
                    machine: row.try_get::<Option<i64>, _>("machine_id")?.map(MachineKey),
                    up_to_signal: row.try_get("up_to_signal")?,
                })
            })
            .collect()
    }

    async fn acquire_leadership(&self) -> Result<Option<Leadership>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut *conn).await?;
        if held {
            // The lock lives as long as this session: take the connection out of the pool, so
            // dropping the leadership closes it and releases the lock.
            Ok(Some(Leadership::holding(conn.detach())))
        } else {
            Ok(None)
        }
    }
}
