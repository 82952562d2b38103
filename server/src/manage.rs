//! Operator actions shared by the admin API, the console and the `palisade-server admin` CLI, so
//! all do exactly the same thing: accounts (and deleting them), enrollment keys (listing,
//! revoking), operator-created machines (and disabling, deleting, resetting them), admin tokens,
//! console sessions, API keys, canaries, allowlists, false positives and delistings,
//! explanations, and the views of them. A use case: it
//! works through the [`Store`] and the pure core, knows neither HTTP nor SQL, and fails with a
//! [`UseCaseError`] each front end turns into its own answer. Operator lists are in `lists`,
//! account pools (policies and shares) in `pools`, the audit log of these actions in `audit`.

pub mod audit;
pub mod feeds;
pub mod lists;
pub mod pools;

use std::collections::HashMap;

use ipnet::IpNet;
use palisade_api::native::{
    AccountDeletedResponse, AccountView, AdminTokenView, AllowlistEntryView, AllowlistImportRequest, AllowlistImportResponse,
    CanaryView, EnrollKeyCreated, EnrollKeyView, ExplanationResponse, MachineCredentials, MachineTrustView, MachineView,
    QueuedResponse, SignalView,
};
use time::OffsetDateTime;

use crate::auth::password;
use crate::auth::secrets::{hash_secret, new_admin_token, new_enroll_key, random_alnum, visible_prefix};
use crate::domain::allowlist::parse_ranges;
use crate::domain::lists::COMMUNITY;
use crate::domain::names::check_name;
use crate::domain::net::{display_target, parse_address, parse_network};
use crate::domain::time::rfc3339;
use crate::engine::Engine;
use crate::engine::explain::summarize;
use crate::engine::params::Params;
use crate::engine::trust::{Level, MachineState};
use crate::store::{
    Account, AccountStore, ConsensusStore, CreatedBy, EnrollKeyRecord, ListStore, Machine, MachineKey, MachineStore, NewMachine,
    RequestKind, Revocation, RevocationKind, RevocationStore, Store, StoreError, StoredSignal,
};
use crate::use_case::UseCaseError;

/// Creates an admin token and returns it (shown once; only its hash is stored).
pub async fn create_admin_token(store: &dyn AccountStore) -> Result<String, UseCaseError> {
    let token = new_admin_token();
    store.create_admin_token(&hash_secret(&token), &visible_prefix(&token), OffsetDateTime::now_utc()).await?;
    Ok(token)
}

/// Creates an account.
pub async fn create_account(store: &dyn AccountStore, name: &str) -> Result<AccountView, UseCaseError> {
    check_name(name, 64).map_err(|m| UseCaseError::invalid("name", m))?;
    match store.create_account(name, OffsetDateTime::now_utc()).await {
        Err(crate::store::StoreError::Conflict(_)) => {
            return Err(UseCaseError::Conflict(format!("account {name:?} already exists")));
        }
        other => other?,
    };
    let account = store.account_by_name(name).await?.ok_or_else(|| UseCaseError::NotFound(format!("account {name:?}")))?;
    Ok(account_view(&account))
}

/// Creates an enrollment key for an account (shown once; only its hash is stored).
pub async fn create_enroll_key(store: &dyn AccountStore, account: &str) -> Result<EnrollKeyCreated, UseCaseError> {
    let not_found = || UseCaseError::NotFound(format!("no account named {account:?}"));
    // A name that breaks the naming rules cannot exist; it is not worth a query.
    if check_name(account, 64).is_err() {
        return Err(not_found());
    }
    let found = store.account_by_name(account).await?.ok_or_else(not_found)?;
    let key = new_enroll_key();
    let prefix = visible_prefix(&key);
    store.create_enroll_key(found.key, &hash_secret(&key), &prefix, OffsetDateTime::now_utc()).await?;
    Ok(EnrollKeyCreated { key, prefix, account: found.name })
}

/// The operator's view of an enrollment key.
pub fn enroll_key_view(key: &EnrollKeyRecord) -> EnrollKeyView {
    EnrollKeyView {
        prefix: key.prefix.clone(),
        account: key.account_name.clone(),
        created_at: rfc3339(key.created_at),
        uses: key.uses,
        last_used_at: key.last_used_at.map(rfc3339),
        revoked_at: key.revoked_at.map(rfc3339),
    }
}

