//! Probes: one file per kind behind `AnyProbe`, the threshold machine (`state.rs`), each probe's
//! lossless status channel (`status.rs`) and the runner that checks and publishes transitions.

pub mod config;
mod dns;
mod docker;
mod exec;
pub mod heartbeat;
mod histogram;
mod host;
mod http;
mod icmp;
mod postgres;
mod recent;
mod runner;
mod state;
mod status;
mod systemd_unit;
mod tcp;
mod tls_cert;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::docker::DockerEngine;
use crate::event::Timestamp;
pub use crate::http::client::tls::{client_config, read_ca_file, TlsError, TlsVerification};
pub use crate::http::client::{HttpTarget, TargetError};
pub use config::{ProbeConfig, ProbeKind};
pub use dns::DnsProbe;
pub use docker::{CrashLoopRule, DockerProbe};
pub use exec::ExecProbe;
pub use heartbeat::{HeartbeatProbe, Heartbeats};
pub use histogram::{LatencyHistogram, LATENCY_BUCKETS};
pub use host::{DiskProbe, DiskUsage, Load, LoadProbe, MemInfo, MemoryProbe, PROC_ROOT};
pub use http::HttpProbe;
pub use icmp::{Burst, IcmpProbe};
pub use postgres::{ExpectedRole, PostgresProbe, QueryExpectation};
pub use recent::{RecentCheck, RecentChecks, RECENT_CHECKS};
pub use runner::{spawn, FirstCheck};
pub use state::{FlapRule, ProbeState, ThresholdMachine, Transition};
pub use status::{Change, Followed, ProbeFeeds, ProbeStatus, StatusReceiver, StatusSender};
pub use systemd_unit::SystemdUnitProbe;
pub use tcp::TcpProbe;
pub use tls_cert::{TlsCertError, TlsCertProbe};

pub use crate::event::FailureReason;

/// The probe's own use of a failure reason: the log line of the original monitor.
impl FailureReason {
    /// The word the original Sentinel monitor logged for a service going down.
    pub fn down_event(self) -> &'static str {
        match self {
            Self::Dns | Self::Refused | Self::Timeout | Self::Io => "unreachable",
            Self::Protocol => "protocol_error",
            Self::HttpStatus => "bad_status",
            Self::Assertion | Self::ExitStatus | Self::Exec | Self::Query => "check_failed",
            Self::Auth => "auth_failed",
            Self::Tls => "tls_error",
            Self::ContainerMissing | Self::ContainerExited | Self::Oom => "container_down",
            Self::Unhealthy => "unhealthy",
            Self::CrashLoop => "crash_loop",
            Self::Docker => "docker_unreachable",
            Self::CertExpiring
            | Self::CertExpired
            | Self::CertNameMismatch
            | Self::CertUntrusted => "tls_error",
            Self::Nxdomain | Self::NoAnswer => "check_failed",
            Self::PacketLoss => "unreachable",
            Self::HighRtt => "check_failed",
            Self::HeartbeatMissed => "heartbeat_missed",
            Self::HeartbeatFailed => "check_failed",
            Self::DiskSpace | Self::DiskInodes | Self::MemoryLow | Self::LoadHigh => {
                "resource_exhausted"
            }
            Self::UnitInactive
            | Self::UnitFailed
            | Self::UnitActivating
            | Self::UnitNotFound
            | Self::UnitNotLoaded => "unit_down",
            Self::SystemdUnavailable => "systemd_unreachable",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: FailureReason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub latency: Duration,
    pub status_code: Option<u16>,
    pub failure: Option<Failure>,
}

impl CheckResult {
    pub fn success(latency: Duration, status_code: Option<u16>) -> Self {
        Self {
            latency,
            status_code,
            failure: None,
        }
    }

    pub fn failure(latency: Duration, failure: Failure, status_code: Option<u16>) -> Self {
        Self {
            latency,
            status_code,
            failure: Some(failure),
        }
    }

    /// A check without a status code that started at `started` and ended now with `outcome`.
    pub fn timed(started: std::time::Instant, outcome: Result<(), Failure>) -> Self {
        match outcome {
            Ok(()) => Self::success(started.elapsed(), None),
            Err(failure) => Self::failure(started.elapsed(), failure, None),
        }
    }

    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }
}

/// Every probe kind, dispatched by enum rather than `dyn` so each stays a plain struct.
#[derive(Debug, Clone)]
pub enum AnyProbe {
    Http(HttpProbe),
    Tcp(TcpProbe),
    Exec(ExecProbe),
    Docker(DockerProbe),
    Postgres(PostgresProbe),
    TlsCert(TlsCertProbe),
    Dns(DnsProbe),
    Icmp(IcmpProbe),
    /// Pushed: the runner follows its beats instead of checking (`heartbeat.rs`).
    Heartbeat(HeartbeatProbe),
    Disk(DiskProbe),
    Memory(MemoryProbe),
    Load(LoadProbe),
    SystemdUnit(SystemdUnitProbe),
}

