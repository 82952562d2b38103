//! Scenario tests of the engine: each builds a small world and checks one property of the model.

use super::*;

const DAY: Time = 86_400;

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().unwrap()))
}

/// A world with `n` long-standing machines (90 days old, each its own account and AS) that have
/// earned trust through sensor-confirmed leading reports.
struct World {
    engine: Engine,
    now: Time,
}

impl World {
    fn new() -> Self {
        let mut engine = Engine::new(Params::default(), true);
        engine.set_never_block(IpSet::new([net("8.8.8.0/24")]));
        engine.set_canaries(IpSet::new([net("45.1.1.1/32")]));
        World { engine, now: 300 * DAY }
    }

    fn machine(&mut self, id: i64, account: Option<i64>, created_at: Time, sensor: bool) {
        self.engine.upsert_machine(id, account, Level::Verified, sensor, created_at);
    }

    fn report(&mut self, machine: i64, target: &str, asn: u32) {
        self.report_as(machine, target, asn, "crowdsecurity/ssh-bf");
    }

    fn report_as(&mut self, machine: i64, target: &str, asn: u32, scenario: &str) {
        let prefix = IpNet::new(IpAddr::from([100, (asn % 250) as u8, (machine % 250) as u8, 0]), 24).unwrap();
        self.engine.process(&Report {
            machine,
            target: net(target),
            scenario,
            certified: true,
            origin_prefix: prefix,
            origin_asn: Some(asn),
            at: self.now,
        });
    }

    fn advance(&mut self, secs: Time) -> Vec<Change> {
        self.now += secs;
        self.engine.advance(self.now)
    }

    fn listed(&self, target: &str) -> bool {
        self.engine.target(net(target)).is_some_and(|s| s.listing.is_some())
    }

    /// Machines 1..=n, old, trusted by leading 20 sensor-confirmed attackers each.
    fn trusted(&mut self, n: i64) {
        for m in 1..=n {
            self.machine(m, Some(m), 0, false);
        }
        self.lead(1..=n, 20);
    }

    /// `machines` (each in AS 100 + its id) each report `target`.
    fn all_report(&mut self, machines: std::ops::RangeInclusive<i64>, target: &str) {
        for m in machines {
            self.report(m, target, 100 + m as u32);
        }
    }

    /// `machines` lead `rounds` attackers that sensor 1000 (registered here) confirms.
    fn lead(&mut self, machines: std::ops::RangeInclusive<i64>, rounds: u32) {
        self.machine(1000, None, 0, true);
        for k in 0..rounds {
            let target = format!("77.{k}.0.1");
            self.all_report(machines.clone(), &target);
            self.advance(60);
            self.report(1000, &target, 1);
            self.advance(60);
        }
    }
}

#[test]
fn sensor_reports_list_at_once_and_credit_the_machines_that_led() {
    let mut w = World::new();
    w.machine(1000, None, w.now, true);
    w.machine(1, Some(1), 0, false);
    w.report(1, "91.200.12.9", 64500);
    w.advance(60);
    assert!(!w.listed("91.200.12.9"), "one untrusted machine lists nothing");
    w.report(1000, "91.200.12.9", 1);
    let changes = w.advance(60);
    assert!(matches!(changes.as_slice(), [Change::Listed { rule: Rule::Sensor, .. }]), "{changes:?}");
    assert_eq!(w.engine.machine(1).unwrap().leads, 1);
}

#[test]
fn fresh_sybils_in_hundreds_of_ases_list_nothing() {
    let mut w = World::new();
    for m in 1..=3000 {
        w.machine(m, None, w.now, false);
        w.report(m, "23.45.67.89", 1 + (m % 300) as u32);
    }
    assert!(w.advance(60).is_empty());
    // Still nothing weeks later if they keep echoing each other with no confirmed lead.
    for day in 1..=40 {
        for m in (1..=3000).step_by(7) {
            w.report(m, &format!("23.45.{}.{}", day, m % 250), 1 + (m % 300) as u32);
            w.report(m, "23.45.67.89", 1 + (m % 300) as u32);
        }
        assert!(w.advance(DAY).is_empty(), "day {day}");
    }
    assert!(w.engine.machine_trust(1, w.now) < w.engine.params().trust_floor);
}

