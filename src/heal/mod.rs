//! Healing: when a probe goes Down, run its heal action (Docker restart, exec) within a restart
//! budget and a backoff, verify the probe comes back, and record detect/act/recover times.

mod action;
mod budget;
pub mod cascade;
mod healer;
mod hold;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::backoff::Backoff;
use crate::event::Timestamp;
pub use action::HealAction;
pub use budget::RestartBudget;
pub use healer::{spawn, Evidence, HealCommand, HealerInputs, HealerSpec, Mailbox};

#[derive(Debug, Error)]
pub enum HealError {
    #[error("{0}")]
    Engine(String),
    #[error("the healer has stopped")]
    Stopped,
    #[error("Docker refused to restart {container}: {source}")]
    Docker {
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot run {program}: {source}")]
    ExecSpawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?}; its process group was killed")]
    ExecTimeout {
        program: String,
        timeout: std::time::Duration,
    },
    #[error("{program} failed ({status}): {output}")]
    ExecFailed {
        program: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("systemd could not restart {unit}: {source}")]
    Systemd {
        unit: String,
        #[source]
        source: crate::systemd::SystemdError,
    },
}

/// What `sentinelctl status` shows about a probe's healing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealSnapshot {
    pub probe: String,
    pub action: String,
    pub budget_remaining: u32,
    pub budget_max: u32,
    /// Healing stopped because the budget ran out; resumes at `retry_at` or on reset.
    pub gave_up: bool,
    pub retry_at: Option<Timestamp>,
    pub heals_total: u64,
    pub last_result: Option<String>,
    /// When an action last succeeded: drills judge `heal` expectations by it, so a busy bus
    /// cannot hide a heal from them. Not part of the API's answer.
    #[serde(skip)]
    pub last_ok_at: Option<Timestamp>,
    /// Up again after a heal, and judged until this time: the incident is still open.
    #[serde(default)]
    pub holding_until: Option<Timestamp>,
    /// The open incident's relapses: Up again, then Down before `stable_for`.
    #[serde(default)]
    pub relapses: u32,
    /// The open incident (or the last, if it gave up) is a crash loop.
    #[serde(default)]
    pub crash_loop: bool,
    /// Incidents closed since sentineld started: recoveries that held.
    #[serde(default)]
    pub recovered_total: u64,
}

/// Latest heal snapshot per probe, written by healers and read by the API.
pub type HealBoard = crate::board::Board<HealSnapshot>;
