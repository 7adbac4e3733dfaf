//! Unit tests of `TenantTracker`: the caps, admission by weight, and exact totals.

use std::fmt::Write;

use super::*;
use crate::tenants::test_rng::TestRng;
use crate::tenants::TenantsConfig;

fn shape() -> WindowShape {
    TenantsConfig::default()
        .shape()
        .expect("default config is valid")
}

fn sample(tenant: &str, is_error: bool, timestamp_ms: i64) -> Sample<'_> {
    Sample {
        tenant_id: tenant,
        endpoint: "/v1/process",
        is_error,
        latency: LatencyKey::of(25.0),
        timestamp_ms,
    }
}

/// Tracked tenants plus `__other__` add up to every event in the window.
fn assert_totals_exact(tracker: &TenantTracker) {
    let buckets = tracker.shape().buckets;
    let mut sum = tracker.other().counts(buckets);
    for tenant in tracker.tenants() {
        let counts = tenant.window().counts(buckets);
        sum.requests += counts.requests;
        sum.errors += counts.errors;
    }
    assert_eq!(sum, tracker.totals(buckets));
}

fn tracked(tracker: &TenantTracker) -> Vec<&str> {
    let mut ids: Vec<&str> = tracker.tenants().map(TrackedTenant::id).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_million_distinct_tenants_stay_within_the_caps_and_totals_stay_exact() {
    const TENANTS: i64 = 1_000_000;
    const MAX_TENANTS: usize = 10_000;
    const MAX_BYTES: usize = 64 << 20;
    let mut tracker = TenantTracker::new(shape(), MAX_TENANTS, MAX_BYTES);
    let mut id = String::new();
    for i in 0..TENANTS {
        id.clear();
        write!(id, "tenant-{i}").unwrap();
        // Five minutes of traffic, every tenant new, one event in ten an error.
        let now = i * 300_000 / TENANTS;
        assert!(tracker.record(sample(&id, i % 10 == 0, now), now));
        if i % 50_000 == 0 {
            assert!(tracker.stats().bytes_estimate <= MAX_BYTES);
            assert!(tracker.index.len() <= MAX_TENANTS);
        }
    }
    tracker.advance_all(300_000);
    let stats = tracker.stats();
    assert_eq!(stats.tracked, MAX_TENANTS);
    assert!(
        stats.bytes_estimate <= MAX_BYTES,
        "{} bytes",
        stats.bytes_estimate
    );
    assert!(tracker.slots.len() <= MAX_TENANTS);
    assert_eq!(stats.admitted, TENANTS as u64);
    assert_eq!(stats.evicted, TENANTS as u64 - MAX_TENANTS as u64);
    assert_eq!(stats.overflow_events, stats.evicted);
    let totals = tracker.totals(tracker.shape().buckets);
    assert_eq!(
        totals,
        Counts {
            requests: 1_000_000,
            errors: 100_000
        }
    );
    assert_totals_exact(&tracker);
    eprintln!("1M distinct tenants: {stats:?}");
}

#[test]
fn a_tenant_that_starts_failing_after_the_table_is_full_is_admitted_and_kept() {
    let mut tracker = TenantTracker::new(shape(), 100, usize::MAX);
    let (mut id, mut noise) = (String::new(), 0u64);
    for bucket in 0..60i64 {
        let now = bucket * 10_000;
        for steady in 0..100 {
            id.clear();
            write!(id, "steady-{steady}").unwrap();
            tracker.record(sample(&id, false, now), now);
        }
        // From minute 5, acme sends 20 requests per bucket, 60% failing, among 200 newcomers
        // per bucket that keep the full table churning.
        for event in 0..220u64 {
            id.clear();
            if bucket >= 30 && event % 11 == 5 {
                let failing = (event / 11) % 5 < 3;
                tracker.record(sample("tenant_acme", failing, now), now);
                continue;
            }
            noise += 1;
            write!(id, "noise-{noise}").unwrap();
            tracker.record(sample(&id, false, now), now);
        }
        assert!(tracker.stats().tracked <= 100);
    }
    let acme = tracker.get("tenant_acme").expect("acme is tracked");
    // Never evicted since its first event, so its own window is exact.
    assert_eq!(acme.tracked_since_ms(), 300_000);
    assert_eq!(
        acme.window().counts(60),
        Counts {
            requests: 600,
            errors: 360
        }
    );
    let most_errors = tracker
        .tenants()
        .max_by_key(|t| t.window().counts(60).errors);
    assert_eq!(most_errors.map(TrackedTenant::id), Some("tenant_acme"));
    assert!(tracker.stats().evicted > 10_000);
    assert_totals_exact(&tracker);
}

/// (max tenants, events as (tenant, error, second), tenants tracked at the end)
type Case = (
    usize,
    &'static [(&'static str, bool, i64)],
    &'static [&'static str],
);

