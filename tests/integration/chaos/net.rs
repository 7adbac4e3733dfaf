//! Network faults: tbf on a veth pair and in a container's namespace, the guardrails, and
//! netem's capability error on a kernel without sch_netem.

use std::process::Command;

use super::{chaos_section, run, NetnsPair};
use crate::harness::{
    assert_failed, docker, require_docker, require_root, text, Daemon, Sandbox, TestContainer,
};

/// 1 mbit/s = 125 000 B/s.
const LIMIT_BYTES_PER_SEC: f64 = 125_000.0;

fn tbf_profile(name: &str, target: &str, extra: &str) -> String {
    format!(
        "[[chaos.profile]]\nname = \"{name}\"\nduration = \"10m\"\ntarget = {{ {target} }}\nfaults = [{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }}]\n{extra}\n"
    )
}

fn start_daemon(sandbox: &Sandbox, handle: &str, profiles: &str) -> Daemon {
    sandbox.write_config(&sandbox.config("", &chaos_section(handle, profiles)));
    Daemon::start(sandbox, |_| {})
}

#[test]
fn tbf_on_a_veth_pair_limits_a_real_transfer_and_recovers_after_rollback() {
    if !require_root("tbf_on_a_veth_pair_limits_a_real_transfer_and_recovers_after_rollback") {
        return;
    }
    let pair = NetnsPair::new("tbf");
    let sandbox = Sandbox::new();
    let target = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let daemon = start_daemon(&sandbox, "5e10", &tbf_profile("slow", &target, ""));

    let baseline = pair.throughput(4 << 20);
    let started = daemon.ctl_json(&["chaos", "start", "slow"]);
    assert_eq!(started["state"], "active", "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let during = NetnsPair::qdiscs(&pair.a, "veth-a");
    assert!(
        during.contains("qdisc tbf 5e10: root") && during.contains("rate 1Mbit"),
        "{during}"
    );

    let limited = pair.throughput(384 << 10);
    assert!(
        limited > 0.5 * LIMIT_BYTES_PER_SEC && limited < 1.5 * LIMIT_BYTES_PER_SEC,
        "limited throughput {limited:.0} B/s is not near the 125000 B/s limit"
    );

    let stopped = daemon.ctl_json(&["chaos", "stop", &id]);
    assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    let after = NetnsPair::qdiscs(&pair.a, "veth-a");
    assert!(
        !after.contains("5e10:") && after.contains("noqueue"),
        "{after}"
    );
    let recovered = pair.throughput(4 << 20);
    assert!(
        baseline > 20.0 * limited && recovered > 20.0 * limited,
        "baseline {baseline:.0}, limited {limited:.0}, after rollback {recovered:.0} B/s"
    );

    let events = daemon.events("chaos_started,chaos_rolled_back");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["trigger"], "stop");
    assert_eq!(events[1]["ok"], true);
    assert!(daemon.stop().success());
}

#[test]
fn tbf_inside_a_network_none_container_leaves_the_host_alone() {
    if !require_root("tbf_inside_a_network_none_container_leaves_the_host_alone")
        || !require_docker("tbf_inside_a_network_none_container_leaves_the_host_alone")
    {
        return;
    }
    let container = TestContainer::run("chaos", &["sleep", "3600"]);
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &container.name]);
    let sandbox = Sandbox::new();
    let target = format!("container = \"{}\", interface = \"lo\"", container.name);
    let daemon = start_daemon(&sandbox, "5e11", &tbf_profile("box", &target, ""));

    let in_container = || {
        run(
            "nsenter",
            &["-t", &pid, "-n", "tc", "qdisc", "show", "dev", "lo"],
        )
    };
    let started = daemon.ctl_json(&["chaos", "start", "box"]);
    assert!(
        in_container().contains("qdisc tbf 5e11: root"),
        "{}",
        in_container()
    );
    let host = run("tc", &["qdisc", "show", "dev", "lo"]);
    assert!(!host.contains("5e11:"), "the host's lo was touched: {host}");
    let actions = started["actions"].to_string();
    assert!(
        actions.contains(&format!("netns of pid {pid}")),
        "{actions}"
    );

    // stop --all, as an operator in a hurry would
    let out = daemon.ctl(&["chaos", "stop", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rolled back"),
        "{}",
        text(&out.stdout)
    );
    assert!(!in_container().contains("5e11:"), "{}", in_container());
    assert!(daemon.stop().success());
}

