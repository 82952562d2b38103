//! Native blocklist endpoints: the served lists, each as a full download or as the changes after
//! a cursor, in a firewall's own format. Answers come from the in-memory snapshots of
//! [`crate::serving`] (never the database), are streamed in chunks as they are rendered, cached
//! per (list, seq, format, options), tagged with an `ETag`, and compressed (gzip, zstd) by the
//! layer of this route family.

use std::io::{self, Write};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use palisade_api::native::BlocklistView;
use serde::Deserialize;
use tower_http::compression::CompressionLayer;
use tracing::instrument;

use super::extract::{AuthMachine, PathParam, QueryParams};
use crate::error::ApiError;
use crate::jobs::consensus::COMMUNITY;
use crate::serving::render::{self, Family, Format, Options};
use crate::serving::{DeltaError, RenderKey};
use crate::state::AppState;

/// Size of the chunks a rendered list is streamed (and cached) in.
const CHUNK_BYTES: usize = 64 * 1024;

/// Header carrying the seq an answer reflects: the next `since` cursor.
pub const SEQ_HEADER: &str = "x-palisade-seq";

/// Routes under `/v1/blocklists`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(list_blocklists))
        .route("/{name}", get(get_blocklist_entries))
        .layer(CompressionLayer::new().gzip(true).zstd(true))
}

/// Who may read blocklists: a machine with its JWT. An API-key consumer (with its tier's
/// limits) is the other admissible reader once API keys exist; that extractor plugs in here.
pub type BlocklistReader = AuthMachine;

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
}

impl BlocklistQuery {
    fn options(&self) -> Result<(Options, Option<i64>), ApiError> {
        let format = self.format.as_deref().map_or(Ok(Format::Plain), str::parse).map_err(ApiError::BadRequest)?;
        let family = self.family.as_deref().map_or(Ok(Family::All), str::parse).map_err(ApiError::BadRequest)?;
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
        Ok((Options { format, aggregate, family }, since))
    }
}

/// The lists this server serves. Custom lists join the community list here once they exist.
fn served_names() -> Vec<(&'static str, &'static str)> {
    vec![(COMMUNITY, "consensus")]
}

/// The blocklists this caller may read, with their current seq and size.
#[utoipa::path(get, path = "/v1/blocklists", tag = "blocklists", security(("machine" = [])),
    responses((status = 200, body = Vec<BlocklistView>), (status = 401, body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(machine.id = %reader.login))]
pub async fn list_blocklists(
    State(state): State<AppState>,
    reader: BlocklistReader,
) -> Result<axum::Json<Vec<BlocklistView>>, ApiError> {
    let mut views = Vec::new();
    for (name, kind) in served_names() {
        let snapshot = state.lists.get_or_load(name).await?;
        views.push(BlocklistView {
            name: name.to_string(),
            kind: kind.to_string(),
            seq: snapshot.seq,
            entries: snapshot.entries.len(),
            oldest_cursor: snapshot.oldest_cursor,
        });
    }
    Ok(axum::Json(views))
}

/// One blocklist: the whole list, or with `since` only what changed after that cursor (plain:
/// `+value`/`-value` lines; json: `{seq, added, removed}`; csv: an `op` column; nftables, ipset
/// and mikrotik: commands that apply the change). The `x-palisade-seq` header is the next
/// cursor. A cursor older than the retained change log is answered 410: download the full list.
/// Full lists carry an `ETag`; `If-None-Match` with it answers 304.
#[utoipa::path(get, path = "/v1/blocklists/{name}", tag = "blocklists", params(("name" = String, Path, description = "list name"), BlocklistQuery), security(("machine" = [])),
    responses((status = 200, description = "the list or its changes, in the requested format", content_type = "text/plain"),
              (status = 304, description = "unchanged since the given ETag"),
              (status = 400, body = palisade_api::native::ErrorBody), (status = 401, body = palisade_api::native::ErrorBody),
              (status = 404, body = palisade_api::native::ErrorBody),
              (status = 410, description = "cursor older than the retained change log", body = palisade_api::native::ErrorBody)))]
