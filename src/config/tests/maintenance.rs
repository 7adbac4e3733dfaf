//! Issue 14's `[[maintenance]]` and the probes' `labels`: accepted as written, and each
//! mistake at its file:line:col.

use super::parse_str;

const PROBES: &str = r#"[[probe]]
name = "web"
kind = "tcp"
address = "127.0.0.1:1"
labels = { team = "payments" }
"#;

#[test]
fn a_maintenance_window_is_accepted_as_written() {
    let config = parse_str(&format!(
        r#"{PROBES}
[[maintenance]]
name = "nightly"
schedule = "0 2 * * SUN"
timezone = "Europe/Berlin"
duration = "1h"
probes = ["web"]
labels = {{ team = "payments" }}
reason = "weekly patching"

[[maintenance]]
name = "utc"
schedule = "*/30 * * * *"
duration = "5m"
labels = {{ team = "payments" }}
"#
    ))
    .unwrap();
    assert_eq!(config.maintenance.len(), 2);
    let nightly = &config.maintenance[0];
    assert_eq!(nightly.timezone(), "Europe/Berlin");
    assert_eq!(nightly.reason(), "weekly patching");
    assert!(nightly.schedule().is_some());
    // the time zone defaults to UTC, the reason to the window's name
    assert_eq!(config.maintenance[1].timezone(), "UTC");
    assert_eq!(config.maintenance[1].reason(), "scheduled maintenance utc");
    assert_eq!(
        config.probes[0].label_map().get("team").map(String::as_str),
        Some("payments")
    );
}

#[test]
fn maintenance_mistakes_point_at_file_line_column() {
    let entry = "\n[[maintenance]]\nname = \"m\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{PROBES}{entry}schedule = \"0 25 * * *\"\nduration = \"1h\"\nprobes = [\"web\"]\n"),
            "t.toml:9:12: maintenance \"m\": invalid cron expression \"0 25 * * *\"",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 0 2 * * *\"\nduration = \"1h\"\nprobes = [\"web\"]\n"),
            "t.toml:9:12: maintenance \"m\": invalid cron expression \"0 0 2 * * *\"",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\ntimezone = \"Mars/Olympus\"\nduration = \"1h\"\nprobes = [\"web\"]\n"),
            "t.toml:10:12: maintenance \"m\": unknown time zone \"Mars/Olympus\": use an IANA name",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"0s\"\nprobes = [\"web\"]\n"),
            "t.toml:10:12: maintenance \"m\": duration 0s must be at least 1m and at most 7days",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"30d\"\nprobes = [\"web\"]\n"),
            "t.toml:10:12: maintenance \"m\": duration 30days must be at least 1m and at most 7days",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"1h\"\nprobes = [\"db\"]\n"),
            "t.toml:11:10: maintenance \"m\": probes names an unknown probe: \"db\"",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"1h\"\n"),
            "t.toml:8:8: maintenance \"m\": the window covers nothing",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"1h\"\nprobes = []\n"),
            "t.toml:11:10: maintenance \"m\": the window covers nothing",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"1h\"\nlabels = {{ \"a b\" = \"x\" }}\n"),
            "t.toml:11:10: maintenance \"m\": invalid label name \"a b\"",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"1h\"\nprobes = [\"web\"]\nreason = \" \"\n"),
            "t.toml:12:10: maintenance \"m\": reason must say something",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"1h\"\nprobes = [\"web\"]\nwhen = \"now\"\n"),
            "t.toml:12:1: unknown field `when`",
        ),
        (
            format!("{PROBES}{entry}schedule = \"0 2 * * *\"\nduration = \"1h\"\nprobes = [\"web\"]\n{entry}schedule = \"0 3 * * *\"\nduration = \"1h\"\nprobes = [\"web\"]\n"),
            "t.toml:14:8: duplicate maintenance name \"m\"",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nlabels = { team = \"\" }\n".to_string(),
            "t.toml:5:10: probe \"a\": label team has an empty or overlong value",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nlabels = { \"x y\" = \"1\" }\n".to_string(),
            "t.toml:5:10: probe \"a\": invalid label name \"x y\"",
        ),
    ];
    for (source, want) in cases {
        let err = parse_str(&source).unwrap_err();
        assert!(
            err.starts_with(want),
            "\n{source}\ngot:  {err}\nwant: {want}"
        );
    }
}
