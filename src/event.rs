//! The one typed `Event` every area emits, and the `Bus` that carries it.
//! Sources publish; consumers (journal, status view, API followers) subscribe. Nothing flows back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

mod vocab;
pub use vocab::DriftCause;
pub use vocab::DrillSkipReason;
pub use vocab::{
    AlertCondition, ArchiveStage, ContainerAction, DrillOutcome, ExpectationVerdict, FailureReason,
    HealCause, ProbeState, ReloadTrigger, RemedyAction, RollbackTrigger, SnapshotPhase,
};
pub use vocab::{DiscoveryEnd, DiscoverySource};

/// How many events a slow subscriber may fall behind before it starts missing some.
///
/// The journal drains in batches and keeps up with far more than this per second; a subscriber
/// that lags anyway is told how many it missed (`broadcast::error::RecvError::Lagged`) and the
/// journal records that loss as an event of its own, so a gap is never silent.
pub const BUS_CAPACITY: usize = 4096;

/// Milliseconds since the Unix epoch: what the journal stores and the API returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// RFC 3339 with milliseconds, in UTC: what people read in tables and logs. Times before
    /// 1970 read as the epoch, times past year 9999 as its last millisecond.
    pub fn to_rfc3339(self) -> String {
        const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        const LAST: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let nanos = i128::from(self.0.clamp(0, LAST)) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|time| time.format(FORMAT).ok())
            .unwrap_or_default()
    }

    /// How long from now until this time; zero once it has passed.
    pub fn duration_from_now(self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(Self::now().0).max(0) as u64)
    }

    pub fn saturating_sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(duration.as_millis() as i64))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self(millis)
    }
}

/// One thing that happened, stamped with when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    pub fn now(kind: EventKind) -> Self {
        Self {
            at: Timestamp::now(),
            kind,
        }
    }
}

