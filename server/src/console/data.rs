//! What the console pages show, gathered from the store, the limiter and the lookup into plain
//! view structs. The pure parts (trust in words, ranking, quota arithmetic, query parsing) are
//! separate functions with unit tests; the gathering functions only read.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use palisade_api::native::{ApiKeyView, IpLookupResponse};
use time::{Duration, OffsetDateTime};

use crate::domain::lists::COMMUNITY;
use crate::domain::net::display_target;
use crate::error::ApiError;
use crate::limits::{LimitKey, Tier};
use crate::state::AppState;
use crate::store::{AccountKey, DayCount, EnrollKeyRecord, ListEntry, Machine, MachineKey};

/// Days the per-day charts cover.
pub const CHART_DAYS: i64 = 30;

/// Signals sampled for the operator's "top" tables.
const TOP_SAMPLE: u32 = 2_000;

/// One of an account's machines.
#[derive(Debug, Clone)]
pub struct MachineRow {
    /// Login.
    pub machine_id: String,
    /// Display name given at enrollment.
    pub name: Option<String>,
    /// Agent version.
    pub version: Option<String>,
    /// Last login, RFC 3339.
    pub last_seen: Option<String>,
    /// Trust in words.
    pub trust: &'static str,
    /// Trust in [0, 1].
    pub trust_value: f64,
    /// Signals received since midnight UTC.
    pub signals_today: u64,
    /// Signals ever.
    pub signals: u64,
}

/// A blocklist an account can pull.
#[derive(Debug, Clone)]
pub struct PullableList {
    /// List name.
    pub name: String,
    /// Most entries served to this tier (0: the whole list).
    pub cap: u64,
    /// Download URLs by format.
    pub urls: Vec<(&'static str, String)>,
}

/// The account page.
#[derive(Debug, Clone)]
pub struct AccountView {
    /// Account name.
    pub name: String,
    /// Its tier's name.
    pub tier_name: String,
    /// The tier.
    pub tier: Tier,
    /// `today` or `this month`: the window closest to its limit.
    pub usage_window: &'static str,
    /// Lookups used in that window.
    pub used: u64,
    /// That window's limit.
    pub limit: u64,
    /// Machines.
    pub machines: Vec<MachineRow>,
    /// Enrollment keys.
    pub enroll_keys: Vec<EnrollKeyRecord>,
    /// API keys.
    pub api_keys: Vec<ApiKeyView>,
    /// Blocklists with URLs.
    pub lists: Vec<PullableList>,
    /// The server's public URL (ends in `/`).
    pub public_url: String,
    /// Lookups per day over the last [`CHART_DAYS`] days.
    pub usage_per_day: Vec<DayCount>,
    /// Today (days since the epoch).
    pub today: i64,
    /// The account's private pool.
    pub pool: PoolSection,
    /// Its machines' newest signals (at most [`ALERT_ROWS`] of the last [`ALERT_DAYS`] days).
    pub alerts: Vec<crate::store::Alert>,
}

/// Most alerts shown on the account page.
pub const ALERT_ROWS: u32 = 50;

/// How far back the account page's alerts go, in days.
pub const ALERT_DAYS: i64 = 7;

/// Most pool entries shown on the account page (the newest).
pub const POOL_ROWS: usize = 50;

/// The account's pool as its users see it: the policy in force, the newest entries, the shares.
#[derive(Debug, Clone)]
pub struct PoolSection {
    /// The pool's list name (`pool-<id>`).
    pub list: String,
    /// The policy in force.
    pub policy: palisade_api::native::PoolPolicyView,
    /// Whether the account has its own policy (else the server's default).
    pub own_policy: bool,
    /// Accounts it is shared with, and accounts sharing theirs with it (set by the operator).
    pub shared_with: Vec<String>,
    /// Accounts whose pools this account receives.
    pub received_from: Vec<String>,
    /// Entries listed now.
    pub total: usize,
    /// The newest [`POOL_ROWS`] of them, newest first.
    pub newest: Vec<PoolRow>,
}

/// One pool entry on the account page.
#[derive(Debug, Clone)]
pub struct PoolRow {
    /// Address or range.
    pub value: String,
    /// The scenario that listed it.
    pub scenario: String,
    /// When it was listed, and when it expires unless reported again.
    pub listed_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

/// The pool section of account `name`.
pub async fn pool(state: &AppState, name: &str) -> Result<PoolSection, ApiError> {
    let view = crate::manage::pools::pool_view(state.store.as_ref(), &state.pool_policy, name).await?;
    let served = state.distribution.lists.served(&view.list).await?;
    let mut newest: Vec<_> = served.entries.iter().collect();
    newest.sort_by_key(|e| std::cmp::Reverse(e.listed_at()));
    let newest = newest
        .into_iter()
        .take(POOL_ROWS)
        .map(|e| PoolRow {
            value: display_target(e.net),
            scenario: e.scenario().to_string(),
            listed_at: e.listed_at(),
            expires_at: e.expires_at(),
        })
        .collect();
    Ok(PoolSection {
        list: view.list,
        policy: view.policy,
        own_policy: view.own_policy,
        shared_with: view.shared_with,
        received_from: view.received_from,
        total: served.entries.len(),
        newest,
    })
}

/// Trust in words, as an account user reads it.
pub fn trust_words(trust: f64) -> &'static str {
    match trust {
        t if t >= 0.75 => "high",
        t if t >= 0.4 => "established",
        t if t >= 0.1 => "building",
        t if t > 0.0 => "low",
        _ => "none yet",
    }
}

/// Start of the UTC day containing `now`.
pub fn start_of_day(now: OffsetDateTime) -> OffsetDateTime {
    now.replace_time(time::Time::MIDNIGHT)
}

/// Days since the Unix epoch of `at`.
pub fn day_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(86_400)
}

