//! Lifecycle tests of the engine against a recording host (the real host has its own
//! integration tests): journal-before-apply, undo on failure, deadline, stop, halt, recovery, limits.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::chaos::action::Action;
use crate::chaos::cgroup::CgroupChange;
use crate::chaos::spec::{Fault, TargetSpec};
use crate::event::{Event, ProbeState};

/// Records calls; `apply` checks the experiment row is journaled before any change.
struct FakeHost {
    database: PathBuf,
    calls: Mutex<Vec<String>>,
    fail_apply_on: Option<String>,
}

fn change(name: &str) -> Action {
    Action::Cgroup(CgroupChange {
        dir: PathBuf::from(format!("/fake/{name}")),
        inode: 1,
        apply: vec![("cpu.max".into(), "1000 100000".into())],
        restore: vec![("cpu.max".into(), "max 100000".into())],
    })
}

impl ChaosHost for FakeHost {
    fn plan(
        &self,
        spec: &ExperimentSpec,
        _: Option<&ResolvedContainer>,
    ) -> Result<Vec<Action>, ChaosError> {
        let name = spec.target.cgroup.clone().unwrap_or_default();
        if name == "/refused" {
            return Err(ChaosError::Refused("guardrail".into()));
        }
        Ok(vec![
            change(&format!("{name}/a")),
            change(&format!("{name}/b")),
        ])
    }

    fn apply(&self, action: &Action) -> Result<String, ChaosError> {
        let store = ExperimentStore::open(&self.database).unwrap();
        let journaled = store.unfinished().unwrap();
        assert!(
            !journaled.is_empty(),
            "applied before the intent was journaled"
        );
        let described = action.describe();
        self.calls
            .lock()
            .unwrap()
            .push(format!("apply {described}"));
        match &self.fail_apply_on {
            Some(fail) if described.contains(fail.as_str()) => Err(ChaosError::Kernel {
                what: "apply".into(),
                detail: "boom".into(),
            }),
            _ => Ok("ok".into()),
        }
    }

    fn revert(&self, action: &Action) -> Result<String, ChaosError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("revert {}", action.describe()));
        Ok("ok".into())
    }

    fn orphans(&self, _: &[Action]) -> Vec<Action> {
        Vec::new()
    }

    fn capabilities(&self) -> Vec<Capability> {
        Vec::new()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    engine: ChaosEngine,
    host: Arc<FakeHost>,
    events: broadcast::Receiver<Event>,
    bus: Bus,
}

fn setup(fail_apply_on: Option<&str>, max_concurrent: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(FakeHost {
        database: dir.path().join(crate::journal::DATABASE_FILE),
        calls: Mutex::new(Vec::new()),
        fail_apply_on: fail_apply_on.map(str::to_string),
    });
    let bus = Bus::new();
    let events = bus.subscribe();
    let settings = ChaosSettings {
        profiles: vec![Profile {
            name: "cpu".into(),
            spec: spec("/app", &["probe:api"]),
            duration: HumanDuration::from_secs(3600),
        }],
        max_duration: Duration::from_secs(7200),
        max_concurrent,
        default_duration: Duration::from_secs(60),
        drift_check: Duration::ZERO,
    };
    let engine = ChaosEngine::open(
        dir.path(),
        host.clone(),
        settings,
        bus.clone(),
        DockerEngine::new(Path::new("/nonexistent.sock")),
    )
    .unwrap();
    Setup {
        _dir: dir,
        engine,
        host,
        events,
        bus,
    }
}

fn spec(cgroup: &str, halt_on: &[&str]) -> ExperimentSpec {
    ExperimentSpec {
        faults: vec![Fault::CpuQuota(crate::chaos::spec::CpuQuota {
            cpus: 0.5,
            period: "100ms".parse().unwrap(),
        })],
        target: TargetSpec {
            cgroup: Some(cgroup.into()),
            ..Default::default()
        },
        force: false,
        allow_default_route: false,
        halt_on: halt_on.iter().map(|s| s.to_string()).collect(),
        hypothesis: None,
    }
}

fn adhoc(cgroup: &str, duration: &str) -> StartRequest {
    StartRequest {
        profile: None,
        spec: Some(spec(cgroup, &[])),
        duration: Some(duration.parse().unwrap()),
    }
}

/// What the fake host sees for `adhoc("/app", ..)` applied to both of its cgroups (a, b), then
/// undone in reverse order.
const BOTH_APPLIED_THEN_REVERTED: [&str; 4] = [
    "apply /fake//app/a cpu.max=1000 100000",
    "apply /fake//app/b cpu.max=1000 100000",
    "revert /fake//app/b cpu.max=1000 100000",
    "revert /fake//app/a cpu.max=1000 100000",
];

fn calls(host: &FakeHost) -> Vec<String> {
    host.calls.lock().unwrap().clone()
}

async fn next_chaos_event(events: &mut broadcast::Receiver<Event>) -> EventKind {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event within 10s")
            .unwrap();
        if event.kind.name().starts_with("chaos_") {
            return event.kind;
        }
    }
}

