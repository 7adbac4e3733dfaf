//! Events in, notifications out: follows each probe's incident (why it went Down, where its
//! evidence went, what the heal does) so one message says all of it, like the original tools:
//! "🚨 postgres: 3/3 SQL probes failed (connection refused) — logs archived to s3://…; restarting
//! container postgres" and "✅ postgres recovered in 4.2 s". Plain logic, no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::config::Severity;
use crate::event::{
    ArchiveStage, Event, EventKind, FailureReason, HealCause, ProbeState, Timestamp,
};
use crate::probe::ProbeKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
    /// A reminder that a firing alert still fires.
    Reminder,
}

/// One thing to tell people, before it is shaped for a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The event kind that caused it (what routes filter on).
    pub kind: String,
    /// What the alert is about; firing and resolved share it (`probe:postgres`).
    pub subject: String,
    /// The probe or tenant alert rule (what routes' `probes` filter on).
    pub probe: String,
    pub status: Status,
    pub severity: Severity,
    pub text: String,
    pub at: Timestamp,
    /// When the problem began (Alertmanager's startsAt).
    pub started_at: Timestamp,
    /// Identify the alert in Alertmanager: the same set fires and resolves it.
    pub labels: BTreeMap<String, String>,
}

/// What the composer knows about each probe from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFacts {
    pub kind: ProbeKind,
    pub fail_after: u32,
    /// A heal follows its Down, so the alert waits for the heal to say what is done.
    pub heals: bool,
}

#[derive(Debug, Clone, Default)]
struct Incident {
    down_at: Option<Timestamp>,
    reason: Option<FailureReason>,
    evidence: Option<String>,
    severity: Option<Severity>,
    /// The last remedy step that acted: when, and what it did ("terminated 1 lock blocker …").
    remedy: Option<(Timestamp, String)>,
    /// A restart ran in this incident.
    restarted: bool,
}

#[derive(Default)]
pub struct Composer {
    probes: HashMap<String, ProbeFacts>,
    incidents: HashMap<String, Incident>,
    /// Firing tenant alerts' severities and start times, so resolves match.
    tenant_alerts: HashMap<String, Timestamp>,
    /// Bundles whose failed upload was announced; their upload is announced as resolved.
    failed_bundles: HashMap<String, Timestamp>,
    /// The running drill: what it watches is tagged as a drill, not a real incident.
    drill: Option<(String, HashSet<String>)>,
    /// Subjects that fired during a drill, so their resolve carries the same tag.
    drill_subjects: HashMap<String, String>,
    /// Drills whose last run missed its objective, since when: the next run that meets it
    /// resolves the alert.
    slow_drills: HashMap<String, Timestamp>,
}

impl Composer {
    pub fn set_probes(&mut self, probes: HashMap<String, ProbeFacts>) {
        self.probes = probes;
    }

    pub fn compose(&mut self, event: &Event) -> Option<Notification> {
        match &event.kind {
            EventKind::DrillStarted {
                name,
                probes,
                alerts,
                ..
            } => {
                let watched = probes.iter().chain(alerts).cloned().collect();
                self.drill = Some((name.clone(), watched));
            }
            EventKind::DrillFinished { .. } => self.drill = None,
            _ => {}
        }
        let mut notification = self.compose_event(event)?;
        self.tag_drill(&mut notification);
        Some(notification)
    }

    /// "[drill gameday] …" and a `drill` label on what a running drill causes.
    fn tag_drill(&mut self, notification: &mut Notification) {
        let subject = &notification.subject;
        let drill = match (&self.drill, notification.status) {
            (Some((name, watched)), Status::Firing) if watched.contains(&notification.probe) => {
                self.drill_subjects.insert(subject.clone(), name.clone());
                Some(name.clone())
            }
            (_, Status::Resolved) => self.drill_subjects.remove(subject),
            _ => self.drill_subjects.get(subject).cloned(),
        };
        if let Some(name) = drill {
            notification.text = format!("[drill {name}] {}", notification.text);
            notification.labels.insert("drill".into(), name);
        }
    }

