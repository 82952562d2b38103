//! CrowdSec Local API bodies for bouncers (`GET /v1/decisions/stream`, `GET /v1/decisions`),
//! shaped as CrowdSec 1.4.6's LAPI emits them and its Go client (`go-cs-bouncer`) decodes them:
//! the fields of a decision in the order Go writes them, the stream's two keys in the order Go
//! writes a map (`deleted` before `new`), and `null`, not `[]`, where there is nothing.

use serde::{Deserialize, Serialize};

/// One decision, as LAPI's `models.Decision` serialises it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LapiDecision {
    /// Time left, in Go's duration form (`3h59m58s`); bouncers hand it to the firewall as the
    /// entry's timeout.
    pub duration: String,
    /// Identifier of the decision: the seq of the change that last wrote the entry.
    pub id: i64,
    /// `CAPI` for the community list, `lists` for any other list.
    pub origin: String,
    /// The scenario, or for a list other than the community list, the list's name.
    pub scenario: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// The remediation: `ban` or `captcha`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The address or network.
    pub value: String,
}

/// `GET /v1/decisions/stream`: what to add and what to remove since the key's last pull; each
/// key is `null` when empty, as LAPI answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LapiDecisionsStream {
    /// Decisions to remove.
    #[cfg_attr(feature = "schema", schema(required = true))]
    pub deleted: Option<Vec<LapiDecision>>,
    /// Decisions to add.
    #[cfg_attr(feature = "schema", schema(required = true))]
    pub new: Option<Vec<LapiDecision>>,
}
