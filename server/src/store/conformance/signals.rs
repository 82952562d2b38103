//! Conformance of [`SignalStore`](crate::store::SignalStore): the bulk insert and its
//! redeliveries, listing and counting, cursors under concurrent writers, partitions and retention.

use super::*;

#[tokio::test]
async fn inserting_no_signals_stores_nothing() {
    for s in subjects().await {
        let label = s.label();
        let outcome = s.store().insert_signals(&[]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome::default(), "{label}: outcome");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: count");
    }
}

#[tokio::test]
async fn a_batch_is_stored_and_reads_back_field_for_field() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut no_extras = signal(key, ip_report("45.33.32.156", "bare"));
        no_extras.report.agent = None;
        no_extras.report.alert_uuid = None;
        no_extras.report.scenario_trust = String::new();
        no_extras.enrichment = Enrichment::default();
        no_extras.origin.asn = None;
        let sent = vec![
            signal(key, ip_report("45.33.32.156", "first")),
            no_extras,
            signal(key, report(item("Range", "45.33.32.7/24", "a range"))),
        ];
        let outcome = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 3, duplicates: 0 }, "{label}: outcome");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), 3, "{label}: stored");
        for (stored, sent) in stored.iter().zip(&sent) {
            assert_stored_as_sent(label, stored, sent, "watcher");
        }
        assert_eq!(stored[2].scope, Scope::Range, "{label}: scope");
        assert_eq!(stored[2].value, "45.33.32.0/24", "{label}: range stored in canonical form");
        assert_eq!(s.store().count_signals().await.expect("count"), 3, "{label}: count");
    }
}

#[tokio::test]
async fn redelivered_batch_is_counted_as_duplicates_and_not_stored_twice() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = batch(key, 5);
        let first = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(first, InsertOutcome { inserted: 5, duplicates: 0 }, "{label}: first delivery");
        let ids: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();

        let again = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(again, InsertOutcome { inserted: 0, duplicates: 5 }, "{label}: redelivery");

        // A partial redelivery: two already stored, three new.
        let mut mixed = sent[3..].to_vec();
        mixed.extend(batch(key, 8).split_off(5));
        let outcome = s.store().insert_signals(&mixed).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 3, duplicates: 2 }, "{label}: partial redelivery");

        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), 8, "{label}: stored once each");
        assert_eq!(stored[..5].iter().map(|s| s.id).collect::<Vec<_>>(), ids, "{label}: first rows untouched");
        assert_eq!(s.store().count_signals().await.expect("count"), 8, "{label}: count");
    }
}

#[tokio::test]
async fn duplicates_within_one_batch_are_stored_once() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let a = signal(key, ip_report("45.33.32.156", "a"));
        let b = signal(key, ip_report("45.33.32.157", "b"));
        let outcome = s.store().insert_signals(&[a.clone(), b.clone(), a.clone(), a, b]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 2, duplicates: 3 }, "{label}: outcome");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(values(&stored), ["45.33.32.156", "45.33.32.157"], "{label}: first occurrence wins the order");
    }
}

#[tokio::test]
async fn the_same_report_from_two_machines_is_two_signals() {
    for s in subjects().await {
        let label = s.label();
        let one = machine(s.store(), "one").await;
        let two = machine(s.store(), "two").await;
        let report = ip_report("45.33.32.156", "same");
        let outcome =
            s.store().insert_signals(&[signal(one, report.clone()), signal(two, report.clone())]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 2, duplicates: 0 }, "{label}: outcome");
        let outcome = s.store().insert_signals(&[signal(two, report)]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 0, duplicates: 1 }, "{label}: redelivery by the second");
        let stored = list(s.store(), &all_signals()).await;
        let logins: Vec<&str> = stored.iter().map(|s| s.machine_id.as_str()).collect();
        assert_eq!(logins, ["one", "two"], "{label}: one each");
    }
}

