//! `TenantWindow`: one tenant's recent traffic — requests and errors per bucket, latency (window,
//! sub-windows, baseline) and errors by endpoint; cold (a few exact events) or hot (sketches).
//!
//! [`HotWindow`] is the dense form: a counter ring, latency sketches per sub-window plus a running
//! window sketch, a longer latency baseline. Its sketches cost kilobytes, which only pays off for
//! tenants with many events; `cold` holds the rest and promotes itself when it fills.

mod cold;

use super::endpoints::{EndpointErrors, OTHER_ENDPOINT};
pub use super::ring::Counts;
use super::ring::{malloc_size, CounterRing};
use super::sketch::{LatencyKey, LatencySketch, P95Cursor};
pub use cold::{TenantWindow, COLD_EVENTS};

/// Bucket geometry shared by every tenant, derived once from the config so no window stores it.
/// Time is a bucket sequence number (`epoch_ms / bucket_ms`), never read from a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowShape {
    pub bucket_ms: i64,
    /// Counter buckets in the window.
    pub buckets: usize,
    /// Counter buckets per latency sub-window. Sketches are coarser than counters because each
    /// costs hundreds of bytes and a counter eight.
    pub buckets_per_latency: i64,
    /// Latency sub-windows in the window.
    pub latency_slots: usize,
    /// Latency sub-windows per baseline bucket.
    pub latency_per_baseline: i64,
    /// Baseline buckets kept: baseline / baseline bucket, plus the one that is filling.
    pub baseline_slots: usize,
    pub max_endpoints: usize,
}

impl WindowShape {
    pub fn bucket_of(&self, epoch_ms: i64) -> i64 {
        epoch_ms.div_euclid(self.bucket_ms)
    }

    fn latency_of(&self, seq: i64) -> i64 {
        seq.div_euclid(self.buckets_per_latency)
    }

    /// The newest baseline bucket when the counters' head is `seq`: the one receiving the
    /// sub-windows that have just left the window.
    fn baseline_head_at(&self, seq: i64) -> i64 {
        (self.latency_of(seq) - self.latency_slots as i64).div_euclid(self.latency_per_baseline)
    }
}

/// One busy tenant's window, dense (also used for the `__other__` aggregate).
#[derive(Debug, Clone)]
pub(crate) struct HotWindow {
    counts: CounterRing,
    /// Ring of sub-window sketches; slot of latency sub-window `l` is `l mod len`.
    latency: Box<[LatencySketch]>,
    /// The sum of `latency`: the window's p95 without merging anything at query time.
    window_latency: LatencySketch,
    /// Follows `window_latency`'s p95 per insert; `None` after a bulk change (retire, absorb)
    /// until the next insert or query takes a fresh one.
    p95_cursor: Option<P95Cursor>,
    /// Sub-windows that left the window, by baseline bucket. Empty until the first one leaves:
    /// most short-lived tenants never need a baseline.
    baseline: Box<[LatencySketch]>,
    baseline_head: i64,
    /// The sum of `baseline`: history *before* the window, so a spike cannot raise its own bar.
    baseline_latency: LatencySketch,
    /// `None` when the baseline changed since the last p95 (it changes once per sub-window).
    baseline_p95_cache: Option<Option<f64>>,
    endpoints: EndpointErrors,
    heap_bytes: usize,
}

impl HotWindow {
    pub fn new(shape: &WindowShape) -> Self {
        let mut window = Self {
            counts: CounterRing::new(shape.buckets),
            latency: vec![LatencySketch::new(); shape.latency_slots.max(1)].into_boxed_slice(),
            window_latency: LatencySketch::new(),
            p95_cursor: None,
            baseline: Box::default(),
            baseline_head: 0,
            baseline_latency: LatencySketch::new(),
            baseline_p95_cache: None,
            endpoints: EndpointErrors::default(),
            heap_bytes: 0,
        };
        window.recount_heap_bytes();
        window
    }

    pub fn head(&self) -> Option<i64> {
        self.counts.head()
    }