/// Everything that can happen, one variant per fact. The serialized `kind` tag is the stable
/// name used by the journal, the API filter and `sentinelctl events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    DaemonStarted {
        version: String,
        config_path: String,
        config_hash: String,
    },
    DaemonStopping {
        reason: String,
    },
    /// A new configuration passed validation and was applied; `changes` says what moved.
    ConfigApplied {
        config_hash: String,
        trigger: ReloadTrigger,
        changes: Vec<String>,
        /// Settings that changed in the file but only take effect after a restart.
        restart_required: Vec<String>,
    },
    /// A new configuration failed validation; the running one was kept untouched.
    ConfigRejected {
        trigger: ReloadTrigger,
        error: String,
    },
    /// A mutating call on the control socket, with who made it and how it ended.
    ControlRequest {
        method: String,
        route: String,
        uid: u32,
        pid: Option<i32>,
        status: u16,
    },
    ProbeTransition {
        probe: String,
        from: ProbeState,
        to: ProbeState,
        /// Why the check that caused this transition failed; `None` when it passed.
        reason: Option<FailureReason>,
        status_code: Option<u16>,
        latency_ms: Option<f64>,
        recoveries_total: u64,
    },
    /// The Docker engine reported something about a container (die, oom, health_status, ...).
    ContainerEvent {
        container: String,
        container_id: String,
        action: ContainerAction,
        exit_code: Option<i64>,
    },
    /// The Docker event stream was connected or lost.
    DockerEngine {
        connected: bool,
        detail: String,
    },
    /// An operator silenced a probe: still checked, but not healed or alerted until `until`.
    ProbeSilenced {
        probe: String,
        until: Timestamp,
    },
    /// A probe others depend on recovered; its dependants are restarted in this order.
    DependencyRecovered {
        parent: String,
        dependants: Vec<String>,
    },
    /// A heal action starts (attempt counts within this incident).
    HealStarted {
        probe: String,
        action: String,
        attempt: u32,
        cause: HealCause,
    },
    HealFinished {
        probe: String,
        action: String,
        ok: bool,
        detail: String,
    },
    /// The restart budget is exhausted: no more heals until `retry_at` or a reset.
    HealGaveUp {
        probe: String,
        attempts: u32,
        retry_at: Timestamp,
        /// What the incident is, when known: `crash_loop` when the probe kept falling again
        /// right after coming back (absent in rows written before it existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<FailureReason>,
    },
    /// A probe that went Down is Up again; the times of the incident, in milliseconds.
    IncidentClosed {
        probe: String,
        healed: bool,
        time_to_detect_ms: Option<u64>,
        time_to_act_ms: Option<u64>,
        time_to_recover_ms: Option<u64>,
    },
    /// A bus subscriber fell behind and missed events: recorded so the gap is visible.
    EventsDropped {
        subscriber: String,
        missed: u64,
    },
    /// A tenant crossed a `[[tenants.alert]]` threshold; `message` is what people are told.
    TenantAlertFired {
        rule: String,
        tenant_id: String,
        condition: AlertCondition,
        value: f64,
        threshold: f64,
        window_ms: i64,
        endpoint: Option<String>,
        message: String,
    },
    /// A firing tenant alert cleared; the rule stays quiet for this tenant during its cooldown.
    TenantAlertResolved {
        rule: String,
        tenant_id: String,
        value: f64,
        firing_ms: i64,
        message: String,
    },
    /// A chaos experiment's faults are in place (read back from the kernel) until `until`.
    ChaosStarted {
        experiment: String,
        profile: Option<String>,
        target: String,
        faults: Vec<String>,
        until: Timestamp,
    },
    /// A chaos experiment did not start, or was halted: `reason` says why.
    ChaosAborted {
        experiment: String,
        profile: Option<String>,
        reason: String,
    },
    /// A chaos experiment's changes were undone; `trigger` says what ended it.
    ChaosRolledBack {
        experiment: String,
        profile: Option<String>,
        trigger: RollbackTrigger,
        ok: bool,
        detail: String,
    },
    /// The top tenants around a chaos experiment, recorded because the detector only keeps
    /// current windows: `phase` says which span. `window_ms` is what the detector covered.
    TenantSnapshot {
        experiment: String,
        phase: SnapshotPhase,
        window_ms: i64,
        total_requests: u64,
        total_errors: u64,
        tenants: Vec<TenantFigures>,
    },
    /// Evidence collection for an incident began (before the heal's restart).
    ArchiveStarted {
        probe: String,
        bundle: String,
        sources: Vec<String>,
    },
    /// The bundle is safely in the local spool; `destination` is where it will be uploaded.
    ArchiveSpooled {
        probe: String,
        bundle: String,
        path: String,
        bytes: u64,
        sha256: String,
        destination: String,
    },
    ArchiveUploaded {
        probe: String,
        bundle: String,
        location: String,
        bytes: u64,
    },
    /// Evidence archiving failed at `stage`.
    ArchiveFailed {
        probe: String,
        bundle: String,
        stage: ArchiveStage,
        error: String,
        will_retry: bool,
    },
    /// A drill (game day) began; `probes` and `alerts` are what its expectations watch, so a
    /// notification about them is tagged as the drill's and a failure elsewhere aborts it.
    DrillStarted {
        drill: String,
        name: String,
        steps: usize,
        probes: Vec<String>,
        alerts: Vec<String>,
        /// The target picked for this run from the drill's `targets` (absent without them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// A drill step's experiment is in place; `step` counts from 1.
    DrillStepStarted {
        drill: String,
        name: String,
        step: usize,
        experiment: String,
        faults: Vec<String>,
    },
    /// One expectation decided; times in milliseconds from the
    /// moment the step's faults were in place.
    DrillExpectationChecked {
        drill: String,
        name: String,
        step: usize,
        expectation: String,
        verdict: ExpectationVerdict,
        measured_ms: Option<u64>,
        limit_ms: Option<u64>,
        detail: String,
    },
    /// A drill ended; when `outcome` is aborted, `reason` says why.
    DrillFinished {
        drill: String,
        name: String,
        outcome: DrillOutcome,
        met: usize,
        missed: usize,
        reason: Option<String>,
        /// The run's times from its faults to the first Down of a watched probe, the first
        /// successful heal and the recovery (its slowest step's); absent when not seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detect_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        act_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recover_ms: Option<u64>,
    },
    /// A remedy step ran on a postgres probe that answers but is stuck (`step` counts from 1
    /// in the probe's `remedy` list): the sessions it signalled, none when its condition held
    /// for no session, and the evidence bundle holding the snapshot taken before it.
    RemedyStep {
        probe: String,
        action: RemedyAction,
        step: u32,
        sessions: Vec<RemedySession>,
        bundle: Option<String>,
        /// Why the step could not run (no connection, no permission), if it could not.
        error: Option<String>,
    },
    /// Every remedy step ran and the probe is still Down; `restart` says whether the heal
    /// action follows (the server is dead, or `restart_when_overloaded = true`).
    RemedyExhausted {
        probe: String,
        steps: u32,
        restart: bool,
    },
    /// A maintenance window began (`crate::maintenance`): the probes in `scope` are still
    /// checked and journaled, but neither healed nor alerted until `until`. `window` is its id;
    /// `schedule` names the `[[maintenance]]` entry of a scheduled window.
    MaintenanceStarted {
        window: String,
        schedule: Option<String>,
        scope: MaintenanceScope,
        reason: String,
        opened_by: MaintenanceActor,
        from: Timestamp,
        until: Timestamp,
    },
    /// A maintenance window ended at `until`: as planned, or `early` (`sentinelctl maintenance
    /// end`, or its schedule changed); `ended_by` says who or what ended it.
    MaintenanceEnded {
        window: String,
        schedule: Option<String>,
        scope: MaintenanceScope,
        reason: String,
        ended_by: MaintenanceActor,
        from: Timestamp,
        until: Timestamp,
        early: bool,
    },
    /// A healed probe came back Up but went Down again before it had held for the heal's
    /// `stable_for`: the same incident goes on (`relapses` counts them in this incident).
    /// `reason` is `crash_loop` once the incident is one, else why the probe failed.
    IncidentRelapsed {
        probe: String,
        relapses: u32,
        /// How long the Up run lasted before the probe began failing again.
        held_ms: u64,
        stable_for_ms: u64,
        reason: Option<FailureReason>,
    },
    /// `[docker] discover` started a probe (and its `docker_restart` heal) for a container, or
    /// restarted it because the container changed.
    ProbeDiscovered {
        probe: String,
        container: String,
        container_id: String,
        from: DiscoverySource,
    },
    /// A discovered probe stopped.
    ProbeUndiscovered {
        probe: String,
        container: String,
        container_id: String,
        reason: DiscoveryEnd,
    },
    /// A container's `sentinel.*` label could not be used; it is watched with the default.
    DiscoveryLabelInvalid {
        container: String,
        container_id: String,
        label: String,
        value: String,
        expected: String,
    },
    /// An operator muted a tenant's alerts until `until` (an `until` at or before the event's
    /// own time lifts the mute): it still ranks, marked muted. `user` is the uid's name, if known.
    TenantMuted {
        tenant: String,
        until: Timestamp,
        reason: String,
        uid: u32,
        user: Option<String>,
    },
    /// A scheduled drill run did not start at `scheduled_at`: `reason` says why, `detail` names
    /// the maintenance window or the running drill.
    DrillSkipped {
        name: String,
        scheduled_at: Timestamp,
        reason: DrillSkipReason,
        detail: String,
    },
    /// A finished run of a drill with an `objective`, judged against it: a missed objective
    /// alerts like an outage, and the next run that meets it resolves that alert.
    DrillObjectiveChecked {
        drill: String,
        name: String,
        verdict: ExpectationVerdict,
        /// "recover within 30s", and the other bounds set.
        objective: String,
        detail: String,
    },
    /// Someone else changed a running experiment's kernel state (`action` says which change,
    /// `detail` what is there now); the experiment is rolled back without undoing their change.
    ChaosDrifted {
        experiment: String,
        profile: Option<String>,
        action: String,
        cause: DriftCause,
        detail: String,
    },
}

