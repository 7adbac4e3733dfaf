//! The windows in force: run-time ones (opened and ended over the control socket, rebuilt from
//! the journal after a restart) and the configured schedules' current occurrences.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::MaintenanceSection;
use super::schedule::{minute_utc, Schedule};
use super::{MaintenanceError, MAX_DURATION, TICK};
use crate::event::{Bus, Event, EventKind, MaintenanceActor, MaintenanceScope, Timestamp};
use crate::probe::config::validate_labels;
use crate::probe::ProbeConfig;

/// One window: run-time (`schedule` None) or one occurrence of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// `m…` for run-time windows, `NAME@2026-12-06T02:00Z` for a schedule's occurrence.
    pub id: String,
    pub schedule: Option<String>,
    pub scope: MaintenanceScope,
    pub reason: String,
    pub opened_by: MaintenanceActor,
    pub from: Timestamp,
    pub until: Timestamp,
}

/// `POST /v1/maintenance`: a run-time window from now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    pub duration_ms: u64,
    #[serde(default)]
    pub probes: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub reason: String,
}

/// The window that holds a probe back (the one that ends last, when several cover it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cover {
    pub window: String,
    pub until: Timestamp,
}

/// One `[[maintenance]]` as `maintenance list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleView {
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub duration_ms: u64,
    pub scope: MaintenanceScope,
    pub reason: String,
    /// The next occurrence after now.
    pub next_start: Option<Timestamp>,
    /// The id of its window open now, if one is.
    pub active: Option<String>,
}

/// `GET /v1/maintenance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceList {
    /// Every window in force now, run-time and scheduled, ending soonest first.
    pub active: Vec<Window>,
    pub schedules: Vec<ScheduleView>,
}

/// A configured schedule, parsed.
#[derive(Debug, Clone)]
struct Configured {
    name: String,
    expression: String,
    timezone: String,
    scope: MaintenanceScope,
    reason: String,
    schedule: Schedule,
}

impl Configured {
    fn window_at(&self, now: Timestamp) -> Option<Window> {
        let (from, until) = self.schedule.active_at(now)?;
        Some(Window {
            id: format!("{}@{}", self.name, minute_utc(from)),
            schedule: Some(self.name.clone()),
            scope: self.scope.clone(),
            reason: self.reason.clone(),
            opened_by: MaintenanceActor::Schedule {
                name: self.name.clone(),
            },
            from,
            until,
        })
    }
}

#[derive(Default)]
struct State {
    schedules: Vec<Configured>,
    /// Every configured probe and its labels.
    labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Run-time windows not yet journaled as ended.
    runtime: BTreeMap<String, Window>,
    /// Scheduled occurrences journaled as started and not yet as ended.
    scheduled_open: BTreeMap<String, Window>,
    /// Scheduled occurrences an operator ended before their time.
    ended_early: BTreeSet<String>,
    sequence: u32,
}

impl State {
    fn active(&self, now: Timestamp) -> Vec<Window> {
        let mut active: Vec<Window> = self
            .runtime
            .values()
            .filter(|w| w.from <= now && now < w.until)
            .cloned()
            .collect();
        active.extend(
            self.schedules
                .iter()
                .filter_map(|s| s.window_at(now))
                .filter(|w| !self.ended_early.contains(&w.id)),
        );
        active.sort_by(|a, b| (a.until, &a.id).cmp(&(b.until, &b.id)));
        active
    }
}

/// The maintenance windows: cheap to clone, shared by the API, the notifier and the daemon.
#[derive(Clone)]
pub struct Windows {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    bus: Bus,
    /// Bumped whenever a window opens or ends: the daemon then re-tells the healers.
    changed: watch::Sender<u64>,
}

fn started(window: &Window) -> EventKind {
    EventKind::MaintenanceStarted {
        window: window.id.clone(),
        schedule: window.schedule.clone(),
        scope: window.scope.clone(),
        reason: window.reason.clone(),
        opened_by: window.opened_by.clone(),
        from: window.from,
        until: window.until,
    }
}

