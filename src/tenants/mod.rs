//! The tenant incident detector's core: per-tenant sliding windows in bounded memory, ranked by
//! share of errors, error rate, p95 and deviation from baseline. Pure and synchronous: no I/O.
//!
//! # Layout
//! - [`sketch`]: the mergeable relative-error quantile sketch behind every latency figure.
//! - `ring`: requests and errors per bucket with running totals (inside every window).
//! - [`window`]: one tenant's buckets (counters, latency sub-windows, baseline, endpoint errors).
//! - [`tracker`]: the bounded table of tenants, admission by weight, and `__other__`.
//! - [`rank`]: the rankings and the evidence types the API returns.
//! - [`normalize`]: endpoint normalization (`/users/42?x=1` → `/users/:id`).
//! - [`explain`]: which dimension values (region, version, ...) errors or slow requests share.
//!
//! [`TenantDetector`] puts them together. Time is always passed in (epoch ms), never read here,
//! so every behaviour is testable without sleeping; ingest, the API and alerts wire it up.

pub mod alerts;
pub mod config;
mod endpoints;
pub mod explain;
pub mod merge;
pub mod mute;
pub mod normalize;
pub mod rank;
mod ring;
pub mod service;
pub mod sketch;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod tracker;
pub mod window;

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use alerts::{AlertBook, AlertChange, AlertCondition, AlertNotice, AlertRule};
pub use endpoints::OTHER_ENDPOINT;
pub use explain::{ExplainConfig, ExplainService, Explanation, Signal};
pub use mute::{MuteMark, Mutes, TenantMute};
pub use normalize::normalize_endpoint;
use rank::{Candidate, LatencyFigures};
pub use rank::{RankBy, TenantEvidence, TopTenants};
pub use service::TenantService;
use sketch::{LatencyKey, LatencySketch};
use tracker::{Sample, TenantTracker};
pub use tracker::{TrackerStats, OTHER_TENANT};
use window::{TenantWindow, WindowShape};

/// Max tenants with a window of their own; beyond this, admission by weight applies.
pub const DEFAULT_MAX_TENANTS: usize = 10_000;

/// Memory cap for all windows. A busy tenant's sketches take ~25 KB, so on a host with 10,000 busy
/// tenants this cap, not the tenant count, decides how many are tracked.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

/// Distinct failing endpoints remembered per tenant; more count under `__other__`.
pub const DEFAULT_MAX_ENDPOINTS: usize = 16;

/// Below this many requests in the window, a tenant's error rate and p95 rank after every tenant
/// with enough traffic (error rate) or not at all (latency, deviation): three requests say little.
pub const DEFAULT_MIN_REQUESTS: u64 = 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TenantsError {
    /// `field` names the setting to point at (for config errors with a line and column).
    #[error("tenant detector config: {message}")]
    InvalidConfig {
        field: &'static str,
        message: String,
    },
    #[error("unknown ranking `{0}`: expected errors, error_rate, latency or deviation")]
    UnknownRanking(String),
    /// `error_status` entry whose number does not read.
    #[error("invalid status pattern \"{text}\": write e.g. \"5xx\", \"500-504\" or 503")]
    StatusPattern {
        text: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("status pattern \"{text}\" must lie within 100-599")]
    StatusOutOfRange { text: String },
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
}

/// One request as the detector sees it, already validated by ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantEvent {
    pub tenant_id: String,
    pub endpoint: String,
    pub status_code: u16,
    pub latency_ms: f64,
    pub timestamp_ms: i64,
}

/// The borrowed form, so ingest can record straight out of a parsed body without owning strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TenantEventRef<'a> {
    pub tenant_id: &'a str,
    pub endpoint: &'a str,
    pub status_code: u16,
    pub latency_ms: f64,
    pub timestamp_ms: i64,
}

