//! Loads `sentineld.toml` into the areas' own sections (`probe::config`, `chaos::config`, ...):
//! file:line:col errors, secret files, the diff hot reload applies, the watcher; re-exports the
//! default [`paths`] the daemon resolves.
//!
//! Each area validates its section into an [`Issue`] naming a key (`probe[2].timeout`); this
//! module prefixes the section's key and places it in the file ([`crate::units::place`]).
//! Areas never import this module; it imports them.

mod bootstrap;
mod diff;
#[cfg(test)]
mod tests;
mod watch;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::drill::config::{validate_drills, DrillContext};
use crate::units::Issue;

pub use crate::ai::config::AiSection;
pub use crate::archive::config::{
    ArchiveSection, LocalSinkSection, S3Section, SourceKind, SourceSection,
};
pub use crate::chaos::config::{ChaosProfileConfig, ChaosSection};
pub use crate::checkin::config::{CheckinMethod, HeartbeatSection};
pub use crate::docker::config::DockerSection;
pub use crate::drill::config::DrillSection;
pub use crate::http::config::HttpSection;
pub use crate::journal::config::JournalSection;
pub use crate::maintenance::config::MaintenanceSection;
pub use crate::notify::config::{
    ChannelKind, ChannelSection, NotifySection, RouteSection, Severity,
};
pub use crate::paths;
pub use crate::probe::config::{
    dependency_order, CrashLoopConfig, FlapConfig, HealActionKind, HealConfig, JsonExpectation,
    PostgresRole, ProbeConfig, ProbeKind, QueryExpectationConfig, HTTP_METHODS,
};
pub use crate::tenants::config::{AlertSection, IngestSection, StatusPattern, TenantsSection};
pub use crate::units::{
    line_column, parse_toml, ByteSize, ConfigError, HumanDuration, Secret, SecretError, SecretFile,
};
pub use bootstrap::Bootstrap;
pub use diff::ConfigDiff;
pub use watch::{ConfigWatcher, WatchError};

/// The configuration shipped as `sentineld.toml.example`, compiled in so `sentineld
/// print-default-config` can bootstrap a fresh host.
pub const EXAMPLE_CONFIG: &str = include_str!("../../sentineld.toml.example");

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonSection,
    #[serde(default)]
    pub journal: JournalSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub docker: DockerSection,
    #[serde(default, rename = "probe")]
    pub probes: Vec<ProbeConfig>,
    #[serde(default)]
    pub tenants: TenantsSection,
    #[serde(default)]
    pub chaos: ChaosSection,
    #[serde(default)]
    pub archive: ArchiveSection,
    #[serde(default)]
    pub notify: NotifySection,
    #[serde(default, rename = "drill")]
    pub drills: Vec<DrillSection>,
    #[serde(default)]
    pub ai: AiSection,
    /// `[heartbeat]`: where sentineld checks in; absent, it checks in nowhere.
    pub heartbeat: Option<HeartbeatSection>,
    /// `[[maintenance]]`: scheduled maintenance windows.
    #[serde(default, rename = "maintenance")]
    pub maintenance: Vec<MaintenanceSection>,
}

/// Process-wide settings. They are read once at start: changing them needs a restart, and a
/// reload says so instead of half-applying them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// Group that owns the control socket; its members may call mutating routes.
    pub socket_group: String,
    /// Octal permission bits of the control socket, e.g. "0660".
    pub socket_mode: Option<Spanned<String>>,
}

impl Default for DaemonSection {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(paths::DEFAULT_STATE_DIR),
            socket: PathBuf::from(paths::DEFAULT_SOCKET_PATH),
            socket_group: paths::DEFAULT_SOCKET_GROUP.to_string(),
            socket_mode: None,
        }
    }
}

impl DaemonSection {
    pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

