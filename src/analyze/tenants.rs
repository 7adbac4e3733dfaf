//! Tenant-side findings: every fired tenant alert, with the probe outages that overlap it, so a
//! tenant's error spike can be told apart from (or tied to) a service being down.

use std::collections::BTreeSet;

use super::{Evidence, Outage, TenantSpike, COINCIDENCE_MARGIN_MS};
use crate::event::{EventKind, JournaledEvent, Timestamp};

/// Alerts in time order; `until` closes outages still open.
pub(super) fn spikes(
    events: &[&JournaledEvent],
    outages: &[Outage],
    until: Timestamp,
) -> Vec<TenantSpike> {
    let mut found = Vec::new();
    for journaled in events {
        let EventKind::TenantAlertFired {
            rule,
            tenant_id,
            condition,
            value,
            threshold,
            ..
        } = &journaled.event.kind
        else {
            continue;
        };
        let at = journaled.event.at;
        let from = at.as_millis() - COINCIDENCE_MARGIN_MS;
        let to = at.as_millis() + COINCIDENCE_MARGIN_MS;
        let overlapping: Vec<&Outage> = outages
            .iter()
            .filter(|o| o.down_at <= until && o.overlaps(from, to))
            .collect();
        let probes: BTreeSet<&str> = overlapping.iter().map(|o| o.probe.as_str()).collect();
        let mut evidence = Evidence::of(std::iter::once((journaled.id, at)));
        for outage in &overlapping {
            evidence.add(outage.down_event_id, outage.down_at);
        }
        found.push(TenantSpike {
            tenant_id: tenant_id.clone(),
            rule: rule.clone(),
            condition: *condition,
            value: *value,
            threshold: *threshold,
            at,
            alert_event_id: journaled.id,
            coinciding_probes: probes.into_iter().map(String::from).collect(),
            evidence,
        });
    }
    found
}
