//! How storage fails: [`StoreError`], the one error every capability and backend returns.

/// Storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value already exists (e.g. a machine login).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A referenced row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database cannot be reached or the pool is exhausted: try again later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else the driver reported.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is outside the closed set its column may hold (e.g. an unknown
    /// `created_by`): the row was written by something other than Palisade, or by a newer version.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A stored value that does not decode, counted in `palisade_store_errors_total` like the
    /// driver's errors.
    pub(crate) fn corrupt(column: &str, text: &str) -> Self {
        metrics::counter!("palisade_store_errors_total", "kind" => "corrupt").increment(1);
        StoreError::Corrupt(format!("{column} = {text:?}"))
    }
}

/// Whether a PostgreSQL SQLSTATE says the connection or the server went away rather than that the
/// statement is wrong: class 08 (connection exception), 57P01 (terminating connection due to
/// administrator command: a fast shutdown), 57P02 (crash shutdown), 57P03 (cannot connect now:
/// starting up or shutting down), 53300 (too many connections). Trying again later can succeed.
pub fn connection_lost(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "53300")
}

/// Every driver error passes through here, so this is where `palisade_store_errors_total` counts
/// them by kind (a unique violation is an answer, not an error, and is not counted).
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                metrics::counter!("palisade_store_errors_total", "kind" => "unavailable").increment(1);
                StoreError::Unavailable(error)
            }
            sqlx::Error::Database(ref db) if db.code().is_some_and(|code| connection_lost(&code)) => {
                metrics::counter!("palisade_store_errors_total", "kind" => "unavailable").increment(1);
                StoreError::Unavailable(error)
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
            other => {
                metrics::counter!("palisade_store_errors_total", "kind" => "database").increment(1);
                StoreError::Database(other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::connection_lost;

    #[test]
    fn shutdown_and_connection_states_mean_unavailable_and_statement_errors_do_not() {
        for code in ["08000", "08003", "08006", "08001", "08004", "57P01", "57P02", "57P03", "53300"] {
            assert!(connection_lost(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "57014", "40001", "XX000"] {
            assert!(!connection_lost(code), "{code}");
        }
    }
}
