//! External feeds, the one mechanism behind both `/v1/admin/feeds` and `palisade-server admin
//! feed …`: add, list, refresh now, remove. A feed is an operator-managed block list plus where
//! its entries come from; each action validates, works through the store and [`Feeds`], and
//! returns the view both front ends show. Making a change visible (refreshing snapshots,
//! notifying replicas) is the caller's part.

use palisade_api::native::{CreateFeedRequest, CustomListView, FeedRefreshResponse, FeedView};
use time::OffsetDateTime;

use super::lists::{self, DEFAULT_VISIBILITY};
use crate::config::Secret;
use crate::domain::lists::check_list_name;
use crate::domain::text::has_nul;
use crate::domain::time::rfc3339;
use crate::feeds::parse::FeedFormat;
use crate::feeds::{Feeds, Refresh};
use crate::serving::custom::MAX_DURATION_SECS;
use crate::store::{CustomList, Feed, FeedDefinition, Store, StoreError};
use crate::use_case::UseCaseError;

/// Refresh interval when the operator does not say: an hour.
pub const DEFAULT_EVERY_SECS: i64 = 3600;
/// Shortest refresh interval: five minutes (list publishers ask for no more).
pub const MIN_EVERY_SECS: i64 = 300;
/// Longest refresh interval: a week.
pub const MAX_EVERY_SECS: i64 = 7 * 86_400;
/// Body cap when the operator does not say: 32 MiB.
pub const DEFAULT_MAX_BYTES: i64 = 32 << 20;
/// Smallest and largest body caps.
pub const MAX_BYTES_RANGE: (i64, i64) = (1024, 256 << 20);
/// Entry cap when the operator does not say.
pub const DEFAULT_MAX_ENTRIES: i64 = 1_000_000;
/// Largest entry cap.
pub const MAX_MAX_ENTRIES: i64 = 10_000_000;
/// ipsum's minimum count of lists when the operator does not say.
pub const DEFAULT_MIN_COUNT: i64 = 3;
/// Entry lifetime when the operator does not say: a week (renewed at each load).
pub const DEFAULT_LIFETIME_SECS: i64 = 7 * 86_400;

/// The view of a feed; `visibility` comes from its list.
pub fn feed_view(feed: &Feed, visibility: &str) -> FeedView {
    let d = &feed.definition;
    FeedView {
        name: d.name.clone(),
        url: d.url.clone(),
        format: d.format.clone(),
        visibility: visibility.to_string(),
        every_secs: d.every_secs,
        has_api_key: d.api_key.is_some(),
        max_bytes: d.max_bytes,
        max_entries: d.max_entries,
        min_count: d.min_count,
        lifetime_secs: d.lifetime_secs,
        created_at: rfc3339(feed.created_at),
        last_attempt_at: feed.state.last_attempt_at.map(rfc3339),
        last_success_at: feed.state.last_success_at.map(rfc3339),
        last_error: feed.state.last_error.clone(),
        failures: feed.state.failures,
        entries: feed.state.entries,
        up: feed.state.last_error.is_none(),
    }
}

fn within(field: &str, value: i64, (min, max): (i64, i64)) -> Result<i64, UseCaseError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(UseCaseError::invalid(field, format!("{field} must be between {min} and {max}, not {value}")))
    }
}

/// Checks a feed's URL: absolute `http` or `https`, with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let host = url.split_once("://").map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default()).unwrap_or_default();
    if !scheme_ok || host.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("url must be an http:// or https:// URL with a host (at most 2048 characters), not {url:?}"));
    }
    Ok(())
}

/// Checks a request and turns it into the list and feed to store.
pub fn definition(request: CreateFeedRequest, now: OffsetDateTime) -> Result<(CustomList, FeedDefinition), UseCaseError> {
    check_list_name(&request.name).map_err(|m| UseCaseError::invalid("name", m))?;
    check_url(&request.url).map_err(|m| UseCaseError::invalid("url", m))?;
    let format = request.format.unwrap_or_else(|| FeedFormat::Auto.name().into());
    format.parse::<FeedFormat>().map_err(|m| UseCaseError::invalid("format", m))?;
    if has_nul(&request.description) {
        return Err(UseCaseError::invalid("description", "must not contain NUL"));
    }
    let visibility = request.visibility.unwrap_or_else(|| DEFAULT_VISIBILITY.into());
    lists::check_visibility(&visibility)?;
    let api_key = match request.api_key.map(|key| key.trim().to_string()) {
        Some(key) if key.is_empty() || key.len() > 512 || !key.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(UseCaseError::invalid("api_key", "the API key must be 1 to 512 printable ASCII characters"));
        }
        other => other.map(Secret::new),
    };
    let every_secs = within("every_secs", request.every_secs.unwrap_or(DEFAULT_EVERY_SECS), (MIN_EVERY_SECS, MAX_EVERY_SECS))?;
    let lifetime_secs = request.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS.max(2 * every_secs));
    let lifetime_secs = within("lifetime_secs", lifetime_secs, (2 * every_secs, MAX_DURATION_SECS))?;
    let feed = FeedDefinition {
        name: request.name.clone(),
        url: request.url,
        format,
        api_key,
        every_secs,
        max_bytes: within("max_bytes", request.max_bytes.unwrap_or(DEFAULT_MAX_BYTES), MAX_BYTES_RANGE)?,
        max_entries: within("max_entries", request.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES), (1, MAX_MAX_ENTRIES))?,
        min_count: within("min_count", request.min_count.unwrap_or(DEFAULT_MIN_COUNT), (1, 100))?,
        lifetime_secs,
    };
    let list =
        CustomList { name: request.name, kind: "block".into(), description: request.description, created_at: now, visibility };
    Ok((list, feed))
}

