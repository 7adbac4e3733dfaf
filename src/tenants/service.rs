//! The daemon's handle on the tenant detector: the detector sharded by tenant hash (one lock per
//! shard, so parse workers record in parallel), merged exactly for every answer
//! ([`super::merge`]), replaced on reload; and the alert loop that ranks tenants once per bucket
//! and publishes fired and resolved alerts, holding those of muted tenants.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, TryLockError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::alerts::{AlertBook, AlertChange, AlertRule, ALERT_CANDIDATES};
use super::explain::ExplainService;
use super::merge::{self, merge_top};
use super::mute::{Mutes, TenantMute};
use super::window::Counts;
use super::{
    error_label, RankBy, TenantDetector, TenantEventRef, TenantEvidence, TenantsConfig,
    TenantsError, TopTenants, TrackerStats, OTHER_TENANT,
};
use crate::event::{Bus, EventKind, Timestamp};
use crate::metrics::{Kind, MetricsSource, MetricsText};

/// Fewest tenants a shard is given when the shard count follows the cores: below this, one lock
/// costs less than partitioning every batch (and small `max_tenants` keep their exact meaning).
pub const MIN_TENANTS_PER_SHARD: usize = 4096;

/// Seed of the shard choice: fixed, so a tenant stays on its shard across reloads.
const SHARD_SEED: u64 = 0x5e47_1e1d_7e4a_4715;

/// Cloneable handle; every clone sees the same detector.
#[derive(Debug, Clone, Default)]
pub struct TenantService {
    inner: Arc<Inner>,
    /// Dimension counts for `tenants explain`, behind their own lock.
    explain: ExplainService,
}

/// Lock order: `shared` before `detector`; nothing holds `detector` while it takes `shared`.
#[derive(Debug, Default)]
struct Inner {
    /// `None` while `[tenants] enabled = false`. Ingest and queries read-lock it; only
    /// `configure` write-locks it.
    detector: RwLock<Option<Sharded>>,
    shared: Mutex<Shared>,
    /// A fixed shard count (tests, benches); `None`: by cores and `max_tenants`.
    shards: Option<NonZeroUsize>,
}

#[derive(Debug, Default)]
struct Shared {
    error_label: String,
    rules: Vec<AlertRule>,
    book: AlertBook,
    alerts_fired: u64,
    alerts_resolved: u64,
    /// Operator mutes; kept across reloads and while the detector is off.
    mutes: Mutes,
}

/// The detector split by tenant hash: each shard owns a disjoint set of tenants and its share of
/// `max_tenants` and `max_bytes`.
#[derive(Debug)]
struct Sharded {
    /// As configured (not the shards' shares): what a reload compares against.
    config: TenantsConfig,
    shards: Box<[Mutex<TenantDetector>]>,
    hasher: foldhash::fast::FixedState,
}

/// What a reload did to the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconfigured {
    Unchanged,
    Enabled,
    Disabled,
    /// New window geometry or caps: the old windows were dropped.
    WindowsReset,
}

