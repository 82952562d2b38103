//! The command line: subcommands and their arguments, as clap parses them. Nothing runs here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Palisade server: a community IP-reputation network that speaks CrowdSec's protocol.
#[derive(Debug, Parser)]
#[command(name = "palisade-server", version)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "PALISADE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, generated JWT key). Default `./palisade-data`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on. Default 127.0.0.1:8470.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// URL machines reach this server at (credentials files, links). Needed when listening
        /// on 0.0.0.0 or [::]. Default http://<listen>/.
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Operator commands, run on the host against the configured database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Admin tokens for `/v1/admin/*`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// API keys for the IP lookup.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Enrollment keys.
    #[command(subcommand, name = "enroll-key")]
    EnrollKey(EnrollKeyCommand),
    /// Machines.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Canaries: addresses you control that never send traffic; reporting one zeroes the reporter.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Never-block ranges (CDN egress, crawlers, resolvers, your infrastructure).
    #[command(subcommand)]
    Allowlist(AllowlistCommand),
    /// Uphold a false-positive report: delist the address and penalise its supporters.
    FalsePositive {
        /// The listed address or range.
        value: String,
    },
    /// Delist an address or range without penalising its reporters: it leaves the community list
    /// at the next consensus step and only reports made after that can list it again.
    Delist {
        /// The address or range.
        value: String,
        /// Keep it off the list, whoever reports it (sensors too), this long: seconds, or 90m, 12h, 7d.
        #[arg(long = "for", value_name = "DURATION")]
        hold: Option<String>,
    },
    /// Read the audit log, newest first: every admin mutation, by whom, from where.
    Audit {
        /// Only entries since: an RFC 3339 time or a duration back from now (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only this action (the admin API's operationId, e.g. delete_machine).
        #[arg(long)]
        action: Option<String>,
        /// Only this actor (token:<prefix> or cli:<user>).
        #[arg(long)]
        actor: Option<String>,
        /// Only entries older than this id (the next page: the id printed after a full page).
        #[arg(long)]
        before: Option<i64>,
        /// How many entries (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain an address: rule, clusters, ASes, scenarios, and the machines that reported it.
    Explain {
        /// IPv4 or IPv6 address.
        ip: String,
    },
    /// Operator-managed block lists and allowlists (the same actions as /v1/admin/blocklists).
    #[command(subcommand)]
    Blocklist(BlocklistCommand),
    /// External feeds: block lists refreshed from a URL (the same actions as /v1/admin/feeds).
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Web console sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Account pools: what an account's own machines report, listed for all of them at once.
    #[command(subcommand)]
    Pool(PoolCommand),
}

/// `admin pool …`
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Show an account's pool: its policy, size and shares.
    Show {
        /// Account name.
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give an account its own pool policy (options left out keep their current value).
    Set {
        /// Account name.
        account: String,
        /// Turn the pool on.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Turn the pool off (its entries are removed).
        #[arg(long)]
        disable: bool,
        /// Distinct machines of the account that must report an address.
        #[arg(long)]
        min_machines: Option<u32>,
        /// How long a listing lasts after the last report: seconds, or 90m, 4h, 7d.
        #[arg(long)]
        duration: Option<String>,
        /// ban or captcha.
        #[arg(long)]
        remediation: Option<String>,
        /// A scenario pattern that counts (`*` wildcard); repeat for several. Replaces the list.
        #[arg(long)]
        allow: Vec<String>,
        /// A scenario pattern that never counts; repeat for several. Replaces the list.
        #[arg(long)]
        deny: Vec<String>,
    },
    /// Return an account's pool to the server's default policy ([pools] in the configuration).
    Reset {
        /// Account name.
        account: String,
    },
    /// Share an account's pool, read-only, with another account.
    Share {
        /// The account whose pool it is.
        account: String,
        /// The account that receives it.
        partner: String,
    },
    /// End a share.
    Unshare {
        /// The account whose pool it is.
        account: String,
        /// The account that received it.
        partner: String,
    },
}

/// `admin sessions …`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End every console session, the operator's and every account's, on every replica.
    #[command(name = "revoke-all")]
    RevokeAll,
}

