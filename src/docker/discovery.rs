//! Discovery, the pure part: from what the engine says about a container (name, id, labels,
//! HEALTHCHECK) to the probe sentineld runs for it and the label problems found on the way.
//!
//! Nothing read from a container can panic here or escape its field: every label value is
//! parsed alone, a bad one is reported ([`LabelIssue`]) and replaced by the default, and the
//! finished probe goes through the same `ProbeConfig::validate` as a `[[probe]]` table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::{DiscoverMode, DiscoveryDefaults};
use crate::event::DiscoverySource;
use crate::probe::config::validate_labels;
use crate::probe::ProbeConfig;
use crate::units::{is_plain_name, HumanDuration};

pub const LABEL_ENABLE: &str = "sentinel.enable";
pub const LABEL_FAIL_AFTER: &str = "sentinel.fail_after";
pub const LABEL_MAX_ATTEMPTS: &str = "sentinel.heal.max_attempts";
pub const LABEL_WINDOW: &str = "sentinel.heal.window";
pub const LABEL_HTTP: &str = "sentinel.http";
pub const LABEL_DEPENDS_ON: &str = "sentinel.depends_on";
pub const LABEL_ARCHIVE: &str = "sentinel.archive";
/// `sentinel.label.team=payments` gives the probe the label `team = "payments"` (what
/// `[[maintenance]]` scopes and `sentinelctl maintenance start --label` match).
pub const LABEL_PREFIX: &str = "sentinel.label.";
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
pub const COMPOSE_NUMBER: &str = "com.docker.compose.container-number";
pub const COMPOSE_DEPENDS_ON: &str = "com.docker.compose.depends_on";

/// Longest discovered probe name (a compose `project/service` of two 64-character names).
pub const MAX_NAME: usize = 129;
/// A label value is quoted in events and status up to this many characters.
const MAX_QUOTED: usize = 120;
/// At most this many names in a `depends_on` or `archive` label are read.
const MAX_LIST: usize = 32;

/// What the engine says about one container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerFacts {
    /// The full id.
    pub id: String,
    /// The name, with or without Docker's leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The image or the container defines a HEALTHCHECK (not `NONE`).
    pub healthcheck: bool,
}

impl ContainerFacts {
    /// The name without Docker's leading `/`.
    pub fn name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    /// The first 12 characters of the id, as `docker ps` shows it.
    pub fn short_id(&self) -> String {
        short_id(&self.id)
    }
}

pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// What discovery needs besides the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub mode: DiscoverMode,
    pub defaults: DiscoveryDefaults,
    /// The `[[archive.source]]` names a `sentinel.archive` label may name.
    pub archive_sources: Vec<String>,
    /// `[docker] only_label`: only containers with this label (and value, when given).
    pub only: Option<(String, Option<String>)>,
}

/// A `sentinel.*` label that could not be used, and what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelIssue {
    pub label: String,
    /// The value, cut to 120 characters.
    pub value: String,
    pub expected: String,
}

impl LabelIssue {
    fn new(label: &str, value: &str, expected: impl Into<String>) -> Self {
        Self {
            label: quote(label),
            value: quote(value),
            expected: expected.into(),
        }
    }

    /// "sentinel.fail_after=\"abc\": expected a whole number from 1 to 64".
    pub fn line(&self) -> String {
        format!(
            "{}={:?}: expected {}",
            self.label, self.value, self.expected
        )
    }
}

fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A probe discovery would run for a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// `project/service` for a compose container, else the container's name.
    pub name: String,
    /// The container's name (without `/`) and full id.
    pub container: String,
    pub container_id: String,
    pub from: DiscoverySource,
    /// The probe, named `name`, its heal restarting the container (by name; by id when the
    /// name is not a plain one).
    pub probe: ProbeConfig,
}

/// What `probes` and `status` show of a discovered probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryNote {
    pub from: DiscoverySource,
    pub container: String,
    /// The first 12 characters of the container's id.
    pub container_id: String,
    /// The labels that could not be used ("sentinel.fail_after=\"abc\": expected ...").
    #[serde(default)]
    pub label_issues: Vec<String>,
}

/// What discovery made of one container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Finding {
    /// None: the container is not discovered (not labelled, no HEALTHCHECK, opted out).
    pub candidate: Option<Candidate>,
    pub issues: Vec<LabelIssue>,
}

