//! Fuzzes the agent's built-in log detectors with arbitrary log text (attackers write parts of
//! the lines the agent reads): feeding, matching and pruning must never panic.
#![no_main]

use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use palisade::detect::Detectors;
use time::{Duration, OffsetDateTime};

/// Compiled once (compiling the patterns takes far longer than one input); every input ends by
/// pruning far in the future, which forgets every bucket, so the next starts from nothing.
static DETECTORS: LazyLock<Mutex<Detectors>> = LazyLock::new(|| Mutex::new(Detectors::builtin()));

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let start = OffsetDateTime::from_unix_timestamp(1_764_000_000).expect("a fixed time");
    let mut detectors = DETECTORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut detections = Vec::new();
    detectors.feed_chunk_with(&text, |line| start + Duration::milliseconds(line as i64), &mut detections);
    for line in text.lines().take(64) {
        detectors.is_match(line);
        detectors.matches(line);
        detectors.feed(line, start + Duration::minutes(5));
    }
    detectors.stats();
    detectors.prune(start + Duration::days(1000));
});
