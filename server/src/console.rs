//! The web console under `/console`: pages rendered on the server for account users (machines,
//! enrollment keys, API keys, blocklists) and the operator (network overview; machines, the
//! community list and the audit log in `console/operator.rs`), and the IP analyzer for both. It owns sign-in (admin token, account login links), sign-out (which revokes
//! the session on every replica), signed sessions in `HttpOnly`, `SameSite=Strict` cookies (signed by [`crate::auth::session`], which
//! the admin API and CLI also use to issue login links), and CSRF checks on every POST. Its pages
//! reach nothing but this server: styles and the one small script are compiled into the binary.
//! It acts only through [`crate::manage`] and the [`crate::store::Store`]; it must not hold SQL.

pub mod charts;
pub mod data;
pub mod operator;
pub mod pages;
pub mod usage;

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use time::OffsetDateTime;
use tracing::instrument;

use self::pages::{Ctx, Notice};
use crate::auth::secrets::{hash_secret, random_alnum};
use crate::auth::session::{COOKIE, Keys, Role, SESSION_TTL_SECS, Session};
use crate::error::ApiError;
use crate::http::extract::{ClientAddr, guard_credentials, record_miss};
use crate::limits::failures::CredentialKind;
use crate::manage;
use crate::state::AppState;
use crate::use_case::UseCaseError;

/// Console routes, nested under `/console`.
/// The console's routes, with the operator's control plane (`console::operator::routes`) given
/// by the caller, under the same fallback and security headers.
pub fn routes(operator: Router<AppState>) -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_page).post(login))
        .route("/login/link", get(link_page).post(link_login))
        .route("/logout", post(logout))
        .route("/account", get(account_page))
        .route("/account/enroll-keys", post(create_enroll_key))
        .route("/account/enroll-keys/revoke", post(revoke_enroll_key))
        .route("/account/api-keys", post(create_api_key))
        .route("/account/api-keys/revoke", post(revoke_api_key))
        .route("/account/pool", post(update_pool_policy))
        .route("/ips", get(ip_page))
        .route("/operator", get(operator_page))
        .merge(operator)
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", pages::CSS) }))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", pages::JS) }))
        .fallback(|| async { page(StatusCode::NOT_FOUND, pages::message(None, "Not found", "There is no such console page.")) })
        .layer(middleware::from_fn(security_headers))
}

fn keys(state: &AppState) -> Keys {
    Keys::new(state.jwt.console_key())
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// A page answer with `status`.
fn page(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// Headers every console answer carries: nothing may load from elsewhere, frame the console, or
/// cache a signed-in page.
async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "x-frame-options", "DENY");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
    response
}

/// A signed-in console user. Without a valid, unexpired session cookie that was not ended (by
/// signing out, or by the operator ending every session: [`crate::revocation`]) the request is
/// redirected to the sign-in page.
pub struct Signed(pub Session);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = cookie(&parts.headers, COOKIE).ok_or_else(to_login)?;
        let session = keys(state).verify_session(&value, now()).map_err(|_| to_login())?;
        match state.revocations.current().await {
            Ok(revocations) if revocations.session_allowed(&session) => Ok(Signed(session)),
            Ok(_) => Err(to_login()),
            Err(error) => Err(store_error(error)),
        }
    }
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("palisade_console=; Path=/console; Max-Age=0"))
}

/// Whether the request's `Origin` (or, without one, its `Referer`) is this server. A request
/// with neither (not a browser form) passes here and still needs its CSRF token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER));
    let Some(source) = source else { return true };
    let Ok(source) = source.to_str() else { return false };
    let Ok(uri) = source.parse::<Uri>() else { return false };
    matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some_and(|a| a.as_str().eq_ignore_ascii_case(host))
}

/// The fields of a form POST. A body that is not a form reads as no fields, so the POST fails
/// the CSRF check with our 403 page rather than a bare rejection.
pub struct FormFields(pub HashMap<String, String>);