fn ended(window: Window, by: MaintenanceActor, until: Timestamp, early: bool) -> EventKind {
    EventKind::MaintenanceEnded {
        window: window.id,
        schedule: window.schedule,
        scope: window.scope,
        reason: window.reason,
        ended_by: by,
        from: window.from,
        until,
        early,
    }
}

impl Windows {
    pub fn new(bus: Bus) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                bus,
                changed: watch::channel(0).0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.inner
            .changed
            .send_modify(|generation| *generation += 1);
    }

    /// Changes whenever a window opens or ends (or the schedules change).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Every configured probe's labels, by name: what label scopes are resolved against (uptime
    /// leaves the covered probes' time out of its figures).
    pub fn probe_labels(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.state().labels.clone()
    }

    /// Take the schedules and the probes (with their labels) of a validated config.
    pub fn configure(&self, sections: &[MaintenanceSection], probes: &[ProbeConfig]) {
        let schedules = sections
            .iter()
            .filter_map(|section| {
                Some(Configured {
                    name: section.name().to_string(),
                    expression: section.schedule.get_ref().clone(),
                    timezone: section.timezone().to_string(),
                    scope: section.scope(),
                    reason: section.reason(),
                    schedule: section.schedule()?,
                })
            })
            .collect();
        self.state().schedules = schedules;
        self.set_probes(probes);
    }

    /// Take the probes whose labels scopes are matched against: the config's, and the
    /// discovered ones beside them (`sentinel.label.*` on a container).
    pub fn set_probes(&self, probes: &[ProbeConfig]) {
        let labels = probes
            .iter()
            .map(|p| (p.name().to_string(), p.label_map()))
            .collect();
        self.state().labels = labels;
        self.bump();
    }

    /// Take back what the journal says is open (see [`rebuild`]); run-time windows that ran
    /// out while sentineld was down are journaled as ended now.
    pub fn restore(&self, rebuilt: Rebuilt) {
        let mut state = self.state();
        for window in rebuilt.runtime {
            state.runtime.insert(window.id.clone(), window);
        }
        for window in rebuilt.scheduled_open {
            state.scheduled_open.insert(window.id.clone(), window);
        }
        state.ended_early.extend(rebuilt.ended_early);
        for window in rebuilt.expired {
            let until = window.until;
            tracing::info!(window = %window.id, "maintenance window ran out while sentineld was down");
            self.inner
                .bus
                .publish(ended(window, MaintenanceActor::Expiry, until, false));
        }
        drop(state);
        self.bump();
    }

    /// Open a run-time window from `now`, journaled with who opened it.
    pub fn start(
        &self,
        request: StartRequest,
        by: MaintenanceActor,
        now: Timestamp,
    ) -> Result<Window, MaintenanceError> {
        let duration = Duration::from_millis(request.duration_ms);
        if duration < Duration::from_secs(1) || duration > MAX_DURATION {
            return Err(MaintenanceError::Duration);
        }
        let scope = MaintenanceScope {
            probes: request.probes,
            labels: request.labels,
        };
        if scope.is_empty() {
            return Err(MaintenanceError::EmptyScope);
        }
        let reason = request.reason.trim().to_string();
        if reason.is_empty() || reason.len() > 500 {
            return Err(MaintenanceError::Reason);
        }
        validate_labels(&scope.labels)?;
        let mut state = self.state();
        if let Some(unknown) = scope.probes.iter().find(|p| !state.labels.contains_key(*p)) {
            return Err(MaintenanceError::UnknownProbe(unknown.clone()));
        }
        state.sequence = state.sequence.wrapping_add(1);
        let window = Window {
            id: format!("m{:x}{:02x}", now.as_millis(), state.sequence % 256),
            schedule: None,
            scope,
            reason,
            opened_by: by,
            from: now,
            until: Timestamp(now.as_millis() + duration.as_millis() as i64),
        };
        state.runtime.insert(window.id.clone(), window.clone());
        tracing::info!(window = %window.id, scope = %window.scope, "maintenance window opened");
        self.inner.bus.publish(started(&window));
        drop(state);
        self.bump();
        Ok(window)
    }

    /// End window `id` now: a run-time window, or a schedule's occurrence in force.
    pub fn end(
        &self,
        id: &str,
        by: MaintenanceActor,
        now: Timestamp,
    ) -> Result<Window, MaintenanceError> {
        let mut state = self.state();
        let window = match state.runtime.remove(id) {
            Some(window) if window.until > now => window,
            Some(window) => {
                // It ran out already; the tick had not journaled it yet.
                let until = window.until;
                self.inner
                    .bus
                    .publish(ended(window, MaintenanceActor::Expiry, until, false));
                return Err(MaintenanceError::NoSuchWindow(id.to_string()));
            }
            None => {
                let scheduled = state
                    .active(now)
                    .into_iter()
                    .find(|w| w.id == id && w.schedule.is_some());
                let Some(window) = scheduled else {
                    return Err(MaintenanceError::NoSuchWindow(id.to_string()));
                };
                state.ended_early.insert(window.id.clone());
                state.scheduled_open.remove(id);
                window
            }
        };
        tracing::info!(window = %window.id, "maintenance window ended early");
        self.inner.bus.publish(ended(window.clone(), by, now, true));
        drop(state);
        self.bump();
        Ok(window)
    }

    /// Every window in force at `now` and every schedule with its next start.
    pub fn list(&self, now: Timestamp) -> MaintenanceList {
        let state = self.state();
        let active = state.active(now);
        let schedules = state
            .schedules
            .iter()
            .map(|s| ScheduleView {
                name: s.name.clone(),
                schedule: s.expression.clone(),
                timezone: s.timezone.clone(),
                duration_ms: s.schedule.duration().as_millis() as u64,
                scope: s.scope.clone(),
                reason: s.reason.clone(),
                next_start: s.schedule.next_start(now),
                active: active
                    .iter()
                    .find(|w| w.schedule.as_deref() == Some(&s.name))
                    .map(|w| w.id.clone()),
            })
            .collect();
        MaintenanceList { active, schedules }
    }

    /// The window holding `probe` back at `now`, if one covers it.
    pub fn covering(&self, probe: &str, now: Timestamp) -> Option<Cover> {
        let state = self.state();
        let none = BTreeMap::new();
        let labels = state.labels.get(probe).unwrap_or(&none);
        state
            .active(now)
            .into_iter()
            .filter(|w| w.scope.covers(probe, labels))
            .max_by_key(|w| w.until)
            .map(|w| Cover {
                window: w.id,
                until: w.until,
            })
    }

    /// Journal what began or ended by `now`: scheduled occurrences, and run-time windows that
    /// ran out.
    pub fn tick(&self, now: Timestamp) {
        let mut events = Vec::new();
        let mut state = self.state();
        let expired: Vec<String> = state
            .runtime
            .values()
            .filter(|w| w.until <= now)
            .map(|w| w.id.clone())
            .collect();
        for id in expired {
            if let Some(window) = state.runtime.remove(&id) {
                let until = window.until;
                events.push(ended(window, MaintenanceActor::Expiry, until, false));
            }
        }
        let occurring: Vec<Window> = state
            .schedules
            .iter()
            .filter_map(|s| s.window_at(now))
            .collect();
        let current: BTreeMap<String, Window> = occurring
            .iter()
            .filter(|w| !state.ended_early.contains(&w.id))
            .map(|w| (w.id.clone(), w.clone()))
            .collect();
        let closing: Vec<String> = state
            .scheduled_open
            .keys()
            .filter(|id| !current.contains_key(*id))
            .cloned()
            .collect();
        for id in closing {
            let Some(window) = state.scheduled_open.remove(&id) else {
                continue;
            };
            let by = MaintenanceActor::Schedule {
                name: window.schedule.clone().unwrap_or_default(),
            };
            let kind = match now >= window.until {
                true => {
                    let until = window.until;
                    ended(window, by, until, false)
                }
                // Its schedule changed or went away with the config.
                false => ended(window, by, now, true),
            };
            events.push(kind);
        }
        for (id, window) in current {
            if let std::collections::btree_map::Entry::Vacant(open) = state.scheduled_open.entry(id)
            {
                events.push(started(&window));
                open.insert(window);
            }
        }
        let occurring: BTreeSet<String> = occurring.into_iter().map(|w| w.id).collect();
        state.ended_early.retain(|id| occurring.contains(id));
        drop(state);
        if events.is_empty() {
            return;
        }
        for event in events {
            tracing::info!("{}", event.summary());
            self.inner.bus.publish(event);
        }
        self.bump();
    }

    /// Tick every second until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
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

