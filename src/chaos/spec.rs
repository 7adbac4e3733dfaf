//! What an experiment does, as data: the faults (netem, tbf, CPU quota, memory limit, process
//! and container faults), the target they hit, and the checks that refuse a spec before any kernel call.

use serde::{Deserialize, Serialize};

use super::hypothesis::Hypothesis;
use crate::units::{ByteSize, HumanDuration, Rate};

/// The kernel caps netem jitter at INT_MAX nanoseconds without saying so; we refuse instead.
pub const MAX_JITTER_NS: u64 = i32::MAX as u64;

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
        }
    }

    pub fn is_network(&self) -> bool {
        matches!(self, Self::Netem(_) | Self::Tbf(_))
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
                parts.join(" ")
            }
            Self::Tbf(t) => format!("tbf rate {} burst {} limit {}", t.rate, t.burst, t.limit),
            Self::CpuQuota(c) => format!("cpu quota {} cpus per {}", c.cpus, c.period),
            Self::MemoryLimit(m) => {
                let show = |v: Option<ByteSize>| v.map_or("-".into(), |v| v.to_string());
                format!("memory max {} high {}", show(m.max), show(m.high))
            }
            Self::Signal { signal } => format!("signal {signal}"),
            Self::Pause {} => "pause".into(),
            Self::Container { action } => format!("container {action:?}").to_lowercase(),
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
    pub fn validate(&self) -> Result<(), String> {
        if self.faults.is_empty() {
            return Err("an experiment needs at least one fault".into());
        }
        let network: Vec<&Fault> = self.faults.iter().filter(|f| f.is_network()).collect();
        if network.len() > 1 {
            return Err("at most one network fault per experiment: one root qdisc per interface (netem has its own `rate` to combine delay and a bandwidth cap)".into());
        }
        let target = &self.target;
        if !network.is_empty() && target.interface.is_none() {
            return Err(format!(
                "{} needs target.interface (with netns or container for a namespace)",
                network[0].name()
            ));
        }
        if target.netns.is_some() && target.container.is_some() {
            return Err("target: give either netns or container, not both".into());
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
            return Err("target: give one of cgroup, pid or unit".into());
        }
        for halt in &self.halt_on {
            if !halt.starts_with("probe:") || halt.len() <= "probe:".len() {
                return Err(format!(
                    "invalid halt_on \"{halt}\": write probe:NAME (e.g. probe:api)"
                ));
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

fn validate_fault(fault: &Fault, target: &TargetSpec) -> Result<(), String> {
    let has_cgroup = target.cgroup.is_some()
        || target.pid.is_some()
        || target.unit.is_some()
        || target.container.is_some();
    match fault {
        Fault::Netem(netem) => validate_netem(netem),
        Fault::Tbf(tbf) => {
            if tbf.burst.0 < 1514 {
                return Err(format!("tbf burst {} is below an Ethernet frame (1514 B): full-size packets would be dropped", tbf.burst));
            }
            if tbf.limit.0 == 0 {
                return Err("tbf limit must be above 0 (0 drops every packet)".into());
            }
            Ok(())
        }
        Fault::CpuQuota(cpu) => {
            let period = cpu.period_us();
            if !(1_000..=1_000_000).contains(&period) {
                return Err("cpu_quota period must be between 1ms and 1s".into());
            }
            if cpu.cpus <= 0.0 || cpu.quota_us() < 1_000 {
                return Err("cpu_quota cpus must give at least 1ms of CPU per period".into());
            }
            needs(has_cgroup, "cpu_quota", "cgroup, pid, unit or container")
        }
        Fault::MemoryLimit(memory) => {
            if memory.max.is_none() && memory.high.is_none() {
                return Err("memory_limit needs max or high".into());
            }
            needs(has_cgroup, "memory_limit", "cgroup, pid, unit or container")
        }
        Fault::Signal { signal } => {
            parse_signal(signal)?;
            needs(target.pid.is_some(), "signal", "pid")
        }
        Fault::Pause {} => needs(target.pid.is_some(), "pause", "pid"),
        Fault::Container { .. } => needs(target.container.is_some(), "container", "container"),
    }
}

fn needs(present: bool, fault: &str, what: &str) -> Result<(), String> {
    match present {
        true => Ok(()),
        false => Err(format!("{fault} needs a target {what}")),
    }
}

fn validate_netem(netem: &NetemSpec) -> Result<(), String> {
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
            return Err(format!(
                "netem {name} {value} is not a percentage (0..=100)"
            ));
        }
    }
    let delay = netem.delay.map_or(0, |d| d.get().as_nanos());
    let jitter = netem.jitter.map_or(0, |d| d.get().as_nanos());
    if jitter > MAX_JITTER_NS as u128 {
        return Err("netem jitter above 2.147s: the kernel would silently cap it".into());
    }
    if jitter > 0 && delay == 0 {
        return Err("netem jitter needs a delay".into());
    }
    if netem.distribution.is_some() && (delay == 0 || jitter == 0) {
        return Err("netem distribution needs both delay and jitter".into());
    }
    if (netem.reorder > 0.0 || netem.gap > 0) && delay == 0 {
        return Err(
            "netem reorder needs a delay (packets are reordered by sending some without it)".into(),
        );
    }
    if netem.loss > 0.0 && netem.loss_gemodel.is_some() {
        return Err("netem: give either loss or loss_gemodel".into());
    }
    if netem.limit == Some(0) {
        return Err("netem limit must be at least 1 packet".into());
    }
    let nothing = delay == 0
        && netem.loss == 0.0
        && netem.loss_gemodel.is_none()
        && netem.duplicate == 0.0
        && netem.corrupt == 0.0
        && netem.rate.is_none();
    if nothing {
        return Err(
            "netem fault does nothing: give delay, loss, duplicate, corrupt or rate".into(),
        );
    }
    Ok(())
}

/// "SIGKILL", "KILL" or "9".
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal, String> {
    use std::str::FromStr;
    let error = || format!("unknown signal \"{text}\" (e.g. SIGTERM, KILL, 9)");
    if let Ok(number) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(number).map_err(|_| error());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(faults: &str, target: &str) -> Result<(), String> {
        let json = format!(r#"{{"faults": [{faults}], "target": {{{target}}}}}"#);
        let spec: ExperimentSpec = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        spec.validate()
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
    fn unknown_fields_are_refused() {
        let err = spec(r#"{"kind":"netem","dealy":"1ms"}"#, r#""interface":"e""#).unwrap_err();
        assert!(err.contains("unknown field `dealy`"), "{err}");
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
