//! The arithmetic both limiter backends share, and what it is about: tiers (configuration, not
//! code), what a check counts against ([`LimitKey`]), a burst rate by GCRA and daily and monthly
//! quotas in UTC calendar windows, and the [`Decision`] the `X-RateLimit-*` headers report.
//! Pure: the time is passed in.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, Time};

/// What the limiter counts lookups against. Its text (`acct:7`, `machine:12`) names the
/// counters, in Redis too, so it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// An account, by its internal id: all its API keys and its console searches share one
    /// quota, so extra keys do not add quota.
    Account(i64),
    /// A machine looking addresses up with its token (the machine tier, per machine), by its
    /// internal id.
    Machine(i64),
}

impl LimitKey {
    /// The account charged, if an account is.
    pub fn account(&self) -> Option<i64> {
        match self {
            LimitKey::Account(id) => Some(*id),
            LimitKey::Machine(_) => None,
        }
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKey::Account(id) => write!(f, "acct:{id}"),
            LimitKey::Machine(id) => write!(f, "machine:{id}"),
        }
    }
}

/// What one tier may do. Tiers are configuration (`[tiers.<name>]`), not code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Lookups per UTC day (a bulk lookup costs one per address).
    pub lookups_per_day: u64,
    /// Lookups per UTC calendar month.
    pub lookups_per_month: u64,
    /// Sustained lookups per second.
    pub rate_per_sec: f64,
    /// Lookups allowed back to back above the sustained rate.
    pub burst: u32,
    /// Most addresses in one bulk lookup.
    pub bulk_max: usize,
    /// Blocklists it may pull, each with the most entries served (0: unlimited). Lists not
    /// named here are not served to the tier.
    #[serde(default)]
    pub blocklists: BTreeMap<String, u64>,
}

/// The default tiers, modelled on the anchors (see the README): CrowdSec CTI's free keys get
/// tens of lookups a day, AbuseIPDB 1,000 checks a day free and 10k–50k paid, blocklists of 3k,
/// 15k or unlimited entries.
pub fn default_tiers() -> BTreeMap<String, Tier> {
    let tier = |day, month, rate, burst, bulk, list: u64| Tier {
        lookups_per_day: day,
        lookups_per_month: month,
        rate_per_sec: rate,
        burst,
        bulk_max: bulk,
        blocklists: BTreeMap::from([("community".to_string(), list)]),
    };
    BTreeMap::from([
        ("free".to_string(), tier(50, 1_500, 1.0, 10, 10, 3_000)),
        ("basic".to_string(), tier(1_000, 30_000, 10.0, 50, 100, 15_000)),
        ("pro".to_string(), tier(10_000, 300_000, 50.0, 200, 1_000, 0)),
        ("enterprise".to_string(), tier(50_000, 1_500_000, 200.0, 1_000, 1_000, 0)),
    ])
}

/// Checks a set of tiers: `free` must exist (new accounts get it) and every number make sense.
pub fn validate_tiers(tiers: &BTreeMap<String, Tier>) -> anyhow::Result<()> {
    if !tiers.contains_key(DEFAULT_TIER) {
        anyhow::bail!("tiers must include a tier named \"free\": new accounts get it");
    }
    for (name, tier) in tiers {
        if tier.lookups_per_day == 0 || tier.lookups_per_month < tier.lookups_per_day {
            anyhow::bail!("tiers.{name}: lookups_per_day must be above zero and lookups_per_month at least lookups_per_day");
        }
        if !(tier.rate_per_sec > 0.0 && tier.rate_per_sec.is_finite()) || tier.burst == 0 || tier.bulk_max == 0 {
            anyhow::bail!("tiers.{name}: rate_per_sec, burst and bulk_max must be above zero");
        }
    }
    Ok(())
}

/// The tier of new accounts, and of accounts whose tier is no longer configured.
pub const DEFAULT_TIER: &str = "free";

/// The outcome of one check, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (and was counted).
    pub allowed: bool,
    /// The binding quota: the daily limit, or the monthly one when less of it remains.
    pub limit: u64,
    /// Lookups left in that quota.
    pub remaining: u64,
    /// Seconds until that quota resets.
    pub reset_secs: u64,
    /// When refused, seconds until a retry can succeed.
    pub retry_after_secs: u64,
}