/// Adds a feed (and its list). Its first refresh is due at once.
pub async fn create_feed(store: &dyn Store, request: CreateFeedRequest) -> Result<FeedView, UseCaseError> {
    let now = OffsetDateTime::now_utc();
    let (list, definition) = definition(request, now)?;
    match store.create_feed(&list, &definition, now).await {
        Err(StoreError::Conflict(_)) => {
            return Err(UseCaseError::Conflict(format!("a list named {:?} already exists", list.name)));
        }
        other => other?,
    }
    let feed = existing_feed(store, &list.name).await?;
    Ok(feed_view(&feed, &list.visibility))
}

/// The feed `name`, or 404.
pub async fn existing_feed(store: &dyn Store, name: &str) -> Result<Feed, UseCaseError> {
    store
        .feeds()
        .await?
        .into_iter()
        .find(|feed| feed.definition.name == name)
        .ok_or_else(|| UseCaseError::NotFound(format!("no feed named {name:?}")))
}

/// Every feed with its state.
pub async fn list_feeds(store: &dyn Store) -> Result<Vec<FeedView>, UseCaseError> {
    let lists: Vec<CustomListView> = lists::list_lists(store).await?;
    let visibility = |name: &str| lists.iter().find(|l| l.name == name).map_or("", |l| l.visibility.as_str()).to_string();
    Ok(store.feeds().await?.iter().map(|feed| feed_view(feed, &visibility(&feed.definition.name))).collect())
}

/// Removes a feed and its list: consumers following a cursor receive the removal of each entry.
pub async fn delete_feed(store: &dyn Store, name: &str) -> Result<(), UseCaseError> {
    existing_feed(store, name).await?;
    lists::delete_list(store, name).await
}

/// Refreshes a feed now: a conditional GET as a scheduled refresh makes, or an unconditional
/// one when `force`.
pub async fn refresh_feed(feeds: &Feeds, name: &str, force: bool) -> Result<FeedRefreshResponse, UseCaseError> {
    let store = feeds.store();
    let feed = existing_feed(store, name).await?;
    let refresh = feeds.refresh(&feed, OffsetDateTime::now_utc(), force).await?;
    let after = existing_feed(store, name).await?;
    let visibility = lists::existing_list(store, name).await?.visibility;
    let mut response = FeedRefreshResponse {
        outcome: refresh.name().into(),
        added: 0,
        renewed: 0,
        removed: 0,
        never_block: 0,
        rejected: 0,
        reasons: Vec::new(),
        feed: feed_view(&after, &visibility),
    };
    if let Refresh::Loaded(report) = refresh {
        response.added = report.added;
        response.renewed = report.renewed;
        response.removed = report.removed;
        response.never_block = report.never_block;
        response.rejected = report.rejected;
        response.reasons = report.reasons;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str) -> CreateFeedRequest {
        CreateFeedRequest {
            name: name.into(),
            url: "https://www.spamhaus.org/drop/drop.txt".into(),
            format: Some("spamhaus".into()),
            description: String::new(),
            visibility: None,
            every_secs: None,
            api_key: Some("pk_secret_value".into()),
            max_bytes: None,
            max_entries: None,
            min_count: None,
            lifetime_secs: None,
        }
    }

    #[test]
    fn defaults_are_an_hour_32_mib_a_million_entries_and_a_week() {
        let (list, feed) = definition(request("spamhaus-drop"), OffsetDateTime::UNIX_EPOCH).expect("valid");
        assert_eq!((list.kind.as_str(), list.visibility.as_str()), ("block", "subscribers"));
        assert_eq!((feed.every_secs, feed.max_bytes, feed.max_entries), (3600, 32 << 20, 1_000_000));
        assert_eq!((feed.min_count, feed.lifetime_secs), (3, 7 * 86_400));
        // The API key is kept, and never printed.
        assert_eq!(feed.api_key.as_ref().map(Secret::expose), Some("pk_secret_value"));
        assert!(!format!("{feed:?}").contains("pk_secret_value"));
        assert!(!format!("{:?}", request("x")).contains("pk_secret_value"));
    }

    #[test]
    fn bad_fields_are_refused_with_the_field_named() {
        let field = |edit: &dyn Fn(&mut CreateFeedRequest)| {
            let mut r = request("drop");
            edit(&mut r);
            match definition(r, OffsetDateTime::UNIX_EPOCH) {
                Err(UseCaseError::Invalid { field, .. }) => field,
                other => panic!("expected a refusal, got {other:?}"),
            }
        };
        assert_eq!(field(&|r| r.url = "ftp://example.org/list".into()), "url");
        assert_eq!(field(&|r| r.url = "https:///list".into()), "url");
        assert_eq!(field(&|r| r.format = Some("xml".into())), "format");
        assert_eq!(field(&|r| r.every_secs = Some(60)), "every_secs");
        assert_eq!(field(&|r| r.every_secs = Some(30 * 86_400)), "every_secs");
        assert_eq!(field(&|r| r.max_bytes = Some(10)), "max_bytes");
        assert_eq!(field(&|r| r.max_entries = Some(0)), "max_entries");
        assert_eq!(field(&|r| r.lifetime_secs = Some(3600)), "lifetime_secs");
        assert_eq!(field(&|r| r.api_key = Some("two words".into())), "api_key");
        assert_eq!(field(&|r| r.name = "Community".into()), "name");
        assert_eq!(field(&|r| r.visibility = Some("everyone".into())), "visibility");
    }
}
