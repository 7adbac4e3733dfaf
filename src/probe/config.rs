//! The `[[probe]]` schema: common settings, the settings of each kind, and their validation.
//! A setting that does not belong to the probe's kind is an error, so a typo never does nothing.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;
use toml::Spanned;

use crate::event::RemedyAction;
use crate::units::{is_plain_name, HumanDuration, Issue, SecretFile};

mod host;
pub use host::{Amount, LoadAverage, DEFAULT_GRACE};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub name: Spanned<String>,
    pub kind: Spanned<ProbeKind>,
    #[serde(default = "ProbeConfig::default_interval")]
    pub interval: Spanned<HumanDuration>,
    #[serde(default = "ProbeConfig::default_timeout")]
    pub timeout: Spanned<HumanDuration>,
    /// Consecutive failures before the probe is Down.
    #[serde(default = "ProbeConfig::default_fail_after")]
    pub fail_after: Spanned<u32>,
    /// Consecutive successes before a Down probe is Up again.
    #[serde(default = "ProbeConfig::default_recover_after")]
    pub recover_after: Spanned<u32>,
    /// Also Down when `failures` of the last `within` checks failed (flapping).
    pub flap: Option<Spanned<FlapConfig>>,
    /// A check slower than this fails (reason `assertion`) even if it answered correctly.
    pub max_latency: Option<Spanned<HumanDuration>>,

    // kind = "http"
    pub url: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    /// Accepted status codes; default: any 2xx.
    pub expect_status: Option<Spanned<Vec<u16>>>,
    /// The response body must match this regular expression.
    pub body_regex: Option<Spanned<String>>,
    /// The response body is JSON and the value at `pointer` equals `equals`.
    pub expect_json: Option<Spanned<JsonExpectation>>,
    /// https: verify the server certificate (default true). false accepts any certificate.
    pub tls_verify: Option<Spanned<bool>>,
    /// https: trust only the CAs in this PEM file instead of the system store.
    pub ca_file: Option<Spanned<std::path::PathBuf>>,

    // kind = "tcp"
    pub address: Option<Spanned<String>>,
    /// Bytes to write after connecting (TOML escapes such as "\r\n" work).
    pub send: Option<Spanned<String>>,
    /// What the peer must answer: a regular expression over the first bytes read.
    pub expect: Option<Spanned<String>>,

    // kind = "exec"
    /// Program and arguments; no shell is involved.
    pub command: Option<Spanned<Vec<String>>>,
    /// Expected exit code; default 0.
    pub expect_exit: Option<Spanned<i32>>,
    /// stdout+stderr must match this regular expression.
    pub output_regex: Option<Spanned<String>>,

    // kind = "docker"
    /// Container name or id.
    pub container: Option<Spanned<String>>,
    /// Down when the container restarted `restarts` times within `within`.
    pub crash_loop: Option<Spanned<CrashLoopConfig>>,

    // kind = "postgres" (also uses `address`, default 127.0.0.1:5432)
    pub user: Option<Spanned<String>>,
    /// Prefer `password_file`: the config is often world-readable, a secret file need not be.
    pub password: Option<Spanned<String>>,
    /// Its first line is the password; read at load and on every reload (a rotated password
    /// restarts the probe).
    pub password_file: Option<SecretFile>,
    /// Database to connect to; default: the user name.
    pub database: Option<Spanned<String>>,
    /// SQL to run; default `SELECT 1`.
    pub query: Option<Spanned<String>>,
    pub expect_result: Option<Spanned<QueryExpectationConfig>>,
    /// Server-side bound on each statement; default: the probe's timeout.
    pub statement_timeout: Option<Spanned<HumanDuration>>,
    /// "primary" or "replica" (from `pg_is_in_recovery()`).
    pub expect_role: Option<Spanned<PostgresRole>>,
    pub max_replication_lag: Option<Spanned<HumanDuration>>,
    /// Highest acceptable share of `max_connections` in use, in percent.
    pub max_connections_used: Option<Spanned<f64>>,
    /// Graded steps run in order when the server answers but is stuck, before any restart
    /// (docs/remedy.md).
    pub remedy: Option<Spanned<Vec<RemedyStepConfig>>>,
    /// Restart a server that still answers but stays stuck after every remedy step; default
    /// false: only a dead or unresponsive server is restarted.
    pub restart_when_overloaded: Option<Spanned<bool>>,

    // kind = "tls_cert" (also uses `address` and `ca_file`)
    /// The name the certificate must be valid for (and the SNI sent); default: the host.
    pub server_name: Option<Spanned<String>>,
    /// Down when the leaf certificate expires in fewer days than this; default 14.
    pub min_days_left: Option<Spanned<u32>>,

    // kind = "dns" (also uses `query`: the name asked)
    /// A, AAAA, CNAME, MX, TXT or SRV; default A.
    pub record: Option<Spanned<DnsRecordType>>,
    /// `ip[:port]` of the server to ask; default: the system resolver (/etc/resolv.conf).
    pub server: Option<Spanned<String>>,
    /// Answers that must all be among those received (as `dig +short` writes them).
    pub expect_answers: Option<Spanned<Vec<String>>>,

    // kind = "icmp"
    /// Host name or address to echo.
    pub host: Option<Spanned<String>>,
    /// Echo requests per check; default 3.
    pub count: Option<Spanned<u32>>,
    /// Down when more than this share of the echoes went unanswered, in percent; default 0.
    pub max_loss_percent: Option<Spanned<f64>>,
    /// Down when the answered echoes' average round trip is above this.
    pub max_rtt: Option<Spanned<HumanDuration>>,
    // kind = "heartbeat" (pushed: `POST /v1/heartbeat/NAME` on the public listener)
    /// How often the job beats; Down when no beat came within `every` + `grace`.
    pub every: Option<Spanned<HumanDuration>>,
    /// Slack after `every` before a missing beat counts; default 1m.
    pub grace: Option<Spanned<HumanDuration>>,
    /// A bearer token a beat must carry (`Authorization: Bearer TOKEN`); default: none needed.
    pub token: Option<Spanned<String>>,
    /// A file with the accepted tokens, one per line; read at load and on every reload.
    pub token_file: Option<SecretFile>,

    // kind = "disk" / "memory" / "load" (the host's own resources)
    /// disk: a path on the mount to watch.
    pub path: Option<Spanned<std::path::PathBuf>>,
    /// disk: Down when more than this percentage of the space is used (as `df` counts it).
    pub max_used_percent: Option<Spanned<f64>>,
    /// disk: Down when more than this percentage of the inodes is used.
    pub max_inodes_percent: Option<Spanned<f64>>,
    /// memory: Down when MemAvailable is below this size ("512MiB") or share of MemTotal ("10%").
    pub min_available: Option<Spanned<host::Amount>>,
    /// load: Down when the load average divided by the online CPUs is above this.
    pub max_load_per_core: Option<Spanned<f64>>,
    /// load: which average: "1m", "5m" (default) or "15m".
    pub load_average: Option<Spanned<host::LoadAverage>>,

    // kind = "systemd_unit"
    /// The unit to watch, e.g. "nginx.service".
    pub unit: Option<Spanned<String>>,
    /// The ActiveStates that count as Up; default ["active", "reloading"].
    pub active_states: Option<Spanned<Vec<crate::systemd::ActiveState>>>,

    /// What to do when the probe goes Down.
    pub heal: Option<Spanned<HealConfig>>,
    /// Probes this one depends on: when one of them recovers, this probe's heal action runs
    /// too (dependants restart in dependency order).
    pub depends_on: Option<Spanned<Vec<String>>>,
    /// Free labels (`team = "payments"`): `[[maintenance]]` and `sentinelctl maintenance start
    /// --label` cover every probe that carries all of theirs.
    pub labels: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryExpectationConfig {
    pub rows: Option<u64>,
    pub equals: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The record types a `dns` probe asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecordType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Srv,
}

