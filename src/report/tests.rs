//! Table-driven tests of the report's pure parts: the verdict, per-probe times, the timeline
//! and the tenant comparison.

use super::*;
use crate::chaos::experiment::{Experiment, ExperimentState};
use crate::chaos::spec::{ExperimentSpec, Fault, TargetSpec};
use crate::chaos::RecoverFrom;
use crate::event::{Event, HealCause, ProbeState, SnapshotPhase, TenantFigures};

const T0: i64 = 1_700_000_000_000;

fn event(id: i64, offset_ms: i64, kind: EventKind) -> JournaledEvent {
    JournaledEvent {
        id,
        event: Event {
            at: Timestamp(T0 + offset_ms),
            kind,
        },
    }
}

fn transition(probe: &str, from: ProbeState, to: ProbeState) -> EventKind {
    EventKind::ProbeTransition {
        probe: probe.into(),
        from,
        to,
        reason: None,
        status_code: None,
        latency_ms: None,
        recoveries_total: 0,
    }
}

fn started() -> EventKind {
    EventKind::ChaosStarted {
        experiment: "x1".into(),
        profile: Some("slow".into()),
        target: "interface veth".into(),
        faults: vec!["tbf".into()],
        until: Timestamp(T0 + 10_000),
    }
}

fn rolled_back() -> EventKind {
    EventKind::ChaosRolledBack {
        experiment: "x1".into(),
        profile: Some("slow".into()),
        trigger: RollbackTrigger::Stop,
        ok: true,
        detail: "d".into(),
    }
}

fn heal(probe: &str) -> EventKind {
    EventKind::HealStarted {
        probe: probe.into(),
        action: "restart".into(),
        attempt: 1,
        cause: HealCause::Down,
    }
}

fn hypothesis(probes: &[&str], within_s: Option<u64>, from: RecoverFrom) -> Hypothesis {
    Hypothesis {
        steady_state: probes.iter().map(|p| p.to_string()).collect(),
        recover_within: within_s.map(crate::units::HumanDuration::from_secs),
        recover_from: from,
    }
}

/// An experiment created at T0, rolled back at T0 + `ended_ms` (None: running).
fn experiment(hypothesis: Option<Hypothesis>, ended_ms: Option<i64>) -> Experiment {
    Experiment {
        id: "x1".into(),
        profile: Some("slow".into()),
        spec: ExperimentSpec {
            faults: vec![Fault::Pause {}],
            target: TargetSpec {
                pid: Some(1),
                ..TargetSpec::default()
            },
            force: false,
            allow_default_route: false,
            halt_on: vec![],
            hypothesis,
        },
        actions: vec![],
        state: match ended_ms {
            Some(_) => ExperimentState::RolledBack,
            None => ExperimentState::Active,
        },
        created: Timestamp(T0),
        deadline: Timestamp(T0 + 10_000),
        boot_id: String::new(),
        log: vec![],
        ended: ended_ms.map(|ms| Timestamp(T0 + ms)),
        outcome: None,
        baseline: vec![],
    }
}

/// Fault at 0, api down at 2 s, heal at 2.5 s, up at 4 s, rollback at 10 s.
fn outage_events() -> Vec<JournaledEvent> {
    vec![
        event(1, 0, started()),
        event(
            2,
            1_000,
            transition("api", ProbeState::Up, ProbeState::Failing),
        ),
        event(
            3,
            2_000,
            transition("api", ProbeState::Failing, ProbeState::Down),
        ),
        event(4, 2_500, heal("api")),
        event(
            5,
            3_000,
            transition("api", ProbeState::Down, ProbeState::Recovering),
        ),
        event(
            6,
            4_000,
            transition("api", ProbeState::Recovering, ProbeState::Up),
        ),
        event(7, 10_000, rolled_back()),
    ]
}

/// (name, hypothesis, rolled back at, events, evaluated at, verdict word, text in it)
type Case = (
    &'static str,
    Option<Hypothesis>,
    Option<i64>,
    Vec<JournaledEvent>,
    i64,
    &'static str,
    &'static str,
);

