//! The store conformance suite: one set of behaviour checks, written once against `&dyn Store`,
//! run on a fresh SQLite database always and on a fresh PostgreSQL database when `DATABASE_URL`
//! names a server. It owns the contract both backends must honour (what each [`Store`] method
//! returns, stores and refuses); it must not test one backend's internals. This file holds the
//! harness (the backends under test, fixtures, the database's own lifecycle) and one child per
//! capability (`conformance/machines.rs`, …, `conformance/revocations.rs`, plus `text.rs` for the free text every capability
//! stores). The few facts the trait cannot read back (metrics payloads, enrollment tags, user
//! agents, tampered rows) are checked with a plain query on the shared column names
//! (`raw_text`, `raw_execute`). Every method of every capability trait is called somewhere in
//! the suite; `every_store_method_is_exercised_by_this_suite` fails when one is not.

mod accounts;
mod audit;
mod consensus;
mod feeds;
mod lists;
mod machines;
mod pools;
mod revocations;
mod signals;
mod stats;
mod text;

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::{
    ChangeOp, CreatedBy, Enrichment, EnrollOutcome, InsertOutcome, LoginRecord, MachineKey, NewMachine, NewSignal, Origin,
    ReportQuery, ReportSummary, RequestKind, SignalFilter, Store, StoreError, StoredSignal, open,
};
use crate::config::Backend;
use crate::domain::level::Level;
use crate::domain::listing::{Remediation, Rule};
use crate::domain::net::{display_target, list_target};
use crate::domain::signal::{Scope, SignalReport, SignalRules, parse_item};
use crate::engine::TargetState;
use crate::engine::trust::MachineState;
use crate::testing::TestDb;

/// A reference time with microsecond precision, the finest both engines keep.
const T0: OffsetDateTime = datetime!(2026-11-25 12:00:00.123456 UTC);

/// One backend under test. The store is declared first so it closes before its database drops.
struct Subject {
    store: Arc<dyn Store>,
    db: TestDb,
}

impl Subject {
    fn label(&self) -> &'static str {
        self.db.label()
    }

    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// Every backend this machine offers, each on a fresh, migrated database.
async fn subjects() -> Vec<Subject> {
    let mut subjects = Vec::new();
    for db in TestDb::all().await {
        let store = open(&db.url).await.unwrap_or_else(|e| panic!("{}: cannot open the store: {e}", db.label()));
        store.migrate().await.unwrap_or_else(|e| panic!("{}: cannot migrate: {e}", db.label()));
        subjects.push(Subject { store, db });
    }
    subjects
}

