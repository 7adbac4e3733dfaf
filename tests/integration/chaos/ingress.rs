//! Ingress faults on a veth pair: a tbf with `direction = "ingress"` limits what the target
//! receives (through an ifb device and a mirred redirect) and not what it sends; rollback, and
//! a restart after `kill -9`, leave no ifb, ingress qdisc or filter. Checks read the kernel.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use super::rollback::kill_9;
use super::{chaos_section, run, NetnsPair};
use crate::harness::{require_root, Daemon, Sandbox};

/// 1 mbit/s = 125 000 B/s.
const LIMIT_BYTES_PER_SEC: f64 = 125_000.0;

fn profile(name: &str, target: &str, faults: &str) -> String {
    format!("[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{faults}]\n")
}

const INGRESS_TBF: &str = "{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\", direction = \"ingress\" }";

fn enter(ns: &str) -> impl FnOnce() {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    move || nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap()
}

/// Send `bytes` over TCP from namespace `from` to `to` (an address in namespace `at`); the
/// receiver's bytes per second.
fn flow(from: &str, at: &str, to: &str, bytes: usize) -> f64 {
    let (enter_from, enter_at) = (enter(from), enter(at));
    let to: std::net::IpAddr = to.parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        enter_at();
        let listener = TcpListener::bind(SocketAddr::new(to, 0)).unwrap();
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
        enter_from();
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

/// The ifindex of `dev` in `ns` (from `ip -o link show`).
fn ifindex(ns: &str, dev: &str) -> i32 {
    let line = run("ip", &["-n", ns, "-o", "link", "show", dev]);
    line.split(':').next().unwrap().trim().parse().unwrap()
}

/// Links, qdiscs and ingress filters of `ns` / `dev`, as ip and tc show them.
fn state(ns: &str, dev: &str) -> String {
    let mut out = String::new();
    for args in [
        vec!["ip", "-n", ns, "-d", "link", "show"],
        vec!["tc", "-n", ns, "-s", "qdisc", "show"],
        vec!["tc", "-n", ns, "filter", "show", "dev", dev, "ingress"],
    ] {
        out.push_str(&format!("$ {}\n", args.join(" ")));
        out.push_str(&run(args[0], &args[1..]));
    }
    out
}

/// No ifb of ours, no ingress qdisc, no filter on `dev`.
fn assert_clean(ns: &str, dev: &str) {
    let state = state(ns, dev);
    assert!(
        !state.contains("sntl") && !state.contains("ingress ffff:") && !state.contains("mirred"),
        "left behind:\n{state}"
    );
}

#[test]
fn ingress_tbf_limits_what_the_target_receives_and_rollback_leaves_nothing() {
    if !require_root("ingress_tbf_limits_what_the_target_receives_and_rollback_leaves_nothing") {
        return;
    }
    let pair = NetnsPair::new("ingr");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e70", &profile("slow-in", &target, INGRESS_TBF)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    let ifb = format!("sntl5e70-{}", ifindex(&pair.a, "veth-a"));

    let started = daemon.ctl_json(&["chaos", "start", "slow-in"]);
    assert_eq!(started["state"], "active", "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let log = started.to_string();
    assert!(
        log.contains(&format!("ifb {ifb}"))
            && log.contains("tbf verified")
            && log.contains("redirecting to ifindex"),
        "the read-back covers the ifb, its tbf and the redirect: {log}"
    );
    let during = state(&pair.a, "veth-a");
    for want in [
        format!("{ifb}: <"),
        "ifb".to_string(),
        format!("qdisc tbf 5e70: dev {ifb} root"),
        "qdisc ingress ffff:".to_string(),
        format!("mirred (Egress Redirect to device {ifb})"),
    ] {
        assert!(during.contains(&want), "want {want:?} in:\n{during}");
    }

    let inbound = flow(&pair.b, &pair.a, "10.254.0.1", 384 << 10);
    let outbound = flow(&pair.a, &pair.b, "10.254.0.2", 4 << 20);
    eprintln!("ingress tbf: into a {inbound:.0} B/s, out of a {outbound:.0} B/s");
    assert!(
        inbound > 0.5 * LIMIT_BYTES_PER_SEC && inbound < 1.5 * LIMIT_BYTES_PER_SEC,
        "inbound {inbound:.0} B/s is not near the 125000 B/s limit"
    );
    assert!(
        outbound > 20.0 * LIMIT_BYTES_PER_SEC,
        "outbound is not limited by an ingress fault, yet got only {outbound:.0} B/s"
    );
    // the bytes went through the ifb's tbf
    let counters = run("tc", &["-n", &pair.a, "-s", "qdisc", "show", "dev", &ifb]);
    let sent: u64 = counters
        .split_whitespace()
        .skip_while(|w| *w != "Sent")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        sent >= 384 << 10,
        "the ifb's tbf sent {sent} bytes:\n{counters}"
    );

    let stopped = daemon.ctl_json(&["chaos", "stop", &id]);
    assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    assert_clean(&pair.a, "veth-a");
    let recovered = flow(&pair.b, &pair.a, "10.254.0.1", 4 << 20);
    assert!(
        recovered > 20.0 * LIMIT_BYTES_PER_SEC,
        "after rollback: {recovered:.0} B/s"
    );
    assert!(daemon.stop().success());
}

#[test]
fn kill_9_mid_ingress_experiment_then_restart_sweeps_ifb_and_ingress() {
    if !require_root("kill_9_mid_ingress_experiment_then_restart_sweeps_ifb_and_ingress") {
        return;
    }
    let pair = NetnsPair::new("ikill");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e72", &profile("slow-in", &target, INGRESS_TBF)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    let started = daemon.ctl_json(&["chaos", "start", "slow-in"]);
    assert_eq!(started["state"], "active", "{started}");
    kill_9(daemon);
    let ifb = format!("sntl5e72-{}", ifindex(&pair.a, "veth-a"));
    let during = state(&pair.a, "veth-a");
    assert!(
        during.contains(&format!("{ifb}: <")) && during.contains("qdisc ingress ffff:"),
        "the fault must outlive the daemon:\n{during}"
    );
    // What no journal row accounts for (a lost journal): an ifb of ours with the ingress
    // redirect to it on veth-b, and a foreign ifb and ingress filter that must stay.
    let b = pair.b.as_str();
    let orphan = format!("sntl5e72-{}", ifindex(b, "veth-b"));
    for args in [
        format!("ip -n {b} link add {orphan} type ifb"),
        format!("ip -n {b} link add ifb-other-{} type ifb", std::process::id() % 1000),
        format!("tc -n {b} qdisc add dev veth-b ingress"),
        format!("tc -n {b} filter add dev veth-b parent ffff: protocol all prio 24178 u32 match u32 0 0 action mirred egress redirect dev {orphan}"),
    ] {
        let words: Vec<&str> = args.split(' ').collect();
        run(words[0], &words[1..]);
    }

    let restarted = Daemon::start(&sandbox, |_| {});
    assert_clean(&pair.a, "veth-a");
    let after_b = state(b, "veth-b");
    assert!(
        !after_b.contains(&orphan) && !after_b.contains("ingress ffff:"),
        "the sweep must remove our orphaned ifb and the ingress redirecting to it:\n{after_b}"
    );
    assert!(
        after_b.contains("ifb-other-"),
        "a foreign ifb stays:\n{after_b}"
    );
    let inbound = flow(&pair.b, &pair.a, "10.254.0.1", 4 << 20);
    assert!(
        inbound > 20.0 * LIMIT_BYTES_PER_SEC,
        "after the restart: {inbound:.0} B/s"
    );
    assert!(restarted.stop().success());
}

/// Scoped ingress: `destinations` are the peers traffic comes from, matched as the IP source
/// on the ifb's htb tree. `b` sends from 10.254.0.2 (limited) and from 10.254.1.2 (not).
#[test]
fn scoped_ingress_tbf_limits_one_peer_and_not_another() {
    if !require_root("scoped_ingress_tbf_limits_one_peer_and_not_another") {
        return;
    }
    let pair = NetnsPair::new("iscope");
    // a second subnet on the same link: b's packets to 10.254.1.1 leave from 10.254.1.2
    run(
        "ip",
        &[
            "-n",
            &pair.a,
            "addr",
            "add",
            "10.254.1.1/24",
            "dev",
            "veth-a",
        ],
    );
    run(
        "ip",
        &[
            "-n",
            &pair.b,
            "addr",
            "add",
            "10.254.1.2/24",
            "dev",
            "veth-b",
        ],
    );
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let fault = "{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\", direction = \"ingress\", destinations = [\"10.254.0.2\"] }";
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e74", &profile("slow-from-b", &target, fault)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    let ifb = format!("sntl5e74-{}", ifindex(&pair.a, "veth-a"));
    let started = daemon.ctl_json(&["chaos", "start", "slow-from-b"]);
    assert_eq!(started["state"], "active", "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let filters = run("tc", &["-n", &pair.a, "filter", "show", "dev", &ifb]);
    assert!(
        filters.contains("match 0afe0002/ffffffff at 12"),
        "the peer is matched as the source (offset 12):\n{filters}"
    );

    let limited = flow(&pair.b, &pair.a, "10.254.0.1", 384 << 10);
    let other = flow(&pair.b, &pair.a, "10.254.1.1", 4 << 20);
    eprintln!("scoped ingress tbf: from .0.2 {limited:.0} B/s, from .1.2 {other:.0} B/s");
    assert!(
        limited > 0.5 * LIMIT_BYTES_PER_SEC && limited < 1.5 * LIMIT_BYTES_PER_SEC,
        "from 10.254.0.2: {limited:.0} B/s is not near the 125000 B/s limit"
    );
    assert!(
        other > 20.0 * LIMIT_BYTES_PER_SEC,
        "10.254.1.2 is not a peer of the fault, yet got only {other:.0} B/s"
    );
    let stopped = daemon.ctl_json(&["chaos", "stop", &id]);
    assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    assert_clean(&pair.a, "veth-a");
    assert!(daemon.stop().success());
}
