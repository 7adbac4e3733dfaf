//! The closed words events carry (states, causes, triggers, stages, phases, verdicts, outcomes):
//! enums whose serialized strings are the stable names the journal, the API and webhooks use.
//!
//! Each word is written once, in `vocabulary!`, which derives the serde name, `as_str`,
//! `Display` and `ALL` from the same literal, so the JSON can never drift from what people read.
//!
//! # Unknown words in a stored journal
//! Every word a released `sentineld` ever wrote is a variant here (the fixture
//! `tests/fixtures/journal-0.1.0.jsonl` holds each one, written by the string-typed release).
//! A word this build does not know can only come from a newer `sentineld` (after a downgrade):
//! such a row fails to decode as a whole, and the journal skips it with a warning naming its
//! row id and the unknown word, exactly as for an event kind it does not know. The row stays in
//! the file, so running the newer release again shows it. The one open set is Docker's
//! container `action`, which the engine extends at will: [`ContainerAction::Other`] keeps any
//! action it does not name, verbatim.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a fieldless enum whose variants each map to one literal: the serde name, `as_str`
/// and `Display` all come from it, and `ALL` lists the variants in declaration order.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The serialized name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Where a probe's threshold machine stands (`probe_transition`'s `from` and `to`).
    pub enum ProbeState {
        /// No check has finished yet.
        Unknown = "unknown",
        Up = "up",
        /// Failing, but fewer than `fail_after` times in a row.
        Failing = "failing",
        Down = "down",
        /// Passing again after Down, but fewer than `recover_after` times in a row.
        Recovering = "recovering",
    }
}

vocabulary! {
    /// Why a check failed, typed so alerts and metrics can group by it (`probe_transition`'s
    /// `reason`).
    pub enum FailureReason {
        Dns = "dns",
        Refused = "refused",
        Timeout = "timeout",
        /// Connected, but the peer broke the protocol or the connection (reset, garbage).
        Protocol = "protocol",
        HttpStatus = "http_status",
        /// The answer came, but not the one configured (body, JSON, output, latency).
        Assertion = "assertion",
        /// An exec probe's program exited with an unexpected code or signal.
        ExitStatus = "exit_status",
        /// An exec probe's program could not be run at all.
        Exec = "exec",
        /// The Docker engine could not be asked.
        Docker = "docker",
        ContainerMissing = "container_missing",
        /// Not running: exited, dead, restarting or paused.
        ContainerExited = "container_exited",
        /// Killed by the OOM killer.
        Oom = "oom",
        /// Running, but its own HEALTHCHECK says unhealthy.
        Unhealthy = "unhealthy",
        /// Restarting too often (RestartCount growing).
        CrashLoop = "crash_loop",
        /// The TLS handshake failed (untrusted or expired certificate, wrong name, protocol).
        Tls = "tls",
        /// The server refused the credentials.
        Auth = "auth",
        /// The server answered the query with an error.
        Query = "query",
        Io = "io",
        /// tls_cert: the leaf certificate expires within `min_days_left`.
        CertExpiring = "cert_expiring",
        /// tls_cert: the leaf certificate's notAfter has passed.
        CertExpired = "cert_expired",
        /// tls_cert: the certificate is not valid for the name checked.
        CertNameMismatch = "cert_name_mismatch",
        /// tls_cert: the chain does not lead to a trusted CA (system store or `ca_file`).
        CertUntrusted = "cert_untrusted",
        /// dns: the name does not exist (NXDOMAIN).
        Nxdomain = "nxdomain",
        /// dns: the name exists but has no record of the type asked.
        NoAnswer = "no_answer",
        /// icmp: more echoes went unanswered than `max_loss_percent` allows.
        PacketLoss = "packet_loss",
        /// icmp: the round trip took longer than `max_rtt`.
        HighRtt = "high_rtt",
        /// A heartbeat probe got no beat within `every` + `grace`.
        HeartbeatMissed = "heartbeat_missed",
        /// A heartbeat probe got a `fail` beat: the job said it failed.
        HeartbeatFailed = "heartbeat_failed",
        /// A disk probe's mount uses more of its space than `max_used_percent`.
        DiskSpace = "disk_space",
        /// A disk probe's mount uses more of its inodes than `max_inodes_percent`.
        DiskInodes = "disk_inodes",
        /// A memory probe saw less available memory than `min_available`.
        MemoryLow = "memory_low",
        /// A load probe saw a load average per core above `max_load_per_core`.
        LoadHigh = "load_high",
        /// systemd_unit: the unit is inactive or stopping (stopped, or its process exited).
        UnitInactive = "unit_inactive",
        /// systemd_unit: systemd marked the unit failed (crash, non-zero exit, start timeout).
        UnitFailed = "unit_failed",
        /// systemd_unit: the unit is still starting, or waiting to restart (`auto-restart`).
        UnitActivating = "unit_activating",
        /// systemd_unit: systemd has no such unit (no unit file).
        UnitNotFound = "unit_not_found",
        /// systemd_unit: the unit exists but is not loaded (masked, bad setting, load error).
        UnitNotLoaded = "unit_not_loaded",
        /// systemd_unit: systemd could not be asked over D-Bus.
        SystemdUnavailable = "systemd_unavailable",
    }
}

