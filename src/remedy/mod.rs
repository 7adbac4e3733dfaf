//! Graded remedy of a PostgreSQL server that answers but is stuck: cancel runaway queries,
//! end idle transactions and lock-chain heads, each step evidenced, before any restart.
//!
//! The healer drives it (`heal/healer.rs`): it classifies a postgres probe's Down, runs the
//! steps in order within the heal budget, and restarts only a dead server, or an overloaded
//! one with `restart_when_overloaded = true`. This area owns the decision of what is dead, the
//! choice of sessions (`plan.rs`, pure) and the SQL that reads and signals them (`sql.rs`).

pub mod plan;
pub mod sql;

use std::time::Duration;

use thiserror::Error;

pub use plan::{Session, Step, Target};
pub use sql::{Connection, Snapshot};

use crate::event::{FailureReason, RemedyAction, RemedySession};
use crate::probe::{AnyProbe, PostgresProbe, ProbeConfig};

#[derive(Debug, Error)]
pub enum RemedyError {
    #[error("postgres {place}: no connection or login within {within:?}")]
    ConnectTimeout { place: String, within: Duration },
    #[error("postgres {place}: cannot connect: {source}")]
    Connect {
        place: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("postgres {place}: no answer within {within:?}")]
    QueryTimeout { place: String, within: Duration },
    #[error("postgres {place}: {source}")]
    Query {
        place: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// What a postgres probe's Down says about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// No connection or no login within the timeout (refused, timed out, reset, auth): the
    /// heal restarts it.
    Dead,
    /// Logged in, but a query failed, did not finish in time, or gave the wrong answer: the
    /// remedy steps run; a restart only with `restart_when_overloaded = true`.
    Answering,
}

impl Condition {
    /// The postgres probe reports a query that failed or outlasted its deadline as `query`,
    /// and a wrong answer as `assertion`; every other reason means it never got that far.
    pub fn of(reason: Option<FailureReason>) -> Self {
        match reason {
            Some(FailureReason::Query | FailureReason::Assertion) => Self::Answering,
            _ => Self::Dead,
        }
    }
}

/// A postgres probe's remedy: how to reach the server and the steps, in order.
#[derive(Debug, Clone)]
pub struct Remedy {
    pub target: PostgresProbe,
    pub steps: Vec<Step>,
    pub restart_when_overloaded: bool,
}

impl Remedy {
    /// For every postgres probe with a heal (with no steps, it still keeps the restart for a
    /// dead server); `verify_within` is each step's default wait.
    pub fn from_config(
        probe: &ProbeConfig,
        docker: &crate::docker::DockerEngine,
        verify_within: Duration,
    ) -> Option<Self> {
        let AnyProbe::Postgres(target) = AnyProbe::from_config(probe, docker)? else {
            return None;
        };
        probe.heal.as_ref()?;
        let steps = probe
            .remedy
            .as_ref()
            .map(|steps| {
                steps
                    .get_ref()
                    .iter()
                    .filter_map(|step| {
                        Some(Step {
                            action: step.action,
                            threshold: step
                                .older_than
                                .or(step.waiting_longer_than)
                                .map(|d| d.get())?,
                            exclude_roles: step.exclude_roles.clone(),
                            exclude_applications: step.exclude_applications.clone(),
                            verify_within: step.verify_within.map_or(verify_within, |v| v.get()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            target,
            steps,
            restart_when_overloaded: probe
                .restart_when_overloaded
                .as_ref()
                .is_some_and(|r| *r.get_ref()),
        })
    }
}

/// What one step found and did, for its event and its evidence.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub action: RemedyAction,
    pub snapshot: Snapshot,
    pub sessions: Vec<RemedySession>,
}

/// Take the snapshot and pick the step's targets (nothing is signalled yet).
pub async fn survey(
    connection: &Connection,
    step: &Step,
) -> Result<(Snapshot, Vec<Target>), RemedyError> {
    let snapshot = connection.snapshot().await?;
    let targets = step.targets(&snapshot.sessions);
    Ok((snapshot, targets))
}

/// The journal's view of the targets once signalled.
pub fn sessions(targets: &[Target], signalled: &[bool]) -> Vec<RemedySession> {
    targets
        .iter()
        .zip(signalled.iter().copied().chain(std::iter::repeat(false)))
        .map(|(t, signalled)| RemedySession {
            pid: t.session.pid,
            role: t.session.role.clone(),
            application: t.session.application.clone(),
            state: t.session.state.clone(),
            query: t.session.query.clone(),
            for_ms: t.for_ms,
            signalled,
        })
        .collect()
}

/// The bundle files of one step: the two views, and what the step chose from them.
pub fn evidence_files(
    step_number: u32,
    step: &Step,
    snapshot: &Snapshot,
    targets: &[Target],
) -> Vec<(String, Vec<u8>)> {
    let chosen: Vec<serde_json::Value> = targets
        .iter()
        .map(|t| {
            serde_json::json!({
                "pid": t.session.pid,
                "role": t.session.role,
                "application": t.session.application,
                "state": t.session.state,
                "for_ms": t.for_ms,
                "query": t.session.query,
                "blocked_by": t.session.blocked_by,
            })
        })
        .collect();
    let plan = serde_json::json!({
        "step": step_number,
        "action": step.action,
        "threshold_ms": step.threshold.as_millis() as u64,
        "exclude_roles": step.exclude_roles,
        "exclude_applications": step.exclude_applications,
        "targets": chosen,
    });
    vec![
        (
            "pg_stat_activity.json".into(),
            snapshot.activity_json.clone().into_bytes(),
        ),
        (
            "pg_locks.json".into(),
            snapshot.locks_json.clone().into_bytes(),
        ),
        (
            "step.json".into(),
            serde_json::to_vec_pretty(&plan).expect("JSON value serializes"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_or_answering() {
        use FailureReason::*;
        for reason in [Refused, Timeout, Io, Protocol, Auth, Dns] {
            assert_eq!(Condition::of(Some(reason)), Condition::Dead, "{reason}");
        }
        assert_eq!(Condition::of(None), Condition::Dead);
        for reason in [Query, Assertion] {
            assert_eq!(
                Condition::of(Some(reason)),
                Condition::Answering,
                "{reason}"
            );
        }
    }
}
