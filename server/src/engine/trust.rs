//! Machine trust T(m) in [0, 1]: the lower bound of a Beta posterior over the machine's record
//! (sceptical prior, positive evidence forgotten faster than negative), times an age ramp, capped
//! by its account's verification level. Sensors are pre-trusted; a canary report zeroes a machine.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::params::Params;
pub use crate::domain::level::Level;
use crate::domain::time::Time;

/// The most trust a machine of an account at `level` can have.
fn level_cap(level: Level, params: &Params) -> f64 {
    let caps = &params.level_caps;
    match level {
        Level::Anonymous => caps.anonymous,
        Level::Email => caps.email,
        Level::Verified => caps.verified,
        Level::Paid => caps.paid,
        Level::Partner => caps.partner,
    }
}

/// What the engine knows about a machine, persisted between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineState {
    /// Account id; machines without one are their own cluster.
    pub account: Option<i64>,
    /// Account level.
    pub level: Level,
    /// Operator's sensor.
    pub sensor: bool,
    /// Registration time.
    pub created_at: Time,
    /// Decayed positive evidence, as of `updated_at`.
    pub good: f64,
    /// Decayed negative evidence, as of `updated_at`.
    pub bad: f64,
    /// Time `good` and `bad` were last brought forward.
    pub updated_at: Time,
    /// Leading reports credited, ever (not decayed; for the operator).
    pub leads: u64,
    /// Set when the machine reported a canary: it weighs nothing from then on.
    pub zeroed_at: Option<Time>,
    /// When the zeroing becomes visible outside the admin view.
    pub penalty_visible_at: Option<Time>,
    /// Start of the current burst-counting hour.
    pub burst_hour: Time,
    /// New targets reported in that hour.
    pub burst_count: u32,
    /// Decisive proven lies so far (strength at least 0.5), each weighted by its strength (not forgotten).
    #[serde(default)]
    pub lies: f64,
    /// Distinct never-block addresses reported recently, with when (at most [`NEVER_BLOCK_HITS`]).
    #[serde(default)]
    pub never_block_hits: Vec<(Time, IpNet)>,
    /// Start of the UTC day counted in `day_new_targets`.
    #[serde(default)]
    pub day_start: Time,
    /// New targets this machine added to the engine that day.
    #[serde(default)]
    pub day_new_targets: u32,
}

/// Never-block addresses remembered per machine for compounding.
pub const NEVER_BLOCK_HITS: usize = 16;

/// Start of the UTC day holding `now`.
pub fn day_of(now: Time) -> Time {
    now - now.rem_euclid(86_400)
}

impl MachineState {
    /// A machine the engine has not seen evidence for.
    pub fn new(account: Option<i64>, level: Level, sensor: bool, created_at: Time) -> Self {
        MachineState {
            account,
            level,
            sensor,
            created_at,
            good: 0.0,
            bad: 0.0,
            updated_at: created_at,
            leads: 0,
            zeroed_at: None,
            penalty_visible_at: None,
            burst_hour: 0,
            burst_count: 0,
            lies: 0.0,
            never_block_hits: Vec::new(),
            day_start: 0,
            day_new_targets: 0,
        }
    }

    /// A proven lie of `strength` in (0, 1] (1: the machine's report was decisive): the
    /// positive record shrinks by that share, and `penalty` × strength is added, doubled for
    /// every full earlier lie, so no record outweighs a lie and repeated lies compound.
    pub fn proven_lie(&mut self, strength: f64, penalty: f64, now: Time, params: &Params) {
        let strength = strength.clamp(0.0, 1.0);
        let (good, bad) = self.decayed(now, params);
        let compounding = 2f64.powf(self.lies.min(10.0));
        self.good = good * (1.0 - strength);
        self.bad = bad + penalty * strength * compounding;
        self.updated_at = now.max(self.updated_at);
        // Only decisive lies compound: a share of a mistake made by many is not a habit.
        if strength >= 0.5 {
            self.lies += strength;
        }
    }