#[instrument(skip_all, fields(machine.id = %reader.login, list = %name))]
pub async fn get_blocklist_entries(
    State(state): State<AppState>,
    reader: BlocklistReader,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<BlocklistQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (options, since) = query.options()?;
    if !served_names().iter().any(|(served, _)| *served == name) {
        return Err(ApiError::NotFound(format!("no blocklist named {name:?}")));
    }
    metrics::counter!("palisade_blocklist_pulls_total", "list" => name.clone(), "format" => options.format.name(), "delta" => since.is_some().to_string())
        .increment(1);
    match since {
        Some(cursor) => delta_response(&state, &name, options, cursor).await,
        None => full_response(&state, &name, options, &headers).await,
    }
}

async fn delta_response(state: &AppState, name: &str, options: Options, cursor: i64) -> Result<Response, ApiError> {
    let snapshot = state.lists.get_or_load(name).await?;
    // The same policy as full lists: live entries that may be served.
    let never_block = state.lists.never_block().await?;
    let now = time::OffsetDateTime::now_utc();
    let mut delta = snapshot.delta(cursor).map_err(|DeltaError::TooOld { cursor, oldest }| {
        ApiError::CursorExpired(format!(
            "cursor {cursor} is older than the retained change log (oldest usable cursor {oldest}); download the full list without since and continue from its x-palisade-seq"
        ))
    })?;
    delta.added.retain(|e| e.expires_at > now && never_block.allows_net(e.net));
    let mut body = Vec::new();
    render::render_delta(name, options, delta.seq, &delta.added, &delta.removed, &mut body)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut response = (StatusCode::OK, body).into_response();
    set_headers(response.headers_mut(), options.format, delta.seq, None);
    Ok(response)
}

fn etag(name: &str, seq: i64, policy: u64, options: Options) -> String {
    format!(
        "\"{}-{seq}-{policy}-{}-{}-{:?}\"",
        render::identifier(name, 64),
        options.format.name(),
        u8::from(options.aggregate),
        options.family
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

async fn full_response(state: &AppState, name: &str, options: Options, headers: &HeaderMap) -> Result<Response, ApiError> {
    let served = state.lists.served(name).await?;
    let tag = etag(name, served.seq, served.policy, options);
    if matches_etag(headers, &tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_headers(response.headers_mut(), options.format, served.seq, Some(&tag));
        response.headers_mut().remove(header::CONTENT_TYPE);
        return Ok(response);
    }
    let key = RenderKey { list: name.to_string(), seq: served.seq, policy: served.policy, options };
    let body = match state.lists.cached(&key) {
        Some(chunks) => {
            metrics::counter!("palisade_blocklist_render_cache_hits_total").increment(1);
            let chunks = chunks.as_ref().clone();
            Body::from_stream(futures::stream::iter(chunks.into_iter().map(Ok::<_, io::Error>)))
        }
        None => render_streaming(state.lists.clone(), key, served.clone()),
    };
    let mut response = Response::new(body);
    set_headers(response.headers_mut(), options.format, served.seq, Some(&tag));
    Ok(response)
}

/// Streams the rendering of `served` as it is produced (a blocking task writes chunks into a
/// bounded channel, so a slow client slows the renderer rather than filling memory), and keeps
/// the chunks for the next request once the whole list was rendered.
fn render_streaming(lists: Arc<crate::serving::Lists>, key: RenderKey, served: Arc<crate::serving::Served>) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter { sender, buffer: Vec::with_capacity(CHUNK_BYTES), chunks: Vec::new() };
        let aggregated;
        let entries = if key.options.aggregate {
            aggregated = render::aggregate(&key.list, &served.entries);
            &aggregated
        } else {
            &served.entries
        };
        let outcome = render::render_full(&key.list, key.options, entries, &mut writer).and_then(|()| writer.flush());
        match outcome {
            Ok(()) => lists.store_rendered(key, Arc::new(writer.chunks)),
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {}
            Err(error) => {
                tracing::error!(%error, "rendering a blocklist failed");
                drop(writer.sender.blocking_send(Err(error)));
            }
        }
    });
    Body::from_stream(tokio_stream_from(receiver))
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// An `io::Write` that cuts what is written into chunks, sends each to the response as soon as
/// it is full, and keeps them for the cache.
struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
    chunks: Vec<Bytes>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES)));
        self.chunks.push(chunk.clone());
        self.sender.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
