//! Machines: creation, lookup by login, logins, metrics pushes, the sensor flag, list
//! subscriptions, what each was last sent on the CrowdSec stream and when it last contributed,
//! the network each self-registered machine came from.
//! The [`MachineStore`] trait and the records it reads and writes; of the store's files it
//! imports only `keys` and `error`.

use async_trait::async_trait;
use ipnet::IpNet;
use time::OffsetDateTime;

use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};

/// What Palisade stores about machines (agents and sensors).
#[async_trait]
pub trait MachineStore: Send + Sync {
    /// Creates a machine; `Conflict` when the login exists.
    async fn create_machine(&self, machine: &NewMachine) -> Result<MachineKey, StoreError>;

    /// Finds a machine by login (deleted machines are not found). Its signals are not counted
    /// (`signal_count` is `None`): this read serves every login, pull and report, and must not
    /// grow with the machine's history; [`MachineStore::machine_signal_count`] counts them.
    async fn machine_by_login(&self, machine_id: &str) -> Result<Option<Machine>, StoreError>;

    /// Lists every machine but the deleted, oldest first, each with its signals counted.
    async fn list_machines(&self) -> Result<Vec<Machine>, StoreError>;

    /// The machines of `keys` (unknown keys left out), oldest first: what a request about a few
    /// machines reads, at a cost that grows with `keys`, not with every machine stored (nor with
    /// their signals: `signal_count` is `None`).
    async fn machines_by_keys(&self, keys: &[MachineKey]) -> Result<Vec<Machine>, StoreError>;

    /// How many signals are stored from `machine`.
    async fn machine_signal_count(&self, machine: MachineKey) -> Result<u64, StoreError>;

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

    /// Records the client network a self-registered machine registered from.
    async fn set_registration_network(&self, machine: MachineKey, network: IpNet) -> Result<(), StoreError>;

    /// How many machines registered from `network` were created at or after `since`.
    async fn count_registrations(&self, network: IpNet, since: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Who created a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedBy {
    /// Self-registered through `POST /watchers`.
    Register,
    /// Created by the operator.
    Operator,
}

impl CreatedBy {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedBy::Register => "register",
            CreatedBy::Operator => "operator",
        }
    }
}

impl std::str::FromStr for CreatedBy {
    type Err = StoreError;

    /// The inverse of [`CreatedBy::as_str`]; any other text is [`StoreError::Corrupt`].
    fn from_str(text: &str) -> Result<Self, StoreError> {
        match text {
            "register" => Ok(CreatedBy::Register),
            "operator" => Ok(CreatedBy::Operator),
            other => Err(StoreError::corrupt("machines.created_by", other)),
        }
    }
}

/// A machine to create.
#[derive(Debug, Clone)]
pub struct NewMachine {
    /// Login.
    pub machine_id: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Operator's sensor.
    pub sensor: bool,
    /// Who created it.
    pub created_by: CreatedBy,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A stored machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Internal id.
    pub key: MachineKey,
    /// Login.
    pub machine_id: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Account it is enrolled in.
    pub account: Option<AccountKey>,
    /// Account name, when enrolled.
    pub account_name: Option<String>,
    /// Display name given at enrollment.
    pub display_name: Option<String>,
    /// Operator's sensor.
    pub sensor: bool,
    /// Who created it.
    pub created_by: CreatedBy,
    /// Trust in [0, 1].
    pub trust: f64,
    /// Scenarios declared at the last login.
    pub scenarios: Vec<String>,
    /// Network of the last login.
    pub origin_prefix: Option<String>,
    /// Version from the last metrics push.
    pub version: Option<String>,
    /// `User-Agent` of the last login (truncated), which names the agent and its version before
    /// any metrics push does.
    pub user_agent: Option<String>,
    /// Signals stored from it, when the read counted them ([`MachineStore::list_machines`]).
    pub signal_count: Option<u64>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last successful login.
    pub last_login_at: Option<OffsetDateTime>,
    /// When the operator disabled (or deleted) it: its login and tokens are refused.
    pub disabled_at: Option<OffsetDateTime>,
}

/// What a login records about the machine.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    /// Scenarios declared.
    pub scenarios: Vec<String>,
    /// Network the login came from.
    pub origin_prefix: IpNet,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// Server time.
    pub at: OffsetDateTime,
}
