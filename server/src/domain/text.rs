//! Free text from clients. PostgreSQL cannot store NUL in `text` or `jsonb` while SQLite can. The
//! routes that take free text (signal items, enrollment names and tags, metrics payloads, list
//! descriptions, signal filters) refuse NUL with these checks, on both backends alike: no client
//! has a reason to send it, and the answer must not depend on which engine is configured. Text
//! that reaches the store anyway has its NULs replaced by U+FFFD there (`store::storable`), so
//! both engines still store and find the same value.

use serde_json::Value;

/// Whether `text` holds a NUL character.
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// Whether any string or object key anywhere in `value` holds a NUL character.
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => has_nul(text),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(key, value)| has_nul(key) || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_is_found_in_nested_strings_and_keys() {
        assert!(contains_nul(&json!({"a": [{"b": "x\u{0}"}]})));
        assert!(contains_nul(&json!({"k\u{0}": 1})));
        assert!(!contains_nul(&json!({"a": ["\\u0000 is only text here", 1, null, true]})));
    }
}
