//! Sending the golden requests and writing what came back: one block per request (the request
//! as sent, the status, every header but `Content-Length`, the body), normalised by
//! [`super::normalise`], and the comparison with the committed recording, which reports the
//! first differing answers as line diffs.
//!
//! Layout choices that are presentation only (they hide nothing): headers are listed sorted by
//! name (their order carries no meaning in HTTP and moves when layers are rearranged); JSON is
//! indented with its key order kept; HTML gets a line break between adjacent tags; compressed
//! bodies are shown decoded, under the `content-encoding` header that says how they came.
//! `Content-Length` is left out because normalised bodies (a timestamp with fewer fractional
//! digits) legitimately change length.

use std::fmt::Write as _;
use std::io::Read as _;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::json::Json;
use super::normalise::{Normaliser, Window};
use crate::common::{Reply, TestApp, request};

/// How much of an answer is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shows {
    /// Status, headers and body.
    All,
    /// Status and content type only: the body is process-global (`/metrics`).
    StatusAndContentType,
    /// Status, headers, and the body's size and SHA-256 (large static documents).
    Digest,
}

/// One request of the golden script.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    path: String,
    token: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// `None`: the JSON content type `common::request` sets; `Some("")`: none at all.
    content_type: Option<String>,
    /// What the recording shows instead of a body too large to print.
    body_note: Option<String>,
    shows: Shows,
}

