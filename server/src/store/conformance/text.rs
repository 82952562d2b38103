//! Text PostgreSQL cannot hold (NUL) and text that is not JSON, across the capabilities that
//! store free text: both backends must accept, store and find the same values.

use super::*;

#[tokio::test]
async fn nul_characters_are_stored_as_the_replacement_character() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        // The HTTP layer refuses NUL with a 4xx; the store is the backstop that keeps both
        // engines identical for any caller, so the report is built past that validation.
        let mut raw = item("Ip", "45.33.32.156", "before after");
        raw["literal"] = json!("a backslash then u0000: \\u0000");
        let mut sent = signal(key, report(raw));
        sent.report.message = "before \u{0} after".into();
        sent.report.agent = Some("agent\u{0}".into());
        let mut extra: Value = serde_json::from_str(&sent.report.extra).expect("extra is JSON");
        extra["custom\u{0}key"] = json!(["nul \u{0} in a list", {"deep": "\u{0}"}]);
        sent.report.extra = extra.to_string();
        sent.enrichment.as_name = Some("AS\u{0}name".into());
        let clean = signal(key, ip_report("45.33.32.157", "clean"));
        let outcome = s.store().insert_signals(&[sent, clean]).await;
        assert_eq!(outcome.expect("a NUL must not fail the batch"), InsertOutcome { inserted: 2, duplicates: 0 }, "{label}");

        let stored = list(s.store(), &all_signals()).await;
        assert_eq!(stored[0].message, "before \u{FFFD} after", "{label}: message");
        assert_eq!(stored[0].agent.as_deref(), Some("agent\u{FFFD}"), "{label}: agent");
        assert_eq!(stored[0].enrichment.as_name.as_deref(), Some("AS\u{FFFD}name"), "{label}: as_name");
        let extra = json_value(label, &stored[0].extra);
        assert_eq!(extra["custom\u{FFFD}key"], json!(["nul \u{FFFD} in a list", {"deep": "\u{FFFD}"}]), "{label}: extra");
        assert_eq!(extra["literal"], json!("a backslash then u0000: \\u0000"), "{label}: an escaped backslash is kept");
        assert_eq!(stored[1].message, "clean", "{label}: the rest of the batch");

        let login = LoginRecord {
            scenarios: vec!["crowdsecurity/ssh-bf".into()],
            origin_prefix: net("81.2.69.0/24"),
            user_agent: Some("crowdsec\u{0}".into()),
            at: T0,
        };
        s.store().record_login(key, &login).await.unwrap_or_else(|e| panic!("{label}: login: {e}"));
        let usage = json!({"lapi": {"version": "v1.6.3", "os": "\u{0}"}}).to_string();
        s.store().record_metrics(key, "usage", Some("v1.6\u{0}"), &usage, T0).await.unwrap_or_else(|e| panic!("{label}: {e}"));
        let account = s.store().create_account("acme\u{0}", T0).await.unwrap_or_else(|e| panic!("{label}: account: {e}"));
        s.store()
            .enroll_machine(key, account, Some("edge\u{0}"), &["tag\u{0}".into()], false, T0)
            .await
            .unwrap_or_else(|e| panic!("{label}: enroll: {e}"));
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.version.as_deref(), Some("v1.6\u{FFFD}"), "{label}: version");
        assert_eq!(machine.display_name.as_deref(), Some("edge\u{FFFD}"), "{label}: display name");
        assert_eq!(machine.account_name.as_deref(), Some("acme\u{FFFD}"), "{label}: account name");
        let found = s.store().account_by_name("acme\u{0}").await.expect("lookup").map(|a| a.key);
        assert_eq!(found, Some(account), "{label}: found by the name it was created with");
    }
}

#[tokio::test]
async fn lookups_with_nul_find_nothing_rather_than_failing() {
    for s in subjects().await {
        let label = s.label();
        machine(s.store(), "watcher").await;
        let nul = "watcher\u{0}";
        assert!(s.store().machine_by_login(nul).await.expect("machine lookup").is_none(), "{label}: machine");
        assert!(s.store().account_by_name(nul).await.expect("account lookup").is_none(), "{label}: account");
        assert!(s.store().enroll_key_by_hash(nul).await.expect("key lookup").is_none(), "{label}: enroll key");
        assert!(!s.store().admin_token_exists(nul).await.expect("token lookup"), "{label}: admin token");
        let filter = SignalFilter { machine_id: Some(nul.into()), value: Some(nul.into()), limit: 10, ..SignalFilter::default() };
        assert!(list(s.store(), &filter).await.is_empty(), "{label}: signals");
    }
}

#[tokio::test]
async fn text_that_is_not_json_is_refused_where_json_is_stored() {
    for s in subjects().await {
        let label = s.label();
        let key = machine(s.store(), "watcher").await;
        for payload in ["not json", "{\"unterminated\": ", ""] {
            let outcome = s.store().record_metrics(key, "usage", Some("v9"), payload, T0).await;
            assert!(outcome.is_err(), "{label}: metrics payload {payload:?} must be refused");
        }
        let machine = s.store().machine_by_login("watcher").await.expect("lookup").expect("exists");
        assert_eq!(machine.version, None, "{label}: a refused push changes nothing");

        let mut bad = signal(key, ip_report("45.33.32.156", "bad extra"));
        bad.report.extra = "{not json".into();
        let outcome = s.store().insert_signals(&[signal(key, ip_report("45.33.32.157", "good")), bad]).await;
        assert!(outcome.is_err(), "{label}: extra that is not JSON must be refused");
        assert_eq!(s.store().count_signals().await.expect("count"), 0, "{label}: nothing stored");
    }
}
