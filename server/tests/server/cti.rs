//! In-process tests of the CTI surface beyond one lookup: every `SmokeItem` field decoded into a
//! mirror of CrowdSec's Go `cticlient` types (for an address with many scenarios and for a
//! minimal one), MITRE techniques and CVEs from the scenario table, the query search
//! `GET /v2/smoke/search` (each field, `AND`, refusals of unsupported and hostile input, paging)
//! and the `fire` feed (every listed address exactly once over the pages, tier caps), their key
//! and quota handling, and that never-block ranges and canaries stay out of both.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::http::StatusCode;
use palisade_server::config::Config;
use palisade_server::engine::Rule;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{Reply, TestApp, api_key_on_tier, apps_with, commit_consensus, commit_lists, get_with_key, listing, tier};

/// `CTILocationInfo`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "decoding checks the types; the values are read through the JSON")]
struct GoLocation {
    country: Option<String>,
    city: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// `CTIBehavior`, `CTIClassification`, `CTIReferences`.
#[derive(Debug, Deserialize)]
struct GoNamed {
    name: String,
    label: String,
    description: String,
}

/// `CTIHistory`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "decoding checks the types")]
struct GoHistory {
    first_seen: Option<String>,
    last_seen: Option<String>,
    full_age: i64,
    days_age: i64,
}

/// `CTIClassifications`.
#[derive(Debug, Deserialize)]
struct GoClassifications {
    false_positives: Vec<GoNamed>,
    classifications: Vec<GoNamed>,
}

/// `CTIAttackDetails`.
#[derive(Debug, Deserialize)]
struct GoAttackDetails {
    name: String,
    label: String,
    description: String,
    #[expect(dead_code, reason = "decoding checks the type")]
    references: Vec<String>,
}

/// `CTIScore`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "decoding checks the types")]
struct GoScore {
    aggressiveness: i64,
    threat: i64,
    trust: i64,
    anomaly: i64,
    total: i64,
}

/// `CTIScores`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "decoding checks the types")]
struct GoScores {
    overall: GoScore,
    last_day: GoScore,
    last_week: GoScore,
    last_month: GoScore,
}

/// `SmokeItem` of `pkg/cticlient/types.go`, field by field with the Go types (`int` is `i64`,
/// a pointer is an `Option`, a slice a `Vec`), plus the keys only the CTI docs list.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "decoding checks the types; some values are read through the JSON")]
struct GoSmokeItem {
    ip_range_score: i64,
    ip: String,
    reputation: String,
    background_noise: String,
    confidence: String,
    ip_range: Option<String>,
    as_name: Option<String>,
    as_num: Option<i64>,
    location: GoLocation,
    reverse_dns: Option<String>,
    behaviors: Vec<GoNamed>,
    history: GoHistory,
    classifications: GoClassifications,
    attack_details: Vec<GoAttackDetails>,
    target_countries: BTreeMap<String, i64>,
    background_noise_score: Option<i64>,
    scores: GoScores,
    references: Vec<GoNamed>,
    cves: Vec<String>,
    // In the CTI docs and real answers, not in the Go struct.
    ip_range_24: String,
    ip_range_24_reputation: String,
    ip_range_24_score: i64,
    proxy_or_vpn: bool,
    mitre_techniques: Vec<GoNamed>,
}

/// `FireItem`: the smoke fields plus `state` and `expiration`.
#[derive(Debug, Deserialize)]
struct GoFireItem {
    #[serde(flatten)]
    item: GoSmokeItem,
    state: String,
    expiration: String,
}

/// Every key of a `SmokeItem`: the Go struct decodes a missing key silently, so presence is
/// checked on its own.
const KEYS: &[&str] = &[
    "ip",
    "ip_range",
    "ip_range_score",
    "ip_range_24",
    "ip_range_24_reputation",
    "ip_range_24_score",
    "as_name",
    "as_num",
    "reverse_dns",
    "location",
    "reputation",
    "confidence",
    "background_noise",
    "background_noise_score",
    "proxy_or_vpn",
    "history",
    "behaviors",
    "classifications",
    "attack_details",
    "mitre_techniques",
    "cves",
    "references",
    "target_countries",
    "scores",
];

/// Decodes `body` as the Go client would, after checking every key is there.
#[track_caller]
fn go_item(body: &Value) -> GoSmokeItem {
    for &key in KEYS {
        assert!(body.get(key).is_some(), "key {key} missing in {body}");
    }
    let item: GoSmokeItem = serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!((0..=5).contains(&item.ip_range_24_score) && (0..=5).contains(&item.ip_range_score), "{body}");
    item
}

/// The enrichment files: AS and country of the looked-up ranges and of the reporters' networks
/// (10.0/16 and 10.1/16 in France, 10.2/16 in Germany).
fn write_enrichment(dir: &Path) {
    std::fs::write(
        dir.join("asn.csv"),
        "45.33.32.0,45.33.32.255,63949,Akamai Connected Cloud\n81.2.69.0,81.2.69.255,20712,Andrews & Arnold\n",
    )
    .expect("asn.csv");
    std::fs::write(
        dir.join("country.csv"),
        "10.0.0.0,10.1.255.255,FR\n10.2.0.0,10.2.255.255,DE\n45.33.32.0,45.33.32.255,US\n81.2.69.0,81.2.69.255,GB\n",
    )
    .expect("country.csv");
}

/// Apps whose tiers are `roomy` (everything, whole community list), `capped` (4 community
/// entries), `tiny` (3 lookups a day) and `nolist` (no community list), with enrichment files.
async fn cti_apps() -> (Vec<TestApp>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a directory");
    write_enrichment(dir.path());
    let path = dir.path().to_path_buf();
    let apps = apps_with(move |config: &mut Config| {
        config.enrich.asn_csv = Some(path.join("asn.csv"));
        config.enrich.country_csv = Some(path.join("country.csv"));
        config.tiers.insert("roomy".to_string(), tier(10_000, &[("community", 0)]));
        config.tiers.insert("capped".to_string(), tier(10_000, &[("community", 4)]));
        config.tiers.insert("tiny".to_string(), tier(3, &[("community", 0)]));
        config.tiers.insert("nolist".to_string(), tier(10_000, &[]));
    })
    .await;
    (apps, dir)
}

/// Stores the engine's evidence about `ip`: one reporter per `(scenario, origin /24)`, each in
/// its own AS, seen a minute ago, twice each.
async fn seed(app: &TestApp, ip: &str, reporters: &[(&str, &str)]) {
    let t = OffsetDateTime::now_utc().unix_timestamp();
    let reporters: Vec<Value> = reporters
        .iter()
        .enumerate()
        .map(|(i, (scenario, origin))| {
            json!({
                "machine": 2000 + i, "origin_prefix": origin, "origin_as": {"Asn": 64600 + i},
                "first_at": t - 3 * 86_400, "last_at": t - 60, "count": 2, "scenario": scenario, "factor": 1.0,
                "sensor_sighting": false, "voided": false, "credited": false,
            })
        })
        .collect();
    let state = json!({
        "reporters": reporters, "listing": null, "protected_until": 0, "first_seen": t - 3 * 86_400, "last_seen": t - 60,
    });
    let target = format!("{ip}/32").parse().expect("an address");
    commit_consensus(app, vec![(target, Some(serde_json::from_value(state).expect("an engine state")))], vec![]).await;
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[track_caller]
fn remaining(reply: &Reply) -> u64 {
    reply.headers["x-ratelimit-remaining"].to_str().expect("ascii").parse().expect("a number")
}

async fn search(app: &TestApp, key: &str, query: &str, extra: &str) -> Reply {
    get_with_key(app, &format!("/v2/smoke/search?query={}{extra}", encode(query)), key).await
}

/// The addresses of a search or fire page, in order.
fn ips(body: &Value) -> Vec<String> {
    body["items"].as_array().expect("items").iter().map(|i| i["ip"].as_str().expect("ip").to_string()).collect()
}

#[tokio::test]
async fn every_field_decodes_with_the_go_types_for_a_rich_and_a_minimal_address() {
    let (apps, _dir) = cti_apps().await;
    for app in apps {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = api_key_on_tier(&app, &admin, "acme", "roomy").await;
        seed(
            &app,
            "45.33.32.156",
            &[
                ("crowdsecurity/ssh-bf", "10.0.1.0/24"),
                ("crowdsecurity/apache_log4j2_cve-2021-44228", "10.1.1.0/24"),
                ("crowdsecurity/http-cve-2021-41773", "10.2.1.0/24"),
                ("someone/http-cve-2023-22515_confluence", "192.0.2.0/24"),
            ],
        )
        .await;
        let listed = ["45.33.32.156", "45.33.32.157", "45.33.32.158"].map(|ip| listing(ip, "crowdsecurity/ssh-bf", Rule::Crowd));
        commit_lists(&app, listed.to_vec()).await;
        let body = get_with_key(&app, "/v2/smoke/45.33.32.156", &key).await.expect_ok(StatusCode::OK);
        let rich = go_item(&body);
        assert_eq!((rich.reputation.as_str(), rich.ip.as_str()), ("malicious", "45.33.32.156"), "{label}");
        assert_eq!((rich.as_num, rich.as_name.as_deref()), (Some(63949), Some("Akamai Connected Cloud")), "{label}");
        assert_eq!(body["location"]["country"], "US", "{label}");
        let names = |named: &[GoNamed]| named.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&rich.behaviors), ["http:exploit", "ssh:bruteforce"], "{label}");
        assert_eq!(names(&rich.mitre_techniques), ["T1110", "T1190"], "{label}: {body}");
        assert_eq!(
            (rich.mitre_techniques[0].label.as_str(), rich.mitre_techniques[1].label.as_str()),
            ("Brute Force", "Exploit Public-Facing Application")
        );
        assert!(rich.mitre_techniques.iter().all(|t| !t.description.is_empty()));
        assert_eq!(rich.cves, ["CVE-2021-41773", "CVE-2021-44228", "CVE-2023-22515"], "{label}: from the table and the name");
        let details: BTreeMap<&str, (&str, &str)> =
            rich.attack_details.iter().map(|d| (d.name.as_str(), (d.label.as_str(), d.description.as_str()))).collect();
        assert_eq!(details["crowdsecurity/ssh-bf"], ("SSH Bruteforce", "Detect ssh bruteforce"));
        assert_eq!(details["crowdsecurity/apache_log4j2_cve-2021-44228"].0, "Log4j CVE-2021-44228");
        assert_eq!(details["someone/http-cve-2023-22515_confluence"].0, "http-cve-2023-22515_confluence", "unknown: its name");
        // Two reporters' networks in France, one in Germany, one in no known country; 2 reports each.
        assert_eq!(rich.target_countries, BTreeMap::from([("FR".into(), 70), ("DE".into(), 30)]), "{label}: in tens");
        assert_eq!((rich.ip_range_24.as_str(), rich.ip_range_24_score), ("45.33.32.0/24", 5), "{label}: three listed");
        assert_eq!(rich.ip_range_24_reputation, "malicious");
        assert!(rich.classifications.classifications.iter().any(|c| c.name == "community-blocklist"));
        assert!(rich.classifications.false_positives.is_empty() && rich.references[0].name == "list:community");
        assert!(!rich.proxy_or_vpn && rich.reverse_dns.is_none());
        assert!(!body.to_string().contains("2000"), "{label}: reporters are never named");

        // Minimal: one reporter, an unknown scenario, not listed, from a network of no known country.
        seed(&app, "81.2.69.77", &[("someone/mystery", "192.0.2.0/24")]).await;
        let body = get_with_key(&app, "/v2/smoke/81.2.69.77", &key).await.expect_ok(StatusCode::OK);
        let minimal = go_item(&body);
        assert_eq!(minimal.reputation, "suspicious", "{label}");
        assert_eq!(names(&minimal.behaviors), ["generic:unclassified"]);
        assert!(minimal.mitre_techniques.is_empty() && minimal.cves.is_empty() && minimal.target_countries.is_empty());
        assert_eq!(minimal.attack_details[0].description, "Reported for scenario someone/mystery");
        assert_eq!((minimal.ip_range_24.as_str(), minimal.ip_range_24_score), ("81.2.69.0/24", 2), "{label}");
        assert_eq!(minimal.ip_range_24_reputation, "suspicious");
        assert!(minimal.classifications.classifications.is_empty() && minimal.references.is_empty());
        assert_eq!(minimal.as_num, Some(20712));
    }
}

