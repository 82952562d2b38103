//! The scenario file: the world, its attackers, honest mistakes and adversary groups, as TOML.
//! Every knob has a default, so a scenario states only what it changes; `docs/simulator.md`
//! documents each one. This module parses and validates; it builds nothing.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use palisade_server::engine::params::Params;
use palisade_server::engine::trust::Level;
use serde::Deserialize;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Short name, printed in the scorecard.
    pub name: String,
    /// One sentence on what the scenario shows.
    pub description: String,
    /// Simulated time and evaluation cadence.
    pub run: RunSpec,
    /// Honest population and the operator's infrastructure.
    pub world: WorldSpec,
    /// Honest machines' false positives.
    pub honest_fp: HonestFpSpec,
    /// Victims of listings asking the operator for removal.
    pub appeals: AppealSpec,
    /// A public feed (imported blocklists) publishing real attackers some time after they start.
    pub public_feed: PublicFeedSpec,
    /// The naive baselines run beside the engine.
    pub baselines: BaselineSpec,
    /// Engine parameters overriding `Params::default()` (same names as in the server config).
    pub params: Option<toml::Table>,
    /// Real attackers, by kind.
    pub attackers: Vec<AttackerSpec>,
    /// Groups of machines that try to get innocent addresses listed.
    pub adversaries: Vec<AdversarySpec>,
}

/// Simulated time.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    /// Days run before scoring starts, so honest machines earn trust (not scored).
    pub warmup_days: f64,
    /// Scored days after the warm-up.
    pub days: f64,
    /// The engine is advanced every this many simulated seconds.
    pub step_secs: i64,
    /// Whether reports carry AS numbers (an AS database is configured); without, origins are
    /// clustered by IPv4 /16.
    pub use_asn: bool,
    /// Whether the engine enforces its never-block ranges (`Params::never_block_guard`). Off, the
    /// scorecard shows what the rest of the engine would list there (canaries are still guarded).
    pub never_block_guard: bool,
    /// Entries a capped consumer list holds (a firewall's address-list limit): the newest
    /// listings first. 0: no capped consumer scored.
    pub consumer_list_cap: usize,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec { warmup_days: 30.0, days: 30.0, step_secs: 60, use_asn: true, never_block_guard: true, consumer_list_cap: 0 }
    }
}

/// Account verification levels, as relative weights.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelMix {
    /// Unverified accounts.
    pub anonymous: f64,
    /// Verified e-mail.
    pub email: f64,
    /// Proven network ownership.
    pub verified: f64,
    /// Paying.
    pub paid: f64,
    /// Partners.
    pub partner: f64,
}

impl Default for LevelMix {
    fn default() -> Self {
        LevelMix { anonymous: 0.3, email: 0.5, verified: 0.12, paid: 0.06, partner: 0.02 }
    }
}

impl LevelMix {
    /// `(level, weight)` pairs in a fixed order.
    pub fn weights(&self) -> [(Level, f64); 5] {
        [
            (Level::Anonymous, self.anonymous),
            (Level::Email, self.email),
            (Level::Verified, self.verified),
            (Level::Paid, self.paid),
            (Level::Partner, self.partner),
        ]
    }
}

