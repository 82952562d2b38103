//! Unit tests of the detector set: built-in patterns on real lines, bucket wiring, validation.

use std::time::Duration;

use super::*;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-25 10:00:00 UTC);

fn at(secs: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(secs)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The detector names matching `line` with the address they blame.
fn matched(line: &str) -> Vec<(String, IpAddr)> {
    Detectors::builtin().matches(line).into_iter().map(|m| (m.detector, m.ip)).collect()
}

fn assert_ssh(line: &str, addr: &str) {
    let found = matched(line);
    assert_eq!(
        found,
        vec![("sshd-auth-failure".to_string(), ip(addr)), ("sshd-auth-failure-slow".to_string(), ip(addr))],
        "line: {line}"
    );
}

#[test]
fn sshd_failure_lines_blame_the_client_address() {
    let h = "Nov 25 10:00:01 web1 sshd[2312]:";
    assert_ssh(&format!("{h} Failed password for root from 203.0.113.7 port 51234 ssh2"), "203.0.113.7");
    assert_ssh(&format!("{h} Failed password for invalid user admin from 203.0.113.8 port 51234 ssh2"), "203.0.113.8");
    assert_ssh(&format!("{h} Failed keyboard-interactive/pam for invalid user ubnt from 203.0.113.9 port 1 ssh2"), "203.0.113.9");
    assert_ssh(&format!("{h} Invalid user oracle from 198.51.100.23 port 40112"), "198.51.100.23");
    assert_ssh(&format!("{h} Invalid user  from 198.51.100.24 port 40112"), "198.51.100.24");
    assert_ssh(&format!("{h} Connection closed by authenticating user root 203.0.113.10 port 33322 [preauth]"), "203.0.113.10");
    assert_ssh(&format!("{h} Disconnected from authenticating user root 203.0.113.11 port 33322 [preauth]"), "203.0.113.11");
    assert_ssh(&format!("{h} Did not receive identification string from 192.0.2.44 port 60000"), "192.0.2.44");
    assert_ssh(&format!("{h} Did not receive identification string from 192.0.2.45"), "192.0.2.45");
    assert_ssh(
        &format!("{h} error: maximum authentication attempts exceeded for root from 192.0.2.46 port 2222 ssh2 [preauth]"),
        "192.0.2.46",
    );
    assert_ssh(
        &format!(
            "{h} Unable to negotiate with 192.0.2.47 port 41000: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]"
        ),
        "192.0.2.47",
    );
    assert_ssh(&format!("{h} banner exchange: Connection from 192.0.2.48 port 55555: invalid format"), "192.0.2.48");
}

#[test]
fn sshd_ipv6_journal_and_sshd_session_formats_match() {
    assert_ssh(
        "Nov 25 10:00:01 web1 sshd[99]: Failed password for root from 2001:db8::dead:beef port 22 ssh2",
        "2001:db8::dead:beef",
    );
    assert_ssh(
        "2026-11-25T10:00:01.123456+00:00 web1 sshd-session[4242]: Failed password for invalid user test from 2001:db8:1::5 port 50000 ssh2",
        "2001:db8:1::5",
    );
    assert_ssh("Nov 25 10:00:01 web1 sshd[99]: Invalid user pi from ::ffff:203.0.113.12 port 22", "203.0.113.12");
}

#[test]
fn sshd_user_name_cannot_shift_the_blame_to_another_address() {
    assert_ssh("Nov 25 10:00:01 web1 sshd[1]: Invalid user x from 192.0.2.1 port 1 from 203.0.113.99 port 4000", "203.0.113.99");
}

#[test]
fn sshd_successes_and_noise_do_not_match() {
    let detectors = Detectors::builtin();
    for line in [
        "Nov 25 10:00:01 web1 sshd[2312]: Accepted password for alice from 203.0.113.7 port 51234 ssh2",
        "Nov 25 10:00:01 web1 sshd[2312]: Accepted publickey for alice from 2001:db8::1 port 22 ssh2: ED25519 SHA256:abc",
        "Nov 25 10:00:01 web1 sshd[2312]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
        "Nov 25 10:00:01 web1 sshd[2312]: Received disconnect from 203.0.113.7 port 51234:11: disconnected by user",
        "Nov 25 10:00:01 web1 sshd[2312]: Disconnected from user alice 203.0.113.7 port 51234",
        "Nov 25 10:00:01 web1 sshd[812]: Server listening on 0.0.0.0 port 22.",
        "Nov 25 10:00:01 web1 systemd[1]: Failed to start ssh.service - OpenBSD Secure Shell server.",
        "Nov 25 10:00:01 web1 CRON[123]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    ] {
        assert!(!detectors.is_match(line), "must not match: {line}");
        assert!(detectors.matches(line).is_empty(), "must not match: {line}");
    }
}

#[test]
fn loopback_and_unspecified_addresses_are_never_blamed() {
    let mut detectors = Detectors::builtin();
    for addr in ["127.0.0.1", "::1", "0.0.0.0"] {
        let line = format!("Nov 25 10:00:01 web1 sshd[1]: Failed password for root from {addr} port 22 ssh2");
        assert!(detectors.matches(&line).is_empty(), "{addr}");
        for i in 0..20 {
            assert!(detectors.feed(&line, at(i)).is_empty(), "{addr}");
        }
    }
    assert_eq!(detectors.stats().events, 0);
}

#[test]
fn ssh_burst_gives_one_fast_detection_with_a_message() {
    let mut detectors = Detectors::builtin();
    let line = "Nov 25 10:00:01 web1 sshd[1]: Failed password for root from 203.0.113.7 port 22 ssh2";
    let mut all = Vec::new();
    for i in 0..6 {
        all.extend(detectors.feed(line, at(i)));
    }
    assert_eq!(all.len(), 1, "{all:?}");
    let detection = &all[0];
    assert_eq!(detection.ip, ip("203.0.113.7"));
    assert_eq!(detection.scenario, "crowdsecurity/ssh-bf");
    assert_eq!(detection.detector, "sshd-auth-failure");
    assert_eq!((detection.first_seen, detection.last_seen), (at(0), at(5)));
    assert_eq!(detection.events, 6);
    assert_eq!(detection.message, "6 failed SSH authentications in 5 s");
}

#[test]
fn slow_ssh_bruteforce_is_caught_by_the_slow_detector_only() {
    let mut detectors = Detectors::builtin();
    let line = "Nov 25 10:00:01 web1 sshd[1]: Invalid user guest from 198.51.100.5 port 22";
    let mut all = Vec::new();
    // One attempt every 20 s: the 10 s bucket always leaks empty, the 60 s one fills up.
    for i in 0..30 {
        all.extend(detectors.feed(line, at(i * 20)));
    }
    assert!(!all.is_empty());
    assert!(all.iter().all(|d| d.scenario == "crowdsecurity/ssh-slow-bf"), "{all:?}");
}

#[test]
fn separate_addresses_have_separate_buckets() {
    let mut detectors = Detectors::builtin();
    for i in 0..50 {
        let line = format!("Nov 25 10:00:01 web1 sshd[1]: Failed password for root from 203.0.113.{i} port 22 ssh2");
        assert!(detectors.feed(&line, at(0)).is_empty());
    }
    assert_eq!(detectors.tracked(), 100);
    detectors.prune(at(3600));
    assert_eq!(detectors.tracked(), 0);
}

fn access(ip: &str, request: &str, status: u16) -> String {
    format!(r#"{ip} - - [25/Nov/2026:10:00:00 +0000] "{request}" {status} 153 "-" "Mozilla/5.0 (compatible; scanner)""#)
}

fn names(line: &str) -> Vec<String> {
    matched(line).into_iter().map(|(name, _)| name).collect()
}

#[test]
fn sensitive_http_paths_answered_4xx_match() {
    for request in [
        "GET /.env HTTP/1.1",
        "GET /.git/config HTTP/1.1",
        "GET /.aws/credentials HTTP/1.1",
        "POST /wp-login.php HTTP/1.1",
        "GET /phpMyAdmin/index.php HTTP/1.1",
        "GET /cgi-bin/luci/;stok=/locale HTTP/1.1",
        "GET /vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php HTTP/1.1",
        "GET /admin/.env HTTP/1.0",
    ] {
        let found = matched(&access("203.0.113.50", request, 404));
        assert!(found.contains(&("http-sensitive-files".into(), ip("203.0.113.50"))), "{request}: {found:?}");
        assert!(found.contains(&("http-probing".into(), ip("203.0.113.50"))), "{request}: {found:?}");
    }
    assert_eq!(names(&access("2001:db8::7", "GET /.env HTTP/1.1", 403)), ["http-probing", "http-sensitive-files"]);
    let vhost =
        r#"www.example.com:443 198.51.100.77 - - [25/Nov/2026:10:00:00 +0000] "GET /.env HTTP/1.1" 404 196 "-" "curl/8.0""#;
    assert_eq!(matched(vhost)[0].1, ip("198.51.100.77"));
}

#[test]
fn normal_http_traffic_does_not_match() {
    for (request, status) in [
        ("GET / HTTP/1.1", 200),
        ("GET /admin/login HTTP/1.1", 200),
        ("GET /wp-login.php HTTP/1.1", 200),
        ("GET /blog/post HTTP/1.1", 301),
        ("GET /favicon.ico HTTP/1.1", 404),
        ("GET /static/app.js?v=3 HTTP/1.1", 404),
        ("GET /img/Logo.PNG HTTP/1.1", 404),
        ("GET /robots.txt HTTP/1.1", 404),
        ("GET /.well-known/security.txt HTTP/1.1", 404),
        ("GET /apple-touch-icon-precomposed.png HTTP/1.1", 404),
        ("POST /api/login HTTP/1.1", 401),
    ] {
        let line = access("198.51.100.9", request, status);
        assert!(!Detectors::builtin().is_match(&line), "must not match: {line}");
        assert!(matched(&line).is_empty(), "must not match: {line}");
    }
    // A missing page is one 404 for http-probing, but not a sensitive file.
    assert_eq!(names(&access("198.51.100.9", "GET /blog/how-to-use-git HTTP/1.1", 404)), ["http-probing"]);
    // Behind a reverse proxy every client is 127.0.0.1.
    assert!(matched(&access("127.0.0.1", "GET /.env HTTP/1.1", 404)).is_empty());
}

#[test]
fn http_scan_burst_is_detected_as_probing() {
    let mut detectors = Detectors::builtin();
    let mut all = Vec::new();
    for i in 0..11 {
        all.extend(detectors.feed(&access("203.0.113.51", &format!("GET /page{i}.php HTTP/1.1"), 404), at(0)));
    }
    assert_eq!(all.iter().map(|d| d.scenario.as_str()).collect::<Vec<_>>(), ["crowdsecurity/http-probing"]);
}

#[test]
fn mail_authentication_failures_match() {
    let cases = [
        (
            "Nov 25 10:00:00 mail postfix/smtpd[1234]: warning: unknown[203.0.113.60]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
            "postfix-sasl-failure",
            "203.0.113.60",
        ),
        (
            "Nov 25 10:00:00 mail postfix/submission/smtpd[99]: warning: host.example.net[2001:db8::60]: SASL PLAIN authentication failed: authentication failure",
            "postfix-sasl-failure",
            "2001:db8::60",
        ),
        (
            "Nov 25 10:00:00 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob>, method=PLAIN, rip=203.0.113.70, lip=192.0.2.1, TLS, session=<abc>",
            "dovecot-auth-failure",
            "203.0.113.70",
        ),
        (
            "Nov 25 10:00:00 mail dovecot[812]: pop3-login: Aborted login (auth failed, 3 attempts in 15 secs): user=<admin>, method=LOGIN, rip=2001:db8::70, lip=2001:db8::1, session=<x>",
            "dovecot-auth-failure",
            "2001:db8::70",
        ),
        (
            "Nov 25 10:00:00 mail dovecot: imap-login: Login aborted: Connection closed (auth failed, 1 attempts in 2 secs) (auth_failed): user=<info@example.com>, method=PLAIN, rip=198.51.100.70, lip=192.0.2.1, TLS, session=<y>",
            "dovecot-auth-failure",
            "198.51.100.70",
        ),
    ];
    for (line, detector, addr) in cases {
        assert_eq!(matched(line), vec![(detector.to_string(), ip(addr))], "{line}");
    }
}

#[test]
fn mail_successes_and_noise_do_not_match() {
    for line in [
        "Nov 25 10:00:00 mail postfix/smtpd[1234]: connect from unknown[203.0.113.60]",
        "Nov 25 10:00:00 mail postfix/smtpd[1234]: 4F1A52C0D: client=mail.example.com[198.51.100.5], sasl_method=PLAIN, sasl_username=bob",
        "Nov 25 10:00:00 mail postfix/smtpd[1234]: warning: hostname bad.example does not resolve to address 203.0.113.60",
        "Nov 25 10:00:00 mail dovecot: imap-login: Login: user=<bob>, method=PLAIN, rip=198.51.100.71, lip=192.0.2.1, mpid=1234, TLS, session=<z>",
        "Nov 25 10:00:00 mail dovecot: imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=203.0.113.72, lip=192.0.2.1, session=<q>",
        "Nov 25 10:00:00 mail dovecot: imap(bob)<123><abc>: Disconnected: Logged out in=10 out=100",
    ] {
        assert!(matched(line).is_empty(), "must not match: {line}");
    }
}

fn custom(name: &str, pattern: &str) -> DetectorSpec {
    DetectorSpec {
        name: name.into(),
        scenario: "palisade/custom".into(),
        pattern: pattern.into(),
        capacity: 2,
        leak_speed: Duration::from_secs(10),
        blackout: Duration::from_secs(60),
        prefilter: Vec::new(),
        ignore: None,
        label: None,
    }
}

#[test]
fn custom_detectors_are_read_from_toml() {
    let text = r#"
        [[detector]]
        name = "gitea-login"
        scenario = "crowdsecurity/gitea-bf"
        pattern = 'Failed authentication attempt for .* from (?P<ip>[0-9a-fA-F:.]+):[0-9]+'
        capacity = 2
        leak_speed = "1m"
        blackout = 300
        prefilter = ["Failed authentication attempt"]
        label = "failed Gitea logins"

        [[detector]]
        name = "app-denied"
        scenario = "palisade/app-denied"
        pattern = 'denied ip=(?P<ip>\S+)'
        capacity = 1
        leak_speed = 0.5
    "#;
    let file: DetectorFile = toml::from_str(text).unwrap();
    assert_eq!(file.detector[0].leak_speed, Duration::from_secs(60));
    assert_eq!(file.detector[0].blackout, Duration::from_secs(300));
    assert_eq!(file.detector[1].leak_speed, Duration::from_millis(500));
    assert_eq!(file.detector[1].blackout, Duration::from_secs(60), "default blackout");
    let mut detectors = Detectors::new(file.detector).unwrap();
    let line = "2026/11/25 10:00:00 ...routers/web/auth/auth.go:200:SignInPost() [E] Failed authentication attempt for bob from 203.0.113.80:5555: user does not exist";
    assert!(detectors.feed(line, at(0)).is_empty());
    assert!(detectors.feed(line, at(1)).is_empty());
    let found = detectors.feed(line, at(2));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].message, "3 failed Gitea logins in 2 s");
    assert_eq!(detectors.feed("denied ip=2001:db8::80", at(0)), vec![]);
    let found = detectors.feed("denied ip=2001:db8::80", at(0));
    assert_eq!(found[0].message, "2 lines matching app-denied in 0 s");
    assert_eq!(found[0].ip, ip("2001:db8::80"));
}

