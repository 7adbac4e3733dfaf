//! The public listener shows only what its owner chose: `/metrics` and the status page off (404)
//! or behind read tokens (separate from ingest tokens), no URL credentials or query strings on the
//! status page, a page that reads only new journal rows, and AI summaries only for root or the
//! socket's group.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{ctl_as_nobody, free_port, require_root, text, wait_for, Daemon, Sandbox};
use crate::notify::Receiver;
use crate::tenants::post_events;

/// One GET on a fresh connection with extra header lines: (status, head, body).
fn get(port: u16, path: &str, headers: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

#[test]
fn metrics_and_status_page_turned_off_answer_404() {
    let sandbox = Sandbox::new();
    let text = sandbox.config("", "").replace(
        "[http]\n",
        "[http]\nmetrics = \"off\"\nstatus_page = \"off\"\n",
    );
    sandbox.write_config(&text);
    let daemon = Daemon::start(&sandbox, |_| {});
    for path in ["/metrics", "/", "/status"] {
        let (status, _, body) = get(sandbox.port, path, "");
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("sentinel_"), "{path}: {body}");
    }
    assert_eq!(get(sandbox.port, "/healthz", "").0, 200);
    assert!(daemon.stop().success());
}

#[test]
fn read_tokens_open_the_read_routes_and_nothing_else() {
    let sandbox = Sandbox::new();
    let read_file = sandbox.path().join("read-tokens");
    std::fs::write(&read_file, "READ-TOKEN-1\n").unwrap();
    let config = sandbox
        .config(
            "",
            "[tenants]\nenabled = true\n[tenants.ingest]\ntokens = [\"INGEST-TOKEN\"]\n",
        )
        .replace(
            "[http]\n",
            &format!(
                "[http]\nmetrics = \"token\"\nstatus_page = \"token\"\nread_token_file = \"{}\"\n",
                read_file.display()
            ),
        );
    sandbox.write_config(&config);
    let daemon = Daemon::start(&sandbox, |_| {});
    let port = sandbox.port;

    for path in ["/metrics", "/"] {
        let (status, head, _) = get(port, path, "");
        assert_eq!(status, 401, "{path} without a token");
        assert!(head.contains("www-authenticate: Bearer"), "{head}");
        assert_eq!(
            get(port, path, &bearer("INGEST-TOKEN")).0,
            401,
            "{path}: an ingest token is no read token"
        );
        assert_eq!(get(port, path, &bearer("READ-TOKEN-1")).0, 200, "{path}");
    }
    let (_, _, metrics) = get(port, "/metrics", &bearer("READ-TOKEN-1"));
    assert!(metrics.contains("sentinel_build_info{"), "{metrics}");

    let event = br#"{"tenant_id":"acme","endpoint":"/x","status_code":200,"latency_ms":1}"#;
    let auth = |token: &str| format!("\r\nAuthorization: Bearer {token}");
    assert_eq!(
        post_events(port, &auth("READ-TOKEN-1"), event).0,
        401,
        "a read token does not allow ingest"
    );
    assert_eq!(post_events(port, &auth("INGEST-TOKEN"), event).0, 200);

    // Rotating the read token file: the old token stops opening the page at the reload.
    let temp = read_file.with_extension("new");
    std::fs::write(&temp, "READ-TOKEN-2\n").unwrap();
    std::fs::rename(&temp, &read_file).unwrap();
    let output = daemon.ctl(&["reload"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    wait_for(Duration::from_secs(10), "the rotated read token", || {
        (get(port, "/", &bearer("READ-TOKEN-2")).0 == 200).then_some(())
    });
    assert_eq!(get(port, "/", &bearer("READ-TOKEN-1")).0, 401);
    let applied = daemon.events("config_applied");
    assert!(
        applied.iter().any(|e| e["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "read tokens (from read_token_file) changed")),
        "{applied:?}"
    );
    assert!(!daemon.stderr().contains("READ-TOKEN"));
    assert!(daemon.stop().success());
}

#[test]
fn the_status_page_shows_no_url_credentials_or_query_strings() {
    let sandbox = Sandbox::new();
    // A TCP server that accepts and hangs up: the https probe fails its TLS handshake.
    let tls_port = free_port();
    let hang_up = TcpListener::bind(("127.0.0.1", tls_port)).unwrap();
    std::thread::spawn(move || {
        for stream in hang_up.incoming() {
            drop(stream);
        }
    });
    // A plain http receiver that records the Authorization header the probe sends.
    let basic_port = free_port();
    let receiver = Receiver::start(basic_port);
    let probes = format!(
        "[[probe]]\nname = \"secure\"\nkind = \"http\"\nurl = \"https://user:pa55word@127.0.0.1:{tls_port}/path?key=QUERY-SECRET\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\n\n[[probe]]\nname = \"basic\"\nkind = \"http\"\nurl = \"http://user:p%40ss@127.0.0.1:{basic_port}/basic?key=QUERY-SECRET\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\n\n[[probe]]\nname = \"script\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"exit 0\", \"--password=ARG-SECRET\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\n"
    );
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("secure", "down");
    daemon.wait_state("basic", "up");
    daemon.wait_state("script", "up");

    let (status, _, page) = get(sandbox.port, "/", "");
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("GET https://127.0.0.1:{tls_port}/path")),
        "https stays https on the page:\n{page}"
    );
    assert!(page.contains(&format!("GET http://127.0.0.1:{basic_port}/basic")));
    // an exec probe's arguments may hold a password: the page counts them
    assert!(page.contains("/bin/sh (3 arguments)"), "{page}");
    assert!(
        page.contains(&format!("TLS handshake with 127.0.0.1:{tls_port}")),
        "the failure is shown, without credentials:\n{page}"
    );
    // The credentials still work: they go out as HTTP Basic auth, not in the Host header.
    let asked = wait_for(Duration::from_secs(5), "a probe request", || {
        receiver.at("/basic?key=QUERY-SECRET").pop()
    });
    assert_eq!(asked.authorization.as_deref(), Some("Basic dXNlcjpwQHNz"));

    let status_text = text(&daemon.ctl(&["status"]).stdout);
    let events = text(&daemon.ctl(&["--json", "events", "--limit", "1000"]).stdout);
    for (what, shown) in [
        ("page", &page),
        ("status", &status_text),
        ("events", &events),
    ] {
        for secret in [
            "pa55word",
            "user:",
            "p%40ss",
            "QUERY-SECRET",
            "key=",
            "ARG-SECRET",
        ] {
            assert!(!shown.contains(secret), "{what} shows {secret}:\n{shown}");
        }
    }
    assert!(daemon.stop().success());
}

/// `curl` over the control socket as `nobody` (uid 65534): the HTTP status it got.
fn curl_as_nobody(socket: &std::path::Path, path: &str) -> u16 {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
        ])
        .arg(socket)
        .arg(format!("http://sentineld{path}"))
        .uid(65534)
        .gid(65534)
        .output()
        .expect("curl (Debian package curl)");
    text(&output.stdout).trim().parse().unwrap()
}

