//! Scenario metadata: which scenarios can be triggered by traffic with a forged source address.
//!
//! A report under a *spoofable* scenario (a UDP flood, a SYN scan read from firewall logs) proves
//! only that packets claiming to come from the address arrived, so anybody can make honest
//! machines and sensors report an innocent address that way. Such evidence never lists on any
//! path, never makes a sensor sighting, never earns or costs trust and never triggers a canary
//! (`docs/trust.md`). A *handshake* scenario needs a completed TCP handshake or an application
//! exchange (an SSH login attempt, an HTTP request), which a forged source cannot complete.
//!
//! The class of a scenario is, in order: the operator's override (`[consensus.params.scenarios]`),
//! the table shipped here (hub scenarios), then the name fragments of
//! `Params::spoofable_scenarios` for names in neither, and handshake otherwise.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Whether a scenario's evidence can be produced with forged source addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioClass {
    /// Triggered by packets alone: the source may be forged.
    Spoofable,
    /// Needs a completed handshake or an application exchange with the source.
    Handshake,
}

/// Hub scenarios with their class, shipped with Palisade. Scenarios read from packet or
/// firewall logs, or carried over UDP (SIP, DNS), are spoofable; the rest log TCP sessions.
pub const SHIPPED: &[(&str, ScenarioClass)] = {
    use ScenarioClass::{Handshake as H, Spoofable as S};
    &[
        ("crowdsecurity/iptables-scan-multi_ports", S),
        ("crowdsecurity/pf-scan-multi_ports", S),
        ("firewallservices/pf-scan-multi_ports", S),
        ("crowdsecurity/nftables-scan-multi_ports", S),
        ("crowdsecurity/asterisk_bf", S),
        ("crowdsecurity/asterisk_user_enum", S),
        ("crowdsecurity/modsecurity", H),
        ("crowdsecurity/ssh-bf", H),
        ("crowdsecurity/ssh-slow-bf", H),
        ("crowdsecurity/ssh-cve-2024-6387", H),
        ("crowdsecurity/http-probing", H),
        ("crowdsecurity/http-crawl-non_statics", H),
        ("crowdsecurity/http-bad-user-agent", H),
        ("crowdsecurity/http-sensitive-files", H),
        ("crowdsecurity/http-path-traversal-probing", H),
        ("crowdsecurity/http-sqli-probing", H),
        ("crowdsecurity/http-xss-probing", H),
        ("crowdsecurity/http-backdoors-attempts", H),
        ("crowdsecurity/http-admin-interface-probing", H),
        ("crowdsecurity/http-open-proxy", H),
        ("crowdsecurity/http-generic-bf", H),
        ("crowdsecurity/http-wordpress_wpconfig", H),
        ("crowdsecurity/http-wordpress_user-enum", H),
        ("crowdsecurity/http-cve-2021-41773", H),
        ("crowdsecurity/http-cve-2021-42013", H),
        ("crowdsecurity/http-dos-swithcing-ua", H),
        ("crowdsecurity/nginx-req-limit-exceeded", H),
        ("crowdsecurity/postfix-spam", H),
        ("crowdsecurity/dovecot-spam", H),
        ("crowdsecurity/smb-bf", H),
        ("crowdsecurity/mysql-bf", H),
        ("crowdsecurity/pgsql-bf", H),
        ("crowdsecurity/mssql-bf", H),
        ("crowdsecurity/vsftpd-bf", H),
        ("crowdsecurity/proftpd-bf", H),
        ("crowdsecurity/telnet-bf", H),
        ("crowdsecurity/windows-bf", H),
        ("crowdsecurity/exchange-bf", H),
        // Reports made through the AbuseIPDB dialect (`domain::abuseipdb`): the categories
        // packets alone can trigger. The others are handshake by default.
        ("abuseipdb/dns-poisoning", S),
        ("abuseipdb/ddos", S),
        ("abuseipdb/ping-of-death", S),
        ("abuseipdb/fraud-voip", S),
        ("abuseipdb/port-scan", S),
        ("abuseipdb/spoofing", S),
    ]
};

/// Looks up scenario classes: operator overrides, the shipped table, then name fragments.
#[derive(Debug, Clone)]
pub struct Scenarios {
    known: HashMap<String, ScenarioClass>,
    spoofable_fragments: Vec<String>,
}

impl Scenarios {
    /// The table in force: the operator's `overrides` over the shipped table, and the name
    /// fragments marking spoofable scenarios among the others.
    pub fn new(overrides: &BTreeMap<String, ScenarioClass>, spoofable_fragments: &[String]) -> Self {
        let mut known: HashMap<String, ScenarioClass> =
            SHIPPED.iter().map(|(name, class)| ((*name).to_string(), *class)).collect();
        known.extend(overrides.iter().map(|(name, class)| (name.clone(), *class)));
        let spoofable_fragments = spoofable_fragments.iter().filter(|f| !f.is_empty()).cloned().collect();
        Scenarios { known, spoofable_fragments }
    }

    /// The class of `scenario`.
    pub fn class(&self, scenario: &str) -> ScenarioClass {
        if let Some(class) = self.known.get(scenario) {
            return *class;
        }
        if self.spoofable_fragments.iter().any(|fragment| scenario.contains(fragment.as_str())) {
            ScenarioClass::Spoofable
        } else {
            ScenarioClass::Handshake
        }
    }

    /// Whether `scenario` can be triggered with a forged source.
    pub fn is_spoofable(&self, scenario: &str) -> bool {
        self.class(scenario) == ScenarioClass::Spoofable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abuseipdb_categories_are_classed_as_the_dialect_says() {
        let scenarios = Scenarios::new(&BTreeMap::new(), &[]);
        for category in crate::domain::abuseipdb::CATEGORIES {
            assert_eq!(scenarios.is_spoofable(category.scenario), category.spoofable, "{}", category.name);
        }
    }

    #[test]
    fn overrides_win_over_the_shipped_table_which_wins_over_fragments() {
        let fragments = ["udp".to_string(), "flood".to_string()];
        let mut overrides = BTreeMap::new();
        let scenarios = Scenarios::new(&overrides, &fragments);
        assert!(scenarios.is_spoofable("crowdsecurity/iptables-scan-multi_ports"), "shipped");
        assert!(!scenarios.is_spoofable("crowdsecurity/ssh-bf"), "shipped");
        assert!(scenarios.is_spoofable("someone/udp-amplification"), "fragment");
        assert!(!scenarios.is_spoofable("someone/custom-login-bf"), "unknown: handshake");
        overrides.insert("crowdsecurity/ssh-bf".into(), ScenarioClass::Spoofable);
        overrides.insert("someone/udp-amplification".into(), ScenarioClass::Handshake);
        let overridden = Scenarios::new(&overrides, &fragments);
        assert!(overridden.is_spoofable("crowdsecurity/ssh-bf"));
        assert!(!overridden.is_spoofable("someone/udp-amplification"));
    }

    #[test]
    fn the_shipped_table_names_each_scenario_once() {
        let mut names: Vec<&str> = SHIPPED.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