    /// A report of the never-block address `target`: the first distinct address within
    /// `never_block_memory_secs` costs `never_block_penalty` × `strength` (the machine's share of
    /// the mistake, see [`mistake_strength`]), each further one `never_block_compounding` times
    /// the one before; a repeat of a remembered address costs nothing more. Returns the full
    /// penalty of the address (before `strength`) when it cost, for a later [`Self::refund`].
    pub fn never_block_hit(&mut self, target: IpNet, now: Time, strength: f64, params: &Params) -> Option<f64> {
        let since = now - params.never_block_memory_secs;
        self.never_block_hits.retain(|(at, _)| *at >= since);
        if let Some(hit) = self.never_block_hits.iter_mut().find(|(_, t)| *t == target) {
            hit.0 = now;
            return None;
        }
        let penalty =
            params.never_block_penalty * params.never_block_compounding.powi(self.never_block_hits.len().min(30) as i32);
        if self.never_block_hits.len() >= NEVER_BLOCK_HITS {
            self.never_block_hits.remove(0);
        }
        self.never_block_hits.push((now, target));
        self.add_evidence(0.0, penalty * strength.clamp(0.0, 1.0), now, params);
        Some(penalty)
    }

    /// Takes back `bad` evidence added at `at` (as it has decayed since): a penalty found to be
    /// too heavy once more was known.
    pub fn refund(&mut self, bad: f64, at: Time, now: Time, params: &Params) {
        let (good, current) = self.decayed(now, params);
        let dt = (now - at).max(0) as f64;
        let owed = bad * (-dt * std::f64::consts::LN_2 / params.bad_half_life_secs.max(1) as f64).exp();
        self.good = good;
        self.bad = (current - owed).max(0.0);
        self.updated_at = now.max(self.updated_at);
    }

    /// Counts one new target against the machine's daily allowance; false when it is spent.
    pub fn take_daily_target(&mut self, now: Time, params: &Params) -> bool {
        let day = day_of(now);
        if day != self.day_start {
            self.day_start = day;
            self.day_new_targets = 0;
        }
        if self.day_new_targets >= params.max_new_targets_per_machine_day {
            return false;
        }
        self.day_new_targets += 1;
        true
    }

    fn decayed(&self, now: Time, params: &Params) -> (f64, f64) {
        let dt = (now - self.updated_at).max(0) as f64;
        // Most machines carry no negative (and many no positive) evidence: skip their `exp`.
        let decay = |value: f64, half_life: i64| {
            if value == 0.0 || dt == 0.0 { value } else { value * (-dt * std::f64::consts::LN_2 / half_life.max(1) as f64).exp() }
        };
        (decay(self.good, params.good_half_life_secs), decay(self.bad, params.bad_half_life_secs))
    }

    /// Adds evidence at `now` (positive `good`, negative `bad`).
    pub fn add_evidence(&mut self, good: f64, bad: f64, now: Time, params: &Params) {
        let (g, b) = self.decayed(now, params);
        self.good = g + good;
        self.bad = b + bad;
        self.updated_at = now.max(self.updated_at);
    }

    /// The decayed evidence at `now`.
    pub fn evidence(&self, now: Time, params: &Params) -> (f64, f64) {
        self.decayed(now, params)
    }

    /// Trust at `now`.
    pub fn trust(&self, now: Time, params: &Params) -> f64 {
        if self.sensor {
            return 1.0;
        }
        if self.zeroed_at.is_some() {
            return 0.0;
        }
        let (good, bad) = self.decayed(now, params);
        let lower = beta_lower_bound(params.prior_good + good, params.prior_bad + bad, params.trust_lower_bound_sds);
        lower.min(level_cap(self.level, params)) * self.age_ramp(now, params)
    }

    /// Trust as the machine itself may see it: a zeroing stays hidden until its batch boundary.
    pub fn visible_trust(&self, now: Time, params: &Params) -> f64 {
        match (self.zeroed_at, self.penalty_visible_at) {
            (Some(_), Some(visible)) if now < visible => {
                let mut before = self.clone();
                before.zeroed_at = None;
                before.trust(now, params)
            }
            _ => self.trust(now, params),
        }
    }

