//! Native blocklist endpoints: the served lists, each as a full download or as the changes after
//! a cursor, in a firewall's own format. Answers come from the in-memory snapshots of
//! [`crate::serving`] (never the database), are streamed in chunks as they are rendered, cached
//! per (list, seq, format, options), tagged with an `ETag`, and compressed (gzip, zstd) by the
//! layer of this route family; a full list for a gzip-only client is compressed once per
//! rendering and kept beside it.
//! A list the reader may not read (its visibility) does not exist for it: 404, not listed.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_api::native::BlocklistView;
use serde::Deserialize;
use tower_http::compression::CompressionLayer;
use tracing::instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::extract::{ApiKey, AuthMachine, PathParam, QueryParams};
use super::quota::{charge, with_limit_headers};
use super::responses::{BadRequest, NotFound, Unauthorized};
use super::stream::streamed_body;
use crate::domain::lists::{COMMUNITY, pool_account, pool_list};
use crate::error::ApiError;
use crate::limits::Decision;
use crate::serving::render::{self, Family, Format, Options, Rules};
use crate::serving::{self, RenderKey};
use crate::state::AppState;

/// Header carrying the seq an answer reflects: the next `since` cursor.
pub const SEQ_HEADER: &str = "x-palisade-seq";

/// How long the summary waits, for all the lists this server has not read yet together, before
/// reporting those still loading as such.
const SUMMARY_WAIT: Duration = Duration::from_secs(2);

/// Routes under `/v1/blocklists`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_blocklists))
        .routes(routes!(get_blocklist_entries))
        .layer(CompressionLayer::new().gzip(true).zstd(true))
}

/// Who may read blocklists: a machine with its JWT, or an API-key consumer (`x-api-key`) whose
/// tier decides which lists it may pull and how many entries of each. API-key pulls count
/// against the key's quota like lookups and carry the `X-RateLimit-*` headers. A missing,
/// unknown or revoked key is 403, as on the lookup routes.
#[derive(Debug, Clone)]
pub struct BlocklistReader {
    /// For logs: the machine login, or `key:<prefix>`.
    pub label: String,
    /// Who it is.
    pub kind: ReaderKind,
}

/// The two kinds of blocklist readers.
#[derive(Debug, Clone)]
pub enum ReaderKind {
    /// A machine (CrowdSec or our agent): the community list capped by "give to get", and every
    /// operator list.
    Machine(AuthMachine),
    /// An API consumer: the lists and sizes of its tier.
    Key(ApiKey),
}

impl<S> FromRequestParts<S> for BlocklistReader
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key("x-api-key") {
            let key = ApiKey::from_request_parts(parts, state).await?;
            return Ok(BlocklistReader { label: format!("key:{}", key.record.prefix), kind: ReaderKind::Key(key) });
        }
        let machine = AuthMachine::from_request_parts(parts, state).await?;
        Ok(BlocklistReader { label: machine.login.clone(), kind: ReaderKind::Machine(machine) })
    }
}

/// The pools `reader` receives: its account's, then those other accounts share with it.
async fn reader_pools(state: &AppState, reader: &BlocklistReader) -> Result<Vec<String>, ApiError> {
    Ok(match &reader.kind {
        ReaderKind::Machine(machine) => {
            state.store.pools_received(machine.key).await?.into_iter().map(|account| pool_list(account.0)).collect()
        }
        ReaderKind::Key(key) => state.distribution.account_pools(key.record.account).await?,
    })
}

