//! Signal validation: turns one untrusted JSON item of a `POST /signals` body into a
//! [`SignalReport`], or says precisely why it cannot be one. Items are judged one by one so a bad
//! item never costs the good ones in the same batch.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use palisade_api::capi::SignalItem;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::names::check_scenario;
use super::net::{canonical_net, parse_ip};
use super::special::{overlaps_special_purpose, special_purpose};
use super::text::{contains_nul, has_nul};

/// What a signal is about: one address or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A single address.
    Ip,
    /// A CIDR range.
    Range,
}

impl Scope {
    /// The lower-case form stored and shown (`ip`, `range`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::Range => "range",
        }
    }

    /// The scope of a network: one address for a host prefix, else a range.
    pub fn of(net: IpNet) -> Scope {
        if super::net::is_single_address(net) { Scope::Ip } else { Scope::Range }
    }

    /// Parses the stored form.
    pub fn from_stored(text: &str) -> Option<Scope> {
        match text {
            "ip" => Some(Scope::Ip),
            "range" => Some(Scope::Range),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits applied to every item.
#[derive(Debug, Clone, Copy)]
pub struct SignalRules {
    /// Server time the batch arrived.
    pub now: OffsetDateTime,
    /// Oldest accepted `stop_at`, relative to `now`.
    pub max_age: Duration,
    /// How far in the future `start_at`/`stop_at` may be (reporters' clocks drift).
    pub max_clock_skew: Duration,
    /// Shortest accepted IPv4 range prefix.
    pub min_v4_prefix: u8,
    /// Shortest accepted IPv6 range prefix.
    pub min_v6_prefix: u8,
}

/// A validated, normalised report of one attacker by one installation.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalReport {
    /// Ip or Range.
    pub scope: Scope,
    /// The attacker, canonical (IPv4-mapped IPv6 as IPv4, ranges truncated to their network).
    pub value: IpNet,
    /// Scenario (bucket) name.
    pub scenario: String,
    /// Hub hash of the scenario file (`""` for custom scenarios).
    pub scenario_hash: String,
    /// Hub version of the scenario.
    pub scenario_version: String,
    /// `certified`, `tainted`, `custom`, `manual`, or `""` when the client did not say.
    pub scenario_trust: String,
    /// Free text.
    pub message: String,
    /// The local agent name inside the reporting installation.
    pub agent: Option<String>,
    /// First event.
    pub start_at: OffsetDateTime,
    /// Last event.
    pub stop_at: OffsetDateTime,
    /// Alert UUID, when sent.
    pub alert_uuid: Option<String>,
    /// Every other field the client sent, kept verbatim as a JSON object (decisions, context,
    /// kind, the reporter's own GeoIP view, …).
    pub extra: String,
    /// Content hash identifying a redelivery of the same item by the same machine.
    pub dedup_key: String,
}

impl SignalReport {
    /// The attacker as stored: a bare address for Ip scope, CIDR for ranges.
    pub fn value_text(&self) -> String {
        match self.scope {
            Scope::Ip => self.value.addr().to_string(),
            Scope::Range => self.value.to_string(),
        }
    }
}

/// Why one item was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable snake_case code.
    pub code: &'static str,
    /// For a person.
    pub message: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection { code, message: message.into() }
}

const MAX_MESSAGE: usize = 8 * 1024;
const MAX_SHORT_FIELD: usize = 256;

/// Fields a report reads itself; every other field of an item is kept in `extra`.
const READ_FIELDS: [&str; 9] =
    ["machine_id", "message", "scenario", "scenario_hash", "scenario_version", "scenario_trust", "start_at", "stop_at", "uuid"];

