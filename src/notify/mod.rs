//! Telling people: events become notifications (composed per incident), routed to channels
//! (Slack, Discord, signed webhook, Alertmanager, email, PagerDuty, Telegram, Teams, ntfy), stored in a durable outbox and delivered
//! with retry, rate limit, dedup and reminders — across receiver outages and daemon restarts.
//! A silenced probe's alerts are recorded in the outbox as suppressed, not sent; so are those
//! of a probe in a maintenance window, whose unresolved firing goes out when the window ends.
//! Flapping probes and the dependants of a Down parent are grouped (`grouping`), criticals go first.

pub mod channel;
mod compose;
pub mod config;
mod deliver;
mod grouping;
mod orphans;
mod outbox;
mod render;
mod silence;
mod test_message;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

pub use channel::{Reply, SendError};
pub use compose::{Composer, Notification, ProbeFacts, Status};
pub use deliver::RateLimit;
pub use outbox::{DeliveryState, Message, NewMessage, OpenAlert, Outbox, OutboxEntry};
pub use render::{body, route, signature, SIGNATURE_HEADER};
pub use test_message::{TestError, TestOutcome};

use silence::ProbeWatch;

use crate::event::{Bus, Event, EventKind, ProbeState, Timestamp};
use crate::probe::ProbeConfig;
use config::{ChannelKind, NotifySection, RouteSection, Severity};
use grouping::{Decision, Grouper};

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("notification outbox (journal database) {0}")]
    Outbox(String),
}

#[derive(Debug, Clone)]
struct Channel {
    name: String,
    kind: ChannelKind,
    target: channel::Target,
    rate_limit: u32,
    remind_every: Option<Duration>,
}

struct Settings {
    channels: Vec<Channel>,
    routes: Vec<RouteSection>,
    dedup_window: Duration,
    max_age: Duration,
    max_retry_delay: Duration,
}

impl Settings {
    fn from_config(section: &NotifySection) -> Self {
        let channels = section
            .channels
            .iter()
            .filter_map(|c| {
                // Validated at load: every channel has its URL (from `url`, its file's content or
                // the service's default) and what its kind needs.
                let Some(target) = channel::Target::from_section(c) else {
                    tracing::error!(channel = c.name(), "notify channel is incomplete; skipped");
                    return None;
                };
                Some(Channel {
                    name: c.name().to_string(),
                    kind: c.kind,
                    target,
                    rate_limit: c.rate_limit,
                    remind_every: c.reminder_interval(),
                })
            })
            .collect();
        Self {
            channels,
            routes: section.routes.clone(),
            dedup_window: section.dedup_window.get(),
            max_age: section.max_age.get(),
            max_retry_delay: section.max_retry_delay.get(),
        }
    }

    fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

fn grouping_rules(section: &NotifySection, probes: &[ProbeConfig]) -> grouping::Rules {
    let flapping = &section.flapping;
    grouping::Rules {
        flap_transitions: flapping.transitions,
        flap_window: flapping.window.get(),
        flap_settle: flapping.settle.get(),
        parents: probes
            .iter()
            .filter_map(|p| {
                let parents = p.depends_on.as_ref()?.get_ref().clone();
                Some((p.name().to_string(), parents))
            })
            .collect(),
        heals: probes
            .iter()
            .filter(|p| p.heal.is_some())
            .map(|p| p.name().to_string())
            .collect(),
    }
}

fn probe_facts(probes: &[ProbeConfig]) -> HashMap<String, ProbeFacts> {
    probes
        .iter()
        .map(|p| {
            let facts = ProbeFacts {
                kind: p.kind(),
                fail_after: *p.fail_after.get_ref(),
                heals: p.heal.is_some(),
            };
            (p.name().to_string(), facts)
        })
        .collect()
}

/// The notification service: cheap to clone; `configure` on reload.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RwLock<Arc<Settings>>,
    composer: Mutex<Composer>,
    grouper: Mutex<Grouper>,
    outbox: crate::journal::SharedTable<Outbox>,
    wake: Notify,
    /// Maintenance windows: their probes' alerts are held back like a silenced probe's.
    maintenance: std::sync::OnceLock<crate::maintenance::Windows>,
}

