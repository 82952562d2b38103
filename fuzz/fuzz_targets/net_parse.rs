//! Fuzzes every address and CIDR parse (`domain::net`): what lookups, list edits, imports and
//! signals accept. None may panic, and a canonical form must read back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_server::domain::net::{
    canonical_value, display_target, list_target, origin_prefix, parse_address, parse_ip, parse_network, parse_target,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ip) = parse_ip(text) {
        origin_prefix(ip);
    }
    let _ = parse_address(text);
    if let Ok(net) = parse_network(text) {
        let shown = display_target(net);
        assert_eq!(parse_network(&shown), Ok(net), "{text:?} read as {net}, shown as {shown:?}");
    }
    if let Some(net) = parse_target(text) {
        display_target(net);
    }
    if let Some(net) = list_target(text) {
        assert_eq!(list_target(&display_target(net)), Some(net), "{text:?}");
    }
    if let Some((value, scope)) = canonical_value(text) {
        assert_eq!(canonical_value(&value), Some((value.clone(), scope)), "{text:?} became {value:?}");
    }
});