vocabulary! {
    /// What a tenant alert rule compares against its threshold (`tenant_alert_fired`'s
    /// `condition`; `when` in `[[tenants.alert]]`).
    pub enum AlertCondition {
        /// The tenant's share of all errors, in %.
        ErrorShare = "error_share",
        /// The tenant's error rate, in %.
        ErrorRate = "error_rate",
        /// The tenant's error count.
        Errors = "errors",
        /// The tenant's p95 latency in ms.
        P95 = "p95",
        /// The tenant's p95 ÷ its own baseline p95.
        Deviation = "deviation",
    }
}

vocabulary! {
    /// What asked for a configuration reload (`config_applied` / `config_rejected` `trigger`).
    pub enum ReloadTrigger {
        /// `POST /v1/reload` (`sentinelctl reload`).
        Api = "api",
        Signal = "sighup",
        /// The file watcher saw the configuration change.
        FileChange = "file-change",
    }
}

vocabulary! {
    /// Why a heal action runs (`heal_started`'s `cause`).
    pub enum HealCause {
        /// The probe went Down.
        Down = "down",
        /// An operator asked for it (`sentinelctl heal`).
        Operator = "operator",
        /// A probe this one depends on recovered.
        Dependency = "dependency",
    }
}

vocabulary! {
    /// A graded remedy step of a postgres probe (`remedy = [{ action = ... }]`, `remedy_step`'s
    /// `action`): run in order on a server that answers but is stuck, before any restart.
    pub enum RemedyAction {
        /// `pg_cancel_backend` on statements running longer than `older_than`.
        CancelQueries = "cancel_queries",
        /// `pg_terminate_backend` on sessions idle in a transaction longer than `older_than`.
        TerminateIdleInTransaction = "terminate_idle_in_transaction",
        /// `pg_terminate_backend` on the heads of lock chains whose waiters waited longer than
        /// `waiting_longer_than`.
        TerminateLockBlockers = "terminate_lock_blockers",
    }
}

vocabulary! {
    /// What ended a chaos experiment (`chaos_rolled_back`'s `trigger`).
    pub enum RollbackTrigger {
        Deadline = "deadline",
        /// An operator stopped it.
        Stop = "stop",
        /// The daemon shut down.
        Shutdown = "shutdown",
        /// A halt condition was met (a watched probe went Down).
        Halt = "halt",
        /// Rolled back at start-up, after a crash left it in place.
        Recovery = "recovery",
        /// An orphan carrying our handle that no experiment accounts for.
        Sweep = "sweep",
        /// Someone else changed the experiment's kernel state while it ran (`chaos_drifted`).
        Drift = "drift",
    }
}

vocabulary! {
    /// What someone else changed of a running experiment's kernel state (`chaos_drifted`'s `cause`).
    pub enum DriftCause {
        /// Another root qdisc took the place of ours.
        QdiscReplaced = "qdisc_replaced",
        /// Our root qdisc was deleted; the kernel's default is back.
        QdiscRemoved = "qdisc_removed",
        /// Our qdisc is still there, with other options (`tc qdisc change`).
        QdiscChanged = "qdisc_changed",
        /// A cgroup file we wrote holds another value now.
        CgroupRewritten = "cgroup_rewritten",
        /// Our blackhole route was deleted.
        RouteRemoved = "route_removed",
    }
}