impl FromRequest<AppState> for FormFields {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(FormFields(Form::<HashMap<String, String>>::from_request(req, state).await.map(|Form(f)| f).unwrap_or_default()))
    }
}

/// Whether a POST passes the origin check and carries the session's CSRF token.
fn post_allowed(state: &AppState, session: &Session, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let token_ok = form.get("csrf").is_some_and(|sent| keys(state).csrf_matches(session, sent));
    same_origin(headers) && token_ok
}

fn forbidden() -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::message(None, "Request refused", "This form was not sent from this console page. Reload the page and try again."),
    )
}

fn ctx(state: &AppState, session: &Session) -> Ctx {
    Ctx { role: session.role.clone(), csrf: keys(state).csrf_token(session) }
}

fn store_error(error: impl Into<ApiError>) -> Response {
    let error = error.into();
    tracing::warn!(%error, "console action failed");
    let status = error.status();
    let message = if status.is_server_error() { "Something went wrong on the server.".to_string() } else { error.to_string() };
    page(status, pages::message(None, "Error", &message))
}

async fn index(session: Option<Signed>) -> Redirect {
    match session.map(|Signed(s)| s.role) {
        Some(Role::Operator) => Redirect::to("/console/operator"),
        Some(Role::Account { .. }) => Redirect::to("/console/account"),
        None => Redirect::to("/console/login"),
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Signed as FromRequestParts<AppState>>::from_request_parts(parts, state).await.ok())
    }
}

async fn login_page() -> Markup {
    pages::login(None)
}

/// Operator sign-in with an admin token. Wrong tokens count against the client's
/// failed-credential limit like the admin API's, so the form is no way around it.
#[instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    if let Err(ApiError::RateLimited(secs)) = guard_credentials(&state, CredentialKind::AdminToken, client) {
        let text = format!("Too many wrong tokens from your address: try again in {secs} s.");
        let mut response = page(StatusCode::TOO_MANY_REQUESTS, pages::login(Some(&text)));
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return response;
    }
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    let valid = !token.is_empty() && matches!(state.revocations.admin_token_valid(&hash_secret(token)).await, Ok(true));
    if !valid {
        record_miss(&state, CredentialKind::AdminToken, client);
        return page(StatusCode::UNAUTHORIZED, pages::login(Some("That admin token is not valid.")));
    }
    sign_in(&state, &Role::Operator, "/console/operator").await
}

async fn sign_in(state: &AppState, role: &Role, to: &str) -> Response {
    // A session opened in the second every session was ended would be refused: open it from the next one.
    let floor = match state.revocations.current().await {
        Ok(revocations) => revocations.session_floor(role),
        Err(error) => return store_error(error),
    };
    let value = keys(state).issue_session(role, now().max(floor), &random_alnum(24));
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(state, &value, SESSION_TTL_SECS));
    response
}

#[derive(serde::Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// The page a login link opens: it asks for a click, so a link previewer or a forged link
/// cannot sign a browser in by itself.
async fn link_page(State(state): State<AppState>, Query(query): Query<LinkQuery>) -> Response {
    let token = query.token.unwrap_or_default();
    match keys(&state).verify_link(&token, now()) {
        Ok((_, account)) => page(StatusCode::OK, pages::link_confirm(&account, &token)),
        Err(refused) => page(
            StatusCode::UNAUTHORIZED,
            pages::message(None, "Link not valid", &format!("This sign-in link is {refused}. Ask your operator for a new one.")),
        ),
    }
}

