//! Healing: when a probe goes Down, run its heal action (Docker restart, exec) within a restart
//! budget and a backoff, verify the probe comes back, and record detect/act/recover times.

mod action;
mod budget;
pub mod cascade;
mod healer;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Timestamp;
pub use action::HealAction;
pub use budget::{Backoff, RestartBudget};
pub use healer::{spawn, HealCommand, HealerSpec};

#[derive(Debug, Error)]
pub enum HealError {
    #[error("{0}")]
    Engine(String),
    #[error("Docker refused to restart {container}: {source}")]
    Docker {
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{0}")]
    Exec(String),
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
}

/// Latest heal snapshot per probe, written by healers and read by the API.
#[derive(Debug, Clone, Default)]
pub struct HealBoard {
    inner: Arc<RwLock<BTreeMap<String, HealSnapshot>>>,
}

impl HealBoard {
    pub fn snapshot(&self) -> Vec<HealSnapshot> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    pub(crate) fn update(&self, probe: &str, change: impl FnOnce(&mut HealSnapshot)) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(snapshot) = map.get_mut(probe) {
            change(snapshot);
        }
    }

    pub(crate) fn put(&self, snapshot: HealSnapshot) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.insert(snapshot.probe.clone(), snapshot);
    }

    pub fn remove(&self, probe: &str) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.remove(probe);
    }
}
