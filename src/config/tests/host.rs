//! `heartbeat`, `disk`, `memory` and `load` probes as the loader reads them: the issue's own
//! text accepted as written, and every new field's mistakes placed at file:line:col.

use std::path::Path;
use std::time::Duration;

use crate::probe::config::{Amount, LoadAverage};
use crate::probe::{AnyProbe, ProbeKind};

fn parse(source: &str) -> Result<crate::config::Config, String> {
    crate::config::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
}

/// The probes of issue 15 this branch runs, exactly as the issue writes them.
const ISSUE_15_PROBES: &str = r#"
[[probe]]
name = "backup"
kind = "heartbeat"
every = "1d"
grace = "1h"

[[probe]]
name = "root-disk"
kind = "disk"
path = "/"
max_used_percent = 90
"#;

#[test]
fn the_issue_probes_are_accepted_as_written() {
    let config = parse(ISSUE_15_PROBES).unwrap();
    let docker = crate::docker::DockerEngine::new(Path::new("/nonexistent/docker.sock"));
    let kinds: Vec<ProbeKind> = config.probes.iter().map(|p| p.kind()).collect();
    assert_eq!(kinds, [ProbeKind::Heartbeat, ProbeKind::Disk]);
    match AnyProbe::from_config(&config.probes[0], &docker) {
        Some(AnyProbe::Heartbeat(p)) => {
            assert_eq!(p.every, Duration::from_secs(86_400));
            assert_eq!(p.grace, Duration::from_secs(3600));
        }
        other => panic!("{other:?}"),
    }
    match AnyProbe::from_config(&config.probes[1], &docker) {
        Some(AnyProbe::Disk(p)) => {
            assert_eq!(p.path, Path::new("/"));
            assert_eq!(p.max_used_percent, Some(90.0));
            assert_eq!(p.max_inodes_percent, None);
        }
        other => panic!("{other:?}"),
    }
    let more = parse(
        "[[probe]]\nname = \"m\"\nkind = \"memory\"\nmin_available = \"10%\"\n\
         [[probe]]\nname = \"m2\"\nkind = \"memory\"\nmin_available = \"512MiB\"\n\
         [[probe]]\nname = \"l\"\nkind = \"load\"\nmax_load_per_core = 2\nload_average = \"15m\"\n\
         [[probe]]\nname = \"hb\"\nkind = \"heartbeat\"\nevery = \"5m\"\ntoken = \"s3cret\"\n",
    )
    .unwrap();
    assert_eq!(
        more.probes[0].min_available.as_ref().map(|a| *a.get_ref()),
        Some(Amount::Percent(10.0))
    );
    assert_eq!(
        more.probes[1].min_available.as_ref().map(|a| *a.get_ref()),
        Some(Amount::Bytes(crate::units::ByteSize(512 << 20)))
    );
    assert_eq!(
        more.probes[2].load_average.as_ref().map(|a| *a.get_ref()),
        Some(LoadAverage::Fifteen)
    );
    match AnyProbe::from_config(&more.probes[3], &docker) {
        Some(AnyProbe::Heartbeat(p)) => assert_eq!(p.grace, Duration::from_secs(60), "default"),
        other => panic!("{other:?}"),
    }
    assert_eq!(more.probes[3].heartbeat_tokens(), ["s3cret"]);
}

