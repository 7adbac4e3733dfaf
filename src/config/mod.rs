//! The TOML schema of `sentineld.toml`, its validation (errors carry file:line:col), the diff
//! between two configs that hot reload applies, and the file watcher that triggers reloads.

mod ai;
mod archive;
mod bootstrap;
mod chaos;
mod diff;
mod drill;
mod duration;
mod error;
mod notify;
pub mod paths;
mod probe;
mod secret;
mod size;
mod tenants;
mod watch;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::http::{AccessSettings, Exposure};
use toml::Spanned;

pub use ai::AiSection;
pub use archive::{ArchiveSection, LocalSinkSection, S3Section, SourceKind, SourceSection};
pub use bootstrap::Bootstrap;
pub use chaos::{ChaosProfileConfig, ChaosSection};
pub use diff::ConfigDiff;
pub use drill::DrillSection;
pub use duration::HumanDuration;
pub use error::{line_column, ConfigError};
pub use notify::{ChannelKind, ChannelSection, NotifySection, RouteSection, Severity};
pub use probe::{
    CrashLoopConfig, FlapConfig, HealActionKind, HealConfig, JsonExpectation, PostgresRole,
    ProbeConfig, ProbeKind, QueryExpectationConfig, HTTP_METHODS,
};
pub use secret::{Secret, SecretError, SecretFile};
pub use size::ByteSize;
pub use tenants::{AlertSection, IngestSection, StatusPattern, TenantsSection};
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

