//! Log detection for the Palisade agent: turns log lines into [`Detection`]s, the way fail2ban
//! and CrowdSec's leaky-bucket scenarios do. Pure: no I/O and no clock; the caller passes each
//! line and the time it saw it. Reading files is [`crate::tail`]'s job; banning and reporting are
//! the agent's.
//!
//! A detector ([`DetectorSpec`]) is a regex with a named `ip` capture. Each line the regex matches
//! pours one event into that detector's leaky bucket for that address; when the bucket
//! overflows, [`Detectors::feed`] returns a [`Detection`] and the address is left alone by that
//! detector for `blackout`.
//!
//! **Bucket semantics** (same as CrowdSec's leaky buckets): the level leaks one event per
//! `leak_speed`; an event that brings the level above `capacity` overflows, so a burst of
//! `capacity + 1` events triggers. The bucket is then emptied and events during the blackout are
//! dropped. `leak_speed` and `blackout` are written in TOML as a number of seconds or a string
//! with a unit: `"500ms"`, `"10s"`, `"1m"`, `"2h"`.
//!
//! **Addresses**: loopback and unspecified addresses are never detected (a reverse proxy in front
//! of nginx logs 127.0.0.1 for every client); IPv4-mapped IPv6 addresses are reported as IPv4.
//! Private ranges are detected; allowlisting them is the agent's decision.
//!
//! **Built-in detectors** ([`builtin_specs`]) and the CrowdSec hub scenarios they stand for.
//! Names are the hub's where the behaviour matches; sizes are the hub's where noted:
//!
//! | detector                 | scenario                              | capacity / leak | lines                                                        |
//! |--------------------------|---------------------------------------|-----------------|--------------------------------------------------------------|
//! | `sshd-auth-failure`      | `crowdsecurity/ssh-bf` (hub sizes)    | 5 / 10 s        | sshd: `Failed password` (also `for invalid user`), `Invalid user`, `Connection closed by` / `Disconnected from authenticating user … [preauth]`, `Did not receive identification string`, `maximum authentication attempts exceeded`, `Unable to negotiate`, `banner exchange` |
//! | `sshd-auth-failure-slow` | `crowdsecurity/ssh-slow-bf` (hub sizes) | 10 / 60 s     | the same lines                                               |
//! | `http-probing`           | `crowdsecurity/http-probing`          | 10 / 10 s       | combined access log lines answered 400, 403 or 404, except static files (images, CSS, JS, fonts) and `robots.txt`, `/.well-known/` and the like |
//! | `http-sensitive-files`   | `crowdsecurity/http-sensitive-files`  | 4 / 5 s         | requests for `/.env`, `/.git`, `/.aws/`, `wp-config.php`, `/phpmyadmin`, `/admin`, `/cgi-bin/` … answered 4xx |
//! | `postfix-sasl-failure`   | `crowdsecurity/postfix-spam`          | 5 / 30 s        | postfix smtpd `SASL LOGIN/PLAIN authentication failed`       |
//! | `dovecot-auth-failure`   | `crowdsecurity/dovecot-spam`          | 5 / 30 s        | dovecot `*-login: … (auth failed, …) … rip=ADDR`             |
//!
//! Differences from the hub: `http-probing` and `http-sensitive-files` count every matching
//! request, where the hub counts distinct paths; the mail detectors use Palisade's own sizes.
//! All built-ins have a one-minute blackout. sshd lines match in syslog (`/var/log/auth.log`) and
//! `journalctl` short formats, `sshd[PID]` and OpenSSH 9.8's `sshd-session[PID]`.
//!
//! **Speed**: a spec may list `prefilter` literals of which every matching line contains at least
//! one; lines containing none are rejected by one Aho-Corasick scan for all detectors, so most
//! lines never reach a regex. Detectors sharing a pattern share one regex run. No allocation per
//! line unless something matches. [`Detectors::feed_chunk`] takes many lines at once and runs
//! that scan once over the whole chunk (with aho-corasick's SIMD prefilter), splitting out only
//! the lines with a hit: about 1.5× as fast as [`Detectors::feed`] per line on a busy auth.log
//! (`docs/benchmarks.md`), with the same detections.

