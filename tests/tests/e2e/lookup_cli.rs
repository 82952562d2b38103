//! `palisade lookup IP` against a real server: with an API key or as the registered machine
//! itself, human output by default, the server's JSON with `--json`, and a clear failure for a
//! refused key or an unregistered machine.

use std::process::Command;

use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, workspace_binary};

#[test]
fn palisade_lookup_prints_the_reputation_and_refuses_a_bad_key() -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, ServerOptions::default())?;
    let ranges = server.data_dir.join("ranges.txt");
    std::fs::write(&ranges, "66.249.64.0/19\n")?;
    server.admin(&["allowlist", "import", &ranges.display().to_string(), "--source", "googlebot", "--category", "crawler"])?;
    server.admin(&["account", "create", "acme"])?;
    let key = server.admin(&["api-key", "create", "--account", "acme"])?.trim().to_string();
    let palisade = workspace_binary("palisade", "palisade");
    let run = |args: &[&str]| {
        Command::new(&palisade).args(args).env_remove("PALISADE_AGENT_API_KEY").env_remove("PALISADE_AGENT_SERVER").output()
    };

    let human = run(&["lookup", "66.249.66.1", "--server", &server.url, "--api-key", &key])?;
    let text = String::from_utf8(human.stdout)?;
    assert!(human.status.success(), "{text}{}", String::from_utf8_lossy(&human.stderr));
    assert!(text.starts_with("66.249.66.1  safe (confidence high)"), "{text}");
    assert!(text.contains("allowlisted crawler"), "{text}");

    let json = run(&["lookup", "66.249.66.1", "--server", &server.url, "--api-key", &key, "--json"])?;
    let body: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(body["reputation"], "safe");
    assert_eq!(body["false_positives"], serde_json::json!(["crawler"]));

    let refused = run(&["lookup", "66.249.66.1", "--server", &server.url, "--api-key", "pal_wrong"])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("API key was refused"));

    // A registered machine looks up with its own credentials and server, nothing else to type.
    let home = tempfile::tempdir()?;
    let config = home.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("credentials = {:?}\nstate_dir = {:?}\n", home.path().join("credentials.json"), home.path().join("state")),
    )?;
    let config = config.display().to_string();
    let unregistered = run(&["--config", &config, "lookup", "66.249.66.1"])?;
    assert!(!unregistered.status.success());
    assert!(String::from_utf8_lossy(&unregistered.stderr).contains("palisade register --server"));
    let registered = run(&["--config", &config, "register", "--server", &server.url])?;
    assert!(registered.status.success(), "{}", String::from_utf8_lossy(&registered.stderr));
    let own = run(&["--config", &config, "lookup", "66.249.66.1"])?;
    let text = String::from_utf8(own.stdout)?;
    assert!(own.status.success(), "{text}{}", String::from_utf8_lossy(&own.stderr));
    assert!(text.starts_with("66.249.66.1  safe (confidence high)"), "{text}");
    let elsewhere = run(&["--config", &config, "lookup", "66.249.66.1", "--server", "http://192.0.2.1:1/"])?;
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("only work there"));
    Ok(())
}
