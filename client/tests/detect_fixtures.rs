//! The built-in detectors against the real-world line shapes in `tests/fixtures/logs/`: every
//! `*.match.log` line blames the address its `# expect` comment names, no `*.nomatch.log` line
//! matches anything.

use std::net::IpAddr;
use std::path::PathBuf;

use palisade::detect::Detectors;

fn fixtures(suffix: &str) -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {suffix} fixtures in {}", dir.display());
    files.into_iter().map(|path| (path.display().to_string(), std::fs::read_to_string(&path).unwrap())).collect()
}

#[test]
fn every_match_fixture_line_blames_the_expected_address() {
    let detectors = Detectors::builtin();
    let mut checked = 0;
    for (file, text) in fixtures(".match.log") {
        let mut expect: Option<(String, IpAddr)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# expect ") {
                let (detector, ip) = rest.split_once(' ').expect("# expect DETECTOR ADDRESS");
                expect = Some((detector.to_string(), ip.parse().expect("address in # expect")));
                continue;
            }
            let (detector, ip) = expect.take().unwrap_or_else(|| panic!("{file}: no # expect before {line}"));
            assert!(detectors.is_match(line), "{file}: is_match is false for {line}");
            let found = detectors.matches(line);
            assert!(
                found.iter().any(|m| m.detector == detector && m.ip == ip),
                "{file}: expected {detector} {ip} for {line}, got {found:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} lines checked");
}

#[test]
fn no_nomatch_fixture_line_matches() {
    let mut detectors = Detectors::builtin();
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let mut checked = 0;
    for (file, text) in fixtures(".nomatch.log") {
        for line in text.lines() {
            assert!(detectors.matches(line).is_empty(), "{file}: must not match: {line}");
            // Fed many times, these lines never pour an event.
            for _ in 0..20 {
                assert!(detectors.feed(line, now).is_empty(), "{file}: detection from {line}");
            }
            checked += 1;
        }
    }
    assert_eq!(detectors.stats().events, 0);
    assert!(checked >= 20, "only {checked} lines checked");
}
