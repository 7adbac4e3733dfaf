//! The verdict of one expectation over the events seen since a step's faults were in place:
//! met, missed or still pending, with the measured time. Pure: no clock, no bus.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Expectation;
use crate::event::{Event, EventKind, ProbeState, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Met {
        measured_ms: Option<u64>,
        detail: String,
    },
    Missed {
        measured_ms: Option<u64>,
        detail: String,
    },
    Pending,
}

impl Verdict {
    pub fn is_decided(&self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// Judge `expectation` at `now` over `events` (oldest first) that happened since `start`, when
/// the step's faults were in place. `step_over` says the step has ended: what could still
/// happen cannot any more (a probe that stayed up did stay up).
pub fn evaluate(
    expectation: &Expectation,
    start: Timestamp,
    events: &[Event],
    now: Timestamp,
    step_over: bool,
) -> Verdict {
    let since = |at: Timestamp| (at.as_millis() - start.as_millis()).max(0) as u64;
    let elapsed = since(now);
    let expired = |within: Duration| step_over || elapsed > within.as_millis() as u64;
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    let judged = |measured: u64, within: Duration, what: &str| {
        let detail = format!("{what} after {}", seconds(measured));
        match measured <= within.as_millis() as u64 {
            true => Verdict::Met {
                measured_ms: Some(measured),
                detail,
            },
            false => Verdict::Missed {
                measured_ms: Some(measured),
                detail: format!(
                    "{detail}, later than {}",
                    seconds(within.as_millis() as u64)
                ),
            },
        }
    };
    let after_start = events.iter().filter(|e| e.at >= start);
    match expectation {
        Expectation::ProbeUp { probe, within } => {
            let mut down_at = None;
            for event in after_start {
                if let EventKind::ProbeTransition { probe: p, to, .. } = &event.kind {
                    if p != probe {
                        continue;
                    }
                    match (to, down_at) {
                        (ProbeState::Down, None) => down_at = Some(event.at),
                        (ProbeState::Up, Some(_)) => {
                            return judged(since(event.at), *within, "up again")
                        }
                        _ => {}
                    }
                }
            }
            match (down_at, expired(*within)) {
                (_, false) => Verdict::Pending,
                (Some(down), true) => Verdict::Missed {
                    measured_ms: None,
                    detail: format!(
                        "down since {} and not up again within {}",
                        seconds(since(down)),
                        seconds(within.as_millis() as u64)
                    ),
                },
                (None, true) => Verdict::Met {
                    measured_ms: None,
                    detail: "never went down".into(),
                },
            }
        }
        Expectation::ProbeStaysUp { probe } => {
            let down = after_start.into_iter().find(|e| {
                matches!(&e.kind, EventKind::ProbeTransition { probe: p, to: ProbeState::Down, .. } if p == probe)
            });
            match (down, step_over) {
                (Some(event), _) => Verdict::Missed {
                    measured_ms: Some(since(event.at)),
                    detail: format!("went down after {}", seconds(since(event.at))),
                },
                (None, true) => Verdict::Met {
                    measured_ms: Some(elapsed),
                    detail: format!("up for all {}", seconds(elapsed)),
                },
                (None, false) => Verdict::Pending,
            }
        }
        Expectation::TenantAlertFires { rule, within } => {
            let fired = after_start.into_iter().find(
                |e| matches!(&e.kind, EventKind::TenantAlertFired { rule: r, .. } if r == rule),
            );
            match (fired, expired(*within)) {
                (Some(event), _) => judged(since(event.at), *within, "fired"),
                (None, true) => Verdict::Missed {
                    measured_ms: None,
                    detail: format!("did not fire within {}", seconds(within.as_millis() as u64)),
                },
                (None, false) => Verdict::Pending,
            }
        }
        Expectation::ProbeDown {
            probe,
            reason,
            within,
        } => {
            let down = after_start.into_iter().find(|e| {
                matches!(&e.kind, EventKind::ProbeTransition { probe: p, to: ProbeState::Down, reason: Some(r), .. } if p == probe && r == reason)
            });
            match (down, expired(*within)) {
                (Some(event), _) => judged(since(event.at), *within, &format!("down ({reason})")),
                (None, true) => Verdict::Missed {
                    measured_ms: None,
                    detail: format!(
                        "not down ({reason}) within {}",
                        seconds(within.as_millis() as u64)
                    ),
                },
                (None, false) => Verdict::Pending,
            }
        }
        Expectation::Heal { probe, within } => {
            let healed = after_start.into_iter().find(|e| {
                matches!(&e.kind, EventKind::HealFinished { probe: p, ok: true, .. } if p == probe)
            });
            match (healed, expired(*within)) {
                (Some(event), _) => judged(since(event.at), *within, "healed"),
                (None, true) => Verdict::Missed {
                    measured_ms: None,
                    detail: format!(
                        "no successful heal within {}",
                        seconds(within.as_millis() as u64)
                    ),
                },
                (None, false) => Verdict::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_000_000;

    fn at(offset_ms: i64, kind: EventKind) -> Event {
        Event {
            at: Timestamp(START + offset_ms),
            kind,
        }
    }

    fn transition(offset_ms: i64, probe: &str, to: ProbeState) -> Event {
        at(
            offset_ms,
            EventKind::ProbeTransition {
                probe: probe.into(),
                from: ProbeState::Unknown,
                to,
                reason: None,
                status_code: None,
                latency_ms: None,
                recoveries_total: 0,
            },
        )
    }

    fn fired(offset_ms: i64, rule: &str) -> Event {
        at(
            offset_ms,
            EventKind::TenantAlertFired {
                rule: rule.into(),
                tenant_id: "t".into(),
                condition: crate::event::AlertCondition::P95,
                value: 900.0,
                threshold: 500.0,
                window_ms: 60_000,
                endpoint: None,
                message: "m".into(),
            },
        )
    }

    fn healed(offset_ms: i64, probe: &str, ok: bool) -> Event {
        at(
            offset_ms,
            EventKind::HealFinished {
                probe: probe.into(),
                action: "docker restart x".into(),
                ok,
                detail: "d".into(),
            },
        )
    }

    fn up_within(probe: &str, secs: u64) -> Expectation {
        Expectation::ProbeUp {
            probe: probe.into(),
            within: Duration::from_secs(secs),
        }
    }

    /// (verdict word, measured ms) of a verdict, for compact rows.
    fn short(verdict: &Verdict) -> (&'static str, Option<u64>) {
        match verdict {
            Verdict::Met { measured_ms, .. } => ("met", *measured_ms),
            Verdict::Missed { measured_ms, .. } => ("missed", *measured_ms),
            Verdict::Pending => ("pending", None),
        }
    }

    /// (name, expectation, events, now offset ms, step over, want verdict, want measured)
    type Case = (
        &'static str,
        Expectation,
        Vec<Event>,
        i64,
        bool,
        &'static str,
        Option<u64>,
    );

    #[test]
    fn verdicts_over_event_slices() {
        let stays_up = Expectation::ProbeStaysUp {
            probe: "api".into(),
        };
        let alert = Expectation::TenantAlertFires {
            rule: "p95".into(),
            within: Duration::from_secs(60),
        };
        let heal = Expectation::Heal {
            probe: "sql".into(),
            within: Duration::from_secs(10),
        };
        let cases: Vec<Case> = vec![
            (
                "down then up in time",
                up_within("sql", 30),
                vec![
                    transition(2_000, "sql", ProbeState::Down),
                    transition(4_200, "sql", ProbeState::Up),
                ],
                5_000,
                false,
                "met",
                Some(4_200),
            ),
            (
                "up too late",
                up_within("sql", 30),
                vec![
                    transition(2_000, "sql", ProbeState::Down),
                    transition(31_000, "sql", ProbeState::Up),
                ],
                31_000,
                false,
                "missed",
                Some(31_000),
            ),
            (
                "still down before the deadline",
                up_within("sql", 30),
                vec![transition(2_000, "sql", ProbeState::Down)],
                10_000,
                false,
                "pending",
                None,
            ),
            (
                "still down after the deadline",
                up_within("sql", 30),
                vec![transition(2_000, "sql", ProbeState::Down)],
                30_001,
                false,
                "missed",
                None,
            ),
            (
                "an up before the down does not count",
                up_within("sql", 30),
                vec![
                    transition(100, "sql", ProbeState::Up),
                    transition(2_000, "sql", ProbeState::Down),
                ],
                5_000,
                false,
                "pending",
                None,
            ),
            (
                "other probes are ignored",
                up_within("sql", 30),
                vec![
                    transition(1_000, "api", ProbeState::Down),
                    transition(2_000, "api", ProbeState::Up),
                ],
                5_000,
                false,
                "pending",
                None,
            ),
            (
                "events before the start are ignored",
                up_within("sql", 30),
                vec![
                    transition(-5_000, "sql", ProbeState::Down),
                    transition(-1_000, "sql", ProbeState::Up),
                ],
                31_000,
                false,
                "met",
                None,
            ),
            (
                "never down, step over",
                up_within("sql", 30),
                vec![],
                3_000,
                true,
                "met",
                None,
            ),
            (
                "stays up, step running",
                stays_up.clone(),
                vec![],
                3_000,
                false,
                "pending",
                None,
            ),
            (
                "stays up, step over",
                stays_up.clone(),
                vec![],
                12_000,
                true,
                "met",
                Some(12_000),
            ),
            (
                "failing and recovering are not down",
                stays_up.clone(),
                vec![
                    transition(1_000, "api", ProbeState::Failing),
                    transition(1_500, "api", ProbeState::Recovering),
                    transition(2_000, "api", ProbeState::Unknown),
                ],
                12_000,
                true,
                "met",
                Some(12_000),
            ),
            (
                "failing is not down for up-within either",
                up_within("sql", 30),
                vec![
                    transition(1_000, "sql", ProbeState::Failing),
                    transition(2_000, "sql", ProbeState::Up),
                ],
                3_000,
                true,
                "met",
                None,
            ),
            (
                "stays up misses at the first down",
                stays_up.clone(),
                vec![
                    transition(1_500, "api", ProbeState::Down),
                    transition(2_500, "api", ProbeState::Up),
                ],
                3_000,
                false,
                "missed",
                Some(1_500),
            ),
            (
                "alert fires in time",
                alert.clone(),
                vec![fired(45_000, "p95")],
                46_000,
                false,
                "met",
                Some(45_000),
            ),
            (
                "another rule fires",
                alert.clone(),
                vec![fired(5_000, "errors")],
                61_000,
                false,
                "missed",
                None,
            ),
            (
                "alert pending",
                alert.clone(),
                vec![],
                10_000,
                false,
                "pending",
                None,
            ),
            (
                "failed heal does not count",
                heal.clone(),
                vec![healed(1_000, "sql", false)],
                11_000,
                false,
                "missed",
                None,
            ),
            (
                "heal done",
                heal.clone(),
                vec![healed(1_000, "sql", false), healed(3_000, "sql", true)],
                4_000,
                false,
                "met",
                Some(3_000),
            ),
            (
                "heal too late",
                heal,
                vec![healed(12_000, "sql", true)],
                12_000,
                false,
                "missed",
                Some(12_000),
            ),
        ];
        for (name, expectation, events, now, over, want, measured) in cases {
            let verdict = evaluate(
                &expectation,
                Timestamp(START),
                &events,
                Timestamp(START + now),
                over,
            );
            assert_eq!(short(&verdict), (want, measured), "{name}: {verdict:?}");
        }
    }

    #[test]
    fn details_say_what_happened() {
        let verdict = evaluate(
            &up_within("sql", 30),
            Timestamp(START),
            &[
                transition(2_000, "sql", ProbeState::Down),
                transition(4_200, "sql", ProbeState::Up),
            ],
            Timestamp(START + 5_000),
            false,
        );
        assert_eq!(
            verdict,
            Verdict::Met {
                measured_ms: Some(4_200),
                detail: "up again after 4.2 s".into()
            }
        );
    }

    #[test]
    fn a_down_reason_is_met_only_by_a_down_for_that_reason() {
        use crate::event::FailureReason;
        let down = |offset_ms: i64, reason: FailureReason| {
            at(
                offset_ms,
                EventKind::ProbeTransition {
                    probe: "web".into(),
                    from: ProbeState::Up,
                    to: ProbeState::Down,
                    reason: Some(reason),
                    status_code: None,
                    latency_ms: None,
                    recoveries_total: 0,
                },
            )
        };
        let oom = Expectation::ProbeDown {
            probe: "web".into(),
            reason: FailureReason::Oom,
            within: Duration::from_secs(30),
        };
        let now = Timestamp(START + 5_000);
        let exited = [down(1_000, FailureReason::ContainerExited)];
        assert_eq!(
            evaluate(&oom, Timestamp(START), &exited, now, false),
            Verdict::Pending
        );
        let missed = evaluate(&oom, Timestamp(START), &exited, now, true);
        assert!(
            matches!(&missed, Verdict::Missed { detail, .. } if detail == "not down (oom) within 30.0 s"),
            "{missed:?}"
        );
        let events = [
            down(1_000, FailureReason::ContainerExited),
            down(2_500, FailureReason::Oom),
        ];
        assert_eq!(
            evaluate(&oom, Timestamp(START), &events, now, false),
            Verdict::Met {
                measured_ms: Some(2_500),
                detail: "down (oom) after 2.5 s".into()
            }
        );
        let late = evaluate(
            &oom,
            Timestamp(START),
            &[down(31_000, FailureReason::Oom)],
            now,
            false,
        );
        assert!(
            matches!(
                late,
                Verdict::Missed {
                    measured_ms: Some(31_000),
                    ..
                }
            ),
            "{late:?}"
        );
        assert_eq!(oom.describe(), "probe web down (oom) within 30s");
    }
}