    fn compose_event(&mut self, event: &Event) -> Option<Notification> {
        let at = event.at;
        match &event.kind {
            EventKind::ProbeTransition {
                probe,
                to: ProbeState::Down,
                reason,
                ..
            } => {
                let incident = self.incidents.entry(probe.clone()).or_default();
                incident.down_at = Some(at);
                incident.reason = *reason;
                let facts = self.probes.get(probe);
                if facts.is_some_and(|f| f.heals) {
                    return None;
                }
                let text = format!("🚨 {probe}: {}", self.failure_line(probe));
                Some(self.probe_alert(probe, event, Status::Firing, Severity::Critical, text))
            }
            // Only an open incident takes the place: a bundle that missed the archive timeout
            // can land after its incident closed, and must not be named by the next one.
            EventKind::ArchiveSpooled {
                probe, destination, ..
            } => {
                if let Some(incident) = self.incidents.get_mut(probe) {
                    incident.evidence = Some(destination.clone());
                }
                None
            }
            EventKind::HealStarted {
                probe,
                action,
                attempt: 1,
                cause: HealCause::Down,
            } => {
                if let Some(incident) = self.incidents.get_mut(probe) {
                    incident.restarted = true;
                }
                let mut text = format!("🚨 {probe}: {}", self.failure_line(probe));
                let evidence = self.incidents.get(probe).and_then(|i| i.evidence.clone());
                match evidence {
                    Some(place) => text.push_str(&format!(" — logs archived to {place}; ")),
                    None => text.push_str(" — "),
                }
                text.push_str(&action_phrase(action));
                Some(self.probe_alert(probe, event, Status::Firing, Severity::Critical, text))
            }
            EventKind::HealGaveUp {
                probe,
                attempts,
                retry_at,
                reason,
            } => {
                let text = match reason {
                    Some(FailureReason::CrashLoop) => format!(
                        "🛑 {probe}: crash loop: down again right after each of {attempts} heals; giving up until {}",
                        retry_at.to_rfc3339()
                    ),
                    _ => format!(
                        "🛑 {probe}: still down after {attempts} heals; giving up until {}",
                        retry_at.to_rfc3339()
                    ),
                };
                Some(self.probe_alert(probe, event, Status::Firing, Severity::Critical, text))
            }
            EventKind::IncidentClosed {
                probe,
                time_to_recover_ms,
                ..
            } => self.recovered(probe, event, *time_to_recover_ms),
            EventKind::RemedyStep {
                probe,
                action,
                step,
                sessions,
                error,
                ..
            } => {
                let done = match error {
                    Some(error) => format!("remedy step {step} ({action}) failed: {error}"),
                    None if sessions.is_empty() => return None,
                    None => crate::event::RemedySession::phrase(*action, sessions),
                };
                let mut text = format!("🚨 {probe}: {}", self.failure_line(probe));
                let incident = self.incidents.entry(probe.clone()).or_default();
                match &incident.evidence {
                    Some(place) => text.push_str(&format!(" — snapshot archived to {place}; ")),
                    None => text.push_str(" — "),
                }
                text.push_str(&done);
                if error.is_none() {
                    incident.remedy = Some((at, done));
                }
                Some(self.probe_alert(probe, event, Status::Firing, Severity::Critical, text))
            }
            EventKind::RemedyExhausted {
                probe,
                steps,
                restart: false,
            } => {
                let after = match steps {
                    0 => "still down, but it answers".to_string(),
                    1 => "still down after 1 remedy step; it answers".to_string(),
                    n => format!("still down after {n} remedy steps; it answers"),
                };
                let text =
                    format!("🛑 {probe}: {after}: not restarting (restart_when_overloaded is off)");
                Some(self.probe_alert(probe, event, Status::Firing, Severity::Critical, text))
            }
            // A probe without a heal has no incident to close: its Up resolves its alert.
            EventKind::ProbeTransition {
                probe,
                to: ProbeState::Up,
                ..
            } if !self.probes.get(probe).is_some_and(|f| f.heals) => {
                self.recovered(probe, event, None)
            }
            EventKind::ArchiveFailed {
                probe,
                bundle,
                stage,
                error,
                ..
            } => {
                if *stage == ArchiveStage::Upload && self.failed_bundles.contains_key(bundle) {
                    return None;
                }
                self.failed_bundles.entry(bundle.clone()).or_insert(at);
                let text = format!("⚠️ {probe}: evidence {bundle} {stage} problem: {error}");
                Some(Notification {
                    kind: event.kind.name().into(),
                    subject: format!("archive:{bundle}:{stage}"),
                    probe: probe.clone(),
                    status: Status::Firing,
                    severity: Severity::Warning,
                    text,
                    at,
                    started_at: at,
                    labels: labels(&[
                        ("alertname", "SentinelArchiveProblem"),
                        ("probe", probe),
                        ("bundle", bundle),
                        ("stage", stage.as_str()),
                    ]),
                })
            }
            EventKind::ArchiveUploaded {
                probe,
                bundle,
                location,
                ..
            } => {
                let started_at = self.failed_bundles.remove(bundle)?;
                Some(Notification {
                    kind: event.kind.name().into(),
                    subject: format!("archive:{bundle}:upload"),
                    probe: probe.clone(),
                    status: Status::Resolved,
                    severity: Severity::Warning,
                    text: format!("✅ {probe}: evidence {bundle} uploaded to {location}"),
                    at,
                    started_at,
                    labels: labels(&[
                        ("alertname", "SentinelArchiveProblem"),
                        ("probe", probe),
                        ("bundle", bundle),
                        ("stage", "upload"),
                    ]),
                })
            }
            // A drill run slower than its objective: an outage of the recovery the drill
            // proves, firing until a run meets the objective again.
            EventKind::DrillObjectiveChecked {
                drill,
                name,
                verdict,
                objective,
                detail,
            } => {
                let missed = *verdict == crate::event::ExpectationVerdict::Missed;
                let (status, started_at, text) = match missed {
                    true => (
                        Status::Firing,
                        *self.slow_drills.entry(name.clone()).or_insert(at),
                        format!("🐢 drill {name} ({drill}) missed its objective {objective}: {detail}"),
                    ),
                    false => (
                        Status::Resolved,
                        self.slow_drills.remove(name)?,
                        format!("✅ drill {name} ({drill}) met its objective {objective} again: {detail}"),
                    ),
                };
                Some(Notification {
                    kind: event.kind.name().into(),
                    subject: format!("drill:{name}"),
                    probe: name.clone(),
                    status,
                    severity: Severity::Critical,
                    text,
                    at,
                    started_at,
                    labels: labels(&[("alertname", "SentinelDrillObjective"), ("drill", name)]),
                })
            }
            EventKind::TenantAlertFired {
                rule,
                tenant_id,
                message,
                ..
            }
            | EventKind::TenantAlertResolved {
                rule,
                tenant_id,
                message,
                ..
            } => {
                let key = format!("{rule}:{tenant_id}");
                let fired = matches!(event.kind, EventKind::TenantAlertFired { .. });
                let started_at = match fired {
                    true => *self.tenant_alerts.entry(key.clone()).or_insert(at),
                    false => self.tenant_alerts.remove(&key).unwrap_or(at),
                };
                Some(Notification {
                    kind: event.kind.name().into(),
                    subject: format!("tenant:{key}"),
                    probe: rule.clone(),
                    status: if fired {
                        Status::Firing
                    } else {
                        Status::Resolved
                    },
                    severity: Severity::Warning,
                    text: message.clone(),
                    at,
                    started_at,
                    labels: labels(&[
                        ("alertname", "SentinelTenantAlert"),
                        ("rule", rule),
                        ("tenant_id", tenant_id),
                    ]),
                })
            }
            // Someone else changed a running experiment: people must know, the fault is half gone.
            EventKind::ChaosDrifted {
                experiment,
                profile,
                action,
                cause,
                detail,
            } => Some(Notification {
                kind: event.kind.name().into(),
                subject: format!("chaos:{experiment}:{action}"),
                probe: profile.clone().unwrap_or_else(|| experiment.clone()),
                status: Status::Firing,
                severity: Severity::Warning,
                text: format!(
                    "⚠️ chaos {experiment}: someone else changed {action}: {detail}; rolled back what was still ours, their change left in place"
                ),
                at,
                started_at: at,
                labels: labels(&[
                    ("alertname", "SentinelChaosDrift"),
                    ("experiment", experiment),
                    ("cause", cause.as_str()),
                ]),
            }),
            _ => None,
        }
    }

