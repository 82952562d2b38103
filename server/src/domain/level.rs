//! An account's verification level: set by the operator, stored with the account, and capping
//! the trust the consensus engine gives its machines (`engine::trust`).

use serde::{Deserialize, Serialize};

/// An account's verification level, set by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No account, or an unverified one.
    #[default]
    Anonymous,
    /// Verified e-mail.
    Email,
    /// Proven ownership of its network.
    Verified,
    /// Paying.
    Paid,
    /// Partner or the operator's own.
    Partner,
}

impl Level {
    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text {
            "anonymous" => Level::Anonymous,
            "email" => Level::Email,
            "verified" => Level::Verified,
            "paid" => Level::Paid,
            "partner" => Level::Partner,
            _ => return None,
        })
    }

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Anonymous => "anonymous",
            Level::Email => "email",
            Level::Verified => "verified",
            Level::Paid => "paid",
            Level::Partner => "partner",
        }
    }
}
