//! Conformance of [`MachineStore`](crate::store::MachineStore): creation, lookup by login, logins,
//! metrics pushes, the sensor flag, stream positions, contribution times and registration networks.

use super::*;

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
        assert_eq!(machine.signal_count, None, "{label}: not counted by a single lookup");
        assert_eq!(s.store().machine_signal_count(machine.key).await.expect("count"), 0, "{label}: signal count");
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
async fn machines_by_keys_reads_only_those_machines_oldest_first() {
    for s in subjects().await {
        let label = s.label();
        let mut keys = Vec::new();
        for login in ["one", "two", "three", "four"] {
            keys.push(machine(s.store(), login).await);
        }
        let wanted = [keys[3], keys[1], MachineKey(i64::MAX), keys[3]];
        let machines = s.store().machines_by_keys(&wanted).await.expect("by keys");
        let read: Vec<(MachineKey, &str)> = machines.iter().map(|m| (m.key, m.machine_id.as_str())).collect();
        assert_eq!(read, [(keys[1], "two"), (keys[3], "four")], "{label}: those, once each, unknown left out");
        let all = s.store().list_machines().await.expect("list");
        let mut same = all.iter().find(|m| m.key == keys[1]).expect("listed").clone();
        assert_eq!(same.signal_count, Some(0), "{label}: the listing counts signals");
        same.signal_count = None;
        assert_eq!(format!("{:?}", machines[0]), format!("{same:?}"), "{label}: the same record as the listing, uncounted");
        assert!(s.store().machines_by_keys(&[]).await.expect("none").is_empty(), "{label}: no keys");
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
        assert_eq!(machine.user_agent.as_deref(), Some("crowdsec/v1.6.3-debian-pragmatic"), "{label}: user agent");
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
        assert_eq!(machine.user_agent, None, "{label}: user agent replaced");

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
async fn registrations_are_counted_per_network_since_a_time() {
    for s in subjects().await {
        let label = s.label();
        let network: IpNet = "203.0.113.0/24".parse().expect("a network");
        let other: IpNet = "2001:db8:1:2::/64".parse().expect("a network");
        for (login, at, from) in [
            ("old", T0 - Duration::days(2), network),
            ("recent-1", T0, network),
            ("recent-2", T0 + Duration::hours(1), network),
            ("elsewhere", T0, other),
        ] {
            let key = s.store().create_machine(&new_machine(login, at)).await.expect("create");
            s.store().set_registration_network(key, from).await.expect("record the network");
        }
        machine(s.store(), "operator-made").await;
        let since = T0 - Duration::days(1);
        assert_eq!(s.store().count_registrations(network, since).await.expect("count"), 2, "{label}: the /24 since");
        assert_eq!(s.store().count_registrations(network, T0 - Duration::days(3)).await.expect("count"), 3, "{label}: all");
        assert_eq!(s.store().count_registrations(other, since).await.expect("count"), 1, "{label}: the /64");
        let empty: IpNet = "198.51.100.0/24".parse().expect("a network");
        assert_eq!(s.store().count_registrations(empty, since).await.expect("count"), 0, "{label}: none");
    }
}
