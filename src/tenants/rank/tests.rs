//! Unit tests of the rankings: Wilson bounds, ordering tables, evidence arithmetic, and the
//! incident scenario through the whole detector.

use std::time::Duration;

use super::*;
use crate::tenants::test_rng::TestRng;
use crate::tenants::{TenantDetector, TenantEvent, TenantsConfig};

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() < 5e-4
}

#[test]
fn wilson_lower_bound_table() {
    // (errors, requests, lower bound at z = 1.96)
    let cases: &[(u64, u64, f64)] = &[
        (0, 0, 0.0),
        (0, 100, 0.0),
        (3, 4, 0.3006),
        (400, 2_000, 0.1831),
        (10, 10, 0.7225),
        (1, 2_000, 0.0001),
        (600, 1_000, 0.5693),
        // more errors than requests is clamped, not NaN
        (5, 4, 0.5101),
    ];
    for &(errors, requests, want) in cases {
        let got = wilson_lower_bound(errors, requests);
        assert!(
            close(got, want),
            "{errors}/{requests}: got {got:.4}, want {want}"
        );
    }
}

fn candidate(
    id: &str,
    requests: u64,
    errors: u64,
    p95: Option<f64>,
    baseline: Option<f64>,
) -> Candidate<'_> {
    Candidate {
        id,
        counts: Counts { requests, errors },
        p95_ms: p95,
        baseline_p95_ms: baseline,
    }
}

/// (by, limit, candidates as (id, requests, errors, p95, baseline p95), expected order)
type Case = (
    RankBy,
    usize,
    &'static [(&'static str, u64, u64, Option<f64>, Option<f64>)],
    &'static [&'static str],
);

const ORDER_CASES: &[Case] = &[
    (
        RankBy::Errors,
        10,
        &[
            ("a", 100, 10, None, None),
            ("b", 50, 30, None, None),
            ("c", 9, 0, None, None),
        ],
        &["b", "a"],
    ),
    // 3 of 4 failing must not outrank 400 of 2,000: too few requests ranks after every full sample
    (
        RankBy::ErrorRate,
        10,
        &[
            ("small", 4, 3, None, None),
            ("big", 2_000, 400, None, None),
            ("calm", 2_000, 20, None, None),
        ],
        &["big", "calm", "small"],
    ),
    // with enough requests, the Wilson bound decides: 20 of 20 beats 400 of 2,000
    (
        RankBy::ErrorRate,
        10,
        &[("all", 20, 20, None, None), ("big", 2_000, 400, None, None)],
        &["all", "big"],
    ),
    // the same rate on more requests is more certain
    (
        RankBy::ErrorRate,
        10,
        &[("n50", 50, 25, None, None), ("n500", 500, 250, None, None)],
        &["n500", "n50"],
    ),
    (
        RankBy::Latency,
        10,
        &[
            ("fast", 100, 0, Some(20.0), None),
            ("slow", 100, 0, Some(900.0), None),
            ("few", 5, 0, Some(5_000.0), None),
            ("none", 100, 0, None, None),
        ],
        &["slow", "fast"],
    ),
    (
        RankBy::Deviation,
        10,
        &[
            ("x2", 100, 0, Some(200.0), Some(100.0)),
            ("x1.5", 100, 0, Some(900.0), Some(600.0)),
            ("new", 100, 0, Some(900.0), None),
        ],
        &["x2", "x1.5"],
    ),
    // limit, and ties broken by errors, then requests, then id
    (
        RankBy::Latency,
        2,
        &[
            ("b", 100, 1, Some(50.0), None),
            ("a", 100, 1, Some(50.0), None),
            ("c", 100, 2, Some(50.0), None),
            ("d", 300, 0, Some(10.0), None),
        ],
        &["c", "a"],
    ),
    (RankBy::Errors, 0, &[("a", 100, 10, None, None)], &[]),
];

#[test]
fn ranking_order_table() {
    for (case, &(by, limit, candidates, want)) in ORDER_CASES.iter().enumerate() {
        let candidates = candidates
            .iter()
            .map(|&(id, requests, errors, p95, baseline)| {
                candidate(id, requests, errors, p95, baseline)
            });
        let got: Vec<&str> = select_top(by, candidates, limit, 20)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(got, want, "case {case} ({by})");
    }
}