impl Sharded {
    fn new(config: TenantsConfig, count: usize) -> Result<Self, TenantsError> {
        let count = count.max(1);
        let share = TenantsConfig {
            max_tenants: config.max_tenants.div_ceil(count),
            max_bytes: config.max_bytes / count,
            ..config.clone()
        };
        let shards = (0..count)
            .map(|_| TenantDetector::new(share.clone()).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            config,
            shards,
            hasher: foldhash::fast::FixedState::with_seed(SHARD_SEED),
        })
    }

    fn shard_of(&self, tenant_id: &str) -> usize {
        let hash = self.hasher.hash_one(tenant_id);
        ((u128::from(hash) * self.shards.len() as u128) >> 64) as usize
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, TenantDetector> {
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record<'a>(
        &self,
        events: impl IntoIterator<Item = TenantEventRef<'a>>,
        now_ms: i64,
    ) -> usize {
        let record_all = |detector: &mut TenantDetector, events: &[TenantEventRef<'_>]| {
            events
                .iter()
                .map(|event| usize::from(detector.record_ref(*event, now_ms)))
                .sum::<usize>()
        };
        if self.shards.len() == 1 {
            let mut detector = self.shard(0);
            return events
                .into_iter()
                .map(|event| usize::from(detector.record_ref(event, now_ms)))
                .sum();
        }
        let mut parts: Vec<Vec<TenantEventRef<'a>>> = vec![Vec::new(); self.shards.len()];
        for event in events {
            parts[self.shard_of(event.tenant_id)].push(event);
        }
        // Free shards first; then wait for those another worker holds.
        let mut recorded = 0;
        let mut busy = Vec::new();
        for (index, part) in parts.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            match self.shards[index].try_lock() {
                Ok(mut detector) => recorded += record_all(&mut detector, part),
                Err(TryLockError::Poisoned(poisoned)) => {
                    recorded += record_all(&mut poisoned.into_inner(), part)
                }
                Err(TryLockError::WouldBlock) => busy.push(index),
            }
        }
        for index in busy {
            recorded += record_all(&mut self.shard(index), &parts[index]);
        }
        recorded
    }

    /// The global top `limit`: each shard's top `limit`, merged.
    fn top(&self, by: RankBy, window: Duration, limit: usize, now_ms: i64) -> TopTenants {
        let mut answers: Vec<TopTenants> = (0..self.shards.len())
            .map(|index| self.shard(index).top(by, window, limit, now_ms))
            .collect();
        if answers.len() == 1 {
            return answers.remove(0);
        }
        match merge_top(&answers, limit) {
            Ok(top) => top,
            Err(err) => {
                // Shards share one config and own disjoint tenants: this cannot happen.
                tracing::error!(error = %err, "merging tenant shards failed");
                answers.remove(0)
            }
        }
    }

    /// Each shard's `__other__` over `window`, and the window's totals over all shards.
    fn others(&self, window: Duration, now_ms: i64) -> (Vec<TenantEvidence>, Counts) {
        let others: Vec<TenantEvidence> = (0..self.shards.len())
            .filter_map(|index| self.shard(index).tenant(OTHER_TENANT, window, now_ms))
            .collect();
        let totals = Counts {
            requests: others.iter().map(|o| o.requests + o.rest_requests).sum(),
            errors: others.iter().map(|o| o.errors + o.rest_errors).sum(),
        };
        (others, totals)
    }

    fn tenant(&self, id: &str, window: Duration, now_ms: i64) -> Option<TenantEvidence> {
        if self.shards.len() == 1 {
            return self.shard(0).tenant(id, window, now_ms);
        }
        if id == OTHER_TENANT {
            let (others, totals) = self.others(window, now_ms);
            let parts: Vec<&TenantEvidence> = others.iter().collect();
            return Some(merge::merge_other(&parts, totals));
        }
        let evidence = self.shard(self.shard_of(id)).tenant(id, window, now_ms)?;
        let (_, totals) = self.others(window, now_ms);
        Some(merge::rescaled(&evidence, totals))
    }

    fn stats(&self) -> TrackerStats {
        let mut all = TrackerStats::default();
        for index in 0..self.shards.len() {
            all += self.shard(index).stats();
        }
        all
    }
}

