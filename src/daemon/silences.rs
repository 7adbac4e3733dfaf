//! Operator silences across a daemon restart: which `probe_silenced` events in the journal are
//! still in force, so a probe silenced for maintenance stays quiet after sentineld restarts.

use std::collections::BTreeMap;

use crate::event::{EventKind, JournaledEvent, Timestamp};

/// Each probe's last silence from `events` (oldest first), kept when it lasts beyond `now`.
pub(super) fn active_silences(
    events: &[JournaledEvent],
    now: Timestamp,
) -> BTreeMap<String, Timestamp> {
    let mut last = BTreeMap::new();
    for journaled in events {
        if let EventKind::ProbeSilenced { probe, until } = &journaled.event.kind {
            last.insert(probe.clone(), *until);
        }
    }
    last.retain(|_, until| *until > now);
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn silenced(id: i64, probe: &str, until: i64) -> JournaledEvent {
        JournaledEvent {
            id,
            event: Event {
                at: Timestamp(id),
                kind: EventKind::ProbeSilenced {
                    probe: probe.into(),
                    until: Timestamp(until),
                },
            },
        }
    }

    #[test]
    fn the_last_silence_of_each_probe_counts_while_it_lasts() {
        let now = Timestamp(1_000);
        type Case = (&'static str, Vec<JournaledEvent>, Vec<(&'static str, i64)>);
        let cases: Vec<Case> = vec![
            ("none journaled", vec![], vec![]),
            (
                "still in force",
                vec![silenced(1, "db", 5_000)],
                vec![("db", 5_000)],
            ),
            ("expired", vec![silenced(1, "db", 900)], vec![]),
            (
                "lifted early (a zero-length silence ends it)",
                vec![silenced(1, "db", 5_000), silenced(2, "db", 500)],
                vec![],
            ),
            (
                "extended",
                vec![silenced(1, "db", 2_000), silenced(2, "db", 9_000)],
                vec![("db", 9_000)],
            ),
            (
                "per probe",
                vec![silenced(1, "db", 2_000), silenced(2, "api", 800)],
                vec![("db", 2_000)],
            ),
        ];
        for (name, events, expected) in cases {
            let found: Vec<(String, i64)> = active_silences(&events, now)
                .into_iter()
                .map(|(probe, until)| (probe, until.as_millis()))
                .collect();
            let expected: Vec<(String, i64)> = expected
                .into_iter()
                .map(|(p, u)| (p.to_string(), u))
                .collect();
            assert_eq!(found, expected, "{name}");
        }
    }
}
