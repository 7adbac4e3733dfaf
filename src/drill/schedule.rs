//! The drill scheduler: starts each `schedule = "<cron>"` drill at its next occurrence, unless a
//! maintenance window covers a probe it watches or another drill runs (`drill_skipped`).
//!
//! Each drill's next time is computed from now when the scheduler first sees its schedule, and
//! again from the moment it fires: occurrences missed while sentineld was down (or while the
//! loop was late) are dropped, never replayed in a burst. `decide` is the pure choice.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Drill, DrillRunner};
use crate::event::{Bus, DrillSkipReason, EventKind, Timestamp};
use crate::maintenance::{Cover, Schedule, Windows};

/// How often due schedules are looked at: fine enough for a seconds field.
pub const TICK: Duration = Duration::from_millis(200);

/// What to do with a drill whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run,
    Skip {
        reason: DrillSkipReason,
        detail: String,
    },
}

/// Maintenance first (it says why the drill's probes are off limits), then a running drill.
/// `covered` is the first watched probe in a window, with that window.
pub fn decide(covered: Option<(&str, &Cover)>, running: Option<&str>) -> Decision {
    match (covered, running) {
        (Some((probe, cover)), _) => Decision::Skip {
            reason: DrillSkipReason::Maintenance,
            detail: format!(
                "maintenance window {} covers probe {probe} until {}",
                cover.window,
                cover.until.to_rfc3339()
            ),
        },
        (None, Some(run)) => Decision::Skip {
            reason: DrillSkipReason::Busy,
            detail: format!("drill run {run} is still running"),
        },
        (None, None) => Decision::Run,
    }
}

/// One drill's schedule as the scheduler follows it.
struct Due {
    /// The expression and zone it was built from: a reload that changes them starts over.
    written: (String, String),
    schedule: Schedule,
    next: Option<Timestamp>,
}

impl Due {
    /// Counting from `now`: occurrences before it (the daemon was down) are not due.
    fn new(written: (String, String), schedule: Schedule, now: Timestamp) -> Self {
        let next = schedule.next_start(now);
        Self {
            written,
            schedule,
            next,
        }
    }

    /// The occurrence to fire at `now`, if one is due; the next one then counts from `now`,
    /// so however late the tick, one run fires and the occurrences it slept through are dropped.
    fn take(&mut self, now: Timestamp) -> Option<Timestamp> {
        let at = self.next.filter(|at| *at <= now)?;
        self.next = self.schedule.next_start(now);
        Some(at)
    }
}

/// The scheduled drills' next times; `tick` is the whole loop body.
pub struct Scheduler {
    runner: DrillRunner,
    windows: Windows,
    bus: Bus,
    due: BTreeMap<String, Due>,
}

impl Scheduler {
    pub fn new(runner: DrillRunner, windows: Windows, bus: Bus) -> Self {
        Self {
            runner,
            windows,
            bus,
            due: BTreeMap::new(),
        }
    }

    /// The next time of each scheduled drill, as of the last tick.
    pub fn next_times(&self) -> Vec<(String, Option<Timestamp>)> {
        self.due
            .iter()
            .map(|(name, due)| (name.clone(), due.next))
            .collect()
    }

    /// Take the configured drills' schedules (new or changed ones count from `now`), then fire
    /// what is due at `now`.
    pub fn tick(&mut self, now: Timestamp) {
        let drills = self.runner.drills();
        self.due.retain(|name, _| {
            drills
                .iter()
                .any(|d| &d.name == name && d.schedule.is_some())
        });
        for drill in &drills {
            let Some(expression) = &drill.schedule else {
                continue;
            };
            let zone = drill.timezone.clone().unwrap_or_else(|| "UTC".into());
            let written = (expression.clone(), zone);
            if self.due.get(&drill.name).map(|d| &d.written) == Some(&written) {
                continue;
            }
            // Validated with the config; a schedule that does not parse never fires.
            match Schedule::instants(&written.0, &written.1) {
                Ok(schedule) => {
                    let due = Due::new(written, schedule, now);
                    self.due.insert(drill.name.clone(), due);
                }
                Err(err) => tracing::warn!(drill = drill.name, "schedule not used: {err}"),
            }
        }
        for drill in &drills {
            let Some(due) = self.due.get_mut(&drill.name) else {
                continue;
            };
            if let Some(at) = due.take(now) {
                self.fire(drill, at, now);
            }
        }
    }

    fn fire(&self, drill: &Drill, at: Timestamp, now: Timestamp) {
        let target = self.runner.pick_target(&drill.name).ok().flatten();
        let concrete = match &target {
            Some(target) => match drill.for_target(target) {
                Ok(concrete) => concrete,
                Err(err) => {
                    tracing::warn!(drill = drill.name, "scheduled run not started: {err}");
                    return;
                }
            },
            None => drill.clone(),
        };
        let covered = concrete
            .probes()
            .into_iter()
            .find_map(|probe| self.windows.covering(&probe, now).map(|c| (probe, c)));
        let running = self.runner.running();
        let decision = decide(
            covered.as_ref().map(|(p, c)| (p.as_str(), c)),
            running.as_deref(),
        );
        match decision {
            Decision::Run => match self.runner.start_picked(drill, target) {
                Ok(run) => {
                    tracing::info!(drill = drill.name, run = run.id, "scheduled drill started")
                }
                Err(err) => self.skipped(drill, at, DrillSkipReason::Busy, err.to_string()),
            },
            Decision::Skip { reason, detail } => self.skipped(drill, at, reason, detail),
        }
    }