impl TenantService {
    /// A service whose detector always has `shards` shards (tests and benches; the daemon's
    /// follows the cores).
    pub fn with_shards(shards: NonZeroUsize) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: Some(shards),
                ..Inner::default()
            }),
            explain: ExplainService::default(),
        }
    }

    /// How many shards a detector with `config` gets: `[tenants] shards`, else one per core, each
    /// holding at least [`MIN_TENANTS_PER_SHARD`] tenants; [`Self::with_shards`] overrides both.
    fn shard_count(&self, config: &TenantsConfig) -> usize {
        if let Some(fixed) = self.inner.shards {
            return fixed.get();
        }
        if let Some(configured) = config.shards {
            return configured;
        }
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        cores.min(config.max_tenants / MIN_TENANTS_PER_SHARD).max(1)
    }

    /// Applies `[tenants]`: `None` disables the detector. Alert rules change without touching
    /// the windows; a new detector config starts empty windows.
    pub fn configure(
        &self,
        config: Option<TenantsConfig>,
        rules: Vec<AlertRule>,
    ) -> Result<Reconfigured, TenantsError> {
        let mut shared = self.lock();
        shared.book.retain_rules(&rules);
        shared.rules = rules;
        let mut detector = self
            .inner
            .detector
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome = match (config, detector.as_ref()) {
            (None, None) => Reconfigured::Unchanged,
            (None, Some(_)) => {
                *detector = None;
                shared.book = AlertBook::default();
                Reconfigured::Disabled
            }
            (Some(config), Some(current)) if current.config == config => Reconfigured::Unchanged,
            (Some(config), current) => {
                let was_enabled = current.is_some();
                let count = self.shard_count(&config);
                let label = error_label(&config.error_statuses);
                *detector = Some(Sharded::new(config, count)?);
                shared.error_label = label;
                match was_enabled {
                    true => Reconfigured::WindowsReset,
                    false => Reconfigured::Enabled,
                }
            }
        };
        Ok(outcome)
    }

    /// The explainer fed beside the detector (ingest records into both).
    pub fn explain(&self) -> &ExplainService {
        &self.explain
    }

    pub fn is_enabled(&self) -> bool {
        self.detector().is_some()
    }

    /// How many shards the detector has now (0 while disabled).
    pub fn shards(&self) -> usize {
        self.detector().as_ref().map_or(0, |d| d.shards.len())
    }

    /// Records a batch, each event under its tenant's shard lock; `None` when the detector is
    /// disabled.
    pub fn record_batch<'a>(
        &self,
        events: impl IntoIterator<Item = TenantEventRef<'a>>,
        now_ms: i64,
    ) -> Option<usize> {
        Some(self.detector().as_ref()?.record(events, now_ms))
    }

    pub fn top(
        &self,
        by: RankBy,
        window: Duration,
        limit: usize,
        now_ms: i64,
    ) -> Option<TopTenants> {
        let mut top = self.detector().as_ref()?.top(by, window, limit, now_ms);
        let shared = self.lock();
        for tenant in &mut top.tenants {
            tenant.muted = shared.mutes.mark(&tenant.tenant_id, now_ms);
        }
        Some(top)
    }

    /// `Some(None)`: enabled, but the tenant is not tracked.
    pub fn tenant(
        &self,
        id: &str,
        window: Duration,
        now_ms: i64,
    ) -> Option<Option<TenantEvidence>> {
        let mut evidence = self.detector().as_ref()?.tenant(id, window, now_ms);
        if let Some(evidence) = &mut evidence {
            evidence.muted = self.lock().mutes.mark(id, now_ms);
        }
        Some(evidence)
    }

    /// Mutes (or, with `until_ms` at or before `now_ms`, unmutes) a tenant's alerts.
    pub fn mute(&self, mute: TenantMute, now_ms: i64) {
        self.lock().mutes.set(mute, now_ms);
    }

    /// The mutes in force, by tenant.
    pub fn mutes(&self, now_ms: i64) -> Vec<TenantMute> {
        self.lock().mutes.active(now_ms)
    }

    /// Replaces every mute (at start: those the journal says are still in force).
    pub fn restore_mutes(&self, mutes: Mutes) {
        self.lock().mutes = mutes;
    }

    /// The window a query for `window` actually covers (whole buckets, at most the configured).
    pub fn window_ms(&self, window: Duration) -> Option<i64> {
        Some(self.detector().as_ref()?.shard(0).window_ms(window))
    }

    pub fn stats(&self) -> Option<TrackerStats> {
        Some(self.detector().as_ref()?.stats())
    }

    /// "5xx" for the default error statuses: what titles and alert messages call errors.
    pub fn error_label(&self) -> String {
        self.lock().error_label.clone()
    }

    pub fn bucket(&self) -> Option<Duration> {
        Some(self.detector().as_ref()?.config.bucket)
    }

    /// Evaluates every alert rule against the rankings at `now_ms`.
    pub fn evaluate_alerts(&self, now_ms: i64) -> Vec<AlertChange> {
        let mut guard = self.lock();
        let shared = &mut *guard;
        let detector = self.detector();
        let Some(detector) = detector.as_ref() else {
            return Vec::new();
        };
        let min_requests = detector.config.min_requests;
        let mut changes = Vec::new();
        for rule in &shared.rules {
            let by = rule.condition.rank_by();
            let top = detector.top(by, rule.window, ALERT_CANDIDATES, now_ms);
            let label = &shared.error_label;
            let mutes = &shared.mutes;
            let held = |tenant: &str| mutes.is_muted(tenant, now_ms);
            changes.extend(
                shared
                    .book
                    .evaluate(rule, &top, label, min_requests, now_ms, &held),
            );
        }
        for change in &changes {
            match change {
                AlertChange::Fired(_) => shared.alerts_fired += 1,
                AlertChange::Resolved(_) => shared.alerts_resolved += 1,
            }
        }
        changes
    }

    /// Evaluates alerts once per bucket until `stop`, publishing every change on the bus.
    pub async fn run_alerts(self, bus: Bus, stop: CancellationToken) {
        loop {
            let tick = self.bucket().unwrap_or(Duration::from_secs(10));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick.max(Duration::from_secs(1))) => {}
            }
            for change in self.evaluate_alerts(Timestamp::now().as_millis()) {
                bus.publish(alert_event(change));
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.inner
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn detector(&self) -> RwLockReadGuard<'_, Option<Sharded>> {
        self.inner
            .detector
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MetricsSource for TenantService {
    /// The detector's own state (nothing while disabled).
    fn render_metrics(&self, out: &mut MetricsText) {
        let shared = self.lock();
        let Some(stats) = self.detector().as_ref().map(Sharded::stats) else {
            return;
        };
        let gauges = [
            (
                "sentinel_tenants_tracked",
                "Tenants with a window of their own.",
                stats.tracked as u64,
            ),
            (
                "sentinel_tenants_max",
                "Most tenants tracked at once (config).",
                stats.max_tenants as u64,
            ),
            (
                "sentinel_tenants_memory_bytes",
                "Estimated memory of all tenant windows.",
                stats.bytes_estimate as u64,
            ),
            (
                "sentinel_tenants_memory_max_bytes",
                "Memory cap of tenant windows (config).",
                stats.max_bytes as u64,
            ),
            (
                "sentinel_tenant_alerts_firing",
                "Tenant alerts firing now.",
                shared.book.firing() as u64,
            ),
        ];
        for (name, help, value) in gauges {
            out.single(name, Kind::Gauge, help, value);
        }
        let counters = [
            (
                "sentinel_tenants_admitted_total",
                "Tenants given a window of their own.",
                stats.admitted,
            ),
            (
                "sentinel_tenants_evicted_total",
                "Tenants that lost their window to heavier ones or to the memory cap.",
                stats.evicted,
            ),
            (
                "sentinel_tenants_overflow_events_total",
                "Events moved to __other__ when their tenant was evicted.",
                stats.overflow_events,
            ),
            (
                "sentinel_tenants_late_events_total",
                "Events older than the window when they arrived.",
                stats.late_events,
            ),
            (
                "sentinel_tenant_alerts_fired_total",
                "Tenant alerts fired.",
                shared.alerts_fired,
            ),
            (
                "sentinel_tenant_alerts_resolved_total",
                "Tenant alerts resolved.",
                shared.alerts_resolved,
            ),
        ];
        for (name, help, value) in counters {
            out.single(name, Kind::Counter, help, value);
        }
    }
}

fn alert_event(change: AlertChange) -> EventKind {
    match change {
        AlertChange::Fired(notice) => EventKind::TenantAlertFired {
            rule: notice.rule,
            tenant_id: notice.tenant_id,
            condition: notice.condition,
            value: notice.value,
            threshold: notice.threshold,
            window_ms: notice.window_ms,
            endpoint: notice.endpoint,
            message: notice.message,
        },
        AlertChange::Resolved(notice) => EventKind::TenantAlertResolved {
            rule: notice.rule,
            tenant_id: notice.tenant_id,
            value: notice.value,
            firing_ms: notice.firing_ms.unwrap_or(0),
            message: notice.message,
        },
    }
}

#[cfg(test)]
mod tests;
