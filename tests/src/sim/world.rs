//! The simulated world built from a scenario and a seed: the address plan, honest machines and
//! their accounts, sensors, never-block ranges, canaries, shared (CGNAT) ranges, and the machines
//! of each adversary group. Everything here is fixed before the first report; what happens over
//! time is [`super::generate`]'s job.
//!
//! Address plan (synthetic, chosen so the spaces never overlap):
//! - reporters: AS number `10000 + i`, its /24s `64+i/256 . i%256 . p . 0/24` (one /16 per AS,
//!   so the no-AS-database fallback clusters exactly by AS);
//! - attackers, victims, benign addresses and canaries: scattered over 32.0.0.0/4;
//! - residential (dynamic) addresses: 96.0.0.0/6; CGNAT shared /22s: 150.0.0.0/8;
//! - IPv6 rotators: /64s in 2a0b::/16;
//! - never-block: public resolvers, CDN egress /20s in 104.16.0.0/13, crawler /24s in 157.55.0.0/16.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use palisade_server::engine::Time;
use palisade_server::engine::ipset::IpSet;
use palisade_server::engine::trust::Level;

use super::rng::{Rng, Weighted, scatter};
use super::scenario::{AsChoice, Scenario, Source};

/// Simulated time starts here (2026-01-01T00:00:00Z): the start of the warm-up.
pub const EPOCH: Time = 1_767_225_600;
/// Seconds per hour.
pub const HOUR: Time = 3600;
/// Seconds per day.
pub const DAY: Time = 86_400;

/// Seconds from a number of days or hours given as a float.
pub fn secs(amount: f64, unit: Time) -> Time {
    (amount * unit as f64).round() as Time
}

/// Who a machine works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An honest installation (possibly compromised later: see [`Machine::compromised_by`]).
    Honest,
    /// An operator sensor.
    Sensor,
    /// A machine registered by adversary group `n`.
    Adversary(usize),
}

/// One reporting machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Machine id given to the consensus (index + 1).
    pub id: i64,
    /// Account id.
    pub account: Option<i64>,
    /// Account level.
    pub level: Level,
    /// Registration time.
    pub created_at: Time,
    /// Index into the AS table.
    pub as_index: u32,
    /// Its /24.
    pub prefix: IpNet,
    /// Whether its scenarios are unmodified hub scenarios.
    pub certified: bool,
    /// Who it works for.
    pub role: Role,
    /// Adversary group that took it over, for compromised honest machines.
    pub compromised_by: Option<usize>,
}

impl Machine {
    /// Its AS number.
    pub fn asn(&self) -> u32 {
        10_000 + self.as_index
    }

    /// The independent unit it belongs to (account, or the machine itself), as one number.
    pub fn cluster(&self) -> i64 {
        self.account.unwrap_or(-self.id)
    }

    /// Whether it lies (registered by an adversary or taken over by one).
    pub fn malicious(&self) -> bool {
        matches!(self.role, Role::Adversary(_)) || self.compromised_by.is_some()
    }
}

/// One adversary group, placed.
#[derive(Debug, Clone)]
pub struct Group {
    /// Index into `scenario.adversaries`.
    pub spec: usize,
    /// Its machines (indices into `World::machines`).
    pub machines: Vec<u32>,
    /// When its fresh machines register.
    pub register_at: Time,
    /// When it strikes (the first strike phase).
    pub strike_at: Time,
    /// When each strike phase starts (`strike_at` first).
    pub strikes: Vec<Time>,
    /// Distinct accounts among its machines (machines without one are not accounts).
    pub accounts: usize,
    /// Distinct ASes among its machines.
    pub ases: usize,
}

/// The static world.
#[derive(Debug, Clone)]
pub struct World {
    /// Start of the warm-up.
    pub start: Time,
    /// Start of scoring.
    pub scored_from: Time,
    /// End of the run.
    pub end: Time,
    /// Every machine; a machine's id is its index + 1.
    pub machines: Vec<Machine>,
    /// Honest (non-sensor) machines, by index.
    pub honest: Vec<u32>,
    /// Their traffic weights, aligned with `honest`.
    pub activity: Weighted,
    /// Total of those weights.
    pub activity_total: f64,
    /// Honest machines by world AS.
    pub honest_by_as: Vec<Vec<u32>>,
    /// Zipf weights of the world's ASes.
    pub as_weights: Weighted,
    /// Sensors, by index.
    pub sensors: Vec<u32>,
    /// Honest accounts created.
    pub honest_accounts: usize,
    /// Never-block ranges.
    pub never_block: Vec<IpNet>,
    /// Canary addresses.
    pub canaries: Vec<IpNet>,
    /// Shared (CGNAT) ranges.
    pub shared: Vec<IpNet>,
    /// Adversary groups, aligned with `scenario.adversaries`.
    pub groups: Vec<Group>,
}

