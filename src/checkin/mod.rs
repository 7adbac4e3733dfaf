//! `[heartbeat]`: sentineld checks in with an external URL every `interval`, only while its own
//! supervisor and journal are healthy, so someone else notices when it is not (who watches the watcher).
//!
//! Healthy means all of: the journal writer is running and its last write of events succeeded
//! ([`WriteHealth::Ok`]); the supervisor's loop reported within [`MAX_REPORT_AGE`] (it reports
//! every second, so a loop stuck in a reload or wedged is seen); and in that report no
//! component's task and no probe runner or healer has ended while it should run.

pub mod config;

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::{CheckinMethod, CheckinSettings, HeartbeatSection};

use crate::event::{EventKind, Timestamp};
use crate::journal::{EventQuery, Journal, WriteHealth};
use crate::probe::{ProbeBoard, ProbeState};

/// The supervisor reports every second; older than this, its loop is not running.
pub const MAX_REPORT_AGE: Duration = Duration::from_secs(5);

/// How much of a receiver's answer is read.
const MAX_ANSWER: usize = 4096;

/// The supervisor's word on its components, sent by the daemon's loop every second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorReport {
    pub at: Instant,
    /// Tasks that ended while they should run ("probe db runner", "notify delivery").
    pub stopped: Vec<String>,
}

impl SupervisorReport {
    pub fn now(stopped: Vec<String>) -> Self {
        Self {
            at: Instant::now(),
            stopped,
        }
    }
}

/// Why a check-in was withheld.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    #[error("the journal writer has stopped")]
    JournalStopped,
    #[error("the journal cannot write events since {}: {error}", .since.to_rfc3339())]
    JournalFailing { since: Timestamp, error: String },
    #[error("the supervisor has not reported for {}", humantime::format_duration(*.0))]
    SupervisorSilent(Duration),
    #[error("stopped while they should run: {}", .0.join(", "))]
    ComponentsStopped(Vec<String>),
}

/// Healthy, or why not.
pub fn judge(
    journal: Option<WriteHealth>,
    report: &SupervisorReport,
    now: Instant,
) -> Result<(), Unhealthy> {
    match journal {
        None => return Err(Unhealthy::JournalStopped),
        Some(WriteHealth::Failing { since, error }) => {
            return Err(Unhealthy::JournalFailing { since, error })
        }
        Some(WriteHealth::Ok) => {}
    }
    let age = now.saturating_duration_since(report.at);
    if age > MAX_REPORT_AGE {
        return Err(Unhealthy::SupervisorSilent(Duration::from_secs(
            age.as_secs(),
        )));
    }
    if !report.stopped.is_empty() {
        return Err(Unhealthy::ComponentsStopped(report.stopped.clone()));
    }
    Ok(())
}

/// The body of a POST check-in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub version: &'static str,
    pub probes: usize,
    /// Names of the probes Down now.
    pub down: Vec<String>,
    /// The latest Down transition in the journal.
    pub last_incident: Option<Incident>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub probe: String,
    /// RFC 3339.
    pub at: String,
    pub reason: Option<String>,
}

/// What the check-in loop reads.
#[derive(Clone)]
pub struct Inputs {
    pub journal: Journal,
    pub board: ProbeBoard,
    pub reports: watch::Receiver<SupervisorReport>,
}

impl Inputs {
    async fn summary(&self) -> Summary {
        let snapshots = self.board.snapshot();
        let query = EventQuery {
            kinds: vec!["probe_transition".into()],
            limit: 1000,
            ..Default::default()
        };
        let last_incident = match self.journal.query(query).await {
            Ok(events) => events.into_iter().rev().find_map(|e| match e.event.kind {
                EventKind::ProbeTransition {
                    probe,
                    to: ProbeState::Down,
                    reason,
                    ..
                } => Some(Incident {
                    probe,
                    at: e.event.at.to_rfc3339(),
                    reason: reason.map(|r| r.as_str().to_string()),
                }),
                _ => None,
            }),
            Err(_) => None,
        };
        Summary {
            version: env!("CARGO_PKG_VERSION"),
            probes: snapshots.len(),
            down: snapshots
                .into_iter()
                .filter(|s| s.state == ProbeState::Down)
                .map(|s| s.name)
                .collect(),
            last_incident,
        }
    }
}

/// Check in with `settings` (None: nowhere) until `cancel` fires; new settings apply at once.
pub async fn run(
    mut settings: watch::Receiver<Option<CheckinSettings>>,
    inputs: Inputs,
    cancel: CancellationToken,
) {
    // Log a change of health once, not every interval.
    let mut withheld: Option<Unhealthy> = None;
    loop {
        let current = settings.borrow_and_update().clone();
        let Some(current) = current else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = settings.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            }
        };
        let mut ticker = tokio::time::interval(current.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = settings.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return,
                },
                _ = ticker.tick() => {}
            }
            let report = inputs.reports.borrow().clone();
            match judge(inputs.journal.write_health(), &report, Instant::now()) {
                Err(why) => {
                    if withheld.as_ref() != Some(&why) {
                        tracing::warn!("[heartbeat] check-in withheld: {why}");
                    }
                    withheld = Some(why);
                }
                Ok(()) => {
                    if withheld.take().is_some() {
                        tracing::info!("[heartbeat] healthy again: checking in");
                    }
                    let sent = tokio::select! {
                        _ = cancel.cancelled() => return,
                        sent = check_in(&current, &inputs) => sent,
                    };
                    if let Err(err) = sent {
                        tracing::warn!(
                            "[heartbeat] check-in failed: {}",
                            crate::logging::error_chain(&err)
                        );
                    }
                }
            }
        }
    }
}

async fn check_in(
    settings: &CheckinSettings,
    inputs: &Inputs,
) -> Result<(), crate::http::client::PostError> {
    let body = match settings.method {
        CheckinMethod::Get => None,
        CheckinMethod::Post => {
            let summary = inputs.summary().await;
            let json = serde_json::to_vec(&summary).expect("a summary always serializes");
            Some(("application/json", json))
        }
    };
    let method = match settings.method {
        CheckinMethod::Get => hyper::Method::GET,
        CheckinMethod::Post => hyper::Method::POST,
    };
    crate::http::client::send(
        method,
        &settings.url,
        &settings.headers,
        body,
        settings.timeout,
        MAX_ANSWER,
    )
    .await?
    .success()
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_table() {
        let now = Instant::now();
        let fresh = SupervisorReport::now(vec![]);
        let stale = SupervisorReport {
            at: now - Duration::from_secs(30),
            stopped: vec![],
        };
        let broken = SupervisorReport::now(vec!["probe db runner".into()]);
        let failing = WriteHealth::Failing {
            since: Timestamp(0),
            error: "database or disk is full".into(),
        };
        let cases: &[(Option<WriteHealth>, &SupervisorReport, Option<&str>)] = &[
            (Some(WriteHealth::Ok), &fresh, None),
            (None, &fresh, Some("the journal writer has stopped")),
            (
                Some(failing),
                &fresh,
                Some("the journal cannot write events since 1970-01-01T00:00:00.000Z: database or disk is full"),
            ),
            (
                Some(WriteHealth::Ok),
                &stale,
                Some("the supervisor has not reported for 30s"),
            ),
            (
                Some(WriteHealth::Ok),
                &broken,
                Some("stopped while they should run: probe db runner"),
            ),
        ];
        for (journal, report, want) in cases {
            let got = judge(journal.clone(), report, Instant::now())
                .err()
                .map(|e| e.to_string());
            assert_eq!(got.as_deref(), *want);
        }
    }
}
