//! The consensus worker: feeds stored signals, in id order since a persisted watermark, to the
//! pure [`Engine`] and to the accounts' [`Pools`], and commits the engine's state, machine trust,
//! the blocklist membership changes (community and pools, each with the next `seq`) and the new
//! watermark in one transaction. A restart reloads that state, so nothing is counted twice. Only
//! the replica holding the leadership runs it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::listing::Rule;
use crate::domain::lists::{COMMUNITY, pool_list};
use crate::domain::net::parse_target;
use crate::domain::signal::Scope;
use crate::engine::ipset::IpSet;
use crate::engine::params::Params;
use crate::engine::{Change, Consensus, Engine, Report, Time};
use crate::pools::{PoolChange, PoolPolicy, PoolReport, Pools};
use crate::store::{
    ConsensusCommit, ConsensusRequest, EngineSignal, ListEntry, ListOp, MachineKey, MemberPages, RequestKind, SignalStore, Store,
};

/// What the worker needs besides the store.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Engine parameters.
    pub params: Params,
    /// Whether an AS database enriches origins.
    pub use_asn: bool,
    /// The server's own addresses: never listed.
    pub own_addresses: Vec<IpNet>,
    /// Shared addresses: a higher bar and a captcha.
    pub shared_ranges: Vec<IpNet>,
    /// Signals per step.
    pub batch: u32,
    /// How often operator data (machines, canaries, allowlists) is re-read.
    pub refresh_every: Duration,
    /// Poked after a commit that changed a list, so this process serves it at once.
    pub lists_changed: Option<Arc<Notify>>,
    /// Hosting space: where a /24 with many listed addresses is listed whole.
    pub hosting_ranges: Vec<IpNet>,
    /// Maintenance (partitions ahead, signal retention) run by the leader; `None`: not here.
    pub maintenance: Option<crate::config::RetentionConfig>,
    /// How long the worker, woken by new signals, lets more arrive before it steps. Every
    /// push wakes it, and each step is a transaction on the store the pushes write to: with
    /// CrowdSec's 50-signal batches from many machines, stepping at once meant one step (and one
    /// commit) per push, which cost more CPU than storing the signals did.
    pub gather: Duration,
    /// The pool policy of accounts without their own.
    pub pools: PoolPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            params: Params::default(),
            use_asn: false,
            own_addresses: Vec::new(),
            shared_ranges: Vec::new(),
            batch: 5000,
            refresh_every: Duration::from_secs(5),
            lists_changed: None,
            hosting_ranges: Vec::new(),
            maintenance: None,
            gather: Duration::from_millis(250),
            pools: PoolPolicy::default(),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// Signals processed.
    pub processed: usize,
    /// Community listings (and renewals) written; pool changes are not counted here.
    pub listed: usize,
    /// Community delistings written.
    pub delisted: usize,
}

/// The worker: an engine and its watermark, in step with the store.
pub struct ConsensusWorker {
    store: Arc<dyn Store>,
    config: WorkerConfig,
    engine: Engine,
    watermark: i64,
    known_machines: HashSet<i64>,
    refreshed_at: Option<std::time::Instant>,
    /// Each custom block list's `seq` when its entries were last handed to the engine.
    public_seqs: BTreeMap<String, i64>,
    /// The accounts' private pools.
    pools: Pools,
    /// Each known machine's account.
    accounts: HashMap<i64, i64>,
}

fn seconds(at: OffsetDateTime) -> Time {
    at.unix_timestamp()
}

