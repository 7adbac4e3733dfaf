//! `[[drill]]`: named game days, each a list of `[[drill.step]]` (a chaos profile or an inline
//! experiment, plus expectations), validated against the probes, profiles and alert rules.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use super::{Config, HumanDuration, Issue};
use crate::chaos::spec::{ExperimentSpec, Fault, TargetSpec};
use crate::chaos::StartRequest;
use crate::drill::{Drill, Expectation, Step};

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
}

impl ExpectSection {
    fn expectation(&self) -> Result<Expectation, String> {
        let name = |s: &Spanned<String>| s.get_ref().clone();
        match (
            &self.probe,
            &self.tenant_alert,
            &self.heal,
            self.up_within,
            self.stays_up,
            self.fires_within,
            self.within,
        ) {
            (Some(probe), None, None, Some(within), None, None, None) => {
                Ok(Expectation::ProbeUp {
                    probe: name(probe),
                    within: within.get(),
                })
            }
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
            _ => Err("an expectation is one of { probe = NAME, up_within = \"30s\" }, { probe = NAME, stays_up = true }, { tenant_alert = RULE, fires_within = \"60s\" }, { heal = PROBE, within = \"10s\" }".into()),
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

/// Every drill's name is unique, every step names one experiment, every expectation names
/// something configured.
pub(super) fn validate(config: &Config) -> Result<(), Issue> {
    let probes: HashSet<&str> = config.probes.iter().map(|p| p.name()).collect();
    let healing: HashSet<&str> = config
        .probes
        .iter()
        .filter(|p| p.heal.is_some())
        .map(|p| p.name())
        .collect();
    let profiles: HashSet<&str> = config
        .chaos
        .profiles
        .iter()
        .map(|p| p.name.get_ref().as_str())
        .collect();
    let rules: HashSet<&str> = config
        .tenants
        .alerts
        .iter()
        .map(|a| a.name.get_ref().as_str())
        .collect();
    let mut names = HashSet::new();
    for drill in &config.drills {
        let name = drill.name.get_ref();
        if !super::is_plain_name(name) {
            return Err(Issue::at(
                &drill.name,
                format!("invalid drill name \"{name}\": use letters, digits, - _ ."),
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(Issue::at(
                &drill.name,
                format!("duplicate drill \"{name}\""),
            ));
        }
        if drill.steps.get_ref().is_empty() {
            return Err(Issue::at(
                &drill.name,
                format!("drill \"{name}\" needs at least one [[drill.step]]"),
            ));
        }
        for step in drill.steps.get_ref() {
            validate_step(name, step, &profiles, config)?;
            for expect in step.expect.get_ref() {
                let problem = |m: String| format!("drill \"{name}\": {m}");
                let expectation = expect
                    .expectation()
                    .map_err(|m| Issue::at(&step.expect, problem(m)))?;
                let (known, what, spanned) = match (&expectation, expect) {
                    (
                        Expectation::TenantAlertFires { rule, .. },
                        ExpectSection {
                            tenant_alert: Some(s),
                            ..
                        },
                    ) => (
                        rules.contains(rule.as_str()),
                        "no [[tenants.alert]] rule",
                        s,
                    ),
                    (Expectation::Heal { probe, .. }, ExpectSection { heal: Some(s), .. }) => (
                        healing.contains(probe.as_str()),
                        "no probe with a heal action",
                        s,
                    ),
                    (_, ExpectSection { probe: Some(s), .. }) => (
                        probes.contains(s.get_ref().as_str()),
                        "no configured probe",
                        s,
                    ),
                    _ => unreachable!("expectation() checked the shape"),
                };
                if !known {
                    return Err(Issue::at(
                        spanned,
                        problem(format!("\"{}\" names {what}", spanned.get_ref())),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn validate_step(
    name: &str,
    step: &DrillStepSection,
    profiles: &HashSet<&str>,
    config: &Config,
) -> Result<(), Issue> {
    let problem = |m: String| format!("drill \"{name}\": {m}");
    match (&step.profile, &step.faults) {
        (Some(profile), None) => {
            if !profiles.contains(profile.get_ref().as_str()) {
                return Err(Issue::at(
                    profile,
                    problem(format!(
                        "no chaos profile named \"{}\" ([[chaos.profile]])",
                        profile.get_ref()
                    )),
                ));
            }
        }
        (None, Some(faults)) => {
            step.experiment()
                .spec
                .expect("faults given")
                .validate()
                .map_err(|m| Issue::at(faults, problem(m.to_string())))?;
        }
        (Some(profile), Some(_)) => {
            return Err(Issue::at(
                profile,
                problem("a step takes either profile or faults, not both".into()),
            ))
        }
        (None, None) => {
            return Err(Issue::at(
                &step.expect,
                problem("a step needs profile = NAME or inline faults".into()),
            ))
        }
    }
    if let Some(duration) = &step.duration {
        let limit = config.chaos.max_duration;
        if duration.get_ref().get().is_zero() || duration.get_ref().get() > limit.get() {
            return Err(Issue::at(
                duration,
                problem(format!(
                    "duration must be above zero and at most chaos.max_duration ({limit})"
                )),
            ));
        }
    }
    if step.expect.get_ref().is_empty() {
        return Err(Issue::at(
            &step.expect,
            problem("a step needs at least one expectation".into()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::drill::Expectation;

    fn parse(source: &str) -> Result<super::super::Config, String> {
        super::super::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    const BASE: &str = "[[probe]]\nname = \"sql\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nheal = { action = \"exec\", command = [\"true\"] }\n\n[[tenants.alert]]\nname = \"p95\"\nwhen = \"p95\"\nthreshold = 500\n\n[[chaos.profile]]\nname = \"kill\"\ntarget = { container = \"pg\" }\nfaults = [{ kind = \"container\", action = \"kill\" }]\n\n";

    #[test]
    fn a_drill_parses_into_steps_and_expectations() {
        let source = format!(
            "{BASE}[[drill]]\nname = \"gameday\"\n\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{{ probe = \"sql\", up_within = \"30s\" }}, {{ heal = \"sql\", within = \"10s\" }}]\n\n[[drill.step]]\ntarget = {{ interface = \"eth9\" }}\nfaults = [{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }}]\nduration = \"2m\"\nexpect = [{{ tenant_alert = \"p95\", fires_within = \"60s\" }}, {{ probe = \"sql\", stays_up = true }}]\n"
        );
        let config = parse(&source).unwrap();
        let drill = config.drills[0].drill();
        assert_eq!(drill.name, "gameday");
        assert_eq!(drill.steps.len(), 2);
        assert_eq!(drill.steps[0].experiment.profile.as_deref(), Some("kill"));
        assert_eq!(
            drill.steps[0].expect,
            [
                Expectation::ProbeUp {
                    probe: "sql".into(),
                    within: Duration::from_secs(30)
                },
                Expectation::Heal {
                    probe: "sql".into(),
                    within: Duration::from_secs(10)
                }
            ]
        );
        assert!(drill.steps[1].experiment.spec.is_some());
        assert_eq!(drill.probes(), ["sql"]);
        assert_eq!(drill.alerts(), ["p95"]);
    }

    #[test]
    fn the_commented_example_drill_parses_when_uncommented() {
        // The commented block from the profile on: the chaos profile and the drill that runs it.
        let example = super::super::EXAMPLE_CONFIG;
        let start = example
            .find("# [[chaos.profile]]")
            .expect("example profile");
        let (head, tail) = example.split_at(start);
        let uncommented: String = tail
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| !l.starts_with("Drills") && !l.starts_with("`sentinelctl"))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = parse(&format!("{head}{uncommented}")).unwrap();
        let drill = config.drills[0].drill();
        assert_eq!(drill.name, "gameday");
        assert_eq!(
            drill.steps[0].experiment.profile.as_deref(),
            Some("slow-api")
        );
    }

    #[test]
    fn drill_errors_point_at_file_line_column() {
        let at = |line: usize| format!("t.toml:{}:", BASE.lines().count() + line);
        let cases: Vec<(String, String)> = vec![
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"nope\"\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
                format!("{}11: drill \"g\": no chaos profile named \"nope\"", at(4)),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"api\", up_within = \"30s\" }]\n".into(),
                format!("{}21: drill \"g\": \"api\" names no configured probe", at(5)),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ tenant_alert = \"p99\", fires_within = \"1m\" }]\n".into(),
                format!("{}28: drill \"g\": \"p99\" names no [[tenants.alert]] rule", at(5)),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", within = \"1m\" }]\n".into(),
                format!("{}10: drill \"g\": an expectation is one of", at(5)),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", up_whithin = \"1m\" }]\n".into(),
                at(5),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
                format!("{}10: drill \"g\": a step needs profile = NAME or inline faults", at(4)),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
                format!("{}10: drill \"g\": netem needs target.interface", at(4)),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = []\n".into(),
                format!("{}10: drill \"g\": a step needs at least one expectation", at(5)),
            ),
            (
                "[[drill]]\nname = \"g\"\nstep = []\n".into(),
                format!("{}8: drill \"g\" needs at least one [[drill.step]]", at(2)),
            ),
            (
                "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", stays_up = true }]\n[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
                format!("{}8: duplicate drill \"g\"", at(7)),
            ),
        ];
        for (drill, expected) in cases {
            let source = format!("{BASE}{drill}");
            let err = parse(&source).expect_err(&drill);
            assert!(
                err.starts_with(&expected),
                "drill {drill:?}\n  got:  {err}\n  want: {expected}"
            );
        }
    }
}
