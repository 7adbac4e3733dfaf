//! Drills (game days): named sequences of chaos experiments, each with expectations checked
//! against the event bus, ending in pass/fail per expectation with the measured times.
//!
//! # Layout
//! - this file: what a drill is (`Drill`, `Step`, `Expectation`) and `DrillError`.
//! - [`expect`]: the pure verdict of one expectation over a step's events (table-tested).
//! - [`runner`]: `DrillRunner`, which runs steps through the chaos engine, aborts on an
//!   unrelated failure, stop or shutdown, and publishes the `drill_*` events.
//! - [`history`]: runs rebuilt from the journal at start; those a crash interrupted are closed.
//! - [`schedule`]: the scheduler that starts `schedule = "<cron>"` drills on time, never in a
//!   maintenance window over their probes, never on top of a running drill, never in a burst.
//! - [`trend`]: detect / act / recover times over a drill's last runs, their p50 and direction.

pub mod config;
pub mod expect;
pub mod history;
pub mod runner;
pub mod schedule;
pub mod trend;

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
    /// A step could not take the picked target (its experiment did not read back).
    #[error("drill {drill}: the step's experiment does not take target \"{target}\": {source}")]
    Target {
        drill: String,
        target: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read the journal for drill runs: {0}")]
    Journal(#[source] crate::journal::JournalError),
}

/// What a drill's steps write where the picked target goes: `{ container = "{target}" }`,
/// `{ probe = "{target}", up_within = "30s" }`.
pub const TARGET_PLACEHOLDER: &str = "{target}";

/// `objective = { recover_within = "30s" }`: bounds on a run's times; a run slower than any
/// of them alerts like an outage (`drill_objective_checked`, verdict missed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_within_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_within_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_within_ms: Option<u64>,
}

/// A run's times, in milliseconds from the moment a step's faults were in place: to the first
/// Down of a probe the step watches (detect), its first successful heal (act) and its recovery
/// (recover: every watched probe that went Down is Up again). Over several steps, the slowest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub detect_ms: Option<u64>,
    pub act_ms: Option<u64>,
    pub recover_ms: Option<u64>,
}

impl Timings {
    /// The slower of two steps' times, field by field.
    pub fn slowest(self, other: Timings) -> Timings {
        let max = |a: Option<u64>, b: Option<u64>| a.max(b);
        Timings {
            detect_ms: max(self.detect_ms, other.detect_ms),
            act_ms: max(self.act_ms, other.act_ms),
            recover_ms: max(self.recover_ms, other.recover_ms),
        }
    }
}

impl Objective {
    /// "recover within 30s, detect within 5s".
    pub fn describe(&self) -> String {
        let human = |ms: u64| humantime::format_duration(Duration::from_millis(ms)).to_string();
        [
            ("detect", self.detect_within_ms),
            ("act", self.act_within_ms),
            ("recover", self.recover_within_ms),
        ]
        .into_iter()
        .filter_map(|(what, ms)| ms.map(|ms| format!("{what} within {}", human(ms))))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Met when every bound set holds; a time not measured (never went down, never
    /// recovered during the run) misses its bound. The detail names each miss.
    pub fn judge(&self, times: &Timings) -> (bool, String) {
        let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        let mut misses = Vec::new();
        let mut seen = Vec::new();
        for (what, limit, measured) in [
            ("detect", self.detect_within_ms, times.detect_ms),
            ("act", self.act_within_ms, times.act_ms),
            ("recover", self.recover_within_ms, times.recover_ms),
        ] {
            let Some(limit) = limit else { continue };
            match measured {
                Some(ms) if ms <= limit => seen.push(format!("{what} {}", seconds(ms))),
                Some(ms) => misses.push(format!(
                    "{what} took {}, over {}",
                    seconds(ms),
                    seconds(limit)
                )),
                None => misses.push(format!("{what} not seen during the run")),
            }
        }
        match misses.is_empty() {
            true => (true, seen.join(", ")),
            false => (false, misses.join("; ")),
        }
    }
}

/// One `[[drill]]` from the config, already validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    pub name: String,
    pub steps: Vec<Step>,
    /// Cron expression (5 fields, or 6 with seconds first) the scheduler starts runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA zone the schedule is read in (UTC when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Each run picks one at random; [`TARGET_PLACEHOLDER`] in its steps stands for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
}

/// One experiment and what must happen while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub experiment: StartRequest,
    pub expect: Vec<Expectation>,
}

impl Step {
    /// The probes this step's expectations name (what its times are measured on).
    pub fn watched_probes(&self) -> Vec<String> {
        let mut probes: Vec<String> = self
            .expect
            .iter()
            .filter_map(|e| e.probe().map(String::from))
            .collect();
        probes.sort();
        probes.dedup();
        probes
    }
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
    /// This drill with `target` written wherever its steps say [`TARGET_PLACEHOLDER`] (in
    /// every string of the experiment and in the expectations' probe and rule names).
    pub fn for_target(&self, target: &str) -> Result<Drill, DrillError> {
        let mut drill = self.clone();
        for step in &mut drill.steps {
            let mut value =
                serde_json::to_value(&step.experiment).map_err(|source| DrillError::Target {
                    drill: self.name.clone(),
                    target: target.to_string(),
                    source,
                })?;
            substitute(&mut value, target);
            step.experiment =
                serde_json::from_value(value).map_err(|source| DrillError::Target {
                    drill: self.name.clone(),
                    target: target.to_string(),
                    source,
                })?;
            for expectation in &mut step.expect {
                match expectation {
                    Expectation::ProbeUp { probe, .. }
                    | Expectation::ProbeStaysUp { probe }
                    | Expectation::Heal { probe, .. }
                    | Expectation::ProbeDown { probe, .. } => *probe = with_target(probe, target),
                    Expectation::TenantAlertFires { rule, .. } => *rule = with_target(rule, target),
                }
            }
        }
        Ok(drill)
    }

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

/// `text` with [`TARGET_PLACEHOLDER`] replaced by `target`.
pub fn with_target(text: &str, target: &str) -> String {
    text.replace(TARGET_PLACEHOLDER, target)
}

fn substitute(value: &mut serde_json::Value, target: &str) {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains(TARGET_PLACEHOLDER) => {
            *text = with_target(text, target)
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, target)),
        Value::Object(fields) => fields.values_mut().for_each(|v| substitute(v, target)),
        _ => {}
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
