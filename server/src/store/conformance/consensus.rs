//! Conformance of [`ConsensusStore`](crate::store::ConsensusStore): what the worker reads, its
//! persisted state and atomic commit, requests for the leader, leadership.

use super::*;

#[tokio::test]
async fn an_unreadable_engine_state_is_left_out_of_the_snapshot_and_corrupt_when_read_alone() {
    use crate::store::ConsensusCommit;
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "reporter").await;
        let state = MachineState::new(None, Level::Anonymous, false, T0.unix_timestamp());
        let (target, kept) = (net("45.33.32.156/32"), net("81.2.69.160/32"));
        let commit = ConsensusCommit {
            watermark: 1,
            machines: vec![(key, state, 0.5)],
            targets: vec![(target, Some(TargetState::default())), (kept, Some(TargetState::default()))],
            done_requests: Vec::new(),
            list_ops: Vec::new(),
            at: T0,
        };
        store.commit_consensus(&commit).await.expect("commit");
        raw_execute(&s.db, "UPDATE engine_machines SET state = '{\"unexpected\": true}'").await;
        raw_execute(&s.db, "UPDATE engine_targets SET state = '[1, 2]' WHERE target = '45.33.32.156/32'").await;
        let snapshot = store.consensus_snapshot().await.expect("snapshot");
        assert!(snapshot.machines.is_empty(), "{label}: the unreadable machine state is left out");
        assert_eq!(snapshot.targets, [(kept, TargetState::default())], "{label}: only the readable target state");
        assert!(matches!(store.engine_machine(key).await, Err(StoreError::Corrupt(_))), "{label}");
        assert!(matches!(store.engine_target(target).await, Err(StoreError::Corrupt(_))), "{label}");
    }
}

#[tokio::test]
async fn a_consensus_commit_writes_a_machines_trust_only_when_it_moved() {
    use crate::store::ConsensusCommit;
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "reporter").await;
        let state = MachineState::new(None, Level::Anonymous, false, T0.unix_timestamp());
        let commit = |watermark: i64, trust: f64| ConsensusCommit {
            watermark,
            machines: vec![(key, state.clone(), trust)],
            targets: Vec::new(),
            done_requests: Vec::new(),
            list_ops: Vec::new(),
            at: T0,
        };
        let trust = || async { store.machine_by_login("reporter").await.expect("read").expect("exists").trust };
        // PostgreSQL writes a new row version for every UPDATE of a row, even to the same value.
        let version = || async {
            match s.db.backend {
                Backend::Postgres => raw_text(&s.db, "SELECT xmin::text FROM machines WHERE machine_id = 'reporter'").await,
                Backend::Sqlite => Vec::new(),
            }
        };
        store.commit_consensus(&commit(1, 0.5)).await.expect("commit");
        assert_eq!(trust().await, 0.5, "{label}");
        let written = version().await;
        store.commit_consensus(&commit(2, 0.5)).await.expect("commit");
        assert_eq!(trust().await, 0.5, "{label}");
        assert_eq!(version().await, written, "{label}: the same trust is not written again");
        store.commit_consensus(&commit(3, 0.25)).await.expect("commit");
        assert_eq!(trust().await, 0.25, "{label}: a moved trust is");
        assert_eq!(store.consensus_watermark().await.expect("watermark"), 3, "{label}");
    }
}

#[tokio::test]
async fn the_engine_reads_signals_in_id_order_after_a_watermark() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "reporter").await;
        store.insert_signals(&batch(key, 5)).await.expect("insert");
        let all = store.signals_for_engine(0, 100).await.expect("read");
        assert_eq!(all.len(), 5, "{label}");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{label}: id order");
        let first = &all[0];
        assert_eq!(first.machine, key, "{label}");
        assert_eq!(first.value, "45.33.0.0", "{label}: canonical value");
        assert_eq!(first.scenario, "crowdsecurity/ssh-bf", "{label}");
        assert_eq!(first.scenario_trust, "certified", "{label}");
        assert_eq!((first.origin_prefix.as_str(), first.origin_asn), ("81.2.69.0/24", Some(20712)), "{label}");
        assert_eq!(first.received_at, T0, "{label}");
        assert_eq!(first.reporter_sensor, Some(false), "{label}");
        assert_eq!(first.reporter_account, None, "{label}: no account yet");
        let rest = store.signals_for_engine(all[1].id, 2).await.expect("read");
        assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), [all[2].id, all[3].id], "{label}: after and limit");
        assert!(store.signals_for_engine(all[4].id, 10).await.expect("read").is_empty(), "{label}");
        // The sensor flag is the machine's as the read finds it, texts come back as stored.
        store.set_machine_sensor("reporter", true).await.expect("sensor");
        let acme = store.create_account("acme", T0).await.expect("account");
        store.enroll_machine(key, acme, None, &[], false, T0).await.expect("enroll");
        let mut odd = vec![signal(key, ip_report("45.99.0.1", "odd"))];
        odd[0].report.scenario_trust = "tab\there, \"quoted\", ünïcode \\ \u{1}".into();
        store.insert_signals(&odd).await.expect("insert");
        let last = store.signals_for_engine(all[4].id, 10).await.expect("read");
        assert_eq!(last.len(), 1, "{label}");
        assert_eq!((last[0].reporter_sensor, last[0].reporter_account), (Some(true), Some(acme)), "{label}");
        assert_eq!(last[0].scenario_trust, odd[0].report.scenario_trust, "{label}");
        assert!(all.iter().all(|e| e.reporter_sensor == Some(false)), "{label}");
    }
}

