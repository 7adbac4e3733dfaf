//! A real HTTP/1.1 server on loopback standing in for sentineld's `POST /v1/events`: it
//! records every NDJSON body it is sent and answers 200, a chosen status, or nothing at all
//! (holding the request), and can be stopped and started again on the same port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// 200 `{"accepted": N, "rejected": []}`.
    #[default]
    Accept,
    /// Answer this status (e.g. 503, 429) and keep nothing.
    Status(u16),
    /// Keep the body (it reached the server) but never answer while the mode holds.
    Hold,
}

#[derive(Debug, Default)]
pub struct State {
    pub mode: Mode,
    /// The `/n/SEQ` endpoints of every kept body, one Vec per request, in arrival order.
    pub bodies: Vec<Vec<u64>>,
    /// Requests answered with a non-200 status.
    pub refused: usize,
    pub authorization: Option<String>,
}

impl State {
    /// Every kept sequence number in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        self.bodies.iter().flatten().copied().collect()
    }
}

pub type Shared = Arc<Mutex<State>>;

pub struct Receiver {
    pub state: Shared,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listen on 127.0.0.1:`port`, recording into `state` (shared across restarts).
    pub fn start(port: u16, state: Shared) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || accept_loop(listener, state, stop))
        };
        Self {
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.state.lock().unwrap().seqs()
    }

    /// Close the listener and every connection: the agent sees sentineld go away.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, state: Shared, stop: Arc<AtomicBool>) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
                connections.push(std::thread::spawn(move || serve(stream, state, stop)));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Serve requests on one kept-alive connection until the client closes it or we stop.
fn serve(mut stream: TcpStream, state: Shared, stop: Arc<AtomicBool>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buffer = Vec::new();
    loop {
        let Some((headers, body)) = read_request(&mut stream, &mut buffer, &stop) else {
            return;
        };
        let seqs = seqs_in(&body);
        let (status, reply) = {
            let mut state = state.lock().unwrap();
            if let Some(auth) = header(&headers, "authorization") {
                state.authorization = Some(auth);
            }
            match state.mode {
                Mode::Accept => {
                    let reply = format!(r#"{{"accepted":{},"rejected":[]}}"#, seqs.len());
                    state.bodies.push(seqs);
                    (200, reply)
                }
                Mode::Status(status) => {
                    state.refused += 1;
                    (status, r#"{"error":"not now"}"#.to_string())
                }
                Mode::Hold => {
                    state.bodies.push(seqs);
                    (0, String::new())
                }
            }
        };
        if status == 0 {
            // Hold: answer only once the mode changes; the agent may be killed meanwhile.
            while state.lock().unwrap().mode == Mode::Hold && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// One request's header block and body; None when the client closed or we stop.
fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&buffer[..end]).to_string();
            let length: usize = header(&headers, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let body = buffer[end + 4..end + 4 + length].to_vec();
                buffer.drain(..end + 4 + length);
                return Some((headers, body));
            }
        }
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// The SEQ of every `"endpoint":"/n/SEQ"` event in an NDJSON body.
pub fn seqs_in(body: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let event: serde_json::Value =
                serde_json::from_str(line).expect("the agent sends JSON lines");
            let endpoint = event["endpoint"].as_str().expect("events have an endpoint");
            endpoint
                .strip_prefix("/n/")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected endpoint {endpoint}"))
        })
        .collect()
}
