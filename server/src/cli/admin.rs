//! `palisade-server admin …`: the operator's commands, run on the host against the configured
//! database through the same actions as the admin API ([`crate::manage`]), printed as tables
//! or JSON. Each command that changes something is written to the audit log once it succeeded,
//! as `cli:<host user>`, under the action name of the admin API route doing the same
//! ([`audited`]).

use std::io::Write;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::args::{
    AccountCommand, AdminCommand, AllowlistCommand, ApiKeyCommand, BlocklistCommand, CanaryCommand, EnrollKeyCommand,
    FeedCommand, MachineCommand, PoolCommand, SessionsCommand, TokenCommand,
};
use super::serve::open_existing_store;
use crate::auth::jwt::load_or_create_secret;
use crate::config::Config;
use crate::domain::lists::COMMUNITY;
use crate::manage;
use crate::store::Store;
use crate::use_case::UseCaseError;

/// Runs one `admin` command, and records it in the audit log when it changed something.
pub async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let audit = audited(&command);
    let shared = open_existing_store(config).await?;
    let created = run(config, &shared, command).await?;
    if let Some(Audited { action, target, detail }) = audit {
        let target = created.unwrap_or(target);
        let entry = manage::audit::cli_entry(&crate::config::os_user(), action, &target, detail);
        manage::audit::record(shared.as_ref(), entry).await;
    }
    Ok(())
}

/// What the audit log records of a command that changes something.
struct Audited {
    /// The admin API's operationId for the same action.
    action: &'static str,
    /// What it acts on.
    target: String,
    /// Its parameters (never a secret; [`manage::audit::sanitize`] applies anyway).
    detail: Map<String, Value>,
}

