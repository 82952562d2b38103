//! Conformance of [`RevocationStore`](crate::store::RevocationStore): disabling, enabling and
//! deleting machines, replacing passwords, listing, touching and revoking admin tokens, and the
//! revocation list with its generation and expiry.

use super::*;
use crate::store::{Generation, Revocation, RevocationKind};

#[tokio::test]
async fn disabling_a_machine_marks_it_and_appends_a_revocation() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "agent-1").await;
        machine(store, "agent-2").await;
        let empty = store.revocation_generation().await.expect("generation");
        assert_eq!(empty, Generation { count: 0, last_id: 0 }, "{label}: empty list");
        assert!(store.disabled_machines().await.expect("disabled").is_empty(), "{label}: none disabled");

        let at = T0 + Duration::minutes(1);
        assert_eq!(store.set_machine_disabled("agent-1", true, at).await.expect("disable"), key, "{label}: key");
        let found = store.machine_by_login("agent-1").await.expect("lookup").expect("still found");
        assert_eq!(found.disabled_at, Some(at), "{label}: disabled_at");
        assert_eq!(store.disabled_machines().await.expect("disabled"), vec![key], "{label}: disabled set");
        let after = store.revocation_generation().await.expect("generation");
        assert_eq!(after.count, 1, "{label}: one revocation");
        assert!(after.last_id > 0, "{label}: an id");
        let list = store.revocations_since(T0).await.expect("list");
        assert_eq!(list, vec![Revocation { kind: RevocationKind::Machine, subject: key.0.to_string(), at }], "{label}");

        // Disabling again keeps the first time; enabling clears it and is a revocation too.
        store.set_machine_disabled("agent-1", true, at + Duration::minutes(1)).await.expect("again");
        let found = store.machine_by_login("agent-1").await.expect("lookup").expect("found");
        assert_eq!(found.disabled_at, Some(at), "{label}: first disable time kept");
        store.set_machine_disabled("agent-1", false, at + Duration::minutes(2)).await.expect("enable");
        let found = store.machine_by_login("agent-1").await.expect("lookup").expect("found");
        assert_eq!(found.disabled_at, None, "{label}: enabled");
        assert!(store.disabled_machines().await.expect("disabled").is_empty(), "{label}: none disabled");
        assert_eq!(store.revocation_generation().await.expect("generation").count, 3, "{label}: three revocations");

        let missing = store.set_machine_disabled("nobody", true, at).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{label}: unknown login {missing:?}");
        assert_eq!(store.revocation_generation().await.expect("generation").count, 3, "{label}: nothing appended");
    }
}

#[tokio::test]
async fn deleted_machines_leave_listings_and_logins_but_stay_disabled() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let gone = machine(store, "agent-gone").await;
        let kept = machine(store, "agent-kept").await;
        let account = store.create_account("acme", T0).await.expect("account");
        for key in [gone, kept] {
            store.enroll_machine(key, account, None, &[], false, T0).await.expect("enroll");
        }
        let at = T0 + Duration::hours(1);
        assert_eq!(store.delete_machine("agent-gone", at).await.expect("delete"), gone, "{label}: key");
        assert!(store.machine_by_login("agent-gone").await.expect("lookup").is_none(), "{label}: no login");
        let listed: Vec<MachineKey> = store.list_machines().await.expect("list").iter().map(|m| m.key).collect();
        assert_eq!(listed, vec![kept], "{label}: gone from the listing");
        let acme = store.account_by_name("acme").await.expect("account").expect("exists");
        assert_eq!(acme.machine_count, 1, "{label}: no longer counted in its account");
        assert_eq!(store.disabled_machines().await.expect("disabled"), vec![gone], "{label}: tokens refused");
        // Still known by key (its signals refer to it), and its login stays taken.
        let by_key = store.machines_by_keys(&[gone]).await.expect("by key");
        assert_eq!(by_key.len(), 1, "{label}: still stored");
        let again = store.create_machine(&new_machine("agent-gone", at)).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{label}: login taken {again:?}");
        for attempt in [
            store.delete_machine("agent-gone", at).await,
            store.set_machine_disabled("agent-gone", false, at).await,
            store.set_machine_password("agent-gone", "$argon2id$new", at).await,
        ] {
            assert!(matches!(attempt, Err(StoreError::NotFound(_))), "{label}: a deleted machine is gone: {attempt:?}");
        }
        assert_eq!(store.revocation_generation().await.expect("generation").count, 1, "{label}: one revocation");
    }
}

