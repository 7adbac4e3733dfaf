//! `[drill]` sections as the loader reads them.

use std::path::Path;
use std::time::Duration;

use crate::drill::Expectation;

fn parse(source: &str) -> Result<crate::config::Config, String> {
    crate::config::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
}

const BASE: &str = "[[probe]]\nname = \"sql\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nheal = { action = \"exec\", command = [\"true\"] }\n\n[[tenants.alert]]\nname = \"p95\"\nwhen = \"p95\"\nthreshold = 500\n\n[[chaos.profile]]\nname = \"kill\"\ntarget = { container = \"pg\" }\nfaults = [{ kind = \"container\", action = \"kill\" }]\n\n";

#[test]
fn a_drill_parses_into_steps_and_expectations() {
    let source = format!(
        "{BASE}[[drill]]\nname = \"gameday\"\n\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{{ probe = \"sql\", up_within = \"30s\" }}, {{ heal = \"sql\", within = \"10s\" }}]\n\n[[drill.step]]\ntarget = {{ interface = \"eth9\" }}\nfaults = [{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }}]\nduration = \"2m\"\nexpect = [{{ tenant_alert = \"p95\", fires_within = \"60s\" }}, {{ probe = \"sql\", stays_up = true }}]\n"
    );
    let config = parse(&source).unwrap();
    let drill = config.drills[0].drill();
    assert_eq!(drill.name, "gameday");
    assert_eq!(drill.steps.len(), 2);
    assert_eq!(drill.steps[0].experiment.profile.as_deref(), Some("kill"));
    assert_eq!(
        drill.steps[0].expect,
        [
            Expectation::ProbeUp {
                probe: "sql".into(),
                within: Duration::from_secs(30)
            },
            Expectation::Heal {
                probe: "sql".into(),
                within: Duration::from_secs(10)
            }
        ]
    );
    assert!(drill.steps[1].experiment.spec.is_some());
    assert_eq!(drill.probes(), ["sql"]);
    assert_eq!(drill.alerts(), ["p95"]);
}

#[test]
fn the_commented_example_drill_parses_when_uncommented() {
    // The commented block from the profile on: the chaos profile and the drill that runs it.
    let example = crate::config::EXAMPLE_CONFIG;
    let start = example
        .find("# [[chaos.profile]]")
        .expect("example profile");
    let (head, tail) = example.split_at(start);
    let uncommented: String = tail
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with("Drills") && !l.starts_with("`sentinelctl"))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = parse(&format!("{head}{uncommented}")).unwrap();
    let drill = config.drills[0].drill();
    assert_eq!(drill.name, "gameday");
    assert_eq!(
        drill.steps[0].experiment.profile.as_deref(),
        Some("slow-api")
    );
}

#[test]
fn drill_errors_point_at_file_line_column() {
    let at = |line: usize| format!("t.toml:{}:", BASE.lines().count() + line);
    let cases: Vec<(String, String)> = vec![
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"nope\"\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
            format!("{}11: drill \"g\": no chaos profile named \"nope\"", at(4)),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"api\", up_within = \"30s\" }]\n".into(),
            format!("{}21: drill \"g\": \"api\" names no configured probe", at(5)),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ tenant_alert = \"p99\", fires_within = \"1m\" }]\n".into(),
            format!("{}28: drill \"g\": \"p99\" names no [[tenants.alert]] rule", at(5)),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", within = \"1m\" }]\n".into(),
            format!("{}11: drill \"g\": an expectation is one of", at(5)),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", up_whithin = \"1m\" }]\n".into(),
            at(5),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
            format!("{}10: drill \"g\": a step needs profile = NAME or inline faults", at(4)),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
            format!("{}10: drill \"g\": netem needs target.interface", at(4)),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = []\n".into(),
            format!("{}10: drill \"g\": a step needs at least one expectation", at(5)),
        ),
        (
            "[[drill]]\nname = \"g\"\nstep = []\n".into(),
            format!("{}8: drill \"g\" needs at least one [[drill.step]]", at(3)),
        ),
        (
            "[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", stays_up = true }]\n[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"kill\"\nexpect = [{ probe = \"sql\", stays_up = true }]\n".into(),
            format!("{}8: duplicate drill \"g\"", at(7)),
        ),
    ];
    for (drill, expected) in cases {
        let source = format!("{BASE}{drill}");
        let err = parse(&source).expect_err(&drill);
        assert!(
            err.starts_with(&expected),
            "drill {drill:?}\n  got:  {err}\n  want: {expected}"
        );
    }
}

/// Two probes named like the containers a drill picks from.
const TARGETS_BASE: &str = "[[probe]]\nname = \"api-1\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nheal = { action = \"exec\", command = [\"true\"] }\n\n[[probe]]\nname = \"api-2\"\nkind = \"tcp\"\naddress = \"127.0.0.1:2\"\n\n";