#[test]
fn guardrails_default_route_and_foreign_root_qdisc() {
    if !require_root("guardrails_default_route_and_foreign_root_qdisc") {
        return;
    }
    let pair = NetnsPair::new("guard");
    run(
        "ip",
        &[
            "-n",
            &pair.a,
            "route",
            "add",
            "default",
            "via",
            "10.254.0.2",
        ],
    );
    run(
        "tc",
        &[
            "-n", &pair.b, "qdisc", "add", "dev", "veth-b", "root", "handle", "1:", "tbf", "rate",
            "8mbit", "burst", "32kb", "limit", "64kb",
        ],
    );
    let sandbox = Sandbox::new();
    let on_a = format!("netns = \"{}\", interface = \"veth-a\"", pair.a);
    let on_b = format!("netns = \"{}\", interface = \"veth-b\"", pair.b);
    let profiles = [
        tbf_profile("gateway", &on_a, ""),
        tbf_profile("gateway-allowed", &on_a, "allow_default_route = true"),
        tbf_profile("foreign", &on_b, ""),
        tbf_profile("foreign-forced", &on_b, "force = true"),
    ]
    .concat();
    let daemon = start_daemon(&sandbox, "5e13", &profiles);

    assert_failed(
        &daemon.ctl(&["chaos", "start", "gateway"]),
        "veth-a carries the default route",
    );
    assert!(!NetnsPair::qdiscs(&pair.a, "veth-a").contains("5e13:"));
    let allowed = daemon.ctl_json(&["chaos", "start", "gateway-allowed"]);
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("tbf 5e13: root"));

    let refused = daemon.ctl(&["chaos", "start", "foreign"]);
    assert!(
        text(&refused.stderr).contains("has a configured root qdisc tbf 1: that is not ours"),
        "{}",
        text(&refused.stderr)
    );
    let forced = daemon.ctl_json(&["chaos", "start", "foreign-forced"]);
    let during = NetnsPair::qdiscs(&pair.b, "veth-b");
    assert!(
        during.contains("tbf 5e13: root") && !during.contains("tbf 1:"),
        "{during}"
    );
    for experiment in [&allowed, &forced] {
        let stopped = daemon.ctl_json(&["chaos", "stop", experiment["id"].as_str().unwrap()]);
        assert_eq!(stopped["state"], "rolled_back", "{stopped}");
    }
    // the operator's own qdisc is back, with its rate
    let after = NetnsPair::qdiscs(&pair.b, "veth-b");
    assert!(
        after.contains("qdisc tbf 1: root") && after.contains("rate 8Mbit"),
        "{after}"
    );
    assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("noqueue"));
    assert!(daemon.stop().success());
}