#[tokio::test]
async fn a_new_password_replaces_the_hash_and_revokes_tokens() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "agent-1").await;
        let at = T0 + Duration::minutes(5);
        assert_eq!(store.set_machine_password("agent-1", "$argon2id$new-hash", at).await.expect("reset"), key, "{label}");
        let found = store.machine_by_login("agent-1").await.expect("lookup").expect("found");
        assert_eq!(found.password_hash, "$argon2id$new-hash", "{label}: new hash");
        assert_eq!(found.disabled_at, None, "{label}: not disabled");
        let list = store.revocations_since(T0).await.expect("list");
        assert_eq!(list, vec![Revocation { kind: RevocationKind::Machine, subject: key.0.to_string(), at }], "{label}");
        let missing = store.set_machine_password("nobody", "$argon2id$x", at).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{label}: unknown login {missing:?}");
    }
}

#[tokio::test]
async fn admin_tokens_list_record_use_and_revoke_with_the_operators_sessions() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        store.create_admin_token("hash-one", "pl_adm_one", T0).await.expect("create");
        store.create_admin_token("hash-two", "pl_adm_two", T0 + Duration::seconds(1)).await.expect("create");
        let used = T0 + Duration::minutes(3);
        store.touch_admin_token("hash-two", used).await.expect("touch");
        store.touch_admin_token("hash-unknown", used).await.expect("touching an unknown hash does nothing");
        let tokens = store.list_admin_tokens().await.expect("list");
        let prefixes: Vec<&str> = tokens.iter().map(|t| t.prefix.as_str()).collect();
        assert_eq!(prefixes, ["pl_adm_one", "pl_adm_two"], "{label}: oldest first");
        assert_eq!((tokens[0].created_at, tokens[0].last_used_at, tokens[0].revoked_at), (T0, None, None), "{label}");
        assert_eq!(tokens[1].last_used_at, Some(used), "{label}: last use");

        let at = T0 + Duration::minutes(10);
        assert!(store.revoke_admin_token("pl_adm_one", at).await.expect("revoke"), "{label}: revoked");
        assert!(!store.revoke_admin_token("pl_adm_one", at).await.expect("revoke"), "{label}: already revoked");
        assert!(!store.revoke_admin_token("pl_adm_none", at).await.expect("revoke"), "{label}: unknown prefix");
        assert!(!store.admin_token_exists("hash-one").await.expect("exists"), "{label}: refused");
        assert!(store.admin_token_exists("hash-two").await.expect("exists"), "{label}: the other stays");
        assert_eq!(store.list_admin_tokens().await.expect("list")[0].revoked_at, Some(at), "{label}: revoked_at");
        let list = store.revocations_since(T0).await.expect("list");
        assert_eq!(
            list,
            vec![
                Revocation { kind: RevocationKind::AdminToken, subject: "pl_adm_one".into(), at },
                Revocation { kind: RevocationKind::Sessions, subject: "operator".into(), at },
            ],
            "{label}: the token and the operator's sessions"
        );
    }
}

