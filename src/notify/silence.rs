//! What the notifier knows of each probe from the bus: operator silences (a silenced probe's
//! alerts are recorded as suppressed, not sent) and whether it is Up (then no reminders).

use std::collections::{HashMap, HashSet};

use super::compose::{Notification, Status};
use crate::event::{Event, EventKind, ProbeState, Timestamp};

#[derive(Default)]
pub struct ProbeWatch {
    silenced_until: HashMap<String, Timestamp>,
    up: HashSet<String>,
    /// Subjects whose firing was suppressed: their resolution is suppressed too, so nobody
    /// hears "recovered" about an alert they never got.
    suppressed: HashSet<String>,
    /// The maintenance windows in force (`crate::maintenance`), when the daemon has them.
    maintenance: Option<crate::maintenance::Windows>,
    /// Firings held back by a maintenance window: sent once it ends if still unresolved.
    held: HashMap<String, Notification>,
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

    /// Follow the maintenance windows too: a probe in one is held back like a silenced one.
    pub fn with_maintenance(maintenance: Option<crate::maintenance::Windows>) -> Self {
        Self {
            maintenance,
            ..Self::default()
        }
    }

    /// The one gate: why the probe's alerts are held back now, if they are.
    fn muted(&self, probe: &str, now: Timestamp) -> Option<Mute> {
        if self
            .silenced_until
            .get(probe)
            .is_some_and(|until| *until > now)
        {
            return Some(Mute::Silence);
        }
        let maintenance = self.maintenance.as_ref()?;
        maintenance.covering(probe, now).map(|_| Mute::Maintenance)
    }

    fn silenced(&self, probe: &str, now: Timestamp) -> bool {
        self.muted(probe, now).is_some()
    }

    /// Firings held back by a maintenance window that has ended while their probe is still
    /// not Up: they go out now (a resolution in between dropped them).
    pub fn released(&mut self, now: Timestamp) -> Vec<Notification> {
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, n)| self.muted(&n.probe, now).is_none())
            .map(|(subject, _)| subject.clone())
            .collect();
        due.into_iter()
            .filter_map(|subject| self.held.remove(&subject))
            .filter(|n| !(n.subject.starts_with("probe:") && self.up.contains(&n.probe)))
            .collect()
    }

    /// Whether `notification` is recorded as suppressed instead of sent: a firing of a
    /// silenced probe, or the resolution of an alert whose firing was suppressed.
    pub fn suppress(&mut self, notification: &Notification, now: Timestamp) -> bool {
        if !about_a_probe(notification) {
            return false;
        }
        let subject = &notification.subject;
        match notification.status {
            Status::Resolved => {
                self.held.remove(subject);
                self.suppressed.remove(subject)
            }
            Status::Firing | Status::Reminder => {
                let muted = self.muted(&notification.probe, now);
                if muted == Some(Mute::Maintenance) && notification.status == Status::Firing {
                    self.held.insert(subject.clone(), notification.clone());
                }
                let silenced = muted.is_some();
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

/// Why a probe's alerts are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mute {
    /// `sentinelctl silence`: suppressed for good.
    Silence,
    /// A maintenance window: suppressed, and a firing still unresolved at its end goes out then.
    Maintenance,
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

    /// A firing during a maintenance window is suppressed and held; once the window ends it
    /// goes out if the probe is still not Up, and not at all if it resolved meanwhile.
    #[test]
    fn a_maintenance_window_holds_a_firing_back_until_it_ends() {
        #[derive(serde::Deserialize)]
        struct File {
            probe: Vec<crate::probe::ProbeConfig>,
        }
        let probes: File = toml::from_str(
            "[[probe]]\nname = \"pg\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nlabels = { team = \"db\" }\n",
        )
        .unwrap();
        let windows = crate::maintenance::Windows::new(crate::event::Bus::new());
        windows.configure(&[], &probes.probe);
        let now = Timestamp::now();
        let window = windows
            .start(
                crate::maintenance::StartRequest {
                    duration_ms: 60_000,
                    probes: vec![],
                    labels: [("team".to_string(), "db".to_string())].into(),
                    reason: "upgrade".into(),
                },
                crate::event::MaintenanceActor::Expiry,
                now,
            )
            .unwrap();
        let mut watch = ProbeWatch::with_maintenance(Some(windows.clone()));
        assert!(watch.suppress(&notification("probe:pg", Status::Firing), now));
        assert!(!watch.still_worth_reminding(&notification("probe:pg", Status::Firing), now));
        // tenant alerts are not held back by a window
        assert!(!watch.suppress(&notification("tenant:r:acme", Status::Firing), now));
        assert!(
            watch.released(now).is_empty(),
            "the window is still in force"
        );
        windows
            .end(&window.id, crate::event::MaintenanceActor::Expiry, now)
            .unwrap();
        let released = watch.released(now);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].subject, "probe:pg");
        assert!(!watch.suppress(&released[0], now), "sent once released");
        assert!(watch.released(now).is_empty(), "released once");

        // recovered inside the window: nothing is released
        let again = windows
            .start(
                crate::maintenance::StartRequest {
                    duration_ms: 60_000,
                    probes: vec!["pg".into()],
                    labels: Default::default(),
                    reason: "upgrade".into(),
                },
                crate::event::MaintenanceActor::Expiry,
                now,
            )
            .unwrap();
        assert!(watch.suppress(&notification("probe:pg", Status::Firing), now));
        assert!(watch.suppress(&notification("probe:pg", Status::Resolved), now));
        windows
            .end(&again.id, crate::event::MaintenanceActor::Expiry, now)
            .unwrap();
        assert!(watch.released(now).is_empty());
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