impl TenantEvent {
    pub fn as_ref(&self) -> TenantEventRef<'_> {
        TenantEventRef {
            tenant_id: &self.tenant_id,
            endpoint: &self.endpoint,
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Settings of the detector. Durations must line up: bucket | latency bucket | window, and
/// latency bucket | baseline bucket | baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantsConfig {
    pub window: Duration,
    /// Width of a counter bucket: how fast the window slides and how fresh rankings are.
    pub bucket: Duration,
    /// Width of a latency sub-window (sketches are coarser than counters: they cost far more).
    pub latency_bucket: Duration,
    /// History before the window that deviation compares against.
    pub baseline: Duration,
    pub baseline_bucket: Duration,
    pub max_tenants: usize,
    pub max_bytes: usize,
    pub max_endpoints_per_tenant: usize,
    /// Status codes that count as errors.
    pub error_statuses: Vec<RangeInclusive<u16>>,
    pub min_requests: u64,
    /// Detector shards (each its own lock and share of the caps); `None`: one per core, each with
    /// at least [`service::MIN_TENANTS_PER_SHARD`] tenants.
    pub shards: Option<usize>,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            bucket: Duration::from_secs(10),
            latency_bucket: Duration::from_secs(60),
            baseline: Duration::from_secs(3600),
            baseline_bucket: Duration::from_secs(300),
            max_tenants: DEFAULT_MAX_TENANTS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_endpoints_per_tenant: DEFAULT_MAX_ENDPOINTS,
            error_statuses: vec![500..=599],
            min_requests: DEFAULT_MIN_REQUESTS,
            shards: None,
        }
    }
}

/// Most detector shards: more than cores only adds merge work to every ranking.
pub const MAX_SHARDS: usize = 256;

/// Largest ring a window may have: more buckets cost memory per tenant and time per query.
const MAX_BUCKETS_PER_WINDOW: u128 = 3_600;

impl TenantsConfig {
    /// Checks the config and derives the bucket geometry every window shares.
    pub fn shape(&self) -> Result<WindowShape, TenantsError> {
        let invalid = |field: &'static str, message: String| {
            Err(TenantsError::InvalidConfig { field, message })
        };
        let ms = |d: Duration| d.as_millis();
        let named = [
            ("bucket", self.bucket),
            ("latency_bucket", self.latency_bucket),
            ("window", self.window),
            ("baseline_bucket", self.baseline_bucket),
            ("baseline", self.baseline),
        ];
        for (name, duration) in named {
            if ms(duration) == 0 || duration.subsec_nanos() % 1_000_000 != 0 {
                return invalid(
                    name,
                    format!("{name} must be a positive whole number of milliseconds"),
                );
            }
        }
        // (divisor, multiple) by index into `named`.
        for (small, large) in [(0, 1), (1, 2), (1, 3), (3, 4)] {
            let ((small, small_d), (large, large_d)) = (named[small], named[large]);
            if ms(large_d) % ms(small_d) != 0 {
                return invalid(
                    large,
                    format!(
                        "{large} ({}) must be a whole multiple of {small} ({})",
                        humantime::format_duration(large_d),
                        humantime::format_duration(small_d)
                    ),
                );
            }
        }
        let buckets = ms(self.window) / ms(self.bucket);
        if buckets > MAX_BUCKETS_PER_WINDOW {
            return invalid(
                "bucket",
                format!("window / bucket is {buckets} buckets; at most {MAX_BUCKETS_PER_WINDOW} (use wider buckets)"),
            );
        }
        if let Some(shards) = self.shards.filter(|n| !(1..=MAX_SHARDS).contains(n)) {
            return invalid(
                "shards",
                format!(
                    "shards must be 1-{MAX_SHARDS} (got {shards}); leave it out for one per core"
                ),
            );
        }
        if self.max_tenants == 0 {
            return invalid("max_tenants", "max_tenants must be at least 1".into());
        }
        if let Some(range) = self
            .error_statuses
            .iter()
            .find(|r| r.is_empty() || *r.start() < 100 || *r.end() > 599)
        {
            return invalid(
                "error_status",
                format!(
                    "error status range {}-{} must lie within 100-599",
                    range.start(),
                    range.end()
                ),
            );
        }
        Ok(WindowShape {
            bucket_ms: ms(self.bucket) as i64,
            buckets: buckets as usize,
            buckets_per_latency: (ms(self.latency_bucket) / ms(self.bucket)) as i64,
            latency_slots: (ms(self.window) / ms(self.latency_bucket)) as usize,
            latency_per_baseline: (ms(self.baseline_bucket) / ms(self.latency_bucket)) as i64,
            baseline_slots: (ms(self.baseline) / ms(self.baseline_bucket)) as usize + 1,
            max_endpoints: self.max_endpoints_per_tenant.min(usize::from(u16::MAX - 1)),
        })
    }
}

