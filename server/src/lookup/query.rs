//! The subset of the CTI search language `GET /v2/smoke/search` understands, parsed into a
//! [`Query`] and matched against the [`Facts`] known of one listed address. Pure: no I/O.
//!
//! A query is one or more `field:value` terms joined by `AND`; a value is a bare word (up to the
//! next space) or a double-quoted string (no escapes). Fields: `as_num`, `location.country`,
//! `reputation`, `behaviors.name`, `classifications.classifications.name`, `cves` and
//! `attack_details.name`. Anything else (`OR`, `NOT`, parentheses, wildcards, ranges, another
//! field) is refused with [`SUPPORTED`] in the message, never guessed at.

/// The longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 1024;

/// The most terms in one query.
pub const MAX_TERMS: usize = 16;

/// What the search language supports, for error messages and the docs.
pub const SUPPORTED: &str = "supported: field:value terms joined by AND (values with spaces or colons in double quotes), \
    fields as_num, location.country, reputation, behaviors.name, classifications.classifications.name, cves, \
    attack_details.name; e.g. behaviors.name:\"ssh:bruteforce\" AND location.country:FR";

/// The reputation classes a `reputation:` term may name.
const CLASSES: [&str; 6] = ["malicious", "suspicious", "known", "safe", "benign", "unknown"];

/// One `field:value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// `as_num:1234`.
    AsNum(u32),
    /// `location.country:FR` (held upper case).
    Country(String),
    /// `reputation:malicious`.
    Reputation(String),
    /// `behaviors.name:"ssh:bruteforce"`.
    Behavior(String),
    /// `classifications.classifications.name:community-blocklist`.
    Classification(String),
    /// `cves:CVE-2021-44228` (held upper case).
    Cve(String),
    /// `attack_details.name:crowdsecurity/ssh-bf`.
    Scenario(String),
}

/// A parsed query: every term must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The terms, in the order written.
    pub terms: Vec<Term>,
}

/// What the search knows of one candidate address without reading the store.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// AS number, when an AS database is configured.
    pub as_num: Option<u32>,
    /// Country, when a country database is configured.
    pub country: Option<&'a str>,
    /// Reputation class.
    pub reputation: &'a str,
    /// Behaviour names.
    pub behaviors: &'a [&'a str],
    /// Classification names.
    pub classifications: &'a [&'a str],
    /// CVE ids, upper case.
    pub cves: &'a [String],
    /// Scenario names.
    pub scenarios: &'a [&'a str],
}

impl Query {
    /// Whether the address these facts describe matches every term.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        self.terms.iter().all(|term| match term {
            Term::AsNum(n) => facts.as_num == Some(*n),
            Term::Country(c) => facts.country.is_some_and(|f| f.eq_ignore_ascii_case(c)),
            Term::Reputation(r) => facts.reputation == r,
            Term::Behavior(b) => facts.behaviors.iter().any(|f| f == b),
            Term::Classification(c) => facts.classifications.iter().any(|f| f == c),
            Term::Cve(c) => facts.cves.iter().any(|f| f == c),
            Term::Scenario(s) => facts.scenarios.iter().any(|f| f == s),
        })
    }

    /// Whether matching needs the AS and country databases.
    pub fn needs_enrichment(&self) -> bool {
        self.terms.iter().any(|t| matches!(t, Term::AsNum(_) | Term::Country(_)))
    }
}

/// Parses a query; the error is a sentence for the caller, ending with [`SUPPORTED`].
pub fn parse(text: &str) -> Result<Query, String> {
    parse_terms(text).map_err(|reason| format!("unsupported query: {reason}; {SUPPORTED}"))
}

fn parse_terms(text: &str) -> Result<Query, String> {
    if text.len() > MAX_QUERY_LEN {
        return Err(format!("the query is {} bytes long, at most {MAX_QUERY_LEN} are accepted", text.len()));
    }
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("the query is empty".into());
    }
    let mut terms = Vec::new();
    loop {
        let (term, after) = term(rest)?;
        terms.push(term);
        if terms.len() > MAX_TERMS {
            return Err(format!("at most {MAX_TERMS} terms are accepted"));
        }
        rest = after.trim_start();
        if rest.is_empty() {
            return Ok(Query { terms });
        }
        let (word, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if word != "AND" {
            return Err(format!("expected AND between terms, found {:?}", clip(word)));
        }
        rest = after.trim_start();
        if rest.is_empty() {
            return Err("the query ends with AND".into());
        }
    }
}