    fn skipped(&self, drill: &Drill, at: Timestamp, reason: DrillSkipReason, detail: String) {
        let event = EventKind::DrillSkipped {
            name: drill.name.clone(),
            scheduled_at: at,
            reason,
            detail,
        };
        tracing::info!("{}", event.summary());
        self.bus.publish(event);
    }

    /// Tick every [`TICK`] until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => self.tick(Timestamp::now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        let t = chrono::DateTime::parse_from_rfc3339(text).expect(text);
        Timestamp(t.timestamp_millis())
    }

    /// Next fire of drill schedules: five fields, six with seconds, zones, DST.
    #[test]
    fn next_fire_of_drill_schedules() {
        let cases = [
            // (expression, zone, now, next)
            (
                "0 3 * * *",
                "UTC",
                "2026-03-01T02:59:59Z",
                "2026-03-01T03:00:00Z",
            ),
            (
                "0 3 * * *",
                "UTC",
                "2026-03-01T03:00:00Z",
                "2026-03-02T03:00:00Z",
            ),
            (
                "0 3 * * MON",
                "UTC",
                "2026-03-01T10:00:00Z",
                "2026-03-02T03:00:00Z",
            ),
            (
                "* * * * * *",
                "UTC",
                "2026-03-01T10:00:00.400Z",
                "2026-03-01T10:00:01Z",
            ),
            (
                "*/5 * * * * *",
                "UTC",
                "2026-03-01T10:00:07Z",
                "2026-03-01T10:00:10Z",
            ),
            (
                "30 0 3 * * *",
                "UTC",
                "2026-03-01T03:00:00Z",
                "2026-03-01T03:00:30Z",
            ),
            (
                "0 3 * * *",
                "Europe/Berlin",
                "2026-01-10T00:00:00Z",
                "2026-01-10T02:00:00Z",
            ),
            (
                "0 3 * * *",
                "Europe/Berlin",
                "2026-07-10T00:00:00Z",
                "2026-07-10T01:00:00Z",
            ),
            // 02:30 does not exist in Berlin on 2026-03-29: it runs at 03:00 local (01:00Z)
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
            ),
        ];
        for (expression, zone, now, want) in cases {
            let schedule = Schedule::instants(expression, zone).unwrap();
            assert_eq!(
                schedule.next_start(utc(now)).map(Timestamp::to_rfc3339),
                Some(utc(want).to_rfc3339()),
                "{expression} in {zone} after {now}"
            );
        }
        for bad in ["", "* * * *", "61 * * * *", "* * * * * * * *", "nope"] {
            assert!(Schedule::instants(bad, "UTC").is_err(), "{bad}");
        }
        assert!(Schedule::instants("0 3 * * *", "Mars/Olympus").is_err());
    }

    /// A schedule counts from the daemon's start, and a late tick fires once: the occurrences
    /// missed while sentineld was down or the loop was late are not replayed.
    #[test]
    fn missed_occurrences_are_dropped_not_replayed() {
        let written = ("*/10 * * * * *".to_string(), "UTC".to_string());
        let schedule = Schedule::instants(&written.0, &written.1).unwrap();
        // started at 10:00:03 (it was down since 09:00): first due at 10:00:10, not 09:00:00
        let mut due = Due::new(written, schedule, utc("2026-03-01T10:00:03Z"));
        // (tick at, fired occurrence)
        let ticks = [
            ("2026-03-01T10:00:09.800Z", None),
            ("2026-03-01T10:00:10Z", Some("2026-03-01T10:00:10Z")),
            ("2026-03-01T10:00:10.200Z", None),
            // the loop stalls for 45 s: one run, for the occurrence it was due at
            ("2026-03-01T10:00:55Z", Some("2026-03-01T10:00:20Z")),
            ("2026-03-01T10:00:55.200Z", None),
            ("2026-03-01T10:00:59.900Z", None),
            ("2026-03-01T10:01:00Z", Some("2026-03-01T10:01:00Z")),
        ];
        for (now, want) in ticks {
            assert_eq!(
                due.take(utc(now)).map(Timestamp::to_rfc3339),
                want.map(|w| utc(w).to_rfc3339()),
                "tick at {now}"
            );
        }
    }

    /// Maintenance over a watched probe skips, then a running drill skips, else it runs.
    #[test]
    fn maintenance_and_a_running_drill_skip_a_scheduled_run() {
        let cover = Cover {
            window: "nightly@2026-12-06T02:00Z".into(),
            until: Timestamp(1_765_000_000_000),
        };
        /// (name, covered, running, skip reason wanted, detail contains)
        type Case<'a> = (
            &'a str,
            Option<(&'a str, &'a Cover)>,
            Option<&'a str>,
            Option<DrillSkipReason>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            ("free", None, None, None, ""),
            (
                "a window over a watched probe",
                Some(("api", &cover)),
                None,
                Some(DrillSkipReason::Maintenance),
                "maintenance window nightly@2026-12-06T02:00Z covers probe api until",
            ),
            (
                "a window and a running drill: maintenance is the reason",
                Some(("api", &cover)),
                Some("d1"),
                Some(DrillSkipReason::Maintenance),
                "covers probe api",
            ),
            (
                "another run in progress",
                None,
                Some("d19a"),
                Some(DrillSkipReason::Busy),
                "drill run d19a is still running",
            ),
        ];
        for (name, covered, running, want, detail_has) in cases {
            match (decide(covered, running), want) {
                (Decision::Run, None) => {}
                (Decision::Skip { reason, detail }, Some(want)) => {
                    assert_eq!(reason, want, "{name}");
                    assert!(detail.contains(detail_has), "{name}: {detail}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