impl AnyProbe {
    /// What this probe checks, for `sentinelctl probes`.
    pub fn target(&self) -> String {
        match self {
            // No credentials and no query string: this shows on the public status page.
            Self::Http(p) => format!("{} {}", p.method, p.target.display()),
            Self::Tcp(p) => format!("{}:{}", p.host, p.port),
            // Arguments may carry a password or a token: only their count is shown.
            Self::Exec(p) => match p.args.len() {
                0 => p.program.clone(),
                1 => format!("{} (1 argument)", p.program),
                n => format!("{} ({n} arguments)", p.program),
            },
            Self::Docker(p) => format!("container {}", p.container),
            Self::Postgres(p) => format!("{}@{}:{}/{}", p.user, p.host, p.port, p.database),
            Self::TlsCert(p) => format!("certificate of {}:{}", p.host, p.port),
            Self::Dns(p) => p.target(),
            Self::Icmp(p) => format!("echo {}", p.host),
            Self::Heartbeat(p) => p.target(),
            Self::Disk(p) => p.target(),
            Self::Memory(p) => p.target(),
            Self::Load(p) => p.target(),
            Self::SystemdUnit(p) => format!("unit {}", p.unit),
        }
    }

    /// Build from a validated config (validation already checked the fields of the kind).
    pub fn from_config(config: &ProbeConfig, docker: &DockerEngine) -> Option<Self> {
        let value =
            |field: &Option<toml::Spanned<String>>| field.as_ref().map(|f| f.get_ref().clone());
        let regex = |field: &Option<toml::Spanned<String>>| {
            field
                .as_ref()
                .and_then(|f| regex::Regex::new(f.get_ref()).ok())
        };
        match config.kind() {
            ProbeKind::Http => {
                let target = HttpTarget::parse(config.url.as_ref()?.get_ref()).ok()?;
                // Built once per probe: a check only clones it.
                let connector = match target.tls {
                    true => {
                        let verification = match (&config.tls_verify, &config.ca_file) {
                            (Some(verify), _) if !*verify.get_ref() => TlsVerification::Off,
                            (_, Some(file)) => TlsVerification::CaFile(file.get_ref().clone()),
                            _ => TlsVerification::System,
                        };
                        crate::http::client::connect::single_request(
                            client_config(&verification).ok()?,
                        )
                    }
                    false => crate::http::client::connect::plain().ok()?,
                };
                Some(Self::Http(HttpProbe {
                    target,
                    method: value(&config.method)
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(hyper::Method::GET),
                    headers: config
                        .headers
                        .as_ref()
                        .map(|h| h.get_ref().clone().into_iter().collect())
                        .unwrap_or_default(),
                    expect_status: config
                        .expect_status
                        .as_ref()
                        .map(|codes| codes.get_ref().clone())
                        .unwrap_or_default(),
                    connector,
                    body_regex: regex(&config.body_regex),
                    expect_json: config.expect_json.as_ref().and_then(|json| {
                        let json = json.get_ref();
                        Some((
                            json.pointer.clone(),
                            serde_json::to_value(&json.equals).ok()?,
                        ))
                    }),
                }))
            }
            ProbeKind::Tcp => {
                let mut probe = TcpProbe::new(config.address.as_ref()?.get_ref())?;
                probe.send = value(&config.send).map(String::into_bytes);
                probe.expect = config
                    .expect
                    .as_ref()
                    .and_then(|e| regex::bytes::Regex::new(e.get_ref()).ok());
                Some(Self::Tcp(probe))
            }
            ProbeKind::Exec => {
                let (program, args) = config.command.as_ref()?.get_ref().split_first()?;
                Some(Self::Exec(ExecProbe {
                    program: program.clone(),
                    args: args.to_vec(),
                    expect_exit: config.expect_exit.as_ref().map_or(0, |e| *e.get_ref()),
                    output_regex: regex(&config.output_regex),
                }))
            }
            ProbeKind::Postgres => {
                let (host, port) = match &config.address {
                    Some(address) => split_host_port(address.get_ref())?,
                    None => ("127.0.0.1".to_string(), 5432),
                };
                let user = value(&config.user)?;
                Some(Self::Postgres(PostgresProbe {
                    host,
                    port,
                    password: config.postgres_password(),
                    database: value(&config.database).unwrap_or_else(|| user.clone()),
                    user,
                    query: value(&config.query).unwrap_or_else(|| "SELECT 1".to_string()),
                    expect: config
                        .expect_result
                        .as_ref()
                        .map(|e| {
                            let e = e.get_ref();
                            QueryExpectation {
                                rows: e.rows,
                                equals: e.equals.clone(),
                                min: e.min,
                                max: e.max,
                            }
                        })
                        .unwrap_or_default(),
                    timeout: config.timeout.get_ref().get(),
                    statement_timeout: config
                        .statement_timeout
                        .as_ref()
                        .map_or(config.timeout.get_ref().get(), |t| t.get_ref().get()),
                    expect_role: config.expect_role.as_ref().map(|r| match r.get_ref() {
                        config::PostgresRole::Primary => ExpectedRole::Primary,
                        config::PostgresRole::Replica => ExpectedRole::Replica,
                    }),
                    max_replication_lag: config
                        .max_replication_lag
                        .as_ref()
                        .map(|l| l.get_ref().get()),
                    max_connections_used: config
                        .max_connections_used
                        .as_ref()
                        .map(|u| *u.get_ref()),
                }))
            }
            ProbeKind::Heartbeat => Some(Self::Heartbeat(HeartbeatProbe {
                every: config.every.as_ref()?.get_ref().get(),
                grace: config
                    .grace
                    .as_ref()
                    .map_or(config::DEFAULT_GRACE, |g| *g.get_ref())
                    .get(),
            })),
            ProbeKind::Disk => Some(Self::Disk(DiskProbe {
                path: config.path.as_ref()?.get_ref().clone(),
                max_used_percent: config.max_used_percent.as_ref().map(|p| *p.get_ref()),
                max_inodes_percent: config.max_inodes_percent.as_ref().map(|p| *p.get_ref()),
            })),
            ProbeKind::Memory => Some(Self::Memory(MemoryProbe {
                min_available: *config.min_available.as_ref()?.get_ref(),
                proc_root: PROC_ROOT.into(),
            })),
            ProbeKind::Load => Some(Self::Load(LoadProbe {
                max_load_per_core: *config.max_load_per_core.as_ref()?.get_ref(),
                average: config
                    .load_average
                    .as_ref()
                    .map(|a| *a.get_ref())
                    .unwrap_or_default(),
                proc_root: PROC_ROOT.into(),
            })),
            ProbeKind::Docker => Some(Self::Docker(DockerProbe::new(
                docker.clone(),
                value(&config.container)?,
                config.crash_loop.as_ref().map(|rule| CrashLoopRule {
                    restarts: rule.get_ref().restarts,
                    within: rule.get_ref().within.get(),
                }),
            ))),
            ProbeKind::TlsCert => {
                let (host, port) = split_host_port(config.address.as_ref()?.get_ref())?;
                let probe = TlsCertProbe::new(
                    host,
                    port,
                    config.server_name.as_ref().map(|n| n.get_ref().as_str()),
                    config.min_days_left.as_ref().map_or(14, |d| *d.get_ref()),
                    config.ca_file.as_ref().map(|f| f.get_ref().as_path()),
                );
                match probe {
                    Ok(probe) => Some(Self::TlsCert(probe)),
                    Err(error) => {
                        tracing::error!(probe = config.name(), %error, "tls_cert probe not started");
                        None
                    }
                }
            }
            ProbeKind::Dns => Some(Self::Dns(DnsProbe {
                name: DnsProbe::parse_name(config.query.as_ref()?.get_ref()).ok()?,
                record: config
                    .record
                    .as_ref()
                    .map_or(config::DnsRecordType::A, |r| *r.get_ref()),
                server: match &config.server {
                    Some(server) => Some(DnsProbe::parse_server(server.get_ref())?),
                    None => None,
                },
                expect_answers: config
                    .expect_answers
                    .as_ref()
                    .map(|a| a.get_ref().clone())
                    .unwrap_or_default(),
                wait: config.timeout.get_ref().get() * 9 / 10,
            })),
            ProbeKind::Icmp => {
                let count = config.count.as_ref().map_or(3, |c| *c.get_ref());
                Some(Self::Icmp(IcmpProbe {
                    host: value(&config.host)?,
                    count,
                    max_loss_percent: config
                        .max_loss_percent
                        .as_ref()
                        .map_or(0.0, |l| *l.get_ref()),
                    max_rtt: config.max_rtt.as_ref().map(|r| r.get_ref().get()),
                    wait: IcmpProbe::wait_for(config.timeout.get_ref().get(), count),
                }))
            }
            ProbeKind::SystemdUnit => Some(Self::SystemdUnit(SystemdUnitProbe::new(
                value(&config.unit)?,
                config.active_states.as_ref().map(|s| s.get_ref().clone()),
            ))),
        }
    }