/// The honest population and the operator's infrastructure.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldSpec {
    /// ASes honest machines sit in.
    pub ases: u32,
    /// Zipf exponent of machines over ASes (0 = even; 1 = a few big hosting ASes).
    pub as_skew: f64,
    /// /24 prefixes per AS that machines sit in.
    pub prefixes_per_as: u32,
    /// Honest machines.
    pub honest_machines: u32,
    /// Share of honest machines without an account (each is then its own cluster, anonymous).
    pub solo_fraction: f64,
    /// Mean machines per account (geometric).
    pub machines_per_account: f64,
    /// Chance that a machine of an account sits in the account's home AS (else anywhere).
    pub account_home_as: f64,
    /// Account levels of honest accounts.
    pub levels: LevelMix,
    /// Age of honest machines when the warm-up starts, in days: `[min, max]`, uniform.
    pub registered_days: [f64; 2],
    /// Spread of honest machines' traffic (σ of a log-normal weight; 0 = all see as much).
    pub activity_spread: f64,
    /// Share of honest machines running modified (uncertified) scenarios.
    pub uncertified_fraction: f64,
    /// Operator sensors (honeypots).
    pub sensors: u32,
    /// ASes the sensors are spread over.
    pub sensor_ases: u32,
    /// Canary addresses the operator controls.
    pub canaries: u32,
    /// Chance that an address a liar invents at random is a canary.
    pub canary_density: f64,
    /// Public resolver /24s in the never-block set.
    pub resolver_ranges: u32,
    /// CDN egress /20s in the never-block set.
    pub cdn_ranges: u32,
    /// Search-engine crawler /24s in the never-block set.
    pub crawler_ranges: u32,
    /// CGNAT /22s marked as shared addresses.
    pub shared_ranges: u32,
    /// Whether the space of static attackers, victims and benign addresses (32.0.0.0/4) is
    /// configured as hosting ranges, where a /24 with enough listed addresses is listed whole.
    pub hosting_ranges: bool,
}

impl Default for WorldSpec {
    fn default() -> Self {
        WorldSpec {
            ases: 600,
            as_skew: 1.0,
            prefixes_per_as: 16,
            honest_machines: 2000,
            solo_fraction: 0.3,
            machines_per_account: 2.0,
            account_home_as: 0.8,
            levels: LevelMix::default(),
            registered_days: [30.0, 720.0],
            activity_spread: 1.0,
            uncertified_fraction: 0.05,
            sensors: 16,
            sensor_ases: 4,
            canaries: 64,
            canary_density: 0.01,
            resolver_ranges: 8,
            cdn_ranges: 16,
            crawler_ranges: 8,
            shared_ranges: 32,
            hosting_ranges: false,
        }
    }
}

/// Honest machines' false positives.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HonestFpSpec {
    /// Benign addresses each honest machine reports per day, each its own (uncorrelated).
    pub random_per_machine_day: f64,
    /// Benign addresses reported by several honest machines at once, per day.
    pub correlated_per_day: f64,
    /// Machines reporting one correlated benign address: `[min, max]`, log-uniform.
    pub correlated_machines: [u32; 2],
    /// Chance that each of them sits in one common AS (neighbours misreading the same thing).
    pub correlated_same_as: f64,
    /// The correlated reports spread over this many hours.
    pub correlated_hours: f64,
    /// Never-block addresses (resolvers, CDN egress, crawlers) reported by several honest
    /// machines at once, per day.
    pub never_block_per_day: f64,
    /// Machines reporting one never-block address: `[min, max]`, log-uniform.
    pub never_block_machines: [u32; 2],
}

impl Default for HonestFpSpec {
    fn default() -> Self {
        HonestFpSpec {
            random_per_machine_day: 0.05,
            correlated_per_day: 1.0,
            correlated_machines: [2, 6],
            correlated_same_as: 0.5,
            correlated_hours: 12.0,
            never_block_per_day: 2.0,
            never_block_machines: [2, 20],
        }
    }
}

/// Owners of wrongly listed addresses asking for removal; an upheld appeal delists and
/// penalises the supporters (`report_false_positive`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppealSpec {
    /// Chance that a wrongly listed victim or benign address is appealed.
    pub probability: f64,
    /// Hours from listing to the upheld appeal: `[min, max]`, uniform.
    pub delay_hours: [f64; 2],
    /// Chance that a listed real attacker appeals its own listing (after `delay_hours`).
    pub attacker_probability: f64,
    /// Chance that the operator upholds such an appeal (cannot tell it from an innocent's); an
    /// upheld one delists the attacker and penalises its (honest) reporters.
    pub attacker_upheld: f64,
}

impl Default for AppealSpec {
    fn default() -> Self {
        AppealSpec { probability: 0.5, delay_hours: [6.0, 48.0], attacker_probability: 0.0, attacker_upheld: 0.0 }
    }
}

