//! TEMPORARY: writes tests/fixtures/journal-0.1.0.jsonl from today's (string-typed) events,
//! exactly as `JournalStore::append` serializes a row's body. Replaced once events are typed.
#![cfg(test)]

use crate::drill::RunState;
use crate::event::{Event, EventKind, TenantFigures, Timestamp};
use crate::probe::{FailureReason, ProbeState};
use crate::tenants::AlertCondition;

fn s(v: &str) -> String {
    v.to_string()
}

pub fn fixture_events() -> Vec<Event> {
    use FailureReason::*;
    use ProbeState::*;
    let mut kinds = vec![
        EventKind::DaemonStarted {
            version: s("0.1.0"),
            config_path: s("/etc/sentinel/sentineld.toml"),
            config_hash: s("0123456789abcdef0123"),
        },
        EventKind::DaemonStopping {
            reason: s("signal"),
        },
    ];
    for trigger in ["api", "sighup", "file-change"] {
        kinds.push(EventKind::ConfigApplied {
            config_hash: s("0123456789abcdef"),
            trigger: s(trigger),
            changes: vec![s("probe api added")],
            restart_required: vec![s("api.socket")],
        });
        kinds.push(EventKind::ConfigRejected {
            trigger: s(trigger),
            error: s("sentineld.toml:3:1: unknown probe kind `htp`"),
        });
    }
    kinds.push(EventKind::ControlRequest {
        method: s("POST"),
        route: s("/v1/reload"),
        uid: 0,
        pid: Some(4242),
        status: 200,
    });
    // every state as `from` and as `to`, every failure reason once
    let moves = [
        (Unknown, Up),
        (Up, Failing),
        (Failing, Down),
        (Down, Recovering),
        (Recovering, Up),
        (Failing, Up),
        (Recovering, Down),
        (Unknown, Down),
    ];
    for (from, to) in moves {
        kinds.push(EventKind::ProbeTransition {
            probe: s("api"),
            from: s(from.as_str()),
            to: s(to.as_str()),
            reason: None,
            status_code: Some(200),
            latency_ms: Some(12.5),
            recoveries_total: 3,
        });
    }
    for reason in [
        Dns,
        Refused,
        Timeout,
        Protocol,
        HttpStatus,
        Assertion,
        ExitStatus,
        Exec,
        Docker,
        ContainerMissing,
        ContainerExited,
        Oom,
        Unhealthy,
        CrashLoop,
        Tls,
        Auth,
        Query,
        Io,
    ] {
        kinds.push(EventKind::ProbeTransition {
            probe: s("db"),
            from: s(Failing.as_str()),
            to: s(Down.as_str()),
            reason: Some(s(reason.as_str())),
            status_code: None,
            latency_ms: Some(5000.0),
            recoveries_total: 0,
        });
    }
    for action in crate::docker::WATCHED_ACTIONS.iter().copied().chain([
        "health_status: healthy",
        "health_status: unhealthy",
        "destroy",
    ]) {
        let exit_code = matches!(action, "die" | "kill").then_some(137);
        kinds.push(EventKind::ContainerEvent {
            container: s("postgres"),
            container_id: s("4f2a9c0d1e2b"),
            action: s(action),
            exit_code,
        });
    }
    kinds.push(EventKind::DockerEngine {
        connected: true,
        detail: s("API 1.43"),
    });
    kinds.push(EventKind::ProbeSilenced {
        probe: s("api"),
        until: Timestamp(1_760_000_600_000),
    });
    kinds.push(EventKind::DependencyRecovered {
        parent: s("db"),
        dependants: vec![s("api"), s("worker")],
    });
    for cause in ["down", "operator", "dependency"] {
        kinds.push(EventKind::HealStarted {
            probe: s("db"),
            action: s("docker restart postgres"),
            attempt: 1,
            cause: s(cause),
        });
    }
    kinds.push(EventKind::HealFinished {
        probe: s("db"),
        action: s("docker restart postgres"),
        ok: true,
        detail: s("restarted postgres"),
    });
    kinds.push(EventKind::HealFinished {
        probe: s("db"),
        action: s("exec /usr/local/bin/fix"),
        ok: false,
        detail: s("exit status 1"),
    });
    kinds.push(EventKind::HealGaveUp {
        probe: s("db"),
        attempts: 3,
        retry_at: Timestamp(1_760_003_600_000),
    });
    kinds.push(EventKind::IncidentClosed {
        probe: s("db"),
        healed: true,
        time_to_detect_ms: Some(3000),
        time_to_act_ms: Some(120),
        time_to_recover_ms: Some(9000),
    });
    kinds.push(EventKind::EventsDropped {
        subscriber: s("journal"),
        missed: 17,
    });
    for condition in [
        AlertCondition::ErrorShare,
        AlertCondition::ErrorRate,
        AlertCondition::Errors,
        AlertCondition::P95,
        AlertCondition::Deviation,
    ] {
        kinds.push(EventKind::TenantAlertFired {
            rule: s("noisy"),
            tenant_id: s("acme"),
            condition: s(condition.as_str()),
            value: 64.0,
            threshold: 50.0,
            window_ms: 600_000,
            endpoint: Some(s("/v1/orders")),
            message: s("tenant acme: 64% of errors"),
        });
    }
    kinds.push(EventKind::TenantAlertResolved {
        rule: s("noisy"),
        tenant_id: s("acme"),
        value: 10.0,
        firing_ms: 120_000,
        message: s("tenant acme: resolved"),
    });
    kinds.push(EventKind::ChaosStarted {
        experiment: s("x1"),
        profile: Some(s("slow-db")),
        target: s("interface eth0"),
        faults: vec![s("netem delay 200ms")],
        until: Timestamp(1_760_000_060_000),
    });
    kinds.push(EventKind::ChaosAborted {
        experiment: s("x2"),
        profile: None,
        reason: s("probe api went down"),
    });
    for trigger in ["deadline", "stop", "shutdown", "halt", "recovery", "sweep"] {
        kinds.push(EventKind::ChaosRolledBack {
            experiment: s("x1"),
            profile: Some(s("slow-db")),
            trigger: s(trigger),
            ok: trigger != "recovery",
            detail: s("netem removed"),
        });
    }
    for phase in ["before", "during"] {
        kinds.push(EventKind::TenantSnapshot {
            experiment: s("x1"),
            phase: s(phase),
            window_ms: 60_000,
            total_requests: 1200,
            total_errors: 40,
            tenants: vec![
                TenantFigures {
                    tenant_id: s("acme"),
                    requests: 600,
                    errors: 30,
                    error_share: 0.75,
                    p95_ms: Some(180.5),
                },
                TenantFigures {
                    tenant_id: s("globex"),
                    requests: 600,
                    errors: 10,
                    error_share: 0.25,
                    p95_ms: None,
                },
            ],
        });
    }
    kinds.push(EventKind::ArchiveStarted {
        probe: s("db"),
        bundle: s("db-20251009T083000Z"),
        sources: vec![s("postgres logs"), s("container postgres")],
    });
    kinds.push(EventKind::ArchiveSpooled {
        probe: s("db"),
        bundle: s("db-20251009T083000Z"),
        path: s("/var/lib/sentinel/spool/db-20251009T083000Z.tar.gz"),
        bytes: 20480,
        sha256: s("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        destination: s("s3://evidence/db/"),
    });
    kinds.push(EventKind::ArchiveUploaded {
        probe: s("db"),
        bundle: s("db-20251009T083000Z"),
        location: s("s3://evidence/db/db-20251009T083000Z.tar.gz"),
        bytes: 20480,
    });
    for stage in ["spool", "timeout", "shutdown", "upload", "quota"] {
        kinds.push(EventKind::ArchiveFailed {
            probe: s("db"),
            bundle: s("db-20251009T083000Z"),
            stage: s(stage),
            error: s("boom"),
            will_retry: stage == "upload",
        });
    }
    kinds.push(EventKind::DrillStarted {
        drill: s("d1"),
        name: s("gameday"),
        steps: 2,
        probes: vec![s("api")],
        alerts: vec![s("noisy")],
    });
    kinds.push(EventKind::DrillStepStarted {
        drill: s("d1"),
        name: s("gameday"),
        step: 1,
        experiment: s("x1"),
        faults: vec![s("netem delay 200ms")],
    });
    for verdict in ["met", "missed"] {
        kinds.push(EventKind::DrillExpectationChecked {
            drill: s("d1"),
            name: s("gameday"),
            step: 1,
            expectation: s("probe api up within 30s"),
            verdict: s(verdict),
            measured_ms: Some(1200),
            limit_ms: Some(30_000),
            detail: s("up after 1.2 s"),
        });
    }
    for outcome in [RunState::Passed, RunState::Failed, RunState::Aborted] {
        let reason = (outcome == RunState::Aborted).then(|| s("stopped by an operator"));
        kinds.push(EventKind::DrillFinished {
            drill: s("d1"),
            name: s("gameday"),
            outcome: s(outcome.as_str()),
            met: 1,
            missed: usize::from(outcome != RunState::Passed),
            reason,
        });
    }
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            at: Timestamp(1_760_000_000_000 + i as i64 * 1000),
            kind,
        })
        .collect()
}

#[test]
fn write_journal_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/journal-0.1.0.jsonl"
    );
    let mut text = String::new();
    for event in fixture_events() {
        // exactly what JournalStore::append writes into the `body` column
        text.push_str(&serde_json::to_string(&event).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}
