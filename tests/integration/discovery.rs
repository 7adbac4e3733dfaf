//! `[docker] discover` against the real engine: containers that appear, turn unhealthy or go
//! away are picked up from the event stream without a reload. Every test scopes discovery to
//! its own label (`only_label`), so it never touches another test's (or helper's) containers.

use std::time::{Duration, Instant};

use crate::harness::{docker, require_docker, text, wait_for, Daemon, Sandbox, TestContainer};

/// The scope label of one test: `sentinel-test.scope=<test>-<pid>`.
fn scope(test: &str) -> String {
    format!("sentinel-test.scope={test}-{}", std::process::id())
}

/// A daemon discovering in `mode` within `scope`, with fast defaults, plus `extra` config.
fn discovering(mode: &str, scope: &str, extra: &str) -> (Sandbox, Daemon) {
    let sandbox = Sandbox::new();
    write_discovery_config(&sandbox, mode, scope, extra);
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(Duration::from_secs(15), "docker_engine connected", || {
        (!daemon.events("docker_engine").is_empty()).then_some(())
    });
    (sandbox, daemon)
}

fn write_discovery_config(sandbox: &Sandbox, mode: &str, scope: &str, extra: &str) {
    let docker = format!(
        "[docker]\ndiscover = \"{mode}\"\nonly_label = \"{scope}\"\n\n[docker.defaults]\ninterval = \"2s\"\ntimeout = \"1s\"\nbackoff = \"1s\"\nverify_within = \"15s\"\nstop_timeout = \"1s\"\n\n{extra}"
    );
    sandbox.write_config(&sandbox.config("", &docker));
}