#[test]
fn verdict_table() {
    let now = T0 + 200_000;
    let down_until_after_rollback = vec![
        event(1, 0, started()),
        event(
            2,
            2_000,
            transition("api", ProbeState::Up, ProbeState::Down),
        ),
        event(3, 10_000, rolled_back()),
        event(
            4,
            13_000,
            transition("api", ProbeState::Down, ProbeState::Up),
        ),
    ];
    let never_recovers = vec![
        event(1, 0, started()),
        event(
            2,
            2_000,
            transition("api", ProbeState::Up, ProbeState::Down),
        ),
        event(3, 10_000, rolled_back()),
    ];
    let already_down = vec![
        event(1, 0, started()),
        event(
            2,
            2_000,
            transition("api", ProbeState::Down, ProbeState::Up),
        ),
        event(3, 10_000, rolled_back()),
    ];
    let quiet = vec![event(1, 0, started()), event(2, 10_000, rolled_back())];
    let cases: Vec<Case> = vec![
        (
            "no hypothesis",
            None,
            Some(10_000),
            outage_events(),
            now,
            "not stated",
            "",
        ),
        (
            "stays up, it did",
            Some(hypothesis(&["api"], None, RecoverFrom::Down)),
            Some(10_000),
            quiet.clone(),
            now,
            "held",
            "api stay Up",
        ),
        (
            "stays up, it went down",
            Some(hypothesis(&["api"], None, RecoverFrom::Down)),
            Some(10_000),
            outage_events(),
            now,
            "violated",
            "api went down at +2.0s",
        ),
        (
            "other probe down is fine",
            Some(hypothesis(&["db"], None, RecoverFrom::Down)),
            Some(10_000),
            outage_events(),
            now,
            "held",
            "db stay Up",
        ),
        (
            "recovers within 5s of down",
            Some(hypothesis(&["api"], Some(5), RecoverFrom::Down)),
            Some(10_000),
            outage_events(),
            now,
            "held",
            "within 5s of going down",
        ),
        (
            "recovers too slowly after down",
            Some(hypothesis(&["api"], Some(1), RecoverFrom::Down)),
            Some(10_000),
            outage_events(),
            now,
            "violated",
            "Up again only 2.0s after the down (allowed 1s)",
        ),
        (
            "within 5s of rollback",
            Some(hypothesis(&["api"], Some(5), RecoverFrom::Rollback)),
            Some(10_000),
            down_until_after_rollback.clone(),
            now,
            "held",
            "the rollback",
        ),
        (
            "2s after rollback is too slow",
            Some(hypothesis(&["api"], Some(2), RecoverFrom::Rollback)),
            Some(10_000),
            down_until_after_rollback,
            now,
            "violated",
            "only 3.0s after the rollback",
        ),
        (
            "never recovers",
            Some(hypothesis(&["api"], Some(5), RecoverFrom::Rollback)),
            Some(10_000),
            never_recovers.clone(),
            now,
            "violated",
            "still down 5s after the rollback",
        ),
        (
            "deadline not reached yet",
            Some(hypothesis(&["api"], Some(30), RecoverFrom::Rollback)),
            Some(10_000),
            never_recovers,
            T0 + 12_000,
            "inconclusive",
            "api down and the recovery deadline has not passed",
        ),
        (
            "already down at the start",
            Some(hypothesis(&["api"], Some(30), RecoverFrom::Down)),
            Some(10_000),
            already_down,
            now,
            "violated",
            "already down when the fault was applied",
        ),
        (
            "still running",
            Some(hypothesis(&["api"], None, RecoverFrom::Down)),
            None,
            vec![event(1, 0, started())],
            T0 + 5_000,
            "inconclusive",
            "still running",
        ),
        (
            "running but already violated",
            Some(hypothesis(&["api"], None, RecoverFrom::Down)),
            None,
            outage_events()[..3].to_vec(),
            T0 + 5_000,
            "violated",
            "api went down",
        ),
        (
            "journal lost the start",
            Some(hypothesis(&["api"], None, RecoverFrom::Down)),
            Some(10_000),
            vec![event(7, 10_000, rolled_back())],
            now,
            "inconclusive",
            "no chaos_started",
        ),
        (
            "journal missed events",
            Some(hypothesis(&["api"], None, RecoverFrom::Down)),
            Some(10_000),
            {
                let mut events = quiet;
                events.push(event(
                    3,
                    5_000,
                    EventKind::EventsDropped {
                        subscriber: "journal".into(),
                        missed: 4,
                    },
                ));
                events
            },
            now,
            "inconclusive",
            "missed 4 events",
        ),
    ];
    for (name, hypothesis, ended, events, now, word, fragment) in cases {
        let report = build(&experiment(hypothesis, ended), &events, Timestamp(now));
        assert_eq!(report.verdict.word(), word, "{name}: {:?}", report.verdict);
        let text = serde_json::to_string(&report.verdict).unwrap() + &report.verdict.line();
        assert!(
            text.contains(fragment),
            "{name}: {fragment:?} not in {text}"
        );
    }
}