    /// 0 before `ramp_start`, 1 after `ramp_full`, linear between.
    pub fn age_ramp(&self, now: Time, params: &Params) -> f64 {
        let age = (now - self.created_at) as f64;
        let start = params.ramp_start_secs as f64;
        let full = (params.ramp_full_secs as f64).max(start + 1.0);
        ((age - start) / (full - start)).clamp(0.0, 1.0)
    }

    /// Counts a new target towards the burst detector and returns the damping factor in (0, 1].
    pub fn count_new_target(&mut self, now: Time, params: &Params) -> f64 {
        let hour = now - now.rem_euclid(3600);
        if hour != self.burst_hour {
            self.burst_hour = hour;
            self.burst_count = 0;
        }
        self.burst_count = self.burst_count.saturating_add(1);
        self.burst_damping(now, params)
    }

    /// Weight damping while the machine is in an unusual burst of new targets.
    pub fn burst_damping(&self, now: Time, params: &Params) -> f64 {
        let threshold = params.burst_threshold_per_hour.max(1);
        if now - now.rem_euclid(3600) != self.burst_hour || self.burst_count <= threshold {
            1.0
        } else {
            f64::from(threshold) / f64::from(self.burst_count)
        }
    }
}

/// The share of a mistake each of `clusters` independent clusters bears when they made it
/// together: 1 (a lie) for up to `lie_full_strength_clusters`, falling with the square of their
/// number beyond, so a machine misled together with many unrelated ones loses little while a
/// coalition cannot dilute its lies without recruiting many independent, trusted clusters.
pub fn mistake_strength(clusters: usize, params: &Params) -> f64 {
    let share = (params.lie_full_strength_clusters / clusters.max(1) as f64).min(1.0);
    share * share
}