/// Calendar windows containing `now`: (day id, seconds to its end, month id, seconds to its end).
pub fn windows(now_us: i64) -> (i64, u64, i64, u64) {
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_us) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let day_start = now.replace_time(Time::MIDNIGHT);
    let day_end = day_start + time::Duration::days(1);
    let (year, month) = (now.year(), now.month());
    let (next_year, next_month) = if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
    let month_end = Date::from_calendar_date(next_year, next_month, 1).map(|d| d.midnight().assume_utc()).unwrap_or(day_end);
    let secs_to = |end: OffsetDateTime| ((end - now).whole_microseconds().max(0) as u64).div_ceil(1_000_000);
    let day_id = day_start.unix_timestamp() / 86_400;
    let month_id = i64::from(year) * 12 + i64::from(u8::from(month));
    (day_id, secs_to(day_end), month_id, secs_to(month_end))
}

/// GCRA: given the stored theoretical arrival time `tat` (µs), whether `cost` more requests fit
/// at `now`, the new `tat` if so, and otherwise the wait in µs.
pub fn gcra(tat: i64, now: i64, interval_us: i64, burst: u32, cost: u32) -> Result<i64, i64> {
    let tat = tat.max(now);
    let new_tat = tat + interval_us * i64::from(cost);
    let allow_at = new_tat - interval_us * i64::from(burst);
    if allow_at > now { Err(allow_at - now) } else { Ok(new_tat) }
}

/// Microseconds between two requests at the tier's sustained rate.
pub fn interval_us(tier: &Tier) -> i64 {
    (1_000_000.0 / tier.rate_per_sec).ceil() as i64
}

/// The numbers a check is made under, taken from a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// µs between two lookups at the sustained rate.
    pub interval_us: i64,
    /// Lookups allowed back to back.
    pub burst: u32,
    /// Lookups per day.
    pub per_day: u64,
    /// Lookups per month.
    pub per_month: u64,
}

impl Limits {
    /// The limits of `tier`.
    pub fn of(tier: &Tier) -> Self {
        Limits {
            interval_us: interval_us(tier),
            burst: tier.burst,
            per_day: tier.lookups_per_day,
            per_month: tier.lookups_per_month,
        }
    }
}

/// An account's counters in the current windows: the GCRA time and the lookups counted today
/// and this month.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Theoretical arrival time, µs.
    pub tat: i64,
    /// Counted in the day.
    pub day: u64,
    /// Counted in the month.
    pub month: u64,
}

impl Usage {
    /// One check of `cost` lookups at `now_us`: the burst first, then both quotas; counted
    /// (the usage advanced) only when all allow. Both backends decide with this.
    pub fn check(&mut self, limits: Limits, cost: u32, now_us: i64) -> Counted {
        let verdict = match gcra(self.tat, now_us, limits.interval_us, limits.burst, cost) {
            Err(wait) => Verdict::Burst(wait),
            Ok(_) if self.day + u64::from(cost) > limits.per_day || self.month + u64::from(cost) > limits.per_month => {
                Verdict::Quota
            }
            Ok(new_tat) => {
                self.tat = new_tat;
                self.day += u64::from(cost);
                self.month += u64::from(cost);
                Verdict::Allowed
            }
        };
        Counted { verdict, day_used: self.day, month_used: self.month }
    }
}

/// The per-account counters one check reads and, when allowed, advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Outcome.
    pub verdict: Verdict,
    /// Used in the day, after this check.
    pub day_used: u64,
    /// Used in the month, after this check.
    pub month_used: u64,
}

/// Why a check failed, or that it passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted.
    Allowed,
    /// Over the burst rate; retry after the µs given.
    Burst(i64),
    /// Over the daily or monthly quota.
    Quota,
}

/// Turns counters into the decision the headers report.
pub fn decide(tier: &Tier, counted: Counted, now_us: i64) -> Decision {
    let (_, day_reset, _, month_reset) = windows(now_us);
    let day_left = tier.lookups_per_day.saturating_sub(counted.day_used);
    let month_left = tier.lookups_per_month.saturating_sub(counted.month_used);
    let (limit, remaining, reset_secs) = if month_left < day_left {
        (tier.lookups_per_month, month_left, month_reset)
    } else {
        (tier.lookups_per_day, day_left, day_reset)
    };
    let retry_after_secs = match counted.verdict {
        Verdict::Allowed => 0,
        Verdict::Burst(wait_us) => (wait_us.max(1) as u64).div_ceil(1_000_000),
        Verdict::Quota => reset_secs.max(1),
    };
    Decision { allowed: counted.verdict == Verdict::Allowed, limit, remaining, reset_secs, retry_after_secs }
}

#[cfg(test)]
mod tests {
    use super::LimitKey;

    #[test]
    fn limit_keys_keep_their_counter_names() {
        assert_eq!(LimitKey::Account(7).to_string(), "acct:7");
        assert_eq!(LimitKey::Machine(12).to_string(), "machine:12");
        assert_eq!(LimitKey::Account(7).account(), Some(7));
        assert_eq!(LimitKey::Machine(7).account(), None);
    }
}