fn new_machine(login: &str, created_at: OffsetDateTime) -> NewMachine {
    NewMachine {
        machine_id: login.into(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$hash-of-{login}"),
        sensor: false,
        created_by: CreatedBy::Register,
        created_at,
    }
}

async fn machine(store: &dyn Store, login: &str) -> MachineKey {
    store.create_machine(&new_machine(login, T0)).await.expect("create machine")
}

fn rules() -> SignalRules {
    SignalRules {
        now: T0,
        max_age: Duration::days(60),
        max_clock_skew: Duration::hours(24),
        min_v4_prefix: 16,
        min_v6_prefix: 32,
    }
}

/// A CrowdSec signal item about `value`, told apart from its siblings by `message`.
fn item(scope: &str, value: &str, message: &str) -> Value {
    json!({
        "machine_id": "agent-1", "message": message, "scenario": "crowdsecurity/ssh-bf",
        "scenario_hash": "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f",
        "scenario_trust": "certified", "scenario_version": "0.3",
        "source": {"ip": value, "scope": scope, "value": value},
        "start_at": "2026-11-25T11:59:19.290101Z", "stop_at": "2026-11-25T11:59:20.292055Z",
        "uuid": "c0d1e2f3-0000-4000-8000-000000000001",
        "decisions": [{"duration": "4h", "origin": "crowdsec", "scenario": "crowdsecurity/ssh-bf", "scope": "Ip", "type": "ban"}],
        "kind": "crowdsec"
    })
}

fn report(raw: Value) -> SignalReport {
    parse_item(&raw.to_string(), &rules()).expect("the test item is valid")
}

fn ip_report(value: &str, message: &str) -> SignalReport {
    report(item("Ip", value, message))
}

fn signal(machine: MachineKey, report: SignalReport) -> NewSignal {
    NewSignal {
        machine,
        report,
        origin: Origin { ip: ip("81.2.69.160"), prefix: net("81.2.69.0/24"), asn: Some(20712) },
        enrichment: Enrichment {
            as_number: Some(63949),
            as_name: Some("Akamai Connected Cloud".into()),
            country: Some("US".into()),
        },
        received_at: T0,
    }
}

/// `n` distinct signals from one machine, each about its own address.
fn batch(machine: MachineKey, n: usize) -> Vec<NewSignal> {
    (0..n).map(|i| signal(machine, ip_report(&format!("45.{}.{}.{}", 33 + i / 65536, i / 256 % 256, i % 256), "ssh"))).collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("test network")
}

/// A list value as the store keeps it: an address or a range.
fn listed(text: &str) -> IpNet {
    list_target(text).expect("test address or range")
}

fn all_signals() -> SignalFilter {
    SignalFilter { limit: 100_000, ..SignalFilter::default() }
}

async fn list(store: &dyn Store, filter: &SignalFilter) -> Vec<StoredSignal> {
    store.list_signals(filter).await.expect("list signals")
}

fn values(signals: &[StoredSignal]) -> Vec<&str> {
    signals.iter().map(|s| s.value.as_str()).collect()
}

fn json_value(label: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{label}: stored JSON does not parse ({e}): {text}"))
}

/// Asserts a stored signal says everything the sent one did, at the stores' microsecond precision.
fn assert_stored_as_sent(label: &str, stored: &StoredSignal, sent: &NewSignal, login: &str) {
    let report = &sent.report;
    let value = report.value_text();
    let what = format!("{label}: signal about {value}");
    assert_eq!(stored.machine_id, login, "{what}: machine_id");
    assert_eq!(stored.agent, report.agent, "{what}: agent");
    assert_eq!(stored.scope, report.scope, "{what}: scope");
    assert_eq!(stored.value, value, "{what}: value");
    assert_eq!(stored.scenario, report.scenario, "{what}: scenario");
    assert_eq!(stored.scenario_hash, report.scenario_hash, "{what}: scenario_hash");
    assert_eq!(stored.scenario_version, report.scenario_version, "{what}: scenario_version");
    assert_eq!(stored.scenario_trust, report.scenario_trust, "{what}: scenario_trust");
    assert_eq!(stored.message, report.message, "{what}: message");
    assert_eq!(stored.alert_uuid, report.alert_uuid, "{what}: alert_uuid");
    assert_eq!(stored.start_at, report.start_at, "{what}: start_at");
    assert_eq!(stored.stop_at, report.stop_at, "{what}: stop_at");
    assert_eq!(stored.received_at, sent.received_at, "{what}: received_at");
    assert_eq!(stored.origin_ip, sent.origin.ip, "{what}: origin_ip");
    assert_eq!(stored.origin_prefix, sent.origin.prefix, "{what}: origin_prefix");
    assert_eq!(stored.origin_asn, sent.origin.asn, "{what}: origin_asn");
    assert_eq!(stored.enrichment, sent.enrichment, "{what}: enrichment");
    // JSON is compared as JSON: PostgreSQL's jsonb keeps the content but not the spelling.
    assert_eq!(json_value(label, &stored.extra), json_value(label, &report.extra), "{what}: extra");
}

#[tokio::test]
async fn migrating_twice_is_harmless_and_the_store_answers_pings() {
    for s in subjects().await {
        let label = s.label();
        s.store().migrate().await.unwrap_or_else(|e| panic!("{label}: second migrate: {e}"));
        s.store().ping().await.unwrap_or_else(|e| panic!("{label}: ping: {e}"));
        assert_eq!(s.store().backend(), s.db.backend, "{label}: backend");
        assert!(s.store().initialised().await.expect("initialised"), "{label}: a migrated store is initialised");
    }
    // A database nobody migrated is not, and opening it as an existing one finds none.
    let empty = crate::testing::TestDb::sqlite();
    let store = crate::store::open(&empty.url).await.expect("open");
    assert!(!store.initialised().await.expect("initialised"), "an empty SQLite file");
    assert!(crate::store::open_existing(&empty.url).await.expect("open existing").is_none());
    if let Some(empty) = crate::testing::TestDb::postgres_empty().await {
        let store = crate::store::open(&empty.url).await.expect("open");
        assert!(!store.initialised().await.expect("initialised"), "an empty PostgreSQL database");
        assert!(crate::store::open_existing(&empty.url).await.expect("open existing").is_none());
    }
    let missing = crate::config::Secret::new("sqlite:///nonexistent/palisade/palisade.db");
    assert!(crate::store::open_existing(&missing).await.expect("nothing to open").is_none());
    assert!(!std::path::Path::new("/nonexistent/palisade").exists(), "nothing created");
}

#[tokio::test]
async fn a_fresh_store_is_empty() {
    for s in subjects().await {
        let label = s.label();
        assert!(s.store().list_machines().await.expect("list machines").is_empty(), "{label}: machines");
        assert!(s.store().list_accounts().await.expect("list accounts").is_empty(), "{label}: accounts");
        assert!(list(s.store(), &all_signals()).await.is_empty(), "{label}: signals");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: count");
    }
}

/// Runs a query returning one text column, on whichever engine `db` is.
async fn raw_text(db: &TestDb, sql: &str) -> Vec<String> {
    let url = db.url.expose();
    let rows = match db.backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url).expect("sqlite url").connect().await.expect("connect");
            sqlx::query_scalar(AssertSqlSafe(sql)).fetch_all(&mut conn).await
        }
        Backend::Postgres => {
            let mut conn = PgConnectOptions::from_str(url).expect("postgres url").connect().await.expect("connect");
            sqlx::query_scalar(AssertSqlSafe(sql)).fetch_all(&mut conn).await
        }
    };
    rows.unwrap_or_else(|e| panic!("{}: {sql}: {e}", db.label()))
}