#[tokio::test]
async fn a_batch_larger_than_one_statement_is_stored_whole_and_in_order() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        // Past SQLite's per-statement parameter limit, so the backend must split the batch.
        let sent = batch(key, 3000);
        let outcome = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 3000, duplicates: 0 }, "{label}: outcome");
        assert_eq!(s.store().count_signals().await.expect("count"), 3000, "{label}: count");

        let stored = list(s.store(), &all_signals()).await;
        let expected: Vec<String> = sent.iter().map(|s| s.report.value_text()).collect();
        assert_eq!(values(&stored), expected, "{label}: stored in insert order");
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "{label}: ids strictly increase");
        assert_stored_as_sent(label, &stored[2999], &sent[2999], "watcher");

        let again = s.store().insert_signals(&sent).await.expect("insert");
        assert_eq!(again, InsertOutcome { inserted: 0, duplicates: 3000 }, "{label}: redelivery");
        assert_eq!(s.store().count_signals().await.expect("count"), 3000, "{label}: count after redelivery");
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.signal_count, None, "{label}: a single lookup does not count");
        assert_eq!(s.store().machine_signal_count(machine.key).await.expect("count"), 3000, "{label}: machine signal count");
    }
}

#[tokio::test]
async fn a_failing_batch_stores_nothing() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut sent = batch(key, 3);
        sent.push(signal(MachineKey(987_654), ip_report("45.33.32.156", "from nowhere")));
        let outcome = s.store().insert_signals(&sent).await;
        assert!(outcome.is_err(), "{label}: a signal from an unknown machine must fail the batch, got {outcome:?}");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: small batch rolled back");

        // The failing row in a later statement of a split batch rolls back the earlier ones too.
        let mut sent = batch(key, 3000);
        sent.push(signal(MachineKey(987_654), ip_report("45.33.32.156", "from nowhere")));
        assert!(s.store().insert_signals(&sent).await.is_err(), "{label}: large batch must fail");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: large batch rolled back");
    }
}

#[tokio::test]
async fn signal_ids_strictly_increase_in_insert_order_across_batches() {
    for s in subjects().await {
        let label = s.label();
        let one = machine(s.store(), "one").await;
        let two = machine(s.store(), "two").await;
        let mut sent = Vec::new();
        for round in 0..4 {
            let key = if round % 2 == 0 { one } else { two };
            let signals: Vec<NewSignal> =
                (0..7).map(|i| signal(key, ip_report(&format!("45.33.{round}.{}", 200 - i), "ssh"))).collect();
            s.store().insert_signals(&signals).await.expect("insert");
            sent.extend(signals);
        }
        let stored = list(s.store(), &all_signals()).await;
        let expected: Vec<String> = sent.iter().map(|s| s.report.value_text()).collect();
        assert_eq!(values(&stored), expected, "{label}: insert order");
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "{label}: ids strictly increase");
    }
}

#[tokio::test]
async fn concurrent_redeliveries_store_each_signal_once() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = batch(key, 200);
        let (a, b) = tokio::join!(s.store().insert_signals(&sent), s.store().insert_signals(&sent));
        let (a, b) = (a.expect("insert"), b.expect("insert"));
        assert_eq!(a.inserted + b.inserted, 200, "{label}: stored once in all ({a:?}, {b:?})");
        assert_eq!(a.duplicates + b.duplicates, 200, "{label}: the rest are duplicates ({a:?}, {b:?})");
        assert_eq!(s.store().count_signals().await.expect("count"), 200, "{label}: count");
    }
}

