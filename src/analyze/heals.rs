//! Heal-side findings: success rate and median time-to-recover per probe (from `heal_finished`
//! and `incident_closed`), and restart budgets that ran out (`heal_gave_up`).

use std::collections::BTreeMap;

use super::{median, BudgetExhausted, Evidence, HealOutcome};
use crate::event::{EventKind, JournaledEvent};

#[derive(Default)]
struct Tally {
    heals: usize,
    heals_ok: usize,
    incidents: usize,
    healed: usize,
    recover_ms: Vec<u64>,
    evidence: Evidence,
}

/// One entry per probe that was healed or had an incident closed, by name.
pub(super) fn outcomes(events: &[&JournaledEvent]) -> Vec<HealOutcome> {
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for journaled in events {
        let tally = match &journaled.event.kind {
            EventKind::HealFinished { probe, ok, .. } => {
                let tally = tallies.entry(probe).or_default();
                tally.heals += 1;
                tally.heals_ok += usize::from(*ok);
                tally
            }
            EventKind::IncidentClosed {
                probe,
                healed,
                time_to_recover_ms,
                ..
            } => {
                let tally = tallies.entry(probe).or_default();
                tally.incidents += 1;
                tally.healed += usize::from(*healed);
                tally.recover_ms.extend(*time_to_recover_ms);
                tally
            }
            _ => continue,
        };
        tally.evidence.add(journaled.id, journaled.event.at);
    }
    tallies
        .into_iter()
        .map(|(probe, mut t)| HealOutcome {
            probe: probe.to_string(),
            heals: t.heals,
            heals_ok: t.heals_ok,
            success_rate: (t.heals > 0).then(|| t.heals_ok as f64 / t.heals as f64),
            incidents_closed: t.incidents,
            incidents_healed: t.healed,
            median_time_to_recover_ms: median(&mut t.recover_ms),
            evidence: t.evidence,
        })
        .collect()
}

/// Probes whose restart budget ran out, most often first.
pub(super) fn budgets_exhausted(events: &[&JournaledEvent]) -> Vec<BudgetExhausted> {
    let mut by_probe: BTreeMap<&str, BudgetExhausted> = BTreeMap::new();
    for journaled in events {
        let EventKind::HealGaveUp {
            probe, attempts, ..
        } = &journaled.event.kind
        else {
            continue;
        };
        let entry = by_probe.entry(probe).or_insert_with(|| BudgetExhausted {
            probe: probe.clone(),
            times: 0,
            max_attempts: 0,
            evidence: Evidence::default(),
        });
        entry.times += 1;
        entry.max_attempts = entry.max_attempts.max(*attempts);
        entry.evidence.add(journaled.id, journaled.event.at);
    }
    let mut found: Vec<BudgetExhausted> = by_probe.into_values().collect();
    found.sort_by(|a, b| (b.times, &a.probe).cmp(&(a.times, &b.probe)));
    found
}