/// Decide whether `facts` is discovered under `settings`, and build its probe.
pub fn discover(facts: &ContainerFacts, settings: &Settings) -> Finding {
    if let Some((key, value)) = &settings.only {
        let carries = match (facts.labels.get(key), value) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !carries {
            return Finding::default();
        }
    }
    let mut issues = Vec::new();
    let enable = facts.labels.get(LABEL_ENABLE).map(|value| {
        let parsed = parse_bool(value);
        if parsed.is_none() {
            issues.push(LabelIssue::new(LABEL_ENABLE, value, "true or false"));
        }
        parsed
    });
    let from = match (settings.mode, enable) {
        (DiscoverMode::Off, _) => None,
        (DiscoverMode::Labeled, Some(Some(true))) => Some(DiscoverySource::Label),
        (DiscoverMode::Labeled, _) => None,
        (DiscoverMode::All, Some(Some(false))) => None,
        (DiscoverMode::All, Some(Some(true))) => Some(DiscoverySource::Label),
        (DiscoverMode::All, _) => facts.healthcheck.then_some(DiscoverySource::Healthcheck),
    };
    let Some(from) = from else {
        return Finding {
            candidate: None,
            issues,
        };
    };
    if facts.id.is_empty() || !facts.id.chars().all(|c| c.is_ascii_alphanumeric()) {
        // The engine always sends a hex id; anything else cannot name a container safely.
        return Finding {
            candidate: None,
            issues,
        };
    }
    let name = probe_name(facts);
    let overrides = Overrides::read(facts, &name, settings, &mut issues);
    let probe = match build(facts, &name, &settings.defaults, &overrides) {
        Some(probe) => probe,
        None => {
            // A label passed its own check but not the probe's (an http URL the probe refuses):
            // say so, and watch the container with the defaults alone.
            if let Some(url) = &overrides.http {
                issues.push(LabelIssue::new(
                    LABEL_HTTP,
                    url,
                    "an http:// or https:// URL with a host",
                ));
            }
            let plain = Overrides {
                depends_on: overrides.depends_on.clone(),
                ..Overrides::default()
            };
            match build(facts, &name, &settings.defaults, &plain) {
                Some(probe) => probe,
                None => {
                    return Finding {
                        candidate: None,
                        issues,
                    }
                }
            }
        }
    };
    Finding {
        candidate: Some(Candidate {
            name,
            container: facts.name().to_string(),
            container_id: facts.id.clone(),
            from,
            probe,
        }),
        issues,
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `project/service` for a compose container (with `-N` for replicas after the first), else
/// the container's name, else `container-<short id>`.
pub fn probe_name(facts: &ContainerFacts) -> String {
    if let Some(name) = compose_name(facts) {
        return name;
    }
    let name = facts.name();
    if plain_container(name) {
        return name.to_string();
    }
    format!("container-{}", facts.short_id())
}

fn compose_name(facts: &ContainerFacts) -> Option<String> {
    let project = facts.labels.get(COMPOSE_PROJECT)?;
    let service = facts.labels.get(COMPOSE_SERVICE)?;
    if !plain_part(project) || !plain_part(service) {
        return None;
    }
    let replica = facts
        .labels
        .get(COMPOSE_NUMBER)
        .and_then(|n| n.trim().parse::<u32>().ok())
        .filter(|n| *n > 1);
    Some(match replica {
        Some(n) => format!("{project}/{service}-{n}"),
        None => format!("{project}/{service}"),
    })
}

/// A container name that can stand in an engine API path as it is (never `.` or `..`).
fn plain_container(name: &str) -> bool {
    is_plain_name(name) && name.len() <= MAX_NAME && name != "." && name != ".."
}

fn plain_part(part: &str) -> bool {
    is_plain_name(part) && part.len() <= 64 && part != "." && part != ".."
}

/// A name a `depends_on` may hold: a probe name, plain or `project/service`.
fn probe_reference(name: &str) -> bool {
    let mut parts = name.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(one), None, None) => plain_part(one),
        (Some(project), Some(service), None) => plain_part(project) && plain_part(service),
        _ => false,
    }
}

