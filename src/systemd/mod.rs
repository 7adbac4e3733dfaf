//! The systemd edge: a unit's states, `RestartUnit` and runtime resource limits over D-Bus
//! (zbus), never `systemctl`. Owns the connection (system bus, else systemd's private socket),
//! unit names, job results and unit properties (`limits`).

pub mod limits;

pub use limits::{PropertyError, UnitProperty, UnitSetting, UnitValue};

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::Mutex;
use zbus::zvariant::OwnedObjectPath;

/// The system bus socket dbus-daemon (or dbus-broker) listens on.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// systemd's own peer-to-peer D-Bus socket: root only, answers without any bus daemon.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";

/// The longest unit name systemd accepts (`UNIT_NAME_MAX` less the NUL).
pub const MAX_UNIT_NAME: usize = 255;

/// The unit types systemd knows; a unit name ends in one of them.
pub const UNIT_SUFFIXES: [&str; 11] = [
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

#[derive(Debug, Error)]
pub enum SystemdError {
    /// Neither the system bus nor systemd's private socket answered.
    #[error("cannot reach systemd over D-Bus (the system bus: {bus}; nor {PRIVATE_SOCKET})")]
    Unavailable {
        bus: zbus::Error,
        #[source]
        private: zbus::Error,
    },
    /// systemd has no such unit loaded and no unit file for it.
    #[error("systemd has no unit {unit}")]
    NoSuchUnit { unit: String },
    /// A call on an open connection failed (the bus went away, access denied, bad reply).
    #[error("D-Bus call {call} for {unit} failed: {source}")]
    Call {
        call: &'static str,
        unit: String,
        #[source]
        source: zbus::Error,
    },
    /// The restart job ended without `done`.
    #[error("systemd's restart job for {unit} ended {result}")]
    JobFailed { unit: String, result: JobResult },
    /// The restart job did not end in time (it may still run: systemd owns it).
    #[error("systemd's restart job for {unit} did not finish within {timeout:?}")]
    JobTimeout { unit: String, timeout: Duration },
    /// A unit or a property value systemd would refuse, refused before any call.
    #[error(transparent)]
    Property(#[from] limits::PropertyError),
}

/// A unit's `ActiveState` (`org.freedesktop.systemd1.Unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    /// systemd 256+: cleaning up the unit's resources.
    Maintenance,
    /// systemd 256+: refreshing its mounts.
    Refreshing,
}

impl ActiveState {
    pub const ALL: [ActiveState; 8] = [
        Self::Active,
        Self::Reloading,
        Self::Inactive,
        Self::Failed,
        Self::Activating,
        Self::Deactivating,
        Self::Maintenance,
        Self::Refreshing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Reloading => "reloading",
            Self::Inactive => "inactive",
            Self::Failed => "failed",
            Self::Activating => "activating",
            Self::Deactivating => "deactivating",
            Self::Maintenance => "maintenance",
            Self::Refreshing => "refreshing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a systemd job ended (`JobRemoved`'s `result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Canceled,
    Timeout,
    Failed,
    Dependency,
    Skipped,
    /// A word this build does not know (a newer systemd).
    Other(String),
}

impl JobResult {
    pub fn parse(text: &str) -> Self {
        match text {
            "done" => Self::Done,
            "canceled" => Self::Canceled,
            "timeout" => Self::Timeout,
            "failed" => Self::Failed,
            "dependency" => Self::Dependency,
            "skipped" => Self::Skipped,
            other => Self::Other(other.to_string()),
        }
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Done => "done",
            Self::Canceled => "canceled",
            Self::Timeout => "timeout",
            Self::Failed => "failed",
            Self::Dependency => "dependency",
            Self::Skipped => "skipped",
            Self::Other(word) => word,
        })
    }
}

/// What is wrong with a unit name, said in full by `Display`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitNameError {
    #[error("is empty")]
    Empty,
    #[error("is {0} bytes long; systemd allows at most {MAX_UNIT_NAME}")]
    TooLong(usize),
    #[error("has no unit type suffix (expected one of .{})", UNIT_SUFFIXES.join(", ."))]
    Suffix,
    #[error("holds {0:?}: use letters, digits and \":-_.\\\" (and one '@' before an instance)")]
    Character(char),
    #[error("is a template (\"NAME@.TYPE\"): name an instance, e.g. \"NAME@1.TYPE\"")]
    Template,
}

