//! Glue between chaos and tenants: the detector keeps only current windows, so when an
//! experiment starts and when it is rolled back the top tenants are recorded as events.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::event::{Bus, EventKind, SnapshotPhase, TenantFigures, Timestamp};
use crate::tenants::{RankBy, TenantService, TopTenants};

/// Tenants per snapshot: enough for a post-mortem table, small enough for the journal.
pub const SNAPSHOT_TENANTS: usize = 5;

/// Publish a `tenant_snapshot` at every `chaos_started` (the window before, as long as the
/// experiment is planned to last) and `chaos_rolled_back` (the experiment's span).
pub fn spawn_tenant_snapshots(
    bus: &Bus,
    tenants: TenantService,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let mut events = bus.subscribe();
    let bus = bus.clone();
    tokio::spawn(async move {
        let mut started: BTreeMap<String, Timestamp> = BTreeMap::new();
        loop {
            let event = tokio::select! {
                biased;
                event = events.recv() => event,
                _ = cancel.cancelled() => return,
            };
            let event = match event {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let (experiment, phase, window_ms) = match event.kind {
                EventKind::ChaosStarted {
                    experiment, until, ..
                } => {
                    started.insert(experiment.clone(), event.at);
                    (experiment, SnapshotPhase::Before, until.0 - event.at.0)
                }
                EventKind::ChaosRolledBack { experiment, .. } => {
                    let Some(at) = started.remove(&experiment) else {
                        continue;
                    };
                    (experiment, SnapshotPhase::During, event.at.0 - at.0)
                }
                _ => continue,
            };
            let window = Duration::from_millis(window_ms.max(1) as u64);
            let now = Timestamp::now().as_millis();
            let Some(top) = tenants.top(RankBy::Errors, window, SNAPSHOT_TENANTS, now) else {
                continue;
            };
            bus.publish(snapshot(experiment, phase, top));
        }
    })
}

fn snapshot(experiment: String, phase: SnapshotPhase, top: TopTenants) -> EventKind {
    EventKind::TenantSnapshot {
        experiment,
        phase,
        window_ms: top.window_ms,
        total_requests: top.total_requests,
        total_errors: top.total_errors,
        tenants: top
            .tenants
            .into_iter()
            .map(|t| TenantFigures {
                tenant_id: t.tenant_id,
                requests: t.requests,
                errors: t.errors,
                error_share: t.error_share,
                p95_ms: t.p95_ms,
            })
            .collect(),
    }
}
