//! PostgreSQL's `COPY` path for large list writes (an import, a feed, the first consensus run of a
//! big network): change rows are copied straight into `blocklist_changes`, entry rows into a
//! transaction-scoped temporary table and upserted from there in one statement. Below
//! [`COPY_AT_LEAST`] rows the `UNNEST` statements of the backend's root module are used: a
//! `COPY` costs a few more round trips than one statement.
//!
//! Rows are written in `COPY`'s text format; timestamps are cut to whole microseconds first, as
//! sqlx does when it binds them, so both paths store the same instants.

use sqlx::Postgres;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::net::display_target;
use crate::store::lists::{ChangeRow, EntryRow};

/// Rows from which a run is written with `COPY` rather than `UNNEST` statements.
pub(super) const COPY_AT_LEAST: usize = 10_000;

/// Bytes of rows gathered before they are sent to the server.
const SEND_BYTES: usize = 1 << 20;

/// Appends one text-format field, escaped; `None` is SQL NULL.
fn field(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    // Spans without a reserved byte are copied whole: most fields have none.
    let bytes = value.as_bytes();
    let mut clean = 0;
    for (i, byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean..i]);
        out.extend_from_slice(escaped);
        clean = i + 1;
    }
    out.extend_from_slice(&bytes[clean..]);
}

/// A timestamp as `COPY` reads it, cut to the microsecond.
fn instant(at: OffsetDateTime) -> String {
    let cut = at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at);
    // RFC 3339 of an offset date-time in range cannot fail; fall back to the Debug text if it did.
    cut.format(&Rfc3339).unwrap_or_else(|_| format!("{cut:?}"))
}

/// The text of the last timestamp written: the rows of one write mostly share their times (an
/// import's expiry, a run's listing time), and formatting one costs more than the rest of a row.
#[derive(Default)]
struct LastInstant(Option<(OffsetDateTime, String)>);

impl LastInstant {
    fn text(&mut self, at: OffsetDateTime) -> &str {
        if self.0.as_ref().is_none_or(|(last, _)| *last != at) {
            self.0 = Some((at, instant(at)));
        }
        self.0.as_ref().map_or("", |(_, text)| text.as_str())
    }
}

/// One row: fields separated by tabs, ended by a newline.
fn row(out: &mut Vec<u8>, fields: &[Option<&str>]) {
    for (i, value) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        field(out, *value);
    }
    out.push(b'\n');
}

/// Runs `statement` (a `COPY … FROM STDIN`) with the rows `write` produces, sent a megabyte at a time.
async fn copy_rows<T>(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    statement: &str,
    rows: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T),
) -> Result<u64, sqlx::Error> {
    let mut copy = tx.copy_in_raw(statement).await?;
    let mut buffer = Vec::with_capacity(SEND_BYTES + 4096);
    for item in rows {
        write(&mut buffer, item);
        if buffer.len() >= SEND_BYTES {
            copy.send(std::mem::take(&mut buffer)).await?;
            buffer.reserve(SEND_BYTES + 4096);
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer).await?;
    }
    copy.finish().await
}

/// Appends change rows to the log, with the seqs they carry.
pub(super) async fn copy_changes(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    changes: &[ChangeRow<'_>],
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let at = instant(at);
    let mut expires = LastInstant::default();
    copy_rows(
        tx,
        "COPY blocklist_changes (seq, list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) FROM STDIN",
        changes,
        |out, change| {
            let e = change.entry;
            row(
                out,
                &[
                    Some(&change.seq.to_string()),
                    Some(&e.list),
                    Some(&display_target(e.value)),
                    Some(change.op.as_str()),
                    Some(e.scope.as_str()),
                    Some(&e.scenario),
                    Some(e.remediation.as_str()),
                    Some(e.rule.as_str()),
                    change.reason,
                    Some(expires.text(e.expires_at)),
                    Some(&at),
                ],
            );
        },
    )
    .await?;
    Ok(())
}

/// Inserts or renews entries (a renewal keeps the stored `listed_at`), as the `UNNEST` upsert
/// does. Into lists that hold no entry yet (an import or a feed's first fetch into a new list),
/// the rows are copied straight into `blocklist_entries`: there is nothing to renew, and `rows`
/// holds each (list, value) once, in key order ([`begin_entry_rows`](crate::store::lists::begin_entry_rows)).
/// Otherwise they are copied into a temporary table dropped at commit, then upserted from it.
/// Every list writer holds `LIST_WRITE_LOCK`, so no entry can appear between the check and the
/// copy.
pub(super) async fn copy_entries(tx: &mut sqlx::Transaction<'_, Postgres>, rows: &[EntryRow<'_>]) -> Result<(), sqlx::Error> {
    let mut lists: Vec<&str> = rows.iter().map(|r| r.entry.list.as_str()).collect();
    lists.dedup();
    let occupied: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blocklist_entries WHERE list = ANY($1))")
        .bind(&lists)
        .fetch_one(&mut **tx)
        .await?;
    let statement = if occupied {
        sqlx::query("CREATE TEMPORARY TABLE IF NOT EXISTS blocklist_import (LIKE blocklist_entries) ON COMMIT DROP")
            .execute(&mut **tx)
            .await?;
        sqlx::query("TRUNCATE blocklist_import").execute(&mut **tx).await?;
        "COPY blocklist_import (list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq) FROM STDIN"
    } else {
        "COPY blocklist_entries (list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq) FROM STDIN"
    };
    let (mut listed, mut expires) = (LastInstant::default(), LastInstant::default());
    copy_rows(tx, statement, rows, |out, r| {
        let e = r.entry;
        row(
            out,
            &[
                Some(&e.list),
                Some(&r.value),
                Some(e.scope.as_str()),
                Some(&e.scenario),
                Some(e.remediation.as_str()),
                Some(e.rule.as_str()),
                Some(listed.text(r.listed_at)),
                Some(expires.text(e.expires_at)),
                Some(&r.seq.to_string()),
            ],
        );
    })
    .await?;
    if occupied {
        sqlx::query(
            "INSERT INTO blocklist_entries (list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq) \
             SELECT list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq FROM blocklist_import \
             ON CONFLICT (list, value) DO UPDATE SET scope = excluded.scope, scenario = excluded.scenario, \
             remediation = excluded.remediation, rule = excluded.rule, expires_at = excluded.expires_at, seq = excluded.seq",
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escape_what_the_text_format_reserves_and_null_is_backslash_n() {
        let mut out = Vec::new();
        row(&mut out, &[Some("a\tb\\c\nd\re"), None, Some("")]);
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re\t\\N\t\n");
    }

    #[test]
    fn instants_are_cut_to_the_microsecond_as_sqlx_binds_them() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).expect("in range");
        assert_eq!(instant(at), "2023-11-14T22:13:20.123456Z");
    }
}
