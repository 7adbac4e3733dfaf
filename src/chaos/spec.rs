//! What an experiment does, as data: the faults (netem, tbf, CPU quota, memory limit, process
//! and container faults), the target they hit, and the checks that refuse a spec before any kernel call.

use serde::{Deserialize, Serialize};

use super::hypothesis::Hypothesis;
use crate::units::{ByteSize, HumanDuration, Rate};

/// The kernel caps netem jitter at INT_MAX nanoseconds without saying so; we refuse instead.
pub const MAX_JITTER_NS: u64 = i32::MAX as u64;

/// Why a spec (or its hypothesis) is refused before any kernel call; the text is what users
/// see in config errors and in `400` answers of the control API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("an experiment needs at least one fault")]
    NoFault,
    #[error("at most one network fault per experiment: one root qdisc per interface (netem has its own `rate` to combine delay and a bandwidth cap)")]
    SeveralNetworkFaults,
    #[error("{fault} needs target.interface (with netns or container for a namespace)")]
    NeedsInterface { fault: &'static str },
    #[error("target: give either netns or container, not both")]
    NetnsAndContainer,
    #[error("target: give one of cgroup, pid or unit")]
    SeveralResourceTargets,
    #[error("invalid halt_on \"{halt}\": write probe:NAME (e.g. probe:api)")]
    HaltOn { halt: String },
    #[error(
        "tbf burst {burst} is below an Ethernet frame (1514 B): full-size packets would be dropped"
    )]
    TbfBurst { burst: ByteSize },
    #[error("tbf limit must be above 0 (0 drops every packet)")]
    TbfLimitZero,
    #[error("cpu_quota period must be between 1ms and 1s")]
    CpuPeriod,
    #[error("cpu_quota cpus must give at least 1ms of CPU per period")]
    CpuTooLittle,
    #[error("memory_limit needs max or high")]
    MemoryNeedsMaxOrHigh,
    #[error("unknown signal \"{text}\" (e.g. SIGTERM, KILL, 9)")]
    UnknownSignal {
        text: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("{fault} needs a target {what}")]
    NeedsTarget {
        fault: &'static str,
        what: &'static str,
    },
    #[error("netem {name} {value} is not a percentage (0..=100)")]
    NotPercentage { name: &'static str, value: f64 },
    #[error("netem jitter above 2.147s: the kernel would silently cap it")]
    JitterTooLarge,
    #[error("netem jitter needs a delay")]
    JitterNeedsDelay,
    #[error("netem distribution needs both delay and jitter")]
    DistributionNeedsDelayAndJitter,
    #[error("netem reorder needs a delay (packets are reordered by sending some without it)")]
    ReorderNeedsDelay,
    #[error("netem: give either loss or loss_gemodel")]
    LossAndGemodel,
    #[error("netem limit must be at least 1 packet")]
    NetemLimitZero,
    #[error("netem fault does nothing: give delay, loss, duplicate, corrupt or rate")]
    NetemDoesNothing,
    #[error("hypothesis needs steady_state = [\"PROBE\", ...]: the probes it is about")]
    NoSteadyState,
    #[error("hypothesis recover_within must be above zero")]
    RecoverWithinZero,
    #[error("give either a profile or a spec")]
    NoProfileOrSpec,
    #[error("duration must be above zero")]
    ZeroDuration,
    #[error("a port in destinations needs protocol = \"tcp\" or \"udp\" (u32 matches the port at the transport header's offset, which other protocols do not have)")]
    PortNeedsProtocol,
    #[error("partition needs destinations = [\"CIDR\", ...]: the prefixes to cut off")]
    PartitionNeedsDestinations,
    #[error("partition drops whole prefixes (a blackhole route): ports and protocol cannot be matched; use a scoped tbf or netem for those")]
    PartitionPortOrProtocol,
    #[error("cpu_stress workers must be 1..=256")]
    StressWorkers,
    #[error("cpu_stress load is a percentage of each worker's time: 1..=100")]
    StressLoad,
    #[error("memory_stress needs either bytes (above zero) or percent (of the target's memory limit, above 0 and at most 1000)")]
    MemoryStressAmount,
    #[error("disk_fill path must be an absolute directory path without ..")]
    DiskFillPath,
    #[error("disk_fill max_used_percent {value} must be above 0 and below 100")]
    DiskFillCeiling { value: f64 },
    #[error("disk_fill bytes must be above zero (leave it out to fill up to the ceiling)")]
    DiskFillZero,
}

