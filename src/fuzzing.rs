//! Entry points of the fuzz targets in `fuzz/` (not an API): each takes raw bytes and runs one
//! parser of outside input the way sentineld or sentinel-agent runs it, checking what it promises.
//!
//! A panic here is a bug in the parser or in a promise below; every input that found one is kept
//! under `fuzz/regressions/TARGET/` and replayed by the unit test at the end of this file.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use crate::agent::parse::{nginx, FieldMap, LatencyUnit, LineParser, OutEvent, Parsed};
use crate::ingest::{self, TimeLimits, MAX_ENDPOINT_BYTES, MAX_TENANT_ID_BYTES};

/// One fuzz target: it takes the fuzzer's bytes and panics only on a bug.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their file in `fuzz/fuzz_targets/`.
pub const TARGETS: [(&str, Target); 5] = [
    ("ingest_body", ingest_body),
    ("agent_nginx", agent_nginx),
    ("agent_json", agent_json),
    ("config", config),
    ("netlink", netlink),
];

/// A fixed "now" so that a crash replays the same way on any day.
const NOW_MS: i64 = 1_700_000_000_000;
/// Small, so that a gzip bomb is refused after 64 KiB instead of the default 8 MiB.
const MAX_BODY: usize = 64 << 10;

/// `POST /v1/events`: the first byte chooses how the body arrives (bit 0: `Content-Encoding:
/// gzip` with the fuzzer's own bytes; bit 1: `Content-Type: application/x-ndjson`; bit 2: the
/// body is gzipped here first, so valid gzip reaches the splitter); the rest is the body.
pub fn ingest_body(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let ndjson = mode & 2 != 0;
    let body = match (mode & 1 != 0, mode & 4 != 0) {
        (_, true) => {
            let gzipped = gzip(body);
            let decoded = ingest::gunzip(&gzipped, MAX_BODY);
            match body.len() > MAX_BODY {
                true => {
                    assert!(matches!(decoded, Err(ingest::Refusal::TooLarge)));
                    return;
                }
                false => match decoded {
                    Ok(decoded) => {
                        assert_eq!(decoded, body, "gzip round trip");
                        decoded
                    }
                    Err(_) => panic!("our own gzip of {} bytes was refused", body.len()),
                },
            }
        }
        (true, false) => match ingest::gunzip(body, MAX_BODY) {
            Ok(decoded) => decoded,
            Err(_) => return,
        },
        (false, false) => Bytes::copy_from_slice(body),
    };
    assert!(body.len() <= MAX_BODY + 1);
    let limits = TimeLimits {
        now_ms: NOW_MS,
        max_age: Duration::from_secs(600),
        max_skew: Duration::from_secs(300),
    };
    let (events, rejections) = match ingest::parse_body(&body, ndjson, limits) {
        Ok(judged) => judged,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    // each event is judged once, in order
    assert!(rejections.windows(2).all(|w| w[0].index < w[1].index));
    let _ = serde_json::to_vec(&rejections).expect("rejections serialize");
    let mut scratch = String::new();
    for event in &events {
        assert!((1..=MAX_TENANT_ID_BYTES).contains(&event.tenant_id.len()));
        assert!((1..=MAX_ENDPOINT_BYTES).contains(&event.endpoint.len()));
        assert!(!event.tenant_id.chars().any(char::is_control));
        assert!((100..=599).contains(&event.status_code));
        assert!(event.latency_ms.is_finite() && event.latency_ms >= 0.0);
        assert!(event.timestamp_ms <= NOW_MS + 300_000);
        let endpoint = crate::tenants::normalize::normalize_endpoint(&event.endpoint, &mut scratch);
        assert!(endpoint.len() <= crate::tenants::normalize::MAX_ENDPOINT_BYTES);
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// The field names the agent targets map; the fuzzer's own formats use them too.
fn nginx_fields(timestamp: &str) -> FieldMap {
    FieldMap {
        tenant_id: "http_x_tenant_id".into(),
        endpoint: "request".into(),
        status_code: "status".into(),
        latency_ms: "request_time".into(),
        timestamp: timestamp.into(),
        dims: vec![
            ("agent".into(), "http_user_agent".into()),
            ("user".into(), "remote_user".into()),
        ],
    }
}

const UNITS: [LatencyUnit; 3] = [LatencyUnit::S, LatencyUnit::Ms, LatencyUnit::Us];

/// sentinel-agent on an nginx access log: the first byte chooses the `log_format` (three
/// realistic ones, or the first line of the input), the timestamp variable and the latency unit;
/// every following line is read as the agent reads it (invalid UTF-8 becomes U+FFFD).
pub fn agent_nginx(data: &[u8]) {
    const FORMATS: [&str; 3] = [
        concat!(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "#,
            r#""$http_referer" "$http_user_agent" $request_time "$http_x_tenant_id""#
        ),
        r#"$remote_addr [$time_local] "$request" $status "$request_time" ${http_x_tenant_id}"#,
        r#"$msec $http_x_tenant_id $status $request_time "$request" $time_iso8601 \"$uri\""#,
    ];
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (format, lines) = match usize::from(mode & 3) {
        3 => text.split_once('\n').unwrap_or((&text, "")),
        fixed => (FORMATS[fixed], &text[..]),
    };
    let Ok(format) = nginx::LogFormat::compile(nginx::LogFormat::expand(format)) else {
        return;
    };
    let timestamp = ["time_local", "msec", "time_iso8601"][usize::from(mode >> 2) % 3];
    let unit = UNITS[usize::from(mode >> 4) % 3];
    let parser = LineParser::nginx(format, nginx_fields(timestamp), unit);
    for line in lines.split('\n') {
        shipped(parser.parse(line, NOW_MS as u64));
    }
}

/// sentinel-agent on a JSON-lines access log: the first byte chooses the field names
/// (canonical or renamed) and the latency unit; every following line is one log line.
pub fn agent_json(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fields = match mode & 1 {
        0 => FieldMap {
            tenant_id: "tenant_id".into(),
            endpoint: "endpoint".into(),
            status_code: "status_code".into(),
            latency_ms: "latency_ms".into(),
            timestamp: "timestamp".into(),
            dims: vec![("region".into(), "region".into())],
        },
        _ => FieldMap {
            tenant_id: "org".into(),
            endpoint: "path".into(),
            status_code: "status".into(),
            latency_ms: "duration".into(),
            timestamp: "ts".into(),
            dims: vec![
                ("plan".into(), "plan".into()),
                ("region".into(), "geo".into()),
            ],
        },
    };
    let parser = LineParser::json(fields, UNITS[usize::from(mode >> 1) % 3]);
    for line in String::from_utf8_lossy(rest).split('\n') {
        shipped(parser.parse(line, NOW_MS as u64));
    }
}

/// What the agent does with a parsed line: an event is serialized into a batch, a message logged.
fn shipped(parsed: Parsed) {
    match parsed {
        Parsed::Event(event) => {
            let OutEvent {
                tenant_id, dims, ..
            } = &event;
            assert!(!tenant_id.is_empty());
            // a dimension sentineld would refuse would cost the whole event there
            assert!(
                dims.values().all(|v| crate::ingest::is_dim_value(v)),
                "{dims:?}"
            );
            let _ = serde_json::to_vec(&event).expect("an event serializes");
        }
        Parsed::NoTenant => {}
        Parsed::Malformed(reason) => assert!(!reason.to_string().is_empty()),
    }
}

/// Whether the TOML text has a key ending in `_file` anywhere (`token_file`, `ca_file`, ...),
/// decoded as the config parser decodes it, so a quoted or escaped key counts too. Text that is
/// not TOML names nothing: the config parser refuses it before reading any file.
fn names_a_file(source: &str) -> bool {
    fn names(value: &toml::Value) -> bool {
        match value {
            toml::Value::Table(table) => table
                .iter()
                .any(|(key, value)| key.ends_with("_file") || names(value)),
            toml::Value::Array(values) => values.iter().any(names),
            _ => false,
        }
    }
    source
        .parse::<toml::Table>()
        .is_ok_and(|table| names(&toml::Value::Table(table)))
}

/// `sentineld.toml` and the agent's config from the same text, with the real validation; when
/// one loads, what the daemon derives from it at start and on reload is derived too.
pub fn config(data: &[u8]) {
    // read_to_string refuses invalid UTF-8 before the parser sees it
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // config::parse reads the secret and CA files the text names: not the fuzzer's to choose
    if names_a_file(source) {
        return;
    }
    let path = Path::new("fuzz.toml");
    match crate::config::parse(source, path) {
        Ok(config) => {
            let _ = crate::config::ConfigDiff::between(&crate::config::Config::default(), &config)
                .changes();
            let _ = crate::config::ConfigDiff::between(&config, &config).changes();
            crate::config::dependency_order(&config.probes).expect("validated: no cycle");
            let _ = config.daemon.socket_mode_bits();
            let _ = config.drills();
            let _ = config.chaos.settings();
            let _ = config.chaos.handle_major();
            let _ = config.tenants.detector_config();
            let _ = config.tenants.alert_rules();
            let _ = config.tenants.max_event_age();
        }
        Err(err) => assert!(err.to_string().starts_with("fuzz.toml:")),
    }
    match crate::agent::config::parse(source, path) {
        Ok(agent) => {
            for file in &agent.files {
                file.parser().expect("validated at load");
            }
            for datagram in &agent.datagrams {
                datagram.address().expect("validated at load");
            }
        }
        Err(err) => assert!(err.to_string().starts_with("fuzz.toml:")),
    }
}

/// One datagram from the rtnetlink socket: the first four bytes are the sequence number of the
/// request, the rest is what the kernel sent. Every reply is read as a qdisc and as a route.
pub fn netlink(data: &[u8]) {
    use crate::chaos::netlink::{default_route_oifs, extack_message, parse_qdisc, read_replies};
    let Some((sequence, datagram)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mut replies = Vec::new();
    match read_replies(datagram, u32::from_ne_bytes(*sequence), &mut replies) {
        Ok(_) => {}
        Err(err) => {
            assert!(err.errno > 0, "errno {}", err.errno);
            let _ = err.to_string();
        }
    }
    let mut previous = Vec::new();
    for (_, payload) in &replies {
        let _ = default_route_oifs(payload);
        let _ = extack_message(payload);
        if let Some(qdisc) = parse_qdisc(payload) {
            for kind in ["netem", "tbf", qdisc.kind.as_str()] {
                let _ = crate::chaos::tc::verify_options(kind, &previous, &qdisc.options);
                let _ = crate::chaos::tc::verify_options(kind, &qdisc.options, &qdisc.options);
            }
            previous = qdisc.options;
        }
    }
}

#[cfg(test)]
mod tests {
    /// The config target reads no file its input names: a FIFO whose writer waits for a
    /// reader stays unopened, whichever way the key is spelled.
    #[test]
    fn the_config_target_opens_no_file_its_input_names() {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("secret");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let opened = Arc::new(AtomicBool::new(false));
        let writer = {
            let (fifo, opened) = (fifo.clone(), opened.clone());
            // opening a FIFO to write waits until something opens it to read
            std::thread::spawn(move || {
                let _file = std::fs::OpenOptions::new().write(true).open(&fifo);
                opened.store(true, Ordering::SeqCst);
            })
        };
        for key in ["token_file", "\"token\\u005ffile\"", "'token_file'"] {
            let text = format!("[tenants.ingest]\n{key} = \"{}\"\n", fifo.display());
            super::config(text.as_bytes());
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let was_opened = opened.load(Ordering::SeqCst);
        // release the writer
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&fifo)
            .unwrap();
        writer.join().unwrap();
        assert!(!was_opened, "the config target opened {}", fifo.display());
    }

    use std::path::Path;

    use super::TARGETS;

    /// Every committed seed and every input that once crashed a target runs clean.
    #[test]
    fn seeds_and_past_crashes_run_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut ran = 0;
        for (target, run) in TARGETS {
            for folder in ["seeds", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let input = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| run(&input));
                    assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
                    ran += 1;
                }
            }
        }
        assert!(
            ran >= TARGETS.len(),
            "only {ran} inputs under {}",
            root.display()
        );
    }
}