    /// The socket mode, already validated by [`Config::validate`].
    pub fn socket_mode_bits(&self) -> u32 {
        self.socket_mode
            .as_ref()
            .and_then(|mode| parse_octal_mode(mode.get_ref()))
            .unwrap_or(Self::DEFAULT_SOCKET_MODE)
    }
}

/// Permission bits written in octal ("0660", "0o660"), at most 0o777.
fn parse_octal_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|bits| *bits <= 0o777)
}

/// A config as loaded from disk: the parsed value plus where it came from and its content hash.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex: tells whether a reload changed anything.
    pub hash: String,
    /// The file's text, as accepted (kept in the state dir for rollback after a crash).
    pub source: String,
}

/// Read, parse and validate the config at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    from_source(path, read_source(path)?)
}

/// The config file's text (not yet parsed).
pub fn read_source(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse and validate text read from `path` by [`read_source`].
pub fn from_source(path: &Path, source: String) -> Result<LoadedConfig, ConfigError> {
    let config = parse(&source, path)?;
    Ok(LoadedConfig {
        config,
        path: path.to_path_buf(),
        hash: content_hash(source.as_bytes()),
        source,
    })
}

pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse config text, read the secret files it names, and validate; `path` is only used in
/// error messages.
pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = parse_toml(source, path, |_: &Config| Ok(()))?;
    config
        .read_secrets()
        .and_then(|()| config.validate())
        .map_err(|issue| crate::units::place(source, path, &issue))?;
    Ok(config)
}

impl Config {
    /// Read every secret file the config names (`token_file`, `url_file`, `secret_file`,
    /// `password_file`, `read_token_file`, a heartbeat's `token_file`): at load and on every reload, so a rotated file is
    /// what the next reload applies.
    fn read_secrets(&mut self) -> Result<(), Issue> {
        self.http.read_secrets().map_err(|i| i.within("http"))?;
        self.tenants
            .read_secrets()
            .map_err(|i| i.within("tenants"))?;
        self.notify.read_secrets().map_err(|i| i.within("notify"))?;
        if let Some(heartbeat) = &mut self.heartbeat {
            heartbeat
                .read_secrets()
                .map_err(|i| i.within("heartbeat"))?;
        }
        for (i, probe) in self.probes.iter_mut().enumerate() {
            probe
                .read_secrets()
                .map_err(|issue| issue.within(format!("probe[{i}]")))?;
        }
        Ok(())
    }

    /// Every secret file with what it holds, named as a reload report says it.
    pub fn secret_files(&self) -> Vec<(String, &SecretFile)> {
        let mut files = Vec::new();
        if let Some(file) = &self.http.read_token_file {
            files.push(("read tokens (from read_token_file)".to_string(), file));
        }
        if let Some(file) = &self.tenants.ingest.token_file {
            files.push(("ingest tokens (from token_file)".to_string(), file));
        }
        for channel in &self.notify.channels {
            let name = channel.name();
            if let Some(file) = &channel.url_file {
                files.push((format!("notify channel {name} URL (from url_file)"), file));
            }
            if let Some(file) = &channel.secret_file {
                files.push((
                    format!("notify channel {name} secret (from secret_file)"),
                    file,
                ));
            }
            for (what, field, file) in [
                ("routing key", "routing_key_file", &channel.routing_key_file),
                ("token", "token_file", &channel.token_file),
                ("password", "password_file", &channel.password_file),
            ] {
                if let Some(file) = file {
                    files.push((format!("notify channel {name} {what} (from {field})"), file));
                }
            }
        }
        if let Some(heartbeat) = &self.heartbeat {
            if let Some(file) = &heartbeat.url_file {
                files.push(("check-in URL (from [heartbeat] url_file)".to_string(), file));
            }
            if let Some(file) = &heartbeat.token_file {
                files.push((
                    "check-in token (from [heartbeat] token_file)".to_string(),
                    file,
                ));
            }
        }
        for probe in &self.probes {
            if let Some(file) = &probe.token_file {
                files.push((
                    format!("probe {} beat tokens (from token_file)", probe.name()),
                    file,
                ));
            }
            if let Some(file) = &probe.password_file {
                files.push((
                    format!("probe {} password (from password_file)", probe.name()),
                    file,
                ));
            }
        }
        files
    }