/// "last 10 minutes", "last 30 seconds", "last hour": how a window reads in a sentence.
pub fn window_phrase(window_ms: i64) -> String {
    let (value, unit) = match window_ms {
        ms if ms > 0 && ms % 3_600_000 == 0 => (ms / 3_600_000, "hour"),
        ms if ms > 0 && ms % 60_000 == 0 => (ms / 60_000, "minute"),
        ms => (ms / 1000, "second"),
    };
    match value {
        1 => format!("last {unit}"),
        n => format!("last {n} {unit}s"),
    }
}

/// What errors are called in titles: "5xx" for the default, "4xx+5xx", or "errors" otherwise.
pub fn error_label(error_statuses: &[RangeInclusive<u16>]) -> String {
    let classes: Option<Vec<String>> = error_statuses
        .iter()
        .map(|range| {
            let whole_class = range.start() % 100 == 0 && *range.end() == range.start() + 99;
            whole_class.then(|| format!("{}xx", range.start() / 100))
        })
        .collect();
    match classes {
        Some(classes) if !classes.is_empty() => classes.join("+"),
        _ => "errors".to_string(),
    }
}

/// Which status codes are errors, as a bitset: one shift and mask per event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorStatuses([u64; 10]);

impl ErrorStatuses {
    fn new(ranges: &[RangeInclusive<u16>]) -> Self {
        let mut bits = [0u64; 10];
        for code in ranges
            .iter()
            .flat_map(|range| range.clone())
            .filter(|&c| c < 640)
        {
            bits[usize::from(code / 64)] |= 1 << (code % 64);
        }
        Self(bits)
    }