mod bucket;
mod builtin;
mod duration;
mod spec;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use regex::{CaptureLocations, Regex};
use time::OffsetDateTime;

use bucket::Bucket;

pub use duration::parse as parse_duration;
pub use spec::{DetectorFile, DetectorSpec};

/// The built-in detectors (see the table in the module documentation).
pub fn builtin_specs() -> Vec<DetectorSpec> {
    builtin::specs()
}

/// The sshd pattern of the built-in SSH detectors, in `regex` syntax. It is also valid POSIX ERE
/// once `(?P<ip>` is replaced by `(`; the detection benchmark runs it through `grep -E`.
pub fn builtin_sshd_pattern() -> String {
    builtin::sshd_pattern()
}

/// An address that overflowed a detector's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The address to blame.
    pub ip: IpAddr,
    /// The detector's scenario.
    pub scenario: String,
    /// The detector's name.
    pub detector: String,
    /// Events in the bucket when it overflowed (at least capacity + 1).
    pub events: u32,
    /// Time of the first of those events.
    pub first_seen: OffsetDateTime,
    /// Time of the event that overflowed the bucket.
    pub last_seen: OffsetDateTime,
    /// A sentence for people, e.g. "6 failed SSH authentications in 41 s".
    pub message: String,
}

/// One detector's pattern matching one line (see [`Detectors::matches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineMatch {
    /// The detector's name.
    pub detector: String,
    /// The address its `ip` capture held.
    pub ip: IpAddr,
}

/// Why a set of detector specs was refused; always names the detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A detector without a name.
    #[error("a detector has an empty name")]
    EmptyName,
    /// Two detectors with the same name.
    #[error("detector `{0}` is defined twice")]
    DuplicateName(String),
    /// A detector without a scenario.
    #[error("detector `{0}`: scenario is empty")]
    EmptyScenario(String),
    /// The pattern is not a valid regex.
    #[error("detector `{detector}`: pattern does not compile: {source}")]
    BadPattern {
        /// The detector's name.
        detector: String,
        /// What the regex parser said.
        source: regex::Error,
    },
    /// The pattern has no `(?P<ip>...)` capture.
    #[error("detector `{0}`: pattern has no capture named `ip`, write the address part as (?P<ip>...)")]
    NoIpGroup(String),
    /// The ignore regex is not valid.
    #[error("detector `{detector}`: ignore pattern does not compile: {source}")]
    BadIgnore {
        /// The detector's name.
        detector: String,
        /// What the regex parser said.
        source: regex::Error,
    },
    /// Capacity 0 would make every single line a detection.
    #[error("detector `{0}`: capacity must be at least 1")]
    ZeroCapacity(String),
    /// A zero leak speed would never leak.
    #[error("detector `{0}`: leak_speed must be longer than zero")]
    ZeroLeakSpeed(String),
    /// An empty prefilter literal matches every line.
    #[error("detector `{0}`: prefilter literals must not be empty")]
    EmptyPrefilter(String),
    /// The prefilter literals could not be compiled.
    #[error("detector `{detector}`: prefilter does not build: {message}")]
    BadPrefilter {
        /// The detector's name.
        detector: String,
        /// What the Aho-Corasick builder said.
        message: String,
    },
}

/// One compiled pattern and the detectors that share it.
#[derive(Debug)]
struct Rule {
    regex: Regex,
    locations: CaptureLocations,
    ip_group: usize,
    ignore: Option<Regex>,
    prefilter: Option<AhoCorasick>,
    specs: Vec<usize>,
}

/// Counters since the detectors were built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Lines fed.
    pub lines: u64,
    /// Lines that poured at least one event.
    pub events: u64,
    /// Detections returned.
    pub detections: u64,
}

