//! Alerts people can bear: a flapping probe becomes one message and one resolve, and while a
//! `depends_on` parent is Down its dependants' alerts are held and summed up in its messages.
//! Plain logic (events and notifications in, decisions out, time given); the outbox is the edge.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::compose::{Notification, Status};
use super::config::Severity;
use crate::event::{Event, EventKind, ProbeState, Timestamp};

/// When a probe flaps, and who depends on whom (from `[notify.flapping]` and the probes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// More than this many Up/Down changes within `flap_window` is flapping.
    pub flap_transitions: u32,
    pub flap_window: Duration,
    /// A flapping probe that stayed Up this long has settled: its flapping alert resolves.
    pub flap_settle: Duration,
    /// probe → the probes it `depends_on`.
    pub parents: HashMap<String, Vec<String>>,
    /// Probes with a heal ("restarted 30 times"; without one: "went down 30 times").
    pub heals: HashSet<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            flap_transitions: 2,
            flap_window: Duration::from_secs(120),
            flap_settle: Duration::from_secs(30),
            parents: HashMap::new(),
            heals: HashSet::new(),
        }
    }
}

/// What to do with a notification, or what a transition set off.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Store and deliver.
    Send(Notification),
    /// Store, but deliver only when `parent` recovers (or fold it then).
    Hold {
        notification: Notification,
        parent: String,
    },
    /// Told by a flapping alert or a parent's message already: not stored.
    Fold(Notification),
    /// `parent` is Up: its dependants' held alerts go out, except those of `recovered`
    /// dependants, which are folded into the parent's resolve.
    Release {
        parent: String,
        recovered: Vec<String>,
    },
}

#[derive(Debug, Clone, Default)]
struct ProbeTrack {
    /// Up/Down changes within the flap window.
    changes: VecDeque<Timestamp>,
    /// Down (or assumed Down: a parent whose dependants an earlier sentineld held).
    down: bool,
    /// Seen Up since this notifier started.
    seen_up: bool,
    last_change: Option<Timestamp>,
    flap: Option<Flap>,
}

#[derive(Debug, Clone)]
struct Flap {
    /// The first change in the window that made it flapping.
    since: Timestamp,
    downs: u32,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Grouper {
    rules: Rules,
    probes: HashMap<String, ProbeTrack>,
    /// parent → dependants whose alerts are held for it.
    held: HashMap<String, BTreeSet<String>>,
    /// parent → how many dependants were held when it recovered (for its resolve's text).
    released: HashMap<String, usize>,
    /// Dependants whose held firing was folded: their later resolve is folded too.
    folded: HashSet<String>,
}

impl Grouper {
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// Alerts an earlier sentineld held (dependant, parent), read back from the outbox: the
    /// parent counts as Down until this notifier sees it Up.
    pub fn restore_held(&mut self, held: impl IntoIterator<Item = (String, String)>) {
        for (dependant, parent) in held {
            self.probes.entry(parent.clone()).or_default().down = true;
            self.held.entry(parent).or_default().insert(dependant);
        }
    }

    /// A bus event: counts changes, starts a flapping alert, releases held dependants.
    pub fn observe(&mut self, event: &Event) -> Vec<Decision> {
        let EventKind::ProbeTransition {
            probe, from, to, ..
        } = &event.kind
        else {
            return Vec::new();
        };
        let at = event.at;
        let window = self.rules.flap_window.as_millis() as i64;
        let limit = self.rules.flap_transitions as usize;
        let heals = self.rules.heals.contains(probe);
        let track = self.probes.entry(probe.clone()).or_default();
        let mut decisions = Vec::new();
        let counted = match to {
            ProbeState::Down => true,
            ProbeState::Up => matches!(from, ProbeState::Down | ProbeState::Recovering),
            _ => false,
        };
        match to {
            ProbeState::Down => track.down = true,
            ProbeState::Up => {
                track.down = false;
                track.seen_up = true;
            }
            _ => {}
        }
        if counted {
            track.last_change = Some(at);
            track.changes.push_back(at);
            while track
                .changes
                .front()
                .is_some_and(|t| at.as_millis() - t.as_millis() > window)
            {
                track.changes.pop_front();
            }
            if let Some(flap) = &mut track.flap {
                if *to == ProbeState::Down {
                    flap.downs += 1;
                }
            } else if track.changes.len() > limit {
                let since = *track.changes.front().expect("more than the limit");
                let downs = track.changes.len().div_ceil(2) as u32;
                let labels = flap_labels(probe);
                let text = format!(
                    "🔁 {probe}: {} {downs} times in {}, still flapping",
                    if heals { "restarted" } else { "went down" },
                    span(at.as_millis() - since.as_millis()),
                );
                track.flap = Some(Flap {
                    since,
                    downs,
                    labels: labels.clone(),
                });
                decisions.push(Decision::Send(Notification {
                    kind: event.kind.name().into(),
                    subject: format!("probe:{probe}"),
                    probe: probe.clone(),
                    status: Status::Firing,
                    severity: Severity::Critical,
                    text,
                    at,
                    started_at: since,
                    labels,
                }));
            }
        }
        if *to == ProbeState::Up {
            if let Some(dependants) = self.held.remove(probe) {
                let recovered: Vec<String> = dependants
                    .iter()
                    .filter(|d| self.probes.get(*d).is_some_and(|t| !t.down && t.seen_up))
                    .cloned()
                    .collect();
                self.folded.extend(recovered.iter().cloned());
                self.released.insert(probe.clone(), dependants.len());
                decisions.push(Decision::Release {
                    parent: probe.clone(),
                    recovered,
                });
            }
        }
        decisions
    }

