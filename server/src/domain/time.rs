//! Time as the pure rooms count it (whole seconds since the Unix epoch) and the one text form
//! every answer writes it in (RFC 3339). No clock: callers pass the time in.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch.
pub type Time = i64;

/// RFC 3339 text of a time.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_rfc3339() {
        assert_eq!(rfc3339(time::macros::datetime!(2026-11-25 12:00:00 UTC)), "2026-11-25T12:00:00Z");
    }
}
