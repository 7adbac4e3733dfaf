//! Drills a crash interrupted: a `drill_started` in the journal without its `drill_finished`.
//! At start they are closed as aborted, so the journal never shows a drill running forever.
//! (The chaos engine's own recovery rolls back the experiment such a drill had in place.)

use std::collections::BTreeMap;

use crate::event::{EventKind, JournaledEvent};

/// The journal kinds this reads.
pub const DRILL_KINDS: [&str; 3] = [
    "drill_started",
    "drill_expectation_checked",
    "drill_finished",
];

/// Why such a drill ended, as its `drill_finished` says.
pub const INTERRUPTED: &str = "sentineld stopped during the drill without finishing it (crash or kill); its experiment was rolled back by chaos recovery at the next start";

/// `drill_finished` events (outcome `aborted`) for the drills in `events` that never finished,
/// with the expectations they had decided so far.
pub fn close_interrupted(events: &[JournaledEvent]) -> Vec<EventKind> {
    // drill id -> (name, met, missed)
    let mut open: BTreeMap<&str, (&str, usize, usize)> = BTreeMap::new();
    for journaled in events {
        match &journaled.event.kind {
            EventKind::DrillStarted { drill, name, .. } => {
                open.insert(drill, (name, 0, 0));
            }
            EventKind::DrillExpectationChecked { drill, verdict, .. } => {
                if let Some((_, met, missed)) = open.get_mut(drill.as_str()) {
                    match verdict.as_str() {
                        "met" => *met += 1,
                        _ => *missed += 1,
                    }
                }
            }
            EventKind::DrillFinished { drill, .. } => {
                open.remove(drill.as_str());
            }
            _ => {}
        }
    }
    open.into_iter()
        .map(|(drill, (name, met, missed))| EventKind::DrillFinished {
            drill: drill.to_string(),
            name: name.to_string(),
            outcome: "aborted".into(),
            met,
            missed,
            reason: Some(INTERRUPTED.into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Timestamp};

    fn at(id: i64, kind: EventKind) -> JournaledEvent {
        JournaledEvent {
            id,
            event: Event {
                at: Timestamp(id),
                kind,
            },
        }
    }

    fn started(id: i64, drill: &str) -> JournaledEvent {
        let kind = EventKind::DrillStarted {
            drill: drill.into(),
            name: "gameday".into(),
            steps: 2,
            probes: vec!["sql".into()],
            alerts: vec![],
        };
        at(id, kind)
    }

    fn checked(id: i64, drill: &str, verdict: &str) -> JournaledEvent {
        let kind = EventKind::DrillExpectationChecked {
            drill: drill.into(),
            name: "gameday".into(),
            step: 1,
            expectation: "probe sql up within 30s".into(),
            verdict: verdict.into(),
            measured_ms: Some(1_000),
            limit_ms: Some(30_000),
            detail: String::new(),
        };
        at(id, kind)
    }

    fn finished(id: i64, drill: &str) -> JournaledEvent {
        let kind = EventKind::DrillFinished {
            drill: drill.into(),
            name: "gameday".into(),
            outcome: "passed".into(),
            met: 1,
            missed: 0,
            reason: None,
        };
        at(id, kind)
    }

    #[test]
    fn only_unfinished_drills_are_closed_with_what_they_decided() {
        type Case = (
            &'static str,
            Vec<JournaledEvent>,
            Vec<(&'static str, usize, usize)>,
        );
        let cases: Vec<Case> = vec![
            ("nothing journaled", vec![], vec![]),
            (
                "finished",
                vec![started(1, "d1"), checked(2, "d1", "met"), finished(3, "d1")],
                vec![],
            ),
            (
                "interrupted before any check",
                vec![started(1, "d1")],
                vec![("d1", 0, 0)],
            ),
            (
                "interrupted after checks",
                vec![
                    started(1, "d1"),
                    checked(2, "d1", "met"),
                    checked(3, "d1", "missed"),
                    checked(4, "d1", "met"),
                ],
                vec![("d1", 2, 1)],
            ),
            (
                "one finished, a later one interrupted",
                vec![started(1, "d1"), finished(2, "d1"), started(3, "d2")],
                vec![("d2", 0, 0)],
            ),
            (
                "a check whose start is outside the events is ignored",
                vec![checked(1, "d0", "met")],
                vec![],
            ),
        ];
        for (name, events, expected) in cases {
            let closed: Vec<(String, usize, usize)> = close_interrupted(&events)
                .into_iter()
                .map(|kind| match kind {
                    EventKind::DrillFinished {
                        drill,
                        outcome,
                        met,
                        missed,
                        reason,
                        ..
                    } => {
                        assert_eq!(outcome, "aborted", "{name}");
                        assert_eq!(reason.as_deref(), Some(INTERRUPTED), "{name}");
                        (drill, met, missed)
                    }
                    other => panic!("{name}: {other:?}"),
                })
                .collect();
            let expected: Vec<(String, usize, usize)> = expected
                .into_iter()
                .map(|(d, m, x)| (d.to_string(), m, x))
                .collect();
            assert_eq!(closed, expected, "{name}");
        }
    }
}
