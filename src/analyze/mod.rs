//! Failure patterns: a pure, deterministic pass over journaled events that names the probes that
//! fail most, recurring and flapping failures, reason clusters, heal outcomes and tenant spikes.
//!
//! Every finding carries its evidence (counts, times, event ids) so a person can check it with
//! `sentinelctl events`. Same events in, same findings out: maps are ordered, ties broken by name.

mod heals;
mod outages;
mod patterns;
mod tenants;

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::event::{JournaledEvent, Timestamp};
pub use outages::{outages, Outage, OutageTracker};

/// The event kinds the analysis reads; the API asks the journal for these only.
pub const ANALYZED_KINDS: [&str; 5] = [
    "probe_transition",
    "heal_finished",
    "heal_gave_up",
    "incident_closed",
    "tenant_alert_fired",
];

/// Most event ids quoted per finding; `Evidence::count` always has the full number.
pub const MAX_EVIDENCE_IDS: usize = 20;
/// A failure recurs when a probe went down in the same UTC hour of day on this many days.
pub const RECURRING_MIN_DAYS: usize = 2;
/// A probe flaps when it went down this many times ...
pub const FLAP_MIN_DOWNS: usize = 3;
/// ... within this span (milliseconds).
pub const FLAP_WINDOW_MS: i64 = 15 * 60 * 1000;
/// A tenant alert coincides with a probe outage that overlaps this margin around its firing.
pub const COINCIDENCE_MARGIN_MS: i64 = 5 * 60 * 1000;

/// What the analysis was asked to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub since: Timestamp,
    pub until: Timestamp,
}

/// The events behind one finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub count: usize,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// The first [`MAX_EVIDENCE_IDS`] journal ids, oldest first.
    pub event_ids: Vec<i64>,
}

impl Evidence {
    pub(crate) fn add(&mut self, id: i64, at: Timestamp) {
        self.count += 1;
        self.first = Some(self.first.map_or(at, |first| first.min(at)));
        self.last = Some(self.last.map_or(at, |last| last.max(at)));
        if self.event_ids.len() < MAX_EVIDENCE_IDS {
            self.event_ids.push(id);
        }
    }

    pub(crate) fn of(items: impl IntoIterator<Item = (i64, Timestamp)>) -> Self {
        let mut evidence = Self::default();
        for (id, at) in items {
            evidence.add(id, at);
        }
        evidence
    }
}

/// A probe that went Down in the range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailingProbe {
    pub probe: String,
    pub downs: usize,
    /// Sum of Down→Up spans; an outage still open counts until the end of the range.
    pub down_ms: i64,
    /// Median Down→Up span of the outages that ended.
    pub median_down_ms: Option<i64>,
    pub still_down: bool,
    pub evidence: Evidence,
}

/// Outages of one probe in the same UTC hour of day on several days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecurringFailure {
    pub probe: String,
    /// 0-23, UTC.
    pub hour_utc: u8,
    /// The days (YYYY-MM-DD, UTC) it happened on.
    pub days: Vec<String>,
    pub evidence: Evidence,
}

/// A probe that went Down at least [`FLAP_MIN_DOWNS`] times within [`FLAP_WINDOW_MS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flapping {
    pub probe: String,
    /// Most outages that started within one window.
    pub downs_in_window: usize,
    pub window_ms: i64,
    /// Transitions (any state change) of the probe in the whole range.
    pub transitions: usize,
    /// The densest window's outages.
    pub evidence: Evidence,
}

/// Outages that share a failure reason (plus the HTTP status for `http_status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonCluster {
    pub reason: String,
    /// (probe, outages), most first.
    pub probes: Vec<(String, usize)>,
    pub evidence: Evidence,
}

/// How healing went for one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealOutcome {
    pub probe: String,
    pub heals: usize,
    pub heals_ok: usize,
    /// heals_ok ÷ heals, `None` without heals.
    pub success_rate: Option<f64>,
    pub incidents_closed: usize,
    pub incidents_healed: usize,
    /// Median `time_to_recover_ms` of the closed incidents.
    pub median_time_to_recover_ms: Option<u64>,
    pub evidence: Evidence,
}

/// A probe whose restart budget ran out (`heal_gave_up`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetExhausted {
    pub probe: String,
    pub times: usize,
    pub max_attempts: u32,
    pub evidence: Evidence,
}

/// A fired tenant alert, with the probe outages around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSpike {
    pub tenant_id: String,
    pub rule: String,
    pub condition: crate::event::AlertCondition,
    pub value: f64,
    pub threshold: f64,
    pub at: Timestamp,
    pub alert_event_id: i64,
    /// Probes Down within [`COINCIDENCE_MARGIN_MS`] of the alert, by name.
    pub coinciding_probes: Vec<String>,
    /// The alert and the outages it coincides with.
    pub evidence: Evidence,
}

/// Everything `GET /v1/analyze` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub range: Range,
    pub events_analyzed: usize,
    /// The journal held more matching events than one analysis reads: only the newest were used,
    /// so the effective start is the oldest analyzed event.
    #[serde(default)]
    pub truncated: bool,
    pub failing_probes: Vec<FailingProbe>,
    pub recurring: Vec<RecurringFailure>,
    pub flapping: Vec<Flapping>,
    pub reason_clusters: Vec<ReasonCluster>,
    pub heals: Vec<HealOutcome>,
    pub budgets_exhausted: Vec<BudgetExhausted>,
    pub tenant_spikes: Vec<TenantSpike>,
}

impl Analysis {
    /// True when nothing in the range deserves attention.
    pub fn is_quiet(&self) -> bool {
        self.failing_probes.is_empty()
            && self.heals.is_empty()
            && self.budgets_exhausted.is_empty()
            && self.tenant_spikes.is_empty()
    }
}

/// Analyze `events` (any order; only those within `range` count).
pub fn analyze(events: &[JournaledEvent], range: Range) -> Analysis {
    let mut in_range: Vec<&JournaledEvent> = events
        .iter()
        .filter(|e| e.event.at >= range.since && e.event.at <= range.until)
        .collect();
    in_range.sort_by_key(|e| (e.event.at, e.id));
    let outages = outages::collect(&in_range);
    Analysis {
        range,
        events_analyzed: in_range.len(),
        truncated: false,
        failing_probes: patterns::failing_probes(&outages, range.until),
        recurring: patterns::recurring(&outages),
        flapping: patterns::flapping(&in_range, &outages),
        reason_clusters: patterns::reason_clusters(&outages),
        heals: heals::outcomes(&in_range),
        budgets_exhausted: heals::budgets_exhausted(&in_range),
        tenant_spikes: tenants::spikes(&in_range, &outages, range.until),
    }
}

/// The median of `values` (the lower middle for an even count, so it is always a real sample).
pub(crate) fn median<T: Copy + Ord>(values: &mut [T]) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[(values.len() - 1) / 2])
}
