//! The `[docker]` section: where the Docker engine listens, and which containers sentineld
//! discovers on its own (`discover`, `[docker.defaults]`). Read at start; validated here.

use std::path::PathBuf;

use serde::Deserialize;

use crate::units::{HumanDuration, Issue};

/// Where the Docker engine listens (used only when a probe or action needs it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSection {
    pub socket: PathBuf,
    /// Which containers get a probe and a heal without a `[[probe]]`: none (default), those
    /// labelled `sentinel.enable=true`, or every container with a HEALTHCHECK.
    pub discover: DiscoverMode,
    /// What a discovered probe gets unless its container's labels say otherwise.
    pub defaults: DiscoveryDefaults,
    /// At most this many discovered probes run at once; further containers are reported, not
    /// probed (a runaway `docker run` loop must not grow sentineld without bound).
    pub max_discovered: u32,
    /// Discover only containers carrying this label: `key` or `key=value` (several sentineld
    /// sharing an engine, or a team's containers only); default: every container.
    pub only_label: Option<String>,
}

impl Default for DockerSection {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(super::DEFAULT_SOCKET),
            discover: DiscoverMode::Off,
            defaults: DiscoveryDefaults::default(),
            max_discovered: Self::DEFAULT_MAX_DISCOVERED,
            only_label: None,
        }
    }
}

impl DockerSection {
    pub const DEFAULT_MAX_DISCOVERED: u32 = 256;
    /// The highest `max_discovered` accepted.
    pub const MAX_DISCOVERED_LIMIT: u32 = 4096;

    /// Checks the section; keys are relative to `[docker]`.
    pub fn validate(&self) -> Result<(), Issue> {
        if !(1..=Self::MAX_DISCOVERED_LIMIT).contains(&self.max_discovered) {
            return Err(Issue::at(
                "max_discovered",
                format!(
                    "docker.max_discovered must be between 1 and {}",
                    Self::MAX_DISCOVERED_LIMIT
                ),
            ));
        }
        if let Some(only) = &self.only_label {
            if self.only().is_none() {
                return Err(Issue::at(
                    "only_label",
                    format!("docker.only_label = {only:?}: expected `key` or `key=value` with a non-empty key"),
                ));
            }
        }
        self.defaults.validate().map_err(|i| i.within("defaults"))
    }

    /// `only_label` as (key, value); the value is None when any value will do.
    pub fn only(&self) -> Option<(String, Option<String>)> {
        let text = self.only_label.as_deref()?.trim();
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.to_string())),
            None => (text, None),
        };
        (!key.is_empty()).then(|| (key.to_string(), value))
    }
}

/// `[docker] discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoverMode {
    /// Only `[[probe]]`s are run.
    Off,
    /// Every container labelled `sentinel.enable=true`.
    Labeled,
    /// Every container with a HEALTHCHECK (autoheal's `all`), unless `sentinel.enable=false`.
    All,
}

/// `[docker.defaults]`: the settings of a discovered probe and its `docker_restart` heal.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryDefaults {
    pub interval: HumanDuration,
    pub timeout: HumanDuration,
    /// Consecutive failed checks before Down. 1 by default: the engine's state is the
    /// evidence, and a HEALTHCHECK already has its own retries.
    pub fail_after: u32,
    pub recover_after: u32,
    /// Restart budget: at most `max_attempts` restarts within `window`.
    pub max_attempts: u32,
    pub window: HumanDuration,
    pub backoff: HumanDuration,
    pub max_backoff: HumanDuration,
    pub verify_within: HumanDuration,
    /// A restart counts as a recovery only once the container stayed Up this long (as on `heal`).
    pub stable_for: HumanDuration,
    /// Seconds Docker waits after SIGTERM before SIGKILL on a restart.
    pub stop_timeout: HumanDuration,
    /// `[[archive.source]]` names collected before each restart (checked at load).
    pub archive: Vec<String>,
}

impl Default for DiscoveryDefaults {
    fn default() -> Self {
        Self {
            interval: HumanDuration::from_secs(10),
            timeout: HumanDuration::from_secs(5),
            fail_after: 1,
            recover_after: 1,
            max_attempts: 3,
            window: HumanDuration::from_secs(600),
            backoff: HumanDuration::from_secs(5),
            max_backoff: HumanDuration::from_secs(300),
            verify_within: HumanDuration::from_secs(60),
            stable_for: HumanDuration::from_secs(10),
            stop_timeout: HumanDuration::from_secs(10),
            archive: Vec::new(),
        }
    }
}

impl DiscoveryDefaults {
    fn validate(&self) -> Result<(), Issue> {
        let (interval, timeout) = (self.interval.get(), self.timeout.get());
        if timeout.is_zero() || timeout > interval {
            return Err(Issue::at(
                "timeout",
                format!(
                    "docker.defaults: timeout {} must be above zero and at most the interval ({})",
                    self.timeout, self.interval
                ),
            ));
        }
        for (key, value) in [
            ("fail_after", self.fail_after),
            ("recover_after", self.recover_after),
        ] {
            if !(1..=64).contains(&value) {
                return Err(Issue::at(
                    key,
                    format!("docker.defaults: {key} must be between 1 and 64"),
                ));
            }
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err(Issue::at(
                "max_attempts",
                "docker.defaults: max_attempts must be between 1 and 100",
            ));
        }
        for (key, value) in [
            ("window", self.window),
            ("verify_within", self.verify_within),
        ] {
            if value.get().is_zero() {
                return Err(Issue::at(
                    key,
                    format!("docker.defaults: {key} must be above zero"),
                ));
            }
        }
        if self.stable_for.get() >= self.window.get() {
            return Err(Issue::at(
                "stable_for",
                format!(
                    "docker.defaults: stable_for ({}) must be shorter than the window ({})",
                    self.stable_for, self.window
                ),
            ));
        }
        Ok(())
    }

    /// Archive source names this section names that `known` does not hold.
    pub fn unknown_archive_source<'a>(&'a self, known: &[&str]) -> Option<&'a str> {
        self.archive
            .iter()
            .map(String::as_str)
            .find(|name| !known.contains(name))
    }
}