/// The base URL to print: the configured public URL, else `/` (relative).
fn base_url(state: &AppState) -> String {
    if state.public_url.is_empty() { "/".into() } else { state.public_url.to_string() }
}

/// Gathers the account page.
pub async fn account(state: &AppState, id: i64, name: &str) -> Result<AccountView, ApiError> {
    let store = state.store.as_ref();
    let account = AccountKey(id);
    let now = OffsetDateTime::now_utc();
    let today: HashMap<MachineKey, u64> = store.signal_counts_since(start_of_day(now)).await?.into_iter().collect();
    let machines = store
        .list_machines()
        .await?
        .into_iter()
        .filter(|m| m.account == Some(account))
        .map(|m| machine_row(&m, today.get(&m.key).copied().unwrap_or(0)))
        .collect();
    // This replica's counts first, so the chart includes the lookups just made here.
    if let Err(error) = state.quotas.usage.flush(store).await {
        tracing::warn!(%error, "cannot record lookup usage");
    }
    let today = state.quotas.limiter.now_us().div_euclid(86_400_000_000);
    let usage_per_day = store.lookup_usage_per_day(account, today - CHART_DAYS + 1).await?;
    let tier_name = store.account_tier(account).await?.unwrap_or_else(|| crate::limits::DEFAULT_TIER.into());
    let tier = state.quotas.tier(&tier_name);
    // Cost 0: reads the counters without spending a lookup.
    let decision = state.quotas.limiter.check(&LimitKey::Account(id), &tier, 0).await;
    let usage_window = usage_window(&tier, decision.limit);
    let base = base_url(state);
    let lists = tier
        .blocklists
        .iter()
        .map(|(list, cap)| PullableList {
            name: list.clone(),
            cap: *cap,
            urls: ["plain", "nftables", "ipset", "iptables", "mikrotik", "csv", "json"]
                .into_iter()
                .map(|format| (format, format!("{base}v1/blocklists/{list}?format={format}")))
                .collect(),
        })
        .collect();
    Ok(AccountView {
        name: name.to_string(),
        tier_name,
        tier,
        usage_window,
        used: decision.limit.saturating_sub(decision.remaining),
        limit: decision.limit,
        machines,
        enroll_keys: store.list_enroll_keys(Some(account)).await?,
        api_keys: crate::manage::list_api_keys(store, Some(name)).await?,
        lists,
        public_url: base,
        usage_per_day,
        today,
        pool: pool(state, name).await?,
        alerts: store.account_alerts(account, now - Duration::days(ALERT_DAYS), ALERT_ROWS).await?,
    })
}

/// Which window the limiter's answer is about: it reports the tighter of the day and the
/// month, with its limit and what remains.
pub fn usage_window(tier: &Tier, limit: u64) -> &'static str {
    if limit == tier.lookups_per_day { "today" } else { "this month" }
}