/// A compiled set of detectors and their buckets.
#[derive(Debug)]
pub struct Detectors {
    specs: Vec<DetectorSpec>,
    rules: Vec<Rule>,
    /// All prefilter literals of all rules; `None` when some rule has no prefilter.
    any_prefilter: Option<AhoCorasick>,
    /// The same literals built for scanning large chunks (with a SIMD prefilter), for
    /// [`Detectors::feed_chunk`].
    chunk_prefilter: Option<AhoCorasick>,
    buckets: HashMap<(usize, IpAddr), Bucket>,
    prune_at: usize,
    stats: DetectStats,
}

const MIN_PRUNE_AT: usize = 4096;

impl Detectors {
    /// Validates and compiles `specs`.
    pub fn new(specs: Vec<DetectorSpec>) -> Result<Detectors, DetectError> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut keys: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
        let mut literals: Vec<String> = Vec::new();
        let mut all_filtered = true;
        for (index, spec) in specs.iter().enumerate() {
            let name = spec.name.clone();
            if name.trim().is_empty() {
                return Err(DetectError::EmptyName);
            }
            if specs[..index].iter().any(|s| s.name == spec.name) {
                return Err(DetectError::DuplicateName(name));
            }
            if spec.scenario.trim().is_empty() {
                return Err(DetectError::EmptyScenario(name));
            }
            if spec.capacity == 0 {
                return Err(DetectError::ZeroCapacity(name));
            }
            if spec.leak_speed.is_zero() {
                return Err(DetectError::ZeroLeakSpeed(name));
            }
            if spec.prefilter.iter().any(String::is_empty) {
                return Err(DetectError::EmptyPrefilter(name));
            }
            let key = (spec.pattern.clone(), spec.prefilter.clone(), spec.ignore.clone());
            if let Some(existing) = keys.iter().position(|k| *k == key) {
                rules[existing].specs.push(index);
                continue;
            }
            let regex = Regex::new(&spec.pattern).map_err(|source| DetectError::BadPattern { detector: name.clone(), source })?;
            let ip_group = regex
                .capture_names()
                .position(|group| group == Some("ip"))
                .ok_or_else(|| DetectError::NoIpGroup(name.clone()))?;
            let ignore = spec
                .ignore
                .as_deref()
                .map(Regex::new)
                .transpose()
                .map_err(|source| DetectError::BadIgnore { detector: name.clone(), source })?;
            let prefilter = if spec.prefilter.is_empty() {
                all_filtered = false;
                None
            } else {
                literals.extend(spec.prefilter.iter().cloned());
                Some(
                    AhoCorasick::new(&spec.prefilter)
                        .map_err(|e| DetectError::BadPrefilter { detector: name.clone(), message: e.to_string() })?,
                )
            };
            keys.push(key);
            rules.push(Rule { locations: regex.capture_locations(), regex, ip_group, ignore, prefilter, specs: vec![index] });
        }
        let any_prefilter = if all_filtered && !literals.is_empty() {
            // A full DFA: lines are short, so a byte-at-a-time scan beats a prefilter's start-up cost.
            Some(AhoCorasick::builder().kind(Some(AhoCorasickKind::DFA)).build(&literals).map_err(|e| {
                DetectError::BadPrefilter {
                    detector: specs.first().map(|s| s.name.clone()).unwrap_or_default(),
                    message: e.to_string(),
                }
            })?)
        } else {
            None
        };
        let chunk_prefilter = if any_prefilter.is_some() {
            // Leftmost-first rather than the default standard semantics: only then does
            // aho-corasick use its SIMD (Teddy) prefilter, which skips most of a chunk.
            Some(AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(&literals).map_err(|e| {
                DetectError::BadPrefilter {
                    detector: specs.first().map(|s| s.name.clone()).unwrap_or_default(),
                    message: e.to_string(),
                }
            })?)
        } else {
            None
        };
        Ok(Detectors {
            specs,
            rules,
            any_prefilter,
            chunk_prefilter,
            buckets: HashMap::new(),
            prune_at: MIN_PRUNE_AT,
            stats: DetectStats::default(),
        })
    }

    /// The built-in detectors, compiled.
    pub fn builtin() -> Detectors {
        Detectors::new(builtin_specs()).expect("built-in detectors are valid")
    }

    /// The specs these detectors were built from.
    pub fn specs(&self) -> &[DetectorSpec] {
        &self.specs
    }

    /// Counters since construction.
    pub fn stats(&self) -> DetectStats {
        self.stats
    }

    /// Addresses currently tracked (buckets not yet forgotten).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Feeds one line (without its newline) seen at `now`; returns the detections it completed,
    /// usually none. Cheap for lines no detector's prefilter accepts.
    pub fn feed(&mut self, line: &str, now: OffsetDateTime) -> Vec<Detection> {
        self.stats.lines += 1;
        let mut detections = Vec::new();
        if let Some(any) = &self.any_prefilter
            && !any.is_match(line)
        {
            return detections;
        }
        self.feed_candidate(line, now, &mut detections);
        detections
    }

    /// Feeds many lines at once, all seen at `now`, appending the detections they complete to
    /// `out`. Same result as [`Detectors::feed`] on every line of `text` in order, where a line
    /// ends at `\n` or at the end of `text` and one trailing `\r` is removed (as
    /// [`crate::tail`] does); a final `\n` does not start another line.
    ///
    /// Much faster than `feed` line by line on busy logs: when every detector has a prefilter,
    /// one scan of the whole chunk finds the lines containing a prefilter literal, and only those
    /// are split out and run through the regexes. A daemon tailing a file can pass everything one
    /// read returned, up to its last newline.
    pub fn feed_chunk(&mut self, text: &str, now: OffsetDateTime, out: &mut Vec<Detection>) {
        self.feed_chunk_with(text, |_| now, out);
    }

    /// [`Detectors::feed_chunk`] with a time per line: `time_of(n)` is the time of the `n`-th
    /// line of `text` (counting from 0), asked only for lines a prefilter accepts, in order. For
    /// replaying logs whose lines carry their own time.
    pub fn feed_chunk_with(&mut self, text: &str, mut time_of: impl FnMut(usize) -> OffsetDateTime, out: &mut Vec<Detection>) {
        let bytes = text.as_bytes();
        let Some(scan) = self.chunk_prefilter.clone() else {
            for (n, line) in text.split_terminator('\n').enumerate() {
                self.stats.lines += 1;
                self.feed_candidate(strip_cr(line), time_of(n), out);
            }
            return;
        };
        // `pos` is always the start of a line: lines before it are done.
        let mut pos = 0;
        // Newlines before `counted` have been counted into `line_no`.
        let (mut counted, mut line_no) = (0, 0);
        while pos < bytes.len() {
            let Some(hit) = scan.find(Input::new(bytes).span(pos..bytes.len())) else {
                break;
            };
            let start = bytes[pos..hit.start()].iter().rposition(|&b| b == b'\n').map_or(pos, |i| pos + i + 1);
            let end = bytes[hit.start()..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| hit.start() + i);
            line_no += count_newlines(&bytes[counted..start]);
            counted = start;
            let line = strip_cr(&text[start..end]);
            // The chunk scan only skips lines; the line gets exactly the checks `feed` makes.
            if self.any_prefilter.as_ref().is_none_or(|any| any.is_match(line)) {
                self.feed_candidate(line, time_of(line_no), out);
            }
            pos = end + 1;
        }
        let newlines = line_no + count_newlines(&bytes[counted..]);
        let unterminated = usize::from(bytes.last().is_some_and(|&b| b != b'\n'));
        self.stats.lines += (newlines + unterminated) as u64;
    }

    /// Runs the rules on a line that passed the combined prefilter (or when there is none),
    /// pouring events and appending detections to `out`. Does not count the line.
    fn feed_candidate(&mut self, line: &str, now: OffsetDateTime, out: &mut Vec<Detection>) {
        let before = out.len();
        let Detectors { specs, rules, buckets, stats, .. } = self;
        let mut poured = false;
        for rule in rules.iter_mut() {
            if let Some(prefilter) = &rule.prefilter
                && !prefilter.is_match(line)
            {
                continue;
            }
            if rule.regex.captures_read(&mut rule.locations, line).is_none() {
                continue;
            }
            let Some(ip) = rule.locations.get(rule.ip_group).and_then(|(start, end)| parse_ip(&line[start..end])) else {
                continue;
            };
            if rule.ignore.as_ref().is_some_and(|ignore| ignore.is_match(line)) {
                continue;
            }
            poured = true;
            for &index in &rule.specs {
                let spec = &specs[index];
                let bucket = match buckets.entry((index, ip)) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => entry.insert(Bucket::new(now)),
                };
                if let Some(overflow) = bucket.pour(now, spec.capacity, spec.leak_speed, spec.blackout) {
                    let seconds = (overflow.last_seen - overflow.first_seen).whole_seconds();
                    let label = spec.label.clone().unwrap_or_else(|| format!("lines matching {}", spec.name));
                    out.push(Detection {
                        ip,
                        scenario: spec.scenario.clone(),
                        detector: spec.name.clone(),
                        events: overflow.events,
                        first_seen: overflow.first_seen,
                        last_seen: overflow.last_seen,
                        message: format!("{} {label} in {seconds} s", overflow.events),
                    });
                }
            }
        }
        if poured {
            stats.events += 1;
            stats.detections += (out.len() - before) as u64;
            if self.buckets.len() >= self.prune_at {
                self.prune(now);
            }
        }
    }

    /// Forgets buckets that have leaked empty and whose blackout is over. [`Detectors::feed`]
    /// calls it when the number of buckets doubles; call it from a timer to bound memory sooner.
    pub fn prune(&mut self, now: OffsetDateTime) {
        let specs = &self.specs;
        self.buckets.retain(|(index, _), bucket| !bucket.is_idle(now, specs[*index].leak_speed));
        self.prune_at = (self.buckets.len() * 2).max(MIN_PRUNE_AT);
    }

    /// Whether any detector's pattern matches the line (and its ignore pattern does not).
    /// Pours nothing; the address is not checked.
    pub fn is_match(&self, line: &str) -> bool {
        if let Some(any) = &self.any_prefilter
            && !any.is_match(line)
        {
            return false;
        }
        self.rules.iter().any(|rule| {
            rule.prefilter.as_ref().is_none_or(|p| p.is_match(line))
                && rule.regex.is_match(line)
                && !rule.ignore.as_ref().is_some_and(|ignore| ignore.is_match(line))
        })
    }

    /// Every detector whose pattern matches the line with a usable address, without pouring
    /// anything: for testing patterns and explaining what a line would do.
    pub fn matches(&self, line: &str) -> Vec<LineMatch> {
        let mut found = Vec::new();
        for rule in &self.rules {
            if rule.prefilter.as_ref().is_some_and(|p| !p.is_match(line)) {
                continue;
            }
            let Some(ip) = rule.regex.captures(line).and_then(|c| c.get(rule.ip_group)).and_then(|m| parse_ip(m.as_str())) else {
                continue;
            };
            if rule.ignore.as_ref().is_some_and(|ignore| ignore.is_match(line)) {
                continue;
            }
            found.extend(rule.specs.iter().map(|&index| LineMatch { detector: self.specs[index].name.clone(), ip }));
        }
        found
    }
}

/// The line without the `\r` of a CRLF ending.
fn strip_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// Newlines in `bytes`; written so that the compiler vectorises it.
fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// The address in a capture, if it is one worth blaming.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip = text.parse::<IpAddr>().ok()?.to_canonical();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests;