#[test]
fn evidence_table() {
    let latency = LatencyFigures {
        p50_ms: Some(40.0),
        p95_ms: Some(300.0),
        p99_ms: Some(800.0),
        baseline_p95_ms: Some(100.0),
    };
    /// (tenant (requests, errors), totals (requests, errors), share, rate, lift)
    type Case = ((u64, u64), (u64, u64), f64, f64, Option<f64>);
    let cases: &[Case] = &[
        (
            (1_000, 100),
            (10_000, 200),
            0.5,
            0.1,
            Some(0.1 / (100.0 / 9_000.0)),
        ),
        // the rest never failed: no finite lift
        ((1_000, 100), (10_000, 100), 1.0, 0.1, None),
        ((0, 0), (0, 0), 0.0, 0.0, None),
        ((500, 0), (1_000, 50), 0.0, 0.0, Some(0.0)),
    ];
    for &((requests, errors), (total_requests, total_errors), share, rate, lift) in cases {
        let counts = Counts { requests, errors };
        let totals = Counts {
            requests: total_requests,
            errors: total_errors,
        };
        let got = evidence(
            "t",
            counts,
            totals,
            latency,
            Some(("/v1/x", errors)),
            Some(7),
        );
        assert!(close(got.error_share, share), "{got:?}");
        assert!(close(got.error_rate, rate), "{got:?}");
        match (got.lift, lift) {
            (Some(got), Some(want)) => assert!(close(got, want), "lift {got} vs {want}"),
            (got, want) => assert_eq!(got, want),
        }
        assert_eq!(got.rest_requests, total_requests - requests);
        assert_eq!(got.deviation, Some(3.0));
    }
}

#[test]
fn rank_by_parses_and_serializes_as_the_api_spells_it() {
    for by in RankBy::ALL {
        assert_eq!(by.as_str().parse::<RankBy>(), Ok(by));
        assert_eq!(serde_json::to_string(&by).unwrap(), format!("\"{by}\""));
    }
    assert!(matches!(
        "5xx".parse::<RankBy>(),
        Err(TenantsError::UnknownRanking(_))
    ));
}

const BUCKET_MS: i64 = 10_000;

/// 500 tenants at ~1% errors for ten minutes; then, within one 10 s bucket, tenant-137 sends 50
/// requests of which 60% fail. After that one bucket it must rank first by errors and by error
/// rate, with evidence that names its endpoint.
#[test]
fn one_of_500_tenants_jumping_to_60_percent_errors_ranks_first_within_one_bucket() {
    let mut detector = TenantDetector::new(TenantsConfig::default()).unwrap();
    let mut rng = TestRng::new(500);
    let mut event = TenantEvent {
        tenant_id: String::new(),
        endpoint: String::new(),
        status_code: 200,
        latency_ms: 0.0,
        timestamp_ms: 0,
    };
    for bucket in 0..61i64 {
        for tenant in 0..500 {
            let incident = bucket == 60 && tenant == 137;
            for i in 0..if incident { 50 } else { 10 } {
                let now = bucket * BUCKET_MS + i * 100;
                let failing = if incident {
                    i % 5 < 3
                } else {
                    rng.below(100) == 0
                };
                event.tenant_id.clear();
                event.tenant_id.push_str(&format!("tenant-{tenant}"));
                event.endpoint.clear();
                event.endpoint.push_str(if incident {
                    "/v1/process/8812?retry=1"
                } else {
                    "/v1/items/17"
                });
                event.status_code = if failing { 503 } else { 200 };
                event.latency_ms = rng.log_normal(40.0, 0.5);
                event.timestamp_ms = now;
                assert!(detector.record(&event, now));
            }
        }
    }
    let now = 61 * BUCKET_MS - 1;
    for by in [RankBy::Errors, RankBy::ErrorRate] {
        let top = detector.top(by, Duration::from_secs(600), 3, now);
        let first = &top.tenants[0];
        assert_eq!(first.tenant_id, "tenant-137", "by {by}: {top:#?}");
        // bucket 0 has left the window: 59 ordinary buckets of 10 plus the incident's 50
        assert_eq!((first.requests, first.errors - 30 <= 10), (640, true));
        let endpoint = first.top_endpoint.as_ref().unwrap();
        assert_eq!(
            (endpoint.endpoint.as_str(), endpoint.errors),
            ("/v1/process/:id", 30)
        );
        assert!(first.lift.unwrap() > 3.0, "{first:?}");
        assert_eq!(top.total_requests, 499 * 600 + 640);
        assert_eq!(top.other.requests, 0);
    }
    let json = serde_json::to_value(detector.top(RankBy::Errors, Duration::ZERO, 1, now)).unwrap();
    assert_eq!(json["by"], "errors");
    assert_eq!(json["tenants"][0]["tenant_id"], "tenant-137");
}
