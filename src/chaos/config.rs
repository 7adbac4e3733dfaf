//! The `[chaos]` section: limits every experiment obeys and the `[[chaos.profile]]` list of
//! named, reusable experiments (faults + target + default duration), validated with file:line:col.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::chaos::spec::{ExperimentSpec, Fault, TargetSpec};
use crate::chaos::Hypothesis;
use crate::chaos::{ChaosSettings, Profile};
use crate::units::{is_plain_name, HumanDuration, Issue};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChaosSection {
    /// No experiment may last longer, whatever a profile or request says.
    pub max_duration: HumanDuration,
    /// Experiments running at once; more are refused.
    pub max_concurrent: usize,
    /// Duration of an ad-hoc experiment (API) that does not give one.
    pub default_duration: HumanDuration,
    /// Major number of the handle marking our qdiscs, hex ("5e1d" = `5e1d:`). Read at start.
    pub qdisc_handle: Spanned<String>,
    /// Root of the cgroup hierarchy. Read at start.
    pub cgroup_root: PathBuf,
    /// How often a running experiment's kernel state is read again for someone else's
    /// change; `0s` turns the check off.
    pub drift_check: HumanDuration,
    #[serde(rename = "profile")]
    pub profiles: Vec<ChaosProfileConfig>,
}

