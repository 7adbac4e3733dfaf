//! Table-driven tests of each finding's rule at its edges.

use super::*;
use crate::event::{Event, EventKind, FailureReason, ProbeState};

const MIN: i64 = 60_000;

fn at(id: i64, millis: i64, kind: EventKind) -> JournaledEvent {
    JournaledEvent {
        id,
        event: Event {
            at: Timestamp(millis),
            kind,
        },
    }
}

fn moved(
    probe: &str,
    to: ProbeState,
    reason: Option<FailureReason>,
    code: Option<u16>,
) -> EventKind {
    EventKind::ProbeTransition {
        probe: probe.into(),
        from: ProbeState::Unknown,
        to,
        reason,
        status_code: code,
        latency_ms: None,
        recoveries_total: 0,
    }
}

/// `(minute, probe, to)` triples as a journal, ids in order.
fn journal(steps: &[Step]) -> Vec<JournaledEvent> {
    steps
        .iter()
        .enumerate()
        .map(|(i, (minute, probe, to))| {
            at(
                i as i64 + 1,
                minute * MIN,
                moved(probe, *to, Some(FailureReason::Timeout), None),
            )
        })
        .collect()
}

fn everything() -> Range {
    Range {
        since: Timestamp(0),
        until: Timestamp(i64::MAX / 2),
    }
}

/// `(minute, probe, to)`: one transition.
type Step<'a> = (i64, &'a str, ProbeState);
/// `(probe, down minute, up minute)`: one outage.
type Span<'a> = (&'a str, i64, Option<i64>);

#[test]
fn outage_rules() {
    // (journal, expected (probe, down minute, up minute))
    let cases: Vec<(Vec<Step>, Vec<Span>)> = vec![
        (
            vec![(1, "a", ProbeState::Down), (5, "a", ProbeState::Up)],
            vec![("a", 1, Some(5))],
        ),
        (
            vec![(1, "a", ProbeState::Failing), (2, "a", ProbeState::Up)],
            vec![],
        ),
        (
            vec![(1, "a", ProbeState::Down), (3, "a", ProbeState::Recovering)],
            vec![("a", 1, None)],
        ),
        // a lost Up: the second Down closes the first outage
        (
            vec![
                (1, "a", ProbeState::Down),
                (4, "a", ProbeState::Down),
                (9, "a", ProbeState::Up),
            ],
            vec![("a", 1, Some(4)), ("a", 4, Some(9))],
        ),
        (vec![(1, "a", ProbeState::Up)], vec![]),
        (
            vec![
                (1, "a", ProbeState::Down),
                (2, "b", ProbeState::Down),
                (3, "a", ProbeState::Up),
            ],
            vec![("a", 1, Some(3)), ("b", 2, None)],
        ),
    ];
    for (steps, want) in cases {
        let found = outages(&journal(&steps));
        let got: Vec<Span> = found
            .iter()
            .map(|o| {
                (
                    o.probe.as_str(),
                    o.down_at.0 / MIN,
                    o.up_at.map(|t| t.0 / MIN),
                )
            })
            .collect();
        assert_eq!(got, want, "{steps:?}");
    }
}

#[test]
fn reason_keys_carry_the_http_status() {
    let cases = [
        (
            Some(FailureReason::HttpStatus),
            Some(503),
            "http_status 503",
        ),
        (Some(FailureReason::HttpStatus), None, "http_status"),
        (Some(FailureReason::Timeout), Some(200), "timeout"),
        (None, None, "unknown"),
    ];
    for (reason, code, want) in cases {
        let events = vec![at(1, 0, moved("p", ProbeState::Down, reason, code))];
        assert_eq!(outages(&events)[0].reason, want);
    }
}

#[test]
fn flapping_needs_enough_downs_inside_one_window() {
    let window_minutes = FLAP_WINDOW_MS / MIN;
    let cases = [
        (vec![0, 1, 2], true),
        (vec![0, 1], false),
        // the third outage starts exactly one window after the first: not inside it
        (vec![0, 1, window_minutes], false),
        (vec![0, 100, 101, 102, 300], true),
    ];
    for (minutes, flaps) in cases {
        let steps: Vec<Step> = minutes
            .iter()
            .flat_map(|m| [(*m, "p", ProbeState::Down), (*m, "p", ProbeState::Up)])
            .collect();
        let found = analyze(&journal(&steps), everything());
        assert_eq!(!found.flapping.is_empty(), flaps, "{minutes:?}");
    }
}

