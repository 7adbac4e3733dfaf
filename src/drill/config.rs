//! `[[drill]]`: named game days, each a list of `[[drill.step]]` (a chaos profile or an inline
//! experiment, plus expectations), validated against the probes, profiles and alert rules.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use crate::chaos::spec::{ExperimentSpec, Fault, TargetSpec};
use crate::chaos::StartRequest;
use crate::drill::{Drill, DrillError, Expectation, Step};
use crate::units::{is_plain_name, HumanDuration, Issue};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSection {
    pub name: Spanned<String>,
    #[serde(rename = "step")]
    pub steps: Spanned<Vec<DrillStepSection>>,
}

/// One step: `profile = "kill-postgres"`, or inline `faults` + `target` like a chaos profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillStepSection {
    pub profile: Option<Spanned<String>>,
    pub faults: Option<Spanned<Vec<Fault>>>,
    #[serde(default)]
    pub target: TargetSpec,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub allow_default_route: bool,
    /// How long the experiment may last at most (the profile's duration otherwise).
    pub duration: Option<Spanned<HumanDuration>>,
    pub expect: Spanned<Vec<ExpectSection>>,
}

/// `{ probe = "sql", up_within = "30s" }`, `{ probe = "api", stays_up = true }`,
/// `{ tenant_alert = "p95", fires_within = "60s" }` or `{ heal = "sql", within = "10s" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSection {
    pub probe: Option<Spanned<String>>,
    pub up_within: Option<HumanDuration>,
    pub stays_up: Option<bool>,
    pub tenant_alert: Option<Spanned<String>>,
    pub fires_within: Option<HumanDuration>,
    pub heal: Option<Spanned<String>>,
    pub within: Option<HumanDuration>,
    /// `{ probe = NAME, down_reason = "oom", within = "30s" }`: Down for that reason in time.
    pub down_reason: Option<crate::event::FailureReason>,
}

impl ExpectSection {
    fn expectation(&self) -> Result<Expectation, DrillError> {
        let name = |s: &Spanned<String>| s.get_ref().clone();
        if let Some(reason) = self.down_reason {
            return match (
                &self.probe,
                &self.tenant_alert,
                &self.heal,
                self.up_within,
                self.stays_up,
                self.fires_within,
                self.within,
            ) {
                (Some(probe), None, None, None, None, None, Some(within)) => {
                    Ok(Expectation::ProbeDown {
                        probe: name(probe),
                        reason,
                        within: within.get(),
                    })
                }
                _ => Err(DrillError::ExpectationShape),
            };
        }
        match (
            &self.probe,
            &self.tenant_alert,
            &self.heal,
            self.up_within,
            self.stays_up,
            self.fires_within,
            self.within,
        ) {
            (Some(probe), None, None, Some(within), None, None, None) => Ok(Expectation::ProbeUp {
                probe: name(probe),
                within: within.get(),
            }),
            (Some(probe), None, None, None, Some(true), None, None) => {
                Ok(Expectation::ProbeStaysUp { probe: name(probe) })
            }
            (None, Some(rule), None, None, None, Some(within), None) => {
                Ok(Expectation::TenantAlertFires {
                    rule: name(rule),
                    within: within.get(),
                })
            }
            (None, None, Some(probe), None, None, None, Some(within)) => Ok(Expectation::Heal {
                probe: name(probe),
                within: within.get(),
            }),
            _ => Err(DrillError::ExpectationShape),
        }
    }
}

impl DrillStepSection {
    fn experiment(&self) -> StartRequest {
        let spec = self.faults.as_ref().map(|faults| ExperimentSpec {
            faults: faults.get_ref().clone(),
            target: self.target.clone(),
            force: self.force,
            allow_default_route: self.allow_default_route,
            halt_on: Vec::new(),
            hypothesis: None,
        });
        StartRequest {
            profile: self.profile.as_ref().map(|p| p.get_ref().clone()),
            spec,
            duration: self.duration.as_ref().map(|d| *d.get_ref()),
        }
    }
}

impl DrillSection {
    /// The drill as the runner uses it; call after validation.
    pub fn drill(&self) -> Drill {
        Drill {
            name: self.name.get_ref().clone(),
            steps: self
                .steps
                .get_ref()
                .iter()
                .map(|step| Step {
                    experiment: step.experiment(),
                    expect: step
                        .expect
                        .get_ref()
                        .iter()
                        .filter_map(|e| e.expectation().ok())
                        .collect(),
                })
                .collect(),
        }
    }
}

/// What drills may name: the rest of the config, gathered by the loader.
#[derive(Debug)]
pub struct DrillContext<'a> {
    /// Every configured probe.
    pub probes: HashSet<&'a str>,
    /// Probes with a heal action.
    pub healing: HashSet<&'a str>,
    /// `[[chaos.profile]]` names.
    pub profiles: HashSet<&'a str>,
    /// `[[tenants.alert]]` names.
    pub alert_rules: HashSet<&'a str>,
    /// `chaos.max_duration`.
    pub max_duration: HumanDuration,
}

/// Every drill's name is unique, every step names one experiment, every expectation names
/// something configured. Keys are relative to the drill list (`[0].step[1].expect`).
pub fn validate_drills(drills: &[DrillSection], known: &DrillContext) -> Result<(), Issue> {
    let mut names = HashSet::new();
    for (d, drill) in drills.iter().enumerate() {
        validate_drill(drill, known).map_err(|issue| issue.within(format!("[{d}]")))?;
        let name = drill.name.get_ref();
        if !names.insert(name.as_str()) {
            return Err(Issue::at(
                format!("[{d}].name"),
                format!("duplicate drill \"{name}\""),
            ));
        }
    }
    Ok(())
}

