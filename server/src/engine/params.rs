//! Engine parameters with their defaults. They are starting points tuned with the simulator
//! (`palisade-sim`), not truths; `docs/trust.md` explains each one to operators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::scenarios::ScenarioClass;

/// Every tunable of the consensus engine. Times are in seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Reports older than this no longer support a listing.
    pub evidence_window_secs: i64,
    /// Beta prior (sceptical): pseudo-count of good behaviour.
    pub prior_good: f64,
    /// Beta prior (sceptical): pseudo-count of bad behaviour.
    pub prior_bad: f64,
    /// How many standard deviations below the posterior mean trust is taken (a lower bound).
    pub trust_lower_bound_sds: f64,
    /// Half-life of positive evidence.
    pub good_half_life_secs: i64,
    /// Half-life of negative evidence (remembered longer than positive).
    pub bad_half_life_secs: i64,
    /// A machine's weight is 0 until it is this old.
    pub ramp_start_secs: i64,
    /// …and reaches full weight at this age.
    pub ramp_full_secs: i64,
    /// Credit for a leading report (reported before independent confirmation).
    pub lead_credit: f64,
    /// Credit for an echo (reported while the address was listed or on a public list).
    pub echo_credit: f64,
    /// Penalty for reporting a never-block address.
    pub never_block_penalty: f64,
    /// Penalty for each supporter of an upheld false positive (a proven lie: it also wipes the
    /// machine's record, and doubles with every earlier lie).
    pub false_positive_penalty: f64,
    /// An upheld false positive reported by this many trusted clusters or fewer is a lie at full
    /// strength for each; reported by more, each supporter's share shrinks in proportion, so an
    /// honest machine among many that were misled together loses little.
    pub lie_full_strength_clusters: f64,
    /// Reports of distinct never-block addresses within this period compound: the n-th costs
    /// `never_block_penalty` × `never_block_compounding`^(n-1).
    pub never_block_memory_secs: i64,
    /// How much each further distinct never-block address costs over the one before.
    pub never_block_compounding: f64,
    /// Machines weigh nothing below this trust (no dust from thousands of weak Sybils).
    pub trust_floor: f64,
    /// Trust cap per account verification level.
    pub level_caps: LevelCaps,
    /// Support needed on the crowd path.
    pub crowd_support: f64,
    /// Distinct ASes needed on the crowd path.
    pub crowd_min_ases: usize,
    /// Distinct accounts needed on the crowd path.
    pub crowd_min_accounts: usize,
    /// Distinct ASes of established machines that anchor a crowd listing (a sensor sighting also anchors).
    pub anchor_min_ases: usize,
    /// A machine is established after this age…
    pub established_age_secs: i64,
    /// …with at least this trust.
    pub established_trust: f64,
    /// Support needed on the broad path (no anchor).
    pub broad_support: f64,
    /// Distinct ASes and accounts needed on the broad path.
    pub broad_min_clusters: usize,
    /// Only clusters with at least this trust count on the broad path.
    pub broad_cluster_trust: f64,
    /// …and only machines at least this old.
    pub broad_min_age_secs: i64,
    /// Multiplier on every threshold for shared addresses (CGNAT, VPN, Tor, proxies).
    pub shared_multiplier: f64,
    /// First listing lifetime.
    pub base_ttl_secs: i64,
    /// Longest lifetime after renewals (each renewal with fresh evidence doubles it).
    pub max_ttl_secs: i64,
    /// After an upheld false positive, only a sensor can list the address again for this long.
    pub false_positive_protection_secs: i64,
    /// Reports of a canary void the account's reports of this recent period.
    pub canary_void_window_secs: i64,
    /// Canary consequences become visible outside the admin view only at multiples of this period.
    pub penalty_batch_secs: i64,
    /// New distinct targets per hour above which a machine's weight is damped.
    pub burst_threshold_per_hour: u32,
    /// When no AS database is configured, origins are clustered by this IPv4 prefix instead of AS.
    pub fallback_v4_as_prefix: u8,
    /// …and this IPv6 prefix.
    pub fallback_v6_as_prefix: u8,
    /// The operator's scenario classes, over the shipped table ([`super::scenarios::SHIPPED`]).
    pub scenarios: BTreeMap<String, ScenarioClass>,
    /// Name fragments marking spoofable scenarios among those in neither table.
    pub spoofable_scenarios: Vec<String>,
    /// Weight of a report by its scenario trust: certified 1, others below.
    pub uncertified_weight: f64,
    /// An IPv4 /24 inside configured hosting space is listed whole while at least this many of
    /// its addresses are listed with a ban (0: never expand).
    pub expand_v4_24_after: u32,
    /// A target keeps at most this many reporters (the engine's memory per address).
    pub max_reporters_per_target: usize,
    /// Past this many reporters, a target takes new ones only from machines above `trust_floor`
    /// (a flood of worthless machines cannot crowd trusted ones out).
    pub untrusted_reporters_per_target: usize,
    /// New targets a machine may add to the engine per UTC day; past it its reports of new
    /// addresses are left to the store (the engine's memory per machine).
    pub max_new_targets_per_machine_day: u32,
    /// New targets the machines below `trust_floor` of one cluster (an account, or a /24 for
    /// machines without one) may add per UTC day together.
    pub max_new_targets_per_untrusted_cluster_day: u32,
    /// Whether never-block ranges are enforced. Always on in the server; the simulator turns it
    /// off to measure what the rest of the engine would list without it (not configurable).
    #[serde(skip)]
    pub never_block_guard: bool,
}

