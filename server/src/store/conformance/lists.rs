//! Conformance of [`ListStore`](crate::store::ListStore): custom lists and their entries, paging,
//! canaries and the never-block allowlist.

use super::*;

#[tokio::test]
async fn custom_lists_hold_entries_under_the_shared_seq_and_delete_with_logged_removals() {
    use crate::store::{CustomList, ListEntry, ListOp};
    for s in subjects().await {
        let label = s.label();
        let list = CustomList {
            name: "partners".into(),
            kind: "block".into(),
            description: "d".into(),
            created_at: T0,
            visibility: "subscribers".into(),
        };
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
        assert!(s.store().set_custom_list_visibility("partners", "operator").await.expect("visibility"), "{label}");
        assert_eq!(s.store().custom_lists().await.expect("lists")[0].visibility, "operator", "{label}");
        assert!(!s.store().set_custom_list_visibility("nothing", "public").await.expect("no list"), "{label}");

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
async fn list_entries_are_paged_by_value_each_exactly_once() {
    use crate::store::{CustomList, ListEntry, ListOp};
    for s in subjects().await {
        let label = s.label();
        let list = CustomList {
            name: "paged".into(),
            kind: "block".into(),
            description: String::new(),
            created_at: T0,
            visibility: "subscribers".into(),
        };
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
        // Seven members: a short last page, one page that holds them all, and (pages of 1) a last
        // full page followed by an empty read that ends the walk.
        for (size, pages) in [(3, vec![3, 3, 1]), (7, vec![7]), (2, vec![2, 2, 2, 1]), (8, vec![7])] {
            let mut reader = crate::store::MemberPages::of_size(s.store(), "paged", size);
            let (mut seen, mut sizes) = (Vec::new(), Vec::new());
            while let Some(page) = reader.next().await.expect("page") {
                sizes.push(page.len());
                seen.extend(page.iter().map(|e| display_target(e.value)));
            }
            assert_eq!(sizes, pages, "{label}: pages of {size}");
            assert_eq!(seen, values, "{label}: every member once, in value order, pages of {size}");
        }
        let mut exact = crate::store::MemberPages::of_size(s.store(), "paged", 1);
        let mut count = 0;
        while let Some(page) = exact.next().await.expect("page") {
            assert_eq!(page.len(), 1, "{label}");
            count += 1;
        }
        assert_eq!(count, 7, "{label}: a last full page is followed by nothing");
        assert!(s.store().list_entries_page("community", "", 3).await.expect("other list").is_empty(), "{label}");
        assert!(crate::store::MemberPages::new(s.store(), "community").next().await.expect("empty").is_none(), "{label}");
    }
}

/// The `i`th value of the large-batch test: mostly addresses, every 50th a range.
fn batch_value(i: usize) -> IpNet {
    if i.is_multiple_of(50) {
        listed(&format!("81.{}.{}.0/24", i / 50 / 256, i / 50 % 256))
    } else {
        listed(&format!("45.0.{}.{}", i / 256, i % 256))
    }
}

/// An addition of value `i` to `list`; `renewal` changes every field a renewal may change.
fn batch_add(list: &str, i: usize, renewal: bool) -> crate::store::ListOp {
    let value = batch_value(i);
    crate::store::ListOp::Add(crate::store::ListEntry {
        list: list.into(),
        value,
        scope: Scope::of(value),
        scenario: if renewal { format!("{list}/renewed") } else { list.into() },
        remediation: if renewal { Remediation::Captcha } else { Remediation::Ban },
        rule: Rule::Operator,
        listed_at: if renewal { T0 + Duration::seconds(1) } else { T0 },
        expires_at: T0 + Duration::days(if renewal { 2 } else { 1 }) + Duration::microseconds(i as i64),
        seq: 0,
    })
}

/// 5,000 changes in runs long and short: a run of 2,100 additions (past every backend's statement
/// size), 700 seeded changes in runs of 1 to 40 (new values, renewals, repeats, removals of
/// present and absent values, a tenth of them on a second list), then 2,200 removals of present
/// and absent values with repeats.
fn large_batch() -> Vec<crate::store::ListOp> {
    use crate::store::ListOp;
    let mut ops: Vec<ListOp> = (0..2100).map(|i| batch_add("bulk", i, false)).collect();
    let mut seed: u64 = 0x5eed;
    let mut draw = move |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n
    };
    let mut removing = false;
    while ops.len() < 2800 {
        let end = (ops.len() + 1 + draw(40)).min(2800);
        while ops.len() < end {
            let list = if draw(10) == 0 { "other" } else { "bulk" };
            let i = draw(3000);
            ops.push(if removing {
                ListOp::Remove { list: list.into(), value: batch_value(i), reason: format!("churn {}", ops.len()) }
            } else {
                batch_add(list, i, draw(2) == 0)
            });
            // Now and then the same change twice in a row, inside one run.
            if draw(8) == 0 && ops.len() < end {
                let again = ops[ops.len() - 1].clone();
                ops.push(again);
            }
        }
        removing = !removing;
    }
    for k in 0..2200 {
        let i = if k % 10 == 9 { (k - 1) * 7 % 3000 } else { k * 7 % 3000 };
        ops.push(ListOp::Remove { list: "bulk".into(), value: batch_value(i), reason: "cleanup".into() });
    }
    ops
}

/// What applying `ops` one at a time from seq `after` must leave: every list's changes in seq
/// order and its entries.
fn applied_one_by_one(
    ops: &[crate::store::ListOp],
    after: i64,
    at: OffsetDateTime,
) -> (Vec<crate::store::ListChange>, std::collections::HashMap<(String, IpNet), crate::store::ListEntry>) {
    use crate::store::{ListChange, ListEntry, ListOp};
    let mut seq = after;
    let mut entries: std::collections::HashMap<(String, IpNet), ListEntry> = std::collections::HashMap::new();
    let mut changes = Vec::new();
    for op in ops {
        match op {
            ListOp::Add(e) => {
                seq += 1;
                changes.push(ListChange {
                    seq,
                    op: ChangeOp::Add,
                    entry: ListEntry { seq, listed_at: at, ..e.clone() },
                    reason: None,
                    at,
                });
                let key = (e.list.clone(), e.value);
                let listed_at = entries.get(&key).map_or(e.listed_at, |stored| stored.listed_at);
                entries.insert(key, ListEntry { seq, listed_at, ..e.clone() });
            }
            ListOp::Remove { list, value, reason } => {
                if let Some(stored) = entries.remove(&(list.clone(), *value)) {
                    seq += 1;
                    changes.push(ListChange {
                        seq,
                        op: ChangeOp::Remove,
                        entry: ListEntry { seq, listed_at: at, ..stored },
                        reason: Some(reason.clone()),
                        at,
                    });
                }
            }
        }
    }
    (changes, entries)
}

#[tokio::test]
async fn a_large_batch_of_mixed_changes_is_applied_as_if_one_by_one() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        // A change already logged, so the batch's seqs continue from it.
        let at = T0 + Duration::minutes(1);
        let mut ops = vec![batch_add("other", 2999, false)];
        store.apply_list_ops(&ops, at).await.expect("first change");
        let after = store.list_seq("other").await.expect("seq");
        let batch = large_batch();
        assert_eq!(batch.len(), 5000);
        store.apply_list_ops(&batch, at).await.expect("apply");
        ops.extend(batch);
        let (mut expected, members) = applied_one_by_one(&ops, after - 1, at);
        expected.retain(|c| c.seq > after);
        let mut changes = store.list_changes("bulk", after, 10_000).await.expect("changes");
        changes.extend(store.list_changes("other", after, 10_000).await.expect("changes"));
        changes.sort_by_key(|c| c.seq);
        let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (after + 1..=after + expected.len() as i64).collect::<Vec<_>>(), "{label}: contiguous seqs");
        assert!(expected.iter().any(|c| c.op == ChangeOp::Remove) && expected.len() < 5000, "{label}: a mixed batch");
        for (got, want) in changes.iter().zip(&expected) {
            assert_eq!(got, want, "{label}: change {}", want.seq);
        }
        for list in ["bulk", "other"] {
            let stored = store.list_entries(list).await.expect("entries");
            let mut want: Vec<&crate::store::ListEntry> = members.values().filter(|e| e.list == list).collect();
            want.sort_by_key(|e| e.seq);
            assert_eq!(stored.len(), want.len(), "{label}: {list} members");
            for (got, want) in stored.iter().zip(want) {
                assert_eq!(got, want, "{label}: {list} member {}", display_target(want.value));
            }
            let last = expected.iter().filter(|c| c.entry.list == list).map(|c| c.seq).max().unwrap_or(after);
            assert_eq!(store.list_seq(list).await.expect("seq"), last, "{label}: {list} seq");
        }
        // The next write, one change, takes the next seq.
        store.apply_list_ops(&[batch_add("bulk", 0, true)], at).await.expect("after the batch");
        assert_eq!(store.list_seq("bulk").await.expect("seq"), after + expected.len() as i64 + 1, "{label}: no gap after");
    }
}

