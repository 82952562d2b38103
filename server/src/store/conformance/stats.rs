//! Conformance of [`StatsStore`](crate::store::StatsStore): per-day and per-machine aggregates and
//! lookup usage.

use super::*;

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
async fn an_accounts_alerts_are_its_machines_newest_signals_since_a_time() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let acme = store.create_account("acme", T0).await.expect("account");
        let other = store.create_account("other", T0).await.expect("account");
        let web = machine(store, "web").await;
        let mail = machine(store, "mail").await;
        let stranger = machine(store, "stranger").await;
        store.enroll_machine(web, acme, None, &[], false, T0).await.expect("enroll");
        store.enroll_machine(mail, acme, None, &[], false, T0).await.expect("enroll");
        store.enroll_machine(stranger, other, None, &[], false, T0).await.expect("enroll");
        let at = |machine, value: &str, minutes: i64| {
            let mut signal = signal(machine, ip_report(value, "crowdsecurity/ssh-bf"));
            signal.received_at = T0 + Duration::minutes(minutes);
            signal
        };
        let signals = vec![
            at(web, "45.2.0.1", -120),
            at(web, "45.2.0.2", 1),
            at(mail, "45.2.0.3", 2),
            at(stranger, "45.2.0.4", 3),
            at(web, "45.2.0.5", 4),
        ];
        store.insert_signals(&signals).await.expect("insert");

        let alerts = store.account_alerts(acme, T0 - Duration::hours(1), 10).await.expect("alerts");
        let seen: Vec<(&str, &str)> = alerts.iter().map(|a| (a.machine_id.as_str(), a.value.as_str())).collect();
        assert_eq!(
            seen,
            [("web", "45.2.0.5"), ("mail", "45.2.0.3"), ("web", "45.2.0.2")],
            "{label}: newest first, own machines, since"
        );
        assert_eq!(alerts[0].scenario, "crowdsecurity/ssh-bf", "{label}");
        assert_eq!(alerts[0].received_at, T0 + Duration::minutes(4), "{label}");
        let newest = store.account_alerts(acme, T0 - Duration::hours(3), 2).await.expect("alerts");
        assert_eq!(newest.len(), 2, "{label}: at most the limit");
        assert!(store.account_alerts(acme, T0 + Duration::hours(1), 10).await.expect("alerts").is_empty(), "{label}");
    }
}

#[tokio::test]
async fn list_changes_are_counted_per_day_as_additions_and_removals() {
    for s in subjects().await {
        let (label, store) = (s.label(), s.store());
        let list = crate::store::CustomList {
            name: "mine".into(),
            kind: "block".into(),
            description: String::new(),
            created_at: T0,
            visibility: "subscribers".into(),
        };
        store.create_custom_list(&list).await.expect("list");
        let entry = |value: &str| crate::store::ListEntry {
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
        let add = |v: &str| crate::store::ListOp::Add(entry(v));
        store.apply_list_ops(&[add("45.2.0.1"), add("45.2.0.2")], T0 - Duration::days(1)).await.expect("day -1");
        let remove = crate::store::ListOp::Remove { list: "mine".into(), value: listed("45.2.0.1"), reason: "operator".into() };
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
async fn metrics_documents_older_than_the_cutoff_are_expired_in_batches() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        for (n, days) in [40, 35, 31, 29, 0].into_iter().enumerate() {
            let kind = if n % 2 == 0 { "usage" } else { "metrics" };
            s.store().record_metrics(key, kind, None, "{}", T0 - Duration::days(days)).await.expect("metrics");
        }
        let deleted = s.store().expire_metrics(T0 - Duration::days(30), 2).await.expect("expire");
        assert_eq!(deleted, 3, "{label}: three older than 30 days, two per statement");
        let left = super::raw_text(&s.db, "SELECT kind FROM machine_metrics ORDER BY id").await;
        assert_eq!(left, ["metrics", "usage"], "{label}: the recent two stay");
        assert_eq!(s.store().expire_metrics(T0 - Duration::days(30), 2).await.expect("expire"), 0, "{label}");
    }
}
