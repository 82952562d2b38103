//! Operator-managed lists, the pure part: turning an import (plain text, one value per line, or
//! CSV `value[,remediation[,duration_secs]]`) or an edit into membership changes. No I/O; the
//! caller stores the result. List names are checked by [`crate::domain::lists`].

use time::OffsetDateTime;

use crate::domain::listing::{Remediation, Rule};
use crate::domain::net::list_target;
use crate::domain::signal::Scope;
use crate::store::{ListEntry, ListOp};

/// Lifetime of an entry added without one: a year (operators remove them explicitly).
pub const DEFAULT_DURATION_SECS: i64 = 365 * 24 * 3600;

/// Longest lifetime an entry may be given: ten years. Longer is a typing mistake, and far longer
/// would pass the end of the calendar (CrowdSec reads the remaining time as a Go duration, which
/// ends near 292 years).
pub const MAX_DURATION_SECS: i64 = 10 * 366 * 24 * 3600;

/// Checks an entry lifetime in seconds, with the sentence the operator sees when it is refused.
pub fn check_duration(duration_secs: i64) -> Result<(), String> {
    if duration_secs <= 0 {
        return Err("duration_secs must be positive".into());
    }
    if duration_secs > MAX_DURATION_SECS {
        return Err(format!("duration_secs must be at most {MAX_DURATION_SECS} (ten years), not {duration_secs}"));
    }
    Ok(())
}

/// An entry of list `list` for `value`.
pub fn entry(list: &str, value: &str, remediation: &str, duration_secs: i64, now: OffsetDateTime) -> Result<ListEntry, String> {
    let value = list_target(value).ok_or_else(|| format!("{value:?} is not an address or CIDR"))?;
    let remediation = Remediation::from_stored(remediation)
        .ok_or_else(|| format!("remediation must be ban or captcha, not {remediation:?}"))?;
    check_duration(duration_secs)?;
    let expires_at = now
        .checked_add(time::Duration::seconds(duration_secs))
        .ok_or_else(|| format!("duration_secs {duration_secs} ends after the last representable time"))?;
    Ok(ListEntry {
        list: list.to_string(),
        value,
        scope: Scope::of(value),
        scenario: list.to_string(),
        remediation,
        rule: Rule::Operator,
        listed_at: now,
        expires_at,
        seq: 0,
    })
}

