//! Unit tests of the facade: config validation, error classification, and `TenantDetector`
//! end to end (record, top by every ranking, one tenant, stats).

use std::time::Duration;

use super::*;
use crate::tenants::test_rng::TestRng;

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[test]
fn config_validation_table() {
    let default = TenantsConfig::default;
    // (config, expected error fragment; None = valid)
    let cases: Vec<(TenantsConfig, Option<&str>)> = vec![
        (default(), None),
        (
            TenantsConfig {
                bucket: secs(60),
                ..default()
            },
            None,
        ),
        (
            TenantsConfig {
                bucket: secs(7),
                ..default()
            },
            Some("latency_bucket (1m) must be a whole multiple of bucket (7s)"),
        ),
        (
            TenantsConfig {
                window: secs(90),
                ..default()
            },
            Some("window (1m 30s) must be a whole multiple of latency_bucket (1m)"),
        ),
        (
            TenantsConfig {
                baseline: secs(1000),
                ..default()
            },
            Some("baseline (16m 40s) must be a whole multiple of baseline_bucket (5m)"),
        ),
        (
            TenantsConfig {
                window: Duration::ZERO,
                ..default()
            },
            Some("window must be a positive whole number of milliseconds"),
        ),
        (
            TenantsConfig {
                bucket: Duration::from_micros(1500),
                ..default()
            },
            Some("bucket must be a positive whole number"),
        ),
        (
            TenantsConfig {
                bucket: Duration::from_millis(100),
                latency_bucket: secs(1),
                ..default()
            },
            Some("6000 buckets"),
        ),
        (
            TenantsConfig {
                max_tenants: 0,
                ..default()
            },
            Some("max_tenants must be at least 1"),
        ),
        (
            TenantsConfig {
                error_statuses: vec![500..=699],
                ..default()
            },
            Some("500-699 must lie within 100-599"),
        ),
    ];
    for (config, want) in cases {
        match (config.shape(), want) {
            (Ok(_), None) => {}
            (Err(TenantsError::InvalidConfig { message, .. }), Some(fragment)) => {
                assert!(message.contains(fragment), "{message:?} lacks {fragment:?}")
            }
            (got, want) => panic!("{config:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn default_shape_is_ten_minutes_of_ten_second_buckets() {
    let shape = TenantsConfig::default().shape().unwrap();
    assert_eq!(
        (shape.bucket_ms, shape.buckets, shape.latency_slots),
        (10_000, 60, 10)
    );
    assert_eq!((shape.latency_per_baseline, shape.baseline_slots), (5, 13));
}

#[test]
fn error_status_classification_table() {
    /// (ranges, status codes that are errors, codes that are not)
    type Case<'a> = (&'a [RangeInclusive<u16>], &'a [u16], &'a [u16]);
    let cases: &[Case] = &[
        (
            &[500..=599],
            &[500, 503, 599],
            &[200, 404, 429, 499, 600, 0, u16::MAX],
        ),
        (&[429..=429, 500..=599], &[429, 502], &[428, 430, 404]),
        (&[400..=599], &[400, 404, 599], &[399, 200]),
        (&[], &[], &[500]),
    ];
    for (ranges, errors, fine) in cases {
        let statuses = ErrorStatuses::new(ranges);
        errors
            .iter()
            .for_each(|&code| assert!(statuses.contains(code), "{code} in {ranges:?}"));
        fine.iter()
            .for_each(|&code| assert!(!statuses.contains(code), "{code} in {ranges:?}"));
    }
}

fn event(
    tenant: &str,
    endpoint: &str,
    status_code: u16,
    latency_ms: f64,
    at_ms: i64,
) -> TenantEvent {
    TenantEvent {
        tenant_id: tenant.to_string(),
        endpoint: endpoint.to_string(),
        status_code,
        latency_ms,
        timestamp_ms: at_ms,
    }
}

#[test]
fn one_tenant_evidence_with_normalized_endpoints_and_other() {
    let config = TenantsConfig {
        max_tenants: 2,
        ..TenantsConfig::default()
    };
    let mut detector = TenantDetector::new(config).unwrap();
    for i in 0..10 {
        let status = if i < 4 { 502 } else { 200 };
        detector.record(
            &event("acme", "/users/42/orders?page=3", status, 80.0, i * 1_000),
            i * 1_000,
        );
        detector.record(&event("beta", "/health", 200, 5.0, i * 1_000), i * 1_000);
    }
    // A third tenant pushes the lightest (beta: no errors) into __other__.
    detector.record(&event("gamma", "/x", 200, 5.0, 10_000), 10_000);
    let acme = detector.tenant("acme", Duration::ZERO, 10_000).unwrap();
    assert_eq!((acme.requests, acme.errors, acme.error_share), (10, 4, 1.0));
    let endpoint = acme.top_endpoint.unwrap();
    assert_eq!(
        (endpoint.endpoint.as_str(), endpoint.errors),
        ("/users/:id/orders", 4)
    );
    assert!((acme.p95_ms.unwrap() - 80.0).abs() < 0.8);
    assert_eq!(acme.tracked_since_ms, Some(0));
    assert_eq!(detector.tenant("beta", Duration::ZERO, 10_000), None);
    let other = detector
        .tenant(OTHER_TENANT, Duration::ZERO, 10_000)
        .unwrap();
    assert_eq!(
        (other.requests, other.errors, other.tracked_since_ms),
        (10, 0, None)
    );
    let stats = detector.stats();
    assert_eq!(
        (
            stats.tracked,
            stats.admitted,
            stats.evicted,
            stats.overflow_events
        ),
        (2, 3, 1, 10)
    );
}

#[test]
fn latency_and_deviation_rank_different_tenants() {
    let mut detector = TenantDetector::new(TenantsConfig::default()).unwrap();
    let mut rng = TestRng::new(5);
    // 30 minutes: "slow" is always at ~400 ms; "spiky" is at 50 ms until the last 5 minutes,
    // then at 250 ms; "calm" stays at 50 ms.
    for second in 0..1_800i64 {
        let now = second * 1_000;
        let spiky_ms = if second >= 1_500 { 250.0 } else { 50.0 };
        for (tenant, median) in [("slow", 400.0), ("spiky", spiky_ms), ("calm", 50.0)] {
            detector.record(
                &event(tenant, "/", 200, rng.log_normal(median, 0.2), now),
                now,
            );
        }
    }
    let now = 1_800_000;
    let ids = |top: TopTenants| {
        top.tenants
            .into_iter()
            .map(|t| t.tenant_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(detector.top(RankBy::Latency, Duration::ZERO, 3, now)),
        ["slow", "spiky", "calm"]
    );
    let deviation = detector.top(RankBy::Deviation, Duration::ZERO, 3, now);
    assert_eq!(deviation.tenants[0].tenant_id, "spiky");
    let spiky = &deviation.tenants[0];
    assert!(spiky.deviation.unwrap() > 2.0, "{spiky:?}");
    assert!(
        (spiky.baseline_p95_ms.unwrap() / 50.0 - 1.0).abs() < 0.5,
        "{spiky:?}"
    );
    // The last five minutes alone: spiky's p95 is all 250 ms.
    let recent = detector.top(RankBy::Latency, secs(300), 3, now);
    assert_eq!(recent.window_ms, 300_000);
    let spiky = recent
        .tenants
        .iter()
        .find(|t| t.tenant_id == "spiky")
        .unwrap();
    assert!(spiky.p50_ms.unwrap() > 200.0, "{spiky:?}");
    assert_eq!(
        detector.top(RankBy::Errors, Duration::ZERO, 3, now).tenants,
        []
    );
}

#[test]
fn late_events_are_refused_and_counted() {
    let mut detector = TenantDetector::new(TenantsConfig::default()).unwrap();
    assert!(detector.record(&event("a", "/", 200, 1.0, 700_000), 700_000));
    assert!(!detector.record(&event("a", "/", 500, 1.0, 50_000), 700_000));
    assert_eq!(detector.stats().late_events, 1);
}

/// Every ranking fills its top 10 when many tenants each have enough requests. How fast that
/// is belongs to `cargo bench --bench tenants_top`, not to a test.
#[test]
fn every_ranking_fills_its_top_ten_over_many_tenants() {
    const TENANTS: usize = 10_000;
    // One request per tenant every 30 s for 25 minutes: 20 (`min_requests`) in the window and
    // more in the baseline, so every ranking ranks everyone.
    let per_tenant = 50;
    let config = TenantsConfig {
        max_tenants: TENANTS,
        max_bytes: usize::MAX,
        ..TenantsConfig::default()
    };
    let mut detector = TenantDetector::new(config).unwrap();
    let mut rng = TestRng::new(100);
    let ids: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i}")).collect();
    for round in 0..per_tenant {
        for id in &ids {
            let now = round * 30_000;
            let status = if rng.below(50) == 0 { 500 } else { 200 };
            let event = TenantEventRef {
                tenant_id: id,
                endpoint: "/v1/x",
                status_code: status,
                latency_ms: rng.log_normal(40.0, 1.0),
                timestamp_ms: now,
            };
            detector.record_ref(event, now);
        }
    }
    let now = (per_tenant - 1) * 30_000 + 1;
    for by in RankBy::ALL {
        let top = detector.top(by, Duration::ZERO, 10, now);
        assert_eq!(top.tenants.len(), 10, "{by}");
    }
}

#[test]
fn window_phrases_and_error_labels_read_naturally() {
    let phrases = [
        (600_000, "last 10 minutes"),
        (60_000, "last minute"),
        (3_600_000, "last hour"),
        (7_200_000, "last 2 hours"),
        (30_000, "last 30 seconds"),
        (90_000, "last 90 seconds"),
    ];
    for (ms, want) in phrases {
        assert_eq!(super::window_phrase(ms), want);
    }
    let labels: [(&[std::ops::RangeInclusive<u16>], &str); 4] = [
        (&[500..=599], "5xx"),
        (&[400..=499, 500..=599], "4xx+5xx"),
        (&[500..=599, 429..=429], "errors"),
        (&[], "errors"),
    ];
    for (ranges, want) in labels {
        assert_eq!(super::error_label(ranges), want);
    }
}

/// A window shorter than a latency sub-window can straddle two of them: its p95 must come from
/// both (a 5 s "during" snapshot once read only the newest 5 s sub-window and found it empty).
#[test]
fn a_short_window_straddling_latency_sub_windows_keeps_its_latency() {
    let config = TenantsConfig {
        bucket: secs(1),
        latency_bucket: secs(5),
        window: secs(60),
        baseline_bucket: secs(10),
        baseline: secs(300),
        ..TenantsConfig::default()
    };
    for at in (1_000_000..1_010_000).step_by(250) {
        for later in (0..6_000).step_by(250) {
            let mut detector = TenantDetector::new(config.clone()).unwrap();
            for _ in 0..20 {
                detector.record(&event("acme", "/v1/pay", 503, 900.0, at), at);
            }
            let top = detector.top(RankBy::Errors, secs(5), 3, at + later);
            let Some(acme) = top.tenants.first() else {
                continue;
            };
            let p95 = acme
                .p95_ms
                .unwrap_or_else(|| panic!("no p95 at {at}+{later}"));
            assert!((p95 - 900.0).abs() < 9.0, "{p95} at {at}+{later}");
        }
    }
}