/// Whether `reader` may know of list `name` at all; a list it may not is answered as one that
/// does not exist (404, absent from the listing), never 403. The community list is public;
/// a pool is known to the machines and API keys of its account and of the accounts it is shared
/// with; an operator-managed list is `public` (every machine), `subscribers` (the machines
/// subscribed to it) or `operator` (nobody). API keys read what their tier names, unless `operator`.
async fn may_know(state: &AppState, reader: &BlocklistReader, name: &str) -> Result<bool, ApiError> {
    if name == COMMUNITY {
        return Ok(true);
    }
    if pool_account(name).is_some() {
        return Ok(reader_pools(state, reader).await?.iter().any(|pool| pool == name));
    }
    let Some(list) = state.distribution.lists.custom(name) else { return Ok(false) };
    Ok(match (list.visibility.as_str(), &reader.kind) {
        ("public", _) | ("subscribers", ReaderKind::Key(_)) => true,
        ("subscribers", ReaderKind::Machine(machine)) => {
            state.store.machine_subscriptions(machine.key).await?.iter().any(|l| l == name)
        }
        _ => false,
    })
}

/// What one pull of one list is allowed: the most entries, and for API keys the quota decision
/// to report in the headers.
struct Grant {
    cap: usize,
    decision: Option<Decision>,
}

