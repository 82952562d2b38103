//! The store conformance suite: one set of behaviour checks, written once against `&dyn Store`,
//! run on a fresh SQLite database always and on a fresh PostgreSQL database when `DATABASE_URL`
//! names a server. It owns the contract both backends must honour (what each [`Store`] method
//! returns, stores and refuses); it must not test one backend's internals. The few facts the
//! trait cannot read back (metrics payloads, enrollment tags, user agents) are checked with a
//! plain query on the shared column names, in the last section. Every method of every capability
//! trait is called here; `every_store_method_is_exercised_by_this_suite` fails when one is not.

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
    RequestKind, SignalFilter, Store, StoreError, StoredSignal, open,
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
    parse_item(raw, &rules()).expect("the test item is valid")
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

// ---------------------------------------------------------------------------------------------
// Lifecycle

#[tokio::test]
async fn migrating_twice_is_harmless_and_the_store_answers_pings() {
    for s in subjects().await {
        let label = s.label();
        s.store().migrate().await.unwrap_or_else(|e| panic!("{label}: second migrate: {e}"));
        s.store().ping().await.unwrap_or_else(|e| panic!("{label}: ping: {e}"));
        assert_eq!(s.store().backend(), s.db.backend, "{label}: backend");
    }
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

// ---------------------------------------------------------------------------------------------
// Machines

#[tokio::test]
async fn created_machine_reads_back_by_login() {
    for s in subjects().await {
        let label = s.label();
        let mut new = new_machine("sensor-paris-1", datetime!(2026-11-25 14:00:00.654321 +02:00));
        new.sensor = true;
        new.created_by = CreatedBy::Operator;
        let key = s.store().create_machine(&new).await.expect("create");

        let machine = s.store().machine_by_login("sensor-paris-1").await.expect("lookup").expect("machine exists");
        assert_eq!(machine.key, key, "{label}: key");
        assert_eq!(machine.machine_id, "sensor-paris-1", "{label}: login");
        assert_eq!(machine.password_hash, new.password_hash, "{label}: password hash");
        assert!(machine.sensor, "{label}: sensor");
        assert_eq!(machine.created_by, CreatedBy::Operator, "{label}: created_by");
        assert_eq!(machine.created_at, new.created_at, "{label}: created_at");
        assert_eq!(machine.account, None, "{label}: account");
        assert_eq!(machine.account_name, None, "{label}: account name");
        assert_eq!(machine.display_name, None, "{label}: display name");
        assert_eq!(machine.trust, 0.0, "{label}: trust");
        assert!(machine.scenarios.is_empty(), "{label}: scenarios");
        assert_eq!(machine.origin_prefix, None, "{label}: origin prefix");
        assert_eq!(machine.version, None, "{label}: version");
        assert_eq!(machine.signal_count, 0, "{label}: signal count");
        assert_eq!(machine.last_login_at, None, "{label}: last login");

        let registered = s.store().create_machine(&new_machine("self-registered", T0)).await.expect("create");
        let machine = s.store().machine_by_login("self-registered").await.expect("lookup").expect("machine exists");
        assert_eq!(machine.key, registered, "{label}: key");
        assert!(!machine.sensor, "{label}: sensor");
        assert_eq!(machine.created_by, CreatedBy::Register, "{label}: created_by");
        assert_ne!(registered, key, "{label}: keys are distinct");
    }
}

#[tokio::test]
async fn unknown_login_is_none() {
    for s in subjects().await {
        let label = s.label();
        assert!(s.store().machine_by_login("nobody").await.expect("lookup").is_none(), "{label}: empty store");
        machine(s.store(), "somebody").await;
        assert!(s.store().machine_by_login("nobody").await.expect("lookup").is_none(), "{label}: other machine");
        assert!(s.store().machine_by_login("").await.expect("lookup").is_none(), "{label}: empty login");
    }
}

#[tokio::test]
async fn duplicate_machine_login_is_a_conflict() {
    for s in subjects().await {
        let label = s.label();
        let first = machine(s.store(), "watcher").await;
        let again = s.store().create_machine(&new_machine("watcher", T0 + Duration::hours(1))).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{label}: expected Conflict, got {again:?}");
        let machines = s.store().list_machines().await.expect("list");
        assert_eq!(machines.len(), 1, "{label}: the duplicate was not stored");
        assert_eq!(machines[0].key, first, "{label}: the first machine is intact");
        assert_eq!(machines[0].created_at, T0, "{label}: the first machine is intact");
    }
}

#[tokio::test]
async fn logins_are_case_sensitive() {
    for s in subjects().await {
        let label = s.label();
        machine(s.store(), "Watcher").await;
        assert!(s.store().machine_by_login("watcher").await.expect("lookup").is_none(), "{label}: lookup");
        s.store().create_machine(&new_machine("watcher", T0)).await.unwrap_or_else(|e| panic!("{label}: create: {e}"));
    }
}

#[tokio::test]
async fn machines_are_listed_oldest_first() {
    for s in subjects().await {
        let label = s.label();
        let logins = ["zulu", "alpha", "mike", "bravo"];
        let mut keys = Vec::new();
        for login in logins {
            keys.push(machine(s.store(), login).await);
        }
        let machines = s.store().list_machines().await.expect("list");
        let listed: Vec<&str> = machines.iter().map(|m| m.machine_id.as_str()).collect();
        assert_eq!(listed, logins, "{label}: order");
        assert_eq!(machines.iter().map(|m| m.key).collect::<Vec<_>>(), keys, "{label}: keys");
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{label}: keys increase");
    }
}

#[tokio::test]
async fn login_records_scenarios_origin_and_time() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let other = machine(s.store(), "bystander").await;
        let scenarios: Vec<String> =
            ["crowdsecurity/http-probing", "crowdsecurity/ssh-bf", "custom/ünïcode-scénario"].map(String::from).into();
        let first = LoginRecord {
            scenarios: scenarios.clone(),
            origin_prefix: net("81.2.69.0/24"),
            user_agent: Some("crowdsec/v1.6.3-debian-pragmatic".into()),
            at: T0 + Duration::minutes(5),
        };
        s.store().record_login(key, &first).await.expect("record login");
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.scenarios, scenarios, "{label}: scenarios");
        assert_eq!(machine.origin_prefix.as_deref(), Some("81.2.69.0/24"), "{label}: origin prefix");
        assert_eq!(machine.last_login_at, Some(first.at), "{label}: last login");
        assert_eq!(machine.created_at, T0, "{label}: creation time untouched");

        // The next login replaces what the previous one recorded, down to an empty scenario list.
        let second = LoginRecord {
            scenarios: Vec::new(),
            origin_prefix: net("2a00:1450:4001::/48"),
            user_agent: None,
            at: T0 + Duration::days(1) + Duration::microseconds(1),
        };
        s.store().record_login(key, &second).await.expect("record login");
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert!(machine.scenarios.is_empty(), "{label}: scenarios replaced");
        assert_eq!(machine.origin_prefix.as_deref(), Some("2a00:1450:4001::/48"), "{label}: IPv6 origin prefix");
        assert_eq!(machine.last_login_at, Some(second.at), "{label}: last login");

        let bystander = s.store().machine_by_login("bystander").await.expect("lookup").expect("exists");
        assert_eq!(bystander.key, other, "{label}: key");
        assert_eq!(bystander.last_login_at, None, "{label}: other machines untouched");
        assert!(bystander.scenarios.is_empty(), "{label}: other machines untouched");
    }
}

#[tokio::test]
async fn metrics_push_sets_the_version_and_a_push_without_one_keeps_it() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        machine(s.store(), "bystander").await;
        let payload = json!({"bouncers": [], "machines": [{"version": "v1.6.3"}], "apil_version": "v1.6.3"}).to_string();
        s.store().record_metrics(key, "metrics", Some("v1.6.3"), &payload, T0).await.expect("metrics");
        let watcher = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(watcher.version.as_deref(), Some("v1.6.3"), "{label}: version set");

        s.store().record_metrics(key, "usage", None, "{}", T0 + Duration::minutes(30)).await.expect("metrics");
        let watcher = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(watcher.version.as_deref(), Some("v1.6.3"), "{label}: no version leaves it unchanged");

        s.store().record_metrics(key, "usage", Some("v1.7.0"), "{}", T0 + Duration::hours(1)).await.expect("metrics");
        let watcher = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(watcher.version.as_deref(), Some("v1.7.0"), "{label}: a newer version replaces it");

        let bystander = s.store().machine_by_login("bystander").await.expect("lookup").expect("exists");
        assert_eq!(bystander.version, None, "{label}: other machines untouched");
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts and enrollment

#[tokio::test]
async fn created_account_reads_back_by_name() {
    for s in subjects().await {
        let label = s.label();
        let at = datetime!(2026-11-20 08:30:00.000001 UTC);
        let key = s.store().create_account("acme-sécurité", at).await.expect("create");
        let account = s.store().account_by_name("acme-sécurité").await.expect("lookup").expect("exists");
        assert_eq!(account.key, key, "{label}: key");
        assert_eq!(account.name, "acme-sécurité", "{label}: name");
        assert_eq!(account.level, Level::Anonymous, "{label}: default level");
        assert_eq!(account.machine_count, 0, "{label}: machine count");
        assert_eq!(account.created_at, at, "{label}: created_at");
        assert!(s.store().account_by_name("acme").await.expect("lookup").is_none(), "{label}: unknown name");
        assert!(s.store().account_by_name("ACME-SÉCURITÉ").await.expect("lookup").is_none(), "{label}: case matters");
    }
}

#[tokio::test]
async fn duplicate_account_name_is_a_conflict() {
    for s in subjects().await {
        let label = s.label();
        s.store().create_account("acme", T0).await.expect("create");
        let again = s.store().create_account("acme", T0).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{label}: expected Conflict, got {again:?}");
        assert_eq!(s.store().list_accounts().await.expect("list").len(), 1, "{label}: not stored twice");
    }
}