#[tokio::test]
async fn the_revocation_list_reads_back_from_a_time_and_its_generation_moves() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let mut seen = vec![store.revocation_generation().await.expect("generation")];
        let entries = [
            Revocation { kind: RevocationKind::Session, subject: "nonce-1".into(), at: T0 },
            Revocation { kind: RevocationKind::Sessions, subject: "*".into(), at: T0 + Duration::hours(1) },
            Revocation { kind: RevocationKind::ApiKey, subject: "pl_key_1".into(), at: T0 + Duration::hours(2) },
        ];
        for entry in &entries {
            store.add_revocation(entry).await.expect("add");
            let generation = store.revocation_generation().await.expect("generation");
            assert!(!seen.contains(&generation), "{label}: a new generation after each: {generation:?} in {seen:?}");
            seen.push(generation);
        }
        assert_eq!(store.revocations_since(T0).await.expect("list"), entries.to_vec(), "{label}: all, in order");
        assert_eq!(store.revocations_since(T0 + Duration::hours(1)).await.expect("list"), entries[1..].to_vec(), "{label}");
        assert!(store.revocations_since(T0 + Duration::hours(3)).await.expect("list").is_empty(), "{label}: none later");

        // Expiring the old ones keeps the rest, and is seen as a change.
        assert_eq!(store.expire_revocations(T0 + Duration::hours(1)).await.expect("expire"), 1, "{label}: one expired");
        assert_eq!(store.revocations_since(T0).await.expect("list"), entries[1..].to_vec(), "{label}: the rest");
        assert!(!seen.contains(&store.revocation_generation().await.expect("generation")), "{label}: a new generation");
        assert_eq!(store.expire_revocations(T0).await.expect("expire"), 0, "{label}: nothing older");
    }
}

#[tokio::test]
async fn deleting_an_account_removes_its_keys_detaches_its_machines_and_revokes_at_once() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let acme = store.create_account("acme", T0).await.expect("acme");
        let other = store.create_account("other", T0).await.expect("other");
        let agent = machine(store, "agent-1").await;
        store.enroll_machine(agent, acme, None, &[], false, T0).await.expect("enroll");
        store.create_api_key(acme, "api-hash-live", "pal_live0000", T0).await.expect("key");
        store.create_api_key(acme, "api-hash-old", "pal_old00000", T0).await.expect("key");
        assert!(store.revoke_api_key("pal_old00000", None, T0).await.expect("revoke"), "{label}");
        store.create_api_key(other, "api-hash-other", "pal_other000", T0).await.expect("key");
        store.create_enroll_key(acme, "ek-hash", "ek_acme", T0).await.expect("enroll key");
        store.set_pool_share(acme, other, true, T0).await.expect("share");
        let before = store.revocation_generation().await.expect("generation");

        let at = T0 + Duration::minutes(5);
        let outcome = store.delete_account(acme, at).await.expect("delete");
        assert_eq!(
            outcome,
            crate::store::AccountDeletion { machines_detached: 1, api_keys: 2, enroll_keys: 1 },
            "{label}: what was removed"
        );
        assert!(store.account_by_name("acme").await.expect("lookup").is_none(), "{label}: gone");
        let found = store.machine_by_login("agent-1").await.expect("lookup").expect("the machine stays");
        assert_eq!((found.account, found.disabled_at), (None, None), "{label}: detached, not disabled");
        assert!(store.api_key_by_hash("api-hash-live").await.expect("lookup").is_none(), "{label}: key gone");
        assert!(store.enroll_key_by_hash("ek-hash").await.expect("lookup").is_none(), "{label}: enroll key gone");
        assert!(store.api_key_by_hash("api-hash-other").await.expect("lookup").is_some(), "{label}: another account's key stays");
        assert!(store.pool_shares().await.expect("shares").is_empty(), "{label}: shares removed");
        assert_ne!(store.revocation_generation().await.expect("generation"), before, "{label}: the list changed");
        let revocations = store.revocations_since(at).await.expect("list");
        assert_eq!(
            revocations,
            vec![
                Revocation { kind: RevocationKind::ApiKey, subject: "pal_live0000".into(), at },
                Revocation { kind: RevocationKind::Sessions, subject: format!("account:{}", acme.0), at },
            ],
            "{label}: the live key and the account's sessions"
        );
        assert!(matches!(store.delete_account(acme, at).await, Err(StoreError::NotFound(_))), "{label}: already deleted");
        store.create_account("acme", at).await.expect("the name is free again");
    }
}
