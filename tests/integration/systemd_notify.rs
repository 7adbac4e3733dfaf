//! sd_notify: READY, STATUS, WATCHDOG, RELOADING with MONOTONIC_USEC, STOPPING — received on a
//! NOTIFY_SOCKET the test binds — and a clean SIGTERM shutdown.

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{wait_for, Daemon, Sandbox};

#[test]
fn notify_messages_and_clean_sigterm() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", &sandbox.healthz_probe("api")));
    let notify_path = sandbox.path().join("notify.sock");
    let receiver = UnixDatagram::bind(&notify_path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 4096];
        loop {
            match receiver.recv(&mut buffer) {
                Ok(n) => {
                    if tx
                        .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                        .is_err()
                    {
                        return;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut wait_message = |what: &str, predicate: &dyn Fn(&str) -> bool| -> String {
        wait_for(Duration::from_secs(10), what, || {
            while let Ok(message) = rx.try_recv() {
                seen.push(message);
            }
            let position = seen.iter().position(|m| predicate(m))?;
            seen.drain(..=position).next_back()
        })
    };

    let daemon = Daemon::start(&sandbox, |command| {
        command
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "600000");
    });

    let ready = wait_message("READY=1", &|m| m.contains("READY=1"));
    assert!(
        ready.contains("STATUS=Running: 1 probe, 0 down; config "),
        "{ready}"
    );
    // 600 ms watchdog → a ping every 300 ms
    wait_message("first WATCHDOG=1", &|m| m == "WATCHDOG=1");
    wait_message("second WATCHDOG=1", &|m| m == "WATCHDOG=1");

    daemon.signal(Signal::SIGHUP);
    let reloading = wait_message("RELOADING=1", &|m| m.contains("RELOADING=1"));
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect(&reloading)
        .parse()
        .unwrap();
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now_usec = now.tv_sec() as u64 * 1_000_000;
    assert!(
        usec <= now_usec + 1_000_000 && usec + 60_000_000 > now_usec,
        "{usec} vs {now_usec}"
    );
    wait_message("READY=1 after reload", &|m| m.contains("READY=1"));

    let socket = daemon.socket.clone();
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    let stopping = wait_message("STOPPING=1", &|m| m.contains("STOPPING=1"));
    assert!(stopping.contains("STATUS=Shutting down"));
    assert!(!socket.exists(), "socket removed on clean shutdown");

    // the last words made it into the journal
    let journal = rusqlite::Connection::open(sandbox.path().join("state/journal.sqlite3")).unwrap();
    let last: String = journal
        .query_row(
            "SELECT kind FROM events ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last, "daemon_stopping");
}