#[tokio::test]
async fn accounts_are_listed_in_creation_order_with_their_machine_counts() {
    for s in subjects().await {
        let label = s.label();
        let zeta = s.store().create_account("zeta", T0).await.expect("create");
        let alpha = s.store().create_account("alpha", T0 + Duration::seconds(1)).await.expect("create");
        for login in ["a", "b", "c"] {
            let key = machine(s.store(), login).await;
            let account = if login == "a" { zeta } else { alpha };
            s.store().enroll_machine(key, account, None, &[], false, T0).await.expect("enroll");
        }
        machine(s.store(), "unenrolled").await;
        let accounts = s.store().list_accounts().await.expect("list");
        let listed: Vec<(&str, u64)> = accounts.iter().map(|a| (a.name.as_str(), a.machine_count)).collect();
        assert_eq!(listed, [("zeta", 1), ("alpha", 2)], "{label}: order and counts");
        assert_eq!(accounts[0].key, zeta, "{label}: key");
        assert_eq!(accounts[1].key, alpha, "{label}: key");
    }
}

#[tokio::test]
async fn enroll_key_is_found_by_its_hash_only() {
    for s in subjects().await {
        let label = s.label();
        let account = s.store().create_account("acme", T0).await.expect("create");
        s.store().create_enroll_key(account, "sha256-of-the-key", "pl_ek_3f9a", T0).await.expect("create key");
        let key = s.store().enroll_key_by_hash("sha256-of-the-key").await.expect("lookup").expect("exists");
        assert_eq!(key.account, account, "{label}: account");
        assert_eq!(key.prefix, "pl_ek_3f9a", "{label}: prefix");
        assert!(!key.revoked, "{label}: a new key is not revoked");
        assert!(s.store().enroll_key_by_hash("sha256-of-another-key").await.expect("lookup").is_none(), "{label}: unknown");
        assert!(s.store().enroll_key_by_hash("pl_ek_3f9a").await.expect("lookup").is_none(), "{label}: prefix is no hash");
        let again = s.store().create_enroll_key(account, "sha256-of-the-key", "pl_ek_3f9a", T0).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{label}: expected Conflict, got {again:?}");
    }
}

#[tokio::test]
async fn enrolling_attaches_the_machine_to_the_account() {
    for s in subjects().await {
        let label = s.label();
        let account = s.store().create_account("acme", T0).await.expect("create");
        let key = machine(s.store(), "watcher").await;
        let outcome = s.store().enroll_machine(key, account, Some("edge-fw-1"), &["dmz".into()], false, T0).await;
        assert_eq!(outcome.expect("enroll"), EnrollOutcome::Enrolled, "{label}: outcome");
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.account, Some(account), "{label}: account");
        assert_eq!(machine.account_name.as_deref(), Some("acme"), "{label}: account name");
        assert_eq!(machine.display_name.as_deref(), Some("edge-fw-1"), "{label}: display name");
        let account = s.store().account_by_name("acme").await.expect("lookup").expect("exists");
        assert_eq!(account.machine_count, 1, "{label}: machine count");
    }
}

#[tokio::test]
async fn enrolling_again_without_overwrite_changes_nothing() {
    for s in subjects().await {
        let label = s.label();
        let first = s.store().create_account("first", T0).await.expect("create");
        let second = s.store().create_account("second", T0).await.expect("create");
        let key = machine(s.store(), "watcher").await;
        s.store().enroll_machine(key, first, Some("original"), &["a".into()], false, T0).await.expect("enroll");

        for account in [first, second] {
            let outcome = s.store().enroll_machine(key, account, Some("renamed"), &["b".into()], false, T0).await;
            assert_eq!(outcome.expect("enroll"), EnrollOutcome::AlreadyEnrolled, "{label}: outcome");
        }
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.account, Some(first), "{label}: still in the first account");
        assert_eq!(machine.display_name.as_deref(), Some("original"), "{label}: name untouched");
        assert_eq!(raw_text(&s.db, "SELECT CAST(tags AS TEXT) FROM machines").await, ["[\"a\"]"], "{label}: tags untouched");
        assert_eq!(s.store().account_by_name("second").await.expect("lookup").expect("exists").machine_count, 0, "{label}");
    }
}

#[tokio::test]
async fn enrolling_with_overwrite_moves_the_machine_to_another_account() {
    for s in subjects().await {
        let label = s.label();
        let first = s.store().create_account("first", T0).await.expect("create");
        let second = s.store().create_account("second", T0).await.expect("create");
        let key = machine(s.store(), "watcher").await;
        s.store().enroll_machine(key, first, Some("original"), &[], false, T0).await.expect("enroll");

        let outcome = s.store().enroll_machine(key, second, Some("moved"), &[], true, T0).await;
        assert_eq!(outcome.expect("enroll"), EnrollOutcome::Enrolled, "{label}: outcome");
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.account, Some(second), "{label}: account");
        assert_eq!(machine.account_name.as_deref(), Some("second"), "{label}: account name");
        assert_eq!(machine.display_name.as_deref(), Some("moved"), "{label}: display name");
        let counts: Vec<u64> = s.store().list_accounts().await.expect("list").iter().map(|a| a.machine_count).collect();
        assert_eq!(counts, [0, 1], "{label}: machine counts follow the move");

        // No name given: the one it has is kept.
        let outcome = s.store().enroll_machine(key, first, None, &[], true, T0).await;
        assert_eq!(outcome.expect("enroll"), EnrollOutcome::Enrolled, "{label}: outcome");
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.account, Some(first), "{label}: account");
        assert_eq!(machine.display_name.as_deref(), Some("moved"), "{label}: display name kept");
    }
}

#[tokio::test]
async fn enrolling_an_unknown_machine_is_not_found() {
    for s in subjects().await {
        let label = s.label();
        let account = s.store().create_account("acme", T0).await.expect("create");
        let outcome = s.store().enroll_machine(MachineKey(987_654), account, None, &[], false, T0).await;
        assert!(matches!(outcome, Err(StoreError::NotFound(_))), "{label}: expected NotFound, got {outcome:?}");
        let outcome = s.store().enroll_machine(MachineKey(987_654), account, None, &[], true, T0).await;
        assert!(matches!(outcome, Err(StoreError::NotFound(_))), "{label}: with overwrite, got {outcome:?}");
        assert_eq!(s.store().account_by_name("acme").await.expect("lookup").expect("exists").machine_count, 0, "{label}");
    }
}

// ---------------------------------------------------------------------------------------------
// Admin tokens

#[tokio::test]
async fn admin_token_exists_only_for_its_hash() {
    for s in subjects().await {
        let label = s.label();
        assert!(!s.store().admin_token_exists("sha256-of-a-token").await.expect("lookup"), "{label}: empty store");
        s.store().create_admin_token("sha256-of-a-token", "pl_adm_1a2b", T0).await.expect("create");
        assert!(s.store().admin_token_exists("sha256-of-a-token").await.expect("lookup"), "{label}: exists");
        assert!(!s.store().admin_token_exists("sha256-of-another").await.expect("lookup"), "{label}: other hash");
        assert!(!s.store().admin_token_exists("pl_adm_1a2b").await.expect("lookup"), "{label}: prefix is no hash");
        assert!(!s.store().admin_token_exists("").await.expect("lookup"), "{label}: empty hash");
        let again = s.store().create_admin_token("sha256-of-a-token", "pl_adm_1a2b", T0).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{label}: expected Conflict, got {again:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Signals: inserting

#[tokio::test]
async fn inserting_no_signals_stores_nothing() {
    for s in subjects().await {
        let label = s.label();
        let outcome = s.store().insert_signals(&[]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome::default(), "{label}: outcome");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: count");
    }
}

#[tokio::test]
async fn a_batch_is_stored_and_reads_back_field_for_field() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut no_extras = signal(key, ip_report("45.33.32.156", "bare"));
        no_extras.report.agent = None;
        no_extras.report.alert_uuid = None;
        no_extras.report.scenario_trust = String::new();
        no_extras.enrichment = Enrichment::default();
        no_extras.origin.asn = None;
        let sent = vec![
            signal(key, ip_report("45.33.32.156", "first")),
            no_extras,
            signal(key, report(item("Range", "45.33.32.7/24", "a range"))),
        ];
        let outcome = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 3, duplicates: 0 }, "{label}: outcome");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), 3, "{label}: stored");
        for (stored, sent) in stored.iter().zip(&sent) {
            assert_stored_as_sent(label, stored, sent, "watcher");
        }
        assert_eq!(stored[2].scope, Scope::Range, "{label}: scope");
        assert_eq!(stored[2].value, "45.33.32.0/24", "{label}: range stored in canonical form");
        assert_eq!(s.store().count_signals().await.expect("count"), 3, "{label}: count");
    }
}

#[tokio::test]
async fn redelivered_batch_is_counted_as_duplicates_and_not_stored_twice() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = batch(key, 5);
        let first = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(first, InsertOutcome { inserted: 5, duplicates: 0 }, "{label}: first delivery");
        let ids: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();

        let again = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(again, InsertOutcome { inserted: 0, duplicates: 5 }, "{label}: redelivery");

        // A partial redelivery: two already stored, three new.
        let mut mixed = sent[3..].to_vec();
        mixed.extend(batch(key, 8).split_off(5));
        let outcome = s.store().insert_signals(&mixed).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 3, duplicates: 2 }, "{label}: partial redelivery");

        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), 8, "{label}: stored once each");
        assert_eq!(stored[..5].iter().map(|s| s.id).collect::<Vec<_>>(), ids, "{label}: first rows untouched");
        assert_eq!(s.store().count_signals().await.expect("count"), 8, "{label}: count");
    }
}