impl Call {
    /// A request without a body.
    pub fn new(method: Method, path: &str) -> Call {
        Call {
            method,
            path: path.to_string(),
            token: None,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: None,
            body_note: None,
            shows: Shows::All,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Call {
        Call::new(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(path: &str) -> Call {
        Call::new(Method::POST, path)
    }

    /// `PUT path`.
    pub fn put(path: &str) -> Call {
        Call::new(Method::PUT, path)
    }

    /// `DELETE path`.
    pub fn delete(path: &str) -> Call {
        Call::new(Method::DELETE, path)
    }

    /// With `Authorization: Bearer token`.
    pub fn token(mut self, token: &str) -> Call {
        self.token = Some(token.to_string());
        self
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: &Value) -> Call {
        self.body = body.to_string().into_bytes();
        self
    }

    /// With a raw body and its content type (empty: no content type).
    pub fn raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Call {
        self.content_type = Some(content_type.to_string());
        self.body = body.into();
        self
    }

    /// With a body the recording describes in words rather than prints.
    pub fn described(mut self, note: &str) -> Call {
        self.body_note = Some(note.to_string());
        self
    }

    /// With a URL-encoded form body, as a browser posts it.
    pub fn form(self, fields: &[(&str, &str)]) -> Call {
        let encoded: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
        self.raw("application/x-www-form-urlencoded", encoded.join("&"))
    }

    /// Recording less than everything.
    pub fn shows(mut self, shows: Shows) -> Call {
        self.shows = shows;
        self
    }

    fn build(&self) -> axum::http::Request<Body> {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut built = request(self.method.clone(), &self.path, self.token.as_deref(), &headers, Body::from(self.body.clone()));
        match self.content_type.as_deref() {
            None => {}
            Some("") => drop(built.headers_mut().remove(header::CONTENT_TYPE)),
            Some(other) => {
                built.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(other).expect("a valid content type"));
            }
        }
        built
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            b' ' => "+".into(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A request that was answered, for the coverage check.
#[derive(Debug, Clone)]
pub struct Exercised {
    /// Method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Status of the answer.
    pub status: StatusCode,
}

/// Sends the script's requests to one app and writes the recording.
pub struct Recorder<'a> {
    app: &'a TestApp,
    /// The replacements learnt so far.
    pub norm: Normaliser,
    run_start: OffsetDateTime,
    out: String,
    steps: usize,
    /// Every request sent, for the coverage check.
    pub exercised: Vec<Exercised>,
    csrf: Regex,
    new_key: Regex,
    generated_request_id: Regex,
}

impl<'a> Recorder<'a> {
    /// A recorder for `app`; the run begins now.
    pub fn new(app: &'a TestApp) -> Self {
        Recorder {
            app,
            norm: Normaliser::new(app.label),
            run_start: OffsetDateTime::now_utc(),
            out: String::new(),
            steps: 0,
            exercised: Vec::new(),
            csrf: Regex::new(r#"name="csrf" value="([^"]+)""#).expect("a valid pattern"),
            new_key: Regex::new(r#"id="new-(enroll|api)-key" readonly value="([^"]+)""#).expect("a valid pattern"),
            generated_request_id: Regex::new("^[0-9a-f]{32}$").expect("a valid pattern"),
        }
    }

    /// The recording so far.
    pub fn finish(self) -> (String, Vec<Exercised>) {
        (self.out, self.exercised)
    }

    /// A line about a step that is not a request (a consensus run).
    pub fn note(&mut self, text: &str) {
        self.steps += 1;
        writeln!(self.out, "=== {:03} {text}\n", self.steps).expect("writing to a string");
    }

    /// Sends `call`, records it under `label`, and returns the raw answer.
    pub async fn call(&mut self, label: &str, call: Call) -> Reply {
        let sent = OffsetDateTime::now_utc();
        let reply = self.app.send(call.build()).await;
        let window = Window { run_start: self.run_start, sent, received: OffsetDateTime::now_utc() };
        let body = decoded(&reply);
        self.learn(&reply, &body);
        self.steps += 1;
        let path_only = call.path.split('?').next().unwrap_or_default().to_string();
        self.exercised.push(Exercised { method: call.method.clone(), path: path_only, status: reply.status });
        let block = self.render(label, &call, &reply, &body, &window);
        self.out.push_str(&block);
        reply
    }

    /// Learns the secrets an answer hands out, by the fields that carry them.
    fn learn(&mut self, reply: &Reply, body: &[u8]) {
        for value in reply.headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            if let Some(session) = value.strip_prefix("palisade_console=").and_then(|v| v.split(';').next())
                && !session.is_empty()
            {
                self.norm.secret("session", session);
            }
            // A form's outcome, signed with the run's key and the session's nonce.
            if let Some(flash) = value.strip_prefix("palisade_flash=").and_then(|v| v.split(';').next())
                && !flash.is_empty()
            {
                self.norm.secret("flash", flash);
            }
        }
        if let Some(json) = Json::parse(body) {
            self.learn_json(&json);
        }
        let text = String::from_utf8_lossy(body);
        for caps in self.csrf.captures_iter(&text) {
            self.norm.secret("csrf", &caps[1]);
        }
        for caps in self.new_key.captures_iter(&text) {
            let key = &caps[2];
            match &caps[1] {
                "api" => self.norm.key_with_prefix("api-key", key, &key[..12]),
                _ => self.norm.key_with_prefix("enroll-key", key, &key[..6]),
            }
        }
    }

    fn learn_json(&mut self, json: &Json) {
        if let (Some(key), Some(prefix)) = (json.get("key").and_then(Json::as_str), json.get("prefix").and_then(Json::as_str)) {
            let kind = if key.starts_with("pal_") { "api-key" } else { "enroll-key" };
            self.norm.key_with_prefix(kind, key, prefix);
        }
        if let (Some(token), Some(_)) = (json.get("token").and_then(Json::as_str), json.get("expire")) {
            self.norm.secret("jwt", token);
        }
        if let (Some(password), Some(_)) = (json.get("password").and_then(Json::as_str), json.get("machine_id")) {
            self.norm.secret("password", password);
        }
        for text in json.strings() {
            if let Some(token) = text.split("console/login/link?token=").nth(1) {
                self.norm.secret("login-link", token);
            }
            self.learn_link(text);
        }
    }

    /// Learns the signature of a presigned link. It is named after what it signs (kind, list,
    /// remediation, scope) rather than numbered: the same link signed in another second has
    /// another signature, and how many seconds a run takes must not renumber the recording.
    pub fn learn_link(&mut self, url: &str) {
        let Some((target, sig)) = url.split_once("/v1/links/").and_then(|(_, rest)| rest.split_once("&sig=")) else { return };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let param = |name: &str| query.split('&').find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')));
        let mut label = format!("<sig {path}");
        for name in ["remediation", "scope"] {
            if let Some(value) = param(name) {
                label.push_str(&format!(" {value}"));
            }
        }
        label.push('>');
        self.norm.named(sig, &label);
    }

    fn render(&self, label: &str, call: &Call, reply: &Reply, body: &[u8], window: &Window) -> String {
        let request_id = reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let generated = self.generated_request_id.is_match(&request_id);
        let sent_id = call.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("x-request-id"));
        assert!(generated || sent_id, "{}: x-request-id {request_id:?} is neither generated nor the one sent", reply.what);
        let scrub = |text: &str| if generated { text.replace(&request_id, "<request-id>") } else { text.to_string() };

        let mut out = String::new();
        let mut line = |text: &str| {
            out.push_str(text);
            out.push('\n');
        };
        line(&format!("=== {:03} {label}", self.steps));
        line(&format!("> {} {}", call.method, self.norm.text(&call.path, window)));
        if let Some(token) = &call.token {
            line(&format!("> authorization: Bearer {}", self.norm.text(token, window)));
        }
        for (name, value) in &call.headers {
            line(&format!("> {name}: {}", self.norm.header(name, value, window)));
        }
        if let Some(content_type) = call.content_type.as_deref().filter(|c| !c.is_empty()) {
            line(&format!("> content-type: {content_type}"));
        }
        match (&call.body_note, call.body.is_empty()) {
            (Some(note), _) => line(&format!("> ({note})")),
            (None, true) => {}
            (None, false) => {
                let text = String::from_utf8_lossy(&call.body);
                for body_line in self.norm.text(&text, window).lines() {
                    line(&format!("> {body_line}"));
                }
            }
        }
        line(&format!("< {}", reply.status));
        let mut names: Vec<&str> = reply.headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            if name == "content-length" || (call.shows == Shows::StatusAndContentType && name != "content-type") {
                continue;
            }
            for value in reply.headers.get_all(name) {
                let value = String::from_utf8_lossy(value.as_bytes());
                line(&format!("< {name}: {}", scrub(&self.norm.header(name, &value, window))));
            }
        }
        line("");
        let content_type = reply.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let shown = match call.shows {
            Shows::StatusAndContentType => "(body not recorded: it is process-global)".to_string(),
            Shows::Digest => digest(body),
            Shows::All if body.is_empty() => "(empty body)".to_string(),
            Shows::All => match std::str::from_utf8(body) {
                Err(_) => digest(body),
                Ok(text) if content_type.starts_with("application/json") => match Json::parse(body) {
                    Some(mut json) => {
                        self.norm.json(&mut json, window);
                        scrub(&json.pretty())
                    }
                    None => format!("(not JSON despite its content type)\n{}", scrub(&self.norm.text(text, window))),
                },
                // Broken between tags before normalising, so placeholders are not taken for tags.
                Ok(text) if content_type.starts_with("text/html") => scrub(&self.norm.html(&text.replace("><", ">\n<"), window)),
                Ok(text) => {
                    let text = scrub(&self.norm.text(text, window));
                    match text.strip_suffix('\n') {
                        Some(body) => format!("{body}\n(ends with a newline)"),
                        None => format!("{text}\n(no newline at the end)"),
                    }
                }
            },
        };
        out.push_str(&shown);
        out.push_str("\n\n");
        out
    }
}

/// The body as the client reads it: decoded when it came gzip- or zstd-encoded.
fn decoded(reply: &Reply) -> Vec<u8> {
    let encoding = reply.headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match encoding {
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&reply.body[..])
                .read_to_end(&mut out)
                .unwrap_or_else(|e| panic!("{}: body is not gzip: {e}", reply.what));
            out
        }
        "zstd" => zstd::stream::decode_all(&reply.body[..]).unwrap_or_else(|e| panic!("{}: body is not zstd: {e}", reply.what)),
        "" => reply.body.to_vec(),
        other => panic!("{}: unexpected content-encoding {other}", reply.what),
    }
}

fn digest(body: &[u8]) -> String {
    format!("({} bytes, sha256 {})", body.len(), hex::encode(Sha256::digest(body)))
}

/// Compares a recording with the committed one; on a difference, a readable report of the
/// first differing answers (at most three), as line diffs. Blocks are matched by content with
/// their step numbers ignored, so a step added or removed is reported once, not as a shift of
/// every later one.
pub fn compare(expected: &str, actual: &str) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let blocks = |text: &str| -> Vec<String> {
        let mut blocks: Vec<String> = Vec::new();
        for line in text.split_inclusive('\n') {
            match blocks.last_mut() {
                Some(block) if !line.starts_with("=== ") => block.push_str(line),
                _ => blocks.push(line.to_string()),
            }
        }
        blocks
    };
    // "=== 012 label" without its number.
    let unnumbered = |block: &str| block.get(8..).unwrap_or(block).to_string();
    let (old, new) = (blocks(expected), blocks(actual));
    let (old_keys, new_keys): (Vec<String>, Vec<String>) =
        (old.iter().map(|b| unnumbered(b)).collect(), new.iter().map(|b| unnumbered(b)).collect());
    // Runs of unmatched blocks: (recorded, this run).
    let mut hunks: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for edit in align(old.len(), new.len(), |i, j| old_keys[i] == new_keys[j]) {
        let (recorded, fresh) = match edit {
            Edit::Same(..) => {
                open = false;
                continue;
            }
            Edit::Removed(i) => (old[i].as_str(), ""),
            Edit::Added(j) => ("", new[j].as_str()),
        };
        if !open {
            hunks.push((String::new(), String::new()));
            open = true;
        }
        let hunk = hunks.last_mut().expect("a hunk was just opened");
        hunk.0.push_str(recorded);
        hunk.1.push_str(fresh);
    }
    let mut report = String::new();
    for (recorded, fresh) in hunks.iter().take(3) {
        report.push_str("--- recorded / +++ this run\n");
        report.push_str(&line_diff(recorded, fresh));
    }
    writeln!(report, "{} place(s) differ; the first {} shown.", hunks.len(), hunks.len().min(3)).expect("writing to a string");
    Err(report)
}

/// One step of an alignment of two sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    /// `a[i]` matches `b[j]`.
    Same(usize, usize),
    /// `a[i]` is not in `b`.
    Removed(usize),
    /// `b[j]` is not in `a`.
    Added(usize),
}