impl DnsRecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Srv => "SRV",
        }
    }
}

impl fmt::Display for DnsRecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostgresRole {
    Primary,
    Replica,
}

/// One step of a postgres probe's `remedy` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemedyStepConfig {
    pub action: RemedyAction,
    /// cancel_queries, terminate_idle_in_transaction: how long a statement has run, or a
    /// session has been idle in its transaction, before the step acts on it.
    pub older_than: Option<HumanDuration>,
    /// terminate_lock_blockers: how long a waiter has waited for its lock.
    pub waiting_longer_than: Option<HumanDuration>,
    /// Sessions of these roles (`pg_stat_activity.usename`) are never signalled.
    #[serde(default)]
    pub exclude_roles: Vec<String>,
    /// Sessions of these `application_name`s are never signalled.
    #[serde(default)]
    pub exclude_applications: Vec<String>,
    /// After the step, the probe must be Up this soon or the next step runs; default: the
    /// heal's `verify_within`.
    pub verify_within: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealActionKind {
    /// Restart the container (start it if it exited).
    DockerRestart,
    /// Run a command.
    Exec,
    /// Restart a systemd unit over D-Bus (`RestartUnit`, mode "replace").
    SystemdRestart,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealConfig {
    pub action: HealActionKind,
    /// docker_restart: container to restart; default: the docker probe's own container.
    pub container: Option<String>,
    /// exec: program and arguments, no shell.
    pub command: Option<Vec<String>>,
    /// docker_restart: seconds Docker waits after SIGTERM before SIGKILL.
    #[serde(default = "HealConfig::default_stop_timeout")]
    pub stop_timeout: HumanDuration,
    /// exec: the command is killed after this long.
    #[serde(default = "HealConfig::default_exec_timeout")]
    pub timeout: HumanDuration,
    /// Restart budget: at most `max_attempts` heals within `window`.
    #[serde(default = "HealConfig::default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "HealConfig::default_window")]
    pub window: HumanDuration,
    /// First wait after a failed attempt; doubles up to `max_backoff`.
    #[serde(default = "HealConfig::default_backoff")]
    pub backoff: HumanDuration,
    #[serde(default = "HealConfig::default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// The probe must be Up again this soon after an action, or the attempt failed.
    #[serde(default = "HealConfig::default_verify_within")]
    pub verify_within: HumanDuration,
    /// `[[archive.source]]` names collected into an evidence bundle before each restart.
    pub archive: Option<Vec<String>>,
    /// A recovery counts only once the probe stayed Up this long; a Down sooner is a relapse
    /// of the same incident. Zero counts the first Up.
    #[serde(default = "HealConfig::default_stable_for")]
    pub stable_for: HumanDuration,
    /// systemd_restart: unit to restart; default: the systemd_unit probe's own unit.
    pub unit: Option<String>,
}

impl HealConfig {
    fn default_stable_for() -> HumanDuration {
        HumanDuration::from_secs(10)
    }
    fn default_stop_timeout() -> HumanDuration {
        HumanDuration::from_secs(10)
    }
    fn default_exec_timeout() -> HumanDuration {
        HumanDuration::from_secs(60)
    }
    fn default_max_attempts() -> u32 {
        3
    }
    fn default_window() -> HumanDuration {
        HumanDuration::from_secs(600)
    }
    fn default_backoff() -> HumanDuration {
        HumanDuration::from_secs(5)
    }
    fn default_max_backoff() -> HumanDuration {
        HumanDuration::from_secs(300)
    }
    fn default_verify_within() -> HumanDuration {
        HumanDuration::from_secs(60)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoopConfig {
    pub restarts: u32,
    pub within: HumanDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlapConfig {
    pub failures: u32,
    pub within: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonExpectation {
    /// RFC 6901 JSON pointer, e.g. "/status" or "/checks/0/ok".
    pub pointer: String,
    pub equals: toml::Value,
}

/// HTTP methods a health check may use.
pub const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl ProbeConfig {
    fn default_interval() -> Spanned<HumanDuration> {
        Spanned::new(0..0, HumanDuration::from_secs(10))
    }
    fn default_timeout() -> Spanned<HumanDuration> {
        Spanned::new(0..0, HumanDuration::from_secs(5))
    }
    fn default_fail_after() -> Spanned<u32> {
        Spanned::new(0..0, 3)
    }
    fn default_recover_after() -> Spanned<u32> {
        Spanned::new(0..0, 1)
    }

    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    pub fn kind(&self) -> ProbeKind {
        *self.kind.get_ref()
    }
}

/// The kinds of probe this build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Http,
    Tcp,
    Exec,
    Docker,
    Postgres,
    #[serde(rename = "tls_cert")]
    TlsCert,
    Dns,
    Icmp,
    Heartbeat,
    Disk,
    Memory,
    Load,
    #[serde(rename = "systemd_unit")]
    SystemdUnit,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 13] = [
        ProbeKind::Http,
        ProbeKind::Tcp,
        ProbeKind::Postgres,
        ProbeKind::Docker,
        ProbeKind::Exec,
        ProbeKind::TlsCert,
        ProbeKind::Dns,
        ProbeKind::Icmp,
        ProbeKind::Heartbeat,
        ProbeKind::Disk,
        ProbeKind::Memory,
        ProbeKind::Load,
        ProbeKind::SystemdUnit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp => "tcp",
            Self::Exec => "exec",
            Self::Docker => "docker",
            Self::Postgres => "postgres",
            Self::TlsCert => "tls_cert",
            Self::Dns => "dns",
            Self::Icmp => "icmp",
            Self::Heartbeat => "heartbeat",
            Self::Disk => "disk",
            Self::Memory => "memory",
            Self::Load => "load",
            Self::SystemdUnit => "systemd_unit",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProbeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ProbeKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                let expected: Vec<&str> = ProbeKind::ALL.iter().map(|k| k.as_str()).collect();
                serde::de::Error::custom(format!(
                    "unknown probe kind \"{text}\" (expected one of {})",
                    expected.join(", ")
                ))
            })
    }
}

fn at<T>(field: &Option<Spanned<T>>) -> bool {
    field.is_some()
}

impl ProbeConfig {
    /// Every kind-specific field, the kinds it belongs to, and whether it is set.
    fn kind_fields(&self) -> [(&'static str, &'static [ProbeKind], bool); 36] {
        use ProbeKind::*;
        [
            ("url", &[Http], at(&self.url)),
            ("method", &[Http], at(&self.method)),
            ("headers", &[Http], at(&self.headers)),
            ("expect_status", &[Http], at(&self.expect_status)),
            ("body_regex", &[Http], at(&self.body_regex)),
            ("expect_json", &[Http], at(&self.expect_json)),
            ("tls_verify", &[Http], at(&self.tls_verify)),
            ("ca_file", &[Http, TlsCert], at(&self.ca_file)),
            ("address", &[Tcp, Postgres, TlsCert], at(&self.address)),
            ("send", &[Tcp], at(&self.send)),
            ("expect", &[Tcp], at(&self.expect)),
            ("command", &[Exec], at(&self.command)),
            ("expect_exit", &[Exec], at(&self.expect_exit)),
            ("output_regex", &[Exec], at(&self.output_regex)),
            ("max_latency", &[Http, Tcp], at(&self.max_latency)),
            ("container", &[Docker], at(&self.container)),
            ("crash_loop", &[Docker], at(&self.crash_loop)),
            ("user", &[Postgres], at(&self.user)),
            ("password", &[Postgres], at(&self.password)),
            ("password_file", &[Postgres], self.password_file.is_some()),
            ("database", &[Postgres], at(&self.database)),
            ("query", &[Postgres, Dns], at(&self.query)),
            ("expect_result", &[Postgres], at(&self.expect_result)),
            (
                "statement_timeout",
                &[Postgres],
                at(&self.statement_timeout),
            ),
            ("expect_role", &[Postgres], at(&self.expect_role)),
            (
                "max_replication_lag",
                &[Postgres],
                at(&self.max_replication_lag),
            ),
            (
                "max_connections_used",
                &[Postgres],
                at(&self.max_connections_used),
            ),
            ("server_name", &[TlsCert], at(&self.server_name)),
            ("min_days_left", &[TlsCert], at(&self.min_days_left)),
            ("record", &[Dns], at(&self.record)),
            ("server", &[Dns], at(&self.server)),
            ("expect_answers", &[Dns], at(&self.expect_answers)),
            ("host", &[Icmp], at(&self.host)),
            ("count", &[Icmp], at(&self.count)),
            ("max_loss_percent", &[Icmp], at(&self.max_loss_percent)),
            ("max_rtt", &[Icmp], at(&self.max_rtt)),
        ]
    }

    /// Checks this probe alone; the keys of its issues are relative to its `[[probe]]` table.
    pub fn validate(&self) -> Result<(), Issue> {
        let name = self.name();
        if !is_plain_name(name) || name.len() > 64 {
            return Err(Issue::at(
                "name",
                format!("invalid probe name \"{name}\": use 1-64 letters, digits, '-', '_' or '.'"),
            ));
        }
        let problem = |message: String| format!("probe \"{name}\": {message}");
        self.validate_pushed(&problem)?;
        let timeout = self.timeout.get_ref().get();
        if timeout.is_zero() || timeout > self.interval.get_ref().get() {
            return Err(Issue::at(
                "timeout",
                problem(format!(
                    "timeout {} must be above zero and at most the interval ({})",
                    self.timeout.get_ref(),
                    self.interval.get_ref()
                )),
            )
            .or_at("interval"));
        }
        for (threshold, field) in [
            (&self.fail_after, "fail_after"),
            (&self.recover_after, "recover_after"),
        ] {
            if !(1..=64).contains(threshold.get_ref()) {
                return Err(Issue::at(
                    field,
                    problem(format!("{field} must be between 1 and 64")),
                ));
            }
        }
        if let Some(flap) = &self.flap {
            let FlapConfig { failures, within } = *flap.get_ref();
            if !(1..=64).contains(&within) || !(1..=within).contains(&failures) {
                return Err(Issue::at(
                    "flap",
                    problem("flap needs 1 <= failures <= within <= 64".into()),
                ));
            }
        }
        if let Some(heal) = &self.heal {
            self.validate_heal(heal.get_ref(), &problem)?;
        }
        self.validate_remedy(&problem)?;
        if let Some(labels) = &self.labels {
            validate_labels(labels.get_ref())
                .map_err(|err| Issue::at("labels", problem(err.to_string())).because(err))?;
        }
        if let (Some(_), None) = (&self.depends_on, &self.heal) {
            return Err(Issue::at(
                "depends_on",
                problem(
                    "depends_on needs a `heal` action to run when a dependency recovers".into(),
                ),
            ));
        }
        let kind = self.kind();
        for (field, kinds, set) in self
            .kind_fields()
            .into_iter()
            .chain(self.host_kind_fields())
            .chain(self.systemd_kind_fields())
        {
            if set && !kinds.contains(&kind) {
                return Err(Issue::at(
                    field,
                    problem(format!("`{field}` does not apply to {kind} probes")),
                ));
            }
        }
        for (field, regex) in [
            ("body_regex", &self.body_regex),
            ("expect", &self.expect),
            ("output_regex", &self.output_regex),
        ] {
            if let Some(regex) = regex {
                regex::Regex::new(regex.get_ref()).map_err(|err| {
                    Issue::at(field, problem(format!("invalid regular expression: {err}")))
                })?;
            }
        }
        match kind {
            ProbeKind::Http => self.validate_http(&problem),
            ProbeKind::Heartbeat | ProbeKind::Disk | ProbeKind::Memory | ProbeKind::Load => {
                self.validate_host(&problem)
            }
            ProbeKind::Tcp => {
                let address = self.require(&self.address, "address")?;
                if crate::probe::split_host_port(address.get_ref()).is_none() {
                    return Err(Issue::at(
                        "address",
                        problem(format!(
                            "invalid address \"{}\": expected host:port",
                            address.get_ref()
                        )),
                    ));
                }
                Ok(())
            }
            ProbeKind::Postgres => {
                if let Some(address) = &self.address {
                    if crate::probe::split_host_port(address.get_ref()).is_none() {
                        return Err(Issue::at(
                            "address",
                            problem(format!(
                                "invalid address \"{}\": expected host:port",
                                address.get_ref()
                            )),
                        ));
                    }
                }
                self.require(&self.user, "user")?;
                if let (Some(_), Some(_)) = (&self.password, &self.password_file) {
                    return Err(Issue::at(
                        "password_file",
                        problem("set `password` or `password_file`, not both".into()),
                    ));
                }
                if let Some(used) = &self.max_connections_used {
                    if !(0.0..=100.0).contains(used.get_ref()) {
                        return Err(Issue::at(
                            "max_connections_used",
                            problem("max_connections_used is a percentage, 0 to 100".into()),
                        ));
                    }
                }
                Ok(())
            }
            ProbeKind::Docker => {
                let container = self.require(&self.container, "container")?;
                if container.get_ref().trim_start_matches('/').is_empty() {
                    return Err(Issue::at(
                        "container",
                        problem("container name is empty".into()),
                    ));
                }
                if let Some(rule) = &self.crash_loop {
                    if rule.get_ref().restarts == 0 || rule.get_ref().within.get().is_zero() {
                        return Err(Issue::at(
                            "crash_loop",
                            problem("crash_loop needs restarts >= 1 and a non-zero within".into()),
                        ));
                    }
                }
                Ok(())
            }
            ProbeKind::Exec => {
                let command = self.require(&self.command, "command")?;
                if command
                    .get_ref()
                    .first()
                    .is_none_or(|program| program.is_empty())
                {
                    return Err(Issue::at(
                        "command",
                        problem(
                            "command needs a program, e.g. [\"/usr/bin/pg_isready\", \"-q\"]"
                                .into(),
                        ),
                    ));
                }
                Ok(())
            }
            ProbeKind::TlsCert => self.validate_tls_cert(&problem),
            ProbeKind::Dns => self.validate_dns(&problem),
            ProbeKind::Icmp => self.validate_icmp(&problem),
            ProbeKind::SystemdUnit => self.validate_systemd_unit(&problem),
        }
    }

    fn systemd_kind_fields(&self) -> [(&'static str, &'static [ProbeKind], bool); 2] {
        use ProbeKind::*;
        [
            ("unit", &[SystemdUnit], at(&self.unit)),
            ("active_states", &[SystemdUnit], at(&self.active_states)),
        ]
    }

    fn validate_systemd_unit(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        let unit = self.require(&self.unit, "unit")?;
        crate::systemd::validate_unit_name(unit.get_ref()).map_err(|err| {
            Issue::at(
                "unit",
                problem(format!(
                    "invalid unit name \"{}\": it {err}",
                    unit.get_ref()
                )),
            )
        })?;
        if let Some(states) = &self.active_states {
            if states.get_ref().is_empty() {
                return Err(Issue::at(
                    "active_states",
                    problem("active_states needs at least one state, e.g. [\"active\"]".into()),
                ));
            }
        }
        Ok(())
    }

    fn validate_tls_cert(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        let address = self.require(&self.address, "address")?;
        let Some((host, _)) = crate::probe::split_host_port(address.get_ref()) else {
            return Err(Issue::at(
                "address",
                problem(format!(
                    "invalid address \"{}\": expected host:port",
                    address.get_ref()
                )),
            ));
        };
        let (field, name) = match &self.server_name {
            Some(name) => ("server_name", name.get_ref().clone()),
            None => ("address", host),
        };
        if let Err(err) = rustls::pki_types::ServerName::try_from(name.as_str()) {
            return Err(Issue::at(
                field,
                problem(format!(
                    "\"{name}\" is not a DNS name or IP address to check a certificate against"
                )),
            )
            .because(err));
        }
        if let Some(days) = &self.min_days_left {
            if *days.get_ref() > 3650 {
                return Err(Issue::at(
                    "min_days_left",
                    problem("min_days_left must be at most 3650 (ten years)".into()),
                ));
            }
        }
        if let Some(file) = &self.ca_file {
            crate::probe::read_ca_file(file.get_ref())
                .map_err(|err| Issue::at("ca_file", problem(err.to_string())).because(err))?;
        }
        Ok(())
    }

    fn validate_dns(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        let query = self.require(&self.query, "query")?;
        if let Err(err) = crate::probe::DnsProbe::parse_name(query.get_ref()) {
            return Err(Issue::at(
                "query",
                problem(format!(
                    "invalid name to query \"{}\": {err}",
                    query.get_ref()
                )),
            ));
        }
        if let Some(server) = &self.server {
            if crate::probe::DnsProbe::parse_server(server.get_ref()).is_none() {
                return Err(Issue::at(
                    "server",
                    problem(format!(
                        "invalid server \"{}\": expected ip or ip:port (e.g. \"127.0.0.1:53\", \"[::1]:53\")",
                        server.get_ref()
                    )),
                ));
            }
        }
        if let Some(answers) = &self.expect_answers {
            let record = self
                .record
                .as_ref()
                .map_or(DnsRecordType::A, |r| *r.get_ref());
            if answers.get_ref().is_empty() {
                return Err(Issue::at(
                    "expect_answers",
                    problem("expect_answers needs at least one answer".into()),
                ));
            }
            for answer in answers.get_ref() {
                let fits = match record {
                    DnsRecordType::A => answer.parse::<std::net::Ipv4Addr>().is_ok(),
                    DnsRecordType::Aaaa => answer.parse::<std::net::Ipv6Addr>().is_ok(),
                    _ => !answer.trim().is_empty(),
                };
                if !fits {
                    return Err(Issue::at(
                        "expect_answers",
                        problem(format!("\"{answer}\" is not a {record} answer")),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_icmp(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        let host = self.require(&self.host, "host")?;
        let text = host.get_ref();
        let plausible = text.parse::<std::net::IpAddr>().is_ok()
            || (!text.is_empty()
                && text.len() <= 253
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if !plausible {
            return Err(Issue::at(
                "host",
                problem(format!(
                    "invalid host \"{text}\": expected a host name or an IP address"
                )),
            ));
        }
        if let Some(count) = &self.count {
            if !(1..=100).contains(count.get_ref()) {
                return Err(Issue::at(
                    "count",
                    problem("count must be between 1 and 100".into()),
                ));
            }
        }
        if let Some(loss) = &self.max_loss_percent {
            if !(0.0..100.0).contains(loss.get_ref()) {
                return Err(Issue::at(
                    "max_loss_percent",
                    problem("max_loss_percent is a percentage, 0 to below 100".into()),
                ));
            }
        }
        if let Some(rtt) = &self.max_rtt {
            if rtt.get_ref().get().is_zero() {
                return Err(Issue::at(
                    "max_rtt",
                    problem("max_rtt must be above zero".into()),
                ));
            }
        }
        Ok(())
    }

    fn validate_http(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        let url = self.require(&self.url, "url")?;
        let target = crate::probe::HttpTarget::parse(url.get_ref())
            .map_err(|err| Issue::at("url", problem(err.to_string())))?;
        for (field, set) in [
            ("tls_verify", at(&self.tls_verify)),
            ("ca_file", at(&self.ca_file)),
        ] {
            if set && !target.tls {
                return Err(Issue::at(
                    field,
                    problem(format!("`{field}` needs an https:// url")),
                ));
            }
        }
        if let Some(file) = &self.ca_file {
            crate::probe::read_ca_file(file.get_ref())
                .map_err(|err| Issue::at("ca_file", problem(err.to_string())).because(err))?;
        }
        if let Some(method) = &self.method {
            if !HTTP_METHODS.contains(&method.get_ref().as_str()) {
                return Err(Issue::at(
                    "method",
                    problem(format!(
                        "unknown method \"{}\" (expected one of {})",
                        method.get_ref(),
                        HTTP_METHODS.join(", ")
                    )),
                ));
            }
        }
        let headers = self.headers.as_ref().map(Spanned::get_ref);
        if let Some((key, value)) = headers.and_then(crate::http::client::invalid_header) {
            return Err(Issue::at(
                "headers",
                problem(format!("invalid header \"{key}: {value}\"")),
            ));
        }
        if let Some(codes) = &self.expect_status {
            if codes.get_ref().is_empty()
                || codes.get_ref().iter().any(|c| !(100..=599).contains(c))
            {
                return Err(Issue::at(
                    "expect_status",
                    problem("expect_status must list HTTP codes between 100 and 599".into()),
                ));
            }
        }
        if let Some(json) = &self.expect_json {
            let pointer = &json.get_ref().pointer;
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(Issue::at(
                    "expect_json.pointer",
                    problem(format!(
                        "invalid JSON pointer \"{pointer}\": it starts with '/'"
                    )),
                ));
            }
        }
        Ok(())
    }

    /// The password to log in with: `password`, or the first line `password_file` held at load.
    pub fn postgres_password(&self) -> Option<String> {
        if let Some(password) = &self.password {
            return Some(password.get_ref().clone());
        }
        let secret = self.password_file.as_ref()?.content()?;
        Some(secret.expose().lines().next().unwrap_or("").to_string())
    }

    /// Read `password_file` of a postgres probe (every load and reload does). Other kinds leave
    /// it unread: validation says it does not apply to them.
    pub fn read_secrets(&mut self) -> Result<(), Issue> {
        let name = self.name.get_ref().clone();
        let kind = self.kind();
        if let (Some(file), ProbeKind::Heartbeat) = (&mut self.token_file, kind) {
            file.read("token_file").map_err(|err| {
                Issue::at("token_file", format!("probe \"{name}\": {err}")).because(err)
            })?;
        }
        match (&mut self.password_file, kind) {
            (Some(file), ProbeKind::Postgres) => file.read("password_file").map_err(|err| {
                Issue::at("password_file", format!("probe \"{name}\": {err}")).because(err)
            }),
            _ => Ok(()),
        }
    }

    /// The container a docker_restart heal acts on: its own setting, else the probe's container.
    pub fn heal_container(&self) -> Option<String> {
        let heal = self.heal.as_ref()?.get_ref();
        heal.container
            .clone()
            .or_else(|| self.container.as_ref().map(|c| c.get_ref().clone()))
    }

    /// The unit a systemd_restart heal acts on: its own setting, else the probe's unit.
    pub fn heal_unit(&self) -> Option<String> {
        let heal = self.heal.as_ref()?.get_ref();
        heal.unit
            .clone()
            .or_else(|| self.unit.as_ref().map(|u| u.get_ref().clone()))
    }

    /// The key (under the probe) and what is wrong with its `heal`.
    /// Keys are `heal.KEY` (the `heal` table itself when KEY is not written).
    fn validate_heal(
        &self,
        config: &HealConfig,
        problem: &dyn Fn(String) -> String,
    ) -> Result<(), Issue> {
        let issue =
            |key: &str, message: &str| Issue::at(key, problem(message.into())).or_at("heal");
        match config.action {
            HealActionKind::DockerRestart if self.heal_container().is_none() => {
                return Err(issue(
                    "heal.container",
                    "heal action docker_restart needs `container` (or a docker probe)",
                ))
            }
            HealActionKind::Exec
                if config
                    .command
                    .as_ref()
                    .and_then(|c| c.first())
                    .is_none_or(|p| p.is_empty()) =>
            {
                return Err(issue("heal.command", "heal action exec needs `command`, e.g. [\"/usr/bin/systemctl\", \"restart\", \"app\"]"))
            }
            HealActionKind::SystemdRestart => match self.heal_unit() {
                None => {
                    return Err(issue(
                        "heal.unit",
                        "heal action systemd_restart needs `unit` (or a systemd_unit probe)",
                    ))
                }
                Some(unit) => {
                    if let Err(err) = crate::systemd::validate_unit_name(&unit) {
                        return Err(issue(
                            "heal.unit",
                            &format!("invalid unit name \"{unit}\": it {err}"),
                        ));
                    }
                }
            },
            _ => {}
        }
        if config.unit.is_some() && config.action != HealActionKind::SystemdRestart {
            return Err(issue(
                "heal.unit",
                "heal `unit` applies to the systemd_restart action only",
            ));
        }
        if !(1..=100).contains(&config.max_attempts) {
            return Err(issue(
                "heal.max_attempts",
                "heal max_attempts must be between 1 and 100",
            ));
        }
        for (key, value) in [
            ("heal.window", config.window),
            ("heal.verify_within", config.verify_within),
        ] {
            if value.get().is_zero() {
                return Err(issue(
                    key,
                    "heal window and verify_within must be above zero",
                ));
            }
        }
        // A hold as long as the window would let each attempt leave the budget before its
        // recovery is judged: a crash loop would never run out of attempts.
        if config.stable_for.get() >= config.window.get() {
            return Err(issue(
                "heal.stable_for",
                &format!(
                    "heal stable_for ({}) must be shorter than the heal window ({})",
                    humantime::format_duration(config.stable_for.get()),
                    humantime::format_duration(config.window.get())
                ),
            ));
        }
        Ok(())
    }

    /// `remedy` and `restart_when_overloaded`: postgres probes with a heal only; each step
    /// with the duration its action needs and no other. Keys are `remedy[i].KEY`.
    fn validate_remedy(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        let kind = self.kind();
        for (field, set) in [
            ("remedy", self.remedy.is_some()),
            (
                "restart_when_overloaded",
                self.restart_when_overloaded.is_some(),
            ),
        ] {
            if !set {
                continue;
            }
            if kind != ProbeKind::Postgres {
                return Err(Issue::at(
                    field,
                    problem(format!("`{field}` does not apply to {kind} probes")),
                ));
            }
            if self.heal.is_none() {
                return Err(Issue::at(
                    field,
                    problem(format!(
                        "`{field}` needs a `heal` table: its budget counts the steps, and it restarts a dead server"
                    )),
                ));
            }
        }
        let Some(steps) = &self.remedy else {
            return Ok(());
        };
        if steps.get_ref().is_empty() {
            return Err(Issue::at(
                "remedy",
                problem("remedy lists no steps; remove it or add one, e.g. { action = \"terminate_lock_blockers\", waiting_longer_than = \"30s\" }".into()),
            ));
        }
        for (i, step) in steps.get_ref().iter().enumerate() {
            let key = |field: &str| format!("remedy[{i}].{field}");
            let issue = |field: &str, message: String| {
                Issue::at(
                    key(field),
                    problem(format!("remedy step {}: {message}", i + 1)),
                )
                .or_at(format!("remedy[{i}]"))
            };
            let action = step.action;
            let (needed, refused) = match action {
                RemedyAction::CancelQueries | RemedyAction::TerminateIdleInTransaction => (
                    ("older_than", step.older_than),
                    ("waiting_longer_than", step.waiting_longer_than),
                ),
                RemedyAction::TerminateLockBlockers => (
                    ("waiting_longer_than", step.waiting_longer_than),
                    ("older_than", step.older_than),
                ),
            };
            if refused.1.is_some() {
                return Err(issue(
                    refused.0,
                    format!(
                        "`{}` does not apply to {action}; it takes `{}`",
                        refused.0, needed.0
                    ),
                ));
            }
            match needed.1 {
                None => {
                    return Err(issue(
                        "action",
                        format!("{action} needs `{}`, e.g. {} = \"5m\"", needed.0, needed.0),
                    ))
                }
                Some(value) if value.get().is_zero() => {
                    return Err(issue(
                        needed.0,
                        format!("`{}` must be above zero", needed.0),
                    ))
                }
                Some(_) => {}
            }
            if step.verify_within.is_some_and(|v| v.get().is_zero()) {
                return Err(issue(
                    "verify_within",
                    "`verify_within` must be above zero".into(),
                ));
            }
            for (field, names) in [
                ("exclude_roles", &step.exclude_roles),
                ("exclude_applications", &step.exclude_applications),
            ] {
                if names.iter().any(|n| n.trim().is_empty()) {
                    return Err(issue(field, format!("`{field}` holds an empty name")));
                }
            }
        }
        Ok(())
    }

    fn require<'a, T>(
        &self,
        field: &'a Option<Spanned<T>>,
        field_name: &str,
    ) -> Result<&'a Spanned<T>, Issue> {
        field.as_ref().ok_or_else(|| {
            Issue::at(
                field_name,
                format!(
                    "probe \"{}\": {} probes need `{field_name}`",
                    self.name(),
                    self.kind()
                ),
            )
            .or_at("kind")
        })
    }
}

/// Checks every `[[probe]]`: each alone, names unique, `depends_on` naming other probes without
/// a cycle. Keys are relative to the list (`[2].timeout`); returns the probe names.
pub fn validate_probes(probes: &[ProbeConfig]) -> Result<HashSet<&str>, Issue> {
    let mut names = HashSet::new();
    for (i, probe) in probes.iter().enumerate() {
        probe
            .validate()
            .map_err(|issue| issue.within(format!("[{i}]")))?;
        if !names.insert(probe.name()) {
            return Err(Issue::at(
                format!("[{i}].name"),
                format!("duplicate probe name \"{}\"", probe.name()),
            ));
        }
    }
    for (i, probe) in probes.iter().enumerate() {
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
                    format!("[{i}].depends_on"),
                    format!(
                        "probe \"{}\": depends_on names {what}: \"{parent}\"",
                        probe.name()
                    ),
                ));
            }
        }
    }
    if let Err(error) = dependency_order(probes) {
        let DependencyError::Cycle { cycle } = &error;
        let first = probes
            .iter()
            .position(|p| p.name() == cycle[0])
            .expect("named in the cycle");
        return Err(Issue::at(
            format!("[{first}].depends_on"),
            error.to_string(),
        ));
    }
    Ok(names)
}

/// What is wrong with a label map (a probe's `labels`, a maintenance scope's).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelError {
    #[error("invalid label name \"{0}\": use 1-63 letters, digits, '-', '_', '.' or '/'")]
    Name(String),
    #[error("label {0} has an empty or overlong value (1-128 characters, no control characters)")]
    Value(String),
    #[error("at most {MAX_LABELS} labels")]
    TooMany,
}