#[tokio::test]
async fn duplicates_within_one_batch_are_stored_once() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let a = signal(key, ip_report("45.33.32.156", "a"));
        let b = signal(key, ip_report("45.33.32.157", "b"));
        let outcome = s.store().insert_signals(&[a.clone(), b.clone(), a.clone(), a, b]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 2, duplicates: 3 }, "{label}: outcome");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(values(&stored), ["45.33.32.156", "45.33.32.157"], "{label}: first occurrence wins the order");
    }
}

#[tokio::test]
async fn the_same_report_from_two_machines_is_two_signals() {
    for s in subjects().await {
        let label = s.label();
        let one = machine(s.store(), "one").await;
        let two = machine(s.store(), "two").await;
        let report = ip_report("45.33.32.156", "same");
        let outcome =
            s.store().insert_signals(&[signal(one, report.clone()), signal(two, report.clone())]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 2, duplicates: 0 }, "{label}: outcome");
        let outcome = s.store().insert_signals(&[signal(two, report)]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 0, duplicates: 1 }, "{label}: redelivery by the second");
        let stored = list(s.store(), &all_signals()).await;
        let logins: Vec<&str> = stored.iter().map(|s| s.machine_id.as_str()).collect();
        assert_eq!(logins, ["one", "two"], "{label}: one each");
    }
}

#[tokio::test]
async fn a_batch_larger_than_one_statement_is_stored_whole_and_in_order() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        // Past SQLite's per-statement parameter limit, so the backend must split the batch.
        let sent = batch(key, 3000);
        let outcome = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 3000, duplicates: 0 }, "{label}: outcome");
        assert_eq!(s.store().count_signals().await.expect("count"), 3000, "{label}: count");

        let stored = list(s.store(), &all_signals()).await;
        let expected: Vec<String> = sent.iter().map(|s| s.report.value_text()).collect();
        assert_eq!(values(&stored), expected, "{label}: stored in insert order");
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "{label}: ids strictly increase");
        assert_stored_as_sent(label, &stored[2999], &sent[2999], "watcher");

        let again = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(again, InsertOutcome { inserted: 0, duplicates: 3000 }, "{label}: redelivery");
        assert_eq!(s.store().count_signals().await.expect("count"), 3000, "{label}: count after redelivery");
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.signal_count, 3000, "{label}: machine signal count");
    }
}

#[tokio::test]
async fn a_failing_batch_stores_nothing() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut sent = batch(key, 3);
        sent.push(signal(MachineKey(987_654), ip_report("45.33.32.156", "from nowhere")));
        let outcome = s.store().insert_signals(&sent).await;
        assert!(outcome.is_err(), "{label}: a signal from an unknown machine must fail the batch, got {outcome:?}");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: small batch rolled back");

        // The failing row in a later statement of a split batch rolls back the earlier ones too.
        let mut sent = batch(key, 3000);
        sent.push(signal(MachineKey(987_654), ip_report("45.33.32.156", "from nowhere")));
        assert!(s.store().insert_signals(&sent).await.is_err(), "{label}: large batch must fail");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: large batch rolled back");
    }
}

#[tokio::test]
async fn signal_ids_strictly_increase_in_insert_order_across_batches() {
    for s in subjects().await {
        let label = s.label();
        let one = machine(s.store(), "one").await;
        let two = machine(s.store(), "two").await;
        let mut sent = Vec::new();
        for round in 0..4 {
            let key = if round % 2 == 0 { one } else { two };
            let signals: Vec<NewSignal> =
                (0..7).map(|i| signal(key, ip_report(&format!("45.33.{round}.{}", 200 - i), "ssh"))).collect();
            s.store().insert_signals(&signals).await.expect("insert");
            sent.extend(signals);
        }
        let stored = list(s.store(), &all_signals()).await;
        let expected: Vec<String> = sent.iter().map(|s| s.report.value_text()).collect();
        assert_eq!(values(&stored), expected, "{label}: insert order");
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "{label}: ids strictly increase");
    }
}

#[tokio::test]
async fn concurrent_redeliveries_store_each_signal_once() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = batch(key, 200);
        let (a, b) = tokio::join!(s.store().insert_signals(&sent), s.store().insert_signals(&sent));
        let (a, b) = (a.expect("insert"), b.expect("insert"));
        assert_eq!(a.inserted + b.inserted, 200, "{label}: stored once in all ({a:?}, {b:?})");
        assert_eq!(a.duplicates + b.duplicates, 200, "{label}: the rest are duplicates ({a:?}, {b:?})");
        assert_eq!(s.store().count_signals().await.expect("count"), 200, "{label}: count");
    }
}

#[tokio::test]
async fn unicode_and_long_messages_are_preserved() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let messages = [
            "Ip 45.33.32.156 performed 'crowdsecurity/ssh-bf' (6 events over 1.001s) at 2026-11-25 11:59:20 +0000 UTC"
                .to_string(),
            "ünïcödé — 攻撃 — атака — هجوم — 🛡️🔥👩‍💻 — e\u{301} — \u{202e}reversed\u{202c} — tab\tnew\nline".to_string(),
            "quotes ' \" and backslashes \\ and SQL '); DROP TABLE signals; --".to_string(),
            "x".repeat(8 * 1024),
            "é".repeat(4 * 1024),
            String::new(),
        ];
        let sent: Vec<NewSignal> = messages
            .iter()
            .enumerate()
            .map(|(i, message)| signal(key, report(item("Ip", &format!("45.33.32.{}", 10 + i), message))))
            .collect();
        s.store().insert_signals(&sent).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), messages.len(), "{label}: stored");
        for ((stored, sent), message) in stored.iter().zip(&sent).zip(&messages) {
            assert_eq!(&stored.message, message, "{label}: message preserved");
            assert_stored_as_sent(label, stored, sent, "watcher");
        }
    }
}

#[tokio::test]
async fn extra_json_is_preserved() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut raw = item("Ip", "45.33.32.156", "extra");
        raw["context"] = json!([{"key": "target_uri", "value": "/wp-login.php?ü=✓"}, {"key": "empty", "value": ""}]);
        raw["source"]["as_number"] = json!("63949");
        raw["source"]["latitude"] = json!(37.751);
        raw["source"]["longitude"] = json!(-97.822);
        raw["source"]["cn"] = json!("US");
        raw["labels"] = Value::Null;
        raw["events_count"] = json!(6);
        raw["big"] = json!(9_007_199_254_740_993_u64);
        raw["remediation"] = json!(true);
        raw["nested"] = json!({"deeper": {"deepest": ["a", 1, false, null, {"k": "v"}]}});
        let sent = signal(key, report(raw.clone()));
        let expected = json_value(label, &sent.report.extra);
        assert_eq!(expected["big"], raw["big"], "the report keeps the extra fields");

        s.store().insert_signals(std::slice::from_ref(&sent)).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), 1, "{label}: stored");
        assert_eq!(json_value(label, &stored[0].extra), expected, "{label}: extra");
        assert_stored_as_sent(label, &stored[0], &sent, "watcher");

        // An empty object stays an empty object.
        let mut bare = signal(key, ip_report("45.33.32.157", "bare"));
        bare.report.extra = "{}".into();
        s.store().insert_signals(std::slice::from_ref(&bare)).await.expect("insert");
        let stored =
            list(s.store(), &SignalFilter { value: Some("45.33.32.157".into()), limit: 10, ..SignalFilter::default() }).await;
        assert_eq!(json_value(label, &stored[0].extra), json!({}), "{label}: empty extra");
    }
}

#[tokio::test]
async fn ipv6_addresses_ranges_and_origins_round_trip() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut v6 = signal(key, ip_report("2a01:4f8:c17:b8f::2", "v6"));
        v6.origin = Origin { ip: ip("2a00:1450:4001:82a::200e"), prefix: net("2a00:1450:4001::/48"), asn: Some(u32::MAX) };
        v6.enrichment =
            Enrichment { as_number: Some(u32::MAX), as_name: Some("Hetzner Online GmbH".into()), country: Some("DE".into()) };
        let mapped = signal(key, ip_report("::ffff:45.33.32.156", "mapped"));
        let v6_range = signal(key, report(item("Range", "2a01:4f8:c17:b8f::2/64", "v6 range")));
        let v4_range = signal(key, report(item("Range", "45.33.32.156/16", "v4 range")));
        let sent = vec![v6, mapped, v6_range, v4_range];
        s.store().insert_signals(&sent).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(values(&stored), ["2a01:4f8:c17:b8f::2", "45.33.32.156", "2a01:4f8:c17:b8f::/64", "45.33.0.0/16"], "{label}");
        for (stored, sent) in stored.iter().zip(&sent) {
            assert_stored_as_sent(label, stored, sent, "watcher");
        }
        let found =
            list(s.store(), &SignalFilter { value: Some("2a01:4f8:c17:b8f::/64".into()), limit: 10, ..SignalFilter::default() })
                .await;
        assert_eq!(values(&found), ["2a01:4f8:c17:b8f::/64"], "{label}: found by its canonical range");
    }
}

#[tokio::test]
async fn times_keep_microsecond_precision_and_their_instant() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut raw = item("Ip", "45.33.32.156", "times");
        raw["start_at"] = json!("2026-11-25T13:59:19.000001+02:00");
        raw["stop_at"] = json!("2026-11-25T11:59:20.999999Z");
        let mut sent = signal(key, report(raw));
        sent.received_at = datetime!(2026-11-25 06:00:00.5 -06:00);
        s.store().insert_signals(std::slice::from_ref(&sent)).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored[0].start_at, datetime!(2026-11-25 11:59:19.000001 UTC), "{label}: start_at");
        assert_eq!(stored[0].stop_at, datetime!(2026-11-25 11:59:20.999999 UTC), "{label}: stop_at");
        assert_eq!(stored[0].received_at, datetime!(2026-11-25 12:00:00.5 UTC), "{label}: received_at");
    }
}

