//! Tenant ingest over real HTTP against the real daemon, next to what a team would do instead.
//!
//! Run: `benches/tenants_ingest.sh` (builds release binaries, starts a throwaway PostgreSQL, runs
//! this with the paths in the environment). Phases:
//! 1. parse-only rate of the same NDJSON bytes, in process (the ceiling for HTTP ingest);
//! 2. sustained ingest into `sentineld` over keep-alive HTTP, NDJSON batches of 1,000;
//! 3. top-10 over the control socket with 100,000 active tenants;
//! 4. memory of the daemon at 100,000 and 1,000,000 distinct tenants against its cap;
//! 5. the same events loaded into PostgreSQL with COPY and the same top-N asked in SQL.
//!
//! Environment: SENTINELD (binary), BENCH_SECS (ingest duration, default 60), CONNECTIONS
//! (default 2), PGHOST/PGPORT/PGUSER (phase 5 is skipped loudly without PGHOST).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel::ingest::{parse_body, TimeLimits};
use support::{percentile, Rng};

const BATCH: usize = 1_000;
const ACTIVE_TENANTS: usize = 100_000;

const ROUTES: [&str; 8] = [
    "/v1/process",
    "/v1/orders/{id}",
    "/v1/users/{id}/profile",
    "/v1/search",
    "/v1/invoices/{id}",
    "/healthz",
    "/v1/reports/{id}/export",
    "/v1/login",
];

/// One NDJSON batch of `BATCH` events over tenants `offset..offset + tenants` (cycled).
fn batch(rng: &mut Rng, tenants: usize, offset: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH * 110);
    for _ in 0..BATCH {
        let tenant = offset + (rng.next() as usize % tenants);
        let route = ROUTES[rng.next() as usize % ROUTES.len()]
            .replace("{id}", &(rng.next() % 100_000).to_string());
        let status = if rng.next() % 50 == 0 { 503 } else { 200 };
        let latency = 5.0 + (rng.next() % 20_000) as f64 / 100.0;
        let _ = writeln!(
            out,
            r#"{{"tenant_id":"tenant-{tenant}","endpoint":"{route}","status_code":{status},"latency_ms":{latency}}}"#
        );
    }
    out
}

