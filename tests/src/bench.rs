//! What the benchmark programs in `src/bin` share: the machine-readable line each prints for
//! every ratio it measures against a target, which `tests/bench-quick` collects into its table,
//! and the open-loop arrivals of the mixed-load phases. It only formats and paces; what a request
//! is, what it measures and whether a ratio is good enough are the programs' business (the quick
//! script reports, it never fails on a ratio).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

/// A `free` tier whose quotas no benchmark reaches, as configuration TOML: a benchmark measures
/// the server (and the limiter's cost), not its refusals of one busy key.
pub const UNLIMITED_TIERS: &str = r#"
[tiers.free]
lookups_per_day = 1000000000000
lookups_per_month = 1000000000000
rate_per_sec = 1000000000.0
burst = 1000000000
bulk_max = 100
"#;

/// How a measured ratio compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// The ratio must be at least the target (throughput against a baseline).
    AtLeast,
    /// The ratio must be at most the target (time or memory against a baseline).
    AtMost,
}

impl Goal {
    fn symbol(self) -> &'static str {
        match self {
            Goal::AtLeast => ">=",
            Goal::AtMost => "<=",
        }
    }
}

/// The line `tests/bench-quick` parses: `RATIO <name> <value> <>=|<=> <target>`, with a name
/// free of spaces. Printed beside each program's own human-readable output.
pub fn ratio_line(name: &str, value: f64, goal: Goal, target: f64) -> String {
    debug_assert!(!name.contains(char::is_whitespace), "ratio names have no spaces: {name:?}");
    format!("RATIO {name} {value:.3} {} {target}", goal.symbol())
}

/// Open-loop arrivals: one every `1 / rate` seconds until `until`, each sent by `send` as a task
/// of its own, so a slow answer does not slow the next arrival. At most `in_flight` requests wait
/// for their answer at once; an arrival past that is not sent, and `dropped` is told. `missed`
/// says what the ticks do when this loop falls behind (`Burst` catches up on the schedule, `Delay`
/// shifts it). Returns once every request sent has finished; at once for a rate of zero or less.
pub async fn open_loop<S, F>(rate: f64, until: Instant, in_flight: usize, missed: MissedTickBehavior, send: S, dropped: impl Fn())
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    if rate <= 0.0 {
        return;
    }
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(missed);
    while Instant::now() < until {
        ticks.tick().await;
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            dropped();
            continue;
        };
        let request = send();
        tokio::spawn(async move {
            request.await;
            drop(permit);
        });
    }
    // Every request still in flight ends before the phase does.
    drop(gate.acquire_many(in_flight as u32).await);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_line_names_its_goal_and_target() {
        assert_eq!(ratio_line("ingest.sqlite.50", 0.31234, Goal::AtLeast, 0.3), "RATIO ingest.sqlite.50 0.312 >= 0.3");
        assert_eq!(ratio_line("apply.nftables", 1.1, Goal::AtMost, 1.5), "RATIO apply.nftables 1.100 <= 1.5");
    }
}