    /// "✅ postgres recovered in 4.2 s", when an alert about `probe` went out.
    fn recovered(
        &mut self,
        probe: &str,
        event: &Event,
        time_to_recover_ms: Option<u64>,
    ) -> Option<Notification> {
        let incident = self.incidents.get(probe).cloned().unwrap_or_default();
        let severity = incident.severity?;
        let took = time_to_recover_ms.or_else(|| {
            incident
                .down_at
                .map(|d| (event.at.as_millis() - d.as_millis()).max(0) as u64)
        });
        let text = match (&incident.remedy, incident.restarted, took) {
            // "✅ db: terminated 1 lock blocker (pid 4242, …); recovered in 1.3 s; no restart"
            (Some((acted_at, done)), false, _) => {
                let ms = (event.at.as_millis() - acted_at.as_millis()).max(0);
                format!(
                    "✅ {probe}: {done}; recovered in {:.1} s; no restart",
                    ms as f64 / 1000.0
                )
            }
            (_, _, Some(ms)) => format!("✅ {probe} recovered in {:.1} s", ms as f64 / 1000.0),
            (_, _, None) => format!("✅ {probe} recovered"),
        };
        let notification = self.probe_alert(probe, event, Status::Resolved, severity, text);
        self.incidents.remove(probe);
        Some(notification)
    }