vocabulary! {
    /// Which span a `tenant_snapshot` covers.
    pub enum SnapshotPhase {
        /// The window before the fault, taken at the experiment's start.
        Before = "before",
        /// The experiment's own span, taken at rollback.
        During = "during",
    }
}

vocabulary! {
    /// Where evidence archiving failed (`archive_failed`'s `stage`).
    pub enum ArchiveStage {
        /// Collecting or writing the bundle into the spool failed.
        Spool = "spool",
        /// Collection outlasted its timeout; the restart went ahead.
        Timeout = "timeout",
        /// The daemon stopped before the bundle was written: it is lost.
        Shutdown = "shutdown",
        /// An upload attempt failed (retried).
        Upload = "upload",
        /// The spool is over its quota and only un-uploaded bundles are left (they are kept).
        Quota = "quota",
    }
}

vocabulary! {
    /// How a drill expectation was decided (`drill_expectation_checked`'s `verdict`).
    pub enum ExpectationVerdict {
        Met = "met",
        Missed = "missed",
    }
}

vocabulary! {
    /// How a drill ended (`drill_finished`'s `outcome`).
    pub enum DrillOutcome {
        /// Every expectation was met.
        Passed = "passed",
        /// At least one expectation was missed.
        Failed = "failed",
        /// Stopped before its end (`reason` says why).
        Aborted = "aborted",
    }
}

vocabulary! {
    /// Why a scheduled drill run did not start (`drill_skipped`'s `reason`).
    pub enum DrillSkipReason {
        /// A maintenance window covers a probe the drill watches.
        Maintenance = "maintenance",
        /// A drill was still running at the scheduled time.
        Busy = "busy",
    }
}

/// What the Docker engine reported about a container (`container_event`'s `action`).
///
/// The engine's vocabulary is open (it adds actions, and `health_status` carries its result:
/// `health_status: healthy`), so the actions sentineld acts on or subscribes to are named and
/// any other is kept verbatim in [`ContainerAction::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerAction {
    Die,
    Oom,
    Start,
    Restart,
    Stop,
    Kill,
    /// Any other action, as the engine spelled it.
    #[serde(untagged)]
    Other(String),
}

impl ContainerAction {
    /// Every named action, in declaration order (not `Other`).
    pub const NAMED: &'static [Self] = &[
        Self::Die,
        Self::Oom,
        Self::Start,
        Self::Restart,
        Self::Stop,
        Self::Kill,
    ];

    /// The engine's word for it; `Other` keeps what the engine sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Die => "die",
            Self::Oom => "oom",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Stop => "stop",
            Self::Kill => "kill",
            Self::Other(action) => action,
        }
    }

    /// Whether the container stopped running on its own (died or was OOM-killed).
    pub fn is_death(&self) -> bool {
        matches!(self, Self::Die | Self::Oom)
    }
}

impl From<&str> for ContainerAction {
    /// The engine's word; a named action is recognized, anything else kept as `Other`.
    fn from(action: &str) -> Self {
        Self::NAMED
            .iter()
            .find(|named| named.as_str() == action)
            .cloned()
            .unwrap_or_else(|| Self::Other(action.to_string()))
    }
}

impl fmt::Display for ContainerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

vocabulary! {
    /// Why `[docker] discover` chose a container (`probe_discovered`'s `from`).
    pub enum DiscoverySource {
        /// Labelled `sentinel.enable=true`.
        Label = "label",
        /// Has a HEALTHCHECK (`discover = "all"`).
        Healthcheck = "healthcheck",
    }
}