    fn contains(&self, code: u16) -> bool {
        code < 640 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

/// The facade the daemon holds (behind one lock): record events, ask for rankings.
#[derive(Debug)]
pub struct TenantDetector {
    config: TenantsConfig,
    errors: ErrorStatuses,
    tracker: TenantTracker,
    /// Reused by endpoint normalization and short-window latency merges: no per-event allocation.
    endpoint_scratch: String,
    sketch_scratch: LatencySketch,
}

impl TenantDetector {
    pub fn new(config: TenantsConfig) -> Result<Self, TenantsError> {
        let shape = config.shape()?;
        Ok(Self {
            errors: ErrorStatuses::new(&config.error_statuses),
            tracker: TenantTracker::new(shape, config.max_tenants, config.max_bytes),
            config,
            endpoint_scratch: String::new(),
            sketch_scratch: LatencySketch::new(),
        })
    }

    pub fn config(&self) -> &TenantsConfig {
        &self.config
    }

    /// Counts one event; false when it is older than the window. O(1) amortized.
    pub fn record(&mut self, event: &TenantEvent, now_ms: i64) -> bool {
        self.record_ref(event.as_ref(), now_ms)
    }

    pub fn record_ref(&mut self, event: TenantEventRef<'_>, now_ms: i64) -> bool {
        let is_error = self.errors.contains(event.status_code);
        // Only errors are attributed to endpoints, so only they pay for normalization.
        let endpoint = match is_error {
            true => normalize_endpoint(event.endpoint, &mut self.endpoint_scratch),
            false => "",
        };
        let sample = Sample {
            tenant_id: event.tenant_id,
            endpoint,
            is_error,
            latency: LatencyKey::of(event.latency_ms),
            timestamp_ms: event.timestamp_ms,
        };
        self.tracker.record(sample, now_ms)
    }

    /// The `limit` tenants that hurt most by `by` over the last `window` (rounded up to whole
    /// buckets, at most the configured window; zero means the whole window). O(tracked).
    pub fn top(&mut self, by: RankBy, window: Duration, limit: usize, now_ms: i64) -> TopTenants {
        let buckets = self.buckets_for(window);
        let needs_latency = matches!(by, RankBy::Latency | RankBy::Deviation);
        match needs_latency {
            true => self
                .tracker
                .advance_all_and(now_ms, TenantWindow::refresh_p95s),
            false => self.tracker.advance_all(now_ms),
        }
        let (shape, min_requests) = (*self.tracker.shape(), self.config.min_requests);
        let scratch = &mut self.sketch_scratch;
        let candidates = self.tracker.tenants().filter_map(|tenant| {
            let window = tenant.window();
            let counts = window.counts(buckets);
            if counts.requests == 0 {
                return None;
            }
            let (mut p95_ms, mut baseline_p95_ms) = (None, None);
            if needs_latency && counts.requests >= min_requests {
                p95_ms = match buckets >= shape.buckets {
                    true => window.window_p95(),
                    false => window.latency(&shape, buckets, scratch).quantile(0.95),
                };
                if by == RankBy::Deviation && window.baseline_count() >= min_requests {
                    baseline_p95_ms = window.baseline_p95();
                }
            }
            let id = tenant.id();
            Some(Candidate {
                id,
                counts,
                p95_ms,
                baseline_p95_ms,
            })
        });
        let top = rank::select_top(by, candidates, limit, min_requests);
        let totals = self.tracker.totals(buckets);
        let mut tenants = Vec::with_capacity(top.len());
        for candidate in &top {
            let tenant = self
                .tracker
                .get(candidate.id)
                .expect("ranked tenants are tracked");
            let since = Some(tenant.tracked_since_ms());
            let figures = (shape, buckets, &mut self.sketch_scratch);
            tenants.push(describe(
                tenant.id(),
                tenant.window(),
                figures,
                totals,
                since,
            ));
        }
        let other = (shape, buckets, &mut self.sketch_scratch);
        let other = describe(OTHER_TENANT, self.tracker.other(), other, totals, None);
        TopTenants {
            by,
            window_ms: buckets as i64 * shape.bucket_ms,
            now_ms,
            total_requests: totals.requests,
            total_errors: totals.errors,
            tenants,
            other,
            min_requests,
        }
    }

    /// One tenant's evidence over the last `window`; `None` when it is not tracked (its traffic,
    /// if any, is in `__other__`, which can be asked for by that name).
    pub fn tenant(&mut self, id: &str, window: Duration, now_ms: i64) -> Option<TenantEvidence> {
        let buckets = self.buckets_for(window);
        let shape = *self.tracker.shape();
        if id == OTHER_TENANT {
            self.tracker.advance_all(now_ms);
            let totals = self.tracker.totals(buckets);
            let figures = (shape, buckets, &mut self.sketch_scratch);
            return Some(describe(
                OTHER_TENANT,
                self.tracker.other(),
                figures,
                totals,
                None,
            ));
        }
        let tenant = self.tracker.tenant_at(id, now_ms)?;
        tenant.window_mut().refresh_p95s();
        let tenant = self.tracker.get(id)?;
        let totals = self.tracker.totals(buckets);
        let figures = (shape, buckets, &mut self.sketch_scratch);
        let since = Some(tenant.tracked_since_ms());
        Some(describe(id, tenant.window(), figures, totals, since))
    }

    pub fn stats(&self) -> TrackerStats {
        self.tracker.stats()
    }

    /// The window a query for `window` covers: whole buckets, at most the configured window.
    pub fn window_ms(&self, window: Duration) -> i64 {
        self.buckets_for(window) as i64 * self.tracker.shape().bucket_ms
    }

    fn buckets_for(&self, window: Duration) -> usize {
        let full = self.tracker.shape().buckets;
        let bucket_ms = self.tracker.shape().bucket_ms as u128;
        match window.as_millis() {
            0 => full,
            ms => (ms.div_ceil(bucket_ms) as usize).min(full),
        }
    }
}

/// Full evidence for one window: counts, p50/p95/p99, baseline and top endpoint.
fn describe(
    id: &str,
    window: &TenantWindow,
    (shape, buckets, scratch): (WindowShape, usize, &mut LatencySketch),
    totals: window::Counts,
    tracked_since_ms: Option<i64>,
) -> TenantEvidence {
    let latency = window.latency(&shape, buckets, scratch);
    let figures = LatencyFigures {
        p50_ms: latency.quantile(0.5),
        p95_ms: latency.quantile(0.95),
        p99_ms: latency.quantile(0.99),
        baseline_p95_ms: window.baseline_p95(),
    };
    let top_endpoint = window.top_endpoint(buckets);
    let counts = window.counts(buckets);
    rank::evidence(id, counts, totals, figures, top_endpoint, tracked_since_ms)
}

#[cfg(test)]
mod tests;
