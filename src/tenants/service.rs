//! The daemon's handle on the tenant detector: one lock around it, replaced on reload, and the
//! alert loop that ranks tenants once per bucket and publishes fired and resolved alerts, holding
//! those of muted tenants.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::alerts::{AlertBook, AlertChange, AlertRule, ALERT_CANDIDATES};
use super::explain::ExplainService;
use super::mute::{Mutes, TenantMute};
use super::{
    error_label, RankBy, TenantDetector, TenantEventRef, TenantEvidence, TenantsConfig,
    TenantsError, TopTenants, TrackerStats,
};
use crate::event::{Bus, EventKind, Timestamp};
use crate::metrics::{Kind, MetricsSource, MetricsText};

/// Cloneable handle; every clone sees the same detector.
#[derive(Debug, Clone, Default)]
pub struct TenantService {
    shared: Arc<Mutex<Shared>>,
    /// Dimension counts for `tenants explain`, behind their own lock.
    explain: ExplainService,
}

#[derive(Debug, Default)]
struct Shared {
    /// `None` while `[tenants] enabled = false`.
    detector: Option<TenantDetector>,
    error_label: String,
    rules: Vec<AlertRule>,
    book: AlertBook,
    alerts_fired: u64,
    alerts_resolved: u64,
    /// Operator mutes; kept across reloads and while the detector is off.
    mutes: Mutes,
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

impl TenantService {
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
        let outcome = match (config, shared.detector.as_ref()) {
            (None, None) => Reconfigured::Unchanged,
            (None, Some(_)) => {
                shared.detector = None;
                shared.book = AlertBook::default();
                Reconfigured::Disabled
            }
            (Some(config), Some(current)) if *current.config() == config => Reconfigured::Unchanged,
            (Some(config), current) => {
                let was_enabled = current.is_some();
                shared.error_label = error_label(&config.error_statuses);
                shared.detector = Some(TenantDetector::new(config)?);
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
        self.lock().detector.is_some()
    }

    /// Records a batch under one lock; `None` when the detector is disabled.
    pub fn record_batch<'a>(
        &self,
        events: impl IntoIterator<Item = TenantEventRef<'a>>,
        now_ms: i64,
    ) -> Option<usize> {
        let mut shared = self.lock();
        let detector = shared.detector.as_mut()?;
        let mut recorded = 0;
        for event in events {
            recorded += usize::from(detector.record_ref(event, now_ms));
        }
        Some(recorded)
    }

    pub fn top(
        &self,
        by: RankBy,
        window: Duration,
        limit: usize,
        now_ms: i64,
    ) -> Option<TopTenants> {
        let mut guard = self.lock();
        let shared = &mut *guard;
        let mut top = shared.detector.as_mut()?.top(by, window, limit, now_ms);
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
        let mut guard = self.lock();
        let shared = &mut *guard;
        let mut evidence = shared.detector.as_mut()?.tenant(id, window, now_ms);
        if let Some(evidence) = &mut evidence {
            evidence.muted = shared.mutes.mark(id, now_ms);
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
        Some(self.lock().detector.as_ref()?.window_ms(window))
    }

    pub fn stats(&self) -> Option<TrackerStats> {
        Some(self.lock().detector.as_ref()?.stats())
    }

    /// "5xx" for the default error statuses: what titles and alert messages call errors.
    pub fn error_label(&self) -> String {
        self.lock().error_label.clone()
    }

    pub fn bucket(&self) -> Option<Duration> {
        Some(self.lock().detector.as_ref()?.config().bucket)
    }

    /// Evaluates every alert rule against the rankings at `now_ms`.
    pub fn evaluate_alerts(&self, now_ms: i64) -> Vec<AlertChange> {
        let mut guard = self.lock();
        let shared = &mut *guard;
        let Some(detector) = shared.detector.as_mut() else {
            return Vec::new();
        };
        let min_requests = detector.config().min_requests;
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
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MetricsSource for TenantService {
    /// The detector's own state (nothing while disabled).
    fn render_metrics(&self, out: &mut MetricsText) {
        let shared = self.lock();
        let Some(stats) = shared.detector.as_ref().map(TenantDetector::stats) else {
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
