//! AbuseIPDB reports as Palisade signals, the pure part: the 23 AbuseIPDB categories and the
//! scenario each becomes, parsing `categories` and `timestamp` as AbuseIPDB accepts them,
//! bounding and scrubbing the comment, validating one submitted report ([`validate`], shared by
//! `report` and `bulk-report`), reading a `bulk-report` CSV file ([`parse_bulk_csv`]), and
//! building the [`SignalReport`] one report stores. No I/O and no clock: the HTTP dialect
//! (`http::abuseipdb`) authenticates, charges and stores.
//!
//! Which categories can be produced by forged source addresses is said here (`spoofable`) and
//! must agree with the engine's scenario table (`engine::scenarios::SHIPPED`, which lists the
//! spoofable `abuseipdb/…` scenarios; a test there checks both agree), so such reports never
//! list an address on their own nor move trust.

use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Duration, OffsetDateTime};

use super::net::parse_ip;
use super::signal::{Scope, SignalReport, time_ordered_key};
use super::special::special_purpose;
use super::text::has_nul;

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

/// How far ahead of the server's clock a report's `timestamp` may be (clock drift).
pub const TIMESTAMP_SKEW: Duration = Duration::minutes(5);

/// Most reports one `bulk-report` file may hold (AbuseIPDB's limit).
pub const BULK_MAX_ROWS: usize = 10_000;

/// Largest `bulk-report` file, in bytes (AbuseIPDB's 2 MB).
pub const BULK_MAX_BYTES: usize = 2 * 1024 * 1024;

/// The header a `bulk-report` file starts with.
pub const BULK_HEADER: [&str; 4] = ["IP", "Categories", "ReportDate", "Comment"];

/// Which part of a submitted report a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The address.
    Ip,
    /// The categories.
    Categories,
    /// The comment.
    Comment,
    /// When the activity happened (`timestamp`, a CSV row's `ReportDate`).
    Timestamp,
}

/// One report as submitted, each part as text (`None`: absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Submitted<'a> {
    /// The address.
    pub ip: Option<&'a str>,
    /// Comma-separated category numbers.
    pub categories: Option<&'a str>,
    /// Free text, untrimmed.
    pub comment: &'a str,
    /// ISO 8601; absent or empty: now.
    pub timestamp: Option<&'a str>,
}

/// What a submitted report is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The server's clock.
    pub now: OffsetDateTime,
    /// Signal retention: an older activity time is refused.
    pub retention: Duration,
    /// The reporting client's own addresses, scrubbed from the comment.
    pub own: &'a [IpAddr],
}

/// A submitted report validated as AbuseIPDB validates it: a public address, one or more known
/// categories, a comment without NUL, an activity time at most [`TIMESTAMP_SKEW`] ahead and not
/// older than retention. The refusal names the part at fault, with a sentence for a person.
pub fn validate(submitted: &Submitted<'_>, rules: &Rules<'_>) -> Result<Report, (Field, String)> {
    let text = submitted.ip.map(str::trim).filter(|t| !t.is_empty()).ok_or((Field::Ip, "The ip field is required.".into()))?;
    let ip = parse_ip(text)
        .ok_or_else(|| (Field::Ip, format!("The ip {:?} must be a valid IPv4 or IPv6 address.", truncate(text, 64))))?;
    if let Some(kind) = special_purpose(ip) {
        return Err((Field::Ip, format!("You can only report public IP addresses: {ip} is {kind}.")));
    }
    let categories = parse_categories(submitted.categories.unwrap_or("")).map_err(|m| (Field::Categories, m))?;
    if has_nul(submitted.comment) {
        return Err((Field::Comment, "The comment may not contain NUL characters.".into()));
    }
    let at = match submitted.timestamp.map(str::trim).filter(|t| !t.is_empty()) {
        None => rules.now,
        Some(text) => {
            let at = parse_timestamp(text).map_err(|m| (Field::Timestamp, m))?;
            if at > rules.now + TIMESTAMP_SKEW {
                return Err((Field::Timestamp, "The timestamp may not be in the future.".into()));
            }
            if at < rules.now - rules.retention {
                let days = rules.retention.whole_days();
                return Err((Field::Timestamp, format!("The timestamp may not be older than {days} days (signal retention).")));
            }
            at
        }
    };
    Ok(Report { ip, categories, comment: scrub_comment(submitted.comment, rules.own), at })
}

/// One report line of a `bulk-report` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRow {
    /// Its number among the file's reports: 1 is the first line after the header.
    pub number: usize,
    /// Its fields, unquoted.
    pub fields: Vec<String>,
}

/// The reports of a `bulk-report` file: AbuseIPDB's CSV (RFC 4180: fields in double quotes may
/// hold commas, line breaks and `""`), starting with the header [`BULK_HEADER`] (any case, a
/// UTF-8 byte-order mark allowed). Blank lines are skipped and not numbered. More than
/// [`BULK_MAX_ROWS`] reports, a missing header or an unterminated quote refuse the whole file.
pub fn parse_bulk_csv(text: &str) -> Result<Vec<BulkRow>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = CsvRecords { rest: text };
    let header = loop {
        match records.next_record()? {
            None => return Err(format!("The csv file is empty: it must start with the header {}.", BULK_HEADER.join(","))),
            Some(fields) if blank(&fields) => continue,
            Some(fields) => break fields,
        }
    };
    let header_ok = header.len() == BULK_HEADER.len()
        && header.iter().zip(BULK_HEADER).all(|(field, name)| field.trim().eq_ignore_ascii_case(name));
    if !header_ok {
        return Err(format!("The csv file must start with the header {}.", BULK_HEADER.join(",")));
    }
    let mut rows = Vec::new();
    while let Some(fields) = records.next_record()? {
        if blank(&fields) {
            continue;
        }
        if rows.len() == BULK_MAX_ROWS {
            return Err(format!("The csv file may hold at most {BULK_MAX_ROWS} reports."));
        }
        rows.push(BulkRow { number: rows.len() + 1, fields });
    }
    Ok(rows)
}