/// A shortened copy of user text for an error message.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// One term at the start of `text`, and what follows it.
fn term(text: &str) -> Result<(Term, &str), String> {
    let Some((field, after)) = text.split_once(':') else {
        let word = text.split(char::is_whitespace).next().unwrap_or(text);
        return Err(format!("{:?} is not a field:value term", clip(word)));
    };
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') {
        return Err(format!("{:?} is not a field:value term", clip(field)));
    }
    let (value, rest) = if let Some(quoted) = after.strip_prefix('"') {
        let end = quoted.find('"').ok_or("a quoted value is not closed")?;
        (&quoted[..end], &quoted[end + 1..])
    } else {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        (&after[..end], &after[end..])
    };
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err("a quoted value must be followed by a space or the end".into());
    }
    if value.trim().is_empty() {
        return Err(format!("{field} has no value"));
    }
    if value.contains(['*', '?']) || value.starts_with(['[', '{', '(']) {
        return Err(format!("wildcards, ranges and groups are not supported ({field}:{})", clip(value)));
    }
    Ok((term_of(field, value)?, rest))
}

fn term_of(field: &str, value: &str) -> Result<Term, String> {
    Ok(match field {
        "as_num" => Term::AsNum(value.parse().map_err(|_| format!("as_num must be an AS number, not {:?}", clip(value)))?),
        "location.country" => {
            if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("location.country must be a two-letter ISO code, not {:?}", clip(value)));
            }
            Term::Country(value.to_ascii_uppercase())
        }
        "reputation" => {
            let class = value.to_ascii_lowercase();
            if !CLASSES.contains(&class.as_str()) {
                return Err(format!("reputation must be one of {}, not {:?}", CLASSES.join(", "), clip(value)));
            }
            Term::Reputation(class)
        }
        "behaviors.name" => Term::Behavior(value.to_string()),
        "classifications.classifications.name" => Term::Classification(value.to_string()),
        "cves" => Term::Cve(value.to_ascii_uppercase()),
        "attack_details.name" => Term::Scenario(value.to_string()),
        other => return Err(format!("the field {:?} is not searchable", clip(other))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        static CVES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| vec!["CVE-2024-6387".into()]);
        Facts {
            as_num: Some(64500),
            country: Some("FR"),
            reputation: "malicious",
            behaviors: &["ssh:bruteforce"],
            classifications: &["community-blocklist"],
            cves: &CVES,
            scenarios: &["crowdsecurity/ssh-cve-2024-6387"],
        }
    }

    #[test]
    fn every_field_parses_and_matches() {
        for (text, matching) in [
            ("as_num:64500", true),
            ("as_num:64501", false),
            ("location.country:fr", true),
            ("location.country:DE", false),
            ("reputation:MALICIOUS", true),
            ("reputation:suspicious", false),
            ("behaviors.name:\"ssh:bruteforce\"", true),
            ("behaviors.name:ssh:bruteforce", true),
            ("behaviors.name:\"http:scan\"", false),
            ("classifications.classifications.name:community-blocklist", true),
            ("cves:cve-2024-6387", true),
            ("cves:CVE-2021-44228", false),
            ("attack_details.name:\"crowdsecurity/ssh-cve-2024-6387\"", true),
        ] {
            let query = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(query.matches(&facts()), matching, "{text}");
        }
    }

    #[test]
    fn and_needs_every_term() {
        let both = parse("as_num:64500 AND  location.country:FR").expect("query");
        assert_eq!(both.terms.len(), 2);
        assert!(both.matches(&facts()));
        assert!(!parse("as_num:64500 AND location.country:DE").expect("query").matches(&facts()));
        assert!(both.needs_enrichment());
        assert!(!parse("reputation:malicious").expect("query").needs_enrichment());
    }

    #[test]
    fn anything_else_is_refused_naming_what_is_supported() {
        for text in [
            "",
            "   ",
            "ssh",
            "as_num:1 OR as_num:2",
            "as_num:1 and as_num:2",
            "NOT as_num:1",
            "(as_num:1)",
            "as_num:1 AND",
            "ip:1.2.3.4",
            "as_num:abc",
            "as_num:",
            "location.country:FRA",
            "reputation:evil",
            "behaviors.name:\"ssh:bruteforce",
            "behaviors.name:\"a\"b",
            "cves:CVE-*",
            "as_num:[1 TO 5]",
            "é:1",
            "behaviors.name:\"\"",
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.starts_with("unsupported query: ") && error.ends_with(SUPPORTED), "{text}: {error}");
        }
        let long = format!("cves:{}", "A".repeat(MAX_QUERY_LEN));
        assert!(parse(&long).expect_err("too long").contains("at most 1024"));
        let many = vec!["reputation:malicious"; MAX_TERMS + 1].join(" AND ");
        assert!(parse(&many).expect_err("too many").contains("at most 16 terms"));
    }

    #[test]
    fn unicode_values_are_kept_and_never_split_inside_a_character() {
        let query = parse("behaviors.name:\"ssh:brüteforce ✓\" AND attack_details.name:日本/x").expect("query");
        assert_eq!(query.terms[0], Term::Behavior("ssh:brüteforce ✓".into()));
        assert!(!query.matches(&facts()));
        let error = parse(&"✓".repeat(400)).expect_err("too long");
        assert!(error.contains("at most"), "{error}");
        assert!(parse(&format!("x{}", "✓".repeat(100))).expect_err("not a term").contains("not a field:value"));
    }
}
