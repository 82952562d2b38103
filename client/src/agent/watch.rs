//! `palisade watch`, the daemon: restores the firewall from the saved state at start-up, then
//! runs three loops until SIGTERM or SIGINT: following the configured log files and feeding the
//! detectors (a detection is spooled, then banned locally), pushing the spool (at once after a
//! detection, every `push.interval_secs` otherwise, with exponential backoff while the server
//! fails), and syncing the lists every `sync.interval_secs` or as soon as a long-poll on one of
//! the machine's pools answers with a change (`sync.long_poll`). Nothing it learns is held only in
//! memory: signals are on disk before they are pushed, list state before it is applied.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, mpsc, watch};

use crate::agent::Agent;
use crate::agent::apply;
use crate::agent::push::{backoff, push_spool};
use crate::agent::safety::{Allowlist, filter};
use crate::agent::signal::{Observation, signal_item};
use crate::agent::state::{AgentState, record_push};
use crate::agent::sync::{SyncOptions, sync};
use crate::tail::Follower;

/// Something the daemon reports as it runs (the binary logs it).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// Spools a signal for `observation` and, when `ban` is given and the address is not protected,
/// bans it locally. Returns whether it was spooled (a protected address is neither reported nor
/// banned).
pub async fn record(
    agent: &Agent,
    allowlist: &Allowlist,
    observation: &Observation,
    ban: Option<Duration>,
    log: &Log,
) -> anyhow::Result<bool> {
    if let Some(why) = allowlist.protects_ip(observation.ip) {
        log(&format!("ignoring {} ({}): protected as {why}", observation.ip, observation.scenario));
        return Ok(false);
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let item = signal_item(observation, &agent.config.agent_name, &uuid);
    agent.spool.append(&item).context("writing the signal to the spool")?;
    if let Some(duration) = ban {
        match agent.backend.ban(observation.ip, duration).await {
            Ok(()) => log(&format!("banned {} for {} s ({})", observation.ip, duration.as_secs(), observation.scenario)),
            // The report is safe in the spool; a failed ban must not stop the daemon.
            Err(error) => log(&format!("could not ban {}: {error}", observation.ip)),
        }
    }
    Ok(true)
}

/// Applies the saved lists in full (after a reboot the firewall is empty while the state is not).
async fn restore(agent: &Agent, allowlist: &Allowlist, state: &Mutex<AgentState>) -> anyhow::Result<()> {
    let mut state = state.lock().await;
    let filtered = filter(&state.wanted(), allowlist, agent.config.sync.max_entries);
    let plan = apply::plan(None, filtered.kept);
    agent.backend.apply(&plan).await?;
    state.applied = Some(plan.wanted);
    state.save(&agent.config.state_file())?;
    Ok(())
}

/// The push loop: pushes whenever woken or every interval, backing off while pushes fail.
async fn push_loop(agent: Agent, wake: Arc<Notify>, log: Log) {
    let base = Duration::from_secs(agent.config.push.interval_secs);
    let max = Duration::from_secs(agent.config.push.max_backoff_secs);
    let mut failures = 0u32;
    loop {
        let wait = if failures == 0 { base } else { backoff(failures, base, max, rand::random::<f64>()) };
        match push_spool(&agent.client, &agent.spool, agent.config.push.batch_size).await {
            Ok(report) => {
                if failures > 0 {
                    log("the server takes signals again");
                }
                failures = 0;
                if report.delivered + report.rejected > 0 {
                    drop(record_push(&agent.config.state_dir));
                    log(&format!(
                        "pushed {} signals ({} new, {} already known, {} refused)",
                        report.delivered, report.accepted, report.duplicates, report.rejected
                    ));
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let pending = agent.spool.len().unwrap_or(0);
                log(&format!("{error}; {pending} signals spooled, retrying in {} s", wait.as_secs()));
            }
        }
        let wait = if failures == 0 { base } else { backoff(failures, base, max, rand::random::<f64>()) };
        // A detection wakes the pusher early, but not while it backs off from a failing server.
        if failures == 0 {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake.notified() => {}
            }
        } else {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The sync loop: syncs every `sync.interval_secs`, or at once when `wake` is poked (a pool
/// changed), and counts the syncs done in `synced`.
async fn sync_loop(
    agent: Agent,
    allowlist: Allowlist,
    state: Arc<Mutex<AgentState>>,
    wake: Arc<Notify>,
    synced: watch::Sender<u64>,
    log: Log,
) {
    let interval = Duration::from_secs(agent.config.sync.interval_secs);
    loop {
        {
            let mut state = state.lock().await;
            let outcome =
                sync(&agent.client, &agent.backend, &allowlist, &agent.config.sync, &mut state, SyncOptions::default(), &|_| {})
                    .await;
            if let Err(error) = state.save(&agent.config.state_file()) {
                log(&format!("cannot save the sync state: {error}"));
            }
            match outcome {
                Ok(report) if report.add + report.remove > 0 => {
                    log(&format!(
                        "sync: +{} -{} ({} entries applied, {})",
                        report.add, report.remove, report.wanted, report.applied
                    ));
                }
                Ok(_) => {}
                Err(error) => log(&format!("sync failed: {error}")),
            }
        }
        synced.send_modify(|count| *count += 1);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = wake.notified() => {}
        }
    }
}

/// Pools are named `pool-<account id>` by the server.
fn is_pool(name: &str) -> bool {
    name.starts_with("pool-")
}

/// How long the server is asked to hold each long-poll (the most it holds).
const LONG_POLL_SECS: u64 = 50;

/// The pool watcher: holds a long-poll on each pool the last sync pulled, from its cursor, and
/// wakes the sync loop as soon as one answers with a change, then waits for that sync so the
/// next long-polls start from the new cursors. A failing server is retried after
/// `sync.interval_secs` (the sync loop reports the failure); with no pool it waits for the next
/// sync. Idle, it costs one open request per pool.
async fn pool_watch_loop(agent: Agent, state: Arc<Mutex<AgentState>>, wake: Arc<Notify>, mut synced: watch::Receiver<u64>) {
    let retry = Duration::from_secs(agent.config.sync.interval_secs);
    loop {
        let cursors: Vec<(String, i64)> = {
            let state = state.lock().await;
            state
                .lists
                .iter()
                .filter(|(name, _)| is_pool(name))
                .filter_map(|(name, list)| Some((name.clone(), list.cursor?)))
                .collect()
        };
        synced.mark_unchanged();
        if cursors.is_empty() {
            if synced.changed().await.is_err() {
                return;
            }
            continue;
        }
        // Dropping the set at the end of the round ends the other long-polls.
        let mut polls = tokio::task::JoinSet::new();
        for (name, cursor) in cursors {
            let client = agent.client.clone();
            polls.spawn(async move { (cursor, client.wait_for_blocklist_changes(&name, cursor, LONG_POLL_SECS).await) });
        }
        let Some(Ok((cursor, answer))) = polls.join_next().await else { return };
        match answer {
            Ok(body) if body.seq == Some(cursor) => {}
            Ok(_) => {
                wake.notify_one();
                if synced.changed().await.is_err() {
                    return;
                }
            }
            Err(_) => tokio::time::sleep(retry).await,
        }
    }
}

/// Most text handed to the detectors at once when lines arrive faster than they are detected.
const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Follows one file, sending its lines to the detector loop; read errors are logged and retried.
async fn follow(mut follower: Follower, lines: mpsc::Sender<String>, log: Log) {
    loop {
        match follower.next_line().await {
            Ok(line) => {
                if lines.send(line).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                log(&format!("reading {}: {error}; retrying", follower.path().display()));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT: follows the configured files, feeds every line to
/// the built-in and configured detectors, and records (spools, then bans) each detection.
pub async fn run(agent: Agent, log: Log) -> anyhow::Result<()> {
    let mut detectors = agent.config.detectors()?;
    let (allowlist, warnings) = agent.allowlist().await;
    for warning in warnings {
        log(&format!("warning: {warning}"));
    }
    let state = Arc::new(Mutex::new(AgentState::load(&agent.config.state_file())?));
    restore(&agent, &allowlist, &state).await.context("restoring the firewall from the saved lists")?;
    let (line_sender, mut lines) = mpsc::channel::<String>(4096);
    let mut followers = Vec::new();
    for source in &agent.config.sources {
        match Follower::open(&source.path, source.from_start).await {
            Ok(follower) => followers.push(tokio::spawn(follow(follower, line_sender.clone(), log.clone()))),
            // One unreadable file must not stop the others, nor pushing and syncing.
            Err(error) => log(&format!("cannot follow {}: {error}", source.path.display())),
        }
    }
    drop(line_sender);
    log(&format!(
        "watching {} files with {} detectors as {} on {} ({} backend, {} protected networks)",
        followers.len(),
        detectors.specs().len(),
        agent.credentials.machine_id,
        agent.credentials.server,
        agent.backend.name(),
        allowlist.len()
    ));
    let wake = Arc::new(Notify::new());
    let pusher = tokio::spawn(push_loop(agent.clone(), wake.clone(), log.clone()));
    let sync_now = Arc::new(Notify::new());
    let (synced, synced_seen) = watch::channel(0u64);
    let syncer = tokio::spawn(sync_loop(agent.clone(), allowlist.clone(), state.clone(), sync_now.clone(), synced, log.clone()));
    let pool_watcher =
        agent.config.sync.long_poll.then(|| tokio::spawn(pool_watch_loop(agent.clone(), state.clone(), sync_now, synced_seen)));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    let ban = agent.config.ban.enabled.then(|| Duration::from_secs(agent.config.ban.duration_secs));
    let mut sources_open = !followers.is_empty();
    let outcome = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            _ = prune.tick() => detectors.prune(OffsetDateTime::now_utc()),
            line = lines.recv(), if sources_open => match line {
                Some(line) => {
                    // Lines that are already waiting go through the detectors as one chunk
                    // (one prefilter scan for all of them), so a burst costs less per line.
                    let mut chunk = line;
                    chunk.push('\n');
                    while chunk.len() < MAX_CHUNK_BYTES {
                        let Ok(more) = lines.try_recv() else { break };
                        chunk.push_str(&more);
                        chunk.push('\n');
                    }
                    let mut detections = Vec::new();
                    detectors.feed_chunk(&chunk, OffsetDateTime::now_utc(), &mut detections);
                    let mut failed = None;
                    for found in detections {
                        let observation = Observation {
                            ip: found.ip,
                            scenario: found.scenario,
                            message: found.message,
                            first_seen: found.first_seen,
                            last_seen: found.last_seen,
                        };
                        log(&format!("detected {} ({}, {}): {}", observation.ip, observation.scenario, found.detector, observation.message));
                        match record(&agent, &allowlist, &observation, ban, &log).await {
                            Ok(true) => wake.notify_one(),
                            Ok(false) => {}
                            Err(error) => failed = Some(error),
                        }
                    }
                    // A signal that cannot be spooled is a report lost: stop loudly rather than go on.
                    if let Some(error) = failed {
                        break Err(error);
                    }
                }
                None => sources_open = false,
            },
        }
    };
    for task in followers.iter().chain([&pusher, &syncer]).chain(pool_watcher.as_ref()) {
        task.abort();
    }
    log(&format!("stopping; {} signals stay spooled", agent.spool.len().unwrap_or(0)));
    outcome
}
