//! The one exact merge of rankings from owners of disjoint tenant sets: the detector's shards
//! inside one daemon, or the sentinelds of a fleet (`sentinelctl tenants top --peer`).
//!
//! Why it is exact: every ranking orders tenants by numbers of the tenant alone (its errors, its
//! Wilson bound, its p95, its p95 ÷ baseline; ties by errors, requests, id), so a tenant in the
//! global top N is in its owner's top N, and the global top N is the top N of the union of the
//! owners' top N. Shares and lifts need the window's totals, which every answer carries
//! (`total_requests`, `total_errors`): they are recomputed from the summed totals with the same
//! formulas as one detector. `__other__` (traffic of untracked tenants) sums its counts; its
//! latency figures stay only when at most one owner has such traffic (sketches do not travel).

use std::collections::HashMap;

use thiserror::Error;

use super::rank::{self, Candidate, LatencyFigures, RankBy, TenantEvidence, TopTenants};
use super::tracker::{TrackerStats, OTHER_TENANT};
use super::window::Counts;

/// Why answers could not be merged into one.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("no answers to merge")]
    Nothing,
    #[error("answers rank by different things: {first} and {other}")]
    MixedRankings { first: RankBy, other: RankBy },
    #[error("answers cover different windows: {first_ms} ms and {other_ms} ms (check each daemon's [tenants] window and bucket)")]
    MixedWindows { first_ms: i64, other_ms: i64 },
    #[error("answers use different min_requests: {first} and {other} (give the daemons the same [tenants] min_requests)")]
    MixedMinRequests { first: u64, other: u64 },
    /// The owners' tenant sets overlap: the merge would count the tenant twice.
    #[error("tenant \"{tenant}\" is owned by two peers: route each tenant to exactly one daemon")]
    Overlap { tenant: String },
}

/// The global top `limit` of `answers`, each from the owner of a disjoint set of tenants and each
/// holding that owner's top `limit` (or more) for the same ranking, window and `min_requests`.
pub fn merge_top(answers: &[TopTenants], limit: usize) -> Result<TopTenants, MergeError> {
    let first = answers.first().ok_or(MergeError::Nothing)?;
    for answer in &answers[1..] {
        if answer.by != first.by {
            return Err(MergeError::MixedRankings {
                first: first.by,
                other: answer.by,
            });
        }
        if answer.window_ms != first.window_ms {
            return Err(MergeError::MixedWindows {
                first_ms: first.window_ms,
                other_ms: answer.window_ms,
            });
        }
        if answer.min_requests != first.min_requests {
            return Err(MergeError::MixedMinRequests {
                first: first.min_requests,
                other: answer.min_requests,
            });
        }
    }
    let totals = Counts {
        requests: answers.iter().map(|a| a.total_requests).sum(),
        errors: answers.iter().map(|a| a.total_errors).sum(),
    };
    let mut owner: HashMap<&str, &TenantEvidence> = HashMap::new();
    for tenant in answers.iter().flat_map(|a| &a.tenants) {
        if owner.insert(&tenant.tenant_id, tenant).is_some() {
            return Err(MergeError::Overlap {
                tenant: tenant.tenant_id.clone(),
            });
        }
    }
    let candidates = answers.iter().flat_map(|a| &a.tenants).map(candidate);
    let top = rank::select_top(first.by, candidates, limit, first.min_requests);
    let tenants = top
        .iter()
        .map(|chosen| rescaled(owner[chosen.id], totals))
        .collect();
    let others: Vec<&TenantEvidence> = answers.iter().map(|a| &a.other).collect();
    Ok(TopTenants {
        by: first.by,
        window_ms: first.window_ms,
        now_ms: answers
            .iter()
            .map(|a| a.now_ms)
            .max()
            .unwrap_or(first.now_ms),
        total_requests: totals.requests,
        total_errors: totals.errors,
        tenants,
        other: merge_other(&others, totals),
        min_requests: first.min_requests,
    })
}

/// `__other__` of all owners: counts summed; latency and endpoint figures only when one owner
/// alone has untracked traffic (then they are that owner's, exactly).
pub fn merge_other(parts: &[&TenantEvidence], totals: Counts) -> TenantEvidence {
    let counts = Counts {
        requests: parts.iter().map(|p| p.requests).sum(),
        errors: parts.iter().map(|p| p.errors).sum(),
    };
    let mut busy = parts.iter().filter(|p| p.requests > 0);
    let (first, second) = (busy.next(), busy.next());
    let alone = match (first, second) {
        (Some(only), None) => Some(*only),
        _ => None,
    };
    let latency = alone.map_or_else(LatencyFigures::default, figures);
    let top_endpoint = alone
        .and_then(|only| only.top_endpoint.as_ref())
        .map(|e| (e.endpoint.as_str(), e.errors));
    let mut other = rank::evidence(OTHER_TENANT, counts, totals, latency, top_endpoint, None);
    if alone.is_none() {
        // The baseline lies outside the window's counts; say nothing rather than guess.
        other.baseline_p95_ms = None;
    }
    other
}

/// One tenant's evidence against new totals, with the same formulas as one detector.
pub fn rescaled(tenant: &TenantEvidence, totals: Counts) -> TenantEvidence {
    let counts = Counts {
        requests: tenant.requests,
        errors: tenant.errors,
    };
    let endpoint = tenant
        .top_endpoint
        .as_ref()
        .map(|e| (e.endpoint.as_str(), e.errors));
    let mut out = rank::evidence(
        &tenant.tenant_id,
        counts,
        totals,
        figures(tenant),
        endpoint,
        tenant.tracked_since_ms,
    );
    out.muted = tenant.muted.clone();
    out
}

/// Owners' stats as one: every count and cap summed.
impl std::ops::AddAssign for TrackerStats {
    fn add_assign(&mut self, s: Self) {
        self.tracked += s.tracked;
        self.max_tenants += s.max_tenants;
        self.admitted += s.admitted;
        self.evicted += s.evicted;
        self.evicted_for_bytes += s.evicted_for_bytes;
        self.overflow_events += s.overflow_events;
        self.late_events += s.late_events;
        self.bytes_estimate += s.bytes_estimate;
        self.max_bytes += s.max_bytes;
    }
}

fn figures(tenant: &TenantEvidence) -> LatencyFigures {
    LatencyFigures {
        p50_ms: tenant.p50_ms,
        p95_ms: tenant.p95_ms,
        p99_ms: tenant.p99_ms,
        baseline_p95_ms: tenant.baseline_p95_ms,
    }
}

fn candidate(tenant: &TenantEvidence) -> Candidate<'_> {
    Candidate {
        id: &tenant.tenant_id,
        counts: Counts {
            requests: tenant.requests,
            errors: tenant.errors,
        },
        p95_ms: tenant.p95_ms,
        baseline_p95_ms: tenant.baseline_p95_ms,
    }
}

#[cfg(test)]
mod tests;