/// A destination a scoped network fault applies to: `CIDR[:port]`, e.g. `10.0.0.0/24`,
/// `10.0.0.2:80`, `10.0.0.0/24:443`, `fd00::/64`, `[fd00::2]:80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub net: ipnet::IpNet,
    pub port: Option<u16>,
}

/// Why a destination text is refused (shown at the key's line:col).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("\"{text}\" is not CIDR[:port] (e.g. 10.0.0.0/24, 10.0.0.2:80, [fd00::2]:443)")]
    Syntax { text: String },
    #[error("\"{text}\": port must be 1..=65535")]
    Port { text: String },
    #[error("\"{text}\" has host bits set beyond /{len}: write {network}")]
    HostBits {
        text: String,
        len: u8,
        network: ipnet::IpNet,
    },
}

impl std::str::FromStr for Destination {
    type Err = DestinationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || DestinationError::Syntax {
            text: text.to_string(),
        };
        let (address, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(syntax)?;
            match after {
                "" => (inside, None),
                _ => (inside, Some(after.strip_prefix(':').ok_or_else(syntax)?)),
            }
        } else if let Some((address, len)) = text.split_once('/') {
            match len.split_once(':') {
                Some((len, port)) => (&text[..address.len() + 1 + len.len()], Some(port)),
                None => (text, None),
            }
        } else if text.parse::<std::net::IpAddr>().is_ok() {
            (text, None)
        } else {
            // a port on a bare address: IPv4 only (IPv6 needs brackets)
            let (address, port) = text.rsplit_once(':').ok_or_else(syntax)?;
            address
                .parse::<std::net::Ipv4Addr>()
                .map_err(|_| syntax())?;
            (address, Some(port))
        };
        let net: ipnet::IpNet = match address.parse::<std::net::IpAddr>() {
            Ok(single) => single.into(),
            Err(_) => address.parse().map_err(|_| syntax())?,
        };
        if net.trunc() != net {
            return Err(DestinationError::HostBits {
                text: text.to_string(),
                len: net.prefix_len(),
                network: net.trunc(),
            });
        }
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(DestinationError::Port {
                        text: text.to_string(),
                    })
                }
                Ok(port) => Some(port),
            },
        };
        Ok(Self { net, port })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.port, self.net) {
            (None, net) => write!(f, "{net}"),
            (Some(port), ipnet::IpNet::V6(net)) => write!(f, "[{net}]:{port}"),
            (Some(port), net) => write!(f, "{net}:{port}"),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The transport protocol a scoped fault matches (IP protocol 6, 17, or 1 / 58 for ICMPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

/// Which traffic a netem or tbf fault hits: everything on the interface (both empty), or only
/// packets to `destinations` and/or of `protocol` (an htb root with u32 filters).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    pub destinations: Vec<Destination>,
    pub protocol: Option<Protocol>,
    /// Ingress: `destinations` are the peers packets come from (u32 matches source fields).
    #[serde(skip_serializing_if = "Direction::is_egress")]
    pub direction: Direction,
}

/// Which way a netem or tbf fault hits the interface: what it sends (egress, a root qdisc) or
/// what it receives (ingress: redirected through an ifb device whose root carries the fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Egress,
    Ingress,
}

impl Direction {
    pub fn is_egress(&self) -> bool {
        *self == Self::Egress
    }
}

impl Scope {
    pub fn is_scoped(&self) -> bool {
        !self.destinations.is_empty() || self.protocol.is_some()
    }

    fn validate(&self) -> Result<(), SpecError> {
        let ports = self.destinations.iter().any(|d| d.port.is_some());
        if ports && !matches!(self.protocol, Some(Protocol::Tcp | Protocol::Udp)) {
            return Err(SpecError::PortNeedsProtocol);
        }
        Ok(())
    }

    /// " to 10.0.0.2/32, fd00::/64 (tcp)" (" ingress from ..." for ingress) or "".
    pub fn describe(&self) -> String {
        let mut text = String::new();
        if self.direction == Direction::Ingress {
            text.push_str(" ingress");
        }
        if !self.destinations.is_empty() {
            let list: Vec<String> = self.destinations.iter().map(|d| d.to_string()).collect();
            let word = match self.direction {
                Direction::Egress => "to",
                Direction::Ingress => "from",
            };
            text.push_str(&format!(" {word} {}", list.join(", ")));
        }
        if let Some(protocol) = self.protocol {
            text.push_str(&format!(" ({protocol:?})").to_lowercase());
        }
        text
    }
}

