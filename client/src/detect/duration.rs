//! Durations in detector specs: written as a number of seconds (`10`, `0.5`) or as a string with
//! one unit (`"500ms"`, `"10s"`, `"1m"`, `"2h"`), the way CrowdSec scenarios write `leakspeed`.
//! Always written back as a string of milliseconds or seconds. Owns parsing only.

use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// Parses `"500ms"`, `"10s"`, `"1.5s"`, `"1m"`, `"2h"` or a bare number of seconds (`"10"`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as \"10s\", \"1m\" or \"500ms\""))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use ms, s, m or h)")),
    };
    from_secs(seconds).ok_or_else(|| format!("`{text}` is out of range"))
}

fn from_secs(seconds: f64) -> Option<Duration> {
    (0.0..1e12).contains(&seconds).then(|| Duration::from_secs_f64(seconds))
}

/// Serialises as `"10s"` (or `"250ms"` below one second or for fractional seconds).
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    let text = if value.subsec_nanos() == 0 { format!("{}s", value.as_secs()) } else { format!("{}ms", value.as_millis()) };
    text.serialize(serializer)
}

/// Deserialises a number of seconds or a string with a unit.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number of seconds or a string such as \"10s\", \"1m\", \"500ms\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v).map(Duration::from_secs).map_err(|_| E::custom(format!("negative duration {v}")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            from_secs(v).ok_or_else(|| E::custom(format!("invalid duration {v}")))
        }
    }
    deserializer.deserialize_any(DurationVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_bare_numbers() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn rejects_unknown_units_and_garbage() {
        assert!(parse("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("ten seconds").is_err());
        assert!(parse("").is_err());
        assert!(parse("1.2.3s").is_err());
    }
}
