use super::*;

/// fastrand rather than the crate's `TestRng`: draws a few steps apart from `TestRng` correlate
/// (seed 6 put 68 of host h-45's 765 requests among 5 % failures, z = 4.9, in the raw data), which
/// is exactly what an explanation looks for; fastrand's worst host over the same draws: z = 2.7.
struct Rng(fastrand::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n)
    }

    fn unit(&mut self) -> f64 {
        self.0.f64()
    }

    /// Log-normal around `median` (Box–Muller).
    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        let (u1, u2) = (1.0 - self.0.f64(), self.0.f64());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * normal).exp()
    }
}

const NOW: i64 = 1_700_000_000_000;

fn config() -> ExplainConfig {
    ExplainConfig {
        dimensions: ["plan", "region", "version", "host"]
            .map(String::from)
            .to_vec(),
        ..ExplainConfig::default()
    }
}

const REGIONS: [&str; 4] = ["eu-west", "us-east", "us-west", "ap-south"];
const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
const VERSIONS: [&str; 3] = ["2.3.0", "2.3.1", "2.2.9"];

/// Seeded traffic over 10 minutes: region eu-west fails 40 % of its requests (the rest 1 %),
/// version 2.3.1 is slow 60 % of the time (the rest 2 %); plan and host are noise. 200 tenants;
/// `t-7` (2 % of the traffic) also fails 90 % of its requests on host `h-3`, which its own
/// scope names and the global view does not (it is too small a part of h-3's traffic).
fn simulate(explainer: &mut Explainer, seed: u64, events: usize) {
    let mut rng = Rng::new(seed);
    let span_ms = 600_000;
    for i in 0..events {
        let at = NOW - span_ms + (i as i64 * span_ms) / events as i64;
        let tenant = match rng.below(50) {
            0 => "t-7".to_string(),
            _ => format!("t-{}", rng.below(200)),
        };
        let region = REGIONS[rng.below(4) as usize];
        let plan = PLANS[rng.below(3) as usize];
        let version = VERSIONS[rng.below(3) as usize];
        let host = format!("h-{}", rng.below(20));
        let fail_p = match (region, tenant.as_str(), host.as_str()) {
            ("eu-west", _, _) => 0.40,
            (_, "t-7", "h-3") => 0.90,
            _ => 0.01,
        };
        let slow_p = if version == "2.3.1" { 0.60 } else { 0.02 };
        let status = if rng.unit() < fail_p { 503 } else { 200 };
        let latency_ms = match rng.unit() < slow_p {
            true => rng.log_normal(2500.0, 0.2),
            false => rng.log_normal(80.0, 0.5).min(900.0),
        };
        let event = TenantEventRef {
            tenant_id: &tenant,
            endpoint: "/v1/x",
            status_code: status,
            latency_ms,
            timestamp_ms: at,
        };
        let dims = [
            ("plan", plan),
            ("region", region),
            ("version", version),
            ("host", host.as_str()),
            ("ignored", "not configured"),
        ];
        explainer.record(event, &dims, at);
    }
}

fn named(explanation: &Explanation) -> Vec<(String, String)> {
    explanation
        .findings
        .iter()
        .map(|f| (f.dimension.clone(), f.value.clone()))
        .collect()
}

