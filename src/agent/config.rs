//! The TOML schema of `agent.toml` and its validation; errors carry file:line:col like the
//! daemon's (the same `ConfigError`, from the `units` leaf).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::parse::{nginx::LogFormat, FieldMap, LatencyUnit, LineParser};
use super::AgentError;
use crate::ingest::{is_dim_name, MAX_DIMS_PER_EVENT};
use crate::tenants::explain::MAX_DIMENSION_NAME_BYTES;
use crate::units::{ByteSize, ConfigError, HumanDuration, Issue, KeyPath, Segment};

/// Where the agent keeps offsets and its disk buffer when none is configured.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sentinel-agent";
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sentinel/agent.toml";
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9137/v1/events";

/// The example shipped as `sentinel-agent.toml.example` (tested to parse).
pub const EXAMPLE_CONFIG: &str = include_str!("../../sentinel-agent.toml.example");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Saved offsets and the disk buffer; see [`AgentConfig::state_dir`] for the default.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub buffer: BufferConfig,
    #[serde(default, rename = "file")]
    pub files: Vec<FileConfig>,
    #[serde(default, rename = "datagram")]
    pub datagrams: Vec<DatagramConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// sentineld's `POST /v1/events` URL (plain http: the agent runs next to sentineld).
    pub endpoint: Spanned<String>,
    /// Sent as `Authorization: Bearer TOKEN` when set (`[tenants.ingest] tokens` on sentineld).
    pub token: Option<String>,
    /// A batch is sent when it holds this many events...
    pub batch_max_events: usize,
    /// ...or when its oldest event has waited this long.
    pub flush_interval: HumanDuration,
    /// A request that takes longer counts as a connection failure (retried).
    pub request_timeout: HumanDuration,
    /// First wait after a retryable failure; doubles up to `retry_max`.
    pub retry_initial: HumanDuration,
    pub retry_max: HumanDuration,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            endpoint: Spanned::new(0..0, DEFAULT_ENDPOINT.to_string()),
            token: None,
            batch_max_events: 1000,
            flush_interval: HumanDuration::from_secs(1),
            request_timeout: HumanDuration::from_secs(10),
            retry_initial: HumanDuration(std::time::Duration::from_millis(200)),
            retry_max: HumanDuration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Cap on the disk buffer; past it the oldest batches are dropped (and counted).
    pub max_bytes: ByteSize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_bytes: ByteSize(256 * 1024 * 1024),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    Json,
    Nginx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Skip what the file already holds the first time it is seen (no saved offset).
    End,
    Beginning,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    pub format: InputFormat,
    /// nginx only: the `log_format` of nginx.conf, verbatim; `combined` is nginx's built-in.
    #[serde(default)]
    pub log_format: Option<Spanned<String>>,
    /// nginx only: appended to `log_format` after one space (what you added after combined).
    #[serde(default)]
    pub append: Option<Spanned<String>>,
    /// Which JSON key / nginx variable holds each event field.
    #[serde(default)]
    pub fields: FieldsConfig,
    /// Dimension name -> the JSON key / nginx variable holding its value (`[file.dims]
    /// region = "region"`); sent as the event's `dims` for `sentinelctl tenants explain`.
    #[serde(default)]
    pub dims: BTreeMap<String, String>,
    /// Unit of the latency field: `ms` (JSON default) or `s` (nginx `$request_time`) or `us`.
    #[serde(default)]
    pub latency_unit: Option<LatencyUnit>,
    #[serde(default = "default_start_at")]
    pub start_at: StartAt,
    /// After a rename rotation, keep reading the old file until it has been quiet this long
    /// (nginx writes to it until it reopens its logs).
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: HumanDuration,
    /// Re-check the file at least this often even without a notify event.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// Longer lines are dropped (and counted): one runaway line must not eat the memory.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: ByteSize,
}

fn default_start_at() -> StartAt {
    StartAt::End
}
fn default_rotate_wait() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_max_line_bytes() -> ByteSize {
    ByteSize(64 * 1024)
}

impl FileConfig {
    /// A JSON-lines file with the canonical field names (the `--log` quick start).
    pub fn json(path: PathBuf) -> Self {
        Self {
            path,
            format: InputFormat::Json,
            log_format: None,
            append: None,
            fields: FieldsConfig::default(),
            dims: BTreeMap::new(),
            latency_unit: None,
            start_at: StartAt::End,
            rotate_wait: default_rotate_wait(),
            poll_interval: default_poll_interval(),
            max_line_bytes: default_max_line_bytes(),
        }
    }

