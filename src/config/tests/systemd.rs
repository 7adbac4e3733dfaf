//! `systemd_unit` probes and the `systemd_restart` heal as the loader reads them: issue 15's
//! example as written, and every field of theirs refused at its file:line:col.

use std::path::Path;

use crate::heal::{HealAction, HealerSpec};
use crate::probe::config::HealActionKind;
use crate::probe::{AnyProbe, ProbeKind};
use crate::systemd::ActiveState;

fn parse(source: &str) -> Result<crate::config::Config, String> {
    crate::config::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
}

/// The systemd probe of issue 15's configuration, exactly as the issue writes it.
const ISSUE_15: &str = r#"
[[probe]]
name = "nginx"
kind = "systemd_unit"
unit = "nginx.service"
heal = { action = "systemd_restart" }
"#;

#[test]
fn issue_15_systemd_unit_is_accepted_as_written() {
    let config = parse(ISSUE_15).unwrap();
    let [nginx] = &config.probes[..] else {
        panic!("{:?}", config.probes)
    };
    assert_eq!(nginx.kind(), ProbeKind::SystemdUnit);
    assert_eq!(
        nginx.heal.as_ref().map(|h| h.get_ref().action),
        Some(HealActionKind::SystemdRestart)
    );
    let docker = crate::docker::DockerEngine::new(Path::new("/nonexistent/docker.sock"));
    match AnyProbe::from_config(nginx, &docker) {
        Some(AnyProbe::SystemdUnit(probe)) => {
            assert_eq!(probe.unit, "nginx.service");
            assert_eq!(
                probe.up_states,
                [ActiveState::Active, ActiveState::Reloading]
            );
        }
        other => panic!("{other:?}"),
    }
    let spec = HealerSpec::from_config(nginx, &docker, Vec::new()).expect("a heal");
    match &spec.action {
        HealAction::SystemdRestart { unit, timeout, .. } => {
            assert_eq!(unit, "nginx.service");
            assert_eq!(timeout.as_secs(), 60);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(spec.action.describe(), "systemd restart nginx.service");
}

#[test]
fn systemd_restart_heals_another_kind_with_its_own_unit() {
    let config = parse(
        "[[probe]]\nname = \"web\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n\
         heal = { action = \"systemd_restart\", unit = \"nginx.service\", timeout = \"20s\" }\n",
    )
    .unwrap();
    let docker = crate::docker::DockerEngine::new(Path::new("/nonexistent/docker.sock"));
    let spec = HealerSpec::from_config(&config.probes[0], &docker, Vec::new()).unwrap();
    match &spec.action {
        HealAction::SystemdRestart { unit, timeout, .. } => {
            assert_eq!((unit.as_str(), timeout.as_secs()), ("nginx.service", 20));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn systemd_fields_are_refused_at_their_key() {
    const UNIT: &str = "[[probe]]\nname = \"a\"\nkind = \"systemd_unit\"\n";
    let cases: Vec<(String, &str)> = vec![
        (UNIT.into(), "t.toml:3:8: probe \"a\": systemd_unit probes need `unit`"),
        (
            format!("{UNIT}unit = \"nginx\"\n"),
            "t.toml:4:8: probe \"a\": invalid unit name \"nginx\": it has no unit type suffix (expected one of .service, .socket",
        ),
        (
            format!("{UNIT}unit = \"nginx.daemon\"\n"),
            "t.toml:4:8: probe \"a\": invalid unit name \"nginx.daemon\": it has no unit type suffix",
        ),
        (
            format!("{UNIT}unit = \"ng inx.service\"\n"),
            "t.toml:4:8: probe \"a\": invalid unit name \"ng inx.service\": it holds ' '",
        ),
        (
            format!("{UNIT}unit = \"../../etc/passwd.service\"\n"),
            "t.toml:4:8: probe \"a\": invalid unit name \"../../etc/passwd.service\": it holds '/'",
        ),
        (
            format!("{UNIT}unit = \"getty@.service\"\n"),
            "t.toml:4:8: probe \"a\": invalid unit name \"getty@.service\": it is a template",
        ),
        (
            format!("{UNIT}unit = \"{}.service\"\n", "x".repeat(300)),
            "t.toml:4:8: probe \"a\": invalid unit name",
        ),
        (
            format!("{UNIT}unit = \"\"\n"),
            "t.toml:4:8: probe \"a\": invalid unit name \"\": it is empty",
        ),
        (
            format!("{UNIT}unit = \"a.service\"\nactive_states = []\n"),
            "t.toml:5:17: probe \"a\": active_states needs at least one state",
        ),
        (
            format!("{UNIT}unit = \"a.service\"\nactive_states = [\"running\"]\n"),
            "t.toml:5:18: unknown variant `running`, expected one of `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`",
        ),
        (
            format!("{UNIT}unit = \"a.service\"\ncontainer = \"web\"\n"),
            "t.toml:5:13: probe \"a\": `container` does not apply to systemd_unit probes",
        ),
        (
            format!("{UNIT}unit = \"a.service\"\nheal = {{ action = \"systemd_restart\", unit = \"b\" }}\n"),
            "t.toml:5:45: probe \"a\": invalid unit name \"b\": it has no unit type suffix",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nunit = \"a.service\"\n".into(),
            "t.toml:5:8: probe \"a\": `unit` does not apply to tcp probes",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nheal = { action = \"systemd_restart\" }\n".into(),
            "t.toml:5:8: probe \"a\": heal action systemd_restart needs `unit` (or a systemd_unit probe)",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nheal = { action = \"exec\", command = [\"/bin/true\"], unit = \"a.service\" }\n".into(),
            "t.toml:5:59: probe \"a\": heal `unit` applies to the systemd_restart action only",
        ),
        (
            format!("{UNIT}unit = \"a.service\"\nheal = {{ action = \"systemctl\" }}\n"),
            "t.toml:5:19: unknown variant `systemctl`, expected one of `docker_restart`, `exec`, `systemd_restart`",
        ),
    ];
    for (source, expected) in cases {
        let err = parse(&source).expect_err(&source);
        assert!(
            err.starts_with(expected),
            "source {source:?}\n  got:  {err}\n  want: {expected}"
        );
    }
}
