//! sd_notify: tells systemd we are ready, reloading, stopping, alive, and what we are doing.
//! Written here rather than linked from libsystemd: it is one datagram per message.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to `$NOTIFY_SOCKET`, or nothing when not started by systemd.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Read `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` from the environment.
    pub fn from_env() -> Self {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|path| !path.is_empty())
            .and_then(|path| {
                let address = match path.strip_prefix('@') {
                    Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
                    None => SocketAddr::from_pathname(&path),
                };
                let socket = UnixDatagram::unbound();
                match (socket, address) {
                    (Ok(socket), Ok(address)) => Some((socket, address)),
                    (Err(err), _) | (_, Err(err)) => {
                        tracing::warn!(path, error = %err, "cannot use NOTIFY_SOCKET");
                        None
                    }
                }
            });
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Self { target, watchdog }
    }

    /// How often systemd expects WATCHDOG=1, when it expects it at all.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Send newline-separated `KEY=value` assignments in one datagram.
    pub fn send(&self, assignments: &[String]) {
        let Some((socket, address)) = &self.target else {
            return;
        };
        let message = assignments.join("\n");
        if let Err(err) = socket.send_to_addr(message.as_bytes(), address) {
            tracing::debug!(error = %err, "sd_notify failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&["READY=1".into(), format!("STATUS={status}")]);
    }

    /// RELOADING=1 needs MONOTONIC_USEC so systemd can tell this reload from an older one.
    pub fn reloading(&self) {
        self.send(&[
            "RELOADING=1".into(),
            format!("MONOTONIC_USEC={}", monotonic_usec()),
            "STATUS=Reloading configuration".into(),
        ]);
    }

    pub fn stopping(&self) {
        self.send(&["STOPPING=1".into(), "STATUS=Shutting down".into()]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[format!("STATUS={status}")]);
    }

    pub fn watchdog(&self) {
        self.send(&["WATCHDOG=1".into()]);
    }
}

fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// `WATCHDOG_USEC`, if set, positive, and meant for this process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_table() {
        let cases = [
            (Some("30000000"), None, Some(30)),
            (Some("30000000"), Some("7"), Some(30)),
            (Some("30000000"), Some("8"), None),
            (Some("0"), None, None),
            (Some("junk"), None, None),
            (None, None, None),
        ];
        for (usec, pid, expected) in cases {
            assert_eq!(
                watchdog_interval(usec, pid, 7).map(|d| d.as_secs()),
                expected,
                "{usec:?} {pid:?}"
            );
        }
    }

    #[test]
    fn sends_to_a_bound_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            )),
            watchdog: None,
        };
        notifier.reloading();
        let mut buffer = [0u8; 256];
        let n = receiver.recv(&mut buffer).unwrap();
        let text = std::str::from_utf8(&buffer[..n]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        let usec: u64 = text.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
            .parse()
            .unwrap();
        assert!(usec > 0);
    }
}
