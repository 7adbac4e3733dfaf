//! `Experiment`: the journaled record of one run (spec, pinned actions, deadline, state,
//! outcome), and `ExperimentView`, what the API shows of it.

use serde::{Deserialize, Serialize};

use super::action::Action;
use super::spec::ExperimentSpec;
use crate::event::Timestamp;
use crate::journal::ExperimentRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentState {
    /// Journaled; the kernel may or may not have been changed yet.
    Pending,
    Active,
    RollingBack,
    RolledBack,
    /// Did not start (refused or failed, partial changes undone).
    Failed,
    /// Rollback could not undo everything: an operator must look.
    RollbackFailed,
    /// Ended because someone else changed its kernel state: what was still ours is undone,
    /// their change is left in place (`chaos_drifted` says what it was).
    Drifted,
}

impl ExperimentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
            Self::RollbackFailed => "rollback_failed",
            Self::Drifted => "drifted",
        }
    }
}

/// A journal row whose body no longer decodes as an [`Experiment`] (the JSON error is its cause).
#[derive(Debug, thiserror::Error)]
#[error("experiment {id}: undecodable journal row: {source}")]
pub struct UndecodableRow {
    pub id: String,
    #[source]
    pub source: serde_json::Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: String,
    pub profile: Option<String>,
    pub spec: ExperimentSpec,
    pub actions: Vec<Action>,
    pub state: ExperimentState,
    pub created: Timestamp,
    pub deadline: Timestamp,
    /// /proc/sys/kernel/random/boot_id when journaled: kernel state does not survive a reboot.
    pub boot_id: String,
    /// What the kernel reported after each apply and rollback step.
    pub log: Vec<String>,
    pub ended: Option<Timestamp>,
    pub outcome: Option<String>,
    /// What each action's change read right after apply (same order as `actions`): what drift
    /// checks and the rollback compare with. Empty in rows of earlier releases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<super::drift::Observed>,
}

impl Experiment {
    pub fn to_row(&self) -> ExperimentRow {
        ExperimentRow {
            id: self.id.clone(),
            created: self.created,
            state: self.state.as_str().to_string(),
            body: serde_json::to_string(self).expect("experiments serialize"),
        }
    }

    pub fn from_row(row: &ExperimentRow) -> Result<Self, UndecodableRow> {
        serde_json::from_str(&row.body).map_err(|source| UndecodableRow {
            id: row.id.clone(),
            source,
        })
    }

    pub fn view(&self) -> ExperimentView {
        let left = self.deadline.as_millis() - Timestamp::now().as_millis();
        ExperimentView {
            id: self.id.clone(),
            profile: self.profile.clone(),
            state: self.state,
            target: self.spec.target.describe(),
            faults: self.spec.faults.iter().map(|f| f.describe()).collect(),
            actions: self.actions.iter().map(Action::describe).collect(),
            created: self.created,
            deadline: self.deadline,
            seconds_left: match self.state {
                ExperimentState::Active | ExperimentState::Pending => (left.max(0) / 1000) as u64,
                _ => 0,
            },
            halt_on: self.spec.halt_on.clone(),
            log: self.log.clone(),
            ended: self.ended,
            outcome: self.outcome.clone(),
        }
    }
}

/// An experiment as `GET /v1/chaos` and `sentinelctl chaos show` present it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentView {
    pub id: String,
    pub profile: Option<String>,
    pub state: ExperimentState,
    pub target: String,
    pub faults: Vec<String>,
    pub actions: Vec<String>,
    pub created: Timestamp,
    pub deadline: Timestamp,
    pub seconds_left: u64,
    pub halt_on: Vec<String>,
    pub log: Vec<String>,
    pub ended: Option<Timestamp>,
    pub outcome: Option<String>,
}

/// This boot's id; empty when unreadable (then every restart counts as the same boot).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_row_keeps_the_json_error() {
        use std::error::Error;
        let row = ExperimentRow {
            id: "x3".into(),
            created: Timestamp::now(),
            state: "active".into(),
            body: "{\"id\":".into(),
        };
        let err = Experiment::from_row(&row).unwrap_err();
        let json = err
            .source()
            .and_then(|s| s.downcast_ref::<serde_json::Error>())
            .expect("the JSON error is the cause");
        assert!(json.is_eof(), "{json}");
        assert_eq!(
            err.to_string(),
            format!("experiment x3: undecodable journal row: {json}")
        );
    }
}