/// Over ten seeds: errors name region=eu-west first and nothing else; latency names
/// version=2.3.1 first and nothing else; tenant t-7's errors name eu-west and host=h-3 (its
/// own cause, too small a part of h-3's traffic to show in the global view).
#[test]
fn seeded_simulation_ranks_the_planted_causes_first_and_names_no_noise() {
    for seed in 1..=10 {
        let mut explainer = Explainer::new(config()).unwrap();
        simulate(&mut explainer, seed, 60_000);
        let window = Duration::ZERO;
        let errors = explainer
            .explain(None, Signal::Errors, window, 10, NOW)
            .unwrap();
        assert_eq!(
            named(&errors),
            [("region".to_string(), "eu-west".to_string())],
            "seed {seed}: {errors:#?}"
        );
        let top = &errors.findings[0];
        assert!((top.bad_rate - 0.40).abs() < 0.03, "seed {seed}: {top:?}");
        assert!(top.rest_rate < 0.02, "seed {seed}: {top:?}");
        let latency = explainer
            .explain(None, Signal::Latency, window, 10, NOW)
            .unwrap();
        assert_eq!(
            named(&latency),
            [("version".to_string(), "2.3.1".to_string())],
            "seed {seed}: {latency:#?}"
        );
        let tenant = explainer
            .explain(Some("t-7"), Signal::Errors, window, 10, NOW)
            .unwrap();
        // Both of t-7's causes, eu-west first: it has more excess failures (~115 against ~50).
        assert_eq!(
            named(&tenant),
            [
                ("region".to_string(), "eu-west".to_string()),
                ("host".to_string(), "h-3".to_string())
            ],
            "seed {seed}: {tenant:#?}"
        );
    }
}

/// Without any planted cause, nothing is named (ten seeds, both signals).
#[test]
fn uniform_failures_name_nothing() {
    for seed in 1..=10 {
        let mut explainer = Explainer::new(config()).unwrap();
        let mut rng = Rng::new(seed);
        for i in 0..40_000i64 {
            let at = NOW - 600_000 + i * 15;
            let host = format!("h-{}", rng.below(50));
            let dims = [
                ("region", REGIONS[rng.below(4) as usize]),
                ("plan", PLANS[rng.below(3) as usize]),
                ("host", host.as_str()),
            ];
            let event = TenantEventRef {
                tenant_id: "t",
                endpoint: "/",
                status_code: if rng.unit() < 0.05 { 500 } else { 200 },
                latency_ms: if rng.unit() < 0.05 { 1500.0 } else { 20.0 },
                timestamp_ms: at,
            };
            explainer.record(event, &dims, at);
        }
        for signal in [Signal::Errors, Signal::Latency] {
            let got = explainer
                .explain(None, signal, Duration::ZERO, 10, NOW)
                .unwrap();
            assert!(got.findings.is_empty(), "seed {seed} {signal:?}: {got:#?}");
        }
    }
}

/// A dimension with more distinct values than its cap counts the rest under `__other__`;
/// a slot whose value left the window is reused; memory never exceeds the budget.
#[test]
fn values_are_bounded_and_recycled() {
    let config = ExplainConfig {
        dimensions: vec!["host".into()],
        max_values: 4,
        ..ExplainConfig::default()
    };
    let mut explainer = Explainer::new(config).unwrap();
    let record = |explainer: &mut Explainer, host: &str, at: i64| {
        let event = TenantEventRef {
            tenant_id: "t",
            endpoint: "/",
            status_code: 200,
            latency_ms: 1.0,
            timestamp_ms: at,
        };
        explainer.record(event, &[("host", host)], at);
    };
    let start = NOW - 600_000;
    for host in ["a", "b", "c", "d", "e"] {
        record(&mut explainer, host, start);
    }
    let names: Vec<&str> = explainer.dimensions[0].names.iter().map(|n| &**n).collect();
    assert_eq!(names, [OTHER_VALUE, "a", "b", "c"]);
    assert_eq!(explainer.stats().overflow_values, 2);
    // A window later, "a" to "c" are out of it: new values take their slots.
    record(&mut explainer, "x", NOW);
    record(&mut explainer, "y", NOW);
    let names: Vec<&str> = explainer.dimensions[0].names.iter().map(|n| &**n).collect();
    assert_eq!(names, [OTHER_VALUE, "x", "y", "c"]);
    let stats = explainer.stats();
    assert!(stats.bytes_estimate <= stats.max_bytes, "{stats:?}");
}

