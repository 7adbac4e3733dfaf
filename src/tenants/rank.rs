//! Rankings of tenants by share of errors, error rate (Wilson lower bound), p95 latency and p95
//! against their own baseline, each place with its evidence; the result types the API returns.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::window::Counts;
use super::TenantsError;

/// z for a two-sided 95% Wilson interval.
pub const WILSON_Z: f64 = 1.96;

/// What a ranking orders by (`?by=` on `/v1/tenants/top`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Count of errors, i.e. share of all errors in the window.
    Errors,
    /// Wilson lower bound of the error rate: confident rates first, small samples last.
    ErrorRate,
    /// Window p95.
    Latency,
    /// Window p95 ÷ the tenant's own baseline p95.
    Deviation,
}

impl RankBy {
    pub const ALL: [RankBy; 4] = [
        Self::Errors,
        Self::ErrorRate,
        Self::Latency,
        Self::Deviation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Errors => "errors",
            Self::ErrorRate => "error_rate",
            Self::Latency => "latency",
            Self::Deviation => "deviation",
        }
    }
}

impl fmt::Display for RankBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RankBy {
    type Err = TenantsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|by| by.as_str() == text)
            .ok_or_else(|| TenantsError::UnknownRanking(text.to_string()))
    }
}

/// The endpoint behind most of a tenant's errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointEvidence {
    pub endpoint: String,
    pub errors: u64,
}

/// Why a tenant sits where it does: the numbers an on-call engineer checks before acting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantEvidence {
    pub tenant_id: String,
    pub requests: u64,
    pub errors: u64,
    /// This tenant's errors ÷ all errors in the window (0..=1).
    pub error_share: f64,
    pub error_rate: f64,
    /// 95% Wilson lower bound of the error rate: what the sample size lets us be sure of.
    pub error_rate_lower_bound: f64,
    /// Error rate ÷ the rest's error rate; `None` when the rest has no errors (then see `rest_*`).
    pub lift: Option<f64>,
    pub rest_requests: u64,
    pub rest_errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// p95 of the tenant's history before the window.
    pub baseline_p95_ms: Option<f64>,
    /// `p95_ms ÷ baseline_p95_ms`.
    pub deviation: Option<f64>,
    pub top_endpoint: Option<EndpointEvidence>,
    /// Since when this tenant has its own window (earlier traffic is in `__other__`); `None` for
    /// `__other__` itself.
    pub tracked_since_ms: Option<i64>,
    /// Set while an operator has muted this tenant's alerts (it still ranks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<super::mute::MuteMark>,
}

/// The answer to "which tenant hurts": the top tenants, and everything else as `__other__`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopTenants {
    pub by: RankBy,
    /// The window actually used: the request rounded up to whole buckets, at most the configured one.
    pub window_ms: i64,
    pub now_ms: i64,
    pub total_requests: u64,
    pub total_errors: u64,
    pub tenants: Vec<TenantEvidence>,
    pub other: TenantEvidence,
    /// The detector's `min_requests`: what merging answers of several owners ranks by
    /// ([`super::merge`]). Answers from before it was sent read as the default.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
}

fn default_min_requests() -> u64 {
    super::DEFAULT_MIN_REQUESTS
}

/// Latency figures for [`evidence`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencyFigures {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub baseline_p95_ms: Option<f64>,
}

/// The lower bound of the Wilson score interval for `errors` of `requests` (0 when empty).
pub fn wilson_lower_bound(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        return 0.0;
    }
    let (n, z2) = (requests as f64, WILSON_Z * WILSON_Z);
    let p = errors.min(requests) as f64 / n;
    let centre = p + z2 / (2.0 * n);
    let spread = WILSON_Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

fn rate(counts: Counts) -> f64 {
    ratio(counts.errors as f64, counts.requests as f64).unwrap_or(0.0)
}