/// Checks a unit name as systemd would (`unit_name_is_valid`): `PREFIX[@INSTANCE].TYPE`.
pub fn validate_unit_name(name: &str) -> Result<(), UnitNameError> {
    if name.is_empty() {
        return Err(UnitNameError::Empty);
    }
    if name.len() > MAX_UNIT_NAME {
        return Err(UnitNameError::TooLong(name.len()));
    }
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return Err(UnitNameError::Suffix);
    };
    if !UNIT_SUFFIXES.contains(&suffix) {
        return Err(UnitNameError::Suffix);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\".contains(c);
    let (prefix, instance) = match stem.split_once('@') {
        Some((prefix, instance)) => (prefix, Some(instance)),
        None => (stem, None),
    };
    if prefix.is_empty() {
        return Err(UnitNameError::Suffix);
    }
    for c in prefix.chars().chain(instance.unwrap_or("").chars()) {
        if !allowed(c) {
            return Err(UnitNameError::Character(c));
        }
    }
    if instance == Some("") {
        return Err(UnitNameError::Template);
    }
    Ok(())
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    /// Loads the unit (from its file) if it is not loaded; `LoadState` says whether it exists.
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Sets resource properties; `runtime` keeps them under /run (until reboot), not /etc.
    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[(&str, zbus::zvariant::Value<'_>)],
    ) -> zbus::Result<()>;
    /// Asks for job and unit signals (on the system bus they are sent only to subscribers).
    fn subscribe(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

/// A unit's states as read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, `masked`, `error`, `bad-setting`, ...
    pub load: String,
    /// The raw `ActiveState` word (`ActiveState::parse` types it).
    pub active: String,
    /// Type-specific detail: `running`, `exited`, `auto-restart`, `dead`, ...
    pub sub: String,
}

/// Which socket a connection went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    SystemBus,
    PrivateSocket,
}

/// A lazily opened connection to systemd, shared by clones and reopened after a failed call.
#[derive(Debug, Clone, Default)]
pub struct Systemd {
    connection: Arc<Mutex<Option<(zbus::Connection, Route)>>>,
}

impl Systemd {
    pub fn new() -> Self {
        Self::default()
    }

    /// The open connection, or a new one: the system bus first (it works for any user the
    /// bus policy allows and leaves systemd's own socket alone), else the private socket (root
    /// only; works when no dbus-daemon runs, e.g. early boot or a minimal host).
    async fn connection(&self) -> Result<(zbus::Connection, Route), SystemdError> {
        let mut slot = self.connection.lock().await;
        if let Some(open) = slot.as_ref() {
            return Ok(open.clone());
        }
        let open = match connect_system_bus().await {
            Ok(connection) => (connection, Route::SystemBus),
            Err(bus) => match connect_private(Path::new(PRIVATE_SOCKET)).await {
                Ok(connection) => (connection, Route::PrivateSocket),
                Err(private) => return Err(SystemdError::Unavailable { bus, private }),
            },
        };
        tracing::debug!(route = ?open.1, "connected to systemd");
        *slot = Some(open.clone());
        Ok(open)
    }

    /// Forget the connection after a failed call: the next call opens a new one.
    async fn reset(&self) {
        *self.connection.lock().await = None;
    }

    /// The route the current connection took, if one is open.
    pub async fn route(&self) -> Option<Route> {
        self.connection.lock().await.as_ref().map(|open| open.1)
    }

    /// The unit's load, active and sub state. A unit that is neither loaded nor has a file
    /// answers with load state `not-found` (`LoadUnit` loads it on demand, like systemctl).
    pub async fn unit_state(&self, unit: &str) -> Result<UnitState, SystemdError> {
        let result = self.read_unit_state(unit).await;
        if matches!(result, Err(SystemdError::Call { .. })) {
            self.reset().await;
        }
        result
    }

    async fn read_unit_state(&self, unit: &str) -> Result<UnitState, SystemdError> {
        let (connection, _) = self.connection().await?;
        let (_, proxy) = load_unit(&connection, unit).await?;
        let call = |name| call_error(name, unit);
        Ok(UnitState {
            load: proxy.load_state().await.map_err(call("LoadState"))?,
            active: proxy.active_state().await.map_err(call("ActiveState"))?,
            sub: proxy.sub_state().await.map_err(call("SubState"))?,
        })
    }

    /// `RestartUnit(unit, "replace")` (starts it if stopped), then wait up to `timeout` for
    /// systemd's job to end; Ok only when it ended `done`.
    pub async fn restart_unit(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        let result = self.restart_and_wait(unit, timeout).await;
        if matches!(result, Err(SystemdError::Call { .. })) {
            self.reset().await;
        }
        result
    }

    async fn restart_and_wait(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        let (connection, _) = self.connection().await?;
        let call = |name| call_error(name, unit);
        // Refuse a unit systemd does not know before asking for a job on it.
        let (manager, proxy) = load_unit(&connection, unit).await?;
        let load = proxy.load_state().await.map_err(call("LoadState"))?;
        if load == "not-found" {
            return Err(SystemdError::NoSuchUnit {
                unit: unit.to_string(),
            });
        }
        // Listen before asking, so a fast job's end is not missed.
        let mut removed = manager
            .receive_job_removed()
            .await
            .map_err(call("JobRemoved"))?;
        manager.subscribe().await.map_err(call("Subscribe"))?;
        let job = manager
            .restart_unit(unit, "replace")
            .await
            .map_err(call("RestartUnit"))?;
        let ended = tokio::time::timeout(timeout, async {
            while let Some(signal) = removed.next().await {
                let Ok(args) = signal.args() else { continue };
                if *args.job() == job {
                    return Some(JobResult::parse(args.result()));
                }
            }
            None
        })
        .await;
        match ended {
            Ok(Some(JobResult::Done)) => Ok(()),
            Ok(Some(result)) => Err(SystemdError::JobFailed {
                unit: unit.to_string(),
                result,
            }),
            Ok(None) => Err(SystemdError::Call {
                call: "JobRemoved",
                unit: unit.to_string(),
                source: zbus::Error::InputOutput(Arc::new(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection closed before the job ended",
                ))),
            }),
            Err(_) => Err(SystemdError::JobTimeout {
                unit: unit.to_string(),
                timeout,
            }),
        }
    }
}

