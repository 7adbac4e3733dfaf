//! `heartbeat` probe: pushed, not checked. Jobs `POST /v1/heartbeat/NAME` (or `.../fail`) on the
//! public listener; [`Heartbeats`] keeps each probe's latest beat, [`HeartbeatClock`] judges it.
//!
//! The latest beat lives in the registry, not in the runner: a reload that restarts the probe
//! (or leaves it alone) keeps it. The first deadline counts from when the probe was registered:
//! daemon start, or the reload that added it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::header::HeaderMap;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{CheckResult, Failure, FailureReason};
use crate::event::Timestamp;

/// A fail beat's message is kept up to this many characters.
pub const MAX_FAIL_MESSAGE_CHARS: usize = 200;

/// What a beat said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeatOutcome {
    /// The job ran (`POST /v1/heartbeat/NAME`).
    Success,
    /// The job says it failed (`POST /v1/heartbeat/NAME/fail`), with its message.
    Fail(String),
}

/// One beat as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// Monotonic: deadlines never move with the wall clock.
    pub received: Instant,
    pub at: Timestamp,
    pub outcome: BeatOutcome,
}

/// Why a beat was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatRefusal {
    /// No heartbeat probe has this name; `known` heartbeat probes exist.
    UnknownProbe { known: usize },
    /// The probe needs a token and the request carried none of its tokens.
    Unauthorized,
}

#[derive(Debug)]
struct Slot {
    tokens: Vec<String>,
    beats: watch::Sender<Option<Beat>>,
    registered: Instant,
}

/// Every heartbeat probe's latest beat and tokens, shared by the public listener (writes beats)
/// and the probe runners (follow them). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Heartbeats {
    slots: Arc<RwLock<BTreeMap<String, Slot>>>,
}

impl Heartbeats {
    /// Make `name` accept beats with `tokens` (none: no token needed). A name already
    /// registered keeps its latest beat and its registration time; only its tokens change.
    pub fn register(&self, name: &str, tokens: Vec<String>) -> HeartbeatFeed {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(name.to_string()).or_insert_with(|| Slot {
            tokens: Vec::new(),
            beats: watch::channel(None).0,
            registered: Instant::now(),
        });
        slot.tokens = tokens;
        HeartbeatFeed {
            beats: slot.beats.subscribe(),
            registered: slot.registered,
        }
    }

    /// Forget every name `keep` refuses (probes removed, or no longer heartbeats).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| keep(name));
    }

    /// How many heartbeat probes accept beats.
    pub fn len(&self) -> usize {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a beat for `name` with these request headers would be taken (checked before the
    /// body is read, so an unknown name or a wrong token costs no body).
    pub fn admit(&self, name: &str, headers: &HeaderMap) -> Result<(), BeatRefusal> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = slots.get(name) else {
            return Err(BeatRefusal::UnknownProbe { known: slots.len() });
        };
        match slot.tokens.is_empty() || crate::http::access::bearer_matches(headers, &slot.tokens) {
            true => Ok(()),
            false => Err(BeatRefusal::Unauthorized),
        }
    }

    /// Record a beat for `name` (after [`Heartbeats::admit`]); never creates a probe.
    pub fn beat(&self, name: &str, outcome: BeatOutcome) -> Result<(), BeatRefusal> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = slots.get(name) else {
            return Err(BeatRefusal::UnknownProbe { known: slots.len() });
        };
        slot.beats.send_replace(Some(Beat {
            received: Instant::now(),
            at: Timestamp::now(),
            outcome,
        }));
        Ok(())
    }
}

/// A runner's view of its probe's slot.
#[derive(Debug)]
pub struct HeartbeatFeed {
    beats: watch::Receiver<Option<Beat>>,
    registered: Instant,
}

/// `every` and `grace` of a heartbeat probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatProbe {
    pub every: Duration,
    pub grace: Duration,
}

impl HeartbeatProbe {
    pub fn target(&self) -> String {
        format!(
            "push every {} + grace {}",
            humantime::format_duration(self.every),
            humantime::format_duration(self.grace)
        )
    }

