//! The chaos engine: netem and tbf over rtnetlink, cgroup CPU and memory limits, process and
//! container faults — each experiment journaled before the kernel is touched, and always rolled back.
//!
//! # Layout
//! - [`spec`]: what an experiment does, as data, and its validation.
//! - [`config`]: the `[chaos]` section and its `[[chaos.profile]]`s.
//! - [`hypothesis`]: what should hold while it runs (judged by the `report` area).
//! - [`tc`], [`dist`]: netem/tbf option bytes and delay distribution tables (pure).
//! - [`ifb`]: ingress faults (an ifb device and a mirred redirect to it).
//! - [`netlink`], [`netns`]: the rtnetlink socket and namespace entry (host edge).
//! - [`cgroup`], [`process`]: cgroupfs v1/v2 and process identity (host edge).
//! - [`unit`]: systemd unit limits as D-Bus runtime properties (survive a unit restart).
//! - [`stress`], [`burner`], [`diskfill`]: CPU/memory burners in a target's cgroup, disk fill.
//! - [`action`]: the journaled, pinned unit of change with its pre-image.
//! - [`host`]: `ChaosHost`, the narrow trait over every side effect, and its Linux implementation.
//! - [`engine`], `lifecycle`: limits, journal, apply, deadline, stop, halt, recovery, sweep.
//! - [`drift`], `observe`: someone else's change to a running experiment (pure), and its reads.

pub mod action;
pub mod burner;
pub mod cgroup;
pub mod classify;
pub mod config;
pub mod diskfill;
pub mod dist;
pub mod drift;
pub mod engine;
pub mod experiment;
pub mod host;
pub mod hypothesis;
pub mod ifb;
mod lifecycle;
pub mod netlink;
pub mod netns;
mod observe;
pub mod process;
pub mod qdisc;
pub mod route;
pub mod spec;
pub mod stress;
pub mod tc;
pub mod unit;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use action::Action;
pub use engine::{ChaosEngine, ChaosSettings, ExperimentView, Profile, StartRequest};
pub use host::{ChaosHost, LinuxHost};
pub use hypothesis::{Hypothesis, RecoverFrom};
pub use lifecycle::{Recovered, Recovery, Swept};
pub use spec::{ExperimentSpec, Fault, TargetSpec};

/// Our qdisc handle major ("5e1d:"): the ownership marker of every qdisc we create.
pub const DEFAULT_HANDLE_MAJOR: u16 = 0x5e1d;

#[derive(Debug, Error)]
pub enum ChaosError {
    #[error("invalid experiment: {0}")]
    Invalid(#[source] spec::SpecError),
    #[error("no chaos profile named \"{0}\" (see sentinelctl chaos profiles)")]
    NoSuchProfile(String),
    #[error("no experiment {0}")]
    NoSuchExperiment(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("target: {0}")]
    Target(String),
    /// The pinned target is not there any more (exited, re-created, namespace gone).
    #[error("target gone: {0}")]
    TargetGone(String),
    #[error("kernel refused {what}: {detail}")]
    Kernel { what: String, detail: String },
    #[error("{0} is unavailable on this host: {1}")]
    Unavailable(String, String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("docker: {0}")]
    Docker(String),
    #[error("experiment journal: {0}")]
    Journal(String),
    /// A unit's limits could not be read or set over D-Bus.
    #[error("systemd: {0}")]
    Systemd(#[source] Box<crate::systemd::SystemdError>),
    #[error("stress: {0}")]
    Stress(#[from] stress::StressError),
    #[error("{0}")]
    Fill(#[from] diskfill::FillError),
    /// cgroup v1 refuses (EBUSY) a memory limit below what the cgroup uses and could not
    /// reclaim; it kills nothing (v2 would OOM-kill instead).
    #[error("cannot lower {} to {limit} B: the cgroup uses {usage} B that the kernel could not reclaim after {attempts} attempts (cgroup v1 answers EBUSY and kills nothing); set max above the usage and add memory_stress to push it over: {source}", file.display())]
    MemoryBelowUsage {
        file: std::path::PathBuf,
        limit: u64,
        usage: u64,
        attempts: u32,
        #[source]
        source: std::io::Error,
    },
}

/// What this host's kernel can do, probed at start; shown in `sentinelctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    pub name: String,
    pub available: bool,
    pub detail: String,
}

impl Capability {
    /// "netem: unavailable — kernel lacks sch_netem"
    pub fn line(&self) -> String {
        match self.available {
            true => format!("{}: available — {}", self.name, self.detail),
            false => format!("{}: unavailable — {}", self.name, self.detail),
        }
    }
}
