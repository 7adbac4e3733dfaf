//! The container image (packaging/container/build-image.sh) run the way autoheal users deploy
//! it: the engine's socket mounted, `discover = "labeled"`, and a labelled container it heals.

use std::process::Command;
use std::time::Duration;

use crate::harness::{
    docker, require_docker, text, wait_for, TestContainer, SENTINELCTL, SENTINELD,
};

/// The image's sentineld container, removed (with its state volume) when dropped.
struct SentinelContainer {
    name: String,
    volume: String,
    image: String,
}

impl Drop for SentinelContainer {
    fn drop(&mut self) {
        for args in [
            vec!["rm", "-f", self.name.as_str()],
            vec!["volume", "rm", "-f", self.volume.as_str()],
            vec!["image", "rm", "-f", self.image.as_str()],
        ] {
            let _ = Command::new("docker").args(&args).output();
        }
    }
}

fn started_at(container: &str) -> String {
    docker(&["inspect", "--format", "{{.State.StartedAt}}", container])
}

#[test]
fn the_image_heals_a_labelled_container_on_the_engine() {
    if !require_docker("container_image::the_image_heals_a_labelled_container_on_the_engine") {
        return;
    }
    let pid = std::process::id();
    let sentinel = SentinelContainer {
        name: format!("sentinel-image-test-{pid}"),
        volume: format!("sentinel-image-test-state-{pid}"),
        image: format!("sentinel-test/sentinel:{pid}"),
    };
    // Built from the binaries under test (debug info stripped on the way).
    let build = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/container/build-image.sh"
        ))
        .args([sentinel.image.as_str(), SENTINELD, SENTINELCTL])
        .output()
        .expect("run build-image.sh");
    assert!(
        build.status.success(),
        "build-image.sh: {}{}",
        text(&build.stdout),
        text(&build.stderr)
    );

    // What autoheal users run: the socket and a state volume, nothing else. No network at all:
    // the daemon only needs the engine's socket, and the listener stays inside the container.
    docker(&[
        "run",
        "-d",
        "--name",
        &sentinel.name,
        "--network",
        "none",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{}:/var/lib/sentinel", sentinel.volume),
        &sentinel.image,
    ]);
    let ctl = |args: &[&str]| {
        let mut full = vec![
            "exec",
            sentinel.name.as_str(),
            "/usr/bin/sentinelctl",
            "--json",
        ];
        full.extend_from_slice(args);
        Command::new("docker")
            .args(&full)
            .output()
            .expect("docker exec sentinelctl")
    };
    wait_for(
        Duration::from_secs(20),
        "sentineld in the image answers",
        || ctl(&["status"]).status.success().then_some(()),
    );

    let target = TestContainer::run_with(
        "image-target",
        &["--label", "sentinel.enable=true"],
        &["sleep", "100000"],
    );
    wait_for(
        Duration::from_secs(20),
        "the labelled container is discovered and Up",
        || {
            let output = ctl(&["status"]);
            let status: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
            status["probes"].as_array()?.iter().find(|probe| {
                probe["name"].as_str() == Some(target.name.as_str()) && probe["state"] == "up"
            })?;
            Some(())
        },
    );

    let before = started_at(&target.name);
    docker(&["kill", &target.name]);
    wait_for(
        Duration::from_secs(30),
        "the image restarts the killed container",
        || {
            let running = docker(&["inspect", "--format", "{{.State.Running}}", &target.name]);
            (running == "true" && started_at(&target.name) != before).then_some(())
        },
    );
    let events = ctl(&["events", "--kind", "heal_started"]);
    assert!(
        text(&events.stdout).contains(&target.name),
        "no heal_started for {} in the image's journal: {}{}",
        target.name,
        text(&events.stdout),
        text(&events.stderr)
    );
}