/// Tenant scopes are bounded by `max_tenants` and by the memory budget; a tenant failing more
/// than a scoped one takes its scope at the next bucket.
#[test]
fn tenant_scopes_are_bounded_and_go_to_the_tenants_with_most_bad_requests() {
    let config = ExplainConfig {
        dimensions: vec!["region".into()],
        max_tenants: 2,
        ..ExplainConfig::default()
    };
    let mut explainer = Explainer::new(config.clone()).unwrap();
    let fail = |explainer: &mut Explainer, tenant: &str, at: i64| {
        let event = TenantEventRef {
            tenant_id: tenant,
            endpoint: "/",
            status_code: 500,
            latency_ms: 1.0,
            timestamp_ms: at,
        };
        explainer.record(event, &[("region", "eu")], at);
    };
    let start = NOW - 120_000;
    fail(&mut explainer, "small-a", start);
    fail(&mut explainer, "small-b", start);
    for _ in 0..50 {
        fail(&mut explainer, "big", start + 1);
    }
    assert_eq!(explainer.stats().tenant_scopes, 2);
    assert!(matches!(
        explainer.explain(Some("big"), Signal::Errors, Duration::ZERO, 5, start + 2),
        Err(ExplainError::NoScope(_))
    ));
    // The next bucket: "big" takes the place of a small one.
    let got = explainer.explain(
        Some("big"),
        Signal::Errors,
        Duration::ZERO,
        5,
        start + 60_000,
    );
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(explainer.stats().tenant_scopes, 2);
    // A tight memory budget allows fewer scopes than asked for.
    let tight = ExplainConfig {
        max_bytes: Explainer::new(config.clone()).unwrap().shape.scope_bytes * 6,
        max_tenants: 100,
        ..config
    };
    let shape = Explainer::new(tight).unwrap().shape;
    assert!((1..6).contains(&shape.tenant_scopes), "{shape:?}");
}

#[test]
fn bad_configs_are_refused_with_the_key() {
    let field = |config: ExplainConfig| match Explainer::new(config) {
        Err(ExplainError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let nine = (0..9).map(|i| format!("d{i}")).collect();
    assert_eq!(
        field(ExplainConfig {
            dimensions: nine,
            ..config()
        }),
        "dimensions"
    );
    let twice = vec!["a".into(), "a".into()];
    assert_eq!(
        field(ExplainConfig {
            dimensions: twice,
            ..config()
        }),
        "dimensions"
    );
    let bucket = Duration::from_secs(7);
    assert_eq!(
        field(ExplainConfig { bucket, ..config() }),
        "explain.bucket"
    );
    assert_eq!(
        field(ExplainConfig {
            max_values: 1,
            ..config()
        }),
        "explain.max_values"
    );
    assert_eq!(
        field(ExplainConfig {
            max_bytes: 1000,
            ..config()
        }),
        "explain.max_memory"
    );
    assert_eq!(
        field(ExplainConfig {
            min_support: 0,
            ..config()
        }),
        "explain.min_support"
    );
}

/// With no dimension configured the service answers `NoDimensions` and records nothing: the
/// ingest hot path pays one lock per batch, not a count per event.
#[test]
fn without_dimensions_the_service_records_nothing() {
    let service = ExplainService::default();
    service
        .configure(Some(ExplainConfig {
            dimensions: Vec::new(),
            ..ExplainConfig::default()
        }))
        .unwrap();
    let event = TenantEventRef {
        tenant_id: "t",
        endpoint: "/v1/x",
        status_code: 503,
        latency_ms: 5000.0,
        timestamp_ms: NOW,
    };
    let none: &[(&str, &str)] = &[];
    service.record_batch([(event, none); 3], NOW);
    let inner = service.lock();
    let explainer = inner.as_ref().expect("configured");
    let counted: u64 = explainer
        .global
        .buckets
        .iter()
        .map(|b| u64::from(b.totals[0]))
        .sum();
    assert_eq!(counted, 0);
    assert!(explainer.tenants.is_empty() && explainer.heavy.is_empty());
    drop(inner);
    let answer = service.explain(None, Signal::Errors, Duration::ZERO, 10, NOW);
    assert!(matches!(answer, Some(Err(ExplainError::NoDimensions))));
}
