//! Conformance of [`PoolStore`](crate::store::PoolStore): per-account policies (set, replaced,
//! read back, cleared), shares between accounts, and which pools a machine receives.

use super::*;
use crate::pools::PoolPolicy;
use crate::store::{AccountKey, PoolShare};

#[tokio::test]
async fn policies_are_set_replaced_read_back_and_cleared() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let acme = store.create_account("acme", T0).await.expect("create");
        let other = store.create_account("other", T0).await.expect("create");
        assert!(store.pool_policies().await.expect("policies").is_empty(), "{label}: none yet");

        let strict = PoolPolicy {
            min_machines: 2,
            duration_secs: 3600,
            remediation: Remediation::Captcha,
            allow: vec!["crowdsecurity/*".into()],
            deny: vec!["*/http-probing".into(), "naïve \"quote\"".into()],
            ..PoolPolicy::default()
        };
        store.set_pool_policy(acme, &strict, T0).await.expect("set");
        store.set_pool_policy(other, &PoolPolicy::default(), T0).await.expect("set");
        let disabled = PoolPolicy { enabled: false, ..strict.clone() };
        store.set_pool_policy(other, &disabled, T0 + Duration::seconds(1)).await.expect("replace");
        assert_eq!(store.pool_policies().await.expect("policies"), vec![(acme, strict), (other, disabled)], "{label}");

        let missing = store.set_pool_policy(AccountKey(999_999), &PoolPolicy::default(), T0).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{label}: unknown account {missing:?}");
        assert!(store.clear_pool_policy(acme).await.expect("clear"), "{label}: had one");
        assert!(!store.clear_pool_policy(acme).await.expect("clear"), "{label}: has none now");
        assert_eq!(store.pool_policies().await.expect("policies").len(), 1, "{label}: one left");
    }
}

#[tokio::test]
async fn shares_decide_which_pools_a_machine_receives() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let acme = store.create_account("acme", T0).await.expect("create");
        let partner = store.create_account("partner", T0).await.expect("create");
        let third = store.create_account("third", T0).await.expect("create");
        let acme_machine = machine(store, "acme-1").await;
        let partner_machine = machine(store, "partner-1").await;
        let loner = machine(store, "loner").await;
        store.enroll_machine(acme_machine, acme, None, &[], false, T0).await.expect("enroll");
        store.enroll_machine(partner_machine, partner, None, &[], false, T0).await.expect("enroll");

        assert_eq!(store.pools_received(acme_machine).await.expect("received"), vec![acme], "{label}: its own");
        assert!(store.pools_received(loner).await.expect("received").is_empty(), "{label}: no account, no pool");

        assert!(store.set_pool_share(acme, partner, true, T0).await.expect("share"), "{label}: new share");
        assert!(!store.set_pool_share(acme, partner, true, T0 + Duration::seconds(5)).await.expect("again"), "{label}: not new");
        store.set_pool_share(third, partner, true, T0).await.expect("share");
        assert_eq!(store.pools_received(partner_machine).await.expect("received"), vec![partner, acme, third], "{label}");
        assert_eq!(store.pools_received(acme_machine).await.expect("received"), vec![acme], "{label}: one way only");
        assert_eq!(
            store.pool_shares().await.expect("shares"),
            vec![PoolShare { owner: acme, partner, created_at: T0 }, PoolShare { owner: third, partner, created_at: T0 }],
            "{label}: first share time kept"
        );

        for (owner, with) in [(acme, acme), (acme, AccountKey(999_999))] {
            let refused = store.set_pool_share(owner, with, true, T0).await;
            assert!(matches!(refused, Err(StoreError::NotFound(_))), "{label}: {refused:?}");
        }
        assert!(store.set_pool_share(acme, partner, false, T0).await.expect("unshare"), "{label}: existed");
        assert!(!store.set_pool_share(acme, partner, false, T0).await.expect("unshare"), "{label}: gone");
        assert_eq!(store.pools_received(partner_machine).await.expect("received"), vec![partner, third], "{label}");
    }
}
