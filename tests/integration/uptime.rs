//! Uptime from a real daemon: an exec probe toggled Down and Up, `sentinelctl uptime` in its four
//! formats, the rollups surviving a restart, and the status page's 90-day bar per probe.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{text, wait_for, Daemon, Sandbox};

fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The probe's 24h figures once its first incident has recovered in the rollups.
fn wait_recovered(daemon: &Daemon) -> serde_json::Value {
    wait_for(
        Duration::from_secs(10),
        "flappy's recovery in the uptime report",
        || {
            let report = daemon.ctl_json(&["uptime", "--probe", "flappy"]);
            let day = report["probes"][0]["windows"][0].clone();
            (day["incidents"] == 1 && day["ttr_median_ms"].is_i64()).then_some(report)
        },
    )
}

#[test]
fn uptime_from_a_probe_toggled_down_and_up_in_every_format_and_on_the_status_page() {
    let sandbox = Sandbox::new();
    let marker = sandbox.path().join("flappy-alive");
    std::fs::write(&marker, "").unwrap();
    let exec = |name: &str, command: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"{command}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfail_after = 1\nrecover_after = 1\n\n"
        )
    };
    let probes = format!(
        "{}{}",
        exec("flappy", &format!("test -f {}", marker.display())),
        exec("steady", "true")
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("flappy", "up");
    daemon.wait_state("steady", "up");
    std::fs::remove_file(&marker).unwrap();
    daemon.wait_state("flappy", "down");
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&marker, "").unwrap();
    daemon.wait_state("flappy", "up");

    // json: the four windows, stable field names, the outage in each
    let report = wait_recovered(&daemon);
    let names: Vec<&str> = report["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["24h", "7d", "30d", "90d"]);
    for window in report["probes"][0]["windows"].as_array().unwrap() {
        let availability = window["availability"].as_f64().unwrap();
        assert!(availability > 0.0 && availability < 1.0, "{window}");
        let down = window["down_ms"].as_i64().unwrap();
        assert!((1000..30_000).contains(&down), "{window}");
        let ttr = window["ttr_median_ms"].as_i64().unwrap();
        assert!(ttr >= down && ttr == window["ttr_p95_ms"], "{window}");
        assert_eq!(window["incidents"], 1);
        assert_eq!(window["ongoing"], 0);
        assert_eq!(window["excluded_ms"], 0);
        assert!(
            window["unknown_ms"].as_i64().unwrap() > 0,
            "no data before the start"
        );
    }
    let format = |name: &str| {
        let output = daemon.ctl(&["uptime", "--format", name]);
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));
        text(&output.stdout)
    };
    let json: serde_json::Value = serde_json::from_str(&format("json")).unwrap();
    assert_eq!(json["probes"].as_array().unwrap().len(), 2);

    let csv = format("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("probe,window,from,to,availability_percent,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 1 + 2 * 4, "{csv}");
    let flappy = lines.iter().find(|l| l.starts_with("flappy,24h,")).unwrap();
    let fields: Vec<&str> = flappy.split(',').collect();
    assert_eq!(fields.len(), 13, "{flappy}");
    assert_eq!(fields[9], "1", "incidents: {flappy}");
    let steady = lines.iter().find(|l| l.starts_with("steady,90d,")).unwrap();
    assert!(steady.contains(",100.0000,"), "{steady}");

    let markdown = format("markdown");
    assert!(
        markdown.starts_with("| PROBE | WINDOW | AVAILABILITY |"),
        "{markdown}"
    );
    assert!(
        markdown.lines().nth(1).unwrap().starts_with("|---|"),
        "{markdown}"
    );
    assert!(markdown.contains("| flappy | 24h | "), "{markdown}");
    assert!(
        markdown.contains("| steady | 90d | 100.000% |"),
        "{markdown}"
    );

    let table = format("table");
    assert!(table.starts_with("PROBE"), "{table}");
    assert_eq!(table.lines().count(), 1 + 2 * 4, "{table}");

    let one = daemon.ctl_json(&["uptime", "--since", "1h", "--probe", "steady"]);
    assert_eq!(one["windows"][0]["name"], "1h");
    assert_eq!(one["probes"].as_array().unwrap().len(), 1);
    assert_eq!(one["probes"][0]["windows"][0]["availability"], 1.0);

    let unknown = daemon.ctl(&["uptime", "--probe", "nope"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no uptime data for probe"),
        "{}",
        text(&unknown.stderr)
    );
    let bad = daemon.ctl(&["uptime", "--since", "soon"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("invalid since"),
        "{}",
        text(&bad.stderr)
    );

    // the status page: 90 cells per probe, today's coloured by its figure
    let page = get(sandbox.port, "/");
    for probe in ["flappy", "steady"] {
        let card = page
            .split(&format!("data-probe=\"{probe}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("{probe} not on the page"));
        let card = &card[..card.find("</article>").unwrap()];
        assert_eq!(card.matches("<span class=\"day ").count(), 90, "{card}");
        let today = card.rsplit("<span class=\"day ").next().unwrap();
        assert!(!today.starts_with("none"), "today has data: {today}");
        assert!(card.matches("class=\"day none\"").count() >= 89, "{card}");
    }
    assert!(!page.contains("<script"));

    // the rollups live in the journal: after a restart the incident is still counted, and the
    // time sentineld was stopped is no data
    daemon.stop();
    std::thread::sleep(Duration::from_millis(1000));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("flappy", "up");
    let after = wait_recovered(&daemon);
    assert_eq!(after["probes"][0]["windows"][0]["incidents"], 1);
    // from the first report on: up, then at least the second sentineld was stopped unknown
    let since = report["now"].as_i64().unwrap().to_string();
    let later = daemon.ctl_json(&["uptime", "--since", &since, "--probe", "flappy"]);
    let window = &later["probes"][0]["windows"][0];
    assert!(window["unknown_ms"].as_i64().unwrap() >= 1000, "{window}");
    assert_eq!(window["down_ms"], 0, "{window}");
    assert_eq!(window["availability"], 1.0, "{window}");
    daemon.stop();
}