/// The audit record of `command`, `None` for a command that only reads. One arm per command,
/// without a catch-all: a new command must say here whether and how it is recorded.
fn audited(command: &AdminCommand) -> Option<Audited> {
    fn entry(action: &'static str, target: &str, detail: Value) -> Option<Audited> {
        let detail = match detail {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        Some(Audited { action, target: target.to_string(), detail })
    }
    let none = Value::Null;
    match command {
        AdminCommand::Token(TokenCommand::Create) => entry("create_admin_token", "", none),
        AdminCommand::Token(TokenCommand::List(_)) => None,
        AdminCommand::Token(TokenCommand::Revoke { prefix }) => entry("revoke_admin_token", prefix, none),
        AdminCommand::Account(command) => match command {
            AccountCommand::Create { name } => entry("create_account", name, json!({ "name": name })),
            AccountCommand::List(_) => None,
            AccountCommand::Level { name, level } => entry("set_account_level", name, json!({ "level": level })),
            AccountCommand::Tier { name, tier } => entry("set_account_tier", name, json!({ "tier": tier })),
            AccountCommand::LoginLink { name } => entry("create_login_link", name, none),
            AccountCommand::Delete { name, detach_machines, delete_machines } => {
                let machines = if *delete_machines {
                    "delete"
                } else if *detach_machines {
                    "detach"
                } else {
                    "refuse"
                };
                entry("delete_account", name, json!({ "machines": machines }))
            }
        },
        AdminCommand::ApiKey(command) => match command {
            ApiKeyCommand::Create { account, tier } => entry("create_api_key_admin", account, json!({ "tier": tier })),
            ApiKeyCommand::List { .. } => None,
            ApiKeyCommand::Revoke { prefix } => entry("revoke_api_key_admin", prefix, none),
        },
        AdminCommand::EnrollKey(command) => match command {
            EnrollKeyCommand::Create { account } => entry("create_enroll_key", account, none),
            EnrollKeyCommand::List { .. } => None,
            EnrollKeyCommand::Revoke { prefix } => entry("revoke_enroll_key", prefix, none),
        },
        AdminCommand::Machine(command) => match command {
            MachineCommand::Add { name, sensor, .. } => entry("create_machine", name, json!({ "sensor": sensor })),
            MachineCommand::List(_) | MachineCommand::Trust { .. } => None,
            MachineCommand::Sensor { name, off } => entry("set_machine_sensor", name, json!({ "sensor": !off })),
            MachineCommand::Disable { name } => entry("set_machine_disabled", name, json!({ "disabled": true })),
            MachineCommand::Enable { name } => entry("set_machine_disabled", name, json!({ "disabled": false })),
            MachineCommand::Delete { name } => entry("delete_machine", name, none),
            MachineCommand::ResetPassword { name } => entry("reset_machine_password", name, none),
        },
        AdminCommand::Canary(command) => match command {
            CanaryCommand::Add { value, note } => entry("create_canary", value, json!({ "note": note })),
            CanaryCommand::Remove { value } => entry("delete_canary", value, none),
            CanaryCommand::List(_) => None,
        },
        AdminCommand::Allowlist(command) => match command {
            AllowlistCommand::Import { file, source, category } => {
                entry("import_allowlist", source, json!({ "category": category, "file": file.display().to_string() }))
            }
            AllowlistCommand::Remove { value, source } => entry(
                "delete_allowlist",
                value.as_deref().or(source.as_deref()).unwrap_or_default(),
                json!({ "value": value, "source": source }),
            ),
            AllowlistCommand::List(_) => None,
        },
        AdminCommand::FalsePositive { value } => entry("report_false_positive", value, none),
        AdminCommand::Delist { value, hold } => entry("create_delisting", value, json!({ "hold": hold })),
        AdminCommand::Audit { .. } | AdminCommand::Explain { .. } => None,
        AdminCommand::Blocklist(command) => match command {
            BlocklistCommand::Create { name, kind, description, visibility } => {
                entry("create_custom_list", name, json!({ "kind": kind, "description": description, "visibility": visibility }))
            }
            BlocklistCommand::Visibility { name, visibility } => {
                entry("update_custom_list", name, json!({ "visibility": visibility }))
            }
            BlocklistCommand::List(_) => None,
            BlocklistCommand::Add { name, value, expires, remediation } => {
                entry("update_list_entries", name, json!({ "add": [value], "expires": expires, "remediation": remediation }))
            }
            BlocklistCommand::Remove { name, value } => entry("update_list_entries", name, json!({ "remove": [value] })),
            BlocklistCommand::Import { name, file } => {
                entry("import_list_entries", name, json!({ "file": file.display().to_string() }))
            }
            BlocklistCommand::Delete { name } => entry("delete_custom_list", name, none),
            BlocklistCommand::Subscribe { name, machine, off } => {
                entry(if *off { "unsubscribe_machine" } else { "subscribe_machine" }, &format!("{name}/{machine}"), none)
            }
        },
        AdminCommand::Feed(command) => match command {
            FeedCommand::Add { name, url, format, every, visibility, .. } => {
                entry("create_feed", name, json!({ "url": url, "format": format, "every": every, "visibility": visibility }))
            }
            FeedCommand::List(_) => None,
            FeedCommand::Refresh { name, force } => entry("refresh_feed", name, json!({ "force": force })),
            FeedCommand::Remove { name } => entry("delete_feed", name, none),
        },
        AdminCommand::Sessions(SessionsCommand::RevokeAll) => entry("end_all_sessions", "", none),
        AdminCommand::Pool(command) => match command {
            PoolCommand::Show { .. } => None,
            PoolCommand::Set { account, enable, disable, min_machines, duration, remediation, allow, deny } => entry(
                "update_account_pool",
                account,
                json!({
                    "enable": enable, "disable": disable, "min_machines": min_machines, "duration": duration,
                    "remediation": remediation, "allow": allow, "deny": deny,
                }),
            ),
            PoolCommand::Reset { account } => entry("reset_account_pool", account, none),
            PoolCommand::Share { account, partner } => entry("share_account_pool", &format!("{account}/{partner}"), none),
            PoolCommand::Unshare { account, partner } => entry("unshare_account_pool", &format!("{account}/{partner}"), none),
        },
    }
}

/// Runs one `admin` command against the store; what it created, when the audit log should name
/// that rather than the command's argument (a new admin token's visible prefix).
async fn run(config: &Config, shared: &std::sync::Arc<dyn Store>, command: AdminCommand) -> anyhow::Result<Option<String>> {
    let store = shared.as_ref();
    match command {
        AdminCommand::Token(TokenCommand::Create) => {
            let token = manage::create_admin_token(store).await?;
            println!("{token}");
            eprintln!("use it as: Authorization: Bearer {token}   (it is shown only once)");
            return Ok(Some(crate::auth::secrets::visible_prefix(&token)));
        }
        AdminCommand::Token(TokenCommand::List(flag)) => {
            let tokens = manage::list_admin_tokens(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                println!("{:<14} {:<26} {:<26} REVOKED", "PREFIX", "CREATED", "LAST USED");
                for t in tokens {
                    let last = t.last_used_at.unwrap_or_else(|| "-".into());
                    let revoked = t.revoked_at.unwrap_or_else(|| "-".into());
                    println!("{:<14} {:<26} {:<26} {revoked}", t.prefix, t.created_at, last);
                }
            }
        }
        AdminCommand::Token(TokenCommand::Revoke { prefix }) => {
            manage::revoke_admin_token(store, &prefix).await?;
            announce_revocation(config).await;
            println!("admin token {prefix} revoked; the operator's console sessions are ended");
        }
        AdminCommand::Sessions(SessionsCommand::RevokeAll) => {
            manage::end_all_sessions(store).await?;
            announce_revocation(config).await;
            println!("every console session is ended");
        }
        AdminCommand::Machine(MachineCommand::Disable { name }) => {
            manage::set_machine_disabled(store, &name, true).await?;
            announce_revocation(config).await;
            println!("machine {name} is disabled");
        }
        AdminCommand::Machine(MachineCommand::Enable { name }) => {
            manage::set_machine_disabled(store, &name, false).await?;
            announce_revocation(config).await;
            println!("machine {name} is enabled; it must log in again");
        }
        AdminCommand::Machine(MachineCommand::Delete { name }) => {
            manage::delete_machine(store, &name).await?;
            announce_revocation(config).await;
            println!("machine {name} is deleted");
        }
        AdminCommand::Machine(MachineCommand::ResetPassword { name }) => {
            let credentials = manage::reset_machine_password(store, &name).await?;
            announce_revocation(config).await;
            println!("machine_id: {}", credentials.machine_id);
            println!("password: {}", credentials.password);
            eprintln!("the old password and the machine's tokens no longer work (the new password is shown only once)");
        }
        AdminCommand::Account(AccountCommand::Create { name }) => {
            let account = manage::create_account(store, &name).await?;
            println!("account {} created", account.name);
        }
        AdminCommand::Account(AccountCommand::List(flag)) => {
            let accounts: Vec<_> = store.list_accounts().await?.iter().map(manage::account_view).collect();
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&accounts)?);
            } else {
                println!("{:<32} {:<12} {:>8}  CREATED", "NAME", "LEVEL", "MACHINES");
                for a in accounts {
                    println!("{:<32} {:<12} {:>8}  {}", a.name, a.level, a.machines, a.created_at);
                }
            }
        }
        AdminCommand::Account(AccountCommand::LoginLink { name }) => {
            let secret = load_or_create_secret(config.auth.jwt_secret.as_ref(), &config.data_dir)?;
            let key = crate::auth::jwt::console_key(&secret);
            let link = manage::login_link(store, &key, &config.public_url()?, &name).await?;
            println!("{}", link.url);
            eprintln!("valid until {} for account {}", link.expires_at, link.account);
        }
        AdminCommand::Account(AccountCommand::Delete { name, detach_machines, delete_machines }) => {
            let machines = if delete_machines {
                manage::AttachedMachines::Delete
            } else if detach_machines {
                manage::AttachedMachines::Detach
            } else {
                manage::AttachedMachines::Refuse
            };
            let deleted = match manage::delete_account(store, &name, machines).await {
                Err(UseCaseError::Conflict(_)) => anyhow::bail!(
                    "account {name} still has machines; add --detach-machines to keep them without an account, or --delete-machines to delete them too"
                ),
                other => other?,
            };
            announce_revocation(config).await;
            println!(
                "account {} deleted: {} API keys and {} enrollment keys removed, its console sessions ended",
                deleted.account, deleted.api_keys, deleted.enroll_keys
            );
            if !deleted.machines_detached.is_empty() {
                println!("machines detached (now without an account): {}", deleted.machines_detached.join(", "));
            }
            if !deleted.machines_deleted.is_empty() {
                println!("machines deleted: {}", deleted.machines_deleted.join(", "));
            }
        }
        AdminCommand::Account(AccountCommand::Tier { name, tier }) => {
            manage::set_account_tier(store, &config.tiers, &name, &tier).await?;
            println!("account {name} is now on tier {tier}");
        }
        AdminCommand::ApiKey(ApiKeyCommand::Create { account, tier }) => {
            if let Some(tier) = tier {
                manage::set_account_tier(store, &config.tiers, &account, &tier).await?;
            }
            let created = manage::create_api_key(store, &account).await?;
            println!("{}", created.key);
            eprintln!(
                "API key {} for account {} (tier {}); send it as x-api-key (it is shown only once)",
                created.prefix, created.account, created.tier
            );
        }
        AdminCommand::ApiKey(ApiKeyCommand::List { account, json }) => {
            let keys = manage::list_api_keys(store, account.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<14} {:<24} {:<12} {:<26} {:<26} REVOKED", "PREFIX", "ACCOUNT", "TIER", "CREATED", "LAST USED");
                for k in keys {
                    let last = k.last_used_at.unwrap_or_else(|| "-".into());
                    let revoked = k.revoked_at.unwrap_or_else(|| "-".into());
                    println!("{:<14} {:<24} {:<12} {:<26} {:<26} {revoked}", k.prefix, k.account, k.tier, k.created_at, last);
                }
            }
        }
        AdminCommand::ApiKey(ApiKeyCommand::Revoke { prefix }) => {
            manage::revoke_api_key(store, &prefix, None).await?;
            announce_revocation(config).await;
            println!("API key {prefix} revoked");
        }
        AdminCommand::Account(AccountCommand::Level { name, level }) => {
            manage::set_account_level(store, &name, &level).await?;
            println!("account {name} is now {level}");
        }
        AdminCommand::Machine(MachineCommand::Sensor { name, off }) => {
            manage::set_sensor(store, &name, !off).await?;
            println!("machine {name} is {}", if off { "no longer a sensor" } else { "now a sensor" });
        }
        AdminCommand::Machine(MachineCommand::Trust { name }) => {
            let trust = manage::machine_trust(store, &config.consensus.params, &name).await?;
            println!("{}", serde_json::to_string_pretty(&trust)?);
        }
        AdminCommand::Canary(CanaryCommand::Add { value, note }) => {
            let canary = manage::add_canary(store, &value, &note).await?;
            println!("canary {} added", canary.value);
        }
        AdminCommand::Canary(CanaryCommand::Remove { value }) => {
            manage::remove_canary(store, &value).await?;
            println!("canary {value} removed");
        }
        AdminCommand::Canary(CanaryCommand::List(flag)) => {
            let canaries = manage::list_canaries(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&canaries)?);
            } else {
                for c in canaries {
                    println!("{:<40} {}  {}", c.value, c.created_at, c.note);
                }
            }
        }
        AdminCommand::Allowlist(AllowlistCommand::Import { file, source, category }) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let request = palisade_api::native::AllowlistImportRequest { source, category, text };
            let outcome = manage::import_allowlist(store, &request).await?;
            println!("{} ranges found, {} new", outcome.found, outcome.added);
        }
        AdminCommand::Allowlist(AllowlistCommand::Remove { value, source }) => {
            let removed = manage::remove_allowlist(store, value.as_deref(), source.as_deref()).await?;
            println!("{removed} entries removed");
        }
        AdminCommand::Allowlist(AllowlistCommand::List(flag)) => {
            let entries = manage::list_allowlist(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                for e in entries {
                    println!("{:<43} {:<14} {}", e.value, e.category, e.source);
                }
            }
        }
        AdminCommand::FalsePositive { value } => {
            let queued = manage::report_false_positive(store, &value).await?;
            println!("{}", queued.message);
        }
        AdminCommand::Delist { value, hold } => {
            let queued = manage::delist(store, &value, hold.as_deref()).await.map_err(sentence)?;
            println!("{}", queued.message);
        }
        AdminCommand::Audit { since, action, actor, before, limit, json } => {
            let page =
                manage::audit::list_audit(store, before, actor, action, since.as_deref(), Some(limit)).await.map_err(sentence)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page.items)?);
            } else {
                println!(
                    "{:<27} {:<22} {:<24} {:<28} {:<6} {:<16} DETAIL",
                    "AT", "ACTOR", "ACTION", "TARGET", "STATUS", "CLIENT"
                );
                for e in page.items {
                    let status = e.status.map_or_else(|| "-".to_string(), |s| s.to_string());
                    let detail =
                        if e.detail.as_object().is_some_and(|o| o.is_empty()) { String::new() } else { e.detail.to_string() };
                    println!(
                        "{:<27} {:<22} {:<24} {:<28} {:<6} {:<16} {detail}",
                        e.at,
                        e.actor,
                        e.action,
                        if e.target.is_empty() { "-" } else { &e.target },
                        status,
                        e.client.as_deref().unwrap_or("-")
                    );
                }
                if let Some(before) = page.next_before {
                    eprintln!("older entries: --before {before}");
                }
            }
        }
        AdminCommand::Blocklist(command) => blocklist(config, store, command).await?,
        AdminCommand::Pool(command) => pool(config, store, command).await.map_err(sentence)?,
        AdminCommand::Feed(command) => feed(config, shared, command).await?,
        AdminCommand::Explain { ip } => {
            let explanation = manage::explain(store, &config.consensus.params, &ip, true).await?;
            println!("{}", serde_json::to_string_pretty(&explanation)?);
        }
        AdminCommand::EnrollKey(EnrollKeyCommand::List { account, json }) => {
            let keys = manage::list_enroll_keys(store, account.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<10} {:<24} {:<26} {:>5} {:<26} REVOKED", "PREFIX", "ACCOUNT", "CREATED", "USES", "LAST USED");
                for k in keys {
                    let last = k.last_used_at.unwrap_or_else(|| "-".into());
                    let revoked = k.revoked_at.unwrap_or_else(|| "-".into());
                    println!("{:<10} {:<24} {:<26} {:>5} {:<26} {revoked}", k.prefix, k.account, k.created_at, k.uses, last);
                }
            }
        }
        AdminCommand::EnrollKey(EnrollKeyCommand::Revoke { prefix }) => {
            manage::revoke_enroll_key(store, &prefix).await?;
            println!("enrollment key {prefix} revoked; it enrolls nothing from now on");
        }
        AdminCommand::EnrollKey(EnrollKeyCommand::Create { account }) => {
            let created = manage::create_enroll_key(store, &account).await?;
            println!("{}", created.key);
            eprintln!("enroll with: cscli console enroll {0}   or   palisade enroll {0}   (shown only once)", created.key);
        }
        AdminCommand::Machine(MachineCommand::Add { name, sensor, crowdsec_credentials, url }) => {
            let credentials = manage::add_machine(store, &name, sensor).await?;
            match crowdsec_credentials {
                Some(path) => {
                    let url = match url {
                        Some(url) if url.ends_with('/') => url,
                        Some(url) => format!("{url}/"),
                        None => config.public_url()?,
                    };
                    write_private(&path, &manage::crowdsec_credentials_yaml(&url, &credentials))?;
                    println!("machine {} created; CrowdSec credentials written to {}", credentials.machine_id, path.display());
                }
                None => {
                    println!("machine_id: {}", credentials.machine_id);
                    println!("password: {}", credentials.password);
                }
            }
        }
        AdminCommand::Machine(MachineCommand::List(flag)) => {
            let machines: Vec<_> = store.list_machines().await?.iter().map(manage::machine_view).collect();
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&machines)?);
            } else {
                println!("{:<50} {:<16} {:<7} {:>5} {:>8}  LAST LOGIN", "MACHINE", "ACCOUNT", "SENSOR", "TRUST", "SIGNALS");
                for m in machines {
                    println!(
                        "{:<50} {:<16} {:<7} {:>5.2} {:>8}  {}",
                        m.machine_id,
                        m.account.as_deref().unwrap_or("-"),
                        if m.sensor { "yes" } else { "no" },
                        m.trust,
                        m.signals,
                        m.last_login_at.as_deref().unwrap_or("never")
                    );
                }
            }
        }
    }
    Ok(None)
}