/// partition: every packet from the target's namespace to these prefixes is dropped, through
/// blackhole routes (the kernel needs no `gact` action for that).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionSpec {
    pub destinations: Vec<Destination>,
    /// Refused when set: a route cannot match a protocol (kept so the error says why).
    pub protocol: Option<Protocol>,
}

/// netem: delay, jitter, loss, duplication, corruption, reordering and a rate cap in one qdisc.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetemSpec {
    pub delay: Option<HumanDuration>,
    pub jitter: Option<HumanDuration>,
    /// Correlation of each delay with the previous one, percent.
    pub delay_correlation: f64,
    /// Shape of the jitter: normal, pareto or paretonormal (tables generated in Rust).
    pub distribution: Option<Distribution>,
    /// Random loss, percent.
    pub loss: f64,
    pub loss_correlation: f64,
    /// Gilbert-Elliott loss instead of random loss.
    pub loss_gemodel: Option<GilbertElliott>,
    pub duplicate: f64,
    pub duplicate_correlation: f64,
    pub corrupt: f64,
    pub corrupt_correlation: f64,
    /// Percent of packets sent at once (the rest delayed); needs `delay`.
    pub reorder: f64,
    pub reorder_correlation: f64,
    /// Reorder every `gap`-th packet (default 1 when reordering).
    pub gap: u32,
    pub rate: Option<Rate>,
    /// Queue length in packets (kernel default 1000). A long delay at a high packet rate needs
    /// more, or the queue overflows and causes loss nobody asked for.
    pub limit: Option<u32>,
    /// Only packets to these destinations (empty: all).
    pub destinations: Vec<Destination>,
    /// Only packets of this protocol.
    pub protocol: Option<Protocol>,
    /// egress (default) or ingress (through an ifb device).
    #[serde(skip_serializing_if = "Direction::is_egress")]
    pub direction: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Normal,
    Pareto,
    Paretonormal,
}

/// Gilbert-Elliott loss model, all in percent: `p` good→bad, `r` bad→good, `h` delivery in the
/// bad state (iproute2's "1-h"), `k` loss in the good state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GilbertElliott {
    pub p: f64,
    pub r: f64,
    #[serde(default)]
    pub h: f64,
    #[serde(default)]
    pub k: f64,
}

/// tbf: a token-bucket bandwidth limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TbfSpec {
    pub rate: Rate,
    /// Bucket size; at least MTU + link header (1514 on Ethernet), or big packets are dropped.
    pub burst: ByteSize,
    /// Bytes that may wait in the queue.
    pub limit: ByteSize,
    /// Only packets to these destinations (empty: all).
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// Only packets of this protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// egress (default) or ingress (through an ifb device).
    #[serde(default, skip_serializing_if = "Direction::is_egress")]
    pub direction: Direction,
}

/// A CPU quota: `cpus` CPUs' worth of time per `period` (0.5 = half of one CPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuQuota {
    pub cpus: f64,
    #[serde(default = "CpuQuota::default_period")]
    pub period: HumanDuration,
}

impl CpuQuota {
    fn default_period() -> HumanDuration {
        HumanDuration(std::time::Duration::from_millis(100))
    }

    pub fn period_us(&self) -> u64 {
        self.period.get().as_micros() as u64
    }

    pub fn quota_us(&self) -> u64 {
        (self.cpus * self.period_us() as f64).round() as u64
    }
}

/// A memory limit: `max` is the hard limit (OOM kill past it); `high` (cgroup v2 only) throttles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLimit {
    pub max: Option<ByteSize>,
    pub high: Option<ByteSize>,
}

/// A container action through the Docker API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerAction {
    Kill,
    Stop,
    Restart,
    /// Paused for the experiment, unpaused on rollback.
    Pause,
}