#[test]
fn a_scheduled_drill_with_targets_and_an_objective() {
    let source = format!(
        "{TARGETS_BASE}[[drill]]\nname = \"nightly\"\nschedule = \"*/30 * * * * *\"\ntimezone = \"Europe/Berlin\"\ntargets = [\"api-1\", \"api-2\"]\nobjective = {{ recover_within = \"30s\", detect_within = \"5s\" }}\n\n[[drill.step]]\ntarget = {{ container = \"{{target}}\" }}\nfaults = [{{ kind = \"container\", action = \"kill\" }}]\nexpect = [{{ probe = \"{{target}}\", up_within = \"1m\" }}]\n"
    );
    let config = parse(&source).unwrap();
    let drill = config.drills[0].drill();
    assert_eq!(drill.schedule.as_deref(), Some("*/30 * * * * *"));
    assert_eq!(drill.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(drill.targets, ["api-1", "api-2"]);
    let objective = drill.objective.unwrap();
    assert_eq!(objective.recover_within_ms, Some(30_000));
    assert_eq!(objective.detect_within_ms, Some(5_000));
    assert_eq!(objective.act_within_ms, None);
    assert_eq!(objective.describe(), "detect within 5s, recover within 30s");
    // the picked target goes wherever a step says {target}
    let picked = drill.for_target("api-2").unwrap();
    let spec = picked.steps[0].experiment.spec.as_ref().unwrap();
    assert_eq!(spec.target.describe(), "container api-2");
    assert_eq!(picked.probes(), ["api-2"]);
    assert_eq!(drill.probes(), ["{target}"]);
}

#[test]
fn schedule_targets_and_objective_errors_point_at_file_line_column() {
    let at = |line: usize| format!("t.toml:{}:", TARGETS_BASE.lines().count() + line);
    let step = "[[drill.step]]\ntarget = { container = \"{target}\" }\nfaults = [{ kind = \"container\", action = \"kill\" }]\nexpect = [{ probe = \"{target}\", up_within = \"1m\" }]\n";
    let plain = "[[drill.step]]\ntarget = { container = \"c\" }\nfaults = [{ kind = \"container\", action = \"kill\" }]\nexpect = [{ probe = \"api-1\", stays_up = true }]\n";
    let cases: Vec<(String, String)> = vec![
        (
            format!("[[drill]]\nname = \"g\"\nschedule = \"0 25 * * *\"\ntargets = [\"api-1\"]\n{step}"),
            format!("{}12: drill \"g\": invalid cron expression \"0 25 * * *\"", at(3)),
        ),
        (
            format!("[[drill]]\nname = \"g\"\nschedule = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"\ntargets = [\"api-1\"]\n{step}"),
            format!("{}12: drill \"g\": unknown time zone \"Mars/Olympus\"", at(4)),
        ),
        (
            format!("[[drill]]\nname = \"g\"\ntimezone = \"UTC\"\ntargets = [\"api-1\"]\n{step}"),
            format!("{}12: drill \"g\": timezone needs a schedule", at(3)),
        ),
        (
            format!("[[drill]]\nname = \"g\"\ntargets = []\n{step}"),
            format!("{}11: drill \"g\": targets lists at least one target", at(3)),
        ),
        (
            format!("[[drill]]\nname = \"g\"\ntargets = [\"api-1\", \"api-1\"]\n{step}"),
            format!("{}11: drill \"g\": target \"api-1\" is listed twice", at(3)),
        ),
        (
            format!("[[drill]]\nname = \"g\"\ntargets = [\"api-1\"]\n{plain}"),
            format!("{}11: drill \"g\": targets are listed but no step says {{target}}", at(3)),
        ),
        (
            format!("[[drill]]\nname = \"g\"\n{step}"),
            format!("{}8: drill \"g\": a step says {{target}} but the drill lists no targets", at(2)),
        ),
        (
            // a target with no probe of its name: the expectation says which
            format!("[[drill]]\nname = \"g\"\ntargets = [\"api-1\", \"api-3\"]\n{step}"),
            format!(
                "{}21: drill \"g\": \"api-3\" (\"{{target}}\" with target \"api-3\") names no configured probe",
                at(7)
            ),
        ),
        (
            format!("[[drill]]\nname = \"g\"\ntargets = [\"api-1\"]\nobjective = {{ recover_in = \"1s\" }}\n{step}"),
            at(4),
        ),
        (
            format!("[[drill]]\nname = \"g\"\ntargets = [\"api-1\"]\nobjective = {{}}\n{step}"),
            format!("{}13: drill \"g\": objective sets at least one of", at(4)),
        ),
        (
            format!("[[drill]]\nname = \"g\"\nobjective = {{ recover_within = \"10s\" }}\n{plain}"),
            format!("{}13: drill \"g\": an objective needs a step expecting {{ probe = NAME, up_within", at(3)),
        ),
    ];
    for (drill, expected) in cases {
        let source = format!("{TARGETS_BASE}{drill}");
        let err = parse(&source).expect_err(&drill);
        assert!(
            err.starts_with(&expected),
            "drill {drill:?}\n  got:  {err}\n  want: {expected}"
        );
    }
}