#[test]
fn probe_times_table() {
    let report = build(
        &experiment(None, Some(10_000)),
        &outage_events(),
        Timestamp(T0 + 200_000),
    );
    let api = &report.probes[0];
    // (what, got, want)
    let cases = [
        ("downs", Some(api.downs as i64), Some(1)),
        ("time to detect", api.time_to_detect_ms, Some(2_000)),
        ("time to act", api.time_to_act_ms, Some(500)),
        ("time to recover", api.time_to_recover_ms, Some(2_000)),
        ("heals", Some(api.heals as i64), Some(1)),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, want, "{what}");
    }
    assert_eq!(api.final_state, FinalState::Moved(ProbeState::Up));
}

#[test]
fn hypothesis_probes_appear_even_when_quiet_and_unrecovered_probes_have_no_ttr() {
    let events = vec![
        event(1, 0, started()),
        event(2, 1_500, transition("db", ProbeState::Up, ProbeState::Down)),
        event(3, 10_000, rolled_back()),
    ];
    let hypothesis = hypothesis(&["api"], None, RecoverFrom::Down);
    let report = build(
        &experiment(Some(hypothesis), Some(10_000)),
        &events,
        Timestamp(T0 + 200_000),
    );
    let names: Vec<&str> = report.probes.iter().map(|p| p.probe.as_str()).collect();
    assert_eq!(names, ["api", "db"]);
    assert_eq!(report.probes[0].final_state, FinalState::Unchanged);
    assert_eq!(report.probes[0].time_to_detect_ms, None);
    assert_eq!(report.probes[1].time_to_detect_ms, Some(1_500));
    assert_eq!(report.probes[1].time_to_recover_ms, None);
    assert_eq!(
        report.probes[1].final_state,
        FinalState::Moved(ProbeState::Down)
    );
}

#[test]
fn timeline_offsets_and_filtering() {
    let mut events = outage_events();
    // another experiment's start and a tenant snapshot stay out; events past the tail too
    events.push(event(
        8,
        5_000,
        EventKind::ChaosStarted {
            experiment: "other".into(),
            profile: None,
            target: "t".into(),
            faults: vec![],
            until: Timestamp(0),
        },
    ));
    events.push(event(
        9,
        10_001,
        EventKind::TenantSnapshot {
            experiment: "x1".into(),
            phase: SnapshotPhase::During,
            window_ms: 10_000,
            total_requests: 0,
            total_errors: 0,
            tenants: vec![],
        },
    ));
    events.push(event(
        10,
        10_000 + TAIL_MS + 1,
        transition("api", ProbeState::Up, ProbeState::Down),
    ));
    let report = build(
        &experiment(None, Some(10_000)),
        &events,
        Timestamp(T0 + 200_000),
    );
    let lines: Vec<(i64, i64, &str)> = report
        .timeline
        .iter()
        .map(|e| (e.event_id, e.offset_ms, e.kind.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (1, 0, "chaos_started"),
            (2, 1_000, "probe_transition"),
            (3, 2_000, "probe_transition"),
            (4, 2_500, "heal_started"),
            (5, 3_000, "probe_transition"),
            (6, 4_000, "probe_transition"),
            (7, 10_000, "chaos_rolled_back"),
        ]
    );
    assert_eq!(report.fault_applied, Some(Timestamp(T0)));
    assert_eq!(report.rollback_trigger, Some(RollbackTrigger::Stop));
}