#[tokio::test]
async fn unicode_and_long_messages_are_preserved() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let messages = [
            "Ip 45.33.32.156 performed 'crowdsecurity/ssh-bf' (6 events over 1.001s) at 2026-11-25 11:59:20 +0000 UTC"
                .to_string(),
            "ünïcödé — 攻撃 — атака — هجوم — 🛡️🔥👩‍💻 — e\u{301} — \u{202e}reversed\u{202c} — tab\tnew\nline".to_string(),
            "quotes ' \" and backslashes \\ and SQL '); DROP TABLE signals; --".to_string(),
            "x".repeat(8 * 1024),
            "é".repeat(4 * 1024),
            String::new(),
        ];
        let sent: Vec<NewSignal> = messages
            .iter()
            .enumerate()
            .map(|(i, message)| signal(key, report(item("Ip", &format!("45.33.32.{}", 10 + i), message))))
            .collect();
        s.store().insert_signals(&sent).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), messages.len(), "{label}: stored");
        for ((stored, sent), message) in stored.iter().zip(&sent).zip(&messages) {
            assert_eq!(&stored.message, message, "{label}: message preserved");
            assert_stored_as_sent(label, stored, sent, "watcher");
        }
    }
}

#[tokio::test]
async fn extra_json_is_preserved() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut raw = item("Ip", "45.33.32.156", "extra");
        raw["context"] = json!([{"key": "target_uri", "value": "/wp-login.php?ü=✓"}, {"key": "empty", "value": ""}]);
        raw["source"]["as_number"] = json!("63949");
        raw["source"]["latitude"] = json!(37.751);
        raw["source"]["longitude"] = json!(-97.822);
        raw["source"]["cn"] = json!("US");
        raw["labels"] = Value::Null;
        raw["events_count"] = json!(6);
        raw["big"] = json!(9_007_199_254_740_993_u64);
        raw["remediation"] = json!(true);
        raw["nested"] = json!({"deeper": {"deepest": ["a", 1, false, null, {"k": "v"}]}});
        let sent = signal(key, report(raw.clone()));
        let expected = json_value(label, &sent.report.extra);
        assert_eq!(expected["big"], raw["big"], "the report keeps the extra fields");

        s.store().insert_signals(std::slice::from_ref(&sent)).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored.len(), 1, "{label}: stored");
        assert_eq!(json_value(label, &stored[0].extra), expected, "{label}: extra");
        assert_stored_as_sent(label, &stored[0], &sent, "watcher");

        // An empty object stays an empty object.
        let mut bare = signal(key, ip_report("45.33.32.157", "bare"));
        bare.report.extra = "{}".into();
        s.store().insert_signals(std::slice::from_ref(&bare)).await.expect("insert");
        let stored =
            list(s.store(), &SignalFilter { value: Some("45.33.32.157".into()), limit: 10, ..SignalFilter::default() }).await;
        assert_eq!(json_value(label, &stored[0].extra), json!({}), "{label}: empty extra");
    }
}

#[tokio::test]
async fn ipv6_addresses_ranges_and_origins_round_trip() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut v6 = signal(key, ip_report("2a01:4f8:c17:b8f::2", "v6"));
        v6.origin = Origin { ip: ip("2a00:1450:4001:82a::200e"), prefix: net("2a00:1450:4001::/48"), asn: Some(u32::MAX) };
        v6.enrichment =
            Enrichment { as_number: Some(u32::MAX), as_name: Some("Hetzner Online GmbH".into()), country: Some("DE".into()) };
        let mapped = signal(key, ip_report("::ffff:45.33.32.156", "mapped"));
        let v6_range = signal(key, report(item("Range", "2a01:4f8:c17:b8f::2/64", "v6 range")));
        let v4_range = signal(key, report(item("Range", "45.33.32.156/16", "v4 range")));
        let sent = vec![v6, mapped, v6_range, v4_range];
        s.store().insert_signals(&sent).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(values(&stored), ["2a01:4f8:c17:b8f::2", "45.33.32.156", "2a01:4f8:c17:b8f::/64", "45.33.0.0/16"], "{label}");
        for (stored, sent) in stored.iter().zip(&sent) {
            assert_stored_as_sent(label, stored, sent, "watcher");
        }
        let found =
            list(s.store(), &SignalFilter { value: Some("2a01:4f8:c17:b8f::/64".into()), limit: 10, ..SignalFilter::default() })
                .await;
        assert_eq!(values(&found), ["2a01:4f8:c17:b8f::/64"], "{label}: found by its canonical range");
    }
}