#[test]
fn toml_with_unknown_fields_or_bad_durations_is_refused() {
    let typo = "[[detector]]\nname='a'\nscenario='s'\npattern='(?P<ip>x)'\ncapacity=1\nleak_speed='1s'\ncapcity=3\n";
    assert!(toml::from_str::<DetectorFile>(typo).unwrap_err().to_string().contains("capcity"));
    let bad = "[[detector]]\nname='a'\nscenario='s'\npattern='(?P<ip>x)'\ncapacity=1\nleak_speed='1 fortnight'\n";
    assert!(toml::from_str::<DetectorFile>(bad).unwrap_err().to_string().contains("unknown unit"));
    let negative = "[[detector]]\nname='a'\nscenario='s'\npattern='(?P<ip>x)'\ncapacity=1\nleak_speed=-1\n";
    assert!(toml::from_str::<DetectorFile>(negative).is_err());
}

#[test]
fn invalid_specs_are_refused_with_the_detector_name() {
    let check = |specs: Vec<DetectorSpec>, expected: &str| {
        let error = Detectors::new(specs).unwrap_err().to_string();
        assert!(error.contains(expected), "{error} should contain {expected}");
    };
    check(vec![custom("broken", "(?P<ip>[0-9.]+")], "detector `broken`: pattern does not compile");
    check(vec![custom("no-ip", "from ([0-9.]+)")], "detector `no-ip`: pattern has no capture named `ip`");
    check(vec![DetectorSpec { capacity: 0, ..custom("zero", "(?P<ip>x)") }], "detector `zero`: capacity must be at least 1");
    check(vec![DetectorSpec { leak_speed: Duration::ZERO, ..custom("still", "(?P<ip>x)") }], "detector `still`: leak_speed");
    check(vec![DetectorSpec { ignore: Some("(".into()), ..custom("ign", "(?P<ip>x)") }], "detector `ign`: ignore pattern");
    check(vec![DetectorSpec { prefilter: vec![String::new()], ..custom("pf", "(?P<ip>x)") }], "detector `pf`: prefilter");
    check(vec![DetectorSpec { scenario: " ".into(), ..custom("sc", "(?P<ip>x)") }], "detector `sc`: scenario is empty");
    check(vec![custom("", "(?P<ip>x)")], "empty name");
    check(vec![custom("twice", "(?P<ip>x)"), custom("twice", "(?P<ip>y)")], "detector `twice` is defined twice");
}

