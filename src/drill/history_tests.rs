//! Runs rebuilt from hand-made journals, and the closing of interrupted ones.

use super::*;
use crate::event::{DrillOutcome, Event, ExpectationVerdict};
use ExpectationVerdict::{Met, Missed};

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
        target: (drill == "d1").then(|| "sql".into()),
    };
    at(id, kind)
}

fn step(id: i64, drill: &str, step: usize, experiment: &str) -> JournaledEvent {
    let kind = EventKind::DrillStepStarted {
        drill: drill.into(),
        name: "gameday".into(),
        step,
        experiment: experiment.into(),
        faults: vec!["container kill".into()],
    };
    at(id, kind)
}

fn checked(id: i64, drill: &str, verdict: ExpectationVerdict) -> JournaledEvent {
    let kind = EventKind::DrillExpectationChecked {
        drill: drill.into(),
        name: "gameday".into(),
        step: 1,
        expectation: "probe sql up within 30s".into(),
        verdict,
        measured_ms: Some(1_000),
        limit_ms: Some(30_000),
        detail: "up after 1.0 s".into(),
    };
    at(id, kind)
}

fn finished(id: i64, drill: &str, outcome: DrillOutcome) -> JournaledEvent {
    let kind = EventKind::DrillFinished {
        drill: drill.into(),
        name: "gameday".into(),
        outcome,
        met: 1,
        missed: 0,
        reason: (outcome == DrillOutcome::Aborted).then(|| "stopped by an operator".into()),
        detect_ms: (outcome != DrillOutcome::Aborted).then_some(900),
        act_ms: None,
        recover_ms: (outcome != DrillOutcome::Aborted).then_some(4_200),
    };
    at(id, kind)
}

#[test]
fn runs_are_rebuilt_with_their_steps_results_and_outcome() {
    let events = vec![
        started(1, "d1"),
        step(2, "d1", 1, "x1"),
        checked(3, "d1", Met),
        step(4, "d1", 2, "x2"),
        checked(5, "d1", Missed),
        finished(6, "d1", DrillOutcome::Failed),
        started(7, "d2"),
        finished(8, "d2", DrillOutcome::Aborted),
        started(9, "d3"),
        step(10, "d3", 1, "x3"),
        // a check of a run whose start is outside the events changes nothing
        checked(11, "d0", Met),
    ];
    let runs = runs_from_journal(&events);
    let summary: Vec<(&str, RunState, usize, usize, Option<i64>)> = runs
        .iter()
        .map(|r| {
            let ended = r.ended.map(|t| t.as_millis());
            (r.id.as_str(), r.state, r.step, r.results.len(), ended)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("d1", RunState::Failed, 2, 2, Some(6)),
            ("d2", RunState::Aborted, 0, 0, Some(8)),
            ("d3", RunState::Running, 1, 0, None),
        ]
    );
    assert_eq!(runs[0].experiments, ["x1", "x2"]);
    assert_eq!(runs[0].steps, 2);
    assert_eq!(runs[0].started, Timestamp(1));
    assert!(runs[0].results[0].met && !runs[0].results[1].met);
    assert_eq!(runs[0].results[0].measured_ms, Some(1_000));
    assert_eq!(runs[1].reason.as_deref(), Some("stopped by an operator"));
    // the picked target and the run's times come back for `drill trend`
    assert_eq!(runs[0].target.as_deref(), Some("sql"));
    assert_eq!(runs[1].target, None);
    assert_eq!(
        runs[0].timings,
        crate::drill::Timings {
            detect_ms: Some(900),
            act_ms: None,
            recover_ms: Some(4_200)
        }
    );
    assert_eq!(runs[1].timings, crate::drill::Timings::default());
}

#[test]
fn only_running_runs_are_closed_with_what_they_decided() {
    type Case = (
        &'static str,
        Vec<JournaledEvent>,
        Vec<(&'static str, usize, usize)>,
    );
    let cases: Vec<Case> = vec![
        ("nothing journaled", vec![], vec![]),
        (
            "finished",
            vec![
                started(1, "d1"),
                checked(2, "d1", Met),
                finished(3, "d1", DrillOutcome::Passed),
            ],
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
                checked(2, "d1", Met),
                checked(3, "d1", Missed),
                checked(4, "d1", Met),
            ],
            vec![("d1", 2, 1)],
        ),
        (
            "one finished, a later one interrupted",
            vec![
                started(1, "d1"),
                finished(2, "d1", DrillOutcome::Passed),
                started(3, "d2"),
            ],
            vec![("d2", 0, 0)],
        ),
    ];
    for (name, events, expected) in cases {
        let mut runs = runs_from_journal(&events);
        let closed: Vec<(String, usize, usize)> = close_interrupted(&mut runs, Timestamp(99))
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
                    assert_eq!(outcome, DrillOutcome::Aborted, "{name}");
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
        assert!(
            runs.iter().all(|r| r.state != RunState::Running),
            "{name}: every run is closed"
        );
    }
}

#[test]
fn each_outcome_rebuilds_its_run_state() {
    // (outcome journaled, state rebuilt)
    let cases = [
        (DrillOutcome::Passed, RunState::Passed),
        (DrillOutcome::Failed, RunState::Failed),
        (DrillOutcome::Aborted, RunState::Aborted),
    ];
    for (outcome, want) in cases {
        let runs = runs_from_journal(&[started(1, "d1"), finished(2, "d1", outcome)]);
        assert_eq!(runs[0].state, want, "{outcome}");
        assert_eq!(runs[0].state.as_str(), outcome.as_str(), "{outcome}");
    }
}
