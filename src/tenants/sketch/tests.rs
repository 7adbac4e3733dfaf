//! Unit tests of `LatencySketch`: accuracy against exact quantiles on seeded log-normal data,
//! merge and subtract, the p95 cursor, zeros, and the bin cap.

use super::*;
use crate::tenants::test_rng::TestRng;

fn exact(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn relative_error(got: f64, want: f64) -> f64 {
    (got - want).abs() / want
}

#[test]
fn ln_gamma_constant_matches_gamma() {
    assert!((LN_GAMMA - GAMMA.ln()).abs() < 1e-15);
}

#[test]
fn every_value_maps_to_a_bin_within_alpha() {
    // (value in ms, what we expect back)
    let cases: &[(f64, Option<f64>)] = &[
        (0.0, None),
        (-3.0, None),
        (f64::NAN, None),
        (0.0009, None),
        (0.001, Some(0.001)),
        (0.25, Some(0.25)),
        (1.0, Some(1.0)),
        (49.9, Some(49.9)),
        (1234.5, Some(1234.5)),
        (86_400_000.0, Some(86_400_000.0)),
        (f64::INFINITY, Some(MAX_TRACKED_MS)),
    ];
    for &(value, want) in cases {
        let got = LatencyKey::of(value).0.map(value_of_key);
        match (got, want) {
            (None, None) => {}
            (Some(got), Some(want)) => assert!(
                relative_error(got, want) <= RELATIVE_ACCURACY + 1e-12,
                "{value}: got {got}, want {want}"
            ),
            other => panic!("{value}: {other:?}"),
        }
    }
}

#[test]
fn log_normal_quantiles_within_two_percent_of_exact() {
    for (seed, n, median_ms, sigma) in [(1, 10_000, 50.0, 1.0), (7, 100_000, 120.0, 0.5)] {
        let mut rng = TestRng::new(seed);
        let mut values: Vec<f64> = (0..n).map(|_| rng.log_normal(median_ms, sigma)).collect();
        let mut sketch = LatencySketch::new();
        values.iter().for_each(|&v| sketch.insert(v));
        values.sort_by(f64::total_cmp);
        assert_eq!(sketch.count(), n as u64);
        for q in [0.5, 0.95, 0.99] {
            let (got, want) = (sketch.quantile(q).unwrap(), exact(&values, q));
            assert!(
                relative_error(got, want) <= 0.02,
                "seed {seed} q{q}: got {got:.3}, exact {want:.3}"
            );
        }
    }
}

#[test]
fn merging_parts_equals_one_sketch_of_everything() {
    let mut rng = TestRng::new(42);
    let values: Vec<f64> = (0..20_000).map(|_| rng.log_normal(30.0, 1.2)).collect();
    let mut whole = LatencySketch::new();
    values.iter().for_each(|&v| whole.insert(v));
    let mut merged = LatencySketch::new();
    for part in values.chunks(1_337) {
        let mut sketch = LatencySketch::new();
        part.iter().for_each(|&v| sketch.insert(v));
        merged.merge(&sketch);
    }
    assert_eq!(merged, whole);
    for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
        assert_eq!(merged.quantile(q), whole.quantile(q));
    }
}

#[test]
fn subtracting_a_merged_part_restores_the_rest() {
    let mut rng = TestRng::new(9);
    let (mut rest, mut part) = (LatencySketch::new(), LatencySketch::new());
    (0..5_000).for_each(|_| rest.insert(rng.log_normal(40.0, 0.8)));
    (0..5_000).for_each(|_| part.insert(rng.log_normal(900.0, 0.3)));
    let mut running = rest.clone();
    running.merge(&part);
    running.subtract(&part);
    for q in [0.5, 0.95, 0.99] {
        assert_eq!(running.quantile(q), rest.quantile(q));
    }
    assert_eq!(running.count(), rest.count());
}

#[test]
fn the_p95_cursor_follows_inserts_exactly() {
    let mut rng = TestRng::new(21);
    let mut sketch = LatencySketch::new();
    let mut cursor = None;
    for i in 0..20_000 {
        // A shifting mix of zeros, fast and slow values moves the p95 both ways.
        let value = match (i / 2_000) % 3 {
            0 if rng.below(3) == 0 => 0.0,
            1 => rng.log_normal(900.0, 0.3),
            _ => rng.log_normal(20.0, 1.0),
        };
        let key = LatencyKey::of(value);
        sketch.insert_key(key, 1);
        cursor = match cursor {
            Some(cursor) => sketch.follow_p95(cursor, key),
            None => sketch.p95_cursor(),
        };
        let got = cursor.map(LatencySketch::cursor_value);
        assert_eq!(got, sketch.quantile(0.95), "insert {i}");
    }
}

#[test]
fn empty_sketch_has_no_quantiles() {
    let sketch = LatencySketch::new();
    assert_eq!(sketch.quantile(0.5), None);
    assert_eq!((sketch.count(), sketch.heap_bytes()), (0, 0));
}

#[test]
fn zeros_are_counted_and_ranked_first() {
    let mut sketch = LatencySketch::new();
    (0..90).for_each(|_| sketch.insert(0.0));
    (0..10).for_each(|_| sketch.insert(200.0));
    assert_eq!(sketch.count(), 100);
    assert_eq!(sketch.quantile(0.5), Some(0.0));
    assert_eq!(sketch.quantile(0.89), Some(0.0));
    let p95 = sketch.quantile(0.95).unwrap();
    assert!(relative_error(p95, 200.0) <= RELATIVE_ACCURACY);
}

#[test]
fn bin_cap_holds_and_keeps_the_tail_exact() {
    let mut rng = TestRng::new(3);
    let mut sketch = LatencySketch::with_max_bins(128);
    let mut values: Vec<f64> = (0..10_000).map(|_| rng.log_normal(100.0, 2.0)).collect();
    values.iter().for_each(|&v| sketch.insert(v));
    // Descending inserts make the sketch grow downward, the path that shifts bins.
    (1..200)
        .rev()
        .for_each(|ms| sketch.insert(f64::from(ms) / 100.0));
    values.extend((1..200).map(|ms| f64::from(ms) / 100.0));
    values.sort_by(f64::total_cmp);
    assert!(sketch.bin_count() <= 128, "{} bins", sketch.bin_count());
    assert_eq!(sketch.count(), values.len() as u64);
    let (got, want) = (sketch.quantile(0.999).unwrap(), exact(&values, 0.999));
    assert!(relative_error(got, want) <= 0.02, "{got} vs {want}");
    // The collapsed bottom answers with the lowest kept bin: higher than the truth, never lower.
    assert!(sketch.quantile(0.0).unwrap() >= values[0]);
}