    /// Run one check, bounded by `timeout`; a success slower than `max_latency` fails.
    pub async fn check(&self, timeout: Duration, max_latency: Option<Duration>) -> CheckResult {
        let check = async {
            match self {
                Self::Http(probe) => probe.check().await,
                Self::Tcp(probe) => probe.check().await,
                Self::Exec(probe) => probe.check().await,
                Self::Docker(probe) => probe.check().await,
                Self::Postgres(probe) => probe.check().await,
                Self::TlsCert(probe) => probe.check().await,
                Self::Dns(probe) => probe.check().await,
                Self::Icmp(probe) => probe.check().await,
                Self::Disk(probe) => probe.check().await,
                Self::Memory(probe) => probe.check().await,
                Self::Load(probe) => probe.check().await,
                Self::SystemdUnit(probe) => probe.check().await,
                // Never checked: its runner follows the beats (`runner.rs`).
                Self::Heartbeat(_) => std::future::pending().await,
            }
        };
        let result = match tokio::time::timeout(timeout, check).await {
            Ok(result) => result,
            Err(_) => CheckResult::failure(
                timeout,
                Failure::new(
                    FailureReason::Timeout,
                    format!("no answer within {}", humantime::format_duration(timeout)),
                ),
                None,
            ),
        };
        match max_latency {
            Some(limit) if result.is_success() && result.latency > limit => CheckResult::failure(
                result.latency,
                Failure::new(
                    FailureReason::Assertion,
                    format!(
                        "answered in {:.1} ms, above max_latency {}",
                        result.latency.as_secs_f64() * 1000.0,
                        humantime::format_duration(limit)
                    ),
                ),
                result.status_code,
            ),
            _ => result,
        }
    }
}

