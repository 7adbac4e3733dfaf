//! Scheduled drills with the real daemon: a drill on a seconds cron kills one of two real
//! containers picked at random, is healed, shows in `drill trend` and on the status page; its
//! objective is set too tight, so each run alerts through a real webhook receiver; a runtime
//! maintenance window over the targets' probes skips the next runs (`drill_skipped`), and after
//! a restart the occurrences missed while sentineld was down are not replayed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::docker::{docker_probe, wait_up_and_following};
use crate::harness::{require_docker, text, wait_for, Daemon, Sandbox, TestContainer};
use crate::notify::Receiver;

/// A restart heal with room for one heal per run.
const HEAL: &str = "heal = { action = \"docker_restart\", stop_timeout = \"1s\", verify_within = \"10s\", stable_for = \"0s\", max_attempts = 100, window = \"10m\" }";

fn page(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn ms(value: &serde_json::Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

#[test]
fn a_scheduled_drill_runs_on_time_trends_alerts_when_slow_and_skips_maintenance() {
    if !require_docker(
        "a_scheduled_drill_runs_on_time_trends_alerts_when_slow_and_skips_maintenance",
    ) {
        return;
    }
    let one = TestContainer::run("sched-a", &["sleep", "3600"]);
    let two = TestContainer::run("sched-b", &["sleep", "3600"]);
    let hook_port = crate::harness::free_port();
    let receiver = Receiver::start(hook_port);
    let sandbox = Sandbox::new();
    let config = format!(
        "{probe_one}\n{probe_two}\n[notify]\nmax_retry_delay = \"1s\"\n\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\n[[drill]]\nname = \"sched\"\nschedule = \"*/2 * * * * *\"\ntargets = [\"{a}\", \"{b}\"]\nobjective = {{ recover_within = \"100ms\" }}\n\n[[drill.step]]\ntarget = {{ container = \"{{target}}\" }}\nfaults = [{{ kind = \"container\", action = \"kill\" }}]\nduration = \"1m\"\nexpect = [{{ probe = \"{{target}}\", up_within = \"30s\" }}]\n",
        probe_one = docker_probe(&one.name, &one.name, HEAL),
        probe_two = docker_probe(&two.name, &two.name, HEAL),
        a = one.name,
        b = two.name,
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_up_and_following(&daemon, &one.name);
    wait_up_and_following(&daemon, &two.name);

    // (a) the scheduler starts runs by itself; each kills a real container that is healed
    let finished = wait_for(Duration::from_secs(60), "two finished runs", || {
        let finished = daemon.events("drill_finished");
        (finished.len() >= 2).then_some(finished)
    });
    let started = daemon.events("drill_started");
    for run in &finished {
        assert_eq!(run["outcome"], "passed", "{run}");
        let (detect, recover) = (ms(&run["detect_ms"]), ms(&run["recover_ms"]));
        assert!(detect <= recover && recover < 30_000, "{run}");
        assert!(ms(&run["act_ms"]) <= recover, "{run}");
        let start = started
            .iter()
            .find(|s| s["drill"] == run["drill"])
            .unwrap_or_else(|| panic!("no start of {run}"));
        let target = start["target"].as_str().unwrap();
        assert!(target == one.name || target == two.name, "{start}");
        assert_eq!(start["probes"], serde_json::json!([target]), "{start}");
    }
    // on the even seconds of the cron, never two at once
    for pair in started.windows(2) {
        let (first, second) = (ms(&pair[0]["at"]), ms(&pair[1]["at"]));
        let first_end = finished
            .iter()
            .find(|f| f["drill"] == pair[0]["drill"])
            .map(|f| ms(&f["at"]));
        if let Some(end) = first_end {
            assert!(second >= end, "overlapping runs: {pair:?}");
        }
        assert!(second >= first + 1_000, "{pair:?}");
    }

    // (b) `drill trend` lists them with their times, p50 and the objective
    let trend = daemon.ctl_json(&["drill", "trend", "sched", "--last", "200"]);
    let runs = trend["runs"].as_array().unwrap();
    assert!(runs.len() >= 2, "{trend}");
    let newest = daemon.ctl_json(&["drill", "trend", "sched", "--last", "1"]);
    assert_eq!(newest["runs"].as_array().unwrap().len(), 1, "{newest}");
    assert_eq!(
        newest["runs"][0]["id"],
        runs.last().unwrap()["id"],
        "{newest}"
    );
    assert_eq!(runs[0]["id"], finished[0]["drill"], "{trend}");
    assert_eq!(runs[0]["timings"]["recover_ms"], finished[0]["recover_ms"]);
    assert!(ms(&trend["p50"]["recover_ms"]) > 0, "{trend}");
    assert_eq!(trend["objective"]["recover_within_ms"], 100, "{trend}");
    let table = text(&daemon.ctl(&["drill", "trend", "sched"]).stdout);
    println!("--- sentinelctl drill trend sched ---\n{table}");
    assert!(table.starts_with("RUN "), "{table}");
    assert!(
        table.contains("DETECT") && table.contains("RECOVER"),
        "{table}"
    );
    assert!(table.contains("p50 over "), "{table}");
    assert!(table.contains("objective: recover within 100ms"), "{table}");
    let unknown = daemon.ctl(&["drill", "trend", "nope"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no drill named \"nope\""),
        "{}",
        text(&unknown.stderr)
    );

    // (c) the status page has the drill's last run and its recovery trend
    let html = page(sandbox.port);
    assert!(html.contains("<section id=\"drills\">"), "{html}");
    assert!(html.contains("<tr data-drill=\"sched\">"), "{html}");

    // (d) recovering took longer than the 100 ms objective: alerted like an outage
    let hooks = wait_for(Duration::from_secs(15), "the objective alert", || {
        let hooks: Vec<_> = receiver
            .at("/hook")
            .into_iter()
            .filter(|h| h.body["kind"] == "drill_objective_checked")
            .collect();
        (!hooks.is_empty()).then_some(hooks)
    });
    let alert = &hooks[0].body;
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["subject"], "drill:sched", "{alert}");
    assert_eq!(alert["labels"]["alertname"], "SentinelDrillObjective");
    assert!(
        alert["text"]
            .as_str()
            .unwrap()
            .contains("missed its objective recover within 100ms: recover took"),
        "{alert}"
    );
    let checked = daemon.events("drill_objective_checked");
    assert!(
        checked.iter().all(|c| c["verdict"] == "missed"),
        "{checked:?}"
    );

    // (e) a maintenance window over both targets' probes: the next runs are skipped
    let opening = daemon.ctl(&[
        "maintenance",
        "start",
        "--for",
        "10m",
        "--probe",
        &one.name,
        "--probe",
        &two.name,
        "--reason",
        "no drills now",
    ]);
    assert!(opening.status.success(), "{}", text(&opening.stderr));
    let window = text(&opening.stdout).trim().to_string();
    assert!(window.starts_with('m'), "{window}");
    let opened = ms(&daemon.events("maintenance_started")[0]["from"]);
    let skipped = wait_for(Duration::from_secs(10), "a skipped run", || {
        daemon
            .events("drill_skipped")
            .into_iter()
            .find(|s| s["reason"] == "maintenance")
    });
    assert_eq!(skipped["name"], "sched", "{skipped}");
    assert!(
        skipped["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("maintenance window {window} covers probe")),
        "{skipped}"
    );
    assert!(ms(&skipped["scheduled_at"]) >= opened, "{skipped}");
    std::thread::sleep(Duration::from_secs(3));
    let late: Vec<_> = daemon
        .events("drill_started")
        .into_iter()
        .filter(|s| ms(&s["at"]) >= opened)
        .collect();
    assert!(late.is_empty(), "drills started in the window: {late:?}");
    assert!(daemon.stop().success());

    // (f) down for 5 s (two or three occurrences): none is replayed at the next start
    std::thread::sleep(Duration::from_secs(5));
    let restarted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let daemon = Daemon::start(&sandbox, |_| {});
    let before = Instant::now();
    let after_restart = wait_for(Duration::from_secs(10), "a skip after the restart", || {
        let skipped: Vec<_> = daemon
            .events("drill_skipped")
            .into_iter()
            .filter(|s| ms(&s["at"]) >= restarted)
            .collect();
        (!skipped.is_empty()).then_some(skipped)
    });
    println!("first skip after restart seen after {:?}", before.elapsed());
    for skip in &after_restart {
        assert!(
            ms(&skip["scheduled_at"]) >= restarted,
            "an occurrence from while sentineld was down was replayed: {skip}"
        );
    }
    assert!(daemon.stop().success());
}
