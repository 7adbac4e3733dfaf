//! Memory of the tenant detector, as the process sees it: bytes per tracked tenant under Zipf
//! traffic over 100,000 tenants, and the process RSS under 1,000,000 distinct tenants with a
//! 256 MiB cap (the goals: ≤ 1 KB per tenant, RSS ≤ cap + 32 MiB, estimate within 10 %
//! of the measured growth).
//!
//! Run: `cargo bench --bench tenants_memory` (release build). Each scenario runs in a child
//! process of its own, so one's heap does not inflate the other's RSS. Memory does not depend on
//! the machine's load; record results in docs/performance.md.

mod support;

use std::fmt::Write;
use std::process::Command;

use sentinel::tenants::{TenantDetector, TenantEventRef, TenantsConfig};
use support::Rng;

const ZIPF_TENANTS: usize = 100_000;
const MINUTE_MS: i64 = 60_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// Zipf (exponent 1) over `n` ranks by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut sum = 0.0;
        let cdf = (1..=n)
            .map(|rank| {
                sum += 1.0 / rank as f64;
                sum
            })
            .collect();
        Self { cdf }
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let total = self.cdf[self.cdf.len() - 1];
        let draw = rng.unit() * total;
        self.cdf
            .partition_point(|&c| c < draw)
            .min(self.cdf.len() - 1)
    }
}

fn latency(rng: &mut Rng) -> f64 {
    // log-normal-ish around 40 ms (Box–Muller, σ = 0.8)
    let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
    40.0 * (0.8 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()).exp()
}

fn record(detector: &mut TenantDetector, rng: &mut Rng, id: &str, now: i64) {
    let status = if rng.next() % 100 == 0 { 500 } else { 200 };
    let event = TenantEventRef {
        tenant_id: id,
        endpoint: "/v1/orders/42",
        status_code: status,
        latency_ms: latency(rng),
        timestamp_ms: now,
    };
    detector.record_ref(event, now);
}

/// 100,000 Zipf tenants at `per_ten_minutes` events per 10 minutes for `minutes` (70 fills the
/// 10-minute window and the hour of baseline).
fn zipf(per_ten_minutes: i64, minutes: i64) {
    let zipf = Zipf::new(ZIPF_TENANTS);
    let config = TenantsConfig {
        max_tenants: ZIPF_TENANTS,
        max_bytes: usize::MAX,
        ..TenantsConfig::default()
    };
    let before = rss_kib();
    let mut detector = TenantDetector::new(config).expect("valid config");
    let (mut rng, mut id) = (Rng(16), String::new());
    let events = per_ten_minutes * minutes / 10;
    for i in 0..events {
        let now = i * minutes * MINUTE_MS / events;
        id.clear();
        write!(id, "tenant-{}", zipf.draw(&mut rng)).unwrap();
        record(&mut detector, &mut rng, &id, now);
    }
    let stats = detector.stats();
    let growth = (rss_kib() - before) as f64 * 1024.0;
    println!(
        "zipf {per_ten_minutes}/10min for {minutes} min: {} tracked, estimate {:.1} MiB = {:.0} B/tenant, \
         RSS growth {:.1} MiB = {:.0} B/tenant, estimate/growth {:.3}",
        stats.tracked,
        mib(stats.bytes_estimate as f64),
        stats.bytes_estimate as f64 / stats.tracked as f64,
        mib(growth),
        growth / stats.tracked as f64,
        stats.bytes_estimate as f64 / growth,
    );
}

/// 1,000,000 distinct tenants (two events each) interleaved with Zipf traffic over 100,000
/// others, under a 256 MiB cap and no tenant-count cap: the byte cap decides.
fn distinct() {
    const DISTINCT: i64 = 1_000_000;
    const CAP: usize = 256 << 20;
    let zipf = Zipf::new(ZIPF_TENANTS);
    let config = TenantsConfig {
        max_tenants: 2_000_000,
        max_bytes: CAP,
        ..TenantsConfig::default()
    };
    let idle = rss_kib();
    let mut detector = TenantDetector::new(config).expect("valid config");
    let (mut rng, mut id) = (Rng(17), String::new());
    let events = 4 * DISTINCT;
    let mut peak = 0;
    for i in 0..events {
        let now = i * 10 * MINUTE_MS / events;
        id.clear();
        match i % 2 {
            0 => write!(id, "new-{}", (i / 2) % DISTINCT).unwrap(),
            _ => write!(id, "tenant-{}", zipf.draw(&mut rng)).unwrap(),
        }
        record(&mut detector, &mut rng, &id, now);
        if i % 200_000 == 0 {
            peak = peak.max(rss_kib());
        }
    }
    let stats = detector.stats();
    let rss = rss_kib();
    peak = peak.max(rss);
    let growth = (rss - idle) as f64 * 1024.0;
    println!(
        "1M distinct + zipf, cap {} MiB: {} tracked, {} evicted ({} for bytes), estimate {:.1} MiB, \
         RSS {:.1} MiB (peak {:.1}, idle {:.1}), growth {:.1} MiB, estimate/growth {:.3}, \
         RSS - cap = {:.1} MiB (goal <= 32)",
        CAP >> 20,
        stats.tracked,
        stats.evicted,
        stats.evicted_for_bytes,
        mib(stats.bytes_estimate as f64),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        idle as f64 / 1024.0,
        mib(growth),
        stats.bytes_estimate as f64 / growth,
        rss as f64 / 1024.0 - (CAP >> 20) as f64,
    );
}

fn main() {
    match std::env::var("TENANTS_MEMORY_SCENARIO").as_deref() {
        Ok("zipf-2m") => zipf(2_000_000, 70),
        Ok("zipf-2m-10min") => zipf(2_000_000, 10),
        Ok("zipf-10m") => zipf(10_000_000, 70),
        Ok("distinct") => distinct(),
        _ => {
            println!(
                "machine: {} cores",
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
            for scenario in ["zipf-2m-10min", "zipf-2m", "zipf-10m", "distinct"] {
                let status = Command::new(std::env::current_exe().expect("own path"))
                    .env("TENANTS_MEMORY_SCENARIO", scenario)
                    .status()
                    .expect("scenario runs");
                assert!(status.success(), "{scenario}: {status}");
            }
        }
    }
}