/// Parses an import: blank lines and `#` comments are skipped, a CSV header (first field `value`)
/// too. Returns the additions and the refused lines (1-based line number, reason). A line costs
/// no allocation beyond its entry's own (an import may have millions), and a large text is parsed
/// in parts on as many threads as the machine has cores (up to [`PARSE_THREADS`]), concatenated in
/// line order: the result is the same as one pass over the whole text.
pub fn parse_import(list: &str, text: &str, now: OffsetDateTime) -> (Vec<ListOp>, Vec<(usize, String)>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(PARSE_THREADS);
    let parts = split_lines(text, if text.len() >= PARSE_PART_BYTES { threads } else { 1 });
    if parts.len() == 1 {
        return parse_part(list, text, 0, now);
    }
    let parsed: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> =
            parts.iter().map(|&(first_line, part)| scope.spawn(move || parse_part(list, part, first_line, now))).collect();
        workers.into_iter().map(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    let mut ops = Vec::with_capacity(parsed.iter().map(|(ops, _)| ops.len()).sum());
    let mut rejected = Vec::new();
    for (part_ops, part_rejected) in parsed {
        ops.extend(part_ops);
        rejected.extend(part_rejected);
    }
    (ops, rejected)
}

/// Most threads an import is parsed on.
const PARSE_THREADS: usize = 4;

/// Texts shorter than this are parsed on the caller's thread.
const PARSE_PART_BYTES: usize = 1 << 20;

/// Cuts `text` into at most `parts` pieces of about equal size, each ending at a line end, with the
/// 0-based index of each piece's first line.
fn split_lines(text: &str, parts: usize) -> Vec<(usize, &str)> {
    let mut pieces = Vec::with_capacity(parts);
    let (mut rest, mut first_line) = (text, 0);
    for left in (1..=parts.max(1)).rev() {
        let cut = if left == 1 {
            rest.len()
        } else {
            let aim = rest.len() / left;
            rest.as_bytes()[aim..].iter().position(|b| *b == b'\n').map_or(rest.len(), |at| aim + at + 1)
        };
        let (piece, tail) = rest.split_at(cut);
        pieces.push((first_line, piece));
        first_line += piece.bytes().filter(|b| *b == b'\n').count();
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
    pieces
}

/// Parses the lines of `text`, whose first line is line `first_line` (0-based) of the import.
fn parse_part(list: &str, text: &str, first_line: usize, now: OffsetDateTime) -> (Vec<ListOp>, Vec<(usize, String)>) {
    // One allocation for the additions, sized by the line count, instead of repeated doubling.
    let mut ops = Vec::with_capacity(text.bytes().filter(|b| *b == b'\n').count() + 1);
    let mut rejected = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let index = first_line + index;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(',').map(|f| f.trim().trim_matches('"'));
        let value = fields.next().unwrap_or_default();
        if index == 0 && value.eq_ignore_ascii_case("value") {
            continue;
        }
        let remediation = fields.next().filter(|f| !f.is_empty()).unwrap_or("ban");
        let duration = match fields.next().filter(|f| !f.is_empty()) {
            None => Ok(DEFAULT_DURATION_SECS),
            Some(text) => text.parse::<i64>().map_err(|_| format!("duration {text:?} is not a number of seconds")),
        };
        match duration.and_then(|secs| entry(list, value, remediation, secs, now)) {
            Ok(entry) => ops.push(ListOp::Add(entry)),
            Err(reason) => rejected.push((index + 1, reason)),
        }
    }
    (ops, rejected)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn lifetimes_past_the_calendar_are_refused_not_a_panic() {
        let now = datetime!(2026-11-25 12:00 UTC);
        for secs in [i64::MAX, i64::MAX / 2, MAX_DURATION_SECS + 1, 0, -1, i64::MIN] {
            assert!(entry("mine", "45.33.32.156", "ban", secs, now).is_err(), "{secs}");
        }
        let longest = entry("mine", "45.33.32.156", "ban", MAX_DURATION_SECS, now).expect("ten years");
        assert_eq!(longest.expires_at, now + time::Duration::seconds(MAX_DURATION_SECS));
        let (ops, refused) = parse_import("mine", "45.33.32.156,ban,9223372036854775807\n81.2.69.160,ban,60\n", now);
        assert_eq!((ops.len(), refused.len(), refused[0].0), (1, 1, 1), "{refused:?}");
        assert!(refused[0].1.contains("at most"), "{refused:?}");
    }

    #[test]
    fn imports_read_plain_and_csv_and_report_bad_lines() {
        let now = datetime!(2026-11-25 12:00 UTC);
        let text = "value,remediation,duration_secs\n45.33.32.156\n# comment\n\n81.2.69.0/24,captcha,3600\n81.2.69.7/16\nnot-an-ip\n1.2.3.4,block\n";
        let (ops, rejected) = parse_import("partners", text, now);
        let values: Vec<(String, Scope, Remediation)> = ops
            .iter()
            .filter_map(|op| match op {
                ListOp::Add(e) => Some((crate::domain::net::display_target(e.value), e.scope, e.remediation)),
                ListOp::Remove { .. } => None,
            })
            .collect();
        assert_eq!(
            values,
            [
                ("45.33.32.156".into(), Scope::Ip, Remediation::Ban),
                ("81.2.69.0/24".into(), Scope::Range, Remediation::Captcha),
                ("81.2.0.0/16".into(), Scope::Range, Remediation::Ban),
            ]
        );
        assert_eq!(rejected.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [7, 8]);
        if let Some(ListOp::Add(e)) = ops.get(1) {
            assert_eq!(e.expires_at, now + time::Duration::hours(1));
            assert_eq!(e.scenario, "partners");
        }
    }

    /// A text of `lines` lines: a header, values, comments, blank lines, CRLF ends and bad lines.
    fn mixed_import(lines: usize) -> String {
        let mut text = String::from("value,remediation,duration_secs\n");
        for i in 1..lines {
            let line = match i % 7 {
                0 => "# comment\n".to_string(),
                1 => "\r\n".to_string(),
                2 => format!("not-an-ip-{i}\n"),
                3 => format!("10.{}.{}.0/24,captcha,3600\r\n", i % 250, (i / 250) % 250),
                _ => format!("{}.{}.{}.{}\n", 1 + i % 200, (i / 200) % 250, (i / 50_000) % 250, i % 250),
            };
            text.push_str(&line);
        }
        text
    }

    #[test]
    fn a_text_cut_in_parts_parses_as_one_pass_does() {
        let now = datetime!(2026-12-07 12:00 UTC);
        let text = mixed_import(2_000);
        let whole = parse_part("partners", &text, 0, now);
        assert!(!whole.0.is_empty() && !whole.1.is_empty());
        for parts in 1..=5 {
            let pieces = split_lines(&text, parts);
            assert!(pieces.len() <= parts);
            assert_eq!(pieces.iter().map(|(_, p)| *p).collect::<String>(), text, "{parts} parts cover the text");
            let (mut ops, mut rejected) = (Vec::new(), Vec::new());
            for (i, (first_line, piece)) in pieces.iter().enumerate() {
                assert!(i + 1 == pieces.len() || piece.ends_with('\n'), "a part ends at a line end");
                let (o, r) = parse_part("partners", piece, *first_line, now);
                ops.extend(o);
                rejected.extend(r);
            }
            assert_eq!((&ops, &rejected), (&whole.0, &whole.1), "{parts} parts");
        }
        assert_eq!(split_lines("", 3), [(0, "")]);
        assert_eq!(split_lines("1.2.3.4", 3), [(0, "1.2.3.4")]);
    }

    #[test]
    fn a_large_import_parsed_on_threads_is_the_one_pass_result() {
        let now = datetime!(2026-12-07 12:00 UTC);
        let text = mixed_import(120_000);
        assert!(text.len() >= PARSE_PART_BYTES, "large enough to be parsed in parts");
        assert_eq!(parse_import("partners", &text, now), parse_part("partners", &text, 0, now));
    }
}