/// Decides whether `reader` may pull `name` and how much of it; for an API key, counts the pull.
/// Errors are complete responses (a 429 carries its rate-limit headers).
async fn grant(state: &AppState, reader: &BlocklistReader, name: &str) -> Result<Grant, Response> {
    match &reader.kind {
        ReaderKind::Machine(machine) => {
            if name != COMMUNITY {
                return Ok(Grant { cap: usize::MAX, decision: None });
            }
            let now = time::OffsetDateTime::now_utc();
            let (_, cap) = state
                .distribution
                .consumer_view(machine.key, &machine.login, now)
                .await
                .map_err(|error| ApiError::from(error).into_response())?;
            Ok(Grant { cap, decision: None })
        }
        ReaderKind::Key(key) => {
            let tier = state.quotas.tier(&key.record.tier);
            // A pool the key may know of (checked before) is its account's own data: whole, on
            // any tier, one pull against the quota like any list.
            let named = if pool_account(name).is_some() { Some(&0) } else { tier.blocklists.get(name) };
            let Some(&size) = named else {
                let decision = state.quotas.limiter.check(&key.limit_key(), &tier, 0).await;
                let refused = ApiError::Forbidden(format!(
                    "the {:?} tier does not include the blocklist {name:?}; it includes: {}",
                    key.record.tier,
                    tier.blocklists.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
                return Err(with_limit_headers(refused.into_response(), &decision));
            };
            let (decision, charged) = charge(state, &key.limit_key(), &tier, 1).await;
            if let Err(error) = charged {
                return Err(with_limit_headers(error.into_response(), &decision));
            }
            let cap = if size == 0 { usize::MAX } else { usize::try_from(size).unwrap_or(usize::MAX) };
            Ok(Grant { cap, decision: Some(decision) })
        }
    }
}

/// Query of `GET /v1/blocklists/{name}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocklistQuery {
    /// Only the changes after this cursor (the `x-palisade-seq` of an earlier answer).
    pub since: Option<String>,
    /// `plain` (default), `json`, `csv`, `nftables`, `ipset`, `iptables` or `mikrotik`.
    pub format: Option<String>,
    /// `true` to merge adjacent and overlapping prefixes into the fewest CIDRs (full lists only).
    pub aggregate: Option<String>,
    /// `all` (default), `v4` or `v6`.
    pub family: Option<String>,
    /// Firewall formats only. `drop` (default): the script blocks inbound traffic from what it
    /// lists once loaded as documented: nftables brings a base chain (hook input, priority
    /// filter - 10) in its own table, replaced whole on reload; mikrotik a raw prerouting rule
    /// per family, added only when missing; iptables (`iptables-restore --noflush`) and ipset (`ipset restore`) name, in
    /// comment lines, the one check-or-insert command that adds the INPUT rule. `none`: sets,
    /// address lists or the iptables chain only, referenced by nothing, for your own rules
    /// (nftables then keeps the table and refills its sets, so chains you add to it survive).
    pub rules: Option<String>,
    /// With `since` only: when nothing changed after the cursor, hold the answer up to this many
    /// seconds (at most 50, larger values wait 50) and answer as soon as the list changes: a
    /// long-poll, so a fleet applies a change within a second or two instead of at its next
    /// poll. Ends early, with what there is, when the server shuts down.
    pub wait: Option<String>,
}

/// The longest a long-poll is held: under the 60 s read timeout of common reverse proxies (and
/// the server's own `edge.idle_timeout_secs`), so a held request is not cut by them. The longer
/// the hold, the fewer renewals an idle fleet makes: each costs about as much as a small pull.
pub const MAX_WAIT: Duration = Duration::from_secs(50);

/// The hold a blocklist long-poll asks for in its query (`wait`, capped at [`MAX_WAIT`]); zero
/// for any other request. The request deadline counts from its end.
pub fn requested_wait(uri: &axum::http::Uri) -> Duration {
    if !uri.path().starts_with("/v1/blocklists/") {
        return Duration::ZERO;
    }
    let wait = uri.query().unwrap_or_default().split('&').find_map(|pair| pair.strip_prefix("wait="));
    wait.and_then(|secs| secs.parse::<u64>().ok()).map_or(Duration::ZERO, |secs| Duration::from_secs(secs).min(MAX_WAIT))
}

impl BlocklistQuery {
    /// How long a delta with nothing new may be held (`wait`).
    fn wait(&self, since: Option<i64>) -> Result<Duration, ApiError> {
        let Some(text) = self.wait.as_deref() else { return Ok(Duration::ZERO) };
        let Ok(secs) = text.parse::<u64>() else {
            return Err(ApiError::BadRequest(format!("wait must be a number of seconds, not {text:?}")));
        };
        if since.is_none() && secs > 0 {
            return Err(ApiError::BadRequest("wait applies to changes since a cursor; add since".into()));
        }
        Ok(Duration::from_secs(secs).min(MAX_WAIT))
    }

    fn options(&self) -> Result<(Options, Option<i64>), ApiError> {
        let format = self.format.as_deref().map_or(Ok(Format::Plain), str::parse).map_err(ApiError::BadRequest)?;
        let family = self.family.as_deref().map_or(Ok(Family::All), str::parse).map_err(ApiError::BadRequest)?;
        let rules = self.rules.as_deref().map_or(Ok(Rules::Drop), str::parse).map_err(ApiError::BadRequest)?;
        // Other formats carry no rules: one rendering (and ETag) whatever `rules` says.
        let rules = if format.is_firewall() { rules } else { Rules::Drop };
        let aggregate = match self.aggregate.as_deref() {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => return Err(ApiError::BadRequest(format!("aggregate must be true or false, not {other:?}"))),
        };
        let since = match self.since.as_deref() {
            None => None,
            Some(text) => match text.parse::<i64>() {
                Ok(cursor) if cursor >= 0 => Some(cursor),
                _ => return Err(ApiError::BadRequest(format!("since must be a non-negative seq, not {text:?}"))),
            },
        };
        if since.is_some() && aggregate {
            return Err(ApiError::BadRequest("aggregate applies to full lists, not to changes since a cursor".into()));
        }
        if since.is_some() && format == Format::Iptables {
            return Err(ApiError::BadRequest(
                "iptables has no change form (a rule cannot be removed blindly); download the full list".into(),
            ));
        }
        Ok((Options { format, aggregate, family, rules }, since))
    }
}

/// The blocklists this caller may read, with their current seq and size (an API key sees the
/// lists of its tier). A list the server is still reading after a start is answered at once
/// with `loading: true` rather than when it has read it.
#[utoipa::path(get, path = "/", tag = "blocklists", security(("machine" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<BlocklistView>), Unauthorized))]
#[instrument(skip_all, fields(reader = %reader.label))]
pub async fn list_blocklists(
    State(state): State<AppState>,
    reader: BlocklistReader,
) -> Result<axum::Json<Vec<BlocklistView>>, ApiError> {
    let mut views = Vec::new();
    let tier = match &reader.kind {
        ReaderKind::Key(key) => Some(state.quotas.tier(&key.record.tier)),
        ReaderKind::Machine(_) => None,
    };
    let mut lists = Vec::new();
    for (name, kind) in state.distribution.lists.names() {
        if tier.as_ref().is_some_and(|t| !t.blocklists.contains_key(&name)) || !may_know(&state, &reader, &name).await? {
            continue;
        }
        lists.push((name, kind));
    }
    lists.extend(reader_pools(&state, &reader).await?.into_iter().map(|name| (name, "pool".to_string())));
    // A list a server has not read yet (a million entries take a while after a start) is reported
    // as loading, with its stored seq, rather than holding the answer until it is; one deadline
    // for the whole answer, however many lists are unread.
    let deadline = tokio::time::Instant::now() + SUMMARY_WAIT;
    for (name, kind) in lists {
        let view = match state.distribution.lists.loaded_by(&name, deadline).await {
            Some(snapshot) => BlocklistView {
                name,
                kind,
                seq: snapshot.seq,
                entries: snapshot.entries.len(),
                oldest_cursor: snapshot.oldest_cursor,
                loading: false,
            },
            None => {
                let seq = state.store.list_seq(&name).await?;
                BlocklistView { name, kind, seq, entries: 0, oldest_cursor: 0, loading: true }
            }
        };
        views.push(view);
    }
    Ok(axum::Json(views))
}

/// One blocklist: the whole list, or with `since` only what changed after that cursor (plain:
/// `+value`/`-value` lines; json: `{seq, added, removed}`; csv: an `op` column; nftables, ipset
/// and mikrotik: commands that apply the change). The `x-palisade-seq` header is the next
/// cursor. A cursor older than the retained change log is answered 410: download the full list.
/// Full lists carry an `ETag`; `If-None-Match` with it answers 304.
///
/// Readers are capped: a machine gets the community list's "give to get" size, an API key the
/// size its tier names for the list (a list its tier does not name is 403). A capped list holds
/// the most recently listed entries; a capped delta reports additions within that view only.
/// API-key pulls count one against the key's quota (429 with `Retry-After` when exhausted).
#[utoipa::path(get, path = "/{name}", tag = "blocklists", params(("name" = String, Path, description = "list name"), BlocklistQuery), security(("machine" = []), ("api_key" = [])),
    responses((status = 200, description = "the list or its changes, in the requested format", content_type = "text/plain"),
              (status = 304, description = "unchanged since the given ETag"),
              BadRequest, Unauthorized,
              (status = 403, description = "API key invalid, revoked, or its tier lacks this list", body = palisade_api::native::ErrorBody),
              NotFound,
              (status = 410, description = "cursor older than the retained change log", body = palisade_api::native::ErrorBody),
              (status = 429, description = "API key over its quota or burst", body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(reader = %reader.label, list = %name))]
pub async fn get_blocklist_entries(
    State(state): State<AppState>,
    reader: BlocklistReader,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<BlocklistQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (options, since) = query.options()?;
    let wait = query.wait(since)?;
    if state.distribution.list_kind(&name).await?.is_none() || !may_know(&state, &reader, &name).await? {
        return Err(ApiError::NotFound(format!("no blocklist named {name:?}")));
    }
    let grant = match grant(&state, &reader, &name).await {
        Ok(grant) => grant,
        Err(refused) => return Ok(refused),
    };
    // Pools (one per account) share one label value, so the series do not grow with accounts.
    let label = if pool_account(&name).is_some() { "pool".to_string() } else { name.clone() };
    metrics::counter!("palisade_blocklist_pulls_total", "list" => label, "format" => options.format.name(), "delta" => since.is_some().to_string())
        .increment(1);
    let response = match since {
        Some(cursor) => delta_response(&state, &name, options, cursor, grant.cap, wait).await?,
        None => full_response(&state, &name, options, &headers, grant.cap).await?,
    };
    Ok(match grant.decision {
        Some(decision) => with_limit_headers(response, &decision),
        None => response,
    })
}

/// One long-poll held, counted in `palisade_blocklist_long_polls` for as long as it lives (also
/// when the client goes away and the request is dropped mid-wait).
struct HeldPoll(metrics::Gauge);

impl HeldPoll {
    fn start() -> HeldPoll {
        let gauge = metrics::gauge!("palisade_blocklist_long_polls");
        gauge.increment(1.0);
        HeldPoll(gauge)
    }
}

impl Drop for HeldPoll {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The changes of `name` after `cursor`; when there are none, waits up to `wait` for the list
/// to advance (any snapshot advancing wakes the waiter, which then checks its own list).
async fn delta_response(
    state: &AppState,
    name: &str,
    options: Options,
    cursor: i64,
    cap: usize,
    wait: Duration,
) -> Result<Response, ApiError> {
    let lists = &state.distribution.lists;
    let deadline = tokio::time::Instant::now() + wait;
    let mut advances = lists.watch_advances();
    let mut delta = state.distribution.delta(name, cursor, cap, time::OffsetDateTime::now_utc()).await?;
    if delta.seq <= cursor && !wait.is_zero() {
        let _held = HeldPoll::start();
        while delta.seq <= cursor && lists.wait_for_advance(&mut advances, deadline).await {
            if lists.current(name).is_some_and(|snapshot| snapshot.seq > cursor) {
                delta = state.distribution.delta(name, cursor, cap, time::OffsetDateTime::now_utc()).await?;
            }
        }
    }
    let mut body = Vec::new();
    render::render_delta(name, options, delta.seq, &delta.added, &delta.removed, &mut body)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut response = (StatusCode::OK, body).into_response();
    set_headers(response.headers_mut(), options.format, delta.seq, None);
    Ok(response)
}

fn etag(name: &str, seq: i64, policy: u64, options: Options, cap: usize) -> String {
    let cap = if cap == usize::MAX { String::new() } else { format!("-{cap}") };
    format!(
        "\"{}-{seq}-{policy}-{}-{}-{:?}{}{cap}\"",
        render::identifier(name, 64),
        options.format.name(),
        u8::from(options.aggregate),
        options.family,
        if options.rules == Rules::Drop { "" } else { "-sets" }
    )
    .to_ascii_lowercase()
}

fn set_headers(headers: &mut HeaderMap, format: Format, seq: i64, etag: Option<&str>) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(SEQ_HEADER, HeaderValue::from(seq));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(header::ETAG, tag);
    }
}

