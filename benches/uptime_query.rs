//! How fast `sentinelctl uptime` is answered over a journal of 1,000,000 probe transitions
//! (1,000 probes × ~1,000 transitions over 90 days; the target: ≤ 200 ms).
//!
//! Run: `cargo bench --bench uptime_query` (release), or for a quick look on a machine without a
//! release build, `cargo bench --profile dev --bench uptime_query`. Set `UPTIME_BENCH_TRANSITIONS`
//! for a smaller journal, `UPTIME_BENCH_RUNS` for fewer timed runs (default 20), `UPTIME_BENCH_DB=/path/journal.sqlite3` to keep the journal between
//! runs (built once, reused when present). The journal is written through `JournalStore::append`
//! exactly as sentineld writes it (events plus rollups in one transaction per batch); the query
//! is `uptime::report_from`, what `GET /v1/uptime` runs, and `uptime::bars_from`, what the
//! status page runs. Record results in docs/performance.md with the machine and the date.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sentinel::event::{Event, EventKind, ProbeState, Timestamp};
use sentinel::journal::JournalStore;
use sentinel::uptime::{bars_cached, bars_from, report_from, BarCache, UptimeRequest, DAY_MS};
use support::{percentile, Rng};

const PROBES: usize = 1_000;
const BATCH: usize = 10_000;
/// Midnight, 2026-09-07 UTC: the journal spans the 90 days after it.
const START: i64 = 20_703 * DAY_MS;

fn main() {
    let transitions: usize = std::env::var("UPTIME_BENCH_TRANSITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("UPTIME_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let keep = std::env::var_os("UPTIME_BENCH_DB").map(PathBuf::from);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = keep
        .clone()
        .unwrap_or_else(|| dir.path().join("journal.sqlite3"));
    let span = 90 * DAY_MS;
    let step = span / transitions as i64;
    let now = Timestamp(START + span);

    if keep.is_none() || !path.exists() {
        let mut store = JournalStore::open(&path).expect("journal");
        let mut rng = Rng(15);
        let mut up = vec![false; PROBES];
        let started = Instant::now();
        let mut batch = Vec::with_capacity(BATCH);
        for k in 0..transitions {
            let probe = (rng.next() % PROBES as u64) as usize;
            up[probe] = !up[probe];
            let (from, to) = match up[probe] {
                true => (ProbeState::Recovering, ProbeState::Up),
                false => (ProbeState::Failing, ProbeState::Down),
            };
            batch.push(Event {
                at: Timestamp(START + k as i64 * step),
                kind: EventKind::ProbeTransition {
                    probe: format!("probe-{probe:04}"),
                    from,
                    to,
                    reason: None,
                    status_code: None,
                    latency_ms: Some(3.0),
                    recoveries_total: 0,
                },
            });
            if batch.len() == BATCH {
                store.append(std::mem::take(&mut batch)).expect("append");
            }
        }
        store.append(batch).expect("append");
        let took = started.elapsed();
        println!(
            "built a journal of {transitions} transitions ({PROBES} probes, 90 days) in {:.1} s ({:.1} µs per transition incl. rollups)",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / transitions as f64
        );
    }
    let store = JournalStore::open_read_only(&path).expect("journal");
    let connection = store.connection();
    println!(
        "journal: {} events, {:.1} MB",
        store.count().expect("count"),
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
    );

    let all = UptimeRequest::default();
    let one = UptimeRequest {
        probe: Some("probe-0500".into()),
        ..Default::default()
    };
    let since_45d = UptimeRequest {
        since: Some(("45d".into(), Timestamp(now.0 - 45 * DAY_MS - 7_000_000))),
        probe: None,
    };
    println!("\n{:<58} {:>10} {:>10}", "query", "median", "p99");
    let measure = |name: &str, run: &mut dyn FnMut() -> usize| {
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        let mut size = 0;
        for _ in 0..runs {
            let started = Instant::now();
            size = run();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{:<58} {:>8.1}ms {:>8.1}ms",
            format!("{name} ({size} probes)"),
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
    };
    measure("all probes, 24h/7d/30d/90d (GET /v1/uptime)", &mut || {
        report_from(connection, now, &all, &[])
            .expect("report")
            .probes
            .len()
    });
    measure("all probes, since 45d (window edges mid-day)", &mut || {
        report_from(connection, now, &since_45d, &[])
            .expect("report")
            .probes
            .len()
    });
    measure("one probe, 24h/7d/30d/90d (--probe)", &mut || {
        report_from(connection, now, &one, &[])
            .expect("report")
            .probes
            .len()
    });
    measure("all probes, 90 daily cells (status page bars)", &mut || {
        bars_from(connection, now, 90, &[]).expect("bars").len()
    });
    let mut cache = BarCache::default();
    bars_cached(connection, now, 90, &[], &mut cache).expect("bars");
    measure(
        "all probes, 90 daily cells, past days cached (a status page GET)",
        &mut || {
            bars_cached(connection, now, 90, &[], &mut cache)
                .expect("bars")
                .len()
        },
    );
}
