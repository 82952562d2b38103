//! The gate every PostgreSQL statement of the store passes: it remembers that the server was
//! unreachable a moment ago and refuses at once while it is, so requests get their 503 without
//! waiting out the pool's acquire timeout (which retries a refused connection until it expires).
//! A refusal is an I/O error, so a `StoreError::Unavailable` like any lost connection. Once the short window has
//! passed, the next statement first probes the server (a connection from the pool within a
//! second); a successful [`Gate::probe`] (readiness) reopens it at once. It never changes what a
//! statement does when the server is up.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::postgres::{PgPool, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, Postgres, SqlStr, Transaction};
use time::OffsetDateTime;

/// How long the gate stays shut after the server was found unreachable.
pub const DOWN_FOR: Duration = Duration::from_secs(2);
/// How long a probe waits for a connection before calling the server unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(900);

/// The pool behind a circuit breaker; `&Gate` is an executor like `&PgPool`. Clones share the
/// pool and the state.
#[derive(Clone)]
pub struct Gate {
    pool: PgPool,
    /// Unix time in milliseconds until which statements are refused; 0 while the server is up.
    down_until_ms: Arc<AtomicI64>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate").field("pool", &self.pool).field("down_until_ms", &self.down_until_ms).finish()
    }
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn refused() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "PostgreSQL was unreachable moments ago; not waiting for it",
    ))
}

impl Gate {
    /// A gate over `pool`, open.
    pub fn new(pool: PgPool) -> Gate {
        Gate { pool, down_until_ms: Arc::new(AtomicI64::new(0)) }
    }

    /// The pool itself, for what must not be refused (migrations) and for raw access in tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether statements are refused right now.
    pub fn is_shut(&self) -> bool {
        now_ms() < self.down_until_ms.load(Ordering::Relaxed)
    }

    /// Notes the outcome of a statement: a lost connection shuts the gate for [`DOWN_FOR`].
    fn observe(&self, error: &sqlx::Error) {
        if unreachable(error) {
            self.shut();
        }
    }

    fn shut(&self) {
        let until = now_ms() + DOWN_FOR.as_millis() as i64;
        if self.down_until_ms.swap(until, Ordering::Relaxed) == 0 {
            tracing::warn!(down_for_ms = DOWN_FOR.as_millis() as u64, "PostgreSQL unreachable: failing fast");
        }
    }

    /// Asks the server for a connection within [`PROBE_TIMEOUT`]; opens or shuts the gate by the answer.
    pub async fn probe(&self) -> Result<(), sqlx::Error> {
        let answer = match tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(answer) => answer.map(drop),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        };
        match &answer {
            Ok(()) => {
                if self.down_until_ms.swap(0, Ordering::Relaxed) != 0 {
                    tracing::info!("PostgreSQL reachable again");
                }
            }
            Err(error) if unreachable(error) => self.shut(),
            Err(_) => {}
        }
        answer
    }

    /// Lets a statement through, refuses it while the gate is shut, and probes first once the
    /// window has passed after an outage.
    async fn admit(&self) -> Result<(), sqlx::Error> {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return Ok(());
        }
        if now_ms() < until {
            metrics::counter!("palisade_store_fail_fast_total").increment(1);
            return Err(refused());
        }
        self.probe().await
    }

    /// Begins a transaction, through the gate.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.admit().await?;
        self.pool.begin().await.inspect_err(|e| self.observe(e))
    }

    /// A connection of its own, through the gate.
    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, sqlx::Error> {
        self.admit().await?;
        self.pool.acquire().await.inspect_err(|e| self.observe(e))
    }
}

/// Whether an error says the server is out of reach (as [`StoreError`] classifies it).
fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| crate::store::error::connection_lost(&code)),
        _ => false,
    }
}

impl<'c> Executor<'c> for &'c Gate {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        futures::stream::once(async move { self.admit().await.map(|()| self.pool.fetch_many(query)) })
            .try_flatten()
            .inspect_err(move |e| self.observe(e))
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(async move {
            self.admit().await?;
            self.pool.fetch_optional(query).await.inspect_err(|e| self.observe(e))
        })
    }

    fn prepare_with<'e>(self, sql: SqlStr, parameters: &'e [PgTypeInfo]) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            self.admit().await?;
            self.pool.prepare_with(sql, parameters).await.inspect_err(|e| self.observe(e))
        })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            self.admit().await?;
            self.pool.describe(sql).await.inspect_err(|e| self.observe(e))
        })
    }
}