/// Three listed addresses: two in AS 63949 (US), one SSH and one Log4j; one in AS 20712 (GB).
async fn three_listed(app: &TestApp) {
    commit_lists(
        app,
        vec![
            listing("45.33.32.10", "crowdsecurity/ssh-bf", Rule::Crowd),
            listing("45.33.32.11", "crowdsecurity/apache_log4j2_cve-2021-44228", Rule::Crowd),
            listing("81.2.69.10", "crowdsecurity/http-probing", Rule::Crowd),
        ],
    )
    .await;
}

#[tokio::test]
async fn search_matches_each_supported_field_and_their_conjunction() {
    let (apps, _dir) = cti_apps().await;
    for app in apps {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = api_key_on_tier(&app, &admin, "acme", "roomy").await;
        three_listed(&app).await;
        for (query, expected) in [
            ("as_num:63949", vec!["45.33.32.10", "45.33.32.11"]),
            ("location.country:gb", vec!["81.2.69.10"]),
            ("reputation:malicious", vec!["45.33.32.10", "45.33.32.11", "81.2.69.10"]),
            ("reputation:suspicious", vec![]),
            ("behaviors.name:\"ssh:bruteforce\"", vec!["45.33.32.10"]),
            ("classifications.classifications.name:community-blocklist", vec!["45.33.32.10", "45.33.32.11", "81.2.69.10"]),
            ("cves:cve-2021-44228", vec!["45.33.32.11"]),
            ("attack_details.name:\"crowdsecurity/http-probing\"", vec!["81.2.69.10"]),
            ("as_num:63949 AND behaviors.name:\"http:exploit\"", vec!["45.33.32.11"]),
            ("as_num:63949 AND location.country:GB", vec![]),
        ] {
            let reply = search(&app, &key, query, "").await;
            let body = reply.expect_ok(StatusCode::OK);
            assert_eq!(ips(&body), expected, "{label}: {query}");
            assert_eq!((body["total"].as_u64(), body["not_found"].as_u64()), (Some(expected.len() as u64), Some(0)), "{label}");
            assert!(body["_links"]["self"]["href"].as_str().is_some_and(|h| h.starts_with("/v2/smoke/search?query=")));
            assert!(body["_links"].get("next").is_none(), "{label}: one page");
            for item in body["items"].as_array().expect("items") {
                go_item(item);
            }
        }
        let log4j = search(&app, &key, "cves:CVE-2021-44228", "").await.expect_ok(StatusCode::OK);
        let item = go_item(&log4j["items"][0]);
        assert_eq!((item.cves, item.mitre_techniques[0].name.as_str()), (vec!["CVE-2021-44228".to_string()], "T1190"));
        // One lookup per item, at least one per page.
        let before = remaining(&search(&app, &key, "reputation:suspicious", "").await);
        let three = search(&app, &key, "reputation:malicious", "").await;
        assert_eq!(before - remaining(&three), 3, "{label}: three items");
        let none = search(&app, &key, "reputation:suspicious", "").await;
        assert_eq!(remaining(&three) - remaining(&none), 1, "{label}: an empty page costs one");
    }
}