/// A public feed: imported blocklists the engine is told about (`Engine::set_public`). It
/// publishes a share of the real attackers some hours after they start; reporting a published
/// address is an echo.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicFeedSpec {
    /// Share of real attacker addresses the feed publishes (0: no feed).
    pub coverage: f64,
    /// Hours from an attacker's start to its publication: `[min, max]`, uniform.
    pub delay_hours: [f64; 2],
    /// The engine's copy of the feed is refreshed every this many hours.
    pub refresh_hours: f64,
    /// A published address stays in the feed this many days.
    pub ttl_days: f64,
}

impl Default for PublicFeedSpec {
    fn default() -> Self {
        PublicFeedSpec { coverage: 0.0, delay_hours: [1.0, 12.0], refresh_hours: 1.0, ttl_days: 7.0 }
    }
}

/// The naive baselines.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineSpec {
    /// "List after N distinct machines".
    pub machines: usize,
    /// "List after N distinct accounts" (a machine without an account counts as one).
    pub accounts: usize,
    /// Reports older than this many hours no longer count.
    pub window_hours: f64,
    /// A listing lasts this many hours after its latest report.
    pub ttl_hours: f64,
    /// Whether the baselines honour the never-block set and canaries like the engine.
    pub honour_never_block: bool,
}

impl Default for BaselineSpec {
    fn default() -> Self {
        BaselineSpec { machines: 3, accounts: 3, window_hours: 168.0, ttl_hours: 24.0, honour_never_block: true }
    }
}

/// What an attacker looks like from the reporting side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackerKind {
    /// A fixed IPv4 address in hosting space.
    Static,
    /// A residential address reassigned to an innocent user every few hours.
    Dynamic,
    /// An IPv6 host using a new address of its /64 for every connection.
    Ipv6Rotator,
    /// An address behind carrier-grade NAT, shared with innocent users.
    Cgnat,
}

/// A population of real attackers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttackerSpec {
    /// Label (for the documentation; scoring is by breadth, not by label).
    pub name: String,
    /// Address behaviour.
    pub kind: AttackerKind,
    /// New attackers per day.
    pub per_day: f64,
    /// Honest machines that see one attacker: `[min, max]`, log-uniform.
    pub seen_by: [u32; 2],
    /// How long one attacker is active, in hours: `[min, max]`, log-uniform.
    pub active_hours: [f64; 2],
    /// Chance that each sensor sees it.
    pub sensor_chance: f64,
    /// Reports a machine sends about an attacker it sees: `[min, max]`, uniform.
    pub reports_per_sighting: [u32; 2],
    /// `dynamic` only: hours a residential address is held before it is reassigned: `[min, max]`.
    pub reassign_hours: [f64; 2],
    /// Scenario name reported.
    pub scenario: String,
}

impl Default for AttackerSpec {
    fn default() -> Self {
        AttackerSpec {
            name: "attackers".into(),
            kind: AttackerKind::Static,
            per_day: 10.0,
            seen_by: [1, 10],
            active_hours: [1.0, 24.0],
            sensor_chance: 0.0,
            reports_per_sighting: [1, 2],
            reassign_hours: [6.0, 48.0],
            scenario: "crowdsecurity/ssh-bf".into(),
        }
    }
}

/// Where an adversary group's machines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Machines the adversary registers.
    Fresh,
    /// Long-standing honest machines taken over.
    Compromised,
}

/// Which ASes a fresh group sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsChoice {
    /// The world's ASes, drawn by size (cloud and hosting providers honest machines also use).
    Popular,
    /// The world's ASes, drawn evenly.
    Random,
    /// ASes of their own, where no honest machine sits.
    New,
}

/// Which addresses a group wants listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VictimKind {
    /// Chosen addresses (a competitor's servers): fresh innocent addresses.
    Targeted,
    /// Invented addresses: each is a canary with `world.canary_density`.
    Random,
    /// Resolvers, CDN egress and crawlers.
    NeverBlock,
    /// The operator's canaries themselves (only useful with `spoofed`: framing honest reporters).
    Canary,
}