/// One fault. Network faults need an interface; the others a process, cgroup or container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    Netem(NetemSpec),
    Tbf(TbfSpec),
    CpuQuota(CpuQuota),
    MemoryLimit(MemoryLimit),
    /// Send a signal once (no rollback: a killed process stays killed).
    Signal {
        signal: String,
    },
    /// SIGSTOP now, SIGCONT on rollback.
    Pause {},
    Container {
        action: ContainerAction,
    },
    /// Blackhole routes to the destinations in the target's namespace; removed on rollback.
    Partition(PartitionSpec),
    /// CPU burners in the target's cgroup; killed on rollback.
    CpuStress(super::stress::CpuStress),
    /// A memory burner in the target's cgroup; killed on rollback.
    MemoryStress(super::stress::MemoryStress),
    /// A file filling a directory's filesystem up to a ceiling; removed on rollback.
    DiskFill(super::diskfill::DiskFill),
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Netem(_) => "netem",
            Self::Tbf(_) => "tbf",
            Self::CpuQuota(_) => "cpu_quota",
            Self::MemoryLimit(_) => "memory_limit",
            Self::Signal { .. } => "signal",
            Self::Pause {} => "pause",
            Self::Container { .. } => "container",
            Self::Partition(_) => "partition",
            Self::CpuStress(_) => "cpu_stress",
            Self::MemoryStress(_) => "memory_stress",
            Self::DiskFill(_) => "disk_fill",
        }
    }

    /// A qdisc fault (one per experiment: an interface has one root qdisc).
    pub fn is_network(&self) -> bool {
        matches!(self, Self::Netem(_) | Self::Tbf(_))
    }

    /// The traffic a netem or tbf fault is limited to (everything when not scoped).
    pub fn scope(&self) -> Scope {
        match self {
            Self::Netem(n) => Scope {
                destinations: n.destinations.clone(),
                protocol: n.protocol,
                direction: n.direction,
            },
            Self::Tbf(t) => Scope {
                destinations: t.destinations.clone(),
                protocol: t.protocol,
                direction: t.direction,
            },
            _ => Scope::default(),
        }
    }

    /// One line for events and tables, e.g. "tbf rate 125000B/s burst 16384B".
    pub fn describe(&self) -> String {
        match self {
            Self::Netem(n) => {
                let mut parts = vec!["netem".to_string()];
                if let Some(delay) = n.delay {
                    parts.push(format!("delay {delay}"));
                }
                if let Some(jitter) = n.jitter {
                    parts.push(format!("jitter {jitter}"));
                }
                for (name, value) in [
                    ("loss", n.loss),
                    ("duplicate", n.duplicate),
                    ("corrupt", n.corrupt),
                    ("reorder", n.reorder),
                ] {
                    if value > 0.0 {
                        parts.push(format!("{name} {value}%"));
                    }
                }
                if n.loss_gemodel.is_some() {
                    parts.push("loss gemodel".into());
                }
                if let Some(rate) = n.rate {
                    parts.push(format!("rate {rate}"));
                }
                parts.join(" ") + &self.scope().describe()
            }
            Self::Tbf(t) => format!(
                "tbf rate {} burst {} limit {}{}",
                t.rate,
                t.burst,
                t.limit,
                self.scope().describe()
            ),
            Self::CpuQuota(c) => format!("cpu quota {} cpus per {}", c.cpus, c.period),
            Self::MemoryLimit(m) => {
                let show = |v: Option<ByteSize>| v.map_or("-".into(), |v| v.to_string());
                format!("memory max {} high {}", show(m.max), show(m.high))
            }
            Self::Signal { signal } => format!("signal {signal}"),
            Self::Pause {} => "pause".into(),
            Self::Container { action } => format!("container {action:?}").to_lowercase(),
            Self::Partition(p) => format!(
                "partition{}",
                Scope {
                    destinations: p.destinations.clone(),
                    protocol: None,
                    direction: Direction::Egress,
                }
                .describe()
            ),
            Self::CpuStress(c) => format!("cpu stress {} worker(s) at {}%", c.workers, c.load),
            Self::MemoryStress(m) => {
                let amount = match (m.bytes, m.percent) {
                    (Some(bytes), _) => bytes.to_string(),
                    (None, Some(percent)) => format!("{percent}% of the limit"),
                    (None, None) => "-".into(),
                };
                let avoid = if m.avoid_oom_kill {
                    " (avoid oom kill)"
                } else {
                    ""
                };
                format!("memory stress {amount}{avoid}")
            }
            Self::DiskFill(d) => format!(
                "disk fill {} up to {}% used",
                d.path.display(),
                d.max_used_percent
            ),
        }
    }
}

/// Where the faults land. Network faults use `interface` in the host's, a named (`netns`) or a
/// container's network namespace; resource faults use `cgroup`, `pid`, `unit` or `container`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetSpec {
    pub interface: Option<String>,
    /// A named network namespace under /run/netns.
    pub netns: Option<String>,
    pub container: Option<String>,
    /// A cgroup path relative to the hierarchy root, e.g. "/sentinel-test/busy".
    pub cgroup: Option<String>,
    pub pid: Option<i32>,
    pub unit: Option<String>,
}

