//! Snapshots against a real store: load, advance, deltas and their cursors.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::OffsetDateTime;

use super::*;
use crate::domain::listing::{Remediation, Rule};
use crate::domain::net::{display_target, list_target};
use crate::domain::signal::Scope;
use crate::store::{ConsensusCommit, ListEntry, ListOp, Store};
use crate::testing::TestDb;

fn add(value: &str, now: OffsetDateTime) -> ListOp {
    ListOp::Add(ListEntry {
        list: "community".into(),
        value: net(value),
        scope: Scope::of(net(value)),
        scenario: "crowdsecurity/ssh-bf".into(),
        remediation: Remediation::Ban,
        rule: Rule::Sensor,
        listed_at: now,
        expires_at: now + time::Duration::hours(24),
        seq: 0,
    })
}

fn remove(value: &str) -> ListOp {
    ListOp::Remove { list: "community".into(), value: net(value), reason: "expired".into() }
}

fn net(value: &str) -> IpNet {
    list_target(value).expect("test address or range")
}

async fn commit(store: &dyn Store, ops: Vec<ListOp>) {
    let now = OffsetDateTime::now_utc();
    let commit =
        ConsensusCommit { watermark: 0, machines: vec![], targets: vec![], done_requests: vec![], list_ops: ops, at: now };
    store.commit_consensus(&commit).await.expect("commit");
}

fn members(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot.entries.iter().map(|e| e.value().to_string()).collect()
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

async fn stores() -> Vec<(TestDb, Arc<dyn Store>)> {
    let mut all = Vec::new();
    for db in TestDb::all().await {
        let store = crate::store::open(&db.url).await.expect("open");
        store.migrate().await.expect("migrate");
        all.push((db, store));
    }
    all
}

#[tokio::test]
async fn snapshot_follows_the_store_and_deltas_collapse_per_value() {
    for (db, store) in stores().await {
        let now = OffsetDateTime::now_utc();
        commit(store.as_ref(), vec![add("45.33.32.156", now), add("66.249.66.1", now)]).await;
        let lists = Lists::new(store.clone(), 1000, vec![]);
        let first = lists.get_or_load("community").await.expect("load");
        assert_eq!(members(&first), set(&["45.33.32.156", "66.249.66.1"]), "{}", db.label());
        let cursor = first.seq;
        commit(store.as_ref(), vec![add("81.2.69.160", now), remove("66.249.66.1"), add("1.2.3.4", now), remove("1.2.3.4")])
            .await;
        assert_eq!(lists.current("community").map(|s| s.seq), Some(cursor), "readers keep the old snapshot until a refresh");
        let second = lists.refresh("community").await.expect("refresh");
        assert_eq!(members(&second), set(&["45.33.32.156", "81.2.69.160"]));
        let delta = second.delta(cursor).expect("delta");
        let added: BTreeSet<String> = delta.added.iter().map(|e| e.value().to_string()).collect();
        let removed: BTreeSet<String> = delta.removed.iter().map(|e| e.value().to_string()).collect();
        assert_eq!(added, set(&["81.2.69.160"]));
        assert_eq!(removed, set(&["66.249.66.1", "1.2.3.4"]));
        assert_eq!(delta.seq, second.seq);
        let full = second.delta(0).expect("from the beginning");
        assert_eq!(full.added.len(), 2);
        let ahead = second.delta(second.seq + 10).expect("ahead");
        assert!(ahead.added.is_empty() && ahead.removed.is_empty());
        assert_eq!(ahead.seq, second.seq + 10, "a cursor from a replica further along is kept");
    }
}

#[tokio::test]
async fn what_a_list_serves_shares_its_members_unless_some_are_left_out() {
    for (db, store) in stores().await {
        let label = db.label();
        let now = OffsetDateTime::now_utc();
        commit(store.as_ref(), vec![add("45.33.32.156", now), add("81.2.69.160", now)]).await;
        let lists = Lists::new(store.clone(), 1000, vec![]);
        let snapshot = lists.get_or_load("community").await.expect("load");
        let served = lists.served("community").await.expect("served");
        assert!(Arc::ptr_eq(&served.entries, &snapshot.entries), "{label}: every member served, none copied");
        store.add_canary("81.2.69.160", "trap", now).await.expect("canary");
        lists.refresh_policy().await.expect("policy");
        let served = lists.served("community").await.expect("served");
        assert!(!Arc::ptr_eq(&served.entries, &snapshot.entries), "{label}");
        let values: Vec<String> = served.entries.iter().map(|e| e.value().to_string()).collect();
        assert_eq!(values, ["45.33.32.156"], "{label}: a canary is never served");
        assert_eq!(snapshot.entries.len(), 2, "{label}: the members are unchanged");
    }
}

#[tokio::test]
async fn a_cursor_older_than_the_retained_log_is_refused() {
    for (db, store) in stores().await {
        let now = OffsetDateTime::now_utc();
        let lists = Lists::new(store.clone(), 3, vec![]);
        lists.get_or_load("community").await.expect("load");
        for i in 0..5 {
            commit(store.as_ref(), vec![add(&format!("192.0.2.{i}"), now)]).await;
        }
        let snapshot = lists.refresh("community").await.expect("refresh");
        assert_eq!(snapshot.changes.len(), 3, "{}", db.label());
        assert!(matches!(snapshot.delta(0), Err(DeltaError::TooOld { cursor: 0, .. })));
        let oldest = snapshot.oldest_cursor;
        assert_eq!(snapshot.delta(oldest).expect("oldest usable").added.len(), 3);
        // A replica starting now retains the same window of the store's log.
        let fresh = Lists::new(store.clone(), 3, vec![]).get_or_load("community").await.expect("load");
        assert_eq!(members(&fresh), members(&snapshot));
        assert!(fresh.delta(fresh.seq - 3).is_ok());
        assert!(fresh.delta(fresh.seq - 4).is_err());
    }
}

#[tokio::test]
async fn cursors_see_every_change_exactly_once_while_changes_keep_coming() {
    for (db, store) in stores().await {
        let now = OffsetDateTime::now_utc();
        let lists = Arc::new(Lists::new(store.clone(), 100_000, vec![]));
        lists.get_or_load("community").await.expect("load");
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..60u32 {
                    let value = format!("198.18.{}.{}", i / 200, i % 200);
                    commit(store.as_ref(), vec![add(&value, now)]).await;
                    if i % 3 == 0 {
                        commit(store.as_ref(), vec![remove(&value)]).await;
                    }
                }
            })
        };
        // A consumer pulling deltas while the writer runs, replaying them onto its own copy.
        let mut cursor = 0;
        let mut mine: BTreeSet<String> = BTreeSet::new();
        let mut seen_seqs = BTreeSet::new();
        loop {
            let finished = writer.is_finished();
            let snapshot = lists.refresh("community").await.expect("refresh");
            for (_, entry) in snapshot.changes.between(cursor, i64::MAX) {
                assert!(seen_seqs.insert(entry.seq), "{}: seq {} delivered twice", db.label(), entry.seq);
            }
            let delta = snapshot.delta(cursor).expect("delta");
            for entry in &delta.added {
                mine.insert(entry.value().to_string());
            }
            for entry in &delta.removed {
                mine.remove(&entry.value().to_string());
            }
            cursor = delta.seq;
            if finished {
                break;
            }
            tokio::task::yield_now().await;
        }
        let truth: BTreeSet<String> =
            store.list_entries("community").await.expect("entries").into_iter().map(|e| display_target(e.value)).collect();
        assert_eq!(mine, truth, "{}: replayed deltas match the store", db.label());
        assert_eq!(seen_seqs.len(), 80, "{}: every change seen once", db.label());
    }
}