impl Notifier {
    /// Open the outbox in the journal database under `state_dir`.
    pub fn open(
        state_dir: &Path,
        section: &NotifySection,
        probes: &[ProbeConfig],
    ) -> Result<Self, NotifyError> {
        let outbox = Outbox::open(&state_dir.join(crate::journal::DATABASE_FILE))?;
        let notifier = Self {
            inner: Arc::new(Inner {
                settings: RwLock::new(Arc::new(Settings::from_config(section))),
                composer: Mutex::new(Composer::default()),
                grouper: Mutex::new(Grouper::default()),
                outbox: crate::journal::SharedTable::new(outbox),
                wake: Notify::new(),
                maintenance: std::sync::OnceLock::new(),
            }),
        };
        notifier.configure(section, probes);
        Ok(notifier)
    }

    /// Apply `[notify]` and the probes of a (re)loaded config.
    pub fn configure(&self, section: &NotifySection, probes: &[ProbeConfig]) {
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(Settings::from_config(section));
        self.lock_composer().set_probes(probe_facts(probes));
        self.lock_grouper()
            .set_rules(grouping_rules(section, probes));
        self.inner.wake.notify_one();
    }

    fn settings(&self) -> Arc<Settings> {
        Arc::clone(
            &self
                .inner
                .settings
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    fn lock_composer(&self) -> std::sync::MutexGuard<'_, Composer> {
        self.inner
            .composer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_grouper(&self) -> std::sync::MutexGuard<'_, Grouper> {
        self.inner.grouper.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn outbox<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Outbox) -> Result<T, NotifyError> + Send + 'static,
    ) -> Result<T, NotifyError> {
        self.inner.outbox.call(work).await
    }

    /// The newest `limit` outbox messages, newest first, for `sentinelctl outbox`.
    pub async fn list(&self, limit: usize) -> Result<Vec<OutboxEntry>, NotifyError> {
        self.outbox(move |o| o.list(limit)).await
    }

    /// Hold back the alerts of probes in a maintenance window (set once, before `spawn`).
    pub fn follow_maintenance(&self, windows: crate::maintenance::Windows) {
        let _ = self.inner.maintenance.set(windows);
    }

    /// Start both loops: events into the outbox, the outbox to the receivers.
    pub fn spawn(&self, bus: &Bus, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let events = bus.subscribe();
        let (composing, delivering) = (self.clone(), self.clone());
        tokio::spawn(async move {
            tokio::join!(
                composing.run_compose(events, cancel.clone()),
                delivering.run_delivery(cancel)
            );
        })
    }

