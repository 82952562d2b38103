//! The console's HTML: maud templates (compiled into the binary, escaped by construction) from
//! the view structs of [`super::data`] to markup, plus the stylesheet and the one small script.
//! Pure: no I/O. Every page works without script; the script only adds live refresh.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use palisade_api::native::IpLookupResponse;

use super::charts::{self, Series};
use super::data::{AccountView, IpResult, MachineRow, Overview};
use crate::auth::session::Role;

/// The stylesheet, served from `/console/assets/console.css`.
pub const CSS: &str = include_str!("console.css");

/// The live-refresh script, served from `/console/assets/console.js`.
pub const JS: &str = include_str!("console.js");

/// What every signed-in page needs: who, and the CSRF token for its forms.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Who is signed in.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
}

/// A message shown at the top of the account page after an action.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A new enrollment key (shown once).
    EnrollKey(String),
    /// A new API key (shown once).
    ApiKey(String),
    /// An action succeeded.
    Done(String),
    /// An action was refused.
    Error(String),
}

pub(super) fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// The page frame: head, header with navigation and sign-out, main content.
pub(super) fn layout(ctx: Option<&Ctx>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Palisade console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header class="top" {
                    a class="brand" href="/console" { "Palisade" }
                    @if let Some(ctx) = ctx {
                        nav aria-label="Console" {
                            ul {
                                @match &ctx.role {
                                    Role::Operator => {
                                        li { a href="/console/operator" { "Overview" } }
                                        li { a href="/console/operator/machines" { "Machines" } }
                                        li { a href="/console/operator/community" { "Community list" } }
                                        li { a href="/console/operator/accounts" { "Accounts" } }
                                        li { a href="/console/operator/canaries" { "Canaries" } }
                                        li { a href="/console/operator/never-block" { "Never-block" } }
                                        li { a href="/console/operator/audit" { "Audit log" } }
                                    }
                                    Role::Account { .. } => { li { a href="/console/account" { "Account" } } }
                                }
                                li { a href="/console/ips" { "IP analyzer" } }
                            }
                        }
                        span class="who" {
                            @match &ctx.role {
                                Role::Operator => { "Operator" }
                                Role::Account { name, .. } => { "Account " (name) }
                            }
                        }
                        form method="post" action="/console/logout" class="inline" {
                            (csrf(ctx))
                            button type="submit" id="sign-out" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page with one heading and one paragraph (errors, refusals).
pub fn message(ctx: Option<&Ctx>, title: &str, text: &str) -> Markup {
    layout(ctx, title, html! { h1 { (title) } p { (text) } p { a href="/console" { "Back to the console" } } })
}

/// The sign-in page.
pub fn login(error: Option<&str>) -> Markup {
    layout(
        None,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(error) = error { p class="error" role="alert" { (error) } }
            section {
                h2 { "Operator" }
                form method="post" action="/console/login" {
                    label for="token" { "Admin token" }
                    input type="password" id="token" name="token" autocomplete="off" required;
                    p class="hint" { "Create one on the server with " code { "palisade-server admin token create" } "." }
                    button type="submit" { "Sign in" }
                }
            }
            section {
                h2 { "Account users" }
                p { "Open the sign-in link your operator gave you. The operator makes one with "
                    code { "palisade-server admin account login-link NAME" } "; it is valid for 15 minutes." }
            }
        },
    )
}

/// The page a login link opens: one button that signs in.
pub fn link_confirm(account: &str, token: &str) -> Markup {
    layout(
        None,
        "Sign in",
        html! {
            h1 { "Sign in to account " (account) }
            form method="post" action="/console/login/link" {
                input type="hidden" name="token" value=(token);
                button type="submit" id="continue" { "Continue as " (account) }
            }
        },
    )
}

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("—")
}

/// A stored time for people: to the minute, in UTC ("2026-12-05 14:03 UTC"), inside a `time`
/// element whose `datetime` keeps the exact RFC 3339 value. Anything that does not parse is
/// shown as it is.
pub(super) fn when(text: &str) -> Markup {
    match time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        Ok(at) => {
            let at = at.to_offset(time::UtcOffset::UTC);
            let shown =
                format!("{}-{:02}-{:02} {:02}:{:02} UTC", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute());
            html! { time datetime=(text) { (shown) } }
        }
        Err(_) => html! { (text) },
    }
}

/// [`when`] for an optional time: "—" when there is none.
fn when_opt(value: &Option<String>) -> Markup {
    match value {
        Some(text) => when(text),
        None => html! { "—" },
    }
}

/// [`when`] for a time the page holds as a value.
pub(super) fn when_at(at: time::OffsetDateTime) -> Markup {
    when(&crate::domain::time::rfc3339(at))
}

fn copy_field(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div class="copy" {
            label for=(id) { (label) }
            input type="text" id=(id) readonly value=(value);
        }
    }
}