    /// The clock that turns the beats of `feed` into results.
    pub fn clock(&self, feed: HeartbeatFeed) -> HeartbeatClock {
        HeartbeatClock {
            probe: *self,
            feed,
            fresh: true,
            next_deadline: None,
        }
    }
}

/// Produces a heartbeat probe's results: one per beat, and one per `every` while beats are
/// missing (the first `every` + `grace` after the last beat, or after registration).
#[derive(Debug)]
pub struct HeartbeatClock {
    probe: HeartbeatProbe,
    feed: HeartbeatFeed,
    /// The beat already in the slot (from before a reload) is judged at once.
    fresh: bool,
    /// When the next "missed" result is due; None: from the latest beat.
    next_deadline: Option<Instant>,
}

impl HeartbeatClock {
    /// Wait for the next result. Cancel-safe.
    pub async fn next(&mut self) -> CheckResult {
        if std::mem::take(&mut self.fresh) {
            let latest = self.feed.beats.borrow_and_update().clone();
            if let Some(beat) = latest {
                let deadline = beat.received + self.period();
                if deadline > Instant::now() || matches!(beat.outcome, BeatOutcome::Fail(_)) {
                    return self.judge(&beat);
                }
            }
        }
        let deadline = self.deadline();
        tokio::select! {
            changed = self.feed.beats.changed() => {
                let beat = match changed {
                    Ok(()) => self.feed.beats.borrow_and_update().clone(),
                    // The registry forgot this probe: it is being removed; wait to be stopped.
                    Err(_) => std::future::pending().await,
                };
                match beat {
                    Some(beat) => self.judge(&beat),
                    None => std::future::pending().await,
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                self.next_deadline = Some(deadline + self.probe.every);
                self.missed()
            }
        }
    }

    fn period(&self) -> Duration {
        self.probe.every + self.probe.grace
    }

    fn deadline(&self) -> Instant {
        if let Some(deadline) = self.next_deadline {
            return deadline;
        }
        let since = self
            .feed
            .beats
            .borrow()
            .as_ref()
            .map_or(self.feed.registered, |beat| beat.received);
        since + self.period()
    }

    fn judge(&mut self, beat: &Beat) -> CheckResult {
        self.next_deadline = None;
        match &beat.outcome {
            BeatOutcome::Success => CheckResult::success(Duration::ZERO, None),
            BeatOutcome::Fail(message) => CheckResult::failure(
                Duration::ZERO,
                Failure::new(
                    FailureReason::HeartbeatFailed,
                    match message.is_empty() {
                        true => "the job sent a fail beat".to_string(),
                        false => format!("the job sent a fail beat: {message}"),
                    },
                ),
                None,
            ),
        }
    }

    fn missed(&self) -> CheckResult {
        let last = match self.feed.beats.borrow().as_ref() {
            Some(beat) => format!("last beat at {}", beat.at.to_rfc3339()),
            None => "no beat since sentineld started watching".to_string(),
        };
        CheckResult::failure(
            Duration::ZERO,
            Failure::new(
                FailureReason::HeartbeatMissed,
                format!(
                    "no beat within every {} + grace {} ({last})",
                    humantime::format_duration(self.probe.every),
                    humantime::format_duration(self.probe.grace)
                ),
            ),
            None,
        )
    }
}

/// A fail beat's body as its message: lossy UTF-8, control characters as spaces, trimmed,
/// at most [`MAX_FAIL_MESSAGE_CHARS`] characters.
pub fn fail_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    let mut message: String = trimmed.chars().take(MAX_FAIL_MESSAGE_CHARS).collect();
    if message.len() < trimmed.len() {
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(every_ms: u64, grace_ms: u64) -> HeartbeatProbe {
        HeartbeatProbe {
            every: Duration::from_millis(every_ms),
            grace: Duration::from_millis(grace_ms),
        }
    }

    /// Real time, in tenths of a second: `elapsed` is `tenths` plus scheduling (under 0.2 s).
    fn about(elapsed: Duration, tenths: u64) {
        let want = Duration::from_millis(tenths * 100);
        assert!(
            elapsed >= want && elapsed < want + Duration::from_millis(200),
            "{elapsed:?}, want {want:?}"
        );
    }

    #[tokio::test]
    async fn missing_beats_fail_once_per_every_after_every_plus_grace() {
        let beats = Heartbeats::default();
        let mut clock = probe(200, 100).clock(beats.register("job", vec![]));
        let started = Instant::now();
        let result = clock.next().await;
        about(started.elapsed(), 3);
        let failure = result.failure.unwrap();
        assert_eq!(failure.reason, FailureReason::HeartbeatMissed);
        assert!(
            failure.detail.contains("no beat since"),
            "{}",
            failure.detail
        );
        clock.next().await;
        about(started.elapsed(), 5);
    }

    #[tokio::test]
    async fn a_beat_is_up_and_moves_the_deadline_a_fail_beat_is_down() {
        let beats = Heartbeats::default();
        let mut clock = probe(300, 0).clock(beats.register("job", vec![]));
        tokio::time::sleep(Duration::from_millis(200)).await;
        beats.beat("job", BeatOutcome::Success).unwrap();
        assert!(clock.next().await.is_success());
        let started = Instant::now();
        assert_eq!(
            clock.next().await.failure.unwrap().reason,
            FailureReason::HeartbeatMissed
        );
        about(started.elapsed(), 3);
        beats
            .beat("job", BeatOutcome::Fail("disk full".into()))
            .unwrap();
        let failure = clock.next().await.failure.unwrap();
        assert_eq!(failure.reason, FailureReason::HeartbeatFailed);
        assert!(failure.detail.ends_with("disk full"), "{}", failure.detail);
    }

    /// A new clock on a kept slot (a reload) judges the kept beat at once.
    #[tokio::test]
    async fn a_reregistered_probe_keeps_its_latest_beat() {
        let beats = Heartbeats::default();
        let _first = beats.register("job", vec![]);
        beats.beat("job", BeatOutcome::Success).unwrap();
        let beaten = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut clock = probe(500, 0).clock(beats.register("job", vec!["t".into()]));
        let started = Instant::now();
        assert!(clock.next().await.is_success());
        about(started.elapsed(), 0);
        // and its deadline still counts from that beat
        clock.next().await;
        about(beaten.elapsed(), 5);
    }

    #[test]
    fn unknown_names_and_tokens_are_refused() {
        let beats = Heartbeats::default();
        let _open = beats.register("open", vec![]);
        let _closed = beats.register("closed", vec!["s3cret".into()]);
        let none = HeaderMap::new();
        let mut good = HeaderMap::new();
        good.insert(
            hyper::header::AUTHORIZATION,
            "Bearer s3cret".parse().unwrap(),
        );
        assert_eq!(beats.admit("open", &none), Ok(()));
        assert_eq!(beats.admit("closed", &good), Ok(()));
        assert_eq!(beats.admit("closed", &none), Err(BeatRefusal::Unauthorized));
        assert_eq!(
            beats.admit("nope", &good),
            Err(BeatRefusal::UnknownProbe { known: 2 })
        );
        assert_eq!(
            beats.beat("nope", BeatOutcome::Success),
            Err(BeatRefusal::UnknownProbe { known: 2 })
        );
        assert_eq!(beats.len(), 2, "a beat never creates a probe");
        beats.retain(|name| name == "open");
        assert_eq!(beats.len(), 1);
    }

    #[test]
    fn fail_messages_are_cleaned_and_bounded() {
        assert_eq!(fail_message(b"  exit 3\n"), "exit 3");
        assert_eq!(fail_message(b"a\x1b[31mb"), "a [31mb");
        let long = fail_message(&[b'x'; 500]);
        assert_eq!(long.chars().count(), MAX_FAIL_MESSAGE_CHARS + 1);
        assert_eq!(fail_message(b"\xff"), "\u{fffd}");
    }
}
