//! The consensus worker's storage: the signals and machines it reads, its persisted engine
//! state and watermark, the atomic commit of a step, requests queued for the leader, leadership.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    ConsensusCommit, ConsensusRequest, ConsensusSnapshot, EngineMachine, EngineSignal, Leadership, MachineKey, StoreError,
};

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
    async fn engine_machine(&self, machine: MachineKey) -> Result<Option<String>, StoreError>;

    /// The engine's stored state of one target, if any.
    async fn engine_target(&self, target: &str) -> Result<Option<String>, StoreError>;

    /// Queues a request for the consensus leader (e.g. `false_positive`).
    async fn queue_consensus_request(&self, kind: &str, value: &str, at: OffsetDateTime) -> Result<i64, StoreError>;

    /// Requests not yet carried out, oldest first.
    async fn pending_consensus_requests(&self) -> Result<Vec<ConsensusRequest>, StoreError>;

    /// Takes the consensus leadership if nobody holds it. PostgreSQL: a session advisory lock held
    /// by a dedicated connection (released when it closes); SQLite: always granted (one process).
    async fn acquire_leadership(&self) -> Result<Option<Leadership>, StoreError>;
}
