//! Test support shared by the server's own tests, the end-to-end tests and the benchmarks:
//! fresh databases on every backend this machine offers, cleaned up afterwards, and free ports
//! for the programs a test must tell where to listen.
//!
//! SQLite is always available. PostgreSQL is used when `DATABASE_URL` names a server (each test
//! gets its own freshly created database, dropped when the guard drops). Redis likewise from
//! `REDIS_URL`. When a service is missing, a test skips with a printed notice, except under
//! `CI=true`, where a missing service is a failure: nothing skips in CI.
//!
//! A PostgreSQL test database is a copy of a template that the migrations were applied to once
//! (`CREATE DATABASE … TEMPLATE`, a file copy), not a fresh run of every migration. The template
//! is named by a digest of the migrations and the UTC day, so changed migrations and a clone made
//! on a later day (the signal partitions the migrations create are dated) never reuse a stale
//! one; it is made under an advisory lock and marked complete only after migrating, so test
//! processes running at once share it safely. Templates of earlier days are dropped.

pub mod mmdb;

use std::str::FromStr;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

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

    /// A fresh PostgreSQL database on the server `DATABASE_URL` names, or `None` (skip notice) when
    /// unset. It is a copy of the migrated template, so it is already migrated.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = service_url("DATABASE_URL", "PostgreSQL")?;
        let name = format!("palisade_test_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&admin_url).expect("DATABASE_URL is not a PostgreSQL URL");
        let mut conn = options.connect().await.expect("cannot connect to DATABASE_URL");
        // A template can vanish between making sure of it and copying it (another process drops
        // it once the day has changed): then it is made again.
        let mut attempts = 0;
        loop {
            let template = ensure_template(&mut conn, &options).await;
            let created =
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {template}"))).execute(&mut conn).await;
            match created {
                Ok(_) => break,
                Err(error) if attempts < 3 => {
                    eprintln!("notice: cannot copy the test template {template} ({error}); trying again");
                    attempts += 1;
                }
                Err(error) => panic!("cannot create a test database from the template {template}: {error}"),
            }
        }
        drop(conn.close().await);
        let url = options.database(&name).to_url_lossy().to_string();
        Some(TestDb { backend: Backend::Postgres, url: Secret::new(url), cleanup: Cleanup::Postgres { admin_url, name } })
    }

    /// A fresh, empty PostgreSQL database (what `createdb` makes: no Palisade tables), or `None`
    /// (skip notice) when `DATABASE_URL` is unset.
    pub async fn postgres_empty() -> Option<TestDb> {
        let admin_url = service_url("DATABASE_URL", "PostgreSQL")?;
        let name = format!("palisade_test_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&admin_url).expect("DATABASE_URL is not a PostgreSQL URL");
        let mut conn = options.connect().await.expect("cannot connect to DATABASE_URL");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("cannot create an empty test database");
        drop(conn.close().await);
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

/// The migrations every PostgreSQL store applies, embedded the same way the store embeds them.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Prefix of template names; what follows is `<migrations digest>_<YYYYMMDD>`.
const TEMPLATE_PREFIX: &str = "palisade_tpl_";

/// The comment set on a template once its migrations are complete; without it a template is
/// the remains of an interrupted run and is made again.
const TEMPLATE_COMPLETE: &str = "palisade test template: migrated";

/// Advisory lock (on the server's `DATABASE_URL` database) under which templates are made and dropped.
const TEMPLATE_LOCK: i64 = 0x7061_6c69_7470_6c00; // "palitpl\0"

/// A digest of the embedded migrations (versions, descriptions and checksums): it changes
/// whenever a migration is added or edited.
fn migrations_digest() -> String {
    let mut hasher = Sha256::new();
    for migration in MIGRATOR.iter() {
        hasher.update(migration.version.to_be_bytes());
        hasher.update(migration.description.as_bytes());
        hasher.update([0]);
        hasher.update(&*migration.checksum);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Makes sure today's template for the current migrations exists and is complete, making it
/// if not; returns its name. Runs under [`TEMPLATE_LOCK`], held on `conn` (the admin connection).
async fn ensure_template(conn: &mut PgConnection, admin: &PgConnectOptions) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let day = format!("{:04}{:02}{:02}", today.year(), u8::from(today.month()), today.day());
    let template = format!("{TEMPLATE_PREFIX}{}_{day}", migrations_digest());
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *conn)
        .await
        .expect("cannot take the template lock");
    let made = make_template(conn, admin, &template, &day).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(TEMPLATE_LOCK).execute(&mut *conn).await;
    if let Err(error) = made {
        panic!("cannot make the test template {template}: {error}");
    }
    unlocked.expect("cannot release the template lock");
    template
}

/// The part of [`ensure_template`] done under the lock.
async fn make_template(conn: &mut PgConnection, admin: &PgConnectOptions, template: &str, day: &str) -> Result<(), sqlx::Error> {
    // Templates of earlier days are never used again; one still being copied by a process that
    // began the day before is made again there (see `postgres`).
    let templates: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
        .bind(TEMPLATE_PREFIX)
        .fetch_all(&mut *conn)
        .await?;
    for old in templates.iter().filter(|name| name.rsplit('_').next().is_some_and(|d| d < day)) {
        // Without FORCE: a template someone is still connected to is left for a later run.
        drop(sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {old}"))).execute(&mut *conn).await);
    }
    let comment: Option<Option<String>> =
        sqlx::query_scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1")
            .bind(template)
            .fetch_optional(&mut *conn)
            .await?;
    match comment {
        Some(Some(comment)) if comment == TEMPLATE_COMPLETE => return Ok(()),
        Some(_) => {
            sqlx::query(AssertSqlSafe(format!("DROP DATABASE {template} WITH (FORCE)"))).execute(&mut *conn).await?;
        }
        None => {}
    }
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {template}"))).execute(&mut *conn).await?;
    // One connection, closed before the template is copied: a copy needs the template unused.
    let mut migrating = admin.clone().database(template).connect().await?;
    MIGRATOR.run(&mut migrating).await?;
    migrating.close().await?;
    sqlx::query(AssertSqlSafe(format!("COMMENT ON DATABASE {template} IS '{TEMPLATE_COMPLETE}'"))).execute(&mut *conn).await?;
    Ok(())
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

/// A TCP port on 127.0.0.1 that nothing listens on, for programs that must be told their port
/// rather than listen on port 0 and report it back (CrowdSec's local API, Redis, nginx).
///
/// The port is checked free and then handed to the program, so something else may take it in
/// between. A port from the kernel's ephemeral range (what binding port 0 gives) is exactly what
/// every concurrent outgoing connection and port-0 listener draws from, and one of them did take
/// it. So the port is drawn at random from below that range, where the kernel never hands out
/// ports by itself, and one test process never hands out the same port twice.
pub fn free_port() -> anyhow::Result<u16> {
    use std::collections::BTreeSet;
    use std::hash::{BuildHasher, RandomState};
    use std::sync::Mutex;

    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const FLOOR: u16 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(FLOOR).max(1);
    let start = RandomState::new().hash_one(std::process::id()) % u64::from(span);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for step in 0..u64::from(span) {
        let port = FLOOR + u16::try_from((start + step) % u64::from(span))?;
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free port on 127.0.0.1 between {FLOOR} and {ephemeral_low}")
}
