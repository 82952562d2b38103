//! The forms values take in the database, shared by both backends: typed values decoded from
//! their stored text (anything outside the closed set is corrupt), times as microseconds
//! (SQLite), and text with its NULs replaced (see the `store` module doc).

use std::borrow::Cow;

use time::OffsetDateTime;

use super::error::StoreError;

/// Reads a text column that holds one of a closed set (a scope, a level, an address, …) and
/// decodes it with `parse`; any other text is [`StoreError::Corrupt`] naming the column. Both
/// backends decode their rows through it, so they refuse the same texts.
pub(crate) fn decoded<R, T>(row: &R, column: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, StoreError>
where
    R: sqlx::Row,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let text: String = row.try_get(column)?;
    parse(&text).ok_or_else(|| StoreError::corrupt(column, &text))
}

/// Microseconds since the Unix epoch (the SQLite time representation).
pub(crate) fn to_micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1000) as i64
}

/// Inverse of [`to_micros`]; out-of-range values clamp to the epoch.
pub(crate) fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The form of `text` every backend stores: NUL replaced by U+FFFD (see the module doc).
pub(crate) fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(text) }
}

/// [`storable`] for an optional text.
pub(crate) fn storable_opt(text: Option<&str>) -> Option<Cow<'_, str>> {
    text.map(storable)
}

/// [`storable`] for JSON text, where a NUL can only appear escaped, in a string or a key. Text that
/// is not JSON is returned as is, for the backend to refuse.
pub(crate) fn storable_json(json: &str) -> Cow<'_, str> {
    if !json.contains("\\u0000") {
        return Cow::Borrowed(json);
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut value) => {
            scrub_nul(&mut value);
            Cow::Owned(value.to_string())
        }
        Err(_) => Cow::Borrowed(json),
    }
}

fn scrub_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            if let Cow::Owned(clean) = storable(text) {
                *text = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(object) => {
            let entries = std::mem::take(object);
            for (key, mut item) in entries {
                scrub_nul(&mut item);
                object.insert(storable(&key).into_owned(), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_in_text_and_json() {
        assert!(matches!(storable("plain"), Cow::Borrowed("plain")));
        assert_eq!(storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(storable_json(r#"{"a":"\\u0000"}"#), r#"{"a":"\\u0000"}"#, "an escaped backslash is no NUL");
        let dirty = json!({"k\0": ["x\0", {"n": 1, "s": "\0"}], "ok": null}).to_string();
        let clean: serde_json::Value = serde_json::from_str(&storable_json(&dirty)).expect("json");
        assert_eq!(clean, json!({"k\u{FFFD}": ["x\u{FFFD}", {"n": 1, "s": "\u{FFFD}"}], "ok": null}));
        assert_eq!(storable_json("not json \\u0000"), "not json \\u0000");
    }
}