/// What the journal says is still open: run-time windows in force, scheduled occurrences
/// journaled as started but not as ended, occurrences ended early, and run-time windows that
/// ran out without an end in the journal (sentineld was down then).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub runtime: Vec<Window>,
    pub scheduled_open: Vec<Window>,
    pub ended_early: Vec<String>,
    pub expired: Vec<Window>,
}

/// Rebuild from `events` (`maintenance_started` and `maintenance_ended`, oldest first).
pub fn rebuild<'a>(events: impl IntoIterator<Item = &'a Event>, now: Timestamp) -> Rebuilt {
    let mut open: BTreeMap<String, Window> = BTreeMap::new();
    let mut ended_early = BTreeSet::new();
    for event in events {
        match &event.kind {
            EventKind::MaintenanceStarted {
                window,
                schedule,
                scope,
                reason,
                opened_by,
                from,
                until,
            } => {
                open.insert(
                    window.clone(),
                    Window {
                        id: window.clone(),
                        schedule: schedule.clone(),
                        scope: scope.clone(),
                        reason: reason.clone(),
                        opened_by: opened_by.clone(),
                        from: *from,
                        until: *until,
                    },
                );
            }
            EventKind::MaintenanceEnded {
                window,
                schedule,
                early,
                ..
            } => {
                open.remove(window);
                if schedule.is_some() && *early {
                    ended_early.insert(window.clone());
                }
            }
            _ => {}
        }
    }
    let mut rebuilt = Rebuilt {
        ended_early: ended_early.into_iter().collect(),
        ..Default::default()
    };
    for window in open.into_values() {
        match (&window.schedule, window.until > now) {
            (Some(_), _) => rebuilt.scheduled_open.push(window),
            (None, true) => rebuilt.runtime.push(window),
            (None, false) => rebuilt.expired.push(window),
        }
    }
    rebuilt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes() -> Vec<ProbeConfig> {
        #[derive(Deserialize)]
        struct File {
            probe: Vec<ProbeConfig>,
        }
        let file: File = toml::from_str(
            r#"
            [[probe]]
            name = "web"
            kind = "tcp"
            address = "127.0.0.1:1"
            labels = { team = "payments", tier = "front" }
            [[probe]]
            name = "db"
            kind = "tcp"
            address = "127.0.0.1:2"
            labels = { team = "payments" }
            [[probe]]
            name = "cache"
            kind = "tcp"
            address = "127.0.0.1:3"
            "#,
        )
        .unwrap();
        file.probe
    }

    fn sections(toml_text: &str) -> Vec<MaintenanceSection> {
        #[derive(Deserialize)]
        struct File {
            maintenance: Vec<MaintenanceSection>,
        }
        toml::from_str::<File>(toml_text).unwrap().maintenance
    }

    fn operator() -> MaintenanceActor {
        MaintenanceActor::Operator {
            uid: 1000,
            user: Some("alice".into()),
        }
    }

    fn request(probes: &[&str], labels: &[(&str, &str)], ms: u64) -> StartRequest {
        StartRequest {
            duration_ms: ms,
            probes: probes.iter().map(|p| p.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reason: "deploy".into(),
        }
    }

    fn drain(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<EventKind> {
        let mut kinds = Vec::new();
        while let Ok(event) = events.try_recv() {
            kinds.push(event.kind);
        }
        kinds
    }

    #[test]
    fn scopes_cover_by_name_or_by_every_label() {
        let bus = Bus::new();
        let windows = Windows::new(bus);
        windows.configure(&[], &probes());
        let now = Timestamp(1_000_000);
        // (probes, labels, covered)
        type Case = (
            &'static [&'static str],
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            (&["db"], &[], &["db"]),
            (&[], &[("team", "payments")], &["web", "db"]),
            (&[], &[("team", "payments"), ("tier", "front")], &["web"]),
            (&[], &[("team", "search")], &[]),
            (&["cache"], &[("tier", "front")], &["web", "cache"]),
        ];
        for (names, labels, covered) in cases {
            let window = windows
                .start(request(names, labels, 60_000), operator(), now)
                .unwrap();
            for probe in ["web", "db", "cache"] {
                let cover = windows.covering(probe, Timestamp(now.as_millis() + 1));
                assert_eq!(
                    cover.is_some(),
                    covered.contains(&probe),
                    "{names:?} {labels:?} {probe}"
                );
            }
            windows.end(&window.id, operator(), now).unwrap();
        }
    }

    #[test]
    fn run_time_windows_are_refused_with_a_reason() {
        let windows = Windows::new(Bus::new());
        windows.configure(&[], &probes());
        let now = Timestamp(1_000_000);
        let cases: Vec<(StartRequest, &str)> = vec![
            (request(&[], &[], 60_000), "covers nothing"),
            (request(&["nope"], &[], 60_000), "no such probe: nope"),
            (request(&["db"], &[], 0), "at least 1s"),
            (request(&["db"], &[], 8 * 24 * 3600 * 1000), "at most"),
            (request(&["db"], &[("", "x")], 60_000), "invalid label name"),
            (
                StartRequest {
                    reason: "  ".into(),
                    ..request(&["db"], &[], 60_000)
                },
                "needs a reason",
            ),
        ];
        for (request, want) in cases {
            let err = windows.start(request, operator(), now).unwrap_err();
            assert!(err.to_string().contains(want), "{err} !~ {want}");
        }
        let err = windows.end("m42", operator(), now).unwrap_err();
        assert!(matches!(err, MaintenanceError::NoSuchWindow(_)), "{err}");
    }

    #[test]
    fn run_time_windows_are_journaled_and_expire() {
        let bus = Bus::new();
        let mut events = bus.subscribe();
        let windows = Windows::new(bus);
        windows.configure(&[], &probes());
        let now = Timestamp(1_000_000);
        let long = windows
            .start(request(&["db"], &[], 60_000), operator(), now)
            .unwrap();
        let short = windows
            .start(request(&["db"], &[], 10_000), operator(), now)
            .unwrap();
        assert_ne!(long.id, short.id);
        // the later end wins
        assert_eq!(
            windows.covering("db", now).map(|c| c.window),
            Some(long.id.clone())
        );
        windows.tick(Timestamp(now.as_millis() + 10_000));
        windows
            .end(&long.id, operator(), Timestamp(now.as_millis() + 20_000))
            .unwrap();
        assert_eq!(
            windows.covering("db", Timestamp(now.as_millis() + 20_000)),
            None
        );
        let kinds = drain(&mut events);
        let summary: Vec<String> = kinds.iter().map(EventKind::summary).collect();
        assert_eq!(kinds.len(), 4, "{summary:#?}");
        assert!(
            matches!(&kinds[2], EventKind::MaintenanceEnded { window, early: false, ended_by: MaintenanceActor::Expiry, until, .. } if *window == short.id && *until == short.until)
        );
        assert!(
            matches!(&kinds[3], EventKind::MaintenanceEnded { window, early: true, ended_by: MaintenanceActor::Operator { uid: 1000, .. }, until, .. } if *window == long.id && until.as_millis() == now.as_millis() + 20_000)
        );
    }

    #[test]
    fn scheduled_windows_are_active_at_once_journaled_and_can_end_early() {
        let bus = Bus::new();
        let mut events = bus.subscribe();
        let windows = Windows::new(bus);
        windows.configure(
            &sections(
                r#"
                [[maintenance]]
                name = "always"
                schedule = "* * * * *"
                duration = "2m"
                labels = { team = "payments" }
                "#,
            ),
            &probes(),
        );
        let now = Timestamp(1_700_000_030_000);
        let cover = windows.covering("web", now).expect("active at once");
        assert!(cover.window.starts_with("always@"), "{}", cover.window);
        assert_eq!(windows.covering("cache", now), None);
        windows.tick(now);
        windows.tick(now);
        let kinds = drain(&mut events);
        assert_eq!(kinds.len(), 1, "started once");
        assert!(
            matches!(&kinds[0], EventKind::MaintenanceStarted { schedule: Some(s), opened_by: MaintenanceActor::Schedule { .. }, .. } if s == "always")
        );
        // ended early by an operator: not covered until the next occurrence
        windows.end(&cover.window, operator(), now).unwrap();
        assert_eq!(windows.covering("web", now), None);
        windows.tick(now);
        assert!(matches!(
            &drain(&mut events)[..],
            [EventKind::MaintenanceEnded { early: true, .. }]
        ));
        let list = windows.list(now);
        assert_eq!(list.schedules.len(), 1);
        assert!(list.schedules[0].next_start.is_some());
        // a minute later the next occurrence opens
        let later = Timestamp(now.as_millis() + 60_000);
        assert!(windows.covering("web", later).is_some());
        windows.tick(later);
        assert!(matches!(
            &drain(&mut events)[..],
            [EventKind::MaintenanceStarted { .. }, ..]
        ));
        // the schedule removed: its open occurrence ends early
        windows.configure(&[], &probes());
        windows.tick(later);
        assert!(matches!(
            &drain(&mut events)[..],
            [EventKind::MaintenanceEnded {
                early: true,
                ended_by: MaintenanceActor::Schedule { .. },
                ..
            }]
        ));
    }

    #[test]
    fn rebuild_keeps_what_is_still_open() {
        let bus = Bus::new();
        let mut events = bus.subscribe();
        let windows = Windows::new(bus.clone());
        windows.configure(&[], &probes());
        let t0 = Timestamp(1_000_000);
        let kept = windows
            .start(request(&["db"], &[], 600_000), operator(), t0)
            .unwrap();
        let ran_out = windows
            .start(request(&["web"], &[], 10_000), operator(), t0)
            .unwrap();
        let closed = windows
            .start(request(&["cache"], &[], 600_000), operator(), t0)
            .unwrap();
        windows.end(&closed.id, operator(), t0).unwrap();
        let journal: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        let now = Timestamp(t0.as_millis() + 60_000);
        let rebuilt = rebuild(&journal, now);
        assert_eq!(rebuilt.runtime, vec![kept.clone()]);
        assert_eq!(rebuilt.expired, vec![ran_out]);
        // a new daemon: the window still covers its probe and can be ended by its id
        let restarted = Windows::new(bus);
        restarted.configure(&[], &probes());
        restarted.restore(rebuilt);
        assert!(matches!(
            &drain(&mut events)[..],
            [EventKind::MaintenanceEnded {
                ended_by: MaintenanceActor::Expiry,
                ..
            }]
        ));
        assert_eq!(
            restarted.covering("db", now).map(|c| c.window),
            Some(kept.id.clone())
        );
        assert!(restarted.end(&kept.id, operator(), now).is_ok());
    }
}