    /// The line parser this source uses (validated at load, so this only fails on configs
    /// built in code). Issue keys are relative to the `[[file]]` table.
    pub fn parser(&self) -> Result<LineParser, Issue> {
        let dims = self.dim_sources()?;
        let fields = |format: InputFormat| FieldMap {
            tenant_id: name(&self.fields.tenant_id, "tenant_id", format),
            endpoint: name(&self.fields.endpoint, "endpoint", format),
            status_code: name(&self.fields.status_code, "status_code", format),
            latency_ms: name(&self.fields.latency_ms, "latency_ms", format),
            timestamp: name(&self.fields.timestamp, "timestamp", format),
            dims: dims.clone(),
        };
        match self.format {
            InputFormat::Json => {
                if self.log_format.is_some() || self.append.is_some() {
                    return Err(Issue::at(
                        "log_format",
                        "log_format and append are for format = \"nginx\"",
                    )
                    .or_at("append"));
                }
                Ok(LineParser::json(
                    fields(InputFormat::Json),
                    self.latency_unit.unwrap_or(LatencyUnit::Ms),
                ))
            }
            InputFormat::Nginx => {
                let base = self.log_format.as_ref().map_or("combined", |f| f.get_ref());
                let mut text = LogFormat::expand(base).to_string();
                if let Some(extra) = &self.append {
                    text.push(' ');
                    text.push_str(extra.get_ref());
                }
                let spot = |issue: Issue| issue.or_at("append").or_at("log_format");
                let format = LogFormat::compile(&text)
                    .map_err(|err| spot(Issue::at("append", err.to_string())))?;
                let fields = fields(InputFormat::Nginx);
                for (key, var, required) in fields.entries() {
                    if !format.has(var) && required {
                        return Err(spot(Issue::at(format!("fields.{key}"), format!(
                            "fields.{key}: ${var} is not in the log format `{text}` (add it with `append`, or map {key} to a variable that is there)"
                        ))));
                    }
                }
                for (dim, var) in &fields.dims {
                    if !format.has(var) {
                        return Err(spot(Issue::at(dim_key(dim), format!(
                            "dims.{dim}: ${var} is not in the log format `{text}` (add it with `append`)"
                        )).or_at("dims")));
                    }
                }
                Ok(LineParser::nginx(
                    format,
                    fields,
                    self.latency_unit.unwrap_or(LatencyUnit::S),
                ))
            }
        }
    }
}

impl FileConfig {
    /// (dimension name, source name) of `[file.dims]`, checked against what sentineld takes.
    fn dim_sources(&self) -> Result<Vec<(String, String)>, Issue> {
        if self.dims.len() > MAX_DIMS_PER_EVENT {
            return Err(Issue::at(
                "dims",
                format!(
                    "dims maps {} dimensions; sentineld takes at most {MAX_DIMS_PER_EVENT} per event",
                    self.dims.len()
                ),
            ));
        }
        self.dims
            .iter()
            .map(|(dim, source)| {
                if !is_dim_name(dim) {
                    return Err(Issue::at(dim_key(dim), format!(
                        "dims: dimension name {dim:?} must be 1-{MAX_DIMENSION_NAME_BYTES} bytes without control characters"
                    ))
                    .or_at("dims"));
                }
                let source = source.trim_start_matches('$');
                if source.is_empty() {
                    return Err(Issue::at(
                        dim_key(dim),
                        format!("dims.{dim}: name the JSON key or nginx variable that holds it"),
                    )
                    .or_at("dims"));
                }
                Ok((dim.clone(), source.to_string()))
            })
            .collect()
    }
}

/// `dims.NAME` as one key, even when the name holds a dot.
fn dim_key(dim: &str) -> KeyPath {
    KeyPath::from(vec![
        Segment::Key("dims".into()),
        Segment::Key(dim.to_string()),
    ])
}

/// The configured name for one event field, else the format's default.
fn name(value: &Option<Spanned<String>>, field: &str, format: InputFormat) -> String {
    if let Some(value) = value {
        return value.get_ref().trim_start_matches('$').to_string();
    }
    match (format, field) {
        (InputFormat::Json, _) => field.to_string(),
        (InputFormat::Nginx, "tenant_id") => "http_x_tenant_id".into(),
        (InputFormat::Nginx, "endpoint") => "request".into(),
        (InputFormat::Nginx, "status_code") => "status".into(),
        (InputFormat::Nginx, "latency_ms") => "request_time".into(),
        (InputFormat::Nginx, _) => "time_local".into(),
    }
}

