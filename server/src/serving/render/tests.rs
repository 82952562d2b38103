//! Each format rendered and parsed back.

use std::collections::BTreeSet;
use std::sync::Arc;

use ipnet::IpNet;
use time::macros::datetime;

use super::*;
use crate::serving::entry::{Entry, Meta, SharedEntry};

fn entry(value: &str, seq: i64) -> SharedEntry {
    let net: IpNet = value.parse().or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from)).expect("value");
    let meta = Meta {
        scope: if value.contains('/') { "range" } else { "ip" }.into(),
        scenario: "crowdsecurity/ssh-bf, \"quoted\"".into(),
        remediation: "ban".into(),
        rule: "sensor".into(),
    };
    let entry = Entry::new(net, Arc::new(meta), datetime!(2026-11-25 10:00 UTC), datetime!(2026-11-26 10:00 UTC), seq);
    assert_eq!(entry.value().to_string(), value, "test values are canonical");
    SharedEntry::new(entry)
}

fn sample() -> Vec<SharedEntry> {
    vec![entry("45.33.32.156", 1), entry("203.0.113.0/24", 2), entry("2001:db8::1", 3), entry("2001:db8:1::/48", 4)]
}

fn render(format: Format, family: Family, entries: &[SharedEntry]) -> String {
    render_with(format, family, Rules::Drop, entries)
}

fn render_with(format: Format, family: Family, rules: Rules, entries: &[SharedEntry]) -> String {
    let mut out = Vec::new();
    render_full("community", Options { format, aggregate: false, family, rules }, entries, &mut out).expect("render");
    String::from_utf8(out).expect("utf-8")
}

/// The text after `#   ` of a script's comment lines: the commands it tells to run.
fn commented_commands(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.strip_prefix("#   ")).collect()
}

fn values(entries: &[SharedEntry], family: Family) -> BTreeSet<String> {
    entries.iter().filter(|e| family.includes(&e.net)).map(|e| e.value().to_string()).collect()
}

fn nets(entries: &[SharedEntry], family: Family) -> BTreeSet<IpNet> {
    entries.iter().filter(|e| family.includes(&e.net)).map(|e| e.net).collect()
}

#[test]
fn plain_is_one_value_per_line_and_filters_families() {
    let entries = sample();
    for family in [Family::All, Family::V4, Family::V6] {
        let text = render(Format::Plain, family, &entries);
        let parsed: BTreeSet<String> = text.lines().map(str::to_string).collect();
        assert_eq!(parsed, values(&entries, family), "{family:?}");
    }
}

#[test]
fn json_parses_back_with_every_field() {
    let entries = sample();
    let text = render(Format::Json, Family::All, &entries);
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json array");
    assert_eq!(parsed.len(), 4);
    for (item, entry) in parsed.iter().zip(&entries) {
        assert_eq!(item["value"], entry.value().to_string());
        assert_eq!(item["scenario"], entry.scenario());
        assert_eq!(item["remediation"], "ban");
        assert_eq!(item["expires_at"], "2026-11-26T10:00:00Z");
        assert_eq!(item["seq"], entry.seq);
    }
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&render(Format::Json, Family::All, &[])).expect("empty"),
        Vec::<serde_json::Value>::new()
    );
}

/// A minimal RFC 4180 reader: enough to prove the quoting round-trips.
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("field").push(c),
        }
    }
    fields
}

#[test]
fn csv_has_a_header_and_quotes_what_needs_it() {
    let entries = sample();
    let text = render(Format::Csv, Family::All, &entries);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("value,scope,scenario,remediation,expires_at"));
    let rows: Vec<Vec<String>> = lines.map(parse_csv_line).collect();
    assert_eq!(rows.len(), 4);
    for (row, entry) in rows.iter().zip(&entries) {
        assert_eq!(row, &[&*entry.value().to_string(), entry.scope(), entry.scenario(), "ban", "2026-11-26T10:00:00Z"]);
    }
}

/// Elements of each set of an nft script, by set name.
fn parse_nft_sets(text: &str) -> std::collections::BTreeMap<String, BTreeSet<IpNet>> {
    let mut sets = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_elements = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("set ") {
            let name = rest.trim_end_matches(" {").to_string();
            sets.insert(name.clone(), BTreeSet::new());
            current = Some(name);
        } else if line.starts_with("elements = {") {
            in_elements = true;
        } else if line == "}" {
            if in_elements {
                in_elements = false;
            } else {
                current = None;
            }
        } else if in_elements && let Some(set) = current.as_ref().and_then(|n| sets.get_mut(n)) {
            set.insert(line.trim_end_matches(',').parse::<IpNet>().expect("nft element"));
        }
    }
    sets
}