#[tokio::test]
async fn search_pages_through_every_match_once() {
    let (apps, _dir) = cti_apps().await;
    for app in apps {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = api_key_on_tier(&app, &admin, "acme", "roomy").await;
        let listed: Vec<String> = (1..=5).map(|i| format!("45.33.32.{i}")).collect();
        commit_lists(&app, listed.iter().map(|ip| listing(ip, "crowdsecurity/ssh-bf", Rule::Crowd)).collect()).await;
        let mut seen = Vec::new();
        for page in 1..=3 {
            let body = search(&app, &key, "reputation:malicious", &format!("&page={page}&limit=2&since=1d"))
                .await
                .expect_ok(StatusCode::OK);
            assert_eq!(body["total"], 5);
            seen.extend(ips(&body));
            assert_eq!(body["_links"].get("next").is_some(), page < 3, "{label} page {page}: {body}");
            assert_eq!(body["_links"].get("prev").is_some(), page > 1, "{label} page {page}");
            assert!(
                body["_links"]["self"]["href"].as_str().is_some_and(|h| h.ends_with(&format!("since=1d&page={page}&limit=2")))
            );
        }
        assert_eq!(seen, listed, "{label}: each once, in prefix order");
        let past = search(&app, &key, "reputation:malicious", "&page=4&limit=2").await.expect_ok(StatusCode::OK);
        assert!(ips(&past).is_empty() && past["_links"].get("next").is_none(), "{label}: {past}");
    }
}