/// The system bus (`DBUS_SYSTEM_BUS_ADDRESS`, default `/run/dbus/system_bus_socket`).
async fn connect_system_bus() -> zbus::Result<zbus::Connection> {
    zbus::connection::Builder::system()?.build().await
}

/// systemd's private socket: a peer-to-peer connection (no bus daemon, no `Hello`).
async fn connect_private(socket: &Path) -> zbus::Result<zbus::Connection> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .build()
        .await
}

/// The error of a failed D-Bus call `name` about `unit`, keeping zbus's cause.
fn call_error(name: &'static str, unit: &str) -> impl FnOnce(zbus::Error) -> SystemdError {
    let unit = unit.to_string();
    move |source| SystemdError::Call {
        call: name,
        unit,
        source,
    }
}

/// The manager and the unit's object (`LoadUnit` loads a unit on demand). The unit's properties
/// are read fresh on every call: no cache, no signal match.
async fn load_unit(
    connection: &zbus::Connection,
    unit: &str,
) -> Result<(ManagerProxy<'static>, UnitProxy<'static>), SystemdError> {
    let call = |name| call_error(name, unit);
    let manager = ManagerProxy::new(connection)
        .await
        .map_err(call("Manager"))?;
    let path = manager.load_unit(unit).await.map_err(call("LoadUnit"))?;
    let proxy = UnitProxy::builder(connection)
        .path(path)
        .map_err(call("Unit"))?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(call("Unit"))?;
    Ok((manager, proxy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_checked_as_systemd_does() {
        let long = format!("{}.service", "a".repeat(250));
        let cases: Vec<(&str, Result<(), UnitNameError>)> = vec![
            ("nginx.service", Ok(())),
            ("sentinel-demo.service", Ok(())),
            ("getty@tty1.service", Ok(())),
            ("dev-disk-by\\x2duuid-1.device", Ok(())),
            ("backup.timer", Ok(())),
            ("-.mount", Ok(())),
            ("", Err(UnitNameError::Empty)),
            ("nginx", Err(UnitNameError::Suffix)),
            ("nginx.daemon", Err(UnitNameError::Suffix)),
            (".service", Err(UnitNameError::Suffix)),
            ("@x.service", Err(UnitNameError::Suffix)),
            ("ng inx.service", Err(UnitNameError::Character(' '))),
            ("../etc.service", Err(UnitNameError::Character('/'))),
            ("a@b@c.service", Err(UnitNameError::Character('@'))),
            ("naïve.service", Err(UnitNameError::Character('ï'))),
            ("getty@.service", Err(UnitNameError::Template)),
            (long.as_str(), Err(UnitNameError::TooLong(258))),
        ];
        for (name, want) in cases {
            assert_eq!(validate_unit_name(name), want, "{name:?}");
        }
    }

    #[test]
    fn states_and_job_results_read_their_words() {
        for state in ActiveState::ALL {
            assert_eq!(ActiveState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ActiveState::parse("running"), None);
        for word in [
            "done",
            "canceled",
            "timeout",
            "failed",
            "dependency",
            "skipped",
        ] {
            let result = JobResult::parse(word);
            assert!(!matches!(result, JobResult::Other(_)), "{word}");
            assert_eq!(result.to_string(), word);
        }
        assert_eq!(JobResult::parse("new"), JobResult::Other("new".into()));
    }

    /// With neither socket there, the error says both routes and keeps the last cause.
    #[tokio::test]
    async fn without_systemd_the_error_names_both_routes() {
        if Path::new(PRIVATE_SOCKET).exists() || Path::new(SYSTEM_BUS_SOCKET).exists() {
            eprintln!("skipped: this host has a system bus or systemd");
            return;
        }
        let err = Systemd::new()
            .unit_state("nginx.service")
            .await
            .unwrap_err();
        assert!(matches!(err, SystemdError::Unavailable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(PRIVATE_SOCKET), "{text}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
