//! The native blocklist endpoints and the per-consumer community view, in process: full lists in
//! every format, deltas after a cursor, ETags, compression, refusals, caps and tailoring, and the
//! firewall formats checked by their real tools where this machine has them.

use crate::common;
use palisade_server::engine::Rule;

use std::collections::BTreeSet;
use std::io::Read;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use common::{TestApp, apps, apps_with, commit_lists, delisting, lines, listing, request};
use palisade_server::store::{ListOp, LoginRecord};
use time::OffsetDateTime;

const LISTED: [&str; 4] = ["45.33.32.156", "81.2.69.160", "185.220.101.0/24", "2a01:4f8:1::/48"];

async fn listed_app_set() -> Vec<TestApp> {
    let apps = apps().await;
    for app in &apps {
        commit_lists(app, LISTED.iter().map(|v| listing(v, "crowdsecurity/ssh-bf", Rule::Sensor)).collect()).await;
    }
    apps
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[tokio::test]
async fn full_list_is_served_as_plain_text_with_its_seq_and_etag() {
    for app in listed_app_set().await {
        let machine = app.machine("consumer").await;
        let reply = app.get("/v1/blocklists/community", Some(&machine.token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}: {}", app.label, reply.text());
        assert_eq!(lines(&reply.text()), set(&LISTED), "{}", app.label);
        assert_eq!(reply.headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        let seq: i64 = reply.headers["x-palisade-seq"].to_str().expect("seq").parse().expect("seq number");
        assert!(seq > 0);
        let etag = reply.headers[header::ETAG].to_str().expect("etag").to_string();

        let again = app
            .send(request(
                Method::GET,
                "/v1/blocklists/community",
                Some(&machine.token),
                &[("if-none-match", &etag)],
                Body::empty(),
            ))
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", app.label);
        assert!(again.body.is_empty());
        let cached = app.get("/v1/blocklists/community", Some(&machine.token)).await;
        assert_eq!(cached.body, reply.body, "the cached rendering is the same bytes");

        commit_lists(&app, vec![listing("185.220.100.77", "crowdsecurity/http-probing", Rule::Sensor)]).await;
        let changed = app
            .send(request(
                Method::GET,
                "/v1/blocklists/community",
                Some(&machine.token),
                &[("if-none-match", &etag)],
                Body::empty(),
            ))
            .await;
        assert_eq!(changed.status, StatusCode::OK, "a new seq is a new ETag");
        assert!(changed.text().contains("185.220.100.77"));

        let listing = app.get("/v1/blocklists", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(listing[0]["name"], "community");
        assert_eq!(listing[0]["entries"], 5);
    }
}

#[tokio::test]
async fn family_filter_and_aggregation_shape_the_list() {
    for app in apps().await {
        commit_lists(
            &app,
            ["37.120.0.0", "37.120.0.1", "37.120.1.0/24", "2a01:4f8::1"].iter().map(|v| listing(v, "s", Rule::Sensor)).collect(),
        )
        .await;
        let machine = app.machine("consumer").await;
        let v4 = app.get("/v1/blocklists/community?family=v4", Some(&machine.token)).await.text();
        assert_eq!(lines(&v4), set(&["37.120.0.0", "37.120.0.1", "37.120.1.0/24"]), "{}", app.label);
        let v6 = app.get("/v1/blocklists/community?family=v6", Some(&machine.token)).await.text();
        assert_eq!(lines(&v6), set(&["2a01:4f8::1"]));
        let merged = app.get("/v1/blocklists/community?aggregate=true&family=v4", Some(&machine.token)).await.text();
        assert_eq!(lines(&merged), set(&["37.120.0.0/31", "37.120.1.0/24"]));
        let json = app.get("/v1/blocklists/community?format=json", Some(&machine.token)).await;
        assert_eq!(json.headers[header::CONTENT_TYPE], "application/json");
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&json.body).expect("json array");
        assert_eq!(parsed.len(), 4);
        assert!(parsed.iter().all(|e| e["remediation"] == "ban" && e["expires_at"].is_string()));
    }
}

#[tokio::test]
async fn deltas_follow_a_cursor_without_gaps_or_repeats() {
    for app in listed_app_set().await {
        let machine = app.machine("consumer").await;
        let full = app.get("/v1/blocklists/community", Some(&machine.token)).await;
        let mut cursor: i64 = full.headers["x-palisade-seq"].to_str().expect("seq").parse().expect("seq");
        let mut mine = lines(&full.text());

        let rounds: Vec<Vec<ListOp>> = vec![
            vec![listing("91.240.118.1", "s", Rule::Sensor), delisting("45.33.32.156")],
            vec![
                listing("91.240.118.2", "s", Rule::Sensor),
                listing("91.240.118.3", "s", Rule::Sensor),
                delisting("91.240.118.2"),
            ],
            vec![],
            vec![delisting("2a01:4f8:1::/48"), listing("45.33.32.156", "s", Rule::Sensor)],
        ];
        for ops in rounds {
            commit_lists(&app, ops).await;
            let delta = app.get(&format!("/v1/blocklists/community?since={cursor}"), Some(&machine.token)).await;
            assert_eq!(delta.status, StatusCode::OK, "{}: {}", app.label, delta.text());
            for line in delta.text().lines() {
                match line.split_at(1) {
                    ("+", value) => assert!(mine.insert(value.to_string()), "{}: {value} added twice", app.label),
                    ("-", value) => {
                        mine.remove(value);
                    }
                    _ => panic!("unexpected delta line {line:?}"),
                }
            }
            cursor = delta.headers["x-palisade-seq"].to_str().expect("seq").parse().expect("seq");
            let truth = app.get("/v1/blocklists/community", Some(&machine.token)).await.text();
            assert_eq!(mine, lines(&truth), "{}: the replayed deltas match the full list", app.label);
        }
        let empty = app.get(&format!("/v1/blocklists/community?since={cursor}"), Some(&machine.token)).await;
        assert!(empty.body.is_empty(), "nothing changed after the newest cursor");
        let json = app.get("/v1/blocklists/community?since=0&format=json", Some(&machine.token)).await;
        assert_eq!(json.json()["seq"], cursor);
    }
}

#[tokio::test]
async fn a_long_poll_is_held_until_the_list_changes_and_answers_with_the_change() {
    for app in listed_app_set().await {
        let machine = app.machine("consumer").await;
        let full = app.get("/v1/blocklists/community", Some(&machine.token)).await;
        let cursor: i64 = full.headers["x-palisade-seq"].to_str().expect("seq").parse().expect("seq");
        let lists = app.state.distribution.lists.clone();
        let change = async {
            // Commit only once the request holds its long-poll: an answer without waiting would
            // be the empty delta of the cursor, never the entry committed here.
            for _ in 0..2000 {
                if lists.long_polls() > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert_eq!(lists.long_polls(), 1, "{}: the request is waiting", app.label);
            commit_lists(&app, vec![listing("91.240.118.7", "s", Rule::Sensor)]).await;
        };
        let held_path = format!("/v1/blocklists/community?since={cursor}&wait=20");
        let (held, ()) = tokio::join!(app.get(&held_path, Some(&machine.token)), change);
        assert_eq!(held.status, StatusCode::OK, "{}: {}", app.label, held.text());
        assert_eq!(held.text(), "+91.240.118.7\n", "{}: the held answer carries the change", app.label);
        let next: i64 = held.headers["x-palisade-seq"].to_str().expect("seq").parse().expect("seq");
        assert!(next > cursor, "{}: the cursor moved", app.label);
        assert_eq!(lists.long_polls(), 0, "{}: nothing is left waiting", app.label);

        // Shutting down lets a waiting reader go at once with what there is: nothing new.
        let stop = async {
            while lists.long_polls() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            lists.stop_waiting();
        };
        let released_path = format!("/v1/blocklists/community?since={next}&wait=25");
        let (released, ()) = tokio::join!(app.get(&released_path, Some(&machine.token)), stop);
        assert_eq!(released.status, StatusCode::OK, "{}", app.label);
        assert!(released.body.is_empty(), "{}: {}", app.label, released.text());
        assert_eq!(released.headers["x-palisade-seq"].to_str().expect("seq"), next.to_string(), "{}", app.label);
    }
}

#[tokio::test]
async fn a_cursor_older_than_the_retained_log_is_gone() {
    for app in apps_with(|config| config.distribution.retained_changes = 2).await {
        let machine = app.machine("consumer").await;
        commit_lists(&app, vec![listing("185.220.100.1", "s", Rule::Sensor)]).await;
        for i in 2..6 {
            commit_lists(&app, vec![listing(&format!("185.220.100.{i}"), "s", Rule::Sensor)]).await;
        }
        let body = app
            .get("/v1/blocklists/community?since=1", Some(&machine.token))
            .await
            .expect_error(StatusCode::GONE, "cursor_expired");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("download the full list")), "{}: {body}", app.label);
    }
}

#[tokio::test]
async fn invalid_parameters_are_refused_with_a_reason() {
    let app = common::sqlite_app().await;
    let machine = app.machine("consumer").await;
    for query in [
        "format=xml",
        "format=PLAIN",
        "family=v5",
        "since=-1",
        "since=abc",
        "aggregate=maybe",
        "since=0&format=iptables",
        "since=0&aggregate=true",
        "format=nftables&rules=accept",
        "format=nftables&rules=",
        "rules=NONE",
        "wait=5",
        "since=0&wait=-1",
        "since=0&wait=soon",
        "since=0&wait=1.5",
    ] {
        app.get(&format!("/v1/blocklists/community?{query}"), Some(&machine.token))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    let body = app
        .get("/v1/blocklists/community?format=nftables&rules=all", Some(&machine.token))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("drop") && m.contains("none")), "names the choices: {body}");
    app.get("/v1/blocklists/nonexistent", Some(&machine.token)).await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/v1/blocklists/community", None).await.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    app.get("/v1/blocklists", Some("not-a-token")).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn firewall_formats_drop_by_default_and_give_sets_only_with_rules_none() {
    for app in listed_app_set().await {
        let machine = app.machine("consumer").await;
        let get = async |query: &str| app.get(&format!("/v1/blocklists/community?{query}"), Some(&machine.token)).await;
        let drop = get("format=nftables").await;
        let sets = get("format=nftables&rules=none").await;
        assert!(drop.text().contains("hook input") && drop.text().contains("ip saddr @v4 drop"), "{}", drop.text());
        assert!(!sets.text().contains("hook") && sets.text().contains("flush set"), "{}", sets.text());
        assert_ne!(drop.headers[header::ETAG], sets.headers[header::ETAG], "{}: two renderings, two tags", app.label);
        assert_eq!(get("format=nftables&rules=drop").await.body, drop.body, "{}: drop is the default", app.label);
        let ipset = get("format=ipset").await.text();
        assert!(ipset.contains("--match-set palisade-community-v4 src -j DROP"), "{ipset}");
        assert!(!get("format=ipset&rules=none").await.text().contains('#'));
        let mikrotik = get("format=mikrotik").await.text();
        assert!(mikrotik.contains("action=drop"), "{mikrotik}");
        assert!(!get("format=mikrotik&rules=none").await.text().contains("action=drop"));
        // Formats without rules ignore it: the same rendering and tag.
        let (plain, plain_none) = (get("").await, get("rules=none").await);
        assert_eq!((plain.body, &plain.headers[header::ETAG]), (plain_none.body, &plain_none.headers[header::ETAG]));
    }
}

#[tokio::test]
async fn lists_are_compressed_with_gzip_or_zstd_on_request() {
    let app = common::sqlite_app().await;
    commit_lists(&app, (0..2000).map(|i| listing(&format!("37.{}.{}.1", i / 250, i % 250), "s", Rule::Sensor)).collect()).await;
    let machine = app.machine("consumer").await;
    let plain = app.get("/v1/blocklists/community", Some(&machine.token)).await;
    let gzip = app
        .send(request(
            Method::GET,
            "/v1/blocklists/community",
            Some(&machine.token),
            &[("accept-encoding", "gzip")],
            Body::empty(),
        ))
        .await;
    assert_eq!(gzip.headers[header::CONTENT_ENCODING], "gzip");
    assert!(gzip.body.len() < plain.body.len() / 2);
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzip.body[..]).read_to_end(&mut decoded).expect("gzip");
    assert_eq!(decoded, plain.body);
    let zstd = app
        .send(request(
            Method::GET,
            "/v1/blocklists/community",
            Some(&machine.token),
            &[("accept-encoding", "zstd")],
            Body::empty(),
        ))
        .await;
    assert_eq!(zstd.headers[header::CONTENT_ENCODING], "zstd");
    assert_eq!(&zstd.body[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
}

#[tokio::test]
async fn never_block_ranges_leave_the_native_list_at_the_next_refresh() {
    for app in listed_app_set().await {
        let machine = app.machine("consumer").await;
        let now = OffsetDateTime::now_utc();
        app.state.store.add_allowlist(&["81.2.69.0/24".into()], "custom", "test", now).await.expect("allowlist");
        app.state.store.add_canary("45.33.32.156", "", now).await.expect("canary");
        app.state.distribution.lists.refresh_all().await.expect("refresh");
        let text = app.get("/v1/blocklists/community", Some(&machine.token)).await.text();
        assert_eq!(lines(&text), set(&["185.220.101.0/24", "2a01:4f8:1::/48"]), "{}", app.label);
    }
}

async fn login_with_scenarios(app: &TestApp, machine: &common::TestMachine, scenarios: &[&str]) {
    let login = LoginRecord {
        scenarios: scenarios.iter().map(|s| s.to_string()).collect(),
        origin_prefix: "198.51.100.0/24".parse().expect("prefix"),
        user_agent: None,
        at: OffsetDateTime::now_utc(),
    };
    app.state.store.record_login(machine.key, &login).await.expect("login");
}

#[tokio::test]
async fn stream_view_is_capped_by_contribution_and_tailored_to_declared_scenarios() {
    let edit = |config: &mut palisade_server::config::Config| {
        config.distribution.contributor_cap = 4;
        config.distribution.non_contributor_cap = 2;
    };
    for app in apps_with(edit).await {
        let mut ops = Vec::new();
        for i in 0..6 {
            ops.push(listing(&format!("185.220.100.{i}"), "crowdsecurity/ssh-bf", Rule::Sensor));
        }
        ops.push(listing("91.240.118.9", "crowdsecurity/http-probing", Rule::Sensor));
        commit_lists(&app, ops).await;

        let lurker = app.machine("lurker").await;
        login_with_scenarios(&app, &lurker, &["crowdsecurity/http-probing"]).await;
        let view = app.get("/v2/decisions/stream?startup=true", Some(&lurker.token)).await.expect_ok(StatusCode::OK);
        let new = view["new"].as_array().expect("new");
        assert_eq!(new.len(), 2, "{}: a non-contributor gets the small view: {view}", app.label);
        assert_eq!(new[0]["value"], "91.240.118.9", "{}: its declared scenario comes first", app.label);

        let contributor = app.machine("contributor").await;
        let pushed = app
            .post(
                "/v2/signals",
                Some(&contributor.token),
                &serde_json::json!([common::signal("45.33.32.156", "crowdsecurity/ssh-bf")]),
            )
            .await;
        assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.text());
        let view = app.get("/v2/decisions/stream?startup=true", Some(&contributor.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(view["new"].as_array().map(Vec::len), Some(4), "{}: a contributor gets the larger view", app.label);
        for decision in view["new"].as_array().expect("new") {
            for field in ["duration", "origin", "scenario", "scope", "type", "value"] {
                assert!(decision[field].is_string(), "{field} missing in {decision}");
            }
            assert!(!decision["duration"].as_str().unwrap_or("d").contains('d'));
        }
    }
}

/// Runs `command` with `input` on stdin inside a fresh network namespace (so nothing touches this
/// machine's firewall); `None` when this machine cannot (not root, tool or `ip` missing).
fn run_in_namespace(tool: &str, args: &[&str], input: &[u8]) -> Option<std::process::Output> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let usable = |name: &str| {
        Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success())
            || Command::new(name).arg("-v").output().is_ok_and(|o| o.status.success())
    };
    if !usable(tool) || !Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return None;
    }
    let namespace = format!("palisade-test-{}-{tool}", std::process::id());
    if !Command::new("ip").args(["netns", "add", &namespace]).status().is_ok_and(|s| s.success()) {
        return None;
    }
    let mut child = Command::new("ip")
        .args(["netns", "exec", &namespace, tool])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().map(|mut stdin| stdin.write_all(input));
    let output = child.wait_with_output().ok();
    drop(Command::new("ip").args(["netns", "delete", &namespace]).status());
    output
}