#[tokio::test]
async fn unsupported_or_hostile_search_input_is_400_naming_what_is_supported_and_costs_nothing() {
    let (apps, _dir) = cti_apps().await;
    for app in apps {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = api_key_on_tier(&app, &admin, "acme", "roomy").await;
        three_listed(&app).await;
        let start = remaining(&search(&app, &key, "reputation:malicious", "").await);
        let long = format!("cves:{}", "A".repeat(5000));
        let many = vec!["reputation:malicious"; 40].join(" AND ");
        for query in [
            "ip:45.33.32.10",
            "as_num:1 OR as_num:2",
            "NOT reputation:malicious",
            "(reputation:malicious)",
            "behaviors.name:\"ssh:bruteforce",
            "\"\"\"",
            "cves:CVE-*",
            "as_num:[1 TO 2]",
            "location.country:日本",
            "ünïcödé:✓",
            "reputation:malicious AND",
            long.as_str(),
            many.as_str(),
            "as_num:99999999999",
        ] {
            let reply = search(&app, &key, query, "").await;
            let body = reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
            let message = body["message"].as_str().expect("a message");
            assert!(message.contains("supported: field:value terms joined by AND"), "{label} {query:?}: {message}");
            assert!(message.len() < 1000, "{label}: the message does not echo a long query back");
        }
        let missing = get_with_key(&app, "/v2/smoke/search", &key).await;
        assert!(
            missing.expect_error(StatusCode::BAD_REQUEST, "bad_request")["message"]
                .as_str()
                .is_some_and(|m| m.contains("query is required"))
        );
        for extra in [
            "&page=0",
            "&page=-1",
            "&page=x",
            "&limit=0",
            "&limit=101",
            "&limit=1.5",
            "&since=1w",
            "&since=%E2%9C%93",
            "&page=99999999999999999999999",
        ] {
            let reply = search(&app, &key, "reputation:malicious", extra).await;
            reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        }
        let after = search(&app, &key, "reputation:suspicious", "").await;
        assert_eq!(start - remaining(&after), 1, "{label}: only the last, valid search was charged");
    }
}

