//! The timeline: the experiment's own events and everything probes, heals, archives and tenant
//! alerts did in its window, each with its offset from the experiment's start.

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, JournaledEvent, Timestamp};

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Journal id (`sentinelctl events` shows it).
    pub event_id: i64,
    pub at: Timestamp,
    /// Milliseconds after the experiment's start (when it was journaled, before any change).
    pub offset_ms: i64,
    pub kind: String,
    pub text: String,
}

/// The events of the window worth a line, oldest first. Other experiments and tenant snapshots
/// (shown in their own table) are left out.
pub(super) fn entries(events: &[&JournaledEvent], id: &str, zero: Timestamp) -> Vec<TimelineEntry> {
    events
        .iter()
        .filter(|e| belongs(&e.event.kind, id))
        .map(|e| TimelineEntry {
            event_id: e.id,
            at: e.event.at,
            offset_ms: e.event.at.0 - zero.0,
            kind: e.event.kind.name().to_string(),
            text: e.event.kind.summary(),
        })
        .collect()
}

fn belongs(kind: &EventKind, id: &str) -> bool {
    match kind {
        EventKind::ChaosStarted { experiment, .. }
        | EventKind::ChaosAborted { experiment, .. }
        | EventKind::ChaosRolledBack { experiment, .. }
        | EventKind::ChaosDrifted { experiment, .. }
        | EventKind::DrillStepStarted { experiment, .. } => experiment == id,
        EventKind::ProbeTransition { .. }
        | EventKind::ContainerEvent { .. }
        | EventKind::DependencyRecovered { .. }
        | EventKind::HealStarted { .. }
        | EventKind::HealFinished { .. }
        | EventKind::HealGaveUp { .. }
        | EventKind::IncidentClosed { .. }
        | EventKind::EventsDropped { .. }
        | EventKind::TenantAlertFired { .. }
        | EventKind::TenantAlertResolved { .. }
        | EventKind::ArchiveStarted { .. }
        | EventKind::ArchiveSpooled { .. }
        | EventKind::ArchiveUploaded { .. }
        | EventKind::ArchiveFailed { .. }
        | EventKind::ProbeSilenced { .. }
        | EventKind::DaemonStarted { .. }
        | EventKind::DaemonStopping { .. }
        | EventKind::DrillStarted { .. }
        | EventKind::DrillExpectationChecked { .. }
        | EventKind::DrillFinished { .. }
        | EventKind::RemedyStep { .. }
        | EventKind::RemedyExhausted { .. }
        | EventKind::MaintenanceStarted { .. }
        | EventKind::MaintenanceEnded { .. }
        | EventKind::IncidentRelapsed { .. }
        | EventKind::ProbeDiscovered { .. }
        | EventKind::ProbeUndiscovered { .. } => true,
        EventKind::ConfigApplied { .. }
        | EventKind::ConfigRejected { .. }
        | EventKind::ControlRequest { .. }
        | EventKind::DockerEngine { .. }
        | EventKind::TenantSnapshot { .. }
        | EventKind::DiscoveryLabelInvalid { .. }
        | EventKind::TenantMuted { .. }
        | EventKind::DrillSkipped { .. }
        | EventKind::DrillObjectiveChecked { .. } => false,
    }
}