vocabulary! {
    /// Why a discovered probe stopped (`probe_undiscovered`'s `reason`).
    pub enum DiscoveryEnd {
        /// The container was removed.
        ContainerRemoved = "container_removed",
        /// A `[[probe]]` now watches the container (or takes the probe's name).
        ConfigProbe = "config_probe",
        /// More containers qualify than `[docker] max_discovered` allows.
        OverLimit = "over_limit",
        /// The container is still there, but `[docker]` (changed on reload) no longer takes it.
        NotEligible = "not_eligible",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each word's serde name is its `as_str`, it reads back as itself, and no two clash.
    fn check<T>(all: &[T])
    where
        T: Copy + fmt::Display + PartialEq + fmt::Debug + Serialize + serde::de::DeserializeOwned,
    {
        let mut seen = std::collections::HashSet::new();
        for &word in all {
            let text = word.to_string();
            assert!(seen.insert(text.clone()), "{text} twice");
            let json = serde_json::to_string(&word).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), word);
        }
    }

    #[test]
    fn every_word_serializes_as_its_name_and_reads_back() {
        check(ProbeState::ALL);
        check(FailureReason::ALL);
        check(ReloadTrigger::ALL);
        check(HealCause::ALL);
        check(RollbackTrigger::ALL);
        check(SnapshotPhase::ALL);
        check(ArchiveStage::ALL);
        check(ExpectationVerdict::ALL);
        check(DrillOutcome::ALL);
        check(AlertCondition::ALL);
        check(RemedyAction::ALL);
        check(DrillSkipReason::ALL);
        check(DriftCause::ALL);
    }

    #[test]
    fn words_are_the_names_released_journals_hold() {
        let names = |words: Vec<String>| words.join(" ");
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "probe state",
                names(ProbeState::ALL.iter().map(|w| w.to_string()).collect()),
                "unknown up failing down recovering",
            ),
            (
                "reload trigger",
                names(ReloadTrigger::ALL.iter().map(|w| w.to_string()).collect()),
                "api sighup file-change",
            ),
            (
                "heal cause",
                names(HealCause::ALL.iter().map(|w| w.to_string()).collect()),
                "down operator dependency",
            ),
            (
                "rollback trigger",
                names(RollbackTrigger::ALL.iter().map(|w| w.to_string()).collect()),
                "deadline stop shutdown halt recovery sweep drift",
            ),
            (
                "snapshot phase",
                names(SnapshotPhase::ALL.iter().map(|w| w.to_string()).collect()),
                "before during",
            ),
            (
                "archive stage",
                names(ArchiveStage::ALL.iter().map(|w| w.to_string()).collect()),
                "spool timeout shutdown upload quota",
            ),
            (
                "verdict",
                names(
                    ExpectationVerdict::ALL
                        .iter()
                        .map(|w| w.to_string())
                        .collect(),
                ),
                "met missed",
            ),
            (
                "drill outcome",
                names(DrillOutcome::ALL.iter().map(|w| w.to_string()).collect()),
                "passed failed aborted",
            ),
            (
                "alert condition",
                names(AlertCondition::ALL.iter().map(|w| w.to_string()).collect()),
                "error_share error_rate errors p95 deviation",
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn unknown_words_are_refused_with_the_word_and_the_expected_ones() {
        let err = serde_json::from_str::<HealCause>("\"cron\"").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown variant `cron`"), "{text}");
        assert!(text.contains("`down`, `operator`, `dependency`"), "{text}");
    }

    #[test]
    fn container_actions_keep_what_the_engine_sent() {
        // (engine's word, parsed, serialized back)
        let cases: Vec<(&str, ContainerAction)> = vec![
            ("die", ContainerAction::Die),
            ("oom", ContainerAction::Oom),
            ("start", ContainerAction::Start),
            ("restart", ContainerAction::Restart),
            ("stop", ContainerAction::Stop),
            ("kill", ContainerAction::Kill),
            (
                "health_status: healthy",
                ContainerAction::Other("health_status: healthy".into()),
            ),
            ("destroy", ContainerAction::Other("destroy".into())),
            ("", ContainerAction::Other(String::new())),
        ];
        for (word, want) in cases {
            assert_eq!(ContainerAction::from(word), want, "{word}");
            let json = serde_json::to_string(&want).unwrap();
            assert_eq!(json, serde_json::to_string(word).unwrap(), "{word}");
            assert_eq!(
                serde_json::from_str::<ContainerAction>(&json).unwrap(),
                want
            );
            assert_eq!(want.to_string(), word);
            assert_eq!(want.is_death(), matches!(word, "die" | "oom"), "{word}");
        }
    }
}
