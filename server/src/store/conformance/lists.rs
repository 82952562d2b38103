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
