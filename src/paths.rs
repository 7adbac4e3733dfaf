//! Where things live by default, and where an unprivileged run falls back to. A leaf shared by
//! the daemon (which creates them), `sentinelctl` (which looks for the socket) and the agent.

use std::path::PathBuf;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/sentinel/sentineld.toml";
pub const DEFAULT_SOCKET_PATH: &str = "/run/sentinel/sentinel.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sentinel";
pub const DEFAULT_SOCKET_GROUP: &str = "sentinel";
pub const SOCKET_FILE_NAME: &str = "sentinel.sock";

fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Runtime directory for a non-root run: `$XDG_RUNTIME_DIR/sentinel`, else `/tmp/sentinel-UID`.
pub fn user_runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("sentinel"),
        _ => PathBuf::from(format!("/tmp/sentinel-{}", current_uid())),
    }
}

/// The socket an unprivileged daemon binds when it cannot use the configured one.
pub fn user_socket_path() -> PathBuf {
    user_runtime_dir().join(SOCKET_FILE_NAME)
}

/// State directory for a non-root run: `$XDG_STATE_HOME/sentinel`, else `~/.local/state/sentinel`.
pub fn user_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sentinel");
    }
    // Service accounts often have HOME=/nonexistent: only use a home that is really there.
    if let Some(home) = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
    {
        return home.join(".local/state/sentinel");
    }
    user_runtime_dir().join("state")
}

/// The socket `sentinelctl` talks to when none is given: the system socket if it exists,
/// else this user's fallback socket if that exists, else the system path (so the error names it).
pub fn discover_socket() -> PathBuf {
    let system = PathBuf::from(DEFAULT_SOCKET_PATH);
    if system.exists() {
        return system;
    }
    let user = user_socket_path();
    if user.exists() {
        return user;
    }
    system
}
