//! The `palisade` command line: argument parsing ([`Cli`]) and, per subcommand, calling the
//! library and printing the outcome for a person (or as JSON with `--json`). Errors come back as
//! `anyhow` chains; `main` prints them as one `palisade: …` line and exits non-zero.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use palisade::agent::Agent;
use palisade::agent::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use palisade::agent::credentials::{Credentials, write_private};
use palisade::agent::push::push_spool;
use palisade::agent::signal::Observation;
use palisade::agent::state::{AgentState, last_push, record_push};
use palisade::agent::sync::{SyncOptions, sync};
use palisade::agent::watch::{self, Log};
use palisade::lookup::LookupClient;
use palisade::{Client, EnrollOutcome};
use serde_json::json;

/// Palisade agent and client: shares what this host sees, applies what everyone learned.
#[derive(Debug, Parser)]
#[command(name = "palisade", version)]
pub struct Cli {
    /// Agent configuration file.
    #[arg(long, global = true, env = "PALISADE_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this machine on a server (random id and password), log in, store the credentials.
    Register {
        /// Server base URL.
        #[arg(long, env = "PALISADE_AGENT_SERVER")]
        server: String,
        /// Replace existing credentials with a new machine.
        #[arg(long)]
        force: bool,
    },
    /// Attach this machine to an account with an enrollment key.
    Enroll {
        /// The enrollment key.
        key: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Tags (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Move the machine even if it is enrolled elsewhere.
        #[arg(long)]
        overwrite: bool,
    },
    /// Server reachability, login, spool, last push and pull, list sizes.
    Status,
    /// Report an attacker (for fail2ban and other tools): spooled, then pushed.
    Report {
        /// The attacker's address.
        ip: String,
        /// Scenario name, e.g. `crowdsecurity/ssh-bf`.
        #[arg(long)]
        scenario: String,
        /// Why, for a person.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Push the spooled signals now.
    Push,
    /// Pull the lists and apply them to the firewall.
    Sync {
        /// Print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Pull everything again and replace the firewall's content.
        #[arg(long)]
        full: bool,
    },
    /// Run the agent: follow logs, detect, ban, push, sync.
    Watch,
    /// Look an IP address up: reputation, scores, behaviours, blocklists, and why. Asks as this
    /// machine (its credentials and server) unless an API key is given.
    Lookup {
        /// IPv4 or IPv6 address.
        ip: String,
        /// Server base URL (default: the server this machine is registered with).
        #[arg(long, env = "PALISADE_AGENT_SERVER")]
        server: Option<String>,
        /// An API key to ask with instead of this machine's credentials.
        #[arg(long, env = "PALISADE_AGENT_API_KEY")]
        api_key: Option<String>,
    },
    /// CrowdSec integration.
    Crowdsec {
        #[command(subcommand)]
        command: CrowdsecCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CrowdsecCommand {
    /// Register a machine on a Palisade server and point CrowdSec's Central API at it.
    Connect {
        /// Server base URL.
        #[arg(long, env = "PALISADE_AGENT_SERVER")]
        server: String,
        /// CrowdSec's online API credentials file.
        #[arg(long, default_value = "/etc/crowdsec/online_api_credentials.yaml")]
        output: PathBuf,
    },
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        let json = self.json;
        match self.command {
            Command::Lookup { ip, server: Some(server), api_key: Some(api_key) } => {
                let found = LookupClient::new(&server, &api_key).lookup(&ip).await?;
                print_lookup(found, json)
            }
            Command::Crowdsec { command: CrowdsecCommand::Connect { server, output } } => {
                crowdsec_connect(&server, &output, json).await
            }
            command => {
                let (path, explicit) = match self.config {
                    Some(path) => (path, true),
                    None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
                };
                let config = AgentConfig::load(&path, explicit)?;
                match command {
                    Command::Register { server, force } => register(&config, &server, force, json).await,
                    Command::Enroll { key, name, tags, overwrite } => enroll(config, &key, &name, &tags, overwrite, json).await,
                    Command::Status => status(config, json).await,
                    Command::Report { ip, scenario, reason } => report(config, &ip, &scenario, reason, json).await,
                    Command::Push => push(config, json).await,
                    Command::Sync { dry_run, full } => run_sync(config, SyncOptions { dry_run, full }, json).await,
                    Command::Watch => run_watch(config).await,
                    Command::Lookup { ip, server, api_key } => lookup(config, &ip, server, api_key, json).await,
                    Command::Crowdsec { .. } => unreachable!("handled above"),
                }
            }
        }
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn with_slash(url: &str) -> String {
    let url = url.trim();
    if url.ends_with('/') { url.to_string() } else { format!("{url}/") }
}

async fn register(config: &AgentConfig, server: &str, force: bool, json: bool) -> anyhow::Result<()> {
    if let (Ok(existing), false) = (Credentials::load(&config.credentials), force) {
        bail!(
            "already registered as {} at {} (credentials in {}); pass --force to register a new machine",
            existing.machine_id,
            existing.server,
            config.credentials.display()
        );
    }
    let server = with_slash(server);
    let credentials = Credentials::generate(&server);
    let client = Client::new(&server)?;
    client.register_machine(&credentials.machine_id, &credentials.password).await.context("registering the machine")?;
    client.login_machine(&credentials.machine_id, &credentials.password, &[]).await.context("logging in")?;
    credentials.save(&config.credentials)?;
    if json {
        print_json(&json!({"machine_id": credentials.machine_id, "server": server, "credentials": config.credentials}))
    } else {
        println!("registered as {} at {server}", credentials.machine_id);
        println!("credentials stored in {} (mode 0600)", config.credentials.display());
        Ok(())
    }
}

async fn enroll(config: AgentConfig, key: &str, name: &str, tags: &[String], overwrite: bool, json: bool) -> anyhow::Result<()> {
    let agent = Agent::open(config)?;
    let outcome = agent.client.enroll_machine(key, name, tags, overwrite).await.context("enrolling")?;
    let enrolled = outcome == EnrollOutcome::Enrolled;
    if json {
        return print_json(&json!({"machine_id": agent.credentials.machine_id, "enrolled": enrolled}));
    }
    if enrolled {
        println!("{} is now enrolled", agent.credentials.machine_id);
    } else {
        println!("{} was already enrolled; nothing changed (use --overwrite to move it)", agent.credentials.machine_id);
    }
    Ok(())
}

async fn status(config: AgentConfig, json: bool) -> anyhow::Result<()> {
    let agent = Agent::open(config)?;
    let server = agent.credentials.server.clone();
    let health = match reqwest::Client::new().get(format!("{server}healthz")).timeout(Duration::from_secs(10)).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("answered {}", r.status())),
        Err(e) => Err(palisade::transport_sentence(&e)),
    };
    let login = if health.is_ok() {
        agent
            .client
            .login_machine(&agent.credentials.machine_id, &agent.credentials.password, &[])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else {
        Err("not tried: the server is unreachable".into())
    };
    let own = match &login {
        Ok(()) => agent.client.get_own_machine().await.map_err(|e| e.to_string()),
        Err(_) => Err("not logged in".to_string()),
    };
    let state = AgentState::load(&agent.config.state_file()).unwrap_or_default();
    let spooled = agent.spool.len()?;
    let rejected = agent.spool.rejected_len()?;
    let pushed = last_push(&agent.config.state_dir);
    let lists: Vec<_> =
        state.lists.iter().map(|(name, l)| json!({"name": name, "entries": l.entries.len(), "cursor": l.cursor})).collect();
    let applied = state.applied.as_ref().map(|a| a.len());
    // Printed in full either way; the exit status says whether this machine is connected.
    let verdict = match (&health, &login) {
        (Err(error), _) => Err(anyhow::anyhow!("the server at {server} is unreachable ({error})")),
        (Ok(()), Err(error)) => Err(anyhow::anyhow!("{} cannot log in to {server}: {error}", agent.credentials.machine_id)),
        (Ok(()), Ok(())) => Ok(()),
    };
    if json {
        print_json(&json!({
            "server": server, "reachable": health.is_ok(), "server_error": health.as_ref().err(),
            "machine_id": agent.credentials.machine_id, "login": login.is_ok(), "login_error": login.as_ref().err(),
            // Trust in words only: the server never shows a machine its number.
            "trust": own.as_ref().ok().map(|m| m.trust.clone()),
            "account": own.as_ref().ok().and_then(|m| m.account.clone()),
            "sensor": own.as_ref().ok().map(|m| m.sensor),
            "spooled": spooled, "rejected": rejected, "last_push": pushed, "last_pull": state.last_pull,
            "lists": lists, "backend": agent.backend.name(), "applied": applied,
            "protected": state.protected, "over_ceiling": state.over_ceiling,
        }))?;
        return verdict;
    }
    let or = |r: &Result<(), String>, ok: &str| r.as_ref().map_or_else(|e| format!("FAILED: {e}"), |()| ok.to_string());
    println!("server      {server}  {}", or(&health, "reachable"));
    println!("machine     {}  {}", agent.credentials.machine_id, or(&login, "login ok"));
    match &own {
        Ok(m) => println!(
            "trust       {}{}  account {}  {} signals sent",
            m.trust,
            if m.sensor { " (sensor)" } else { "" },
            m.account.as_deref().unwrap_or("none (not enrolled)"),
            m.signals
        ),
        Err(error) => println!("trust       unknown: {error}"),
    }
    println!(
        "spool       {spooled} signals waiting, {rejected} refused by the server (in {}/rejected)",
        agent.spool.dir().display()
    );
    println!("last push   {}", pushed.as_deref().unwrap_or("never"));
    println!("last pull   {}", state.last_pull.as_deref().unwrap_or("never"));
    if state.lists.is_empty() {
        println!("lists       none pulled yet");
    }
    for (name, list) in &state.lists {
        println!(
            "list        {name}: {} entries (cursor {})",
            list.entries.len(),
            list.cursor.map_or("-".into(), |c| c.to_string())
        );
    }
    match applied {
        Some(n) => println!(
            "applied     {n} entries ({}); {} left out as protected, {} over the ceiling",
            agent.backend.name(),
            state.protected,
            state.over_ceiling
        ),
        None => println!("applied     unknown (the next sync replaces the firewall's content)"),
    }
    verdict
}

async fn report(config: AgentConfig, ip: &str, scenario: &str, reason: Option<String>, json: bool) -> anyhow::Result<()> {
    let address: std::net::IpAddr = ip.trim().parse().with_context(|| format!("{ip:?} is not an IP address"))?;
    if scenario.trim().is_empty() {
        bail!("--scenario must not be empty");
    }
    let agent = Agent::open(config)?;
    let (allowlist, _) = agent.allowlist().await;
    let now = time::OffsetDateTime::now_utc();
    let message = reason.unwrap_or_else(|| format!("reported {address} for {scenario}"));
    let observation = Observation { ip: address, scenario: scenario.to_string(), message, first_seen: now, last_seen: now };
    let log: Log = Arc::new(|_: &str| {});
    if !watch::record(&agent, &allowlist, &observation, None, &log).await? {
        let why = allowlist.protects_ip(address).unwrap_or("protected");
        if json {
            return print_json(&json!({"spooled": false, "reason": why}));
        }
        println!("not reported: {address} is {why}");
        return Ok(());
    }
    let pushed = push_spool(&agent.client, &agent.spool, agent.config.push.batch_size).await;
    if pushed.is_ok() {
        drop(record_push(&agent.config.state_dir));
    }
    let pending = agent.spool.len()?;
    if json {
        let error = pushed.as_ref().err().map(|e| e.to_string());
        return print_json(&json!({"spooled": true, "pushed": pushed.is_ok(), "pending": pending, "error": error}));
    }
    match pushed {
        Ok(_) => println!("reported {address} ({scenario})"),
        Err(error) => println!("spooled {address} ({scenario}); {error}; {pending} signals wait for the next push"),
    }
    Ok(())
}

async fn push(config: AgentConfig, json: bool) -> anyhow::Result<()> {
    let agent = Agent::open(config)?;
    let report = push_spool(&agent.client, &agent.spool, agent.config.push.batch_size).await?;
    record_push(&agent.config.state_dir)?;
    if json {
        return print_json(&serde_json::to_value(&report)?);
    }
    println!(
        "pushed {} signals ({} new, {} already known); {} refused; {} waiting",
        report.delivered, report.accepted, report.duplicates, report.rejected, report.remaining
    );
    Ok(())
}

async fn run_sync(config: AgentConfig, options: SyncOptions, json: bool) -> anyhow::Result<()> {
    let agent = Agent::open(config)?;
    let (allowlist, warnings) = agent.allowlist().await;
    for warning in warnings {
        eprintln!("palisade: warning: {warning}");
    }
    let state_file = agent.config.state_file();
    let mut state = AgentState::load(&state_file)?;
    let progress = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new_spinner() };
    progress.enable_steady_tick(Duration::from_millis(120));
    let step = |message: &str| progress.set_message(message.to_string());
    let outcome = sync(&agent.client, &agent.backend, &allowlist, &agent.config.sync, &mut state, options, &step).await;
    progress.finish_and_clear();
    if !options.dry_run {
        state.save(&state_file)?;
    }
    let report = outcome?;
    if json {
        return print_json(&serde_json::to_value(&report)?);
    }
    for list in &report.lists {
        println!(
            "{}: {} pull, +{} -{}, {} entries, cursor {}",
            list.name,
            list.mode,
            list.added,
            list.removed,
            list.size,
            list.cursor.unwrap_or(0)
        );
    }
    if report.protected > 0 {
        println!("{} entries left out: they overlap protected addresses", report.protected);
    }
    if report.over_ceiling > 0 {
        println!(
            "{} entries left out: over the ceiling of {} (sync.max_entries)",
            report.over_ceiling, agent.config.sync.max_entries
        );
    }
    match &report.preview {
        Some(preview) => {
            println!(
                "dry run: would apply {} entries (+{} -{}) with {}:",
                report.wanted,
                report.add,
                report.remove,
                agent.backend.name()
            );
            print!("{preview}");
        }
        None => println!(
            "applied {} entries to {} (+{} -{}, {})",
            report.wanted,
            agent.backend.name(),
            report.add,
            report.remove,
            report.applied
        ),
    }
    Ok(())
}

async fn run_watch(config: AgentConfig) -> anyhow::Result<()> {
    let agent = Agent::open(config)?;
    let log: Log = Arc::new(|message: &str| eprintln!("palisade: {message}"));
    watch::run(agent, log).await
}

/// `palisade lookup` without both `--server` and `--api-key`: the missing half comes from this
/// machine's credentials, so a registered machine looks up with nothing more to type.
async fn lookup(
    config: AgentConfig,
    ip: &str,
    server: Option<String>,
    api_key: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let registered = Credentials::load(&config.credentials);
    let found = match (api_key, registered) {
        (Some(api_key), Ok(credentials)) => LookupClient::new(&server.unwrap_or(credentials.server), &api_key).lookup(ip).await?,
        (Some(_), Err(_)) => bail!(
            "--api-key needs --server (or PALISADE_AGENT_SERVER): this machine is not registered, so there is no server to default to"
        ),
        (None, Err(_)) => bail!(
            "this machine is not registered (no credentials in {}): run `palisade register --server URL`, or give \
             --server and --api-key",
            config.credentials.display()
        ),
        (None, Ok(_)) => {
            let agent = Agent::open(config)?;
            if let Some(server) = server.filter(|s| with_slash(s) != agent.credentials.server) {
                bail!(
                    "this machine is registered with {}, not {server}: its credentials only work there (give --api-key to ask another server)",
                    agent.credentials.server
                );
            }
            agent.client.get_ip(ip).await?
        }
    };
    print_lookup(found, json)
}

fn print_lookup(found: palisade::api::native::IpLookupResponse, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("{}  {} (confidence {})", found.ip, found.reputation, found.confidence);
    println!("  AS          {} {}", found.as_num.map_or("-".into(), |n| format!("AS{n}")), or_dash(found.as_name));
    println!("  country     {}", or_dash(found.country));
    println!("  seen        {} .. {}", or_dash(found.first_seen), or_dash(found.last_seen));
    println!("  reporters   {}   background noise {}", found.reporters, found.background_noise);
    let overall = found.scores.overall;
    println!(
        "  score       total {}/5 (aggressiveness {}, threat {}, trust {}, anomaly {})",
        overall.total, overall.aggressiveness, overall.threat, overall.trust, overall.anomaly
    );
    let list = |items: &[String]| if items.is_empty() { "-".to_string() } else { items.join(", ") };
    println!("  behaviours  {}", list(&found.behaviors));
    println!("  blocklists  {}", list(&found.blocklists));
    println!("  allowlisted {}", list(&found.false_positives));
    if let Some(rule) = found.explanation.rule {
        println!("  listed by   rule {rule}, until {}", or_dash(found.explanation.expires_at));
    }
    Ok(())
}

/// `online_api_credentials.yaml` for CrowdSec: exactly `url` (with its trailing slash), `login`
/// and `password`; CrowdSec 1.4.6 refuses any other key.
pub fn crowdsec_credentials_yaml(url: &str, login: &str, password: &str) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    format!("url: {}\nlogin: {}\npassword: {}\n", quote(&with_slash(url)), quote(login), quote(password))
}

async fn crowdsec_connect(server: &str, output: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let server = with_slash(server);
    let credentials = Credentials::generate(&server);
    let client = Client::new(&server)?;
    client.register_machine(&credentials.machine_id, &credentials.password).await.context("registering the machine")?;
    client.login_machine(&credentials.machine_id, &credentials.password, &[]).await.context("logging in")?;
    if output.exists() {
        let backup = output.with_extension("yaml.bak");
        std::fs::copy(output, &backup)
            .with_context(|| format!("keeping a copy of {} in {}", output.display(), backup.display()))?;
    }
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let yaml = crowdsec_credentials_yaml(&server, &credentials.machine_id, &credentials.password);
    write_private(output, yaml.as_bytes()).with_context(|| format!("writing {}", output.display()))?;
    if json {
        return print_json(&json!({"machine_id": credentials.machine_id, "server": server, "credentials": output}));
    }
    println!("registered {} at {server}", credentials.machine_id);
    println!("wrote {}; restart CrowdSec to use it", output.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowdsec_credentials_have_only_the_three_keys_and_a_trailing_slash() {
        let yaml = crowdsec_credentials_yaml("http://127.0.0.1:8080", "m1", "p\"w");
        assert_eq!(yaml, "url: \"http://127.0.0.1:8080/\"\nlogin: \"m1\"\npassword: \"p\\\"w\"\n");
    }
}