#[test]
fn nftables_defines_one_interval_set_per_family() {
    let entries = sample();
    for rules in [Rules::Drop, Rules::None] {
        let text = render_with(Format::Nftables, Family::All, rules, &entries);
        let sets = parse_nft_sets(&text);
        assert_eq!(sets.get("v4"), Some(&nets(&entries, Family::V4)), "{rules:?}");
        assert_eq!(sets.get("v6"), Some(&nets(&entries, Family::V6)), "{rules:?}");
        let empty = render_with(Format::Nftables, Family::V4, rules, &entries);
        assert!(!empty.contains("elements = {\n\t\t}"), "an empty set has no elements clause: {empty}");
        assert_eq!(parse_nft_sets(&empty).get("v6"), Some(&BTreeSet::new()));
    }
}

#[test]
fn nftables_replaces_its_table_with_a_chain_dropping_both_sets_unless_rules_none() {
    let entries = sample();
    let text = render(Format::Nftables, Family::All, &entries);
    assert!(text.starts_with("table inet palisade_community\ndelete table inet palisade_community\n"), "{text}");
    let chain = text.split("\tchain input {\n").nth(1).expect("an input chain");
    let rules: Vec<&str> = chain.lines().map(str::trim).take_while(|l| *l != "}").collect();
    assert_eq!(
        rules,
        ["type filter hook input priority filter - 10; policy accept;", "ip saddr @v4 drop", "ip6 saddr @v6 drop"],
        "{text}"
    );
    assert_eq!(text.matches("chain ").count(), 1, "{text}");

    let sets_only = render_with(Format::Nftables, Family::All, Rules::None, &entries);
    assert!(!sets_only.contains("chain") && !sets_only.contains("hook") && !sets_only.contains("drop"), "{sets_only}");
    assert!(!sets_only.contains("delete table"), "keeps the operator's chains in the table: {sets_only}");
    let flushed: Vec<&str> = sets_only.lines().filter(|l| l.starts_with("flush set")).collect();
    assert_eq!(flushed, ["flush set inet palisade_community v4", "flush set inet palisade_community v6"]);
    let first_elements = sets_only.find("elements").expect("elements");
    assert!(sets_only.find("flush set").expect("flush") < first_elements, "flushed before refilled: {sets_only}");
}

/// The sets an `ipset restore` input leaves, by name (created, flushed, filled, swapped, destroyed).
fn run_ipset(text: &str) -> std::collections::BTreeMap<String, (String, BTreeSet<IpNet>)> {
    let mut sets: std::collections::BTreeMap<String, (String, BTreeSet<IpNet>)> = Default::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["create", name, "hash:net", "family", family, "hashsize", "65536", "maxelem", "4294967295", "-exist"] => {
                sets.entry(name.to_string()).or_insert_with(|| (family.to_string(), BTreeSet::new()));
            }
            ["flush", name] => sets.get_mut(*name).expect("flushed after created").1.clear(),
            ["add", name, value, "-exist"] => {
                sets.get_mut(*name).expect("filled after created").1.insert(value.parse().expect("ipset value"));
            }
            ["swap", a, b] => {
                let first = sets.get(*a).expect("swapped after created").1.clone();
                let second = std::mem::replace(&mut sets.get_mut(*b).expect("swapped after created").1, first);
                sets.get_mut(*a).expect("created").1 = second;
            }
            ["destroy", name] => assert!(sets.remove(*name).is_some(), "destroyed after created"),
            other => panic!("unexpected ipset line {other:?}"),
        }
        assert!(words.get(1).is_none_or(|name| name.len() <= 31), "ipset names are at most 31 bytes: {line}");
    }
    sets
}

#[test]
fn ipset_creates_both_sets_and_adds_each_prefix_to_its_family() {
    let entries = sample();
    let sets = run_ipset(&render(Format::Ipset, Family::All, &entries));
    let v4 = ("inet".to_string(), nets(&entries, Family::V4));
    let v6 = ("inet6".to_string(), nets(&entries, Family::V6));
    assert_eq!(sets, [("palisade-community-v4".to_string(), v4), ("palisade-community-v6".to_string(), v6)].into());
}

