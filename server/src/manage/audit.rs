//! The audit log's use cases: recording one operator action (from the admin API's recording
//! layer or the command line), the detail an entry may hold (parameters, never a secret), and
//! reading the log back. It knows neither HTTP nor SQL: the admin API decides who the actor is
//! and which action a route is; the command line names its own.

use palisade_api::native::{AuditEntryView, AuditPage};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::text::has_nul;
use crate::domain::time::rfc3339;
use crate::store::{AuditEntry, AuditFilter, AuditStore, NewAuditEntry};
use crate::use_case::UseCaseError;

/// Parameters whose value is a secret (or a credential's material): recorded as `"(redacted)"`.
const SECRET_FIELDS: &[&str] = &["api_key", "password", "secret", "token", "key", "attachment_key"];
/// Longest string kept in a detail; a longer one (an imported file) is recorded by its length.
const MAX_TEXT: usize = 256;
/// Most items of an array kept in a detail; a longer one is recorded by its length.
const MAX_ITEMS: usize = 20;

/// What an entry's detail may hold of an action's parameters: scalars, strings up to
/// [`MAX_TEXT`] bytes, arrays up to [`MAX_ITEMS`] items and objects one level deep, with every
/// field named like a secret replaced by `"(redacted)"`. The rest is summarised by its size.
pub fn sanitize(value: Value) -> Value {
    sanitize_at(value, 0)
}

fn sanitize_at(value: Value, depth: usize) -> Value {
    match value {
        Value::String(text) if text.len() > MAX_TEXT => Value::String(format!("({} bytes)", text.len())),
        Value::Array(items) if items.len() > MAX_ITEMS || depth > 1 => Value::String(format!("({} items)", items.len())),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| sanitize_at(v, depth + 1)).collect()),
        Value::Object(fields) if depth > 1 => Value::String(format!("({} fields)", fields.len())),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .take(MAX_ITEMS)
                .map(|(name, value)| {
                    let secret = SECRET_FIELDS.contains(&name.to_ascii_lowercase().as_str());
                    let value = if secret { Value::String("(redacted)".into()) } else { sanitize_at(value, depth + 1) };
                    (name, value)
                })
                .collect(),
        ),
        other => other,
    }
}

/// Records one action. The action is done by then, so a failure to record it does not undo or
/// fail it: it is logged and counted (`palisade_audit_write_failures_total`) for the operator.
pub async fn record(store: &dyn AuditStore, entry: NewAuditEntry) {
    if let Err(error) = store.append_audit(&entry).await {
        metrics::counter!("palisade_audit_write_failures_total").increment(1);
        tracing::error!(%error, action = %entry.action, actor = %entry.actor, target = %entry.target, "cannot write the audit log");
    }
}

/// The entry of an action of the command line run by `os_user` on the host.
pub fn cli_entry(os_user: &str, action: &str, target: &str, detail: Map<String, Value>) -> NewAuditEntry {
    NewAuditEntry {
        at: OffsetDateTime::now_utc(),
        actor: format!("cli:{os_user}"),
        action: action.to_string(),
        target: target.to_string(),
        detail: sanitize(Value::Object(detail)).to_string(),
        client: None,
        status: None,
    }
}

/// The view of a stored entry.
pub fn entry_view(entry: &AuditEntry) -> AuditEntryView {
    AuditEntryView {
        id: entry.id,
        at: rfc3339(entry.entry.at),
        actor: entry.entry.actor.clone(),
        action: entry.entry.action.clone(),
        target: entry.entry.target.clone(),
        detail: serde_json::from_str(&entry.entry.detail).unwrap_or(Value::Null),
        client: entry.entry.client.clone(),
        status: entry.entry.status,
    }
}

/// Reads one page of the log, newest first. `limit` is 1–1000 (default 100); `actor` and
/// `action` match exactly; `since` is a time in RFC 3339 or a duration back from now (`24h`, `7d`).
pub async fn list_audit(
    store: &dyn AuditStore,
    before: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<&str>,
    limit: Option<u32>,
) -> Result<AuditPage, UseCaseError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(UseCaseError::invalid("limit", "must be between 1 and 1000"));
    }
    if [&actor, &action].into_iter().flatten().any(|v| has_nul(v) || v.len() > 256) {
        return Err(UseCaseError::invalid("actor", "actor and action are at most 256 bytes, without NUL characters"));
    }
    let since = since.map(|text| parse_since(text, OffsetDateTime::now_utc())).transpose()?;
    let filter = AuditFilter { before, actor, action, since, limit };
    let entries = store.list_audit(&filter).await?;
    let next_before = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(AuditPage { items: entries.iter().map(entry_view).collect(), next_before })
}

/// A `since`: an RFC 3339 time, or a duration back from `now` (`3600`, `90m`, `24h`, `7d`).
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, UseCaseError> {
    if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(at);
    }
    super::lists::parse_lifetime(text).map(|secs| now - time::Duration::seconds(secs)).map_err(|_| {
        UseCaseError::invalid("since", format!("{text:?} is neither an RFC 3339 time nor a duration such as 90m, 24h or 7d"))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_and_large_values_summarised() {
        let detail = sanitize(json!({
            "name": "acme", "api_key": "pal_secret", "Password": "x", "nested": {"token": "t", "ok": 1},
            "text": "a".repeat(1000), "add": (0..50).collect::<Vec<_>>(), "few": ["1.2.3.4"],
        }));
        assert_eq!(detail["name"], "acme");
        assert_eq!(detail["api_key"], "(redacted)");
        assert_eq!(detail["Password"], "(redacted)");
        assert_eq!(detail["nested"], json!({"token": "(redacted)", "ok": 1}));
        assert_eq!(detail["text"], "(1000 bytes)");
        assert_eq!(detail["add"], "(50 items)");
        assert_eq!(detail["few"], json!(["1.2.3.4"]));
        assert!(!detail.to_string().contains("pal_secret"));
    }

    #[test]
    fn since_is_a_time_or_a_duration_back() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).expect("time");
        assert_eq!(parse_since("1h", now).expect("duration"), now - time::Duration::hours(1));
        assert_eq!(parse_since("1970-01-01T00:00:10Z", now).expect("time").unix_timestamp(), 10);
        assert!(parse_since("yesterday", now).is_err());
    }
}