fn matches_etag(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == tag || v == "*")
}

async fn full_response(
    state: &AppState,
    name: &str,
    options: Options,
    headers: &HeaderMap,
    cap: usize,
) -> Result<Response, ApiError> {
    let served = state.distribution.lists.served(name).await?;
    // A cap the list does not reach is no cap: one rendering serves every such reader.
    let cap = if served.entries.len() > cap { cap } else { usize::MAX };
    let tag = etag(name, served.seq, served.policy, options, cap);
    if matches_etag(headers, &tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_headers(response.headers_mut(), options.format, served.seq, Some(&tag));
        response.headers_mut().remove(header::CONTENT_TYPE);
        return Ok(response);
    }
    let key = RenderKey { list: name.to_string(), seq: served.seq, policy: served.policy, options, cap, gzip: false };
    if takes_gzip_only(headers)
        && let Some(compressed) = cached_gzip(&state.distribution.lists, &key).await?
    {
        let mut response = Response::new(Body::from(compressed));
        set_headers(response.headers_mut(), options.format, served.seq, Some(&tag));
        // Already encoded: the compression layer passes it through as it is.
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        return Ok(response);
    }
    let body = match state.distribution.lists.cached(&key) {
        Some(chunks) => {
            metrics::counter!("palisade_blocklist_render_cache_hits_total").increment(1);
            let chunks = chunks.as_ref().clone();
            Body::from_stream(futures::stream::iter(chunks.into_iter().map(Ok::<_, io::Error>)))
        }
        None => render_streaming(state.distribution.lists.clone(), key, served.clone()),
    };
    let mut response = Response::new(body);
    set_headers(response.headers_mut(), options.format, served.seq, Some(&tag));
    Ok(response)
}

