//! The operator's accounts in the console: every account (searched by name, paged) with its
//! verification level and machine count; creating one; for each, an enrollment key or a console
//! login link (shown once, in the outcome sentence; never written to the audit log), and
//! deletion, which asks what happens to the account's machines (refused while it has some,
//! unless they are detached or deleted with it) and is announced to every replica as a
//! revocation (its API keys, enrollment keys and sessions stop at once). Every action is one
//! form to `/console/operator/accounts` with its `action`, through [`crate::manage`] and
//! [`super::frame::finish`].

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde_json::json;
use tracing::instrument;

use super::frame::{Act, Operator, OperatorPost, PAGE, Search, finish, notice_markup, pager, search_form};
use crate::console::pages;
use crate::console::{ctx, page, store_error, take_flash, with_flash_cleared};
use crate::manage::{self, AttachedMachines};
use crate::state::AppState;
use crate::use_case::UseCaseError;

#[instrument(skip_all)]
pub(super) async fn accounts_page(
    State(state): State<AppState>,
    Operator(session): Operator,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let (notice, clear) = take_flash(&state, &session, &headers);
    let accounts = match state.store.list_accounts().await {
        Ok(accounts) => accounts,
        Err(error) => return store_error(crate::use_case::UseCaseError::from(error)),
    };
    let q = search.query();
    let found: Vec<_> = accounts.iter().filter(|a| q.is_empty() || a.name.to_lowercase().contains(&q)).collect();
    let shown: Vec<_> = found.iter().skip((search.page() - 1) * PAGE).take(PAGE).collect();
    let ctx = ctx(&state, &session);
    let body = html! {
        h1 { "Accounts" }
        (notice_markup(notice.as_ref()))
        p class="hint" { "An enrollment key attaches machines to an account (shown once); a login link signs one of its users into this console for 15 minutes. Deleting an account ends its API keys, enrollment keys and console sessions on every replica at once, and removes its pool policy and shares." }
        form method="post" action="/console/operator/accounts" {
            (pages::csrf(&ctx))
            input type="hidden" name="action" value="create";
            label for="account-name" { "New account" }
            input type="text" id="account-name" name="name" required maxlength="64";
            button type="submit" id="create-account" { "Create" }
        }
        (search_form("/console/operator/accounts", "Account name", &search))
        div class="scroll" {
            table id="accounts" {
                thead { tr {
                    th scope="col" { "Account" } th scope="col" { "Level" } th scope="col" class="num" { "Machines" }
                    th scope="col" { "Created" } th scope="col" { span class="sr" { "Action" } }
                } }
                tbody {
                    @for account in &shown {
                        tr {
                            th scope="row" { (account.name) }
                            td { (account.level.as_str()) }
                            td class="num" {
                                a href={ "/console/operator/machines?q=" (account.name) } { (account.machine_count) }
                            }
                            td { (pages::when_at(account.created_at)) }
                            td {
                                @for (action, label) in [("enroll-key", "Enrollment key"), ("login-link", "Login link")] {
                                    form method="post" action="/console/operator/accounts" class="inline" {
                                        (pages::csrf(&ctx))
                                        input type="hidden" name="action" value=(action);
                                        input type="hidden" name="name" value=(account.name);
                                        button type="submit" data-action=(action) data-account=(account.name) { (label) span class="sr" { " for " (account.name) } }
                                    }
                                    " "
                                }
                                form method="post" action="/console/operator/accounts" class="inline" {
                                    (pages::csrf(&ctx))
                                    input type="hidden" name="action" value="delete";
                                    input type="hidden" name="name" value=(account.name);
                                    @if account.machine_count > 0 {
                                        label { span class="sr" { "Machines of " (account.name) } " "
                                            select name="machines" {
                                                option value="detach" { "keep its machines" }
                                                option value="delete" { "delete its machines" }
                                            }
                                        }
                                    }
                                    button type="submit" class="danger" data-delete=(account.name) { "Delete" span class="sr" { " " (account.name) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager("/console/operator/accounts", &search, shown.len(), found.len()))
    };
    with_flash_cleared(page(StatusCode::OK, pages::layout(Some(&ctx), "Accounts", body)), &state, clear)
}

#[instrument(skip_all)]
pub(super) async fn account_action(State(state): State<AppState>, post: OperatorPost) -> Response {
    let OperatorPost { session, client, form } = post;
    let name = form.get("name").map(|v| v.trim()).unwrap_or_default().to_string();
    let store = state.store.as_ref();
    let (action, result) = match form.get("action").map(String::as_str) {
        Some("create") => {
            ("create_account", manage::create_account(store, &name).await.map(|a| format!("Account {} created.", a.name)))
        }
        Some("enroll-key") => (
            "create_enroll_key",
            manage::create_enroll_key(store, &name).await.map(|k| {
                format!(
                    "Enrollment key for {name}, shown only once: {0} (palisade enroll {0}, or cscli console enroll {0}).",
                    k.key
                )
            }),
        ),
        Some("login-link") => (
            "create_login_link",
            manage::login_link(store, state.jwt.console_key(), &state.public_url, &name)
                .await
                .map(|link| format!("Login link for {name}, valid for 15 minutes and shown only once: {}", link.url)),
        ),
        Some("delete") => ("delete_account", delete(&state, &name, form.get("machines").map(String::as_str)).await),
        _ => ("account_action", Err(UseCaseError::invalid("action", "must be create, enroll-key, login-link or delete"))),
    };
    let act = Act { action, target: &name, detail: json!({ "machines": form.get("machines") }) };
    finish(&state, &session, client, act, result, "/console/operator/accounts").await
}

/// Deletes account `name`, keeping (`detach`) or deleting its machines, or refusing while it
/// has some; every replica is told at once.
async fn delete(state: &AppState, name: &str, machines: Option<&str>) -> Result<String, UseCaseError> {
    let machines = machines.map_or(Ok(AttachedMachines::Refuse), AttachedMachines::parse)?;
    let deleted = manage::delete_account(state.store.as_ref(), name, machines).await?;
    state.revocations.revoked().await;
    Ok(format!(
        "Account {} deleted with {} API key(s) and {} enrollment key(s); machines kept without an account: {}, deleted: {}.",
        deleted.account,
        deleted.api_keys,
        deleted.enroll_keys,
        deleted.machines_detached.len(),
        deleted.machines_deleted.len()
    ))
}