    /// "3/3 SQL probes failed (connection refused)".
    fn failure_line(&self, probe: &str) -> String {
        let reason = self
            .incidents
            .get(probe)
            .and_then(|i| i.reason)
            .map(reason_phrase);
        let counted = self.probes.get(probe).map(|facts| {
            let n = facts.fail_after;
            let checks = if n == 1 { "probe" } else { "probes" };
            format!("{n}/{n} {} {checks} failed", kind_label(facts.kind))
        });
        match (counted, reason) {
            (Some(counted), Some(reason)) => format!("{counted} ({reason})"),
            (Some(counted), None) => counted,
            (None, Some(reason)) => format!("down ({reason})"),
            (None, None) => "down".into(),
        }
    }

    fn probe_alert(
        &mut self,
        probe: &str,
        event: &Event,
        status: Status,
        severity: Severity,
        text: String,
    ) -> Notification {
        let incident = self.incidents.entry(probe.to_string()).or_default();
        if status == Status::Firing {
            incident.severity = Some(severity);
        }
        Notification {
            kind: event.kind.name().into(),
            subject: format!("probe:{probe}"),
            probe: probe.to_string(),
            status,
            severity,
            text,
            at: event.at,
            started_at: incident.down_at.unwrap_or(event.at),
            labels: labels(&[("alertname", "SentinelProbeDown"), ("probe", probe)]),
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn kind_label(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Postgres => "SQL",
        ProbeKind::Http => "HTTP",
        ProbeKind::Tcp => "TCP",
        ProbeKind::Docker => "container",
        ProbeKind::Exec => "exec",
        ProbeKind::TlsCert => "certificate",
        ProbeKind::Dns => "DNS",
        ProbeKind::Icmp => "ping",
        ProbeKind::Heartbeat => "heartbeat",
        ProbeKind::Disk => "disk",
        ProbeKind::Memory => "memory",
        ProbeKind::Load => "load",
        ProbeKind::SystemdUnit => "unit",
    }
}

/// The failure reason as people say it.
fn reason_phrase(reason: FailureReason) -> &'static str {
    use FailureReason::*;
    match reason {
        Refused => "connection refused",
        Timeout => "timed out",
        Dns => "name does not resolve",
        HttpStatus => "bad HTTP status",
        ExitStatus => "non-zero exit",
        Auth => "authentication failed",
        Query => "query failed",
        ContainerMissing => "container missing",
        ContainerExited => "container exited",
        Oom => "out of memory",
        CrashLoop => "crash loop",
        Tls => "TLS error",
        CertExpiring => "certificate expiring",
        CertExpired => "certificate expired",
        CertNameMismatch => "certificate name mismatch",
        CertUntrusted => "certificate not trusted",
        Nxdomain => "name does not exist",
        NoAnswer => "no DNS answer",
        PacketLoss => "packet loss",
        HighRtt => "slow round trip",
        HeartbeatMissed => "heartbeat missed",
        HeartbeatFailed => "job reported failure",
        DiskSpace => "disk full",
        DiskInodes => "out of inodes",
        MemoryLow => "low on memory",
        LoadHigh => "load too high",
        UnitInactive => "unit stopped",
        UnitFailed => "unit failed",
        UnitActivating => "unit stuck starting",
        UnitNotFound => "no such unit",
        UnitNotLoaded => "unit not loaded",
        SystemdUnavailable => "systemd unreachable",
        Protocol | Assertion | Exec | Docker | Unhealthy | Io => reason.as_str(),
    }
}

/// "docker restart postgres" → "restarting container postgres".
fn action_phrase(action: &str) -> String {
    if let Some(container) = action.strip_prefix("docker restart ") {
        return format!("restarting container {container}");
    }
    if let Some(unit) = action.strip_prefix("systemd restart ") {
        return format!("restarting unit {unit}");
    }
    if let Some(command) = action.strip_prefix("exec ") {
        return format!("running {command}");
    }
    action.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64, kind: EventKind) -> Event {
        Event {
            at: Timestamp(ms),
            kind,
        }
    }