#[test]
fn ai_summaries_need_root_or_the_socket_group_and_are_journaled() {
    if !require_root("ai_summaries_need_root_or_the_socket_group") {
        return;
    }
    let sandbox = Sandbox::new();
    // world-connectable so `nobody` gets in; group root so `nobody` is not a member
    let ai = "[ai]\nenabled = true\nprovider = \"ollama\"\nendpoint = \"http://127.0.0.1:9\"\nmodel = \"m\"\ntimeout = \"1s\"\n";
    sandbox.write_config(&sandbox.config("socket_group = \"root\"\nsocket_mode = \"0666\"", ai));
    let daemon = Daemon::start(&sandbox, |_| {});

    let analyze = ctl_as_nobody(&daemon.socket, &["analyze", "--summary"]);
    let said = text(&analyze.stdout);
    assert!(
        said.contains("AI summary unavailable: permission denied"),
        "{said}\n{}",
        text(&analyze.stderr)
    );
    assert_eq!(curl_as_nobody(&daemon.socket, "/v1/analyze/summary"), 403);
    assert_eq!(curl_as_nobody(&daemon.socket, "/v1/chaos/x1/summary"), 403);
    assert_eq!(
        curl_as_nobody(&daemon.socket, "/v1/analyze"),
        200,
        "reading stays open"
    );

    // root passes the check (the endpoint is down: 502 from the daemon, not 403)
    let root = daemon.ctl(&["--json", "analyze", "--summary"]);
    let value: serde_json::Value = serde_json::from_slice(&root.stdout).unwrap();
    let reason = value["ai_summary_error"].as_str().unwrap_or_default();
    assert!(!reason.contains("permission denied"), "{value}");

    let audit = wait_for(Duration::from_secs(5), "control_request events", || {
        let events = daemon.events("control_request");
        (events.len() >= 4).then_some(events)
    });
    let summary_calls: Vec<(i64, i64, String)> = audit
        .iter()
        .map(|e| {
            (
                e["uid"].as_i64().unwrap(),
                e["status"].as_i64().unwrap(),
                e["route"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        (65534, 403, "/v1/analyze/summary"),
        (65534, 403, "/v1/chaos/x1/summary"),
    ] {
        assert!(
            summary_calls
                .iter()
                .any(|(u, s, r)| (*u, *s, r.as_str()) == want),
            "{want:?} in {summary_calls:?}"
        );
    }
    assert!(
        summary_calls
            .iter()
            .any(|(u, s, r)| *u == 0 && *s != 403 && r == "/v1/analyze/summary"),
        "{summary_calls:?}"
    );
    assert!(audit.iter().all(|e| e["pid"].as_i64().unwrap() > 0));
    assert!(daemon.stop().success());
}

/// The journal rows the status page has read so far, from `/metrics`.
fn rows_read(port: u16) -> u64 {
    let (_, _, metrics) = get(port, "/metrics", "");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sentinel_status_page_journal_rows_read_total "))
        .unwrap_or_else(|| panic!("no rows-read counter in /metrics"))
        .parse()
        .unwrap()
}

#[test]
fn the_status_page_reads_only_new_journal_rows() {
    use sentinel::event::{Event, EventKind, FailureReason, ProbeState, Timestamp};
    const SEEDED: i64 = 100_000;
    let sandbox = Sandbox::new();
    // A journal with 100k probe transitions over the last six days, written before start.
    let state = sandbox.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut store =
        sentinel::journal::JournalStore::open(&state.join(sentinel::journal::DATABASE_FILE))
            .unwrap();
    let now = Timestamp::now().as_millis();
    let step = 6 * 24 * 3600 * 1000 / SEEDED;
    let events: Vec<Event> = (0..SEEDED)
        .map(|i| Event {
            at: Timestamp(now - (SEEDED - i) * step),
            kind: EventKind::ProbeTransition {
                probe: format!("old-{}", i % 7),
                from: ProbeState::Up,
                to: if (i / 7) % 2 == 0 {
                    ProbeState::Down
                } else {
                    ProbeState::Up
                },
                reason: Some(FailureReason::Timeout),
                status_code: None,
                latency_ms: None,
                recoveries_total: 0,
            },
        })
        .collect();
    for chunk in events.chunks(10_000) {
        store.append(chunk.to_vec()).unwrap();
    }
    drop(store);
    sandbox.write_config(&sandbox.config("", &sandbox.healthz_probe("api")));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("api", "up");

    let timed_get = || {
        let started = Instant::now();
        let (status, _, page) = get(sandbox.port, "/", "");
        assert_eq!(status, 200);
        assert!(page.contains("old-"), "the seeded incidents are shown");
        started.elapsed()
    };
    let before = rows_read(sandbox.port);
    let first = timed_get();
    let after_first = rows_read(sandbox.port);
    let mut times: Vec<Duration> = (0..20).map(|_| timed_get()).collect();
    let after_more = rows_read(sandbox.port);
    times.sort();
    eprintln!(
        "status page over a {SEEDED}-event journal: first GET {:?} reading {} rows; next 20 GETs median {:?}, max {:?}, {} rows in all",
        first,
        after_first - before,
        times[10],
        times[19],
        after_more - after_first
    );
    assert!(after_first - before <= 5000, "one bounded first read");
    assert!(
        after_more - after_first < 100,
        "later GETs read only new rows, not {}",
        after_more - after_first
    );
    assert!(daemon.stop().success());
}
