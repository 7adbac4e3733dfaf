//! `[[drill]]`: named game days, each a list of `[[drill.step]]` (a chaos profile or an inline
//! experiment, plus expectations), validated against the probes, profiles and alert rules;
//! optionally a `schedule` (cron), `targets` to pick from per run, and an `objective`.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use crate::chaos::spec::{ExperimentSpec, Fault, TargetSpec};
use crate::chaos::StartRequest;
use crate::drill::{
    with_target, Drill, DrillError, Expectation, Objective, Step, TARGET_PLACEHOLDER,
};
use crate::maintenance::schedule::{parse_zone, Schedule};
use crate::units::{is_plain_name, HumanDuration, Issue};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSection {
    pub name: Spanned<String>,
    #[serde(rename = "step")]
    pub steps: Spanned<Vec<DrillStepSection>>,
    /// Cron expression the scheduler starts runs on: five fields, or six with seconds first.
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone the schedule is read in; default UTC.
    pub timezone: Option<Spanned<String>>,
    /// One is picked at random per run; `{target}` in the steps stands for it.
    pub targets: Option<Spanned<Vec<String>>>,
    pub objective: Option<Spanned<ObjectiveSection>>,
}

/// `objective = { recover_within = "30s" }` (and/or `detect_within`, `act_within`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSection {
    pub detect_within: Option<HumanDuration>,
    pub act_within: Option<HumanDuration>,
    pub recover_within: Option<HumanDuration>,
}