/// Source names of the event fields; unset ones take the format's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    pub tenant_id: Option<Spanned<String>>,
    pub endpoint: Option<Spanned<String>>,
    pub status_code: Option<Spanned<String>>,
    pub latency_ms: Option<Spanned<String>>,
    pub timestamp: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatagramConfig {
    /// `udp://127.0.0.1:9138` or `unix:///run/sentinel-agent/events.sock`.
    pub listen: Spanned<String>,
    /// Permission bits of a Unix socket, e.g. "0666" so any local app may send.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
}

/// Where a datagram input listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramAddress {
    Udp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl DatagramConfig {
    pub fn address(&self) -> Result<DatagramAddress, AgentError> {
        let text = self.listen.get_ref();
        if let Some(addr) = text.strip_prefix("udp://") {
            return addr.parse().map(DatagramAddress::Udp).map_err(|source| {
                AgentError::UdpAddress {
                    address: addr.to_string(),
                    source,
                }
            });
        }
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(AgentError::RelativeSocket {
                    path: path.to_string(),
                });
            }
            return Ok(DatagramAddress::Unix(PathBuf::from(path)));
        }
        Err(AgentError::ListenScheme {
            listen: text.clone(),
        })
    }

    pub fn mode_bits(&self) -> Result<Option<u32>, AgentError> {
        self.mode
            .as_ref()
            .map(|mode| {
                let refused = |source| AgentError::Mode {
                    mode: mode.get_ref().clone(),
                    source,
                };
                match u32::from_str_radix(mode.get_ref().trim_start_matches("0o"), 8) {
                    Ok(bits) if bits <= 0o777 => Ok(bits),
                    Ok(_) => Err(refused(None)),
                    Err(err) => Err(refused(Some(err))),
                }
            })
            .transpose()
    }
}

/// Read, parse and validate the agent config at `path`.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&source, path)
}

/// Parse and validate config text; `path` is only used in error messages.
pub fn parse(source: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
    crate::units::parse_toml(source, path, AgentConfig::validate)
}

impl AgentConfig {
    /// No file, only flags: one JSON-lines file (if given) shipped to the default endpoint.
    pub fn quick_start(log: Option<PathBuf>) -> Self {
        Self {
            state_dir: None,
            output: OutputConfig::default(),
            buffer: BufferConfig::default(),
            files: log.map(FileConfig::json).into_iter().collect(),
            datagrams: Vec::new(),
        }
    }

    /// The configured state dir, else /var/lib/sentinel-agent for root and a directory in the
    /// user's home otherwise (a developer's laptop).
    pub fn state_dir(&self) -> PathBuf {
        match &self.state_dir {
            Some(dir) => dir.clone(),
            None if nix::unistd::geteuid().is_root() => PathBuf::from(DEFAULT_STATE_DIR),
            None => crate::paths::user_state_dir().join("agent"),
        }
    }

    /// The findings of `parse`, each at the key it is about.
    pub fn validate(&self) -> Result<(), Issue> {
        super::ship::http::Target::parse(self.output.endpoint.get_ref())
            .map_err(|err| Issue::at("output.endpoint", err.to_string()))?;
        if self.output.batch_max_events == 0 {
            return Err(Issue::at(
                "output.batch_max_events",
                "output.batch_max_events must be at least 1",
            ));
        }
        if self.output.retry_initial.get().is_zero() {
            return Err(Issue::at(
                "output.retry_initial",
                "output.retry_initial must be more than 0s",
            ));
        }
        if self.files.is_empty() && self.datagrams.is_empty() {
            return Err(Issue::at(
                "",
                "nothing to ship: add a [[file]] or a [[datagram]] section",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            let key = format!("file[{i}]");
            if !seen.insert(&file.path) {
                return Err(Issue::at(
                    format!("{key}.path"),
                    format!("{} is tailed twice", file.path.display()),
                ));
            }
            file.parser().map_err(|issue| issue.within(key.as_str()))?;
        }
        for (i, datagram) in self.datagrams.iter().enumerate() {
            let key = |field: &str| format!("datagram[{i}].{field}");
            datagram
                .address()
                .map_err(|err| Issue::at(key("listen"), err.to_string()))?;
            datagram
                .mode_bits()
                .map_err(|err| Issue::at(key("mode"), err.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