#[tokio::test]
async fn engine_machines_carry_account_level_sensor_and_creation_time() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let lone = machine(store, "lone").await;
        let member = machine(store, "member").await;
        let acme = store.create_account("acme", T0).await.expect("account");
        store.set_account_level("acme", Level::Verified).await.expect("level");
        store.enroll_machine(member, acme, None, &[], false, T0).await.expect("enroll");
        store.set_machine_sensor("member", true).await.expect("sensor");
        let machines = store.engine_machines().await.expect("read");
        assert_eq!(machines.len(), 2, "{label}");
        assert_eq!(
            (machines[0].key, machines[0].account, machines[0].level.as_str(), machines[0].sensor, machines[0].created_at),
            (lone, None, "anonymous", false, T0),
            "{label}: without an account"
        );
        assert_eq!(
            (machines[1].key, machines[1].account, machines[1].level.as_str(), machines[1].sensor),
            (member, Some(acme), "verified", true),
            "{label}: enrolled"
        );
    }
}

/// JSON text as a value, so that engines that normalise JSON (PostgreSQL `jsonb`) compare equal.
#[tokio::test]
async fn a_consensus_commit_applies_state_trust_lists_requests_and_watermark_together() {
    use crate::store::{ConsensusCommit, ListEntry, ListOp};
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let key = machine(store, "reporter").await;
        let empty = store.consensus_snapshot().await.expect("snapshot");
        assert_eq!((empty.watermark, empty.machines.len(), empty.targets.len()), (0, 0, 0), "{label}: fresh");
        assert_eq!(store.engine_machine(key).await.expect("read"), None, "{label}");
        assert_eq!(store.engine_target(net("45.33.32.156/32")).await.expect("read"), None, "{label}");

        let request =
            store.queue_consensus_request(RequestKind::FalsePositive, net("45.33.32.156/32"), None, T0).await.expect("queue");
        let hold = T0 + Duration::days(2);
        let later =
            store.queue_consensus_request(RequestKind::Delist, net("81.2.69.160/32"), Some(hold), T0).await.expect("queue");
        assert!(later > request, "{label}: ids increase");
        let pending = store.pending_consensus_requests().await.expect("pending");
        assert_eq!(
            pending.iter().map(|r| (r.id, r.kind, r.value, r.hold_until)).collect::<Vec<_>>(),
            [
                (request, RequestKind::FalsePositive, net("45.33.32.156/32"), None),
                (later, RequestKind::Delist, net("81.2.69.160/32"), Some(hold))
            ]
        );

        let entry = ListEntry {
            list: "community".into(),
            value: listed("45.33.32.156"),
            scope: Scope::Ip,
            scenario: "crowdsecurity/ssh-bf".into(),
            remediation: Remediation::Ban,
            rule: Rule::Crowd,
            listed_at: T0,
            expires_at: T0 + Duration::days(1),
            seq: 0,
        };
        let mut machine_state = MachineState::new(None, Level::Email, false, T0.unix_timestamp());
        machine_state.good = 2.5;
        machine_state.leads = 3;
        let mut target_state = TargetState::default();
        target_state.first_seen = T0.unix_timestamp();
        target_state.last_seen = T0.unix_timestamp() + 60;
        let (target, other) = (net("45.33.32.156/32"), net("81.2.69.160/32"));
        let commit = ConsensusCommit {
            watermark: 17,
            machines: vec![(key, machine_state.clone(), 0.75)],
            targets: vec![(target, Some(target_state.clone())), (other, None)],
            done_requests: vec![request],
            list_ops: vec![ListOp::Add(entry.clone())],
            at: T0,
        };
        store.commit_consensus(&commit).await.expect("commit");

        assert_eq!(store.consensus_watermark().await.expect("watermark"), 17, "{label}");
        let snapshot = store.consensus_snapshot().await.expect("snapshot");
        assert_eq!(snapshot.watermark, 17, "{label}");
        assert_eq!(snapshot.machines, [(key, machine_state.clone())], "{label}");
        assert_eq!(snapshot.targets, [(target, target_state.clone())], "{label}: a forgotten target is absent");
        assert_eq!(store.engine_machine(key).await.expect("read"), Some(machine_state), "{label}");
        assert_eq!(store.engine_target(target).await.expect("read"), Some(target_state), "{label}");
        assert_eq!(store.machine_by_login("reporter").await.expect("read").expect("exists").trust, 0.75, "{label}: trust");
        let found = store.list_entry("community", target).await.expect("entry").expect("listed");
        assert_eq!(found, ListEntry { seq: found.seq, ..entry }, "{label}: the entry as committed");
        assert!(found.seq > 0, "{label}: with a seq");
        assert_eq!(store.list_entry("community", other).await.expect("entry"), None, "{label}");
        assert_eq!(store.list_entry("other", target).await.expect("entry"), None, "{label}: per list");
        let pending = store.pending_consensus_requests().await.expect("pending");
        assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [later], "{label}: the carried-out request is done");

        let forget = ConsensusCommit {
            watermark: 18,
            machines: Vec::new(),
            targets: vec![(target, None)],
            done_requests: Vec::new(),
            list_ops: vec![ListOp::Remove { list: "community".into(), value: target, reason: "expired".into() }],
            at: T0 + Duration::days(1),
        };
        store.commit_consensus(&forget).await.expect("commit");
        assert_eq!(store.engine_target(target).await.expect("read"), None, "{label}: forgotten");
        assert_eq!(store.list_entry("community", target).await.expect("entry"), None, "{label}: removed");
        assert_eq!(store.consensus_watermark().await.expect("watermark"), 18, "{label}");
    }
}

