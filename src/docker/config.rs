//! The `[docker]` section: where the Docker engine listens. Read at start and on reload; the
//! engine is contacted only when a probe, heal or archive source needs it.

use std::path::PathBuf;

use serde::Deserialize;

/// Where the Docker engine listens (used only when a probe or action needs it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSection {
    pub socket: PathBuf,
}

impl Default for DockerSection {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(super::DEFAULT_SOCKET),
        }
    }
}