#[test]
fn unparsable_address_captures_are_skipped() {
    let mut detectors = Detectors::new(vec![custom("loose", r"from (?P<ip>\S+)")]).unwrap();
    for i in 0..10 {
        assert!(detectors.feed("from somewhere", at(i)).is_empty());
    }
    assert!(detectors.matches("from somewhere").is_empty());
}

#[test]
fn ignore_pattern_suppresses_matching_lines() {
    let spec = DetectorSpec { ignore: Some("healthcheck".into()), ..custom("x", r"from (?P<ip>\S+)") };
    let detectors = Detectors::new(vec![spec]).unwrap();
    assert!(detectors.is_match("bad from 192.0.2.1"));
    assert!(!detectors.is_match("healthcheck from 192.0.2.1"));
}

#[test]
fn prefilter_and_unfiltered_detectors_combine() {
    let filtered = DetectorSpec { prefilter: vec!["alpha".into()], ..custom("a", r"alpha (?P<ip>\S+)") };
    let detectors = Detectors::new(vec![filtered, custom("b", r"beta (?P<ip>\S+)")]).unwrap();
    assert_eq!(detectors.matches("alpha 192.0.2.1")[0].detector, "a");
    assert_eq!(detectors.matches("beta 192.0.2.2")[0].detector, "b");
    assert!(!detectors.is_match("gamma 192.0.2.3"));
}