impl Default for ChaosSection {
    fn default() -> Self {
        Self {
            max_duration: HumanDuration::from_secs(3600),
            max_concurrent: 4,
            default_duration: HumanDuration::from_secs(300),
            qdisc_handle: Spanned::new(0..0, format!("{:x}", crate::chaos::DEFAULT_HANDLE_MAJOR)),
            cgroup_root: PathBuf::from(crate::chaos::cgroup::DEFAULT_ROOT),
            drift_check: HumanDuration::from_secs(5),
            profiles: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosProfileConfig {
    pub name: Spanned<String>,
    pub faults: Spanned<Vec<Fault>>,
    #[serde(default)]
    pub target: TargetSpec,
    /// Default duration of a run (`sentinelctl chaos start --duration` overrides it).
    pub duration: Option<Spanned<HumanDuration>>,
    /// Replace a configured (non-default) root qdisc for the run; it is re-created on rollback.
    #[serde(default)]
    pub force: bool,
    /// Allow impairing the interface that carries the default route.
    #[serde(default)]
    pub allow_default_route: bool,
    /// Abort and roll back as soon as one of these probes goes Down: ["probe:api"].
    #[serde(default)]
    pub halt_on: Option<Spanned<Vec<String>>>,
    /// What should hold while the fault is in place: `{ steady_state = ["api"], recover_within = "30s" }`.
    #[serde(default)]
    pub hypothesis: Option<Spanned<Hypothesis>>,
}

impl ChaosProfileConfig {
    pub fn spec(&self) -> ExperimentSpec {
        ExperimentSpec {
            faults: self.faults.get_ref().clone(),
            target: self.target.clone(),
            force: self.force,
            allow_default_route: self.allow_default_route,
            halt_on: self
                .halt_on
                .as_ref()
                .map(|h| h.get_ref().clone())
                .unwrap_or_default(),
            hypothesis: self.hypothesis.as_ref().map(|h| h.get_ref().clone()),
        }
    }
}

impl ChaosSection {
    /// The handle major, already validated.
    pub fn handle_major(&self) -> u16 {
        parse_handle_major(self.qdisc_handle.get_ref())
            .unwrap_or(crate::chaos::DEFAULT_HANDLE_MAJOR)
    }

    pub fn settings(&self) -> ChaosSettings {
        ChaosSettings {
            profiles: self
                .profiles
                .iter()
                .map(|p| Profile {
                    name: p.name.get_ref().clone(),
                    spec: p.spec(),
                    duration: p
                        .duration
                        .as_ref()
                        .map_or(self.default_duration, |d| *d.get_ref()),
                })
                .collect(),
            max_duration: self.max_duration.get(),
            max_concurrent: self.max_concurrent,
            default_duration: self.default_duration.get(),
            drift_check: self.drift_check.get(),
        }
    }

    /// Checks `[chaos]`; keys are relative to it. `probes` are the configured probe names.
    pub fn validate(&self, probes: &HashSet<&str>) -> Result<(), Issue> {
        if self.max_concurrent == 0 {
            return Err(Issue::at(
                "max_concurrent",
                "chaos.max_concurrent must be at least 1",
            ));
        }
        if self.max_duration.get() < Duration::from_secs(1) {
            return Err(Issue::at(
                "max_duration",
                "chaos.max_duration must be at least 1s",
            ));
        }
        let drift_check = self.drift_check.get();
        if !drift_check.is_zero() && drift_check < Duration::from_secs(1) {
            return Err(Issue::at(
                "drift_check",
                format!(
                    "chaos.drift_check {} is too often: 0s (off) or at least 1s",
                    self.drift_check
                ),
            ));
        }
        let handle = self.qdisc_handle.get_ref().trim_end_matches(':');
        if parse_handle_major(handle).is_none() {
            return Err(Issue::at(
                "qdisc_handle",
                format!("invalid chaos.qdisc_handle \"{handle}\": a hex major between 1 and 7fff, e.g. \"5e1d\""),
            ));
        }
        let mut names = HashSet::new();
        for (i, profile) in self.profiles.iter().enumerate() {
            let name = profile.name.get_ref();
            if !names.insert(name.as_str()) {
                return Err(Issue::at(
                    format!("profile[{i}].name"),
                    format!("duplicate chaos profile \"{name}\""),
                ));
            }
            profile
                .validate(probes, self.max_duration)
                .map_err(|issue| issue.within(format!("profile[{i}]")))?;
        }
        Ok(())
    }
}

impl ChaosProfileConfig {
    /// Checks one `[[chaos.profile]]`; keys are relative to it.
    fn validate(&self, probes: &HashSet<&str>, max_duration: HumanDuration) -> Result<(), Issue> {
        let name = self.name.get_ref();
        if !is_plain_name(name) {
            return Err(Issue::at(
                "name",
                format!("invalid chaos profile name \"{name}\": use letters, digits, - _ ."),
            ));
        }
        if let Some(hypothesis) = &self.hypothesis {
            hypothesis.get_ref().validate().map_err(|message| {
                Issue::at("hypothesis", format!("chaos profile \"{name}\": {message}"))
            })?;
            if let Some(unknown) = hypothesis
                .get_ref()
                .steady_state
                .iter()
                .find(|probe| !probes.contains(probe.as_str()))
            {
                return Err(Issue::at(
                    "hypothesis",
                    format!("chaos profile \"{name}\": hypothesis names probe \"{unknown}\", which is not configured"),
                ));
            }
        }
        self.spec().validate().map_err(|message| {
            Issue::at("faults", format!("chaos profile \"{name}\": {message}"))
        })?;
        if let Some(duration) = &self.duration {
            if duration.get_ref().get() > max_duration.get() || duration.get_ref().get().is_zero() {
                return Err(Issue::at(
                    "duration",
                    format!(
                        "chaos profile \"{name}\": duration must be above zero and at most max_duration ({max_duration})"
                    ),
                ));
            }
        }
        if let Some(halt_on) = &self.halt_on {
            for condition in halt_on.get_ref() {
                let probe = condition.strip_prefix("probe:").unwrap_or("");
                if !probes.contains(probe) {
                    return Err(Issue::at(
                        "halt_on",
                        format!("chaos profile \"{name}\": halt_on \"{condition}\" names no configured probe (write probe:NAME)"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `"5e1d"` or `"5e1d:"`: a hex major between 1 and 7fff (above is the kernel's own range).
pub fn parse_handle_major(text: &str) -> Option<u16> {
    u16::from_str_radix(text.trim_end_matches(':'), 16)
        .ok()
        .filter(|major| *major != 0 && *major < 0x8000)
}