#[tokio::test]
async fn leadership_is_granted_once_at_a_time_on_postgres_and_always_on_sqlite() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let mut first = store.acquire_leadership().await.expect("acquire").expect("nobody holds it yet");
        assert!(first.still_held().await, "{label}");
        let second = store.acquire_leadership().await.expect("acquire again");
        match s.db.backend {
            Backend::Sqlite => assert!(second.is_some(), "{label}: one process, always the leader"),
            Backend::Postgres => assert!(second.is_none(), "{label}: held by the first"),
        }
        assert!(first.still_held().await, "{label}: asking again does not take it away");
    }
}

#[tokio::test]
async fn withdrawing_a_machines_reports_deletes_only_its_own_and_queues_one_request() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let (mine, theirs) = (machine(store, "mine").await, machine(store, "theirs").await);
        store
            .insert_signals(&[
                signal(mine, ip_report("45.33.32.156", "first")),
                signal(mine, ip_report("45.33.32.156", "second")),
                signal(mine, ip_report("45.33.32.157", "another address")),
                signal(mine, ip_report("2a01:4f8::1", "v6")),
                signal(theirs, ip_report("45.33.32.156", "another machine")),
            ])
            .await
            .expect("insert");
        let before = store.signals_for_engine(0, 100).await.expect("read");
        let deleted = store.withdraw_reports(mine, net("45.33.32.156/32"), T0).await.expect("withdraw");
        assert_eq!(deleted, 2, "{label}: both of its reports of the address");
        let left: Vec<(MachineKey, String)> =
            store.signals_for_engine(0, 100).await.expect("read").into_iter().map(|e| (e.machine, e.value)).collect();
        assert_eq!(
            left,
            [(mine, "45.33.32.157".to_string()), (mine, "2a01:4f8::1".to_string()), (theirs, "45.33.32.156".to_string())],
            "{label}: other addresses and other machines keep theirs"
        );
        let pending = store.pending_consensus_requests().await.expect("pending");
        assert_eq!(
            pending.iter().map(|r| (r.kind, r.value, r.machine, r.hold_until)).collect::<Vec<_>>(),
            [(RequestKind::Withdraw, net("45.33.32.156/32"), Some(mine), None)],
            "{label}"
        );
        assert_eq!(pending[0].up_to_signal, Some(before[1].id), "{label}: the highest id deleted");

        assert_eq!(store.withdraw_reports(mine, net("45.33.32.156/32"), T0).await.expect("again"), 0, "{label}");
        assert_eq!(store.withdraw_reports(mine, net("2a01:4f8::1/128"), T0).await.expect("v6"), 1, "{label}");
        let kinds: Vec<_> = store.pending_consensus_requests().await.expect("pending").into_iter().map(|r| r.value).collect();
        assert_eq!(kinds, [net("45.33.32.156/32"), net("2a01:4f8::1/128")], "{label}: nothing queued when nothing was deleted");
    }
}
