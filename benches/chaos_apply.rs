//! Apply and rollback latency of chaos changes through sentineld's own code (rtnetlink with
//! read-back, cgroupfs with read-back) against the `tc` binary doing the same qdisc change.
//!
//! Run: `cargo bench --bench chaos_apply` (root; builds a netns pair with `ip`, measures tbf on
//! its veth and a CPU quota on a throwaway cgroup). Explicit targets, as the kernel lab does:
//! `chaos_apply tbf|netem NETNS DEV` and `chaos_apply cgroup ROOT PATH`. Record results in
//! docs/performance.md with the machine and the date.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sentinel::chaos::cgroup::{self, Cgroupfs, Controller};
use sentinel::chaos::netns::{self, NetnsPin};
use sentinel::chaos::spec::{CpuQuota, MemoryLimit, NetemSpec, TbfSpec};
use sentinel::chaos::{qdisc, tc};
use sentinel::units::ByteSize;
use sentinel::units::HumanDuration;
use support::percentile;

/// Our handle major for the engine's qdisc, another one for `tc`'s, so a leftover is traceable.
const OURS: u32 = 0x5e1b << 16;
const TC_HANDLE: &str = "5e1c:";

fn rounds() -> usize {
    std::env::var("CHAOS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [kind @ ("tbf" | "netem"), ns, dev] => qdisc_bench(kind, ns, dev),
        ["cgroup", root, path] => cgroup_bench(Path::new(root), path),
        [] => host_default(),
        _ => {
            eprintln!("usage: chaos_apply [tbf|netem NETNS DEV | cgroup ROOT PATH]");
            std::process::exit(2);
        }
    }
}

/// Without arguments: a veth pair in two fresh namespaces for tbf, a child cgroup for the quota.
fn host_default() {
    let id = std::process::id();
    let (a, b) = (format!("snt-bench-a-{id}"), format!("snt-bench-b-{id}"));
    for ns in [&a, &b] {
        ip(&["netns", "add", ns]);
    }
    ip(&[
        "link", "add", "veth-a", "netns", &a, "type", "veth", "peer", "name", "veth-b", "netns", &b,
    ]);
    ip(&["-n", &a, "link", "set", "veth-a", "up"]);
    qdisc_bench("tbf", &a, "veth-a");
    for ns in [&a, &b] {
        ip(&["netns", "del", ns]);
    }
    let root = Path::new(cgroup::DEFAULT_ROOT);
    let fs = Cgroupfs::detect(root).expect("cgroupfs");
    let path = format!("/sentinel-bench-{id}");
    let dir = fs.dir(Controller::Cpu, &path).unwrap();
    let memory_dir = fs.dir(Controller::Memory, &path).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&memory_dir).unwrap();
    cgroup_bench(root, &path);
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_dir(&memory_dir);
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {args:?}");
}

fn qdisc_bench(kind: &str, ns: &str, dev: &str) {
    let pin = NetnsPin::named(ns).expect("named netns");
    let ifindex = pin.run(|| netns::ifindex(dev)).expect("ifindex");
    let (options, tc_args): (Vec<u8>, &[&str]) = match kind {
        "tbf" => (
            tc::tbf_options(&TbfSpec {
                rate: "1mbit/s".parse().unwrap(),
                burst: ByteSize(16 * 1024),
                limit: ByteSize(64 * 1024),
                destinations: Vec::new(),
                protocol: None,
                direction: Default::default(),
            }),
            &["tbf", "rate", "1mbit", "burst", "16kb", "limit", "64kb"],
        ),
        _ => (
            tc::netem_options(&NetemSpec {
                delay: Some(HumanDuration(Duration::from_millis(100))),
                ..NetemSpec::default()
            }),
            &["netem", "delay", "100ms"],
        ),
    };
    let (mut apply, mut rollback) = (Vec::new(), Vec::new());
    let (mut tc_apply, mut tc_rollback) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        let started = Instant::now();
        qdisc::apply(&pin, ifindex, OURS, kind, &options, None, None, None).expect("apply");
        apply.push(started.elapsed());
        let started = Instant::now();
        qdisc::revert(&pin, ifindex, OURS, kind, None, None, None).expect("revert");
        rollback.push(started.elapsed());

        let mut add = vec![
            "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", TC_HANDLE,
        ];
        add.extend_from_slice(tc_args);
        tc_apply.push(time_tc(&add));
        tc_rollback.push(time_tc(&[
            "-n", ns, "qdisc", "del", "dev", dev, "root", "handle", TC_HANDLE,
        ]));
    }
    report(&format!("{kind} apply"), apply, tc_apply);
    report(&format!("{kind} rollback"), rollback, tc_rollback);
}

fn time_tc(args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new("tc").args(args).status().expect("tc");
    let elapsed = started.elapsed();
    assert!(status.success(), "tc {args:?}");
    elapsed
}

fn report(what: &str, mut ours: Vec<Duration>, mut tc: Vec<Duration>) {
    ours.sort();
    tc.sort();
    let (ours50, tc50) = (percentile(&ours, 0.5), percentile(&tc, 0.5));
    println!(
        "{what}: sentineld p50 {:.3} ms p99 {:.3} ms | tc binary p50 {:.3} ms p99 {:.3} ms | tc/sentineld {:.1}x ({} rounds)",
        ms(ours50),
        ms(percentile(&ours, 0.99)),
        ms(tc50),
        ms(percentile(&tc, 0.99)),
        tc50.as_secs_f64() / ours50.as_secs_f64(),
        ours.len()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn cgroup_bench(root: &Path, path: &str) {
    let fs = Cgroupfs::detect(root).expect("cgroupfs");
    let cpu_dir = fs.dir(Controller::Cpu, path).unwrap();
    let memory_dir = fs.dir(Controller::Memory, path).unwrap();
    let cpu = fs
        .plan_cpu(
            &cpu_dir,
            &CpuQuota {
                cpus: 0.5,
                period: HumanDuration(Duration::from_millis(100)),
            },
        )
        .expect("plan cpu");
    let memory = fs
        .plan_memory(
            &memory_dir,
            &MemoryLimit {
                max: Some(ByteSize(64 << 20)),
                high: None,
            },
        )
        .expect("plan memory");
    for (what, change) in [("cpu quota", cpu), ("memory limit", memory)] {
        let (mut apply, mut restore) = (Vec::new(), Vec::new());
        for _ in 0..rounds() {
            let started = Instant::now();
            cgroup::apply(&change).expect("apply");
            apply.push(started.elapsed());
            let started = Instant::now();
            cgroup::restore(&change).expect("restore");
            restore.push(started.elapsed());
        }
        apply.sort();
        restore.sort();
        println!(
            "{what} ({:?}): apply p50 {:.3} ms p99 {:.3} ms | restore p50 {:.3} ms p99 {:.3} ms ({} rounds)",
            fs.layout(),
            ms(percentile(&apply, 0.5)),
            ms(percentile(&apply, 0.99)),
            ms(percentile(&restore, 0.5)),
            ms(percentile(&restore, 0.99)),
            apply.len()
        );
    }
}
