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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::drill::config::{validate_drills, DrillContext};
use crate::http::{AccessSettings, Exposure};
use crate::units::Issue;

pub use crate::ai::config::AiSection;
pub use crate::archive::config::{
    ArchiveSection, LocalSinkSection, S3Section, SourceKind, SourceSection,
};
pub use crate::chaos::config::{ChaosProfileConfig, ChaosSection};
pub use crate::drill::config::DrillSection;
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
            .and_then(|mode| parse_octal_mode(mode.get_ref()).ok())
            .unwrap_or(Self::DEFAULT_SOCKET_MODE)
    }
}

fn parse_octal_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(bits) if bits <= 0o777 => Ok(bits),
        _ => Err(format!(
            "invalid socket_mode \"{text}\": expected octal permission bits such as \"0660\""
        )),
    }
}

/// Where the Docker engine listens (used only when a probe or action needs it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSection {
    pub socket: PathBuf,
}

impl Default for DockerSection {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(crate::docker::DEFAULT_SOCKET),
        }
    }
}

/// Journal retention: events older than `max_age` or beyond the newest `max_events` are pruned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    pub max_age: HumanDuration,
    pub max_events: u64,
}

impl Default for JournalSection {
    fn default() -> Self {
        Self {
            max_age: HumanDuration::from_secs(30 * 24 * 3600),
            max_events: 1_000_000,
        }
    }
}

/// The public TCP listener (`/healthz`, `/metrics`, ingest, the status page) and who may read
/// its read routes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `/metrics`: "on" (anyone who reaches the listener), "off" (404) or "token" (a read token).
    pub metrics: Spanned<Exposure>,
    /// The status page (`GET /`): "on", "off" or "token", as `metrics`.
    pub status_page: Spanned<Exposure>,
    /// Bearer tokens that open the routes set to "token"; they never allow ingest (and ingest
    /// tokens never open these).
    pub read_tokens: Vec<String>,
    /// A file with one read token per line; read at load and on every reload.
    pub read_token_file: Option<SecretFile>,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9137)),
            metrics: Spanned::new(0..0, Exposure::On),
            status_page: Spanned::new(0..0, Exposure::On),
            read_tokens: Vec::new(),
            read_token_file: None,
        }
    }
}

impl HttpSection {
    /// The inline read tokens plus those `read_token_file` held at load.
    pub fn all_read_tokens(&self) -> Vec<String> {
        let mut tokens = self.read_tokens.clone();
        if let Some(secret) = self.read_token_file.as_ref().and_then(SecretFile::content) {
            tokens.extend(secret.tokens().map(String::from));
        }
        tokens
    }

    /// What the public listener enforces.
    pub fn access_settings(&self) -> AccessSettings {
        AccessSettings {
            metrics: *self.metrics.get_ref(),
            status_page: *self.status_page.get_ref(),
            read_tokens: self.all_read_tokens(),
        }
    }

    /// Keys are relative to `[http]`.
    fn read_secrets(&mut self) -> Result<(), Issue> {
        if let Some(file) = &mut self.read_token_file {
            file.read("read_token_file")
                .map_err(|err| Issue::at("read_token_file", format!("http: {err}")))?;
        }
        Ok(())
    }

    /// Checks `[http]`; keys are relative to it.
    fn validate(&self) -> Result<(), Issue> {
        if let Some(file) = &self.read_token_file {
            if file.content().is_some_and(|s| s.tokens().next().is_none()) {
                return Err(Issue::at(
                    "read_token_file",
                    format!(
                        "http: read_token_file {} holds no token (one per line; # starts a comment)",
                        file.path().display()
                    ),
                ));
            }
        }
        if let Some(i) = self.read_tokens.iter().position(|t| t.trim().is_empty()) {
            return Err(Issue::at(
                format!("read_tokens[{i}]"),
                "http.read_tokens: a token is empty",
            ));
        }
        let no_tokens = self.read_tokens.is_empty() && self.read_token_file.is_none();
        for (field, exposure) in [
            ("metrics", &self.metrics),
            ("status_page", &self.status_page),
        ] {
            if *exposure.get_ref() == Exposure::Token && no_tokens {
                return Err(Issue::at(
                    field,
                    format!("http.{field} = \"token\" needs read_tokens or read_token_file"),
                ));
            }
        }
        Ok(())
    }
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
    /// `password_file`, `read_token_file`): at load and on every reload, so a rotated file is
    /// what the next reload applies.
    fn read_secrets(&mut self) -> Result<(), Issue> {
        self.http.read_secrets().map_err(|i| i.within("http"))?;
        self.tenants
            .read_secrets()
            .map_err(|i| i.within("tenants"))?;
        self.notify.read_secrets().map_err(|i| i.within("notify"))?;
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
        }
        for probe in &self.probes {
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
            channel.url_file.iter_mut().for_each(SecretFile::forget);
            channel.secret_file.iter_mut().for_each(SecretFile::forget);
        }
        for probe in &mut bare.probes {
            probe.password_file.iter_mut().for_each(SecretFile::forget);
        }
        bare
    }

    /// Each section checks itself; this gives each the names it refers to and the key it
    /// sits at, in the order a reader meets them.
    fn validate(&self) -> Result<(), Issue> {
        if let Some(mode) = &self.daemon.socket_mode {
            parse_octal_mode(mode.get_ref())
                .map_err(|message| Issue::at("daemon.socket_mode", message))?;
        }
        if self.journal.max_events == 0 {
            return Err(Issue::at(
                "journal.max_events",
                "journal.max_events must be at least 1",
            ));
        }
        self.http.validate().map_err(|i| i.within("http"))?;
        self.tenants.validate().map_err(|i| i.within("tenants"))?;
        self.notify.validate().map_err(|i| i.within("notify"))?;
        self.ai.validate().map_err(|i| i.within("ai"))?;
        let names =
            crate::probe::config::validate_probes(&self.probes).map_err(|i| i.within("probe"))?;
        self.archive
            .validate(&self.probes)
            .map_err(|i| i.within("archive"))?;
        self.archive
            .validate_heal_sources(&self.probes)
            .map_err(|i| i.within("probe"))?;
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
        validate_drills(&self.drills, &known).map_err(|i| i.within("drill"))
    }

    /// The `[[drill]]`s as the drill runner uses them.
    pub fn drills(&self) -> Vec<crate::drill::Drill> {
        self.drills.iter().map(DrillSection::drill).collect()
    }
}
