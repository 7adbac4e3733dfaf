//! A drill's times over its runs: each step's time to detect / act / recover measured from the
//! events it judged, and over the last N runs their p50 and whether recovery gets faster. Pure.

use serde::{Deserialize, Serialize};

use super::runner::{DrillRun, RunState};
use super::{Objective, Timings};
use crate::event::{Event, EventKind, ProbeState, Timestamp};

/// Runs shown when the caller does not say.
pub const DEFAULT_RUNS: usize = 10;
/// Most runs a trend reads.
pub const MAX_RUNS: usize = 200;
/// A change of the recovery p50 between the older and the newer half smaller than this share
/// is `steady`.
const STEADY_SHARE: f64 = 0.10;

/// The times of one step, from `start` (its faults in place) over the events it judged
/// (`seen`, oldest first), for the probes its expectations name.
pub fn step_timings(watched: &[String], start: Timestamp, seen: &[Event]) -> Timings {
    let since = |at: Timestamp| (at.as_millis() - start.as_millis()).max(0) as u64;
    let mut detect = None;
    let mut act = None;
    // Per watched probe: when it first went Down, and when it was Up again after that.
    let mut downs: Vec<(&str, Timestamp, Option<Timestamp>)> = Vec::new();
    for event in seen.iter().filter(|e| e.at >= start) {
        match &event.kind {
            EventKind::ProbeTransition { probe, to, .. } if watched.contains(probe) => {
                let known = downs.iter_mut().find(|(p, _, _)| *p == probe.as_str());
                match (to, known) {
                    (ProbeState::Down, None) => {
                        detect.get_or_insert(since(event.at));
                        downs.push((probe.as_str(), event.at, None));
                    }
                    (ProbeState::Up, Some((_, _, up @ None))) => *up = Some(event.at),
                    _ => {}
                }
            }
            EventKind::HealFinished {
                probe, ok: true, ..
            } if watched.contains(probe) => {
                act.get_or_insert(since(event.at));
            }
            _ => {}
        }
    }
    let recover = match downs.iter().all(|(_, _, up)| up.is_some()) {
        true => downs.iter().filter_map(|(_, _, up)| up.map(since)).max(),
        false => None,
    };
    Timings {
        detect_ms: detect,
        act_ms: act,
        recover_ms: recover,
    }
}

/// Which way recovery goes: the p50 of the newer half of the runs against the older half's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Faster,
    Slower,
    Steady,
    /// Fewer than four runs with a recovery time.
    TooFewRuns,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Faster => "faster",
            Self::Slower => "slower",
            Self::Steady => "steady",
            Self::TooFewRuns => "too few runs",
        }
    }
}

/// One finished run in a trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendRun {
    pub id: String,
    pub started: Timestamp,
    pub state: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub timings: Timings,
}

/// `GET /v1/drills/{drill}/trend`: the last runs (oldest first), p50 of each time, the
/// direction of recovery, and the objective they are held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub name: String,
    pub runs: Vec<TrendRun>,
    pub p50: Timings,
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
}

/// The trend of drill `name` over the last `last` finished runs of `runs` (oldest first).
pub fn trend(name: &str, runs: &[DrillRun], last: usize, objective: Option<Objective>) -> Trend {
    let finished: Vec<TrendRun> = runs
        .iter()
        .filter(|r| r.name == name && r.state != RunState::Running)
        .map(|r| TrendRun {
            id: r.id.clone(),
            started: r.started,
            state: r.state,
            target: r.target.clone(),
            timings: r.timings,
        })
        .collect();
    let skip = finished.len().saturating_sub(last.max(1));
    let runs: Vec<TrendRun> = finished.into_iter().skip(skip).collect();
    let column = |get: fn(&Timings) -> Option<u64>| -> Vec<u64> {
        runs.iter().filter_map(|r| get(&r.timings)).collect()
    };
    let recover = column(|t| t.recover_ms);
    let p50 = Timings {
        detect_ms: median(column(|t| t.detect_ms)),
        act_ms: median(column(|t| t.act_ms)),
        recover_ms: median(recover.clone()),
    };
    Trend {
        name: name.to_string(),
        runs,
        p50,
        direction: direction_of(&recover),
        objective,
    }
}

/// The nearest-rank median (the lower middle of an even count).
pub fn median(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    match values.len() {
        0 => None,
        n => Some(values[(n - 1) / 2]),
    }
}

