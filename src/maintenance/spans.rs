//! Journaled maintenance as time spans to leave out of uptime figures: a pure function of the
//! `maintenance_started` / `maintenance_ended` events, for the uptime area to call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind, MaintenanceScope, Timestamp};

/// One window as it really ran: from its start to its end (early or as planned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub window: String,
    pub scope: MaintenanceScope,
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Span {
    /// Whether this span excludes time of the probe `name` that carries `labels`.
    pub fn covers(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.scope.covers(name, labels)
    }
}

/// The spans of every window in `events` (any order of kinds, oldest first; other kinds are
/// skipped), sorted by start. A window still open ends at its planned `until` or at `now`,
/// whichever comes first; an end whose start is no longer journaled (retention) still counts
/// from the `from` it carries. Empty spans are dropped.
pub fn excluded_spans<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    now: Timestamp,
) -> Vec<Span> {
    let mut open: BTreeMap<String, (MaintenanceScope, Timestamp, Timestamp)> = BTreeMap::new();
    let mut spans = Vec::new();
    for event in events {
        match &event.kind {
            EventKind::MaintenanceStarted {
                window,
                scope,
                from,
                until,
                ..
            } => {
                open.insert(window.clone(), (scope.clone(), *from, *until));
            }
            EventKind::MaintenanceEnded {
                window,
                scope,
                from,
                until,
                ..
            } => {
                let (scope, from) = match open.remove(window) {
                    Some((scope, from, _)) => (scope, from),
                    None => (scope.clone(), *from),
                };
                spans.push(Span {
                    window: window.clone(),
                    scope,
                    from,
                    to: *until,
                });
            }
            _ => {}
        }
    }
    spans.extend(open.into_iter().map(|(window, (scope, from, until))| Span {
        window,
        scope,
        from,
        to: until.min(now),
    }));
    spans.retain(|span| span.to > span.from);
    spans.sort_by(|a, b| (a.from, &a.window).cmp(&(b.from, &b.window)));
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MaintenanceActor;

    fn scope(probes: &[&str], labels: &[(&str, &str)]) -> MaintenanceScope {
        MaintenanceScope {
            probes: probes.iter().map(|p| p.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn started(window: &str, scope: MaintenanceScope, from: i64, until: i64) -> Event {
        Event {
            at: Timestamp(from),
            kind: EventKind::MaintenanceStarted {
                window: window.into(),
                schedule: None,
                scope,
                reason: "r".into(),
                opened_by: MaintenanceActor::Expiry,
                from: Timestamp(from),
                until: Timestamp(until),
            },
        }
    }

    fn ended(window: &str, scope: MaintenanceScope, from: i64, until: i64, early: bool) -> Event {
        Event {
            at: Timestamp(until),
            kind: EventKind::MaintenanceEnded {
                window: window.into(),
                schedule: None,
                scope,
                reason: "r".into(),
                ended_by: MaintenanceActor::Expiry,
                from: Timestamp(from),
                until: Timestamp(until),
                early,
            },
        }
    }

    #[test]
    fn spans_table() {
        let db = || scope(&["db"], &[]);
        let now = Timestamp(10_000);
        // (name, events, spans as (window, from, to))
        type Case = (&'static str, Vec<Event>, Vec<(&'static str, i64, i64)>);
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![]),
            (
                "ended as planned",
                vec![
                    started("a", db(), 100, 200),
                    ended("a", db(), 100, 200, false),
                ],
                vec![("a", 100, 200)],
            ),
            (
                "ended early: the real end",
                vec![
                    started("a", db(), 100, 900),
                    ended("a", db(), 100, 300, true),
                ],
                vec![("a", 100, 300)],
            ),
            (
                "still open: up to now",
                vec![started("a", db(), 9_000, 20_000)],
                vec![("a", 9_000, 10_000)],
            ),
            (
                "open past its until (daemon down at its end): up to until",
                vec![started("a", db(), 100, 500)],
                vec![("a", 100, 500)],
            ),
            (
                "start lost to retention",
                vec![ended("a", db(), 100, 200, false)],
                vec![("a", 100, 200)],
            ),
            (
                "two windows, sorted by start",
                vec![
                    started("b", db(), 300, 400),
                    started("a", db(), 100, 900),
                    ended("b", db(), 300, 400, false),
                ],
                vec![("a", 100, 900), ("b", 300, 400)],
            ),
            (
                "ended at its start: empty",
                vec![
                    started("a", db(), 100, 900),
                    ended("a", db(), 100, 100, true),
                ],
                vec![],
            ),
        ];
        for (name, events, want) in cases {
            let got: Vec<(String, i64, i64)> = excluded_spans(&events, now)
                .into_iter()
                .map(|s| (s.window, s.from.as_millis(), s.to.as_millis()))
                .collect();
            let want: Vec<(String, i64, i64)> =
                want.into_iter().map(|(w, f, t)| (w.into(), f, t)).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_span_covers_by_name_or_all_labels() {
        let span = excluded_spans(
            &[started(
                "a",
                scope(&["cache"], &[("team", "payments"), ("tier", "db")]),
                0,
                10,
            )],
            Timestamp(5),
        )
        .remove(0);
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(span.covers("cache", &labels(&[])));
        assert!(span.covers(
            "pg",
            &labels(&[("team", "payments"), ("tier", "db"), ("x", "y")])
        ));
        assert!(!span.covers("pg", &labels(&[("team", "payments")])));
        assert!(!span.covers("web", &labels(&[("team", "search"), ("tier", "db")])));
    }
}
