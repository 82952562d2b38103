//! Charging lookups to the caller's tier and telling it where it stands: the one place a lookup
//! (CTI, native, the console's analyzer) or an API-key blocklist pull is counted, and the
//! `X-RateLimit-Limit`, `-Remaining`, `-Reset` (and on a refusal `Retry-After`) headers every
//! answer to such a caller carries.

use axum::http::HeaderValue;
use axum::response::Response;

use crate::error::ApiError;
use crate::limits::{Decision, LimitKey, Tier};
use crate::state::AppState;

/// Adds the `X-RateLimit-*` headers (and `Retry-After` on a refusal) to an answer.
pub fn with_limit_headers(mut response: Response, decision: &Decision) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_secs));
    if !decision.allowed {
        headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(decision.retry_after_secs.max(1)));
    }
    response
}

/// Counts `cost` lookups; the answer is the refusal when over a limit.
pub async fn charge(state: &AppState, key: &LimitKey, tier: &Tier, cost: u32) -> (Decision, Result<(), ApiError>) {
    let decision = state.quotas.limiter.check(key, tier, cost).await;
    let outcome = if decision.allowed {
        metrics::counter!("palisade_lookups_total").increment(u64::from(cost));
        state.quotas.usage.record(key, state.quotas.limiter.now_us(), cost);
        Ok(())
    } else {
        metrics::counter!("palisade_quota_denials_total").increment(1);
        Err(ApiError::RateLimited(decision.retry_after_secs))
    };
    (decision, outcome)
}