#[tokio::test]
async fn times_keep_microsecond_precision_and_their_instant() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let mut raw = item("Ip", "45.33.32.156", "times");
        raw["start_at"] = json!("2026-11-25T13:59:19.000001+02:00");
        raw["stop_at"] = json!("2026-11-25T11:59:20.999999Z");
        let mut sent = signal(key, report(raw));
        sent.received_at = datetime!(2026-11-25 06:00:00.5 -06:00);
        s.store().insert_signals(std::slice::from_ref(&sent)).await.expect("insert");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored[0].start_at, datetime!(2026-11-25 11:59:19.000001 UTC), "{label}: start_at");
        assert_eq!(stored[0].stop_at, datetime!(2026-11-25 11:59:20.999999 UTC), "{label}: stop_at");
        assert_eq!(stored[0].received_at, datetime!(2026-11-25 12:00:00.5 UTC), "{label}: received_at");
    }
}

/// Two machines, three values, stored in a known order. Returns the stored rows, oldest first.
async fn listing_fixture(store: &dyn Store) -> Vec<StoredSignal> {
    let one = machine(store, "one").await;
    let two = machine(store, "two").await;
    let a = "45.33.32.1";
    let b = "45.33.32.2";
    let c = "2a01:4f8::1";
    let sent = [(one, a, "1"), (two, a, "2"), (one, b, "3"), (two, c, "4"), (one, a, "5"), (one, c, "6")];
    for (key, value, message) in sent {
        store.insert_signals(&[signal(key, ip_report(value, message))]).await.expect("insert");
    }
    list(store, &all_signals()).await
}

fn ids(signals: &[StoredSignal]) -> Vec<i64> {
    signals.iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn listing_filters_by_machine_and_by_value() {
    for s in subjects().await {
        let label = s.label();
        let all = listing_fixture(s.store()).await;
        let pick = |indexes: &[usize]| indexes.iter().map(|&i| all[i].id).collect::<Vec<_>>();
        let filter = |machine: Option<&str>, value: Option<&str>| SignalFilter {
            machine_id: machine.map(String::from),
            value: value.map(String::from),
            limit: 100,
            ..SignalFilter::default()
        };
        let cases: [(Option<&str>, Option<&str>, &[usize]); 8] = [
            (None, None, &[0, 1, 2, 3, 4, 5]),
            (Some("one"), None, &[0, 2, 4, 5]),
            (Some("two"), None, &[1, 3]),
            (None, Some("45.33.32.1"), &[0, 1, 4]),
            (None, Some("2a01:4f8::1"), &[3, 5]),
            (Some("one"), Some("45.33.32.1"), &[0, 4]),
            (Some("nobody"), None, &[]),
            (None, Some("45.33.32.3"), &[]),
        ];
        for (machine, value, expected) in cases {
            let found = list(s.store(), &filter(machine, value)).await;
            assert_eq!(ids(&found), pick(expected), "{label}: machine {machine:?}, value {value:?}");
        }
        let two = list(s.store(), &filter(Some("two"), None)).await;
        assert!(two.iter().all(|s| s.machine_id == "two"), "{label}: rows name their machine");
    }
}

#[tokio::test]
async fn listing_after_an_id_pages_through_every_signal_once() {
    for s in subjects().await {
        let label = s.label();
        let all = listing_fixture(s.store()).await;
        assert_eq!(all.len(), 6, "{label}: fixture");

        let after = |after: Option<i64>, limit: u32| SignalFilter { after, limit, ..SignalFilter::default() };
        assert_eq!(ids(&list(s.store(), &after(Some(all[1].id), 100)).await), ids(&all[2..]), "{label}: after");
        assert!(list(s.store(), &after(Some(all[5].id), 100)).await.is_empty(), "{label}: after the last");
        assert_eq!(ids(&list(s.store(), &after(Some(-1), 100)).await), ids(&all), "{label}: after a negative id");
        assert_eq!(ids(&list(s.store(), &after(None, 4)).await), ids(&all[..4]), "{label}: limit");
        assert_eq!(ids(&list(s.store(), &after(None, 1)).await), ids(&all[..1]), "{label}: limit one");
        assert!(list(s.store(), &after(None, 0)).await.is_empty(), "{label}: limit zero");
        assert_eq!(ids(&list(s.store(), &after(None, u32::MAX)).await), ids(&all), "{label}: huge limit");

        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = list(s.store(), &after(cursor, 4)).await;
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            paged.extend(ids(&page));
        }
        assert_eq!(paged, ids(&all), "{label}: pages cover every signal once, in order");

        let filtered =
            SignalFilter { after: Some(all[0].id), machine_id: Some("one".into()), value: Some("45.33.32.1".into()), limit: 100 };
        assert_eq!(ids(&list(s.store(), &filtered).await), [all[4].id], "{label}: every filter at once");
        let filtered = SignalFilter { machine_id: Some("one".into()), limit: 2, ..SignalFilter::default() };
        assert_eq!(ids(&list(s.store(), &filtered).await), [all[0].id, all[2].id], "{label}: limit applies after filters");
    }
}

