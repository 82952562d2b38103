//! The operator's control plane in the console: every machine (searched, paged) with its sensor
//! flag, disabling, enabling and deletion; the community list (searched, paged) with operator
//! delistings and upheld false positives; canaries added and removed; never-block ranges
//! (`operator/never_block.rs`); accounts and their deletion (`operator/accounts.rs`); and the
//! audit log. Each action is a form (same origin and the session's CSRF
//! token, operators only) that does what the admin API and the command line do, through
//! [`crate::manage`], is recorded in the audit log as `console:operator` with the client's
//! address, and redirects back with its outcome (redirect after POST). Account users get 403.

mod accounts;
mod frame;
mod never_block;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::json;
use tracing::instrument;

use self::frame::{Act, Operator, OperatorPost, PAGE, Search, finish, notice_markup, pager, remove_button, search_form};
use super::pages::{self, Ctx};
use super::{ctx, page, store_error, take_flash, with_flash_cleared};
use crate::domain::lists::COMMUNITY;
use crate::manage;
use crate::state::AppState;
use crate::use_case::UseCaseError;

/// The operator's routes, under `/console/operator/`, for [`super::routes`] to serve with the
/// console's own (the HTTP root composes them, so the console's file names nothing of this one).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/operator/machines", get(machines_page))
        .route("/operator/machines/action", post(machine_action))
        .route("/operator/community", get(community_page))
        .route("/operator/community/delist", post(delist))
        .route("/operator/canaries", get(canaries_page).post(change_canary))
        .route("/operator/never-block", get(never_block::never_block_page).post(never_block::change_never_block))
        .route("/operator/accounts", get(accounts::accounts_page).post(accounts::account_action))
        .route("/operator/audit", get(audit_page))
}

#[instrument(skip_all)]
async fn machines_page(
    State(state): State<AppState>,
    Operator(session): Operator,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let (notice, clear) = take_flash(&state, &session, &headers);
    let machines = match state.store.list_machines().await {
        Ok(machines) => machines,
        Err(error) => return store_error(error),
    };
    let q = search.query();
    let found: Vec<_> = machines
        .iter()
        .filter(|m| {
            q.is_empty()
                || m.machine_id.to_lowercase().contains(&q)
                || m.display_name.as_deref().is_some_and(|n| n.to_lowercase().contains(&q))
                || m.account_name.as_deref().is_some_and(|a| a.to_lowercase().contains(&q))
        })
        .collect();
    let shown: Vec<_> = found.iter().skip((search.page() - 1) * PAGE).take(PAGE).collect();
    let ctx = ctx(&state, &session);
    let body = html! {
        h1 { "Machines" }
        (notice_markup(notice.as_ref()))
        (search_form("/console/operator/machines", "Machine, name or account", &search))
        div class="scroll" {
            table id="all-machines" {
                thead { tr {
                    th scope="col" { "Machine" } th scope="col" { "Name" } th scope="col" { "Account" }
                    th scope="col" { "Trust" } th scope="col" class="num" { "Signals" } th scope="col" { "Sensor" }
                    th scope="col" { "Status" } th scope="col" { span class="sr" { "Actions" } }
                } }
                tbody {
                    @for m in &shown {
                        tr {
                            th scope="row" { (m.machine_id) }
                            td { (m.display_name.as_deref().unwrap_or("—")) }
                            td { (m.account_name.as_deref().unwrap_or("—")) }
                            td title=(format!("{:.2}", m.trust)) { (super::data::trust_words(m.trust)) }
                            td class="num" { (m.signal_count.unwrap_or_default()) }
                            td { @if m.sensor { "sensor" } @else { "—" } }
                            td { @if m.disabled_at.is_some() { "disabled" } @else { "active" } }
                            td class="actions" {
                                (action_form(&ctx, &m.machine_id, if m.sensor { "sensor-off" } else { "sensor-on" },
                                    if m.sensor { "Not a sensor" } else { "Make sensor" }))
                                (action_form(&ctx, &m.machine_id, if m.disabled_at.is_some() { "enable" } else { "disable" },
                                    if m.disabled_at.is_some() { "Enable" } else { "Disable" }))
                                (action_form(&ctx, &m.machine_id, "delete", "Delete"))
                            }
                        }
                    }
                }
            }
        }
        (pager("/console/operator/machines", &search, shown.len(), found.len()))
    };
    with_flash_cleared(page(StatusCode::OK, pages::layout(Some(&ctx), "Machines", body)), &state, clear)
}

fn action_form(ctx: &Ctx, machine: &str, action: &str, label: &str) -> Markup {
    html! {
        form method="post" action="/console/operator/machines/action" class="inline" {
            (pages::csrf(ctx))
            input type="hidden" name="machine" value=(machine);
            input type="hidden" name="action" value=(action);
            button type="submit" class=[(action == "delete").then_some("danger")] data-action=(action) data-machine=(machine) { (label) }
        }
    }
}

