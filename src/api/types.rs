//! Request and response bodies of the control socket, shared by `sentineld` and `sentinelctl`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::event::{JournaledEvent, ReloadTrigger, Timestamp};
use crate::heal::HealSnapshot;
use crate::probe::ProbeSnapshot;
use crate::tenants::{TenantEvidence, TopTenants, TrackerStats};

/// What the daemon knows about itself; the parts that do not change per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    pub started_at: Timestamp,
    pub config_path: PathBuf,
    pub config_hash: String,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// Things an operator should know about how the daemon runs (fallback paths, ...).
    pub notes: Vec<String>,
    pub last_reload: Option<ReloadReport>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    #[serde(flatten)]
    pub daemon: DaemonInfo,
    pub uptime_secs: u64,
    pub probes: Vec<ProbeSnapshot>,
    /// Healing state of every probe that has a heal action.
    #[serde(default)]
    pub heals: Vec<HealSnapshot>,
    /// What the kernel offers the chaos engine (netem, tbf, cgroup), probed at start.
    #[serde(default)]
    pub capabilities: Vec<crate::chaos::Capability>,
}

/// `POST /v1/probes/{probe}/silence?for=30m`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceResponse {
    pub probe: String,
    /// The silence ends then (now, when it was lifted).
    pub until: Timestamp,
}

/// `POST /v1/heal/{probe}/now|reset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealResponse {
    pub probe: String,
    pub accepted: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadOutcome {
    /// The new config was valid and its differences were applied.
    Applied,
    /// The file's content was the same as the running config: nothing to do.
    Unchanged,
    /// The new config was invalid; the running one was kept untouched.
    Rejected,
}

/// The result of one reload attempt; `POST /v1/reload` answers with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub at: Timestamp,
    /// What asked for it: `api`, `sighup` or `file-change`.
    pub trigger: ReloadTrigger,
    pub outcome: ReloadOutcome,
    pub config_hash: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub changes: Vec<String>,
    #[serde(default)]
    pub restart_required: Vec<String>,
}

/// `GET /v1/events` without `follow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsResponse {
    pub events: Vec<JournaledEvent>,
}

/// Every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}

/// `GET /v1/tenants/top`: the ranking plus what the detector itself reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantsTopResponse {
    /// What errors are called in titles: "5xx" unless `error_status` says otherwise.
    pub error_label: String,
    pub stats: TrackerStats,
    #[serde(flatten)]
    pub top: TopTenants,
}

/// `POST /v1/tenants/{id}/mute`: the mute now in force, or `None` when it was lifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantMuteResponse {
    pub tenant_id: String,
    pub mute: Option<crate::tenants::TenantMute>,
}

/// `GET /v1/tenants/mutes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantMutesResponse {
    pub mutes: Vec<crate::tenants::TenantMute>,
}

/// `GET /v1/tenants/{id}`: one tenant's evidence over the window asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantResponse {
    pub error_label: String,
    pub window_ms: i64,
    pub tenant: TenantEvidence,
}