#[tokio::test]
async fn count_and_machine_signal_counts_follow_inserts() {
    for s in subjects().await {
        let label = s.label();
        listing_fixture(s.store()).await;
        assert_eq!(s.store().count_signals().await.expect("count"), 6, "{label}: count");
        let counts: Vec<(String, u64)> = s
            .store()
            .list_machines()
            .await
            .expect("list")
            .into_iter()
            .map(|m| (m.machine_id, m.signal_count.unwrap_or(99)))
            .collect();
        assert_eq!(counts, [("one".to_string(), 4), ("two".to_string(), 2)], "{label}: per machine");
        let one = s.store().machine_by_login("one").await.expect("lookup").expect("exists");
        assert_eq!(s.store().machine_signal_count(one.key).await.expect("count"), 4, "{label}: by key");
        let by_keys = s.store().machines_by_keys(&[one.key]).await.expect("by keys");
        assert!(by_keys.iter().all(|m| m.signal_count.is_none()), "{label}: not counted by key");
    }
}

/// A consumer pages with `after = the last id it saw`, so a smaller id must never become visible
/// after a larger one. Catching a backend that breaks this depends on timing; a backend that keeps
/// it always passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_reader_sees_every_signal_while_writers_race() {
    for s in subjects().await {
        let label = s.label();
        let mut writers = Vec::new();
        for w in 0..4 {
            let key = machine(s.store(), &format!("writer-{w}")).await;
            let store = Arc::clone(&s.store);
            writers.push(tokio::spawn(async move {
                for round in 0..10 {
                    let signals: Vec<NewSignal> = (0..300)
                        .map(|i| signal(key, ip_report(&format!("45.{}.{}.{}", 40 + w, round, i % 256), &format!("{i}"))))
                        .collect();
                    store.insert_signals(&signals).await.expect("insert");
                }
            }));
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let done = writers.iter().all(|w| w.is_finished());
            let page = list(s.store(), &SignalFilter { after: cursor, limit: 1000, ..SignalFilter::default() }).await;
            if let Some(last) = page.last() {
                cursor = Some(last.id);
            }
            seen.extend(ids(&page));
            if done && page.is_empty() {
                break;
            }
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        let all = ids(&list(s.store(), &all_signals()).await);
        assert_eq!(all.len(), 12_000, "{label}: stored");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{label}: the reader saw ids in order");
        assert_eq!(seen.len(), all.len(), "{label}: the reader missed {} signals", all.len().saturating_sub(seen.len()));
    }
}