// ---------------------------------------------------------------------------------------------
// Signals: listing and counting

/// Two machines, three values, stored in a known order. Returns the stored rows, oldest first.
async fn listing_fixture(store: &dyn Store) -> Vec<StoredSignal> {
    let one = machine(store, "one").await;
    let two = machine(store, "two").await;
    let a = "45.33.32.1";
    let b = "45.33.32.2";
    let c = "2a01:4f8::1";
    let sent = [(one, a, "1"), (two, a, "2"), (one, b, "3"), (two, c, "4"), (one, a, "5"), (one, c, "6")];
    for (key, value, message) in sent {
        store.insert_signals(&[signal(key, ip_report(value, message))]).await.expect("insert");
    }
    list(store, &all_signals()).await
}

fn ids(signals: &[StoredSignal]) -> Vec<i64> {
    signals.iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn listing_filters_by_machine_and_by_value() {
    for s in subjects().await {
        let label = s.label();
        let all = listing_fixture(s.store()).await;
        let pick = |indexes: &[usize]| indexes.iter().map(|&i| all[i].id).collect::<Vec<_>>();
        let filter = |machine: Option<&str>, value: Option<&str>| SignalFilter {
            machine_id: machine.map(String::from),
            value: value.map(String::from),
            limit: 100,
            ..SignalFilter::default()
        };
        let cases: [(Option<&str>, Option<&str>, &[usize]); 8] = [
            (None, None, &[0, 1, 2, 3, 4, 5]),
            (Some("one"), None, &[0, 2, 4, 5]),
            (Some("two"), None, &[1, 3]),
            (None, Some("45.33.32.1"), &[0, 1, 4]),
            (None, Some("2a01:4f8::1"), &[3, 5]),
            (Some("one"), Some("45.33.32.1"), &[0, 4]),
            (Some("nobody"), None, &[]),
            (None, Some("45.33.32.3"), &[]),
        ];
        for (machine, value, expected) in cases {
            let found = list(s.store(), &filter(machine, value)).await;
            assert_eq!(ids(&found), pick(expected), "{label}: machine {machine:?}, value {value:?}");
        }
        let two = list(s.store(), &filter(Some("two"), None)).await;
        assert!(two.iter().all(|s| s.machine_id == "two"), "{label}: rows name their machine");
    }
}

#[tokio::test]
async fn listing_after_an_id_pages_through_every_signal_once() {
    for s in subjects().await {
        let label = s.label();
        let all = listing_fixture(s.store()).await;
        assert_eq!(all.len(), 6, "{label}: fixture");

        let after = |after: Option<i64>, limit: u32| SignalFilter { after, limit, ..SignalFilter::default() };
        assert_eq!(ids(&list(s.store(), &after(Some(all[1].id), 100)).await), ids(&all[2..]), "{label}: after");
        assert!(list(s.store(), &after(Some(all[5].id), 100)).await.is_empty(), "{label}: after the last");
        assert_eq!(ids(&list(s.store(), &after(Some(-1), 100)).await), ids(&all), "{label}: after a negative id");
        assert_eq!(ids(&list(s.store(), &after(None, 4)).await), ids(&all[..4]), "{label}: limit");
        assert_eq!(ids(&list(s.store(), &after(None, 1)).await), ids(&all[..1]), "{label}: limit one");
        assert!(list(s.store(), &after(None, 0)).await.is_empty(), "{label}: limit zero");
        assert_eq!(ids(&list(s.store(), &after(None, u32::MAX)).await), ids(&all), "{label}: huge limit");

        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = list(s.store(), &after(cursor, 4)).await;
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            paged.extend(ids(&page));
        }
        assert_eq!(paged, ids(&all), "{label}: pages cover every signal once, in order");

        let filtered =
            SignalFilter { after: Some(all[0].id), machine_id: Some("one".into()), value: Some("45.33.32.1".into()), limit: 100 };
        assert_eq!(ids(&list(s.store(), &filtered).await), [all[4].id], "{label}: every filter at once");
        let filtered = SignalFilter { machine_id: Some("one".into()), limit: 2, ..SignalFilter::default() };
        assert_eq!(ids(&list(s.store(), &filtered).await), [all[0].id, all[2].id], "{label}: limit applies after filters");
    }
}

#[tokio::test]
async fn count_and_machine_signal_counts_follow_inserts() {
    for s in subjects().await {
        let label = s.label();
        listing_fixture(s.store()).await;
        assert_eq!(s.store().count_signals().await.expect("count"), 6, "{label}: count");
        let counts: Vec<(String, u64)> =
            s.store().list_machines().await.expect("list").into_iter().map(|m| (m.machine_id, m.signal_count)).collect();
        assert_eq!(counts, [("one".to_string(), 4), ("two".to_string(), 2)], "{label}: per machine");
        let one = s.store().machine_by_login("one").await.expect("lookup").expect("exists");
        assert_eq!(one.signal_count, 4, "{label}: by login");
    }
}

/// A consumer pages with `after = the last id it saw`, so a smaller id must never become visible
/// after a larger one. Catching a backend that breaks this depends on timing; a backend that keeps
/// it always passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_reader_sees_every_signal_while_writers_race() {
    for s in subjects().await {
        let label = s.label();
        let mut writers = Vec::new();
        for w in 0..4 {
            let key = machine(s.store(), &format!("writer-{w}")).await;
            let store = Arc::clone(&s.store);
            writers.push(tokio::spawn(async move {
                for round in 0..10 {
                    let signals: Vec<NewSignal> = (0..300)
                        .map(|i| signal(key, ip_report(&format!("45.{}.{}.{}", 40 + w, round, i % 256), &format!("{i}"))))
                        .collect();
                    store.insert_signals(&signals).await.expect("insert");
                }
            }));
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let done = writers.iter().all(|w| w.is_finished());
            let page = list(s.store(), &SignalFilter { after: cursor, limit: 1000, ..SignalFilter::default() }).await;
            if let Some(last) = page.last() {
                cursor = Some(last.id);
            }
            seen.extend(ids(&page));
            if done && page.is_empty() {
                break;
            }
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        let all = ids(&list(s.store(), &all_signals()).await);
        assert_eq!(all.len(), 12_000, "{label}: stored");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{label}: the reader saw ids in order");
        assert_eq!(seen.len(), all.len(), "{label}: the reader missed {} signals", all.len().saturating_sub(seen.len()));
    }
}

// ---------------------------------------------------------------------------------------------
// Text PostgreSQL cannot hold, and text that is not JSON

#[tokio::test]
async fn nul_characters_are_stored_as_the_replacement_character() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        // The HTTP layer refuses NUL with a 4xx; the store is the backstop that keeps both
        // engines identical for any caller, so the report is built past that validation.
        let mut raw = item("Ip", "45.33.32.156", "before after");
        raw["literal"] = json!("a backslash then u0000: \\u0000");
        let mut sent = signal(key, report(raw));
        sent.report.message = "before \u{0} after".into();
        sent.report.agent = Some("agent\u{0}".into());
        let mut extra: Value = serde_json::from_str(&sent.report.extra).expect("extra is JSON");
        extra["custom\u{0}key"] = json!(["nul \u{0} in a list", {"deep": "\u{0}"}]);
        sent.report.extra = extra.to_string();
        sent.enrichment.as_name = Some("AS\u{0}name".into());
        let clean = signal(key, ip_report("45.33.32.157", "clean"));
        let outcome = s.store().insert_signals(&[sent, clean]).await;
        assert_eq!(outcome.expect("a NUL must not fail the batch"), InsertOutcome { inserted: 2, duplicates: 0 }, "{label}");

        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored[0].message, "before \u{FFFD} after", "{label}: message");
        assert_eq!(stored[0].agent.as_deref(), Some("agent\u{FFFD}"), "{label}: agent");
        assert_eq!(stored[0].enrichment.as_name.as_deref(), Some("AS\u{FFFD}name"), "{label}: as_name");
        let extra = json_value(label, &stored[0].extra);
        assert_eq!(extra["custom\u{FFFD}key"], json!(["nul \u{FFFD} in a list", {"deep": "\u{FFFD}"}]), "{label}: extra");
        assert_eq!(extra["literal"], json!("a backslash then u0000: \\u0000"), "{label}: an escaped backslash is kept");
        assert_eq!(stored[1].message, "clean", "{label}: the rest of the batch");

        let login = LoginRecord {
            scenarios: vec!["crowdsecurity/ssh-bf".into()],
            origin_prefix: net("81.2.69.0/24"),
            user_agent: Some("crowdsec\u{0}".into()),
            at: T0,
        };
        s.store().record_login(key, &login).await.unwrap_or_else(|e| panic!("{label}: login: {e}"));
        let usage = json!({"lapi": {"version": "v1.6.3", "os": "\u{0}"}}).to_string();
        s.store().record_metrics(key, "usage", Some("v1.6\u{0}"), &usage, T0).await.unwrap_or_else(|e| panic!("{label}: {e}"));
        let account = s.store().create_account("acme\u{0}", T0).await.unwrap_or_else(|e| panic!("{label}: account: {e}"));
        s.store()
            .enroll_machine(key, account, Some("edge\u{0}"), &["tag\u{0}".into()], false, T0)
            .await
            .unwrap_or_else(|e| panic!("{label}: enroll: {e}"));
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.version.as_deref(), Some("v1.6\u{FFFD}"), "{label}: version");
        assert_eq!(machine.display_name.as_deref(), Some("edge\u{FFFD}"), "{label}: display name");
        assert_eq!(machine.account_name.as_deref(), Some("acme\u{FFFD}"), "{label}: account name");
        let found = s.store().account_by_name("acme\u{0}").await.expect("lookup").map(|a| a.key);
        assert_eq!(found, Some(account), "{label}: found by the name it was created with");
    }
}

