//! What the golden recording replaces before it compares, and nothing else. Only values that
//! legitimately differ from run to run are replaced, each by a stable placeholder that still
//! says what stood there:
//!
//! - **Secrets and signed values**, by their exact value, wherever they appear (bodies, headers,
//!   paths): JWTs, generated passwords, enrollment and API keys and their visible prefixes,
//!   login-link tokens, session cookies, CSRF tokens. Each becomes `<kind-N>` (N counts per
//!   kind in order of first appearance), a prefix `<kind-N-prefix>`. A presigned link's
//!   signature is named after what it signs, `<sig blocklists/partners ban ip>`. They are
//!   learnt from the answers that hand them out, by the field that carries them.
//! - **Request ids**: the generated `x-request-id` of an answer, wherever it appears in that
//!   answer, becomes `<request-id>` (it must be 32 hex digits; an id the test sent stays as is).
//! - **Times made during the run**: an RFC 3339 time (or HTTP date, or `expires=` Unix time of a
//!   link) from the run's start (less a minute: signals are dated a few seconds back) to the
//!   answer is `<run>`. A later time is `<run+N>` when it lies a whole number of hours (N = `3h`,
//!   `1d`) after some instant of the run, or, for a value made by the request being recorded, a
//!   whole number of minutes (`15m`) after it. Any other future time fails the test: it needs a
//!   rule, not a blanket replacement. Earlier times (the CrowdSec fixtures' own dates) stay.
//! - **Durations counted down from now**: a decision's Go duration (`167h59m58s`) is `<~168h>`,
//!   the whole number of hours it was listed for, less the seconds since.
//! - **Seconds to a quota window's end** (`x-ratelimit-reset`, `retry-after`, and the number in
//!   a 429's "retry in N s") are `<seconds-to-utc-midnight>` or `<seconds-to-month-end>` when
//!   they are exactly that.
//! - **Chart day labels** (`MM-DD` in the console's SVG charts) are `<today>`, `<today-N>`.
//! - **The backend's name** in a JSON `backend` field is `<backend>`, so both backends share
//!   one recording.

use std::collections::BTreeMap;

use regex::{Captures, Regex};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, Time};

use super::json::Json;

/// When an answer was asked for and received, and when the run began.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Before the world was built.
    pub run_start: OffsetDateTime,
    /// Before the request was sent.
    pub sent: OffsetDateTime,
    /// After the whole answer was read.
    pub received: OffsetDateTime,
}

/// The replacements learnt so far and the rules above.
pub struct Normaliser {
    /// Secret value and its placeholder, longest value first (a key before its own prefix).
    secrets: Vec<(String, String)>,
    counters: BTreeMap<&'static str, usize>,
    backend: &'static str,
    rfc3339: Regex,
    link_expires: Regex,
    retry_in: Regex,
    go_duration: Regex,
    day_label: Regex,
    shown_time: Regex,
}