impl ObjectiveSection {
    fn objective(&self) -> Objective {
        let ms = |d: Option<HumanDuration>| d.map(|d| d.get().as_millis() as u64);
        Objective {
            detect_within_ms: ms(self.detect_within),
            act_within_ms: ms(self.act_within),
            recover_within_ms: ms(self.recover_within),
        }
    }
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
            schedule: self.schedule.as_ref().map(|s| s.get_ref().clone()),
            timezone: self.timezone.as_ref().map(|z| z.get_ref().clone()),
            targets: self
                .targets
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_default(),
            objective: self.objective.as_ref().map(|o| o.get_ref().objective()),
        }
    }

    /// The targets a run may pick: the listed ones, or one run with no target.
    fn picks(&self) -> Vec<Option<&str>> {
        match &self.targets {
            Some(targets) => targets.get_ref().iter().map(|t| Some(t.as_str())).collect(),
            None => vec![None],
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
    validate_extras(drill)?;
    let picks = drill.picks();
    for (s, step) in drill.steps.get_ref().iter().enumerate() {
        let step_key = format!("step[{s}]");
        for target in &picks {
            validate_step(name, step, known, *target)
                .map_err(|issue| issue.within(step_key.as_str()))?;
        }
        for (e, expect) in step.expect.get_ref().iter().enumerate() {
            let key = |field: &str| format!("{step_key}.expect[{e}].{field}");
            let problem = |m: String| format!("drill \"{name}\": {m}");
            let expectation = expect.expectation().map_err(|m| {
                Issue::at(format!("{step_key}.expect[{e}]"), problem(m.to_string()))
            })?;
            let (set, what, field, spanned) = match (&expectation, expect) {
                (
                    Expectation::TenantAlertFires { .. },
                    ExpectSection {
                        tenant_alert: Some(s),
                        ..
                    },
                ) => (
                    &known.alert_rules,
                    "no [[tenants.alert]] rule",
                    "tenant_alert",
                    s,
                ),
                (Expectation::Heal { .. }, ExpectSection { heal: Some(s), .. }) => {
                    (&known.healing, "no probe with a heal action", "heal", s)
                }
                (_, ExpectSection { probe: Some(s), .. }) => {
                    (&known.probes, "no configured probe", "probe", s)
                }
                _ => unreachable!("expectation() checked the shape"),
            };
            for target in &picks {
                let written = spanned.get_ref();
                let named = target.map_or_else(|| written.clone(), |t| with_target(written, t));
                if !set.contains(named.as_str()) {
                    let via = match target {
                        Some(t) if named != *written => {
                            format!(" (\"{written}\" with target \"{t}\")")
                        }
                        _ => String::new(),
                    };
                    return Err(Issue::at(
                        key(field),
                        problem(format!("\"{named}\"{via} names {what}")),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `schedule`, `timezone`, `targets` and `objective`; keys are relative to the drill.
fn validate_extras(drill: &DrillSection) -> Result<(), Issue> {
    let name = drill.name.get_ref();
    let problem = |m: String| format!("drill \"{name}\": {m}");
    if let Some(schedule) = &drill.schedule {
        let zone = drill
            .timezone
            .as_ref()
            .map_or("UTC", |z| z.get_ref().as_str());
        parse_zone(zone)
            .map_err(|err| Issue::at("timezone", problem(err.to_string())).because(err))?;
        Schedule::instants(schedule.get_ref(), zone).map_err(|err| {
            Issue::at(
                "schedule",
                problem(format!(
                    "{err} (five fields: minute hour day-of-month month day-of-week, or six with seconds first, e.g. \"0 3 * * MON\")"
                )),
            )
            .because(err)
        })?;
    } else if drill.timezone.is_some() {
        return Err(Issue::at(
            "timezone",
            problem("timezone needs a schedule = \"<cron>\"".into()),
        ));
    }
    let steps_text = serde_json::to_string(&drill.drill().steps).unwrap_or_default();
    match &drill.targets {
        Some(targets) => {
            let list = targets.get_ref();
            if list.is_empty() {
                return Err(Issue::at(
                    "targets",
                    problem("targets lists at least one target".into()),
                ));
            }
            let mut seen = HashSet::new();
            for target in list {
                if target.trim().is_empty() || target.contains(TARGET_PLACEHOLDER) {
                    return Err(Issue::at(
                        "targets",
                        problem(format!("invalid target \"{target}\"")),
                    ));
                }
                if !seen.insert(target.as_str()) {
                    return Err(Issue::at(
                        "targets",
                        problem(format!("target \"{target}\" is listed twice")),
                    ));
                }
            }
            if !steps_text.contains(TARGET_PLACEHOLDER) {
                return Err(Issue::at(
                    "targets",
                    problem(format!(
                        "targets are listed but no step says {TARGET_PLACEHOLDER} where the picked one goes"
                    )),
                ));
            }
        }
        None if steps_text.contains(TARGET_PLACEHOLDER) => {
            return Err(Issue::at(
                "name",
                problem(format!(
                    "a step says {TARGET_PLACEHOLDER} but the drill lists no targets = [...]"
                )),
            ));
        }
        None => {}
    }
    if let Some(objective) = &drill.objective {
        let section = objective.get_ref();
        let bounds = [
            section.detect_within,
            section.act_within,
            section.recover_within,
        ];
        if bounds.iter().all(Option::is_none) {
            return Err(Issue::at(
                "objective",
                problem(
                    "objective sets at least one of detect_within, act_within, recover_within"
                        .into(),
                ),
            ));
        }
        if bounds.iter().flatten().any(|d| d.get().is_zero()) {
            return Err(Issue::at(
                "objective",
                problem("objective bounds are above zero".into()),
            ));
        }
        let waits_for_recovery = drill.steps.get_ref().iter().any(|step| {
            step.expect
                .get_ref()
                .iter()
                .any(|e| e.probe.is_some() && e.up_within.is_some())
        });
        if !waits_for_recovery {
            return Err(Issue::at(
                "objective",
                problem("an objective needs a step expecting { probe = NAME, up_within = \"...\" }: only then does the run last until the recovery it times".into()),
            ));
        }
    }
    Ok(())
}

/// Checks one `[[drill.step]]`; keys are relative to it.
fn validate_step(
    name: &str,
    step: &DrillStepSection,
    known: &DrillContext,
    target: Option<&str>,
) -> Result<(), Issue> {
    let problem = |m: String| match target {
        Some(target) => format!("drill \"{name}\" (target \"{target}\"): {m}"),
        None => format!("drill \"{name}\": {m}"),
    };
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
            let mut experiment = step.experiment();
            if let Some(target) = target {
                let drill = Drill {
                    name: name.to_string(),
                    steps: vec![Step {
                        experiment,
                        expect: Vec::new(),
                    }],
                    schedule: None,
                    timezone: None,
                    targets: Vec::new(),
                    objective: None,
                };
                let picked = drill
                    .for_target(target)
                    .map_err(|m| Issue::at("target", problem(m.to_string())).because(m))?;
                experiment = picked.steps[0].experiment.clone();
            }
            experiment
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
