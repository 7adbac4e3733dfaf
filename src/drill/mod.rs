//! Drills (game days): named sequences of chaos experiments, each with expectations checked
//! against the event bus, ending in pass/fail per expectation with the measured times.
//!
//! # Layout
//! - this file: what a drill is (`Drill`, `Step`, `Expectation`) and `DrillError`.
//! - [`expect`]: the pure verdict of one expectation over a step's events (table-tested).
//! - [`runner`]: `DrillRunner`, which runs steps through the chaos engine, aborts on an
//!   unrelated failure, stop or shutdown, and publishes the `drill_*` events.
//! - [`history`]: runs rebuilt from the journal at start; those a crash interrupted are closed.

pub mod config;
pub mod expect;
pub mod history;
pub mod runner;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chaos::StartRequest;

pub use expect::{evaluate, Verdict};
pub use runner::{DrillRun, DrillRunner, RunState};

#[derive(Debug, Error)]
pub enum DrillError {
    #[error("no drill named \"{0}\" (see sentinelctl drill list)")]
    NoSuchDrill(String),
    #[error("no drill run {0} (see sentinelctl drill list)")]
    NoSuchRun(String),
    #[error("drill {0} is running already; stop it first (sentinelctl drill stop {0})")]
    Busy(String),
    #[error("drill run {0} has already finished")]
    Finished(String),
    /// An `expect` entry that is none of the four shapes (config validation).
    #[error("an expectation is one of {{ probe = NAME, up_within = \"30s\" }}, {{ probe = NAME, stays_up = true }}, {{ tenant_alert = RULE, fires_within = \"60s\" }}, {{ heal = PROBE, within = \"10s\" }}, {{ probe = NAME, down_reason = \"oom\", within = \"30s\" }}")]
    ExpectationShape,
}

/// One `[[drill]]` from the config, already validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    pub name: String,
    pub steps: Vec<Step>,
}

/// One experiment and what must happen while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub experiment: StartRequest,
    pub expect: Vec<Expectation>,
}

/// What a step expects, measured from the moment its faults are in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expectation {
    /// The probe is Up again within `within` (after going Down).
    ProbeUp {
        probe: String,
        #[serde(rename = "within_ms", with = "millis")]
        within: Duration,
    },
    /// The probe does not go Down while the step runs.
    ProbeStaysUp { probe: String },
    /// The tenant alert rule fires (for any tenant) within `within`.
    TenantAlertFires {
        rule: String,
        #[serde(rename = "within_ms", with = "millis")]
        within: Duration,
    },
    /// The probe's heal action finishes successfully within `within`.
    Heal {
        probe: String,
        #[serde(rename = "within_ms", with = "millis")]
        within: Duration,
    },
    /// The probe goes Down for this reason (e.g. `oom`) within `within`.
    ProbeDown {
        probe: String,
        reason: crate::event::FailureReason,
        #[serde(rename = "within_ms", with = "millis")]
        within: Duration,
    },
}

impl Expectation {
    /// "probe sql up within 30s", as the table and the events say it.
    pub fn describe(&self) -> String {
        let human = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            Self::ProbeUp { probe, within } => format!("probe {probe} up within {}", human(within)),
            Self::ProbeStaysUp { probe } => format!("probe {probe} stays up"),
            Self::TenantAlertFires { rule, within } => {
                format!("tenant alert {rule} fires within {}", human(within))
            }
            Self::Heal { probe, within } => format!("heal of {probe} within {}", human(within)),
            Self::ProbeDown {
                probe,
                reason,
                within,
            } => format!("probe {probe} down ({reason}) within {}", human(within)),
        }
    }

    /// The probe this expectation watches (a tenant alert watches none).
    pub fn probe(&self) -> Option<&str> {
        match self {
            Self::ProbeUp { probe, .. }
            | Self::ProbeStaysUp { probe }
            | Self::Heal { probe, .. }
            | Self::ProbeDown { probe, .. } => Some(probe),
            Self::TenantAlertFires { .. } => None,
        }
    }

    /// The time limit, if the expectation has one.
    pub fn limit(&self) -> Option<Duration> {
        match self {
            Self::ProbeUp { within, .. }
            | Self::TenantAlertFires { within, .. }
            | Self::Heal { within, .. }
            | Self::ProbeDown { within, .. } => Some(*within),
            Self::ProbeStaysUp { .. } => None,
        }
    }
}

impl Drill {
    /// Probes the drill's expectations name: they may go Down without aborting the drill.
    pub fn probes(&self) -> Vec<String> {
        let mut probes: Vec<String> = self
            .steps
            .iter()
            .flat_map(|s| s.expect.iter().filter_map(|e| e.probe().map(String::from)))
            .collect();
        probes.sort();
        probes.dedup();
        probes
    }

    /// Tenant alert rules the drill expects to fire.
    pub fn alerts(&self) -> Vec<String> {
        let mut alerts: Vec<String> = self
            .steps
            .iter()
            .flat_map(|s| s.expect.iter())
            .filter_map(|e| match e {
                Expectation::TenantAlertFires { rule, .. } => Some(rule.clone()),
                _ => None,
            })
            .collect();
        alerts.sort();
        alerts.dedup();
        alerts
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
