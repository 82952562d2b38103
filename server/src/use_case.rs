//! `UseCaseError`: how a use case ([`crate::lookup`], [`crate::distribution`], [`crate::manage`])
//! fails, in its own words rather than HTTP's. The HTTP edge turns it into an
//! [`crate::error::ApiError`] (one `From`, in `error.rs`) and the CLI prints it; each variant's
//! text is the message both show, so it is part of the contract and never reworded.
//!
//! A store failure is sorted at once into what it means to the caller (a conflict, a missing
//! row, an unavailable database, or a fault), so the edge needs no knowledge of the store.

use crate::store::StoreError;

/// Every way a use case can fail.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique value already exists.
    #[error("{0}")]
    Conflict(String),
    /// One input field is invalid.
    #[error("validation failed")]
    Invalid {
        /// The field, as the caller named it (`name`, `add[2]`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The input as a whole cannot be acted on (an address that is not one, nothing to act on).
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not have this.
    #[error("{0}")]
    Forbidden(String),
    /// A delta cursor older than the retained change log: the caller must start from the full list.
    #[error("{0}")]
    CursorExpired(String),
    /// The database is unreachable or saturated; trying again later may work.
    #[error("storage temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl UseCaseError {
    /// An invalid `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        UseCaseError::Invalid { field: field.into(), message: message.into() }
    }
}

impl From<StoreError> for UseCaseError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => UseCaseError::Conflict(what),
            StoreError::NotFound(what) => UseCaseError::NotFound(what),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                UseCaseError::Unavailable
            }
            other => UseCaseError::Internal(other.into()),
        }
    }
}

impl From<serde_json::Error> for UseCaseError {
    fn from(error: serde_json::Error) -> Self {
        UseCaseError::Internal(error.into())
    }
}
