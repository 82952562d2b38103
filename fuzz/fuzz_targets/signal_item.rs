//! Fuzzes one pushed signal item (`/v2/signals`, `/v3/signals`): any text goes through
//! `parse_item` with the default ingest rules; a refusal is fine, a panic is not. An accepted
//! report's `extra` must be a JSON object, and survive the size accounting and its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_server::domain::signal::{SignalRules, bounded_extra, parse_item, stored_size};
use time::{Duration, OffsetDateTime};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let rules = SignalRules {
        now: OffsetDateTime::from_unix_timestamp(1_764_000_000).expect("a fixed time"),
        max_age: Duration::days(60),
        max_clock_skew: Duration::days(1),
        min_v4_prefix: 16,
        min_v6_prefix: 32,
    };
    if let Ok(report) = parse_item(raw, &rules) {
        let extra = serde_json::from_str::<serde_json::Value>(&report.extra);
        assert!(extra.is_ok_and(|extra| extra.is_object()), "extra is not a JSON object: {}", report.extra);
        stored_size(&report);
        let extra = report.extra.clone();
        let bounded = bounded_extra(extra, 64);
        assert!(serde_json::from_str::<serde_json::Value>(&bounded).is_ok(), "bounded extra is not JSON: {bounded}");
        assert!(bounded.len() <= 64, "bounded extra is {} bytes: {bounded}", bounded.len());
    }
});
