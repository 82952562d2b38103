//! Conformance of [`AccountStore`](crate::store::AccountStore): accounts and their levels,
//! enrollment (keys and machines), API keys and admin tokens.

use super::*;

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

        store.queue_consensus_request(RequestKind::FalsePositive, net("45.33.32.156/32"), None, T0).await.expect("queue");
        raw_execute(&s.db, "UPDATE consensus_requests SET kind = 'unban'").await;
        let pending = store.pending_consensus_requests().await;
        assert!(matches!(pending, Err(StoreError::Corrupt(ref what)) if what.contains("unban")), "{label}: {pending:?}");
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

#[tokio::test]
async fn enroll_keys_are_listed_per_account_and_revoked_once() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let acme = store.create_account("acme", T0).await.expect("acme");
        let other = store.create_account("other", T0).await.expect("other");
        store.create_enroll_key(acme, "ek-hash-a", "ek_aaaa", T0).await.expect("key a");
        store.create_enroll_key(acme, "ek-hash-b", "ek_bbbb", T0 + Duration::seconds(1)).await.expect("key b");
        store.create_enroll_key(other, "ek-hash-c", "ek_cccc", T0).await.expect("key c");
        let mine = store.list_enroll_keys(Some(acme)).await.expect("list");
        assert_eq!(mine.iter().map(|k| k.prefix.as_str()).collect::<Vec<_>>(), ["ek_aaaa", "ek_bbbb"], "{label}");
        assert_eq!((mine[0].created_at, mine[0].revoked_at), (T0, None), "{label}");
        assert_eq!((mine[0].account_name.as_str(), mine[0].uses, mine[0].last_used_at), ("acme", 0, None), "{label}");
        let all = store.list_enroll_keys(None).await.expect("list all");
        let all: Vec<(&str, &str)> = all.iter().map(|k| (k.prefix.as_str(), k.account_name.as_str())).collect();
        assert_eq!(all, [("ek_aaaa", "acme"), ("ek_bbbb", "acme"), ("ek_cccc", "other")], "{label}: every key, oldest first");

        store.touch_enroll_key("ek-hash-b", T0 + Duration::minutes(1)).await.expect("touch");
        store.touch_enroll_key("ek-hash-b", T0 + Duration::minutes(2)).await.expect("touch");
        store.touch_enroll_key("no-such-hash", T0).await.expect("touching an unknown key changes nothing");
        let b = store.list_enroll_keys(Some(acme)).await.expect("list").remove(1);
        assert_eq!((b.uses, b.last_used_at), (2, Some(T0 + Duration::minutes(2))), "{label}: uses counted");

        assert!(!store.revoke_enroll_key(Some(acme), "ek_cccc", T0).await.expect("revoke"), "{label}: not acme's key");
        assert!(store.revoke_enroll_key(Some(acme), "ek_aaaa", T0 + Duration::hours(1)).await.expect("revoke"), "{label}");
        assert!(!store.revoke_enroll_key(Some(acme), "ek_aaaa", T0).await.expect("revoke"), "{label}: already revoked");
        assert!(!store.revoke_enroll_key(None, "ek_nope", T0).await.expect("revoke"), "{label}: unknown prefix");
        assert!(store.revoke_enroll_key(None, "ek_cccc", T0).await.expect("revoke"), "{label}: any account's key");
        let mine = store.list_enroll_keys(Some(acme)).await.expect("list");
        assert_eq!(mine[0].revoked_at, Some(T0 + Duration::hours(1)), "{label}: revocation time");
        assert!(store.enroll_key_by_hash("ek-hash-a").await.expect("lookup").expect("found").revoked, "{label}");
        assert!(!store.enroll_key_by_hash("ek-hash-b").await.expect("lookup").expect("found").revoked, "{label}");
        assert!(store.enroll_key_by_hash("ek-hash-c").await.expect("lookup").expect("found").revoked, "{label}");

        assert_eq!(store.account_tier(acme).await.expect("tier").as_deref(), Some("free"), "{label}");
        store.set_account_tier("acme", "pro").await.expect("set tier");
        assert_eq!(store.account_tier(acme).await.expect("tier").as_deref(), Some("pro"), "{label}");
        assert_eq!(store.account_tier(crate::store::AccountKey(-5)).await.expect("tier"), None, "{label}: unknown account");
    }
}

#[tokio::test]
async fn api_key_stream_seq_is_none_until_set_and_then_the_last_value_set_per_key() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let acme = store.create_account("acme", T0).await.expect("account");
        store.create_api_key(acme, "hash-a", "pal_aaaa", T0).await.expect("key a");
        store.create_api_key(acme, "hash-b", "pal_bbbb", T0).await.expect("key b");
        assert_eq!(store.api_key_stream_seq("pal_aaaa").await.expect("read"), None, "{label}: never pulled");
        store.set_api_key_stream_seq("pal_aaaa", 7).await.expect("set");
        store.set_api_key_stream_seq("pal_aaaa", 42).await.expect("set again");
        assert_eq!(store.api_key_stream_seq("pal_aaaa").await.expect("read"), Some(42), "{label}: the last value set");
        assert_eq!(store.api_key_stream_seq("pal_bbbb").await.expect("read"), None, "{label}: per key");
        assert_eq!(store.api_key_stream_seq("pal_zzzz").await.expect("read"), None, "{label}: unknown key");
        store.set_api_key_stream_seq("pal_zzzz", 1).await.expect("setting an unknown key changes nothing");
        assert_eq!(store.api_key_stream_seq("pal_zzzz").await.expect("read"), None, "{label}: still unknown");
    }
}
