//! SQLite's [`MachineStore`]. Row conversions and helpers shared with the other capabilities stay in
//! the backend's root module.

use super::*;
use crate::store::machines::MachineStore;

#[async_trait]
impl MachineStore for SqliteStore {
    async fn create_machine(&self, machine: &NewMachine) -> Result<MachineKey, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO machines (machine_id, password_hash, is_sensor, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(storable(&machine.machine_id))
        .bind(storable(&machine.password_hash))
        .bind(machine.sensor)
        .bind(machine.created_by.as_str())
        .bind(to_micros(machine.created_at))
        .fetch_one(&self.writer)
        .await?;
        Ok(MachineKey(id))
    }

    async fn machine_by_login(&self, machine_id: &str) -> Result<Option<Machine>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{MACHINE_SELECT} WHERE m.machine_id = ? AND m.deleted_at IS NULL")))
            .bind(storable(machine_id))
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(machine_from_row).transpose()?)
    }

    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{MACHINE_SELECT_COUNTED} WHERE m.deleted_at IS NULL ORDER BY m.id")))
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(machine_from_row).collect::<Result<_, _>>()?)
    }

    async fn machines_by_keys(&self, keys: &[MachineKey]) -> Result<Vec<Machine>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows =
            sqlx::query(AssertSqlSafe(format!("{MACHINE_SELECT} WHERE m.id IN (SELECT value FROM json_each(?)) ORDER BY m.id")))
                .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(machine_from_row).collect::<Result<_, _>>()?)
    }

    async fn machine_signal_count(&self, machine: MachineKey) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM signals WHERE machine_id = ?")
            .bind(machine.0)
            .fetch_one(&self.reader)
            .await?;
        Ok(count.max(0) as u64)
    }

    async fn record_login(&self, machine: MachineKey, login: &LoginRecord) -> Result<(), StoreError> {
        let scenarios = serde_json::to_string(&login.scenarios).unwrap_or_else(|_| "[]".into());
        sqlx::query("UPDATE machines SET scenarios = ?, origin_prefix = ?, user_agent = ?, last_login_at = ? WHERE id = ?")
            .bind(storable_json(&scenarios))
            .bind(login.origin_prefix.to_string())
            .bind(storable_opt(login.user_agent.as_deref()))
            .bind(to_micros(login.at))
            .bind(machine.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn record_metrics(
        &self,
        machine: MachineKey,
        kind: &str,
        version: Option<&str>,
        payload: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        // json() refuses what is not JSON, as PostgreSQL's jsonb does.
        sqlx::query("INSERT INTO machine_metrics (machine_id, kind, received_at, payload) VALUES (?, ?, ?, json(?))")
            .bind(machine.0)
            .bind(storable(kind))
            .bind(to_micros(at))
            .bind(storable_json(payload))
            .execute(&mut *tx)
            .await?;
        if let Some(version) = version {
            sqlx::query("UPDATE machines SET version = ? WHERE id = ?")
                .bind(storable(version))
                .bind(machine.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_machine_sensor(&self, machine_id: &str, sensor: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE machines SET is_sensor = ? WHERE machine_id = ?")
            .bind(sensor)
            .bind(machine_id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("machine {machine_id:?}")));
        }
        Ok(())
    }

    async fn machine_stream_seq(&self, machine: MachineKey) -> Result<Option<i64>, StoreError> {
        let seq: Option<Option<i64>> = sqlx::query_scalar("SELECT stream_seq FROM machines WHERE id = ?")
            .bind(machine.0)
            .fetch_optional(&self.reader)
            .await?;
        Ok(seq.flatten())
    }

    async fn set_machine_stream_seq(&self, machine: MachineKey, seq: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE machines SET stream_seq = ? WHERE id = ?").bind(seq).bind(machine.0).execute(&self.writer).await?;
        Ok(())
    }

    async fn machine_last_signal_at(&self, machine: MachineKey) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar("SELECT MAX(received_at) FROM signals WHERE machine_id = ?")
            .bind(machine.0)
            .fetch_one(&self.reader)
            .await?;
        Ok(at.map(from_micros))
    }

    async fn machine_subscriptions(&self, machine: MachineKey) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT list FROM list_subscriptions WHERE machine_id = ? ORDER BY list")
            .bind(machine.0)
            .fetch_all(&self.reader)
            .await?)
    }

    async fn set_list_subscription(&self, machine_id: &str, list: &str, subscribed: bool) -> Result<(), StoreError> {
        let machine: Option<i64> = sqlx::query_scalar("SELECT id FROM machines WHERE machine_id = ?")
            .bind(machine_id)
            .fetch_optional(&self.writer)
            .await?;
        let machine = machine.ok_or_else(|| StoreError::NotFound(format!("machine {machine_id}")))?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM custom_lists WHERE name = ?").bind(list).fetch_optional(&self.writer).await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("list {list}")));
        }
        let statement = if subscribed {
            "INSERT INTO list_subscriptions (machine_id, list) VALUES (?, ?) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM list_subscriptions WHERE machine_id = ? AND list = ?"
        };
        sqlx::query(statement).bind(machine).bind(list).execute(&self.writer).await?;
        Ok(())
    }

    async fn set_registration_network(&self, machine: MachineKey, network: IpNet) -> Result<(), StoreError> {
        sqlx::query("UPDATE machines SET registered_from = ? WHERE id = ?")
            .bind(network.to_string())
            .bind(machine.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn count_registrations(&self, network: IpNet, since: OffsetDateTime) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM machines WHERE registered_from = ? AND created_at >= ?")
            .bind(network.to_string())
            .bind(to_micros(since))
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
