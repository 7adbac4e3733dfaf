//! The `[chaos]` section: limits every experiment obeys and the `[[chaos.profile]]` list of
//! named, reusable experiments (faults + target + default duration), validated with file:line:col.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{HumanDuration, Issue};
use crate::chaos::spec::{ExperimentSpec, Fault, TargetSpec};
use crate::chaos::Hypothesis;
use crate::chaos::{ChaosSettings, Profile};

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
        }
    }

    pub(super) fn validate(&self, probes: &HashSet<&str>) -> Result<(), Issue> {
        let whole = |message: &str| Issue {
            offset: None,
            message: message.into(),
        };
        if self.max_concurrent == 0 {
            return Err(whole("chaos.max_concurrent must be at least 1"));
        }
        if self.max_duration.get() < Duration::from_secs(1) {
            return Err(whole("chaos.max_duration must be at least 1s"));
        }
        let handle = self.qdisc_handle.get_ref().trim_end_matches(':');
        if parse_handle_major(handle).is_none() {
            return Err(Issue::at(
                &self.qdisc_handle,
                format!("invalid chaos.qdisc_handle \"{handle}\": a hex major between 1 and 7fff, e.g. \"5e1d\""),
            ));
        }
        let mut names = HashSet::new();
        for profile in &self.profiles {
            let name = profile.name.get_ref();
            if !super::is_plain_name(name) {
                return Err(Issue::at(
                    &profile.name,
                    format!("invalid chaos profile name \"{name}\": use letters, digits, - _ ."),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(Issue::at(
                    &profile.name,
                    format!("duplicate chaos profile \"{name}\""),
                ));
            }
            if let Some(hypothesis) = &profile.hypothesis {
                hypothesis.get_ref().validate().map_err(|message| {
                    Issue::at(hypothesis, format!("chaos profile \"{name}\": {message}"))
                })?;
                if let Some(unknown) = hypothesis
                    .get_ref()
                    .steady_state
                    .iter()
                    .find(|probe| !probes.contains(probe.as_str()))
                {
                    return Err(Issue::at(
                        hypothesis,
                        format!("chaos profile \"{name}\": hypothesis names probe \"{unknown}\", which is not configured"),
                    ));
                }
            }
            profile.spec().validate().map_err(|message| {
                Issue::at(
                    &profile.faults,
                    format!("chaos profile \"{name}\": {message}"),
                )
            })?;
            if let Some(duration) = &profile.duration {
                if duration.get_ref().get() > self.max_duration.get()
                    || duration.get_ref().get().is_zero()
                {
                    return Err(Issue::at(
                        duration,
                        format!(
                            "chaos profile \"{name}\": duration must be above zero and at most max_duration ({})",
                            self.max_duration
                        ),
                    ));
                }
            }
            if let Some(halt_on) = &profile.halt_on {
                for condition in halt_on.get_ref() {
                    let probe = condition.strip_prefix("probe:").unwrap_or("");
                    if !probes.contains(probe) {
                        return Err(Issue::at(
                            halt_on,
                            format!("chaos profile \"{name}\": halt_on \"{condition}\" names no configured probe (write probe:NAME)"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `"5e1d"` or `"5e1d:"`: a hex major between 1 and 7fff (above is the kernel's own range).
pub(super) fn parse_handle_major(text: &str) -> Option<u16> {
    u16::from_str_radix(text.trim_end_matches(':'), 16)
        .ok()
        .filter(|major| *major != 0 && *major < 0x8000)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(source: &str) -> Result<super::super::Config, String> {
        super::super::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    const PROBE: &str = "[[probe]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";

    #[test]
    fn a_profile_parses_into_settings() {
        let source = format!(
            "{PROBE}[chaos]\nmax_duration = \"2h\"\n\n[[chaos.profile]]\nname = \"slow-api\"\nduration = \"5m\"\ntarget = {{ container = \"api\", interface = \"eth0\" }}\nhalt_on = [\"probe:api\"]\nhypothesis = {{ steady_state = [\"api\"], recover_within = \"30s\", recover_from = \"rollback\" }}\nfaults = [{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }}]\n\n[[chaos.profile]]\nname = \"cpu\"\ntarget = {{ cgroup = \"/app\" }}\n[[chaos.profile.faults]]\nkind = \"cpu_quota\"\ncpus = 0.5\n"
        );
        let config = parse(&source).unwrap();
        let settings = config.chaos.settings();
        assert_eq!(settings.max_duration.as_secs(), 7200);
        assert_eq!(settings.profiles.len(), 2);
        assert_eq!(settings.profiles[0].duration.get().as_secs(), 300);
        assert_eq!(settings.profiles[0].spec.halt_on, ["probe:api"]);
        let hypothesis = settings.profiles[0].spec.hypothesis.as_ref().unwrap();
        assert_eq!(hypothesis.steady_state, ["api"]);
        assert_eq!(hypothesis.recover_within.unwrap().get().as_secs(), 30);
        assert_eq!(hypothesis.recover_from, crate::chaos::RecoverFrom::Rollback);
        assert_eq!(settings.profiles[1].spec.faults[0].name(), "cpu_quota");
        assert_eq!(config.chaos.handle_major(), 0x5e1d);
    }

    #[test]
    fn profile_errors_point_at_file_line_column() {
        let cases: &[(&str, &str)] = &[
            (
                "[[chaos.profile]]\nname = \"a\"\nfaults = [{ kind = \"tbf\", rate = \"1mbit\", burst = 2000, limit = 9000 }]\n",
                "t.toml:3:",
            ),
            (
                "[[chaos.profile]]\nname = \"a\"\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\n",
                "t.toml:3:10: chaos profile \"a\": netem needs target.interface",
            ),
            (
                "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nhalt_on = [\"probe:nope\"]\n",
                "t.toml:5:11: chaos profile \"a\": halt_on \"probe:nope\" names no configured probe",
            ),
            (
                "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nduration = \"2h\"\n",
                "t.toml:5:12: chaos profile \"a\": duration must be above zero and at most max_duration (1h)",
            ),
            (
                "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\", nic = \"x\" }\nfaults = []\n",
                "t.toml:3:",
            ),
            (
                "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nhypothesis = { steady_state = [\"nope\"] }\n",
                "t.toml:5:14: chaos profile \"a\": hypothesis names probe \"nope\", which is not configured",
            ),
            (
                "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nhypothesis = { recover_within = \"5s\" }\n",
                "t.toml:5:14: chaos profile \"a\": hypothesis needs steady_state",
            ),
            (
                "[chaos]\nqdisc_handle = \"zz\"\n",
                "t.toml:2:16: invalid chaos.qdisc_handle \"zz\"",
            ),
            (
                "[chaos]\nmax_concurrent = 0\n",
                "t.toml: chaos.max_concurrent must be at least 1",
            ),
            (
                "[[chaos.profile]]\nname = \"a b\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\n",
                "t.toml:2:8: invalid chaos profile name \"a b\"",
            ),
        ];
        for (source, expected) in cases {
            let err = parse(source).expect_err(source);
            assert!(
                err.starts_with(expected),
                "source {source:?}\n  got:  {err}\n  want: {expected}"
            );
        }
    }
}
