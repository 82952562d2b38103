//! Fuzzes the duration parse of detector specs (`"500ms"`, `"10s"`, `"1m"`, `"2h"`, seconds)
//! and the server's Go-style duration text for entry lifetimes. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::detect::parse_duration;
use palisade_server::domain::time::go_duration;
use palisade_server::serving::custom::check_duration;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_duration(text);
    }
    if let Some(bytes) = data.get(..8) {
        let secs = i64::from_le_bytes(bytes.try_into().expect("eight bytes"));
        go_duration(secs);
        let _ = check_duration(secs);
    }
});