#[tokio::test]
async fn a_redelivery_on_another_day_is_still_a_duplicate() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let first = received(key, "45.33.32.156", T0);
        assert_eq!(s.store().insert_signals(std::slice::from_ref(&first)).await.expect("insert").inserted, 1, "{label}");
        // The agent did not get the acknowledgement and sends it again after midnight, and a day later.
        for later in [Duration::hours(12), Duration::days(1), Duration::days(3)] {
            let again = received(key, "45.33.32.156", T0 + later);
            let outcome = s.store().insert_signals(&[again]).await.expect("insert");
            assert_eq!(outcome, InsertOutcome { inserted: 0, duplicates: 1 }, "{label}: redelivered {later} later");
        }
        // Something new on the next day is stored, in its own day.
        let next_day = received(key, "45.33.32.157", T0 + Duration::days(1));
        assert_eq!(s.store().insert_signals(&[next_day]).await.expect("insert").inserted, 1, "{label}");
        assert_eq!(s.store().count_signals().await.expect("count"), 2, "{label}");
    }
}

/// Told the skew ingest accepts (24 hours), the store still finds the original of a redelivery
/// whose start_at lay almost a day ahead of its receipt (PostgreSQL looks back from start_at by
/// that much; with no look-back it would miss the day of the original).
#[tokio::test]
async fn a_redelivery_within_the_configured_skew_is_found() {
    for s in subjects().await {
        let label = s.label();
        s.store().set_redelivery_window(Duration::hours(24));
        let key = machine(s.store(), "watcher").await;
        let mut ahead = received(key, "45.33.32.156", T0 - Duration::days(1) + Duration::seconds(2));
        ahead.report.start_at = T0 - Duration::seconds(1);
        ahead.report.stop_at = T0;
        assert_eq!(s.store().insert_signals(std::slice::from_ref(&ahead)).await.expect("insert").inserted, 1, "{label}");
        let again = NewSignal { received_at: T0 + Duration::days(2), ..ahead };
        let outcome = s.store().insert_signals(&[again]).await.expect("insert");
        assert_eq!(outcome, InsertOutcome { inserted: 0, duplicates: 1 }, "{label}: redelivered two days later");
    }
}

#[tokio::test]
async fn signals_far_in_the_past_or_future_find_a_home() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = [received(key, "45.33.32.1", T0 - Duration::days(400)), received(key, "45.33.32.2", T0 + Duration::days(30))];
        assert_eq!(s.store().insert_signals(&sent).await.expect("insert").inserted, 2, "{label}");
        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(
            stored.iter().map(|s| s.received_at).collect::<Vec<_>>(),
            [sent[0].received_at, sent[1].received_at],
            "{label}"
        );
    }
}

#[tokio::test]
async fn partitions_are_created_ahead_of_time_on_postgres() {
    for s in subjects().await {
        let label = s.label();
        // The migration creates the partitions of the real today and the week after it, so the
        // test starts a year past the real date, where no partition can exist yet.
        let start = OffsetDateTime::now_utc() + Duration::days(365);
        let created = s.store().prepare_signal_partitions(start, 7).await.expect("prepare");
        let days = s.store().signal_partitions().await.expect("partitions");
        if s.db.backend == Backend::Sqlite {
            assert!(created.is_empty() && days.is_empty(), "{label}: SQLite has no partitions");
            continue;
        }
        let today = start.date();
        assert_eq!(created.len(), 8, "{label}: every day of the week ahead is new: {created:?}");
        for n in 0..=7 {
            let day = today + Duration::days(n);
            assert!(days.contains(&day), "{label}: partition of {day} exists ahead: {days:?}");
        }
        // A second pass has nothing left to create.
        assert!(s.store().prepare_signal_partitions(start, 7).await.expect("prepare").is_empty(), "{label}");
        let later = s.store().prepare_signal_partitions(start + Duration::days(7), 2).await.expect("prepare");
        assert_eq!(later, [today + Duration::days(8), today + Duration::days(9)], "{label}: only the missing days");
    }
}

