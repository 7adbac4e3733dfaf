//! Drills from real runs: a real container killed and healed (pass, measured time, notifications
//! tagged as the drill's), a real tbf that slows real transfers until a p95 tenant alert fires
//! (pass), a tbf with an expectation that cannot be met (fail, rolled back), and aborts with
//! rollback on an unrelated Down, an operator stop and shutdown. Every rollback is checked in
//! the kernel with `tc`.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::chaos::{chaos_section, NetnsPair};
use crate::docker::{docker_probe, wait_up_and_following, RESTART_HEAL};
use crate::harness::{
    docker, free_port, require_docker, require_root, text, wait_for, Daemon, Sandbox,
    TestContainer, SENTINELCTL,
};
use crate::notify::Receiver;
use crate::tenants::post_events;

/// `sentinelctl drill run NAME` in the background, so the test can look at the kernel meanwhile.
fn run_in_background(daemon: &Daemon, name: &str) -> Child {
    Command::new(SENTINELCTL)
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["drill", "run", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sentinelctl drill run")
}

/// Start drill `name` in the background and wait until its tbf is in the kernel.
fn run_until_applied(daemon: &Daemon, name: &str, pair: &NetnsPair, handle: &str) -> Child {
    let child = run_in_background(daemon, name);
    wait_for(Duration::from_secs(10), "the tbf in the kernel", || {
        has_qdisc(pair, handle).then_some(())
    });
    child
}

fn finish(child: Child) -> Output {
    let output = child.wait_with_output().unwrap();
    println!(
        "--- sentinelctl drill run (exit {:?}) ---\n{}{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// A tbf step on `veth-a` of the pair's namespace `a`, inline (no profile), lasting 1 minute.
fn tbf_step(pair: &NetnsPair, expect: &str) -> String {
    format!(
        "[[drill.step]]\ntarget = {{ netns = \"{}\", interface = \"veth-a\" }}\nfaults = [{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }}]\nduration = \"1m\"\nexpect = [{expect}]\n",
        pair.a
    )
}

fn has_qdisc(pair: &NetnsPair, handle: &str) -> bool {
    NetnsPair::qdiscs(&pair.a, "veth-a").contains(&format!("qdisc tbf {handle}: root"))
}

/// An exec probe that is Up while `flag` exists.
fn flag_probe(name: &str, flag: &Path) -> String {
    std::fs::write(flag, "").unwrap();
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"test -e {}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfail_after = 1\n",
        flag.display()
    )
}

#[test]
fn a_drill_kills_a_real_container_passes_and_its_notifications_are_tagged() {
    if !require_docker("a_drill_kills_a_real_container_passes_and_its_notifications_are_tagged") {
        return;
    }
    let container = TestContainer::run("drill", &["sleep", "3600"]);
    let port = free_port();
    let receiver = Receiver::start(port);
    let sandbox = Sandbox::new();
    let config = format!(
        "{probe}\n[notify]\nmax_retry_delay = \"1s\"\n\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\n[[chaos.profile]]\nname = \"kill-demo\"\nduration = \"2m\"\ntarget = {{ container = \"{name}\" }}\nfaults = [{{ kind = \"container\", action = \"kill\" }}]\n\n[[drill]]\nname = \"gameday\"\n\n[[drill.step]]\nprofile = \"kill-demo\"\nexpect = [{{ probe = \"demo\", up_within = \"30s\" }}, {{ heal = \"demo\", within = \"20s\" }}]\n",
        probe = docker_probe("demo", &container.name, RESTART_HEAL),
        name = container.name,
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_up_and_following(&daemon, "demo");

    let listed = daemon.ctl(&["drill", "list"]);
    assert!(
        text(&listed.stdout)
            .contains("gameday  kill-demo: probe demo up within 30s, heal of demo within 20s"),
        "{}",
        text(&listed.stdout)
    );

    let output = finish(run_in_background(&daemon, "gameday"));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for line in [
        "step 1: fault applied: container kill",
        "demo: up -> down",
        "demo: heal done",
        "demo: down -> up",
        "step 1: probe demo up within 30s: met (up again after",
        "drill gameday (",
        "passed — 2 of 2 expectations met",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    let measured = stdout
        .lines()
        .find(|l| l.starts_with("1     probe demo up within 30s"))
        .unwrap_or_else(|| panic!("no table row in\n{stdout}"));
    assert!(
        measured.contains("PASS") && measured.contains("30.0s"),
        "{measured}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &container.name]),
        "true"
    );

    let finished = daemon.events("drill_finished");
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0]["outcome"], "passed");
    let checked = daemon.events("drill_expectation_checked");
    let up = checked[0]["measured_ms"].as_u64().unwrap();
    assert!(up > 0 && up < 30_000, "{checked:?}");
    // the step's experiment was ended by the drill, not left to its 2-minute deadline
    let rolled = daemon.events("chaos_rolled_back");
    assert_eq!(rolled[0]["trigger"], "stop", "{rolled:?}");

    // (d) the webhook heard the incident as the drill's: firing and resolved, both tagged
    let hooks = wait_for(
        Duration::from_secs(15),
        "firing and resolved webhooks",
        || {
            let hooks = receiver.at("/hook");
            (hooks.len() >= 2).then_some(hooks)
        },
    );
    for hook in &hooks {
        assert_eq!(hook.body["drill"], "gameday", "{:?}", hook.body);
        assert_eq!(hook.body["labels"]["drill"], "gameday", "{:?}", hook.body);
        assert!(
            hook.body["text"]
                .as_str()
                .unwrap()
                .starts_with("[drill gameday] "),
            "{:?}",
            hook.body
        );
    }
    assert_eq!(hooks[0].body["status"], "firing");
    assert_eq!(hooks.last().unwrap().body["status"], "resolved");
    assert!(daemon.stop().success());
}

#[test]
fn a_drill_whose_expectation_cannot_be_met_fails_and_rolls_back_its_tbf() {
    if !require_root("a_drill_whose_expectation_cannot_be_met_fails_and_rolls_back_its_tbf") {
        return;
    }
    let pair = NetnsPair::new("drillf");
    let sandbox = Sandbox::new();
    let drill = format!(
        "[[tenants.alert]]\nname = \"p95\"\nwhen = \"p95\"\nthreshold = 500\n\n[[drill]]\nname = \"slow\"\n{}",
        tbf_step(&pair, "{ tenant_alert = \"p95\", fires_within = \"2s\" }")
    );
    sandbox.write_config(&sandbox.config("", &chaos_section("5e40", &drill)));
    let daemon = Daemon::start(&sandbox, |_| {});

    let child = run_until_applied(&daemon, "slow", &pair, "5e40");
    let output = finish(child);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "tenant alert p95 fires within 2s  FAIL    -         2.0s   did not fire within 2.0 s"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("failed — 0 of 1 expectations met"),
        "{stdout}"
    );
    assert!(
        !has_qdisc(&pair, "5e40"),
        "{}",
        NetnsPair::qdiscs(&pair.a, "veth-a")
    );
    assert!(stdout.contains("rolled back (stop)"), "{stdout}");
    assert_eq!(daemon.events("drill_finished")[0]["outcome"], "failed");
    assert!(daemon.stop().success());
}

#[test]
fn a_drill_aborts_and_rolls_back_on_an_unrelated_failure_a_stop_and_shutdown() {
    if !require_root("a_drill_aborts_and_rolls_back_on_an_unrelated_failure_a_stop_and_shutdown") {
        return;
    }
    let pair = NetnsPair::new("drilla");
    let sandbox = Sandbox::new();
    let (watched, bystander) = (
        sandbox.path().join("watched.flag"),
        sandbox.path().join("bystander.flag"),
    );
    let config = format!(
        "{}{}\n[[drill]]\nname = \"steady\"\n{}",
        flag_probe("watched", &watched),
        flag_probe("bystander", &bystander),
        tbf_step(&pair, "{ probe = \"watched\", stays_up = true }")
    );
    sandbox.write_config(&sandbox.config("", &chaos_section("5e41", &config)));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("bystander", "up");
    daemon.wait_state("watched", "up");

    // (c) a probe the drill does not watch goes Down mid-drill
    let child = run_until_applied(&daemon, "steady", &pair, "5e41");
    let broke = Instant::now();
    std::fs::remove_file(&bystander).unwrap();
    let output = finish(child);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(broke.elapsed() < Duration::from_secs(10), "{stdout}");
    assert!(stdout.contains("bystander: up -> down"), "{stdout}");
    assert!(
        stdout.contains("aborted: unrelated failure of probe bystander"),
        "{stdout}"
    );
    assert!(
        !has_qdisc(&pair, "5e41"),
        "{}",
        NetnsPair::qdiscs(&pair.a, "veth-a")
    );
    let finished = daemon.events("drill_finished");
    assert_eq!(finished[0]["outcome"], "aborted");
    assert_eq!(
        finished[0]["reason"],
        "unrelated failure of probe bystander"
    );
    std::fs::write(&bystander, "").unwrap();
    daemon.wait_state("bystander", "up");

    // an operator stops the next run
    let child = run_until_applied(&daemon, "steady", &pair, "5e41");
    let id = daemon.ctl_json(&["drill", "list"])["runs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stopped = daemon.ctl_json(&["drill", "stop", &id]);
    assert_eq!(stopped["run"]["state"], "aborted", "{stopped}");
    assert_eq!(
        stopped["run"]["reason"], "stopped by an operator",
        "{stopped}"
    );
    assert!(!has_qdisc(&pair, "5e41"));
    let output = finish(child);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).contains("aborted: stopped by an operator"));

    // and shutdown ends the third
    let child = run_until_applied(&daemon, "steady", &pair, "5e41");
    assert!(daemon.stop().success());
    assert!(
        !has_qdisc(&pair, "5e41"),
        "{}",
        NetnsPair::qdiscs(&pair.a, "veth-a")
    );
    let _ = finish(child);
    let daemon = Daemon::start(&sandbox, |_| {});
    let finished = daemon.events("drill_finished");
    assert_eq!(finished.len(), 3, "{finished:?}");
    assert_eq!(finished[2]["reason"], "daemon shutdown", "{finished:?}");

    // a crash (SIGKILL: dropping the handle) leaves the fourth run unfinished with its tbf in
    // place; the next start rolls the tbf back and closes the drill as aborted
    let child = run_until_applied(&daemon, "steady", &pair, "5e41");
    drop(daemon);
    let _ = finish(child);
    assert!(has_qdisc(&pair, "5e41"), "a crash cannot roll back");
    let daemon = Daemon::start(&sandbox, |_| {});
    assert!(
        !has_qdisc(&pair, "5e41"),
        "{}",
        NetnsPair::qdiscs(&pair.a, "veth-a")
    );
    let finished = wait_for(
        Duration::from_secs(10),
        "the interrupted drill closed",
        || {
            let finished = daemon.events("drill_finished");
            (finished.len() == 4).then_some(finished)
        },
    );
    assert_eq!(finished[3]["outcome"], "aborted", "{finished:?}");
    let reason = finished[3]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("sentineld stopped during the drill"),
        "{reason}"
    );
    // and the runs of earlier daemons are still listed, newest first, with their outcomes
    let runs = daemon.ctl_json(&["drill", "list"])["runs"].clone();
    let states: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["aborted"; 4], "{runs}");
    assert_eq!(runs[0]["reason"].as_str(), Some(reason), "{runs}");
    assert_eq!(
        runs[3]["reason"], "unrelated failure of probe bystander",
        "{runs}"
    );
    let oldest = runs[3]["id"].as_str().unwrap();
    // `drill show` exits 1 for an aborted run, like `drill run`
    let output = daemon.ctl(&["--json", "drill", "show", oldest]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["run"]["id"], oldest, "{shown}");
    assert_eq!(shown["run"]["state"], "aborted", "{shown}");
    assert!(daemon.stop().success());
}

