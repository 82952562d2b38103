//! CrowdSec-shaped signal items for tests and benchmarks, modelled on what CrowdSec 1.4.6 sends
//! (`tests/fixtures/crowdsec-1.4.6/signals.request.wave1.json`): the ssh scenarios with their hub
//! hashes, a `message` in CrowdSec's words, nanosecond RFC 3339 times. Attackers are public
//! addresses; the documentation ranges the fixtures use are refused by the server as reserved.

use std::net::Ipv4Addr;

use palisade_api::capi::{SignalItem, Source};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};

/// (scenario, hub hash, hub version, events, seconds) of the four ssh alerts CrowdSec raises.
const SCENARIOS: [(&str, &str, &str, u32, f64); 4] = [
    ("crowdsecurity/ssh-bf", "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f", "0.1", 6, 1.001954114),
    ("crowdsecurity/ssh-bf_user-enum", "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f", "0.1", 6, 1.001953813),
    ("crowdsecurity/ssh-slow-bf", "48665e6f7f4f0af7a47c7e81b0550c86f111e79c0a80d90290e560846beb4008", "0.2", 11, 2.006380268),
    (
        "crowdsecurity/ssh-slow-bf_user-enum",
        "48665e6f7f4f0af7a47c7e81b0550c86f111e79c0a80d90290e560846beb4008",
        "0.2",
        11,
        2.006362161,
    ),
];

/// The `n`th address of a run of public IPv4 addresses starting at 45.0.0.1 (45.0.0.0/8 holds
/// no special-purpose range), so `n` up to 16 million gives distinct attackers.
pub fn public_ipv4(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(45, 0, 0, 1)) + n % 0x00ff_fffe)
}

/// One signal as CrowdSec 1.4.6 sends it: `agent` raised scenario number `variant` (mod 4)
/// against `ip`, its alert ending at `stop_at`.
pub fn crowdsec_signal(agent: &str, ip: Ipv4Addr, variant: usize, stop_at: OffsetDateTime) -> SignalItem {
    let (scenario, hash, version, events, seconds) = SCENARIOS[variant % SCENARIOS.len()];
    let start_at = stop_at - Duration::seconds_f64(seconds);
    let go_time = format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:9] +0000 UTC");
    let at = stop_at.format(go_time).unwrap_or_default();
    SignalItem {
        machine_id: Some(agent.to_string()),
        message: format!("Ip {ip} performed '{scenario}' ({events} events over {seconds}s) at {at}"),
        scenario: scenario.to_string(),
        scenario_hash: hash.to_string(),
        scenario_version: version.to_string(),
        scenario_trust: Some("certified".into()),
        source: Source { scope: "Ip".into(), value: ip.to_string(), ip: Some(ip.to_string()), ..Source::default() },
        start_at: start_at.format(&Rfc3339).unwrap_or_default(),
        stop_at: stop_at.format(&Rfc3339).unwrap_or_default(),
        ..SignalItem::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_look_like_the_crowdsec_fixture() {
        let stop_at = time::macros::datetime!(2026-11-25 12:00:20.292055915 UTC);
        let item = crowdsec_signal("harness-agent", Ipv4Addr::new(45, 33, 32, 156), 0, stop_at);
        let json = serde_json::to_value(&item).unwrap_or_default();
        assert_eq!(json["source"], serde_json::json!({"ip": "45.33.32.156", "scope": "Ip", "value": "45.33.32.156"}));
        assert_eq!(json["stop_at"], "2026-11-25T12:00:20.292055915Z");
        assert_eq!(
            json["message"],
            "Ip 45.33.32.156 performed 'crowdsecurity/ssh-bf' (6 events over 1.001954114s) at 2026-11-25 12:00:20.292055915 +0000 UTC"
        );
        assert_eq!(public_ipv4(0), Ipv4Addr::new(45, 0, 0, 1));
        assert_eq!(public_ipv4(255), Ipv4Addr::new(45, 0, 1, 0));
    }
}
