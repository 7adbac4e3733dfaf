//! Probe-side findings from outages: who fails most, at what hour of day it recurs, who flaps,
//! and which failure reasons cluster.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    median, Evidence, FailingProbe, Flapping, Outage, ReasonCluster, RecurringFailure,
    FLAP_MIN_DOWNS, FLAP_WINDOW_MS, RECURRING_MIN_DAYS,
};
use crate::event::{EventKind, JournaledEvent, Timestamp};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn by_probe(outages: &[Outage]) -> BTreeMap<&str, Vec<&Outage>> {
    let mut grouped: BTreeMap<&str, Vec<&Outage>> = BTreeMap::new();
    for outage in outages {
        grouped.entry(&outage.probe).or_default().push(outage);
    }
    grouped
}

fn evidence_of<'a>(outages: impl IntoIterator<Item = &'a Outage>) -> Evidence {
    Evidence::of(outages.into_iter().map(|o| (o.down_event_id, o.down_at)))
}

/// Most outages first; then longest down; then name.
pub(super) fn failing_probes(outages: &[Outage], until: Timestamp) -> Vec<FailingProbe> {
    let mut found: Vec<FailingProbe> = by_probe(outages)
        .into_iter()
        .map(|(probe, outages)| {
            let mut ended: Vec<i64> = outages
                .iter()
                .filter(|o| o.up_at.is_some())
                .map(|o| o.duration_ms(until))
                .collect();
            FailingProbe {
                probe: probe.to_string(),
                downs: outages.len(),
                down_ms: outages.iter().map(|o| o.duration_ms(until)).sum(),
                median_down_ms: median(&mut ended),
                still_down: outages.last().is_some_and(|o| o.up_at.is_none()),
                evidence: evidence_of(outages.iter().copied()),
            }
        })
        .collect();
    found.sort_by(|a, b| (b.downs, b.down_ms, &a.probe).cmp(&(a.downs, a.down_ms, &b.probe)));
    found
}

/// Per probe and UTC hour of day: outages on at least [`RECURRING_MIN_DAYS`] distinct days.
pub(super) fn recurring(outages: &[Outage]) -> Vec<RecurringFailure> {
    let mut found = Vec::new();
    for (probe, outages) in by_probe(outages) {
        let mut by_hour: BTreeMap<u8, Vec<&Outage>> = BTreeMap::new();
        for outage in outages {
            let hour = (outage.down_at.as_millis().rem_euclid(DAY_MS) / HOUR_MS) as u8;
            by_hour.entry(hour).or_default().push(outage);
        }
        for (hour, outages) in by_hour {
            let days: BTreeSet<i64> = outages
                .iter()
                .map(|o| o.down_at.as_millis().div_euclid(DAY_MS))
                .collect();
            if days.len() < RECURRING_MIN_DAYS {
                continue;
            }
            found.push(RecurringFailure {
                probe: probe.to_string(),
                hour_utc: hour,
                days: days.into_iter().map(day_name).collect(),
                evidence: evidence_of(outages),
            });
        }
    }
    found.sort_by(|a, b| {
        (b.days.len(), &a.probe, a.hour_utc).cmp(&(a.days.len(), &b.probe, b.hour_utc))
    });
    found
}

fn day_name(day: i64) -> String {
    let text = Timestamp(day * DAY_MS).to_rfc3339();
    text.get(..10).unwrap_or(&text).to_string()
}

/// Probes with at least [`FLAP_MIN_DOWNS`] outages starting within one [`FLAP_WINDOW_MS`].
pub(super) fn flapping(events: &[&JournaledEvent], outages: &[Outage]) -> Vec<Flapping> {
    let mut transitions: BTreeMap<&str, usize> = BTreeMap::new();
    for journaled in events {
        if let EventKind::ProbeTransition { probe, .. } = &journaled.event.kind {
            *transitions.entry(probe).or_default() += 1;
        }
    }
    let mut found = Vec::new();
    for (probe, outages) in by_probe(outages) {
        // Two pointers over start times: the densest window that starts at an outage.
        let mut best = (0, 0);
        let mut end = 0;
        for start in 0..outages.len() {
            let limit = outages[start].down_at.as_millis() + FLAP_WINDOW_MS;
            end = end.max(start);
            while end < outages.len() && outages[end].down_at.as_millis() < limit {
                end += 1;
            }
            if end - start > best.1 - best.0 {
                best = (start, end);
            }
        }
        let downs_in_window = best.1 - best.0;
        if downs_in_window < FLAP_MIN_DOWNS {
            continue;
        }
        found.push(Flapping {
            probe: probe.to_string(),
            downs_in_window,
            window_ms: FLAP_WINDOW_MS,
            transitions: transitions.get(probe).copied().unwrap_or_default(),
            evidence: evidence_of(outages[best.0..best.1].iter().copied()),
        });
    }
    found.sort_by(|a, b| (b.downs_in_window, &a.probe).cmp(&(a.downs_in_window, &b.probe)));
    found
}

/// Outages grouped by reason, biggest cluster first.
pub(super) fn reason_clusters(outages: &[Outage]) -> Vec<ReasonCluster> {
    let mut by_reason: BTreeMap<&str, Vec<&Outage>> = BTreeMap::new();
    for outage in outages {
        by_reason.entry(&outage.reason).or_default().push(outage);
    }
    let mut found: Vec<ReasonCluster> = by_reason
        .into_iter()
        .map(|(reason, outages)| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for outage in &outages {
                *counts.entry(&outage.probe).or_default() += 1;
            }
            let mut probes: Vec<(String, usize)> = counts
                .into_iter()
                .map(|(probe, n)| (probe.to_string(), n))
                .collect();
            probes.sort_by(|a, b| (b.1, &a.0).cmp(&(a.1, &b.0)));
            ReasonCluster {
                reason: reason.to_string(),
                probes,
                evidence: evidence_of(outages),
            }
        })
        .collect();
    found.sort_by(|a, b| (b.evidence.count, &a.reason).cmp(&(a.evidence.count, &b.reason)));
    found
}