/// Validates one item, given as its JSON text (an element of the pushed array, as the body held
/// it). The text is read twice without building a tree: once into the typed [`SignalItem`],
/// once as its top-level fields' raw texts, from which `extra` is written. A field named twice
/// is refused (parsers disagree about which one counts).
pub fn parse_item(raw: &str, rules: &SignalRules) -> Result<SignalReport, Rejection> {
    if !raw.trim_start().starts_with('{') {
        return Err(reject("invalid_item", "each signal must be a JSON object"));
    }
    let invalid = |e: serde_json::Error| reject("invalid_item", format!("not a valid signal: {}", message_of(&e)));
    let TopFields(mut fields) = serde_json::from_str(raw).map_err(invalid)?;
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = fields.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(reject("invalid_item", format!("field `{}` appears twice", pair[0].0)));
    }
    let mut extra = String::with_capacity(raw.len());
    extra.push('{');
    for (key, value) in &fields {
        if has_nul(key) {
            return Err(nul_text());
        }
        if READ_FIELDS.contains(&key.as_ref()) {
            // Decoded with the item below; only an escape can spell a NUL.
            if value.get().contains("\\u") {
                decoded(value.get())?;
            }
            continue;
        }
        if extra.len() > 1 {
            extra.push(',');
        }
        extra.push_str(&serde_json::to_string(key.as_ref()).map_err(invalid)?);
        extra.push(':');
        compact_into(&mut extra, value.get())?;
    }
    extra.push('}');
    let item = serde_json::from_str::<SignalItem>(raw).map_err(invalid)?;
    validate(item, extra, rules)
}

/// A decoding error without its position: a line and column inside one item would mislead a
/// client reading them as places in the body.
fn message_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

fn nul_text() -> Rejection {
    reject("invalid_text", "text fields may not contain NUL (\\u0000) characters")
}

/// An object's top-level fields as (key, raw value text), in the order sent.
struct TopFields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = TopFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Key(key)) = map.next_key()? {
                    fields.push((key, map.next_value()?));
                }
                Ok(TopFields(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A key, borrowed from the text unless it holds an escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyText;
        impl<'de> Visitor<'de> for KeyText {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyText)
    }
}

/// A value holding an escape, decoded: refused if it spells a NUL, or a lone surrogate (which
/// PostgreSQL's `jsonb` refuses too).
fn decoded(value: &str) -> Result<Value, Rejection> {
    let decoded: Value =
        serde_json::from_str(value).map_err(|e| reject("invalid_item", format!("not a valid signal: {}", message_of(&e))))?;
    if contains_nul(&decoded) {
        return Err(nul_text());
    }
    Ok(decoded)
}

/// How deeply a kept field may nest: what is stored must read back within `serde_json`'s
/// recursion limit (128), as it did when items were decoded into trees.
const MAX_NESTING: usize = 64;

/// Appends `value` (valid JSON text) to `out` without whitespace between tokens, as
/// `serde_json` writes it; refuses it nested deeper than [`MAX_NESTING`]. A value with a `\u`
/// escape is decoded and written again instead.
fn compact_into(out: &mut String, value: &str) -> Result<(), Rejection> {
    let start = out.len();
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut kept = 0;
    for (at, byte) in value.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(reject("invalid_item", format!("a field is nested deeper than {MAX_NESTING} levels")));
                }
            }
            b']' | b'}' => depth -= 1,
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&value[kept..at]);
                kept = at + 1;
            }
            _ => {}
        }
    }
    out.push_str(&value[kept..]);
    if value.contains("\\u") {
        out.truncate(start);
        out.push_str(&decoded(value)?.to_string());
    }
    Ok(())
}

fn validate(item: SignalItem, extra: String, rules: &SignalRules) -> Result<SignalReport, Rejection> {
    check_scenario(&item.scenario).map_err(|m| reject("invalid_scenario", m))?;
    for (name, value) in [
        ("scenario_hash", item.scenario_hash.as_str()),
        ("scenario_version", item.scenario_version.as_str()),
        ("scenario_trust", item.scenario_trust.as_deref().unwrap_or("")),
        ("machine_id", item.machine_id.as_deref().unwrap_or("")),
        ("uuid", item.uuid.as_deref().unwrap_or("")),
    ] {
        if value.len() > MAX_SHORT_FIELD {
            return Err(reject("field_too_long", format!("{name} is longer than {MAX_SHORT_FIELD} bytes")));
        }
    }
    if item.message.len() > MAX_MESSAGE {
        return Err(reject("field_too_long", format!("message is longer than {MAX_MESSAGE} bytes")));
    }

    let (scope, value) = parse_source(&item.source.scope, &item.source.value, rules)?;
    let start_at = parse_time("start_at", &item.start_at)?;
    let stop_at = parse_time("stop_at", &item.stop_at)?;
    if stop_at < start_at {
        return Err(reject("invalid_time", "stop_at is before start_at"));
    }
    if stop_at < rules.now - rules.max_age {
        return Err(reject("stale_signal", format!("stop_at is older than {} days", rules.max_age.whole_days())));
    }
    if start_at > rules.now + rules.max_clock_skew {
        return Err(reject("future_signal", "start_at is in the future (check the reporter's clock)"));
    }
    // An attack that has not ended yet cannot be reported: a stop_at far ahead would keep the
    // report among an address's recent ones (AbuseIPDB's check and blacklist count by it).
    if stop_at > rules.now + rules.max_clock_skew {
        return Err(reject("future_signal", "stop_at is in the future (check the reporter's clock)"));
    }

    let dedup_key = dedup_key(&item, scope, value, start_at);
    Ok(SignalReport {
        scope,
        value,
        scenario: item.scenario,
        scenario_hash: item.scenario_hash,
        scenario_version: item.scenario_version,
        scenario_trust: item.scenario_trust.unwrap_or_default(),
        message: item.message,
        agent: item.machine_id.filter(|m| !m.is_empty()),
        start_at,
        stop_at,
        alert_uuid: item.uuid.filter(|u| !u.is_empty()),
        extra,
        dedup_key,
    })
}

