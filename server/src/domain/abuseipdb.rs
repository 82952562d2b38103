//! AbuseIPDB reports as Palisade signals, the pure part: the 23 AbuseIPDB categories and the
//! scenario each becomes, parsing `categories` and `timestamp` as AbuseIPDB accepts them,
//! bounding and scrubbing the comment, and building the [`SignalReport`] one report stores. No
//! I/O and no clock: the HTTP dialect (`http::abuseipdb`) authenticates, charges and stores.
//!
//! Which categories can be produced by forged source addresses is said here (`spoofable`) and
//! must agree with the engine's scenario table (`engine::scenarios::SHIPPED`, which lists the
//! spoofable `abuseipdb/…` scenarios; a test there checks both agree), so such reports never
//! list an address on their own nor move trust.

use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};

use super::signal::{Scope, SignalReport};

/// One AbuseIPDB category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category {
    /// AbuseIPDB's number.
    pub id: u8,
    /// AbuseIPDB's official name.
    pub name: &'static str,
    /// The scenario a report of it is stored under.
    pub scenario: &'static str,
    /// Whether packets with a forged source can make an honest reporter report it.
    pub spoofable: bool,
}

/// AbuseIPDB's categories 1–23, in order (`CATEGORIES[n - 1].id == n`).
pub const CATEGORIES: [Category; 23] = {
    const fn c(id: u8, name: &'static str, scenario: &'static str, spoofable: bool) -> Category {
        Category { id, name, scenario, spoofable }
    }
    [
        c(1, "DNS Compromise", "abuseipdb/dns-compromise", false),
        c(2, "DNS Poisoning", "abuseipdb/dns-poisoning", true),
        c(3, "Fraud Orders", "abuseipdb/fraud-orders", false),
        c(4, "DDoS Attack", "abuseipdb/ddos", true),
        c(5, "FTP Brute-Force", "abuseipdb/ftp-brute-force", false),
        c(6, "Ping of Death", "abuseipdb/ping-of-death", true),
        c(7, "Phishing", "abuseipdb/phishing", false),
        c(8, "Fraud VoIP", "abuseipdb/fraud-voip", true),
        c(9, "Open Proxy", "abuseipdb/open-proxy", false),
        c(10, "Web Spam", "abuseipdb/web-spam", false),
        c(11, "Email Spam", "abuseipdb/email-spam", false),
        c(12, "Blog Spam", "abuseipdb/blog-spam", false),
        c(13, "VPN IP", "abuseipdb/vpn-ip", false),
        c(14, "Port Scan", "abuseipdb/port-scan", true),
        c(15, "Hacking", "abuseipdb/hacking", false),
        c(16, "SQL Injection", "abuseipdb/sql-injection", false),
        c(17, "Spoofing", "abuseipdb/spoofing", true),
        c(18, "Brute-Force", "abuseipdb/brute-force", false),
        c(19, "Bad Web Bot", "abuseipdb/bad-web-bot", false),
        c(20, "Exploited Host", "abuseipdb/exploited-host", false),
        c(21, "Web App Attack", "abuseipdb/web-app-attack", false),
        c(22, "SSH", "abuseipdb/ssh", false),
        c(23, "IoT Targeted", "abuseipdb/iot-targeted", false),
    ]
};

/// Most categories one report may name (AbuseIPDB's own limit is 30 distinct values, and there
/// are only 23).
const MAX_CATEGORIES: usize = 30;

/// Longest comment stored, in bytes (AbuseIPDB keeps 1,024 characters).
pub const MAX_COMMENT: usize = 1024;

/// What replaces the reporter's own addresses in a comment.
pub const SCRUBBED: &str = "[reporter]";

/// The category numbered `id`.
pub fn category(id: u8) -> Option<&'static Category> {
    CATEGORIES.get(usize::from(id).checked_sub(1)?)
}

