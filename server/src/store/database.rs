//! The database itself, apart from what it stores: its engine, its migrations, its health.

use async_trait::async_trait;

use super::error::StoreError;
use crate::config::Backend;

/// The database itself: which engine it is, its migrations, whether it answers.
#[async_trait]
pub trait Database: Send + Sync {
    /// The engine behind this store.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Whether Palisade's migrations have ever run here: the difference between the server's
    /// database and an empty one someone pointed a command at by mistake.
    async fn initialised(&self) -> Result<bool, StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
