//! Whether a recovery held: a probe back Up after a heal counts as recovered only once it
//! stayed Up for the heal's `stable_for`; a Down sooner is a relapse, and relapses make a crash loop.
//!
//! Plain logic on the probe's status and timestamps, so every case is a line of a table.

use std::time::Duration;

use crate::event::{FailureReason, ProbeState, Timestamp};
use crate::probe::ProbeStatus;

/// From this many relapses in one incident on, the incident is a crash loop: the probe came
/// back after a heal and fell again before it held, twice in a row.
pub const CRASH_LOOP_RELAPSES: u32 = 2;

/// What is known about an Up run that began at `up_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Up for `stable_for`: the incident closes, dated by `up_at`.
    Held,
    /// The probe began failing `after` the Up, before `stable_for`, and is Down (or was).
    Relapsed { after: Duration },
    /// Not decided: look again at `until`, or at the probe's next change when `None` (the
    /// hold is over but the probe is Failing: its next result decides).
    Holding { until: Option<Timestamp> },
}

/// Judge the Up run that began at `up_at` from the probe's status `now`.
///
/// A Down after `up_at` whose trouble (its first Failing, else the Down itself) began within
/// `stable_for` is a relapse; a later one means the run held (that Down is a new incident). With
/// no Down since, an Up that lasted `stable_for` held; anything else is still being judged.
pub fn judge(
    up_at: Timestamp,
    stable_for: Duration,
    status: &ProbeStatus,
    now: Timestamp,
) -> Verdict {
    let stable_ms = i64::try_from(stable_for.as_millis()).unwrap_or(i64::MAX);
    let until = Timestamp(up_at.as_millis().saturating_add(stable_ms));
    if let Some(down) = fell_since(up_at, status) {
        let trouble = status
            .fault_at
            .filter(|fault| *fault >= up_at && *fault <= down)
            .unwrap_or(down);
        let after = trouble.as_millis().saturating_sub(up_at.as_millis());
        return if after < stable_ms {
            Verdict::Relapsed {
                after: Duration::from_millis(after.max(0) as u64),
            }
        } else {
            Verdict::Held
        };
    }
    match status.state {
        ProbeState::Up if now >= until => Verdict::Held,
        _ if now < until => Verdict::Holding { until: Some(until) },
        _ => Verdict::Holding { until: None },
    }
}

/// When the probe went Down after the Up at `up_at`, if it did. Times are in milliseconds, so
/// a Down in the same millisecond as the Up is told apart by the state: only a Down after the
/// Up leaves the probe Down or Recovering.
pub fn fell_since(up_at: Timestamp, status: &ProbeStatus) -> Option<Timestamp> {
    let down = status.down_at?;
    let after = down > up_at
        || (down == up_at && matches!(status.state, ProbeState::Down | ProbeState::Recovering));
    after.then_some(down)
}

/// What an incident is, for its gave-up and relapse events: a crash loop when the probe said
/// so itself (a docker probe's `crash_loop` rule saw Docker restart it too often) or when it
/// relapsed [`CRASH_LOOP_RELAPSES`] times; otherwise why the probe failed.
pub fn cause(
    reason: Option<FailureReason>,
    relapses: u32,
    said_crash_loop: bool,
) -> Option<FailureReason> {
    if said_crash_loop || relapses >= CRASH_LOOP_RELAPSES {
        Some(FailureReason::CrashLoop)
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeState::*;

    fn status(state: ProbeState, fault_at: Option<i64>, down_at: Option<i64>) -> ProbeStatus {
        ProbeStatus {
            state,
            fault_at: fault_at.map(Timestamp),
            down_at: down_at.map(Timestamp),
            ..ProbeStatus::unknown(0)
        }
    }

    /// Up at t=1000 ms; (stable_for ms, state, fault_at, down_at, now) → verdict.
    #[test]
    fn verdict_table() {
        let held = Verdict::Held;
        let relapsed = |ms| Verdict::Relapsed {
            after: Duration::from_millis(ms),
        };
        let holding = |until: Option<i64>| Verdict::Holding {
            until: until.map(Timestamp),
        };
        type Case = (u64, ProbeState, Option<i64>, Option<i64>, i64, Verdict);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // Up, not long enough yet: look again when it would have held
            (10_000, Up, None, Some(500), 1_000, holding(Some(11_000))),
            (10_000, Up, None, Some(500), 10_999, holding(Some(11_000))),
            // Up for stable_for: held (the Down before the Up is the incident's own)
            (10_000, Up, None, Some(500), 11_000, held),
            // exits 2 s after each start: Down 2 s after the Up is a relapse
            (10_000, Down, Some(3_000), Some(3_000), 3_100, relapsed(2_000)),
            // failing from 2 s, Down only at 12 s: its trouble began within the hold
            (10_000, Down, Some(3_000), Some(13_000), 13_000, relapsed(2_000)),
            // trouble that began after the hold is a new incident: this run held
            (10_000, Down, Some(11_500), Some(12_000), 12_000, held),
            // Down and Up again before the healer looked: still a relapse
            (10_000, Up, None, Some(4_000), 4_500, relapsed(3_000)),
            // failing, not Down: undecided; after the hold, its next result decides
            (10_000, Failing, Some(5_000), Some(500), 6_000, holding(Some(11_000))),
            (10_000, Failing, Some(5_000), Some(500), 11_000, holding(None)),
            (10_000, Recovering, Some(500), Some(500), 12_000, holding(None)),
            // stable_for zero: the first Up counts, a Down right after it is a new incident
            (0, Up, None, Some(500), 1_000, held),
            (0, Down, Some(1_001), Some(1_001), 1_001, held),
            // a Down in the very millisecond of the Up: the state says it came after
            (10_000, Down, Some(1_000), Some(1_000), 1_000, relapsed(0)),
            (0, Down, Some(1_000), Some(1_000), 1_000, held),
            (10_000, Failing, Some(1_000), Some(1_000), 1_000, holding(Some(11_000))),
        ];
        for (row, (stable_ms, state, fault_at, down_at, now, want)) in cases.iter().enumerate() {
            let got = judge(
                Timestamp(1_000),
                Duration::from_millis(*stable_ms),
                &status(*state, *fault_at, *down_at),
                Timestamp(*now),
            );
            assert_eq!(got, *want, "row {row}");
        }
    }

    /// (probe's reason, relapses, the probe said crash loop) → the incident's cause.
    #[test]
    fn cause_table() {
        use FailureReason::*;
        let cases = [
            (Some(ContainerExited), 0, false, Some(ContainerExited)),
            (Some(ContainerExited), 1, false, Some(ContainerExited)),
            (Some(ContainerExited), 2, false, Some(CrashLoop)),
            (Some(Refused), 5, false, Some(CrashLoop)),
            (None, 1, false, None),
            (None, 2, false, Some(CrashLoop)),
            // Docker restarted it too often: a crash loop from the first Down
            (Some(ContainerExited), 0, true, Some(CrashLoop)),
            (Some(CrashLoop), 0, true, Some(CrashLoop)),
        ];
        for (reason, relapses, said, want) in cases {
            assert_eq!(
                cause(reason, relapses, said),
                want,
                "{reason:?} {relapses} {said}"
            );
        }
    }
}