/// The categories of a report from AbuseIPDB's `categories` (`"18,22"`): each a number 1–23,
/// duplicates dropped, order kept; empty or unknown is an error for a person.
pub fn parse_categories(text: &str) -> Result<Vec<u8>, String> {
    let mut ids = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let id = part.parse::<u8>().ok().filter(|id| category(*id).is_some()).ok_or_else(|| {
            format!("The category {part:?} is not a valid AbuseIPDB category (1 to 23).", part = truncate(part, 16))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > MAX_CATEGORIES {
            return Err(format!("At most {MAX_CATEGORIES} categories per report."));
        }
    }
    if ids.is_empty() {
        return Err("The categories field is required: at least one category number (1 to 23).".into());
    }
    Ok(ids)
}

/// The scenario a report of `categories` (non-empty) is stored under: the first category that
/// needs a real exchange with the address, else the first. A report saying "SSH, Port Scan" is
/// evidence of an SSH exchange, which a forged source cannot hold.
pub fn scenario_of(categories: &[u8]) -> &'static str {
    let known = || categories.iter().filter_map(|id| category(*id));
    known().find(|c| !c.spoofable).or_else(|| known().next()).map_or(CATEGORIES[14].scenario, |c| c.scenario)
}

/// The categories a stored signal was reported with, read back from its `extra`.
pub fn categories_of(extra: &str) -> Vec<u8> {
    serde_json::from_str::<serde_json::Value>(extra)
        .ok()
        .and_then(|v| v.get(EXTRA_CATEGORIES).and_then(|c| serde_json::from_value::<Vec<u8>>(c.clone()).ok()))
        .unwrap_or_default()
        .into_iter()
        .filter(|id| category(*id).is_some())
        .collect()
}

/// The categories of a signal's scenario when it was not reported through AbuseIPDB's API but
/// its scenario is one of the table's.
pub fn categories_of_scenario(scenario: &str) -> Vec<u8> {
    CATEGORIES.iter().filter(|c| c.scenario == scenario).map(|c| c.id).collect()
}

/// The key under which a signal's `extra` keeps the report's category numbers.
const EXTRA_CATEGORIES: &str = "abuseipdb_categories";

/// Parses AbuseIPDB's optional `timestamp` (ISO 8601, e.g. `2026-11-25T11:59:20-04:00`).
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .map_err(|_| format!("The timestamp {:?} is not an ISO 8601 date and time with an offset.", truncate(text, 40)))
}

/// `comment` with every textual form of the reporter's own addresses replaced by
/// [`SCRUBBED`], then cut to [`MAX_COMMENT`] bytes on a character boundary.
pub fn scrub_comment(comment: &str, own: &[IpAddr]) -> String {
    let mut text = comment.to_string();
    for ip in own {
        let mut forms = vec![ip.to_string()];
        if let IpAddr::V4(v4) = ip {
            forms.push(format!("::ffff:{v4}"));
        }
        if let IpAddr::V6(v6) = ip {
            // The fully written-out form too (logs sometimes print it).
            let full = v6.segments().iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().join(":");
            forms.push(full);
        }
        // Longest first, so a form is never left half-replaced by a shorter one inside it.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        for form in forms {
            text = replace_ignoring_case(&text, &form);
        }
    }
    truncate(&text, MAX_COMMENT).to_string()
}

