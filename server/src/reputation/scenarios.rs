//! The scenario metadata table: what a reported scenario means, in the CTI's vocabulary. It is
//! `scenarios.toml` beside this file, embedded in the binary and parsed once (on first use,
//! behind a [`LazyLock`]), never per lookup. It is the one mapping from scenario names to
//! behaviours: the reputation's threat scores and the CTI `behaviors`, `attack_details`,
//! `mitre_techniques` and `cves` all come from [`describe`].
//!
//! A scenario listed in the table by its full name gets its label, description, behaviours,
//! MITRE ATT&CK techniques and CVEs from there. Any other scenario gets one behaviour from the
//! first name fragment that matches (or the fallback), its name as label, no technique, and the
//! CVE its name spells if it spells one (`someone/http-cve-2023-1234`). Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::Deserialize;

/// A behaviour derived from scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Behavior {
    /// E.g. `ssh:bruteforce`.
    pub name: &'static str,
    /// E.g. `SSH Bruteforce`.
    pub label: &'static str,
    /// One sentence.
    pub description: &'static str,
    /// 1–5.
    pub threat: u8,
}

/// A MITRE ATT&CK technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Technique {
    /// Technique id, e.g. `T1110`.
    pub id: &'static str,
    /// Its ATT&CK name, e.g. `Brute Force`.
    pub label: &'static str,
    /// One sentence.
    pub description: &'static str,
}

/// What one scenario means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// Short label (the scenario's own name when it is not in the table).
    pub label: String,
    /// One sentence.
    pub description: String,
    /// Behaviours, at least one.
    pub behaviors: Vec<Behavior>,
    /// MITRE ATT&CK techniques (none for a scenario not in the table).
    pub techniques: Vec<Technique>,
    /// CVE ids, upper case.
    pub cves: Vec<String>,
    /// Whether the scenario is in the table by name.
    pub known: bool,
}