/// `admin pool …`: the actions of `/v1/admin/accounts/{name}/pool`. The consensus worker of a
/// running server picks a policy change up at its next refresh (seconds).
async fn pool(config: &Config, store: &dyn Store, command: PoolCommand) -> Result<(), UseCaseError> {
    use crate::manage::pools;
    let default = &config.pools;
    let (view, json) = match command {
        PoolCommand::Show { account, json } => (pools::pool_view(store, default, &account).await?, json),
        PoolCommand::Set { account, enable, disable, min_machines, duration, remediation, allow, deny } => {
            let duration_secs = duration
                .as_deref()
                .map(manage::lists::parse_lifetime)
                .transpose()
                .map_err(|m| UseCaseError::invalid("duration", m))?;
            let request = palisade_api::native::PoolPolicyRequest {
                enabled: (enable || disable).then_some(enable),
                min_machines,
                duration_secs,
                remediation,
                allow: (!allow.is_empty()).then_some(allow),
                deny: (!deny.is_empty()).then_some(deny),
            };
            (pools::set_pool_policy(store, default, &account, &request).await?, false)
        }
        PoolCommand::Reset { account } => (pools::reset_pool_policy(store, default, &account).await?, false),
        PoolCommand::Share { account, partner } => {
            (pools::set_pool_share(store, default, &account, &partner, true).await?, false)
        }
        PoolCommand::Unshare { account, partner } => {
            (pools::set_pool_share(store, default, &account, &partner, false).await?, false)
        }
    };
    let view = palisade_api::native::PoolView { entries: store.list_entries(&view.list).await?.len(), ..view };
    if json {
        println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
        return Ok(());
    }
    let policy = &view.policy;
    println!("account:        {}", view.account);
    println!("list:           {} ({} entries)", view.list, view.entries);
    println!(
        "policy:         {}{}",
        if policy.enabled { "enabled" } else { "disabled" },
        if view.own_policy { " (its own)" } else { " (the server's default)" }
    );
    println!("min machines:   {}", policy.min_machines);
    println!("duration:       {} s", policy.duration_secs);
    println!("remediation:    {}", policy.remediation);
    println!("allow:          {}", policy.allow.join(" "));
    println!("deny:           {}", if policy.deny.is_empty() { "-".to_string() } else { policy.deny.join(" ") });
    println!("shared with:    {}", if view.shared_with.is_empty() { "-".to_string() } else { view.shared_with.join(", ") });
    println!("received from:  {}", if view.received_from.is_empty() { "-".to_string() } else { view.received_from.join(", ") });
    Ok(())
}

