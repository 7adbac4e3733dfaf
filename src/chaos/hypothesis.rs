//! The steady-state hypothesis an experiment states: probes that must stay Up, or may go Down
//! but must be Up again within a time. Data and validation only; `report::verdict` judges it.

use serde::{Deserialize, Serialize};

use super::spec::SpecError;
use crate::units::HumanDuration;

/// Where `recover_within` is measured from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoverFrom {
    /// The moment the probe went Down (a killed container that a heal restarts).
    #[default]
    Down,
    /// The rollback, or the Down if that came later (a fault that lasts the whole experiment).
    Rollback,
}

impl RecoverFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Rollback => "rollback",
        }
    }
}

/// `hypothesis = { steady_state = ["api"], recover_within = "30s" }` on a profile or spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hypothesis {
    /// Probes that must stay Up for the whole experiment (or, with `recover_within`, recover).
    pub steady_state: Vec<String>,
    /// The probes may go Down, but each must be Up again within this long.
    pub recover_within: Option<HumanDuration>,
    pub recover_from: RecoverFrom,
}

impl Hypothesis {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.steady_state.is_empty() {
            return Err(SpecError::NoSteadyState);
        }
        if self.recover_within.is_some_and(|d| d.get().is_zero()) {
            return Err(SpecError::RecoverWithinZero);
        }
        Ok(())
    }

    /// "api, db stay Up" or "api recovers within 30s of going down".
    pub fn describe(&self) -> String {
        let probes = self.steady_state.join(", ");
        match self.recover_within {
            None => format!("{probes} stay Up"),
            Some(within) => format!(
                "{probes} Up again within {within} of {}",
                match self.recover_from {
                    RecoverFrom::Down => "going down",
                    RecoverFrom::Rollback => "the rollback",
                }
            ),
        }
    }
}