impl Normaliser {
    /// A normaliser for a run on `backend` (`sqlite`, `postgres`).
    pub fn new(backend: &'static str) -> Self {
        let regex = |pattern: &str| Regex::new(pattern).expect("a valid pattern");
        Normaliser {
            secrets: Vec::new(),
            counters: BTreeMap::new(),
            backend,
            // The zone is optional: CTI `fire` expirations are UTC written without one.
            rfc3339: regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?"),
            link_expires: regex(r"\bexpires=(\d{9,12})\b"),
            retry_in: regex(r"\bretry in (\d+) s\b"),
            go_duration: regex(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$"),
            day_label: regex(r"(<text[^>]*>|<title>)(\d{2}-\d{2})(</text>|: )"),
            shown_time: regex(r#"<time datetime="(<[^"]+>)">[^<]*</time>"#),
        }
    }

    /// Registers a secret under `<kind-N>` and returns the placeholder (the same one when the
    /// value is already known).
    pub fn secret(&mut self, kind: &'static str, value: &str) -> String {
        if let Some((_, placeholder)) = self.secrets.iter().find(|(known, _)| known == value) {
            return placeholder.clone();
        }
        let counter = self.counters.entry(kind).or_default();
        *counter += 1;
        let placeholder = format!("<{kind}-{counter}>");
        self.named(value, &placeholder);
        placeholder
    }

    /// Registers a secret under a placeholder of the caller's choosing.
    pub fn named(&mut self, value: &str, placeholder: &str) {
        assert!(value.len() >= 6, "a secret this short cannot be replaced safely: {value:?}");
        if self.secrets.iter().any(|(known, _)| known == value) {
            return;
        }
        self.secrets.push((value.to_string(), placeholder.to_string()));
        self.secrets.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    }

    /// A key and its visible prefix (`<kind-N>`, `<kind-N-prefix>`).
    pub fn key_with_prefix(&mut self, kind: &'static str, key: &str, prefix: &str) {
        let placeholder = self.secret(kind, key);
        self.named(prefix, &format!("{}-prefix>", placeholder.trim_end_matches('>')));
    }

    /// Text with secrets, times and link expiries replaced.
    pub fn text(&self, text: &str, window: &Window) -> String {
        let mut out = text.to_string();
        for (value, placeholder) in &self.secrets {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), placeholder);
            }
        }
        let out = self.rfc3339.replace_all(&out, |caps: &Captures| {
            let found = &caps[0];
            let zoned =
                if found.ends_with('Z') || found[19..].contains(['+', '-']) { found.to_string() } else { format!("{found}Z") };
            let at = OffsetDateTime::parse(&zoned, &Rfc3339).unwrap_or_else(|e| panic!("{found:?} is not RFC 3339: {e}"));
            time_label(at, window, found).unwrap_or_else(|| found.to_string())
        });
        let out = self.link_expires.replace_all(&out, |caps: &Captures| {
            let found = &caps[1];
            let at = found.parse().ok().and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok());
            match at.and_then(|at| time_label(at, window, found)) {
                Some(label) => format!("expires={label}"),
                None => caps[0].to_string(),
            }
        });
        self.retry_in
            .replace_all(&out, |caps: &Captures| match caps[1].parse().ok().and_then(|secs| window_end(secs, window)) {
                Some(label) => format!("retry in {label} s"),
                None => caps[0].to_string(),
            })
            .into_owned()
    }

    /// A page of HTML: [`Normaliser::text`], then the times shown to people (labelled as their
    /// `datetime` attribute was) and the charts' day labels.
    pub fn html(&self, text: &str, window: &Window) -> String {
        let text = self.text(text, window);
        let text = self.shown_time.replace_all(&text, r#"<time datetime="$1">$1</time>"#);
        let today = window.received.date();
        let labels: BTreeMap<String, String> = (0..=60)
            .map(|n| {
                let day = today - Duration::days(n);
                let label = if n == 0 { "<today>".to_string() } else { format!("<today-{n}>") };
                (format!("{:02}-{:02}", u8::from(day.month()), day.day()), label)
            })
            .collect();
        self.day_label
            .replace_all(&text, |caps: &Captures| match labels.get(&caps[2]) {
                Some(label) => format!("{}{label}{}", &caps[1], &caps[3]),
                None => caps[0].to_string(),
            })
            .into_owned()
    }

    /// A JSON body, value by value.
    pub fn json(&self, json: &mut Json, window: &Window) {
        match json {
            Json::String(text) => *text = self.text(text, window),
            Json::Array(items) => items.iter_mut().for_each(|item| self.json(item, window)),
            Json::Object(members) => {
                // A decision (v2 item or v3 value) counts its remaining time down from now.
                let decision = members.iter().any(|(k, _)| k == "value");
                for (key, value) in members.iter_mut() {
                    match (key.as_str(), &*value) {
                        ("backend", Json::String(name)) if name == self.backend => *value = Json::String("<backend>".into()),
                        ("duration", Json::String(text)) if decision => *value = Json::String(self.countdown(text, window)),
                        _ => self.json(value, window),
                    }
                }
            }
            Json::Null | Json::Bool(_) | Json::Number(_) => {}
        }
    }

    /// A decision's remaining time: `0s` (a deletion) as is, otherwise the whole number of
    /// hours it was made for.
    fn countdown(&self, text: &str, window: &Window) -> String {
        let caps = self.go_duration.captures(text).unwrap_or_else(|| panic!("{text:?} is not a Go duration"));
        let part = |i: usize| caps.get(i).map_or(0, |m| m.as_str().parse::<i64>().expect("digits"));
        let left = part(1) * 3600 + part(2) * 60 + part(3);
        if left == 0 {
            return text.to_string();
        }
        // Made at some instant of the run with a lifetime of whole hours, counted down since.
        let elapsed = (window.received - window.run_start).whole_seconds() + 2;
        match whole_multiples(left, left + elapsed, 3600).as_slice() {
            [hours] => format!("<~{hours}h>"),
            other => panic!("decision duration {text} is not a whole number of hours less the run's time ({other:?})"),
        }
    }

    /// A header value: the quota-window and date rules by name, then [`Normaliser::text`].
    pub fn header(&self, name: &str, value: &str, window: &Window) -> String {
        match name {
            "x-ratelimit-reset" | "retry-after" => {
                value.parse().ok().and_then(|secs| window_end(secs, window)).map_or_else(|| value.to_string(), str::to_string)
            }
            "last-modified" | "if-modified-since" => {
                let at = httpdate::parse_http_date(value).ok().and_then(|t| {
                    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
                    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()
                });
                at.and_then(|at| time_label(at, window, value)).unwrap_or_else(|| value.to_string())
            }
            _ => self.text(value, window),
        }
    }
}