#[tokio::test]
async fn lookups_with_nul_find_nothing_rather_than_failing() {
    for s in subjects().await {
        let label = s.label();
        machine(s.store(), "watcher").await;
        let nul = "watcher\u{0}";
        assert!(s.store().machine_by_login(nul).await.expect("machine lookup").is_none(), "{label}: machine");
        assert!(s.store().account_by_name(nul).await.expect("account lookup").is_none(), "{label}: account");
        assert!(s.store().enroll_key_by_hash(nul).await.expect("key lookup").is_none(), "{label}: enroll key");
        assert!(!s.store().admin_token_exists(nul).await.expect("token lookup"), "{label}: admin token");
        let filter = SignalFilter { machine_id: Some(nul.into()), value: Some(nul.into()), limit: 10, ..SignalFilter::default() };
        assert!(list(s.store(), &filter).await.is_empty(), "{label}: signals");
    }
}

#[tokio::test]
async fn text_that_is_not_json_is_refused_where_json_is_stored() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        for payload in ["not json", "{\"unterminated\": ", ""] {
            let outcome = s.store().record_metrics(key, "usage", Some("v9"), payload, T0).await;
            assert!(outcome.is_err(), "{label}: metrics payload {payload:?} must be refused");
        }
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.version, None, "{label}: a refused push changes nothing");

        let mut bad = signal(key, ip_report("45.33.32.156", "bad extra"));
        bad.report.extra = "{not json".into();
        let outcome = s.store().insert_signals(&[signal(key, ip_report("45.33.32.157", "good")), bad]).await;
        assert!(outcome.is_err(), "{label}: extra that is not JSON must be refused");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: nothing stored");
    }
}

// ---------------------------------------------------------------------------------------------
// What the trait cannot read back: checked with a plain query on the column names both schemas
// share.

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

#[tokio::test]
async fn an_unknown_created_by_reads_back_as_corrupt_not_a_guess() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        machine(store, "tampered").await;
        raw_execute(&s.db, "UPDATE machines SET created_by = 'robot' WHERE machine_id = 'tampered'").await;
        let read = store.machine_by_login("tampered").await;
        assert!(matches!(read, Err(StoreError::Corrupt(ref what)) if what.contains("robot")), "{label}: {read:?}");
        assert!(matches!(store.list_machines().await, Err(StoreError::Corrupt(_))), "{label}: listing");
    }
}

#[tokio::test]
async fn stored_texts_outside_their_closed_set_read_back_as_corrupt() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let acme = store.create_account("acme", T0).await.expect("account");
        let member = machine(store, "member").await;
        store.enroll_machine(member, acme, None, &[], false, T0).await.expect("enroll");
        raw_execute(&s.db, "UPDATE accounts SET level = 'gold' WHERE name = 'acme'").await;
        let read = store.account_by_name("acme").await;
        assert!(matches!(read, Err(StoreError::Corrupt(ref what)) if what.contains("gold")), "{label}: {read:?}");
        assert!(matches!(store.engine_machines().await, Err(StoreError::Corrupt(_))), "{label}: engine machines");

        store.queue_consensus_request(RequestKind::FalsePositive, "45.33.32.156", T0).await.expect("queue");
        raw_execute(&s.db, "UPDATE consensus_requests SET kind = 'unban'").await;
        let pending = store.pending_consensus_requests().await;
        assert!(matches!(pending, Err(StoreError::Corrupt(ref what)) if what.contains("unban")), "{label}: {pending:?}");
    }
}

#[tokio::test]
async fn an_unreadable_engine_state_is_left_out_of_the_snapshot_and_corrupt_when_read_alone() {
    use crate::store::ConsensusCommit;
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "reporter").await;
        let state = MachineState::new(None, Level::Anonymous, false, T0.unix_timestamp());
        let (target, kept) = (net("45.33.32.156/32"), net("81.2.69.160/32"));
        let commit = ConsensusCommit {
            watermark: 1,
            machines: vec![(key, state, 0.5)],
            targets: vec![(target, Some(TargetState::default())), (kept, Some(TargetState::default()))],
            done_requests: Vec::new(),
            list_ops: Vec::new(),
            at: T0,
        };
        store.commit_consensus(&commit).await.expect("commit");
        raw_execute(&s.db, "UPDATE engine_machines SET state = '{\"unexpected\": true}'").await;
        raw_execute(&s.db, "UPDATE engine_targets SET state = '[1, 2]' WHERE target = '45.33.32.156/32'").await;
        let snapshot = store.consensus_snapshot().await.expect("snapshot");
        assert!(snapshot.machines.is_empty(), "{label}: the unreadable machine state is left out");
        assert_eq!(snapshot.targets, [(kept, TargetState::default())], "{label}: only the readable target state");
        assert!(matches!(store.engine_machine(key).await, Err(StoreError::Corrupt(_))), "{label}");
        assert!(matches!(store.engine_target(target).await, Err(StoreError::Corrupt(_))), "{label}");
    }
}

#[tokio::test]
async fn metrics_payloads_are_stored_as_sent() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let metrics = json!({"apil_version": "v1.6.3", "bouncers": [{"name": "fw", "version": "v0.0.28"}], "machines": []});
        let usage = json!({"lapi": {"version": "v1.6.3", "os": {"name": "débian"}}, "remediation_components": []});
        s.store().record_metrics(key, "metrics", Some("v1.6.3"), &metrics.to_string(), T0).await.expect("metrics");
        s.store().record_metrics(key, "usage", None, &usage.to_string(), T0 + Duration::seconds(1)).await.expect("usage");
        let kinds = raw_text(&s.db, "SELECT kind FROM machine_metrics ORDER BY id").await;
        assert_eq!(kinds, ["metrics", "usage"], "{label}: one row per push");
        let payloads: Vec<Value> = raw_text(&s.db, "SELECT CAST(payload AS TEXT) FROM machine_metrics ORDER BY id")
            .await
            .iter()
            .map(|text| json_value(label, text))
            .collect();
        assert_eq!(payloads, [metrics, usage], "{label}: payloads");
    }
}

#[tokio::test]
async fn login_user_agent_and_enrollment_tags_are_stored() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let login = LoginRecord {
            scenarios: vec![],
            origin_prefix: net("81.2.69.0/24"),
            user_agent: Some("crowdsec/v1.6.3".into()),
            at: T0,
        };
        s.store().record_login(key, &login).await.expect("login");
        assert_eq!(raw_text(&s.db, "SELECT user_agent FROM machines").await, ["crowdsec/v1.6.3"], "{label}: user agent");

        let account = s.store().create_account("acme", T0).await.expect("create");
        let tags = vec!["dmz".to_string(), "paris, rack 4".to_string(), "ünï".to_string()];
        s.store().enroll_machine(key, account, None, &tags, false, T0).await.expect("enroll");
        let stored = raw_text(&s.db, "SELECT CAST(tags AS TEXT) FROM machines").await;
        assert_eq!(json_value(label, &stored[0]), json!(tags), "{label}: tags");
    }
}

#[tokio::test]
async fn last_signal_time_is_the_newest_received_by_that_machine() {
    for s in subjects().await {
        let label = s.label();
        let quiet = machine(s.store(), "quiet").await;
        let busy = machine(s.store(), "busy").await;
        assert_eq!(s.store().machine_last_signal_at(busy).await.expect("none yet"), None, "{label}");
        let mut later = signal(busy, ip_report("45.33.32.157", "ssh"));
        later.received_at = T0 + time::Duration::hours(2);
        s.store().insert_signals(&[signal(busy, ip_report("45.33.32.156", "ssh")), later]).await.expect("insert");
        assert_eq!(s.store().machine_last_signal_at(busy).await.expect("busy"), Some(T0 + time::Duration::hours(2)), "{label}");
        assert_eq!(s.store().machine_last_signal_at(quiet).await.expect("quiet"), None, "{label}");
    }
}

