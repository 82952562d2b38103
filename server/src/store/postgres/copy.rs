//! PostgreSQL's `COPY` path for large list writes (an import, a feed, the first consensus run of a
//! big network): change rows are copied straight into `blocklist_changes`; entry rows straight
//! into `blocklist_entries` when none of their keys is stored yet, else into a transaction-scoped
//! temporary table and upserted from there in one statement. Below
//! [`COPY_AT_LEAST`] rows the `UNNEST` statements of the backend's root module are used: a
//! `COPY` costs a few more round trips than one statement.
//!
//! Rows are written in `COPY`'s binary format: each field as its length and the column type's
//! own binary form, so the server converts nothing from text (in the text format every row's
//! two timestamps cost it a parse each, about a quarter of its work on a large copy) and nothing
//! needs escaping. Timestamps are cut to whole microseconds as sqlx cuts them when it binds
//! them, so both paths store the same instants.

use sqlx::Postgres;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::domain::net::display_target;
use crate::store::lists::{ChangeRow, EntryRow};

/// Rows from which a run is written with `COPY` rather than `UNNEST` statements.
pub(super) const COPY_AT_LEAST: usize = 10_000;

/// Bytes of rows gathered before they are sent to the server.
const SEND_BYTES: usize = 1 << 20;

/// The binary format's signature, flags (none) and header extension length (none).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The binary format's end: a row of -1 fields.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// `timestamptz`'s zero: binary timestamps are microseconds from it.
const TIMESTAMP_EPOCH: OffsetDateTime = datetime!(2000-01-01 0:00 UTC);