/// A group of machines under one adversary's control.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdversarySpec {
    /// Label, printed with the cheapest success.
    pub name: String,
    /// Fresh machines or compromised honest ones.
    pub source: Source,
    /// `fresh`: number of machines.
    pub machines: u32,
    /// `compromised`: share of honest machines at least `min_age_days` old at the strike.
    pub compromised_fraction: f64,
    /// `compromised`: minimum age of the machines taken over.
    pub min_age_days: f64,
    /// `fresh`: accounts the machines are spread over (0 = no accounts: each machine alone).
    pub accounts: u32,
    /// `fresh`: level of those accounts.
    pub level: Level,
    /// `fresh`: ASes the machines are spread over.
    pub ases: u32,
    /// `fresh`: which ASes.
    pub as_choice: AsChoice,
    /// `fresh`: /24s per AS.
    pub prefixes_per_as: u32,
    /// `fresh`: day (from the start of scoring; negative = during or before the warm-up) the
    /// machines register. Nothing is simulated before the warm-up, so honest days spent before
    /// it earn nothing.
    pub register_day: f64,
    /// Days between registration and the strike, spent behaving honestly. For `compromised`, the
    /// strike is at `register_day + honest_days`.
    pub honest_days: f64,
    /// During the honest days, how much traffic each machine sees relative to an average honest one.
    pub sighting_rate: f64,
    /// Hours the strike's reports are spread over.
    pub strike_hours: f64,
    /// Share of the strike's reports that are lies; the rest echo real attackers.
    pub lie_fraction: f64,
    /// Each machine reports each victim this many times.
    pub reports_per_victim: u32,
    /// Which victims.
    pub victims: VictimKind,
    /// How many victims.
    pub victim_count: u32,
    /// Scenario name the lies carry.
    pub scenario: String,
    /// Whether the lies claim an unmodified hub scenario.
    pub certified: bool,
    /// Instead of (or besides) its own machines reporting, the group sends traffic spoofed from
    /// each victim: honest machines and sensors genuinely see it and report the victim under
    /// `scenario` (needs no machine at all: `machines = 0`).
    pub spoofed: bool,
    /// `spoofed`: honest machines that see one victim's spoofed traffic: `[min, max]`, log-uniform.
    pub spoof_seen_by: [u32; 2],
    /// `spoofed`: chance that each sensor sees it.
    pub spoof_sensor_chance: f64,
    /// `fresh`: the machines' ages in days at the (first) strike, machine `j` taking entry
    /// `j % len` (empty: all registered on `register_day`). Mixes old and young machines in one
    /// group sharing one victim set.
    pub ages_days: Vec<f64>,
    /// During the honest days, the share of the public feed's publications each machine echoes
    /// (reports right after publication), on top of `sighting_rate`.
    pub echo_feed: f64,
    /// Strike phases (on-off): each lists `victim_count` new victims; between them the machines
    /// go back to their honest behaviour.
    pub strikes: u32,
    /// Days between the starts of two strike phases.
    pub strike_every_days: f64,
    /// Random addresses (a junk flood, in 176.0.0.0/4) each machine reports during each strike
    /// phase, spread over `strike_hours`.
    pub junk_per_machine: u64,
    /// Canary probing: each victim is reported by one machine only (round robin), the
    /// machine's victims spread evenly over `strike_hours`, so a penalty that becomes visible
    /// tells the adversary which of its addresses was a canary (`canaries_identified`).
    pub probe: bool,
    /// `targeted`: the victims of a strike phase sit side by side in one /24 (a competitor's
    /// servers), so listing enough of them lists the /24 in hosting space.
    pub victims_one_24: bool,
}

