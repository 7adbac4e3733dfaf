//! `[[maintenance]]`: scheduled windows (a cron expression in a time zone, a duration, a scope
//! of probes and/or labels, a reason), each field checked where it is written.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::Spanned;

use super::schedule::{parse_cron, parse_zone, Schedule};
use super::MAX_DURATION;
use crate::event::MaintenanceScope;
use crate::probe::config::validate_labels;
use crate::units::{is_plain_name, HumanDuration, Issue};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    /// Names the schedule in events, ids (`NAME@2026-12-06T02:00Z`) and `maintenance list`.
    pub name: Spanned<String>,
    /// Five-field cron expression: minute hour day-of-month month day-of-week.
    pub schedule: Spanned<String>,
    /// IANA time zone the expression is read in; default UTC.
    pub timezone: Option<Spanned<String>>,
    /// How long each window lasts from its start.
    pub duration: Spanned<HumanDuration>,
    /// Probes covered by name.
    pub probes: Option<Spanned<Vec<String>>>,
    /// Probes covered by label: a probe with every one of these labels.
    pub labels: Option<Spanned<BTreeMap<String, String>>>,
    /// Said in the journal and in `maintenance list`; default "scheduled maintenance NAME".
    pub reason: Option<Spanned<String>>,
}

impl MaintenanceSection {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    pub fn timezone(&self) -> &str {
        self.timezone
            .as_ref()
            .map_or("UTC", |z| z.get_ref().as_str())
    }

    pub fn scope(&self) -> MaintenanceScope {
        MaintenanceScope {
            probes: self
                .probes
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_default(),
            labels: self
                .labels
                .as_ref()
                .map(|l| l.get_ref().clone())
                .unwrap_or_default(),
        }
    }

    pub fn reason(&self) -> String {
        self.reason.as_ref().map_or_else(
            || format!("scheduled maintenance {}", self.name()),
            |r| r.get_ref().clone(),
        )
    }

    /// The schedule as time; only fails on a section that did not pass validation.
    pub fn schedule(&self) -> Option<Schedule> {
        Schedule::new(
            self.schedule.get_ref(),
            self.timezone(),
            self.duration.get_ref().get(),
        )
        .ok()
    }

    /// Checks this entry alone against the configured probe names; keys are relative to it.
    fn validate(&self, probes: &HashSet<&str>) -> Result<(), Issue> {
        let name = self.name();
        if !is_plain_name(name) || name.len() > 64 {
            return Err(Issue::at(
                "name",
                format!(
                    "invalid maintenance name \"{name}\": use 1-64 letters, digits, '-', '_' or '.'"
                ),
            ));
        }
        let problem = |message: String| format!("maintenance \"{name}\": {message}");
        parse_cron(self.schedule.get_ref()).map_err(|err| {
            Issue::at(
                "schedule",
                problem(format!(
                    "{err} (five fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * SUN\")"
                )),
            )
            .because(err)
        })?;
        if let Some(zone) = &self.timezone {
            parse_zone(zone.get_ref())
                .map_err(|err| Issue::at("timezone", problem(err.to_string())).because(err))?;
        }
        let duration = self.duration.get_ref().get();
        if duration.as_secs() < 60 || duration > MAX_DURATION {
            return Err(Issue::at(
                "duration",
                problem(format!(
                    "duration {} must be at least 1m and at most {}",
                    self.duration.get_ref(),
                    humantime::format_duration(MAX_DURATION)
                )),
            ));
        }
        let scope = self.scope();
        if scope.is_empty() {
            return Err(Issue::at(
                "probes",
                problem(
                    "the window covers nothing: set `probes = [...]` and/or `labels = { ... }`"
                        .into(),
                ),
            )
            .or_at("labels")
            .or_at("name"));
        }
        if let Some(unknown) = scope.probes.iter().find(|p| !probes.contains(p.as_str())) {
            return Err(Issue::at(
                "probes",
                problem(format!("probes names an unknown probe: \"{unknown}\"")),
            ));
        }
        validate_labels(&scope.labels)
            .map_err(|err| Issue::at("labels", problem(err.to_string())).because(err))?;
        if let Some(reason) = &self.reason {
            if reason.get_ref().trim().is_empty() || reason.get_ref().len() > 500 {
                return Err(Issue::at(
                    "reason",
                    problem("reason must say something, in at most 500 bytes".into()),
                ));
            }
        }
        Ok(())
    }
}

/// Checks every `[[maintenance]]`: each alone, names unique. Keys are relative to the list.
pub fn validate_maintenance(
    sections: &[MaintenanceSection],
    probes: &HashSet<&str>,
) -> Result<(), Issue> {
    let mut names = HashSet::new();
    for (i, section) in sections.iter().enumerate() {
        section
            .validate(probes)
            .map_err(|issue| issue.within(format!("[{i}]")))?;
        if !names.insert(section.name()) {
            return Err(Issue::at(
                format!("[{i}].name"),
                format!("duplicate maintenance name \"{}\"", section.name()),
            ));
        }
    }
    Ok(())
}