fn heals_total(daemon: &Daemon, probe: &str) -> u64 {
    daemon.ctl_json(&["status"])["heals"]
        .as_array()
        .and_then(|heals| heals.iter().find(|h| h["probe"] == probe))
        .and_then(|h| h["heals_total"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_labelled_container_started_later_is_probed_healed_and_forgotten() {
    if !require_docker("a_labelled_container_started_later_is_probed_healed_and_forgotten") {
        return;
    }
    let scope = scope("lifecycle");
    let (_sandbox, daemon) = discovering("labeled", &scope, "");
    let started = Instant::now();
    let container = TestContainer::run_with(
        "disc-life",
        &["--label", "sentinel.enable=true", "--label", &scope],
        &["sleep", "3600"],
    );
    let name = container.name.clone();
    let probe = daemon.wait_state_within(&name, "up", Duration::from_secs(10));
    eprintln!("probed up {:?} after docker run", started.elapsed());
    assert_eq!(probe["kind"], "docker", "{probe}");
    assert_eq!(probe["discovered"]["from"], "label", "{probe}");
    assert_eq!(probe["discovered"]["container"], name.as_str(), "{probe}");
    let id = docker(&["inspect", "-f", "{{.Id}}", &name]);
    assert_eq!(probe["discovered"]["container_id"], &id[..12], "{probe}");
    let listing = text(&daemon.ctl(&["probes"]).stdout);
    assert!(
        listing.contains(&format!(
            "discovered  {name}: container {name} ({}) by label sentinel.enable=true",
            &id[..12]
        )),
        "{listing}"
    );
    let discovered = daemon.events("probe_discovered");
    assert_eq!(discovered.len(), 1, "{discovered:?}");

    // Killed: the discovered heal restarts it.
    docker(&["kill", &name]);
    wait_for(Duration::from_secs(30), "the discovered heal", || {
        (heals_total(&daemon, &name) >= 1 && daemon.probe(&name)["state"] == "up").then_some(())
    });
    let running = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(running, "true");

    // Removed: the probe goes, without a reload.
    docker(&["rm", "-f", &name]);
    wait_for(Duration::from_secs(5), "the probe to go", || {
        daemon.probe(&name).is_null().then_some(())
    });
    let gone = daemon.events("probe_undiscovered");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["reason"], "container_removed", "{gone:?}");
    assert!(!text(&daemon.ctl(&["probes"]).stdout).contains(&name));
    assert!(
        daemon.events("config_applied").is_empty(),
        "no reload was needed"
    );
    assert!(daemon.stop().success());
}

#[test]
fn all_mode_restarts_a_container_whose_healthcheck_fails() {
    if !require_docker("all_mode_restarts_a_container_whose_healthcheck_fails") {
        return;
    }
    let scope = scope("all");
    let (_sandbox, daemon) = discovering("all", &scope, "");
    // Healthy while /tmp/ok exists; the restart's command creates it again.
    let container = TestContainer::run_with(
        "disc-all",
        &[
            "--label",
            &scope,
            "--health-cmd",
            "test -f /tmp/ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        &["sh", "-c", "touch /tmp/ok; exec sleep 3600"],
    );
    let name = container.name.clone();
    let probe = daemon.wait_state_within(&name, "up", Duration::from_secs(15));
    assert_eq!(probe["discovered"]["from"], "healthcheck", "{probe}");
    let before = docker(&["inspect", "-f", "{{.State.StartedAt}}", &name]);

    docker(&["exec", &name, "rm", "/tmp/ok"]);
    wait_for(
        Duration::from_secs(40),
        "the unhealthy container healed",
        || (heals_total(&daemon, &name) >= 1 && daemon.probe(&name)["state"] == "up").then_some(()),
    );
    let after = docker(&["inspect", "-f", "{{.State.StartedAt}}", &name]);
    assert_ne!(before, after, "the container was restarted");
    let down: Vec<_> = daemon
        .events("probe_transition")
        .into_iter()
        .filter(|e| e["probe"] == name.as_str() && e["to"] == "down")
        .collect();
    assert_eq!(down[0]["reason"], "unhealthy", "{down:?}");
    assert!(daemon.stop().success());
}

#[test]
fn bad_labels_config_probes_and_compose_names() {
    if !require_docker("bad_labels_config_probes_and_compose_names") {
        return;
    }
    let scope = scope("labels");
    let pid = std::process::id();
    // A [[probe]] of its own for the container `mine`: the config wins over its labels.
    let mine_name = format!("sentinel-test-disc-mine-{pid}");
    let config_probe = format!(
        "[[probe]]\nname = \"configured\"\nkind = \"docker\"\ncontainer = \"{mine_name}\"\ninterval = \"2s\"\ntimeout = \"1s\"\n"
    );
    let (sandbox, daemon) = discovering("labeled", &scope, &config_probe);
    let enable = ["--label", "sentinel.enable=true", "--label", scope.as_str()];

    let mine = TestContainer::run_with("disc-mine", &enable, &["sleep", "3600"]);
    assert_eq!(mine.name, mine_name);
    let mut bad_options = enable.to_vec();
    bad_options.extend(["--label", "sentinel.fail_after=abc"]);
    let bad = TestContainer::run_with("disc-bad", &bad_options, &["sleep", "3600"]);

    // Compose labels set by hand: project p<pid>, services db and web (web depends on db).
    let project = format!("p{pid}");
    let compose = |service: &str, depends: &str| {
        let mut options: Vec<String> = enable.iter().map(|s| s.to_string()).collect();
        for label in [
            format!("com.docker.compose.project={project}"),
            format!("com.docker.compose.service={service}"),
            "com.docker.compose.container-number=1".to_string(),
            format!("com.docker.compose.depends_on={depends}"),
        ] {
            options.extend(["--label".to_string(), label]);
        }
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        TestContainer::run_with(&format!("disc-{service}"), &options, &["sleep", "3600"])
    };
    let db = compose("db", "");
    let _web = compose("web", "db:service_started:false");

    // The bad label: an event naming the container, label, value and what was expected, a
    // status line, and the container still watched with the defaults.
    let probe = daemon.wait_state_within(&bad.name, "up", Duration::from_secs(10));
    assert_eq!(probe["thresholds"], "fail 1 / recover 1", "{probe}");
    let invalid = daemon.events("discovery_label_invalid");
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(invalid[0]["container"], bad.name.as_str());
    assert_eq!(invalid[0]["label"], "sentinel.fail_after");
    assert_eq!(invalid[0]["value"], "abc");
    assert_eq!(invalid[0]["expected"], "a whole number from 1 to 64");
    let status = text(&daemon.ctl(&["status"]).stdout);
    let line = format!(
        "label       {0}: container {0}: sentinel.fail_after=\"abc\": expected a whole number from 1 to 64; using the default",
        bad.name
    );
    assert!(status.contains(&line), "{status}");

    // The config probe watches `mine`; no discovered probe does.
    daemon.wait_state_within("configured", "up", Duration::from_secs(10));
    let web = daemon.wait_state_within(&format!("{project}/web"), "up", Duration::from_secs(10));
    assert_eq!(web["discovered"]["container"], _web.name.as_str(), "{web}");
    daemon.wait_state_within(&format!("{project}/db"), "up", Duration::from_secs(10));
    let status = daemon.ctl_json(&["status"]);
    let names: Vec<&str> = status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&mine.name.as_str()), "{names:?}");

    // compose depends_on became depends_on: db's recovery restarts web.
    docker(&["kill", &db.name]);
    wait_for(
        Duration::from_secs(40),
        "the cascade after db's heal",
        || {
            daemon
                .events("dependency_recovered")
                .into_iter()
                .find(|e| e["parent"] == format!("{project}/db"))
        },
    );
    let cascade = daemon.events("dependency_recovered");
    assert_eq!(
        cascade[0]["dependants"],
        serde_json::json!([format!("{project}/web")]),
        "{cascade:?}"
    );

    // A reload that drops the [[probe]]: `mine` is discovered now, and the discovered probes
    // that ran keep running (not restarted: one probe_discovered each).
    write_discovery_config(&sandbox, "labeled", &scope, "");
    let reload = daemon.ctl(&["reload"]);
    assert!(reload.status.success(), "{}", text(&reload.stderr));
    let mine_probe = daemon.wait_state_within(&mine.name, "up", Duration::from_secs(10));
    assert_eq!(mine_probe["discovered"]["from"], "label", "{mine_probe}");
    assert!(daemon.probe("configured").is_null());
    let discovered = daemon.events("probe_discovered");
    for name in [bad.name.clone(), format!("{project}/web")] {
        let times = discovered
            .iter()
            .filter(|e| e["probe"] == name.as_str())
            .count();
        assert_eq!(times, 1, "{name}: {discovered:?}");
        assert_eq!(daemon.probe(&name)["state"], "up", "{name}");
    }
    assert!(daemon.stop().success());
}

#[test]
fn a_maintenance_window_by_label_covers_a_discovered_container() {
    if !require_docker("a_maintenance_window_by_label_covers_a_discovered_container") {
        return;
    }
    let scope = scope("window");
    let (_sandbox, daemon) = discovering("labeled", &scope, "");
    let team = format!("team=shop{}", std::process::id());
    let label = format!("sentinel.label.{team}");
    let container = TestContainer::run_with(
        "disc-window",
        &[
            "--label",
            "sentinel.enable=true",
            "--label",
            &scope,
            "--label",
            &label,
        ],
        &["sleep", "3600"],
    );
    let name = container.name.clone();
    daemon.wait_state_within(&name, "up", Duration::from_secs(10));
    let started = daemon.ctl(&[
        "maintenance",
        "start",
        "--for",
        "10m",
        "--label",
        &team,
        "--reason",
        "discovered containers by label",
    ]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let id = text(&started.stdout).trim().to_string();
    wait_for(
        Duration::from_secs(5),
        "the window to cover the probe",
        || (daemon.probe(&name)["maintenance"]["window"] == id.as_str()).then_some(()),
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_reload_turns_discovery_on_and_off_without_a_restart() {
    if !require_docker("a_reload_turns_discovery_on_and_off_without_a_restart") {
        return;
    }
    let scope = scope("reload");
    // Off: nothing follows the engine yet (no docker_engine event to wait for).
    let sandbox = Sandbox::new();
    write_discovery_config(&sandbox, "off", &scope, "");
    let daemon = Daemon::start(&sandbox, |_| {});
    let container = TestContainer::run_with(
        "disc-reload",
        &["--label", "sentinel.enable=true", "--label", &scope],
        &["sleep", "3600"],
    );
    let name = container.name.clone();
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.probe(&name).is_null(), "off: not discovered");

    // The file watcher or the reload command, whichever comes first, applies it.
    write_discovery_config(&sandbox, "labeled", &scope, "");
    let reloaded = daemon.ctl(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded.stderr));
    let probe = daemon.wait_state_within(&name, "up", Duration::from_secs(10));
    assert_eq!(probe["discovered"]["from"], "label", "{probe}");
    let applied = daemon.events("config_applied");
    assert!(
        applied.iter().any(|e| e["changes"]
            .to_string()
            .contains("docker discovery changed")),
        "{applied:?}"
    );

    write_discovery_config(&sandbox, "off", &scope, "");
    let reloaded = daemon.ctl(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded.stderr));
    wait_for(Duration::from_secs(5), "the probe to go", || {
        daemon.probe(&name).is_null().then_some(())
    });
    let gone = daemon.events("probe_undiscovered");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["reason"], "not_eligible", "{gone:?}");
    assert!(daemon.stop().success());
}
