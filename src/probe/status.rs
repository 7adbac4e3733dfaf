//! `ProbeStatus`: each probe's latest decision on a `watch` channel of its own, so healers,
//! cascades and drills cannot miss a Down however busy the broadcast bus is.
//!
//! A `watch` keeps only the latest value; the counters (`downs_total`, `recoveries_total`) and
//! the times of the last Down and recovery let a follower that woke late still see every edge it
//! acts on: "went Down since I last looked" and "recovered since I last looked".

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::{FailureReason, ProbeState, Transition};
use crate::event::Timestamp;

/// One probe's state as its followers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStatus {
    pub state: ProbeState,
    /// The state before the last transition.
    pub from: ProbeState,
    /// When `state` began.
    pub since: Timestamp,
    /// Why the check behind the last transition failed, if it did.
    pub reason: Option<FailureReason>,
    /// When the current trouble began (first Failing or Down after Up); None while Up.
    pub fault_at: Option<Timestamp>,
    /// When the probe last went Down.
    pub down_at: Option<Timestamp>,
    /// When the probe last recovered (Down or Recovering to Up).
    pub up_at: Option<Timestamp>,
    /// Times this run of the probe went Down: grows by one per Down, never shrinks.
    pub downs_total: u64,
    /// Recoveries, continued from earlier runs like the board's count.
    pub recoveries_total: u64,
}

impl ProbeStatus {
    /// A probe that has not finished a check yet.
    pub fn unknown(recoveries_total: u64) -> Self {
        Self {
            state: ProbeState::Unknown,
            from: ProbeState::Unknown,
            since: Timestamp::now(),
            reason: None,
            fault_at: None,
            down_at: None,
            up_at: None,
            downs_total: 0,
            recoveries_total,
        }
    }

    /// The status after `transition` at `at`.
    pub fn apply(
        &mut self,
        transition: Transition,
        at: Timestamp,
        reason: Option<FailureReason>,
        recoveries_total: u64,
    ) {
        self.from = transition.from;
        self.state = transition.to;
        self.since = at;
        self.reason = reason;
        self.recoveries_total = recoveries_total;
        match transition.to {
            ProbeState::Failing => {
                self.fault_at.get_or_insert(at);
            }
            ProbeState::Down => {
                self.fault_at.get_or_insert(at);
                self.down_at = Some(at);
                self.downs_total += 1;
            }
            ProbeState::Up => {
                if transition.is_recovery() {
                    self.up_at = Some(at);
                }
                self.fault_at = None;
            }
            ProbeState::Unknown | ProbeState::Recovering => {}
        }
    }

    /// The probe went Down since `earlier` was seen.
    pub fn went_down_since(&self, earlier: &ProbeStatus) -> bool {
        self.downs_total > earlier.downs_total
    }

    /// The probe recovered since `earlier` was seen.
    pub fn recovered_since(&self, earlier: &ProbeStatus) -> bool {
        self.recoveries_total > earlier.recoveries_total
    }
}

/// The publishing side, held by the probe's runner.
pub type StatusSender = watch::Sender<ProbeStatus>;

/// A follower of one probe.
pub type StatusReceiver = watch::Receiver<ProbeStatus>;

/// Every running probe's status channel by name: where healers, cascades and drills subscribe.
/// A probe restarted on reload gets a fresh channel; its old followers see it close.
#[derive(Debug, Clone, Default)]
pub struct ProbeFeeds {
    inner: Arc<RwLock<BTreeMap<String, StatusReceiver>>>,
}

impl ProbeFeeds {
    /// A fresh channel for `probe` (replacing any earlier one), registered for followers.
    pub fn open(&self, probe: &str, recoveries_total: u64) -> (StatusSender, StatusReceiver) {
        let (sender, receiver) = watch::channel(ProbeStatus::unknown(recoveries_total));
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.insert(probe.to_string(), receiver.clone());
        (sender, receiver)
    }

