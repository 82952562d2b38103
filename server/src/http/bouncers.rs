//! CrowdSec Local API compatibility for bouncers (`/v1/decisions`): the routes
//! crowdsec-firewall-bouncer, the nginx, HAProxy and Traefik bouncers and every other client of
//! `go-cs-bouncer` pull decisions from, so a bouncer works against Palisade by changing only its
//! `api_url` and `api_key`. A key receives what its account receives
//! ([`crate::distribution::bouncers`]); each pull counts one lookup against the key's tier.
//!
//! Answers follow CrowdSec 1.4.6's LAPI (`pkg/apiserver/controllers/v1/decisions.go`),
//! including its quirks, kept here on purpose:
//! - the key is `X-Api-Key`; a missing, unknown or revoked key is **403**, as LAPI answers
//!   (`{"message": "access forbidden"}` there; our body carries `message` too);
//! - the stream answers `{"deleted": …, "new": …}` (Go writes a map's keys sorted) and an empty
//!   side is `null`, not `[]`; `GET /v1/decisions` with nothing to report answers `null`;
//! - `startup=true` sends everything current and restarts the key's cursor; without it, what
//!   changed since that key's last pull (the cursor is in the store: it survives restarts and
//!   every replica continues from the same point). `go-cs-bouncer` leaves `startup` out of the
//!   query when false;
//! - `scopes` defaults to `ip,range`, and matches case-insensitively (`Ip` and `ip` alike);
//!   decisions are deduplicated by value, scope and type, the longest kept, unless `dedup=false`;
//! - error bodies carry `message` (the Go client prints it).
//!
//! Where we differ, on purpose: a scope or origin LAPI does not know, or a malformed flag or
//! address, is 400 (LAPI ignores the first and answers 500 for the last); `HEAD` checks the key
//! and the query without moving the cursor or counting a lookup (LAPI's `HEAD` on the stream
//! moves the cursor and loses the changes it would have sent).

use std::collections::HashMap;
use std::io::Write as _;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use palisade_api::lapi::{LapiDecision, LapiDecisionsStream};
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiKey, QueryParams, parse_flag};
use super::quota::{charge, with_limit_headers};
use super::responses::{BadRequest, InvalidApiKey, RateLimited};
use crate::distribution::bouncers::Match;
use crate::distribution::stream::{Sent, Sources};
use crate::domain::time::go_duration;
use crate::error::ApiError;
use crate::limits::Tier;
use crate::serving::{Entry, SharedEntry};
use crate::state::AppState;

/// Routes under `/v1/decisions`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(get_decisions_stream, check_decisions_stream))
        .routes(routes!(get_decisions, check_decisions))
}

/// The scopes LAPI knows, lowercase: Palisade serves `ip` and `range`; `country` and `as`
/// decisions it never has, so asking for them selects nothing.
const SCOPES: [&str; 4] = ["ip", "range", "country", "as"];

/// The origins LAPI knows: Palisade's decisions are `CAPI` (the community list) or `lists`
/// (every other list); the others select nothing.
const ORIGINS: [&str; 6] = ["CAPI", "lists", "crowdsec", "cscli", "console", "cscli-import"];

/// Longest `scenarios_containing` / `scenarios_not_containing` accepted, in bytes.
const MAX_SCENARIO_FILTER: usize = 4096;

/// Query of `GET /v1/decisions/stream`, as `go-cs-bouncer` builds it. Values are parsed by hand
/// so a bad one gets a 400 that says which.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// `true` on a bouncer's first pull: everything current, and the key's cursor restarts.
    pub startup: Option<String>,
    /// Comma-separated scopes to send (`ip`, `range`, `country`, `as`); default `ip,range`.
    pub scopes: Option<String>,
    /// Comma-separated origins to send: `CAPI` (the community list), `lists` (any other list).
    pub origins: Option<String>,
    /// Comma-separated texts: only decisions whose scenario contains one of them (any case).
    pub scenarios_containing: Option<String>,
    /// Comma-separated texts: no decision whose scenario contains one of them (any case).
    pub scenarios_not_containing: Option<String>,
    /// `false` to send a value listed by several lists once per list.
    pub dedup: Option<String>,
}