#[tokio::test]
async fn retention_expires_old_processed_signals_and_keeps_the_rest() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        let sent = [
            received(key, "45.33.32.1", T0 - Duration::days(40)),
            received(key, "45.33.32.2", T0 - Duration::days(40) + Duration::hours(1)),
            received(key, "45.33.32.3", T0 - Duration::days(1)),
            received(key, "45.33.32.4", T0),
        ];
        s.store().insert_signals(&sent).await.expect("insert");
        let ids: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();
        let cutoff = T0 - Duration::days(30);

        // The consensus worker has read only the first old signal: the second must stay.
        let partial = s.store().expire_signals(cutoff, ids[0], 1).await.expect("expire");
        let left: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();
        assert!(left.contains(&ids[1]), "{label}: an unprocessed signal survived retention: {partial:?}");
        assert!(left.ends_with(&ids[2..]), "{label}: recent signals kept");
        match s.db.backend {
            // Row by row: exactly the processed old one goes.
            Backend::Sqlite => assert_eq!(left, ids[1..], "{label}"),
            // Whole days: the day holding an unprocessed signal stays whole.
            Backend::Postgres => assert_eq!(left, ids, "{label}"),
        }

        // Once processed, the old day expires; the recent ones and their days stay.
        let full = s.store().expire_signals(cutoff, ids[3], 1).await.expect("expire");
        let left: Vec<i64> = list(s.store(), &all_signals()).await.iter().map(|s| s.id).collect();
        assert_eq!(left, ids[2..], "{label}: old signals gone, recent ones kept");
        let days = s.store().signal_partitions().await.expect("partitions");
        match s.db.backend {
            Backend::Sqlite => assert_eq!(full.rows_deleted, 1, "{label}: batches of one"),
            Backend::Postgres => {
                let old_day = (T0 - Duration::days(40)).date();
                assert_eq!(full.partitions_dropped, [old_day], "{label}");
                assert!(!days.contains(&old_day), "{label}: dropped");
                assert!(days.contains(&T0.date()) && days.contains(&(T0 - Duration::days(1)).date()), "{label}: {days:?}");
            }
        }
        // Still storable and deduplicated afterwards; a fresh copy of an expired signal is new again.
        assert_eq!(s.store().insert_signals(&sent[2..]).await.expect("insert").duplicates, 2, "{label}");
        let backlog = s.store().signal_backlog(ids[2], 100).await.expect("backlog");
        assert_eq!((backlog.count, backlog.oldest_received_at), (1, Some(T0)), "{label}: backlog after the watermark");
        let none = s.store().signal_backlog(ids[3], 100).await.expect("backlog");
        assert_eq!((none.count, none.oldest_received_at), (0, None), "{label}: caught up");
    }
}