/// Runs a statement that returns nothing, on whichever engine `db` is.
async fn raw_execute(db: &TestDb, sql: &str) {
    let url = db.url.expose();
    let done = match db.backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url).expect("sqlite url").connect().await.expect("connect");
            sqlx::query(AssertSqlSafe(sql.to_string())).execute(&mut conn).await.map(drop)
        }
        Backend::Postgres => {
            let mut conn = PgConnectOptions::from_str(url).expect("postgres url").connect().await.expect("connect");
            sqlx::query(AssertSqlSafe(sql.to_string())).execute(&mut conn).await.map(drop)
        }
    };
    done.unwrap_or_else(|e| panic!("{}: {sql}: {e}", db.label()));
}

fn received(machine: MachineKey, value: &str, at: OffsetDateTime) -> NewSignal {
    NewSignal { received_at: at, ..signal(machine, ip_report(value, "lifecycle")) }
}

/// Every capability method has a test here: the method names are read from the trait files and
/// each must be called somewhere in this suite, so a new method without a test fails the build.
#[test]
fn every_store_method_is_exercised_by_this_suite() {
    let traits = [
        include_str!("../store.rs"),
        include_str!("database.rs"),
        include_str!("machines.rs"),
        include_str!("accounts.rs"),
        include_str!("signals.rs"),
        include_str!("consensus.rs"),
        include_str!("lists.rs"),
        include_str!("stats.rs"),
        include_str!("revocations.rs"),
        include_str!("pools.rs"),
        include_str!("feeds.rs"),
        include_str!("audit.rs"),
    ];
    let suite = [
        include_str!("conformance.rs"),
        include_str!("conformance/machines.rs"),
        include_str!("conformance/accounts.rs"),
        include_str!("conformance/signals.rs"),
        include_str!("conformance/text.rs"),
        include_str!("conformance/consensus.rs"),
        include_str!("conformance/lists.rs"),
        include_str!("conformance/stats.rs"),
        include_str!("conformance/revocations.rs"),
        include_str!("conformance/pools.rs"),
        include_str!("conformance/feeds.rs"),
        include_str!("conformance/audit.rs"),
    ]
    .concat();
    let mut methods = Vec::new();
    for source in traits {
        let mut in_trait = false;
        for line in source.lines() {
            if line.starts_with("pub trait ") {
                in_trait = true;
            } else if line == "}" {
                in_trait = false;
            } else if in_trait
                && let Some(rest) = line.trim_start().strip_prefix("async fn ").or(line.trim_start().strip_prefix("fn "))
            {
                methods.push(rest.split(['(', '<']).next().unwrap_or_default().to_string());
            }
        }
    }
    assert!(methods.len() >= 60, "the method names were not found: {methods:?}");
    let untested: Vec<&String> = methods.iter().filter(|name| !suite.contains(&format!(".{name}("))).collect();
    assert!(untested.is_empty(), "store methods without a conformance test: {untested:?}");
}