#[test]
fn recurring_needs_the_same_hour_on_distinct_days() {
    let day = 24 * 60;
    let cases = [
        (vec![3 * 60, day + 3 * 60 + 59], Some(3)),
        (vec![3 * 60, 3 * 60 + 30], None),
        (vec![3 * 60, day + 4 * 60], None),
        (vec![23 * 60 + 30, 2 * day + 23 * 60], Some(23)),
    ];
    for (minutes, hour) in cases {
        let steps: Vec<Step> = minutes
            .iter()
            .flat_map(|m| [(*m, "p", ProbeState::Down), (*m + 1, "p", ProbeState::Up)])
            .collect();
        let found = analyze(&journal(&steps), everything());
        assert_eq!(
            found.recurring.first().map(|r| r.hour_utc),
            hour,
            "{minutes:?}"
        );
    }
}

#[test]
fn range_bounds_what_counts_and_closes_open_outages() {
    let events = journal(&[
        (1, "p", ProbeState::Down),
        (10, "p", ProbeState::Up),
        (20, "p", ProbeState::Down),
    ]);
    let range = Range {
        since: Timestamp(5 * MIN),
        until: Timestamp(30 * MIN),
    };
    let found = analyze(&events, range);
    assert_eq!(found.events_analyzed, 2);
    let probe = &found.failing_probes[0];
    assert_eq!(
        (probe.downs, probe.down_ms, probe.still_down),
        (1, 10 * MIN, true)
    );
    assert_eq!(probe.median_down_ms, None);
    assert_eq!(probe.evidence.event_ids, vec![3]);
}

#[test]
fn tenant_alert_coincides_with_outages_within_the_margin() {
    let margin = COINCIDENCE_MARGIN_MS / MIN;
    let alert = |id, minute| {
        at(
            id,
            minute * MIN,
            EventKind::TenantAlertFired {
                rule: "r".into(),
                tenant_id: "t".into(),
                condition: crate::event::AlertCondition::ErrorShare,
                value: 1.0,
                threshold: 0.5,
                window_ms: 1,
                endpoint: None,
                message: "m".into(),
            },
        )
    };
    // the outage lasts minutes 100..110
    let cases = [
        (105, true),
        (110 + margin, true),
        (111 + margin, false),
        (100 - margin, true),
        (99 - margin, false),
    ];
    for (minute, coincides) in cases {
        let mut events = journal(&[(100, "db", ProbeState::Down), (110, "db", ProbeState::Up)]);
        events.push(alert(3, minute));
        let spike = &analyze(&events, everything()).tenant_spikes[0];
        assert_eq!(
            !spike.coinciding_probes.is_empty(),
            coincides,
            "minute {minute}"
        );
        assert_eq!(spike.evidence.count, 1 + usize::from(coincides));
    }
}

#[test]
fn evidence_quotes_a_bounded_number_of_ids() {
    let steps: Vec<Step> = (0..MAX_EVIDENCE_IDS as i64 + 5)
        .flat_map(|m| {
            [
                (m * 100, "p", ProbeState::Down),
                (m * 100 + 1, "p", ProbeState::Up),
            ]
        })
        .collect();
    let found = analyze(&journal(&steps), everything());
    let evidence = &found.failing_probes[0].evidence;
    assert_eq!(evidence.count, MAX_EVIDENCE_IDS + 5);
    assert_eq!(evidence.event_ids.len(), MAX_EVIDENCE_IDS);
    assert_eq!(evidence.first, Some(Timestamp(0)));
}

#[test]
fn median_takes_the_lower_middle() {
    assert_eq!(median::<i64>(&mut []), None);
    assert_eq!(median(&mut [5]), Some(5));
    assert_eq!(median(&mut [9, 1, 4, 7]), Some(4));
    assert_eq!(median(&mut [3, 1, 2]), Some(2));
}