    /// Moves the window to `now_seq`: expires counters and endpoint errors, retires latency
    /// sub-windows into the baseline and expires baseline buckets. Amortized O(1) per bucket.
    pub fn advance(&mut self, shape: &WindowShape, now_seq: i64) {
        let Some(head) = self.counts.head() else {
            self.counts.advance(now_seq);
            self.baseline_head = shape.baseline_head_at(now_seq);
            return;
        };
        if now_seq <= head {
            return;
        }
        self.counts.advance(now_seq);
        self.endpoints
            .expire_through(now_seq - shape.buckets as i64);
        let (old, new) = (shape.latency_of(head), shape.latency_of(now_seq));
        // An empty window has nothing to retire (a tenant seen once and evicted, typically).
        if new > old && !self.window_latency.is_empty() {
            let len = self.latency.len() as i64;
            let oldest = shape.latency_of(self.counts.oldest().unwrap_or(head));
            for latency_seq in (old - len + 1).max(oldest)..=(new - len).min(old) {
                self.retire_latency(shape, latency_seq);
            }
        }
        self.roll_baseline(shape.baseline_head_at(now_seq));
        // Recompute what a rollover made stale now, while these sketches are in cache: a query
        // over 100k tenants then reads one number per tenant instead of walking cold sketches.
        self.refresh_p95s();
    }

    /// Counts one event in bucket `seq` (the window must be advanced to at least `seq`).
    /// Returns false when `seq` is already outside the window.
    pub fn record(
        &mut self,
        shape: &WindowShape,
        seq: i64,
        latency: LatencyKey,
        is_error: bool,
        endpoint: Option<&str>,
    ) -> bool {
        if !self.counts.add(seq, 1, u32::from(is_error)) {
            return false;
        }
        let head = self.counts.head().unwrap_or(seq);
        let (latency_seq, latency_head) = (shape.latency_of(seq), shape.latency_of(head));
        // The oldest counter buckets can belong to a sub-window that already retired.
        if latency_seq > latency_head - self.latency.len() as i64 {
            let slot = latency_seq.rem_euclid(self.latency.len() as i64) as usize;
            let before = self.latency[slot].heap_bytes() + self.window_latency.heap_bytes();
            self.latency[slot].insert_key(latency, 1);
            self.window_latency.insert_key(latency, 1);
            self.p95_cursor = match self.p95_cursor {
                Some(cursor) => self.window_latency.follow_p95(cursor, latency),
                None => None,
            }
            .or_else(|| self.window_latency.p95_cursor());
            let after = self.latency[slot].heap_bytes() + self.window_latency.heap_bytes();
            self.heap_bytes = self.heap_bytes - before + after;
        }
        if is_error {
            let before = self.endpoints.heap_bytes();
            let name = endpoint.unwrap_or(OTHER_ENDPOINT);
            self.endpoints.add(name, seq, 1, shape.max_endpoints);
            self.heap_bytes = self.heap_bytes - before + self.endpoints.heap_bytes();
        }
        true
    }

    /// Requests and errors in the newest `buckets` buckets.
    pub fn counts(&self, buckets: usize) -> Counts {
        self.counts.last(buckets)
    }

