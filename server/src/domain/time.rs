//! Time as the pure rooms count it (whole seconds since the Unix epoch) and its text forms: RFC
//! 3339 for a time, Go's duration syntax for the durations CrowdSec reads. No clock: callers
//! pass the time in.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch.
pub type Time = i64;

/// RFC 3339 text of a time.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Go duration syntax (`23h59m59s`): what CrowdSec's `time.ParseDuration` accepts (never `d`).
pub fn go_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_rfc3339() {
        assert_eq!(rfc3339(time::macros::datetime!(2026-11-25 12:00:00 UTC)), "2026-11-25T12:00:00Z");
    }

    #[test]
    fn durations_use_go_syntax_without_days() {
        assert_eq!(go_duration(86_399), "23h59m59s");
        assert_eq!(go_duration(7 * 86_400), "168h0m0s");
        assert_eq!(go_duration(61), "1m1s");
        assert_eq!(go_duration(5), "5s");
        assert_eq!(go_duration(-3), "0s");
    }
}