impl EventKind {
    /// The serialized tag (`probe_transition`, `config_rejected`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::DaemonStarted { .. } => "daemon_started",
            Self::DaemonStopping { .. } => "daemon_stopping",
            Self::ConfigApplied { .. } => "config_applied",
            Self::ConfigRejected { .. } => "config_rejected",
            Self::ControlRequest { .. } => "control_request",
            Self::ProbeTransition { .. } => "probe_transition",
            Self::ContainerEvent { .. } => "container_event",
            Self::ProbeSilenced { .. } => "probe_silenced",
            Self::DependencyRecovered { .. } => "dependency_recovered",
            Self::HealStarted { .. } => "heal_started",
            Self::HealFinished { .. } => "heal_finished",
            Self::HealGaveUp { .. } => "heal_gave_up",
            Self::IncidentClosed { .. } => "incident_closed",
            Self::DockerEngine { .. } => "docker_engine",
            Self::EventsDropped { .. } => "events_dropped",
            Self::TenantAlertFired { .. } => "tenant_alert_fired",
            Self::TenantAlertResolved { .. } => "tenant_alert_resolved",
            Self::ChaosStarted { .. } => "chaos_started",
            Self::ChaosAborted { .. } => "chaos_aborted",
            Self::ChaosRolledBack { .. } => "chaos_rolled_back",
            Self::TenantSnapshot { .. } => "tenant_snapshot",
            Self::ArchiveStarted { .. } => "archive_started",
            Self::ArchiveSpooled { .. } => "archive_spooled",
            Self::ArchiveUploaded { .. } => "archive_uploaded",
            Self::ArchiveFailed { .. } => "archive_failed",
            Self::DrillStarted { .. } => "drill_started",
            Self::DrillStepStarted { .. } => "drill_step_started",
            Self::DrillExpectationChecked { .. } => "drill_expectation_checked",
            Self::DrillFinished { .. } => "drill_finished",
            Self::RemedyStep { .. } => "remedy_step",
            Self::RemedyExhausted { .. } => "remedy_exhausted",
            Self::MaintenanceStarted { .. } => "maintenance_started",
            Self::MaintenanceEnded { .. } => "maintenance_ended",
            Self::IncidentRelapsed { .. } => "incident_relapsed",
            Self::ProbeDiscovered { .. } => "probe_discovered",
            Self::ProbeUndiscovered { .. } => "probe_undiscovered",
            Self::DiscoveryLabelInvalid { .. } => "discovery_label_invalid",
            Self::TenantMuted { .. } => "tenant_muted",
            Self::DrillSkipped { .. } => "drill_skipped",
            Self::DrillObjectiveChecked { .. } => "drill_objective_checked",
            Self::ChaosDrifted { .. } => "chaos_drifted",
        }
    }

    /// A one-line human summary, for `sentinelctl events` and log lines.
    pub fn summary(&self) -> String {
        match self {
            Self::DaemonStarted {
                version,
                config_hash,
                ..
            } => format!(
                "sentineld {version} started (config {})",
                short(config_hash)
            ),
            Self::DaemonStopping { reason } => format!("stopping: {reason}"),
            Self::ConfigApplied {
                config_hash,
                trigger,
                changes,
                restart_required,
            } => {
                let mut text = format!("config {} applied ({trigger})", short(config_hash));
                if !changes.is_empty() {
                    text.push_str(&format!(": {}", changes.join(", ")));
                }
                if !restart_required.is_empty() {
                    text.push_str(&format!(
                        "; restart required for {}",
                        restart_required.join(", ")
                    ));
                }
                text
            }
            Self::ConfigRejected { trigger, error } => {
                format!("config rejected ({trigger}), old config kept: {error}")
            }
            Self::ControlRequest {
                method,
                route,
                uid,
                pid,
                status,
            } => {
                let pid = pid.map_or_else(|| "?".to_string(), |p| p.to_string());
                format!("{method} {route} by uid {uid} pid {pid} -> {status}")
            }
            Self::ProbeTransition {
                probe,
                from,
                to,
                reason,
                ..
            } => match reason {
                Some(reason) => format!("{probe}: {from} -> {to} ({reason})"),
                None => format!("{probe}: {from} -> {to}"),
            },
            Self::ContainerEvent {
                container,
                action,
                exit_code,
                ..
            } => match exit_code {
                Some(code) => format!("container {container}: {action} (exit code {code})"),
                None => format!("container {container}: {action}"),
            },
            Self::DependencyRecovered { parent, dependants } => {
                format!("{parent} recovered; restarting {}", dependants.join(", "))
            }
            Self::ProbeSilenced { probe, until } => {
                format!("{probe}: silenced until {}", until.to_rfc3339())
            }
            Self::HealStarted {
                probe,
                action,
                attempt,
                cause,
            } => format!("{probe}: healing ({cause}), attempt {attempt}: {action}"),
            Self::HealFinished {
                probe, ok, detail, ..
            } => {
                let result = if *ok { "done" } else { "failed" };
                format!("{probe}: heal {result}: {detail}")
            }
            Self::HealGaveUp {
                probe,
                attempts,
                retry_at,
                reason,
            } => {
                let what = match reason {
                    Some(FailureReason::CrashLoop) => "crash loop: ",
                    _ => "",
                };
                format!(
                    "{probe}: {what}gave up after {attempts} heals; next try at {}",
                    retry_at.to_rfc3339()
                )
            }
            Self::IncidentClosed {
                probe,
                healed,
                time_to_detect_ms,
                time_to_act_ms,
                time_to_recover_ms,
            } => {
                let ms = |v: &Option<u64>| v.map_or_else(|| "-".to_string(), |v| format!("{v} ms"));
                let how = if *healed {
                    "recovered after healing"
                } else {
                    "recovered"
                };
                format!(
                    "{probe}: {how}; detect {}, act {}, recover {}",
                    ms(time_to_detect_ms),
                    ms(time_to_act_ms),
                    ms(time_to_recover_ms)
                )
            }
            Self::DockerEngine { connected, detail } => {
                let state = if *connected {
                    "connected"
                } else {
                    "disconnected"
                };
                format!("docker engine {state}: {detail}")
            }
            Self::EventsDropped { subscriber, missed } => {
                format!("{subscriber} fell behind and missed {missed} events")
            }
            Self::TenantAlertFired { message, .. } | Self::TenantAlertResolved { message, .. } => {
                message.clone()
            }
            Self::ChaosStarted {
                experiment: id,
                target,
                faults,
                until,
                ..
            } => format!(
                "chaos {id}: {} on {target} until {}",
                faults.join(" + "),
                until.to_rfc3339()
            ),
            Self::ChaosAborted {
                experiment: id,
                reason,
                ..
            } => format!("chaos {id}: aborted: {reason}"),
            Self::ChaosRolledBack {
                experiment: id,
                trigger,
                ok,
                detail,
                ..
            } => {
                let result = if *ok {
                    "rolled back"
                } else {
                    "ROLLBACK FAILED"
                };
                format!("chaos {id}: {result} ({trigger}): {detail}")
            }
            Self::TenantSnapshot {
                experiment,
                phase,
                window_ms,
                tenants,
                ..
            } => format!(
                "chaos {experiment}: {} top tenants {phase} the fault (over {} s)",
                tenants.len(),
                window_ms / 1000
            ),
            Self::ArchiveStarted {
                probe,
                bundle,
                sources,
            } => format!("{probe}: archiving {} into {bundle}", sources.join(", ")),
            Self::ArchiveSpooled {
                probe,
                bundle,
                bytes,
                destination,
                ..
            } => format!("{probe}: bundle {bundle} spooled ({bytes} bytes), for {destination}"),
            Self::ArchiveUploaded {
                probe, location, ..
            } => format!("{probe}: evidence uploaded to {location}"),
            Self::ArchiveFailed {
                probe,
                bundle,
                stage,
                error,
                will_retry,
            } => {
                let retry = if *will_retry { "; will retry" } else { "" };
                format!("{probe}: archive {bundle} {stage} failed: {error}{retry}")
            }
            Self::DrillStarted {
                drill, name, steps, ..
            } => format!("drill {name} ({drill}): started, {steps} steps"),
            Self::DrillStepStarted {
                drill,
                step,
                experiment,
                faults,
                ..
            } => format!(
                "drill {drill}: step {step}: experiment {experiment} applied {}",
                faults.join(" + ")
            ),
            Self::DrillExpectationChecked {
                drill,
                step,
                expectation,
                verdict,
                detail,
                ..
            } => format!("drill {drill}: step {step}: {expectation}: {verdict} ({detail})"),
            Self::DrillFinished {
                drill,
                name,
                outcome,
                met,
                missed,
                reason,
                detect_ms,
                act_ms,
                recover_ms,
            } => {
                let why = reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(": {r}"));
                let ms = |v: &Option<u64>| v.map_or_else(|| "-".to_string(), |v| format!("{v} ms"));
                let times = match (detect_ms, act_ms, recover_ms) {
                    (None, None, None) => String::new(),
                    _ => format!(
                        "; detect {}, act {}, recover {}",
                        ms(detect_ms),
                        ms(act_ms),
                        ms(recover_ms)
                    ),
                };
                format!("drill {name} ({drill}): {outcome}, {met} met, {missed} missed{why}{times}")
            }
            Self::RemedyStep {
                probe,
                action,
                step,
                sessions,
                error,
                ..
            } => match error {
                Some(error) => format!("{probe}: remedy step {step} ({action}) failed: {error}"),
                None => format!(
                    "{probe}: remedy step {step}: {}",
                    RemedySession::phrase(*action, sessions)
                ),
            },
            Self::RemedyExhausted {
                probe,
                steps,
                restart,
            } => {
                let then = if *restart {
                    "restarting"
                } else {
                    "not restarting (it answers; restart_when_overloaded is off)"
                };
                format!("{probe}: still down after {steps} remedy step(s); {then}")
            }
            Self::MaintenanceStarted {
                window,
                scope,
                reason,
                opened_by,
                until,
                ..
            } => format!(
                "maintenance {window} ({scope}) until {}, opened by {opened_by}: {reason}",
                until.to_rfc3339()
            ),
            Self::MaintenanceEnded {
                window,
                ended_by,
                early,
                ..
            } => match early {
                true => format!("maintenance {window} ended early by {ended_by}"),
                false => format!("maintenance {window} ended ({ended_by})"),
            },
            Self::IncidentRelapsed {
                probe,
                relapses,
                held_ms,
                stable_for_ms,
                reason,
            } => {
                let why = match reason {
                    Some(FailureReason::CrashLoop) => "crash loop".to_string(),
                    Some(reason) => reason.to_string(),
                    None => "failing".to_string(),
                };
                format!(
                    "{probe}: down again after {} up (needs {} to count as recovered); relapse {relapses}: {why}",
                    span(*held_ms),
                    span(*stable_for_ms)
                )
            }
            Self::ProbeDiscovered {
                probe,
                container,
                container_id,
                from,
            } => format!(
                "{probe}: discovered container {container} ({}) by {from}",
                short(container_id)
            ),
            Self::ProbeUndiscovered {
                probe,
                container,
                reason,
                ..
            } => format!("{probe}: no longer discovered (container {container}: {reason})"),
            Self::DiscoveryLabelInvalid {
                container,
                label,
                value,
                expected,
                ..
            } => format!(
                "container {container}: label {label}={value:?} ignored: expected {expected}; using the default"
            ),
            Self::TenantMuted {
                tenant,
                until,
                reason,
                uid,
                user,
            } => {
                let who = user.as_ref().map_or_else(
                    || format!("uid {uid}"),
                    |user| format!("{user} (uid {uid})"),
                );
                match reason.is_empty() {
                    true => format!(
                        "tenant {tenant}: alerts muted until {} by {who}",
                        until.to_rfc3339()
                    ),
                    false => format!(
                        "tenant {tenant}: alerts muted until {} by {who}: {reason}",
                        until.to_rfc3339()
                    ),
                }
            }
            Self::DrillSkipped {
                name,
                scheduled_at,
                reason,
                detail,
            } => format!(
                "drill {name}: scheduled run of {} skipped ({reason}): {detail}",
                scheduled_at.to_rfc3339()
            ),
            Self::DrillObjectiveChecked {
                drill,
                name,
                verdict,
                objective,
                detail,
            } => format!("drill {name} ({drill}): objective {objective}: {verdict} ({detail})"),
            Self::ChaosDrifted {
                experiment: id,
                cause,
                detail,
                ..
            } => format!("chaos {id}: drifted ({cause}): {detail}"),
        }
    }
}