#[test]
fn trusted_machines_in_several_ases_list_by_crowd() {
    let mut w = World::new();
    w.trusted(5);
    for m in 1..=5 {
        assert!(w.engine.machine_trust(m, w.now) > 0.3, "machine {m} earned trust");
    }
    for m in 1..=3 {
        w.report(m, "185.220.101.4", 100 + m as u32);
    }
    let changes = w.advance(60);
    assert!(changes.iter().any(|c| matches!(c, Change::Listed { rule: Rule::Crowd, .. })), "{changes:?}");
}

#[test]
fn two_trusted_machines_are_not_enough_diversity() {
    let mut w = World::new();
    w.trusted(5);
    w.report(1, "185.220.101.5", 101);
    w.report(2, "185.220.101.5", 102);
    assert!(w.advance(60).is_empty());
}

#[test]
fn never_block_addresses_are_never_listed_even_by_sensors() {
    let mut w = World::new();
    w.trusted(5);
    w.report(1000, "8.8.8.8", 1);
    for m in 1..=5 {
        w.report(m, "8.8.8.8", 100 + m as u32);
    }
    assert!(w.advance(60).is_empty());
    assert!(!w.listed("8.8.8.8"));
}

fn bad_evidence(w: &World, machine: i64) -> f64 {
    w.engine.machine(machine).unwrap().evidence(w.now, w.engine.params()).1
}

#[test]
fn a_never_block_address_misreported_by_many_established_installations_costs_each_little() {
    let mut w = World::new();
    w.trusted(12);
    let full = w.engine.params().never_block_penalty;
    w.report(1, "8.8.8.4", 101);
    assert!((bad_evidence(&w, 1) - full).abs() < 1e-6, "alone, the first reporter bears the whole penalty");
    for m in 2..=12 {
        w.report(m, "8.8.8.4", 100 + m as u32);
    }
    // Twelve independent clusters: (3 / 12)² of the penalty each, the first reporter refunded.
    for m in 1..=12 {
        assert!(bad_evidence(&w, m) < full * 0.1, "machine {m}: {}", bad_evidence(&w, m));
    }
    assert!(w.engine.machine_trust(1, w.now) > 0.5);
}

#[test]
fn a_never_block_report_is_not_diluted_by_fresh_machines_or_accounts_sharing_an_as() {
    let mut w = World::new();
    w.trusted(1);
    let full = w.engine.params().never_block_penalty;
    // Forty fresh Sybils of forty accounts in forty ASes, and ten old accounts in one AS.
    for m in 100..140 {
        w.machine(m, Some(m), w.now - 10 * DAY, false);
    }
    for m in 200..210 {
        w.machine(m, Some(m), 0, false);
    }
    // Past the lifetime of the listings machine 1 led, so these lead afresh (not echoes).
    w.advance(2 * DAY);
    w.lead(200..=209, 20);
    assert!(w.engine.machine_trust(200, w.now) > 0.5, "the one-AS accounts are established");
    w.report(1, "8.8.8.5", 101);
    for m in 100..140 {
        w.report(m, "8.8.8.5", 1000 + m as u32);
    }
    for m in 200..210 {
        w.report(m, "8.8.8.5", 500);
    }
    assert!((bad_evidence(&w, 1) - full).abs() < 1e-6, "still a whole penalty: {}", bad_evidence(&w, 1));
}

#[test]
fn a_canary_report_zeroes_the_machine_voids_its_reports_and_delists() {
    let mut w = World::new();
    w.trusted(4);
    for m in 1..=4 {
        w.report(m, "185.220.101.6", 100 + m as u32);
    }
    w.advance(60);
    assert!(w.listed("185.220.101.6"));
    let before = w.engine.machine_trust(1, w.now);
    w.report(1, "45.1.1.1", 101);
    w.report(2, "45.1.1.1", 102);
    let changes = w.advance(60);
    assert_eq!(w.engine.machine_trust(1, w.now), 0.0);
    let m1 = w.engine.machine(1).unwrap();
    assert!(m1.visible_trust(w.now, w.engine.params()) >= before * 0.99, "visible effect is delayed");
    assert!(
        changes.contains(&Change::Delisted { target: net("185.220.101.6/32"), reason: DelistReason::Slashed }),
        "{changes:?}"
    );
    assert!(!w.listed("45.1.1.1"));
}

