//! Test support shared by the server's own tests, the end-to-end tests and the benchmarks:
//! fresh databases on every backend this machine offers, cleaned up afterwards.
//!
//! SQLite is always available. PostgreSQL is used when `DATABASE_URL` names a server (each test
//! gets its own freshly created database, dropped when the guard drops). Redis likewise from
//! `REDIS_URL`. When a service is missing, a test skips with a printed notice, except under
//! `CI=true`, where a missing service is a failure: nothing skips in CI.

pub mod mmdb;

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions};

use crate::config::{Backend, Secret};

/// Whether we run in CI, where nothing may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// The value of a service URL variable, or `None` after printing a skip notice. Panics in CI.
pub fn service_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!("{var} is not set: {what} is required in CI"),
        _ => {
            eprintln!("notice: {var} is not set; skipping the {what} part of this test");
            None
        }
    }
}

/// A database for one test; dropping it removes it.
pub struct TestDb {
    /// Which engine.
    pub backend: Backend,
    /// URL to open it with.
    pub url: Secret,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[expect(dead_code, reason = "held for its Drop, which deletes the directory")] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh SQLite database in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("palisade.db").display());
        TestDb { backend: Backend::Sqlite, url: Secret::new(url), cleanup: Cleanup::Sqlite(dir) }
    }

    /// A fresh PostgreSQL database on the server `DATABASE_URL` names, or `None` (skip notice) when unset.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = service_url("DATABASE_URL", "PostgreSQL")?;
        let name = format!("palisade_test_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&admin_url).expect("DATABASE_URL is not a PostgreSQL URL");
        let mut conn = options.connect().await.expect("cannot connect to DATABASE_URL");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("cannot create a test database");
        drop(conn);
        let url = options.database(&name).to_url_lossy().to_string();
        Some(TestDb { backend: Backend::Postgres, url: Secret::new(url), cleanup: Cleanup::Postgres { admin_url, name } })
    }

    /// SQLite, plus PostgreSQL when available: run backend-generic tests over all of them.
    pub async fn all() -> Vec<TestDb> {
        let mut all = vec![TestDb::sqlite()];
        all.extend(TestDb::postgres().await);
        all
    }

    /// A short label for test output.
    pub fn label(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside async tests; do the async cleanup on a thread of its own.
            let joined = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async {
                    let mut conn = PgConnectOptions::from_str(&admin_url)?.connect().await?;
                    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await?;
                    Ok::<_, sqlx::Error>(())
                })?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
            .join();
            if !matches!(joined, Ok(Ok(()))) {
                eprintln!("warning: could not drop test database {}", self.label());
            }
        }
    }
}
