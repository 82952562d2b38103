//! How a list entry came to be: the rule that listed it and the remediation it suggests. The
//! consensus engine decides both for the community list, the operator for custom lists, and the
//! store keeps their stable names (`as_str`), so these types sit here where both reach them.

use serde::{Deserialize, Serialize};

/// Which rule listed an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An operator sensor saw it attack.
    Sensor,
    /// Enough diverse, anchored support.
    Crowd,
    /// Far more support spread over many well-trusted clusters, no anchor.
    Broad,
    /// A hosting /24 with many listed addresses, listed whole (`engine::expand`).
    Expanded,
    /// The operator put it on a custom list (never a consensus decision).
    Operator,
    /// A machine of the account reported it: listed on that account's private pool only.
    Pool,
}

impl Rule {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Sensor => "sensor",
            Rule::Crowd => "crowd",
            Rule::Broad => "broad",
            Rule::Expanded => "expanded",
            Rule::Operator => "operator",
            Rule::Pool => "pool",
        }
    }

    /// The inverse of [`Rule::as_str`].
    pub fn from_stored(text: &str) -> Option<Rule> {
        [Rule::Sensor, Rule::Crowd, Rule::Broad, Rule::Expanded, Rule::Operator, Rule::Pool]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// The suggested remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remediation {
    /// Block.
    Ban,
    /// Challenge (shared addresses: CGNAT, VPN, Tor, proxies).
    Captcha,
}

impl Remediation {
    /// Stable name, as stored and shown (`ban`, `captcha`).
    pub fn as_str(self) -> &'static str {
        match self {
            Remediation::Ban => "ban",
            Remediation::Captcha => "captcha",
        }
    }

    /// The inverse of [`Remediation::as_str`].
    pub fn from_stored(text: &str) -> Option<Remediation> {
        match text {
            "ban" => Some(Remediation::Ban),
            "captcha" => Some(Remediation::Captcha),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_read_back() {
        for rule in [Rule::Sensor, Rule::Crowd, Rule::Broad, Rule::Expanded, Rule::Operator] {
            assert_eq!(Rule::from_stored(rule.as_str()), Some(rule));
            assert_eq!(serde_json::to_value(rule).expect("json"), rule.as_str());
        }
        for remediation in [Remediation::Ban, Remediation::Captcha] {
            assert_eq!(Remediation::from_stored(remediation.as_str()), Some(remediation));
            assert_eq!(serde_json::to_value(remediation).expect("json"), remediation.as_str());
        }
        assert_eq!(Rule::from_stored("aggregate"), None);
        assert_eq!(Remediation::from_stored("block"), None);
    }
}