/// One field of a row, in the type of its column.
#[derive(Clone, Copy)]
enum Field<'a> {
    /// `bigint`.
    Int(i64),
    /// `text`.
    Text(&'a str),
    /// `text`, possibly NULL.
    MaybeText(Option<&'a str>),
    /// `timestamptz`.
    At(OffsetDateTime),
}

/// Appends one row: its field count, then each field's length (-1 for NULL) and bytes.
fn row(out: &mut Vec<u8>, fields: &[Field<'_>]) {
    let count = i16::try_from(fields.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for field in fields {
        match *field {
            Field::Int(value) => sized(out, &value.to_be_bytes()),
            Field::Text(text) | Field::MaybeText(Some(text)) => sized(out, text.as_bytes()),
            Field::MaybeText(None) => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Field::At(at) => sized(out, &micros(at).to_be_bytes()),
        }
    }
}

/// A field's length, then its bytes.
fn sized(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every field here is a key, a name or a timestamp: far below the format's 2 GiB.
    out.extend_from_slice(&i32::try_from(bytes.len()).unwrap_or(i32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A timestamp as `timestamptz`'s binary form reads it: whole microseconds since 2000, cut as
/// sqlx cuts a bound one (towards 2000).
fn micros(at: OffsetDateTime) -> i64 {
    // An `OffsetDateTime` lies within ±9,999 years: its microseconds always fit.
    i64::try_from((at - TIMESTAMP_EPOCH).whole_microseconds()).unwrap_or(i64::MAX)
}

/// Runs `statement` (a binary `COPY … FROM STDIN`) with the rows `write` produces, sent a megabyte at a time.
async fn copy_rows<T>(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    statement: &str,
    rows: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T),
) -> Result<u64, sqlx::Error> {
    let mut copy = tx.copy_in_raw(statement).await?;
    let mut buffer = Vec::with_capacity(SEND_BYTES + 4096);
    buffer.extend_from_slice(HEADER);
    for item in rows {
        write(&mut buffer, item);
        if buffer.len() >= SEND_BYTES {
            copy.send(std::mem::take(&mut buffer)).await?;
            buffer.reserve(SEND_BYTES + 4096);
        }
    }
    buffer.extend_from_slice(&TRAILER);
    copy.send(buffer).await?;
    copy.finish().await
}

/// Appends change rows to the log, with the seqs they carry.
pub(super) async fn copy_changes(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    changes: &[ChangeRow<'_>],
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    copy_rows(
        tx,
        "COPY blocklist_changes (seq, list, value, op, scope, scenario, remediation, rule, reason, expires_at, at) \
         FROM STDIN (FORMAT binary)",
        changes,
        |out, change| {
            let e = change.entry;
            row(
                out,
                &[
                    Field::Int(change.seq),
                    Field::Text(&e.list),
                    Field::Text(&display_target(e.value)),
                    Field::Text(change.op.as_str()),
                    Field::Text(e.scope.as_str()),
                    Field::Text(&e.scenario),
                    Field::Text(e.remediation.as_str()),
                    Field::Text(e.rule.as_str()),
                    Field::MaybeText(change.reason),
                    Field::At(e.expires_at),
                    Field::At(at),
                ],
            );
        },
    )
    .await?;
    Ok(())
}

/// The columns of `blocklist_entries` that [`entry_row`] writes, in its order.
macro_rules! entry_columns {
    () => {
        "list, value, scope, scenario, remediation, rule, listed_at, expires_at, seq"
    };
}

/// Inserts or renews entries (a renewal keeps the stored `listed_at`), as the `UNNEST` upsert
/// does. `rows` holds each (list, value) once, in key order
/// ([`begin_entry_rows`](crate::store::lists::begin_entry_rows)).
///
/// Where none of the keys is stored yet (an import or a feed's first fetch into a new list, a
/// large consensus run of new listings) there is nothing to renew, and the rows are copied
/// straight into `blocklist_entries`, in about 60% of the upsert's time (whose every row pays a
/// second index descent and a speculative insertion). A sample of the keys ([`SAMPLE_EVERY`]) is
/// looked up first; if none is stored, the rows are copied straight in under a savepoint, which
/// is rolled back if a key turns out to be stored after all (a unique violation: PostgreSQL logs
/// it as an error), and the run goes the upsert's way: copied into a temporary table dropped at
/// commit, then upserted from it. Every list writer holds `LIST_WRITE_LOCK`, so no entry can
/// appear between the lookup and the copy.
pub(super) async fn copy_entries(tx: &mut sqlx::Transaction<'_, Postgres>, rows: &[EntryRow<'_>]) -> Result<(), sqlx::Error> {
    if !sample_stored(tx, rows).await? {
        // A savepoint: rolled back alone, the transaction goes on.
        let mut attempt = sqlx::Connection::begin(&mut **tx).await?;
        let straight = concat!("COPY blocklist_entries (", entry_columns!(), ") FROM STDIN (FORMAT binary)");
        match copy_rows(&mut attempt, straight, rows, entry_row).await {
            Ok(_) => return attempt.commit().await,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => attempt.rollback().await?,
            Err(e) => return Err(e),
        }
    }
    sqlx::query("CREATE TEMPORARY TABLE IF NOT EXISTS blocklist_import (LIKE blocklist_entries) ON COMMIT DROP")
        .execute(&mut **tx)
        .await?;
    sqlx::query("TRUNCATE blocklist_import").execute(&mut **tx).await?;
    let into_import = concat!("COPY blocklist_import (", entry_columns!(), ") FROM STDIN (FORMAT binary)");
    copy_rows(tx, into_import, rows, entry_row).await?;
    sqlx::query(concat!(
        "INSERT INTO blocklist_entries (",
        entry_columns!(),
        ") SELECT ",
        entry_columns!(),
        " FROM blocklist_import \
         ON CONFLICT (list, value) DO UPDATE SET scope = excluded.scope, scenario = excluded.scenario, \
         remediation = excluded.remediation, rule = excluded.rule, expires_at = excluded.expires_at, seq = excluded.seq"
    ))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every how many rows a key is looked up before copying straight in: a run that
/// renews even a few percent of its keys is all but certain to show one, for a few hundred
/// index lookups on a run of 50,000.
const SAMPLE_EVERY: usize = 100;

/// Whether any key of the sample (every [`SAMPLE_EVERY`]th row, the last one included) is stored.
async fn sample_stored(tx: &mut sqlx::Transaction<'_, Postgres>, rows: &[EntryRow<'_>]) -> Result<bool, sqlx::Error> {
    let sample = rows.iter().step_by(SAMPLE_EVERY).chain(rows.last());
    let (lists, values): (Vec<&str>, Vec<&str>) = sample.map(|r| (r.entry.list.as_str(), r.value.as_str())).unzip();
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM UNNEST($1::text[], $2::text[]) AS k(list, value) \
         JOIN blocklist_entries e ON e.list = k.list AND e.value = k.value)",
    )
    .bind(&lists)
    .bind(&values)
    .fetch_one(&mut **tx)
    .await
}

/// One entry row, its fields in the order of `entry_columns!`.
fn entry_row(out: &mut Vec<u8>, r: &EntryRow<'_>) {
    let e = r.entry;
    row(
        out,
        &[
            Field::Text(&e.list),
            Field::Text(&r.value),
            Field::Text(e.scope.as_str()),
            Field::Text(&e.scenario),
            Field::Text(e.remediation.as_str()),
            Field::Text(e.rule.as_str()),
            Field::At(r.listed_at),
            Field::At(e.expires_at),
            Field::Int(r.seq),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_fields_each_with_its_length_and_null_is_minus_one() {
        let mut out = Vec::new();
        row(&mut out, &[Field::Text("a\tb"), Field::MaybeText(None), Field::Text(""), Field::Int(-2)]);
        let expected: Vec<u8> = [
            &4i16.to_be_bytes()[..],
            &3i32.to_be_bytes(),
            b"a\tb",
            &(-1i32).to_be_bytes(),
            &0i32.to_be_bytes(),
            &8i32.to_be_bytes(),
            &(-2i64).to_be_bytes(),
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn instants_are_microseconds_since_2000_cut_as_sqlx_binds_them() {
        assert_eq!(micros(TIMESTAMP_EPOCH), 0);
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).expect("in range");
        assert_eq!(micros(at), (1_700_000_000 - 946_684_800) * 1_000_000 + 123_456);
        let before = OffsetDateTime::from_unix_timestamp_nanos(946_684_799_999_999_999).expect("in range");
        assert_eq!(micros(before), 0, "towards 2000, as sqlx's whole_microseconds");
    }
}