fn replace_ignoring_case(text: &str, needle: &str) -> String {
    if needle.is_empty() {
        return text.to_string();
    }
    let lower = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(&needle) {
        if at < rest {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(SCRUBBED);
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One validated AbuseIPDB report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The reported address (public, canonical).
    pub ip: IpAddr,
    /// Its categories, at least one.
    pub categories: Vec<u8>,
    /// The comment, scrubbed and bounded.
    pub comment: String,
    /// When the activity happened.
    pub at: OffsetDateTime,
}

impl Report {
    /// The signal this report is stored as, received at `received_at`.
    pub fn to_signal(&self, received_at: OffsetDateTime) -> SignalReport {
        let scenario = scenario_of(&self.categories).to_string();
        let extra = serde_json::json!({ EXTRA_CATEGORIES: self.categories }).to_string();
        let mut hash = Sha256::new();
        for part in [
            scenario.as_str(),
            &self.ip.to_string(),
            &self.at.unix_timestamp_nanos().to_string(),
            &received_at.unix_timestamp_nanos().to_string(),
            &extra,
            &self.comment,
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        SignalReport {
            scope: Scope::Ip,
            value: IpNet::from(self.ip),
            scenario,
            scenario_hash: String::new(),
            scenario_version: String::new(),
            scenario_trust: "custom".into(),
            message: self.comment.clone(),
            agent: None,
            start_at: self.at,
            stop_at: self.at,
            alert_uuid: None,
            extra,
            dedup_key: hex::encode(&hash.finalize()[..16]),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_table_is_numbered_in_order_and_names_distinct_scenarios() {
        for (index, c) in CATEGORIES.iter().enumerate() {
            assert_eq!(usize::from(c.id), index + 1);
            assert_eq!(category(c.id), Some(c));
            assert!(c.scenario.starts_with("abuseipdb/"));
            assert!(crate::domain::names::check_scenario(c.scenario).is_ok());
        }
        let mut scenarios: Vec<_> = CATEGORIES.iter().map(|c| c.scenario).collect();
        scenarios.dedup();
        assert_eq!(scenarios.len(), 23);
        assert_eq!(category(0), None);
        assert_eq!(category(24), None);
        assert!(category(14).is_some_and(|c| c.spoofable && c.name == "Port Scan"));
        assert!(category(22).is_some_and(|c| !c.spoofable && c.scenario == "abuseipdb/ssh"));
    }

    #[test]
    fn categories_parse_as_abuseipdb_takes_them() {
        assert_eq!(parse_categories("18,22"), Ok(vec![18, 22]));
        assert_eq!(parse_categories(" 22 , 18,22,"), Ok(vec![22, 18]));
        assert!(parse_categories("").is_err());
        assert!(parse_categories(" , ").is_err());
        assert!(parse_categories("0").is_err());
        assert!(parse_categories("24").is_err());
        assert!(parse_categories("ssh").is_err());
        assert!(parse_categories("-1").is_err());
        assert!(parse_categories(&"9".repeat(1000)).unwrap_err().len() < 100, "the echo is bounded");
    }

    #[test]
    fn a_report_is_stored_under_its_first_handshake_category() {
        assert_eq!(scenario_of(&[14, 22]), "abuseipdb/ssh");
        assert_eq!(scenario_of(&[22, 18]), "abuseipdb/ssh");
        assert_eq!(scenario_of(&[14]), "abuseipdb/port-scan");
        assert_eq!(scenario_of(&[4, 14]), "abuseipdb/ddos");
    }

    #[test]
    fn timestamps_take_rfc3339_and_iso8601_with_offsets() {
        assert_eq!(parse_timestamp("2026-11-25T11:59:20Z"), Ok(datetime!(2026-11-25 11:59:20 UTC)));
        assert_eq!(parse_timestamp("2026-11-25T07:59:20-04:00"), Ok(datetime!(2026-11-25 11:59:20 UTC)));
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2026-11-25").is_err());
    }

    #[test]
    fn comments_lose_the_reporters_addresses_and_are_bounded() {
        let own: Vec<IpAddr> = vec!["81.2.69.160".parse().unwrap(), "2a01:4f8::1".parse().unwrap()];
        let scrubbed = scrub_comment("sshd from 45.33.32.156 to 81.2.69.160 and [2A01:4F8::1]:22 ::ffff:81.2.69.160", &own);
        assert_eq!(scrubbed, "sshd from 45.33.32.156 to [reporter] and [[reporter]]:22 [reporter]");
        let long = "é".repeat(MAX_COMMENT);
        let bounded = scrub_comment(&long, &[]);
        assert!(bounded.len() <= MAX_COMMENT && bounded.len() > MAX_COMMENT - 2);
    }

    #[test]
    fn a_report_becomes_an_ip_signal_with_its_categories_in_extra() {
        let report = Report {
            ip: "45.33.32.156".parse().unwrap(),
            categories: vec![18, 22],
            comment: "Failed password".into(),
            at: datetime!(2026-11-25 11:00 UTC),
        };
        let signal = report.to_signal(datetime!(2026-11-25 12:00 UTC));
        assert_eq!((signal.scope, signal.value_text()), (Scope::Ip, "45.33.32.156".to_string()));
        assert_eq!(signal.scenario, "abuseipdb/brute-force");
        assert_eq!(signal.stop_at, datetime!(2026-11-25 11:00 UTC));
        assert_eq!(categories_of(&signal.extra), [18, 22]);
        assert_ne!(signal.dedup_key, report.to_signal(datetime!(2026-11-25 12:20 UTC)).dedup_key);
        assert_eq!(categories_of("{}"), Vec::<u8>::new());
        assert_eq!(categories_of_scenario("abuseipdb/ssh"), [22]);
    }
}
