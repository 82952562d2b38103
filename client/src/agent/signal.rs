//! Turning what the agent saw (a detection or a `palisade report`) into the [`SignalItem`] it
//! spools and pushes. Pure: the id and the times are parameters, so the same inputs give the
//! same item, and the item is serialised once and kept as is until the server has it.

use std::net::IpAddr;

use palisade_api::capi::{SignalItem, Source};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What one signal says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The attacker.
    pub ip: IpAddr,
    /// Scenario name, e.g. `crowdsecurity/ssh-bf`.
    pub scenario: String,
    /// Free text for a person.
    pub message: String,
    /// First event.
    pub first_seen: OffsetDateTime,
    /// Last event.
    pub last_seen: OffsetDateTime,
}

/// The signal for `observation`, raised by the local agent `agent_name`, with alert id `uuid`.
/// Scenarios of this agent are not hub-certified, so the trust is `custom` and the hash empty.
pub fn signal_item(observation: &Observation, agent_name: &str, uuid: &str) -> SignalItem {
    let ip = observation.ip.to_string();
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string());
    SignalItem {
        machine_id: Some(agent_name.to_string()),
        message: observation.message.clone(),
        scenario: observation.scenario.clone(),
        scenario_hash: String::new(),
        scenario_version: String::new(),
        scenario_trust: Some("custom".into()),
        source: Source {
            scope: "Ip".into(),
            value: ip.clone(),
            ip: Some(ip),
            range: None,
            as_name: None,
            as_number: None,
            cn: None,
            latitude: None,
            longitude: None,
        },
        start_at: at(observation.first_seen),
        stop_at: at(observation.last_seen),
        created_at: Some(at(observation.last_seen)),
        alert_id: None,
        uuid: Some(uuid.to_string()),
        decisions: None,
        context: None,
        kind: Some("palisade".into()),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_signal_carries_the_address_scenario_times_and_id() {
        let observation = Observation {
            ip: "45.33.32.156".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            scenario: "crowdsecurity/ssh-bf".into(),
            message: "6 failed logins".into(),
            first_seen: datetime!(2026-11-25 12:00 UTC),
            last_seen: datetime!(2026-11-25 12:01 UTC),
        };
        let item = signal_item(&observation, "web-01", "0b4d2c54-4c53-4b5c-9d5c-2f0c7b0e8a11");
        let json = serde_json::to_value(&item).unwrap_or_default();
        assert_eq!(json["source"]["value"], "45.33.32.156");
        assert_eq!(json["source"]["scope"], "Ip");
        assert_eq!(json["scenario"], "crowdsecurity/ssh-bf");
        assert_eq!(json["start_at"], "2026-11-25T12:00:00Z");
        assert_eq!(json["stop_at"], "2026-11-25T12:01:00Z");
        assert_eq!(json["uuid"], "0b4d2c54-4c53-4b5c-9d5c-2f0c7b0e8a11");
        assert_eq!(json["machine_id"], "web-01");
        // The same inputs give the same bytes: a redelivery is recognised by the server.
        assert_eq!(
            serde_json::to_string(&item).ok(),
            serde_json::to_string(&signal_item(&observation, "web-01", "0b4d2c54-4c53-4b5c-9d5c-2f0c7b0e8a11")).ok()
        );
    }
}
