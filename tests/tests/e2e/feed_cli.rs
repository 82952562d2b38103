//! `palisade-server admin feed …` and the feeds job as an operator meets them, against a running
//! server and a source on `127.0.0.1:0` serving the fixtures of `tests/fixtures/feeds/` with
//! `ETag`s: a feed added with the CLI is loaded by the running server's job and served, its
//! metrics exported; `feed refresh` loads, then gets a 304; a failing source exits non-zero and
//! keeps the last good copy, which `feed list` explains; `feed remove` removes the list.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use palisade_tests::http::Http;
use palisade_tests::testing::TestDb;
use palisade_tests::{ServerOptions, ServerProcess, wait_until};
use serde_json::{Value, json};

/// What the source answers: path → (status, body, ETag).
type Answers = Arc<Mutex<Vec<(String, u16, String, String)>>>;

/// The requests the source saw, `path if-none-match`.
type Seen = Arc<Mutex<Vec<String>>>;

fn fixture(name: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/feeds").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// A minimal HTTP/1.1 source on 127.0.0.1:0: one request per connection, 304 to an
/// `If-None-Match` naming the current `ETag`. Its base URL, the answers to edit, and the
/// requests seen (`path if-none-match`).
fn source() -> anyhow::Result<(String, Answers, Seen)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}/", listener.local_addr()?);
    let answers: Answers = Arc::default();
    let seen: Seen = Arc::default();
    let (a, s) = (answers.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(answer(stream, &a, &s));
        }
    });
    Ok((base, answers, seen))
}

fn answer(mut stream: TcpStream, answers: &Answers, seen: &Mutex<Vec<String>>) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
    let mut if_none_match = String::from("-");
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = value.trim().to_string();
        }
    }
    seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(format!("{path} {if_none_match}"));
    let found = answers.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter().find(|(p, ..)| *p == path).cloned();
    let (status, body, etag) = match found {
        Some((_, 200, _, etag)) if etag == if_none_match => (304, String::new(), etag),
        Some((_, status, body, etag)) => (status, body, etag),
        None => (404, "not found".into(), String::new()),
    };
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

fn set(answers: &Answers, path: &str, status: u16, body: String, etag: &str) -> anyhow::Result<()> {
    let mut answers = answers.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    answers.retain(|(p, ..)| p != path);
    answers.push((path.into(), status, body, etag.into()));
    Ok(())
}

fn feed_commands_against_a_running_server(db: &TestDb) -> anyhow::Result<()> {
    let (base, answers, seen) = source()?;
    set(&answers, "ipsum.txt", 200, fixture("ipsum.txt")?, "\"ipsum-1\"")?;
    set(&answers, "drop.txt", 200, fixture("drop.txt")?, "\"drop-1\"")?;
    let server = ServerProcess::start(db, ServerOptions::default())?;
    let http = Http::new()?;
    let token = server.admin_token()?;
    let url = &server.url;

    // Added with the CLI, loaded by the server's own job (a pass every 30 seconds) and served.
    let out = server.admin(&["feed", "add", "ipsum", &format!("{base}ipsum.txt"), "--format", "ipsum", "--every", "5m"])?;
    ensure!(out.contains("feed ipsum added"), "{out}");
    let feeds = wait_until(Duration::from_secs(60), "the server's job to load the feed", || {
        let list: Value = http.get(&format!("{url}v1/admin/feeds"), Some(&token))?.json()?;
        Ok((list[0]["entries"] == 6).then_some(list))
    })?;
    ensure!(feeds[0]["up"] == true && feeds[0]["last_success_at"].is_string(), "{feeds}");
    let metrics = wait_until(Duration::from_secs(60), "the feed's metrics", || {
        let body = http.get(&format!("{url}metrics"), None)?.body;
        Ok(body.contains("palisade_feed_entries{feed=\"ipsum\"} 6").then_some(body))
    })?;
    ensure!(metrics.contains("palisade_feed_up{feed=\"ipsum\"} 1"), "{metrics}");

    // Refreshed by hand: loaded, then unchanged (the source sees the ETag and answers 304).
    server.admin(&["feed", "add", "drop", &format!("{base}drop.txt"), "--format", "spamhaus", "--visibility", "public"])?;
    let loaded = server.admin(&["feed", "refresh", "drop"])?;
    ensure!(loaded.contains("feed drop loaded: 10 added"), "{loaded}");
    let unchanged = server.admin(&["feed", "refresh", "drop"])?;
    ensure!(unchanged.contains("unchanged"), "{unchanged}");
    let forced = server.admin(&["feed", "refresh", "drop", "--force"])?;
    ensure!(forced.contains("feed drop loaded: 0 added, 0 renewed, 0 removed"), "{forced}");
    let requests = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let drop_requests: Vec<&String> = requests.iter().filter(|r| r.starts_with("drop.txt")).collect();
    ensure!(
        drop_requests == ["drop.txt -", "drop.txt \"drop-1\"", "drop.txt -"],
        "first, conditional, forced: {drop_requests:?}"
    );

    // A failing source: a non-zero exit naming why; the list keeps its entries.
    set(&answers, "drop.txt", 503, "down for maintenance".into(), "")?;
    let failed = match server.admin(&["feed", "refresh", "drop"]) {
        Ok(out) => anyhow::bail!("a failed refresh succeeded: {out}"),
        Err(error) => error.to_string(),
    };
    ensure!(failed.contains("the source answered HTTP 503") && failed.contains("last good copy (10 entries)"), "{failed}");
    let listed = server.admin(&["feed", "list"])?;
    ensure!(listed.contains("error (1 failed attempts): the source answered HTTP 503"), "{listed}");
    let json: Value = serde_json::from_str(&server.admin(&["feed", "list", "--json"])?)?;
    let drop_feed = json.as_array().context("array")?.iter().find(|f| f["name"] == "drop").context("drop listed")?;
    ensure!(drop_feed["up"] == false && drop_feed["entries"] == 10, "{drop_feed}");
    // A machine reads the public list: the last good copy, whole.
    let created = server.admin(&["machine", "add", "edge-1"])?;
    let field = |name: &str| created.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::to_string);
    let body = json!({"machine_id": field("machine_id"), "password": field("password"), "scenarios": []});
    let login: Value = http.post(&format!("{url}v2/watchers/login"), None, &body)?.json()?;
    let machine = login["token"].as_str().context("a token")?.to_string();
    let list = wait_until(Duration::from_secs(20), "the server to serve the feed", || {
        let reply = http.get(&format!("{url}v1/blocklists/drop"), Some(&machine))?;
        Ok((reply.status == 200 && reply.body.contains("2a06:e480::/29")).then_some(reply.body))
    })?;
    ensure!(list.lines().count() == 10, "the last good copy is served whole: {list}");

    ensure!(server.admin(&["feed", "add", "x", "ftp://example.org/x"]).is_err(), "an ftp URL was accepted");
    server.admin(&["feed", "remove", "drop"])?;
    ensure!(server.admin(&["feed", "remove", "drop"]).is_err(), "removed twice");
    wait_until(Duration::from_secs(20), "the removed feed's list to disappear", || {
        Ok((http.get(&format!("{url}v1/blocklists/drop"), Some(&machine))?.status == 404).then_some(()))
    })?;
    Ok(())
}

#[test]
fn feed_commands_and_the_job_fill_lists_served_by_the_running_server() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    for db in runtime.block_on(TestDb::all()) {
        feed_commands_against_a_running_server(&db).with_context(|| db.label())?;
    }
    Ok(())
}