fn skip_or_fail(what: &str) {
    if palisade_server::testing::in_ci() {
        panic!("{what} is required in CI (root, iproute2 and the tool)");
    }
    eprintln!("skipping the {what} check: needs root, iproute2 and the tool");
}

#[tokio::test]
async fn nftables_and_ipset_scripts_load_in_the_real_tools() {
    let app = common::sqlite_app().await;
    let mut ops: Vec<ListOp> = LISTED.iter().map(|v| listing(v, "s", Rule::Sensor)).collect();
    ops.push(listing("185.220.102.7", "s", Rule::Sensor));
    ops.push(listing("2a01:4f8::5", "s", Rule::Sensor));
    commit_lists(&app, ops).await;
    let machine = app.machine("consumer").await;
    let nft = app.get("/v1/blocklists/community?format=nftables", Some(&machine.token)).await;
    match run_in_namespace("nft", &["-f", "-"], &nft.body) {
        Some(output) => {
            assert!(output.status.success(), "nft refused:\n{}\n{}", String::from_utf8_lossy(&output.stderr), nft.text())
        }
        None => skip_or_fail("nft"),
    }
    let ipset = app.get("/v1/blocklists/community?format=ipset", Some(&machine.token)).await;
    match run_in_namespace("ipset", &["restore"], &ipset.body) {
        Some(output) => {
            assert!(output.status.success(), "ipset refused:\n{}\n{}", String::from_utf8_lossy(&output.stderr), ipset.text())
        }
        None => skip_or_fail("ipset"),
    }
    let iptables = app.get("/v1/blocklists/community?format=iptables", Some(&machine.token)).await;
    match run_in_namespace("iptables-restore", &["--test"], &iptables.body) {
        Some(output) => {
            assert!(
                output.status.success(),
                "iptables-restore refused:\n{}\n{}",
                String::from_utf8_lossy(&output.stderr),
                iptables.text()
            )
        }
        None => skip_or_fail("iptables-restore"),
    }
}