/// `extra` (a JSON object's text) bounded to `max_bytes`: unchanged when it fits; otherwise its
/// fields are kept smallest first while the object still fits, the others dropped, and
/// `"_dropped"` says how many were. A signal is never refused for what Palisade does not read.
pub fn bounded_extra(extra: String, max_bytes: usize) -> String {
    if extra.len() <= max_bytes {
        return extra;
    }
    let Ok(object) = serde_json::from_str::<Map<String, Value>>(&extra) else { return "{}".into() };
    // A field costs its quoted key, its value, a colon and a comma.
    let mut fields: Vec<(String, Value, usize)> = object
        .into_iter()
        .map(|(k, v)| {
            let size = Value::from(k.as_str()).to_string().len() + v.to_string().len() + 2;
            (k, v, size)
        })
        .collect();
    fields.sort_by_key(|(_, _, size)| *size);
    let total = fields.len();
    // Room for the braces and the `"_dropped":N` marker.
    let mut budget = max_bytes.saturating_sub(2 + 16);
    let mut kept = Map::new();
    for (key, value, size) in fields {
        if size > budget {
            break;
        }
        budget -= size;
        kept.insert(key, value);
    }
    let dropped = total - kept.len();
    if max_bytes >= 2 + 16 {
        kept.insert("_dropped".into(), Value::from(dropped));
    }
    Value::Object(kept).to_string()
}

/// Bytes a report takes in storage, as the per-day budget counts them: its text fields and
/// `extra` (addresses, times and keys are small and fixed-size, and not counted).
pub fn stored_size(report: &SignalReport) -> u64 {
    let text = report.scenario.len()
        + report.scenario_hash.len()
        + report.scenario_version.len()
        + report.scenario_trust.len()
        + report.message.len()
        + report.agent.as_ref().map_or(0, String::len)
        + report.alert_uuid.as_ref().map_or(0, String::len)
        + report.extra.len();
    text as u64
}

fn parse_source(scope: &str, value: &str, rules: &SignalRules) -> Result<(Scope, IpNet), Rejection> {
    match scope.to_ascii_lowercase().as_str() {
        "ip" => {
            let ip =
                parse_ip(value).ok_or_else(|| reject("invalid_ip", format!("source.value {value:?} is not an IP address")))?;
            if let Some(kind) = special_purpose(ip) {
                return Err(reject("reserved_address", format!("{ip} is in a special-purpose range ({kind})")));
            }
            Ok((Scope::Ip, IpNet::from(ip)))
        }
        "range" => {
            let net = parse_range(value)
                .ok_or_else(|| reject("invalid_range", format!("source.value {value:?} is not a CIDR range")))?;
            let min = match net.addr() {
                IpAddr::V4(_) => rules.min_v4_prefix,
                IpAddr::V6(_) => rules.min_v6_prefix,
            };
            if net.prefix_len() < min {
                return Err(reject("range_too_broad", format!("{net} is broader than /{min}")));
            }
            if let Some(kind) = overlaps_special_purpose(net) {
                return Err(reject("reserved_address", format!("{net} overlaps a special-purpose range ({kind})")));
            }
            Ok((Scope::Range, net))
        }
        other => Err(reject("unsupported_scope", format!("scope {other:?} is not supported (use Ip or Range)"))),
    }
}

