//! `LatencyHistogram`: check latencies in fixed buckets, as Prometheus histograms expect.

/// Upper bounds in seconds: from a fast loopback check to a timeout-length one.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last slot counts those above every bound.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum_seconds: f64,
}

impl LatencyHistogram {
    pub fn observe(&mut self, seconds: f64) {
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum_seconds += seconds;
    }

    /// (upper bound, cumulative count) per bucket, then (+Inf, total).
    pub fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut running = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (slot, count) in self.counts.iter().enumerate() {
            running += count;
            out.push((LATENCY_BUCKETS.get(slot).copied(), running));
        }
        out
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets() {
        let mut histogram = LatencyHistogram::default();
        for seconds in [0.001, 0.005, 0.007, 0.3, 20.0] {
            histogram.observe(seconds);
        }
        let cumulative = histogram.cumulative();
        assert_eq!(cumulative[0], (Some(0.005), 2), "le is inclusive");
        assert_eq!(cumulative[1], (Some(0.01), 3));
        assert_eq!(cumulative[6], (Some(0.5), 4));
        assert_eq!(*cumulative.last().unwrap(), (None, 5));
        assert_eq!(histogram.count(), 5);
        assert!((histogram.sum_seconds() - 20.313).abs() < 1e-9);
    }
}
