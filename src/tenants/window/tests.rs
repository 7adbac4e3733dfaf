//! Unit tests of `TenantWindow` and `CounterRing`, kept apart so `window.rs` stays readable.
//! Time is plain epoch milliseconds; nothing here reads a clock.

use super::*;
use crate::tenants::test_rng::TestRng;

/// A 60 s window of 10 s buckets, 20 s latency sub-windows, an 80 s baseline in 40 s buckets.
const SHAPE: WindowShape = WindowShape {
    bucket_ms: 10_000,
    buckets: 6,
    buckets_per_latency: 2,
    latency_slots: 3,
    latency_per_baseline: 2,
    baseline_slots: 3,
    max_endpoints: 4,
};

fn record_at(
    window: &mut TenantWindow,
    now_ms: i64,
    at_ms: i64,
    latency_ms: f64,
    error: bool,
) -> bool {
    window.advance(&SHAPE, SHAPE.bucket_of(now_ms));
    let endpoint = error.then_some("/v1/pay");
    window.record(
        &SHAPE,
        SHAPE.bucket_of(at_ms),
        LatencyKey::of(latency_ms),
        error,
        endpoint,
    )
}

/// (events as (now ms, event ms, error), query at ms, buckets, expected (requests, errors))
type Case = (&'static [(i64, i64, bool)], i64, usize, (u64, u64));

const COUNT_CASES: &[Case] = &[
    (&[], 0, 6, (0, 0)),
    (&[(0, 0, false), (5_000, 5_000, true)], 9_999, 6, (2, 1)),
    // 60 s later the first bucket has left the 60 s window
    (&[(0, 0, true), (30_000, 30_000, false)], 60_000, 6, (1, 0)),
    (&[(0, 0, true), (30_000, 30_000, false)], 59_999, 6, (2, 1)),
    // the last two buckets only
    (
        &[
            (0, 0, true),
            (30_000, 30_000, false),
            (45_000, 45_000, true),
        ],
        45_000,
        2,
        (2, 1),
    ),
    // a late event still inside the window counts; one older than the window does not
    (
        &[(50_000, 20_000, true), (70_000, 5_000, true)],
        70_000,
        6,
        (1, 1),
    ),
    // idle for an hour: nothing of the past survives
    (
        &[(0, 0, true), (3_600_000, 3_600_000, false)],
        3_600_000,
        6,
        (1, 0),
    ),
];

#[test]
fn counts_over_the_window_table() {
    for (case, &(events, query_ms, buckets, want)) in COUNT_CASES.iter().enumerate() {
        let mut window = TenantWindow::new(&SHAPE);
        for &(now, at, error) in events {
            record_at(&mut window, now, at, 20.0, error);
        }
        window.advance(&SHAPE, SHAPE.bucket_of(query_ms));
        let counts = window.counts(buckets);
        assert_eq!((counts.requests, counts.errors), want, "case {case}");
    }
}

#[test]
fn events_older_than_the_window_are_refused() {
    let mut window = TenantWindow::new(&SHAPE);
    assert!(record_at(&mut window, 100_000, 100_000, 1.0, false));
    assert!(!record_at(&mut window, 100_000, 40_000, 1.0, false));
    assert!(record_at(&mut window, 100_000, 50_000, 1.0, false));
}

#[test]
fn running_window_sketch_equals_its_live_sub_windows() {
    let mut rng = TestRng::new(11);
    let mut window = TenantWindow::new(&SHAPE);
    let mut now = 0i64;
    for step in 0..3_000 {
        now += rng.below(4_000) as i64;
        let at = now - rng.below(70_000) as i64;
        record_at(
            &mut window,
            now,
            at,
            rng.log_normal(80.0, 1.0),
            step % 7 == 0,
        );
        let mut live = LatencySketch::new();
        window.latency.iter().for_each(|sketch| live.merge(sketch));
        assert_eq!(window.window_latency.count(), live.count(), "step {step}");
        assert_eq!(window.window_p95(), live.quantile(0.95), "step {step}");
        assert_eq!(
            window.window_p95(),
            window.window_latency.quantile(0.95),
            "step {step}"
        );
        let mut history = LatencySketch::new();
        window
            .baseline
            .iter()
            .for_each(|sketch| history.merge(sketch));
        assert_eq!(
            window.baseline_latency.count(),
            history.count(),
            "step {step}"
        );
    }
    assert_heap_bytes_current(&mut window);
}

/// The incrementally kept byte count matches a full recount.
fn assert_heap_bytes_current(window: &mut TenantWindow) {
    let kept = window.heap_bytes();
    window.recount_heap_bytes();
    assert_eq!(kept, window.heap_bytes());
}

#[test]
fn baseline_holds_the_history_before_the_window_then_expires() {
    let mut window = TenantWindow::new(&SHAPE);
    // 0–60 s: fast. 60–120 s: slow.
    for second in 0..120 {
        let latency = if second < 60 { 10.0 } else { 500.0 };
        record_at(&mut window, second * 1_000, second * 1_000, latency, false);
    }
    window.advance(&SHAPE, SHAPE.bucket_of(119_999));
    let p95 = window.window_p95().unwrap();
    let baseline = window.baseline_p95().unwrap();
    assert!((p95 - 500.0).abs() / 500.0 < 0.01, "window p95 {p95}");
    assert!(
        (baseline - 10.0).abs() / 10.0 < 0.01,
        "baseline p95 {baseline}"
    );
    assert_eq!(window.baseline_count(), 60);
    // Four minutes later the window and the baseline are both empty.
    window.advance(&SHAPE, SHAPE.bucket_of(360_000));
    assert_eq!(window.counts(6), Counts::default());
    assert_eq!((window.baseline_count(), window.baseline_p95()), (0, None));
    assert_eq!(window.window_p95(), None);
}

#[test]
fn a_shorter_query_merges_only_its_sub_windows() {
    let mut window = TenantWindow::new(&SHAPE);
    record_at(&mut window, 0, 0, 900.0, false);
    record_at(&mut window, 45_000, 45_000, 30.0, false);
    let mut scratch = LatencySketch::new();
    let recent = window.latency(&SHAPE, 1, &mut scratch).count();
    assert_eq!(recent, 1);
    assert_eq!(window.latency(&SHAPE, 6, &mut scratch).count(), 2);
}

#[test]
fn absorb_adds_counts_latency_and_endpoints() {
    let (mut other, mut evicted) = (TenantWindow::new(&SHAPE), TenantWindow::new(&SHAPE));
    record_at(&mut other, 0, 0, 10.0, true);
    for second in 0..90 {
        record_at(
            &mut evicted,
            second * 1_000,
            second * 1_000,
            40.0,
            second % 3 == 0,
        );
    }
    other.advance(&SHAPE, SHAPE.bucket_of(89_000));
    other.absorb(&SHAPE, &evicted);
    let (mine, theirs) = (other.counts(6), evicted.counts(6));
    assert_eq!(mine.requests, theirs.requests);
    assert_eq!(mine.errors, theirs.errors);
    assert_eq!(other.top_endpoint(6), Some(("/v1/pay", theirs.errors)));
    // `other`'s own event at 0 s has left the window for the baseline.
    assert_eq!(other.baseline_count(), evicted.baseline_count() + 1);
    assert_eq!(other.window_p95(), evicted.window_p95());
    assert_heap_bytes_current(&mut other);
    evicted.reset();
    assert_heap_bytes_current(&mut evicted);
}

#[test]
fn reset_forgets_everything_and_keeps_the_allocations() {
    let mut window = TenantWindow::new(&SHAPE);
    for second in 0..200 {
        record_at(
            &mut window,
            second * 1_000,
            second * 1_000,
            second as f64,
            true,
        );
    }
    let sketch_bytes = window
        .latency
        .iter()
        .map(LatencySketch::heap_bytes)
        .sum::<usize>();
    window.reset();
    assert_eq!(window.head(), None);
    assert_eq!(window.window_p95(), None);
    assert_eq!(
        window
            .latency
            .iter()
            .map(LatencySketch::heap_bytes)
            .sum::<usize>(),
        sketch_bytes
    );
    assert!(record_at(&mut window, 500_000, 500_000, 5.0, false));
    assert_eq!(
        window.counts(6),
        Counts {
            requests: 1,
            errors: 0
        }
    );
    assert_eq!(window.top_endpoint(6), None);
}