impl TargetSpec {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let fields = [
            ("container", &self.container),
            ("netns", &self.netns),
            ("interface", &self.interface),
            ("cgroup", &self.cgroup),
            ("unit", &self.unit),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                parts.push(format!("{name} {value}"));
            }
        }
        if let Some(pid) = self.pid {
            parts.push(format!("pid {pid}"));
        }
        parts.join(", ")
    }
}

/// Everything needed to run one experiment: what a profile holds, or an ad-hoc API request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub faults: Vec<Fault>,
    pub target: TargetSpec,
    /// Replace a pre-existing non-default root qdisc (restored on rollback).
    #[serde(default)]
    pub force: bool,
    /// Allow the interface that carries the default route (it may carry this host's management).
    #[serde(default)]
    pub allow_default_route: bool,
    /// Abort and roll back as soon as one of these goes Down, e.g. "probe:api".
    #[serde(default)]
    pub halt_on: Vec<String>,
    /// What should hold while the fault is in place; judged by `sentinelctl report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypothesis: Option<Hypothesis>,
}

impl ExperimentSpec {
    /// Refuse what the kernel would refuse, or silently get wrong, before touching it.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.faults.is_empty() {
            return Err(SpecError::NoFault);
        }
        let network: Vec<&Fault> = self.faults.iter().filter(|f| f.is_network()).collect();
        if network.len() > 1 {
            return Err(SpecError::SeveralNetworkFaults);
        }
        let target = &self.target;
        if !network.is_empty() && target.interface.is_none() {
            return Err(SpecError::NeedsInterface {
                fault: network[0].name(),
            });
        }
        if target.netns.is_some() && target.container.is_some() {
            return Err(SpecError::NetnsAndContainer);
        }
        let resource_targets = [
            target.cgroup.is_some(),
            target.pid.is_some(),
            target.unit.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if resource_targets > 1 {
            return Err(SpecError::SeveralResourceTargets);
        }
        for halt in &self.halt_on {
            if !halt.starts_with("probe:") || halt.len() <= "probe:".len() {
                return Err(SpecError::HaltOn { halt: halt.clone() });
            }
        }
        for fault in &self.faults {
            validate_fault(fault, target)?;
        }
        if let Some(hypothesis) = &self.hypothesis {
            hypothesis.validate()?;
        }
        Ok(())
    }
}

fn validate_fault(fault: &Fault, target: &TargetSpec) -> Result<(), SpecError> {
    let has_cgroup = target.cgroup.is_some()
        || target.pid.is_some()
        || target.unit.is_some()
        || target.container.is_some();
    match fault {
        Fault::Netem(netem) => {
            validate_netem(netem)?;
            fault.scope().validate()
        }
        Fault::Partition(partition) => {
            if partition.destinations.is_empty() {
                return Err(SpecError::PartitionNeedsDestinations);
            }
            if partition.protocol.is_some()
                || partition.destinations.iter().any(|d| d.port.is_some())
            {
                return Err(SpecError::PartitionPortOrProtocol);
            }
            Ok(())
        }
        Fault::Tbf(tbf) => {
            fault.scope().validate()?;
            if tbf.burst.0 < 1514 {
                return Err(SpecError::TbfBurst { burst: tbf.burst });
            }
            if tbf.limit.0 == 0 {
                return Err(SpecError::TbfLimitZero);
            }
            Ok(())
        }
        Fault::CpuQuota(cpu) => {
            let period = cpu.period_us();
            if !(1_000..=1_000_000).contains(&period) {
                return Err(SpecError::CpuPeriod);
            }
            if cpu.cpus <= 0.0 || cpu.quota_us() < 1_000 {
                return Err(SpecError::CpuTooLittle);
            }
            needs(has_cgroup, "cpu_quota", "cgroup, pid, unit or container")
        }
        Fault::MemoryLimit(memory) => {
            if memory.max.is_none() && memory.high.is_none() {
                return Err(SpecError::MemoryNeedsMaxOrHigh);
            }
            needs(has_cgroup, "memory_limit", "cgroup, pid, unit or container")
        }
        Fault::Signal { signal } => {
            parse_signal(signal)?;
            needs(target.pid.is_some(), "signal", "pid")
        }
        Fault::Pause {} => needs(target.pid.is_some(), "pause", "pid"),
        Fault::Container { .. } => needs(target.container.is_some(), "container", "container"),
        Fault::CpuStress(cpu) => {
            super::stress::validate_cpu(cpu)?;
            needs(has_cgroup, "cpu_stress", "cgroup, pid, unit or container")
        }
        Fault::MemoryStress(memory) => {
            super::stress::validate_memory(memory)?;
            needs(
                has_cgroup,
                "memory_stress",
                "cgroup, pid, unit or container",
            )
        }
        Fault::DiskFill(fill) => super::diskfill::validate(fill),
    }
}

