//! What the notifier knows of each probe from the bus: operator silences (a silenced probe's
//! alerts are recorded as suppressed, not sent) and whether it is Up (then no reminders).

use std::collections::{HashMap, HashSet};

use super::compose::{Notification, Status};
use crate::event::{Event, EventKind, ProbeState, Timestamp};

#[derive(Debug, Default)]
pub struct ProbeWatch {
    silenced_until: HashMap<String, Timestamp>,
    up: HashSet<String>,
    /// Subjects whose firing was suppressed: their resolution is suppressed too, so nobody
    /// hears "recovered" about an alert they never got.
    suppressed: HashSet<String>,
}

impl ProbeWatch {
    pub fn observe(&mut self, event: &Event) {
        match &event.kind {
            EventKind::ProbeSilenced { probe, until } => {
                self.silenced_until.insert(probe.clone(), *until);
            }
            EventKind::ProbeTransition {
                probe,
                to: ProbeState::Up,
                ..
            } => {
                self.up.insert(probe.clone());
            }
            EventKind::ProbeTransition { probe, .. } => {
                self.up.remove(probe);
            }
            _ => {}
        }
    }

    fn silenced(&self, probe: &str, now: Timestamp) -> bool {
        self.silenced_until
            .get(probe)
            .is_some_and(|until| *until > now)
    }

    /// Whether `notification` is recorded as suppressed instead of sent: a firing of a
    /// silenced probe, or the resolution of an alert whose firing was suppressed.
    pub fn suppress(&mut self, notification: &Notification, now: Timestamp) -> bool {
        if !about_a_probe(notification) {
            return false;
        }
        let subject = &notification.subject;
        match notification.status {
            Status::Resolved => self.suppressed.remove(subject),
            Status::Firing | Status::Reminder => {
                let silenced = self.silenced(&notification.probe, now);
                if silenced {
                    self.suppressed.insert(subject.clone());
                } else {
                    self.suppressed.remove(subject);
                }
                silenced
            }
        }
    }

    /// Reminders stop while the probe is silenced, and once it is seen Up (a daemon restart
    /// can miss the incident's close, which would otherwise remind forever).
    pub fn still_worth_reminding(&self, notification: &Notification, now: Timestamp) -> bool {
        if !about_a_probe(notification) {
            return true;
        }
        let probe = &notification.probe;
        let recovered = notification.subject.starts_with("probe:") && self.up.contains(probe);
        !self.silenced(probe, now) && !recovered
    }
}

/// Probe alerts and their evidence problems; tenant alerts are not silenced per probe.
fn about_a_probe(notification: &Notification) -> bool {
    ["probe:", "archive:"]
        .iter()
        .any(|prefix| notification.subject.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::notify::config::Severity;

    fn notification(subject: &str, status: Status) -> Notification {
        Notification {
            kind: "heal_started".into(),
            subject: subject.into(),
            probe: "pg".into(),
            status,
            severity: Severity::Critical,
            text: "🚨".into(),
            at: Timestamp(0),
            started_at: Timestamp(0),
            labels: BTreeMap::new(),
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            at: Timestamp(0),
            kind,
        }
    }

    fn silence(until: i64) -> Event {
        event(EventKind::ProbeSilenced {
            probe: "pg".into(),
            until: Timestamp(until),
        })
    }

    fn transition(to: ProbeState) -> Event {
        event(EventKind::ProbeTransition {
            probe: "pg".into(),
            from: ProbeState::Unknown,
            to,
            reason: None,
            status_code: None,
            latency_ms: None,
            recoveries_total: 0,
        })
    }

    #[test]
    fn silences_and_recoveries_table() {
        use Status::*;
        // (events before, notification subject, status, at, suppressed?, worth a reminder?)
        type Case<'a> = (&'a [Event], &'a str, Status, i64, bool, bool);
        let cases: &[Case] = &[
            (&[], "probe:pg", Firing, 10, false, true),
            (&[silence(100)], "probe:pg", Firing, 10, true, false),
            (&[silence(100)], "archive:b:upload", Firing, 10, true, false),
            (&[silence(100)], "tenant:r:acme", Firing, 10, false, true),
            (&[silence(100)], "probe:pg", Firing, 100, false, true),
            (
                &[silence(100), silence(5)],
                "probe:pg",
                Firing,
                10,
                false,
                true,
            ),
            (
                &[transition(ProbeState::Down), transition(ProbeState::Up)],
                "probe:pg",
                Firing,
                10,
                false,
                false,
            ),
            (
                &[transition(ProbeState::Up), transition(ProbeState::Down)],
                "probe:pg",
                Firing,
                10,
                false,
                true,
            ),
        ];
        for (i, (events, subject, status, now, suppressed, remind)) in cases.iter().enumerate() {
            let mut watch = ProbeWatch::default();
            events.iter().for_each(|e| watch.observe(e));
            let n = notification(subject, *status);
            let now = Timestamp(*now);
            assert_eq!(watch.still_worth_reminding(&n, now), *remind, "case {i}");
            assert_eq!(watch.suppress(&n, now), *suppressed, "case {i}");
        }
    }

    #[test]
    fn a_resolution_is_suppressed_only_when_its_firing_was() {
        let mut watch = ProbeWatch::default();
        watch.observe(&silence(100));
        assert!(watch.suppress(&notification("probe:pg", Status::Firing), Timestamp(10)));
        // the silence ended before the recovery: still nobody heard the alert
        assert!(watch.suppress(&notification("probe:pg", Status::Resolved), Timestamp(200)));
        // a firing that went out gets its resolution, silence or not
        assert!(!watch.suppress(&notification("probe:pg", Status::Firing), Timestamp(300)));
        watch.observe(&silence(1000));
        assert!(!watch.suppress(&notification("probe:pg", Status::Resolved), Timestamp(400)));
    }
}