/// Builds the evidence for one tenant out of its counts and the window's totals.
pub fn evidence(
    tenant_id: &str,
    counts: Counts,
    totals: Counts,
    latency: LatencyFigures,
    top_endpoint: Option<(&str, u64)>,
    tracked_since_ms: Option<i64>,
) -> TenantEvidence {
    let rest = Counts {
        requests: totals.requests.saturating_sub(counts.requests),
        errors: totals.errors.saturating_sub(counts.errors),
    };
    let deviation = latency.p95_ms.zip(latency.baseline_p95_ms);
    TenantEvidence {
        tenant_id: tenant_id.to_string(),
        requests: counts.requests,
        errors: counts.errors,
        error_share: ratio(counts.errors as f64, totals.errors as f64).unwrap_or(0.0),
        error_rate: rate(counts),
        error_rate_lower_bound: wilson_lower_bound(counts.errors, counts.requests),
        lift: ratio(rate(counts), rate(rest)),
        rest_requests: rest.requests,
        rest_errors: rest.errors,
        p50_ms: latency.p50_ms,
        p95_ms: latency.p95_ms,
        p99_ms: latency.p99_ms,
        baseline_p95_ms: latency.baseline_p95_ms,
        deviation: deviation.and_then(|(p95, baseline)| ratio(p95, baseline)),
        top_endpoint: top_endpoint.map(|(endpoint, errors)| EndpointEvidence {
            endpoint: endpoint.to_string(),
            errors,
        }),
        tracked_since_ms,
        muted: None,
    }
}

/// One tenant as a ranking sees it: cheap numbers only, gathered for every tracked tenant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub counts: Counts,
    pub p95_ms: Option<f64>,
    /// Only set when the baseline holds at least the minimum sample.
    pub baseline_p95_ms: Option<f64>,
}

impl Candidate<'_> {
    /// (enough samples, score), or `None` when the tenant has no place in this ranking.
    /// Rates and latencies need `min_requests`: the Wilson bound alone still ranks 3 of 4 failing
    /// (0.30) above 400 of 2,000 (0.18), so small samples go below every full-sized one.
    fn score(&self, by: RankBy, min_requests: u64) -> Option<(bool, f64)> {
        let enough = self.counts.requests >= min_requests;
        match by {
            RankBy::Errors => (self.counts.errors > 0).then_some((true, self.counts.errors as f64)),
            RankBy::ErrorRate => (self.counts.errors > 0).then(|| {
                let bound = wilson_lower_bound(self.counts.errors, self.counts.requests);
                (enough, bound)
            }),
            RankBy::Latency => self.p95_ms.filter(|_| enough).map(|p95| (true, p95)),
            RankBy::Deviation => {
                let (p95, baseline) = self.p95_ms.zip(self.baseline_p95_ms)?;
                ratio(p95, baseline)
                    .filter(|_| enough)
                    .map(|deviation| (true, deviation))
            }
        }
    }
}

/// Above this limit, insertion into the kept list could cost O(limit) per candidate: collect and
/// select instead (O(n) plus O(limit log limit)).
const SORTED_INSERT_LIMIT: usize = 64;

/// The best `limit` candidates for `by`, best first; ties go to more errors, then more requests,
/// then the smaller id (stable output). One pass keeping the best `limit` in a sorted list: a
/// candidate that does not beat the current last place costs one comparison and no allocation,
/// so ranking 100,000 tenants for a top-10 reads each once and copies almost none.
pub fn select_top<'a>(
    by: RankBy,
    candidates: impl IntoIterator<Item = Candidate<'a>>,
    limit: usize,
    min_requests: u64,
) -> Vec<Candidate<'a>> {
    type Scored<'a> = ((bool, f64), Candidate<'a>);
    let order = |a: &Scored<'_>, b: &Scored<'_>| -> Ordering {
        let ((a_enough, a_score), a) = a;
        let ((b_enough, b_score), b) = b;
        b_enough
            .cmp(a_enough)
            .then(b_score.total_cmp(a_score))
            .then(b.counts.errors.cmp(&a.counts.errors))
            .then(b.counts.requests.cmp(&a.counts.requests))
            .then(a.id.cmp(b.id))
    };
    if limit == 0 {
        return Vec::new();
    }
    if limit > SORTED_INSERT_LIMIT {
        let mut scored: Vec<Scored<'a>> = candidates
            .into_iter()
            .filter_map(|candidate| Some((candidate.score(by, min_requests)?, candidate)))
            .collect();
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit - 1, order);
            scored.truncate(limit);
        }
        scored.sort_unstable_by(order);
        return scored.into_iter().map(|(_, candidate)| candidate).collect();
    }
    let mut best: Vec<Scored<'a>> = Vec::with_capacity(limit + 1);
    for candidate in candidates {
        let Some(score) = candidate.score(by, min_requests) else {
            continue;
        };
        let scored = (score, candidate);
        if best.len() == limit && best.last().is_some_and(|last| order(&scored, last).is_ge()) {
            continue;
        }
        let at = best.partition_point(|kept| order(kept, &scored).is_lt());
        best.insert(at, scored);
        best.truncate(limit);
    }
    best.into_iter().map(|(_, candidate)| candidate).collect()
}

#[cfg(test)]
mod tests;