impl Default for AdversarySpec {
    fn default() -> Self {
        AdversarySpec {
            name: "adversary".into(),
            source: Source::Fresh,
            machines: 100,
            compromised_fraction: 0.005,
            min_age_days: 90.0,
            accounts: 0,
            level: Level::Anonymous,
            ases: 1,
            as_choice: AsChoice::Popular,
            prefixes_per_as: 4,
            register_day: 0.0,
            honest_days: 0.0,
            sighting_rate: 1.0,
            strike_hours: 6.0,
            lie_fraction: 1.0,
            reports_per_victim: 1,
            victims: VictimKind::Targeted,
            victim_count: 10,
            scenario: "crowdsecurity/ssh-bf".into(),
            certified: true,
            spoofed: false,
            spoof_seen_by: [5, 50],
            spoof_sensor_chance: 0.5,
            ages_days: Vec::new(),
            echo_feed: 0.0,
            strikes: 1,
            strike_every_days: 7.0,
            junk_per_machine: 0,
            probe: false,
            victims_one_24: false,
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "unnamed".into(),
            description: String::new(),
            run: RunSpec::default(),
            world: WorldSpec::default(),
            honest_fp: HonestFpSpec::default(),
            appeals: AppealSpec::default(),
            public_feed: PublicFeedSpec::default(),
            baselines: BaselineSpec::default(),
            params: None,
            attackers: Vec::new(),
            adversaries: Vec::new(),
        }
    }
}

/// Most ASes the address plan has room for (world plus adversaries' own plus the sensors').
pub const MAX_ASES: u32 = 4000;

impl Scenario {
    /// Reads and validates a scenario file. A file may start from another one with
    /// `extends = "other.toml"` (relative to it): tables are merged key by key, and any other
    /// value, arrays of tables included, replaces the base's.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let table = load_table(path, 0)?;
        Self::from_table(table).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and validates scenario text (no `extends`).
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        Self::from_table(toml::from_str(text)?)
    }

    fn from_table(table: toml::Table) -> anyhow::Result<Scenario> {
        ensure!(!table.contains_key("extends"), "`extends` only works in a scenario file");
        let scenario = Scenario::deserialize(toml::Value::Table(table))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The engine parameters: defaults with the scenario's overrides, and the never-block guard
    /// as `run.never_block_guard` says.
    pub fn params(&self) -> anyhow::Result<Params> {
        let mut params = match &self.params {
            None => Params::default(),
            Some(table) => Params::deserialize(toml::Value::Table(table.clone())).context("invalid [params]")?,
        };
        params.never_block_guard = self.run.never_block_guard;
        Ok(params)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let w = &self.world;
        ensure!(self.run.step_secs > 0, "run.step_secs must be positive");
        ensure!(self.run.days > 0.0 && self.run.warmup_days >= 0.0, "run.days must be positive, run.warmup_days not negative");
        ensure!(
            w.ases >= 1 && w.prefixes_per_as >= 1 && w.prefixes_per_as <= 256,
            "world.ases ≥ 1, world.prefixes_per_as in 1..=256"
        );
        ensure!(w.honest_machines >= 1, "world.honest_machines must be at least 1");
        ensure!(w.registered_days[0] <= w.registered_days[1], "world.registered_days is [min, max]");
        ensure!(w.machines_per_account >= 1.0, "world.machines_per_account must be at least 1");
        ensure!(
            w.shared_ranges <= 4096 && w.cdn_ranges <= 128 && w.crawler_ranges <= 256 && w.resolver_ranges <= 256,
            "too many ranges"
        );
        let adversary_ases: u32 = self.adversaries.iter().filter(|a| a.as_choice == AsChoice::New).map(|a| a.ases).sum();
        if w.ases + w.sensor_ases.max(1) + adversary_ases > MAX_ASES {
            bail!("at most {MAX_ASES} ASes in all (world, sensors and adversaries' own)");
        }
        for a in &self.attackers {
            ensure!(a.seen_by[0] <= a.seen_by[1], "attackers.{}: seen_by is [min, max]", a.name);
            ensure!(a.active_hours[0] > 0.0 && a.active_hours[0] <= a.active_hours[1], "attackers.{}: active_hours", a.name);
            ensure!(
                a.reports_per_sighting[0] >= 1 && a.reports_per_sighting[0] <= a.reports_per_sighting[1],
                "attackers.{}: reports_per_sighting",
                a.name
            );
            ensure!(
                a.reassign_hours[0] > 0.0 && a.reassign_hours[0] <= a.reassign_hours[1],
                "attackers.{}: reassign_hours",
                a.name
            );
        }
        for a in &self.adversaries {
            ensure!(
                (0.0..=1.0).contains(&a.lie_fraction) && a.lie_fraction > 0.0,
                "adversaries.{}: lie_fraction in (0, 1]",
                a.name
            );
            ensure!(
                a.source == Source::Compromised || (a.ases >= 1 && a.prefixes_per_as >= 1 && a.prefixes_per_as <= 256),
                "adversaries.{}: ases and prefixes_per_as",
                a.name
            );
            ensure!(a.reports_per_victim >= 1, "adversaries.{}: reports_per_victim", a.name);
            ensure!(a.spoof_seen_by[0] <= a.spoof_seen_by[1], "adversaries.{}: spoof_seen_by is [min, max]", a.name);
            ensure!(a.ages_days.iter().all(|d| *d >= 0.0), "adversaries.{}: ages_days must not be negative", a.name);
            ensure!(
                a.strikes >= 1 && (a.strikes == 1 || a.strike_every_days > 0.0),
                "adversaries.{}: strikes ≥ 1, strike_every_days positive",
                a.name
            );
            ensure!((0.0..=1.0).contains(&a.echo_feed), "adversaries.{}: echo_feed in [0, 1]", a.name);
            ensure!(a.strike_hours > 0.0, "adversaries.{}: strike_hours must be positive", a.name);
            ensure!(!a.victims_one_24 || a.victim_count <= 254, "adversaries.{}: at most 254 victims in one /24", a.name);
        }
        let f = &self.public_feed;
        ensure!((0.0..=1.0).contains(&f.coverage), "public_feed.coverage in [0, 1]");
        ensure!(
            f.delay_hours[0] >= 0.0 && f.delay_hours[0] <= f.delay_hours[1] && f.refresh_hours > 0.0 && f.ttl_days > 0.0,
            "public_feed: delay_hours is [min, max], refresh_hours and ttl_days positive"
        );
        let a = &self.appeals;
        ensure!(
            [a.probability, a.attacker_probability, a.attacker_upheld].iter().all(|p| (0.0..=1.0).contains(p)),
            "appeals: probabilities in [0, 1]"
        );
        self.params()?;
        Ok(())
    }
}