/// Runs long enough for a backend's bulk path (PostgreSQL copies a run of 10,000 rows or more):
/// 12,000 additions renewing values listed before and repeating values inside the run, with texts
/// holding the bytes a copy must escape, then 10,500 removals; the result is what applying them
/// one by one gives.
#[tokio::test]
async fn runs_past_the_bulk_threshold_are_applied_as_if_one_by_one() {
    use crate::store::ListOp;
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let at = T0 + Duration::minutes(1);
        let before: Vec<ListOp> = (0..50).map(|i| batch_add("bulk", i * 7, false)).collect();
        store.apply_list_ops(&before, at).await.expect("listed before");
        let first = store.list_seq("bulk").await.expect("seq") - 49;
        let mut batch: Vec<ListOp> = (0..12_000).map(|i| batch_add("bulk", i % 11_000, i % 3 == 0)).collect();
        if let ListOp::Add(entry) = &mut batch[7] {
            entry.scenario = "tab\there, back\\slash,\nnew line\r".into();
        }
        batch.extend((0..10_500).map(|i| ListOp::Remove {
            list: "bulk".into(),
            value: batch_value(i * 13 % 11_500),
            reason: "bulk\tcleanup \\ done".into(),
        }));
        store.apply_list_ops(&batch, at).await.expect("apply");
        let mut ops = before;
        ops.extend(batch);
        let changes = assert_applied_one_by_one(store, label, "bulk", &ops, first, at).await;
        assert!(changes.iter().any(|c| c.entry.scenario.contains('\t')), "{label}: an escaped scenario");
        assert!(changes.iter().any(|c| c.reason.as_deref().is_some_and(|r| r.contains('\\'))), "{label}: an escaped reason");
    }
}