/// `admin feed …`
#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per run; boxing would only obscure the clap derive")]
pub enum FeedCommand {
    /// Subscribe the server to an external list: a block list of its own, refreshed on a schedule.
    Add {
        /// List name: lowercase letters, digits, '-', '_', '.'.
        name: String,
        /// http:// or https:// URL of the list.
        url: String,
        /// plain, csv, netset (FireHOL), spamhaus (DROP/EDROP), ipsum, palisade or auto.
        #[arg(long, default_value = "auto")]
        format: String,
        /// Refresh interval: seconds, or with s, m, h or d (5m to 7d).
        #[arg(long, default_value = "1h")]
        every: String,
        /// A file holding the API key sent as x-api-key (another Palisade's lists).
        #[arg(long)]
        api_key_file: Option<PathBuf>,
        /// Who may read it: public, subscribers (machines subscribed to it) or operator.
        #[arg(long, default_value = "subscribers")]
        visibility: String,
        /// What the list is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Largest body accepted, in bytes (default 32 MiB).
        #[arg(long)]
        max_bytes: Option<i64>,
        /// Most entries accepted (default 1,000,000).
        #[arg(long)]
        max_entries: Option<i64>,
        /// ipsum: the fewest blacklists an address must be on (default 3).
        #[arg(long)]
        min_count: Option<i64>,
        /// How long an entry stays listed after the last copy holding it: seconds, or with s, m,
        /// h or d (default 7d, at least twice --every).
        #[arg(long)]
        lifetime: Option<String>,
    },
    /// List the feeds with their state and last error.
    List(JsonFlag),
    /// Refresh a feed now (a conditional request, as the schedule makes); exits non-zero when it fails.
    Refresh {
        /// Feed name.
        name: String,
        /// Ask unconditionally (no If-None-Match / If-Modified-Since): read and renew the whole copy.
        #[arg(long)]
        force: bool,
    },
    /// Remove a feed and its list.
    Remove {
        /// Feed name.
        name: String,
    },
}

/// `admin blocklist …`
#[derive(Debug, Subcommand)]
pub enum BlocklistCommand {
    /// Create a list.
    Create {
        /// Name: lowercase letters, digits, '-', '_', '.'.
        name: String,
        /// block (served to subscribed machines and readers) or allow.
        #[arg(long, default_value = "block")]
        kind: String,
        /// What the list is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Who may read it: public, subscribers (machines subscribed to it) or operator.
        #[arg(long, default_value = "subscribers")]
        visibility: String,
    },
    /// Set who may read a list: public, subscribers or operator.
    Visibility {
        /// List name.
        name: String,
        /// public, subscribers or operator.
        visibility: String,
    },
    /// List the operator-managed lists.
    List(JsonFlag),
    /// Add (or renew) an address or CIDR.
    Add {
        /// List name.
        name: String,
        /// Address or CIDR.
        value: String,
        /// Lifetime: seconds, or with s, m, h or d (default one year).
        #[arg(long)]
        expires: Option<String>,
        /// ban (default) or captcha.
        #[arg(long)]
        remediation: Option<String>,
    },
    /// Remove an address or CIDR.
    Remove {
        /// List name.
        name: String,
        /// Address or CIDR.
        value: String,
    },
    /// Import a file: one address or CIDR per line, or CSV value[,remediation[,duration_secs]].
    Import {
        /// List name.
        name: String,
        /// The file.
        file: PathBuf,
    },
    /// Delete a list.
    Delete {
        /// List name.
        name: String,
    },
    /// Subscribe a machine to a list, or end the subscription with --off.
    Subscribe {
        /// List name.
        name: String,
        /// Machine login.
        machine: String,
        /// End the subscription instead.
        #[arg(long)]
        off: bool,
    },
}

/// `admin canary …`
#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Add a canary.
    Add {
        /// Address or CIDR.
        value: String,
        /// A note for yourself.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Remove a canary.
    Remove {
        /// Address or CIDR.
        value: String,
    },
    /// List canaries.
    List(JsonFlag),
}