/// Mean minus `sds` standard deviations of Beta(a, b), clamped to [0, 1].
pub fn beta_lower_bound(a: f64, b: f64, sds: f64) -> f64 {
    let n = a + b;
    let mean = a / n;
    let var = a * b / (n * n * (n + 1.0));
    (mean - sds * var.sqrt()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn new_machines_have_zero_trust_and_earn_it_slowly() {
        let p = Params::default();
        let mut m = MachineState::new(None, Level::Verified, false, 0);
        assert_eq!(m.trust(0, &p), 0.0, "age ramp starts at zero");
        assert!(m.trust(60 * DAY, &p) < p.trust_floor, "no evidence: below the floor even when old");
        for i in 0..30 {
            m.add_evidence(p.lead_credit, 0.0, 30 * DAY + i * 3600, &p);
        }
        let earned = m.trust(31 * DAY, &p);
        assert!(earned > 0.6 && earned <= p.level_caps.verified, "{earned}");
    }

    #[test]
    fn trust_is_lost_faster_than_earned_and_capped_by_level() {
        let p = Params::default();
        let with = |level, good: u32, false_positives: u32| {
            let mut m = MachineState::new(None, level, false, 0);
            for _ in 0..good {
                m.add_evidence(p.lead_credit, 0.0, 40 * DAY, &p);
            }
            for _ in 0..false_positives {
                m.add_evidence(0.0, p.false_positive_penalty, 40 * DAY, &p);
            }
            m.trust(40 * DAY, &p)
        };
        let full = with(Level::Partner, 50, 0);
        let one_false_positive = with(Level::Partner, 50, 1);
        let three_fewer_leads = with(Level::Partner, 47, 0);
        assert!(
            full - one_false_positive > full - three_fewer_leads,
            "one upheld false positive costs more than three leads earn"
        );
        assert!((with(Level::Anonymous, 50, 0) - p.level_caps.anonymous).abs() < 1e-9, "capped by level");
    }

    #[test]
    fn sensors_are_trusted_and_canaries_zero_with_a_delayed_visible_effect() {
        let p = Params::default();
        assert_eq!(MachineState::new(None, Level::Anonymous, true, 0).trust(0, &p), 1.0);
        let mut m = MachineState::new(None, Level::Partner, false, 0);
        for _ in 0..40 {
            m.add_evidence(1.0, 0.0, 40 * DAY, &p);
        }
        let before = m.trust(40 * DAY, &p);
        m.zeroed_at = Some(40 * DAY);
        m.penalty_visible_at = Some(40 * DAY + 3600);
        assert_eq!(m.trust(40 * DAY, &p), 0.0);
        assert_eq!(m.visible_trust(40 * DAY, &p), before);
        assert_eq!(m.visible_trust(40 * DAY + 3600, &p), 0.0);
    }

    #[test]
    fn evidence_decays_with_its_half_life() {
        let p = Params::default();
        let mut m = MachineState::new(None, Level::Anonymous, false, 0);
        m.add_evidence(8.0, 8.0, 0, &p);
        let (good, bad) = m.evidence(p.good_half_life_secs, &p);
        assert!((good - 4.0).abs() < 1e-9);
        assert!(bad > 4.0);
    }

    #[test]
    fn a_proven_lie_outweighs_any_record_and_lies_compound() {
        let p = Params::default();
        let mut m = MachineState::new(Some(1), Level::Partner, false, 0);
        for _ in 0..500 {
            m.add_evidence(p.lead_credit, 0.0, 400 * DAY, &p);
        }
        assert!(m.trust(400 * DAY, &p) > 0.9);
        m.proven_lie(1.0, p.false_positive_penalty, 400 * DAY, &p);
        assert!(m.trust(400 * DAY, &p) < p.trust_floor, "one decisive lie: below the floor whatever the record");
        let mut shared = MachineState::new(Some(1), Level::Partner, false, 0);
        for _ in 0..500 {
            shared.add_evidence(p.lead_credit, 0.0, 400 * DAY, &p);
        }
        shared.proven_lie(0.03, p.false_positive_penalty, 400 * DAY, &p);
        assert!(shared.trust(400 * DAY, &p) > 0.9, "misled with a hundred others: loses little");
        let (_, first) = m.evidence(400 * DAY, &p);
        m.proven_lie(1.0, p.false_positive_penalty, 400 * DAY, &p);
        let (_, second) = m.evidence(400 * DAY, &p);
        assert!((second - first - 2.0 * p.false_positive_penalty).abs() < 1e-9, "the second lie costs twice");
    }

    #[test]
    fn never_block_reports_compound_by_distinct_address() {
        let p = Params { never_block_compounding: 2.0, ..Params::default() };
        let mut m = MachineState::new(Some(1), Level::Verified, false, 0);
        let a: IpNet = "8.8.8.8/32".parse().unwrap();
        assert_eq!(m.never_block_hit(a, DAY, 1.0, &p), Some(p.never_block_penalty));
        assert_eq!(m.never_block_hit(a, DAY + 60, 1.0, &p), None, "a repeat costs nothing more");
        let (_, bad) = m.evidence(DAY, &p);
        assert!((bad - p.never_block_penalty).abs() < 1e-6);
        for i in 0..5u8 {
            m.never_block_hit(IpNet::from(std::net::IpAddr::from([1, 1, 1, i])), DAY, 1.0, &p);
        }
        let (_, bad) = m.evidence(DAY, &p);
        assert!((bad - p.never_block_penalty * 63.0).abs() < 1e-6, "1 + 2 + … + 32 penalties: {bad}");
    }

    #[test]
    fn the_daily_allowance_of_new_targets_resets_each_utc_day() {
        let p = Params { max_new_targets_per_machine_day: 2, ..Params::default() };
        let mut m = MachineState::new(None, Level::Anonymous, false, 0);
        assert!(m.take_daily_target(DAY + 1, &p) && m.take_daily_target(DAY + 2, &p));
        assert!(!m.take_daily_target(DAY + 3, &p));
        assert!(m.take_daily_target(2 * DAY, &p));
    }

    #[test]
    fn bursts_are_damped() {
        let p = Params { burst_threshold_per_hour: 10, ..Params::default() };
        let mut m = MachineState::new(None, Level::Anonymous, false, 0);
        let mut last = 1.0;
        for _ in 0..20 {
            last = m.count_new_target(7200, &p);
        }
        assert!((last - 0.5).abs() < 1e-9);
        assert_eq!(m.burst_damping(3 * 3600, &p), 1.0, "a new hour settles");
    }
}