fn validate_drill(drill: &DrillSection, known: &DrillContext) -> Result<(), Issue> {
    let name = drill.name.get_ref();
    if !is_plain_name(name) {
        return Err(Issue::at(
            "name",
            format!("invalid drill name \"{name}\": use letters, digits, - _ ."),
        ));
    }
    if drill.steps.get_ref().is_empty() {
        return Err(Issue::at(
            "step",
            format!("drill \"{name}\" needs at least one [[drill.step]]"),
        )
        .or_at("name"));
    }
    for (s, step) in drill.steps.get_ref().iter().enumerate() {
        let step_key = format!("step[{s}]");
        validate_step(name, step, known).map_err(|issue| issue.within(step_key.as_str()))?;
        for (e, expect) in step.expect.get_ref().iter().enumerate() {
            let key = |field: &str| format!("{step_key}.expect[{e}].{field}");
            let problem = |m: String| format!("drill \"{name}\": {m}");
            let expectation = expect.expectation().map_err(|m| {
                Issue::at(format!("{step_key}.expect[{e}]"), problem(m.to_string()))
            })?;
            let (found, what, field, spanned) = match (&expectation, expect) {
                (
                    Expectation::TenantAlertFires { rule, .. },
                    ExpectSection {
                        tenant_alert: Some(s),
                        ..
                    },
                ) => (
                    known.alert_rules.contains(rule.as_str()),
                    "no [[tenants.alert]] rule",
                    "tenant_alert",
                    s,
                ),
                (Expectation::Heal { probe, .. }, ExpectSection { heal: Some(s), .. }) => (
                    known.healing.contains(probe.as_str()),
                    "no probe with a heal action",
                    "heal",
                    s,
                ),
                (_, ExpectSection { probe: Some(s), .. }) => (
                    known.probes.contains(s.get_ref().as_str()),
                    "no configured probe",
                    "probe",
                    s,
                ),
                _ => unreachable!("expectation() checked the shape"),
            };
            if !found {
                return Err(Issue::at(
                    key(field),
                    problem(format!("\"{}\" names {what}", spanned.get_ref())),
                ));
            }
        }
    }
    Ok(())
}

/// Checks one `[[drill.step]]`; keys are relative to it.
fn validate_step(name: &str, step: &DrillStepSection, known: &DrillContext) -> Result<(), Issue> {
    let problem = |m: String| format!("drill \"{name}\": {m}");
    match (&step.profile, &step.faults) {
        (Some(profile), None) => {
            if !known.profiles.contains(profile.get_ref().as_str()) {
                return Err(Issue::at(
                    "profile",
                    problem(format!(
                        "no chaos profile named \"{}\" ([[chaos.profile]])",
                        profile.get_ref()
                    )),
                ));
            }
        }
        (None, Some(_)) => {
            step.experiment()
                .spec
                .expect("faults given")
                .validate()
                .map_err(|m| Issue::at("faults", problem(m.to_string())).because(m))?;
        }
        (Some(_), Some(_)) => {
            return Err(Issue::at(
                "profile",
                problem("a step takes either profile or faults, not both".into()),
            ))
        }
        (None, None) => {
            return Err(Issue::at(
                "expect",
                problem("a step needs profile = NAME or inline faults".into()),
            ))
        }
    }
    if let Some(duration) = &step.duration {
        let limit = known.max_duration;
        if duration.get_ref().get().is_zero() || duration.get_ref().get() > limit.get() {
            return Err(Issue::at(
                "duration",
                problem(format!(
                    "duration must be above zero and at most chaos.max_duration ({limit})"
                )),
            ));
        }
    }
    if step.expect.get_ref().is_empty() {
        return Err(Issue::at(
            "expect",
            problem("a step needs at least one expectation".into()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `expect` entry of no known shape is the drill area's typed refusal, worded as the
    /// config error shows it.
    #[test]
    fn an_expectation_of_no_shape_is_a_drill_error() {
        let section: ExpectSection = toml::from_str("probe = \"api\"\nwithin = \"10s\"").unwrap();
        let err = section.expectation().unwrap_err();
        assert!(matches!(err, DrillError::ExpectationShape), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("an expectation is one of { probe = NAME, up_within = \"30s\" }"),
            "{err}"
        );
    }

    #[test]
    fn a_down_reason_takes_a_probe_and_within_and_nothing_else() {
        let section: ExpectSection =
            toml::from_str("probe = \"web\"\ndown_reason = \"oom\"\nwithin = \"30s\"").unwrap();
        assert_eq!(
            section.expectation().unwrap(),
            Expectation::ProbeDown {
                probe: "web".into(),
                reason: crate::event::FailureReason::Oom,
                within: std::time::Duration::from_secs(30),
            }
        );
        let section: ExpectSection =
            toml::from_str("probe = \"web\"\ndown_reason = \"oom\"\nup_within = \"30s\"").unwrap();
        assert!(matches!(
            section.expectation(),
            Err(DrillError::ExpectationShape)
        ));
        let err = toml::from_str::<ExpectSection>(
            "probe = \"web\"\ndown_reason = \"oops\"\nwithin = \"3s\"",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `oops`"), "{err}");
    }
}