/// `admin allowlist …`
#[derive(Debug, Subcommand)]
pub enum AllowlistCommand {
    /// Import a provider's published range file (JSON, CSV or one range per line).
    Import {
        /// The file.
        file: PathBuf,
        /// Name of the source, e.g. googlebot.
        #[arg(long)]
        source: String,
        /// cdn, crawler, resolver, infrastructure or custom.
        #[arg(long)]
        category: String,
    },
    /// Remove ranges by value and/or source.
    Remove {
        /// Address or CIDR.
        #[arg(long)]
        value: Option<String>,
        /// Source name.
        #[arg(long)]
        source: Option<String>,
    },
    /// List never-block ranges.
    List(JsonFlag),
}

/// `admin token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an admin token and print it (shown once).
    Create,
    /// List admin tokens: prefix, creation, last use, revocation.
    List(JsonFlag),
    /// Revoke an admin token by its prefix; the operator's console sessions end with it.
    Revoke {
        /// The token's visible prefix (from `admin token list`).
        prefix: String,
    },
}

/// `admin account …`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Create {
        /// Account name.
        name: String,
    },
    /// List accounts.
    List(JsonFlag),
    /// Set an account's verification level (caps its machines' trust).
    Level {
        /// Account name.
        name: String,
        /// anonymous, email, verified, paid or partner.
        level: String,
    },
    /// Set an account's lookup tier (one of the configured `[tiers.*]`).
    Tier {
        /// Account name.
        name: String,
        /// Tier name.
        tier: String,
    },
    /// Print a console sign-in link for the account's users (valid 15 minutes).
    LoginLink {
        /// Account name.
        name: String,
    },
    /// Delete an account: its API keys and enrollment keys stop working at once, its console
    /// sessions end, its pool policy and shares go. Refused while machines are attached, unless
    /// told what to do with them.
    Delete {
        /// Account name.
        name: String,
        /// Keep its machines, without an account.
        #[arg(long, conflicts_with = "delete_machines")]
        detach_machines: bool,
        /// Delete its machines too.
        #[arg(long)]
        delete_machines: bool,
    },
}

/// `admin api-key …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for an account and print it (shown once).
    Create {
        /// Owning account.
        #[arg(long)]
        account: String,
        /// Also set the account's tier.
        #[arg(long)]
        tier: Option<String>,
    },
    /// List API keys (prefixes only).
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by its prefix.
    Revoke {
        /// The prefix shown at creation and in listings.
        prefix: String,
    },
}

/// `admin enroll-key …`
#[derive(Debug, Subcommand)]
pub enum EnrollKeyCommand {
    /// Create an enrollment key for an account and print it (shown once).
    Create {
        /// Account the key enrolls machines into.
        #[arg(long)]
        account: String,
    },
    /// List enrollment keys (prefixes only): account, creation, uses, last use, revocation.
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an enrollment key by its prefix: it enrolls nothing from now on.
    Revoke {
        /// The prefix shown at creation and in listings.
        prefix: String,
    },
}

/// `admin machine …`
#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Create a machine and print its id and password (or write CrowdSec credentials).
    Add {
        /// Machine login.
        name: String,
        /// Mark it as one of the operator's own sensors.
        #[arg(long)]
        sensor: bool,
        /// Write a ready CrowdSec `online_api_credentials.yaml` here instead of printing.
        #[arg(long, value_name = "FILE")]
        crowdsec_credentials: Option<PathBuf>,
        /// Server URL to put in the credentials file (default: public_url, else http://<listen>/).
        #[arg(long)]
        url: Option<String>,
    },
    /// List machines.
    List(JsonFlag),
    /// Mark a machine as one of your sensors (honeypots), or unmark it with --off.
    Sensor {
        /// Machine login.
        name: String,
        /// Unmark instead.
        #[arg(long)]
        off: bool,
    },
    /// Show a machine's trust and the evidence behind it.
    Trust {
        /// Machine login.
        name: String,
    },
    /// Disable a machine: its login and every token it holds are refused.
    Disable {
        /// Machine login.
        name: String,
    },
    /// Enable a disabled machine: it can log in again (the tokens it held stay refused).
    Enable {
        /// Machine login.
        name: String,
    },
    /// Delete a machine: disabled for good and gone from listings (its signals stay as evidence).
    Delete {
        /// Machine login.
        name: String,
    },
    /// Give a machine a new random password and print it (shown once); its tokens are revoked.
    #[command(name = "reset-password")]
    ResetPassword {
        /// Machine login.
        name: String,
    },
}

/// `--json` output switch.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
