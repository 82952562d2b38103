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

/// An entry of list `list` for `value`.
pub fn entry(list: &str, value: &str, remediation: &str, duration_secs: i64, now: OffsetDateTime) -> Result<ListEntry, String> {
    let value = list_target(value).ok_or_else(|| format!("{value:?} is not an address or CIDR"))?;
    let remediation = Remediation::from_stored(remediation)
        .ok_or_else(|| format!("remediation must be ban or captcha, not {remediation:?}"))?;
    if duration_secs <= 0 {
        return Err("duration_secs must be positive".into());
    }
    Ok(ListEntry {
        list: list.to_string(),
        value,
        scope: Scope::of(value),
        scenario: list.to_string(),
        remediation,
        rule: Rule::Operator,
        listed_at: now,
        expires_at: now + time::Duration::seconds(duration_secs),
        seq: 0,
    })
}

/// Parses an import: blank lines and `#` comments are skipped, a CSV header (first field `value`)
/// too. Returns the additions and the refused lines (1-based line number, reason).
pub fn parse_import(list: &str, text: &str, now: OffsetDateTime) -> (Vec<ListOp>, Vec<(usize, String)>) {
    let mut ops = Vec::new();
    let mut rejected = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(|f| f.trim().trim_matches('"')).collect();
        if index == 0 && fields[0].eq_ignore_ascii_case("value") {
            continue;
        }
        let remediation = fields.get(1).filter(|f| !f.is_empty()).copied().unwrap_or("ban");
        let duration = match fields.get(2).filter(|f| !f.is_empty()) {
            None => Ok(DEFAULT_DURATION_SECS),
            Some(text) => text.parse::<i64>().map_err(|_| format!("duration {text:?} is not a number of seconds")),
        };
        match duration.and_then(|secs| entry(list, fields[0], remediation, secs, now)) {
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
}
