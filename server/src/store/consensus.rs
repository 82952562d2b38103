//! The consensus worker's storage: the signals and machines it reads, its persisted engine
//! state and watermark, the atomic commit of a step, requests queued for the leader, leadership.
//! The [`ConsensusStore`] trait and its records; the engine's state is typed here and kept as
//! JSON by helpers both backends share. Of the store's files it imports only `keys`, `error` and
//! `lists` (a commit carries list changes).

use std::str::FromStr;

use async_trait::async_trait;
use ipnet::IpNet;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::error::StoreError;
use super::keys::{AccountKey, MachineKey};
use super::lists::ListOp;
use crate::domain::level::Level;
use crate::engine::TargetState;
use crate::engine::trust::MachineState;

/// What the consensus worker reads and commits.
#[async_trait]
pub trait ConsensusStore: Send + Sync {
    /// Signals after `after`, in id order, as the consensus worker reads them.
    async fn signals_for_engine(&self, after: i64, limit: u32) -> Result<Vec<EngineSignal>, StoreError>;

    /// Every machine, as the engine needs it.
    async fn engine_machines(&self) -> Result<Vec<EngineMachine>, StoreError>;

    /// The consensus worker's persisted state.
    async fn consensus_snapshot(&self) -> Result<ConsensusSnapshot, StoreError>;

    /// Applies one consensus step atomically: engine state, trust, membership changes
    /// (each with the next seq) and the watermark.
    async fn commit_consensus(&self, commit: &ConsensusCommit) -> Result<(), StoreError>;

    /// The consensus worker's watermark alone (the last signal id it processed), without its state.
    async fn consensus_watermark(&self) -> Result<i64, StoreError>;

    /// The engine's stored state of one machine, if any.
    async fn engine_machine(&self, machine: MachineKey) -> Result<Option<MachineState>, StoreError>;

    /// The engine's stored state of one target, if any.
    async fn engine_target(&self, target: IpNet) -> Result<Option<TargetState>, StoreError>;

    /// Queues a request for the consensus leader (e.g. `false_positive`); `hold_until` is kept
    /// with it (a delisting's end of hold).
    async fn queue_consensus_request(
        &self,
        kind: RequestKind,
        target: IpNet,
        hold_until: Option<OffsetDateTime>,
        at: OffsetDateTime,
    ) -> Result<i64, StoreError>;

    /// Deletes `machine`'s signals of exactly `value` (a bare address or CIDR, canonical) and, if
    /// any were deleted, queues a [`RequestKind::Withdraw`] of that machine from the target with
    /// the highest deleted id, in one transaction: a signal the worker has already counted is
    /// always followed by the request that takes it back. Returns how many signals were deleted.
    async fn withdraw_reports(&self, machine: MachineKey, value: IpNet, at: OffsetDateTime) -> Result<u64, StoreError>;

    /// Requests not yet carried out, oldest first.
    async fn pending_consensus_requests(&self) -> Result<Vec<ConsensusRequest>, StoreError>;

    /// Takes the consensus leadership if nobody holds it. PostgreSQL: a session advisory lock held
    /// by a dedicated connection (released when it closes); SQLite: always granted (one process).
    async fn acquire_leadership(&self) -> Result<Option<Leadership>, StoreError>;
}

/// Machine facts the consensus engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineMachine {
    /// Internal id.
    pub key: MachineKey,
    /// Account, when enrolled.
    pub account: Option<AccountKey>,
    /// The account's verification level (`anonymous` without an account).
    pub level: Level,
    /// Operator's sensor.
    pub sensor: bool,
    /// Registration time.
    pub created_at: OffsetDateTime,
}

/// A signal as the consensus worker reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSignal {
    /// Monotonic id.
    pub id: i64,
    /// Reporter.
    pub machine: MachineKey,
    /// Canonical value (address or CIDR).
    pub value: String,
    /// Scenario.
    pub scenario: String,
    /// Scenario trust as sent.
    pub scenario_trust: String,
    /// Reporter's /24 or /48.
    pub origin_prefix: String,
    /// Reporter's AS, when known.
    pub origin_asn: Option<u32>,
    /// Server receive time.
    pub received_at: OffsetDateTime,
    /// Whether the reporter is a sensor now, as the store has it when the batch is read (`None`
    /// for a machine since deleted): an operator's change made before the signal was sent is
    /// seen by the signal, whatever the worker's refresh period.
    pub reporter_sensor: Option<bool>,
    /// The reporter's account as the store has it when the batch is read (`None` without one, or
    /// for a machine since deleted): a machine enrolled just before it reports is weighed, and
    /// pooled, with its account.
    pub reporter_account: Option<AccountKey>,
}

/// The consensus worker's persisted state: its watermark and the engine's state (which the store
/// keeps as JSON).
#[derive(Debug, Clone, Default)]
pub struct ConsensusSnapshot {
    /// Last processed signal id.
    pub watermark: i64,
    /// Per-machine engine state.
    pub machines: Vec<(MachineKey, MachineState)>,
    /// Per-target engine state.
    pub targets: Vec<(IpNet, TargetState)>,
}

