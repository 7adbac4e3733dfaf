//! Which chaos experiments are running, read from the journal's chaos events: a started
//! experiment without a rollback or abort is still in place.
//!
//! Reading the journal (instead of asking the chaos engine) keeps the page on the one-way event
//! flow, and shows an experiment that a restarted daemon is still rolling back as running too.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ActiveExperiment;
use crate::event::{EventKind, JournaledEvent, Timestamp};

/// How far back to look for a start: longer than any experiment runs in practice
/// (`chaos.max_duration` defaults to one hour), so a running one is not missed.
pub const EXPERIMENT_HORIZON: Duration = Duration::from_secs(2 * 24 * 3600);

/// The journal kinds this reads.
pub const EXPERIMENT_KINDS: [&str; 3] = ["chaos_started", "chaos_rolled_back", "chaos_aborted"];

/// Experiments started in `events` and not yet ended, soonest to end first.
pub fn running_experiments(events: &[JournaledEvent]) -> Vec<ActiveExperiment> {
    let mut sorted: Vec<&JournaledEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (e.event.at, e.id));
    let mut tracker = ExperimentTracker::default();
    for journaled in sorted {
        tracker.push(journaled);
    }
    tracker.running(Timestamp(i64::MIN))
}

/// Started-but-not-ended experiments, fed one chaos event at a time (in time order); holds only
/// the running ones, so it stays small however long the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct ExperimentTracker {
    /// By experiment id: when it started, and what the page shows.
    running: BTreeMap<String, (Timestamp, ActiveExperiment)>,
}

impl ExperimentTracker {
    pub fn push(&mut self, journaled: &JournaledEvent) {
        match &journaled.event.kind {
            EventKind::ChaosStarted {
                experiment,
                profile,
                target,
                faults,
                until,
            } => {
                let name = profile.clone().unwrap_or_else(|| faults.join(", "));
                let shown = ActiveExperiment {
                    id: experiment.clone(),
                    name,
                    target: target.clone(),
                    ends_at: *until,
                };
                self.running
                    .insert(experiment.clone(), (journaled.event.at, shown));
            }
            EventKind::ChaosRolledBack { experiment, .. }
            | EventKind::ChaosAborted { experiment, .. } => {
                self.running.remove(experiment.as_str());
            }
            _ => {}
        }
    }

    /// Those started at or after `since`, soonest to end first.
    pub fn running(&self, since: Timestamp) -> Vec<ActiveExperiment> {
        let mut active: Vec<ActiveExperiment> = self
            .running
            .values()
            .filter(|(started, _)| *started >= since)
            .map(|(_, shown)| shown.clone())
            .collect();
        active.sort_by(|a, b| a.ends_at.cmp(&b.ends_at).then_with(|| a.id.cmp(&b.id)));
        active
    }

    /// Forget experiments started before `since` (the page no longer shows them).
    pub fn retain(&mut self, since: Timestamp) {
        self.running.retain(|_, (started, _)| *started >= since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn journaled(id: i64, at: i64, kind: EventKind) -> JournaledEvent {
        JournaledEvent {
            id,
            event: Event {
                at: Timestamp(at),
                kind,
            },
        }
    }

    fn started(
        id: i64,
        at: i64,
        experiment: &str,
        profile: Option<&str>,
        until: i64,
    ) -> JournaledEvent {
        let kind = EventKind::ChaosStarted {
            experiment: experiment.into(),
            profile: profile.map(Into::into),
            target: "netns lab / veth0".into(),
            faults: vec!["tbf rate 1mbit".into(), "netem delay 100ms".into()],
            until: Timestamp(until),
        };
        journaled(id, at, kind)
    }

    fn rolled_back(id: i64, at: i64, experiment: &str) -> JournaledEvent {
        let kind = EventKind::ChaosRolledBack {
            experiment: experiment.into(),
            profile: None,
            trigger: crate::event::RollbackTrigger::Stop,
            ok: true,
            detail: String::new(),
        };
        journaled(id, at, kind)
    }

    fn aborted(id: i64, at: i64, experiment: &str) -> JournaledEvent {
        let kind = EventKind::ChaosAborted {
            experiment: experiment.into(),
            profile: None,
            reason: "kernel refused".into(),
        };
        journaled(id, at, kind)
    }

    #[test]
    fn running_is_started_minus_ended() {
        let cases: Vec<(&str, Vec<JournaledEvent>, Vec<&str>)> = vec![
            ("nothing journaled", vec![], vec![]),
            (
                "one started",
                vec![started(1, 10, "x1", Some("slow-db"), 100)],
                vec!["x1"],
            ),
            (
                "rolled back",
                vec![started(1, 10, "x1", None, 100), rolled_back(2, 20, "x1")],
                vec![],
            ),
            (
                "aborted",
                vec![started(1, 10, "x1", None, 100), aborted(2, 20, "x1")],
                vec![],
            ),
            (
                "events out of order are sorted by time first",
                vec![rolled_back(2, 20, "x1"), started(1, 10, "x1", None, 100)],
                vec![],
            ),
            (
                "soonest to end first",
                vec![
                    started(1, 10, "late", None, 900),
                    started(2, 11, "soon", None, 200),
                    started(3, 12, "gone", None, 100),
                    rolled_back(4, 13, "gone"),
                ],
                vec!["soon", "late"],
            ),
            (
                "an end whose start is past the horizon changes nothing",
                vec![rolled_back(1, 5, "old"), started(2, 10, "x1", None, 100)],
                vec!["x1"],
            ),
        ];
        for (name, events, expected) in cases {
            let ids: Vec<String> = running_experiments(&events)
                .into_iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(ids, expected, "{name}");
        }
    }

    #[test]
    fn name_is_the_profile_or_else_the_faults() {
        let named = running_experiments(&[started(1, 10, "x1", Some("slow-db"), 100)]);
        assert_eq!(named[0].name, "slow-db");
        assert_eq!(named[0].target, "netns lab / veth0");
        assert_eq!(named[0].ends_at, Timestamp(100));
        let inline = running_experiments(&[started(1, 10, "x2", None, 100)]);
        assert_eq!(inline[0].name, "tbf rate 1mbit, netem delay 100ms");
    }
}