#[test]
fn ipset_create_lines_do_not_depend_on_the_list_so_a_newer_list_reloads() {
    let creates = |entries: &[SharedEntry]| -> Vec<String> {
        render(Format::Ipset, Family::All, entries).lines().filter(|l| l.starts_with("create")).map(str::to_string).collect()
    };
    let many: Vec<SharedEntry> =
        (0..70_000u32).map(|i| entry(&std::net::Ipv4Addr::from(0x2d00_0000 + i * 2).to_string(), i64::from(i))).collect();
    assert_eq!(creates(&many), creates(&sample()));
    assert_eq!(creates(&[]), creates(&sample()));
    let long = {
        let mut out = Vec::new();
        let options = Options { format: Format::Ipset, aggregate: false, family: Family::All, rules: Rules::None };
        render_full("a-very-long-list-name-indeed-it-is", options, &sample(), &mut out).expect("render");
        String::from_utf8(out).expect("utf-8")
    };
    assert_eq!(run_ipset(&long).keys().map(String::len).max(), Some(31), "{long}");
}

#[test]
fn ipset_names_the_idempotent_rule_for_each_family_unless_rules_none() {
    let entries = sample();
    let text = render(Format::Ipset, Family::All, &entries);
    assert_eq!(
        commented_commands(&text),
        [
            "iptables -C INPUT -m set --match-set palisade-community-v4 src -j DROP 2>/dev/null || iptables -I INPUT -m set --match-set palisade-community-v4 src -j DROP",
            "ip6tables -C INPUT -m set --match-set palisade-community-v6 src -j DROP 2>/dev/null || ip6tables -I INPUT -m set --match-set palisade-community-v6 src -j DROP",
        ]
    );
    let sets_only = render_with(Format::Ipset, Family::All, Rules::None, &entries);
    assert!(!sets_only.contains('#') && !sets_only.contains("DROP"), "{sets_only}");
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), sets_only.lines().collect::<Vec<_>>());
}

#[test]
fn iptables_renders_one_family_per_script() {
    let entries = sample();
    for (family, tool) in [(Family::V4, "iptables"), (Family::V6, "ip6tables")] {
        let text = render(Format::Iptables, family, &entries);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.first(), Some(&"*filter"));
        assert_eq!(lines.get(1), Some(&":PALISADE-COMMUNITY - [0:0]"));
        assert_eq!(lines.last(), Some(&"COMMIT"));
        let sources: BTreeSet<IpNet> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("-A PALISADE-COMMUNITY -s "))
            .map(|rest| rest.trim_end_matches(" -j DROP").parse().expect("source"))
            .collect();
        assert_eq!(sources, nets(&entries, family), "{family:?}");
        assert!(!lines.iter().any(|l| l.contains("INPUT")), "the script never touches INPUT itself: {text}");
        assert!(text.contains(&format!("`{tool}-restore --noflush`")), "{text}");
        assert_eq!(
            commented_commands(&text),
            [format!("{tool} -C INPUT -j PALISADE-COMMUNITY 2>/dev/null || {tool} -I INPUT -j PALISADE-COMMUNITY")]
        );
        let sets_only = render_with(Format::Iptables, family, Rules::None, &entries);
        assert_eq!(sets_only.lines().collect::<Vec<_>>(), lines, "rules=none: the chain without the loader's comment");
    }
    assert_eq!(render(Format::Iptables, Family::All, &entries), render(Format::Iptables, Family::V4, &entries));
}

#[test]
fn mikrotik_fills_one_address_list_per_family_and_drops_it_in_raw() {
    let entries = sample();
    for rules in [Rules::Drop, Rules::None] {
        let text = render_with(Format::Mikrotik, Family::All, rules, &entries);
        let mut section = "";
        let mut seen: std::collections::BTreeMap<&str, BTreeSet<IpNet>> = Default::default();
        let mut raw = Vec::new();
        for line in text.lines() {
            if line.starts_with('/') {
                section = line;
            } else if let Some(address) = line.strip_prefix("add list=palisade-community address=") {
                seen.entry(section).or_default().insert(address.parse().expect("address"));
            } else if line.starts_with(":if ") {
                raw.push(line);
            } else {
                assert_eq!(line, "remove [find list=palisade-community]");
            }
        }
        assert_eq!(seen.get("/ip firewall address-list"), Some(&nets(&entries, Family::V4)));
        assert_eq!(seen.get("/ipv6 firewall address-list"), Some(&nets(&entries, Family::V6)));
        let expected: Vec<String> = match rules {
            Rules::None => vec![],
            Rules::Drop => ["/ip", "/ipv6"]
                .iter()
                .map(|s| {
                    format!(
                        ":if ([:len [{s} firewall raw find comment=\"palisade-community\"]] = 0) do={{ {s} firewall raw add \
                         chain=prerouting src-address-list=palisade-community action=drop comment=\"palisade-community\" }}"
                    )
                })
                .collect(),
        };
        assert_eq!(raw, expected, "{rules:?}");
    }
    let v4 = render(Format::Mikrotik, Family::V4, &entries);
    assert!(!v4.contains("/ipv6"), "{v4}");
    assert!(v4.contains("/ip firewall raw find"), "{v4}");
}

