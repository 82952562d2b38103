//! The typed client against the real server process, on every available backend: the machine
//! flow CrowdSec follows (register, log in, enroll, push, pull), the operator's API, and the
//! decoding of refusals into `Error::Api` with the server's stable codes.

use palisade::api::capi::{MetricsRequest, SignalItem};
use palisade::{AdminClient, Client, EnrollOutcome, Error, SignalQuery};
use palisade_tests::signals::crowdsec_signal;
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess};
use time::{Duration, OffsetDateTime};
use tokio::task::block_in_place;

type TestResult = anyhow::Result<()>;

const PASSWORD: &str = "Zb0WQ1tF6mJ8xqgA3rVuY5kNs2cD7eHp";

/// A server on `db` with an account `acme`, an enrollment key for it and an admin token.
fn start(db: &TestDb) -> anyhow::Result<(ServerProcess, String, String)> {
    block_in_place(|| {
        let server = ServerProcess::start(db, ServerOptions::default())?;
        server.admin(&["account", "create", "acme"])?;
        let key = server.admin(&["enroll-key", "create", "--account", "acme"])?.trim().to_string();
        let token = server.admin_token()?;
        Ok((server, key, token))
    })
}

fn signal(ip: &str, variant: usize) -> anyhow::Result<SignalItem> {
    Ok(crowdsec_signal("harness-agent", ip.parse()?, variant, OffsetDateTime::now_utc() - Duration::minutes(5)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_registers_enrolls_and_its_signals_reach_the_operator() -> TestResult {
    for db in TestDb::all().await {
        let label = db.label();
        let (server, key, admin_token) = start(&db)?;
        let client = Client::new(&server.url)?;
        let machine_id = "web-01.acme";

        client.register_machine(machine_id, PASSWORD).await?;
        client.register_machine(machine_id, PASSWORD).await?; // a re-run installer
        let login = client.login_machine(machine_id, PASSWORD, &["crowdsecurity/ssh-bf".to_string()]).await?;
        assert_eq!(login.code, 200);
        assert!(client.token_expires_at().is_some_and(|at| at > OffsetDateTime::now_utc()), "{label}: expire not read");

        let tags = ["prod".to_string()];
        assert_eq!(client.enroll_machine(&key, "web-01", &tags, false).await?, EnrollOutcome::Enrolled, "{label}");
        assert_eq!(client.enroll_machine(&key, "", &[], false).await?, EnrollOutcome::AlreadyEnrolled, "{label}");
        assert_eq!(client.enroll_machine(&key, "", &[], true).await?, EnrollOutcome::Enrolled, "{label}");

        let batch = vec![signal("45.33.32.156", 0)?, signal("45.33.32.156", 1)?, signal("203.0.113.77", 0)?];
        let pushed = client.push_signals(&batch).await?;
        assert_eq!((pushed.accepted, pushed.duplicates), (2, 0), "{label}");
        assert_eq!(pushed.rejected.len(), 1, "{label}");
        assert_eq!((pushed.rejected[0].index, pushed.rejected[0].code.as_str()), (2, "reserved_address"), "{label}");
        let again = client.push_signals(&batch[..2]).await?;
        assert_eq!((again.accepted, again.duplicates), (0, 2), "{label}: a redelivery was stored twice");

        let metrics: MetricsRequest =
            serde_json::from_str(include_str!("../../fixtures/crowdsec-1.4.6/metrics.request.with-bouncer.json"))?;
        client.push_metrics(&metrics).await?;
        client.push_usage_metrics(&serde_json::json!({"lapi": {"version": "v1.6.3"}})).await?;
        let v2 = client.get_decisions_stream_v2(true).await?;
        let v3 = client.get_decisions_stream_v3(false).await?;
        assert!(v2.new.is_empty() && v3.new.is_empty(), "{label}: nothing is listed yet");

        let admin = AdminClient::new(&server.url, &admin_token)?;
        let page = admin.list_signals(&SignalQuery { machine_id: Some(machine_id.into()), ..SignalQuery::default() }).await?;
        assert_eq!(page.items.len(), 2, "{label}");
        assert!(page.items.iter().all(|s| s.value == "45.33.32.156" && s.machine_id == machine_id), "{label}");
        assert_eq!(page.items[0].scenario, "crowdsecurity/ssh-bf", "{label}");
        assert_eq!(page.items[0].agent.as_deref(), Some("harness-agent"), "{label}");
        let first = admin.list_signals(&SignalQuery { limit: Some(1), ..SignalQuery::default() }).await?;
        let rest = admin.list_signals(&SignalQuery { after: first.next_after, ..SignalQuery::default() }).await?;
        assert_eq!((first.items.len(), rest.items.len()), (1, 1), "{label}: pagination");

        let machine = admin.get_machine(machine_id).await?;
        assert_eq!(machine.account.as_deref(), Some("acme"), "{label}");
        assert_eq!(machine.signals, 2, "{label}");
        assert_eq!(machine.scenarios, ["crowdsecurity/ssh-bf"], "{label}");
        assert_eq!(machine.version.as_deref(), Some("v1.6.3"), "{label}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_creates_accounts_keys_and_machines_that_can_log_in() -> TestResult {
    for db in TestDb::all().await {
        let label = db.label();
        let (server, _key, admin_token) = start(&db)?;
        let admin = AdminClient::new(&server.url, &admin_token)?;

        let account = admin.create_account("globex").await?;
        assert_eq!((account.name.as_str(), account.machines), ("globex", 0), "{label}");
        let key = admin.create_enroll_key("globex").await?;
        assert!(key.key.starts_with(&key.prefix), "{label}");
        let names: Vec<_> = admin.list_accounts().await?.into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["acme", "globex"], "{label}");

        let credentials = admin.create_machine("honeypot-1", true).await?;
        let client = Client::new(&server.url)?.with_credentials(&credentials.machine_id, &credentials.password, &[]);
        // No explicit login: the first call logs in with the credentials.
        assert_eq!(client.enroll_machine(&key.key, "honeypot", &[], false).await?, EnrollOutcome::Enrolled, "{label}");

        let machines = admin.list_machines().await?;
        assert_eq!(machines.len(), 1, "{label}");
        assert!(machines[0].sensor && machines[0].created_by == "operator", "{label}");
        assert_eq!(machines[0].account.as_deref(), Some("globex"), "{label}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_decode_into_api_errors_with_the_server_codes() -> TestResult {
    let db = TestDb::sqlite();
    let (server, _key, admin_token) = start(&db)?;
    let client = Client::new(&server.url)?;
    client.register_machine("web-02", PASSWORD).await?;

    match client.login_machine("web-02", "not-the-password-at-all", &[]).await {
        Err(Error::Api { status: 401, code, message, request_id, .. }) => {
            assert_eq!(code, "invalid_credentials");
            assert_eq!(message, "The machine_id or password is incorrect");
            assert!(request_id.is_some_and(|id| !id.is_empty()));
        }
        other => anyhow::bail!("expected invalid_credentials, got {other:?}"),
    }
    let short = client.register_machine("web-03", "short").await.err();
    assert!(
        matches!(short, Some(Error::Api { status: 422, ref code, ref fields, .. }) if code == "validation_failed" && fields[0].field == "password")
    );

    client.login_machine("web-02", PASSWORD, &[]).await?;
    let bad_key = client.enroll_machine("no-such-key", "", &[], false).await.err();
    assert_eq!(bad_key.as_ref().and_then(Error::code), Some("invalid_enroll_key"));
    assert_eq!(bad_key.as_ref().and_then(Error::status), Some(403));

    let reserved = client.push_signals(&[signal("203.0.113.77", 0)?, signal("10.1.2.3", 1)?]).await.err();
    match reserved {
        Some(Error::Api { status: 422, code, fields, .. }) => {
            assert_eq!(code, "validation_failed");
            assert_eq!(fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["[0]", "[1]"]);
        }
        other => anyhow::bail!("expected validation_failed, got {other:?}"),
    }

    let admin = AdminClient::new(&server.url, &admin_token)?;
    assert_eq!(admin.get_machine("nobody").await.err().as_ref().and_then(Error::code), Some("not_found"));
    admin.create_account("initech").await?;
    assert_eq!(admin.create_account("initech").await.err().as_ref().and_then(Error::code), Some("conflict"));
    let stranger = AdminClient::new(&server.url, "not-an-admin-token")?;
    assert_eq!(stranger.list_machines().await.err().as_ref().and_then(Error::code), Some("invalid_token"));
    Ok(())
}
