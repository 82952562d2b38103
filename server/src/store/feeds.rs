//! Feeds: operator-managed block lists filled from an external URL, and the state of their last
//! refresh. The [`FeedStore`] trait and its records; of the store's files it imports only `lists`
//! and `error`. A feed's entries are those of its custom list ([`super::lists::ListStore`]); this
//! capability stores only where they come from and how the last attempt went. It neither fetches
//! nor parses anything: [`crate::feeds`] does.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::StoreError;
use super::lists::CustomList;
use crate::config::Secret;

/// Feed definitions and their refresh state.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Creates a block list and its feed in one transaction; `Conflict` when a list with the
    /// name exists.
    async fn create_feed(&self, list: &CustomList, feed: &FeedDefinition, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Every feed, by name.
    async fn feeds(&self) -> Result<Vec<Feed>, StoreError>;

    /// Claims a feed for one refresh until `until`: false when another claim is still live at
    /// `now` (or there is no such feed). Recording the attempt releases the claim.
    async fn claim_feed(&self, name: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records how an attempt ended and releases the claim; false when there is no such feed.
    async fn record_feed_attempt(&self, name: &str, attempt: &FeedAttempt) -> Result<bool, StoreError>;
}

/// Where a feed's entries come from and how they are read.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedDefinition {
    /// The list's name.
    pub name: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// `plain`, `csv`, `netset`, `spamhaus`, `ipsum`, `palisade` or `auto`.
    pub format: String,
    /// Sent as `x-api-key` (another Palisade's lists); never shown back.
    pub api_key: Option<Secret>,
    /// Seconds between refreshes.
    pub every_secs: i64,
    /// Largest body accepted, in bytes.
    pub max_bytes: i64,
    /// Most entries accepted.
    pub max_entries: i64,
    /// `ipsum` only: the fewest blacklists an address must be on.
    pub min_count: i64,
    /// Lifetime of an entry after the load that last asserted it, in seconds.
    pub lifetime_secs: i64,
}

/// A feed with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// What it is.
    pub definition: FeedDefinition,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// How the last attempts went.
    pub state: FeedState,
}

/// The state of a feed's refreshes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    /// `ETag` of the last copy loaded.
    pub etag: Option<String>,
    /// `Last-Modified` of the last copy loaded.
    pub last_modified: Option<String>,
    /// Last attempt, whatever its outcome.
    pub last_attempt_at: Option<OffsetDateTime>,
    /// Last attempt that loaded a copy or learnt it was unchanged.
    pub last_success_at: Option<OffsetDateTime>,
    /// Last attempt that loaded a copy.
    pub last_loaded_at: Option<OffsetDateTime>,
    /// Why the last attempt failed (`None` when it succeeded).
    pub last_error: Option<String>,
    /// Entries of the last copy loaded, once unusable and never-block values are dropped.
    pub entries: i64,
    /// Failed attempts since the last success.
    pub failures: i64,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A copy was read and applied.
    Loaded {
        /// Its `ETag`.
        etag: Option<String>,
        /// Its `Last-Modified`.
        last_modified: Option<String>,
        /// Entries kept.
        entries: i64,
    },
    /// The source answered 304: the last copy stands.
    NotModified,
    /// Nothing was applied; the last good copy stands.
    Failed {
        /// Why, as a sentence.
        error: String,
    },
}

/// One attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedAttempt {
    /// When it was made.
    pub at: OffsetDateTime,
    /// How it ended.
    pub outcome: AttemptOutcome,
}