/// Tells the running replicas that the revocation list changed (through Redis when configured;
/// otherwise, or when Redis does not answer, they see it within a second).
async fn announce_revocation(config: &Config) {
    let Some(url) = &config.redis_url else { return };
    match crate::bus::ChangeBus::connect(url.expose()).await {
        Ok(bus) => bus.announce(crate::revocation::CHANNEL).await,
        Err(error) => eprintln!("warning: cannot reach Redis ({error}); running servers apply the revocation within a second"),
    }
}

/// `admin blocklist …`: the actions of `/v1/admin/blocklists`, then a change notification to the
/// running replicas (through Redis when configured; otherwise they see it at their next poll).
async fn blocklist(config: &Config, store: &dyn Store, command: BlocklistCommand) -> anyhow::Result<()> {
    let changed = blocklist_action(store, command).await.map_err(sentence)?;
    if changed {
        announce_list_change(config, store).await;
    }
    Ok(())
}

/// A use case's failure as the command prints it: an invalid value by its field's own message
/// (the error's own text says only that something is invalid).
fn sentence(error: UseCaseError) -> anyhow::Error {
    match error {
        UseCaseError::Invalid { field, message } => anyhow::anyhow!("{field}: {message}"),
        other => anyhow::Error::new(other),
    }
}