#[tokio::test]
async fn fire_pages_through_every_listed_address_exactly_once() {
    let (apps, _dir) = cti_apps().await;
    for app in apps {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = api_key_on_tier(&app, &admin, "acme", "roomy").await;
        let mut listed: Vec<String> = (1..=6).map(|i| format!("81.2.69.{i}")).collect();
        listed.push("45.33.40.0/24".into());
        listed.push("2a01:4f8:1:2::/64".into());
        let ops = listed.iter().map(|v| listing(v, "crowdsecurity/ssh-bf", Rule::Crowd)).collect();
        commit_lists(&app, ops).await;
        let mut seen = Vec::new();
        let mut spent = Vec::new();
        for page in 1..=3 {
            let reply = get_with_key(&app, &format!("/v2/fire?page={page}&limit=3"), &key).await;
            spent.push(remaining(&reply));
            let body = reply.expect_ok(StatusCode::OK);
            let links = &body["_links"];
            assert_eq!(links["first"]["href"], "/v2/fire?page=1&limit=3", "{label}");
            assert_eq!(links["self"]["href"], format!("/v2/fire?page={page}&limit=3"));
            assert_eq!(links.get("prev").is_some(), page > 1, "{label} page {page}");
            assert_eq!(links.get("next").is_some(), page < 3, "{label} page {page}: absent on the last");
            for item in body["items"].as_array().expect("items") {
                let fire: GoFireItem = serde_json::from_value(item.clone()).unwrap_or_else(|e| panic!("{e}: {item}"));
                go_item(item);
                assert_eq!(fire.state, "validated");
                let e = fire.expiration.as_bytes();
                assert!(
                    e.len() == 26 && e[10] == b'T' && e[19] == b'.' && !fire.expiration.contains(['Z', '+']),
                    "{label}: the Go layout without a zone: {}",
                    fire.expiration
                );
                assert_eq!(fire.item.reputation, "malicious");
                seen.push(fire.item.ip);
            }
        }
        assert_eq!(spent.windows(2).map(|w| w[0] - w[1]).collect::<Vec<_>>(), [1, 1], "{label}: one lookup per page");
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(seen.len(), listed.len(), "{label}: {seen:?}");
        assert_eq!(unique, listed.iter().collect(), "{label}: every listed address exactly once");
        let body = get_with_key(&app, "/v2/fire", &key).await.expect_ok(StatusCode::OK);
        assert_eq!(ips(&body).len(), 8, "{label}: default limit");
        assert!(body["_links"].get("next").is_none());
        let recent = get_with_key(&app, "/v2/fire?since=1h", &key).await.expect_ok(StatusCode::OK);
        assert_eq!(ips(&recent).len(), 8, "{label}: all listed just now");
        get_with_key(&app, "/v2/fire?limit=1000", &key).await.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        get_with_key(&app, "/v2/fire?page=0", &key).await.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        get_with_key(&app, "/v2/fire?since=forever", &key).await.expect_error(StatusCode::BAD_REQUEST, "bad_request");

        // A tier capped at 4 entries gets 4, over as many pages as it takes; no list, no feed.
        let capped = api_key_on_tier(&app, &admin, "small", "capped").await;
        let mut capped_seen = BTreeSet::new();
        for page in 1..=2 {
            let body = get_with_key(&app, &format!("/v2/fire?page={page}&limit=3"), &capped).await.expect_ok(StatusCode::OK);
            capped_seen.extend(ips(&body));
            assert_eq!(body["_links"].get("next").is_some(), page == 1, "{label}");
        }
        assert_eq!(capped_seen.len(), 4, "{label}: {capped_seen:?}");
        let without = api_key_on_tier(&app, &admin, "none", "nolist").await;
        let refused = get_with_key(&app, "/v2/fire", &without).await;
        refused.expect_error(StatusCode::FORBIDDEN, "forbidden");
    }
}

