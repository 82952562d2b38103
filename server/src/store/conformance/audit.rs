//! Conformance of [`AuditStore`](crate::store::AuditStore): appending entries and reading them
//! newest first, paged and filtered.

use super::*;
use crate::store::{AuditFilter, NewAuditEntry};

fn entry(at: OffsetDateTime, actor: &str, action: &str, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        detail: r#"{"name":"x"}"#.into(),
        client: Some("192.0.2.7".into()),
        status: Some(204),
    }
}

#[tokio::test]
async fn audit_entries_are_read_newest_first_paged_and_filtered() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let all = |limit| AuditFilter { limit, ..AuditFilter::default() };
        assert!(store.list_audit(&all(10)).await.expect("empty").is_empty(), "{label}: empty");

        let first = store.append_audit(&entry(T0, "token:pal_adm_abcd", "delete_machine", "agent-1")).await.expect("append");
        let cli = NewAuditEntry {
            client: None,
            status: None,
            ..entry(T0 + Duration::minutes(1), "cli:root", "create_account", "acme")
        };
        let second = store.append_audit(&cli).await.expect("append");
        let third = store
            .append_audit(&entry(T0 + Duration::hours(1), "token:pal_adm_abcd", "create_account", "b"))
            .await
            .expect("append");
        assert!(first < second && second < third, "{label}: ids grow");

        let page = store.list_audit(&all(10)).await.expect("list");
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [third, second, first], "{label}: newest first");
        assert_eq!(page[1].entry, cli, "{label}: stored as appended, without client or status");
        assert_eq!(page[2].entry, entry(T0, "token:pal_adm_abcd", "delete_machine", "agent-1"), "{label}");

        let first_page = store.list_audit(&all(2)).await.expect("page");
        assert_eq!(first_page.iter().map(|e| e.id).collect::<Vec<_>>(), [third, second], "{label}: limit");
        let next =
            store.list_audit(&AuditFilter { before: Some(second), limit: 2, ..AuditFilter::default() }).await.expect("next");
        assert_eq!(next.iter().map(|e| e.id).collect::<Vec<_>>(), [first], "{label}: before");

        let by_action = AuditFilter { action: Some("create_account".into()), limit: 10, ..AuditFilter::default() };
        assert_eq!(store.list_audit(&by_action).await.expect("action").iter().map(|e| e.id).collect::<Vec<_>>(), [third, second]);
        let by_actor = AuditFilter { actor: Some("cli:root".into()), limit: 10, ..AuditFilter::default() };
        assert_eq!(store.list_audit(&by_actor).await.expect("actor").iter().map(|e| e.id).collect::<Vec<_>>(), [second]);
        let since = AuditFilter { since: Some(T0 + Duration::minutes(1)), limit: 10, ..AuditFilter::default() };
        assert_eq!(store.list_audit(&since).await.expect("since").iter().map(|e| e.id).collect::<Vec<_>>(), [third, second]);
        let both = AuditFilter {
            actor: Some("token:pal_adm_abcd".into()),
            action: Some("create_account".into()),
            limit: 10,
            ..AuditFilter::default()
        };
        assert_eq!(store.list_audit(&both).await.expect("both").iter().map(|e| e.id).collect::<Vec<_>>(), [third], "{label}");
    }
}