/// The label values that passed their checks.
#[derive(Debug, Clone, Default)]
struct Overrides {
    fail_after: Option<u32>,
    max_attempts: Option<u32>,
    window: Option<HumanDuration>,
    http: Option<String>,
    depends_on: Vec<String>,
    archive: Option<Vec<String>>,
    /// The probe's labels: compose's project and service, then every `sentinel.label.*`.
    labels: BTreeMap<String, String>,
}

impl Overrides {
    fn read(
        facts: &ContainerFacts,
        name: &str,
        settings: &Settings,
        issues: &mut Vec<LabelIssue>,
    ) -> Self {
        let label = |key: &str| facts.labels.get(key).map(String::as_str);
        let mut out = Self::default();
        if let Some(value) = label(LABEL_FAIL_AFTER) {
            out.fail_after = whole(value, 1, 64);
            if out.fail_after.is_none() {
                issues.push(LabelIssue::new(
                    LABEL_FAIL_AFTER,
                    value,
                    "a whole number from 1 to 64",
                ));
            }
        }
        if let Some(value) = label(LABEL_MAX_ATTEMPTS) {
            out.max_attempts = whole(value, 1, 100);
            if out.max_attempts.is_none() {
                issues.push(LabelIssue::new(
                    LABEL_MAX_ATTEMPTS,
                    value,
                    "a whole number from 1 to 100",
                ));
            }
        }
        if let Some(value) = label(LABEL_WINDOW) {
            out.window = value
                .parse::<HumanDuration>()
                .ok()
                .filter(|d| !d.get().is_zero() && d.get().as_secs() <= 366 * 86_400);
            if out.window.is_none() {
                issues.push(LabelIssue::new(
                    LABEL_WINDOW,
                    value,
                    "a duration above zero and at most a year, e.g. \"10m\"",
                ));
            }
        }
        if let Some(value) = label(LABEL_HTTP) {
            let url = value.trim();
            match crate::probe::HttpTarget::parse(url) {
                Ok(_) => out.http = Some(url.to_string()),
                Err(_) => issues.push(LabelIssue::new(
                    LABEL_HTTP,
                    value,
                    "an http:// or https:// URL with a host",
                )),
            }
        }
        if let Some(value) = label(LABEL_DEPENDS_ON) {
            for wanted in list(value) {
                if probe_reference(wanted) && wanted != name {
                    push_unique(&mut out.depends_on, wanted.to_string());
                } else {
                    issues.push(LabelIssue::new(
                        LABEL_DEPENDS_ON,
                        value,
                        "comma-separated probe names (letters, digits, '-', '_', '.', or project/service), not the container itself",
                    ));
                    break;
                }
            }
        }
        if let (Some(value), Some(project)) = (
            label(COMPOSE_DEPENDS_ON),
            facts.labels.get(COMPOSE_PROJECT).filter(|p| plain_part(p)),
        ) {
            // "db:service_started:false,redis:service_healthy:true"
            for entry in list(value) {
                let service = entry.split(':').next().unwrap_or_default().trim();
                let parent = format!("{project}/{service}");
                if plain_part(service) && parent != name {
                    push_unique(&mut out.depends_on, parent);
                } else {
                    issues.push(LabelIssue::new(
                        COMPOSE_DEPENDS_ON,
                        value,
                        "service:condition:restart entries separated by commas",
                    ));
                    break;
                }
            }
        }
        if let Some(value) = label(LABEL_ARCHIVE) {
            let mut names = Vec::new();
            for wanted in list(value) {
                if settings.archive_sources.iter().any(|s| s == wanted) {
                    push_unique(&mut names, wanted.to_string());
                } else {
                    let known = match settings.archive_sources.is_empty() {
                        true => "none are defined".to_string(),
                        false => format!("known: {}", settings.archive_sources.join(", ")),
                    };
                    issues.push(LabelIssue::new(
                        LABEL_ARCHIVE,
                        value,
                        format!("comma-separated [[archive.source]] names ({known})"),
                    ));
                }
            }
            out.archive = Some(names);
        }
        out.labels = probe_labels(facts, issues);
        out
    }
}