/// Names of probes, profiles, sources and drills: letters, digits, `-`, `_` and `.`, not empty
/// (they appear in routes, file names and labels unquoted).
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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

    fn read_secrets(&mut self) -> Result<(), Issue> {
        if let Some(file) = &mut self.read_token_file {
            file.read("read_token_file")
                .map_err(|err| Issue::at(&file.path, format!("http: {err}")))?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Issue> {
        if let Some(file) = &self.read_token_file {
            if file.content().is_some_and(|s| s.tokens().next().is_none()) {
                return Err(Issue::at(
                    &file.path,
                    format!(
                        "http: read_token_file {} holds no token (one per line; # starts a comment)",
                        file.path().display()
                    ),
                ));
            }
        }
        if self.read_tokens.iter().any(|t| t.trim().is_empty()) {
            return Err(Issue {
                offset: None,
                message: "http.read_tokens: a token is empty".into(),
            });
        }
        let no_tokens = self.read_tokens.is_empty() && self.read_token_file.is_none();
        for (field, exposure) in [
            ("metrics", &self.metrics),
            ("status_page", &self.status_page),
        ] {
            if *exposure.get_ref() == Exposure::Token && no_tokens {
                return Err(Issue::at(
                    exposure,
                    format!("http.{field} = \"token\" needs read_tokens or read_token_file"),
                ));
            }
        }
        Ok(())
    }
}

/// Probe names with every dependency before its dependants (config order among equals), or
/// the names along a cycle.
pub fn dependency_order(probes: &[ProbeConfig]) -> Result<Vec<String>, Vec<String>> {
    let parents = |name: &str| -> Vec<String> {
        probes
            .iter()
            .find(|p| p.name() == name)
            .and_then(|p| p.depends_on.as_ref())
            .map(|d| d.get_ref().clone())
            .unwrap_or_default()
    };
    // Depth-first, marking the path to report a cycle.
    fn visit(
        name: &str,
        parents: &dyn Fn(&str) -> Vec<String>,
        done: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        if let Some(start) = path.iter().position(|p| p == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Err(cycle);
        }
        path.push(name.to_string());
        for parent in parents(name) {
            visit(&parent, parents, done, path)?;
        }
        path.pop();
        done.push(name.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for probe in probes {
        visit(probe.name(), &parents, &mut done, &mut Vec::new())?;
    }
    Ok(done)
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
    let mut config: Config = parse_with(source, path, |_: &Config| Ok(()))?;
    config
        .read_secrets()
        .and_then(|()| config.validate())
        .map_err(|issue| place(source, path, issue.offset, issue.message))?;
    Ok(config)
}

/// Deserializes any TOML file of ours and runs `validate` on it, placing every finding at
/// file:line:col (a finding without a byte offset is about the whole file).
pub fn parse_with<T: serde::de::DeserializeOwned>(
    source: &str,
    path: &Path,
    validate: impl FnOnce(&T) -> Result<(), (Option<usize>, String)>,
) -> Result<T, ConfigError> {
    let value: T = toml::from_str(source).map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        invalid_at(source, path, offset, err.message().trim().to_string())
    })?;
    validate(&value).map_err(|(offset, message)| place(source, path, offset, message))?;
    Ok(value)
}

/// A finding at file:line:col, or about the whole file when it has no offset.
fn place(source: &str, path: &Path, offset: Option<usize>, message: String) -> ConfigError {
    match offset {
        Some(offset) => invalid_at(source, path, offset, message),
        None => ConfigError::Whole {
            path: path.to_path_buf(),
            message,
        },
    }
}

fn invalid_at(source: &str, path: &Path, offset: usize, message: String) -> ConfigError {
    let (line, column) = line_column(source, offset);
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// A validation finding before it is placed in the file.
pub(crate) struct Issue {
    pub(crate) offset: Option<usize>,
    pub(crate) message: String,
}

impl Issue {
    pub(crate) fn at<T>(value: &Spanned<T>, message: impl Into<String>) -> Self {
        Self {
            offset: Some(value.span().start),
            message: message.into(),
        }
    }
}

impl Config {
    /// Read every secret file the config names (`token_file`, `url_file`, `secret_file`,
    /// `password_file`, `read_token_file`): at load and on every reload, so a rotated file is
    /// what the next reload applies.
    fn read_secrets(&mut self) -> Result<(), Issue> {
        self.http.read_secrets()?;
        self.tenants.read_secrets()?;
        self.notify.read_secrets()?;
        self.probes
            .iter_mut()
            .try_for_each(ProbeConfig::read_secrets)
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

    fn validate(&self) -> Result<(), Issue> {
        if let Some(mode) = &self.daemon.socket_mode {
            parse_octal_mode(mode.get_ref()).map_err(|message| Issue::at(mode, message))?;
        }
        if self.journal.max_events == 0 {
            return Err(Issue {
                offset: None,
                message: "journal.max_events must be at least 1".into(),
            });
        }
        self.http.validate()?;
        self.tenants.validate()?;
        self.notify.validate()?;
        self.ai.validate()?;
        let mut names = HashSet::new();
        for probe in &self.probes {
            probe.validate()?;
            if !names.insert(probe.name()) {
                return Err(Issue::at(
                    &probe.name,
                    format!("duplicate probe name \"{}\"", probe.name()),
                ));
            }
        }
        self.validate_dependencies(&names)?;
        self.archive.validate(&self.probes)?;
        self.chaos.validate(&names)?;
        drill::validate(self)
    }

    /// The `[[drill]]`s as the drill runner uses them.
    pub fn drills(&self) -> Vec<crate::drill::Drill> {
        self.drills.iter().map(DrillSection::drill).collect()
    }

    /// Every `depends_on` names another existing probe, and the graph has no cycle.
    fn validate_dependencies(&self, names: &HashSet<&str>) -> Result<(), Issue> {
        for probe in &self.probes {
            let Some(depends_on) = &probe.depends_on else {
                continue;
            };
            for parent in depends_on.get_ref() {
                if parent == probe.name() || !names.contains(parent.as_str()) {
                    let what = if parent == probe.name() {
                        "itself"
                    } else {
                        "an unknown probe"
                    };
                    return Err(Issue::at(
                        depends_on,
                        format!(
                            "probe \"{}\": depends_on names {what}: \"{parent}\"",
                            probe.name()
                        ),
                    ));
                }
            }
        }
        if let Err(cycle) = dependency_order(&self.probes) {
            let probe = self
                .probes
                .iter()
                .find(|p| p.name() == cycle[0])
                .expect("named in the cycle");
            return Err(Issue::at(
                probe.depends_on.as_ref().expect("part of a cycle"),
                format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(source: &str) -> Result<Config, String> {
        parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn example_config_is_valid() {
        let config = parse_str(EXAMPLE_CONFIG).expect("example config must parse");
        assert!(
            !config.probes.is_empty(),
            "the example must do something visible"
        );
    }

    #[test]
    fn empty_config_uses_defaults() {
        let config = parse_str("").unwrap();
        assert_eq!(
            config.daemon.socket,
            PathBuf::from(paths::DEFAULT_SOCKET_PATH)
        );
        assert_eq!(config.daemon.socket_mode_bits(), 0o660);
        assert_eq!(config.journal.max_events, 1_000_000);
        assert!(config.http.enabled);
    }

    #[test]
    fn errors_point_at_file_line_column() {
        let cases: &[(&str, &str)] = &[
            (
                "[[probe]]\nname = \"a\"\nkind = \"htp\"\n",
                "t.toml:3:8: unknown probe kind \"htp\" (expected one of http, tcp, postgres, docker, exec)",
            ),
            ("[daemon]\nsokcet = \"/x\"\n", "t.toml:2:1: unknown field `sokcet`"),
            ("[journal]\nmax_age = \"5x\"\n", "t.toml:2:11: invalid duration \"5x\""),
            ("[daemon]\nsocket_mode = \"0999\"\n", "t.toml:2:15: invalid socket_mode \"0999\""),
            ("[http]\nlisten = \"nowhere\"\n", "t.toml:2:10:"),
            (
                "[http]\nmetrics = \"token\"\n",
                "t.toml:2:11: http.metrics = \"token\" needs read_tokens or read_token_file",
            ),
            (
                "[http]\nstatus_page = \"maybe\"\n",
                "t.toml:2:15: unknown variant `maybe`, expected one of `on`, `off`, `token`",
            ),
            (
                "[http]\nread_token_file = \"/nonexistent/read\"\n",
                "t.toml:2:19: http: cannot read read_token_file /nonexistent/read",
            ),
            ("a = [\n", "t.toml:1:6: unclosed array"),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\n",
                "t.toml:3:8: probe \"a\": http probes need `url`",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nurl = \"http://x/\"\n",
                "t.toml:5:7: probe \"a\": `url` does not apply to tcp probes",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"nope\"\n",
                "t.toml:4:11: probe \"a\": invalid address \"nope\": expected host:port",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"ftp://x/\"\n",
                "t.toml:4:7: probe \"a\": unsupported URL scheme",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\ninterval = \"5s\"\ntimeout = \"10s\"\n",
                "t.toml:6:11: probe \"a\": timeout 10s must be above zero and at most the interval (5s)",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nfail_after = 0\n",
                "t.toml:5:14: probe \"a\": fail_after must be between 1 and 64",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:2\"\n",
                "t.toml:6:8: duplicate probe name \"a\"",
            ),
            (
                "[[probe]]\nname = \"a b\"\nkind = \"tcp\"\naddress = \"h:1\"\n",
                "t.toml:2:8: invalid probe name \"a b\"",
            ),
            ("[journal]\nmax_events = 0\n", "t.toml: journal.max_events must be at least 1"),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nheal = { action = \"docker_restart\" }\n",
                "t.toml:5:8: probe \"a\": heal action docker_restart needs `container`",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nheal = { action = \"reboot\" }\n",
                "t.toml:5:19: unknown variant `reboot`, expected `docker_restart` or `exec`",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n",
                "t.toml:5:14: probe \"a\": depends_on needs a `heal` action",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nheal = { action = \"exec\", command = [\"true\"] }\ndepends_on = [\"b\"]\n",
                "t.toml:6:14: probe \"a\": depends_on names an unknown probe: \"b\"",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nheal = { action = \"exec\", command = [\"true\"] }\ndepends_on = [\"b\"]\n[[probe]]\nname = \"b\"\nkind = \"exec\"\ncommand = [\"true\"]\nheal = { action = \"exec\", command = [\"true\"] }\ndepends_on = [\"a\"]\n",
                "t.toml:6:14: depends_on forms a cycle: a -> b -> a",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\ntls_verify = false\n",
                "t.toml:5:14: probe \"a\": `tls_verify` needs an https:// url",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x/\"\nca_file = \"/nonexistent/ca.pem\"\n",
                "t.toml:5:11: probe \"a\": cannot read ca_file /nonexistent/ca.pem",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"postgres\"\n",
                "t.toml:3:8: probe \"a\": postgres probes need `user`",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"postgres\"\nuser = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
                "t.toml:5:17: probe \"a\": cannot read password_file /nonexistent/pw",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"postgres\"\nuser = \"u\"\nmax_connections_used = 150.0\n",
                "t.toml:5:24: probe \"a\": max_connections_used is a percentage",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"postgres\"\nuser = \"u\"\nexpect_role = \"leader\"\n",
                "t.toml:5:15: unknown variant `leader`, expected `primary` or `replica`",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nuser = \"u\"\n",
                "t.toml:5:8: probe \"a\": `user` does not apply to http probes",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"docker\"\n",
                "t.toml:3:8: probe \"a\": docker probes need `container`",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"docker\"\ncontainer = \"c\"\ncrash_loop = { restarts = 0, within = \"1m\" }\n",
                "t.toml:5:14: probe \"a\": crash_loop needs restarts >= 1",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"exec\"\n",
                "t.toml:3:8: probe \"a\": exec probes need `command`",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = []\n",
                "t.toml:4:11: probe \"a\": command needs a program",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nsend = \"PING\"\n",
                "t.toml:5:8: probe \"a\": `send` does not apply to http probes",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nmax_latency = \"1s\"\n",
                "t.toml:5:15: probe \"a\": `max_latency` does not apply to exec probes",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nbody_regex = \"(\"\n",
                "t.toml:5:14: probe \"a\": invalid regular expression",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nmethod = \"FETCH\"\n",
                "t.toml:5:10: probe \"a\": unknown method \"FETCH\" (expected one of GET, HEAD",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nflap = { failures = 5, within = 3 }\n",
                "t.toml:5:8: probe \"a\": flap needs 1 <= failures <= within <= 64",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nexpect_json = { pointer = \"status\", equals = \"ok\" }\n",
                "t.toml:5:15: probe \"a\": invalid JSON pointer \"status\"",
            ),
            (
                "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nexpect_json = { pointer = \"/s\", equal = 1 }\n",
                "t.toml:5:",
            ),
            (
                "[tenants]\nenabled = true\nbucket = \"7s\"\n",
                "t.toml:3:10: tenants: latency_bucket (1m) must be a whole multiple of bucket (7s)",
            ),
            (
                "[tenants]\nwindow = \"10m\"\nbucket = \"1ms\"\n",
                "t.toml:3:10: tenants: window / bucket is 600000 buckets",
            ),
            ("[tenants]\nmax_tenants = 0\n", "t.toml:2:15: tenants: max_tenants must be at least 1"),
            ("[tenants]\nerror_status = [\"6xx\"]\n", "t.toml:2:17: status pattern \"6xx\" must lie within 100-599"),
            ("[tenants]\nerror_status = []\n", "t.toml:2:16: tenants: error_status needs at least one status pattern"),
            ("[tenants]\nmax_memory = \"lots\"\n", "t.toml:2:14: invalid size \"lots\""),
            ("[tenants]\nwindow = \"10m\"\nwindo = \"5m\"\n", "t.toml:3:1: unknown field `windo`"),
            ("[tenants.ingest]\nmax_concurrent_requests = 0\n", "t.toml:2:27: tenants.ingest: max_concurrent_requests must be at least 1"),
            (
                "[tenants.ingest]\ntoken_file = \"/nonexistent/tokens\"\n",
                "t.toml:2:14: tenants.ingest: cannot read token_file /nonexistent/tokens",
            ),
            (
                "[[tenants.alert]]\nname = \"a\"\nwhen = \"error_shares\"\nthreshold = 50\n",
                "t.toml:3:8: tenant alert \"a\": unknown condition \"error_shares\" (expected one of error_share",
            ),
            (
                "[[tenants.alert]]\nname = \"a\"\nwhen = \"error_share\"\nthreshold = 150\n",
                "t.toml:4:13: tenant alert \"a\": threshold 150 out of range for error_share (a percentage above 0, at most 100)",
            ),
            (
                "[[tenants.alert]]\nname = \"a\"\nwhen = \"p95\"\nthreshold = 100\nwindow = \"1h\"\n",
                "t.toml:2:8: tenant alert \"a\": window must be above zero and at most the tenants window (10m)",
            ),
            (
                "[[tenants.alert]]\nname = \"a\"\nwhen = \"p95\"\nthreshold = 100\n[[tenants.alert]]\nname = \"a\"\nwhen = \"errors\"\nthreshold = 5\n",
                "t.toml:6:8: duplicate tenant alert name \"a\"",
            ),
        ];
        for (source, expected) in cases {
            let err = parse_str(source).expect_err(source);
            assert!(
                err.starts_with(expected),
                "source {source:?}\n  got:  {err}\n  want: {expected}"
            );
        }
    }

    #[test]
    fn dependency_order_puts_parents_first() {
        let probe = |name: &str, parents: &[&str]| {
            let heal = "heal = { action = \"exec\", command = [\"true\"] }\n";
            let depends = if parents.is_empty() {
                String::new()
            } else {
                let quoted: Vec<String> = parents.iter().map(|p| format!("\"{p}\"")).collect();
                format!("depends_on = [{}]\n", quoted.join(", "))
            };
            format!("[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"true\"]\n{heal}{depends}")
        };
        let source = [
            probe("web", &["api"]),
            probe("api", &["db", "cache"]),
            probe("db", &[]),
            probe("cache", &[]),
            probe("worker", &["db"]),
        ]
        .concat();
        let config = parse_str(&source).unwrap();
        let order = dependency_order(&config.probes).unwrap();
        assert_eq!(order, ["db", "cache", "api", "web", "worker"]);
    }

    #[test]
    fn secret_file_errors_name_the_file_never_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, content: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path.display().to_string()
        };
        let hook = |field: &str, path: &str| {
            format!("[[notify.channel]]\nname = \"h\"\nkind = \"webhook\"\n{field} = \"{path}\"\n")
        };
        let no_scheme = file("no-scheme", "hooks.example.com/SECRET-MARKER\n");
        let garbage = file("garbage", "https://exa mple.com/SECRET-MARKER\n");
        let empty = file("empty", "\n");
        let comments = file("comments", "# SECRET-MARKER rotated\n\n");
        let url = file("url", "http://127.0.0.1:9/\n");
        let cases: Vec<(String, String)> = vec![
            (
                hook("url_file", &no_scheme),
                format!("t.toml:4:12: notify channel \"h\": url_file {no_scheme}: the URL has no http:// or https:// scheme"),
            ),
            (
                hook("url_file", &garbage),
                format!("t.toml:4:12: notify channel \"h\": url_file {garbage}: the first line is not a valid URL"),
            ),
            (
                hook("url_file", &empty),
                format!("t.toml:4:12: notify channel \"h\": url_file {empty} is empty (expected a URL on its first line)"),
            ),
            (
                format!("{}secret_file = \"{empty}\"\n", hook("url_file", &url)),
                format!("t.toml:5:15: notify channel \"h\": secret_file {empty} is empty"),
            ),
            (
                format!("[tenants.ingest]\ntoken_file = \"{comments}\"\n"),
                format!("t.toml:2:14: tenants.ingest: token_file {comments} holds no token"),
            ),
        ];
        for (source, expected) in cases {
            let err = parse_str(&source).expect_err(&source);
            assert!(
                err.starts_with(&expected),
                "source {source:?}\n  got:  {err}\n  want: {expected}"
            );
            assert!(!err.contains("MARKER"), "{err}");
        }
    }

    #[test]
    fn missing_file_says_which() {
        let err = load(Path::new("/nonexistent/sentineld.toml")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot read config /nonexistent/sentineld.toml"));
    }

    #[test]
    fn hash_is_stable_and_content_sensitive() {
        assert_eq!(content_hash(b"a"), content_hash(b"a"));
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        assert_eq!(content_hash(b"").len(), 64);
    }
}
