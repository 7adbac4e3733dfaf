//! The chaos engine against the real kernel and engine: tbf on a veth pair and in a container,
//! cgroup v1 CPU and memory limits, recovery after `kill -9`, and netem's capability error.
//! Every assertion about the host reads the kernel (`tc`, cgroupfs), not our journal.

mod cgroups;
mod drift;
mod ingress;
mod net;
pub(crate) mod process;
mod rollback;
mod scoped;
mod stress;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Instant;

use crate::harness::text;

/// Run a command, panicking with its stderr on failure; returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().expect(program);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Two network namespaces joined by a veth pair: `a` (10.254.0.1, device `dev_a`) and
/// `b` (10.254.0.2). Removed when dropped.
pub struct NetnsPair {
    pub a: String,
    pub b: String,
    pub dev_a: String,
    pub dev_b: String,
}

impl NetnsPair {
    pub fn new(label: &str) -> Self {
        let id = std::process::id();
        let pair = Self {
            a: format!("snt-{label}-a-{id}"),
            b: format!("snt-{label}-b-{id}"),
            dev_a: "veth-a".into(),
            dev_b: "veth-b".into(),
        };
        for ns in [&pair.a, &pair.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            run("ip", &["netns", "add", ns]);
        }
        run(
            "ip",
            &[
                "link",
                "add",
                &pair.dev_a,
                "netns",
                &pair.a,
                "type",
                "veth",
                "peer",
                "name",
                &pair.dev_b,
                "netns",
                &pair.b,
            ],
        );
        for (ns, dev, addr) in [
            (&pair.a, &pair.dev_a, "10.254.0.1/24"),
            (&pair.b, &pair.dev_b, "10.254.0.2/24"),
        ] {
            run("ip", &["-n", ns, "addr", "add", addr, "dev", dev]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// `tc qdisc show` of a device in a namespace.
    pub fn qdiscs(ns: &str, dev: &str) -> String {
        run("tc", &["-n", ns, "qdisc", "show", "dev", dev])
    }

    /// Send `bytes` from `a` to `b` over TCP; the receiver's bytes per second.
    pub fn throughput(&self, bytes: usize) -> f64 {
        let (a, b) = (netns_file(&self.a), netns_file(&self.b));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let receiver = std::thread::spawn(move || {
            nix::sched::setns(&b, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let listener = TcpListener::bind("10.254.0.2:0").unwrap();
            ready_tx.send(listener.local_addr().unwrap()).unwrap();
            let (mut stream, _) = listener.accept().unwrap();
            let started = Instant::now();
            let mut received = 0usize;
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buffer).unwrap() {
                    0 => break,
                    n => received += n,
                }
            }
            received as f64 / started.elapsed().as_secs_f64()
        });
        let address = ready_rx.recv().unwrap();
        let sender = std::thread::spawn(move || {
            nix::sched::setns(&a, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let mut stream = TcpStream::connect(address).unwrap();
            let chunk = vec![0x5au8; 16 * 1024];
            let mut sent = 0;
            while sent < bytes {
                stream.write_all(&chunk).unwrap();
                sent += chunk.len();
            }
        });
        sender.join().unwrap();
        receiver.join().unwrap()
    }
}

fn netns_file(name: &str) -> std::fs::File {
    std::fs::File::open(format!("/run/netns/{name}")).unwrap()
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A chaos section of its own for each test: distinct qdisc handles keep one daemon's
/// orphan sweep away from another test's experiment.
pub fn chaos_section(handle: &str, profiles: &str) -> String {
    format!("[chaos]\nqdisc_handle = \"{handle}\"\n\n{profiles}")
}