/// The agent and version a login's `User-Agent` names: `crowdsec/v1.4.6-6~deb12u1+b1-linux-debian`
/// → `crowdsec v1.4.6-6~deb12u1+b1`, `palisade-agent/0.1.0` → `palisade-agent 0.1.0`; `None`
/// for anything else (a browser, curl), which says nothing about an agent.
fn agent_version(user_agent: &str) -> Option<String> {
    let (name, version) = user_agent.split_once('/')?;
    let version = version.split_whitespace().next()?;
    let version = match name {
        // crowdsec/<version>[-<tag>]-<os>[-<distribution>]: the platform is left out.
        "crowdsec" => ["-linux", "-freebsd", "-windows", "-darwin"]
            .iter()
            .find_map(|os| version.split_once(os).map(|(v, _)| v))
            .unwrap_or(version),
        "palisade" | "palisade-agent" => version,
        _ => return None,
    };
    Some(format!("{name} {version}"))
}

fn machine_row(m: &Machine, today: u64) -> MachineRow {
    MachineRow {
        machine_id: m.machine_id.clone(),
        name: m.display_name.clone(),
        version: m.version.clone().or_else(|| m.user_agent.as_deref().and_then(agent_version)),
        last_seen: m.last_login_at.map(crate::domain::time::rfc3339),
        trust: trust_words(m.trust),
        trust_value: m.trust,
        signals_today: today,
        signals: m.signal_count.unwrap_or_default(),
    }
}

/// What was searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Query {
    /// One address.
    Ip(IpAddr),
    /// A range.
    Range(IpNet),
}

/// Parses the analyzer's search box: an address or a CIDR range (at least a /8 or /32).
pub fn parse_query(text: &str) -> Result<Query, String> {
    if let Some(ip) = crate::domain::net::parse_ip(text) {
        return Ok(Query::Ip(ip));
    }
    match text.parse::<IpNet>() {
        Ok(net) if (net.addr().is_ipv4() && net.prefix_len() >= 8) || (net.addr().is_ipv6() && net.prefix_len() >= 32) => {
            Ok(Query::Range(net.trunc()))
        }
        Ok(_) => Err("a range must be at least a /8 (IPv4) or a /32 (IPv6)".into()),
        Err(_) => Err(format!("{text:?} is not an IP address or a CIDR range")),
    }
}

/// The analyzer's answer.
#[derive(Debug, Clone)]
pub enum IpResult {
    /// The reputation card of one address.
    Card(Box<IpLookupResponse>),
    /// Listed members of a range.
    Range {
        /// The range.
        range: IpNet,
        /// Members of the community list inside it.
        entries: Vec<ListEntry>,
    },
    /// The search box held something else.
    Invalid(String),
    /// Over the account's quota.
    Refused {
        /// When to retry.
        retry_after_secs: u64,
        /// The limit that was hit.
        limit: u64,
    },
}

/// Looks a query up.
pub async fn ip_result(state: &AppState, query: Query, text: &str) -> Result<IpResult, ApiError> {
    match query {
        Query::Ip(ip) => {
            let now = state.quotas.limiter.now_us() / 1_000_000;
            Ok(IpResult::Card(Box::new(state.lookup.native(ip, text, now).await?)))
        }
        Query::Range(range) => {
            let mut entries: Vec<ListEntry> = state
                .store
                .list_entries(COMMUNITY)
                .await?
                .into_iter()
                .filter(|e| range.contains(&e.value) || e.value.contains(&range))
                .collect();
            // In the order of their text, as listed before values were typed.
            entries.sort_by_cached_key(|e| display_target(e.value));
            entries.truncate(500);
            Ok(IpResult::Range { range, entries })
        }
    }
}

