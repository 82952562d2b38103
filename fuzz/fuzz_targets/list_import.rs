//! Fuzzes the list importers: operator-managed list imports (plain or CSV
//! `value[,remediation[,duration_secs]]`) and allowlist provider files (JSON, CSV, plain).
//! Bad lines are refused with a reason; nothing panics, and every accepted entry is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_server::domain::allowlist::parse_ranges;
use palisade_server::serving::custom::parse_import;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = OffsetDateTime::from_unix_timestamp(1_764_000_000).expect("a fixed time");
    let (ops, rejected) = parse_import("partners", text, now);
    assert!(ops.len() + rejected.len() <= text.lines().count(), "more results than lines");
    let _ = parse_ranges(text);
});