#[test]
fn builtin_specs_round_trip_through_toml() {
    let file = DetectorFile { detector: builtin_specs() };
    let text = toml::to_string(&file).unwrap();
    assert_eq!(toml::from_str::<DetectorFile>(&text).unwrap(), file);
}

/// `text` fed line by line the way [`Detectors::feed_chunk`] documents it (split on `\n`, one
/// trailing `\r` removed), with `time_of(n)` for the `n`-th line.
fn feed_each_line(detectors: &mut Detectors, text: &str, time_of: impl Fn(usize) -> OffsetDateTime) -> Vec<Detection> {
    let mut out = Vec::new();
    for (n, line) in text.split_terminator('\n').enumerate() {
        out.extend(detectors.feed(line.strip_suffix('\r').unwrap_or(line), time_of(n)));
    }
    out
}

/// Feeds `text` to fresh detectors from `specs` line by line and as one chunk, both with one time
/// for all lines and with a time per line; asserts identical detections and counters, and
/// returns the detections and counters of the run with a time per line.
fn assert_chunk_same_as_lines(specs: &[DetectorSpec], text: &str) -> (Vec<Detection>, DetectStats) {
    let per_line = |n: usize| T0 + time::Duration::milliseconds(10 * n as i64);
    let mut lines = Detectors::new(specs.to_vec()).unwrap();
    let mut chunk = Detectors::new(specs.to_vec()).unwrap();
    let expected = feed_each_line(&mut lines, text, |_| T0);
    let mut got = Vec::new();
    chunk.feed_chunk(text, T0, &mut got);
    assert_eq!(got, expected, "one time for all lines, text: {text:?}");
    assert_eq!(chunk.stats(), lines.stats(), "one time for all lines, text: {text:?}");

    let mut lines = Detectors::new(specs.to_vec()).unwrap();
    let mut chunk = Detectors::new(specs.to_vec()).unwrap();
    let expected = feed_each_line(&mut lines, text, per_line);
    let mut got = Vec::new();
    chunk.feed_chunk_with(text, per_line, &mut got);
    assert_eq!(got, expected, "a time per line, text: {text:?}");
    assert_eq!(chunk.stats(), lines.stats(), "a time per line, text: {text:?}");
    (got, chunk.stats())
}