fn request_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one HTTP/1.1 response with Content-Length; returns (status, body).
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<u8>) {
    let mut status = 0;
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("response line");
        if line.starts_with("HTTP/1.1 ") {
            status = line[9..12].parse().unwrap_or(0);
        } else if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        } else if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("response body");
    (status, body)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Daemon {
    child: Child,
    port: u16,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(binary: &Path, tenants: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = dir.path().join("s.sock");
        let config = format!(
            "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n{tenants}",
            dir.path().join("state").display(),
            socket.display()
        );
        let path = dir.path().join("sentineld.toml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(binary)
            .args([
                "--config",
                path.to_str().unwrap(),
                "--log-level",
                "warn",
                "--log-format",
                "text",
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("start sentineld");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sentineld did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            socket,
            _dir: dir,
        }
    }

    fn proc_field(&self, file: &str, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn rss_mib(&self) -> f64 {
        self.proc_field("status", "VmRSS:") as f64 / 1024.0
    }

    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    fn control_get(&self, path: &str) -> String {
        let mut stream = UnixStream::connect(&self.socket).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    fn metric(&self, name: &str) -> f64 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `requests` round-robin on `connections` keep-alive connections for `duration` (or
/// once each when `duration` is None); returns (events accepted, requests, latencies).
fn drive(
    port: u16,
    requests: &Arc<Vec<Vec<u8>>>,
    connections: usize,
    duration: Option<Duration>,
) -> (u64, u64, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (requests, stop, accepted) = (
            Arc::clone(requests),
            Arc::clone(&stop),
            Arc::clone(&accepted),
        );
        workers.push(std::thread::spawn(move || {
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.set_nodelay(true).unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::with_capacity(64 * 1024, stream);
            let mut latencies = Vec::new();
            let mut index = worker;
            loop {
                if duration.is_some() && stop.load(Ordering::Relaxed) {
                    break;
                }
                if duration.is_none() && index >= requests.len() {
                    break;
                }
                let started = Instant::now();
                writer.write_all(&requests[index % requests.len()]).unwrap();
                let (status, body) = read_response(&mut reader);
                latencies.push(started.elapsed());
                if status == 429 {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let body = String::from_utf8_lossy(&body);
                let count: u64 = body
                    .strip_prefix("{\"accepted\":")
                    .and_then(|rest| rest.split(',').next()?.parse().ok())
                    .expect("accepted count");
                accepted.fetch_add(count, Ordering::Relaxed);
                index += connections;
            }
            latencies
        }));
    }
    if let Some(duration) = duration {
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.join().unwrap());
    }
    latencies.sort();
    let requests = latencies.len() as u64;
    (accepted.load(Ordering::Relaxed), requests, latencies)
}

fn main() {
    let binary = PathBuf::from(
        std::env::var("SENTINELD").unwrap_or_else(|_| "target/release/sentineld".into()),
    );
    let seconds = env_or("BENCH_SECS", 60u64);
    let connections = env_or("CONNECTIONS", 2usize);
    let mut rng = Rng(42);
    println!("tenant ingest benchmark: batches of {BATCH} events, {connections} keep-alive connections, {seconds} s");

    // 1. Parse-only: the same bytes the HTTP phase sends, split and validated in process.
    let bodies: Vec<Vec<u8>> = (0..200)
        .map(|_| batch(&mut rng, ACTIVE_TENANTS, 0))
        .collect();
    let bytes_per_event =
        bodies.iter().map(Vec::len).sum::<usize>() as f64 / (bodies.len() * BATCH) as f64;
    let limits = TimeLimits {
        now_ms: 0,
        max_age: Duration::from_secs(600),
        max_skew: Duration::from_secs(300),
    };
    let started = Instant::now();
    let mut parsed = 0u64;
    while started.elapsed() < Duration::from_secs(5) {
        for body in &bodies {
            parsed += parse_body(body, true, limits).unwrap().0.len() as u64;
        }
    }
    let parse_rate = parsed as f64 / started.elapsed().as_secs_f64();
    println!(
        "1. parse-only (1 core, in process): {:.0} events/s, {bytes_per_event:.0} bytes/event",
        parse_rate
    );

    // 2. Sustained ingest over HTTP.
    // SHARDS=N sets `[tenants] shards` (SHARDS=1: one lock, as before sharding).
    let shards = std::env::var("SHARDS").map_or(String::new(), |n| format!("shards = {n}\n"));
    println!(
        "detector shards: {}",
        if shards.is_empty() {
            "default (one per core)"
        } else {
            shards.trim()
        }
    );
    let tenants_config = format!("[tenants]\nenabled = true\n{shards}max_tenants = 100000\nmax_memory = \"1GiB\"\n[tenants.ingest]\nmax_concurrent_requests = 64\n");
    let daemon = Daemon::start(&binary, &tenants_config);
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(bodies.iter().map(|b| request_bytes(b)).collect());
    let cpu_before = daemon.cpu_seconds();
    let started = Instant::now();
    let (accepted, sent, latencies) = drive(
        daemon.port,
        &requests,
        connections,
        Some(Duration::from_secs(seconds)),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let rate = accepted as f64 / elapsed;
    let cpu = daemon.cpu_seconds() - cpu_before;
    println!(
        "2. HTTP ingest: {:.0} events/s ({:.0} requests/s; {:.0}% of the parse-only rate); request p50 {:?} p99 {:?}; daemon CPU {:.2} s/s; RSS {:.1} MiB",
        rate,
        sent as f64 / elapsed,
        100.0 * rate / parse_rate,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        cpu / elapsed,
        daemon.rss_mib()
    );

    // 3. Top-10 over the control socket, 100,000 active tenants in the window.
    println!(
        "   tracked tenants: {}",
        daemon.metric("sentinel_tenants_tracked")
    );
    for by in ["errors", "error_rate", "latency", "deviation"] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let body = daemon.control_get(&format!("/v1/tenants/top?by={by}&limit=10"));
            times.push(started.elapsed());
            assert!(body.contains("\"tenants\""), "{body}");
        }
        times.sort();
        println!(
            "3. top-10 by {by:<10} over the socket: p50 {:?} p99 {:?}",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    drop(daemon);

    // 4. Memory at 100,000 and 1,000,000 distinct tenants, cap 100,000 tenants / 256 MiB.
    let capped = format!("[tenants]\nenabled = true\n{shards}max_tenants = 100000\nmax_memory = \"256MiB\"\n[tenants.ingest]\nmax_concurrent_requests = 64\n");
    let daemon = Daemon::start(&binary, &capped);
    let baseline_rss = daemon.rss_mib();
    let mut sent_tenants = 0usize;
    for target in [100_000usize, 1_000_000] {
        let mut requests = Vec::new();
        while sent_tenants < target {
            // Every event a new tenant: the worst case for the table.
            let body: Vec<u8> = (0..BATCH)
                .flat_map(|i| format!("{{\"tenant_id\":\"distinct-{}\",\"endpoint\":\"/v1/process\",\"status_code\":200,\"latency_ms\":12}}\n", sent_tenants + i).into_bytes())
                .collect();
            requests.push(request_bytes(&body));
            sent_tenants += BATCH;
        }
        let started = Instant::now();
        let (accepted, _, _) = drive(daemon.port, &Arc::new(requests), connections, None);
        let churn_rate = accepted as f64 / started.elapsed().as_secs_f64();
        println!(
            "4. {target} distinct tenants: {churn_rate:.0} events/s while every event is a new tenant; RSS {:.1} MiB (idle {:.1}); tracked {}; evicted {}; estimate {:.1} MiB of the {:.0} MiB cap",
            daemon.rss_mib(),
            baseline_rss,
            daemon.metric("sentinel_tenants_tracked"),
            daemon.metric("sentinel_tenants_evicted_total"),
            daemon.metric("sentinel_tenants_memory_bytes") / 1048576.0,
            daemon.metric("sentinel_tenants_memory_max_bytes") / 1048576.0,
        );
    }
    drop(daemon);

    // 5. What a team would do instead: COPY into PostgreSQL and ask in SQL.
    postgres_comparison(&bodies, rate);
}

fn postgres_comparison(bodies: &[Vec<u8>], sentinel_rate: f64) {
    let Ok(host) = std::env::var("PGHOST") else {
        println!("\n!!! 5. SKIPPED: PGHOST not set (benches/tenants_ingest.sh starts a PostgreSQL) !!!\n");
        return;
    };
    let port = env_or("PGPORT", 5432u16);
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        use futures_util::SinkExt;
        let (client, connection) = tokio_postgres::connect(&format!("host={host} port={port} user={user} dbname=postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the bench PostgreSQL");
        tokio::spawn(connection);
        client.batch_execute("DROP TABLE IF EXISTS events; CREATE UNLOGGED TABLE events (tenant_id text, endpoint text, status_code int, latency_ms float8, ts timestamptz DEFAULT now()); CREATE INDEX ON events (ts);").await.unwrap();
        // The same events, as CSV rows (what a log shipper would COPY).
        let mut csv = Vec::new();
        let mut events = 0u64;
        for body in bodies.iter().cycle().take(bodies.len() * 10) {
            for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let value: serde_json::Value = serde_json::from_slice(line).unwrap();
                let _ = writeln!(csv, "{},{},{},{}", value["tenant_id"].as_str().unwrap(), value["endpoint"].as_str().unwrap(), value["status_code"], value["latency_ms"]);
                events += 1;
            }
        }
        let started = Instant::now();
        let sink = client.copy_in("COPY events (tenant_id, endpoint, status_code, latency_ms) FROM STDIN (FORMAT csv)").await.unwrap();
        futures_util::pin_mut!(sink);
        for chunk in csv.chunks(1 << 20) {
            sink.send(bytes::Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        sink.close().await.unwrap();
        let copy_rate = events as f64 / started.elapsed().as_secs_f64();
        client.batch_execute("ANALYZE events").await.unwrap();
        let query = "SELECT tenant_id, count(*) FILTER (WHERE status_code >= 500) AS errors, count(*) AS requests, \
                     percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95 \
                     FROM events WHERE ts > now() - interval '10 minutes' \
                     GROUP BY tenant_id ORDER BY errors DESC LIMIT 10";
        let mut times = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            let rows = client.query(query, &[]).await.unwrap();
            times.push(started.elapsed());
            assert_eq!(rows.len(), 10);
        }
        times.sort();
        println!(
            "5. PostgreSQL COPY: {events} events at {copy_rate:.0} events/s (sentineld over HTTP: {:.1}× that); top-10 by errors with p95 in SQL: p50 {:?} p99 {:?}",
            sentinel_rate / copy_rate,
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    });
}
