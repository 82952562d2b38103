//! Machines: creation, lookup by login, logins, metrics pushes, the sensor flag, list
//! subscriptions, what each was last sent on the CrowdSec stream and when it last contributed.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{LoginRecord, Machine, MachineKey, NewMachine, StoreError};

/// What Palisade stores about machines (agents and sensors).
#[async_trait]
pub trait MachineStore: Send + Sync {
    /// Creates a machine; `Conflict` when the login exists.
    async fn create_machine(&self, machine: &NewMachine) -> Result<MachineKey, StoreError>;

    /// Finds a machine by login.
    async fn machine_by_login(&self, machine_id: &str) -> Result<Option<Machine>, StoreError>;

    /// Lists every machine, oldest first.
    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError>;

    /// Records a successful login.
    async fn record_login(&self, machine: MachineKey, login: &LoginRecord) -> Result<(), StoreError>;

    /// Stores a metrics push and the agent version it carries.
    async fn record_metrics(
        &self,
        machine: MachineKey,
        kind: &str,
        version: Option<&str>,
        payload: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks or unmarks a machine as a sensor; `NotFound` for an unknown login.
    async fn set_machine_sensor(&self, machine_id: &str, sensor: bool) -> Result<(), StoreError>;

    /// What a machine was last sent on the CrowdSec v2 stream.
    async fn machine_stream_seq(&self, machine: MachineKey) -> Result<Option<i64>, StoreError>;

    /// Records what a machine was sent on the CrowdSec v2 stream.
    async fn set_machine_stream_seq(&self, machine: MachineKey, seq: i64) -> Result<(), StoreError>;

    /// When the newest signal of a machine was received ("give to get": whether it contributes).
    async fn machine_last_signal_at(&self, machine: MachineKey) -> Result<Option<OffsetDateTime>, StoreError>;

    /// The lists a machine is subscribed to, by name.
    async fn machine_subscriptions(&self, machine: MachineKey) -> Result<Vec<String>, StoreError>;

    /// Subscribes a machine to a list or ends the subscription; `NotFound` for an unknown machine or list.
    async fn set_list_subscription(&self, machine_id: &str, list: &str, subscribed: bool) -> Result<(), StoreError>;
}
