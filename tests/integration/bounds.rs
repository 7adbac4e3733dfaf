//! Bad and oversized requests on the control socket are refused with a clear answer, and the
//! daemon keeps serving.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::harness::{Daemon, Sandbox};

fn raw_request(daemon: &Daemon, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer (and close) before it has read an oversized body: ignore EPIPE.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn refuses_bad_requests_and_stays_up() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", ""));
    let daemon = Daemon::start(&sandbox, |_| {});

    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "unknown route",
            b"GET /v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            "HTTP/1.1 404",
            "no such route: /v1/nope",
        ),
        (
            "wrong method",
            b"GET /v1/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            "HTTP/1.1 405",
            "GET is not allowed on /v1/reload",
        ),
        (
            "bad query",
            b"GET /v1/events?since=yesterday HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
            "invalid since",
        ),
        (
            "body over 64 KiB",
            [
                b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 200000\r\n\r\n".to_vec(),
                vec![b'x'; 200_000],
            ]
            .concat(),
            "HTTP/1.1 413",
            "request body larger than 65536 bytes",
        ),
        ("garbage", b"\x00\x01 not http\r\n\r\n".to_vec(), "HTTP/1.1 400", ""),
    ];
    for (label, request, status, body) in cases {
        let answer = raw_request(&daemon, &request);
        assert!(answer.starts_with(status), "{label}: {answer}");
        assert!(answer.contains(body), "{label}: {answer}");
    }

    // still serving, and the oversized reload was not applied
    let status = daemon.ctl_json(&["status"]);
    assert!(status["last_reload"].is_null());
    assert!(daemon.stop().success());
}