#[test]
fn an_upheld_false_positive_delists_penalises_and_protects() {
    let mut w = World::new();
    w.trusted(4);
    for m in 1..=4 {
        w.report(m, "185.220.101.7", 100 + m as u32);
    }
    w.advance(60);
    let before = w.engine.machine_trust(1, w.now);
    let changes = w.engine.report_false_positive(net("185.220.101.7"), w.now);
    assert_eq!(changes, vec![Change::Delisted { target: net("185.220.101.7/32"), reason: DelistReason::FalsePositive }]);
    assert!(w.engine.machine_trust(1, w.now) < before);
    for m in 1..=4 {
        w.report(m, "185.220.101.7", 100 + m as u32);
    }
    assert!(w.advance(60).is_empty(), "protected from the crowd path");
}

#[test]
fn an_operator_delisting_blames_nobody_and_needs_fresh_reports_to_list_again() {
    let mut w = World::new();
    w.trusted(4);
    for m in 1..=4 {
        w.report(m, "185.220.101.17", 100 + m as u32);
    }
    w.advance(60);
    assert!(w.listed("185.220.101.17"));
    let before: Vec<f64> = (1..=4).map(|m| w.engine.machine_trust(m, w.now)).collect();
    let changes = w.engine.delist(net("185.220.101.17"), w.now, w.now);
    assert_eq!(changes, vec![Change::Delisted { target: net("185.220.101.17/32"), reason: DelistReason::Operator }]);
    let after: Vec<f64> = (1..=4).map(|m| w.engine.machine_trust(m, w.now)).collect();
    assert_eq!(before, after, "no reporter's trust changes");
    assert!(w.advance(60).is_empty(), "the evidence from before the delisting no longer lists it");
    assert!(!w.listed("185.220.101.17"));
    for m in 1..=4 {
        w.report(m, "185.220.101.17", 100 + m as u32);
    }
    w.advance(60);
    assert!(w.listed("185.220.101.17"), "fresh reports list it again");
}

#[test]
fn an_operator_hold_keeps_a_target_off_the_list_even_for_sensors_until_it_ends() {
    let mut w = World::new();
    w.trusted(4);
    w.machine(90, None, 0, true);
    let until = w.now + DAY;
    assert!(w.engine.delist(net("185.220.101.18"), until, w.now).is_empty(), "nothing was listed");
    w.advance(60);
    w.report(90, "185.220.101.18", 900);
    for m in 1..=4 {
        w.report(m, "185.220.101.18", 100 + m as u32);
    }
    w.advance(60);
    assert!(!w.listed("185.220.101.18"), "held");
    w.advance(DAY);
    w.report(90, "185.220.101.18", 900);
    for m in 1..=4 {
        w.report(m, "185.220.101.18", 100 + m as u32);
    }
    w.advance(60);
    assert!(w.listed("185.220.101.18"), "listed again once the hold ended");
}

#[test]
fn listings_expire_without_fresh_evidence_and_renew_longer_with_it() {
    let mut w = World::new();
    w.trusted(4);
    for m in 1..=4 {
        w.report(m, "185.220.101.8", 100 + m as u32);
        w.report(m, "185.220.101.9", 100 + m as u32);
    }
    w.advance(60);
    let first_expiry = w.engine.target(net("185.220.101.9")).unwrap().listing.as_ref().unwrap().expires_at;
    w.advance(DAY / 2 + 60);
    for m in 1..=4 {
        w.report(m, "185.220.101.9", 100 + m as u32);
    }
    w.advance(60);
    let renewed = w.engine.target(net("185.220.101.9")).unwrap().listing.clone().unwrap();
    assert!(renewed.expires_at > first_expiry && renewed.renewals == 1, "{renewed:?}");
    let changes = w.advance(DAY);
    assert!(
        changes.contains(&Change::Delisted { target: net("185.220.101.8/32"), reason: DelistReason::Expired }),
        "{changes:?}"
    );
    assert!(!w.listed("185.220.101.8"), "the evidence that listed it does not list it again");
    assert!(w.listed("185.220.101.9"));
}