/// The longest-common-subsequence alignment of `a` (`n` items) and `b` (`m` items), removals
/// before additions.
fn align(n: usize, m: usize, same: impl Fn(usize, usize) -> bool) -> Vec<Edit> {
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if same(i, j) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut edits) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && same(i, j) {
            edits.push(Edit::Same(i, j));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            edits.push(Edit::Removed(i));
            i += 1;
        } else {
            edits.push(Edit::Added(j));
            j += 1;
        }
    }
    edits
}

/// A unified-style diff of two short texts.
fn line_diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut out = String::new();
    for edit in align(a.len(), b.len(), |i, j| a[i] == b[j]) {
        let line = match edit {
            Edit::Same(i, _) => format!("  {}", a[i]),
            Edit::Removed(i) => format!("- {}", a[i]),
            Edit::Added(j) => format!("+ {}", b[j]),
        };
        writeln!(out, "{line}").expect("writing to a string");
    }
    out
}

#[test]
fn differences_are_reported_block_by_block() {
    let old = "=== 001 a\n< 200 OK\nx\n\n=== 002 b\n< 200 OK\n";
    let new = "=== 001 a\n< 200 OK\ny\n\n=== 002 b\n< 200 OK\n";
    let report = compare(old, new).expect_err("they differ");
    assert!(report.contains("- x\n+ y\n"), "{report}");
    assert!(report.contains("1 place(s) differ"), "{report}");
    assert!(compare(old, old).is_ok());
    let inserted = "=== 001 a\n< 200 OK\nx\n\n=== 002 new\n< 201 Created\n\n=== 003 b\n< 200 OK\n";
    let report = compare(old, inserted).expect_err("a step was added");
    assert!(report.contains("1 place(s) differ") && report.contains("+ === 002 new"), "{report}");
}