    /// A composed notification: send it, hold it for a Down parent, or fold it.
    pub fn decide(&mut self, mut notification: Notification) -> Decision {
        let probe = notification.probe.clone();
        if notification.subject != format!("probe:{probe}") {
            return Decision::Send(notification);
        }
        let flapping = self.probes.get(&probe).is_some_and(|t| t.flap.is_some());
        // "gave up" and "not restarting" are what the flapping alert cannot say: never folded.
        let final_word = matches!(
            notification.kind.as_str(),
            "heal_gave_up" | "remedy_exhausted"
        );
        if flapping && !final_word {
            return Decision::Fold(notification);
        }
        if notification.status == Status::Resolved && self.folded.remove(&probe) {
            return Decision::Fold(notification);
        }
        let down_parent = self.rules.parents.get(&probe).and_then(|parents| {
            parents
                .iter()
                .find(|p| self.probes.get(*p).is_some_and(|t| t.down))
                .cloned()
        });
        if let Some(parent) = down_parent {
            self.held
                .entry(parent.clone())
                .or_default()
                .insert(probe.clone());
            return Decision::Hold {
                notification,
                parent,
            };
        }
        match notification.status {
            Status::Firing => {
                let held = self.held.get(&probe).map_or(0, BTreeSet::len);
                if held > 0 {
                    notification
                        .text
                        .push_str(&format!(" (+{held} {} down)", dependants(held)));
                }
            }
            Status::Resolved => {
                if let Some(held) = self.released.remove(&probe) {
                    notification.text.push_str(&format!(
                        " (+{held} {} were down with it)",
                        dependants(held)
                    ));
                }
            }
            Status::Reminder => {}
        }
        Decision::Send(notification)
    }

    /// Once a second: a flapping probe that stayed Up for `flap_settle` resolves its alert.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Decision> {
        let settle = self.rules.flap_settle.as_millis() as i64;
        let mut decisions = Vec::new();
        let mut names: Vec<&String> = self.probes.keys().collect();
        names.sort();
        let names: Vec<String> = names.into_iter().cloned().collect();
        for probe in names {
            let heals = self.rules.heals.contains(&probe);
            let track = self.probes.get_mut(&probe).expect("listed");
            let settled = !track.down
                && track
                    .last_change
                    .is_some_and(|t| now.as_millis() - t.as_millis() >= settle);
            if !settled {
                continue;
            }
            let Some(flap) = track.flap.take() else {
                continue;
            };
            track.changes.clear();
            let text = format!(
                "✅ {probe}: stopped flapping after {} {} in {}",
                flap.downs,
                match (heals, flap.downs) {
                    (true, 1) => "restart",
                    (true, _) => "restarts",
                    (false, 1) => "outage",
                    (false, _) => "outages",
                },
                span(track.last_change.map_or(0, |t| t.as_millis()) - flap.since.as_millis()),
            );
            decisions.push(Decision::Send(Notification {
                kind: "probe_transition".into(),
                subject: format!("probe:{probe}"),
                probe: probe.clone(),
                status: Status::Resolved,
                severity: Severity::Critical,
                text,
                at: now,
                started_at: flap.since,
                labels: flap.labels,
            }));
        }
        decisions
    }
}

