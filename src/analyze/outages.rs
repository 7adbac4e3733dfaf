//! Outages: each span from a probe's transition to Down until its next transition to Up, read from
//! `probe_transition` events. The one shape every other finding is computed from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, FailureReason, JournaledEvent, ProbeState, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub probe: String,
    /// The journal id of the transition to Down.
    pub down_event_id: i64,
    pub down_at: Timestamp,
    /// The journal id and time of the transition back to Up; `None` while still down.
    pub up_event_id: Option<i64>,
    pub up_at: Option<Timestamp>,
    /// The failure reason (`timeout`, `exit_status`, `http_status 503`, ...), `unknown` if none.
    pub reason: String,
}

impl Outage {
    /// How long it lasted, counting an open outage until `until`.
    pub fn duration_ms(&self, until: Timestamp) -> i64 {
        (self.up_at.unwrap_or(until).as_millis() - self.down_at.as_millis()).max(0)
    }

    /// True when the outage overlaps `[from, to]`.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        let end = self.up_at.map_or(i64::MAX, Timestamp::as_millis);
        self.down_at.as_millis() <= to && end >= from
    }
}

/// The outages in `events` (any order), oldest first.
pub fn outages(events: &[JournaledEvent]) -> Vec<Outage> {
    let mut sorted: Vec<&JournaledEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (e.event.at, e.id));
    collect(&sorted)
}

/// `events` must be in time order.
pub(super) fn collect(events: &[&JournaledEvent]) -> Vec<Outage> {
    let mut tracker = OutageTracker::default();
    for journaled in events {
        tracker.push(journaled);
    }
    tracker.found
}

/// Outages built one transition at a time, in time order: [`outages`] feeds it a whole list, the
/// status page feeds it the journal's new rows on each refresh.
#[derive(Debug, Clone, Default)]
pub struct OutageTracker {
    found: Vec<Outage>,
    /// Index in `found` of each probe's open outage.
    open: BTreeMap<String, usize>,
}

impl OutageTracker {
    pub fn push(&mut self, journaled: &JournaledEvent) {
        let EventKind::ProbeTransition {
            probe,
            to,
            reason,
            status_code,
            ..
        } = &journaled.event.kind
        else {
            return;
        };
        let at = journaled.event.at;
        match to {
            ProbeState::Down => {
                // A second Down without an Up between (a restart lost it): the first ends here.
                if let Some(index) = self.open.remove(probe.as_str()) {
                    self.found[index].up_at = Some(at);
                }
                self.open.insert(probe.clone(), self.found.len());
                self.found.push(Outage {
                    probe: probe.clone(),
                    down_event_id: journaled.id,
                    down_at: at,
                    up_event_id: None,
                    up_at: None,
                    reason: reason_key(*reason, *status_code),
                });
            }
            ProbeState::Up => {
                if let Some(index) = self.open.remove(probe.as_str()) {
                    self.found[index].up_event_id = Some(journaled.id);
                    self.found[index].up_at = Some(at);
                }
            }
            ProbeState::Unknown | ProbeState::Failing | ProbeState::Recovering => {}
        }
    }

    /// Every outage kept, oldest first.
    pub fn outages(&self) -> &[Outage] {
        &self.found
    }

    /// Keep the outages that went down at or after `since`, and of the closed ones only the
    /// newest `closed`: bounded memory however long the daemon runs. Open outages stay.
    pub fn retain(&mut self, since: Timestamp, closed: usize) {
        let ended = self.found.iter().filter(|o| o.up_at.is_some()).count();
        let mut to_drop = ended.saturating_sub(closed);
        let kept: Vec<Outage> = std::mem::take(&mut self.found)
            .into_iter()
            .filter(|outage| {
                if outage.down_at < since {
                    to_drop = to_drop.saturating_sub(usize::from(outage.up_at.is_some()));
                    return false;
                }
                if outage.up_at.is_some() && to_drop > 0 {
                    to_drop -= 1;
                    return false;
                }
                true
            })
            .collect();
        self.open = kept
            .iter()
            .enumerate()
            .filter(|(_, o)| o.up_at.is_none())
            .map(|(i, o)| (o.probe.clone(), i))
            .collect();
        self.found = kept;
    }
}

fn reason_key(reason: Option<FailureReason>, status_code: Option<u16>) -> String {
    match (reason, status_code) {
        (Some(FailureReason::HttpStatus), Some(code)) => format!("http_status {code}"),
        (Some(reason), _) => reason.to_string(),
        (None, _) => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tracker_tests {
    use super::*;
    use crate::event::Event;

    fn transition(id: i64, probe: &str, to: ProbeState) -> JournaledEvent {
        JournaledEvent {
            id,
            event: Event {
                at: Timestamp(id * 1000),
                kind: EventKind::ProbeTransition {
                    probe: probe.into(),
                    from: ProbeState::Unknown,
                    to,
                    reason: Some(FailureReason::Timeout),
                    status_code: None,
                    latency_ms: None,
                    recoveries_total: 0,
                },
            },
        }
    }

    #[test]
    fn fed_in_pieces_it_finds_what_one_pass_finds_and_retain_bounds_it() {
        let events: Vec<JournaledEvent> = (1..=40)
            .map(|id| {
                let probe = ["a", "b", "c"][(id % 3) as usize];
                let to = if (id / 3) % 2 == 0 {
                    ProbeState::Down
                } else {
                    ProbeState::Up
                };
                transition(id, probe, to)
            })
            .collect();
        let mut tracker = OutageTracker::default();
        for chunk in events.chunks(7) {
            chunk.iter().for_each(|e| tracker.push(e));
        }
        assert_eq!(tracker.outages(), outages(&events).as_slice());

        let all = tracker.outages().to_vec();
        tracker.retain(Timestamp(10_000), 2);
        let open: Vec<&Outage> = all
            .iter()
            .filter(|o| o.up_at.is_none() && o.down_at >= Timestamp(10_000))
            .collect();
        let kept = tracker.outages();
        assert_eq!(kept.iter().filter(|o| o.up_at.is_some()).count(), 2);
        assert_eq!(
            kept.iter().filter(|o| o.up_at.is_none()).count(),
            open.len()
        );
        let newest_closed: Vec<&Outage> = all.iter().filter(|o| o.up_at.is_some()).collect();
        assert_eq!(
            kept.iter()
                .filter(|o| o.up_at.is_some())
                .collect::<Vec<_>>(),
            newest_closed[newest_closed.len() - 2..].to_vec()
        );
        // After retain, an Up still closes the open outage it belongs to.
        let probe = open[0].probe.clone();
        tracker.push(&transition(100, &probe, ProbeState::Up));
        assert!(tracker
            .outages()
            .iter()
            .all(|o| o.probe != probe || o.up_at.is_some()));
    }
}