/// Whether the client takes gzip and not zstd (nor anything), so the compression layer would
/// gzip: zstd is cheap enough to run per download, gzip is not.
fn takes_gzip_only(headers: &HeaderMap) -> bool {
    let mut gzip = false;
    for value in headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()) {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0));
            match coding.as_str() {
                "gzip" | "x-gzip" if !refused => gzip = true,
                "zstd" | "*" if !refused => return false,
                _ => {}
            }
        }
    }
    gzip
}

/// The gzip-compressed rendering of `key`: kept from an earlier download, or compressed once
/// from the kept identity rendering. `None` while the list was not rendered whole yet (the
/// compression layer then encodes the streamed rendering, and a later download keeps it).
async fn cached_gzip(lists: &Arc<crate::serving::Lists>, key: &RenderKey) -> Result<Option<bytes::Bytes>, ApiError> {
    let gzip_key = RenderKey { gzip: true, ..key.clone() };
    if let Some(chunks) = lists.cached(&gzip_key) {
        metrics::counter!("palisade_blocklist_render_cache_hits_total").increment(1);
        return Ok(chunks.first().cloned());
    }
    let Some(identity) = lists.cached(key) else { return Ok(None) };
    let compressed = tokio::task::spawn_blocking(move || {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        identity.iter().try_for_each(|chunk| encoder.write_all(chunk))?;
        encoder.finish()
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::Internal(e.into()))?;
    let compressed = bytes::Bytes::from(compressed);
    lists.store_rendered(gzip_key, Arc::new(vec![compressed.clone()]));
    Ok(Some(compressed))
}

/// Streams the rendering of `served` (its top `key.cap` entries) as it is produced (a blocking
/// task writes chunks into a bounded channel, so a slow client slows the renderer rather than
/// filling memory), and keeps the chunks for the next request once the whole list was rendered.
fn render_streaming(lists: Arc<crate::serving::Lists>, key: RenderKey, served: Arc<crate::serving::Served>) -> Body {
    streamed_body(true, move |writer| {
        let capped;
        let mut entries: &[serving::SharedEntry] = &served.entries;
        if key.cap < entries.len() {
            capped = serving::top(entries, key.cap);
            entries = &capped;
        }
        let aggregated;
        if key.options.aggregate {
            aggregated = render::aggregate(&key.list, entries);
            entries = &aggregated;
        }
        render::render_full(&key.list, key.options, entries, writer)?;
        writer.flush()?;
        lists.store_rendered(key, Arc::new(writer.take_chunks()));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_blocklist_long_poll_extends_the_request_deadline_and_by_at_most_max_wait() {
        let wait = |uri: &str| requested_wait(&uri.parse().expect("a URI"));
        assert_eq!(wait("/v1/blocklists/pool-7?since=3&wait=40"), Duration::from_secs(40));
        assert_eq!(wait("/v1/blocklists/community?format=json&since=3&wait=3600"), MAX_WAIT);
        assert_eq!(wait("/v1/blocklists/community?since=3"), Duration::ZERO);
        assert_eq!(wait("/v1/blocklists/community?since=3&wait=soon"), Duration::ZERO);
        assert_eq!(wait("/v1/ips/1.2.3.4?wait=40"), Duration::ZERO);
        assert_eq!(wait("/v2/decisions/stream?wait=40"), Duration::ZERO);
    }
}
