//! Scoped network faults and partitions on a veth pair: a tbf that slows one destination and
//! not another (htb + u32), blackhole routes for one destination (IPv4 and IPv6), netem's
//! refusal on a kernel without sch_netem, and `kill -9` + `sentineld rollback` / the orphan
//! sweep leaving no qdisc, class, filter or route. Every check reads the kernel with tc/ip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use super::rollback::{kill_9, rollback};
use super::{chaos_section, run, NetnsPair};
use crate::harness::{assert_failed, require_root, text, Daemon, Sandbox};

/// 1 mbit/s = 125 000 B/s.
const LIMIT_BYTES_PER_SEC: f64 = 125_000.0;

fn profile(name: &str, target: &str, faults: &str) -> String {
    format!("[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{faults}]\n")
}

fn scoped_tbf(destinations: &str) -> String {
    format!("{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\", destinations = [{destinations}] }}")
}

/// The pair, with a second address on `b` (10.254.0.3) and IPv6 fd00:5e::1 / ::2 / ::3.
fn pair_with_second_addresses(label: &str) -> NetnsPair {
    let pair = NetnsPair::new(label);
    run(
        "ip",
        &[
            "-n",
            &pair.b,
            "addr",
            "add",
            "10.254.0.3/24",
            "dev",
            "veth-b",
        ],
    );
    for (ns, dev, addr) in [
        (&pair.a, "veth-a", "fd00:5e::1/64"),
        (&pair.b, "veth-b", "fd00:5e::2/64"),
        (&pair.b, "veth-b", "fd00:5e::3/64"),
    ] {
        run("ip", &["-n", ns, "addr", "add", addr, "dev", dev, "nodad"]);
    }
    pair
}

fn in_netns(ns: &str) -> impl FnOnce() {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    move || nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap()
}

