//! Unit tests of `HotWindow` and `CounterRing`, kept apart so `window.rs` stays readable.
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
    window: &mut HotWindow,
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
        let mut window = HotWindow::new(&SHAPE);
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
    let mut window = HotWindow::new(&SHAPE);
    assert!(record_at(&mut window, 100_000, 100_000, 1.0, false));
    assert!(!record_at(&mut window, 100_000, 40_000, 1.0, false));
    assert!(record_at(&mut window, 100_000, 50_000, 1.0, false));
}

#[test]
fn running_window_sketch_equals_its_live_sub_windows() {
    let mut rng = TestRng::new(11);
    let mut window = HotWindow::new(&SHAPE);
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
fn assert_heap_bytes_current(window: &mut HotWindow) {
    let kept = window.heap_bytes();
    window.recount_heap_bytes();
    assert_eq!(kept, window.heap_bytes());
}

#[test]
fn baseline_holds_the_history_before_the_window_then_expires() {
    let mut window = HotWindow::new(&SHAPE);
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
    let mut window = HotWindow::new(&SHAPE);
    record_at(&mut window, 0, 0, 900.0, false);
    record_at(&mut window, 45_000, 45_000, 30.0, false);
    let mut scratch = LatencySketch::new();
    let recent = window.latency(&SHAPE, 1, &mut scratch).count();
    assert_eq!(recent, 1);
    assert_eq!(window.latency(&SHAPE, 6, &mut scratch).count(), 2);
}

#[test]
fn absorb_adds_counts_latency_and_endpoints() {
    let (mut other, mut evicted) = (HotWindow::new(&SHAPE), HotWindow::new(&SHAPE));
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
    assert_heap_bytes_current(&mut evicted);
}

/// Everything a query can read from a window, for comparing a cold/hot `TenantWindow` with a
/// `HotWindow` fed the same events. Of the top endpoint only its count: between endpoints with
/// equal counts the first name seen wins, and which was first depends on the table's history.
fn observe_tenant(window: &TenantWindow) -> String {
    let mut scratch = LatencySketch::new();
    let short = window.latency(&SHAPE, 2, &mut scratch).quantile(0.95);
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        window.counts(6),
        window.counts(2),
        window.window_p95(),
        window.baseline_p95(),
        window.baseline_count(),
        window.top_endpoint(6).map(|(_, errors)| errors),
        window.top_endpoint(1).map(|(_, errors)| errors),
        short
    )
}

fn observe_hot(window: &HotWindow) -> String {
    let mut scratch = LatencySketch::new();
    let short = window.latency(&SHAPE, 2, &mut scratch).quantile(0.95);
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        window.counts(6),
        window.counts(2),
        window.window_p95(),
        window.baseline_p95(),
        window.baseline_count(),
        window.top_endpoint(6).map(|(_, errors)| errors),
        window.top_endpoint(1).map(|(_, errors)| errors),
        short
    )
}

/// (seed, events, largest step between events in ms, largest lateness in ms, one step in N
/// idles 400 s — past window and baseline — or 0 for never, turns hot)
const TIER_CASES: &[(u64, usize, u64, u64, u64, bool)] = &[
    // a handful of events: stays cold
    (1, 10, 3_000, 0, 0, false),
    // fills past the cold capacity: promoted mid-way
    (2, 200, 1_000, 0, 0, true),
    // late events, some older than their sub-window: counted but without latency
    (3, 300, 2_000, 50_000, 0, true),
    // bursts and long idles: hot, empty, cold again, hot again
    (4, 1_000, 1_000, 20_000, 200, true),
    // a thousand events, but never more than `COLD_EVENTS` inside window and baseline: cold throughout
    (5, 1_000, 30_000, 70_000, 0, false),
    (6, 1_000, 500, 65_000, 80, true),
];

#[test]
fn a_cold_or_hot_window_answers_exactly_as_a_hot_one_table() {
    for &(seed, events, step, lateness, idle_every, turns_hot) in TIER_CASES {
        let mut rng = TestRng::new(seed);
        let (mut tiered, mut hot) = (TenantWindow::new(&SHAPE), HotWindow::new(&SHAPE));
        let (mut now, mut promoted, mut demoted) = (0i64, false, false);
        for step_no in 0..events {
            now += match idle_every > 0 && rng.below(idle_every) == 0 {
                true => 400_000,
                false => rng.below(step) as i64,
            };
            let at = now - rng.below(lateness + 1) as i64;
            let latency = LatencyKey::of(rng.log_normal(60.0, 1.2));
            let error = rng.below(4) == 0;
            let endpoint = ["/a", "/b", "/c"][rng.below(3) as usize];
            let was_hot = tiered.is_hot();
            let seq = SHAPE.bucket_of(now);
            tiered.advance(&SHAPE, seq);
            hot.advance(&SHAPE, seq);
            demoted |= was_hot && !tiered.is_hot();
            let at = SHAPE.bucket_of(at);
            let (a, b) = (
                tiered.record(&SHAPE, at, latency, error, Some(endpoint)),
                hot.record(&SHAPE, at, latency, error, Some(endpoint)),
            );
            promoted |= !was_hot && tiered.is_hot();
            assert_eq!(a, b, "seed {seed} step {step_no}");
            assert_eq!(
                observe_tenant(&tiered),
                observe_hot(&hot),
                "seed {seed} step {step_no} (hot: {})",
                tiered.is_hot()
            );
            // A ranking refreshes first: the cached figures must say the same.
            tiered.refresh_p95s();
            assert_eq!(observe_tenant(&tiered), observe_hot(&hot), "seed {seed}");
        }
        assert_eq!(promoted, turns_hot, "seed {seed}: promoted");
        if idle_every > 0 {
            assert!(demoted, "seed {seed}: an empty hot window turns cold");
        }
    }
}