    /// The same config with every secret file's content forgotten (paths kept).
    pub(crate) fn without_secret_contents(&self) -> Config {
        let mut bare = self.clone();
        bare.http
            .read_token_file
            .iter_mut()
            .for_each(SecretFile::forget);
        if let Some(file) = &mut bare.tenants.ingest.token_file {
            file.forget();
        }
        for channel in &mut bare.notify.channels {
            channel.forget_secrets();
        }
        if let Some(heartbeat) = &mut bare.heartbeat {
            heartbeat.url_file.iter_mut().for_each(SecretFile::forget);
            heartbeat.token_file.iter_mut().for_each(SecretFile::forget);
        }
        for probe in &mut bare.probes {
            probe.password_file.iter_mut().for_each(SecretFile::forget);
            probe.token_file.iter_mut().for_each(SecretFile::forget);
        }
        bare
    }

    /// Each section checks itself; this gives each the names it refers to and the key it
    /// sits at, in the order a reader meets them.
    fn validate(&self) -> Result<(), Issue> {
        if let Some(mode) = &self.daemon.socket_mode {
            let text = mode.get_ref();
            if parse_octal_mode(text).is_none() {
                return Err(Issue::at(
                    "daemon.socket_mode",
                    format!("invalid socket_mode \"{text}\": expected octal permission bits such as \"0660\""),
                ));
            }
        }
        self.journal.validate().map_err(|i| i.within("journal"))?;
        self.docker.validate().map_err(|i| i.within("docker"))?;
        self.http.validate().map_err(|i| i.within("http"))?;
        self.tenants.validate().map_err(|i| i.within("tenants"))?;
        self.notify.validate().map_err(|i| i.within("notify"))?;
        self.ai.validate().map_err(|i| i.within("ai"))?;
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.validate().map_err(|i| i.within("heartbeat"))?;
        }
        let names =
            crate::probe::config::validate_probes(&self.probes).map_err(|i| i.within("probe"))?;
        self.archive
            .validate(&self.probes)
            .map_err(|i| i.within("archive"))?;
        self.archive
            .validate_heal_sources(&self.probes)
            .map_err(|i| i.within("probe"))?;
        let sources: Vec<&str> = self.archive.sources.iter().map(|s| s.name()).collect();
        if let Some(unknown) = self.docker.defaults.unknown_archive_source(&sources) {
            return Err(Issue::at(
                "docker.defaults.archive",
                format!(
                    "docker.defaults: archive names an unknown source \"{unknown}\" (define it as [[archive.source]] name = \"{unknown}\")"
                ),
            ));
        }
        self.chaos.validate(&names).map_err(|i| i.within("chaos"))?;
        let known = DrillContext {
            healing: self
                .probes
                .iter()
                .filter(|p| p.heal.is_some())
                .map(ProbeConfig::name)
                .collect(),
            probes: names,
            profiles: self
                .chaos
                .profiles
                .iter()
                .map(|p| p.name.get_ref().as_str())
                .collect(),
            alert_rules: self
                .tenants
                .alerts
                .iter()
                .map(|a| a.name.get_ref().as_str())
                .collect(),
            max_duration: self.chaos.max_duration,
        };
        validate_drills(&self.drills, &known).map_err(|i| i.within("drill"))?;
        let probe_names = self.probes.iter().map(ProbeConfig::name).collect();
        crate::maintenance::config::validate_maintenance(&self.maintenance, &probe_names)
            .map_err(|i| i.within("maintenance"))
    }

    /// The `[[drill]]`s as the drill runner uses them.
    pub fn drills(&self) -> Vec<crate::drill::Drill> {
        self.drills.iter().map(DrillSection::drill).collect()
    }
}