/// The account page.
pub fn account(ctx: &Ctx, view: &AccountView, notice: Option<&Notice>) -> Markup {
    layout(
        Some(ctx),
        &format!("Account {}", view.name),
        html! {
            h1 { "Account " (view.name) }
            @match notice {
                Some(Notice::EnrollKey(key)) => {
                    section class="notice" role="status" {
                        h2 { "New enrollment key" }
                        p { "Copy it now: it is not shown again. Run one of these on the machine to enroll:" }
                        (copy_field("new-enroll-key", "Key", key))
                        (copy_field("enroll-palisade", "Palisade agent", &format!("palisade enroll {key}")))
                        (copy_field("enroll-cscli", "CrowdSec", &format!("cscli console enroll {key}")))
                    }
                }
                Some(Notice::ApiKey(key)) => {
                    section class="notice" role="status" {
                        h2 { "New API key" }
                        p { "Copy it now: it is not shown again. Send it in the " code { "x-api-key" } " header." }
                        (copy_field("new-api-key", "Key", key))
                    }
                }
                Some(Notice::Done(text)) => { p class="notice" role="status" { (text) } }
                Some(Notice::Error(text)) => { p class="error" role="alert" { (text) } }
                None => {}
            }
            section aria-labelledby="machines-h" {
                h2 id="machines-h" { "Machines" }
                p class="js-only" {
                    label { input type="checkbox" id="live" data-live="30"; " Refresh every 30 seconds" }
                }
                @if view.machines.is_empty() {
                    p { "No machine is enrolled yet. Create an enrollment key below and run the command it shows on the machine." }
                } @else {
                    (machine_table("machines", &view.machines))
                }
            }
            section aria-labelledby="enroll-h" {
                h2 id="enroll-h" { "Enrollment keys" }
                form method="post" action="/console/account/enroll-keys" {
                    (csrf(ctx))
                    button type="submit" id="create-enroll-key" { "Create an enrollment key" }
                }
                @if !view.enroll_keys.is_empty() {
                    div class="scroll" {
                        table id="enroll-keys" {
                            thead { tr { th scope="col" { "Key" } th scope="col" { "Created" } th scope="col" { "Status" } th scope="col" { span class="sr" { "Action" } } } }
                            tbody {
                                @for key in &view.enroll_keys {
                                    tr {
                                        th scope="row" { code { (key.prefix) "…" } }
                                        td { (when_at(key.created_at)) }
                                        td { @if key.revoked_at.is_some() { "revoked" } @else { "active" } }
                                        td {
                                            @if key.revoked_at.is_none() {
                                                form method="post" action="/console/account/enroll-keys/revoke" class="inline" {
                                                    (csrf(ctx))
                                                    input type="hidden" name="prefix" value=(key.prefix);
                                                    button type="submit" class="danger" { "Revoke" span class="sr" { " " (key.prefix) } }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="keys-h" {
                h2 id="keys-h" { "API keys" }
                p {
                    "Tier " strong { (view.tier_name) } ": " (view.tier.lookups_per_day) " lookups a day, "
                    (view.tier.lookups_per_month) " a month. Used " (view.usage_window) ": "
                    strong id="usage" { (view.used) } " of " (view.limit) "."
                }
                // Browsers colour a meter by its region: green below `low`, amber up to `high`,
                // red above it, since the optimum is an empty meter.
                meter min="0" max=(view.limit) low=(view.limit as f64 * 0.75) high=(view.limit as f64 * 0.9) optimum="0"
                    value=(view.used) aria-label="Lookups used" { (view.used) " of " (view.limit) }
                figure id="usage-chart" {
                    (charts::bars("Lookups per day", &[Series { name: "lookups", color: "#0891b2" }],
                        &charts::fill_days(view.today, super::data::CHART_DAYS,
                            &view.usage_per_day.iter().map(|d| (d.day, vec![d.count])).collect::<Vec<_>>(), 1)))
                    figcaption { "Lookups per day over the last " (super::data::CHART_DAYS) " days (UTC), API keys and analyzer together." }
                }
                form method="post" action="/console/account/api-keys" {
                    (csrf(ctx))
                    button type="submit" id="create-api-key" { "Create an API key" }
                }
                @if !view.api_keys.is_empty() {
                    div class="scroll" {
                        table id="api-keys" {
                            thead { tr { th scope="col" { "Key" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Status" } th scope="col" { span class="sr" { "Action" } } } }
                            tbody {
                                @for key in &view.api_keys {
                                    tr {
                                        th scope="row" { code { (key.prefix) } }
                                        td { (when(&key.created_at)) }
                                        td { (when_opt(&key.last_used_at)) }
                                        td { @if key.revoked_at.is_some() { "revoked" } @else { "active" } }
                                        td {
                                            @if key.revoked_at.is_none() {
                                                form method="post" action="/console/account/api-keys/revoke" class="inline" {
                                                    (csrf(ctx))
                                                    input type="hidden" name="prefix" value=(key.prefix);
                                                    button type="submit" class="danger" { "Revoke" span class="sr" { " " (key.prefix) } }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="alerts-h" {
                h2 id="alerts-h" { "Recent alerts" }
                @if view.alerts.is_empty() {
                    p { "None of your machines reported anything in the last " (super::data::ALERT_DAYS) " days." }
                } @else {
                    p { "What your machines reported, newest first (the last " (super::data::ALERT_DAYS) " days, at most " (super::data::ALERT_ROWS) ")." }
                    div class="scroll" {
                        table id="alerts" {
                            thead { tr { th scope="col" { "Received" } th scope="col" { "Machine" } th scope="col" { "Address" } th scope="col" { "Scenario" } } }
                            tbody {
                                @for alert in &view.alerts {
                                    tr {
                                        td { (when_at(alert.received_at)) }
                                        td { (alert.machine_id) }
                                        th scope="row" { a href={ "/console/ips?q=" (alert.value) } { (alert.value) } }
                                        td { (alert.scenario) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pool_section(ctx, &view.pool))
            section aria-labelledby="lists-h" {
                h2 id="lists-h" { "Blocklists" }
                p { "Pull these with an API key in the " code { "x-api-key" } " header, e.g. "
                    code { "curl -H 'x-api-key: KEY' URL" } "." }
                @for list in &view.lists {
                    h3 { (list.name) @if list.cap > 0 { " (up to " (list.cap) " entries)" } }
                    @for (format, url) in &list.urls {
                        (copy_field(&format!("url-{}-{format}", list.name), format, url))
                    }
                }
            }
        },
    )
}

/// The account's private pool: what it lists now, the policy (editable here), the shares.
fn pool_section(ctx: &Ctx, pool: &super::data::PoolSection) -> Markup {
    let policy = &pool.policy;
    html! {
        section aria-labelledby="pool-h" {
            h2 id="pool-h" { "Your pool" }
            p {
                "An attacker reported by " (if policy.min_machines == 1 { "one of your machines".to_string() } else { format!("{} of your machines", policy.min_machines) })
                " is listed at once for all of them (" code { (pool.list) } "), for "
                (policy.duration_secs / 3600) " h after the last report. "
                @if !policy.enabled { strong { "The pool is off." } " " }
                (pool.total) (if pool.total == 1 { " entry" } else { " entries" }) " now."
            }
            @if !pool.newest.is_empty() {
                div class="scroll" {
                    table id="pool-entries" {
                        thead { tr { th scope="col" { "Address" } th scope="col" { "Scenario" } th scope="col" { "Listed" } th scope="col" { "Expires" } } }
                        tbody {
                            @for row in &pool.newest {
                                tr {
                                    th scope="row" { a href={ "/console/ips?q=" (row.value) } { (row.value) } }
                                    td { (row.scenario) }
                                    td { (when_at(row.listed_at)) }
                                    td { (when_at(row.expires_at)) }
                                }
                            }
                        }
                    }
                }
                @if pool.total > pool.newest.len() { p { "The newest " (pool.newest.len()) " of " (pool.total) " are shown." } }
            }
            @if !pool.shared_with.is_empty() { p { "Shared, read-only, with: " (pool.shared_with.join(", ")) "." } }
            @if !pool.received_from.is_empty() { p { "Your machines also receive the pools of: " (pool.received_from.join(", ")) "." } }
            details {
                summary { "Pool policy" @if !pool.own_policy { " (the server's default)" } }
                form method="post" action="/console/account/pool" id="pool-policy" {
                    (csrf(ctx))
                    label { input type="checkbox" name="enabled" value="true" checked[policy.enabled]; " Pool on" }
                    label { "Machines that must report an address " input type="number" name="min_machines" min="1" max="100" value=(policy.min_machines); }
                    label { "Listed for (hours after the last report) " input type="number" name="duration_hours" min="1" max="720" value=(policy.duration_secs / 3600); }
                    label { "Remediation "
                        select name="remediation" {
                            option value="ban" selected[policy.remediation == "ban"] { "ban" }
                            option value="captcha" selected[policy.remediation == "captcha"] { "captcha" }
                        }
                    }
                    label { "Scenarios that count (patterns, one per line; * for all) " textarea name="allow" rows="3" { (policy.allow.join("\n")) } }
                    label { "Scenarios that never count " textarea name="deny" rows="3" { (policy.deny.join("\n")) } }
                    button type="submit" { "Save the pool policy" }
                }
            }
        }
    }
}

fn machine_table(id: &str, machines: &[MachineRow]) -> Markup {
    html! {
        div class="scroll" {
            table id=(id) {
                thead { tr {
                    th scope="col" { "Machine" } th scope="col" { "Name" } th scope="col" { "Version" }
                    th scope="col" { "Last seen" } th scope="col" { "Trust" } th scope="col" class="num" { "Signals today" }
                    th scope="col" class="num" { "Signals" }
                } }
                tbody {
                    @for m in machines {
                        tr {
                            th scope="row" { (m.machine_id) }
                            td { (opt(&m.name)) }
                            td { (opt(&m.version)) }
                            td { (when_opt(&m.last_seen)) }
                            td title=(format!("{:.2}", m.trust_value)) { (m.trust) }
                            td class="num" { (m.signals_today) }
                            td class="num" { (m.signals) }
                        }
                    }
                }
            }
        }
    }
}

/// The IP analyzer.
pub fn ips(ctx: &Ctx, query: &str, result: Option<&IpResult>) -> Markup {
    layout(
        Some(ctx),
        "IP analyzer",
        html! {
            h1 { "IP analyzer" }
            form method="get" action="/console/ips" class="search" role="search" {
                label for="q" { "IP address or range" }
                input type="search" id="q" name="q" value=(query) placeholder="192.0.2.1 or 192.0.2.0/24" required;
                button type="submit" { "Look up" }
            }
            @if matches!(ctx.role, Role::Account { .. }) {
                p class="hint" { "Each search counts as one lookup of your account's tier." }
            }
            @match result {
                None => {}
                Some(IpResult::Invalid(message)) => { p class="error" role="alert" { (message) } }
                Some(IpResult::Refused { retry_after_secs, limit }) => {
                    p class="error" role="alert" { "Your account used its " (limit) " lookups. Try again in " (retry_after_secs) " seconds." }
                }
                Some(IpResult::Card(card)) => { (ip_card(card)) }
                Some(IpResult::Range { range, entries }) => {
                    h2 { "Listed in " (range) }
                    @if entries.is_empty() { p id="range-empty" { "Nothing in this range is on the community blocklist." } }
                    @else {
                        div class="scroll" { table id="range" {
                            thead { tr { th scope="col" { "Address" } th scope="col" { "Scenario" } th scope="col" { "Rule" } th scope="col" { "Until" } } }
                            tbody { @for e in entries { tr {
                                @let value = crate::domain::net::display_target(e.value);
                                th scope="row" { a href={ "/console/ips?q=" (value) } { (value) } }
                                td { (e.scenario) } td { (e.rule.as_str()) } td { (when_at(e.expires_at)) }
                            } } }
                        } }
                    }
                }
            }
        },
    )
}

fn ip_card(card: &IpLookupResponse) -> Markup {
    let e = &card.explanation;
    html! {
        article class="card" id="ip-card" aria-labelledby="card-h" {
            h2 id="card-h" { (card.ip) " " span class={ "badge " (card.reputation) } id="reputation" { (card.reputation) } }
            dl class="facts" {
                dt { "Confidence" } dd { (card.confidence) }
                dt { "Background noise" } dd { (card.background_noise) }
                dt { "Reporters" } dd { (card.reporters) }
                dt { "AS" } dd { @if let Some(n) = card.as_num { "AS" (n) " " } (opt(&card.as_name)) }
                dt { "Country" } dd { (opt(&card.country)) }
                dt { "Range" } dd { (opt(&card.ip_range)) }
                dt { "First seen" } dd { (opt(&card.first_seen)) }
                dt { "Last seen" } dd { (when_opt(&card.last_seen)) }
                dt { "Blocklists" } dd { @if card.blocklists.is_empty() { "none" } @else { (card.blocklists.join(", ")) } }
                dt { "False-positive classes" } dd { @if card.false_positives.is_empty() { "none" } @else { (card.false_positives.join(", ")) } }
            }
            h3 { "Behaviours" }
            @if card.behaviors.is_empty() { p { "None reported." } }
            @else { ul { @for b in &card.behaviors { li { (b) } } } }
            @if !card.scenarios.is_empty() {
                h3 { "Scenarios" }
                ul { @for s in &card.scenarios { li { code { (s) } } } }
            }
            h3 { "Scores (0–5)" }
            div class="scroll" { table id="scores" {
                thead { tr { th scope="col" { "Window" } th scope="col" class="num" { "Aggressiveness" } th scope="col" class="num" { "Threat" }
                    th scope="col" class="num" { "Trust" } th scope="col" class="num" { "Anomaly" } th scope="col" class="num" { "Total" } } }
                tbody {
                    @for (name, s) in [("Last day", &card.scores.last_day), ("Last week", &card.scores.last_week), ("Last month", &card.scores.last_month), ("Overall", &card.scores.overall)] {
                        tr { th scope="row" { (name) } td class="num" { (s.aggressiveness) } td class="num" { (s.threat) }
                            td class="num" { (s.trust) } td class="num" { (s.anomaly) } td class="num" { (s.total) } }
                    }
                }
            } }
            h3 { "Why" }
            p id="explanation" {
                @if e.listed {
                    (e.target) " is on the community blocklist (rule " (opt(&e.rule)) ", " (opt(&e.remediation)) ") since "
                    (when_opt(&e.listed_at)) ", until " (when_opt(&e.expires_at)) ": reported by " (e.clusters)
                    " independent group(s) of machines from " (e.ases) " AS(es)."
                } @else {
                    (e.target) " is not on the community blocklist."
                }
            }
        }
    }
}

fn stat(label: &str, value: impl maud::Render) -> Markup {
    html! { div class="stat" { dt { (label) } dd { (value) } } }
}

fn ranked(id: &str, title: &str, rows: &[(String, u64)]) -> Markup {
    html! {
        section class="half" aria-labelledby={ (id) "-h" } {
            h3 id={ (id) "-h" } { (title) }
            @if rows.is_empty() { p { "None." } } @else {
                table id=(id) {
                    thead { tr { th scope="col" { "Value" } th scope="col" class="num" { "Signals" } } }
                    tbody { @for (value, n) in rows { tr { th scope="row" { (value) } td class="num" { (n) } } } }
                }
            }
        }
    }
}

/// The operator's network overview.
pub fn operator(ctx: &Ctx, view: &Overview) -> Markup {
    let signals: Vec<(i64, Vec<u64>)> = view.signals_per_day.iter().map(|d| (d.day, vec![d.count])).collect();
    let changes: Vec<(i64, Vec<u64>)> = view.changes_per_day.iter().map(|d| (d.day, vec![d.count, d.other])).collect();
    let trust: Vec<charts::Group> =
        view.trust_bands.iter().map(|(name, n)| charts::Group { label: (*name).into(), values: vec![*n] }).collect();
    layout(
        Some(ctx),
        "Network overview",
        html! {
            h1 { "Network overview" }
            p class="js-only" { label { input type="checkbox" id="live" data-live="30"; " Refresh every 30 seconds" } }
            dl class="stats" id="stats" {
                (stat("Machines", view.machines))
                (stat("Accounts", view.accounts))
                (stat("Signals stored", view.signals))
                (stat("Signals per minute (last hour)", PreEscaped(format!("{:.1}", view.signals_per_min))))
                (stat("On the community list", view.listed))
                (stat("Consensus lag", PreEscaped(format!("{} s", view.consensus_lag_secs))))
            }
            section aria-labelledby="charts-h" {
                h2 id="charts-h" { "Last " (super::data::CHART_DAYS) " days" }
                figure {
                    (charts::bars("Signals received per day", &[Series { name: "signals", color: "#2563eb" }],
                        &charts::fill_days(view.today, super::data::CHART_DAYS, &signals, 1)))
                    figcaption { "Signals received per day (UTC)." }
                }
                figure {
                    (charts::bars("Community list changes per day",
                        &[Series { name: "listed", color: "#dc2626" }, Series { name: "delisted", color: "#16a34a" }],
                        &charts::fill_days(view.today, super::data::CHART_DAYS, &changes, 2)))
                    figcaption { "Addresses listed and delisted on the community blocklist per day (UTC)." }
                }
            }
            section aria-labelledby="trust-h" {
                h2 id="trust-h" { "Machine trust" }
                figure {
                    (charts::bars("Machines per trust band", &[Series { name: "machines", color: "#7c3aed" }], &trust))
                    figcaption { "Machines per trust band." }
                }
                h3 { "Flagged for review" }
                p class="hint" { "Machines their own reports counted against: a canary reported, lies proven by sensors, false positives. A new machine with no trust yet is not suspicious." }
                @if view.flagged.is_empty() { p { "None." } } @else { (machine_table("flagged", &view.flagged)) }
                h3 { "Sensors" }
                @if view.sensors.is_empty() { p { "No machine is marked as a sensor." } } @else { (machine_table("sensors", &view.sensors)) }
            }
            section aria-labelledby="top-h" {
                h2 id="top-h" { "Top reported (last " (view.sampled) " signals)" }
                div class="grid" {
                    (ranked("top-ips", "Addresses", &view.top_ips))
                    (ranked("top-ases", "Autonomous systems", &view.top_ases))
                    (ranked("top-countries", "Countries", &view.top_countries))
                    (ranked("top-scenarios", "Scenarios", &view.top_scenarios))
                }
            }
            section aria-labelledby="canaries-h" {
                h2 id="canaries-h" { "Canaries" }
                @if view.canaries.is_empty() { p { "None." } } @else {
                    table { thead { tr { th scope="col" { "Address" } th scope="col" { "Note" } } }
                        tbody { @for (value, note) in &view.canaries { tr { th scope="row" { (value) } td { (note) } } } } }
                }
            }
            section aria-labelledby="allow-h" {
                h2 id="allow-h" { "Never-block ranges" }
                @if view.allowlists.is_empty() { p { "None." } } @else {
                    table { thead { tr { th scope="col" { "Source" } th scope="col" { "Category" } th scope="col" class="num" { "Ranges" } } }
                        tbody { @for (source, category, n) in &view.allowlists { tr { th scope="row" { (source) } td { (category) } td class="num" { (n) } } } } }
                }
            }
            section aria-labelledby="feeds-h" {
                h2 id="feeds-h" { "Feeds" }
                p class="hint" { "External lists refreshed on a schedule (palisade-server admin feed). A failed refresh keeps the last good copy." }
                @if view.feeds.is_empty() { p { "None." } } @else {
                    div class="scroll" { table id="feeds" {
                        thead { tr { th scope="col" { "Feed" } th scope="col" { "Format" } th scope="col" class="num" { "Entries" }
                            th scope="col" { "Last success" } th scope="col" { "State" } } }
                        tbody { @for feed in &view.feeds { tr {
                            th scope="row" { (feed.name) } td { (feed.format) } td class="num" { (feed.entries) }
                            td { (when_opt(&feed.last_success_at)) }
                            td { @match &feed.last_error {
                                None if feed.last_attempt_at.is_none() => "not fetched yet",
                                None => "up",
                                Some(error) => { strong { "failing" } " (" (feed.failures) "): " (error) },
                            } }
                        } } }
                    } }
                }
            }
            section aria-labelledby="tiers-h" {
                h2 id="tiers-h" { "Tiers" }
                div class="scroll" { table id="tiers" {
                    thead { tr { th scope="col" { "Tier" } th scope="col" class="num" { "Per day" } th scope="col" class="num" { "Per month" }
                        th scope="col" class="num" { "Per second" } th scope="col" { "Blocklists" } } }
                    tbody { @for (name, tier) in &view.tiers { tr {
                        th scope="row" { (name) } td class="num" { (tier.lookups_per_day) } td class="num" { (tier.lookups_per_month) }
                        td class="num" { (tier.rate_per_sec) } td { (tier.blocklists.keys().cloned().collect::<Vec<_>>().join(", ")) }
                    } } }
                } }
            }
        },
    )
}