/// Tells the running replicas that a list changed (through Redis when configured; otherwise they
/// see it at their next poll).
async fn announce_list_change(config: &Config, store: &dyn Store) {
    let Some(url) = &config.redis_url else { return };
    match crate::bus::ChangeBus::connect(url.expose()).await {
        Ok(bus) => bus.publish(store.list_seq(COMMUNITY).await.unwrap_or(0)).await,
        Err(error) => eprintln!("warning: cannot reach Redis ({error}); running servers apply the change at their next poll"),
    }
}

/// `admin feed …`: the actions of `/v1/admin/feeds`, then a change notification to the running
/// replicas when entries changed (as for `admin blocklist`).
async fn feed(config: &Config, shared: &std::sync::Arc<dyn Store>, command: FeedCommand) -> anyhow::Result<()> {
    let store = shared.as_ref();
    let changed = feed_action(config, shared, command).await.map_err(sentence)?;
    if changed {
        announce_list_change(config, store).await;
    }
    Ok(())
}

/// One `admin feed` action; whether it changed what is served.
async fn feed_action(config: &Config, shared: &std::sync::Arc<dyn Store>, command: FeedCommand) -> Result<bool, UseCaseError> {
    let store = shared.as_ref();
    use crate::manage::feeds;
    use crate::manage::lists::parse_lifetime;
    Ok(match command {
        FeedCommand::Add {
            name,
            url,
            format,
            every,
            api_key_file,
            visibility,
            description,
            max_bytes,
            max_entries,
            min_count,
            lifetime,
        } => {
            let every_secs = parse_lifetime(&every).map_err(|m| UseCaseError::invalid("every", m))?;
            let lifetime_secs =
                lifetime.as_deref().map(parse_lifetime).transpose().map_err(|m| UseCaseError::invalid("lifetime", m))?;
            let api_key = match api_key_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| UseCaseError::BadRequest(format!("cannot read {}: {e}", path.display())))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            let request = palisade_api::native::CreateFeedRequest {
                name,
                url,
                format: Some(format),
                description,
                visibility: Some(visibility),
                every_secs: Some(every_secs),
                api_key,
                max_bytes,
                max_entries,
                min_count,
                lifetime_secs,
            };
            let view = feeds::create_feed(store, request).await?;
            println!(
                "feed {} added ({}, every {}s, {}); the running server fetches it within a minute",
                view.name, view.format, view.every_secs, view.visibility
            );
            true
        }
        FeedCommand::List(flag) => {
            let views = feeds::list_feeds(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&views).map_err(|e| UseCaseError::Internal(e.into()))?);
            } else {
                println!(
                    "{:<24} {:<9} {:>9} {:<4} {:<26} {:<26} URL / LAST ERROR",
                    "NAME", "FORMAT", "ENTRIES", "UP", "LAST ATTEMPT", "LAST SUCCESS"
                );
                for v in views {
                    println!(
                        "{:<24} {:<9} {:>9} {:<4} {:<26} {:<26} {}",
                        v.name,
                        v.format,
                        v.entries,
                        if v.up { "yes" } else { "no" },
                        v.last_attempt_at.as_deref().unwrap_or("never"),
                        v.last_success_at.as_deref().unwrap_or("never"),
                        v.url
                    );
                    if let Some(error) = &v.last_error {
                        println!("{:<24} error ({} failed attempts): {error}", "", v.failures);
                    }
                }
            }
            false
        }
        FeedCommand::Refresh { name, force } => {
            let runner = crate::feeds::Feeds::new(shared.clone(), config.consensus.own_addresses.clone());
            let outcome = feeds::refresh_feed(&runner, &name, force).await?;
            match outcome.outcome.as_str() {
                "loaded" => println!(
                    "feed {name} loaded: {} added, {} renewed, {} removed, {} dropped as never-block, rejected lines: {}; {} entries",
                    outcome.added, outcome.renewed, outcome.removed, outcome.never_block, outcome.rejected, outcome.feed.entries
                ),
                "not_modified" => {
                    println!("feed {name} is unchanged (the source answered 304); {} entries", outcome.feed.entries)
                }
                "busy" => println!("feed {name} is being refreshed by a server right now"),
                // A failure exits non-zero, so scripts and timers notice it.
                _ => {
                    return Err(UseCaseError::BadRequest(format!(
                        "feed {name} failed: {}; the last good copy ({} entries) stands",
                        outcome.feed.last_error.as_deref().unwrap_or("unknown error"),
                        outcome.feed.entries
                    )));
                }
            }
            for reason in &outcome.reasons {
                eprintln!("rejected {reason}");
            }
            outcome.added + outcome.renewed + outcome.removed > 0
        }
        FeedCommand::Remove { name } => {
            feeds::delete_feed(store, &name).await?;
            println!("feed {name} and its list removed");
            true
        }
    })
}