#[test]
fn ipv6_reports_aggregate_to_their_slash_64() {
    let mut w = World::new();
    w.machine(1000, None, w.now, true);
    w.report(1000, "2a01:4f8:1:2::1/128", 1);
    let changes = w.advance(60);
    assert!(matches!(&changes[..], [Change::Listed { target, .. }] if *target == net("2a01:4f8:1:2::/64")), "{changes:?}");
    assert!(w.listed("2a01:4f8:1:2::ffff/128"));
}

#[test]
fn without_an_as_database_origins_cluster_by_slash_16() {
    let mut engine = Engine::new(Params::default(), false);
    assert_eq!(engine.origin_as(net("100.64.3.0/24"), Some(7)), OriginAs::Prefix(net("100.64.0.0/16")));
    engine.use_asn = true;
    assert_eq!(engine.origin_as(net("100.64.3.0/24"), Some(7)), OriginAs::Asn(7));
}

#[test]
fn processing_the_same_reports_twice_from_scratch_gives_the_same_changes() {
    let run = || {
        let mut w = World::new();
        w.trusted(6);
        let mut all = Vec::new();
        for k in 0..30 {
            for m in 1..=6 {
                if (k + m) % 3 != 0 {
                    w.report(m, &format!("185.100.{k}.1"), 100 + m as u32);
                }
            }
            all.extend(w.advance(600));
        }
        all
    };
    assert_eq!(run(), run());
}

#[test]
fn addresses_reported_once_are_forgotten_after_the_evidence_window() {
    let mut w = World::new();
    w.machine(1, Some(1), 0, false);
    w.report(1, "91.200.12.10", 64500);
    w.advance(60);
    assert!(w.engine.target(net("91.200.12.10")).is_some());
    w.engine.take_changed();
    let window = w.engine.params().evidence_window_secs;
    w.advance(window + 60);
    assert!(w.engine.target(net("91.200.12.10")).is_none(), "forgotten once its report left the window");
    assert!(w.engine.take_changed().targets.contains(&(net("91.200.12.10"), None)), "and the store is told");
}

/// A sensor lists `count` addresses of `block` (`a.b.c`) from `.1` on, one per minute.
fn sensor_lists_block(w: &mut World, block: &str, count: u32) -> Vec<Change> {
    sensor_lists_hosts(w, block, 1..=count)
}

fn sensor_lists_hosts(w: &mut World, block: &str, hosts: impl IntoIterator<Item = u32>) -> Vec<Change> {
    let mut changes = Vec::new();
    for host in hosts {
        w.report(1000, &format!("{block}.{host}"), 1);
        changes.extend(w.advance(60));
    }
    changes
}

fn hosting_world(hosting: &[&str]) -> World {
    let mut w = World::new();
    w.engine.set_hosting(IpSet::new(hosting.iter().map(|h| net(h))));
    w.machine(1000, None, 0, true);
    w
}

#[test]
fn a_hosting_slash_24_with_many_listed_addresses_is_listed_whole_and_follows_them() {
    let mut w = hosting_world(&["203.0.112.0/22"]);
    let threshold = w.engine.params().expand_v4_24_after;
    let before = sensor_lists_block(&mut w, "203.0.113", threshold - 1);
    assert!(!before.iter().any(|c| matches!(c, Change::Listed { rule: Rule::Expanded, .. })), "{before:?}");
    let at = sensor_lists_hosts(&mut w, "203.0.113", [threshold]);
    let block = at.iter().find_map(|c| match c {
        Change::Listed { target, rule: Rule::Expanded, expires_at, .. } => Some((*target, *expires_at)),
        _ => None,
    });
    let (target, expires_at) = block.expect("the /24 is listed once the threshold is reached");
    assert_eq!(target, net("203.0.113.0/24"));
    // It lives as long as `threshold` members do: the earliest member expiry here.
    let first_member = w.engine.target(net("203.0.113.1")).and_then(|s| s.listing.clone()).unwrap();
    assert_eq!(expires_at, first_member.expires_at);
    assert!(w.listed("203.0.113.0/24"));
    // When members expire without renewal, the block goes with them.
    let later = w.advance(first_member.expires_at - w.now + 1);
    assert!(later.contains(&Change::Delisted { target: net("203.0.113.0/24"), reason: DelistReason::Expired }), "{later:?}");
    assert!(!w.listed("203.0.113.0/24"));
}