/// Trust caps by account verification level.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LevelCaps {
    /// No account, or an unverified one.
    pub anonymous: f64,
    /// Verified e-mail.
    pub email: f64,
    /// Proven ownership of the network it reports from.
    pub verified: f64,
    /// Paying account.
    pub paid: f64,
    /// Partner or operator-owned.
    pub partner: f64,
}

impl Default for LevelCaps {
    fn default() -> Self {
        LevelCaps { anonymous: 0.5, email: 0.6, verified: 0.8, paid: 0.85, partner: 0.95 }
    }
}

const DAY: i64 = 86_400;

impl Default for Params {
    fn default() -> Self {
        Params {
            evidence_window_secs: 7 * DAY,
            prior_good: 1.0,
            prior_bad: 4.0,
            trust_lower_bound_sds: 1.0,
            good_half_life_secs: 90 * DAY,
            bad_half_life_secs: 180 * DAY,
            ramp_start_secs: 3 * DAY,
            ramp_full_secs: 30 * DAY,
            lead_credit: 1.0,
            echo_credit: 0.0,
            never_block_penalty: 0.25,
            false_positive_penalty: 3.0,
            lie_full_strength_clusters: 3.0,
            never_block_memory_secs: 30 * DAY,
            never_block_compounding: 1.0,
            trust_floor: 0.1,
            level_caps: LevelCaps::default(),
            crowd_support: 1.5,
            crowd_min_ases: 3,
            crowd_min_accounts: 3,
            anchor_min_ases: 2,
            established_age_secs: 250 * DAY,
            established_trust: 0.5,
            broad_support: 6.0,
            broad_min_clusters: 8,
            broad_cluster_trust: 0.3,
            broad_min_age_secs: 90 * DAY,
            shared_multiplier: 2.0,
            base_ttl_secs: DAY,
            max_ttl_secs: 7 * DAY,
            false_positive_protection_secs: 30 * DAY,
            canary_void_window_secs: 30 * DAY,
            penalty_batch_secs: 6 * 3600,
            burst_threshold_per_hour: 2000,
            fallback_v4_as_prefix: 16,
            fallback_v6_as_prefix: 32,
            scenarios: BTreeMap::new(),
            spoofable_scenarios: ["udp", "flood", "ddos", "portscan", "port-scan", "scan-multi_ports", "icmp", "sip-"]
                .map(String::from)
                .to_vec(),
            uncertified_weight: 0.5,
            expand_v4_24_after: 8,
            max_reporters_per_target: 1024,
            untrusted_reporters_per_target: 256,
            max_new_targets_per_machine_day: 20_000,
            max_new_targets_per_untrusted_cluster_day: 2_000,
            never_block_guard: true,
        }
    }
}
