//! Bad and oversized requests on the control socket are refused with a clear answer, and the
//! daemon keeps serving; slow clients (slowloris) on either listener are cut off in bounded time.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

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
        (
            "wrong method on a path of the route table",
            b"POST /v1/chaos/profiles HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            "HTTP/1.1 405",
            "POST is not allowed on /v1/chaos/profiles",
        ),
        (
            "a trailing slash is ignored",
            b"GET /v1/status/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            "HTTP/1.1 200",
            "\"uptime_secs\"",
        ),
        (
            "a parameter is one segment",
            b"GET /v1/chaos/x1/extra/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 404",
            "no such route: /v1/chaos/x1/extra/report",
        ),
    ];
    for (label, request, status, body) in cases {
        let answer = raw_request(&daemon, &request);
        assert!(answer.starts_with(status), "{label}: {answer}");
        assert!(answer.contains(body), "{label}: {answer}");
        if status == "HTTP/1.1 405" {
            // 405 says which methods the path takes.
            let allow = answer
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("allow:"))
                .unwrap_or_else(|| panic!("{label}: no Allow header: {answer}"));
            assert!(
                allow.ends_with(": POST") || allow.ends_with(": GET"),
                "{label}: {allow}"
            );
        }
    }

    // still serving, and the oversized reload was not applied
    let status = daemon.ctl_json(&["status"]);
    assert!(status["last_reload"].is_null());
    assert!(daemon.stop().success());
}

/// Either listener gives a client 10 s from its accept to finish its request headers. Clients
/// beyond the listener's limit of connections served at once (256 public, 64 control) wait in the
/// kernel's accept queue until earlier ones are cut off, and then get their own 10 s: so every slow
/// client is let go within two windows, plus slack for a loaded 2-core machine.
const CUT_OFF: Duration = Duration::from_secs(24);

/// A client connection that can be polled without blocking.
trait SlowClient: Read + Write {
    fn poll_mode(&self);
}

impl SlowClient for TcpStream {
    fn poll_mode(&self) {
        self.set_nonblocking(true).unwrap();
    }
}

impl SlowClient for UnixStream {
    fn poll_mode(&self) {
        self.set_nonblocking(true).unwrap();
    }
}

/// Slow clients (slowloris): each connection sends a request line, then one header line every
/// half second, and never finishes. Returns once the server has let go of every one (closed it or
/// answered), with the time that took; fails if any is still held after [`CUT_OFF`].
fn trickle_until_let_go<S: SlowClient>(mut clients: Vec<S>) -> Duration {
    let started = Instant::now();
    for client in &mut clients {
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        client.poll_mode();
    }
    let mut buf = [0u8; 512];
    while !clients.is_empty() {
        assert!(
            started.elapsed() < CUT_OFF,
            "{} slow connections still held after {:?}",
            clients.len(),
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
        clients.retain_mut(|client| {
            if client.write_all(b"X-Slow: 1\r\n").is_err() {
                return false;
            }
            matches!(client.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock)
        });
    }
    started.elapsed()
}

/// One request on a fresh connection; the time until the answer's first bytes.
fn timed_healthz(port: u16) -> (Duration, String) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(CUT_OFF + Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[test]
fn slow_clients_are_cut_off_and_both_listeners_keep_serving() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", ""));
    let daemon = Daemon::start(&sandbox, |_| {});

    // More slow clients than the public listener serves at once (256) ...
    let public: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", sandbox.port)).unwrap())
        .collect();
    // ... and than the control socket serves at once (64).
    let control: Vec<UnixStream> = (0..80)
        .map(|_| UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    let port = sandbox.port;
    let honest = std::thread::spawn(move || timed_healthz(port));
    let socket = daemon.socket.clone();
    let ctl = std::thread::spawn(move || {
        let started = Instant::now();
        let status = UnixStream::connect(&socket).map(|mut s| {
            s.set_read_timeout(Some(CUT_OFF + Duration::from_secs(5)))
                .unwrap();
            s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).into_owned()
        });
        (started.elapsed(), status.unwrap())
    });

    let slow_control = std::thread::spawn(move || trickle_until_let_go(control));
    let public_took = trickle_until_let_go(public);
    let control_took = slow_control.join().unwrap();
    eprintln!("slow clients let go: public {public_took:?}, control {control_took:?}");

    // An honest client that arrived behind them was answered once they were cut off.
    let (waited, answer) = honest.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(waited < CUT_OFF, "public /healthz waited {waited:?}");
    let (waited, answer) = ctl.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(waited < CUT_OFF, "control /v1/status waited {waited:?}");

    // And afterwards both answer at once.
    let (took, answer) = timed_healthz(sandbox.port);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(daemon.ctl(&["status"]).status.success());
    assert!(daemon.stop().success());
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", ""));
    let daemon = Daemon::start(&sandbox, |_| {});
    let started = Instant::now();
    let mut idle = TcpStream::connect(("127.0.0.1", sandbox.port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(CUT_OFF + Duration::from_secs(30)))
        .unwrap();
    // The answer, then nothing: the server must not keep the connection forever.
    let mut answer = Vec::new();
    let _ = idle.read_to_end(&mut answer);
    let held = started.elapsed();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        held < CUT_OFF + Duration::from_secs(30),
        "idle connection held {held:?}"
    );
    eprintln!("idle keep-alive connection closed after {held:?}");
    assert!(daemon.stop().success());
}

#[test]
fn a_body_sent_a_byte_at_a_time_gets_408() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&sandbox.config("", "[tenants]\nenabled = true\n"));
    let daemon = Daemon::start(&sandbox, |_| {});
    let started = Instant::now();
    let mut slow = TcpStream::connect(("127.0.0.1", sandbox.port)).unwrap();
    slow.write_all(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[",
    )
    .unwrap();
    slow.set_nonblocking(true).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // One byte a second: never finishes in time.
    while started.elapsed() < Duration::from_secs(45) {
        let _ = slow.write_all(b" ");
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {took:?}: {answer:?}"
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
    let (_, healthz) = timed_healthz(sandbox.port);
    assert!(healthz.starts_with("HTTP/1.1 200"));
    assert!(daemon.stop().success());
}