const EVICTION_CASES: &[Case] = &[
    // room for everyone
    (3, &[("a", false, 0), ("b", false, 0)], &["a", "b"]),
    // the lightest goes, not the oldest: "a" arrived first but weighs most
    (
        2,
        &[
            ("a", false, 0),
            ("a", false, 0),
            ("a", false, 0),
            ("b", false, 0),
            ("c", false, 0),
        ],
        &["a", "c"],
    ),
    // an error weighs more than a request: "b" (one error) outweighs "a" (two requests)
    (
        2,
        &[
            ("a", false, 0),
            ("a", false, 0),
            ("b", true, 0),
            ("c", false, 0),
        ],
        &["b", "c"],
    ),
    // decay: "a" was heavy an hour ago, "b" is light but current; "a" goes
    (
        2,
        &[
            ("a", false, 0),
            ("a", false, 0),
            ("a", false, 0),
            ("b", false, 3_600),
            ("c", false, 3_600),
        ],
        &["b", "c"],
    ),
];

#[test]
fn eviction_takes_the_lightest_by_decayed_weight_table() {
    for (case, &(max_tenants, events, want)) in EVICTION_CASES.iter().enumerate() {
        let mut tracker = TenantTracker::new(shape(), max_tenants, usize::MAX);
        for &(tenant, error, second) in events {
            tracker.record(sample(tenant, error, second * 1_000), second * 1_000);
        }
        assert_eq!(tracked(&tracker), want, "case {case}");
        assert_totals_exact(&tracker);
    }
}

#[test]
fn the_byte_cap_shrinks_the_table_and_holds() {
    let max_bytes = 256 << 10;
    let mut tracker = TenantTracker::new(shape(), 10_000, max_bytes);
    let mut id = String::new();
    for i in 0..5_000i64 {
        id.clear();
        write!(id, "tenant-{}", i % 700).unwrap();
        let now = i * 100;
        tracker.record(sample(&id, i % 3 == 0, now), now);
        assert!(tracker.bytes_estimate() <= max_bytes, "event {i}");
    }
    let stats = tracker.stats();
    assert!(stats.tracked < 700 && stats.tracked > 10, "{stats:?}");
    assert!(stats.evicted_for_bytes > 0 || stats.evicted > 0);
    assert_totals_exact(&tracker);
}

#[test]
fn weights_are_rebased_before_they_overflow() {
    let mut tracker = TenantTracker::new(shape(), 2, usize::MAX);
    // A week, one event a minute: 2^(week / 5 min) would overflow an f64 many times over.
    for minute in 0..7 * 24 * 60i64 {
        let now = minute * 60_000;
        tracker.record(sample("steady", false, now), now);
    }
    let weight = tracker.get("steady").unwrap().weight;
    assert!(weight.is_finite() && weight > 0.0, "{weight}");
}

#[test]
fn late_events_are_counted_and_dropped() {
    let mut tracker = TenantTracker::new(shape(), 10, usize::MAX);
    assert!(tracker.record(sample("a", false, 1_000_000), 1_000_000));
    assert!(!tracker.record(sample("a", true, 1_000_000 - 600_000), 1_000_000));
    // from the future: counted as now
    assert!(tracker.record(sample("a", true, 9_000_000), 1_000_000));
    let stats = tracker.stats();
    assert_eq!(stats.late_events, 1);
    assert_eq!(
        tracker.totals(60),
        Counts {
            requests: 2,
            errors: 1
        }
    );
}

/// Ten minutes of Zipf traffic (exponent 1) over 100,000 tenants, 2,000,000 events at 1 % errors:
/// most tenants send a few requests and stay cold, the head of the distribution turns hot. The
/// issue's goal is at most 1 KB per tracked tenant on average, everything counted (slab, index,
/// ids, windows, allocator overhead); the one-form windows of before cost about 4 KB.
#[test]
fn a_tracked_tenant_costs_at_most_a_kilobyte_under_zipf_traffic() {
    const TENANTS: usize = 100_000;
    const EVENTS: i64 = 2_000_000;
    const WINDOW_MS: i64 = 600_000;
    let mut tracker = TenantTracker::new(shape(), TENANTS, usize::MAX);
    let mut cdf = Vec::with_capacity(TENANTS);
    let mut sum = 0.0;
    for rank in 1..=TENANTS {
        sum += 1.0 / rank as f64;
        cdf.push(sum);
    }
    let ids: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i}")).collect();
    let mut rng = TestRng::new(16);
    for i in 0..EVENTS {
        let now = i * WINDOW_MS / EVENTS;
        let draw = rng.unit() * sum;
        let rank = cdf.partition_point(|&c| c < draw).min(TENANTS - 1);
        let sample = Sample {
            tenant_id: &ids[rank],
            endpoint: "/v1/orders/:id",
            is_error: rng.below(100) == 0,
            latency: LatencyKey::of(rng.log_normal(40.0, 0.8)),
            timestamp_ms: now,
        };
        assert!(tracker.record(sample, now));
    }
    tracker.advance_all(WINDOW_MS);
    let stats = tracker.stats();
    let hot = tracker.tenants().filter(|t| t.window().is_hot()).count();
    let per_tenant = stats.bytes_estimate / stats.tracked;
    eprintln!(
        "Zipf over {TENANTS}: {} tracked, {hot} hot, {} bytes, {per_tenant} bytes per tenant",
        stats.tracked, stats.bytes_estimate
    );
    assert!(stats.tracked > 80_000, "{stats:?}");
    assert!(per_tenant <= 1024, "{per_tenant} bytes per tracked tenant");
    assert_totals_exact(&tracker);
}