/// The table as written in `scenarios.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    fallback: String,
    behaviors: BTreeMap<String, BehaviorRow>,
    techniques: BTreeMap<String, TechniqueRow>,
    scenarios: Vec<ScenarioRow>,
    fragments: Vec<FragmentRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaviorRow {
    label: String,
    description: String,
    threat: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TechniqueRow {
    label: String,
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioRow {
    name: String,
    label: String,
    description: String,
    behaviors: Vec<String>,
    #[serde(default)]
    techniques: Vec<String>,
    #[serde(default)]
    cves: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FragmentRow {
    contains: Vec<String>,
    behavior: String,
}

/// The parsed table, with every reference checked.
#[derive(Debug)]
struct Table {
    file: File,
    /// Scenario name → index in `file.scenarios`.
    by_name: HashMap<String, usize>,
}

/// The embedded table's text.
const TEXT: &str = include_str!("scenarios.toml");

static TABLE: LazyLock<Table> =
    LazyLock::new(|| parse(TEXT).unwrap_or_else(|error| panic!("the embedded scenarios.toml is invalid: {error}")));

/// Parses and checks a table: every behaviour and technique a row names must be defined, every
/// threat 1–5, no scenario twice. The embedded one is checked by the unit tests below.
fn parse(text: &str) -> Result<Table, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let behavior = |name: &str, at: &str| {
        file.behaviors.get(name).map(|_| ()).ok_or_else(|| format!("{at} names the undefined behaviour {name:?}"))
    };
    behavior(&file.fallback, "fallback")?;
    for (name, row) in &file.behaviors {
        if !(1..=5).contains(&row.threat) {
            return Err(format!("behaviour {name:?} has threat {}, not 1-5", row.threat));
        }
    }
    let mut by_name = HashMap::new();
    for (index, row) in file.scenarios.iter().enumerate() {
        if row.behaviors.is_empty() {
            return Err(format!("scenario {:?} has no behaviour", row.name));
        }
        for name in &row.behaviors {
            behavior(name, &row.name)?;
        }
        for id in &row.techniques {
            if !file.techniques.contains_key(id) {
                return Err(format!("scenario {:?} names the undefined technique {id:?}", row.name));
            }
        }
        if let Some(cve) = row.cves.iter().find(|c| cve_of(c).as_deref() != Some(c.as_str())) {
            return Err(format!("scenario {:?} has the malformed CVE id {cve:?}", row.name));
        }
        if by_name.insert(row.name.clone(), index).is_some() {
            return Err(format!("scenario {:?} is listed twice", row.name));
        }
    }
    for row in &file.fragments {
        behavior(&row.behavior, "a fragment")?;
    }
    Ok(Table { file, by_name })
}

impl Table {
    fn behavior(&'static self, name: &str) -> Behavior {
        let (name, row) = self
            .file
            .behaviors
            .get_key_value(name)
            .or_else(|| self.file.behaviors.get_key_value(&self.file.fallback))
            .expect("parse checked that the fallback behaviour is defined");
        Behavior { name, label: &row.label, description: &row.description, threat: row.threat }
    }

    fn technique(&'static self, id: &str) -> Option<Technique> {
        let (id, row) = self.file.techniques.get_key_value(id)?;
        Some(Technique { id, label: &row.label, description: &row.description })
    }
}

/// The first `CVE-YYYY-NNNN…` a text spells (any case, `-` or `_` between the parts), in upper case.
fn cve_of(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(at) = lower[from..].find("cve").map(|i| i + from) {
        from = at + 3;
        let rest = &bytes[at + 3..];
        let sep = |b: u8| b == b'-' || b == b'_';
        if rest.len() < 10 || !sep(rest[0]) || !rest[1..5].iter().all(u8::is_ascii_digit) || !sep(rest[5]) {
            continue;
        }
        let digits = rest[6..].iter().take_while(|b| b.is_ascii_digit()).count();
        if (4..=7).contains(&digits) {
            let year = &lower[at + 4..at + 8];
            let number = &lower[at + 9..at + 9 + digits];
            return Some(format!("CVE-{year}-{number}"));
        }
    }
    None
}

/// What `scenario` means, from the table (see the module doc for scenarios not in it).
pub fn describe(scenario: &str) -> Described {
    let table: &'static Table = &TABLE;
    if let Some(&index) = table.by_name.get(scenario) {
        let row = &table.file.scenarios[index];
        return Described {
            label: row.label.clone(),
            description: row.description.clone(),
            behaviors: row.behaviors.iter().map(|b| table.behavior(b)).collect(),
            techniques: row.techniques.iter().filter_map(|t| table.technique(t)).collect(),
            cves: row.cves.clone(),
            known: true,
        };
    }
    Described {
        label: scenario.rsplit('/').next().unwrap_or(scenario).to_string(),
        description: format!("Reported for scenario {scenario}"),
        behaviors: vec![fragment_behavior(table, scenario)],
        techniques: Vec::new(),
        cves: cve_of(scenario).into_iter().collect(),
        known: false,
    }
}

fn fragment_behavior(table: &'static Table, scenario: &str) -> Behavior {
    let name = scenario.rsplit('/').next().unwrap_or(scenario).to_ascii_lowercase();
    let found = table.file.fragments.iter().find(|row| row.contains.iter().any(|f| name.contains(f.as_str())));
    table.behavior(found.map_or(table.file.fallback.as_str(), |row| row.behavior.as_str()))
}

/// The behaviours of a scenario (at least one), by [`describe`]'s rules without allocating
/// its texts: the reputation calls this for every reporter of every window.
pub fn behaviors_of(scenario: &str) -> Vec<Behavior> {
    let table: &'static Table = &TABLE;
    match table.by_name.get(scenario) {
        Some(&index) => table.file.scenarios[index].behaviors.iter().map(|b| table.behavior(b)).collect(),
        None => vec![fragment_behavior(table, scenario)],
    }
}

/// The worst threat (1–5) among a scenario's behaviours.
pub fn threat_of(scenario: &str) -> u8 {
    let table: &'static Table = &TABLE;
    match table.by_name.get(scenario) {
        Some(&index) => table.file.scenarios[index].behaviors.iter().map(|b| table.behavior(b).threat).max().unwrap_or(0),
        None => fragment_behavior(table, scenario).threat,
    }
}

/// The behaviour of a scenario that nothing matches.
pub fn fallback() -> Behavior {
    let table: &'static Table = &TABLE;
    table.behavior(&table.file.fallback)
}

/// Every behaviour the table defines, by name (for the search's validation and the docs).
pub fn all_behaviors() -> Vec<Behavior> {
    let table: &'static Table = &TABLE;
    table.file.behaviors.keys().map(|name| table.behavior(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_parses_and_every_reference_is_defined() {
        let table = parse(TEXT).expect("scenarios.toml");
        assert!(table.file.scenarios.len() >= 50, "the common hub scenarios are listed");
        assert!(table.file.scenarios.iter().all(|s| s.name.contains('/')), "full hub names");
    }

    #[test]
    fn a_broken_table_is_refused_with_the_reason() {
        let base = "fallback = \"a:b\"\nfragments = []\n[behaviors.\"a:b\"]\nlabel = \"A\"\ndescription = \"d\"\nthreat = 2\n[techniques.T1]\nlabel = \"t\"\ndescription = \"d\"\n";
        let row = |extra: &str| format!("{base}[[scenarios]]\nname = \"x/y\"\nlabel = \"l\"\ndescription = \"d\"\n{extra}\n");
        assert!(parse(&row("behaviors = [\"a:b\"]\ntechniques = [\"T1\"]")).is_ok());
        let undefined = parse(&row("behaviors = [\"c:d\"]")).expect_err("undefined behaviour");
        assert!(undefined.contains("c:d"), "{undefined}");
        let technique = parse(&row("behaviors = [\"a:b\"]\ntechniques = [\"T9\"]")).expect_err("undefined technique");
        assert!(technique.contains("T9"), "{technique}");
        let cve = parse(&row("behaviors = [\"a:b\"]\ncves = [\"cve-1\"]")).expect_err("malformed CVE");
        assert!(cve.contains("cve-1"), "{cve}");
    }

    #[test]
    fn listed_scenarios_carry_behaviours_techniques_and_cves() {
        let ssh = describe("crowdsecurity/ssh-bf");
        assert!(ssh.known);
        assert_eq!(ssh.behaviors.iter().map(|b| b.name).collect::<Vec<_>>(), ["ssh:bruteforce"]);
        assert_eq!(ssh.techniques.iter().map(|t| (t.id, t.label)).collect::<Vec<_>>(), [("T1110", "Brute Force")]);
        assert!(ssh.cves.is_empty());
        let log4j = describe("crowdsecurity/apache_log4j2_cve-2021-44228");
        assert_eq!(log4j.cves, ["CVE-2021-44228"]);
        assert_eq!(log4j.techniques[0].id, "T1190");
        assert_eq!(log4j.behaviors[0].name, "http:exploit");
        let regression = describe("crowdsecurity/ssh-cve-2024-6387");
        assert_eq!((regression.behaviors[0].name, regression.cves[0].as_str()), ("ssh:exploit", "CVE-2024-6387"));
        assert_eq!(describe("crowdsecurity/iptables-scan-multi_ports").techniques[0].id, "T1046");
        assert_eq!(describe("crowdsecurity/http-probing").techniques[0].label, "Active Scanning");
    }

    #[test]
    fn other_scenarios_get_a_fragment_behaviour_their_cve_and_no_technique() {
        let unknown = describe("someone/http-cve-2023-22515_confluence");
        assert!(!unknown.known);
        assert_eq!((unknown.label.as_str(), unknown.behaviors[0].name), ("http-cve-2023-22515_confluence", "http:exploit"));
        assert_eq!(unknown.cves, ["CVE-2023-22515"]);
        assert!(unknown.techniques.is_empty());
        assert_eq!(describe("someone/smb-bf").behaviors[0].name, "generic:bruteforce", "service before the generic -bf");
        assert_eq!(describe("someone/mystery").behaviors[0].name, "generic:unclassified");
        assert_eq!(describe("someone/mystery").behaviors[0], fallback());
        assert!(describe("someone/cve-12-1").cves.is_empty(), "not a CVE id");
    }

    #[test]
    fn cve_ids_are_read_in_any_spelling() {
        assert_eq!(cve_of("crowdsecurity/CVE-2022-26134").as_deref(), Some("CVE-2022-26134"));
        assert_eq!(cve_of("x/spring4shell_cve-2022-22965").as_deref(), Some("CVE-2022-22965"));
        assert_eq!(cve_of("x/cve_2021_1234567").as_deref(), Some("CVE-2021-1234567"));
        assert_eq!(cve_of("x/cve-2021-123"), None);
        assert_eq!(cve_of("x/cvecve-2021-4444").as_deref(), Some("CVE-2021-4444"));
    }

    #[test]
    fn threat_is_the_worst_behaviour() {
        assert_eq!(threat_of("crowdsecurity/http-cve-2021-41773"), 5);
        assert_eq!(threat_of("crowdsecurity/ssh-bf"), 3);
        assert!(all_behaviors().iter().all(|b| (1..=5).contains(&b.threat)));
    }
}
