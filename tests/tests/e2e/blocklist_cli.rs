//! `palisade-server admin blocklist …` as an operator meets it, against a running server: create,
//! list, add with a lifetime and a remediation, remove, import a CSV file, subscribe a machine
//! (its CrowdSec stream then carries the list), delete; and the refusals (bad names, duplicate
//! lists, values that are not addresses, unknown lists) with a clear message and a failing exit.

use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_api::capi::{DecisionsStreamV2, LoginResponse};
use palisade_tests::http::Http;
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, wait_until};
use serde_json::{Value, json};

/// Runs an admin command that must fail; returns its error text.
fn refused(server: &ServerProcess, args: &[&str]) -> anyhow::Result<String> {
    match server.admin(args) {
        Ok(out) => anyhow::bail!("admin {args:?} succeeded: {out}"),
        Err(error) => Ok(error.to_string()),
    }
}

fn field(out: &str, name: &str) -> anyhow::Result<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::to_string)
        .with_context(|| format!("no {name} in {out}"))
}

fn blocklist_commands_manage_lists_served_by_the_running_server(db: &TestDb) -> anyhow::Result<()> {
    let server = ServerProcess::start(db, ServerOptions::default())?;
    let http = Http::new()?;
    let created = server.admin(&["machine", "add", "edge-1"])?;
    let body = json!({"machine_id": field(&created, "machine_id")?, "password": field(&created, "password")?, "scenarios": []});
    let login: LoginResponse = http.post(&format!("{}v2/watchers/login", server.url), None, &body)?.json()?;
    let token = login.token;

    // Public, so the machine reads it before it is subscribed.
    let out =
        server.admin(&["blocklist", "create", "partners", "--description", "shared by partners", "--visibility", "public"])?;
    ensure!(out.contains("partners"), "{out}");
    let again = refused(&server, &["blocklist", "create", "partners"])?;
    ensure!(again.contains("already") || again.contains("exists"), "duplicate: {again}");
    let bad = refused(&server, &["blocklist", "create", "Not A Name"])?;
    ensure!(bad.contains("lowercase"), "bad name: {bad}");
    let kind = refused(&server, &["blocklist", "create", "x", "--kind", "grey"])?;
    ensure!(kind.contains("block or allow"), "bad kind: {kind}");
    server.admin(&["blocklist", "create", "friends", "--kind", "allow"])?;
    let listed: Value = serde_json::from_str(&server.admin(&["blocklist", "list", "--json"])?)?;
    let names: Vec<(&str, &str)> =
        listed.as_array().context("array")?.iter().filter_map(|l| Some((l["name"].as_str()?, l["kind"].as_str()?))).collect();
    ensure!(names.contains(&("partners", "block")) && names.contains(&("friends", "allow")), "{listed}");

    server.admin(&["blocklist", "add", "partners", "45.33.32.156", "--expires", "12h", "--remediation", "captcha"])?;
    let not_ip = refused(&server, &["blocklist", "add", "partners", "not-an-ip"])?;
    ensure!(not_ip.contains("nothing was added"), "{not_ip}");
    let lifetime = refused(&server, &["blocklist", "add", "partners", "45.33.32.157", "--expires", "soon"])?;
    ensure!(lifetime.contains("lifetime"), "{lifetime}");
    let unknown = refused(&server, &["blocklist", "add", "nope", "45.33.32.157"])?;
    ensure!(unknown.contains("no custom list"), "{unknown}");

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("partners.csv");
    std::fs::write(&file, "value,remediation,duration_secs\n81.2.69.160\n185.220.101.0/24,ban,3600\nbogus\n")?;
    let imported = server.admin(&["blocklist", "import", "partners", &file.display().to_string()])?;
    ensure!(imported.contains("2 added, 0 removed, 1 rejected"), "{imported}");

    // The running server applies what the command wrote at its next poll.
    let base = &server.url;
    let list = wait_until(Duration::from_secs(20), "the server to serve the imported entries", || {
        let reply = http.get(&format!("{base}v1/blocklists/partners"), Some(&token))?;
        Ok((reply.status == 200 && reply.body.contains("81.2.69.160")).then_some(reply.body))
    })?;
    ensure!(list.contains("45.33.32.156") && list.contains("185.220.101.0/24"), "{list}");

    server.admin(&["blocklist", "remove", "partners", "45.33.32.156"])?;
    server.admin(&["blocklist", "subscribe", "partners", "edge-1"])?;
    let stream: DecisionsStreamV2 = http.get(&format!("{base}v2/decisions/stream?startup=true"), Some(&token))?.json()?;
    let from_list: Vec<&str> = stream.new.iter().filter(|d| d.origin == "lists").map(|d| d.value.as_str()).collect();
    ensure!(from_list.contains(&"81.2.69.160") && !from_list.contains(&"45.33.32.156"), "{from_list:?}");
    server.admin(&["blocklist", "subscribe", "partners", "edge-1", "--off"])?;
    let stream: DecisionsStreamV2 = http.get(&format!("{base}v2/decisions/stream?startup=true"), Some(&token))?.json()?;
    ensure!(stream.new.iter().all(|d| d.origin != "lists"), "unsubscribed: {:?}", stream.new);
    let subscribe_unknown = refused(&server, &["blocklist", "subscribe", "nope", "edge-1"])?;
    ensure!(subscribe_unknown.contains("no custom list"), "{subscribe_unknown}");

    server.admin(&["blocklist", "delete", "partners"])?;
    ensure!(refused(&server, &["blocklist", "delete", "partners"])?.contains("no custom list"));
    wait_until(Duration::from_secs(20), "the deleted list to disappear", || {
        Ok((http.get(&format!("{base}v1/blocklists/partners"), Some(&token))?.status == 404).then_some(()))
    })?;
    Ok(())
}

#[test]
fn blocklist_commands_manage_custom_lists() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    for db in runtime.block_on(TestDb::all()) {
        blocklist_commands_manage_lists_served_by_the_running_server(&db).with_context(|| db.label())?;
    }
    Ok(())
}