/// Which probes a maintenance window covers: those named in `probes`, and those that carry
/// every label of `labels` (a probe matches either way). Never both empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceScope {
    #[serde(default)]
    pub probes: Vec<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl MaintenanceScope {
    /// Whether the probe `name` with `labels` is in this scope.
    pub fn covers(&self, name: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.probes.iter().any(|p| p == name)
            || (!self.labels.is_empty()
                && self
                    .labels
                    .iter()
                    .all(|(key, value)| labels.get(key) == Some(value)))
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty() && self.labels.is_empty()
    }
}

/// "probes web, db; labels team=payments".
impl std::fmt::Display for MaintenanceScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.probes.is_empty() {
            parts.push(format!("probes {}", self.probes.join(", ")));
        }
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("labels {}", labels.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Who opened or ended a maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum MaintenanceActor {
    /// A caller of the control socket (SO_PEERCRED uid, and its name when the host knows it).
    Operator { uid: u32, user: Option<String> },
    /// A `[[maintenance]]` schedule.
    Schedule { name: String },
    /// A run-time window's time ran out.
    Expiry,
}

/// "alice (uid 1000)", "schedule nightly", "expiry".
impl std::fmt::Display for MaintenanceActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Operator {
                uid,
                user: Some(user),
            } => write!(f, "{user} (uid {uid})"),
            Self::Operator { uid, user: None } => write!(f, "uid {uid}"),
            Self::Schedule { name } => write!(f, "schedule {name}"),
            Self::Expiry => f.write_str("expiry"),
        }
    }
}