#[tokio::test]
async fn stop_rolls_back_in_reverse_order_and_journals_each_state() {
    let mut s = setup(None, 4);
    let view = s.engine.start(adhoc("/app", "1h")).await.unwrap();
    assert_eq!(view.state, ExperimentState::Active);
    assert!(matches!(
        next_chaos_event(&mut s.events).await,
        EventKind::ChaosStarted { .. }
    ));
    let stopped = s.engine.stop(&view.id).await.unwrap();
    assert_eq!(stopped.state, ExperimentState::RolledBack);
    assert_eq!(stopped.outcome.as_deref(), Some("stop"));
    assert_eq!(calls(&s.host), BOTH_APPLIED_THEN_REVERTED);
    match next_chaos_event(&mut s.events).await {
        EventKind::ChaosRolledBack { trigger, ok, .. } => {
            assert_eq!((trigger, ok), (RollbackTrigger::Stop, true))
        }
        other => panic!("{other:?}"),
    }
    // stopping twice says it is not running
    assert!(matches!(
        s.engine.stop(&view.id).await,
        Err(ChaosError::NoSuchExperiment(_))
    ));
}

#[tokio::test]
async fn a_failed_apply_undoes_what_was_attempted_and_is_an_abort() {
    let mut s = setup(Some("/b"), 4);
    let err = s.engine.start(adhoc("/app", "1h")).await.unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert_eq!(calls(&s.host), BOTH_APPLIED_THEN_REVERTED);
    assert!(matches!(
        next_chaos_event(&mut s.events).await,
        EventKind::ChaosAborted { .. }
    ));
    let listed = s.engine.list().await.unwrap();
    assert_eq!(listed[0].state, ExperimentState::Failed);
}

#[tokio::test]
async fn refusals_before_any_change() {
    let s = setup(None, 1);
    let refused = s.engine.start(adhoc("/refused", "1m")).await.unwrap_err();
    assert!(matches!(refused, ChaosError::Refused(_)), "{refused}");
    let too_long = s.engine.start(adhoc("/app", "3h")).await.unwrap_err();
    assert!(
        too_long.to_string().contains("exceeds max_duration 2h"),
        "{too_long}"
    );
    let unknown = StartRequest {
        profile: Some("nope".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.engine.start(unknown).await,
        Err(ChaosError::NoSuchProfile(_))
    ));
    assert!(calls(&s.host).is_empty());

    s.engine.start(adhoc("/app", "1h")).await.unwrap();
    let second = s.engine.start(adhoc("/other", "1h")).await.unwrap_err();
    assert!(
        second.to_string().contains("max_concurrent = 1"),
        "{second}"
    );
    s.engine.shutdown().await;
}

#[tokio::test]
async fn deadline_rolls_back_on_its_own() {
    let mut s = setup(None, 4);
    s.engine.start(adhoc("/app", "50ms")).await.unwrap();
    next_chaos_event(&mut s.events).await;
    match next_chaos_event(&mut s.events).await {
        EventKind::ChaosRolledBack { trigger, .. } => {
            assert_eq!(trigger, RollbackTrigger::Deadline)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls(&s.host).len(), 4);
}

#[tokio::test]
async fn a_halt_probe_going_down_aborts_and_rolls_back() {
    let mut s = setup(None, 4);
    let cancel = CancellationToken::new();
    let watcher = s.engine.watch_halts(cancel.clone());
    let start = StartRequest {
        profile: Some("cpu".into()),
        ..Default::default()
    };
    let view = s.engine.start(start).await.unwrap();
    next_chaos_event(&mut s.events).await;
    let transition = |probe: &str, to: ProbeState| EventKind::ProbeTransition {
        probe: probe.into(),
        from: ProbeState::Up,
        to,
        reason: None,
        status_code: None,
        latency_ms: None,
        recoveries_total: 0,
    };
    s.bus.publish(transition("other", ProbeState::Down));
    s.bus.publish(transition("api", ProbeState::Down));
    match next_chaos_event(&mut s.events).await {
        EventKind::ChaosAborted { reason, .. } => assert_eq!(reason, "probe api went down"),
        other => panic!("{other:?}"),
    }
    match next_chaos_event(&mut s.events).await {
        EventKind::ChaosRolledBack { trigger, .. } => assert_eq!(trigger, RollbackTrigger::Halt),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.engine.show(&view.id).await.unwrap().outcome.as_deref(),
        Some("halted: probe api went down")
    );
    cancel.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn recovery_rolls_back_what_a_crash_left_active() {
    let s = setup(None, 4);
    // what a killed daemon leaves: an active row, no task
    let crashed = Experiment {
        id: "xcrashed".into(),
        profile: None,
        spec: spec("/app", &[]),
        actions: vec![change("left")],
        state: ExperimentState::Active,
        created: Timestamp(1),
        deadline: Timestamp(2),
        boot_id: boot_id(),
        log: vec![],
        ended: None,
        outcome: None,
        baseline: vec![],
    };
    ExperimentStore::open(&s.host.database)
        .unwrap()
        .put(&crashed.to_row())
        .unwrap();
    let recovered = s.engine.recover().await;
    assert_eq!(recovered.ids(), ["xcrashed"]);
    assert!(recovered.is_clean(), "{recovered:?}");
    assert_eq!(calls(&s.host), ["revert /fake/left cpu.max=1000 100000"]);
    let view = s.engine.show("xcrashed").await.unwrap();
    assert_eq!(
        (view.state, view.outcome.as_deref()),
        (ExperimentState::RolledBack, Some("recovery"))
    );
    // a second start finds nothing left to do
    assert!(s.engine.recover().await.is_empty());
}