    fn down(probe: &str, ms: i64) -> Event {
        at(
            ms,
            EventKind::ProbeTransition {
                probe: probe.into(),
                from: ProbeState::Failing,
                to: ProbeState::Down,
                reason: Some(FailureReason::Refused),
                status_code: None,
                latency_ms: None,
                recoveries_total: 0,
            },
        )
    }

    fn composer() -> Composer {
        let mut composer = Composer::default();
        composer.set_probes(HashMap::from([
            (
                "postgres".to_string(),
                ProbeFacts {
                    kind: ProbeKind::Postgres,
                    fail_after: 3,
                    heals: true,
                },
            ),
            (
                "api".to_string(),
                ProbeFacts {
                    kind: ProbeKind::Http,
                    fail_after: 1,
                    heals: false,
                },
            ),
        ]));
        composer
    }

    /// Which states and causes speak: an unhealed probe fires on Down and resolves on Up; a
    /// healed probe fires when its first heal starts because it went Down, not for an operator
    /// or a dependency restart, and never on a bare transition.
    #[test]
    fn only_down_up_and_a_heal_for_a_down_speak() {
        let transition = |probe: &str, to: ProbeState| {
            let mut event = down(probe, 10);
            if let EventKind::ProbeTransition { to: state, .. } = &mut event.kind {
                *state = to;
            }
            event
        };
        let heal = |cause: HealCause| {
            at(
                20,
                EventKind::HealStarted {
                    probe: "postgres".into(),
                    action: "docker restart postgres".into(),
                    attempt: 1,
                    cause,
                },
            )
        };
        // (what happened first, then this: the status it notifies, if any)
        let cases: Vec<(&str, Option<Event>, Event, Option<Status>)> = vec![
            (
                "api down",
                None,
                transition("api", ProbeState::Down),
                Some(Status::Firing),
            ),
            (
                "api failing",
                None,
                transition("api", ProbeState::Failing),
                None,
            ),
            (
                "api recovering",
                None,
                transition("api", ProbeState::Recovering),
                None,
            ),
            (
                "api unknown",
                None,
                transition("api", ProbeState::Unknown),
                None,
            ),
            (
                "api up, no incident",
                None,
                transition("api", ProbeState::Up),
                None,
            ),
            (
                "api up after down",
                Some(transition("api", ProbeState::Down)),
                transition("api", ProbeState::Up),
                Some(Status::Resolved),
            ),
            (
                "healed probe down",
                None,
                transition("postgres", ProbeState::Down),
                None,
            ),
            (
                "heal for a down",
                None,
                heal(HealCause::Down),
                Some(Status::Firing),
            ),
            ("heal by an operator", None, heal(HealCause::Operator), None),
            (
                "heal after a dependency",
                None,
                heal(HealCause::Dependency),
                None,
            ),
        ];
        for (name, first, then, want) in cases {
            let mut composer = composer();
            if let Some(first) = first {
                composer.compose(&first);
            }
            let got = composer.compose(&then).map(|n| n.status);
            assert_eq!(got, want, "{name}");
        }
    }