#[instrument(skip_all)]
async fn machine_action(State(state): State<AppState>, post: OperatorPost) -> Response {
    let OperatorPost { session, client, form } = post;
    let machine = form.get("machine").map(String::as_str).unwrap_or_default().to_string();
    let action = form.get("action").map(String::as_str).unwrap_or_default();
    let store = state.store.as_ref();
    let (name, result) = match action {
        "sensor-on" | "sensor-off" => (
            "set_machine_sensor",
            manage::set_sensor(store, &machine, action == "sensor-on")
                .await
                .map(|()| format!("{machine} {} a sensor.", if action == "sensor-on" { "is now" } else { "is no longer" })),
        ),
        "disable" | "enable" => (
            "set_machine_disabled",
            manage::set_machine_disabled(store, &machine, action == "disable").await.map(|()| {
                if action == "disable" {
                    format!("{machine} is disabled: its tokens no longer work.")
                } else {
                    format!("{machine} is enabled; it must log in again.")
                }
            }),
        ),
        "delete" => ("delete_machine", manage::delete_machine(store, &machine).await.map(|()| format!("{machine} is deleted."))),
        _ => ("machine_action", Err(UseCaseError::invalid("action", "must be sensor-on, sensor-off, disable, enable or delete"))),
    };
    if result.is_ok() && matches!(action, "disable" | "enable" | "delete") {
        state.revocations.revoked().await;
    }
    let act = Act { action: name, target: &machine, detail: json!({ "action": action }) };
    finish(&state, &session, client, act, result, "/console/operator/machines").await
}