/// The operator's overview.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// Machines.
    pub machines: u64,
    /// Accounts.
    pub accounts: u64,
    /// Signals stored.
    pub signals: u64,
    /// Signals per minute over the last hour.
    pub signals_per_min: f64,
    /// Community list members.
    pub listed: u64,
    /// Signals per day.
    pub signals_per_day: Vec<DayCount>,
    /// Community additions and removals per day.
    pub changes_per_day: Vec<DayCount>,
    /// Today (days since the epoch).
    pub today: i64,
    /// Machines per trust band, lowest first.
    pub trust_bands: Vec<(&'static str, u64)>,
    /// Machines to look at: reporting with (almost) no trust.
    pub flagged: Vec<MachineRow>,
    /// Sensors.
    pub sensors: Vec<MachineRow>,
    /// Top reported addresses, ASes, countries and scenarios in recent signals.
    pub top_ips: Vec<(String, u64)>,
    /// By AS.
    pub top_ases: Vec<(String, u64)>,
    /// By country.
    pub top_countries: Vec<(String, u64)>,
    /// By scenario.
    pub top_scenarios: Vec<(String, u64)>,
    /// How many signals the top tables were counted over.
    pub sampled: u64,
    /// Canaries.
    pub canaries: Vec<(String, String)>,
    /// Never-block ranges per source: (source, category, count).
    pub allowlists: Vec<(String, String, u64)>,
    /// Tiers by name.
    pub tiers: Vec<(String, Tier)>,
    /// External feeds and the state of their refreshes.
    pub feeds: Vec<palisade_api::native::FeedView>,
    /// How long the oldest signal the consensus worker has not processed yet has waited
    /// (seconds); 0 when none waits.
    pub consensus_lag_secs: i64,
}

/// Trust bands for the distribution chart.
pub const TRUST_BANDS: [(&str, f64); 5] =
    [("none", 0.0), ("low", f64::MIN_POSITIVE), ("building", 0.1), ("established", 0.4), ("high", 0.75)];

/// Machines per trust band.
pub fn trust_distribution(trusts: impl IntoIterator<Item = f64>) -> Vec<(&'static str, u64)> {
    let mut counts = [0u64; TRUST_BANDS.len()];
    for t in trusts {
        let band = TRUST_BANDS.iter().rposition(|(_, lower)| t >= *lower).unwrap_or(0);
        counts[band] += 1;
    }
    TRUST_BANDS.iter().zip(counts).map(|((name, _), n)| (*name, n)).collect()
}

/// The `n` most frequent values, most frequent first, ties by value.
pub fn top<I: IntoIterator<Item = String>>(values: I, n: usize) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

/// Machines whose own reports counted against them: zeroed by a canary or carrying negative
/// evidence (lies proven by sensors, false positives). Low trust alone is not suspicious: every
/// new machine starts with none and earns it slowly, so a fresh network's machines are not
/// flagged. Only machines with little trust are read in full (one engine state each).
async fn flagged<'a>(state: &AppState, machines: &'a [Machine], now: OffsetDateTime) -> Result<Vec<&'a Machine>, ApiError> {
    let mut flagged = Vec::new();
    for machine in machines.iter().filter(|m| !m.sensor && m.signal_count.unwrap_or_default() > 0 && m.trust < 0.5) {
        let Some(engine) = state.store.engine_machine(machine.key).await? else { continue };
        let (_, bad) = engine.evidence(now.unix_timestamp(), &state.engine_params);
        if engine.zeroed_at.is_some() || bad > 0.0 {
            flagged.push(machine);
        }
    }
    Ok(flagged)
}