/// Lists enrollment keys, oldest first: one account's, or every key (never the keys themselves).
pub async fn list_enroll_keys(store: &dyn AccountStore, account: Option<&str>) -> Result<Vec<EnrollKeyView>, UseCaseError> {
    let account = match account {
        Some(name) => Some(account_named(store, name).await?.key),
        None => None,
    };
    Ok(store.list_enroll_keys(account).await?.iter().map(enroll_key_view).collect())
}

/// Revokes the live enrollment key with this prefix: from now on it enrolls nothing (each
/// enrollment reads the key from the store, so every replica refuses it at once). `NotFound`
/// when there is no such live key.
pub async fn revoke_enroll_key(store: &dyn AccountStore, prefix: &str) -> Result<(), UseCaseError> {
    if store.revoke_enroll_key(None, prefix, OffsetDateTime::now_utc()).await? {
        Ok(())
    } else {
        Err(UseCaseError::NotFound(format!("no live enrollment key with prefix {prefix:?}")))
    }
}

/// What to do with the machines attached to an account being deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachedMachines {
    /// Refuse to delete an account that still has machines (`Conflict`).
    #[default]
    Refuse,
    /// Keep them, without an account.
    Detach,
    /// Delete them too (disabled for good, as `delete_machine`).
    Delete,
}

impl AttachedMachines {
    /// Parses `detach` or `delete` (the query parameter and the CLI flag).
    pub fn parse(text: &str) -> Result<AttachedMachines, UseCaseError> {
        match text {
            "detach" => Ok(AttachedMachines::Detach),
            "delete" => Ok(AttachedMachines::Delete),
            _ => Err(UseCaseError::invalid("machines", "must be detach or delete")),
        }
    }
}