#[tokio::test]
async fn custom_lists_hold_entries_under_the_shared_seq_and_delete_with_logged_removals() {
    use crate::store::{CustomList, ListEntry, ListOp};
    for s in subjects().await {
        let label = s.label();
        let list = CustomList { name: "partners".into(), kind: "block".into(), description: "d".into(), created_at: T0 };
        s.store().create_custom_list(&list).await.expect("create");
        assert!(matches!(s.store().create_custom_list(&list).await, Err(StoreError::Conflict(_))), "{label}");
        assert_eq!(s.store().custom_lists().await.expect("lists"), std::slice::from_ref(&list), "{label}");
        let entry = |value: &str| ListEntry {
            list: "partners".into(),
            value: listed(value),
            scope: Scope::Ip,
            scenario: "partners".into(),
            remediation: Remediation::Ban,
            rule: Rule::Operator,
            listed_at: T0,
            expires_at: T0 + time::Duration::days(1),
            seq: 0,
        };
        s.store()
            .apply_list_ops(&[ListOp::Add(entry("45.33.32.156")), ListOp::Add(entry("81.2.69.160"))], T0)
            .await
            .expect("apply");
        assert_eq!(s.store().list_entries("partners").await.expect("entries").len(), 2, "{label}");

        let key = machine(s.store(), "watcher").await;
        s.store().set_list_subscription("watcher", "partners", true).await.expect("subscribe");
        s.store().set_list_subscription("watcher", "partners", true).await.expect("subscribing twice is harmless");
        assert_eq!(s.store().machine_subscriptions(key).await.expect("subs"), ["partners"], "{label}");
        assert!(matches!(s.store().set_list_subscription("nobody", "partners", true).await, Err(StoreError::NotFound(_))));
        assert!(matches!(s.store().set_list_subscription("watcher", "nothing", true).await, Err(StoreError::NotFound(_))));

        let before = s.store().list_seq("partners").await.expect("seq");
        assert!(s.store().delete_custom_list("partners", T0).await.expect("delete"), "{label}");
        assert!(!s.store().delete_custom_list("partners", T0).await.expect("delete again"), "{label}");
        let removals = s.store().list_changes("partners", before, 100).await.expect("changes");
        assert_eq!(removals.iter().filter(|c| c.op == ChangeOp::Remove).count(), 2, "{label}: each entry's removal is logged");
        assert!(s.store().list_entries("partners").await.expect("entries").is_empty());
        assert!(s.store().machine_subscriptions(key).await.expect("subs").is_empty(), "{label}");
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_listed_per_account_and_revoked_once() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let acme = store.create_account("acme", T0).await.expect("account");
        let other = store.create_account("other", T0).await.expect("account");
        store.create_api_key(acme, "hash-a", "pal_aaaa", T0).await.expect("key a");
        store.create_api_key(acme, "hash-b", "pal_bbbb", T0 + Duration::seconds(1)).await.expect("key b");
        store.create_api_key(other, "hash-c", "pal_cccc", T0).await.expect("key c");
        assert!(
            matches!(store.create_api_key(acme, "hash-a", "pal_dddd", T0).await, Err(StoreError::Conflict(_))),
            "{label}: duplicate hash"
        );
        let found = store.api_key_by_hash("hash-a").await.expect("lookup").expect("exists");
        assert_eq!(found.prefix, "pal_aaaa", "{label}");
        assert_eq!((found.account, found.account_name.as_str(), found.tier.as_str()), (acme, "acme", "free"), "{label}");
        assert_eq!((found.created_at, found.revoked_at, found.last_used_at), (T0, None, None), "{label}");
        assert!(store.api_key_by_hash("nope").await.expect("lookup").is_none(), "{label}: unknown hash");

        let mine: Vec<_> = store.list_api_keys(Some(acme)).await.expect("list").into_iter().map(|k| k.prefix).collect();
        assert_eq!(mine, ["pal_aaaa", "pal_bbbb"], "{label}: one account, oldest first");
        assert_eq!(store.list_api_keys(None).await.expect("list").len(), 3, "{label}: every key");

        assert!(!store.revoke_api_key("pal_cccc", Some(acme), T0).await.expect("revoke"), "{label}: not acme's key");
        assert!(store.revoke_api_key("pal_aaaa", Some(acme), T0 + Duration::hours(1)).await.expect("revoke"), "{label}");
        assert!(!store.revoke_api_key("pal_aaaa", None, T0).await.expect("revoke"), "{label}: already revoked");
        let revoked = store.api_key_by_hash("hash-a").await.expect("lookup").expect("still found");
        assert_eq!(revoked.revoked_at, Some(T0 + Duration::hours(1)), "{label}: revocation time");

        store.touch_api_key("pal_bbbb", T0 + Duration::minutes(5)).await.expect("touch");
        store.set_account_tier("acme", "pro").await.expect("tier");
        let b = store.api_key_by_hash("hash-b").await.expect("lookup").expect("exists");
        assert_eq!((b.last_used_at, b.tier.as_str()), (Some(T0 + Duration::minutes(5)), "pro"), "{label}");
        assert!(matches!(store.set_account_tier("ghost", "pro").await, Err(StoreError::NotFound(_))), "{label}");
    }
}

// ---------------------------------------------------------------------------------------------
// Data lifecycle: partitions (PostgreSQL), retention (both)

fn received(machine: MachineKey, value: &str, at: OffsetDateTime) -> NewSignal {
    NewSignal { received_at: at, ..signal(machine, ip_report(value, "lifecycle")) }
}

#[tokio::test]
async fn a_redelivery_on_another_day_is_still_a_duplicate() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let first = received(key, "45.33.32.156", T0);
        assert_eq!(s.store().insert_signals(std::slice::from_ref(&first)).await.expect("insert").inserted, 1, "{label}");
        // The agent did not get the acknowledgement and sends it again after midnight, and a day later.
        for later in [Duration::hours(12), Duration::days(1), Duration::days(3)] {
            let again = received(key, "45.33.32.156", T0 + later);
            let outcome = s.store().insert_signals(&[again]).await.expect("insert");
            assert_eq!(outcome, InsertOutcome { inserted: 0, duplicates: 1 }, "{label}: redelivered {later} later");
        }
        // Something new on the next day is stored, in its own day.
        let next_day = received(key, "45.33.32.157", T0 + Duration::days(1));
        assert_eq!(s.store().insert_signals(&[next_day]).await.expect("insert").inserted, 1, "{label}");
        assert_eq!(s.store().count_signals().await.expect("count"), 2, "{label}");
    }
}

#[tokio::test]
async fn enroll_keys_are_listed_per_account_and_revoked_once() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let acme = store.create_account("acme", T0).await.expect("acme");
        let other = store.create_account("other", T0).await.expect("other");
        store.create_enroll_key(acme, "ek-hash-a", "ek_aaaa", T0).await.expect("key a");
        store.create_enroll_key(acme, "ek-hash-b", "ek_bbbb", T0 + Duration::seconds(1)).await.expect("key b");
        store.create_enroll_key(other, "ek-hash-c", "ek_cccc", T0).await.expect("key c");
        let mine = store.list_enroll_keys(acme).await.expect("list");
        assert_eq!(mine.iter().map(|k| k.prefix.as_str()).collect::<Vec<_>>(), ["ek_aaaa", "ek_bbbb"], "{label}");
        assert_eq!((mine[0].created_at, mine[0].revoked_at), (T0, None), "{label}");

        assert!(!store.revoke_enroll_key(acme, "ek_cccc", T0).await.expect("revoke"), "{label}: not acme's key");
        assert!(store.revoke_enroll_key(acme, "ek_aaaa", T0 + Duration::hours(1)).await.expect("revoke"), "{label}");
        assert!(!store.revoke_enroll_key(acme, "ek_aaaa", T0).await.expect("revoke"), "{label}: already revoked");
        let mine = store.list_enroll_keys(acme).await.expect("list");
        assert_eq!(mine[0].revoked_at, Some(T0 + Duration::hours(1)), "{label}: revocation time");
        assert!(store.enroll_key_by_hash("ek-hash-a").await.expect("lookup").expect("found").revoked, "{label}");
        assert!(!store.enroll_key_by_hash("ek-hash-c").await.expect("lookup").expect("found").revoked, "{label}");

        assert_eq!(store.account_tier(acme).await.expect("tier").as_deref(), Some("free"), "{label}");
        store.set_account_tier("acme", "pro").await.expect("set tier");
        assert_eq!(store.account_tier(acme).await.expect("tier").as_deref(), Some("pro"), "{label}");
        assert_eq!(store.account_tier(super::AccountKey(-5)).await.expect("tier"), None, "{label}: unknown account");
    }
}

#[tokio::test]
async fn signals_far_in_the_past_or_future_find_a_home() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = [received(key, "45.33.32.1", T0 - Duration::days(400)), received(key, "45.33.32.2", T0 + Duration::days(30))];
        assert_eq!(s.store().insert_signals(&sent).await.expect("insert").inserted, 2, "{label}");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(
            stored.iter().map(|s| s.received_at).collect::<Vec<_>>(),
            [sent[0].received_at, sent[1].received_at],
            "{label}"
        );
    }
}

#[tokio::test]
async fn partitions_are_created_ahead_of_time_on_postgres() {
    for s in subjects().await {
        let label = s.label();
        // The migration creates the partitions of the real today and the week after it, so the
        // test starts a year past the real date, where no partition can exist yet.
        let start = OffsetDateTime::now_utc() + Duration::days(365);
        let created = s.store().prepare_signal_partitions(start, 7).await.expect("prepare");
        let days = s.store().signal_partitions().await.expect("partitions");
        if s.db.backend == Backend::Sqlite {
            assert!(created.is_empty() && days.is_empty(), "{label}: SQLite has no partitions");
            continue;
        }
        let today = start.date();
        assert_eq!(created.len(), 8, "{label}: every day of the week ahead is new: {created:?}");
        for n in 0..=7 {
            let day = today + Duration::days(n);
            assert!(days.contains(&day), "{label}: partition of {day} exists ahead: {days:?}");
        }
        // A second pass has nothing left to create.
        assert!(s.store().prepare_signal_partitions(start, 7).await.expect("prepare").is_empty(), "{label}");
        let later = s.store().prepare_signal_partitions(start + Duration::days(7), 2).await.expect("prepare");
        assert_eq!(later, [today + Duration::days(8), today + Duration::days(9)], "{label}: only the missing days");
    }
}