#[tokio::test]
async fn a_list_still_loading_is_reported_as_such_and_loads_in_the_background() {
    for (db, store) in stores().await {
        let label = db.label();
        let now = OffsetDateTime::now_utc();
        commit(store.as_ref(), vec![add("45.33.32.156", now)]).await;
        let lists = Arc::new(Lists::new(store.clone(), 1000, vec![]));
        // Another refresh holding the lock stands for a long first load.
        let busy = lists.refreshing.lock().await;
        let waited = lists.loaded_by("community", tokio::time::Instant::now() + Duration::from_millis(50)).await;
        assert!(waited.is_none(), "{label}: not loaded while the load cannot run");
        assert!(lists.current("community").is_none(), "{label}");
        drop(busy);
        // The load started by the first call goes on without anyone asking again.
        let loaded = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(snapshot) = lists.current("community") {
                    return snapshot;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("loaded in the background");
        assert_eq!(members(&loaded), set(&["45.33.32.156"]), "{label}");
        let again = lists.loaded_by("community", tokio::time::Instant::now()).await.expect("loaded");
        assert!(Arc::ptr_eq(&again, &loaded), "{label}: a loaded list answers at once");
    }
}

fn member(value: &str, seq: i64) -> SharedEntry {
    let meta = Arc::new(Meta { scope: "ip".into(), scenario: "s".into(), remediation: "ban".into(), rule: "r".into() });
    let now = OffsetDateTime::now_utc();
    let net = crate::domain::net::parse_target(value).expect("value");
    SharedEntry::new(Entry::new(net, meta, now, now + time::Duration::hours(1), seq))
}

#[test]
fn merge_keeps_members_sorted_one_per_prefix() {
    let members: Vec<SharedEntry> = ["10.0.0.1", "10.0.0.5", "10.0.0.9", "2001:db8::1"].iter().map(|v| member(v, 1)).collect();
    let mut updates = std::collections::BTreeMap::new();
    updates.insert(member("10.0.0.0", 2).net, Some(member("10.0.0.0", 2))); // before the first
    updates.insert(member("10.0.0.5", 2).net, Some(member("10.0.0.5", 2))); // replaces
    updates.insert(member("10.0.0.9", 2).net, None); // removes
    updates.insert(member("10.0.0.200", 2).net, None); // removes nothing
    updates.insert(member("2001:db8::2", 2).net, Some(member("2001:db8::2", 2))); // after the last
    let merged = merge(&members, updates);
    let shown: Vec<(String, i64)> = merged.iter().map(|e| (e.value().to_string(), e.seq)).collect();
    let expected = [("10.0.0.0", 2), ("10.0.0.1", 1), ("10.0.0.5", 2), ("2001:db8::1", 1), ("2001:db8::2", 2)];
    assert_eq!(shown, expected.map(|(v, s)| (v.to_string(), s)));
    let snapshot = Snapshot { entries: Arc::new(merged), ..Snapshot::default() };
    assert_eq!(snapshot.get(&member("10.0.0.5", 0).net).map(|e| e.seq), Some(2));
    assert!(snapshot.get(&member("10.0.0.9", 0).net).is_none());
}

#[test]
fn an_entry_stays_compact_and_writes_its_canonical_value() {
    // A million served entries cost their block each, plus a pointer per view: 48 bytes and the
    // shared pointer's 8-byte count fill a 64-byte block; one byte more takes an 80-byte one.
    assert!(std::mem::size_of::<Entry>() <= 48, "Entry is {} bytes", std::mem::size_of::<Entry>());
    assert_eq!(std::mem::size_of::<SharedEntry>(), 8);
    // Times are whole seconds in 32 bits: exact until 2106, saturating after (still in force).
    let meta = Arc::new(Meta { scope: "ip".into(), scenario: "s".into(), remediation: "ban".into(), rule: "r".into() });
    let listed = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    let beyond = OffsetDateTime::from_unix_timestamp(i64::from(u32::MAX) + 86_400).expect("time");
    let entry = Entry::new(net("45.33.32.156"), meta, listed, beyond, 7);
    assert_eq!(entry.listed_at(), listed);
    assert_eq!(entry.expires_at().unix_timestamp(), i64::from(u32::MAX));
    assert!(entry.live_at(beyond - time::Duration::days(2)));
    for value in ["192.0.2.1", "198.51.100.0/24", "2001:db8::1", "2001:db8::/32"] {
        assert_eq!(member(value, 1).value().to_string(), value);
    }
    // The direct writer gives Display's bytes, for every octet value in every position.
    for octet in 0..=255u8 {
        for address in [[octet, 0, 9, 10], [99, octet, 100, 255], [1, 2, octet, octet], [255, 10, 0, octet]] {
            let value = Value(IpNet::from(std::net::IpAddr::from(address)));
            let mut line = Vec::new();
            value.append_to(&mut line);
            assert_eq!(String::from_utf8(line).expect("ascii"), value.to_string());
        }
    }
    let mut line = b"x ".to_vec();
    Value("2001:db8::/32".parse().expect("net")).append_to(&mut line);
    assert_eq!(line, b"x 2001:db8::/32");
}

#[test]
fn a_view_holding_every_member_is_the_member_vector_itself() {
    let entries: Vec<SharedEntry> = ["10.0.0.1", "10.0.0.5", "10.0.0.9"].iter().zip(1..).map(|(v, seq)| member(v, seq)).collect();
    let snapshot = Snapshot { entries: Arc::new(entries), ..Snapshot::default() };
    let now = OffsetDateTime::now_utc();
    let whole = view(&snapshot, now, &[], true, 3);
    assert!(Arc::ptr_eq(&whole, &snapshot.entries), "every member in view: shared, not copied");
    // Capped: the most recently written, ranked, in a vector of its own.
    let capped = view(&snapshot, now, &[], true, 2);
    let shown: Vec<String> = capped.iter().map(|e| e.value().to_string()).collect();
    assert_eq!(shown, ["10.0.0.9", "10.0.0.5"]);
    // Past the members' expiry nothing is live: a copy of what is, never the members.
    let later = now + time::Duration::hours(2);
    assert!(view(&snapshot, later, &[], true, 3).is_empty());
    assert!(snapshot.live_shared(later).is_empty());
    assert!(Arc::ptr_eq(&snapshot.live_shared(now), &snapshot.entries));
}