fn from_seconds(at: Time) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl ConsensusWorker {
    /// Loads the persisted state (watermark, engine state) and the operator data.
    pub async fn load(store: Arc<dyn Store>, config: WorkerConfig) -> anyhow::Result<Self> {
        let snapshot = store.consensus_snapshot().await.context("cannot read the consensus state")?;
        let mut engine = Engine::new(config.params.clone(), config.use_asn);
        // Unreadable stored states were already left out (and logged) by the store.
        engine.restore(snapshot.machines.into_iter().map(|(key, state)| (key.0, state)), snapshot.targets);
        engine.set_shared(IpSet::new(config.shared_ranges.iter().copied()));
        engine.set_hosting(IpSet::new(config.hosting_ranges.iter().copied()));
        let pools = Pools::new(config.pools.clone());
        let mut worker = ConsensusWorker {
            store,
            config,
            engine,
            watermark: snapshot.watermark,
            known_machines: HashSet::new(),
            refreshed_at: None,
            public_seqs: BTreeMap::new(),
            pools,
            accounts: HashMap::new(),
        };
        worker.refresh().await?;
        worker.restore_pools().await?;
        Ok(worker)
    }

    /// The last processed signal id.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The engine, for explanations and tests.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads the pools' current listings back (their reporters are not kept: each lasts until its
    /// expiry unless new reports renew it).
    async fn restore_pools(&mut self) -> anyhow::Result<()> {
        let accounts: HashSet<i64> = self.accounts.values().copied().collect();
        for account in accounts {
            let list = pool_list(account);
            let mut pages = MemberPages::new(self.store.as_ref(), &list);
            while let Some(page) = pages.next().await? {
                for entry in page {
                    self.pools.restore(account, entry.value, seconds(entry.listed_at), seconds(entry.expires_at));
                }
            }
        }
        Ok(())
    }

    /// Re-reads machines, canaries, allowlists and pool policies.
    pub async fn refresh(&mut self) -> anyhow::Result<()> {
        for machine in self.store.engine_machines().await? {
            match machine.account {
                Some(account) => self.accounts.insert(machine.key.0, account.0),
                None => self.accounts.remove(&machine.key.0),
            };
            self.engine.upsert_machine(
                machine.key.0,
                machine.account.map(|a| a.0),
                machine.level,
                machine.sensor,
                seconds(machine.created_at),
            );
            self.known_machines.insert(machine.key.0);
        }
        let sets = crate::serving::load_never_block(self.store.as_ref(), &self.config.own_addresses).await?;
        self.pools.set_never_block(sets.clone());
        let policies = self.store.pool_policies().await?.into_iter().map(|(account, policy)| (account.0, policy)).collect();
        self.pools.set_policies(policies);
        // A machine the engine zeroed (a canary) or caught reporting never-block addresses is
        // out of its pool, after a restart too.
        let flagged: Vec<i64> = self
            .known_machines
            .iter()
            .copied()
            .filter(|&key| self.engine.machine(key).is_some_and(|m| m.zeroed_at.is_some() || !m.never_block_hits.is_empty()))
            .collect();
        self.pools.exclude(flagged);
        self.engine.set_canaries(sets.canaries);
        self.engine.set_never_block(sets.ranges);
        self.refresh_public().await?;
        self.refreshed_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// Hands the engine what the operator's block lists already publish (imported feeds and
    /// curated lists): reporting those addresses is an echo and earns no trust. Entries are
    /// re-read only when a list's `seq` moved.
    async fn refresh_public(&mut self) -> anyhow::Result<()> {
        let mut seqs = BTreeMap::new();
        for list in self.store.custom_lists().await?.into_iter().filter(|l| l.kind == "block") {
            let seq = self.store.list_seq(&list.name).await?;
            seqs.insert(list.name, seq);
        }
        if seqs == self.public_seqs {
            return Ok(());
        }
        // Read a page at a time: a block list of a million entries read whole held every row at
        // once, and the allocator kept that memory once freed (151 MB resident after start-up
        // instead of about 60).
        let mut public = Vec::new();
        for name in seqs.keys() {
            let mut pages = MemberPages::new(self.store.as_ref(), name);
            while let Some(page) = pages.next().await? {
                public.extend(page.into_iter().map(|entry| entry.value));
            }
        }
        self.engine.set_public(IpSet::new(public));
        self.public_seqs = seqs;
        Ok(())
    }

    /// Processes up to one batch of signals, carries out pending operator requests, evaluates,
    /// and commits. On a failed commit the in-memory state is reloaded from the store.
    pub async fn run_once(&mut self, now: OffsetDateTime) -> anyhow::Result<StepOutcome> {
        if self.refreshed_at.is_none_or(|at| at.elapsed() >= self.config.refresh_every) {
            self.refresh().await?;
        }
        let signals = self.store.signals_for_engine(self.watermark, self.config.batch).await?;
        // A new reporter, one the operator made (or unmade) a sensor, or one enrolled in (or moved
        // to) an account since the last refresh: its reports are weighed, and pooled, with what
        // the store says now, not at the next period.
        let stale = |s: &EngineSignal| {
            if !self.known_machines.contains(&s.machine.0) {
                return true;
            }
            // A machine deleted since has nothing newer to read.
            s.reporter_sensor.is_some_and(|sensor| {
                self.engine.machine(s.machine.0).is_some_and(|m| m.sensor != sensor)
                    || self.accounts.get(&s.machine.0).copied() != s.reporter_account.map(|a| a.0)
            })
        };
        if signals.iter().any(stale) {
            self.refresh().await?;
        }
        let now_s = seconds(now);
        // Read after the signals: a request queued before any signal of this batch was stored is
        // among them (a withdrawal is committed with the deletion it follows).
        let requests = self.store.pending_consensus_requests().await?;
        let mut changes = Vec::new();
        // A withdrawal takes back the signals up to its `up_to_signal`: it is applied before the
        // batch's later signals, which were reported after it and count.
        let mut withdrawals: Vec<&ConsensusRequest> = requests.iter().filter(|r| r.kind == RequestKind::Withdraw).collect();
        withdrawals.sort_by_key(|r| r.up_to_signal.unwrap_or(0));
        let mut withdrawals = withdrawals.into_iter().peekable();
        let mut watermark = self.watermark;
        for signal in &signals {
            while let Some(request) = withdrawals.next_if(|r| r.up_to_signal.unwrap_or(0) < signal.id) {
                changes.extend(self.withdraw(request, now_s));
            }
            watermark = signal.id;
            let (Some(target), Ok(origin_prefix)) = (parse_target(&signal.value), IpNet::from_str(&signal.origin_prefix)) else {
                tracing::warn!(signal.id = signal.id, "skipping a signal whose value or origin does not parse");
                continue;
            };
            let at = seconds(signal.received_at).min(now_s);
            self.engine.process(&Report {
                machine: signal.machine.0,
                target,
                scenario: &signal.scenario,
                certified: signal.scenario_trust == "certified",
                origin_prefix,
                origin_asn: signal.origin_asn,
                at,
            });
            if let Some(&account) = self.accounts.get(&signal.machine.0) {
                let spoofable = self.engine.is_spoofable(&signal.scenario);
                self.pools.report(&PoolReport {
                    account,
                    machine: signal.machine.0,
                    target,
                    scenario: &signal.scenario,
                    spoofable,
                    at,
                });
            }
        }
        for request in withdrawals {
            changes.extend(self.withdraw(request, now_s));
        }
        for request in &requests {
            match request.kind {
                RequestKind::FalsePositive => changes.extend(self.engine.report_false_positive(request.value, now_s)),
                RequestKind::Delist => {
                    let hold_until = request.hold_until.map_or(now_s, OffsetDateTime::unix_timestamp);
                    changes.extend(self.engine.delist(request.value, hold_until, now_s));
                }
                RequestKind::Withdraw => {}
            }
        }
        changes.extend(self.engine.advance(now_s));
        let pool_changes = self.pools.advance(now_s);
        metrics::gauge!("palisade_pools_tracked_targets").set(self.pools.len() as f64);
        let outcome = StepOutcome {
            processed: signals.len(),
            listed: changes.iter().filter(|c| matches!(c, Change::Listed { .. })).count(),
            delisted: changes.iter().filter(|c| matches!(c, Change::Delisted { .. })).count(),
        };
        let mut commit = self.commit_for(watermark, changes, requests.iter().map(|r| r.id).collect(), now)?;
        commit.list_ops.extend(pool_changes.into_iter().map(pool_op));
        if let Err(error) = self.store.commit_consensus(&commit).await {
            let store = self.store.clone();
            *self = ConsensusWorker::load(store, self.config.clone()).await?;
            return Err(error).context("cannot commit a consensus step; state reloaded from the store");
        }
        self.watermark = watermark;
        if !commit.list_ops.is_empty()
            && let Some(changed) = &self.config.lists_changed
        {
            changed.notify_one();
        }
        for change in &commit.list_ops {
            match change {
                ListOp::Add(entry) => {
                    metrics::counter!("palisade_consensus_listings_total", "rule" => entry.rule.as_str()).increment(1)
                }
                ListOp::Remove { reason, .. } => {
                    metrics::counter!("palisade_consensus_delistings_total", "reason" => reason.clone()).increment(1)
                }
            }
        }
        Ok(outcome)
    }

    /// Carries out one withdrawal request (its machine's reporter entry leaves the target).
    fn withdraw(&mut self, request: &ConsensusRequest, now: Time) -> Vec<Change> {
        match request.machine {
            Some(machine) => self.engine.withdraw(machine.0, request.value, now),
            None => {
                tracing::warn!(request.id = request.id, "a withdrawal names no machine; done without effect");
                Vec::new()
            }
        }
    }

    fn commit_for(
        &mut self,
        watermark: i64,
        changes: Vec<Change>,
        done_requests: Vec<i64>,
        now: OffsetDateTime,
    ) -> anyhow::Result<ConsensusCommit> {
        let now_s = seconds(now);
        let changed = self.engine.take_changed();
        let params = self.engine.params().clone();
        let machines = changed
            .machines
            .into_iter()
            .map(|(key, state)| {
                let trust = state.trust(now_s, &params);
                (MachineKey(key), state, trust)
            })
            .collect();
        let targets = changed.targets;
        let list_ops = changes
            .into_iter()
            .map(|change| match change {
                Change::Listed { target, rule, scenario, remediation, expires_at } => {
                    let listed_at =
                        self.engine.target(target).and_then(|s| s.listing.as_ref()).map(|l| l.listed_at).unwrap_or(now_s);
                    ListOp::Add(ListEntry {
                        list: COMMUNITY.into(),
                        value: target,
                        scope: Scope::of(target),
                        scenario,
                        remediation,
                        rule,
                        listed_at: from_seconds(listed_at),
                        expires_at: from_seconds(expires_at),
                        seq: 0,
                    })
                }
                Change::Delisted { target, reason } => {
                    ListOp::Remove { list: COMMUNITY.into(), value: target, reason: reason.as_str().into() }
                }
            })
            .collect();
        Ok(ConsensusCommit { watermark, machines, targets, list_ops, done_requests, at: now })
    }
}

/// The list operation of one pool change.
fn pool_op(change: PoolChange) -> ListOp {
    match change {
        PoolChange::Listed { account, target, scenario, remediation, listed_at, expires_at } => ListOp::Add(ListEntry {
            list: pool_list(account),
            value: target,
            scope: Scope::of(target),
            scenario,
            remediation,
            rule: Rule::Pool,
            listed_at: from_seconds(listed_at),
            expires_at: from_seconds(expires_at),
            seq: 0,
        }),
        PoolChange::Delisted { account, target, reason } => {
            ListOp::Remove { list: pool_list(account), value: target, reason: reason.into() }
        }
    }
}

async fn pause(cancel: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// How often the leader measures its backlog for the lag gauges.
const LAG_EVERY: Duration = Duration::from_secs(2);

/// Sets `palisade_consensus_lag_signals` (unprocessed signals, counted up to a million) and
/// `palisade_consensus_lag_seconds` (age of the oldest unprocessed one; 0 when caught up).
async fn record_lag(store: &dyn SignalStore, watermark: i64) {
    match store.signal_backlog(watermark, 1_000_000).await {
        Ok(backlog) => {
            let age = backlog.oldest_received_at.map(|at| (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0));
            metrics::gauge!("palisade_consensus_lag_signals").set(backlog.count as f64);
            metrics::gauge!("palisade_consensus_lag_seconds").set(age.unwrap_or(0.0));
        }
        Err(error) => tracing::warn!(%error, "cannot measure the consensus backlog"),
    }
}

/// Runs the worker while this replica holds the leadership, until `cancel`. Wakes on `notify`
/// (new signals, operator requests; then steps after `config.gather`) or every `interval`.
pub async fn run(
    store: Arc<dyn Store>,
    config: WorkerConfig,
    notify: Arc<Notify>,
    interval: Duration,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        let mut leadership = match store.acquire_leadership().await {
            Ok(Some(leadership)) => leadership,
            Ok(None) => {
                metrics::gauge!("palisade_consensus_leader").set(0.0);
                if pause(&cancel, Duration::from_secs(5)).await {
                    continue;
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot try the consensus leadership");
                if pause(&cancel, Duration::from_secs(5)).await {
                    continue;
                }
                return;
            }
        };
        metrics::gauge!("palisade_consensus_leader").set(1.0);
        tracing::info!("this replica leads the consensus worker");
        let mut worker = match ConsensusWorker::load(store.clone(), config.clone()).await {
            Ok(worker) => worker,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "cannot start the consensus worker");
                if pause(&cancel, Duration::from_secs(5)).await {
                    continue;
                }
                return;
            }
        };
        let mut maintenance_due = std::time::Instant::now();
        let mut lag_due = std::time::Instant::now();
        loop {
            if !leadership.still_held().await {
                tracing::warn!("lost the consensus leadership");
                metrics::gauge!("palisade_consensus_leader").set(0.0);
                break;
            }
            let busy = match worker.run_once(OffsetDateTime::now_utc()).await {
                Ok(outcome) => outcome.processed as u32 >= config.batch,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "consensus step failed");
                    false
                }
            };
            if lag_due.elapsed() >= LAG_EVERY {
                lag_due = std::time::Instant::now();
                record_lag(store.as_ref(), worker.watermark()).await;
            }
            if let Some(retention) = &config.maintenance
                && std::time::Instant::now() >= maintenance_due
            {
                maintenance_due = std::time::Instant::now() + Duration::from_secs(retention.interval_secs);
                let now = OffsetDateTime::now_utc();
                if let Err(error) = super::maintenance::run_once(store.as_ref(), retention, worker.watermark(), now).await {
                    tracing::error!(error = format!("{error:#}"), "maintenance pass failed");
                }
            }
            if busy {
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = notify.notified() => {
                    if !pause(&cancel, config.gather).await {
                        return;
                    }
                }
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use serde_json::json;
    use time::Duration as TimeDuration;

    use super::*;
    use crate::domain::listing::Rule;
    use crate::domain::net::display_target;
    use crate::domain::signal::{SignalRules, parse_item};
    use crate::store::{CreatedBy, Enrichment, NewMachine, NewSignal, Origin};
    use crate::testing::TestDb;

    async fn add_machine(store: &dyn Store, name: &str, sensor: bool) -> MachineKey {
        let machine = NewMachine {
            machine_id: name.into(),
            password_hash: "x".into(),
            sensor,
            created_by: CreatedBy::Operator,
            created_at: OffsetDateTime::now_utc(),
        };
        store.create_machine(&machine).await.expect("machine")
    }

    fn signal(machine: MachineKey, ip: &str, origin: &str, now: OffsetDateTime) -> NewSignal {
        let stamp = now.format(&time::format_description::well_known::Rfc3339).expect("formats");
        let raw = json!({"scenario": "crowdsecurity/ssh-bf", "scenario_trust": "certified",
            "source": {"scope": "Ip", "value": ip}, "start_at": stamp, "stop_at": stamp});
        let rules = SignalRules {
            now,
            max_age: TimeDuration::days(60),
            max_clock_skew: TimeDuration::hours(1),
            min_v4_prefix: 16,
            min_v6_prefix: 32,
        };
        let origin_ip: IpAddr = origin.parse().expect("origin");
        NewSignal {
            machine,
            report: parse_item(&raw.to_string(), &rules).expect("valid"),
            origin: Origin { ip: origin_ip, prefix: crate::domain::net::origin_prefix(origin_ip), asn: None },
            enrichment: Enrichment::default(),
            received_at: now,
        }
    }

    #[tokio::test]
    async fn a_restarted_worker_resumes_at_its_watermark_without_counting_twice() {
        for db in TestDb::all().await {
            let label = db.label();
            let store = crate::store::open(&db.url).await.expect("open");
            store.migrate().await.expect("migrate");
            let sensor = add_machine(store.as_ref(), "sensor", true).await;
            let watcher = add_machine(store.as_ref(), "watcher", false).await;
            let now = OffsetDateTime::now_utc();
            store
                .insert_signals(&[
                    signal(watcher, "45.33.32.156", "81.2.69.1", now),
                    signal(sensor, "45.33.32.156", "81.2.70.1", now),
                ])
                .await
                .expect("insert");

            let mut worker = ConsensusWorker::load(store.clone(), WorkerConfig::default()).await.expect("load");
            let step = worker.run_once(now).await.expect("step");
            assert_eq!(step, StepOutcome { processed: 2, listed: 1, delisted: 0 }, "{label}");
            let entries = store.list_entries(COMMUNITY).await.expect("entries");
            assert_eq!(entries.len(), 1, "{label}");
            assert_eq!(
                (display_target(entries[0].value), entries[0].rule),
                ("45.33.32.156".to_string(), Rule::Sensor),
                "{label}"
            );
            let reporters = worker.engine().target("45.33.32.156/32".parse().expect("net")).expect("state").reporters.len();

            // A new worker (a restart) reads the watermark: nothing is processed twice.
            let mut restarted = ConsensusWorker::load(store.clone(), WorkerConfig::default()).await.expect("reload");
            assert_eq!(restarted.watermark(), worker.watermark(), "{label}");
            let again = restarted.run_once(now).await.expect("step");
            assert_eq!(again.processed, 0, "{label}");
            let state = restarted.engine().target("45.33.32.156/32".parse().expect("net")).expect("state");
            assert_eq!(state.reporters.len(), reporters, "{label}");
            assert_eq!(state.reporters.iter().map(|r| r.count).sum::<u32>(), 2, "{label}: each report counted once");
            assert_eq!(store.list_changes(COMMUNITY, 0, 100).await.expect("changes").len(), 1, "{label}");
            assert_eq!(restarted.engine().machine(watcher.0).expect("machine").leads, 1, "{label}: lead credit survived");
        }
    }

    #[tokio::test]
    async fn a_machine_made_a_sensor_before_it_reports_lists_at_once_whatever_the_refresh_period() {
        for db in TestDb::all().await {
            let label = db.label();
            let store = crate::store::open(&db.url).await.expect("open");
            store.migrate().await.expect("migrate");
            let machine = add_machine(store.as_ref(), "web-01", false).await;
            let config = WorkerConfig { refresh_every: Duration::from_secs(3600), ..WorkerConfig::default() };
            let mut worker = ConsensusWorker::load(store.clone(), config).await.expect("load");
            let now = OffsetDateTime::now_utc();
            store.insert_signals(&[signal(machine, "45.33.32.150", "81.2.69.1", now)]).await.expect("insert");
            assert_eq!(worker.run_once(now).await.expect("step").listed, 0, "{label}: one watcher lists nothing");

            store.set_machine_sensor("web-01", true).await.expect("sensor");
            store.insert_signals(&[signal(machine, "45.33.32.151", "81.2.69.1", now)]).await.expect("insert");
            assert_eq!(worker.run_once(now).await.expect("step").listed, 1, "{label}: the sensor's report lists");

            store.set_machine_sensor("web-01", false).await.expect("not a sensor");
            store.insert_signals(&[signal(machine, "45.33.32.152", "81.2.69.1", now)]).await.expect("insert");
            assert_eq!(worker.run_once(now).await.expect("step").listed, 0, "{label}: no longer a sensor");
        }
    }

    #[tokio::test]
    async fn a_machine_enrolled_after_the_last_refresh_pools_its_first_report() {
        for db in TestDb::all().await {
            let label = db.label();
            let store = crate::store::open(&db.url).await.expect("open");
            store.migrate().await.expect("migrate");
            let now = OffsetDateTime::now_utc();
            let acme = store.create_account("acme", now).await.expect("account");
            let machine = add_machine(store.as_ref(), "web-01", false).await;
            let config = WorkerConfig { refresh_every: Duration::from_secs(3600), ..WorkerConfig::default() };
            // The worker knows web-01 without an account, as it would had it refreshed between the
            // machine's creation and its enrollment.
            let mut worker = ConsensusWorker::load(store.clone(), config).await.expect("load");
            store.enroll_machine(machine, acme, None, &[], false, now).await.expect("enroll");
            store.insert_signals(&[signal(machine, "45.33.32.150", "81.2.69.1", now)]).await.expect("insert");
            worker.run_once(now).await.expect("step");
            let pooled: Vec<IpNet> =
                store.list_entries(&pool_list(acme.0)).await.expect("pool").into_iter().map(|e| e.value).collect();
            assert_eq!(pooled, ["45.33.32.150/32".parse::<IpNet>().expect("net")], "{label}: pooled at the first step");
        }
    }

    #[tokio::test]
    async fn never_block_ranges_from_the_allowlist_delist_at_the_next_step() {
        for db in TestDb::all().await {
            let label = db.label();
            let store = crate::store::open(&db.url).await.expect("open");
            store.migrate().await.expect("migrate");
            let sensor = add_machine(store.as_ref(), "sensor", true).await;
            let now = OffsetDateTime::now_utc();
            store.insert_signals(&[signal(sensor, "66.249.66.1", "81.2.70.1", now)]).await.expect("insert");
            let mut worker = ConsensusWorker::load(store.clone(), WorkerConfig::default()).await.expect("load");
            assert_eq!(worker.run_once(now).await.expect("step").listed, 1, "{label}");
            store.add_allowlist(&["66.249.64.0/19".into()], "crawler", "googlebot", now).await.expect("allowlist");
            worker.refresh().await.expect("refresh");
            let step = worker.run_once(now).await.expect("step");
            assert_eq!(step.delisted, 1, "{label}");
            let changes = store.list_changes(COMMUNITY, 0, 100).await.expect("changes");
            assert_eq!(changes.iter().map(|c| c.op.as_str()).collect::<Vec<_>>(), ["add", "remove"], "{label}");
            assert_eq!(changes[1].reason.as_deref(), Some("never_block"), "{label}");
            assert!(changes[0].seq < changes[1].seq, "{label}");
        }
    }

    #[tokio::test]
    async fn reports_of_addresses_the_operators_block_lists_publish_earn_no_lead() {
        for db in TestDb::all().await {
            let label = db.label();
            let store = crate::store::open(&db.url).await.expect("open");
            store.migrate().await.expect("migrate");
            let sensor = add_machine(store.as_ref(), "sensor", true).await;
            let echoer = add_machine(store.as_ref(), "echoer", false).await;
            let now = OffsetDateTime::now_utc();
            let list = crate::store::CustomList {
                name: "imported-feed".into(),
                kind: "block".into(),
                description: String::new(),
                created_at: now,
                visibility: "public".into(),
            };
            store.create_custom_list(&list).await.expect("list");
            let entry = ListEntry {
                list: list.name.clone(),
                value: "45.33.32.157/32".parse().expect("net"),
                scope: Scope::Ip,
                scenario: list.name.clone(),
                remediation: crate::domain::listing::Remediation::Ban,
                rule: Rule::Operator,
                listed_at: now,
                expires_at: now + TimeDuration::days(1),
                seq: 0,
            };
            store.apply_list_ops(&[ListOp::Add(entry)], now).await.expect("entry");
            store
                .insert_signals(&[
                    signal(echoer, "45.33.32.157", "81.2.69.1", now),
                    signal(echoer, "45.33.32.158", "81.2.69.1", now),
                    signal(sensor, "45.33.32.157", "81.2.70.1", now),
                    signal(sensor, "45.33.32.158", "81.2.70.1", now),
                ])
                .await
                .expect("insert");
            let mut worker = ConsensusWorker::load(store.clone(), WorkerConfig::default()).await.expect("load");
            assert_eq!(worker.run_once(now).await.expect("step").listed, 2, "{label}");
            let leads = worker.engine().machine(echoer.0).expect("machine").leads;
            assert_eq!(leads, 1, "{label}: the unpublished address led, the published one was an echo");
        }
    }

    #[tokio::test]
    async fn a_withdrawal_takes_the_machines_support_out_and_delists_what_needed_it() {
        for db in TestDb::all().await {
            let label = db.label();
            let store = crate::store::open(&db.url).await.expect("open");
            store.migrate().await.expect("migrate");
            let sensor = add_machine(store.as_ref(), "sensor", true).await;
            let now = OffsetDateTime::now_utc();
            store.insert_signals(&[signal(sensor, "45.33.32.156", "81.2.70.1", now)]).await.expect("insert");
            let mut worker = ConsensusWorker::load(store.clone(), WorkerConfig::default()).await.expect("load");
            assert_eq!(worker.run_once(now).await.expect("step").listed, 1, "{label}");

            let target: IpNet = "45.33.32.156/32".parse().expect("net");
            assert_eq!(store.withdraw_reports(sensor, target, now).await.expect("withdraw"), 1, "{label}");
            let step = worker.run_once(now).await.expect("step");
            assert_eq!(step.delisted, 1, "{label}");
            let changes = store.list_changes(COMMUNITY, 0, 100).await.expect("changes");
            assert_eq!(changes.last().and_then(|c| c.reason.as_deref()), Some("withdrawn"), "{label}");
            assert!(store.pending_consensus_requests().await.expect("pending").is_empty(), "{label}: carried out");
            let restarted = ConsensusWorker::load(store.clone(), WorkerConfig::default()).await.expect("reload");
            let reporters = restarted.engine().target(target).map(|s| s.reporters.len()).unwrap_or(0);
            assert_eq!(reporters, 0, "{label}: the withdrawal is persisted");

            // A report made after the clearing, read in the same step as the withdrawal, counts.
            let again: IpNet = "45.33.32.157/32".parse().expect("net");
            store.insert_signals(&[signal(sensor, "45.33.32.157", "81.2.70.1", now)]).await.expect("insert");
            worker.run_once(now).await.expect("step");
            assert_eq!(store.withdraw_reports(sensor, again, now).await.expect("withdraw"), 1, "{label}");
            let later = now + TimeDuration::seconds(1);
            store.insert_signals(&[signal(sensor, "45.33.32.157", "81.2.70.1", later)]).await.expect("insert");
            worker.run_once(later).await.expect("step");
            let counts: Vec<u32> = worker.engine().target(again).expect("state").reporters.iter().map(|r| r.count).collect();
            assert_eq!(counts, [1], "{label}: only the report after the clearing");
            let entry = store.list_entry(COMMUNITY, again).await.expect("entry");
            assert!(entry.is_some(), "{label}: listed again on the new sighting");
        }
    }
}