/// Parses a CIDR, canonicalising IPv4-mapped IPv6 ranges and truncating host bits.
fn parse_range(value: &str) -> Option<IpNet> {
    value.trim().parse().ok().map(canonical_net)
}

fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, Rejection> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|e| reject("invalid_time", format!("{field} {text:?} is not an RFC 3339 time: {e}")))
}

fn dedup_key(item: &SignalItem, scope: Scope, value: IpNet, start_at: OffsetDateTime) -> String {
    let mut hash = Sha256::new();
    for part in [
        item.scenario.as_str(),
        scope.as_str(),
        &value.to_string(),
        item.start_at.trim(),
        item.stop_at.trim(),
        item.uuid.as_deref().unwrap_or(""),
        item.machine_id.as_deref().unwrap_or(""),
        item.message.as_str(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    time_ordered_key(start_at, hash)
}

/// A redelivery key: the start time in microseconds (16 hex digits, so text order is time
/// order) followed by 64 bits of `hash`, which covers everything that makes a signal distinct.
/// The time first keeps one machine's new keys together at the end of the `(machine, key)`
/// index that catches redeliveries: a commit then touches a few pages of it per machine
/// instead of one page per signal, which on SQLite is most of what a commit writes. Two
/// signals of one machine share a key only if they started in the same microsecond and their
/// hashes agree in 64 bits.
pub fn time_ordered_key(start_at: OffsetDateTime, hash: Sha256) -> String {
    let micros = u64::try_from(start_at.unix_timestamp_nanos() / 1_000).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&micros.to_be_bytes());
    bytes[8..].copy_from_slice(&hash.finalize()[..8]);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn extra_above_its_cap_keeps_the_small_fields_and_says_how_many_were_dropped() {
        let small = r#"{"source":{"scope":"ip","value":"45.33.32.156"},"kind":"crowdsec"}"#.to_string();
        assert_eq!(bounded_extra(small.clone(), 4096), small, "a real signal's extra is untouched");
        let huge = serde_json::json!({
            "source": {"scope": "ip", "value": "45.33.32.156"},
            "context": [{"key": "target_uri", "value": "x".repeat(100_000)}],
            "junk": "y".repeat(50_000),
        })
        .to_string();
        let bounded = bounded_extra(huge, 4096);
        assert!(bounded.len() <= 4096, "{}", bounded.len());
        let kept: Value = serde_json::from_str(&bounded).expect("still a JSON object");
        assert_eq!(kept["source"]["value"], "45.33.32.156");
        assert_eq!(kept["_dropped"], 2);
        assert!(bounded_extra("{}".into(), 0).len() <= 2);
    }

    fn rules() -> SignalRules {
        SignalRules {
            now: datetime!(2026-11-25 12:00 UTC),
            max_age: Duration::days(60),
            max_clock_skew: Duration::hours(24),
            min_v4_prefix: 16,
            min_v6_prefix: 32,
        }
    }

    fn item(scope: &str, value: &str) -> Value {
        json!({
            "machine_id": "agent", "message": "m", "scenario": "crowdsecurity/ssh-bf",
            "scenario_hash": "abc", "scenario_trust": "certified", "scenario_version": "0.1",
            "source": {"ip": value, "scope": scope, "value": value},
            "start_at": "2026-11-25T11:59:19.290101801Z", "stop_at": "2026-11-25T11:59:20.292055915Z"
        })
    }

    #[test]
    fn crowdsec_fixture_items_parse() {
        let body = include_str!("../../../tests/fixtures/crowdsec-1.4.6/signals.request.wave1.json");
        let items: Vec<Value> = serde_json::from_str(body).unwrap();
        let mut rules = rules();
        rules.now = datetime!(2026-11-25 12:01 UTC);
        for raw in items {
            // The fixture's attacker is in TEST-NET-3, which is special-purpose: rejected as such,
            // which proves every other field parsed.
            let err = parse_item(&raw.to_string(), &rules).unwrap_err();
            assert_eq!(err.code, "reserved_address");
        }
    }

    #[test]
    fn scope_is_case_insensitive_and_mapped_ipv6_is_normalised() {
        let report = parse_item(&item("IP", "::ffff:45.33.32.156").to_string(), &rules()).unwrap();
        assert_eq!(report.scope, Scope::Ip);
        assert_eq!(report.value_text(), "45.33.32.156");
        assert_eq!(report.agent.as_deref(), Some("agent"));
    }

    #[test]
    fn ranges_are_truncated_and_limited() {
        let report = parse_item(&item("range", "45.33.32.7/24").to_string(), &rules()).unwrap();
        assert_eq!(report.value_text(), "45.33.32.0/24");
        assert_eq!(parse_item(&item("Range", "45.0.0.0/8").to_string(), &rules()).unwrap_err().code, "range_too_broad");
        assert_eq!(parse_item(&item("Range", "10.0.0.0/16").to_string(), &rules()).unwrap_err().code, "reserved_address");
        assert_eq!(parse_item(&item("Range", "nope").to_string(), &rules()).unwrap_err().code, "invalid_range");
    }

    #[test]
    fn bad_items_get_precise_codes() {
        assert_eq!(parse_item(&item("ip", "999.1.1.1").to_string(), &rules()).unwrap_err().code, "invalid_ip");
        assert_eq!(parse_item(&item("ip", "127.0.0.1").to_string(), &rules()).unwrap_err().code, "reserved_address");
        assert_eq!(parse_item(&item("country", "FR").to_string(), &rules()).unwrap_err().code, "unsupported_scope");
        assert_eq!(parse_item(&json!(42).to_string(), &rules()).unwrap_err().code, "invalid_item");
        assert_eq!(parse_item(&json!({"scenario": 3}).to_string(), &rules()).unwrap_err().code, "invalid_item");
        let mut old = item("ip", "45.33.32.156");
        old["start_at"] = json!("2020-01-01T00:00:00Z");
        old["stop_at"] = json!("2020-01-01T00:00:01Z");
        assert_eq!(parse_item(&old.to_string(), &rules()).unwrap_err().code, "stale_signal");
        let mut future = item("ip", "45.33.32.156");
        future["start_at"] = json!("2027-01-01T00:00:00Z");
        future["stop_at"] = json!("2027-01-01T00:00:01Z");
        assert_eq!(parse_item(&future.to_string(), &rules()).unwrap_err().code, "future_signal");
        let mut ends_later = item("ip", "45.33.32.156");
        ends_later["stop_at"] = json!("2027-01-01T00:00:01Z");
        let refused = parse_item(&ends_later.to_string(), &rules()).unwrap_err();
        assert_eq!((refused.code, refused.message.contains("stop_at")), ("future_signal", true));
        let mut nul = item("ip", "45.33.32.156");
        nul["context"] = json!([{"key": "target_uri", "value": "/a\u{0}"}]);
        assert_eq!(parse_item(&nul.to_string(), &rules()).unwrap_err().code, "invalid_text");
        let mut bad_time = item("ip", "45.33.32.156");
        bad_time["stop_at"] = json!("yesterday");
        assert_eq!(parse_item(&bad_time.to_string(), &rules()).unwrap_err().code, "invalid_time");
    }

    #[test]
    fn extra_fields_are_kept_and_redelivery_has_the_same_key() {
        let mut raw = item("ip", "45.33.32.156");
        raw["decisions"] = json!([{"duration": "4h", "id": 0, "origin": "crowdsec", "scenario": "s", "scope": "Ip", "type": "ban", "value": "45.33.32.156"}]);
        raw["context"] = Value::Null;
        raw["kind"] = json!("crowdsec");
        let a = parse_item(&raw.to_string(), &rules()).unwrap();
        let b = parse_item(&raw.to_string(), &rules()).unwrap();
        assert_eq!(a.dedup_key, b.dedup_key);
        let extra: Value = serde_json::from_str(&a.extra).unwrap();
        assert_eq!(extra["kind"], "crowdsec");
        assert_eq!(extra["decisions"][0]["duration"], "4h");
        assert!(extra.get("scenario").is_none());
        let other = parse_item(&item("ip", "45.33.32.157").to_string(), &rules()).unwrap();
        assert_ne!(a.dedup_key, other.dedup_key);
    }

    #[test]
    fn extra_is_every_other_field_written_compact() {
        let mut raw = item("ip", "45.33.32.156");
        raw["decisions"] = json!([{"duration": "4h", "scope": "Ip", "type": "ban", "value": "45.33.32.156"}]);
        raw["context"] = json!([{"key": "target uri", "value": "/a b?<x>&y=\"z\" \\ \u{e9} \\u0000 \u{2028}"}]);
        raw["labels"] = json!({"quoted": "say \"hi\" \\", "after": [1, {"a b": " x "}]});
        raw["created_at"] = json!("2026-11-25 11:59:20 +0000 UTC");
        raw["alert_id"] = json!(12345678901234567_u64);
        let mut expected = raw.as_object().cloned().unwrap_or_default();
        for read in READ_FIELDS {
            expected.remove(read);
        }
        // As compact text, pretty-printed, and with `\u` escapes as Go writes `<` and `>`.
        let pretty = serde_json::to_string_pretty(&raw).unwrap();
        let escaped = raw.to_string().replace('<', "\\u003c").replace('>', "\\u003e");
        for text in [raw.to_string(), pretty, escaped] {
            // What writing the object without the read fields gives: the same bytes.
            let report = parse_item(&text, &rules()).unwrap();
            assert_eq!(report.extra, Value::Object(expected.clone()).to_string(), "{text}");
        }
    }

    #[test]
    fn hostile_items_are_refused_with_a_code_not_a_panic() {
        let code = |text: &str| parse_item(text, &rules()).map(|_| ()).unwrap_err().code;
        let valid = item("ip", "45.33.32.156").to_string();
        let twice = valid.replacen('{', r#"{"message":"first","#, 1);
        assert_eq!(code(&twice), "invalid_item");
        let twice_unknown = valid.replacen('{', r#"{"kind":"a","kind":"b","#, 1);
        assert_eq!(code(&twice_unknown), "invalid_item");
        let nul_message = valid.replacen(r#""message":"m""#, r#""message":"m\u0000""#, 1);
        assert_eq!(code(&nul_message), "invalid_text");
        let nul_nested_key = valid.replacen('{', r#"{"context":{"a\u0000":1},"#, 1);
        assert_eq!(code(&nul_nested_key), "invalid_text");
        let nul_key = valid.replacen('{', r#"{"k\u0000":1,"#, 1);
        assert_eq!(code(&nul_key), "invalid_text");
        for surrogate in [r#"{"kind":"\ud800","#, r#"{"machine_id":"\udc00x","#, r#"{"\ud800":1,"#] {
            let text = valid.replacen(r#""machine_id":"agent","#, "", 1).replacen('{', surrogate, 1);
            assert_eq!(code(&text), "invalid_item", "{text}");
        }
        let nested =
            |levels: usize| valid.replacen('{', &format!(r#"{{"labels":{}1{},"#, "[".repeat(levels), "]".repeat(levels)), 1);
        assert!(parse_item(&nested(MAX_NESTING), &rules()).is_ok());
        assert_eq!(code(&nested(MAX_NESTING + 1)), "invalid_item");
        assert_eq!(code(&nested(1_000_000)), "invalid_item");
        assert_eq!(code(&nested(1_000_000).replacen("1]", r#""\u0041"]"#, 1)), "invalid_item");
        for text in ["", "[]", "{", "{}", r#"{"scenario":1}"#, &format!("{valid} trailing"), &format!("{valid}}}")] {
            assert_eq!(code(text), "invalid_item", "{text}");
        }
    }

    #[test]
    fn redelivery_keys_sort_by_start_time() {
        let at = |start: &str| {
            let mut raw = item("ip", "45.33.32.156");
            raw["start_at"] = json!(start);
            raw["stop_at"] = json!("2026-11-25T11:59:59Z");
            parse_item(&raw.to_string(), &rules()).unwrap().dedup_key
        };
        let early = at("2026-11-25T11:00:00.000001Z");
        let late = at("2026-11-25T11:00:00.000002Z");
        assert_eq!(early.len(), 32);
        let micros = datetime!(2026-11-25 11:00:00.000001 UTC).unix_timestamp_nanos() / 1_000;
        assert_eq!(&early[..16], format!("{micros:016x}"), "{early}");
        assert!(early < late, "{early} sorts after {late}");
        assert!(at("1970-01-01T00:00:00Z").starts_with("0000000000000000"));
    }
}
