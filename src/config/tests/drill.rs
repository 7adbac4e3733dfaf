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