fn needs(present: bool, fault: &'static str, what: &'static str) -> Result<(), SpecError> {
    match present {
        true => Ok(()),
        false => Err(SpecError::NeedsTarget { fault, what }),
    }
}

fn validate_netem(netem: &NetemSpec) -> Result<(), SpecError> {
    for (name, value) in [
        ("loss", netem.loss),
        ("loss_correlation", netem.loss_correlation),
        ("delay_correlation", netem.delay_correlation),
        ("duplicate", netem.duplicate),
        ("duplicate_correlation", netem.duplicate_correlation),
        ("corrupt", netem.corrupt),
        ("corrupt_correlation", netem.corrupt_correlation),
        ("reorder", netem.reorder),
        ("reorder_correlation", netem.reorder_correlation),
    ] {
        if !(0.0..=100.0).contains(&value) {
            return Err(SpecError::NotPercentage { name, value });
        }
    }
    let delay = netem.delay.map_or(0, |d| d.get().as_nanos());
    let jitter = netem.jitter.map_or(0, |d| d.get().as_nanos());
    if jitter > MAX_JITTER_NS as u128 {
        return Err(SpecError::JitterTooLarge);
    }
    if jitter > 0 && delay == 0 {
        return Err(SpecError::JitterNeedsDelay);
    }
    if netem.distribution.is_some() && (delay == 0 || jitter == 0) {
        return Err(SpecError::DistributionNeedsDelayAndJitter);
    }
    if (netem.reorder > 0.0 || netem.gap > 0) && delay == 0 {
        return Err(SpecError::ReorderNeedsDelay);
    }
    if netem.loss > 0.0 && netem.loss_gemodel.is_some() {
        return Err(SpecError::LossAndGemodel);
    }
    if netem.limit == Some(0) {
        return Err(SpecError::NetemLimitZero);
    }
    let nothing = delay == 0
        && netem.loss == 0.0
        && netem.loss_gemodel.is_none()
        && netem.duplicate == 0.0
        && netem.corrupt == 0.0
        && netem.rate.is_none();
    if nothing {
        return Err(SpecError::NetemDoesNothing);
    }
    Ok(())
}