#[tokio::test]
async fn paged_routes_need_a_key_and_stop_at_the_quota() {
    let (apps, _dir) = cti_apps().await;
    for app in apps {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = api_key_on_tier(&app, &admin, "acme", "tiny").await;
        three_listed(&app).await;
        for path in ["/v2/fire", "/v2/smoke/search?query=reputation:malicious"] {
            assert_eq!(app.get(path, None).await.status, StatusCode::FORBIDDEN, "{label} {path}: no key");
            assert_eq!(get_with_key(&app, path, "pal_nonsense").await.status, StatusCode::FORBIDDEN, "{label}");
        }
        let first = get_with_key(&app, "/v2/fire", &key).await;
        assert_eq!((first.status, remaining(&first)), (StatusCode::OK, 2), "{label}");
        // Three items, two lookups left: the first is spent before searching, the page refused.
        let too_big = search(&app, &key, "reputation:malicious", "").await;
        assert_eq!(remaining(&too_big), 1, "{label}");
        too_big.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(too_big.headers.contains_key("retry-after"), "{label}");
        let one = search(&app, &key, "behaviors.name:\"ssh:bruteforce\"", "").await;
        assert_eq!((one.status, remaining(&one)), (StatusCode::OK, 0), "{label}");
        // Over quota, a search is refused before anything is searched.
        search(&app, &key, "reputation:malicious", "").await.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let over = get_with_key(&app, "/v2/fire", &key).await;
        over.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(over.headers.contains_key("retry-after") && over.headers.contains_key("x-ratelimit-reset"), "{label}");
    }
}

#[tokio::test]
async fn never_block_ranges_and_canaries_stay_out_of_search_and_fire() {
    let (apps, _dir) = cti_apps().await;
    for app in apps {
        let label = app.label;
        let admin = app.admin_token().await;
        let key = api_key_on_tier(&app, &admin, "acme", "roomy").await;
        let now = OffsetDateTime::now_utc();
        three_listed(&app).await;
        // Listed before the operator protected them: a CDN range and a canary.
        app.state.store.add_allowlist(&["45.33.32.11/32".to_string()], "cdn", "operator", now).await.expect("allowlist");
        app.state.store.add_canary("81.2.69.10", "honeypot", now).await.expect("a canary");
        app.state.distribution.lists.refresh_policy().await.expect("the policy");
        let fire = get_with_key(&app, "/v2/fire", &key).await.expect_ok(StatusCode::OK);
        assert_eq!(ips(&fire), ["45.33.32.10"], "{label}: {fire}");
        for query in ["reputation:malicious", "reputation:safe", "classifications.classifications.name:community-blocklist"] {
            let found = search(&app, &key, query, "").await.expect_ok(StatusCode::OK);
            assert!(ips(&found).iter().all(|ip| ip == "45.33.32.10"), "{label} {query}: {found}");
        }
        let cdn = get_with_key(&app, "/v2/smoke/45.33.32.11", &key).await.expect_ok(StatusCode::OK);
        assert_eq!(cdn["reputation"], "safe", "{label}: never reported malicious: {cdn}");
        assert_eq!(cdn["classifications"]["false_positives"][0]["name"], "cdn:allowlisted");
    }
}
