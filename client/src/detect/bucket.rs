//! The leaky bucket one detector keeps per address. Pure: the caller passes the time of each
//! event. Owns the overflow rule and the blackout; knows nothing of lines or patterns.

use std::time::Duration;

use time::OffsetDateTime;

/// Tolerance for the float level, so that rounding never turns `capacity` into an overflow.
const EPSILON: f64 = 1e-9;

/// One address's bucket for one detector.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    /// Level at `last_seen`, in events; leaks one event per `leak_speed`.
    level: f64,
    /// Events poured since the bucket was last empty.
    events: u32,
    first_seen: OffsetDateTime,
    last_seen: OffsetDateTime,
    /// After an overflow, events before this instant are ignored.
    blackout_until: Option<OffsetDateTime>,
}

/// What overflowed: how many events since the bucket was last empty, and when they happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Overflow {
    pub events: u32,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

impl Bucket {
    /// An empty bucket.
    pub fn new(now: OffsetDateTime) -> Bucket {
        Bucket { level: 0.0, events: 0, first_seen: now, last_seen: now, blackout_until: None }
    }

    fn leaked_level(&self, now: OffsetDateTime, leak_speed: Duration) -> f64 {
        let elapsed = (now - self.last_seen).as_seconds_f64().max(0.0);
        (self.level - elapsed / leak_speed.as_secs_f64()).max(0.0)
    }

    /// Pours one event. Overflows (and empties, and starts the blackout) when the level exceeds
    /// `capacity`, so the `capacity + 1`-th event in a burst is the one that triggers, as in
    /// CrowdSec. Events during a blackout are dropped, not counted. Time going backwards counts
    /// as no time passing.
    pub fn pour(&mut self, now: OffsetDateTime, capacity: u32, leak_speed: Duration, blackout: Duration) -> Option<Overflow> {
        if let Some(until) = self.blackout_until {
            if now < until {
                return None;
            }
            self.blackout_until = None;
        }
        let level = self.leaked_level(now, leak_speed);
        if level <= EPSILON {
            self.events = 0;
            self.first_seen = now;
        }
        self.level = level + 1.0;
        self.events = self.events.saturating_add(1);
        self.last_seen = self.last_seen.max(now);
        if self.level <= f64::from(capacity) + EPSILON {
            return None;
        }
        let overflow = Overflow { events: self.events, first_seen: self.first_seen, last_seen: self.last_seen };
        self.level = 0.0;
        self.events = 0;
        self.blackout_until = Some(now + blackout);
        Some(overflow)
    }

    /// True when forgetting the bucket changes nothing: it has leaked empty and no blackout runs.
    pub fn is_idle(&self, now: OffsetDateTime, leak_speed: Duration) -> bool {
        self.blackout_until.is_none_or(|until| now >= until) && self.leaked_level(now, leak_speed) <= EPSILON
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-25 10:00:00 UTC);

    fn at(secs: f64) -> OffsetDateTime {
        T0 + time::Duration::seconds_f64(secs)
    }

    const LEAK: Duration = Duration::from_secs(10);
    const BLACKOUT: Duration = Duration::from_secs(60);

    #[test]
    fn burst_of_capacity_plus_one_overflows_on_the_last_event() {
        let mut bucket = Bucket::new(T0);
        for i in 0..5 {
            assert_eq!(bucket.pour(at(f64::from(i)), 5, LEAK, BLACKOUT), None, "event {i}");
        }
        let overflow = bucket.pour(at(5.0), 5, LEAK, BLACKOUT).expect("sixth event overflows");
        assert_eq!(overflow, Overflow { events: 6, first_seen: at(0.0), last_seen: at(5.0) });
    }

    #[test]
    fn events_slower_than_the_leak_never_overflow() {
        let mut bucket = Bucket::new(T0);
        for i in 0..100 {
            assert_eq!(bucket.pour(at(f64::from(i) * 10.5), 5, LEAK, BLACKOUT), None, "event {i}");
        }
    }

    #[test]
    fn partial_leak_lets_more_events_in_before_overflow() {
        let mut bucket = Bucket::new(T0);
        // One event every 5 s leaks half an event between events: level grows by 0.5 each time,
        // so level passes 5 on the 10th event (1 + 9 * 0.5 = 5.5).
        for i in 0..9 {
            assert_eq!(bucket.pour(at(f64::from(i) * 5.0), 5, LEAK, BLACKOUT), None, "event {i}");
        }
        let overflow = bucket.pour(at(45.0), 5, LEAK, BLACKOUT).expect("tenth event overflows");
        assert_eq!(overflow.events, 10);
        assert_eq!(overflow.first_seen, at(0.0));
    }

    #[test]
    fn a_bucket_that_leaked_empty_starts_counting_again() {
        let mut bucket = Bucket::new(T0);
        for i in 0..5 {
            bucket.pour(at(f64::from(i)), 5, LEAK, BLACKOUT);
        }
        // 5 events leak out in 50 s; the next burst starts from zero.
        for i in 0..5 {
            assert_eq!(bucket.pour(at(100.0 + f64::from(i)), 5, LEAK, BLACKOUT), None, "event {i}");
        }
        let overflow = bucket.pour(at(105.0), 5, LEAK, BLACKOUT).expect("overflow");
        assert_eq!(overflow.events, 6);
        assert_eq!(overflow.first_seen, at(100.0));
    }

    #[test]
    fn blackout_drops_events_then_counting_restarts() {
        let mut bucket = Bucket::new(T0);
        for i in 0..6 {
            bucket.pour(at(f64::from(i)), 5, LEAK, BLACKOUT);
        }
        for i in 0..50 {
            assert_eq!(bucket.pour(at(6.0 + f64::from(i)), 5, LEAK, BLACKOUT), None, "blackout event {i}");
        }
        assert!(!bucket.is_idle(at(60.0), LEAK), "blackout still running");
        assert!(bucket.is_idle(at(65.0), LEAK));
        for i in 0..5 {
            assert_eq!(bucket.pour(at(65.0 + f64::from(i)), 5, LEAK, BLACKOUT), None, "after blackout {i}");
        }
        assert!(bucket.pour(at(70.0), 5, LEAK, BLACKOUT).is_some());
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let mut bucket = Bucket::new(T0);
        bucket.pour(at(100.0), 1, LEAK, BLACKOUT);
        assert!(bucket.pour(at(50.0), 1, LEAK, BLACKOUT).is_some());
    }
}