/// The /24 of prefix `p` in AS index `i`.
pub fn origin_prefix(as_index: u32, p: u32) -> IpNet {
    let addr = Ipv4Addr::new(64 + (as_index / 256) as u8, (as_index % 256) as u8, (p % 256) as u8, 0);
    IpNet::new(IpAddr::V4(addr), 24).expect("valid /24")
}

/// Address `n` of the scattered hosting space 32.0.0.0/4.
pub fn internet_address(n: u64, seed: u64) -> IpNet {
    let offset = scatter(n, 28, seed) as u32;
    IpNet::from(IpAddr::V4(Ipv4Addr::from((32u32 << 24) | offset)))
}

/// Residential address `n` in 96.0.0.0/6.
pub fn residential_address(n: u64, seed: u64) -> IpNet {
    let offset = scatter(n, 26, seed ^ 0x5EED) as u32;
    IpNet::from(IpAddr::V4(Ipv4Addr::from((96u32 << 24) | offset)))
}

/// The /64 of IPv6 rotator `n` in 2a0b::/16.
pub fn rotator_net(n: u64, seed: u64) -> IpNet {
    let high = (0x2a0bu128 << 112) | (u128::from(scatter(n, 48, seed ^ 0x6666)) << 64);
    IpNet::new(IpAddr::V6(Ipv6Addr::from(high)), 64).expect("valid /64")
}

/// Shared range `i` (a /22 in 150.0.0.0/8).
pub fn shared_range(i: u32) -> IpNet {
    IpNet::new(IpAddr::V4(Ipv4Addr::new(150, (i / 64) as u8, ((i % 64) * 4) as u8, 0)), 22).expect("valid /22")
}

/// A random address inside `net`.
pub fn address_in(net: IpNet, rng: &mut Rng) -> IpNet {
    match net {
        IpNet::V4(n) => {
            let size = 1u64 << (32 - n.prefix_len());
            let addr = u32::from(n.network()) | rng.below(size) as u32;
            IpNet::from(IpAddr::V4(Ipv4Addr::from(addr)))
        }
        IpNet::V6(n) => {
            let host_bits = 128 - u32::from(n.prefix_len());
            let mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
            let random = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) & mask;
            IpNet::from(IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | random)))
        }
    }
}

fn never_block_ranges(scenario: &Scenario) -> Vec<IpNet> {
    let w = &scenario.world;
    let known = ["8.8.8.0/24", "8.8.4.0/24", "1.1.1.0/24", "1.0.0.0/24", "9.9.9.0/24", "149.112.112.0/24", "208.67.222.0/24"];
    let mut out: Vec<IpNet> = Vec::new();
    for i in 0..w.resolver_ranges as usize {
        out.push(match known.get(i) {
            Some(text) => text.parse().expect("valid range"),
            None => IpNet::new(IpAddr::V4(Ipv4Addr::new(9, 10, i as u8, 0)), 24).expect("valid /24"),
        });
    }
    for i in 0..w.cdn_ranges {
        out.push(
            IpNet::new(IpAddr::V4(Ipv4Addr::new(104, (16 + i / 16) as u8, ((i % 16) * 16) as u8, 0)), 20).expect("valid /20"),
        );
    }
    for i in 0..w.crawler_ranges {
        out.push(IpNet::new(IpAddr::V4(Ipv4Addr::new(157, 55, i as u8, 0)), 24).expect("valid /24"));
    }
    out
}

/// Stream labels, so each part of the world draws from its own stream.
pub mod stream {
    /// Honest machines and accounts.
    pub const HONEST: u64 = 1;
    /// Sensors.
    pub const SENSORS: u64 = 2;
    /// Adversary groups' placement.
    pub const GROUPS: u64 = 3;
    /// Spawn schedule.
    pub const SCHEDULE: u64 = 4;
    /// One spawn's expansion.
    pub const SPAWN: u64 = 5;
    /// Appeals.
    pub const APPEALS: u64 = 6;
    /// Address scattering key.
    pub const ADDRESSES: u64 = 7;
}