/// Query of `GET /v1/decisions`, as LAPI's clients send it. Values are parsed by hand.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionsQuery {
    /// An address or network: the decisions covering it (or, with `contains=false`, within it).
    pub ip: Option<String>,
    /// A network, as `ip`.
    pub range: Option<String>,
    /// Only decisions of this scope (`Ip`, `Range`; any case).
    pub scope: Option<String>,
    /// Only the decision on exactly this value.
    pub value: Option<String>,
    /// Only decisions of this type (`ban`, `captcha`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `false`: the decisions within `ip`/`range` rather than those containing it.
    pub contains: Option<String>,
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

/// The non-empty items of a comma-separated parameter; 400 when it names none.
fn items<'q>(name: &str, value: &'q str) -> Result<Vec<&'q str>, ApiError> {
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|item| !item.is_empty()).collect();
    if items.is_empty() {
        return Err(bad(format!("{name} is empty; leave it out or name at least one")));
    }
    Ok(items)
}

/// Which decisions a pull keeps: LAPI's filters, checked on the decisions as they are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    /// Lowercase scopes kept.
    scopes: Vec<String>,
    /// Origins kept (compared without case); `None` for every origin.
    origins: Option<Vec<String>>,
    /// Lowercase texts one of which the scenario must contain, when any.
    containing: Vec<String>,
    /// Lowercase texts none of which the scenario may contain.
    not_containing: Vec<String>,
    dedup: bool,
}