    /// Latency over the newest `buckets` buckets, widened to the whole sub-windows they touch
    /// (five 1 s buckets straddle two 5 s sub-windows unless they start on a boundary). The full
    /// window is free; a shorter one merges sub-windows into `scratch`.
    pub fn latency<'a>(
        &'a self,
        shape: &WindowShape,
        buckets: usize,
        scratch: &'a mut LatencySketch,
    ) -> &'a LatencySketch {
        let len = self.latency.len() as i64;
        let Some(head) = self.counts.head() else {
            return &self.window_latency;
        };
        let newest = shape.latency_of(head);
        let oldest = shape.latency_of(head - buckets.max(1) as i64 + 1);
        if newest - oldest + 1 >= len {
            return &self.window_latency;
        }
        scratch.clear();
        for latency_seq in oldest..=newest {
            scratch.merge(&self.latency[latency_seq.rem_euclid(len) as usize]);
        }
        scratch
    }

    /// p95 of the whole window, the fast path rankings use: O(1) while the cursor is current.
    pub fn window_p95(&self) -> Option<f64> {
        match self.p95_cursor {
            Some(cursor) => Some(LatencySketch::cursor_value(cursor)),
            None => self.window_latency.quantile(0.95),
        }
    }

    /// p95 of the baseline (the history before the window): cached when fresh, else computed.
    pub fn baseline_p95(&self) -> Option<f64> {
        self.baseline_p95_cache
            .unwrap_or_else(|| self.baseline_latency.quantile(0.95))
    }

    /// Recomputes what a bulk change made stale — the window p95 cursor and the baseline p95
    /// (both change in bulk once per sub-window) — so ranking every tenant by latency or
    /// deviation reads one number per tenant instead of scanning its bins.
    pub fn refresh_p95s(&mut self) {
        if self.p95_cursor.is_none() {
            self.p95_cursor = self.window_latency.p95_cursor();
        }
        if self.baseline_p95_cache.is_none() {
            self.baseline_p95_cache = Some(self.baseline_latency.quantile(0.95));
        }
    }

    pub fn baseline_count(&self) -> u64 {
        self.baseline_latency.count()
    }

    /// The endpoint with most errors in the newest `buckets` buckets.
    pub fn top_endpoint(&self, buckets: usize) -> Option<(&str, u64)> {
        let head = self.counts.head()?;
        self.endpoints.top_since(head - buckets as i64)
    }

    /// Adds everything `other` holds (how an evicted tenant is folded into `__other__`). Both
    /// windows must have been advanced to the same head.
    pub fn absorb(&mut self, shape: &WindowShape, other: &HotWindow) {
        let Some(head) = other.head() else { return };
        self.advance(shape, head);
        self.counts.absorb(&other.counts);
        let mut grown = 0;
        if !other.window_latency.is_empty() {
            // Only the sub-windows that can hold data: one for a tenant seen once.
            let (len, newest) = (self.latency.len() as i64, shape.latency_of(head));
            let oldest = shape.latency_of(other.counts.oldest().unwrap_or(head));
            for latency_seq in (newest - len + 1).max(oldest)..=newest {
                let slot = latency_seq.rem_euclid(len) as usize;
                grown += merge_counting_growth(&mut self.latency[slot], &other.latency[slot]);
            }
            grown += merge_counting_growth(&mut self.window_latency, &other.window_latency);
            self.p95_cursor = None;
        }
        if other.baseline_latency.count() > 0 {
            self.ensure_baseline(shape);
            let baseline = self.baseline.iter_mut().zip(other.baseline.iter());
            let total = std::iter::once((&mut self.baseline_latency, &other.baseline_latency));
            for (into, from) in baseline.chain(total) {
                grown += merge_counting_growth(into, from);
            }
            self.baseline_p95_cache = None;
        }
        let before = self.endpoints.heap_bytes();
        self.endpoints.absorb(&other.endpoints, shape.max_endpoints);
        self.heap_bytes = self.heap_bytes + grown - before + self.endpoints.heap_bytes();
    }

    /// Heap bytes held, kept current on every change so the tracker's byte cap costs O(1).
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }

    fn retire_latency(&mut self, shape: &WindowShape, latency_seq: i64) {
        let slot = latency_seq.rem_euclid(self.latency.len() as i64) as usize;
        if self.latency[slot].is_empty() {
            return;
        }
        self.roll_baseline(latency_seq.div_euclid(shape.latency_per_baseline));
        self.ensure_baseline(shape);
        let into = self.baseline_head.rem_euclid(self.baseline.len() as i64) as usize;
        let before = self.baseline[into].heap_bytes() + self.baseline_latency.heap_bytes();
        self.window_latency.subtract(&self.latency[slot]);
        self.p95_cursor = None;
        self.baseline[into].merge(&self.latency[slot]);
        self.baseline_latency.merge(&self.latency[slot]);
        self.latency[slot].clear();
        let after = self.baseline[into].heap_bytes() + self.baseline_latency.heap_bytes();
        self.heap_bytes = self.heap_bytes - before + after;
        self.baseline_p95_cache = None;
    }

    /// Moves the baseline head to bucket `to`, expiring buckets older than the baseline keeps.
    fn roll_baseline(&mut self, to: i64) {
        if to <= self.baseline_head {
            return;
        }
        let len = self.baseline.len() as i64;
        if len > 0 {
            for seq in (self.baseline_head - len + 1)..=(to - len).min(self.baseline_head) {
                let slot = &mut self.baseline[seq.rem_euclid(len) as usize];
                if !slot.is_empty() {
                    self.baseline_latency.subtract(slot);
                    slot.clear();
                    self.baseline_p95_cache = None;
                }
            }
        }
        self.baseline_head = to;
    }

    fn ensure_baseline(&mut self, shape: &WindowShape) {
        if self.baseline.is_empty() {
            let slots = shape.baseline_slots.max(1);
            self.baseline = vec![LatencySketch::new(); slots].into_boxed_slice();
            self.heap_bytes += malloc_size(std::mem::size_of_val(&*self.baseline));
        }
    }

    /// Places one remembered event (a cold window's) where it would be had this window seen it:
    /// the counters if inside the window, then its latency sub-window while that is live, else
    /// its baseline bucket while that is kept. `latency` is `None` for an event whose latency was
    /// not counted (it arrived after its sub-window had retired). Leaves the p95s to refresh.
    fn insert_entry(
        &mut self,
        shape: &WindowShape,
        seq: i64,
        latency: Option<LatencyKey>,
        is_error: bool,
    ) {
        self.counts.add(seq, 1, u32::from(is_error));
        let (Some(key), Some(head)) = (latency, self.counts.head()) else {
            return;
        };
        let (latency_seq, latency_head) = (shape.latency_of(seq), shape.latency_of(head));
        if latency_seq > latency_head - self.latency.len() as i64 {
            let slot = latency_seq.rem_euclid(self.latency.len() as i64) as usize;
            self.latency[slot].insert_key(key, 1);
            self.window_latency.insert_key(key, 1);
            self.p95_cursor = None;
            return;
        }
        let bucket = latency_seq.div_euclid(shape.latency_per_baseline);
        let kept = shape.baseline_slots.max(1) as i64;
        if bucket <= self.baseline_head && bucket > self.baseline_head - kept {
            self.ensure_baseline(shape);
            let slot = bucket.rem_euclid(self.baseline.len() as i64) as usize;
            self.baseline[slot].insert_key(key, 1);
            self.baseline_latency.insert_key(key, 1);
            self.baseline_p95_cache = None;
        }
    }

    /// True when nothing is left: no counts, no latency in window or baseline, no endpoint.
    fn holds_nothing(&self) -> bool {
        self.counts.last(usize::MAX).requests == 0
            && self.window_latency.is_empty()
            && self.baseline_latency.is_empty()
            && self.endpoints.is_empty()
    }

    fn recount_heap_bytes(&mut self) {
        let sketches = self.latency.iter().chain(self.baseline.iter());
        self.heap_bytes = self.counts.heap_bytes()
            + malloc_size(std::mem::size_of_val(&*self.latency))
            + malloc_size(std::mem::size_of_val(&*self.baseline))
            + sketches.map(LatencySketch::heap_bytes).sum::<usize>()
            + self.window_latency.heap_bytes()
            + self.baseline_latency.heap_bytes()
            + self.endpoints.heap_bytes();
    }
}

/// Merges `from` into `into` and returns how many heap bytes `into` grew by (merges never shrink).
fn merge_counting_growth(into: &mut LatencySketch, from: &LatencySketch) -> usize {
    if from.is_empty() {
        return 0;
    }
    let before = into.heap_bytes();
    into.merge(from);
    into.heap_bytes() - before
}

#[cfg(test)]
mod tests;