/// Gathers the operator's overview.
pub async fn overview(state: &AppState) -> Result<Overview, ApiError> {
    let store = state.store.as_ref();
    let now = OffsetDateTime::now_utc();
    let machines = store.list_machines().await?;
    let today: HashMap<MachineKey, u64> = store.signal_counts_since(start_of_day(now)).await?.into_iter().collect();
    let last_hour: u64 = store.signal_counts_since(now - Duration::hours(1)).await?.iter().map(|(_, n)| n).sum();
    let signals = store.count_signals().await?;
    let since = start_of_day(now) - Duration::days(CHART_DAYS - 1);
    let recent = store
        .list_signals(&crate::store::SignalFilter {
            // Ids increase but may have gaps, so this reads about the last TOP_SAMPLE signals.
            after: Some(signals.saturating_sub(u64::from(TOP_SAMPLE)) as i64),
            limit: TOP_SAMPLE,
            ..Default::default()
        })
        .await?;
    let row = |m: &Machine| machine_row(m, today.get(&m.key).copied().unwrap_or(0));
    let mut allowlists: BTreeMap<(String, String), u64> = BTreeMap::new();
    for entry in store.list_allowlist().await? {
        *allowlists.entry((entry.source, entry.category)).or_default() += 1;
    }
    let watermark = store.consensus_watermark().await?;
    let pending = store.signals_for_engine(watermark, 1).await?;
    let consensus_lag_secs = pending.first().map_or(0, |s| (now - s.received_at).whole_seconds().max(0));
    Ok(Overview {
        consensus_lag_secs,
        machines: machines.len() as u64,
        accounts: store.list_accounts().await?.len() as u64,
        signals,
        signals_per_min: last_hour as f64 / 60.0,
        listed: store.list_entries(COMMUNITY).await?.len() as u64,
        signals_per_day: store.signals_per_day(since).await?,
        changes_per_day: store.list_changes_per_day(COMMUNITY, since).await?,
        today: day_of(now),
        trust_bands: trust_distribution(machines.iter().map(|m| m.trust)),
        flagged: flagged(state, &machines, now).await?.into_iter().map(row).collect(),
        sensors: machines.iter().filter(|m| m.sensor).map(row).collect(),
        top_ips: top(recent.iter().map(|s| s.value.clone()), 10),
        top_ases: top(
            recent.iter().filter_map(|s| {
                s.enrichment.as_number.map(|n| format!("AS{n} {}", s.enrichment.as_name.clone().unwrap_or_default()))
            }),
            10,
        ),
        top_countries: top(recent.iter().filter_map(|s| s.enrichment.country.clone()), 10),
        top_scenarios: top(recent.iter().map(|s| s.scenario.clone()), 10),
        sampled: recent.len() as u64,
        canaries: store.list_canaries().await?.into_iter().map(|c| (c.value, c.note)).collect(),
        allowlists: allowlists.into_iter().map(|((source, category), n)| (source, category, n)).collect(),
        tiers: state.quotas.tiers.iter().map(|(name, tier)| (name.clone(), tier.clone())).collect(),
        feeds: crate::manage::feeds::list_feeds(store).await?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_login_user_agent_names_the_agent_and_its_version() {
        use super::agent_version;
        assert_eq!(agent_version("crowdsec/v1.4.6-6~deb12u1+b1-linux-debian").as_deref(), Some("crowdsec v1.4.6-6~deb12u1+b1"));
        assert_eq!(agent_version("crowdsec/v1.6.5-linux").as_deref(), Some("crowdsec v1.6.5"));
        assert_eq!(agent_version("palisade-agent/0.1.0").as_deref(), Some("palisade-agent 0.1.0"));
        assert_eq!(agent_version("curl/8.5.0"), None);
        assert_eq!(agent_version("Mozilla/5.0 (X11)"), None);
    }

    use super::*;

    #[test]
    fn trust_reads_as_words_at_band_edges() {
        assert_eq!(trust_words(0.0), "none yet");
        assert_eq!(trust_words(0.05), "low");
        assert_eq!(trust_words(0.1), "building");
        assert_eq!(trust_words(0.4), "established");
        assert_eq!(trust_words(0.9), "high");
    }

    #[test]
    fn trust_distribution_counts_each_machine_once() {
        let bands = trust_distribution([0.0, 0.0, 0.05, 0.5, 0.8, 1.0]);
        assert_eq!(bands, [("none", 2), ("low", 1), ("building", 0), ("established", 1), ("high", 2)]);
    }

    #[test]
    fn top_ranks_by_count_then_value() {
        let ranked = top(["b", "a", "b", "c", "a", "b"].map(String::from), 2);
        assert_eq!(ranked, [("b".to_string(), 3), ("a".to_string(), 2)]);
    }

    #[test]
    fn queries_are_addresses_or_bounded_ranges() {
        assert_eq!(parse_query("45.1.2.3"), Ok(Query::Ip("45.1.2.3".parse().unwrap())));
        assert_eq!(parse_query("45.1.2.3/24"), Ok(Query::Range("45.1.2.0/24".parse().unwrap())));
        assert!(parse_query("0.0.0.0/0").unwrap_err().contains("/8"));
        assert!(parse_query("2001:db8::/16").is_err());
        assert!(parse_query("example.com").unwrap_err().contains("not an IP"));
    }

    #[test]
    fn usage_is_read_from_the_tighter_window() {
        let tier = crate::limits::default_tiers().remove(crate::limits::DEFAULT_TIER).unwrap();
        assert_eq!(usage_window(&tier, tier.lookups_per_day), "today");
        assert_eq!(usage_window(&tier, tier.lookups_per_month), "this month");
    }
}
