//! Exactness of the merge: owners of disjoint tenants (plain detectors split by tenant, and the
//! sharded service) give the same answer as one detector fed the same events.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::*;
use crate::tenants::test_rng::TestRng;
use crate::tenants::{TenantDetector, TenantEvent, TenantService, TenantsConfig};

const MINUTE: i64 = 60_000;
/// Events run from 0 to 70 minutes: the last 10 are the window, the hour before the baseline.
const END_MS: i64 = 70 * MINUTE;

/// A seeded day: `tenants` tenants with Zipf-like traffic, some failing, some slow, some with
/// exactly equal counts (ties), over 70 minutes in time order.
fn events(seed: u64, tenants: u64, count: usize) -> Vec<TenantEvent> {
    let mut rng = TestRng::new(seed);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let timestamp_ms = i as i64 * END_MS / count as i64;
        // Zipf-ish: a few tenants carry most traffic.
        let tenant = ((tenants as f64).powf(rng.unit()) as u64).min(tenants - 1);
        let late = timestamp_ms > 60 * MINUTE;
        let failing = match tenant % 7 {
            0 => rng.below(3) == 0,
            3 if late => rng.below(2) == 0,
            _ => rng.below(50) == 0,
        };
        let slow = tenant % 5 == 1 && late;
        out.push(TenantEvent {
            tenant_id: format!("tenant-{tenant}"),
            endpoint: format!("/v1/items/{}", rng.below(100)),
            status_code: if failing { 502 } else { 200 },
            latency_ms: rng.log_normal(if slow { 300.0 } else { 40.0 }, 0.4),
            timestamp_ms,
        });
    }
    // Ties: two tenants with the same, deterministic traffic in the window.
    for tie in ["tie-a", "tie-b"] {
        for k in 0..40 {
            out.push(TenantEvent {
                tenant_id: tie.into(),
                endpoint: "/v1/tie".into(),
                status_code: if k % 4 == 0 { 500 } else { 200 },
                latency_ms: 55.0,
                timestamp_ms: END_MS - 1,
            });
        }
    }
    out.sort_by_key(|e| e.timestamp_ms);
    out
}

fn config() -> TenantsConfig {
    TenantsConfig {
        max_tenants: 100_000,
        ..TenantsConfig::default()
    }
}

/// Events are recorded in batches of this many, at the time of the batch's last event (as ingest
/// records a request's body): a tenant is tracked since the batch that brought it.
const BATCH: usize = 997;

fn batch_now(batch: &[TenantEvent]) -> i64 {
    batch.last().map_or(0, |e| e.timestamp_ms)
}

/// One detector fed everything.
fn single(events: &[TenantEvent]) -> TenantDetector {
    let mut detector = TenantDetector::new(config()).unwrap();
    for batch in events.chunks(BATCH) {
        for event in batch {
            detector.record(event, batch_now(batch));
        }
    }
    detector
}

/// `owners` detectors, tenant `tenant-N` to owner `N % owners` (ties to 0 and 1): like a fleet.
fn split(events: &[TenantEvent], owners: usize) -> Vec<TenantDetector> {
    let mut detectors: Vec<TenantDetector> = (0..owners)
        .map(|_| TenantDetector::new(config()).unwrap())
        .collect();
    for batch in events.chunks(BATCH) {
        for event in batch {
            let owner = match event.tenant_id.strip_prefix("tenant-") {
                Some(n) => n.parse::<usize>().unwrap() % owners,
                None => usize::from(event.tenant_id == "tie-b") % owners,
            };
            detectors[owner].record(event, batch_now(batch));
        }
    }
    detectors
}

const CASES: &[(u64, u64, usize)] = &[
    // (seed, tenants, events)
    (1, 50, 20_000),
    (2, 500, 60_000),
    (3, 3, 5_000),
    (4, 5_000, 80_000),
];

#[test]
fn merged_owners_equal_one_detector_for_every_ranking() {
    let mut checked = 0;
    for &(seed, tenants, count) in CASES {
        let events = events(seed, tenants, count);
        let mut one = single(&events);
        for owners in [1, 2, 3, 5] {
            let mut detectors = split(&events, owners);
            for by in RankBy::ALL {
                for (window, limit) in [(0, 10), (600, 1), (120, 3), (60, 50), (600, 0)] {
                    let window = Duration::from_secs(window);
                    let expected = one.top(by, window, limit, END_MS);
                    let answers: Vec<TopTenants> = detectors
                        .iter_mut()
                        .map(|d| d.top(by, window, limit, END_MS))
                        .collect();
                    let merged = merge_top(&answers, limit).unwrap();
                    assert_eq!(
                        merged, expected,
                        "seed {seed}, {owners} owners, by {by}, limit {limit}"
                    );
                    checked += usize::from(!expected.tenants.is_empty());
                }
            }
        }
    }
    // Not vacuous: most rankings had tenants to place.
    assert!(checked > 200, "{checked}");
}