#[tokio::test]
async fn retention_expires_old_processed_signals_and_keeps_the_rest() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = [
            received(key, "45.33.32.1", T0 - Duration::days(40)),
            received(key, "45.33.32.2", T0 - Duration::days(40) + Duration::hours(1)),
            received(key, "45.33.32.3", T0 - Duration::days(1)),
            received(key, "45.33.32.4", T0),
        ];
        s.store().insert_signals(&sent).await.expect("insert");
        let ids: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();
        let cutoff = T0 - Duration::days(30);

        // The consensus worker has read only the first old signal: the second must stay.
        let partial = s.store().expire_signals(cutoff, ids[0], 1).await.expect("expire");
        let left: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();
        assert!(left.contains(&ids[1]), "{label}: an unprocessed signal survived retention: {partial:?}");
        assert!(left.ends_with(&ids[2..]), "{label}: recent signals kept");
        match s.db.backend {
            // Row by row: exactly the processed old one goes.
            Backend::Sqlite => assert_eq!(left, ids[1..], "{label}"),
            // Whole days: the day holding an unprocessed signal stays whole.
            Backend::Postgres => assert_eq!(left, ids, "{label}"),
        }

        // Once processed, the old day expires; the recent ones and their days stay.
        let full = s.store().expire_signals(cutoff, ids[3], 1).await.expect("expire");
        let left: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();
        assert_eq!(left, ids[2..], "{label}: old signals gone, recent ones kept");
        let days = s.store().signal_partitions().await.expect("partitions");
        match s.db.backend {
            Backend::Sqlite => assert_eq!(full.rows_deleted, 1, "{label}: batches of one"),
            Backend::Postgres => {
                let old_day = (T0 - Duration::days(40)).date();
                assert_eq!(full.partitions_dropped, [old_day], "{label}");
                assert!(!days.contains(&old_day), "{label}: dropped");
                assert!(days.contains(&T0.date()) && days.contains(&(T0 - Duration::days(1)).date()), "{label}: {days:?}");
            }
        }
        // Still storable and deduplicated afterwards; a fresh copy of an expired signal is new again.
        assert_eq!(s.store().insert_signals(&sent[2..]).await.expect("insert").duplicates, 2, "{label}");
        let backlog = s.store().signal_backlog(ids[2], 100).await.expect("backlog");
        assert_eq!((backlog.count, backlog.oldest_received_at), (1, Some(T0)), "{label}: backlog after the watermark");
        let none = s.store().signal_backlog(ids[3], 100).await.expect("backlog");
        assert_eq!((none.count, none.oldest_received_at), (0, None), "{label}: caught up");
    }
}

#[tokio::test]
async fn signals_are_counted_per_machine_and_per_day_since_a_time() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let one = machine(store, "one").await;
        let two = machine(store, "two").await;
        let at = |mut signal: NewSignal, when: OffsetDateTime| {
            signal.received_at = when;
            signal
        };
        let day0 = T0.unix_timestamp().div_euclid(86_400);
        let signals = vec![
            at(signal(one, ip_report("45.1.0.1", "a")), T0 - Duration::days(2)),
            at(signal(one, ip_report("45.1.0.2", "b")), T0 - Duration::days(1)),
            at(signal(one, ip_report("45.1.0.3", "c")), T0),
            at(signal(two, ip_report("45.1.0.4", "d")), T0),
            at(signal(two, ip_report("45.1.0.5", "e")), T0 + Duration::minutes(1)),
        ];
        store.insert_signals(&signals).await.expect("insert");

        assert_eq!(store.consensus_watermark().await.expect("watermark"), 0, "{label}: nothing processed yet");
        let counts = store.signal_counts_since(T0 - Duration::hours(1)).await.expect("counts");
        assert_eq!(counts, [(one, 1), (two, 2)], "{label}: since an hour before T0");
        assert!(store.signal_counts_since(T0 + Duration::days(1)).await.expect("counts").is_empty(), "{label}: none after");

        let days = store.signals_per_day(T0 - Duration::days(1) - Duration::hours(1)).await.expect("per day");
        let days: Vec<(i64, u64)> = days.iter().map(|d| (d.day, d.count)).collect();
        assert_eq!(days, [(day0 - 1, 1), (day0, 3)], "{label}: per UTC day, oldest first");
    }
}

#[tokio::test]
async fn list_changes_are_counted_per_day_as_additions_and_removals() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let list = super::CustomList { name: "mine".into(), kind: "block".into(), description: String::new(), created_at: T0 };
        store.create_custom_list(&list).await.expect("list");
        let entry = |value: &str| super::ListEntry {
            list: "mine".into(),
            value: listed(value),
            scope: Scope::Ip,
            scenario: "mine".into(),
            remediation: Remediation::Ban,
            rule: Rule::Operator,
            listed_at: T0,
            expires_at: T0 + Duration::days(30),
            seq: 0,
        };
        let add = |v: &str| super::ListOp::Add(entry(v));
        store.apply_list_ops(&[add("45.2.0.1"), add("45.2.0.2")], T0 - Duration::days(1)).await.expect("day -1");
        let remove = super::ListOp::Remove { list: "mine".into(), value: listed("45.2.0.1"), reason: "operator".into() };
        store.apply_list_ops(&[add("45.2.0.3"), remove], T0).await.expect("day 0");
        let day0 = T0.unix_timestamp().div_euclid(86_400);
        let days = store.list_changes_per_day("mine", T0 - Duration::days(3)).await.expect("per day");
        let days: Vec<(i64, u64, u64)> = days.iter().map(|d| (d.day, d.count, d.other)).collect();
        assert_eq!(days, [(day0 - 1, 2, 0), (day0, 1, 1)], "{label}");
        assert!(store.list_changes_per_day("other", T0 - Duration::days(3)).await.expect("per day").is_empty(), "{label}");
    }
}

#[tokio::test]
async fn lookup_usage_adds_up_per_account_and_day() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let acme = store.create_account("acme", T0).await.expect("acme");
        let other = store.create_account("other", T0).await.expect("other");
        store.add_lookup_usage(&[(acme, 100, 2), (acme, 101, 1), (other, 101, 7)]).await.expect("first batch");
        store.add_lookup_usage(&[(acme, 101, 4)]).await.expect("second batch");
        store.add_lookup_usage(&[]).await.expect("an empty batch");
        let days = store.lookup_usage_per_day(acme, 0).await.expect("per day");
        assert_eq!(days.iter().map(|d| (d.day, d.count)).collect::<Vec<_>>(), [(100, 2), (101, 5)], "{label}");
        let recent = store.lookup_usage_per_day(acme, 101).await.expect("per day");
        assert_eq!(recent.iter().map(|d| (d.day, d.count)).collect::<Vec<_>>(), [(101, 5)], "{label}: since a day");
        assert_eq!(store.lookup_usage_per_day(other, 0).await.expect("per day")[0].count, 7, "{label}");
    }
}

#[tokio::test]
async fn list_entries_are_paged_by_value_each_exactly_once() {
    use crate::store::{CustomList, ListEntry, ListOp};
    for s in subjects().await {
        let label = s.label();
        let list = CustomList { name: "paged".into(), kind: "block".into(), description: String::new(), created_at: T0 };
        s.store().create_custom_list(&list).await.expect("create");
        let values: Vec<String> = (1..=7).map(|i| format!("45.33.32.{i}")).collect();
        let ops: Vec<ListOp> = values
            .iter()
            .map(|value| {
                ListOp::Add(ListEntry {
                    list: "paged".into(),
                    value: listed(value),
                    scope: Scope::Ip,
                    scenario: "paged".into(),
                    remediation: Remediation::Ban,
                    rule: Rule::Operator,
                    listed_at: T0,
                    expires_at: T0 + time::Duration::days(1),
                    seq: 0,
                })
            })
            .collect();
        s.store().apply_list_ops(&ops, T0).await.expect("apply");
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = s.store().list_entries_page("paged", &after, 3).await.expect("page");
            assert!(page.len() <= 3, "{label}");
            seen.extend(page.iter().map(|e| display_target(e.value)));
            match page.last() {
                Some(last) if page.len() == 3 => after = display_target(last.value),
                _ => break,
            }
        }
        assert_eq!(seen, values, "{label}: every member once, in value order");
        assert!(s.store().list_entries_page("community", "", 3).await.expect("other list").is_empty(), "{label}");
    }
}

// ---------------------------------------------------------------------------------------------
// Operator switches, consensus state and requests, leadership, canaries and the allowlist.

#[tokio::test]
async fn sensor_flag_and_account_level_are_set_by_name_and_unknown_names_are_not_found() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        machine(store, "probe").await;
        store.set_machine_sensor("probe", true).await.expect("sensor on");
        assert!(store.machine_by_login("probe").await.expect("read").expect("exists").sensor, "{label}");
        store.set_machine_sensor("probe", false).await.expect("sensor off");
        assert!(!store.machine_by_login("probe").await.expect("read").expect("exists").sensor, "{label}");
        assert!(matches!(store.set_machine_sensor("ghost", true).await, Err(StoreError::NotFound(_))), "{label}");

        store.create_account("acme", T0).await.expect("account");
        store.set_account_level("acme", Level::Verified).await.expect("level");
        assert_eq!(store.account_by_name("acme").await.expect("read").expect("exists").level, Level::Verified, "{label}");
        assert!(matches!(store.set_account_level("ghost", Level::Verified).await, Err(StoreError::NotFound(_))), "{label}");
    }
}

#[tokio::test]
async fn stream_seq_is_none_until_set_and_then_the_last_value_set() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let a = machine(store, "a").await;
        let b = machine(store, "b").await;
        assert_eq!(store.machine_stream_seq(a).await.expect("read"), None, "{label}: never sent");
        store.set_machine_stream_seq(a, 7).await.expect("set");
        store.set_machine_stream_seq(a, 42).await.expect("set again");
        assert_eq!(store.machine_stream_seq(a).await.expect("read"), Some(42), "{label}");
        assert_eq!(store.machine_stream_seq(b).await.expect("read"), None, "{label}: per machine");
        assert_eq!(store.machine_stream_seq(MachineKey(i64::MAX)).await.expect("read"), None, "{label}: unknown machine");
    }
}