    /// A run slower than its drill's objective fires like an outage; the next run that meets
    /// it resolves; a met objective with nothing firing says nothing.
    #[test]
    fn a_missed_drill_objective_fires_and_a_met_one_resolves() {
        let mut composer = composer();
        let checked = |ms: i64, run: &str, verdict| {
            at(
                ms,
                EventKind::DrillObjectiveChecked {
                    drill: run.into(),
                    name: "gameday".into(),
                    verdict,
                    objective: "recover within 1s".into(),
                    detail: "recover took 4.2 s, over 1.0 s".into(),
                },
            )
        };
        use crate::event::ExpectationVerdict::{Met, Missed};
        assert_eq!(composer.compose(&checked(500, "d0", Met)), None);
        let firing = composer.compose(&checked(1_000, "d1", Missed)).unwrap();
        assert_eq!(
            (firing.kind.as_str(), firing.subject.as_str(), firing.status),
            ("drill_objective_checked", "drill:gameday", Status::Firing)
        );
        assert_eq!(firing.severity, Severity::Critical);
        assert_eq!(firing.probe, "gameday");
        assert_eq!(firing.labels["alertname"], "SentinelDrillObjective");
        assert!(
            firing
                .text
                .contains("drill gameday (d1) missed its objective recover within 1s"),
            "{}",
            firing.text
        );
        let again = composer.compose(&checked(2_000, "d2", Missed)).unwrap();
        assert_eq!(again.started_at, Timestamp(1_000));
        let resolved = composer.compose(&checked(3_000, "d3", Met)).unwrap();
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.started_at, Timestamp(1_000));
        assert_eq!(composer.compose(&checked(4_000, "d4", Met)), None);
    }

    #[test]
    fn a_drill_tags_what_it_watches_and_nothing_else() {
        let mut composer = composer();
        let started = at(
            500,
            EventKind::DrillStarted {
                drill: "d1".into(),
                name: "gameday".into(),
                steps: 1,
                probes: vec!["api".into()],
                alerts: vec![],
                target: None,
            },
        );
        assert_eq!(composer.compose(&started), None);
        let firing = composer.compose(&down("api", 1000)).unwrap();
        assert!(
            firing.text.starts_with("[drill gameday] 🚨 api:"),
            "{}",
            firing.text
        );
        assert_eq!(firing.labels["drill"], "gameday");
        let finished = at(
            1500,
            EventKind::DrillFinished {
                drill: "d1".into(),
                name: "gameday".into(),
                outcome: crate::event::DrillOutcome::Passed,
                met: 1,
                missed: 0,
                reason: None,
                detect_ms: None,
                act_ms: None,
                recover_ms: None,
            },
        );
        assert_eq!(composer.compose(&finished), None);
        // the resolve after the drill ended still belongs to it
        let closed = at(
            2000,
            EventKind::IncidentClosed {
                probe: "api".into(),
                healed: false,
                time_to_detect_ms: None,
                time_to_act_ms: None,
                time_to_recover_ms: Some(1000),
            },
        );
        let resolved = composer.compose(&closed).unwrap();
        assert_eq!(resolved.labels["drill"], "gameday");
        assert!(
            resolved.text.starts_with("[drill gameday] ✅"),
            "{}",
            resolved.text
        );
        // a real failure after the drill is not tagged
        let real = composer.compose(&down("api", 3000)).unwrap();
        assert!(!real.labels.contains_key("drill"), "{real:?}");
        assert!(real.text.starts_with("🚨"), "{}", real.text);
    }

    /// Issue 18's example: the step's message, then "recovered in …; no restart".
    #[test]
    fn a_remedied_incident_says_what_was_done_and_that_nothing_restarted() {
        let mut composer = composer();
        let mut down = down("postgres", 1000);
        if let EventKind::ProbeTransition { reason, .. } = &mut down.kind {
            *reason = Some(FailureReason::Query);
        }
        assert_eq!(composer.compose(&down), None, "waits for the remedy");
        let step = |ms, sessions| {
            at(
                ms,
                EventKind::RemedyStep {
                    probe: "postgres".into(),
                    action: crate::event::RemedyAction::TerminateLockBlockers,
                    step: 3,
                    sessions,
                    bundle: Some("b".into()),
                    error: None,
                },
            )
        };
        assert_eq!(composer.compose(&step(1100, vec![])), None, "nothing done");
        let blocker = crate::event::RemedySession {
            pid: 4242,
            role: Some("app".into()),
            application: Some("batch".into()),
            state: Some("idle in transaction".into()),
            query: Some("LOCK TABLE t".into()),
            for_ms: 12 * 60_000 + 5_000,
            signalled: true,
        };
        let firing = composer.compose(&step(1200, vec![blocker])).unwrap();
        assert_eq!(
            firing.text,
            "🚨 postgres: 3/3 SQL probes failed (query failed) — terminated 1 lock blocker (pid 4242, idle in transaction 12 min)"
        );
        let closed = at(
            2500,
            EventKind::IncidentClosed {
                probe: "postgres".into(),
                healed: true,
                time_to_detect_ms: None,
                time_to_act_ms: None,
                time_to_recover_ms: Some(1500),
            },
        );
        let resolved = composer.compose(&closed).unwrap();
        assert_eq!(
            resolved.text,
            "✅ postgres: terminated 1 lock blocker (pid 4242, idle in transaction 12 min); recovered in 1.3 s; no restart"
        );
        assert_eq!(resolved.subject, firing.subject);
        for (steps, text) in [
            (0, "🛑 postgres: still down, but it answers: not restarting (restart_when_overloaded is off)"),
            (1, "🛑 postgres: still down after 1 remedy step; it answers: not restarting (restart_when_overloaded is off)"),
            (3, "🛑 postgres: still down after 3 remedy steps; it answers: not restarting (restart_when_overloaded is off)"),
        ] {
            let exhausted = at(
                3000,
                EventKind::RemedyExhausted {
                    probe: "postgres".into(),
                    steps,
                    restart: false,
                },
            );
            assert_eq!(composer.compose(&exhausted).unwrap().text, text);
        }
    }

    #[test]
    fn an_incident_reads_like_the_original_tools() {
        let mut composer = composer();
        assert_eq!(
            composer.compose(&down("postgres", 1000)),
            None,
            "waits for the heal"
        );
        let spooled = at(
            1100,
            EventKind::ArchiveSpooled {
                probe: "postgres".into(),
                bundle: "b".into(),
                path: "/spool/b.tar.gz".into(),
                bytes: 10,
                sha256: "h".into(),
                destination: "s3://bucket/incidents/b/".into(),
            },
        );
        assert_eq!(composer.compose(&spooled), None);
        let heal = at(
            1200,
            EventKind::HealStarted {
                probe: "postgres".into(),
                action: "docker restart postgres".into(),
                attempt: 1,
                cause: HealCause::Down,
            },
        );
        let firing = composer.compose(&heal).unwrap();
        assert_eq!(
            firing.text,
            "🚨 postgres: 3/3 SQL probes failed (connection refused) — logs archived to s3://bucket/incidents/b/; restarting container postgres"
        );
        assert_eq!(
            (firing.status, firing.severity),
            (Status::Firing, Severity::Critical)
        );
        assert_eq!(firing.started_at, Timestamp(1000));
        let closed = at(
            5200,
            EventKind::IncidentClosed {
                probe: "postgres".into(),
                healed: true,
                time_to_detect_ms: None,
                time_to_act_ms: None,
                time_to_recover_ms: Some(4200),
            },
        );
        let resolved = composer.compose(&closed).unwrap();
        assert_eq!(resolved.text, "✅ postgres recovered in 4.2 s");
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.subject, firing.subject);
        assert_eq!(resolved.labels, firing.labels);
        // a second close without a new alert says nothing
        assert_eq!(composer.compose(&closed), None);

        // a bundle that missed the archive timeout lands after the close: the next incident,
        // whose own bundle is late too, must not claim that one as its logs
        assert_eq!(composer.compose(&spooled), None);
        assert_eq!(composer.compose(&down("postgres", 9000)), None);
        let next = composer.compose(&heal).unwrap();
        assert_eq!(
            next.text,
            "🚨 postgres: 3/3 SQL probes failed (connection refused) — restarting container postgres"
        );
    }

    #[test]
    fn unhealed_probes_alert_on_down_and_tenant_alerts_pass_through() {
        let mut composer = composer();
        let firing = composer.compose(&down("api", 10)).unwrap();
        assert_eq!(
            firing.text,
            "🚨 api: 1/1 HTTP probe failed (connection refused)"
        );
        let unknown = composer.compose(&down("ghost", 10)).unwrap();
        assert_eq!(unknown.text, "🚨 ghost: down (connection refused)");
        let up = |probe: &str, ms: i64| {
            let mut event = down(probe, ms);
            if let EventKind::ProbeTransition { from, to, .. } = &mut event.kind {
                (*from, *to) = (ProbeState::Down, ProbeState::Up);
            }
            event
        };
        let resolved = composer.compose(&up("api", 2510)).unwrap();
        assert_eq!(
            (
                resolved.text.as_str(),
                resolved.status,
                resolved.subject.as_str()
            ),
            ("✅ api recovered in 2.5 s", Status::Resolved, "probe:api")
        );
        assert_eq!(composer.compose(&up("api", 3000)), None, "resolved once");
        assert_eq!(
            composer.compose(&up("postgres", 3000)),
            None,
            "a healed probe resolves on its incident's close, not on Up"
        );

        let fired = at(
            50,
            EventKind::TenantAlertFired {
                rule: "r".into(),
                tenant_id: "acme".into(),
                condition: crate::event::AlertCondition::ErrorShare,
                value: 64.0,
                threshold: 50.0,
                window_ms: 1,
                endpoint: None,
                message: "tenant acme has 64% of errors".into(),
            },
        );
        let n = composer.compose(&fired).unwrap();
        assert_eq!(
            (n.text.as_str(), n.status),
            ("tenant acme has 64% of errors", Status::Firing)
        );
        let resolved = at(
            90,
            EventKind::TenantAlertResolved {
                rule: "r".into(),
                tenant_id: "acme".into(),
                value: 1.0,
                firing_ms: 40,
                message: "tenant acme recovered".into(),
            },
        );
        let n = composer.compose(&resolved).unwrap();
        assert_eq!((n.status, n.started_at), (Status::Resolved, Timestamp(50)));
        assert_eq!(n.subject, "tenant:r:acme");
    }

    /// A drifted experiment alerts once, as a warning naming the experiment and the cause.
    #[test]
    fn a_drifted_experiment_alerts() {
        let mut composer = composer();
        let drifted = at(
            70,
            EventKind::ChaosDrifted {
                experiment: "x1".into(),
                profile: Some("slow".into()),
                action: "tbf 5e1d: on eth1".into(),
                cause: crate::event::DriftCause::QdiscReplaced,
                detail: "htb 1: replaced our tbf 5e1d: as the root qdisc".into(),
            },
        );
        let n = composer.compose(&drifted).unwrap();
        assert_eq!((n.status, n.severity), (Status::Firing, Severity::Warning));
        assert_eq!(
            (n.kind.as_str(), n.probe.as_str()),
            ("chaos_drifted", "slow")
        );
        assert_eq!(n.labels["alertname"], "SentinelChaosDrift");
        assert_eq!(n.labels["cause"], "qdisc_replaced");
        assert!(
            n.text.contains("htb 1: replaced our tbf 5e1d:"),
            "{}",
            n.text
        );
    }

    #[test]
    fn phrases_table() {
        for (action, phrase) in [
            ("docker restart pg", "restarting container pg"),
            (
                "exec /bin/systemctl restart app",
                "running /bin/systemctl restart app",
            ),
            ("other", "other"),
        ] {
            assert_eq!(action_phrase(action), phrase);
        }
        // every reason: people's words where we have them, else the code itself
        for &reason in FailureReason::ALL {
            let want = match reason {
                FailureReason::Refused => "connection refused",
                FailureReason::Timeout => "timed out",
                FailureReason::Dns => "name does not resolve",
                FailureReason::HttpStatus => "bad HTTP status",
                FailureReason::ExitStatus => "non-zero exit",
                FailureReason::Auth => "authentication failed",
                FailureReason::Query => "query failed",
                FailureReason::ContainerMissing => "container missing",
                FailureReason::ContainerExited => "container exited",
                FailureReason::Oom => "out of memory",
                FailureReason::CrashLoop => "crash loop",
                FailureReason::Tls => "TLS error",
                FailureReason::CertExpiring => "certificate expiring",
                FailureReason::CertExpired => "certificate expired",
                FailureReason::CertNameMismatch => "certificate name mismatch",
                FailureReason::CertUntrusted => "certificate not trusted",
                FailureReason::Nxdomain => "name does not exist",
                FailureReason::NoAnswer => "no DNS answer",
                FailureReason::PacketLoss => "packet loss",
                FailureReason::HighRtt => "slow round trip",
                FailureReason::HeartbeatMissed => "heartbeat missed",
                FailureReason::HeartbeatFailed => "job reported failure",
                FailureReason::DiskSpace => "disk full",
                FailureReason::DiskInodes => "out of inodes",
                FailureReason::MemoryLow => "low on memory",
                FailureReason::LoadHigh => "load too high",
                FailureReason::UnitInactive => "unit stopped",
                FailureReason::UnitFailed => "unit failed",
                FailureReason::UnitActivating => "unit stuck starting",
                FailureReason::UnitNotFound => "no such unit",
                FailureReason::UnitNotLoaded => "unit not loaded",
                FailureReason::SystemdUnavailable => "systemd unreachable",
                other => other.as_str(),
            };
            assert_eq!(reason_phrase(reason), want, "{reason}");
        }
    }
}
