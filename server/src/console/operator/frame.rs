//! What every operator page and action of the console is framed by: the [`Operator`] extractor
//! (operators only) and [`OperatorPost`] (an operator's form, origin and CSRF token checked),
//! the search and paging of long tables, the remove button of a table row, the outcome sentence,
//! and [`finish`], the end of every action (audit entry, redirect with the outcome).

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::session::{Role, Session};
use crate::console::pages::{self, Notice};
use crate::console::{FormFields, Signed, after_post, forbidden, page, post_allowed, store_error};
use crate::http::extract::ClientAddr;
use crate::manage;
use crate::state::AppState;
use crate::store::NewAuditEntry;
use crate::use_case::UseCaseError;

/// Rows on one page of a table.
pub(super) const PAGE: usize = 100;

/// `?q=` (a search) and `?page=` (from 1).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Search {
    pub(super) q: Option<String>,
    pub(super) page: Option<usize>,
}

impl Search {
    pub(super) fn query(&self) -> String {
        self.q.as_deref().unwrap_or_default().trim().to_lowercase()
    }

    pub(super) fn page(&self) -> usize {
        self.page.unwrap_or(1).max(1)
    }
}

/// A signed-in operator: an account user's request is answered 403, a signed-out one goes to
/// the sign-in page (as [`Signed`] does).
pub(super) struct Operator(pub(super) Session);

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Signed(session) = Signed::from_request_parts(parts, state).await?;
        if session.role != Role::Operator {
            return Err(page(
                StatusCode::FORBIDDEN,
                pages::message(None, "Operators only", "This page belongs to the operator of this server."),
            ));
        }
        Ok(Operator(session))
    }
}

/// An operator's form POST: the session, the client's address (for the audit log) and the
/// fields, once the origin and the session's CSRF token are checked; anything else is the
/// console's 403 page (a signed-out or account user's request is refused as [`Operator`] does).
pub(super) struct OperatorPost {
    pub(super) session: Session,
    pub(super) client: std::net::IpAddr,
    pub(super) form: HashMap<String, String>,
}

impl FromRequest<AppState> for OperatorPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Operator(session) = Operator::from_request_parts(&mut parts, state).await?;
        let ClientAddr(client) = ClientAddr::from_request_parts(&mut parts, state).await.map_err(|_| forbidden())?;
        let headers = parts.headers.clone();
        let Ok(FormFields(form)) = FormFields::from_request(Request::from_parts(parts, body), state).await;
        if !post_allowed(state, &session, &headers, &form) {
            return Err(forbidden());
        }
        Ok(OperatorPost { session, client, form })
    }
}

/// The button of a table row that removes its `value` (canaries, never-block ranges): a form
/// to `path` with `action=remove`.
pub(super) fn remove_button(ctx: &pages::Ctx, path: &str, value: &str) -> Markup {
    html! {
        form method="post" action=(path) class="inline" {
            (pages::csrf(ctx))
            input type="hidden" name="action" value="remove";
            input type="hidden" name="value" value=(value);
            button type="submit" class="danger" data-remove=(value) { "Remove" }
        }
    }
}

/// One operator action as the audit log records it: its name, what it acted on, its parameters.
pub(super) struct Act<'a> {
    pub(super) action: &'a str,
    pub(super) target: &'a str,
    pub(super) detail: Value,
}

/// The end of every operator action: records it in the audit log (`console:operator`, the
/// client's address, 200 or 422) and redirects back to `to` with its outcome as the sentence the
/// page shows; a server-side failure is answered as a page of its own.
pub(super) async fn finish(
    state: &AppState,
    session: &Session,
    client: std::net::IpAddr,
    act: Act<'_>,
    result: Result<String, UseCaseError>,
    to: &str,
) -> Response {
    let entry = NewAuditEntry {
        at: OffsetDateTime::now_utc(),
        actor: "console:operator".into(),
        action: act.action.into(),
        target: act.target.into(),
        detail: manage::audit::sanitize(act.detail).to_string(),
        client: Some(client.to_string()),
        status: Some(if result.is_ok() { 200 } else { 422 }),
    };
    manage::audit::record(state.store.as_ref(), entry).await;
    let notice = match result {
        Ok(done) => Notice::Done(done),
        Err(UseCaseError::NotFound(message) | UseCaseError::Conflict(message)) => Notice::Error(message),
        Err(error @ UseCaseError::Invalid { .. }) => Notice::Error(error.to_string()),
        Err(error) => return store_error(error),
    };
    after_post(state, session, notice, to)
}

pub(super) fn pager(path: &str, search: &Search, shown: usize, total: usize) -> Markup {
    let q = search.q.as_deref().unwrap_or_default();
    let page = search.page();
    let last = total.div_ceil(PAGE).max(1);
    let link = |n: usize| format!("{path}?q={}&page={n}", urlencode(q));
    html! {
        p class="pager" {
            (shown) " of " (total) ". "
            @if page > 1 { a href=(link(page - 1)) rel="prev" { "Previous" } " " }
            "Page " (page.min(last)) " of " (last)
            @if page < last { " " a href=(link(page + 1)) rel="next" { "Next" } }
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn search_form(path: &str, label: &str, search: &Search) -> Markup {
    html! {
        form method="get" action=(path) class="search" {
            label for="q" { (label) }
            input type="search" id="q" name="q" value=(search.q.as_deref().unwrap_or_default());
            button type="submit" { "Search" }
        }
    }
}

pub(super) fn notice_markup(notice: Option<&Notice>) -> Markup {
    html! {
        @match notice {
            Some(Notice::Done(text)) => p class="notice" role="status" { (text) },
            Some(Notice::Error(text)) => p class="error" role="alert" { (text) },
            _ => {},
        }
    }
}