impl Filter {
    fn parse(query: &StreamQuery) -> Result<Filter, ApiError> {
        let scopes = match query.scopes.as_deref() {
            None => vec!["ip".to_string(), "range".to_string()],
            Some(text) => items("scopes", text)?
                .into_iter()
                .map(|scope| {
                    let lower = scope.to_ascii_lowercase();
                    if SCOPES.contains(&lower.as_str()) {
                        Ok(lower)
                    } else {
                        Err(bad(format!("unknown scope {scope:?} in scopes; known scopes: {}", SCOPES.join(", "))))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let origins = match query.origins.as_deref() {
            None => None,
            Some(text) => Some(
                items("origins", text)?
                    .into_iter()
                    .map(|origin| match ORIGINS.iter().find(|known| known.eq_ignore_ascii_case(origin)) {
                        Some(known) => Ok((*known).to_string()),
                        None => Err(bad(format!("unknown origin {origin:?} in origins; known origins: {}", ORIGINS.join(", ")))),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let texts = |name: &str, value: Option<&str>| -> Result<Vec<String>, ApiError> {
            match value {
                None => Ok(Vec::new()),
                Some(text) if text.len() > MAX_SCENARIO_FILTER => {
                    Err(bad(format!("{name} is longer than {MAX_SCENARIO_FILTER} bytes")))
                }
                Some(text) => Ok(items(name, text)?.into_iter().map(str::to_lowercase).collect()),
            }
        };
        Ok(Filter {
            scopes,
            origins,
            containing: texts("scenarios_containing", query.scenarios_containing.as_deref())?,
            not_containing: texts("scenarios_not_containing", query.scenarios_not_containing.as_deref())?,
            dedup: parse_flag("dedup", query.dedup.as_deref(), true)?,
        })
    }

    fn keeps(&self, entry: &Entry, from_list: Option<&str>) -> bool {
        let origin = origin(from_list);
        let scenario = scenario(entry, from_list);
        let lower = || scenario.to_lowercase();
        self.scopes.iter().any(|scope| scope.eq_ignore_ascii_case(entry.scope()))
            && self.origins.as_ref().is_none_or(|origins| origins.iter().any(|o| o.eq_ignore_ascii_case(origin)))
            && (self.containing.is_empty() || self.containing.iter().any(|text| lower().contains(text.as_str())))
            && (self.not_containing.is_empty() || !self.not_containing.iter().any(|text| lower().contains(text.as_str())))
    }

    /// The decisions kept, deduplicated by value, scope and type (the longest kept) unless
    /// `dedup=false`. Each list holds a value once, so only values of more than one list are
    /// looked at: a map of the smaller lists' values, the largest list (the community list of a
    /// million) checked against it, never copied into it.
    fn apply(&self, mut decisions: Sent) -> Sent {
        decisions.retain(|entry, from_list| self.keeps(entry, from_list));
        let groups: Vec<(Option<&str>, &[SharedEntry])> = decisions.groups().collect();
        if !self.dedup || groups.len() < 2 {
            return decisions;
        }
        let largest = (0..groups.len()).max_by_key(|&g| groups[g].1.len()).unwrap_or(0);
        // (value, scope, type) → (group, index) of the longest decision seen for it.
        let mut best: HashMap<(IpNet, &str, &str), (usize, usize)> = HashMap::new();
        let longer = |(g, i): (usize, usize), (h, j): (usize, usize)| groups[g].1[i].expires_at() > groups[h].1[j].expires_at();
        for (g, (_, entries)) in groups.iter().enumerate().filter(|(g, _)| *g != largest) {
            for (i, entry) in entries.iter().enumerate() {
                let slot = best.entry((entry.net, entry.scope(), entry.remediation())).or_insert((g, i));
                if longer((g, i), *slot) {
                    *slot = (g, i);
                }
            }
        }
        for (i, entry) in groups[largest].1.iter().enumerate() {
            if let Some(slot) = best.get_mut(&(entry.net, entry.scope(), entry.remediation()))
                && longer((largest, i), *slot)
            {
                *slot = (largest, i);
            }
        }
        let keep: Vec<Vec<bool>> = groups
            .iter()
            .enumerate()
            .map(|(g, (_, entries))| {
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| match best.get(&(entry.net, entry.scope(), entry.remediation())) {
                        Some(&slot) => slot == (g, i),
                        None => g == largest,
                    })
                    .collect()
            })
            .collect();
        drop(best);
        drop(groups);
        decisions.retain_flagged(&keep);
        decisions
    }
}

/// `lists` for a decision of a list other than the community list, `CAPI` for the community list.
fn origin(from_list: Option<&str>) -> &'static str {
    if from_list.is_some() { "lists" } else { "CAPI" }
}

/// The list's name for a decision of a list other than the community list, else its scenario.
fn scenario<'s>(entry: &'s Entry, from_list: Option<&'s str>) -> &'s str {
    from_list.unwrap_or(entry.scenario())
}

/// A decision as LAPI writes it. One from a list other than the community list has origin
/// `lists` and the list's name as its scenario, as on the CrowdSec agent's stream. A removed one
/// has duration `0s`.
fn lapi_decision(entry: &Entry, from_list: Option<&str>, now: OffsetDateTime, removed: bool) -> LapiDecision {
    LapiDecision {
        duration: if removed { "0s".into() } else { go_duration((entry.expires_at() - now).whole_seconds()) },
        id: entry.seq,
        origin: origin(from_list).into(),
        scenario: scenario(entry, from_list).to_string(),
        scope: if entry.scope() == "range" { "Range".into() } else { "Ip".into() },
        kind: entry.remediation().to_string(),
        value: entry.value().to_string(),
    }
}

/// The lists the key receives, and its tier.
async fn sources(state: &AppState, key: &ApiKey) -> Result<(Sources, Tier), ApiError> {
    let tier = state.quotas.tier(&key.record.tier);
    let sources = state.distribution.key_sources(key.record.account, &tier.blocklists).await?;
    Ok((sources, tier))
}

/// Counts one lookup against the key's tier; the refusal is a complete answer (429 with
/// `Retry-After` and the rate-limit headers).
async fn charge_pull(state: &AppState, key: &ApiKey, tier: &Tier) -> Result<crate::limits::Decision, Response> {
    let (decision, charged) = charge(state, &key.limit_key(), tier, 1).await;
    match charged {
        Ok(()) => Ok(decision),
        Err(error) => Err(with_limit_headers(error.into_response(), &decision)),
    }
}

/// Writes decisions as a JSON array, one at a time as they are sent (`null` when there is none,
/// as LAPI does), so a million are never held as JSON or as wire structs.
fn write_side(out: &mut impl std::io::Write, decisions: &Sent, now: OffsetDateTime, removed: bool) -> std::io::Result<()> {
    if decisions.is_empty() {
        return out.write_all(b"null");
    }
    out.write_all(b"[")?;
    for (i, (entry, from_list)) in decisions.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &lapi_decision(entry, from_list, now, removed))?;
    }
    out.write_all(b"]")
}

/// A streamed JSON answer written by `write`.
fn json_body(write: impl FnOnce(&mut super::stream::ChunkWriter) -> std::io::Result<()> + Send + 'static) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::stream::streamed_body(false, write)).into_response()
}

/// The decision stream of CrowdSec's Local API, for bouncers: with `startup=true` every decision
/// in force for the key (and the key's cursor restarted), otherwise what was added and removed
/// since this key's last pull. The key receives the community list as its tier caps it, the
/// operator lists its tier names, its account's pool and the pools shared with its account.
/// Each side is `null` when empty. Counts one lookup against the key's tier.
#[utoipa::path(get, path = "/stream", tag = "bouncers", params(StreamQuery), security(("api_key" = [])),
    responses((status = 200, body = LapiDecisionsStream), BadRequest, InvalidApiKey, RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn get_decisions_stream(
    State(state): State<AppState>,
    key: ApiKey,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response, ApiError> {
    let startup = parse_flag("startup", query.startup.as_deref(), false)?;
    let filter = Filter::parse(&query)?;
    let (sources, tier) = sources(&state, &key).await?;
    let decision = match charge_pull(&state, &key, &tier).await {
        Ok(decision) => decision,
        Err(refused) => return Ok(refused),
    };
    metrics::counter!("palisade_stream_pulls_total", "version" => "lapi", "startup" => startup.to_string()).increment(1);
    let (new, deleted) = state.distribution.bouncer_delta(&key.record.prefix, &sources, startup).await?;
    let (new, deleted) = (filter.apply(new), filter.apply(deleted));
    let now = OffsetDateTime::now_utc();
    // The bytes are those of `LapiDecisionsStream` serialised whole.
    let body = json_body(move |out| {
        out.write_all(b"{\"deleted\":")?;
        write_side(out, &deleted, now, true)?;
        out.write_all(b",\"new\":")?;
        write_side(out, &new, now, false)?;
        out.write_all(b"}")
    });
    Ok(with_limit_headers(body, &decision))
}

/// Checks a bouncer's key and stream query without pulling: 200 with no body. Neither moves the
/// key's cursor nor counts a lookup.
#[utoipa::path(head, path = "/stream", tag = "bouncers", params(StreamQuery), security(("api_key" = [])),
    responses((status = 200, description = "The key and the query are good"), BadRequest, InvalidApiKey, RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn check_decisions_stream(
    State(state): State<AppState>,
    key: ApiKey,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response, ApiError> {
    parse_flag("startup", query.startup.as_deref(), false)?;
    Filter::parse(&query)?;
    Ok(checked(&state, &key).await)
}

/// An empty 200 carrying where the key stands with its quota, without spending any of it.
async fn checked(state: &AppState, key: &ApiKey) -> Response {
    let tier = state.quotas.tier(&key.record.tier);
    let standing = state.quotas.limiter.check(&key.limit_key(), &tier, 0).await;
    with_limit_headers(StatusCode::OK.into_response(), &standing)
}

/// An address or a network, as LAPI's `ip`, `range` and `value` take them.
fn parse_net(name: &str, text: &str) -> Result<IpNet, ApiError> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text
            .parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| bad(format!("{name} must be an IPv4 or IPv6 address or network, not {text:?}")))?,
    };
    Ok(match net {
        // An IPv4-mapped IPv6 address is the IPv4 one, as entries are stored.
        IpNet::V6(v6) if v6.prefix_len() == 128 => {
            v6.addr().to_ipv4_mapped().map_or(net, |v4| IpNet::from(std::net::IpAddr::V4(v4)))
        }
        other => other.trunc(),
    })
}

/// What `GET /v1/decisions` selects, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selection {
    target: Option<Match>,
    value: Option<IpNet>,
    scope: Option<String>,
    kind: Option<String>,
}

impl Selection {
    fn parse(query: &DecisionsQuery) -> Result<Selection, ApiError> {
        let contains = parse_flag("contains", query.contains.as_deref(), true)?;
        let around = match (query.ip.as_deref(), query.range.as_deref()) {
            (Some(_), Some(_)) => return Err(bad("give ip or range, not both".into())),
            (Some(ip), None) => Some(parse_net("ip", ip)?),
            (None, Some(range)) => Some(parse_net("range", range)?),
            (None, None) => None,
        };
        let value = query.value.as_deref().map(|v| parse_net("value", v)).transpose()?;
        let scope = match query.scope.as_deref().map(str::to_ascii_lowercase) {
            Some(scope) if !SCOPES.contains(&scope.as_str()) => {
                return Err(bad(format!("unknown scope {scope:?}; known scopes: {}", SCOPES.join(", "))));
            }
            scope => scope,
        };
        let kind = match query.kind.as_deref() {
            Some(kind)
                if kind.is_empty()
                    || kind.len() > 64
                    || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                return Err(bad(format!("type must be a decision type such as ban or captcha, not {kind:?}")));
            }
            kind => kind.map(str::to_string),
        };
        let target = match (around, value) {
            (Some(net), _) if contains => Some(Match::Containing(net)),
            (Some(net), _) => Some(Match::Within(net)),
            (None, Some(net)) => Some(Match::Exactly(net)),
            (None, None) => None,
        };
        Ok(Selection { target, value, scope, kind })
    }

    fn keeps(&self, entry: &Entry) -> bool {
        self.value.is_none_or(|value| value == entry.net)
            && self.scope.as_ref().is_none_or(|scope| scope.eq_ignore_ascii_case(entry.scope()))
            && self.kind.as_ref().is_none_or(|kind| kind == entry.remediation())
    }
}

/// The decisions in force for the key that cover an address or network (`ip`, `range`; with
/// `contains=false` those within it), or are on exactly `value`, narrowed by `scope` and `type`:
/// what a bouncer in live mode asks about each client. Without `ip`, `range` or `value`, every
/// decision in force for the key. `null` when there is none, as LAPI answers. Counts one lookup
/// against the key's tier; the key's stream cursor is untouched.
#[utoipa::path(get, path = "/", tag = "bouncers", params(DecisionsQuery), security(("api_key" = [])),
    responses((status = 200, body = Option<Vec<LapiDecision>>), BadRequest, InvalidApiKey, RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn get_decisions(
    State(state): State<AppState>,
    key: ApiKey,
    QueryParams(query): QueryParams<DecisionsQuery>,
) -> Result<Response, ApiError> {
    let selection = Selection::parse(&query)?;
    let (sources, tier) = sources(&state, &key).await?;
    let decision = match charge_pull(&state, &key, &tier).await {
        Ok(decision) => decision,
        Err(refused) => return Ok(refused),
    };
    let now = OffsetDateTime::now_utc();
    let mut found = state.distribution.bouncer_matching(&sources, selection.target, now).await?;
    found.retain(|entry, _| selection.keeps(entry));
    Ok(with_limit_headers(json_body(move |out| write_side(out, &found, now, false)), &decision))
}

/// Checks a bouncer's key and query without looking anything up: 200 with no body, no lookup
/// counted.
#[utoipa::path(head, path = "/", tag = "bouncers", params(DecisionsQuery), security(("api_key" = [])),
    responses((status = 200, description = "The key and the query are good"), BadRequest, InvalidApiKey, RateLimited))]
#[instrument(skip_all, fields(api_key.prefix = %key.record.prefix))]
pub async fn check_decisions(
    State(state): State<AppState>,
    key: ApiKey,
    QueryParams(query): QueryParams<DecisionsQuery>,
) -> Result<Response, ApiError> {
    Selection::parse(&query)?;
    Ok(checked(&state, &key).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::entry::Meta;
    use std::sync::Arc;

    /// One decision and the list it comes from.
    type One = (SharedEntry, Option<Arc<str>>);

    /// A decision on `value` of `list` (`None`: the community list) for `hours` more hours.
    fn sent(value: &str, list: Option<&str>, scenario: &str, hours: i64) -> One {
        let net: IpNet = value.parse().unwrap_or_else(|_| IpNet::from(value.parse::<std::net::IpAddr>().expect("address")));
        let scope = if value.contains('/') { "range" } else { "ip" };
        let meta = Arc::new(Meta { scope: scope.into(), scenario: scenario.into(), remediation: "ban".into(), rule: "r".into() });
        let now = OffsetDateTime::now_utc();
        (SharedEntry::new(Entry::new(net, meta, now, now + time::Duration::hours(hours), 1)), list.map(Arc::from))
    }

    /// The decisions, grouped by list as a pull gives them.
    fn grouped(decisions: Vec<One>) -> Sent {
        let mut sent = Sent::default();
        for (entry, list) in decisions {
            sent.push(list, vec![entry]);
        }
        sent
    }

    fn keeps(filter: &Filter, (entry, list): &One) -> bool {
        filter.keeps(entry, list.as_deref())
    }

    fn stream(pairs: &[(&str, &str)]) -> StreamQuery {
        let mut query = StreamQuery::default();
        for (name, value) in pairs {
            let value = Some((*value).to_string());
            match *name {
                "startup" => query.startup = value,
                "scopes" => query.scopes = value,
                "origins" => query.origins = value,
                "scenarios_containing" => query.scenarios_containing = value,
                "scenarios_not_containing" => query.scenarios_not_containing = value,
                "dedup" => query.dedup = value,
                other => panic!("no parameter {other}"),
            }
        }
        query
    }

    #[test]
    fn scopes_default_to_ip_and_range_and_match_without_case() {
        let filter = Filter::parse(&StreamQuery::default()).expect("defaults");
        assert!(keeps(&filter, &sent("192.0.2.1", None, "ssh-bf", 1)));
        assert!(keeps(&filter, &sent("192.0.2.0/24", Some("partners"), "x", 1)));
        let only_ranges = Filter::parse(&stream(&[("scopes", "RANGE")])).expect("one scope");
        assert!(!keeps(&only_ranges, &sent("192.0.2.1", None, "ssh-bf", 1)));
        assert!(keeps(&only_ranges, &sent("192.0.2.0/24", None, "ssh-bf", 1)));
    }

    #[test]
    fn origins_and_scenario_texts_narrow_what_is_sent() {
        let filter = Filter::parse(&stream(&[
            ("origins", "lists"),
            ("scenarios_containing", "Part,friends"),
            ("scenarios_not_containing", "old"),
        ]))
        .expect("filters");
        assert!(keeps(&filter, &sent("192.0.2.1", Some("partners"), "x", 1)));
        assert!(!keeps(&filter, &sent("192.0.2.1", None, "partners", 1)), "origin");
        assert!(
            !keeps(&filter, &sent("192.0.2.1", Some("others"), "partners", 1)),
            "containing: the list's name is the scenario"
        );
        assert!(!keeps(&filter, &sent("192.0.2.1", Some("old-partners"), "x", 1)), "not containing");
    }

    #[test]
    fn unknown_scopes_and_origins_and_bad_flags_are_refused_with_a_reason() {
        for (pairs, says) in [
            (&[("scopes", "ip,username")][..], "unknown scope \"username\""),
            (&[("scopes", " , ")][..], "scopes is empty"),
            (&[("origins", "somewhere")][..], "unknown origin \"somewhere\""),
            (&[("dedup", "maybe")][..], "dedup must be true or false"),
        ] {
            let Err(ApiError::BadRequest(message)) = Filter::parse(&stream(pairs)) else { panic!("{pairs:?} accepted") };
            assert!(message.contains(says), "{message}");
        }
        let long = "x".repeat(MAX_SCENARIO_FILTER + 1);
        assert!(Filter::parse(&stream(&[("scenarios_containing", &long)])).is_err(), "an unbounded filter");
    }

    #[test]
    fn duplicates_keep_the_longest_unless_dedup_is_false() {
        let a = sent("192.0.2.1", None, "ssh-bf", 10);
        let b = sent("192.0.2.1", Some("partners"), "x", 20);
        let c = sent("192.0.2.2", None, "ssh-bf", 5);
        let d = sent("192.0.2.3", Some("partners"), "x", 5);
        let e = sent("192.0.2.3", None, "ssh-bf", 30);
        let keys = |v: Sent| {
            let mut k: Vec<_> = v.iter().map(|(e, l)| (e.net.to_string(), l.map(str::to_string))).collect();
            k.sort();
            k
        };
        let all = vec![a.clone(), c.clone(), b.clone(), d.clone(), e.clone()];
        let filter = Filter::parse(&StreamQuery::default()).expect("defaults");
        assert_eq!(
            keys(filter.apply(grouped(all.clone()))),
            keys(grouped(vec![b, c.clone(), e])),
            "the longer of each pair, from either list"
        );
        let keep_all = Filter::parse(&stream(&[("dedup", "false")])).expect("no dedup");
        assert_eq!(keep_all.apply(grouped(all)).len(), 5);
        let one_list = vec![a, c];
        assert_eq!(filter.apply(grouped(one_list)).len(), 2, "one list holds a value once");
    }

    #[test]
    fn a_selection_takes_an_address_or_a_network_and_refuses_anything_else() {
        let query = |ip: Option<&str>, range: Option<&str>, contains: Option<&str>| DecisionsQuery {
            ip: ip.map(str::to_string),
            range: range.map(str::to_string),
            contains: contains.map(str::to_string),
            ..DecisionsQuery::default()
        };
        let net = |t: &str| t.parse::<IpNet>().expect("net");
        assert_eq!(
            Selection::parse(&query(Some("192.0.2.1"), None, None)).expect("ip").target,
            Some(Match::Containing(net("192.0.2.1/32")))
        );
        assert_eq!(
            Selection::parse(&query(Some("::ffff:192.0.2.1"), None, None)).expect("mapped").target,
            Some(Match::Containing(net("192.0.2.1/32")))
        );
        assert_eq!(
            Selection::parse(&query(None, Some("192.0.2.9/24"), Some("false"))).expect("range").target,
            Some(Match::Within(net("192.0.2.0/24")))
        );
        assert!(Selection::parse(&query(Some("192.0.2.1"), Some("192.0.2.0/24"), None)).is_err(), "both");
        assert!(Selection::parse(&query(Some("not-an-ip"), None, None)).is_err());
        assert!(Selection::parse(&query(None, None, Some("sometimes"))).is_err());
        let bad_scope = DecisionsQuery { scope: Some("username".into()), ..DecisionsQuery::default() };
        assert!(Selection::parse(&bad_scope).is_err());
    }
}