impl ConsensusSnapshot {
    /// A snapshot from its stored rows: `(machine id, state)` and `(target, state)`. A row that no
    /// longer reads (written by another version, or by hand) is left out, logged and counted as
    /// corrupt, rather than failing the load: the engine rebuilds that state from the reports
    /// that follow.
    pub(super) fn from_rows(watermark: i64, machines: Vec<(i64, String)>, targets: Vec<(String, String)>) -> Self {
        let machines = machines
            .into_iter()
            .filter_map(|(key, text)| match state_from::<MachineState>("engine_machines.state", &text) {
                Ok(state) => Some((MachineKey(key), state)),
                Err(error) => {
                    tracing::warn!(machine = key, %error, "discarding unreadable engine state");
                    None
                }
            })
            .collect();
        let targets = targets
            .into_iter()
            .filter_map(|(target, text)| {
                let parsed = IpNet::from_str(&target)
                    .map_err(|_| StoreError::corrupt("engine_targets.target", &target))
                    .and_then(|net| Ok((net, state_from::<TargetState>("engine_targets.state", &text)?)));
                match parsed {
                    Ok(parsed) => Some(parsed),
                    Err(error) => {
                        tracing::warn!(target, %error, "discarding unreadable engine state");
                        None
                    }
                }
            })
            .collect();
        ConsensusSnapshot { watermark, machines, targets }
    }
}

/// The stored (JSON) form of an engine state, the same text for both backends.
pub(super) fn state_text<T: Serialize>(state: &T) -> Result<String, StoreError> {
    serde_json::to_string(state).map_err(|error| StoreError::Corrupt(format!("engine state does not serialise: {error}")))
}

/// An engine state read back from its stored form; text that does not decode is corrupt.
pub(super) fn state_from<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::corrupt(column, text))
}

/// The stored key of an engine target: its network in CIDR form, a single address included
/// (`1.2.3.4/32`, unlike a list value).
pub(super) fn target_key(target: IpNet) -> String {
    target.to_string()
}

/// One consensus step, committed atomically with the new watermark.
#[derive(Debug, Clone)]
pub struct ConsensusCommit {
    /// Last processed signal id.
    pub watermark: i64,
    /// Changed machine states and their trust.
    pub machines: Vec<(MachineKey, MachineState, f64)>,
    /// Changed target states, `None` to forget one.
    pub targets: Vec<(IpNet, Option<TargetState>)>,
    /// Consensus requests carried out by this step.
    pub done_requests: Vec<i64>,
    /// Membership changes, in order.
    pub list_ops: Vec<ListOp>,
    /// When.
    pub at: OffsetDateTime,
}

/// A request for the consensus leader.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsensusRequest {
    /// Id, marked done in the commit that carries it out.
    pub id: i64,
    /// What is asked.
    pub kind: RequestKind,
    /// Target (stored in CIDR form, as an engine target's key).
    pub value: IpNet,
    /// A delisting's hold: the target stays off the list until then.
    pub hold_until: Option<OffsetDateTime>,
    /// The machine a [`RequestKind::Withdraw`] takes out of the target; `None` for the others.
    pub machine: Option<MachineKey>,
    /// A withdrawal's highest deleted signal id: the machine's signals of the target with higher
    /// ids came after it and still count. `None` for the other kinds.
    pub up_to_signal: Option<i64>,
}

/// What a request asks of the consensus leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// The operator upholds a false-positive report: the target is delisted and protected.
    FalsePositive,
    /// The operator delists the target without blaming its reporters: it leaves the list, its
    /// evidence so far is dropped, and it may be held off the list for a while.
    Delist,
    /// One machine's reports of the target were taken back (an AbuseIPDB key cleared its
    /// reports of the address): its reporter entry leaves the target, which is evaluated again
    /// without it. Nobody's trust changes.
    Withdraw,
}

impl RequestKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::FalsePositive => "false_positive",
            RequestKind::Delist => "delist",
            RequestKind::Withdraw => "withdraw",
        }
    }

    /// The inverse of [`RequestKind::as_str`].
    pub fn from_stored(text: &str) -> Option<RequestKind> {
        match text {
            "false_positive" => Some(RequestKind::FalsePositive),
            "delist" => Some(RequestKind::Delist),
            "withdraw" => Some(RequestKind::Withdraw),
            _ => None,
        }
    }
}

/// Proof of holding the consensus leadership.
pub struct Leadership {
    connection: Option<sqlx::PgConnection>,
}

impl Leadership {
    /// Leadership held by a PostgreSQL session lock on `connection`.
    pub fn holding(connection: sqlx::PgConnection) -> Self {
        Leadership { connection: Some(connection) }
    }

    /// Leadership of a single-process (SQLite) deployment.
    pub fn local() -> Self {
        Leadership { connection: None }
    }

    /// Whether the lock is still held (the connection holding it still answers).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
        }
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("distributed", &self.connection.is_some()).finish()
    }
}