impl World {
    /// Builds the world of `scenario` for `seed`.
    pub fn build(scenario: &Scenario, seed: u64) -> World {
        let w = &scenario.world;
        let start = EPOCH;
        let scored_from = start + secs(scenario.run.warmup_days, DAY);
        let end = scored_from + secs(scenario.run.days, DAY);
        let as_weights = Weighted::new((0..w.ases).map(|i| 1.0 / f64::from(i + 1).powf(w.as_skew)));
        let mut rng = Rng::new(seed, &[stream::HONEST]);
        let mut machines: Vec<Machine> = Vec::new();
        let mut activity = Vec::new();
        let mut honest_by_as = vec![Vec::new(); w.ases as usize];
        let mut next_account: i64 = 1;
        let mut new_machine = |machines: &mut Vec<Machine>, rng: &mut Rng, account, level, as_index: u32| {
            let index = machines.len() as u32;
            machines.push(Machine {
                id: i64::from(index) + 1,
                account,
                level,
                created_at: start - secs(rng.uniform(w.registered_days), DAY),
                as_index,
                prefix: origin_prefix(as_index, rng.below(u64::from(w.prefixes_per_as)) as u32),
                certified: !rng.chance(w.uncertified_fraction),
                role: Role::Honest,
                compromised_by: None,
            });
            honest_by_as[as_index as usize].push(index);
            activity.push((w.activity_spread * rng.normal() - w.activity_spread * w.activity_spread / 2.0).exp());
        };
        let levels = Weighted::new(w.levels.weights().iter().map(|(_, weight)| *weight));
        while (machines.len() as u32) < w.honest_machines {
            if rng.chance(w.solo_fraction) {
                let as_index = as_weights.pick(&mut rng) as u32;
                new_machine(&mut machines, &mut rng, None, Level::Anonymous, as_index);
                continue;
            }
            let account = next_account;
            next_account += 1;
            let level = w.levels.weights()[levels.pick(&mut rng)].0;
            let home = as_weights.pick(&mut rng) as u32;
            let mut size = 1;
            while rng.chance(1.0 - 1.0 / w.machines_per_account) {
                size += 1;
            }
            for _ in 0..size.min(w.honest_machines - machines.len() as u32) {
                let as_index = if rng.chance(w.account_home_as) { home } else { as_weights.pick(&mut rng) as u32 };
                new_machine(&mut machines, &mut rng, Some(account), level, as_index);
            }
        }
        let honest: Vec<u32> = (0..machines.len() as u32).collect();
        let activity_total: f64 = activity.iter().sum();
        let activity = Weighted::new(activity);
        let honest_accounts = (next_account - 1) as usize;

        // Adversaries' own ASes come right after the world's; the sensors' after those.
        let mut next_as = w.ases;
        let mut groups = Vec::new();
        let mut grng = Rng::new(seed, &[stream::GROUPS]);
        for (spec_index, spec) in scenario.adversaries.iter().enumerate() {
            let mut register_at = scored_from + secs(spec.register_day, DAY);
            let strike_at = register_at + secs(spec.honest_days, DAY);
            let strikes: Vec<Time> =
                (0..spec.strikes).map(|k| strike_at + secs(f64::from(k) * spec.strike_every_days, DAY)).collect();
            // Machines of given ages: each was created that long before the strike; the group
            // registers (and starts its honest behaviour) when its oldest machine could, at the
            // earliest at the start of the run.
            let registered = register_at;
            let created = move |j: u32| match spec.ages_days.is_empty() {
                true => registered,
                false => strike_at - secs(spec.ages_days[j as usize % spec.ages_days.len()], DAY),
            };
            if !spec.ages_days.is_empty() && spec.source == Source::Fresh {
                register_at = (0..spec.machines).map(created).min().unwrap_or(strike_at).max(start).min(strike_at);
            }
            let mut members = Vec::new();
            match spec.source {
                Source::Fresh => {
                    let ases: Vec<u32> = match spec.as_choice {
                        AsChoice::New => {
                            let first = next_as;
                            next_as += spec.ases;
                            (first..next_as).collect()
                        }
                        choice => {
                            let mut chosen: Vec<u32> = Vec::new();
                            let wanted = spec.ases.min(w.ases) as usize;
                            while chosen.len() < wanted {
                                let pick = if choice == AsChoice::Popular {
                                    as_weights.pick(&mut grng) as u32
                                } else {
                                    grng.below(u64::from(w.ases)) as u32
                                };
                                if !chosen.contains(&pick) {
                                    chosen.push(pick);
                                }
                            }
                            chosen
                        }
                    };
                    let account_base = next_account;
                    next_account += i64::from(spec.accounts);
                    for j in 0..spec.machines {
                        let as_index = ases[j as usize % ases.len()];
                        let p = (w.prefixes_per_as + (j / ases.len() as u32) % spec.prefixes_per_as) % 256;
                        let index = machines.len() as u32;
                        let account = (spec.accounts > 0).then(|| account_base + i64::from(j % spec.accounts));
                        machines.push(Machine {
                            id: i64::from(index) + 1,
                            account,
                            level: if account.is_some() { spec.level } else { Level::Anonymous },
                            created_at: created(j),
                            as_index,
                            prefix: origin_prefix(as_index, p),
                            certified: spec.certified,
                            role: Role::Adversary(spec_index),
                            compromised_by: None,
                        });
                        members.push(index);
                    }
                }
                Source::Compromised => {
                    let min_created = strike_at - secs(spec.min_age_days, DAY);
                    let mut eligible: Vec<u32> = honest
                        .iter()
                        .copied()
                        .filter(|&m| {
                            machines[m as usize].created_at <= min_created && machines[m as usize].compromised_by.is_none()
                        })
                        .collect();
                    let wanted =
                        ((eligible.len() as f64 * spec.compromised_fraction).round() as usize).clamp(1, eligible.len().max(1));
                    for k in 0..wanted.min(eligible.len()) {
                        let pick = k + grng.index(eligible.len() - k);
                        eligible.swap(k, pick);
                        machines[eligible[k] as usize].compromised_by = Some(spec_index);
                        members.push(eligible[k]);
                    }
                }
            }
            let mut accounts: Vec<i64> = members.iter().filter_map(|&m| machines[m as usize].account).collect();
            accounts.sort_unstable();
            accounts.dedup();
            let mut ases: Vec<u32> = members.iter().map(|&m| machines[m as usize].as_index).collect();
            ases.sort_unstable();
            ases.dedup();
            groups.push(Group {
                spec: spec_index,
                machines: members,
                register_at,
                strike_at,
                strikes,
                accounts: accounts.len(),
                ases: ases.len(),
            });
        }

        let mut srng = Rng::new(seed, &[stream::SENSORS]);
        let operator_account = next_account;
        let mut sensors = Vec::new();
        for s in 0..w.sensors {
            let as_index = next_as + s % w.sensor_ases.max(1);
            let index = machines.len() as u32;
            machines.push(Machine {
                id: i64::from(index) + 1,
                account: Some(operator_account),
                level: Level::Partner,
                created_at: start - 365 * DAY,
                as_index,
                prefix: origin_prefix(as_index, srng.below(256) as u32),
                certified: true,
                role: Role::Sensor,
                compromised_by: None,
            });
            sensors.push(index);
        }

        let address_key = super::rng::mix(seed, &[stream::ADDRESSES]);
        // Canaries take the top of the hosting counter space so they never collide with
        // addresses handed out from the bottom.
        let canaries = (0..u64::from(w.canaries)).map(|i| internet_address((1 << 28) - 1 - i, address_key)).collect();
        World {
            start,
            scored_from,
            end,
            machines,
            honest,
            activity,
            activity_total,
            honest_by_as,
            as_weights,
            sensors,
            honest_accounts,
            never_block: never_block_ranges(scenario),
            canaries,
            shared: (0..w.shared_ranges).map(shared_range).collect(),
            groups,
        }
    }

    /// The never-block set as the engine takes it.
    pub fn never_block_set(&self) -> IpSet {
        IpSet::new(self.never_block.iter().copied())
    }

    /// The canaries as the engine takes them.
    pub fn canary_set(&self) -> IpSet {
        IpSet::new(self.canaries.iter().copied())
    }

    /// The hosting space as the engine takes it (empty unless `world.hosting_ranges`).
    pub fn hosting_set(&self, scenario: &Scenario) -> IpSet {
        match scenario.world.hosting_ranges {
            true => IpSet::new(["32.0.0.0/4".parse::<IpNet>().expect("valid range")]),
            false => IpSet::default(),
        }
    }

    /// The shared ranges as the engine takes them.
    pub fn shared_set(&self) -> IpSet {
        IpSet::new(self.shared.iter().copied())
    }

    /// Distinct ASes the honest machines sit in.
    pub fn honest_ases(&self) -> usize {
        self.honest_by_as.iter().filter(|m| !m.is_empty()).count()
    }

    /// A machine drawn by traffic from the honest population.
    pub fn pick_honest(&self, rng: &mut Rng) -> u32 {
        self.honest[self.activity.pick(rng)]
    }
}