/// (events per bucket, buckets with traffic, idle buckets after, hot after traffic, hot after idle)
const PROMOTION_CASES: &[(u64, i64, i64, bool, bool)] = &[
    (1, 20, 0, false, false),
    (COLD_EVENTS as u64, 1, 0, false, false),
    (COLD_EVENTS as u64 + 1, 1, 0, true, true),
    (2 * COLD_EVENTS as u64, 1, 0, true, true),
    // idle past the window but not the baseline: the baseline keeps it hot
    (2 * COLD_EVENTS as u64, 1, 10, true, true),
    // idle past window and baseline (60 s + 120 s of baseline buckets): empty, so cold again
    (2 * COLD_EVENTS as u64, 1, 40, true, false),
];

#[test]
fn promotion_and_demotion_keep_counts_exact_table() {
    for (case, &(per_bucket, busy, idle, hot_after, hot_idle)) in PROMOTION_CASES.iter().enumerate()
    {
        let mut window = TenantWindow::new(&SHAPE);
        let mut want = Counts::default();
        let mut seq = 0;
        for _ in 0..busy {
            seq += 1;
            window.advance(&SHAPE, seq);
            for i in 0..per_bucket {
                let error = i % 3 == 0;
                assert!(window.record(&SHAPE, seq, LatencyKey::of(10.0), error, None));
                want.requests += 1;
                want.errors += u64::from(error);
            }
        }
        if busy <= SHAPE.buckets as i64 {
            assert_eq!(window.counts(6), want, "case {case}");
        }
        assert_eq!(window.is_hot(), hot_after, "case {case}: after traffic");
        window.advance(&SHAPE, seq + idle);
        assert_eq!(window.is_hot(), hot_idle, "case {case}: after idling");
        if idle >= SHAPE.buckets as i64 {
            assert_eq!(window.counts(6), Counts::default(), "case {case}");
        }
        // It keeps counting exactly after either move.
        window.advance(&SHAPE, seq + idle + 1);
        assert!(window.record(&SHAPE, seq + idle + 1, LatencyKey::of(5.0), true, None));
        assert_eq!(
            window.counts(1),
            Counts {
                requests: 1,
                errors: 1
            },
            "case {case}"
        );
    }
}

#[test]
fn absorbing_a_cold_window_equals_absorbing_its_hot_twin() {
    let mut rng = TestRng::new(9);
    let (mut cold, mut twin) = (TenantWindow::new(&SHAPE), HotWindow::new(&SHAPE));
    for second in 0..20 {
        let seq = SHAPE.bucket_of(second * 7_000);
        let latency = LatencyKey::of(rng.log_normal(30.0, 1.0));
        cold.advance(&SHAPE, seq);
        twin.advance(&SHAPE, seq);
        cold.record(&SHAPE, seq, latency, second % 4 == 0, Some("/x"));
        twin.record(&SHAPE, seq, latency, second % 4 == 0, Some("/x"));
    }
    assert!(!cold.is_hot());
    let head = cold.head().unwrap();
    let (mut into_cold, mut into_hot) = (TenantWindow::new_hot(&SHAPE), HotWindow::new(&SHAPE));
    into_cold.advance(&SHAPE, head);
    into_hot.advance(&SHAPE, head);
    into_cold.absorb(&SHAPE, &cold);
    into_hot.absorb(&SHAPE, &twin);
    into_hot.refresh_p95s();
    assert_eq!(observe_tenant(&into_cold), observe_hot(&into_hot));
}

#[test]
fn a_cold_window_costs_a_fraction_of_a_hot_one() {
    let mut rng = TestRng::new(3);
    let (mut cold, mut hot) = (TenantWindow::new(&SHAPE), TenantWindow::new(&SHAPE));
    for (window, events) in [(&mut cold, 20), (&mut hot, 100)] {
        for second in 0..events {
            let seq = SHAPE.bucket_of(second * 1_000);
            window.advance(&SHAPE, seq);
            let latency = LatencyKey::of(rng.log_normal(60.0, 1.0));
            window.record(&SHAPE, seq, latency, second % 5 == 0, Some("/x"));
        }
    }
    assert!(!cold.is_hot() && hot.is_hot());
    assert!(
        cold.heap_bytes() * 4 < hot.heap_bytes(),
        "cold {} B, hot {} B",
        cold.heap_bytes(),
        hot.heap_bytes()
    );
    cold.reset();
    hot.reset();
    assert!(!hot.is_hot());
    assert_eq!(
        (cold.counts(6), hot.counts(6)),
        (Counts::default(), Counts::default())
    );
}