/// One `admin blocklist` action; whether it changed what is served.
async fn blocklist_action(store: &dyn Store, command: BlocklistCommand) -> Result<bool, UseCaseError> {
    use palisade_api::native::{CreateListRequest, ListEntriesRequest, ListEntriesResponse};

    use crate::manage::lists;
    fn report(outcome: &ListEntriesResponse) {
        println!("{} added, {} removed, {} rejected", outcome.added, outcome.removed, outcome.rejected.len());
        for rejected in &outcome.rejected {
            eprintln!("rejected {}: {}", rejected.field, rejected.message);
        }
    }
    Ok(match command {
        BlocklistCommand::Create { name, kind, description, visibility } => {
            let request = CreateListRequest { name, kind: Some(kind), description, visibility: Some(visibility) };
            let view = lists::create_list(store, request).await?;
            println!("{} list {} created ({})", view.kind, view.name, view.visibility);
            true
        }
        BlocklistCommand::Visibility { name, visibility } => {
            let request = palisade_api::native::UpdateListRequest { visibility: Some(visibility) };
            let view = lists::update_list(store, &name, request).await?;
            println!("list {} is now {}", view.name, view.visibility);
            true
        }
        BlocklistCommand::List(flag) => {
            let views = lists::list_lists(store).await?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for view in views {
                    println!("{:<32} {:<6} {:<26} {}", view.name, view.kind, view.created_at, view.description);
                }
            }
            false
        }
        BlocklistCommand::Add { name, value, expires, remediation } => {
            let duration_secs =
                expires.as_deref().map(lists::parse_lifetime).transpose().map_err(|m| UseCaseError::invalid("expires", m))?;
            let request = ListEntriesRequest { add: vec![value], remove: Vec::new(), remediation, duration_secs };
            let outcome = lists::update_entries(store, &name, &request).await?;
            report(&outcome);
            if !outcome.rejected.is_empty() {
                return Err(UseCaseError::BadRequest("nothing was added".into()));
            }
            true
        }
        BlocklistCommand::Remove { name, value } => {
            let request = ListEntriesRequest { add: Vec::new(), remove: vec![value], remediation: None, duration_secs: None };
            let outcome = lists::update_entries(store, &name, &request).await?;
            report(&outcome);
            if !outcome.rejected.is_empty() {
                return Err(UseCaseError::BadRequest("nothing was removed".into()));
            }
            true
        }
        BlocklistCommand::Import { name, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| UseCaseError::BadRequest(format!("cannot read {}: {e}", file.display())))?;
            let outcome = lists::import_entries(store, &name, &text).await?;
            report(&outcome);
            true
        }
        BlocklistCommand::Delete { name } => {
            lists::delete_list(store, &name).await?;
            println!("list {name} deleted");
            true
        }
        BlocklistCommand::Subscribe { name, machine, off } => {
            lists::existing_list(store, &name).await?;
            lists::set_subscription(store, &name, &machine, !off).await?;
            println!("{machine} {} {name}", if off { "unsubscribed from" } else { "subscribed to" });
            false
        }
    })
}

/// Writes a file readable by its owner only, also when it already existed with a looser mode
/// (Debian's crowdsec package leaves `online_api_credentials.yaml` world-readable).
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    // The mode above applies only when the file is created; tighten an existing one before the
    // secret goes in.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
