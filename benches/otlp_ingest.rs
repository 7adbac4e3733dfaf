//! OTLP trace ingest over real HTTP against the real daemon: protobuf `ExportTraceServiceRequest`
//! batches of 500 server spans posted to `POST /v1/traces` on keep-alive connections.
//!
//! Run (as root, release build): `cargo build --release --bin sentineld &&
//! SENTINELD=target/release/sentineld cargo bench --bench otlp_ingest`.
//! Phases: 1. decode + map of the same bytes in process (the ceiling); 2. sustained ingest.
//! Environment: SENTINELD (binary), BENCH_SECS (default 20), CONNECTIONS (default 2).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use sentinel::ingest::{otlp, TimeLimits};

const BATCH: usize = 500;
const TENANTS: u64 = 10_000;
const ROUTES: [&str; 4] = ["/v1/process", "/v1/orders/{id}", "/v1/search", "/v1/login"];

fn attr(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// One batch as the Python SDK would send it: a resource, one scope, `BATCH` server spans with
/// the usual HTTP attributes and a tenant each.
fn batch(seed: u64) -> Vec<u8> {
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let spans = (0..BATCH)
        .map(|i| {
            let r = next();
            let status = if r % 50 == 0 { 503 } else { 200 };
            Span {
                trace_id: r.to_be_bytes().repeat(2),
                span_id: (i as u64).to_be_bytes().to_vec(),
                name: "GET".into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: end - 5_000_000 - (r % 200_000_000),
                end_time_unix_nano: end,
                attributes: vec![
                    attr("http.request.method", Value::StringValue("GET".into())),
                    attr(
                        "http.route",
                        Value::StringValue(ROUTES[(r >> 8) as usize % 4].into()),
                    ),
                    attr("url.scheme", Value::StringValue("http".into())),
                    attr("http.response.status_code", Value::IntValue(status)),
                    attr(
                        "tenant.id",
                        Value::StringValue(format!("tenant-{}", (r >> 16) % TENANTS)),
                    ),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", Value::StringValue("shop".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn read_status(reader: &mut BufReader<TcpStream>) -> u16 {
    let (mut status, mut length) = (0, 0usize);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("response line");
        if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
            status = rest[..3].parse().unwrap_or(0);
        } else if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        } else if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("response body");
    status
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let connections: usize = std::env::var("CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let bodies: Vec<Vec<u8>> = (0..32).map(batch).collect();
    println!(
        "batch: {BATCH} spans, {} bytes protobuf ({} bytes per span)",
        bodies[0].len(),
        bodies[0].len() / BATCH
    );

    // 1. In process: decode + map, one core.
    let keys = otlp::DEFAULT_TENANT_ATTRIBUTES.map(String::from).to_vec();
    let started = Instant::now();
    let mut spans = 0;
    while started.elapsed() < Duration::from_secs(3) {
        for body in &bodies {
            let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
            let limits = TimeLimits {
                now_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64,
                max_age: Duration::from_secs(600),
                max_skew: Duration::from_secs(300),
            };
            spans += otlp::map_request(&request, &keys, limits).events.len();
        }
    }
    let rate = spans as f64 / started.elapsed().as_secs_f64();
    println!(
        "decode + map in process (1 core): {:.0} k spans/s",
        rate / 1e3
    );

    // 2. The real daemon.
    let Some(sentineld) = std::env::var_os("SENTINELD") else {
        eprintln!("!!! SENTINELD unset: skipping the HTTP phase !!!");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("sentineld.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[tenants]\nenabled = true\nmax_tenants = 20000\n",
            dir.path().join("state").display(),
            dir.path().join("s.sock").display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new(sentineld)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "sentineld did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let bodies = Arc::new(bodies);
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (stop, sent, bodies) = (stop.clone(), sent.clone(), bodies.clone());
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let body = &bodies[i % bodies.len()];
                    i += connections;
                    let head = format!(
                        "POST /v1/traces HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    writer.write_all(head.as_bytes()).unwrap();
                    writer.write_all(body).unwrap();
                    assert_eq!(read_status(&mut reader), 200);
                    sent.fetch_add(BATCH as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let rate = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!(
        "sustained OTLP ingest over HTTP, {connections} connections, {secs} s: {:.0} k spans/s ({:.0} requests/s)",
        rate / 1e3,
        rate / BATCH as f64
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}