    async fn run_compose(self, mut events: broadcast::Receiver<Event>, cancel: CancellationToken) {
        let mut watch = ProbeWatch::with_maintenance(self.inner.maintenance.get().cloned());
        let watching_since = Timestamp::now();
        // Until the alerts an earlier sentineld left open are all resolved (see `orphans`).
        let mut orphans_left = true;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // Alerts an earlier sentineld held for a Down parent wait for it again.
        match self.outbox(|o| o.held()).await {
            Ok(held) => {
                let held = held.into_iter().filter_map(|(subject, parent)| {
                    Some((subject.strip_prefix("probe:")?.to_string(), parent))
                });
                self.lock_grouper().restore_held(held);
            }
            Err(err) => tracing::warn!("cannot read held alerts: {err}"),
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                received = events.recv() => match received {
                    Ok(event) => {
                        watch.observe(&event);
                        let set_off = self.lock_grouper().observe(&event);
                        for decision in set_off {
                            self.apply(decision, &mut watch).await;
                        }
                        let composed = self.lock_composer().compose(&event);
                        if let Some(notification) = composed {
                            let decision = self.lock_grouper().decide(notification);
                            self.apply(decision, &mut watch).await;
                        }
                        if let EventKind::ProbeTransition { probe, to: ProbeState::Up, .. } = &event.kind {
                            if orphans_left {
                                orphans_left = self.resolve_orphans(probe, event.at, watching_since).await;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "notifier fell behind the bus; some events were not considered");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    for held in watch.released(Timestamp::now()) {
                        tracing::info!(probe = %held.probe, "maintenance over, probe still not up: alert sent now");
                        let decision = self.lock_grouper().decide(held);
                        self.apply(decision, &mut watch).await;
                    }
                    let settled = self.lock_grouper().tick(Timestamp::now());
                    for decision in settled {
                        self.apply(decision, &mut watch).await;
                    }
                    self.remind(&watch).await;
                }
            }
        }
    }

    /// Carry out what the grouping decided: store, store held, release, or only log.
    async fn apply(&self, decision: Decision, watch: &mut ProbeWatch) {
        match decision {
            Decision::Send(notification) => self.enqueue(&notification, watch, None).await,
            Decision::Hold {
                notification,
                parent,
            } => {
                tracing::info!(probe = %notification.probe, parent = %parent, "held while the probe it depends on is down");
                self.enqueue(&notification, watch, Some(&parent)).await;
            }
            Decision::Fold(notification) => {
                tracing::info!(probe = %notification.probe, subject = %notification.subject, status = ?notification.status, "told by a grouped alert already; not sent");
            }
            Decision::Release { parent, recovered } => {
                let folded: Vec<String> = recovered.iter().map(|p| format!("probe:{p}")).collect();
                let released = self
                    .outbox(move |o| o.release(&parent, &folded, Timestamp::now()))
                    .await;
                match released {
                    Ok(_) => self.inner.wake.notify_one(),
                    Err(err) => tracing::error!("cannot release held alerts: {err}"),
                }
            }
        }
    }

    async fn enqueue(
        &self,
        notification: &Notification,
        watch: &mut ProbeWatch,
        held_by: Option<&str>,
    ) {
        let settings = self.settings();
        let names: Vec<String> = settings.channels.iter().map(|c| c.name.clone()).collect();
        let targets = route(notification, &settings.routes, &names);
        let suppressed = watch.suppress(notification, Timestamp::now());
        if suppressed {
            tracing::info!(probe = %notification.probe, subject = %notification.subject, "probe silenced; notification recorded as suppressed");
        }
        for channel in targets {
            let Some(kind) = settings.channel(&channel).map(|c| c.kind) else {
                continue;
            };
            self.store(
                &channel,
                kind,
                notification,
                suppressed,
                settings.dedup_window,
                held_by,
            )
            .await;
        }
        self.inner.wake.notify_one();
    }

    async fn store(
        &self,
        channel: &str,
        kind: ChannelKind,
        notification: &Notification,
        suppressed: bool,
        dedup_window: Duration,
        held_by: Option<&str>,
    ) {
        let critical =
            notification.status == Status::Firing && notification.severity == Severity::Critical;
        let held_by = held_by.map(String::from);
        let body = body(kind, notification, Timestamp::now()).to_string();
        let status = serde_json::to_value(notification.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let json = serde_json::to_string(notification).unwrap_or_default();
        let (channel, subject) = (channel.to_string(), notification.subject.clone());
        let stored = self
            .outbox(move |outbox| {
                let message = NewMessage {
                    channel: &channel,
                    subject: &subject,
                    status: &status,
                    body: &body,
                    notification: &json,
                    suppressed,
                    critical,
                    held_by: held_by.as_deref(),
                };
                outbox.enqueue(message, Timestamp::now(), dedup_window)
            })
            .await;
        if let Err(err) = stored {
            tracing::error!("cannot store a notification: {err}");
        }
    }

    /// Resolve the alerts about `probe` that an earlier sentineld fired and whose incident
    /// ended across the restart, on the channels that heard of them. Whether such alerts about
    /// other probes are still open (true when the outbox cannot be read, to look again).
    async fn resolve_orphans(
        &self,
        probe: &str,
        up_at: Timestamp,
        watching_since: Timestamp,
    ) -> bool {
        let open = match self.outbox(|o| o.open_alerts()).await {
            Ok(open) => open,
            Err(err) => {
                tracing::warn!("cannot read open alerts: {err}");
                return true;
            }
        };
        let settings = self.settings();
        let resolutions = orphans::resolve_orphans(&open, probe, up_at, watching_since);
        for (channel, resolved) in &resolutions {
            let Some(kind) = settings.channel(channel).map(|c| c.kind) else {
                continue;
            };
            tracing::info!(
                probe,
                channel,
                "resolving an alert fired before this sentineld started"
            );
            self.store(channel, kind, resolved, false, settings.dedup_window, None)
                .await;
        }
        if !resolutions.is_empty() {
            self.inner.wake.notify_one();
        }
        orphans::others_left(&open, probe, watching_since)
    }

    /// Re-send firing alerts to channels with `remind_every` when their interval has passed
    /// since the channel last heard of them. Both facts come from the outbox, so reminders go
    /// on across daemon restarts; none while the probe is silenced or seen Up again.
    async fn remind(&self, watch: &ProbeWatch) {
        let settings = self.settings();
        if settings.channels.iter().all(|c| c.remind_every.is_none()) {
            return;
        }
        let open = match self.outbox(|o| o.open_alerts()).await {
            Ok(open) => open,
            Err(err) => {
                tracing::warn!("cannot read open alerts for reminders: {err}");
                return;
            }
        };
        let now = Timestamp::now();
        let mut reminded = false;
        for alert in open {
            let Some(channel) = settings.channel(&alert.channel) else {
                continue;
            };
            let Some(every) = channel.remind_every else {
                continue;
            };
            if now.as_millis() - alert.last_told.as_millis() < every.as_millis() as i64 {
                continue;
            }
            let Ok(mut reminder) = serde_json::from_str::<Notification>(&alert.notification) else {
                continue;
            };
            if !watch.still_worth_reminding(&reminder, now) {
                continue;
            }
            reminder.status = Status::Reminder;
            self.store(
                &channel.name,
                channel.kind,
                &reminder,
                false,
                settings.dedup_window,
                None,
            )
            .await;
            reminded = true;
        }
        if reminded {
            self.inner.wake.notify_one();
        }
    }

    async fn run_delivery(self, cancel: CancellationToken) {
        let mut limits: HashMap<String, RateLimit> = HashMap::new();
        let mut last_expiry = Instant::now() - Duration::from_secs(3600);
        loop {
            let settings = self.settings();
            if last_expiry.elapsed() >= Duration::from_secs(60) {
                last_expiry = Instant::now();
                let cutoff = Timestamp::now().saturating_sub(settings.max_age);
                match self.outbox(move |o| o.expire(cutoff)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::error!(
                        count = n,
                        "gave up on undelivered notifications older than {}",
                        humantime::format_duration(settings.max_age)
                    ),
                    Err(err) => tracing::warn!("outbox expiry failed: {err}"),
                }
            }
            let due = self
                .outbox(|o| o.due(Timestamp::now(), 100))
                .await
                .unwrap_or_default();
            // A channel that failed in this pass keeps the rest of its queue in order behind it.
            let mut held: HashMap<(String, bool), Timestamp> = HashMap::new();
            let mut unknown: HashSet<String> = HashSet::new();
            for message in due {
                if cancel.is_cancelled() {
                    return;
                }
                self.deliver_one(&settings, message, &mut limits, &mut held, &mut unknown)
                    .await;
            }
            let next = self.outbox(|o| o.next_due()).await.ok().flatten();
            let idle = Duration::from_secs(60);
            let wait = next.map_or(idle, |at| at.duration_from_now().min(idle));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
            }
        }
    }

    async fn deliver_one(
        &self,
        settings: &Settings,
        message: Message,
        limits: &mut HashMap<String, RateLimit>,
        held: &mut HashMap<(String, bool), Timestamp>,
        unknown: &mut HashSet<String>,
    ) {
        let id = message.id;
        let later =
            |delay: Duration| Timestamp(Timestamp::now().as_millis() + delay.as_millis() as i64);
        let lane = (message.channel.clone(), message.critical);
        if let Some(until) = held.get(&lane).copied() {
            let _ = self.outbox(move |o| o.postpone(id, until)).await;
            return;
        }
        let Some(channel) = settings.channel(&message.channel) else {
            if unknown.insert(message.channel.clone()) {
                tracing::warn!(channel = %message.channel, "notifications wait for a channel that is no longer configured");
            }
            let next = later(settings.max_retry_delay);
            let _ = self.outbox(move |o| o.postpone(id, next)).await;
            return;
        };
        let limit = limits
            .entry(channel.name.clone())
            .or_insert_with(|| RateLimit::new(channel.rate_limit));
        let taken = match message.critical {
            true => limit.take_critical(Instant::now()),
            false => limit.take(Instant::now()),
        };
        if let Some(wait) = taken {
            let next = later(wait);
            held.insert(lane, next);
            let _ = self.outbox(move |o| o.postpone(id, next)).await;
            return;
        }
        match channel::send(channel.kind, &channel.target, &message.body).await {
            Ok(_) => {
                tracing::info!(channel = %channel.name, subject = %message.subject, "notification delivered");
                let _ = self
                    .outbox(move |o| o.mark_sent(id, Timestamp::now()))
                    .await;
            }
            Err(err) => {
                let delay =
                    crate::archive::retry_delay(message.attempts + 1, settings.max_retry_delay);
                let next = later(delay);
                tracing::warn!(channel = %channel.name, attempt = message.attempts + 1, "notification not delivered: {err}; retrying in {}", humantime::format_duration(delay));
                held.insert(lane, next);
                let error = err.to_string();
                let _ = self.outbox(move |o| o.mark_failed(id, &error, next)).await;
            }
        }
    }
}