#[tokio::test]
async fn report_summary_and_recent_reports_count_reporters_and_respect_their_bounds() {
    for s in subjects().await {
        let label = s.label();
        let store = s.store();
        let account = store.create_account("acme", T0).await.expect("create account");
        let (a1, a2, lone) = (machine(store, "acme-1").await, machine(store, "acme-2").await, machine(store, "lone").await);
        for key in [a1, a2] {
            store.enroll_machine(key, account, None, &[], false, T0).await.expect("enroll");
        }
        let at = |key: MachineKey, message: &str, stop_minutes_ago: i64, received: OffsetDateTime| {
            let mut signal = signal(key, ip_report("45.33.32.156", message));
            signal.report.stop_at = T0 - Duration::minutes(stop_minutes_ago);
            signal.report.start_at = signal.report.stop_at;
            signal.report.dedup_key = message.into();
            signal.received_at = received;
            signal
        };
        let sent = vec![
            at(a1, "acme one", 30, T0 - Duration::minutes(30)),
            at(a2, "acme two", 20, T0 - Duration::minutes(20)),
            at(lone, "lone recent", 10, T0 - Duration::minutes(10)),
            at(lone, "lone old", 60 * 24 * 40, T0),
            signal(lone, ip_report("45.33.32.157", "another address")),
        ];
        store.insert_signals(&sent).await.expect("insert");
        let query = ReportQuery {
            value: "45.33.32.156".into(),
            reported_since: T0 - Duration::days(30),
            received_since: None,
            machine: None,
            limit: 2,
            offset: 0,
        };
        let summary = store.report_summary(&query).await.expect("summary");
        assert_eq!(summary.reports, 3, "{label}: the 40-day-old report and the other address are left out");
        assert_eq!(summary.reporters, 2, "{label}: two machines of one account count once, the lone machine once");
        assert_eq!(summary.last_reported_at, Some(T0 - Duration::minutes(10)), "{label}: latest");

        let recent = store.recent_reports(&query).await.expect("recent");
        let messages: Vec<&str> = recent.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["lone recent", "acme two"], "{label}: newest first, limited");
        assert_eq!(recent[0].machine, lone, "{label}: machine");
        assert_eq!(recent[0].account, None, "{label}: no account");
        assert_eq!(recent[1].account, Some(account), "{label}: account");
        assert_eq!(recent[1].origin_ip, ip("81.2.69.160"), "{label}: origin");
        assert_eq!(recent[1].scenario, "crowdsecurity/ssh-bf", "{label}: scenario");
        assert!(json_value(label, &recent[0].extra).is_object(), "{label}: extra");
        let next = store.recent_reports(&ReportQuery { offset: 2, ..query.clone() }).await.expect("recent");
        assert_eq!(next.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["acme one"], "{label}: the next page");

        let own_recent =
            ReportQuery { machine: Some(a1), received_since: Some(T0 - Duration::minutes(15)), limit: 10, ..query.clone() };
        assert!(store.recent_reports(&own_recent).await.expect("recent").is_empty(), "{label}: a1 received 30 minutes ago");
        let own_window = ReportQuery { received_since: Some(T0 - Duration::minutes(45)), ..own_recent };
        let own = store.recent_reports(&own_window).await.expect("recent");
        assert_eq!(own.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["acme one"], "{label}: only a1's");
        assert_eq!(store.report_summary(&own_window).await.expect("summary").reports, 1, "{label}: filtered summary");

        let counts = store
            .report_counts(&["45.33.32.156".into(), "45.33.32.157".into(), "45.33.32.158".into()], T0 - Duration::days(30))
            .await
            .expect("counts");
        let mut counts: Vec<(String, u64, OffsetDateTime)> =
            counts.into_iter().map(|c| (c.value, c.reports, c.last_reported_at)).collect();
        counts.sort();
        let another = sent[4].report.stop_at;
        assert_eq!(
            counts,
            [("45.33.32.156".into(), 3, T0 - Duration::minutes(10)), ("45.33.32.157".into(), 1, another)],
            "{label}: per value, within the window, unknown values absent"
        );
        assert!(store.report_counts(&[], T0).await.expect("counts").is_empty(), "{label}: nothing asked");

        let asked: Vec<String> = ["45.33.32.156", "45.33.32.157", "45.33.32.158"].map(String::from).to_vec();
        let mut lately = store.reported_since(a1, &asked, T0 - Duration::minutes(45)).await.expect("reported");
        lately.sort();
        assert_eq!(lately, ["45.33.32.156"], "{label}: only a1's, received within the window");
        let mut lone_lately = store.reported_since(lone, &asked, T0 - Duration::minutes(45)).await.expect("reported");
        lone_lately.sort();
        assert_eq!(lone_lately, ["45.33.32.156", "45.33.32.157"], "{label}: each value once");
        assert!(store.reported_since(a1, &asked, T0 - Duration::minutes(15)).await.expect("reported").is_empty(), "{label}");
        assert!(store.reported_since(a1, &[], T0 - Duration::days(1)).await.expect("reported").is_empty(), "{label}");
        let many: Vec<String> = (0..2500).map(|i| format!("45.34.{}.{}", i / 250, i % 250)).chain(asked.clone()).collect();
        let found = store.reported_since(a1, &many, T0 - Duration::minutes(45)).await.expect("reported");
        assert_eq!(found, ["45.33.32.156"], "{label}: a long list is asked in parts");

        let unknown = ReportQuery { value: "2001:db8::1".into(), ..query };
        assert_eq!(store.report_summary(&unknown).await.expect("summary"), ReportSummary::default(), "{label}: unknown");
    }
}