#[test]
fn a_drill_sees_a_p95_alert_fire_while_a_real_tbf_slows_transfers() {
    if !require_root("a_drill_sees_a_p95_alert_fire_while_a_real_tbf_slows_transfers") {
        return;
    }
    let pair = NetnsPair::new("drillp");
    let sandbox = Sandbox::new();
    let config = format!(
        "[tenants]\nenabled = true\nbucket = \"1s\"\nlatency_bucket = \"5s\"\nwindow = \"10s\"\nbaseline_bucket = \"10s\"\nbaseline = \"5m\"\nmin_requests = 1\n\n[[tenants.alert]]\nname = \"p95\"\nwhen = \"p95\"\nthreshold = 300\n\n[[drill]]\nname = \"latency\"\n{}",
        tbf_step(&pair, "{ tenant_alert = \"p95\", fires_within = \"30s\" }")
    );
    sandbox.write_config(&sandbox.config("", &chaos_section("5e42", &config)));
    let daemon = Daemon::start(&sandbox, |_| {});

    // The tenant's requests are real transfers across the veth pair; their time is its latency.
    const REQUEST_BYTES: usize = 128 << 10;
    let report = |label: &str| {
        let latency_ms = REQUEST_BYTES as f64 / pair.throughput(REQUEST_BYTES) * 1000.0;
        let line = format!(
            r#"{{"tenant_id":"acme","endpoint":"/v1/export","status_code":200,"latency_ms":{latency_ms:.1}}}"#
        );
        let body = vec![line; 20].join("\n");
        let (status, _) = post_events(
            sandbox.port,
            "\r\nContent-Type: application/x-ndjson",
            body.as_bytes(),
        );
        assert_eq!(status, 200);
        println!("{label}: {REQUEST_BYTES} bytes took {latency_ms:.1} ms");
        latency_ms
    };
    assert!(report("before") < 300.0);
    let mut child = run_until_applied(&daemon, "latency", &pair, "5e42");
    let mut slowest: f64 = 0.0;
    while child.try_wait().unwrap().is_none() {
        slowest = slowest.max(report("during"));
    }
    let output = finish(child);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        slowest > 300.0,
        "the tbf did not slow the transfers: {slowest:.1} ms"
    );
    assert!(
        stdout.contains("step 1: tenant alert p95 fires within 30s: met (fired after"),
        "{stdout}"
    );
    assert!(stdout.contains("p95 latency"), "{stdout}");
    assert!(
        !has_qdisc(&pair, "5e42"),
        "{}",
        NetnsPair::qdiscs(&pair.a, "veth-a")
    );
    assert!(daemon.stop().success());
}