/// Deletes an account. With machines still attached it is refused unless `machines` says to
/// detach them (they stay, without an account) or delete them. Its API keys and enrollment keys
/// are deleted and refused at once, its console sessions ended, its lookup usage, pool policy
/// and pool shares removed (see [`RevocationStore::delete_account`]); its name is free again.
/// The caller announces the revocation to the replicas.
pub async fn delete_account(
    store: &dyn Store,
    name: &str,
    machines: AttachedMachines,
) -> Result<AccountDeletedResponse, UseCaseError> {
    let account = account_named(store, name).await?;
    let attached: Vec<String> =
        store.list_machines().await?.into_iter().filter(|m| m.account == Some(account.key)).map(|m| m.machine_id).collect();
    if !attached.is_empty() && machines == AttachedMachines::Refuse {
        return Err(UseCaseError::Conflict(format!(
            "account {name:?} still has {} machine(s) ({}); delete it with machines=detach to keep them without an account, or machines=delete to delete them too",
            attached.len(),
            attached.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let mut deleted = Vec::new();
    if machines == AttachedMachines::Delete {
        for login in &attached {
            match store.delete_machine(login, OffsetDateTime::now_utc()).await {
                Ok(_) => deleted.push(login.clone()),
                // Deleted meanwhile: nothing left to do for it.
                Err(StoreError::NotFound(_)) => {}
                Err(other) => return Err(other.into()),
            }
        }
    }
    let outcome = store.delete_account(account.key, OffsetDateTime::now_utc()).await.map_err(|e| match e {
        StoreError::NotFound(_) => UseCaseError::NotFound(format!("no account named {name:?}")),
        other => other.into(),
    })?;
    let detached = if machines == AttachedMachines::Delete { Vec::new() } else { attached };
    Ok(AccountDeletedResponse {
        account: account.name,
        machines_detached: detached,
        machines_deleted: deleted,
        api_keys: outcome.api_keys,
        enroll_keys: outcome.enroll_keys,
    })
}

/// Creates a machine as the operator, with a generated 64-character password (shown once).
pub async fn add_machine(store: &dyn MachineStore, name: &str, sensor: bool) -> Result<MachineCredentials, UseCaseError> {
    check_name(name, 128).map_err(|m| UseCaseError::invalid("name", m))?;
    let password = random_alnum(64);
    let password_hash = password::hash(password.clone()).await.map_err(|e| UseCaseError::Internal(e.into()))?;
    let machine = NewMachine {
        machine_id: name.to_string(),
        password_hash,
        sensor,
        created_by: CreatedBy::Operator,
        created_at: OffsetDateTime::now_utc(),
    };
    match store.create_machine(&machine).await {
        Err(crate::store::StoreError::Conflict(_)) => Err(UseCaseError::Conflict(format!("machine {name:?} already exists"))),
        other => other.map(|_| MachineCredentials { machine_id: name.to_string(), password }).map_err(Into::into),
    }
}

/// The `NotFound` of a machine login.
fn no_machine(login: &str) -> UseCaseError {
    UseCaseError::NotFound(format!("no machine {login:?}"))
}

/// A login that breaks the naming rules cannot exist: `NotFound` without a query.
fn existing_login(login: &str) -> Result<(), UseCaseError> {
    check_name(login, 128).map(|_| ()).map_err(|_| no_machine(login))
}

/// Maps a store's `NotFound` about a machine to the use case's sentence.
fn machine_error(login: &str) -> impl Fn(StoreError) -> UseCaseError + '_ {
    move |error| match error {
        StoreError::NotFound(_) => no_machine(login),
        other => other.into(),
    }
}

/// Disables a machine (its login and every token it holds are refused) or enables it again
/// (the tokens it held stay refused; it logs in anew). `NotFound` for an unknown or deleted login.
pub async fn set_machine_disabled(store: &dyn RevocationStore, login: &str, disabled: bool) -> Result<(), UseCaseError> {
    existing_login(login)?;
    store.set_machine_disabled(login, disabled, OffsetDateTime::now_utc()).await.map_err(machine_error(login))?;
    Ok(())
}

/// Deletes a machine: disabled for good and gone from listings; its signals stay as evidence
/// and its login stays taken. `NotFound` for an unknown or deleted login.
pub async fn delete_machine(store: &dyn RevocationStore, login: &str) -> Result<(), UseCaseError> {
    existing_login(login)?;
    store.delete_machine(login, OffsetDateTime::now_utc()).await.map_err(machine_error(login))?;
    Ok(())
}

/// Gives a machine a new random password (returned once; only its hash is stored) and revokes
/// the tokens it holds. `NotFound` for an unknown or deleted login.
pub async fn reset_machine_password(store: &dyn RevocationStore, login: &str) -> Result<MachineCredentials, UseCaseError> {
    existing_login(login)?;
    let password = random_alnum(64);
    let password_hash = password::hash(password.clone()).await.map_err(|e| UseCaseError::Internal(e.into()))?;
    store.set_machine_password(login, &password_hash, OffsetDateTime::now_utc()).await.map_err(machine_error(login))?;
    Ok(MachineCredentials { machine_id: login.to_string(), password })
}

/// Every admin token (prefix, creation, last use, revocation), oldest first.
pub async fn list_admin_tokens(store: &dyn RevocationStore) -> Result<Vec<AdminTokenView>, UseCaseError> {
    Ok(store
        .list_admin_tokens()
        .await?
        .into_iter()
        .map(|t| AdminTokenView {
            prefix: t.prefix,
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        })
        .collect())
}

/// Revokes the live admin token with this prefix, and ends the operator's console sessions.
pub async fn revoke_admin_token(store: &dyn RevocationStore, prefix: &str) -> Result<(), UseCaseError> {
    if store.revoke_admin_token(prefix, OffsetDateTime::now_utc()).await? {
        Ok(())
    } else {
        Err(UseCaseError::NotFound(format!("no live admin token with prefix {prefix:?}")))
    }
}

/// Ends one console session (by its nonce): its cookie is refused from now on.
pub async fn end_session(store: &dyn RevocationStore, nonce: &str) -> Result<(), UseCaseError> {
    let revocation = Revocation { kind: RevocationKind::Session, subject: nonce.to_string(), at: OffsetDateTime::now_utc() };
    Ok(store.add_revocation(&revocation).await?)
}

/// Ends every console session, the operator's and every account's.
pub async fn end_all_sessions(store: &dyn RevocationStore) -> Result<(), UseCaseError> {
    let revocation = Revocation { kind: RevocationKind::Sessions, subject: "*".into(), at: OffsetDateTime::now_utc() };
    Ok(store.add_revocation(&revocation).await?)
}

/// The text of a CrowdSec `online_api_credentials.yaml` for these credentials. Only `url`,
/// `login` and `password`: CrowdSec 1.4.6 refuses to start on any other key.
pub fn crowdsec_credentials_yaml(url: &str, credentials: &MachineCredentials) -> String {
    format!("url: {url}\nlogin: {}\npassword: {}\n", credentials.machine_id, credentials.password)
}

/// The operator's view of a machine, read with its signals counted (a listing, or a lookup
/// followed by [`crate::store::MachineStore::machine_signal_count`]).
pub fn machine_view(machine: &Machine) -> MachineView {
    MachineView {
        machine_id: machine.machine_id.clone(),
        name: machine.display_name.clone(),
        account: machine.account_name.clone(),
        sensor: machine.sensor,
        created_by: machine.created_by.as_str().to_owned(),
        trust: machine.trust,
        scenarios: machine.scenarios.clone(),
        origin_prefix: machine.origin_prefix.clone(),
        version: machine.version.clone(),
        signals: machine.signal_count.unwrap_or_default(),
        created_at: rfc3339(machine.created_at),
        last_login_at: machine.last_login_at.map(rfc3339),
        disabled_at: machine.disabled_at.map(rfc3339),
    }
}

/// The operator's view of an account.
pub fn account_view(account: &Account) -> AccountView {
    AccountView {
        name: account.name.clone(),
        level: account.level.as_str().into(),
        machines: account.machine_count,
        created_at: rfc3339(account.created_at),
    }
}

/// The operator's view of a signal.
pub fn signal_view(signal: &StoredSignal) -> SignalView {
    SignalView {
        id: signal.id,
        machine_id: signal.machine_id.clone(),
        agent: signal.agent.clone(),
        scope: signal.scope.as_str().into(),
        value: signal.value.clone(),
        scenario: signal.scenario.clone(),
        scenario_trust: signal.scenario_trust.clone(),
        start_at: rfc3339(signal.start_at),
        stop_at: rfc3339(signal.stop_at),
        received_at: rfc3339(signal.received_at),
        origin_prefix: signal.origin_prefix.to_string(),
        as_number: signal.enrichment.as_number,
        as_name: signal.enrichment.as_name.clone(),
        country: signal.enrichment.country.clone(),
    }
}

/// Marks or unmarks a machine as one of the operator's sensors.
pub async fn set_sensor(store: &dyn MachineStore, machine_id: &str, sensor: bool) -> Result<(), UseCaseError> {
    store.set_machine_sensor(machine_id, sensor).await.map_err(|e| match e {
        crate::store::StoreError::NotFound(_) => UseCaseError::NotFound(format!("no machine named {machine_id:?}")),
        other => other.into(),
    })
}

/// Sets an account's verification level.
pub async fn set_account_level(store: &dyn AccountStore, account: &str, level: &str) -> Result<(), UseCaseError> {
    let Some(level) = Level::parse(level) else {
        return Err(UseCaseError::invalid("level", "must be one of anonymous, email, verified, paid, partner"));
    };
    store.set_account_level(account, level).await.map_err(|e| match e {
        crate::store::StoreError::NotFound(_) => UseCaseError::NotFound(format!("no account named {account:?}")),
        other => other.into(),
    })
}

/// Parses an address or CIDR given by the operator in `field` into its canonical network.
fn network(field: &str, value: &str) -> Result<IpNet, UseCaseError> {
    parse_network(value).map_err(|message| UseCaseError::invalid(field, message))
}

/// Adds a canary.
pub async fn add_canary(store: &dyn ListStore, value: &str, note: &str) -> Result<CanaryView, UseCaseError> {
    let net = network("value", value)?;
    let value = display_target(net);
    if note.len() > 256 {
        return Err(UseCaseError::invalid("note", "at most 256 bytes"));
    }
    let now = OffsetDateTime::now_utc();
    match store.add_canary(&value, note, now).await {
        Err(crate::store::StoreError::Conflict(_)) => Err(UseCaseError::Conflict(format!("{value} is already a canary"))),
        other => other.map(|()| CanaryView { value, note: note.to_string(), created_at: rfc3339(now) }).map_err(Into::into),
    }
}

/// Removes a canary.
pub async fn remove_canary(store: &dyn ListStore, value: &str) -> Result<(), UseCaseError> {
    let value = display_target(network("value", value)?);
    if store.remove_canary(&value).await? { Ok(()) } else { Err(UseCaseError::NotFound(format!("{value} is not a canary"))) }
}

/// Every canary.
pub async fn list_canaries(store: &dyn ListStore) -> Result<Vec<CanaryView>, UseCaseError> {
    Ok(store
        .list_canaries()
        .await?
        .into_iter()
        .map(|c| CanaryView { value: c.value, note: c.note, created_at: rfc3339(c.created_at) })
        .collect())
}

const CATEGORIES: &[&str] = &["cdn", "crawler", "resolver", "infrastructure", "custom"];

/// Imports never-block ranges from a provider file's text.
pub async fn import_allowlist(
    store: &dyn ListStore,
    request: &AllowlistImportRequest,
) -> Result<AllowlistImportResponse, UseCaseError> {
    check_name(&request.source, 64).map_err(|m| UseCaseError::invalid("source", m))?;
    if !CATEGORIES.contains(&request.category.as_str()) {
        return Err(UseCaseError::invalid("category", format!("must be one of {}", CATEGORIES.join(", "))));
    }
    let ranges = parse_ranges(&request.text).map_err(|e| UseCaseError::invalid("text", e.to_string()))?;
    let values: Vec<String> = ranges.into_iter().map(display_target).collect();
    let added = store.add_allowlist(&values, &request.category, &request.source, OffsetDateTime::now_utc()).await?;
    Ok(AllowlistImportResponse { found: values.len() as u64, added: added as u64 })
}

/// Every never-block range.
pub async fn list_allowlist(store: &dyn ListStore) -> Result<Vec<AllowlistEntryView>, UseCaseError> {
    Ok(store
        .list_allowlist()
        .await?
        .into_iter()
        .map(|a| AllowlistEntryView { value: a.value, category: a.category, source: a.source, created_at: rfc3339(a.created_at) })
        .collect())
}

/// Removes never-block ranges by value and/or source; returns how many.
pub async fn remove_allowlist(store: &dyn ListStore, value: Option<&str>, source: Option<&str>) -> Result<usize, UseCaseError> {
    if value.is_none() && source.is_none() {
        return Err(UseCaseError::BadRequest("give a value, a source, or both".into()));
    }
    let value = value.map(|v| network("value", v).map(display_target)).transpose()?;
    let removed = store.remove_allowlist(value.as_deref(), source).await?;
    if removed == 0 {
        return Err(UseCaseError::NotFound("no matching allowlist entry".into()));
    }
    Ok(removed)
}

/// Queues an upheld false-positive report for the consensus leader.
pub async fn report_false_positive(store: &dyn ConsensusStore, value: &str) -> Result<QueuedResponse, UseCaseError> {
    let target = Engine::key(network("value", value)?);
    let id = store.queue_consensus_request(RequestKind::FalsePositive, target, None, OffsetDateTime::now_utc()).await?;
    Ok(QueuedResponse {
        id,
        message: format!(
            "{}: at the next consensus step it is delisted if listed, its supporters are penalised, and only a sensor can list it again for a while",
            display_target(target)
        ),
    })
}

/// The longest hold of an operator delisting.
const MAX_HOLD_SECS: i64 = 365 * 86_400;

/// Queues an operator delisting for the consensus leader: the address or range leaves the
/// community list, the reports made so far no longer count towards listing it again, and no
/// reporter is penalised (unlike [`report_false_positive`]). With `hold` (a duration: seconds,
/// or `90m`, `7d`…) nothing lists it until the hold ends, not even a sensor.
pub async fn delist(store: &dyn ConsensusStore, value: &str, hold: Option<&str>) -> Result<QueuedResponse, UseCaseError> {
    let target = Engine::key(network("value", value)?);
    let now = OffsetDateTime::now_utc();
    let hold_secs = hold.map(lists::parse_lifetime).transpose().map_err(|m| UseCaseError::invalid("hold", m))?;
    if let Some(secs) = hold_secs
        && !(1..=MAX_HOLD_SECS).contains(&secs)
    {
        return Err(UseCaseError::invalid("hold", "must be between 1 second and 365 days"));
    }
    let hold_until = hold_secs.map(|secs| now + time::Duration::seconds(secs));
    let id = store.queue_consensus_request(RequestKind::Delist, target, hold_until, now).await?;
    let shown = display_target(target);
    let message = match hold_until {
        Some(until) => format!(
            "{shown}: at the next consensus step it is delisted if listed, and nothing lists it again before {}; no reporter is penalised",
            rfc3339(until)
        ),
        None => format!(
            "{shown}: at the next consensus step it is delisted if listed, and only reports made after that can list it again; no reporter is penalised"
        ),
    };
    Ok(QueuedResponse { id, message })
}

/// A machine's trust and the evidence behind it.
pub async fn machine_trust(store: &dyn Store, params: &Params, machine_id: &str) -> Result<MachineTrustView, UseCaseError> {
    let machine =
        store.machine_by_login(machine_id).await?.ok_or_else(|| UseCaseError::NotFound(format!("no machine {machine_id:?}")))?;
    let level = match &machine.account_name {
        Some(name) => store.account_by_name(name).await?.map(|a| a.level).unwrap_or_default(),
        None => Level::Anonymous,
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let state = match store.engine_machine(machine.key).await? {
        Some(state) => state,
        None => MachineState::new(machine.account.map(|a| a.0), level, machine.sensor, machine.created_at.unix_timestamp()),
    };
    let (good, bad) = state.evidence(now, params);
    Ok(MachineTrustView {
        machine_id: machine.machine_id,
        trust: state.trust(now, params),
        visible_trust: state.visible_trust(now, params),
        good_evidence: good,
        bad_evidence: bad,
        leads: state.leads,
        age_ramp: state.age_ramp(now, params),
        level: level.as_str().into(),
        sensor: machine.sensor,
        zeroed_at: state.zeroed_at.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()).map(rfc3339),
    })
}

/// Explains an address from the stored consensus state. `admin` adds the reporting machines.
pub async fn explain(store: &dyn Store, params: &Params, ip: &str, admin: bool) -> Result<ExplanationResponse, UseCaseError> {
    let addr = parse_address(ip).map_err(UseCaseError::BadRequest)?;
    let target = Engine::key(IpNet::from(addr));
    let shown = display_target(target);
    let entry = store.list_entry(COMMUNITY, target).await?;
    let state = store.engine_target(target).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (summary, supporters) = match &state {
        Some(state) => {
            // Only the reporters' machines: the cost follows the target's reporters, never the
            // number of machines registered.
            let keys: Vec<MachineKey> = state.reporters.iter().map(|r| MachineKey(r.machine)).collect();
            let machines = store.machines_by_keys(&keys).await?;
            let accounts: HashMap<i64, Option<i64>> = machines.iter().map(|m| (m.key.0, m.account.map(|a| a.0))).collect();
            // Outside the admin view, a voiding is not visible before the reporter's penalty is.
            let public = if admin { std::borrow::Cow::Borrowed(state) } else { state.public_at(now) };
            let summary = summarize(&public, |m| accounts.get(&m).copied().flatten(), now, params.evidence_window_secs);
            let supporters = if admin {
                let logins: HashMap<i64, String> = machines.into_iter().map(|m| (m.key.0, m.machine_id)).collect();
                Some(state.reporters.iter().filter_map(|r| logins.get(&r.machine).cloned()).collect())
            } else {
                None
            };
            (Some(summary), supporters)
        }
        None => (None, admin.then(Vec::new)),
    };
    // Outside the admin view, details exist only for listed targets: evidence about unlisted ones
    // would let a reporter tune a poisoning attempt.
    let summary = summary.filter(|_| admin || entry.is_some());
    let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).ok().map(rfc3339);
    Ok(ExplanationResponse {
        ip: addr.to_string(),
        target: shown,
        listed: entry.is_some(),
        rule: entry.as_ref().map(|e| e.rule.as_str().into()),
        remediation: entry.as_ref().map(|e| e.remediation.as_str().into()),
        clusters: summary.as_ref().map_or(0, |s| s.clusters as u64),
        ases: summary.as_ref().map_or(0, |s| s.ases as u64),
        scenarios: summary.as_ref().map(|s| s.scenarios.clone()).unwrap_or_default(),
        first_seen: summary.as_ref().and_then(|s| at(s.first_seen)),
        last_seen: summary.as_ref().and_then(|s| at(s.last_seen)),
        listed_at: entry.as_ref().map(|e| rfc3339(e.listed_at)),
        expires_at: entry.as_ref().map(|e| rfc3339(e.expires_at)),
        supporters,
    })
}

/// Prefix of API keys, so they are recognisable in a leak scan.
pub const API_KEY_PREFIX: &str = "pal_";

/// A new API key (`pal_` + 8 identifying + 40 secret characters) and its visible prefix.
fn new_api_key() -> (String, String) {
    let id = random_alnum(8);
    (format!("{API_KEY_PREFIX}{id}{}", random_alnum(40)), format!("{API_KEY_PREFIX}{id}"))
}

/// The view of a stored API key.
pub fn api_key_view(key: &crate::store::ApiKeyRecord) -> palisade_api::native::ApiKeyView {
    palisade_api::native::ApiKeyView {
        prefix: key.prefix.clone(),
        account: key.account_name.clone(),
        tier: key.tier.clone(),
        created_at: rfc3339(key.created_at),
        revoked_at: key.revoked_at.map(rfc3339),
        last_used_at: key.last_used_at.map(rfc3339),
    }
}

async fn account_named(store: &dyn AccountStore, account: &str) -> Result<Account, UseCaseError> {
    let not_found = || UseCaseError::NotFound(format!("no account named {account:?}"));
    if check_name(account, 64).is_err() {
        return Err(not_found());
    }
    store.account_by_name(account).await?.ok_or_else(not_found)
}

/// Creates an API key for an account (shown once; only its hash is stored).
pub async fn create_api_key(
    store: &dyn AccountStore,
    account: &str,
) -> Result<palisade_api::native::ApiKeyCreated, UseCaseError> {
    let found = account_named(store, account).await?;
    let (key, prefix) = new_api_key();
    store.create_api_key(found.key, &hash_secret(&key), &prefix, OffsetDateTime::now_utc()).await?;
    let tier = store.api_key_by_hash(&hash_secret(&key)).await?.map(|k| k.tier).unwrap_or_default();
    Ok(palisade_api::native::ApiKeyCreated { key, prefix, account: found.name, tier })
}

/// Lists API keys: one account's, or every key.
pub async fn list_api_keys(
    store: &dyn AccountStore,
    account: Option<&str>,
) -> Result<Vec<palisade_api::native::ApiKeyView>, UseCaseError> {
    let account = match account {
        Some(name) => Some(account_named(store, name).await?.key),
        None => None,
    };
    Ok(store.list_api_keys(account).await?.iter().map(api_key_view).collect())
}

/// Revokes a key by prefix (only within `account` when given); 404 when there is no such live key.
pub async fn revoke_api_key(store: &dyn Store, prefix: &str, account: Option<&str>) -> Result<(), UseCaseError> {
    let account = match account {
        Some(name) => Some(account_named(store, name).await?.key),
        None => None,
    };
    let now = OffsetDateTime::now_utc();
    if store.revoke_api_key(prefix, account, now).await? {
        // On the list too, so every replica forgets the keys it has cached at once.
        store.add_revocation(&Revocation { kind: RevocationKind::ApiKey, subject: prefix.to_string(), at: now }).await?;
        Ok(())
    } else {
        Err(UseCaseError::NotFound(format!("no live API key with prefix {prefix:?}")))
    }
}

/// Sets an account's tier, which must be configured.
pub async fn set_account_tier(
    store: &dyn AccountStore,
    tiers: &std::collections::BTreeMap<String, crate::limits::Tier>,
    account: &str,
    tier: &str,
) -> Result<(), UseCaseError> {
    if !tiers.contains_key(tier) {
        let known: Vec<&str> = tiers.keys().map(String::as_str).collect();
        return Err(UseCaseError::invalid("tier", format!("unknown tier {tier:?}; configured: {}", known.join(", "))));
    }
    match store.set_account_tier(account, tier).await {
        Err(crate::store::StoreError::NotFound(_)) => Err(UseCaseError::NotFound(format!("no account named {account:?}"))),
        other => Ok(other?),
    }
}

/// A console sign-in link for an account's users, valid for
/// [`crate::auth::session::LINK_TTL_SECS`]. `public_url` ends in `/`.
pub async fn login_link(
    store: &dyn AccountStore,
    console_key: &[u8; 32],
    public_url: &str,
    account: &str,
) -> Result<palisade_api::native::LoginLinkResponse, UseCaseError> {
    let found = account_named(store, account).await?;
    let now = OffsetDateTime::now_utc();
    let keys = crate::auth::session::Keys::new(console_key);
    let token = keys.issue_link(found.key.0, &found.name, now.unix_timestamp(), &random_alnum(16));
    let expires_at = now + time::Duration::seconds(crate::auth::session::LINK_TTL_SECS);
    Ok(palisade_api::native::LoginLinkResponse {
        url: format!("{public_url}console/login/link?token={token}"),
        account: found.name,
        expires_at: rfc3339(expires_at),
    })
}