#[test]
fn feed_chunk_detects_exactly_what_feed_does_on_the_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    for name in ["sshd", "http", "mail"] {
        for kind in ["match", "nomatch"] {
            let file = std::fs::read_to_string(dir.join(format!("{name}.{kind}.log"))).unwrap();
            // Repeated, so that every address pours enough events to overflow its buckets.
            let text = file.repeat(8);
            let (detections, stats) = assert_chunk_same_as_lines(&builtin_specs(), &text);
            assert_eq!(stats.lines, text.lines().count() as u64, "{name}.{kind}");
            if kind == "match" {
                assert!(!detections.is_empty(), "{name}.{kind}: the repeated fixture must overflow some bucket");
            } else {
                assert_eq!(stats.events, 0, "{name}.{kind}");
            }
        }
    }
}

const SSH_HIT: &str = "Nov 25 10:00:01 web1 sshd[2312]: Did not receive identification string from 192.0.2.45";
const NOISE: &str = "Nov 25 10:00:02 web1 CRON[77]: pam_unix(cron:session): session closed for user root";

#[test]
fn feed_chunk_handles_missing_final_newline_crlf_and_empty_lines() {
    let specs = builtin_specs();
    let hits = |sep: &str| [SSH_HIT; 6].join(sep);
    // No trailing newline: the last line is still a line, and the detection it completes counts.
    let (detections, stats) = assert_chunk_same_as_lines(&specs, &format!("{NOISE}\n{}", hits("\n")));
    assert_eq!((detections.len(), stats.lines, stats.events), (1, 7, 6));
    // CRLF: the `\r` is removed, so the pattern's `$` after the address still matches.
    let (detections, stats) = assert_chunk_same_as_lines(&specs, &format!("{}\r\n{NOISE}\r\n", hits("\r\n")));
    assert_eq!((detections.len(), stats.lines, stats.events), (1, 7, 6));
    // Empty lines count as lines and match nothing.
    let (detections, stats) = assert_chunk_same_as_lines(&specs, &format!("\n\n{}\n\n\n", hits("\n\n")));
    assert_eq!((detections.len(), stats.lines, stats.events), (1, 15, 6));
    for text in ["", "\n", "\r\n", "\n\n", NOISE, "\r"] {
        let (detections, stats) = assert_chunk_same_as_lines(&specs, text);
        assert!(detections.is_empty(), "text: {text:?}");
        assert_eq!(stats.events, 0, "text: {text:?}");
        assert_eq!(stats.lines, text.split_terminator('\n').count() as u64, "text: {text:?}");
    }
}

