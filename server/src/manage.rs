//! Operator actions shared by the admin API and the `palisade-server admin` CLI, so both do
//! exactly the same thing: accounts, enrollment keys, operator-created machines, admin tokens,
//! and the views of them.

use palisade_api::native::{AccountView, EnrollKeyCreated, MachineCredentials, MachineView, SignalView};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::password;
use crate::auth::secrets::{hash_secret, new_admin_token, new_enroll_key, random_alnum, visible_prefix};
use crate::domain::names::check_name;
use crate::error::ApiError;
use crate::store::{Account, CreatedBy, Machine, NewMachine, Store, StoredSignal};

/// RFC 3339 text of a time.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Creates an admin token and returns it (shown once; only its hash is stored).
pub async fn create_admin_token(store: &dyn Store) -> Result<String, ApiError> {
    let token = new_admin_token();
    store.create_admin_token(&hash_secret(&token), &visible_prefix(&token), OffsetDateTime::now_utc()).await?;
    Ok(token)
}

/// Creates an account.
pub async fn create_account(store: &dyn Store, name: &str) -> Result<AccountView, ApiError> {
    check_name(name, 64).map_err(|m| ApiError::field("name", m))?;
    match store.create_account(name, OffsetDateTime::now_utc()).await {
        Err(crate::store::StoreError::Conflict(_)) => return Err(ApiError::Conflict(format!("account {name:?} already exists"))),
        other => other?,
    };
    let account = store.account_by_name(name).await?.ok_or_else(|| ApiError::NotFound(format!("account {name:?}")))?;
    Ok(account_view(&account))
}

/// Creates an enrollment key for an account (shown once; only its hash is stored).
pub async fn create_enroll_key(store: &dyn Store, account: &str) -> Result<EnrollKeyCreated, ApiError> {
    let not_found = || ApiError::NotFound(format!("no account named {account:?}"));
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

/// Creates a machine as the operator, with a generated 64-character password (shown once).
pub async fn add_machine(store: &dyn Store, name: &str, sensor: bool) -> Result<MachineCredentials, ApiError> {
    check_name(name, 128).map_err(|m| ApiError::field("name", m))?;
    let password = random_alnum(64);
    let password_hash = password::hash(password.clone()).await.map_err(|e| ApiError::Internal(e.into()))?;
    let machine = NewMachine {
        machine_id: name.to_string(),
        password_hash,
        sensor,
        created_by: CreatedBy::Operator,
        created_at: OffsetDateTime::now_utc(),
    };
    match store.create_machine(&machine).await {
        Err(crate::store::StoreError::Conflict(_)) => Err(ApiError::Conflict(format!("machine {name:?} already exists"))),
        other => other.map(|_| MachineCredentials { machine_id: name.to_string(), password }).map_err(Into::into),
    }
}

/// The text of a CrowdSec `online_api_credentials.yaml` for these credentials. Only `url`,
/// `login` and `password`: CrowdSec 1.4.6 refuses to start on any other key.
pub fn crowdsec_credentials_yaml(url: &str, credentials: &MachineCredentials) -> String {
    format!("url: {url}\nlogin: {}\npassword: {}\n", credentials.machine_id, credentials.password)
}

/// The operator's view of a machine.
pub fn machine_view(machine: &Machine) -> MachineView {
    MachineView {
        machine_id: machine.machine_id.clone(),
        name: machine.display_name.clone(),
        account: machine.account_name.clone(),
        sensor: machine.sensor,
        created_by: machine.created_by.clone(),
        trust: machine.trust,
        scenarios: machine.scenarios.clone(),
        origin_prefix: machine.origin_prefix.clone(),
        version: machine.version.clone(),
        signals: machine.signal_count,
        created_at: rfc3339(machine.created_at),
        last_login_at: machine.last_login_at.map(rfc3339),
    }
}

/// The operator's view of an account.
pub fn account_view(account: &Account) -> AccountView {
    AccountView {
        name: account.name.clone(),
        level: account.level.clone(),
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
        origin_prefix: signal.origin_prefix.clone(),
        as_number: signal.enrichment.as_number,
        as_name: signal.enrichment.as_name.clone(),
        country: signal.enrichment.country.clone(),
    }
}