/// The labels a discovered probe carries: `compose.project` and `compose.service` for a compose
/// container, then each `sentinel.label.KEY=VALUE` as `KEY = VALUE` (which may override them).
/// A label that `[[probe]] labels` would refuse is reported and left out; the others stay.
fn probe_labels(facts: &ContainerFacts, issues: &mut Vec<LabelIssue>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let (Some(project), Some(service)) = (
        facts.labels.get(COMPOSE_PROJECT),
        facts.labels.get(COMPOSE_SERVICE),
    ) {
        labels.insert("compose.project".to_string(), project.clone());
        labels.insert("compose.service".to_string(), service.clone());
        if validate_labels(&labels).is_err() {
            labels.clear();
        }
    }
    for (key, value) in &facts.labels {
        let Some(name) = key.strip_prefix(LABEL_PREFIX) else {
            continue;
        };
        let mut with = labels.clone();
        with.insert(name.to_string(), value.clone());
        match validate_labels(&with) {
            Ok(()) => labels = with,
            Err(_) => issues.push(LabelIssue::new(
                key,
                value,
                "a name of 1-63 letters, digits, '-', '_', '.' or '/' after sentinel.label., a value of 1-128 printable characters, at most 32 labels",
            )),
        }
    }
    labels
}

fn whole(value: &str, low: u32, high: u32) -> Option<u32> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (low..=high).contains(n))
}