/// Send `bytes` from `a` to `to` (an address of `b`) over TCP; the receiver's bytes per second.
fn throughput(pair: &NetnsPair, to: &str, bytes: usize) -> f64 {
    let (enter_a, enter_b) = (in_netns(&pair.a), in_netns(&pair.b));
    let to: std::net::IpAddr = to.parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        enter_b();
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
        enter_a();
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

/// A TCP connect from `a` to `to` (a listener in `b`): Ok, or the error's text.
fn connect(pair: &NetnsPair, to: &str) -> Result<(), String> {
    let (enter_a, enter_b) = (in_netns(&pair.a), in_netns(&pair.b));
    let to: std::net::IpAddr = to.parse().unwrap();
    let listener = std::thread::spawn(move || {
        enter_b();
        TcpListener::bind(SocketAddr::new(to, 0)).unwrap()
    })
    .join()
    .unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        enter_a();
        TcpStream::connect_timeout(&address, Duration::from_secs(2))
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .join()
    .unwrap()
}

/// Everything traffic control and routing show in namespace `ns` for `dev`.
fn kernel_state(ns: &str, dev: &str) -> String {
    let mut out = String::new();
    for args in [
        vec!["tc", "-n", ns, "qdisc", "show", "dev", dev],
        vec!["tc", "-n", ns, "class", "show", "dev", dev],
        vec!["tc", "-n", ns, "filter", "show", "dev", dev],
        vec!["ip", "-n", ns, "route", "show", "table", "main"],
        vec!["ip", "-n", ns, "-6", "route", "show", "table", "main"],
    ] {
        out.push_str(&format!("$ {}\n", args.join(" ")));
        out.push_str(&run(args[0], &args[1..]));
    }
    out
}

/// Nothing of ours: no htb, class, filter or blackhole route; the interface back to noqueue.
fn assert_clean(ns: &str, dev: &str, handle: &str) {
    let state = kernel_state(ns, dev);
    assert!(
        !state.contains(&format!("{handle}:"))
            && !state.contains("htb")
            && !state.contains("u32")
            && !state.contains("blackhole")
            && state.contains("noqueue"),
        "left behind:\n{state}"
    );
}

#[test]
fn scoped_tbf_slows_one_destination_and_not_another() {
    if !require_root("scoped_tbf_slows_one_destination_and_not_another") {
        return;
    }
    let pair = pair_with_second_addresses("scope");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let faults = scoped_tbf("\"10.254.0.2\", \"fd00:5e::2\"");
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e60", &profile("slow-b", &target, &faults)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});

    let started = daemon.ctl_json(&["chaos", "start", "slow-b"]);
    assert_eq!(started["state"], "active", "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let log = started.to_string();
    assert!(
        log.contains("2 u32 filter(s) verified") && log.contains("tbf verified"),
        "the read-back covers the tree: {log}"
    );
    let during = kernel_state(&pair.a, "veth-a");
    for want in [
        "qdisc htb 5e60: root",
        "qdisc tbf 5e61: parent 5e60:1",
        "class htb 5e60:1 root",
        "match 0afe0002/ffffffff at 16",
        "match fd00005e/ffffffff at 24",
    ] {
        assert!(during.contains(want), "want {want:?} in:\n{during}");
    }

    let limited = throughput(&pair, "10.254.0.2", 384 << 10);
    let limited_v6 = throughput(&pair, "fd00:5e::2", 384 << 10);
    let other = throughput(&pair, "10.254.0.3", 4 << 20);
    let other_v6 = throughput(&pair, "fd00:5e::3", 4 << 20);
    eprintln!(
        "scoped tbf: to .2 {limited:.0} B/s, to ::2 {limited_v6:.0} B/s, to .3 {other:.0} B/s, to ::3 {other_v6:.0} B/s"
    );
    for (what, rate) in [("10.254.0.2", limited), ("fd00:5e::2", limited_v6)] {
        assert!(
            rate > 0.5 * LIMIT_BYTES_PER_SEC && rate < 1.5 * LIMIT_BYTES_PER_SEC,
            "{what}: {rate:.0} B/s is not near the 125000 B/s limit"
        );
    }
    for (what, rate) in [("10.254.0.3", other), ("fd00:5e::3", other_v6)] {
        assert!(
            rate > 20.0 * LIMIT_BYTES_PER_SEC,
            "{what} is not a destination of the fault, yet got only {rate:.0} B/s"
        );
    }

    let stopped = daemon.ctl_json(&["chaos", "stop", &id]);
    assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    assert_clean(&pair.a, "veth-a", "5e60");
    let recovered = throughput(&pair, "10.254.0.2", 4 << 20);
    assert!(
        recovered > 20.0 * LIMIT_BYTES_PER_SEC,
        "after rollback: {recovered:.0} B/s"
    );
    assert!(daemon.stop().success());
}

#[test]
fn partition_blackholes_one_destination_and_not_another() {
    if !require_root("partition_blackholes_one_destination_and_not_another") {
        return;
    }
    let pair = pair_with_second_addresses("part");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\"", pair.a);
    let faults = "{ kind = \"partition\", destinations = [\"10.254.0.2\", \"fd00:5e::2\"] }";
    let connected = "{ kind = \"partition\", destinations = [\"10.254.0.0/24\"] }";
    let profiles = [
        profile("cut-b", &target, faults),
        profile("cut-connected", &target, connected),
    ]
    .concat();
    sandbox.write_config(&sandbox.config("", &chaos_section("5e62", &profiles)));
    let daemon = Daemon::start(&sandbox, |_| {});

    for to in ["10.254.0.2", "fd00:5e::2", "10.254.0.3"] {
        assert_eq!(connect(&pair, to), Ok(()), "before: {to}");
    }
    let started = daemon.ctl_json(&["chaos", "start", "cut-b"]);
    assert_eq!(started["state"], "active", "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let routes = kernel_state(&pair.a, "veth-a");
    assert!(
        routes.contains("blackhole 10.254.0.2 proto 94 metric 24162")
            && routes.contains("blackhole fd00:5e::2 dev lo proto 94 metric 24162"),
        "{routes}"
    );
    for to in ["10.254.0.2", "fd00:5e::2"] {
        let refused = connect(&pair, to);
        assert!(refused.is_err(), "{to} is partitioned, yet it connected");
    }
    for to in ["10.254.0.3", "fd00:5e::3"] {
        assert_eq!(
            connect(&pair, to),
            Ok(()),
            "during: {to} is not partitioned"
        );
    }
    // a prefix the main table routes already (the connected /24) would win over ours: refused
    assert_failed(
        &daemon.ctl(&["chaos", "start", "cut-connected"]),
        "10.254.0.0/24 already has a route in the main table",
    );

    let stopped = daemon.ctl_json(&["chaos", "stop", &id]);
    assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    assert_clean(&pair.a, "veth-a", "5e62");
    for to in ["10.254.0.2", "fd00:5e::2"] {
        assert_eq!(connect(&pair, to), Ok(()), "after rollback: {to}");
    }
    assert!(daemon.stop().success());
}

#[test]
fn scoped_netem_on_a_kernel_without_sch_netem_is_refused_and_leaves_nothing() {
    if !require_root("scoped_netem_on_a_kernel_without_sch_netem_is_refused_and_leaves_nothing") {
        return;
    }
    let kernel_has_netem = Command::new("unshare")
        .args([
            "-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ])
        .output()
        .unwrap()
        .status
        .success();
    if kernel_has_netem {
        eprintln!("SKIPPED: this kernel has sch_netem (the kernel lab covers scoped netem)");
        return;
    }
    let pair = NetnsPair::new("snetem");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let faults = "{ kind = \"netem\", delay = \"100ms\", destinations = [\"10.254.0.2\"] }";
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e64", &profile("lag-b", &target, faults)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    assert_failed(
        &daemon.ctl(&["chaos", "start", "lag-b"]),
        "netem is unavailable on this host: kernel lacks sch_netem",
    );
    // the htb root made before the netem child was refused is gone again
    assert_clean(&pair.a, "veth-a", "5e64");
    assert!(daemon.stop().success());
}

#[test]
fn kill_9_mid_scoped_experiment_then_rollback_and_sweep_leave_nothing() {
    if !require_root("kill_9_mid_scoped_experiment_then_rollback_and_sweep_leave_nothing") {
        return;
    }
    let pair = pair_with_second_addresses("skill");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let faults = format!(
        "{}, {{ kind = \"partition\", destinations = [\"10.254.0.3\", \"fd00:5e::3\"] }}",
        scoped_tbf("\"10.254.0.2\"")
    );
    sandbox.write_config(&sandbox.config(
        "",
        &chaos_section("5e66", &profile("both", &target, &faults)),
    ));
    let daemon = Daemon::start(&sandbox, |_| {});
    let started = daemon.ctl_json(&["chaos", "start", "both"]);
    assert_eq!(started["state"], "active", "{started}");
    kill_9(daemon);
    let during = kernel_state(&pair.a, "veth-a");
    assert!(
        during.contains("qdisc htb 5e66: root")
            && during.contains("filter parent 5e66:")
            && during.contains("blackhole 10.254.0.3")
            && during.contains("blackhole fd00:5e::3"),
        "the faults must outlive the daemon:\n{during}"
    );
    // What a crash between the kernel change and the journal write would leave (the write
    // order prevents it) or a lost journal: a tree and a route of ours that no row accounts for.
    for args in [
        "qdisc add dev veth-b root handle 5e66: htb",
        "class add dev veth-b parent 5e66: classid 5e66:1 htb rate 1gbit",
        "filter add dev veth-b parent 5e66: protocol ip prio 1 u32 match ip dst 10.254.0.1/32 flowid 5e66:1",
    ] {
        let mut full = vec!["-n", pair.b.as_str()];
        full.extend(args.split(' '));
        run("tc", &full);
    }
    run(
        "ip",
        &[
            "-n",
            &pair.b,
            "route",
            "add",
            "blackhole",
            "10.254.9.0/24",
            "proto",
            "94",
            "metric",
            "24166",
        ],
    );
    // someone else's blackhole route (another protocol) stays
    run(
        "ip",
        &[
            "-n",
            &pair.b,
            "route",
            "add",
            "blackhole",
            "10.254.8.0/24",
            "metric",
            "24166",
        ],
    );

    let out = rollback(&sandbox.path().join("state"));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("rolled back"), "{said}");
    assert_clean(&pair.a, "veth-a", "5e66");
    let b = kernel_state(&pair.b, "veth-b");
    assert!(
        !b.contains("5e66:")
            && !b.contains("10.254.9.0/24")
            && b.contains("blackhole 10.254.8.0/24"),
        "the sweep must remove our orphans and only them:\n{b}"
    );
    // idempotent: a second run finds nothing
    let again = rollback(&sandbox.path().join("state"));
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("nothing to roll back"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(connect(&pair, "10.254.0.3"), Ok(()));
}