/// One tenant's numbers in a [`EventKind::TenantSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantFigures {
    pub tenant_id: String,
    pub requests: u64,
    pub errors: u64,
    /// This tenant's errors ÷ all errors in the window (0..=1).
    pub error_share: f64,
    pub p95_ms: Option<f64>,
}

/// One session a remedy step signalled, as it stood in the snapshot taken before the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemedySession {
    pub pid: i32,
    pub role: Option<String>,
    pub application: Option<String>,
    /// `pg_stat_activity.state`: `active`, `idle in transaction`, ...
    pub state: Option<String>,
    /// The session's query, cut to 200 characters.
    pub query: Option<String>,
    /// How long it had been in `state` (running its statement, idle in its transaction, or
    /// for a lock blocker: in its transaction), in milliseconds.
    pub for_ms: u64,
    /// Whether PostgreSQL accepted the signal (false: the session had already gone).
    pub signalled: bool,
}

impl RemedySession {
    /// "terminated 1 lock blocker (pid 4242, idle in transaction 12 min)".
    pub fn phrase(action: RemedyAction, sessions: &[RemedySession]) -> String {
        let (verb, one, many) = match action {
            RemedyAction::CancelQueries => ("cancelled", "query", "queries"),
            RemedyAction::TerminateIdleInTransaction => (
                "terminated",
                "idle-in-transaction session",
                "idle-in-transaction sessions",
            ),
            RemedyAction::TerminateLockBlockers => ("terminated", "lock blocker", "lock blockers"),
        };
        if sessions.is_empty() {
            return format!("{action}: no session matched; nothing done");
        }
        let n = sessions.len();
        let noun = if n == 1 { one } else { many };
        let shown: Vec<String> = sessions
            .iter()
            .take(3)
            .map(|s| {
                let state = s.state.as_deref().unwrap_or("unknown state");
                format!("pid {}, {state} {}", s.pid, span(s.for_ms))
            })
            .collect();
        let more = if n > 3 {
            format!("; {} more", n - 3)
        } else {
            String::new()
        };
        format!("{verb} {n} {noun} ({}{more})", shown.join("; "))
    }
}

