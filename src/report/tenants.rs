//! Tenants before versus during the fault, from the two `tenant_snapshot` events the daemon
//! records at the start and at the rollback of an experiment.

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, JournaledEvent, SnapshotPhase, TenantFigures};

/// One side (before or during) of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSide {
    pub window_ms: i64,
    pub total_requests: u64,
    pub total_errors: u64,
}

/// One tenant's numbers on both sides; `None` where it was not among the top tenants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRow {
    pub tenant_id: String,
    pub before: Option<TenantFigures>,
    pub during: Option<TenantFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantComparison {
    pub before: Option<TenantSide>,
    pub during: Option<TenantSide>,
    /// The union of both snapshots' top tenants, the most errors during the fault first.
    pub rows: Vec<TenantRow>,
}

pub(super) fn compare(events: &[&JournaledEvent], id: &str) -> Option<TenantComparison> {
    let mut comparison = TenantComparison {
        before: None,
        during: None,
        rows: Vec::new(),
    };
    let mut seen = false;
    for event in events {
        let EventKind::TenantSnapshot {
            experiment,
            phase,
            window_ms,
            total_requests,
            total_errors,
            tenants,
        } = &event.event.kind
        else {
            continue;
        };
        if experiment != id {
            continue;
        }
        seen = true;
        let side = Some(TenantSide {
            window_ms: *window_ms,
            total_requests: *total_requests,
            total_errors: *total_errors,
        });
        match phase {
            SnapshotPhase::During => comparison.during = side,
            SnapshotPhase::Before => comparison.before = side,
        }
        for figures in tenants {
            let row = match comparison
                .rows
                .iter_mut()
                .find(|r| r.tenant_id == figures.tenant_id)
            {
                Some(row) => row,
                None => {
                    comparison.rows.push(TenantRow {
                        tenant_id: figures.tenant_id.clone(),
                        before: None,
                        during: None,
                    });
                    comparison.rows.last_mut().expect("just pushed")
                }
            };
            match phase {
                SnapshotPhase::During => row.during = Some(figures.clone()),
                SnapshotPhase::Before => row.before = Some(figures.clone()),
            }
        }
    }
    let errors = |row: &TenantRow| row.during.as_ref().map_or(0, |f| f.errors);
    comparison.rows.sort_by(|a, b| {
        errors(b)
            .cmp(&errors(a))
            .then(a.tenant_id.cmp(&b.tenant_id))
    });
    seen.then_some(comparison)
}