#[test]
fn aggregation_merges_adjacent_and_covered_prefixes() {
    let entries = vec![
        entry("10.0.0.0", 1),
        entry("10.0.0.1", 2),
        entry("10.0.0.0/31", 3),
        entry("10.0.1.0/24", 4),
        entry("2001:db8::/33", 5),
        entry("2001:db8:8000::/33", 6),
    ];
    let merged = aggregate("community", &entries);
    let got: BTreeSet<String> = merged.iter().map(|e| e.value().to_string()).collect();
    assert_eq!(got, BTreeSet::from(["10.0.0.0/31".into(), "10.0.1.0/24".into(), "2001:db8::/32".into()]));
    assert!(merged.iter().all(|e| e.scope() == "range" && e.scenario() == "community" && e.seq == 6));
    let single = aggregate("community", &[entry("192.0.2.1", 1)]);
    assert_eq!(single[0].value().to_string(), "192.0.2.1");
    assert_eq!(single[0].scope(), "ip");
}

#[test]
fn deltas_parse_back_in_every_format_but_iptables() {
    let added = vec![entry("45.33.32.156", 7), entry("2001:db8::1", 8)];
    let removed = vec![entry("203.0.113.0/24", 9)];
    let options = |format| Options { format, aggregate: false, family: Family::All, rules: Rules::Drop };
    let text = |format| {
        let mut out = Vec::new();
        render_delta("community", options(format), 9, &added, &removed, &mut out).expect("delta");
        String::from_utf8(out).expect("utf-8")
    };
    assert_eq!(text(Format::Plain), "+45.33.32.156\n+2001:db8::1\n-203.0.113.0/24\n");
    let json: serde_json::Value = serde_json::from_str(&text(Format::Json)).expect("json");
    assert_eq!(json["seq"], 9);
    assert_eq!(json["removed"], serde_json::json!(["203.0.113.0/24"]));
    assert_eq!(json["added"][1]["value"], "2001:db8::1");
    let csv = text(Format::Csv);
    let ops: Vec<(String, String)> =
        csv.lines().skip(1).map(parse_csv_line).map(|row| (row[0].clone(), row[1].clone())).collect();
    assert_eq!(
        ops,
        [("add".into(), "45.33.32.156".into()), ("add".into(), "2001:db8::1".into()), ("remove".into(), "203.0.113.0/24".into())]
    );
    assert_eq!(
        text(Format::Nftables),
        "delete element inet palisade_community v4 { 203.0.113.0/24 }\nadd element inet palisade_community v4 { 45.33.32.156/32 }\nadd element inet palisade_community v6 { 2001:db8::1/128 }\n"
    );
    assert_eq!(
        text(Format::Ipset),
        "del palisade-community-v4 203.0.113.0/24 -exist\nadd palisade-community-v4 45.33.32.156/32 -exist\nadd palisade-community-v6 2001:db8::1/128 -exist\n"
    );
    assert!(text(Format::Mikrotik).contains("remove [find list=palisade-community address=203.0.113.0/24]"));
    let mut out = Vec::new();
    assert!(render_delta("community", options(Format::Iptables), 9, &added, &removed, &mut out).is_err());
}

#[test]
fn formats_and_families_parse_from_their_names_only() {
    for format in Format::ALL {
        assert_eq!(format.name().parse::<Format>(), Ok(format));
    }
    assert!("xml".parse::<Format>().is_err());
    assert!("PLAIN".parse::<Format>().is_err());
    assert_eq!("v6".parse::<Family>(), Ok(Family::V6));
    assert_eq!("none".parse::<Rules>(), Ok(Rules::None));
    assert_eq!("drop".parse::<Rules>(), Ok(Rules::Drop));
    assert!("nothing".parse::<Rules>().is_err_and(|e| e.contains("drop") && e.contains("none")));
    assert!("v5".parse::<Family>().is_err());
    assert_eq!(identifier("my list/é", 40), "my_list__");
}