/// The label of a number of seconds that is exactly the time left, when the request was
/// answered, until the end of the UTC day or month (a quota window).
fn window_end(secs: i64, window: &Window) -> Option<&'static str> {
    let fits = |end: fn(OffsetDateTime) -> OffsetDateTime| {
        let (earliest, latest) = (end(window.received) - window.received, end(window.sent) - window.sent);
        (earliest.whole_seconds() - 1..=latest.whole_seconds() + 1).contains(&secs)
    };
    if fits(next_midnight) {
        Some("<seconds-to-utc-midnight>")
    } else if fits(next_month) {
        Some("<seconds-to-month-end>")
    } else {
        None
    }
}

/// The label of a time, or `None` for a time before the run (kept as it is).
fn time_label(at: OffsetDateTime, window: &Window, found: &str) -> Option<String> {
    // HTTP dates and Unix times are whole seconds, so a second of slack on each side.
    if at < window.run_start - Duration::minutes(1) {
        return None;
    }
    if at <= window.received + Duration::seconds(1) {
        return Some("<run>".into());
    }
    let after = |from: OffsetDateTime| (at - from).whole_seconds();
    let (lo, hi) = (after(window.received) - 1, after(window.run_start) + 1);
    if let [hours] = whole_multiples(lo, hi, 3600).as_slice() {
        return Some(if hours % 24 == 0 { format!("<run+{}d>", hours / 24) } else { format!("<run+{hours}h>") });
    }
    let (lo, hi) = (after(window.received) - 1, after(window.sent) + 1);
    if let [minutes] = whole_multiples(lo, hi, 60).as_slice() {
        return Some(format!("<run+{minutes}m>"));
    }
    panic!(
        "{found} is {} s after the run began: neither within it, nor whole hours after it, nor whole minutes after this request; \
         give it a rule in golden/normalise.rs",
        after(window.run_start)
    )
}

/// The positive multiples of `unit` in `lo..=hi`, counted in units.
fn whole_multiples(lo: i64, hi: i64, unit: i64) -> Vec<i64> {
    let first = lo.max(1).div_euclid(unit) + i64::from(lo.max(1).rem_euclid(unit) != 0);
    (first..=hi.div_euclid(unit)).collect()
}

fn next_midnight(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_time(Time::MIDNIGHT) + Duration::days(1)
}

fn next_month(at: OffsetDateTime) -> OffsetDateTime {
    let (year, month) =
        if at.month() == time::Month::December { (at.year() + 1, time::Month::January) } else { (at.year(), at.month().next()) };
    let first = Date::from_calendar_date(year, month, 1).expect("the first of a month exists");
    first.with_time(Time::MIDNIGHT).assume_utc()
}

#[test]
fn times_are_labelled_relative_to_the_run() {
    let start = time::macros::datetime!(2026-12-03 10:00:00 UTC);
    let window = Window { run_start: start, sent: start + Duration::seconds(20), received: start + Duration::seconds(21) };
    let label = |at: OffsetDateTime| time_label(at, &window, "test");
    assert_eq!(label(start - Duration::days(8)), None, "a fixture's date stays");
    assert_eq!(label(start - Duration::seconds(5)).as_deref(), Some("<run>"));
    assert_eq!(label(start + Duration::seconds(7)).as_deref(), Some("<run>"));
    assert_eq!(label(start + Duration::seconds(7) + Duration::hours(24)).as_deref(), Some("<run+1d>"));
    assert_eq!(label(start + Duration::seconds(3) + Duration::hours(4)).as_deref(), Some("<run+4h>"));
    assert_eq!(label(start + Duration::seconds(20) + Duration::minutes(15)).as_deref(), Some("<run+15m>"));
    assert!(std::panic::catch_unwind(|| label(start + Duration::minutes(15) + Duration::seconds(5))).is_err(), "made earlier");
    assert_eq!(whole_multiples(3599, 3601, 3600), [1]);
    assert_eq!(whole_multiples(-5, 10, 60), Vec::<i64>::new());
}

#[test]
fn secrets_are_replaced_longest_first_and_durations_counted_in_hours() {
    let start = time::macros::datetime!(2026-12-03 10:00:00 UTC);
    let window = Window { run_start: start, sent: start + Duration::seconds(20), received: start + Duration::seconds(21) };
    let mut norm = Normaliser::new("sqlite");
    norm.key_with_prefix("api-key", "pal_ABCDEFGHsecretsecret", "pal_ABCDEFGH");
    assert_eq!(
        norm.text("key pal_ABCDEFGHsecretsecret, prefix pal_ABCDEFGH", &window),
        "key <api-key-1>, prefix <api-key-1-prefix>"
    );
    assert_eq!(
        norm.text("zoned 2026-12-04T10:00:05+00:00, zone-less 2026-12-04T10:00:05.553000", &window),
        "zoned <run+1d>, zone-less <run+1d>",
        "a CTI fire expiration is UTC without a zone"
    );
    assert_eq!(norm.countdown("23h59m50s", &window), "<~24h>");
    assert_eq!(norm.countdown("0s", &window), "0s");
    assert_eq!(norm.header("retry-after", "7", &window), "7");
}