/// Which way `recover` (oldest first) goes: the newer half's p50 against the older half's.
pub fn direction_of(recover: &[u64]) -> Direction {
    if recover.len() < 4 {
        return Direction::TooFewRuns;
    }
    let half = recover.len() / 2;
    let older = median(recover[..half].to_vec()).unwrap_or(0) as f64;
    let newer = median(recover[recover.len() - half..].to_vec()).unwrap_or(0) as f64;
    let change = match older {
        0.0 => 0.0,
        older => (newer - older) / older,
    };
    match change {
        c if c > STEADY_SHARE => Direction::Slower,
        c if c < -STEADY_SHARE => Direction::Faster,
        _ => Direction::Steady,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_000_000;

    fn transition(offset: i64, probe: &str, to: ProbeState) -> Event {
        Event {
            at: Timestamp(START + offset),
            kind: EventKind::ProbeTransition {
                probe: probe.into(),
                from: ProbeState::Unknown,
                to,
                reason: None,
                status_code: None,
                latency_ms: None,
                recoveries_total: 0,
            },
        }
    }

    fn healed(offset: i64, probe: &str, ok: bool) -> Event {
        Event {
            at: Timestamp(START + offset),
            kind: EventKind::HealFinished {
                probe: probe.into(),
                action: "docker restart x".into(),
                ok,
                detail: String::new(),
            },
        }
    }

    fn times(d: Option<u64>, a: Option<u64>, r: Option<u64>) -> Timings {
        Timings {
            detect_ms: d,
            act_ms: a,
            recover_ms: r,
        }
    }

    #[test]
    fn step_times_from_the_events_a_step_judged() {
        use ProbeState::*;
        let api = vec!["api".to_string()];
        let both = vec!["api".to_string(), "db".to_string()];
        let cases: Vec<(&str, &[String], Vec<Event>, Timings)> = vec![
            ("nothing happened", &api, vec![], times(None, None, None)),
            (
                "down, healed, up",
                &api,
                vec![
                    transition(900, "api", Down),
                    healed(1_500, "api", true),
                    transition(4_000, "api", Up),
                ],
                times(Some(900), Some(1_500), Some(4_000)),
            ),
            (
                "a failed heal is not the act; the next one is",
                &api,
                vec![
                    transition(900, "api", Down),
                    healed(1_500, "api", false),
                    healed(2_500, "api", true),
                    transition(4_000, "api", Up),
                ],
                times(Some(900), Some(2_500), Some(4_000)),
            ),
            (
                "down and never up: no recovery time",
                &api,
                vec![transition(900, "api", Down)],
                times(Some(900), None, None),
            ),
            (
                "events before the faults and of other probes do not count",
                &api,
                vec![
                    transition(-500, "api", Down),
                    transition(100, "web", Down),
                    healed(200, "web", true),
                    transition(700, "api", Down),
                    transition(1_200, "api", Up),
                ],
                times(Some(700), None, Some(1_200)),
            ),
            (
                "an Up before any Down is no recovery",
                &api,
                vec![transition(100, "api", Up)],
                times(None, None, None),
            ),
            (
                "two probes: detect at the first Down, recover when the last is Up",
                &both,
                vec![
                    transition(500, "db", Down),
                    transition(800, "api", Down),
                    transition(2_000, "db", Up),
                    transition(3_000, "api", Up),
                ],
                times(Some(500), None, Some(3_000)),
            ),
            (
                "two probes, one still down: not recovered",
                &both,
                vec![
                    transition(500, "db", Down),
                    transition(800, "api", Down),
                    transition(2_000, "db", Up),
                ],
                times(Some(500), None, None),
            ),
        ];
        for (name, watched, events, want) in cases {
            assert_eq!(
                step_timings(watched, Timestamp(START), &events),
                want,
                "{name}"
            );
        }
    }

    fn run(n: usize, name: &str, state: RunState, recover: Option<u64>) -> DrillRun {
        DrillRun {
            id: format!("d{n}"),
            name: name.into(),
            state,
            started: Timestamp(n as i64 * 1000),
            ended: Some(Timestamp(n as i64 * 1000 + 500)),
            step: 1,
            steps: 1,
            experiments: Vec::new(),
            results: Vec::new(),
            reason: None,
            target: None,
            timings: times(Some(100 * n as u64), None, recover),
        }
    }

    #[test]
    fn last_runs_p50_and_direction() {
        use RunState::*;
        let slow_then_fast = [9_000, 8_000, 9_500, 4_000, 3_000, 3_500];
        /// (name, runs, last, ids shown, recovery p50, direction)
        type Case = (
            &'static str,
            Vec<DrillRun>,
            usize,
            Vec<&'static str>,
            Option<u64>,
            Direction,
        );
        let cases: Vec<Case> = vec![
            ("no runs", vec![], 10, vec![], None, Direction::TooFewRuns),
            (
                "running and other drills' runs are left out",
                vec![
                    run(1, "g", Passed, Some(3_000)),
                    run(2, "other", Passed, Some(1)),
                    run(3, "g", Running, None),
                ],
                10,
                vec!["d1"],
                Some(3_000),
                Direction::TooFewRuns,
            ),
            (
                "recovery got faster",
                slow_then_fast
                    .iter()
                    .enumerate()
                    .map(|(i, ms)| run(i + 1, "g", Passed, Some(*ms)))
                    .collect(),
                10,
                vec!["d1", "d2", "d3", "d4", "d5", "d6"],
                Some(4_000),
                Direction::Faster,
            ),
            (
                "slower, over the last 4 only",
                [1_000, 50_000, 2_000, 2_100, 4_000, 4_100]
                    .iter()
                    .enumerate()
                    .map(|(i, ms)| run(i + 1, "g", Failed, Some(*ms)))
                    .collect(),
                4,
                vec!["d3", "d4", "d5", "d6"],
                Some(2_100),
                Direction::Slower,
            ),
            (
                "within ten percent is steady; a run without recovery has no say",
                vec![
                    run(1, "g", Passed, Some(5_000)),
                    run(2, "g", Passed, Some(5_200)),
                    run(3, "g", Aborted, None),
                    run(4, "g", Passed, Some(5_300)),
                    run(5, "g", Passed, Some(5_100)),
                ],
                10,
                vec!["d1", "d2", "d3", "d4", "d5"],
                Some(5_100),
                Direction::Steady,
            ),
        ];
        for (name, runs, last, ids, p50, direction) in cases {
            let got = trend("g", &runs, last, None);
            let got_ids: Vec<&str> = got.runs.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(got_ids, ids, "{name}");
            assert_eq!(got.p50.recover_ms, p50, "{name}");
            assert_eq!(got.direction, direction, "{name}");
        }
        assert_eq!(median(vec![3, 1, 2]), Some(2));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
    }
}