#[tokio::test]
async fn the_engine_reads_signals_in_id_order_after_a_watermark() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "reporter").await;
        store.insert_signals(&batch(key, 5)).await.expect("insert");
        let all = store.signals_for_engine(0, 100).await.expect("read");
        assert_eq!(all.len(), 5, "{label}");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{label}: id order");
        let first = &all[0];
        assert_eq!(first.machine, key, "{label}");
        assert_eq!(first.value, "45.33.0.0", "{label}: canonical value");
        assert_eq!(first.scenario, "crowdsecurity/ssh-bf", "{label}");
        assert_eq!(first.scenario_trust, "certified", "{label}");
        assert_eq!((first.origin_prefix.as_str(), first.origin_asn), ("81.2.69.0/24", Some(20712)), "{label}");
        assert_eq!(first.received_at, T0, "{label}");
        let rest = store.signals_for_engine(all[1].id, 2).await.expect("read");
        assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), [all[2].id, all[3].id], "{label}: after and limit");
        assert!(store.signals_for_engine(all[4].id, 10).await.expect("read").is_empty(), "{label}");
    }
}

#[tokio::test]
async fn engine_machines_carry_account_level_sensor_and_creation_time() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let lone = machine(store, "lone").await;
        let member = machine(store, "member").await;
        let acme = store.create_account("acme", T0).await.expect("account");
        store.set_account_level("acme", Level::Verified).await.expect("level");
        store.enroll_machine(member, acme, None, &[], false, T0).await.expect("enroll");
        store.set_machine_sensor("member", true).await.expect("sensor");
        let machines = store.engine_machines().await.expect("read");
        assert_eq!(machines.len(), 2, "{label}");
        assert_eq!(
            (machines[0].key, machines[0].account, machines[0].level.as_str(), machines[0].sensor, machines[0].created_at),
            (lone, None, "anonymous", false, T0),
            "{label}: without an account"
        );
        assert_eq!(
            (machines[1].key, machines[1].account, machines[1].level.as_str(), machines[1].sensor),
            (member, Some(acme), "verified", true),
            "{label}: enrolled"
        );
    }
}

/// JSON text as a value, so that engines that normalise JSON (PostgreSQL `jsonb`) compare equal.
#[tokio::test]
async fn a_consensus_commit_applies_state_trust_lists_requests_and_watermark_together() {
    use crate::store::{ConsensusCommit, ListEntry, ListOp};
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "reporter").await;
        let empty = store.consensus_snapshot().await.expect("snapshot");
        assert_eq!((empty.watermark, empty.machines.len(), empty.targets.len()), (0, 0, 0), "{label}: fresh");
        assert_eq!(store.engine_machine(key).await.expect("read"), None, "{label}");
        assert_eq!(store.engine_target(net("45.33.32.156/32")).await.expect("read"), None, "{label}");

        let request = store.queue_consensus_request(RequestKind::FalsePositive, "45.33.32.156", T0).await.expect("queue");
        let later = store.queue_consensus_request(RequestKind::FalsePositive, "81.2.69.160", T0).await.expect("queue");
        assert!(later > request, "{label}: ids increase");
        let pending = store.pending_consensus_requests().await.expect("pending");
        assert_eq!(
            pending.iter().map(|r| (r.id, r.kind, r.value.as_str())).collect::<Vec<_>>(),
            [(request, RequestKind::FalsePositive, "45.33.32.156"), (later, RequestKind::FalsePositive, "81.2.69.160")]
        );

        let entry = ListEntry {
            list: "community".into(),
            value: listed("45.33.32.156"),
            scope: Scope::Ip,
            scenario: "crowdsecurity/ssh-bf".into(),
            remediation: Remediation::Ban,
            rule: Rule::Crowd,
            listed_at: T0,
            expires_at: T0 + Duration::days(1),
            seq: 0,
        };
        let mut machine_state = MachineState::new(None, Level::Email, false, T0.unix_timestamp());
        machine_state.good = 2.5;
        machine_state.leads = 3;
        let mut target_state = TargetState::default();
        target_state.first_seen = T0.unix_timestamp();
        target_state.last_seen = T0.unix_timestamp() + 60;
        let (target, other) = (net("45.33.32.156/32"), net("81.2.69.160/32"));
        let commit = ConsensusCommit {
            watermark: 17,
            machines: vec![(key, machine_state.clone(), 0.75)],
            targets: vec![(target, Some(target_state.clone())), (other, None)],
            done_requests: vec![request],
            list_ops: vec![ListOp::Add(entry.clone())],
            at: T0,
        };
        store.commit_consensus(&commit).await.expect("commit");

        assert_eq!(store.consensus_watermark().await.expect("watermark"), 17, "{label}");
        let snapshot = store.consensus_snapshot().await.expect("snapshot");
        assert_eq!(snapshot.watermark, 17, "{label}");
        assert_eq!(snapshot.machines, [(key, machine_state.clone())], "{label}");
        assert_eq!(snapshot.targets, [(target, target_state.clone())], "{label}: a forgotten target is absent");
        assert_eq!(store.engine_machine(key).await.expect("read"), Some(machine_state), "{label}");
        assert_eq!(store.engine_target(target).await.expect("read"), Some(target_state), "{label}");
        assert_eq!(store.machine_by_login("reporter").await.expect("read").expect("exists").trust, 0.75, "{label}: trust");
        let found = store.list_entry("community", target).await.expect("entry").expect("listed");
        assert_eq!(found, ListEntry { seq: found.seq, ..entry }, "{label}: the entry as committed");
        assert!(found.seq > 0, "{label}: with a seq");
        assert_eq!(store.list_entry("community", other).await.expect("entry"), None, "{label}");
        assert_eq!(store.list_entry("other", target).await.expect("entry"), None, "{label}: per list");
        let pending = store.pending_consensus_requests().await.expect("pending");
        assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [later], "{label}: the carried-out request is done");

        let forget = ConsensusCommit {
            watermark: 18,
            machines: Vec::new(),
            targets: vec![(target, None)],
            done_requests: Vec::new(),
            list_ops: vec![ListOp::Remove { list: "community".into(), value: target, reason: "expired".into() }],
            at: T0 + Duration::days(1),
        };
        store.commit_consensus(&forget).await.expect("commit");
        assert_eq!(store.engine_target(target).await.expect("read"), None, "{label}: forgotten");
        assert_eq!(store.list_entry("community", target).await.expect("entry"), None, "{label}: removed");
        assert_eq!(store.consensus_watermark().await.expect("watermark"), 18, "{label}");
    }
}

#[tokio::test]
async fn leadership_is_granted_once_at_a_time_on_postgres_and_always_on_sqlite() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let mut first = store.acquire_leadership().await.expect("acquire").expect("nobody holds it yet");
        assert!(first.still_held().await, "{label}");
        let second = store.acquire_leadership().await.expect("acquire again");
        match s.db.backend {
            Backend::Sqlite => assert!(second.is_some(), "{label}: one process, always the leader"),
            Backend::Postgres => assert!(second.is_none(), "{label}: held by the first"),
        }
        assert!(first.still_held().await, "{label}: asking again does not take it away");
    }
}

#[tokio::test]
async fn canaries_are_added_once_listed_by_value_and_removed() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        store.add_canary("81.2.69.160", "office", T0).await.expect("add");
        store.add_canary("45.33.32.0/24", "lab", T0 + Duration::seconds(1)).await.expect("add");
        assert!(matches!(store.add_canary("81.2.69.160", "again", T0).await, Err(StoreError::Conflict(_))), "{label}");
        let listed = store.list_canaries().await.expect("list");
        assert_eq!(
            listed.iter().map(|c| (c.value.as_str(), c.note.as_str(), c.created_at)).collect::<Vec<_>>(),
            [("45.33.32.0/24", "lab", T0 + Duration::seconds(1)), ("81.2.69.160", "office", T0)],
            "{label}: in value order"
        );
        assert!(store.remove_canary("81.2.69.160").await.expect("remove"), "{label}");
        assert!(!store.remove_canary("81.2.69.160").await.expect("remove again"), "{label}");
        assert_eq!(store.list_canaries().await.expect("list").len(), 1, "{label}");
    }
}

#[tokio::test]
async fn allowlist_ranges_are_added_per_source_and_removed_by_value_or_source() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let cdn = ["104.16.0.0/13".to_string(), "172.64.0.0/13".to_string()];
        assert_eq!(store.add_allowlist(&cdn, "cdn", "cloudflare", T0).await.expect("add"), 2, "{label}");
        assert_eq!(store.add_allowlist(&cdn, "cdn", "cloudflare", T0).await.expect("add again"), 0, "{label}: no new rows");
        let own = ["104.16.0.0/13".to_string(), "10.0.0.0/8".to_string()];
        assert_eq!(store.add_allowlist(&own, "custom", "operator", T0).await.expect("add"), 2, "{label}: per source");
        let listed = store.list_allowlist().await.expect("list");
        assert_eq!(
            listed.iter().map(|e| (e.source.as_str(), e.value.as_str(), e.category.as_str())).collect::<Vec<_>>(),
            [
                ("cloudflare", "104.16.0.0/13", "cdn"),
                ("cloudflare", "172.64.0.0/13", "cdn"),
                ("operator", "10.0.0.0/8", "custom"),
                ("operator", "104.16.0.0/13", "custom")
            ],
            "{label}: by source, then value"
        );
        assert!(listed.iter().all(|e| e.created_at == T0), "{label}");
        assert_eq!(store.remove_allowlist(Some("104.16.0.0/13"), Some("operator")).await.expect("remove"), 1, "{label}");
        assert_eq!(store.remove_allowlist(Some("172.64.0.0/13"), None).await.expect("remove"), 1, "{label}");
        assert_eq!(store.remove_allowlist(None, Some("operator")).await.expect("remove"), 1, "{label}");
        let left = store.list_allowlist().await.expect("list");
        assert_eq!(left.iter().map(|e| e.value.as_str()).collect::<Vec<_>>(), ["104.16.0.0/13"], "{label}");
        assert_eq!(store.remove_allowlist(None, None).await.expect("remove all"), 1, "{label}");
    }
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
    ];
    let suite = include_str!("conformance.rs");
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
