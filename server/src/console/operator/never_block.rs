//! The operator's never-block ranges in the console: every range with its category and source,
//! ranges added (one or more per line, as a provider file's text) and removed. What is added
//! leaves the community list and every pool at the next consensus step; the consensus worker is
//! woken at once. Actions go through [`crate::manage`] and [`super::finish`] as every operator
//! action does (audit log, redirect with the outcome).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use palisade_api::native::AllowlistImportRequest;
use serde_json::json;
use tracing::instrument;

use super::frame::{Act, Operator, OperatorPost, finish, notice_markup, remove_button};
use crate::console::pages;
use crate::console::{ctx, page, store_error, take_flash, with_flash_cleared};
use crate::manage;
use crate::state::AppState;
use crate::use_case::UseCaseError;

/// The categories a range may be filed under, as the admin API takes them.
const CATEGORIES: [&str; 5] = ["custom", "infrastructure", "cdn", "crawler", "resolver"];

#[instrument(skip_all)]
pub(super) async fn never_block_page(State(state): State<AppState>, Operator(session): Operator, headers: HeaderMap) -> Response {
    let (notice, clear) = take_flash(&state, &session, &headers);
    let ranges = match manage::list_allowlist(state.store.as_ref()).await {
        Ok(ranges) => ranges,
        Err(error) => return store_error(error),
    };
    let ctx = ctx(&state, &session);
    let body = html! {
        h1 { "Never-block ranges" }
        (notice_markup(notice.as_ref()))
        p class="hint" { "Addresses Palisade must never list: your own infrastructure, CDN egress, crawlers, resolvers. A listed address inside a new range leaves the community list and every pool at the next consensus step. The special-purpose ranges and consensus.own_addresses are never listed either and are not shown here." }
        form method="post" action="/console/operator/never-block" {
            (pages::csrf(&ctx))
            input type="hidden" name="action" value="add";
            label for="never-block-text" { "Addresses or ranges, one per line" }
            textarea id="never-block-text" name="text" rows="3" required {}
            label for="never-block-category" { "Category" }
            select id="never-block-category" name="category" {
                @for category in CATEGORIES { option value=(category) { (category) } }
            }
            label for="never-block-source" { "Source (a name to group and remove them by)" }
            input type="text" id="never-block-source" name="source" value="console" maxlength="64" required;
            button type="submit" id="add-never-block" { "Add" }
        }
        @if ranges.is_empty() { p { "None." } } @else {
            div class="scroll" {
                table id="never-block" {
                    thead { tr { th scope="col" { "Range" } th scope="col" { "Category" } th scope="col" { "Source" } th scope="col" { "Added" } th scope="col" { span class="sr" { "Action" } } } }
                    tbody {
                        @for range in &ranges {
                            tr {
                                th scope="row" { (range.value) } td { (range.category) } td { (range.source) } td { (pages::when(&range.created_at)) }
                                td { (remove_button(&ctx, "/console/operator/never-block", &range.value)) }
                            }
                        }
                    }
                }
            }
        }
    };
    with_flash_cleared(page(StatusCode::OK, pages::layout(Some(&ctx), "Never-block ranges", body)), &state, clear)
}

#[instrument(skip_all)]
pub(super) async fn change_never_block(State(state): State<AppState>, post: OperatorPost) -> Response {
    let OperatorPost { session, client, form } = post;
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default().to_string();
    let store = state.store.as_ref();
    let (action, target, result) = match form.get("action").map(String::as_str) {
        Some("add") => {
            let request = AllowlistImportRequest { source: field("source"), category: field("category"), text: field("text") };
            let result = manage::import_allowlist(store, &request)
                .await
                .map(|done| format!("{} of {} ranges added under {}.", done.added, done.found, request.source));
            ("import_allowlist", request.source.clone(), result)
        }
        Some("remove") => {
            let value = field("value");
            let result =
                manage::remove_allowlist(store, Some(&value), None).await.map(|_| format!("{value} may be listed again."));
            ("delete_allowlist", value, result)
        }
        _ => ("allowlist_action", String::new(), Err(UseCaseError::invalid("action", "must be add or remove"))),
    };
    if result.is_ok() {
        state.consensus_wake.notify_one();
    }
    let act = Act { action, target: &target, detail: json!({ "category": field("category") }) };
    finish(&state, &session, client, act, result, "/console/operator/never-block").await
}
