//! Fuzzes the blocklist renderers: every format, full and delta, with aggregation and family
//! filters, over arbitrary networks and list names. Rendering may not panic, and the text
//! formats must come out as UTF-8.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use palisade_server::serving::entry::{Entry, Meta, SharedEntry};
use palisade_server::serving::render::{Family, Format, Options, Rules, aggregate, render_delta, render_full};
use time::OffsetDateTime;

/// One network from 18 bytes: family, prefix length, address.
fn network(chunk: &[u8]) -> Option<IpNet> {
    let (kind, len, addr) = (chunk[0], chunk[1], &chunk[2..18]);
    let ip = if kind % 2 == 0 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?))
    };
    let max = if ip.is_ipv4() { 33 } else { 129 };
    IpNet::new(ip, len % max).ok().map(|n| n.trunc())
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let name_len = usize::from(head >> 3).min(rest.len());
    let (name, rest) = rest.split_at(name_len);
    let list = String::from_utf8_lossy(name);
    let now = OffsetDateTime::from_unix_timestamp(1_764_000_000).expect("a fixed time");
    let meta =
        Arc::new(Meta { scope: "ip".into(), scenario: list.as_ref().into(), remediation: "ban".into(), rule: "fuzz".into() });
    let entries: Vec<SharedEntry> = rest
        .chunks_exact(18)
        .take(256)
        .enumerate()
        .filter_map(|(i, chunk)| network(chunk).map(|net| (i, net)))
        .map(|(i, net)| SharedEntry::new(Entry::new(net, meta.clone(), now, now + time::Duration::hours(1), i as i64)))
        .collect();
    let family = [Family::All, Family::V4, Family::V6][usize::from(head % 3)];
    let aggregated = aggregate(&list, &entries);
    for (format, rules) in Format::ALL.into_iter().flat_map(|f| [(f, Rules::Drop), (f, Rules::None)]) {
        for (aggregate, entries) in [(false, &entries), (true, &aggregated)] {
            let options = Options { format, aggregate, family, rules };
            let mut out = Vec::new();
            render_full(&list, options, entries, &mut out).expect("writing to memory");
            assert!(std::str::from_utf8(&out).is_ok(), "{} output is not UTF-8", format.name());
            if format != Format::Iptables {
                let half = entries.len() / 2;
                let mut out = Vec::new();
                render_delta(&list, options, 7, &entries[..half], &entries[half..], &mut out).expect("writing to memory");
                assert!(std::str::from_utf8(&out).is_ok(), "{} delta is not UTF-8", format.name());
            }
        }
    }
});