fn blank(fields: &[String]) -> bool {
    fields.iter().all(|f| f.trim().is_empty())
}

/// Reads CSV records one at a time.
struct CsvRecords<'a> {
    rest: &'a str,
}

impl CsvRecords<'_> {
    /// The next record's fields, `None` at the end of the text.
    fn next_record(&mut self) -> Result<Option<Vec<String>>, String> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = self.rest.char_indices().peekable();
        let mut quoted = false;
        let mut end = self.rest.len();
        while let Some((at, c)) = chars.next() {
            if quoted {
                match c {
                    '"' if chars.peek().is_some_and(|(_, next)| *next == '"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    other => field.push(other),
                }
                continue;
            }
            match c {
                '"' if field.trim().is_empty() => {
                    field.clear();
                    quoted = true;
                }
                ',' => fields.push(std::mem::take(&mut field)),
                '\n' => {
                    end = at + 1;
                    break;
                }
                '\r' if chars.peek().is_some_and(|(_, next)| *next == '\n') => {}
                other => field.push(other),
            }
        }
        if quoted {
            return Err("The csv file has a quoted field that is never closed.".into());
        }
        fields.push(field);
        self.rest = &self.rest[end..];
        Ok(Some(fields))
    }
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
            dedup_key: time_ordered_key(self.at, hash),
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
    fn a_submitted_report_is_validated_naming_the_part_at_fault() {
        let now = datetime!(2026-11-25 12:00 UTC);
        let own: Vec<IpAddr> = vec!["81.2.69.160".parse().unwrap()];
        let rules = Rules { now, retention: Duration::days(30), own: &own };
        let good = Submitted { ip: Some(" 45.33.32.156 "), categories: Some("22"), comment: "from 81.2.69.160", timestamp: None };
        let report = validate(&good, &rules).expect("valid");
        assert_eq!((report.ip.to_string(), report.at, report.comment.as_str()), ("45.33.32.156".into(), now, "from [reporter]"));
        let dated = Submitted { timestamp: Some("2026-11-25T07:00:00-04:00"), ..good };
        assert_eq!(validate(&dated, &rules).expect("valid").at, datetime!(2026-11-25 11:00 UTC));
        let refused = |submitted: Submitted<'_>| validate(&submitted, &rules).expect_err("refused").0;
        assert_eq!(refused(Submitted { ip: None, ..good }), Field::Ip);
        assert_eq!(refused(Submitted { ip: Some("45.33.32"), ..good }), Field::Ip);
        assert_eq!(refused(Submitted { ip: Some("192.168.1.1"), ..good }), Field::Ip);
        assert_eq!(refused(Submitted { categories: Some("99"), ..good }), Field::Categories);
        assert_eq!(refused(Submitted { comment: "a\0b", ..good }), Field::Comment);
        assert_eq!(refused(Submitted { timestamp: Some("2026-11-25T12:06:00Z"), ..good }), Field::Timestamp);
        assert_eq!(refused(Submitted { timestamp: Some("2026-10-25T11:59:00Z"), ..good }), Field::Timestamp);
        assert_eq!(validate(&Submitted { timestamp: Some("2026-11-25T12:04:00Z"), ..good }, &rules).map(|r| r.ip), Ok(report.ip));
    }

    #[test]
    fn bulk_files_are_read_as_abuseipdb_writes_them() {
        let text = "\u{feff}ip,categories,reportdate,comment\r\n\
            45.33.32.156,\"18,22\",2026-11-25T11:00:00Z,\"sshd, \"\"root\"\"\nline two\"\r\n\
            \r\n\
            2a01:4f8::1,21,,\n\
            bad,row";
        let rows = parse_bulk_csv(text).expect("a file");
        let fields = |n: usize| rows[n].fields.iter().map(String::as_str).collect::<Vec<_>>();
        assert_eq!(rows.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2, 3], "blank lines are not numbered");
        assert_eq!(fields(0), ["45.33.32.156", "18,22", "2026-11-25T11:00:00Z", "sshd, \"root\"\nline two"]);
        assert_eq!(fields(1), ["2a01:4f8::1", "21", "", ""]);
        assert_eq!(fields(2), ["bad", "row"], "the caller refuses a row of the wrong width");
        assert!(parse_bulk_csv("").is_err());
        assert!(parse_bulk_csv("45.33.32.156,22,,\n").is_err(), "no header");
        assert!(parse_bulk_csv("IP,Categories,ReportDate,Comment\n45.33.32.156,\"22,,\n").is_err(), "unclosed quote");
        assert_eq!(parse_bulk_csv("IP,Categories,ReportDate,Comment\n").map(|r| r.len()), Ok(0));
        let full = format!("IP,Categories,ReportDate,Comment\n{}", "45.33.32.156,22,,\n".repeat(BULK_MAX_ROWS));
        assert_eq!(parse_bulk_csv(&full).map(|r| r.len()), Ok(BULK_MAX_ROWS));
        assert!(parse_bulk_csv(&format!("{full}45.33.32.157,22,,\n")).is_err(), "one report too many");
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