#[test]
fn feed_chunk_finds_hits_on_the_first_and_last_line() {
    let spec = DetectorSpec { capacity: 1, prefilter: vec!["alpha".into()], ..custom("edge", r"alpha (?P<ip>\S+)") };
    for text in [
        format!("alpha 192.0.2.1\n{NOISE}\n{NOISE}\nalpha 192.0.2.1"),
        format!("alpha 192.0.2.1\n{NOISE}\nalpha 192.0.2.1\n"),
        "alpha 192.0.2.1\nalpha 192.0.2.1".to_string(),
    ] {
        let (detections, stats) = assert_chunk_same_as_lines(std::slice::from_ref(&spec), &text);
        assert_eq!(stats.events, 2, "text: {text:?}");
        assert_eq!(detections.len(), 1, "text: {text:?}");
        assert_eq!(detections[0].ip, ip("192.0.2.1"));
    }
}

#[test]
fn feed_chunk_passes_each_line_its_own_time() {
    let spec = DetectorSpec { capacity: 1, prefilter: vec!["alpha".into()], ..custom("timed", r"alpha (?P<ip>\S+)") };
    let mut detectors = Detectors::new(vec![spec]).unwrap();
    let mut out = Vec::new();
    let mut asked = Vec::new();
    let text = format!("{NOISE}\nalpha 192.0.2.1\n\n{NOISE}\nalpha 192.0.2.1\n");
    detectors.feed_chunk_with(
        &text,
        |n| {
            asked.push(n);
            at(n as i64)
        },
        &mut out,
    );
    assert_eq!(asked, vec![1, 4], "only lines the prefilter accepts are timed, numbered from 0");
    assert_eq!((out[0].first_seen, out[0].last_seen), (at(1), at(4)));
}

#[test]
fn feed_chunk_without_prefilters_checks_every_line() {
    // One detector without prefilter: no chunk scan, every line goes to the regexes.
    let specs = [
        custom("loose", r"beta (?P<ip>\S+)"),
        DetectorSpec { prefilter: vec!["alpha".into()], ..custom("a", r"alpha (?P<ip>\S+)") },
    ];
    let text = "beta 192.0.2.2\r\nalpha 192.0.2.3\nbeta 192.0.2.2\n\nalpha 192.0.2.3\nbeta 192.0.2.2\nalpha 192.0.2.3";
    let (detections, stats) = assert_chunk_same_as_lines(&specs, text);
    assert_eq!((stats.lines, stats.events), (7, 6));
    assert_eq!(detections.len(), 2);
}