/// "SIGKILL", "KILL" or "9".
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal, SpecError> {
    use std::str::FromStr;
    let error = |source| SpecError::UnknownSignal {
        text: text.to_string(),
        source,
    };
    if let Ok(number) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(number).map_err(error);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(faults: &str, target: &str) -> Result<(), String> {
        let json = format!(r#"{{"faults": [{faults}], "target": {{{target}}}}}"#);
        let spec: ExperimentSpec = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn validation_table() {
        let tbf = r#"{"kind":"tbf","rate":"1mbit/s","burst":"16KiB","limit":"32KiB"}"#;
        let cases: &[(&str, &str, Result<(), &str>)] = &[
            (tbf, r#""interface":"eth0""#, Ok(())),
            (tbf, r#""cgroup":"/x""#, Err("tbf needs target.interface")),
            (
                r#"{"kind":"tbf","rate":"1mbit/s","burst":1000,"limit":"32KiB"}"#,
                r#""interface":"eth0""#,
                Err("tbf burst 1000B is below an Ethernet frame"),
            ),
            (
                r#"{"kind":"netem","delay":"100ms","jitter":"10ms","loss":1.0}"#,
                r#""interface":"eth0","netns":"x""#,
                Ok(()),
            ),
            (
                r#"{"kind":"netem","jitter":"10ms"}"#,
                r#""interface":"eth0""#,
                Err("netem jitter needs a delay"),
            ),
            (
                r#"{"kind":"netem","delay":"1s","jitter":"3s"}"#,
                r#""interface":"eth0""#,
                Err("netem jitter above 2.147s"),
            ),
            (
                r#"{"kind":"netem","loss":120.0}"#,
                r#""interface":"eth0""#,
                Err("netem loss 120 is not a percentage"),
            ),
            (
                r#"{"kind":"netem","reorder":25.0}"#,
                r#""interface":"eth0""#,
                Err("netem reorder needs a delay"),
            ),
            (
                r#"{"kind":"netem"}"#,
                r#""interface":"eth0""#,
                Err("netem fault does nothing"),
            ),
            (
                &format!(r#"{{"kind":"netem","delay":"1ms"}},{tbf}"#),
                r#""interface":"eth0""#,
                Err("at most one network fault"),
            ),
            (
                r#"{"kind":"cpu_quota","cpus":0.5}"#,
                r#""cgroup":"/x""#,
                Ok(()),
            ),
            (
                r#"{"kind":"cpu_quota","cpus":0.001}"#,
                r#""cgroup":"/x""#,
                Err("cpu_quota cpus must give at least 1ms"),
            ),
            (
                r#"{"kind":"memory_limit","max":"64MiB"}"#,
                r#""interface":"eth0""#,
                Err("memory_limit needs a target cgroup"),
            ),
            (
                r#"{"kind":"memory_limit"}"#,
                r#""pid":1"#,
                Err("memory_limit needs max or high"),
            ),
            (r#"{"kind":"signal","signal":"KILL"}"#, r#""pid":1"#, Ok(())),
            (
                r#"{"kind":"signal","signal":"SIGNOPE"}"#,
                r#""pid":1"#,
                Err("unknown signal \"SIGNOPE\""),
            ),
            (
                r#"{"kind":"pause"}"#,
                r#""container":"c""#,
                Err("pause needs a target pid"),
            ),
            (
                r#"{"kind":"container","action":"pause"}"#,
                r#""container":"c""#,
                Ok(()),
            ),
            (
                r#"{"kind":"cpu_quota","cpus":1.0}"#,
                r#""cgroup":"/x","pid":3"#,
                Err("target: give one of cgroup, pid or unit"),
            ),
        ];
        for (faults, target, expected) in cases {
            let got = spec(faults, target);
            match expected {
                Ok(()) => assert_eq!(got, Ok(()), "{faults} / {target}"),
                Err(prefix) => {
                    let err = got.expect_err(faults);
                    assert!(
                        err.starts_with(prefix),
                        "{faults}: got {err}, want {prefix}"
                    );
                }
            }
        }
    }

    #[test]
    fn destinations_parse_or_say_why() {
        let ok: &[(&str, &str, Option<u16>)] = &[
            ("10.254.0.2", "10.254.0.2/32", None),
            ("10.254.0.0/24", "10.254.0.0/24", None),
            ("10.254.0.2:80", "10.254.0.2/32", Some(80)),
            ("10.0.0.0/8:443", "10.0.0.0/8", Some(443)),
            ("fd00::2", "fd00::2/128", None),
            ("fd00::/64", "fd00::/64", None),
            ("[fd00::2]:53", "fd00::2/128", Some(53)),
            ("[fd00::/64]:53", "fd00::/64", Some(53)),
            ("fd00::/64:53", "fd00::/64", Some(53)),
            ("0.0.0.0/0", "0.0.0.0/0", None),
        ];
        for (text, net, port) in ok {
            let destination: Destination = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(destination.net.to_string(), *net, "{text}");
            assert_eq!(destination.port, *port, "{text}");
            // the text it prints parses back to the same destination
            assert_eq!(
                destination.to_string().parse::<Destination>(),
                Ok(destination)
            );
        }
        let bad: &[(&str, &str)] = &[
            (
                "10.254.0.1/24",
                "has host bits set beyond /24: write 10.254.0.0/24",
            ),
            ("10.254.0.2:0", "port must be 1..=65535"),
            ("10.254.0.2:70000", "port must be 1..=65535"),
            ("10.254.0.256", "is not CIDR[:port]"),
            ("fd00::2:80x", "is not CIDR[:port]"),
            ("[fd00::2]80", "is not CIDR[:port]"),
            ("10.0.0.0/33", "is not CIDR[:port]"),
            ("", "is not CIDR[:port]"),
            ("example.com:80", "is not CIDR[:port]"),
        ];
        for (text, want) in bad {
            let err = text.parse::<Destination>().unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn scoped_and_partition_validation() {
        let cases: &[(&str, &str, Result<(), &str>)] = &[
            (
                r#"{"kind":"tbf","rate":"1mbit/s","burst":"16KiB","limit":"32KiB","destinations":["10.0.0.2"]}"#,
                r#""interface":"eth0""#,
                Ok(()),
            ),
            (
                r#"{"kind":"tbf","rate":"1mbit/s","burst":"16KiB","limit":"32KiB","destinations":["10.0.0.2:80"],"protocol":"tcp"}"#,
                r#""interface":"eth0""#,
                Ok(()),
            ),
            (
                r#"{"kind":"tbf","rate":"1mbit/s","burst":"16KiB","limit":"32KiB","destinations":["10.0.0.2:80"]}"#,
                r#""interface":"eth0""#,
                Err("a port in destinations needs protocol"),
            ),
            (
                r#"{"kind":"netem","delay":"10ms","destinations":["[fd00::1]:80"],"protocol":"icmp"}"#,
                r#""interface":"eth0""#,
                Err("a port in destinations needs protocol"),
            ),
            (
                r#"{"kind":"netem","delay":"10ms","protocol":"udp"}"#,
                r#""interface":"eth0""#,
                Ok(()),
            ),
            (
                r#"{"kind":"netem","delay":"10ms","protocol":"sctp"}"#,
                r#""interface":"eth0""#,
                Err("unknown variant `sctp`"),
            ),
            (
                r#"{"kind":"netem","delay":"10ms","destinations":["10.0.0.1/8"]}"#,
                r#""interface":"eth0""#,
                Err("\"10.0.0.1/8\" has host bits set"),
            ),
            (
                r#"{"kind":"partition","destinations":["10.0.0.2","fd00::/64"]}"#,
                r#""netns":"x""#,
                Ok(()),
            ),
            (
                r#"{"kind":"partition"}"#,
                r#""netns":"x""#,
                Err("partition needs destinations"),
            ),
            (
                r#"{"kind":"partition","destinations":["10.0.0.2:80"]}"#,
                r#""netns":"x""#,
                Err("partition drops whole prefixes"),
            ),
            (
                r#"{"kind":"partition","destinations":["10.0.0.2"],"protocol":"tcp"}"#,
                r#""netns":"x""#,
                Err("partition drops whole prefixes"),
            ),
        ];
        for (faults, target, expected) in cases {
            let got = spec(faults, target);
            match expected {
                Ok(()) => assert_eq!(got, Ok(()), "{faults} / {target}"),
                Err(want) => {
                    let err = got.expect_err(faults);
                    assert!(err.contains(want), "{faults}: got {err}, want {want}");
                }
            }
        }
    }

    #[test]
    fn scoped_faults_describe_their_scope() {
        let fault: Fault = serde_json::from_str(
            r#"{"kind":"tbf","rate":"1mbit/s","burst":"16KiB","limit":"32KiB","destinations":["10.0.0.2:80"],"protocol":"tcp"}"#,
        )
        .unwrap();
        assert!(
            fault.describe().ends_with(" to 10.0.0.2/32:80 (tcp)"),
            "{}",
            fault.describe()
        );
        let partition: Fault =
            serde_json::from_str(r#"{"kind":"partition","destinations":["fd00::/64"]}"#).unwrap();
        assert_eq!(partition.describe(), "partition to fd00::/64");
        // a spec round-trips through the journal's JSON
        let json = serde_json::to_string(&fault).unwrap();
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), fault);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = spec(r#"{"kind":"netem","dealy":"1ms"}"#, r#""interface":"e""#).unwrap_err();
        assert!(err.contains("unknown field `dealy`"), "{err}");
    }

    #[test]
    fn errors_keep_their_cause_and_their_text() {
        use std::error::Error;
        let err = parse_signal("99").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown signal \"99\" (e.g. SIGTERM, KILL, 9)"
        );
        let cause = err.source().expect("the errno is kept");
        assert_eq!(
            cause.downcast_ref::<nix::errno::Errno>(),
            Some(&nix::errno::Errno::EINVAL)
        );
        let err = parse_signal("SIGNOPE").unwrap_err();
        assert!(err.source().is_some(), "{err}");
        // the engine's error keeps the finding as its cause, and its text as before
        let chaos = crate::chaos::ChaosError::Invalid(err);
        assert_eq!(
            chaos.to_string(),
            "invalid experiment: unknown signal \"SIGNOPE\" (e.g. SIGTERM, KILL, 9)"
        );
        let finding = chaos.source().and_then(|s| s.downcast_ref::<SpecError>());
        assert!(
            matches!(finding, Some(SpecError::UnknownSignal { text, .. }) if text == "SIGNOPE"),
            "{finding:?}"
        );
    }

    #[test]
    fn signals_by_name_or_number() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("KILL"), Ok(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn cpu_quota_in_microseconds() {
        let cpu = CpuQuota {
            cpus: 0.25,
            period: "100ms".parse().unwrap(),
        };
        assert_eq!((cpu.quota_us(), cpu.period_us()), (25_000, 100_000));
    }
}