#[test]
fn outside_hosting_space_or_near_never_block_addresses_nothing_expands() {
    let mut w = hosting_world(&["203.0.113.0/24", "8.8.8.0/23"]);
    let threshold = w.engine.params().expand_v4_24_after;
    // Residential neighbours: not hosting.
    let changes = sensor_lists_block(&mut w, "198.51.100", threshold + 2);
    assert!(!changes.iter().any(|c| matches!(c, Change::Listed { rule: Rule::Expanded, .. })), "{changes:?}");
    // A hosting /24 that holds a never-block range (8.8.8.0/24 in the world) next door: 8.8.9.0/24
    // is fine, but 8.8.8.0/24 may never be listed whole, and its members are never listed at all.
    let changes = sensor_lists_block(&mut w, "8.8.9", threshold);
    assert!(changes.iter().any(|c| matches!(c, Change::Listed { rule: Rule::Expanded, .. })));
    let changes = sensor_lists_block(&mut w, "8.8.8", threshold);
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn a_false_positive_inside_an_expanded_block_delists_the_block_and_keeps_it_from_returning() {
    let mut w = hosting_world(&["203.0.113.0/24"]);
    let threshold = w.engine.params().expand_v4_24_after;
    sensor_lists_block(&mut w, "203.0.113", threshold + 1);
    assert!(w.listed("203.0.113.0/24"));
    // The innocent neighbour was never reported; it was held only by its block.
    let changes = w.engine.report_false_positive(net("203.0.113.200"), w.now);
    assert!(changes.contains(&Change::Delisted { target: net("203.0.113.0/24"), reason: DelistReason::FalsePositive }));
    assert!(!w.listed("203.0.113.0/24"));
    // More members listed during the protection do not bring it back.
    let changes = sensor_lists_hosts(&mut w, "203.0.113", threshold + 2..threshold + 6);
    assert!(!changes.iter().any(|c| matches!(c, Change::Listed { rule: Rule::Expanded, .. })), "{changes:?}");
}

#[test]
fn allowlisting_part_of_an_expanded_block_delists_it() {
    let mut w = hosting_world(&["203.0.113.0/24"]);
    let threshold = w.engine.params().expand_v4_24_after;
    sensor_lists_block(&mut w, "203.0.113", threshold);
    assert!(w.listed("203.0.113.0/24"));
    w.engine.set_never_block(IpSet::new([net("8.8.8.0/24"), net("203.0.113.128/25")]));
    let changes = w.advance(60);
    assert!(
        changes.contains(&Change::Delisted { target: net("203.0.113.0/24"), reason: DelistReason::NeverBlock }),
        "{changes:?}"
    );
}

#[test]
fn echoing_a_public_list_earns_no_lead_credit() {
    let mut w = World::new();
    w.engine.set_public(IpSet::new([net("77.0.0.0/8")]));
    w.trusted(3);
    for m in 1..=3 {
        assert_eq!(w.engine.machine(m).map(|s| s.leads), Some(0), "machine {m} only echoed a public feed");
    }
}

#[test]
fn the_never_block_guard_is_not_configurable_but_can_be_switched_off_in_code() {
    let configured = serde_json::from_str::<Params>(r#"{"never_block_guard": false}"#);
    assert!(configured.is_err(), "a configuration cannot switch the guard off");
    assert!(serde_json::from_str::<Params>("{}").unwrap().never_block_guard);
    let mut w = World::new();
    w.engine = Engine::new(Params { never_block_guard: false, ..Params::default() }, true);
    w.machine(1000, None, 0, true);
    w.report(1000, "8.8.8.8", 1);
    w.advance(60);
    assert!(w.listed("8.8.8.8"), "without the guard a sensor sighting lists anything");
}

const SYN_SCAN: &str = "crowdsecurity/iptables-scan-multi_ports";

#[test]
fn spoofed_traffic_lists_nothing_earns_nothing_and_costs_nothing() {
    let mut w = World::new();
    w.trusted(8);
    let leads: Vec<u64> = (1..=8).map(|m| w.engine.machine(m).unwrap().leads).collect();
    // Honest machines and a sensor genuinely see packets "from" the victim, and a canary.
    for m in 1..=8 {
        w.report_as(m, "203.0.113.77", 100 + m as u32, SYN_SCAN);
        w.report_as(m, "45.1.1.1", 100 + m as u32, SYN_SCAN);
        w.report_as(m, "8.8.8.8", 100 + m as u32, SYN_SCAN);
    }
    w.report_as(1000, "203.0.113.77", 1, SYN_SCAN);
    assert!(w.advance(60).is_empty(), "spoofable evidence lists nothing on any path");
    for m in 1..=8 {
        let state = w.engine.machine(m).unwrap();
        assert!(state.zeroed_at.is_none() && state.never_block_hits.is_empty(), "machine {m} lost nothing");
        assert!(w.engine.machine_trust(m, w.now) > 0.3);
    }
    // An operator upholding the victim's appeal costs the deceived nobody.
    let before: Vec<f64> = (1..=8).map(|m| w.engine.machine_trust(m, w.now)).collect();
    w.engine.report_false_positive(net("203.0.113.77"), w.now);
    let after: Vec<f64> = (1..=8).map(|m| w.engine.machine_trust(m, w.now)).collect();
    assert_eq!(before, after);
    // A real attack confirmed later through a handshake earns the spoofed reporters nothing.
    for m in 1..=3 {
        w.report(m, "203.0.113.77", 100 + m as u32);
    }
    w.advance(DAY * 31);
    let now_leads: Vec<u64> = (1..=8).map(|m| w.engine.machine(m).unwrap().leads).collect();
    assert_eq!(leads[3..], now_leads[3..], "only handshake reports can lead");
}

#[test]
fn machines_without_an_account_never_reach_the_crowd_path_whatever_their_age() {
    let mut w = World::new();
    for m in 1..=5 {
        w.machine(m, None, 0, false);
    }
    w.lead(1..=5, 20);
    assert!(w.engine.machine(1).unwrap().leads > 0, "they can still earn a record");
    w.all_report(1..=5, "198.51.100.9");
    w.advance(60);
    assert!(!w.listed("198.51.100.9"));
}

#[test]
fn a_mixed_age_coalition_lists_only_once_its_anchors_are_established() {
    let coalition = |old_age: Time| {
        let mut w = World::new();
        // Two old accounts and one young one, all with a spotless record, in three ASes.
        w.machine(1, Some(1), w.now - old_age, false);
        w.machine(2, Some(2), w.now - old_age, false);
        w.machine(3, Some(3), w.now - 40 * DAY, false);
        w.lead(1..=3, 30);
        assert!(w.engine.machine_trust(3, w.now) > w.engine.params().trust_floor);
        w.all_report(1..=3, "198.51.100.10");
        w.advance(60);
        w.listed("198.51.100.10")
    };
    let established = Params::default().established_age_secs;
    assert!(!coalition(established - DAY), "anchors younger than the established age cannot list");
    assert!(coalition(established + DAY), "at the established age they can: the attack costs 2 x 250 + 40 machine-days");
}

#[test]
fn one_established_as_and_long_standing_machines_anchor_when_their_ages_add_up() {
    let established = Params::default().established_age_secs;
    let coalition = |others: &[Time]| {
        let mut w = World::new();
        // One established account and younger ones with a spotless record, each in its own AS.
        w.machine(1, Some(1), w.now - established - DAY, false);
        for (i, age) in others.iter().enumerate() {
            w.machine(2 + i as i64, Some(2 + i as i64), w.now - age, false);
        }
        let last = 1 + others.len() as i64;
        w.lead(1..=last, 30);
        assert!(w.engine.machine_trust(last, w.now) >= w.engine.params().established_trust);
        w.all_report(1..=last, "198.51.100.12");
        w.advance(60);
        w.listed("198.51.100.12")
    };
    let half = established / 2;
    assert!(coalition(&[half + DAY, half + DAY]), "250 + 2 x 126 days: anchored without a second established AS");
    assert!(!coalition(&[half - DAY, half - DAY]), "250 + 2 x 124 days is short of two established ages");
    let mut w = World::new();
    for m in 1..=4 {
        w.machine(m, Some(m), w.now - half - DAY, false);
    }
    w.lead(1..=4, 30);
    w.all_report(1..=4, "198.51.100.13");
    w.advance(60);
    assert!(!w.listed("198.51.100.13"), "without one established AS, younger machines do not anchor");
}

#[test]
fn the_broad_path_needs_machines_older_than_a_month_or_so() {
    let mut w = World::new();
    let young = w.now - 40 * DAY;
    for m in 1..=12 {
        w.engine.upsert_machine(m, Some(m), Level::Paid, false, young);
    }
    w.lead(1..=12, 60);
    assert!(w.engine.machine_trust(1, w.now) > 0.5, "busy honeypots earn trust fast");
    w.all_report(1..=12, "198.51.100.11");
    w.advance(60);
    assert!(!w.listed("198.51.100.11"));
}

#[test]
fn a_proven_lie_withdraws_the_liars_other_listings_at_once() {
    let mut w = World::new();
    w.trusted(4);
    for target in ["198.51.100.20", "198.51.100.21"] {
        for m in 1..=3 {
            w.report(m, target, 100 + m as u32);
        }
    }
    w.advance(60);
    assert!(w.listed("198.51.100.20") && w.listed("198.51.100.21"));
    w.engine.report_false_positive(net("198.51.100.20"), w.now);
    let changes = w.advance(1);
    assert!(
        changes.contains(&Change::Delisted { target: net("198.51.100.21/32"), reason: DelistReason::Slashed }),
        "{changes:?}"
    );
    for m in 1..=3 {
        assert!(w.engine.machine_trust(m, w.now) < w.engine.params().trust_floor, "machine {m}: a decisive lie sinks any record");
    }
    assert!(w.engine.machine_trust(4, w.now) > 0.3, "a machine that did not report it keeps its standing");
}

#[test]
fn junk_floods_are_bounded_per_address_and_per_cluster() {
    let mut w = World::new();
    let p = w.engine.params().clone();
    // Fresh Sybils of one account pile onto one address, then spray new ones.
    for m in 1..=2_000 {
        w.machine(m, Some(7), w.now, false);
        w.report(m, "198.51.100.30", 64_500);
    }
    let state = w.engine.target(net("198.51.100.30")).unwrap();
    assert_eq!(state.reporters.len(), p.untrusted_reporters_per_target);
    for k in 0..(p.max_new_targets_per_untrusted_cluster_day + 500) {
        let target = format!("10.{}.{}.{}", 1 + k / 65_536, (k / 256) % 256, k % 256);
        w.report(1 + i64::from(k % 2_000), &target, 64_500);
    }
    let remembered = (0..(p.max_new_targets_per_untrusted_cluster_day + 500))
        .filter(|k| w.engine.target(net(&format!("10.{}.{}.{}", 1 + k / 65_536, (k / 256) % 256, k % 256))).is_some())
        .count();
    assert_eq!(remembered as u32, p.max_new_targets_per_untrusted_cluster_day - p.untrusted_reporters_per_target as u32);
}

#[test]
fn a_withdrawn_reporter_no_longer_counts_and_its_listing_goes_if_it_was_needed() {
    let mut w = World::new();
    w.trusted(1);
    w.machine(9, None, 0, true);
    w.report(1, "185.220.101.27", 101);
    w.report(9, "185.220.101.27", 109);
    w.advance(60);
    assert!(w.listed("185.220.101.27"), "the sensor lists it");
    let before = (w.engine.machine_trust(1, w.now), w.engine.machine_trust(9, w.now));

    assert!(w.engine.withdraw(5, net("185.220.101.27"), w.now).is_empty(), "a machine that never reported it changes nothing");
    assert!(w.engine.withdraw(1, net("185.220.101.27"), w.now).is_empty(), "still listed on the sensor's sighting");
    assert!(w.listed("185.220.101.27"));
    let reporters = |w: &World| w.engine.target(net("185.220.101.27")).map(|s| s.reporters.iter().map(|r| r.machine).collect());
    assert_eq!(reporters(&w), Some(vec![9]), "machine 1 no longer supports it");

    let changes = w.engine.withdraw(9, net("185.220.101.27"), w.now);
    assert_eq!(changes, vec![Change::Delisted { target: net("185.220.101.27/32"), reason: DelistReason::Withdrawn }]);
    assert!(!w.listed("185.220.101.27"));
    assert_eq!((w.engine.machine_trust(1, w.now), w.engine.machine_trust(9, w.now)), before, "nobody's trust changes");
    assert!(w.advance(60).is_empty(), "nothing left lists it again");
    w.report(1, "185.220.101.27", 101);
    assert!(w.advance(60).is_empty(), "one machine's fresh report alone does not list it");
}