#[tokio::test]
async fn custom_lists_are_managed_served_and_streamed_to_subscribers_with_origin_lists() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let created = app
            .post(
                "/v1/admin/blocklists",
                Some(&admin),
                &serde_json::json!({"name": "partners", "description": "shared by partners"}),
            )
            .await
            .expect_ok(StatusCode::CREATED);
        assert_eq!(created["kind"], "block", "{}", app.label);
        app.post("/v1/admin/blocklists", Some(&admin), &serde_json::json!({"name": "partners"}))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        app.post("/v1/admin/blocklists", Some(&admin), &serde_json::json!({"name": "community"}))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

        let import = "value,remediation,duration_secs\n45.33.32.156\n81.2.69.0/24,captcha,3600\nnot-an-address\n";
        let imported = app
            .post_raw(
                "/v1/admin/blocklists/partners/import",
                Some(&admin),
                &[("content-type", "text/csv")],
                import.as_bytes().to_vec(),
            )
            .await
            .expect_ok(StatusCode::OK);
        assert_eq!(imported["added"], 2, "{}: {imported}", app.label);
        assert_eq!(imported["rejected"][0]["field"], "line 4");

        let machine = app.machine("subscriber").await;
        // Readable by subscribers only (the default visibility): 404 until subscribed.
        let native = app.get("/v1/blocklists/partners", Some(&machine.token)).await;
        native.expect_error(StatusCode::NOT_FOUND, "not_found");

        let path = "/v1/admin/blocklists/partners/subscribers/subscriber";
        let subscribed = app.send(request(Method::PUT, path, Some(&admin), &[], Body::empty())).await;
        assert_eq!(subscribed.status, StatusCode::NO_CONTENT, "{}", subscribed.text());
        let native = app.get("/v1/blocklists/partners", Some(&machine.token)).await;
        assert_eq!(lines(&native.text()), set(&["45.33.32.156", "81.2.69.0/24"]), "{}", app.label);
        let first = app.get("/v2/decisions/stream?startup=true", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        let from_list: Vec<&serde_json::Value> =
            first["new"].as_array().expect("new").iter().filter(|d| d["origin"] == "lists").collect();
        assert_eq!(from_list.len(), 2, "{}: {first}", app.label);
        assert!(from_list.iter().all(|d| d["scenario"] == "partners"));
        assert!(from_list.iter().any(|d| d["type"] == "captcha" && d["scope"] == "Range"));

        let edit = serde_json::json!({"remove": ["45.33.32.156"], "add": ["91.240.118.5", "bogus"]});
        let edited = app.post("/v1/admin/blocklists/partners/entries", Some(&admin), &edit).await.expect_ok(StatusCode::OK);
        assert_eq!((edited["added"].as_u64(), edited["removed"].as_u64()), (Some(1), Some(1)), "{edited}");
        let next = app.get("/v2/decisions/stream", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert_eq!(next["new"][0]["value"], "91.240.118.5", "{}: {next}", app.label);
        assert_eq!(next["new"][0]["origin"], "lists");
        assert_eq!(next["deleted"][0]["value"], "45.33.32.156");
        assert_eq!(next["deleted"][0]["origin"], "lists");

        let others = app.machine("not-subscribed").await;
        let view = app.get("/v2/decisions/stream?startup=true", Some(&others.token)).await.expect_ok(StatusCode::OK);
        assert!(!view.to_string().contains("\"lists\""), "{}: {view}", app.label);

        let deleted = app.send(request(Method::DELETE, "/v1/admin/blocklists/partners", Some(&admin), &[], Body::empty())).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        app.get("/v1/blocklists/partners", Some(&machine.token)).await.expect_error(StatusCode::NOT_FOUND, "not_found");
        let after = app.get("/v2/decisions/stream", Some(&machine.token)).await.expect_ok(StatusCode::OK);
        assert!(after["new"].as_array().is_some_and(Vec::is_empty), "{}: {after}", app.label);
    }
}