/// The non-empty comma-separated entries of a list label (at most [`MAX_LIST`]).
fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(MAX_LIST)
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The probe as a `[[probe]]` table would write it, parsed and validated like one: the
/// values go through the TOML writer, so no label text can change the table's shape.
fn build(
    facts: &ContainerFacts,
    name: &str,
    defaults: &DiscoveryDefaults,
    overrides: &Overrides,
) -> Option<ProbeConfig> {
    use toml::Value;
    // By name (what the engine's events and the healer's fault dating match), else by id.
    let target = match plain_container(facts.name()) {
        true => facts.name(),
        false => facts.id.as_str(),
    };
    let text = |s: &str| Value::String(s.to_string());
    let duration = |d: HumanDuration| Value::String(d.to_string());
    let list = |items: &[String]| Value::Array(items.iter().map(|s| text(s)).collect());
    let mut heal = toml::Table::new();
    heal.insert("action".into(), text("docker_restart"));
    heal.insert("container".into(), text(target));
    heal.insert(
        "max_attempts".into(),
        Value::Integer(
            overrides
                .max_attempts
                .unwrap_or(defaults.max_attempts)
                .into(),
        ),
    );
    heal.insert(
        "window".into(),
        duration(overrides.window.unwrap_or(defaults.window)),
    );
    heal.insert("backoff".into(), duration(defaults.backoff));
    heal.insert("max_backoff".into(), duration(defaults.max_backoff));
    heal.insert("verify_within".into(), duration(defaults.verify_within));
    heal.insert("stable_for".into(), duration(defaults.stable_for));
    heal.insert("stop_timeout".into(), duration(defaults.stop_timeout));
    let archive = overrides.archive.as_ref().unwrap_or(&defaults.archive);
    if !archive.is_empty() {
        heal.insert("archive".into(), list(archive));
    }
    let mut table = toml::Table::new();
    // Validated under a plain placeholder: a compose name holds a '/', which `[[probe]]` names
    // may not (they are typed by hand); the real name is set after.
    table.insert("name".into(), text("discovered"));
    match &overrides.http {
        Some(url) => {
            table.insert("kind".into(), text("http"));
            table.insert("url".into(), text(url));
        }
        None => {
            table.insert("kind".into(), text("docker"));
            table.insert("container".into(), text(target));
        }
    }
    table.insert("interval".into(), duration(defaults.interval));
    table.insert("timeout".into(), duration(defaults.timeout));
    table.insert(
        "fail_after".into(),
        Value::Integer(overrides.fail_after.unwrap_or(defaults.fail_after).into()),
    );
    table.insert(
        "recover_after".into(),
        Value::Integer(defaults.recover_after.into()),
    );
    if !overrides.depends_on.is_empty() {
        table.insert("depends_on".into(), list(&overrides.depends_on));
    }
    if !overrides.labels.is_empty() {
        let labels = overrides.labels.iter().map(|(k, v)| (k.clone(), text(v)));
        table.insert("labels".into(), Value::Table(labels.collect()));
    }
    table.insert("heal".into(), Value::Table(heal));
    let source = toml::to_string(&table).ok()?;
    let mut probe: ProbeConfig = toml::from_str(&source).ok()?;
    probe.validate().ok()?;
    probe.name = toml::Spanned::new(0..0, name.to_string());
    Some(probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: DiscoverMode) -> Settings {
        Settings {
            mode,
            defaults: DiscoveryDefaults::default(),
            archive_sources: vec!["logs".into()],
            only: None,
        }
    }

    fn facts(name: &str, labels: &[(&str, &str)]) -> ContainerFacts {
        ContainerFacts {
            id: "3f2a9c1b0d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4".into(),
            name: format!("/{name}"),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            healthcheck: false,
        }
    }

    fn probe(found: &Finding) -> &ProbeConfig {
        &found.candidate.as_ref().expect("discovered").probe
    }

    #[test]
    fn the_heal_defaults_reach_the_discovered_heal() {
        let mut settings = settings(DiscoverMode::Labeled);
        settings.defaults.stable_for = HumanDuration::from_secs(2);
        settings.defaults.verify_within = HumanDuration::from_secs(20);
        let found = discover(&facts("web", &[("sentinel.enable", "true")]), &settings);
        let heal = probe(&found).heal.as_ref().unwrap().get_ref().clone();
        assert_eq!(heal.stable_for, HumanDuration::from_secs(2));
        assert_eq!(heal.verify_within, HumanDuration::from_secs(20));
    }

    #[test]
    fn labeled_mode_takes_enabled_containers_with_the_defaults() {
        let found = discover(
            &facts("web", &[("sentinel.enable", "true")]),
            &settings(DiscoverMode::Labeled),
        );
        let candidate = found.candidate.as_ref().unwrap();
        assert_eq!(candidate.name, "web");
        assert_eq!(candidate.container, "web");
        assert_eq!(candidate.from, DiscoverySource::Label);
        let probe = &candidate.probe;
        assert_eq!(probe.kind(), crate::probe::ProbeKind::Docker);
        assert_eq!(*probe.fail_after.get_ref(), 1);
        let heal = probe.heal.as_ref().unwrap().get_ref();
        assert_eq!(heal.container.as_deref(), Some("web"));
        assert_eq!(heal.max_attempts, 3);
        assert!(found.issues.is_empty());
        for labels in [
            vec![],
            vec![("sentinel.enable", "false")],
            vec![("autoheal", "true")],
        ] {
            let found = discover(&facts("web", &labels), &settings(DiscoverMode::Labeled));
            assert!(found.candidate.is_none(), "{labels:?}");
        }
        let off = discover(
            &facts("web", &[("sentinel.enable", "true")]),
            &settings(DiscoverMode::Off),
        );
        assert!(off.candidate.is_none());
    }

    #[test]
    fn only_label_scopes_both_modes() {
        let mut scoped = settings(DiscoverMode::All);
        scoped.only = Some(("team".into(), Some("pay".into())));
        let mut theirs = facts("api", &[("team", "ops")]);
        theirs.healthcheck = true;
        assert!(discover(&theirs, &scoped).candidate.is_none());
        theirs.labels.insert("team".into(), "pay".into());
        assert!(discover(&theirs, &scoped).candidate.is_some());
        scoped.only = Some(("team".into(), None));
        theirs.labels.insert("team".into(), "anything".into());
        assert!(discover(&theirs, &scoped).candidate.is_some());
        theirs.labels.clear();
        assert!(discover(&theirs, &scoped).candidate.is_none());
    }

    #[test]
    fn all_mode_takes_healthchecks_unless_opted_out() {
        let mut with_check = facts("api", &[]);
        with_check.healthcheck = true;
        let found = discover(&with_check, &settings(DiscoverMode::All));
        assert_eq!(
            found.candidate.as_ref().unwrap().from,
            DiscoverySource::Healthcheck
        );
        assert!(discover(&facts("api", &[]), &settings(DiscoverMode::All))
            .candidate
            .is_none());
        with_check
            .labels
            .insert("sentinel.enable".into(), "false".into());
        assert!(discover(&with_check, &settings(DiscoverMode::All))
            .candidate
            .is_none());
        let labelled = discover(
            &facts("api", &[("sentinel.enable", "true")]),
            &settings(DiscoverMode::All),
        );
        assert_eq!(
            labelled.candidate.unwrap().from,
            DiscoverySource::Label,
            "a label counts in all mode too"
        );
    }

    #[test]
    fn labels_override_the_defaults() {
        let found = discover(
            &facts(
                "web",
                &[
                    ("sentinel.enable", "true"),
                    ("sentinel.fail_after", "4"),
                    ("sentinel.heal.max_attempts", "7"),
                    ("sentinel.heal.window", "2m"),
                    ("sentinel.depends_on", "db, cache"),
                    ("sentinel.archive", "logs"),
                ],
            ),
            &settings(DiscoverMode::Labeled),
        );
        assert!(found.issues.is_empty(), "{:?}", found.issues);
        let probe = probe(&found);
        assert_eq!(*probe.fail_after.get_ref(), 4);
        let heal = probe.heal.as_ref().unwrap().get_ref();
        assert_eq!(heal.max_attempts, 7);
        assert_eq!(heal.window.get().as_secs(), 120);
        assert_eq!(heal.archive.as_deref(), Some(&["logs".to_string()][..]));
        assert_eq!(
            probe.depends_on.as_ref().unwrap().get_ref(),
            &vec!["db".to_string(), "cache".to_string()]
        );
    }

    #[test]
    fn probe_labels_come_from_compose_and_sentinel_label_keys() {
        let compose = [
            ("sentinel.enable", "true"),
            ("com.docker.compose.project", "shop"),
            ("com.docker.compose.service", "api"),
        ];
        let pairs = |found: &Finding| -> Vec<(String, String)> {
            probe(found).label_map().into_iter().collect()
        };
        let own = |k: &str, v: &str| (k.to_string(), v.to_string());
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, &'a str)>,
            Vec<(String, String)>,
            usize,
        );
        let long = "x".repeat(129);
        let cases: Vec<Case> = vec![
            ("no labels", vec![("sentinel.enable", "true")], vec![], 0),
            (
                "sentinel.label.*",
                vec![
                    ("sentinel.enable", "true"),
                    ("sentinel.label.team", "payments"),
                ],
                vec![own("team", "payments")],
                0,
            ),
            (
                "compose project and service",
                compose.to_vec(),
                vec![
                    own("compose.project", "shop"),
                    own("compose.service", "api"),
                ],
                0,
            ),
            (
                "a bad name or value is reported, the rest kept",
                vec![
                    ("sentinel.enable", "true"),
                    ("sentinel.label.tier", "front"),
                    ("sentinel.label.bad name", "x"),
                    ("sentinel.label.blob", long.as_str()),
                ],
                vec![own("tier", "front")],
                2,
            ),
        ];
        for (case, labels, want, issues) in cases {
            let found = discover(&facts("web", &labels), &settings(DiscoverMode::Labeled));
            assert_eq!(pairs(&found), want, "{case}");
            assert_eq!(found.issues.len(), issues, "{case}: {:?}", found.issues);
        }
    }

    #[test]
    fn http_label_makes_an_http_probe_that_restarts_the_container() {
        let found = discover(
            &facts(
                "web",
                &[
                    ("sentinel.enable", "true"),
                    ("sentinel.http", "http://127.0.0.1:8080/health"),
                ],
            ),
            &settings(DiscoverMode::Labeled),
        );
        let probe = probe(&found);
        assert_eq!(probe.kind(), crate::probe::ProbeKind::Http);
        assert_eq!(
            probe.url.as_ref().unwrap().get_ref(),
            "http://127.0.0.1:8080/health"
        );
        let heal = probe.heal.as_ref().unwrap().get_ref();
        assert_eq!(heal.container.as_deref(), Some("web"));
    }

    #[test]
    fn bad_labels_are_reported_and_the_defaults_used() {
        let found = discover(
            &facts(
                "web",
                &[
                    ("sentinel.enable", "true"),
                    ("sentinel.fail_after", "abc"),
                    ("sentinel.heal.max_attempts", "0"),
                    ("sentinel.heal.window", "soon"),
                    ("sentinel.http", "ftp://x/"),
                    ("sentinel.depends_on", "../etc"),
                    ("sentinel.archive", "nope"),
                ],
            ),
            &settings(DiscoverMode::Labeled),
        );
        let labels: Vec<&str> = found.issues.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "sentinel.fail_after",
                "sentinel.heal.max_attempts",
                "sentinel.heal.window",
                "sentinel.http",
                "sentinel.depends_on",
                "sentinel.archive"
            ]
        );
        assert_eq!(
            found.issues[0].line(),
            "sentinel.fail_after=\"abc\": expected a whole number from 1 to 64"
        );
        let probe = probe(&found);
        assert_eq!(probe.kind(), crate::probe::ProbeKind::Docker);
        assert_eq!(*probe.fail_after.get_ref(), 1);
        assert!(probe.depends_on.is_none());
        assert_eq!(probe.heal.as_ref().unwrap().get_ref().max_attempts, 3);
        // A bad enable label is reported; the container is not taken in labeled mode.
        let found = discover(
            &facts("web", &[("sentinel.enable", "maybe")]),
            &settings(DiscoverMode::Labeled),
        );
        assert!(found.candidate.is_none());
        assert_eq!(found.issues[0].expected, "true or false");
    }

    #[test]
    fn compose_containers_are_named_project_slash_service() {
        let found = discover(
            &facts(
                "shop-web-1",
                &[
                    ("sentinel.enable", "true"),
                    ("com.docker.compose.project", "shop"),
                    ("com.docker.compose.service", "web"),
                    ("com.docker.compose.container-number", "1"),
                    (
                        "com.docker.compose.depends_on",
                        "db:service_started:false,redis:service_healthy:true",
                    ),
                ],
            ),
            &settings(DiscoverMode::Labeled),
        );
        let candidate = found.candidate.as_ref().unwrap();
        assert_eq!(candidate.name, "shop/web");
        assert_eq!(candidate.probe.name(), "shop/web");
        assert_eq!(
            candidate.probe.depends_on.as_ref().unwrap().get_ref(),
            &vec!["shop/db".to_string(), "shop/redis".to_string()]
        );
        let replica = facts(
            "shop-web-2",
            &[
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "web"),
                ("com.docker.compose.container-number", "2"),
            ],
        );
        assert_eq!(probe_name(&replica), "shop/web-2");
    }

    /// Odd input never panics, never yields a name that leaves its field, and is reported.
    #[test]
    fn odd_labels_and_names_do_not_panic() {
        let huge = "x".repeat(1 << 20);
        let odd: Vec<String> = vec![
            String::new(),
            huge.clone(),
            "ünïcødé ☃ 🚀".into(),
            "/".into(),
            "..".into(),
            "../../etc/passwd".into(),
            "a/b/c".into(),
            "\0\n\"'`$(reboot)".into(),
            "é".repeat(200),
            ",,,".into(),
            ":::".into(),
            "18446744073709551616".into(),
            "-1".into(),
            "999999999999999999999y".into(),
        ];
        for value in &odd {
            for name in [value.as_str(), "ok"] {
                let mut labels: Vec<(&str, &str)> = vec![("sentinel.enable", "true")];
                for key in [
                    LABEL_FAIL_AFTER,
                    LABEL_MAX_ATTEMPTS,
                    LABEL_WINDOW,
                    LABEL_HTTP,
                    LABEL_DEPENDS_ON,
                    LABEL_ARCHIVE,
                    COMPOSE_PROJECT,
                    COMPOSE_SERVICE,
                    COMPOSE_NUMBER,
                    COMPOSE_DEPENDS_ON,
                ] {
                    labels.push((key, value));
                }
                for mode in [DiscoverMode::Labeled, DiscoverMode::All] {
                    let found = discover(&facts(name, &labels), &settings(mode));
                    let candidate = found.candidate.expect("still watched with defaults");
                    assert!(candidate.name.len() <= MAX_NAME, "{value:?}");
                    assert!(probe_reference(&candidate.name), "{:?}", candidate.name);
                    assert!(!candidate.name.contains(".."));
                    let target = candidate.probe.heal.as_ref().unwrap().get_ref();
                    let target = target.container.as_deref().unwrap();
                    let by_name = plain_container(name);
                    assert_eq!(target == name, by_name, "{target:?}");
                    assert_eq!(target == facts("", &[]).id, !by_name, "{target:?}");
                    for issue in &found.issues {
                        assert!(issue.value.chars().count() <= MAX_QUOTED + 1);
                    }
                }
            }
        }
        // Odd ids are not containers we can name.
        let mut bad_id = facts("web", &[("sentinel.enable", "true")]);
        bad_id.id = "../x".into();
        assert!(discover(&bad_id, &settings(DiscoverMode::Labeled))
            .candidate
            .is_none());
        bad_id.id = String::new();
        assert!(discover(&bad_id, &settings(DiscoverMode::Labeled))
            .candidate
            .is_none());
    }
}