/// A short quoted excerpt of some output, for a failure message.
pub(crate) fn excerpt(text: &str) -> String {
    let trimmed = text.trim();
    let mut short: String = trimmed.chars().take(120).collect();
    if short.len() < trimmed.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// `host:port` (or `[v6]:port`) split into its parts.
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// Resolve and connect, mapping errors to typed reasons.
pub(crate) async fn connect(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let addresses: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| Failure::new(FailureReason::Dns, format!("cannot resolve {host}: {err}")))?
        .collect();
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = Some((address, err)),
        }
    }
    Err(match last_error {
        None => Failure::new(FailureReason::Dns, format!("{host} has no addresses")),
        Some((address, err)) => {
            let reason = match err.kind() {
                std::io::ErrorKind::ConnectionRefused => FailureReason::Refused,
                std::io::ErrorKind::TimedOut => FailureReason::Timeout,
                _ => FailureReason::Io,
            };
            Failure::new(reason, format!("connect {address}: {err}"))
        }
    })
}

/// The latest known state of one probe, as `/v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSnapshot {
    pub name: String,
    pub kind: String,
    /// What is checked: URL, address, container, or command line.
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub interval_ms: u64,
    /// "fail after N, recover after M" (plus the flap rule), as configured.
    #[serde(default)]
    pub thresholds: String,
    pub state: ProbeState,
    /// When the probe entered its current state.
    pub since: Timestamp,
    pub last_check: Option<Timestamp>,
    pub last_latency_ms: Option<f64>,
    pub last_status_code: Option<u16>,
    pub last_failure: Option<String>,
    pub recoveries_total: u64,
    /// Not healed or alerted before this time (still checked).
    #[serde(default)]
    pub silenced_until: Option<Timestamp>,
    /// The maintenance window holding the probe back now (neither healed nor alerted until its
    /// `until`; still checked). Filled in when `/v1/status` answers.
    #[serde(default)]
    pub maintenance: Option<crate::maintenance::Cover>,
    #[serde(default)]
    pub checks_total: u64,
    #[serde(default)]
    pub failures_total: u64,
    /// Set when `[docker] discover` made this probe: from what, which container, label problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<crate::docker::discovery::DiscoveryNote>,
    /// For `/metrics`; not part of the JSON status.
    #[serde(skip)]
    pub latency: LatencyHistogram,
    /// The last checks, for the status page's latency history; not part of the JSON status.
    #[serde(skip)]
    pub recent: RecentChecks,
}

/// Latest snapshot of every running probe, written by the runners and read by the API.
pub type ProbeBoard = crate::board::Board<ProbeSnapshot>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_table() {
        let cases = [
            ("127.0.0.1:80", Some(("127.0.0.1", 80))),
            ("[::1]:5432", Some(("::1", 5432))),
            ("db.internal:5432", Some(("db.internal", 5432))),
            ("nope", None),
            (":80", None),
            ("h:99999", None),
        ];
        for (input, expected) in cases {
            let got = split_host_port(input);
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                expected,
                "{input}"
            );
        }
    }

    #[tokio::test]
    async fn tcp_check_against_real_listener_and_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let probe = TcpProbe::new(&open.to_string()).unwrap();
        assert!(probe.check().await.is_success());

        drop(listener);
        let result = probe.check().await;
        assert_eq!(result.failure.unwrap().reason, FailureReason::Refused);
    }
}