#[test]
fn sharded_service_equals_one_detector() {
    for &(seed, tenants, count) in CASES {
        let events = events(seed, tenants, count);
        let mut one = single(&events);
        for shards in [1, 2, 4, 7] {
            let service = TenantService::with_shards(NonZeroUsize::new(shards).unwrap());
            service.configure(Some(config()), Vec::new()).unwrap();
            assert_eq!(service.shards(), shards);
            // In batches, as ingest records them.
            for batch in events.chunks(BATCH) {
                let now = batch_now(batch);
                let recorded = service.record_batch(batch.iter().map(TenantEvent::as_ref), now);
                // Events older than the window at `now` are late for both: see the stats below.
                assert!(recorded.is_some_and(|n| n <= batch.len()));
            }
            for by in RankBy::ALL {
                let expected = one.top(by, Duration::ZERO, 10, END_MS);
                let top = service.top(by, Duration::ZERO, 10, END_MS).unwrap();
                assert_eq!(top, expected, "seed {seed}, {shards} shards, by {by}");
            }
            let leader = one.top(RankBy::Errors, Duration::ZERO, 1, END_MS).tenants[0].clone();
            let shown = service.tenant(&leader.tenant_id, Duration::ZERO, END_MS);
            assert_eq!(shown, Some(Some(leader)), "seed {seed}, {shards} shards");
            let other = one.tenant(OTHER_TENANT, Duration::ZERO, END_MS);
            let shown = service.tenant(OTHER_TENANT, Duration::ZERO, END_MS);
            assert_eq!(shown, Some(other));
            let (stats, expected) = (service.stats().unwrap(), one.stats());
            assert_eq!(
                (stats.tracked, stats.admitted, stats.late_events),
                (expected.tracked, expected.admitted, expected.late_events)
            );
        }
    }
}

/// `__other__` sums counts; its latency survives only when one owner alone has such traffic.
#[test]
fn other_sums_counts_and_keeps_latency_only_when_alone() {
    let totals = Counts {
        requests: 1000,
        errors: 100,
    };
    let part = |requests, errors, p95| {
        let mut e = rank::evidence(
            OTHER_TENANT,
            Counts { requests, errors },
            totals,
            LatencyFigures {
                p95_ms: p95,
                ..LatencyFigures::default()
            },
            None,
            None,
        );
        e.tracked_since_ms = None;
        e
    };
    let cases = [
        // (parts, requests, errors, p95)
        (vec![part(0, 0, None), part(0, 0, None)], 0, 0, None),
        (
            vec![part(10, 5, Some(80.0)), part(0, 0, None)],
            10,
            5,
            Some(80.0),
        ),
        (
            vec![part(10, 5, Some(80.0)), part(30, 1, Some(20.0))],
            40,
            6,
            None,
        ),
    ];
    for (parts, requests, errors, p95) in cases {
        let refs: Vec<&TenantEvidence> = parts.iter().collect();
        let other = merge_other(&refs, totals);
        assert_eq!(
            (other.requests, other.errors, other.p95_ms),
            (requests, errors, p95)
        );
        assert_eq!(other.error_share, errors as f64 / 100.0);
        assert_eq!(other.rest_requests, 1000 - requests);
    }
}

#[test]
fn refuses_answers_that_do_not_fit_together() {
    let events = events(9, 20, 2_000);
    let mut detectors = split(&events, 2);
    let now = END_MS;
    let errors = detectors[0].top(RankBy::Errors, Duration::ZERO, 5, now);
    let latency = detectors[1].top(RankBy::Latency, Duration::ZERO, 5, now);
    let short = detectors[1].top(RankBy::Errors, Duration::from_secs(60), 5, now);
    let mut strict = detectors[1].top(RankBy::Errors, Duration::ZERO, 5, now);
    strict.min_requests = 100;
    let cases = [
        (vec![], MergeError::Nothing),
        (
            vec![errors.clone(), latency],
            MergeError::MixedRankings {
                first: RankBy::Errors,
                other: RankBy::Latency,
            },
        ),
        (
            vec![errors.clone(), short],
            MergeError::MixedWindows {
                first_ms: 600_000,
                other_ms: 60_000,
            },
        ),
        (
            vec![errors.clone(), strict],
            MergeError::MixedMinRequests {
                first: 20,
                other: 100,
            },
        ),
        (
            vec![errors.clone(), errors.clone()],
            MergeError::Overlap {
                tenant: errors.tenants[0].tenant_id.clone(),
            },
        ),
    ];
    for (answers, expected) in cases {
        assert_eq!(merge_top(&answers, 5), Err(expected));
    }
}