/// The same into a list that holds nothing yet (PostgreSQL copies such a run straight into the
/// entries table, with no upsert), values repeated inside the run keeping their last state; then
/// new values only into the now full list, and a long run renewing values of both (keeping their
/// first `listed_at`).
#[tokio::test]
async fn a_bulk_run_into_an_empty_list_is_applied_as_if_one_by_one() {
    use crate::store::ListOp;
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let at = T0 + Duration::minutes(1);
        let fresh: Vec<ListOp> = (0..12_000).map(|i| batch_add("fresh", i % 11_000, i >= 11_000)).collect();
        store.apply_list_ops(&fresh, at).await.expect("into the empty list");
        let first = store.list_seq("fresh").await.expect("seq") - 11_999;
        let growth: Vec<ListOp> = (11_000..23_000).map(|i| batch_add("fresh", i, false)).collect();
        store.apply_list_ops(&growth, at).await.expect("new values into the full list");
        let renewals: Vec<ListOp> = (0..10_500).map(|i| batch_add("fresh", i * 7 % 23_000, true)).collect();
        store.apply_list_ops(&renewals, at).await.expect("renewals");
        let mut ops = fresh;
        ops.extend(growth);
        ops.extend(renewals);
        assert_applied_one_by_one(store, label, "fresh", &ops, first, at).await;
    }
}

/// A long run of new values into an occupied list that already holds one of them, where a
/// sample of the run's keys does not look (PostgreSQL samples every 100th key in key order and
/// the last, finds none stored, copies straight into the entries table, meets the stored key,
/// and writes the run again through the upsert): the result is what applying them one by one
/// gives, the stored value renewed with its first `listed_at`.
#[tokio::test]
async fn a_bulk_run_meeting_a_stored_value_its_sample_missed_is_applied_as_if_one_by_one() {
    use crate::store::ListOp;
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let at = T0 + Duration::minutes(1);
        // Value 3 (45.0.0.3) is the third key of the run in key order: values 1 and 2 come
        // before it, and multiples of 50 are /24s of 81.0.0.0 that sort after every 45.0.x.y.
        let stored = vec![batch_add("sampled", 3, false)];
        store.apply_list_ops(&stored, at).await.expect("the stored value");
        let first = store.list_seq("sampled").await.expect("seq");
        let run: Vec<ListOp> = (0..12_000).map(|i| batch_add("sampled", i, i == 3)).collect();
        store.apply_list_ops(&run, at).await.expect("the run");
        let mut ops = stored;
        ops.extend(run);
        assert_applied_one_by_one(store, label, "sampled", &ops, first, at).await;
        let renewed = store.list_entries("sampled").await.expect("entries");
        let three = renewed.iter().find(|e| e.value == batch_value(3)).expect("value 3 listed");
        assert_eq!((three.listed_at, three.scenario.as_str()), (T0, "sampled/renewed"), "{label}: renewed, first listed_at kept");
    }
}

/// Asserts that `list`'s changes from seq `first` on and its members are what applying `ops` one
/// by one gives; returns the changes.
async fn assert_applied_one_by_one(
    store: &dyn crate::store::Store,
    label: &str,
    list: &str,
    ops: &[crate::store::ListOp],
    first: i64,
    at: OffsetDateTime,
) -> Vec<crate::store::ListChange> {
    let (expected, members) = applied_one_by_one(ops, first - 1, at);
    let mut changes = Vec::new();
    let mut cursor = first - 1;
    loop {
        let page = store.list_changes(list, cursor, 10_000).await.expect("changes");
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        changes.extend(page);
    }
    assert_eq!(changes.len(), expected.len(), "{label}: changes");
    for (got, want) in changes.iter().zip(&expected) {
        assert_eq!(got, want, "{label}: change {}", want.seq);
    }
    let stored = store.list_entries(list).await.expect("entries");
    let mut want: Vec<&crate::store::ListEntry> = members.values().collect();
    want.sort_by_key(|e| e.seq);
    assert_eq!(stored.len(), want.len(), "{label}: members");
    for (got, want) in stored.iter().zip(want) {
        assert_eq!(got, want, "{label}: member {}", display_target(want.value));
    }
    changes
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
