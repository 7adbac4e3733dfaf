//! Outages: each span from a probe's transition to Down until its next transition to Up, read from
//! `probe_transition` events. The one shape every other finding is computed from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, JournaledEvent, Timestamp};

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
    let mut found: Vec<Outage> = Vec::new();
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    for journaled in events {
        let EventKind::ProbeTransition {
            probe,
            to,
            reason,
            status_code,
            ..
        } = &journaled.event.kind
        else {
            continue;
        };
        let at = journaled.event.at;
        match to.as_str() {
            "down" => {
                // A second Down without an Up between (a restart lost it): the first ends here.
                if let Some(index) = open.remove(probe.as_str()) {
                    found[index].up_at = Some(at);
                }
                open.insert(probe, found.len());
                found.push(Outage {
                    probe: probe.clone(),
                    down_event_id: journaled.id,
                    down_at: at,
                    up_event_id: None,
                    up_at: None,
                    reason: reason_key(reason.as_deref(), *status_code),
                });
            }
            "up" => {
                if let Some(index) = open.remove(probe.as_str()) {
                    found[index].up_event_id = Some(journaled.id);
                    found[index].up_at = Some(at);
                }
            }
            _ => {}
        }
    }
    found
}

fn reason_key(reason: Option<&str>, status_code: Option<u16>) -> String {
    match (reason, status_code) {
        (Some("http_status"), Some(code)) => format!("http_status {code}"),
        (Some(reason), _) => reason.to_string(),
        (None, _) => "unknown".to_string(),
    }
}
