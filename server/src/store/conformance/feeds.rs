//! Conformance of [`FeedStore`](crate::store::FeedStore): a feed is created with its list, read
//! back with its state, claimed by one refresher at a time, and records each attempt's outcome;
//! deleting the list deletes the feed.

use super::*;
use crate::config::Secret;
use crate::store::{AttemptOutcome, CustomList, FeedAttempt, FeedDefinition, FeedState};

fn definition(name: &str) -> FeedDefinition {
    FeedDefinition {
        name: name.into(),
        url: "https://iplists.firehol.org/files/firehol_level1.netset".into(),
        format: "netset".into(),
        api_key: Some(Secret::new("pk_live_secret")),
        every_secs: 3600,
        max_bytes: 32 << 20,
        max_entries: 1_000_000,
        min_count: 3,
        lifetime_secs: 7 * 86_400,
    }
}

fn list(name: &str) -> CustomList {
    CustomList {
        name: name.into(),
        kind: "block".into(),
        description: "FireHOL level 1".into(),
        created_at: T0,
        visibility: "subscribers".into(),
    }
}

#[tokio::test]
async fn a_feed_is_created_with_its_list_and_read_back_with_an_empty_state() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        store.create_feed(&list("firehol"), &definition("firehol"), T0).await.expect("create");
        let feeds = store.feeds().await.expect("feeds");
        assert_eq!(feeds.len(), 1, "{label}");
        assert_eq!(feeds[0].definition, definition("firehol"), "{label}: definition, API key included");
        assert_eq!(feeds[0].created_at, T0, "{label}");
        assert_eq!(feeds[0].state, FeedState::default(), "{label}: never attempted");
        let lists = store.custom_lists().await.expect("lists");
        assert_eq!(lists, vec![list("firehol")], "{label}: the list exists too");

        // A second feed (or list) with the name conflicts, and leaves nothing half made.
        let again = store.create_feed(&list("firehol"), &definition("firehol"), T0).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{label}: {again:?}");
        assert_eq!(store.feeds().await.expect("feeds").len(), 1, "{label}");

        // Deleting the list deletes the feed.
        assert!(store.delete_custom_list("firehol", T0).await.expect("delete"), "{label}");
        assert!(store.feeds().await.expect("feeds").is_empty(), "{label}: feed gone with its list");
        assert!(
            !store
                .record_feed_attempt("firehol", &FeedAttempt { at: T0, outcome: AttemptOutcome::NotModified })
                .await
                .expect("record"),
            "{label}: no such feed"
        );
    }
}

#[tokio::test]
async fn one_claim_at_a_time_until_the_attempt_is_recorded_or_the_claim_lapses() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        store.create_feed(&list("drop"), &definition("drop"), T0).await.expect("create");
        let until = T0 + Duration::minutes(10);
        assert!(store.claim_feed("drop", T0, until).await.expect("claim"), "{label}: first claim");
        assert!(!store.claim_feed("drop", T0 + Duration::minutes(1), until).await.expect("claim"), "{label}: held");
        assert!(!store.claim_feed("nothing", T0, until).await.expect("claim"), "{label}: no such feed");
        // A claim whose holder died lapses.
        assert!(store.claim_feed("drop", until, until + Duration::minutes(10)).await.expect("claim"), "{label}: lapsed");
        // Recording releases it.
        let failed = FeedAttempt { at: until, outcome: AttemptOutcome::Failed { error: "HTTP 503 Service Unavailable".into() } };
        assert!(store.record_feed_attempt("drop", &failed).await.expect("record"), "{label}");
        assert!(store.claim_feed("drop", until, until + Duration::minutes(10)).await.expect("claim"), "{label}: released");
    }
}

#[tokio::test]
async fn attempts_record_loads_not_modified_and_failures() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        store.create_feed(&list("ipsum"), &definition("ipsum"), T0).await.expect("create");
        let t1 = T0 + Duration::hours(1);
        let loaded = AttemptOutcome::Loaded {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Wed, 25 Nov 2026 11:00:00 GMT".into()),
            entries: 42,
        };
        store.record_feed_attempt("ipsum", &FeedAttempt { at: t1, outcome: loaded }).await.expect("loaded");
        let state = store.feeds().await.expect("feeds")[0].state.clone();
        let expected = FeedState {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Wed, 25 Nov 2026 11:00:00 GMT".into()),
            last_attempt_at: Some(t1),
            last_success_at: Some(t1),
            last_loaded_at: Some(t1),
            last_error: None,
            entries: 42,
            failures: 0,
        };
        assert_eq!(state, expected, "{label}: loaded");

        let t2 = t1 + Duration::hours(1);
        let failed = AttemptOutcome::Failed { error: "connection refused".into() };
        store.record_feed_attempt("ipsum", &FeedAttempt { at: t2, outcome: failed.clone() }).await.expect("failed");
        store.record_feed_attempt("ipsum", &FeedAttempt { at: t2, outcome: failed }).await.expect("failed again");
        let state = store.feeds().await.expect("feeds")[0].state.clone();
        let expected =
            FeedState { last_attempt_at: Some(t2), last_error: Some("connection refused".into()), failures: 2, ..expected };
        assert_eq!(state, expected, "{label}: failures keep the last copy's state");

        let t3 = t2 + Duration::hours(1);
        store.record_feed_attempt("ipsum", &FeedAttempt { at: t3, outcome: AttemptOutcome::NotModified }).await.expect("304");
        let state = store.feeds().await.expect("feeds")[0].state.clone();
        let expected =
            FeedState { last_attempt_at: Some(t3), last_success_at: Some(t3), last_error: None, failures: 0, ..expected };
        assert_eq!(state, expected, "{label}: not modified is a success, not a load");
    }
}