#[tokio::test]
async fn an_import_may_exceed_the_json_body_limit_up_to_its_own_and_is_refused_with_413_past_it() {
    use palisade_server::http::admin::blocklists::IMPORT_MAX_BYTES;
    for app in apps().await {
        let admin = app.admin_token().await;
        app.post("/v1/admin/blocklists", Some(&admin), &serde_json::json!({"name": "big"})).await.expect_ok(StatusCode::CREATED);
        // Twice the JSON body limit, mostly comments, so the request is large but its write small.
        let mut text: String = (0..1000).map(|i| format!("45.33.{}.{}\n", i / 250, i % 250 + 1)).collect();
        let comment = format!("# {}\n", "x".repeat(1000));
        while text.len() <= 2 * common::MAX_BODY_BYTES {
            text.push_str(&comment);
        }
        let imported = app
            .post_raw("/v1/admin/blocklists/big/import", Some(&admin), &[("content-type", "text/plain")], text.into_bytes())
            .await
            .expect_ok(StatusCode::OK);
        assert_eq!(
            (imported["added"].as_u64(), imported["rejected"].as_array().map(Vec::len)),
            (Some(1000), Some(0)),
            "{}",
            app.label
        );

        let too_large = vec![b'\n'; IMPORT_MAX_BYTES + 1];
        let refused =
            app.post_raw("/v1/admin/blocklists/big/import", Some(&admin), &[("content-type", "text/plain")], too_large).await;
        let error = refused.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
        assert!(error.to_string().contains(&IMPORT_MAX_BYTES.to_string()), "{}: {error}", app.label);
    }
}
