//! `[docker]` discovery settings: defaults, and errors at file:line:col.

use super::parse_str;
use crate::docker::config::{DiscoverMode, DockerSection};

#[test]
fn discovery_is_off_by_default_and_reads_its_settings() {
    let config = parse_str("").unwrap();
    assert_eq!(config.docker.discover, DiscoverMode::Off);
    assert_eq!(
        config.docker.max_discovered,
        DockerSection::DEFAULT_MAX_DISCOVERED
    );
    let config = parse_str(
        "[docker]\ndiscover = \"all\"\nmax_discovered = 10\nonly_label = \"team=pay\"\n\n[docker.defaults]\nfail_after = 2\ninterval = \"3s\"\ntimeout = \"1s\"\nwindow = \"5m\"\n",
    )
    .unwrap();
    assert_eq!(config.docker.discover, DiscoverMode::All);
    assert_eq!(config.docker.max_discovered, 10);
    assert_eq!(
        config.docker.only(),
        Some(("team".to_string(), Some("pay".to_string())))
    );
    assert_eq!(config.docker.defaults.fail_after, 2);
    assert_eq!(config.docker.defaults.window.get().as_secs(), 300);
    assert_eq!(config.docker.defaults.max_attempts, 3, "untouched default");
}

#[test]
fn discovery_errors_point_at_file_line_column() {
    let cases: &[(&str, &str)] = &[
        (
            "[docker]\ndiscover = \"some\"\n",
            "t.toml:2:12: unknown variant `some`, expected one of `off`, `labeled`, `all`",
        ),
        (
            "[docker]\nmax_discovered = 0\n",
            "t.toml:2:18: docker.max_discovered must be between 1 and 4096",
        ),
        (
            "[docker]\nonly_label = \"=x\"\n",
            "t.toml:2:14: docker.only_label = \"=x\": expected `key` or `key=value`",
        ),
        (
            "[docker.defaults]\nfail_after = 0\n",
            "t.toml:2:14: docker.defaults: fail_after must be between 1 and 64",
        ),
        (
            "[docker.defaults]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
            "t.toml:3:11: docker.defaults: timeout 2s must be above zero and at most the interval (1s)",
        ),
        (
            "[docker.defaults]\nmax_attempts = 101\n",
            "t.toml:2:16: docker.defaults: max_attempts must be between 1 and 100",
        ),
        (
            "[docker.defaults]\nwindow = \"0s\"\n",
            "t.toml:2:10: docker.defaults: window must be above zero",
        ),
        (
            "[docker.defaults]\nstable_for = \"20m\"\n",
            "t.toml:2:14: docker.defaults: stable_for (20m) must be shorter than the window (10m)",
        ),
        (
            "[docker.defaults]\nretries = 3\n",
            "t.toml:2:1: unknown field `retries`",
        ),
        (
            "[docker.defaults]\narchive = [\"nope\"]\n",
            "t.toml:2:11: docker.defaults: archive names an unknown source \"nope\"",
        ),
    ];
    for (source, want) in cases {
        let err = parse_str(source).unwrap_err();
        assert!(
            err.starts_with(want),
            "{source:?}\n got: {err}\nwant: {want}"
        );
    }
}