#[instrument(skip_all)]
async fn community_page(
    State(state): State<AppState>,
    Operator(session): Operator,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let (notice, clear) = take_flash(&state, &session, &headers);
    let entries = match state.store.list_entries(COMMUNITY).await {
        Ok(entries) => entries,
        Err(error) => return store_error(error),
    };
    let q = search.query();
    let found: Vec<_> = entries
        .iter()
        .filter(|e| {
            q.is_empty() || crate::domain::net::display_target(e.value).contains(&q) || e.scenario.to_lowercase().contains(&q)
        })
        .collect();
    let shown: Vec<_> = found.iter().skip((search.page() - 1) * PAGE).take(PAGE).collect();
    let ctx = ctx(&state, &session);
    let body = html! {
        h1 { "Community list" }
        (notice_markup(notice.as_ref()))
        p class="hint" { "Delist takes an entry off at the next consensus step without blaming its reporters; it needs fresh reports to come back. False positive also penalises the machines that supported it, and only a sensor can list it again for a while." }
        (search_form("/console/operator/community", "Address, range or scenario", &search))
        div class="scroll" {
            table id="community" {
                thead { tr {
                    th scope="col" { "Value" } th scope="col" { "Scenario" } th scope="col" { "Rule" }
                    th scope="col" { "Listed" } th scope="col" { "Until" } th scope="col" { span class="sr" { "Action" } }
                } }
                tbody {
                    @for e in &shown {
                        @let value = crate::domain::net::display_target(e.value);
                        tr {
                            th scope="row" { (value) }
                            td { (e.scenario) } td { (e.rule.as_str()) }
                            td { (pages::when_at(e.listed_at)) } td { (pages::when_at(e.expires_at)) }
                            td {
                                form method="post" action="/console/operator/community/delist" class="inline" {
                                    (pages::csrf(&ctx))
                                    input type="hidden" name="value" value=(value);
                                    button type="submit" data-delist=(value) { "Delist" }
                                }
                                " "
                                form method="post" action="/console/operator/community/delist" class="inline" {
                                    (pages::csrf(&ctx))
                                    input type="hidden" name="value" value=(value);
                                    input type="hidden" name="blame" value="true";
                                    button type="submit" class="danger" data-false-positive=(value) { "False positive" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager("/console/operator/community", &search, shown.len(), found.len()))
    };
    with_flash_cleared(page(StatusCode::OK, pages::layout(Some(&ctx), "Community list", body)), &state, clear)
}

#[instrument(skip_all)]
async fn delist(State(state): State<AppState>, post: OperatorPost) -> Response {
    let OperatorPost { session, client, form } = post;
    let value = form.get("value").map(String::as_str).unwrap_or_default().to_string();
    // `blame`: an upheld false positive, which also penalises the reporters.
    let blame = form.get("blame").is_some_and(|b| b == "true");
    let (action, result) = if blame {
        let result = manage::report_false_positive(state.store.as_ref(), &value).await.map(|_| {
            format!("{value} is a false positive: it leaves the community list at the next consensus step and its supporters lose trust.")
        });
        ("create_false_positive", result)
    } else {
        let result = manage::delist(state.store.as_ref(), &value, None)
            .await
            .map(|_| format!("{value} leaves the community list at the next consensus step; its reporters are not blamed."));
        ("create_delisting", result)
    };
    if result.is_ok() {
        state.consensus_wake.notify_one();
    }
    let act = Act { action, target: &value, detail: json!({}) };
    finish(&state, &session, client, act, result, "/console/operator/community").await
}

#[instrument(skip_all)]
async fn canaries_page(State(state): State<AppState>, Operator(session): Operator, headers: HeaderMap) -> Response {
    let (notice, clear) = take_flash(&state, &session, &headers);
    let canaries = match manage::list_canaries(state.store.as_ref()).await {
        Ok(canaries) => canaries,
        Err(error) => return store_error(error),
    };
    let ctx = ctx(&state, &session);
    let body = html! {
        h1 { "Canaries" }
        (notice_markup(notice.as_ref()))
        p class="hint" { "Addresses you control that never send traffic: a machine reporting one is lying, and its trust is zeroed. Keep them secret; they are never shown to anyone else." }
        form method="post" action="/console/operator/canaries" {
            (pages::csrf(&ctx))
            input type="hidden" name="action" value="add";
            label for="canary-value" { "Address or range" }
            input type="text" id="canary-value" name="value" required;
            label for="canary-note" { "Note" }
            input type="text" id="canary-note" name="note" maxlength="256";
            button type="submit" id="add-canary" { "Add canary" }
        }
        @if canaries.is_empty() { p { "None." } } @else {
            div class="scroll" {
                table id="canaries" {
                    thead { tr { th scope="col" { "Value" } th scope="col" { "Note" } th scope="col" { "Added" } th scope="col" { span class="sr" { "Action" } } } }
                    tbody {
                        @for canary in &canaries {
                            tr {
                                th scope="row" { (canary.value) } td { (canary.note) } td { (pages::when(&canary.created_at)) }
                                td { (remove_button(&ctx, "/console/operator/canaries", &canary.value)) }
                            }
                        }
                    }
                }
            }
        }
    };
    with_flash_cleared(page(StatusCode::OK, pages::layout(Some(&ctx), "Canaries", body)), &state, clear)
}

#[instrument(skip_all)]
async fn change_canary(State(state): State<AppState>, post: OperatorPost) -> Response {
    let OperatorPost { session, client, form } = post;
    let value = form.get("value").map(|v| v.trim()).unwrap_or_default().to_string();
    let note = form.get("note").map(|v| v.trim()).unwrap_or_default();
    let store = state.store.as_ref();
    let (action, result) = match form.get("action").map(String::as_str) {
        Some("add") => {
            ("create_canary", manage::add_canary(store, &value, note).await.map(|c| format!("{} is a canary.", c.value)))
        }
        Some("remove") => {
            ("delete_canary", manage::remove_canary(store, &value).await.map(|()| format!("{value} is no longer a canary.")))
        }
        _ => ("canary_action", Err(UseCaseError::invalid("action", "must be add or remove"))),
    };
    // The note is the operator's own words about a secret address: recorded by its size only.
    let act = Act { action, target: &value, detail: json!({ "note_bytes": note.len() }) };
    finish(&state, &session, client, act, result, "/console/operator/canaries").await
}

/// `?before=` (the last id of the previous page).
#[derive(Debug, Default, serde::Deserialize)]
struct AuditQuery {
    before: Option<i64>,
}

#[instrument(skip_all)]
async fn audit_page(State(state): State<AppState>, Operator(session): Operator, Query(query): Query<AuditQuery>) -> Response {
    let found = match manage::audit::list_audit(state.store.as_ref(), query.before, None, None, None, Some(PAGE as u32)).await {
        Ok(found) => found,
        Err(error) => return store_error(error),
    };
    let ctx = ctx(&state, &session);
    let body = html! {
        h1 { "Audit log" }
        p class="hint" { "Every change made with an admin token, on the command line or in this console: who, what, when, from where." }
        div class="scroll" {
            table id="audit" {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" }
                    th scope="col" { "Target" } th scope="col" { "From" } th scope="col" class="num" { "Status" }
                } }
                tbody {
                    @for e in &found.items {
                        tr {
                            td { (pages::when(&e.at)) } td { (e.actor) } th scope="row" { (e.action) }
                            td { (e.target) } td { (e.client.as_deref().unwrap_or("—")) }
                            td class="num" { (e.status.map_or("—".to_string(), |s| s.to_string())) }
                        }
                    }
                }
            }
        }
        @if let Some(before) = found.next_before {
            p class="pager" { a href=(format!("/console/operator/audit?before={before}")) rel="next" { "Older" } }
        }
    };
    page(StatusCode::OK, pages::layout(Some(&ctx), "Audit log", body))
}