    /// Follow `probe`, if it runs.
    pub fn follow(&self, probe: &str) -> Option<StatusReceiver> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(probe).cloned()
    }

    /// Follow every running probe.
    pub fn follow_all(&self) -> BTreeMap<String, StatusReceiver> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forget `probe`'s channel: it was removed from the config.
    pub fn close(&self, probe: &str) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.remove(probe);
    }
}

/// One probe's change as a follower of several sees it.
#[derive(Debug, Clone)]
pub struct Change {
    pub probe: String,
    pub before: ProbeStatus,
    pub now: ProbeStatus,
}

/// Several probes followed at once (a cascade's parents, a drill's probes), each compared with
/// what was last seen of it.
#[derive(Debug, Default)]
pub struct Followed {
    probes: Vec<(String, StatusReceiver, ProbeStatus)>,
}

impl Followed {
    /// Follow `receivers` from their current value on.
    pub fn new(receivers: impl IntoIterator<Item = (String, StatusReceiver)>) -> Self {
        let mut followed = Self::default();
        for (probe, receiver) in receivers {
            followed.add(probe, receiver);
        }
        followed
    }

    fn add(&mut self, probe: String, mut receiver: StatusReceiver) {
        let seen = receiver.borrow_and_update().clone();
        self.probes.push((probe, receiver, seen));
    }

    /// Also follow the probes `feeds` has that are not followed yet, or whose channel a reload
    /// replaced (from their current value on).
    pub fn refresh(&mut self, feeds: &ProbeFeeds) {
        for (probe, receiver) in feeds.follow_all() {
            match self.probes.iter_mut().find(|(name, ..)| *name == probe) {
                Some((_, current, seen)) if !current.same_channel(&receiver) => {
                    *current = receiver;
                    *seen = current.borrow_and_update().clone();
                }
                Some(_) => {}
                None => self.add(probe, receiver),
            }
        }
    }

    /// Resolves when some followed probe's status changed; never, while none is followed.
    /// A probe whose channel closed (it was stopped) is no longer followed.
    pub async fn changed(&mut self) {
        loop {
            if self.probes.is_empty() {
                return std::future::pending().await;
            }
            let changes = self
                .probes
                .iter_mut()
                .map(|(_, receiver, _)| Box::pin(receiver.changed()));
            let (result, index, _) = futures_util::future::select_all(changes).await;
            match result {
                Ok(()) => return,
                Err(_) => {
                    self.probes.remove(index);
                }
            }
        }
    }

    /// What changed since last seen, probe by probe.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        for (probe, receiver, seen) in &mut self.probes {
            let now = receiver.borrow_and_update().clone();
            if now != *seen {
                let before = std::mem::replace(seen, now.clone());
                changes.push(Change {
                    probe: probe.clone(),
                    before,
                    now,
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeState::*;

    fn step(status: &mut ProbeStatus, from: ProbeState, to: ProbeState, at: i64, rec: u64) {
        status.apply(Transition { from, to }, Timestamp(at), None, rec);
    }

    #[test]
    fn counters_keep_the_edges_a_late_follower_acts_on() {
        let mut status = ProbeStatus::unknown(4);
        let first = status.clone();
        step(&mut status, Unknown, Up, 1, 4);
        step(&mut status, Up, Failing, 2, 4);
        step(&mut status, Failing, Down, 3, 4);
        step(&mut status, Down, Up, 5, 5);
        // A follower that only wakes now still sees the Down and the recovery.
        assert!(status.went_down_since(&first));
        assert!(status.recovered_since(&first));
        assert_eq!(status.state, Up);
        assert_eq!(status.down_at, Some(Timestamp(3)));
        assert_eq!(status.up_at, Some(Timestamp(5)));
        assert_eq!(status.fault_at, None);
        let seen = status.clone();
        step(&mut status, Up, Failing, 7, 5);
        step(&mut status, Failing, Down, 8, 5);
        assert!(status.went_down_since(&seen) && !status.recovered_since(&seen));
        assert_eq!(status.fault_at, Some(Timestamp(7)));
    }
}