/// Account sign-in with a login link's token.
#[instrument(skip_all)]
async fn link_login(State(state): State<AppState>, headers: HeaderMap, FormFields(form): FormFields) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    let (id, name) = match keys(&state).verify_link(token, now()) {
        Ok(found) => found,
        Err(refused) => {
            return page(
                StatusCode::UNAUTHORIZED,
                pages::message(
                    None,
                    "Link not valid",
                    &format!("This sign-in link is {refused}. Ask your operator for a new one."),
                ),
            );
        }
    };
    // The account must still exist under the same id (a deleted and re-created name is another account).
    match state.store.account_by_name(&name).await {
        Ok(Some(account)) if account.key.0 == id => sign_in(&state, &Role::Account { id, name }, "/console/account").await,
        Ok(_) => page(StatusCode::UNAUTHORIZED, pages::message(None, "Link not valid", "This account no longer exists.")),
        Err(error) => store_error(error),
    }
}

async fn logout(
    State(state): State<AppState>,
    Signed(session): Signed,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Response {
    if !post_allowed(&state, &session, &headers, &form) {
        return forbidden();
    }
    // The cookie is signed, not stored: a copy of it stays valid until its nonce is revoked.
    if let Err(error) = manage::end_session(state.store.as_ref(), &session.nonce).await {
        return store_error(error);
    }
    state.revocations.revoked().await;
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    response
}

/// The signed-in account; `None` for the operator.
/// The signed-in account of a form POST that passed the CSRF and origin checks; `None` (answer
/// 403) for a forged request or an operator session.
fn account_post(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(i64, String)> {
    if post_allowed(state, session, headers, form) { account_of(session) } else { None }
}

fn account_of(session: &Session) -> Option<(i64, String)> {
    match &session.role {
        Role::Account { id, name } => Some((*id, name.clone())),
        Role::Operator => None,
    }
}

async fn render_account(state: &AppState, session: &Session, notice: Option<Notice>) -> Response {
    let Some((id, name)) = account_of(session) else {
        return page(
            StatusCode::FORBIDDEN,
            pages::message(None, "Account users only", "Operators see the network on the overview page."),
        );
    };
    let status = match &notice {
        Some(Notice::Error(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    match data::account(state, id, &name).await {
        Ok(view) => page(status, pages::account(&ctx(state, session), &view, notice.as_ref())),
        Err(error) => store_error(error),
    }
}

#[instrument(skip_all)]
async fn account_page(State(state): State<AppState>, Signed(session): Signed, headers: HeaderMap) -> Response {
    let (notice, clear) = take_flash(&state, &session, &headers);
    with_flash_cleared(render_account(&state, &session, notice).await, &state, clear)
}

/// A page that read a flash, with the cookie cleared: read once, so a reload shows the page
/// without it.
fn with_flash_cleared(mut response: Response, state: &AppState, clear: bool) -> Response {
    if clear {
        response.headers_mut().append(header::SET_COOKIE, flash_cookie(state, "", 0));
    }
    response
}

/// The outcome a form left for this page ([`after_post`]), and whether there was a cookie to
/// clear. A cookie of another session, forged or stale, shows nothing.
fn take_flash(state: &AppState, session: &Session, headers: &HeaderMap) -> (Option<Notice>, bool) {
    let Some(value) = cookie(headers, FLASH_COOKIE) else { return (None, false) };
    let notice = keys(state).verify_flash(session, &value, now()).ok().and_then(|(kind, text)| match kind.as_str() {
        "enroll_key" => Some(Notice::EnrollKey(text)),
        "api_key" => Some(Notice::ApiKey(text)),
        "done" => Some(Notice::Done(text)),
        "error" => Some(Notice::Error(text)),
        _ => None,
    });
    (notice, true)
}

/// The cookie carrying a form's outcome to the page it redirects to ([`after_post`]).
const FLASH_COOKIE: &str = "palisade_flash";

fn flash_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{FLASH_COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("palisade_flash=; Path=/console; Max-Age=0"))
}

/// Redirect after POST: the outcome goes, signed and bound to the session, into a cookie read
/// once by the page the browser is sent to (303 to `to`), so reloading that page shows it and
/// does not submit the form again.
fn after_post(state: &AppState, session: &Session, notice: Notice, to: &str) -> Response {
    let (kind, text) = match notice {
        Notice::EnrollKey(key) => ("enroll_key", key),
        Notice::ApiKey(key) => ("api_key", key),
        Notice::Done(text) => ("done", text),
        Notice::Error(text) => ("error", text),
    };
    let value = keys(state).issue_flash(session, kind, &text, now());
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().insert(header::SET_COOKIE, flash_cookie(state, &value, crate::auth::session::FLASH_TTL_SECS));
    response
}

#[instrument(skip_all)]
async fn create_enroll_key(
    State(state): State<AppState>,
    Signed(session): Signed,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Response {
    let Some((_, name)) = account_post(&state, &session, &headers, &form) else { return forbidden() };
    let notice = match manage::create_enroll_key(state.store.as_ref(), &name).await {
        Ok(created) => Notice::EnrollKey(created.key),
        Err(error) => return store_error(error),
    };
    after_post(&state, &session, notice, "/console/account")
}

/// Saves the account's own pool policy from the account page's form (an unchecked box sends
/// nothing: the pool is then off). A refused value comes back as the page's error.
#[instrument(skip_all)]
async fn update_pool_policy(
    State(state): State<AppState>,
    Signed(session): Signed,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Response {
    let Some((_, name)) = account_post(&state, &session, &headers, &form) else { return forbidden() };
    let notice = match pool_policy_request(&form) {
        Err(problem) => Notice::Error(problem),
        Ok(request) => match manage::pools::set_pool_policy(state.store.as_ref(), &state.pool_policy, &name, &request).await {
            Ok(_) => Notice::Done("Pool policy saved; it applies within seconds.".into()),
            Err(UseCaseError::Invalid { message, .. } | UseCaseError::BadRequest(message)) => Notice::Error(message),
            Err(error) => return store_error(error),
        },
    };
    after_post(&state, &session, notice, "/console/account")
}

/// The policy the pool form asks for.
fn pool_policy_request(form: &HashMap<String, String>) -> Result<palisade_api::native::PoolPolicyRequest, String> {
    let number = |field: &str, what: &str| -> Result<u32, String> {
        let text = form.get(field).map(|v| v.trim()).unwrap_or_default();
        text.parse().map_err(|_| format!("{what} must be a whole number, not {text:?}"))
    };
    let patterns = |field: &str| -> Vec<String> {
        form.get(field)
            .map(|v| v.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let hours = number("duration_hours", "Hours listed")?;
    Ok(palisade_api::native::PoolPolicyRequest {
        enabled: Some(form.get("enabled").is_some_and(|v| v == "true")),
        min_machines: Some(number("min_machines", "Machines that must report")?),
        duration_secs: Some(i64::from(hours) * 3600),
        remediation: form.get("remediation").cloned(),
        allow: Some(patterns("allow")),
        deny: Some(patterns("deny")),
    })
}

#[instrument(skip_all)]
async fn revoke_enroll_key(
    State(state): State<AppState>,
    Signed(session): Signed,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Response {
    let Some((id, _)) = account_post(&state, &session, &headers, &form) else { return forbidden() };
    let prefix = form.get("prefix").map(String::as_str).unwrap_or_default();
    let notice = match state.store.revoke_enroll_key(Some(crate::store::AccountKey(id)), prefix, OffsetDateTime::now_utc()).await
    {
        Ok(true) => Notice::Done(format!("Enrollment key {prefix}… revoked.")),
        Ok(false) => Notice::Error(format!("No active enrollment key {prefix:?} in this account.")),
        Err(error) => return store_error(error),
    };
    after_post(&state, &session, notice, "/console/account")
}

#[instrument(skip_all)]
async fn create_api_key(
    State(state): State<AppState>,
    Signed(session): Signed,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Response {
    let Some((_, name)) = account_post(&state, &session, &headers, &form) else { return forbidden() };
    let notice = match manage::create_api_key(state.store.as_ref(), &name).await {
        Ok(created) => Notice::ApiKey(created.key),
        Err(error) => return store_error(error),
    };
    after_post(&state, &session, notice, "/console/account")
}

#[instrument(skip_all)]
async fn revoke_api_key(
    State(state): State<AppState>,
    Signed(session): Signed,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Response {
    let Some((_, name)) = account_post(&state, &session, &headers, &form) else { return forbidden() };
    let prefix = form.get("prefix").map(String::as_str).unwrap_or_default();
    let notice = match manage::revoke_api_key(state.store.as_ref(), prefix, Some(&name)).await {
        Ok(()) => {
            state.quotas.api_keys.clear();
            state.revocations.revoked().await;
            Notice::Done(format!("API key {prefix} revoked."))
        }
        Err(UseCaseError::NotFound(_)) => Notice::Error(format!("No active API key {prefix:?} in this account.")),
        Err(error) => return store_error(error),
    };
    after_post(&state, &session, notice, "/console/account")
}

#[derive(serde::Deserialize)]
struct IpQuery {
    q: Option<String>,
}

/// The IP analyzer: an address's reputation card, or the listed members of a range. An account
/// user's search costs one lookup of the account's tier, as `/v1/ips` does; the operator's is free.
#[instrument(skip_all)]
async fn ip_page(State(state): State<AppState>, Signed(session): Signed, Query(query): Query<IpQuery>) -> Response {
    let ctx = ctx(&state, &session);
    let q = query.q.unwrap_or_default().trim().to_string();
    if q.is_empty() {
        return page(StatusCode::OK, pages::ips(&ctx, "", None));
    }
    let parsed = match data::parse_query(&q) {
        Ok(parsed) => parsed,
        Err(message) => return page(StatusCode::BAD_REQUEST, pages::ips(&ctx, &q, Some(&data::IpResult::Invalid(message)))),
    };
    if let Role::Account { id, .. } = &session.role {
        let tier = match state.store.account_tier(crate::store::AccountKey(*id)).await {
            Ok(tier) => state.quotas.tier(tier.as_deref().unwrap_or(crate::limits::DEFAULT_TIER)),
            Err(error) => return store_error(error),
        };
        let (decision, charged) = crate::http::quota::charge(&state, &crate::limits::LimitKey::Account(*id), &tier, 1).await;
        if charged.is_err() {
            let result = data::IpResult::Refused { retry_after_secs: decision.retry_after_secs, limit: decision.limit };
            return page(StatusCode::TOO_MANY_REQUESTS, pages::ips(&ctx, &q, Some(&result)));
        }
    }
    match data::ip_result(&state, parsed, &q).await {
        Ok(result) => page(StatusCode::OK, pages::ips(&ctx, &q, Some(&result))),
        Err(error) => store_error(error),
    }
}

#[instrument(skip_all)]
async fn operator_page(State(state): State<AppState>, Signed(session): Signed) -> Response {
    if session.role != Role::Operator {
        return page(StatusCode::FORBIDDEN, pages::message(None, "Operators only", "This page shows the whole network."));
    }
    match data::overview(&state).await {
        Ok(view) => page(StatusCode::OK, pages::operator(&ctx(&state, &session), &view)),
        Err(error) => store_error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn origin_must_be_this_host_when_sent() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[("host", "p.example"), ("referer", "https://p.example/console/account")])));
        assert!(same_origin(&headers(&[("host", "p.example")])), "no origin, no referer: the token decides");
        assert!(!same_origin(&headers(&[("host", "p.example"), ("origin", "https://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "p.example"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "p.example"), ("referer", "https://p.example.evil/")])));
        assert!(!same_origin(&headers(&[("origin", "http://p.example")])), "no host");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = headers(&[("cookie", "a=1; palisade_console=abc.def; b=2")]);
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc.def"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