/// Most labels a probe or a scope may carry.
pub const MAX_LABELS: usize = 32;

/// Label names are plain names (plus '/'), values 1-128 printable characters.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), LabelError> {
    if labels.len() > MAX_LABELS {
        return Err(LabelError::TooMany);
    }
    for (key, value) in labels {
        let plain = key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if key.is_empty() || key.len() > 63 || !plain {
            return Err(LabelError::Name(key.clone()));
        }
        if value.is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control) {
            return Err(LabelError::Value(key.clone()));
        }
    }
    Ok(())
}

impl ProbeConfig {
    /// The probe's labels (none when it has no `labels`).
    pub fn label_map(&self) -> BTreeMap<String, String> {
        self.labels
            .as_ref()
            .map(|l| l.get_ref().clone())
            .unwrap_or_default()
    }
}

/// Why probes have no order in which every dependency comes before its dependants.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DependencyError {
    /// Each probe depends on the next; the last is the first again.
    #[error("depends_on forms a cycle: {}", .cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
}

/// Probe names with every dependency before its dependants (config order among equals), or
/// the names along a cycle.
pub fn dependency_order(probes: &[ProbeConfig]) -> Result<Vec<String>, DependencyError> {
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
    ) -> Result<(), DependencyError> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        if let Some(start) = path.iter().position(|p| p == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Err(DependencyError::Cycle { cycle });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cycle is a typed error that lists it, first probe again at the end.
    #[test]
    fn a_dependency_cycle_is_a_typed_error_listing_it() {
        #[derive(Deserialize)]
        struct File {
            probe: Vec<ProbeConfig>,
        }
        let file: File = toml::from_str(
            r#"
            [[probe]]
            name = "a"
            kind = "tcp"
            address = "127.0.0.1:1"
            depends_on = ["b"]
            [[probe]]
            name = "b"
            kind = "tcp"
            address = "127.0.0.1:2"
            depends_on = ["a"]
            "#,
        )
        .unwrap();
        let err = dependency_order(&file.probe).unwrap_err();
        assert_eq!(
            err,
            DependencyError::Cycle {
                cycle: vec!["a".into(), "b".into(), "a".into()]
            }
        );
        assert_eq!(err.to_string(), "depends_on forms a cycle: a -> b -> a");
    }
}