#[test]
fn tenants_before_and_during_are_joined_by_tenant() {
    let figures = |id: &str, errors: u64, p95: f64| TenantFigures {
        tenant_id: id.into(),
        requests: 100,
        errors,
        error_share: errors as f64 / 10.0,
        p95_ms: Some(p95),
    };
    let snapshot = |phase: SnapshotPhase, tenants: Vec<TenantFigures>| EventKind::TenantSnapshot {
        experiment: "x1".into(),
        phase,
        window_ms: 10_000,
        total_requests: 300,
        total_errors: 10,
        tenants,
    };
    let mut events = outage_events();
    events.push(event(
        8,
        1,
        snapshot(
            SnapshotPhase::Before,
            vec![figures("a", 1, 10.0), figures("b", 0, 12.0)],
        ),
    ));
    events.push(event(
        9,
        10_001,
        snapshot(
            SnapshotPhase::During,
            vec![figures("c", 2, 30.0), figures("a", 8, 900.0)],
        ),
    ));
    let report = build(
        &experiment(None, Some(10_000)),
        &events,
        Timestamp(T0 + 200_000),
    );
    let tenants = report.tenants.unwrap();
    let rows: Vec<(&str, Option<u64>, Option<u64>)> = tenants
        .rows
        .iter()
        .map(|r| {
            (
                r.tenant_id.as_str(),
                r.before.as_ref().map(|f| f.errors),
                r.during.as_ref().map(|f| f.errors),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a", Some(1), Some(8)),
            ("c", None, Some(2)),
            ("b", Some(0), None)
        ]
    );
    assert_eq!(tenants.before.unwrap().window_ms, 10_000);
    // without snapshots there is no tenant section
    let report = build(
        &experiment(None, Some(10_000)),
        &outage_events(),
        Timestamp(T0 + 200_000),
    );
    assert!(report.tenants.is_none());
}

#[test]
fn offsets_read_as_signed_seconds() {
    for (ms, want) in [
        (0, "+0.0s"),
        (2_049, "+2.0s"),
        (-1_500, "-1.5s"),
        (65_000, "+1m 05.0s"),
    ] {
        assert_eq!(verdict::offset_text(ms), want);
    }
}

/// `final_state` is a typed word whose JSON is the word the string-typed field held: a state's
/// name, or "unchanged"; anything else is refused.
#[test]
fn final_state_reads_and_writes_the_words_of_the_string_field() {
    let cases = [
        ("\"unchanged\"", FinalState::Unchanged),
        ("\"up\"", FinalState::Moved(ProbeState::Up)),
        ("\"down\"", FinalState::Moved(ProbeState::Down)),
        ("\"failing\"", FinalState::Moved(ProbeState::Failing)),
        ("\"recovering\"", FinalState::Moved(ProbeState::Recovering)),
        ("\"unknown\"", FinalState::Moved(ProbeState::Unknown)),
    ];
    for (json, state) in cases {
        assert_eq!(serde_json::to_string(&state).unwrap(), json);
        assert_eq!(serde_json::from_str::<FinalState>(json).unwrap(), state);
        assert_eq!(format!("\"{state}\""), json);
    }
    let read: FinalState =
        crate::event::fixture::assert_closed_word("\"unchanged\"", "unchanged", "sideways");
    assert_eq!(read, FinalState::Unchanged);
}

/// The report's `state` is the experiment's typed state; its JSON is the word the string field
/// held, and a word no state has is refused.
#[test]
fn report_state_is_the_experiments_typed_state() {
    let events = vec![event(1, 0, started()), event(2, 10_000, rolled_back())];
    let report = build(
        &experiment(None, Some(10_000)),
        &events,
        Timestamp(T0 + 200_000),
    );
    assert_eq!(report.state, ExperimentState::RolledBack);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"state\":\"rolled_back\""), "{json}");
    let read: ExperimentReport =
        crate::event::fixture::assert_closed_word(&json, "rolled_back", "exploded");
    assert_eq!(read, report);
}
