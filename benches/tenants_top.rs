//! How fast the tenant detector records events and answers top-10 over 100,000 active tenants
//! (the target: p99 <= 10 ms per query).
//!
//! Run: `cargo bench --bench tenants_top` (release build; prints a table; record results in
//! docs/performance.md with the machine and the date). In-process: no HTTP, no JSON parsing.

mod support;

use std::time::{Duration, Instant};

use sentinel::tenants::{RankBy, TenantDetector, TenantEventRef, TenantsConfig};
use support::{percentile, Rng};

const TENANTS: usize = 100_000;
const ROUNDS: i64 = 50;
const QUERIES: usize = 50;

fn main() {
    let config = TenantsConfig {
        max_tenants: TENANTS,
        max_bytes: usize::MAX,
        ..TenantsConfig::default()
    };
    let mut detector = TenantDetector::new(config).expect("valid config");
    let mut rng = Rng(7);
    let ids: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i}")).collect();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let now = round * 30_000;
        for id in &ids {
            let status = if rng.next() % 50 == 0 { 500 } else { 200 };
            // log-normal-ish latency around 40 ms
            let latency = 40.0 * (2.0 * rng.unit() - 1.0).exp();
            detector.record_ref(
                TenantEventRef {
                    tenant_id: id,
                    endpoint: "/v1/x",
                    status_code: status,
                    latency_ms: latency,
                    timestamp_ms: now,
                },
                now,
            );
        }
    }
    let events = TENANTS as f64 * ROUNDS as f64;
    let rate = events / started.elapsed().as_secs_f64();
    println!("recorded {events:.0} events over {TENANTS} tenants: {rate:.0} events/s (one thread)");
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "top-10 by", "p50", "p99", "max"
    );
    let now = (ROUNDS - 1) * 30_000 + 1;
    for by in RankBy::ALL {
        let mut times: Vec<Duration> = (0..QUERIES)
            .map(|_| {
                let started = Instant::now();
                let top = detector.top(by, Duration::ZERO, 10, now);
                assert_eq!(top.tenants.len(), 10);
                started.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "{:<12} {:>10.2?} {:>10.2?} {:>10.2?}",
            by.to_string(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
    }
}