fn flap_labels(probe: &str) -> std::collections::BTreeMap<String, String> {
    [("alertname", "SentinelProbeDown"), ("probe", probe)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn dependants(n: usize) -> &'static str {
    if n == 1 {
        "dependant"
    } else {
        "dependants"
    }
}

/// "45 s", "2 min".
fn span(ms: i64) -> String {
    let secs = (ms.max(0) + 500) / 1000;
    if secs < 90 {
        format!("{secs} s")
    } else {
        format!("{} min", (secs + 30) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            parents: HashMap::from([
                ("api".to_string(), vec!["db".to_string()]),
                ("web".to_string(), vec!["db".to_string()]),
            ]),
            heals: HashSet::from(["web".to_string(), "api".to_string()]),
            ..Rules::default()
        }
    }

    fn change(probe: &str, from: ProbeState, to: ProbeState, ms: i64) -> Event {
        Event {
            at: Timestamp(ms),
            kind: EventKind::ProbeTransition {
                probe: probe.into(),
                from,
                to,
                reason: None,
                status_code: None,
                latency_ms: None,
                recoveries_total: 0,
            },
        }
    }

    fn alert(probe: &str, kind: &str, status: Status, ms: i64) -> Notification {
        Notification {
            kind: kind.into(),
            subject: format!("probe:{probe}"),
            probe: probe.into(),
            status,
            severity: Severity::Critical,
            text: format!("{probe} {kind}"),
            at: Timestamp(ms),
            started_at: Timestamp(ms),
            labels: flap_labels(probe),
        }
    }

    /// What the notifier would store: sent texts, held (text, parent), folded texts, releases.
    #[derive(Debug, Default, PartialEq)]
    struct Told {
        sent: Vec<String>,
        held: Vec<(String, String)>,
        folded: Vec<String>,
        released: Vec<(String, Vec<String>)>,
    }

    enum Step {
        Change(&'static str, ProbeState, ProbeState),
        Alert(&'static str, &'static str, Status),
        Tick,
    }

    fn run(steps: &[(i64, Step)]) -> Told {
        use Step::*;
        let mut grouper = Grouper::default();
        grouper.set_rules(rules());
        let mut told = Told::default();
        for (ms, step) in steps {
            let decisions = match step {
                Change(p, from, to) => grouper.observe(&change(p, *from, *to, *ms)),
                Alert(p, kind, status) => vec![grouper.decide(alert(p, kind, *status, *ms))],
                Tick => grouper.tick(Timestamp(*ms)),
            };
            for decision in decisions {
                match decision {
                    Decision::Send(n) => told.sent.push(n.text),
                    Decision::Hold {
                        notification,
                        parent,
                    } => told.held.push((notification.text, parent)),
                    Decision::Fold(n) => told.folded.push(n.text),
                    Decision::Release { parent, recovered } => {
                        told.released.push((parent, recovered))
                    }
                }
            }
        }
        told
    }

    /// One incident: a heal, then its resolve.
    fn kill(probe: &'static str, ms: i64) -> Vec<(i64, Step)> {
        use ProbeState::*;
        use Step::*;
        vec![
            (ms, Change(probe, Failing, Down)),
            (ms + 10, Alert(probe, "heal_started", Status::Firing)),
            (ms + 500, Change(probe, Recovering, Up)),
            (ms + 510, Alert(probe, "incident_closed", Status::Resolved)),
        ]
    }

    #[test]
    fn thirty_restarts_are_one_flapping_alert_and_one_resolve() {
        let mut steps: Vec<(i64, Step)> = (0..30).flat_map(|i| kill("web", i * 2_000)).collect();
        steps.push((70_000, Step::Tick));
        steps.push((88_000, Step::Tick));
        steps.push((89_000, Step::Tick));
        let told = run(&steps);
        assert_eq!(
            told.sent,
            [
                "web heal_started",
                "web incident_closed",
                "🔁 web: restarted 2 times in 2 s, still flapping",
                "✅ web: stopped flapping after 30 restarts in 59 s",
            ]
        );
        assert_eq!(told.folded.len(), 58, "the other 29 incidents' messages");
        assert!(told.held.is_empty() && told.released.is_empty());
    }

    #[test]
    fn a_gave_up_goes_out_while_flapping_and_settling_needs_up() {
        use ProbeState::*;
        use Step::*;
        let mut steps: Vec<(i64, Step)> = (0..3).flat_map(|i| kill("web", i * 2_000)).collect();
        steps.extend([
            (6_000, Change("web", Up, Down)),
            (6_100, Alert("web", "heal_gave_up", Status::Firing)),
            (60_000, Tick),
            (61_000, Change("web", Down, Up)),
            (90_000, Tick),
            (91_000, Tick),
        ]);
        let told = run(&steps);
        assert_eq!(
            told.sent,
            [
                "web heal_started",
                "web incident_closed",
                "🔁 web: restarted 2 times in 2 s, still flapping",
                "web heal_gave_up",
                "✅ web: stopped flapping after 4 restarts in 61 s",
            ]
        );
    }

    #[test]
    fn changes_spread_over_more_than_the_window_are_no_flapping() {
        let steps: Vec<(i64, Step)> = (0..4).flat_map(|i| kill("web", i * 130_000)).collect();
        let told = run(&steps);
        assert_eq!(told.sent.len(), 8, "{told:?}");
        assert!(told.folded.is_empty());
    }

    #[test]
    fn dependants_are_held_while_their_parent_is_down_then_released_or_folded() {
        use ProbeState::*;
        use Step::*;
        let told = run(&[
            (0, Change("db", Failing, Down)),
            (5, Change("api", Failing, Down)),
            (10, Alert("api", "heal_started", Status::Firing)),
            (20, Change("web", Failing, Down)),
            (25, Alert("web", "heal_started", Status::Firing)),
            (30, Alert("db", "probe_transition", Status::Firing)),
            (4_000, Change("web", Recovering, Up)),
            (4_010, Alert("web", "incident_closed", Status::Resolved)),
            (9_000, Change("db", Down, Up)),
            (9_010, Alert("db", "probe_transition", Status::Resolved)),
            // api stays down: its alert was released; its own resolve goes out later
            (12_000, Change("api", Recovering, Up)),
            (12_010, Alert("api", "incident_closed", Status::Resolved)),
        ]);
        assert_eq!(
            told.held,
            [
                ("api heal_started".to_string(), "db".to_string()),
                ("web heal_started".to_string(), "db".to_string()),
                ("web incident_closed".to_string(), "db".to_string()),
            ]
        );
        assert_eq!(told.released, [("db".to_string(), vec!["web".to_string()])]);
        assert_eq!(
            told.sent,
            [
                "db probe_transition (+2 dependants down)",
                "db probe_transition (+2 dependants were down with it)",
                "api incident_closed",
            ]
        );
    }

    #[test]
    fn a_late_resolve_of_a_folded_dependant_is_folded() {
        use ProbeState::*;
        use Step::*;
        let told = run(&[
            (0, Change("db", Failing, Down)),
            (10, Alert("web", "heal_started", Status::Firing)),
            (20, Change("web", Recovering, Up)),
            (30, Change("db", Down, Up)),
            (40, Alert("web", "incident_closed", Status::Resolved)),
        ]);
        assert_eq!(told.released, [("db".to_string(), vec!["web".to_string()])]);
        assert_eq!(told.folded, ["web incident_closed"]);
        assert!(told.sent.is_empty());
    }

    #[test]
    fn held_alerts_restored_after_a_restart_wait_for_the_parent() {
        let mut grouper = Grouper::default();
        grouper.set_rules(rules());
        grouper.restore_held([("api".to_string(), "db".to_string())]);
        let more = grouper.decide(alert("web", "heal_started", Status::Firing, 1));
        assert!(matches!(more, Decision::Hold { ref parent, .. } if parent == "db"));
        // after the restart db is first seen Up (from unknown): api never seen Up, released
        let out = grouper.observe(&change("db", ProbeState::Unknown, ProbeState::Up, 2));
        assert_eq!(
            out,
            [Decision::Release {
                parent: "db".into(),
                recovered: vec![],
            }]
        );
    }

    #[test]
    fn other_subjects_pass() {
        let mut grouper = Grouper::default();
        grouper.set_rules(rules());
        let mut n = alert("web", "archive_failed", Status::Firing, 1);
        n.subject = "archive:b:upload".into();
        assert!(matches!(grouper.decide(n), Decision::Send(_)));
        assert_eq!(span(58_000), "58 s");
        assert_eq!(span(125_000), "2 min");
    }
}