#[test]
fn netem_reports_what_the_kernel_offers() {
    if !require_root("netem_reports_what_the_kernel_offers") {
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
    let pair = NetnsPair::new("netem");
    let sandbox = Sandbox::new();
    let profile = format!(
        "[[chaos.profile]]\nname = \"lag\"\ntarget = {{ netns = \"{}\", interface = \"veth-a\" }}\nfaults = [{{ kind = \"netem\", delay = \"100ms\", jitter = \"10ms\", loss = 1.0 }}]\n",
        pair.a
    );
    let daemon = start_daemon(&sandbox, "5e14", &profile);
    let status = daemon.ctl_json(&["status"]);
    let netem = status["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "netem")
        .cloned()
        .unwrap();
    assert_eq!(netem["available"], kernel_has_netem, "{netem}");
    let out = daemon.ctl(&["chaos", "start", "lag"]);
    if kernel_has_netem {
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(NetnsPair::qdiscs(&pair.a, "veth-a").contains("netem 5e14: root"));
        assert!(daemon.ctl(&["chaos", "stop", "--all"]).status.success());
    } else {
        let shown = text(&daemon.ctl(&["status"]).stdout);
        assert!(
            shown.contains("netem: unavailable — kernel lacks sch_netem"),
            "{shown}"
        );
        assert_failed(
            &out,
            "netem is unavailable on this host: kernel lacks sch_netem",
        );
        let aborted = daemon.events("chaos_aborted");
        assert_eq!(aborted.len(), 1, "{aborted:?}");
    }
    assert!(!NetnsPair::qdiscs(&pair.a, "veth-a").contains("5e14:"));
    assert!(daemon.stop().success());
}

#[test]
fn guardrail_default_route_also_covers_each_path_of_a_multipath_route() {
    if !require_root("guardrail_default_route_also_covers_each_path_of_a_multipath_route") {
        return;
    }
    // a second link between the two namespaces: veth-a2 (10.254.1.1) <-> veth-b2 (10.254.1.2)
    let pair = NetnsPair::new("ecmp");
    run(
        "ip",
        &[
            "link", "add", "veth-a2", "netns", &pair.a, "type", "veth", "peer", "name", "veth-b2",
            "netns", &pair.b,
        ],
    );
    run(
        "ip",
        &[
            "-n",
            &pair.a,
            "addr",
            "add",
            "10.254.1.1/24",
            "dev",
            "veth-a2",
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
            "veth-b2",
        ],
    );
    run("ip", &["-n", &pair.a, "link", "set", "veth-a2", "up"]);
    run("ip", &["-n", &pair.b, "link", "set", "veth-b2", "up"]);

    let sandbox = Sandbox::new();
    let profiles = ["veth-a", "veth-a2"]
        .map(|dev| {
            tbf_profile(
                dev,
                &format!("netns = \"{}\", interface = \"{dev}\"", pair.a),
                "",
            )
        })
        .concat();
    let daemon = start_daemon(&sandbox, "5e15", &profiles);
    let ip = |args: &str| {
        let mut full = vec!["-n", &pair.a];
        full.extend(args.split(' '));
        run("ip", &full);
    };
    let routes = [
        (
            "IPv4 ECMP",
            "route add default nexthop via 10.254.0.2 dev veth-a nexthop via 10.254.1.2 dev veth-a2",
            "route del default",
        ),
        (
            "IPv6 ECMP",
            "-6 route add default nexthop via fe80::1 dev veth-a nexthop via fe80::2 dev veth-a2",
            "-6 route del default",
        ),
        (
            "nexthop group",
            "route add default nhid 12",
            "route del default nhid 12",
        ),
    ];
    ip("nexthop add id 1 via 10.254.0.2 dev veth-a");
    ip("nexthop add id 2 via 10.254.1.2 dev veth-a2");
    ip("nexthop add id 12 group 1/2");
    for (what, add, del) in routes {
        ip(add);
        for dev in ["veth-a", "veth-a2"] {
            let refused = daemon.ctl(&["chaos", "start", dev]);
            assert!(!refused.status.success(), "{what}: {dev} was impaired");
            assert!(
                text(&refused.stderr).contains(&format!("{dev} carries the default route")),
                "{what}: {}",
                text(&refused.stderr)
            );
            assert!(!NetnsPair::qdiscs(&pair.a, dev).contains("5e15:"));
        }
        ip(del);
    }
    // without a default route both are fair game again
    for dev in ["veth-a", "veth-a2"] {
        let started = daemon.ctl_json(&["chaos", "start", dev]);
        assert_eq!(started["state"], "active", "{started}");
    }
    assert!(daemon.ctl(&["chaos", "stop", "--all"]).status.success());
    assert!(daemon.stop().success());
}