/// "850 ms", "42 s", "12 min", "3.5 h": how people say how long a session ran.
pub fn span(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{} s", ms / 1000),
        60_000..=3_599_999 => format!("{} min", ms / 60_000),
        _ => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// An event after the journal stored it: `id` is its position, increasing, never reused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournaledEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: Event,
}

#[cfg(test)]
impl JournaledEvent {
    /// `events` as a journal would hold them: ids 1, 2, ... in the given order.
    pub(crate) fn numbered(events: impl IntoIterator<Item = Event>) -> Vec<Self> {
        events
            .into_iter()
            .zip(1..)
            .map(|(event, id)| Self { id, event })
            .collect()
    }
}

/// The broadcast bus. Cloning is cheap; every clone publishes to the same subscribers.
#[derive(Clone, Debug)]
pub struct Bus {
    sender: broadcast::Sender<Event>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BUS_CAPACITY);
        Self { sender }
    }

    /// Publish an event. With no subscriber it is dropped: publishing never blocks a source.
    pub fn publish(&self, kind: EventKind) {
        let _ = self.sender.send(Event::now(kind));
    }

    pub fn publish_event(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_serializes_with_flat_kind_tag() {
        let event = Event {
            at: Timestamp(1_700_000_000_123),
            kind: EventKind::ConfigRejected {
                trigger: ReloadTrigger::Signal,
                error: "x.toml:1:1: boom".into(),
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "config_rejected");
        assert_eq!(json["at"], 1_700_000_000_123_i64);
        assert_eq!(json["error"], "x.toml:1:1: boom");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.kind.name(), "config_rejected");
    }

    #[test]
    fn name_matches_serialized_tag_for_every_kind() {
        let events = fixture::journal_0_1_0_events();
        let names: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(names.len(), 29, "the fixture holds every kind: {names:?}");
        for Event { kind, .. } in events {
            let json = serde_json::to_value(&kind).unwrap();
            assert_eq!(json["kind"], kind.name());
            assert!(!kind.summary().is_empty());
            // a field named like JournaledEvent's own (`id`, `at`) would break the journal feed
            let stored = JournaledEvent {
                id: 7,
                event: Event {
                    at: Timestamp(1),
                    kind: kind.clone(),
                },
            };
            let text = serde_json::to_string(&stored).unwrap();
            assert_eq!(
                serde_json::from_str::<JournaledEvent>(&text).unwrap(),
                stored
            );
        }
    }

    /// Rows the string-typed release wrote read as the typed events with the same values, and
    /// write back byte for byte: the journal, the API and webhooks keep their JSON.
    #[test]
    fn journal_rows_of_release_0_1_0_read_and_write_back_unchanged() {
        let lines: Vec<&str> = fixture::JOURNAL_0_1_0.lines().collect();
        let want = fixture::journal_0_1_0_events();
        assert_eq!(lines.len(), want.len());
        for (index, (line, want)) in lines.iter().zip(&want).enumerate() {
            let row = index + 1;
            let read: Event = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("row {row} does not read: {err}\n{line}"));
            assert_eq!(&read, want, "row {row}");
            assert_eq!(serde_json::to_string(&read).unwrap(), *line, "row {row}");
            assert_eq!(serde_json::to_string(want).unwrap(), *line, "row {row}");
        }
    }

    /// `sentinelctl events` prints the typed events exactly as release 0.1.0 printed its own.
    #[test]
    fn the_events_table_reads_as_release_0_1_0_printed_it() {
        let journaled = JournaledEvent::numbered(fixture::journal_0_1_0_events());
        let table = crate::cli::render::events(&journaled);
        for (row, (got, want)) in table
            .lines()
            .zip(fixture::EVENTS_TABLE_0_1_0.lines())
            .enumerate()
        {
            assert_eq!(got, want, "line {}", row + 1);
        }
        assert_eq!(table, fixture::EVENTS_TABLE_0_1_0);
    }

    /// The fixture holds every word of every typed field, so the test above covers them all.
    #[test]
    fn release_0_1_0_fixture_holds_every_word() {
        let mut words: std::collections::BTreeSet<String> = Default::default();
        let mut note = |field: &str, word: &dyn std::fmt::Display| {
            words.insert(format!("{field}={word}"));
        };
        for event in fixture::journal_0_1_0_events() {
            match &event.kind {
                EventKind::ConfigApplied { trigger, .. }
                | EventKind::ConfigRejected { trigger, .. } => note("reload", trigger),
                EventKind::ProbeTransition {
                    from, to, reason, ..
                } => {
                    note("state", from);
                    note("state", to);
                    if let Some(reason) = reason {
                        note("reason", reason);
                    }
                }
                EventKind::ContainerEvent { action, .. } => note("action", action),
                EventKind::HealStarted { cause, .. } => note("cause", cause),
                EventKind::ChaosRolledBack { trigger, .. } => note("rollback", trigger),
                EventKind::TenantSnapshot { phase, .. } => note("phase", phase),
                EventKind::ArchiveFailed { stage, .. } => note("stage", stage),
                EventKind::DrillExpectationChecked { verdict, .. } => note("verdict", verdict),
                EventKind::DrillFinished { outcome, .. } => note("outcome", outcome),
                EventKind::TenantAlertFired { condition, .. } => note("condition", condition),
                _ => {}
            }
        }
        let mut want: Vec<String> = Vec::new();
        let mut all = |field: &str, names: Vec<&str>| {
            want.extend(names.into_iter().map(|n| format!("{field}={n}")));
        };
        all(
            "reload",
            ReloadTrigger::ALL.iter().map(|w| w.as_str()).collect(),
        );
        all(
            "state",
            ProbeState::ALL.iter().map(|w| w.as_str()).collect(),
        );
        // reasons added after 0.1.0 cannot be in its journal
        let newer = [
            FailureReason::CertExpiring,
            FailureReason::CertExpired,
            FailureReason::CertNameMismatch,
            FailureReason::CertUntrusted,
            FailureReason::Nxdomain,
            FailureReason::NoAnswer,
            FailureReason::PacketLoss,
            FailureReason::HighRtt,
        ];
        all(
            "reason",
            FailureReason::ALL
                .iter()
                .filter(|w| !newer.contains(w))
                .map(|w| w.as_str())
                .collect(),
        );
        all(
            "action",
            ContainerAction::NAMED.iter().map(|w| w.as_str()).collect(),
        );
        all(
            "action",
            vec!["health_status", "health_status: healthy", "destroy"],
        );
        all("cause", HealCause::ALL.iter().map(|w| w.as_str()).collect());
        all(
            "rollback",
            RollbackTrigger::ALL.iter().map(|w| w.as_str()).collect(),
        );
        all(
            "phase",
            SnapshotPhase::ALL.iter().map(|w| w.as_str()).collect(),
        );
        all(
            "stage",
            ArchiveStage::ALL.iter().map(|w| w.as_str()).collect(),
        );
        all(
            "verdict",
            ExpectationVerdict::ALL.iter().map(|w| w.as_str()).collect(),
        );
        all(
            "outcome",
            DrillOutcome::ALL.iter().map(|w| w.as_str()).collect(),
        );
        all(
            "condition",
            AlertCondition::ALL.iter().map(|w| w.as_str()).collect(),
        );
        // Words added after release 0.1.0: no journal it wrote can hold them.
        let newer = [
            "rollback=drift",
            "reason=heartbeat_missed",
            "reason=heartbeat_failed",
            "reason=disk_space",
            "reason=disk_inodes",
            "reason=memory_low",
            "reason=load_high",
            "reason=unit_inactive",
            "reason=unit_failed",
            "reason=unit_activating",
            "reason=unit_not_found",
            "reason=unit_not_loaded",
            "reason=systemd_unavailable",
        ];
        for word in want {
            if newer.contains(&word.as_str()) {
                continue;
            }
            assert!(words.contains(&word), "the fixture lacks {word}");
        }
    }

    /// `tenant_alert_fired`'s `condition` is a closed word: the release's rows read as the
    /// typed condition, and a word no release wrote is refused instead of carried along.
    #[test]
    fn tenant_alert_condition_is_a_typed_word() {
        let row = fixture::JOURNAL_0_1_0
            .lines()
            .find(|line| line.contains("\"condition\":\"p95\""))
            .expect("the fixture has a p95 alert");
        let read: Event = fixture::assert_closed_word(row, "p95", "p99");
        assert!(
            matches!(
                read.kind,
                EventKind::TenantAlertFired {
                    condition: AlertCondition::P95,
                    ..
                }
            ),
            "{row}"
        );
    }

    /// The maintenance events carry their words in snake_case and read back as written.
    #[test]
    fn maintenance_events_round_trip_with_snake_case_words() {
        let started = Event {
            at: Timestamp(1_000),
            kind: EventKind::MaintenanceStarted {
                window: "m1".into(),
                schedule: None,
                scope: MaintenanceScope {
                    probes: vec!["web".into()],
                    labels: [("team".to_string(), "payments".to_string())].into(),
                },
                reason: "deploy".into(),
                opened_by: MaintenanceActor::Operator {
                    uid: 1000,
                    user: Some("alice".into()),
                },
                from: Timestamp(1_000),
                until: Timestamp(61_000),
            },
        };
        let json = serde_json::to_string(&started).unwrap();
        assert_eq!(
            json,
            r#"{"at":1000,"kind":"maintenance_started","window":"m1","schedule":null,"scope":{"probes":["web"],"labels":{"team":"payments"}},"reason":"deploy","opened_by":{"by":"operator","uid":1000,"user":"alice"},"from":1000,"until":61000}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), started);
        let ended = EventKind::MaintenanceEnded {
            window: "nightly@2026-12-06T02:00Z".into(),
            schedule: Some("nightly".into()),
            scope: MaintenanceScope::default(),
            reason: "r".into(),
            ended_by: MaintenanceActor::Schedule {
                name: "nightly".into(),
            },
            from: Timestamp(0),
            until: Timestamp(1),
            early: false,
        };
        let value = serde_json::to_value(&ended).unwrap();
        assert_eq!(value["kind"], "maintenance_ended");
        assert_eq!(value["ended_by"]["by"], "schedule");
        assert_eq!(ended.name(), "maintenance_ended");
        assert_eq!(
            ended.summary(),
            "maintenance nightly@2026-12-06T02:00Z ended (schedule nightly)"
        );
        let expiry = serde_json::to_value(MaintenanceActor::Expiry).unwrap();
        assert_eq!(expiry, serde_json::json!({"by": "expiry"}));
        // a word no release wrote is refused
        assert!(serde_json::from_str::<MaintenanceActor>(r#"{"by":"cron"}"#).is_err());
    }

    #[test]
    fn timestamp_renders_rfc3339_utc() {
        let cases = [
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (1_700_000_000_000, "2023-11-14T22:13:20.000Z"),
            (1_700_000_000_007, "2023-11-14T22:13:20.007Z"),
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1970-01-01T00:00:00.000Z"),
            (i64::MIN, "1970-01-01T00:00:00.000Z"),
            (951_868_799_999, "2000-02-29T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            // Past year 9999 the formatter it replaced failed, and `to_string` panicked.
            (253_402_300_800_000, "9999-12-31T23:59:59.999Z"),
            (i64::MAX, "9999-12-31T23:59:59.999Z"),
        ];
        for (millis, text) in cases {
            assert_eq!(Timestamp(millis).to_rfc3339(), text, "{millis}");
        }
    }

    #[tokio::test]
    async fn bus_delivers_to_every_subscriber() {
        let bus = Bus::new();
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        bus.publish(EventKind::DaemonStopping {
            reason: "test".into(),
        });
        assert_eq!(first.recv().await.unwrap().kind.name(), "daemon_stopping");
        assert_eq!(second.recv().await.unwrap().kind.name(), "daemon_stopping");
    }
}