#[test]
fn new_fields_are_placed_at_their_key() {
    let probe =
        |kind: &str, rest: &str| format!("[[probe]]\nname = \"a\"\nkind = \"{kind}\"\n{rest}");
    let cases: Vec<(String, &str)> = vec![
        (
            probe("heartbeat", ""),
            "t.toml:3:8: probe \"a\": heartbeat probes need `every`",
        ),
        (
            probe("heartbeat", "every = \"0s\"\n"),
            "t.toml:4:9: probe \"a\": every must be above zero",
        ),
        (
            probe("heartbeat", "every = \"soon\"\n"),
            "t.toml:4:9: invalid duration \"soon\"",
        ),
        (
            probe("heartbeat", "every = \"1d\"\ngrace = \"400d\"\n"),
            "t.toml:4:9: probe \"a\": every + grace must be at most 366 days",
        ),
        (
            probe("heartbeat", "every = \"1d\"\ninterval = \"1m\"\n"),
            "t.toml:5:12: probe \"a\": `interval` does not apply to heartbeat probes",
        ),
        (
            probe("heartbeat", "every = \"1d\"\ntimeout = \"1s\"\n"),
            "t.toml:5:11: probe \"a\": `timeout` does not apply to heartbeat probes",
        ),
        (
            probe("heartbeat", "every = \"1d\"\nfail_after = 2\n"),
            "t.toml:5:14: probe \"a\": `fail_after` does not apply to heartbeat probes",
        ),
        (
            probe("heartbeat", "every = \"1d\"\ntoken = \" \"\n"),
            "t.toml:5:9: probe \"a\": token is empty",
        ),
        (
            probe(
                "heartbeat",
                "every = \"1d\"\ntoken_file = \"/nonexistent/beat\"\n",
            ),
            "t.toml:5:14: probe \"a\": cannot read token_file /nonexistent/beat",
        ),
        (
            probe("tcp", "address = \"h:1\"\nevery = \"1d\"\n"),
            "t.toml:5:9: probe \"a\": `every` does not apply to tcp probes",
        ),
        (
            probe("disk", "max_used_percent = 90\n"),
            "t.toml:3:8: probe \"a\": disk probes need `path`",
        ),
        (
            probe("disk", "path = \"data\"\nmax_used_percent = 90\n"),
            "t.toml:4:8: probe \"a\": path \"data\" must be absolute",
        ),
        (
            probe("disk", "path = \"/\"\n"),
            "t.toml:3:8: probe \"a\": disk probes need `max_used_percent` or `max_inodes_percent`",
        ),
        (
            probe("disk", "path = \"/\"\nmax_used_percent = 101\n"),
            "t.toml:5:20: probe \"a\": max_used_percent is a percentage, 0 to 100",
        ),
        (
            probe("disk", "path = \"/\"\nmax_inodes_percent = -1\n"),
            "t.toml:5:22: probe \"a\": max_inodes_percent is a percentage, 0 to 100",
        ),
        (
            probe("memory", "path = \"/\"\nmin_available = \"1GiB\"\n"),
            "t.toml:4:8: probe \"a\": `path` does not apply to memory probes",
        ),
        (
            probe("memory", ""),
            "t.toml:3:8: probe \"a\": memory probes need `min_available`",
        ),
        (
            probe("memory", "min_available = \"120%\"\n"),
            "t.toml:4:17: probe \"a\": min_available as a percentage is above 0 and at most 100",
        ),
        (
            probe("memory", "min_available = \"lots\"\n"),
            "t.toml:4:17: invalid size \"lots\"",
        ),
        (
            probe("memory", "min_available = \"x%\"\n"),
            "t.toml:4:17: invalid percentage \"x%\"",
        ),
        (
            probe("memory", "min_available = 0\n"),
            "t.toml:4:17: probe \"a\": min_available must be above zero",
        ),
        (
            probe("load", ""),
            "t.toml:3:8: probe \"a\": load probes need `max_load_per_core`",
        ),
        (
            probe("load", "max_load_per_core = 0\n"),
            "t.toml:4:21: probe \"a\": max_load_per_core must be above zero",
        ),
        (
            probe("load", "max_load_per_core = 1\nload_average = \"10m\"\n"),
            "t.toml:5:16: unknown variant `10m`, expected one of `1m`, `5m`, `15m`",
        ),
    ];
    for (source, want) in &cases {
        let err = parse(source).expect_err(source);
        assert!(err.starts_with(want), "{source}\n got: {err}\nwant: {want}");
    }
}

/// `[heartbeat]` (sentineld's own check-in) exactly as issue 15 writes it.
#[test]
fn the_issue_heartbeat_section_is_accepted_as_written() {
    let config =
        parse("[heartbeat]\nurl = \"https://hc-ping.example/UUID\"\ninterval = \"1m\"\n").unwrap();
    let settings = config.heartbeat.unwrap().settings().unwrap();
    assert_eq!(settings.url, "https://hc-ping.example/UUID");
    assert_eq!(settings.interval, Duration::from_secs(60));
    assert_eq!(settings.method, crate::checkin::CheckinMethod::Post);
    assert_eq!(settings.timeout, Duration::from_secs(10));
    assert!(
        parse("").unwrap().heartbeat.is_none(),
        "absent: no check-in"
    );
    let get = parse("[heartbeat]\nurl = \"http://127.0.0.1:1/x\"\nmethod = \"GET\"\nheaders = { X-Host = \"a\" }\n")
        .unwrap()
        .heartbeat
        .unwrap()
        .settings()
        .unwrap();
    assert_eq!(get.method, crate::checkin::CheckinMethod::Get);
    assert_eq!(get.headers, [("X-Host".to_string(), "a".to_string())]);
}

#[test]
fn heartbeat_section_mistakes_are_placed_at_their_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[heartbeat]\ninterval = \"1m\"\n",
            "t.toml:1:1: heartbeat: [heartbeat] needs `url`",
        ),
        (
            "[heartbeat]\nurl = \"ftp://x/\"\n",
            "t.toml:2:7: heartbeat: unsupported URL scheme",
        ),
        (
            "[heartbeat]\nurl = \"http://x/\"\ninterval = \"500ms\"\n",
            "t.toml:3:12: heartbeat: interval 500ms must be at least 1s",
        ),
        (
            "[heartbeat]\nurl = \"http://x/\"\ninterval = \"5s\"\ntimeout = \"6s\"\n",
            "t.toml:4:11: heartbeat: timeout 6s must be above zero and at most the interval (5s)",
        ),
        (
            "[heartbeat]\nurl = \"http://x/\"\nmethod = \"PUT\"\n",
            "t.toml:3:10: unknown variant `PUT`, expected `POST` or `GET`",
        ),
        (
            "[heartbeat]\nurl = \"http://x/\"\nheaders = { \"bad header\" = \"v\" }\n",
            "t.toml:3:11: heartbeat: invalid header \"bad header: v\"",
        ),
        (
            "[heartbeat]\nurl = \"http://x/\"\ntoken_file = \"/nonexistent/t\"\n",
            "t.toml:3:14: heartbeat: cannot read token_file /nonexistent/t",
        ),
        (
            "[heartbeat]\nurl = \"http://x/\"\nurl_file = \"/nonexistent/u\"\n",
            "t.toml:3:12: heartbeat: cannot read url_file /nonexistent/u",
        ),
        (
            "[heartbeat]\nurl = \"http://x/\"\nurll = 1\n",
            "t.toml:3:1: unknown field `urll`",
        ),
    ];
    for (source, want) in cases {
        let err = parse(source).expect_err(source);
        assert!(err.starts_with(want), "{source}\n got: {err}\nwant: {want}");
    }
}