/// Reads a scenario file as a table, with its `extends` chain merged in.
fn load_table(path: &Path, depth: usize) -> anyhow::Result<toml::Table> {
    ensure!(depth < 8, "`extends` nests too deep at {}", path.display());
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
    let Some(base) = table.remove("extends") else { return Ok(table) };
    let Some(base) = base.as_str() else { bail!("`extends` in {} must be a file name", path.display()) };
    let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
    let mut merged = load_table(&base_path, depth + 1)?;
    merge(&mut merged, table);
    Ok(merged)
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_extends_merges_tables_and_replaces_arrays() {
        for (name, text) in crate::sim::PRESETS {
            Scenario::parse(text).unwrap_or_else(|e| panic!("preset {name}: {e:#}"));
        }
        let mut base: toml::Table = toml::from_str("[world]\nases = 10\nsensors = 3\n[[attackers]]\nper_day = 1.0\n").unwrap();
        merge(
            &mut base,
            toml::from_str("[world]\nsensors = 5\n[[attackers]]\nper_day = 2.0\n[[attackers]]\nper_day = 3.0\n").unwrap(),
        );
        let scenario = Scenario::from_table(base).unwrap();
        assert_eq!((scenario.world.ases, scenario.world.sensors, scenario.attackers.len()), (10, 5, 2));
    }

    #[test]
    fn every_shipped_scenario_file_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                loaded += 1;
            }
        }
        assert!(loaded >= 14, "{loaded} scenario files");
    }
}
