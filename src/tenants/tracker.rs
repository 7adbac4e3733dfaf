//! `TenantTracker`: which tenants get a window of their own under hard caps on count and bytes —
//! admitted and evicted by decayed weight (Space-Saving style), the evicted folded into `__other__`.
//!
//! # The admission guarantee
//! Every event adds `(1 + 4·is_error) · 2^(t/h)` to its tenant's weight (forward decay, half-life
//! `h` = half the window): scaling every weight by the same factor as time passes changes no
//! ordering, so weights are stored once and never touched by the clock. A new tenant is always
//! admitted on its first event; when the table is full it takes the slot of a light tenant and
//! inherits its weight as credit, as in Space-Saving. Victims come from a scan of the lightest
//! eighth of the table (one O(k) scan per k/8 evictions, so O(1) amortized), and a victim that got
//! heavier than the scan's threshold since is skipped. Tracked weights sum to the total decayed
//! weight W, so the threshold is at most W/(k - k/8): **a tenant whose decayed weight since its
//! admission exceeds 8/7 · W/k is never evicted**, however many tenants arrive after it. Evicted
//! tenants' windows move into `__other__`, so window totals stay exact.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ring::{malloc_size, CounterRing};
use super::sketch::LatencyKey;
use super::window::{Counts, TenantWindow, WindowShape};

/// The name under which evicted tenants' traffic is counted.
pub const OTHER_TENANT: &str = "__other__";

/// An error weighs as much as this many requests for admission: the detector exists to find
/// failing tenants, so failing earns a place in the table faster than merely talking.
const ERROR_ADMISSION_WEIGHT: f64 = 4.0;

/// Eviction candidates per scan are the lightest 1/`VICTIM_FRACTION` of the table: larger scans
/// are cheaper per eviction, smaller ones evict closer to the true minimum.
const VICTIM_FRACTION: usize = 8;

/// Weights are rebased when the decay factor reaches 2^this, long before an f64 overflows.
const MAX_DECAY_EXPONENT: f64 = 64.0;

/// Heap bytes a tracked tenant costs beyond its window: the shared id (`Arc` counts plus text).
/// Its index entry and slab slot are counted with the table's capacity.
fn tenant_overhead(id: &str) -> usize {
    malloc_size(id.len() + 2 * std::mem::size_of::<usize>())
}

/// One event as the tracker needs it: borrowed, classified, its latency already keyed.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub tenant_id: &'a str,
    /// The normalized endpoint; only looked at for errors.
    pub endpoint: &'a str,
    pub is_error: bool,
    pub latency: LatencyKey,
    pub timestamp_ms: i64,
}

#[derive(Debug)]
pub struct TrackedTenant {
    id: Arc<str>,
    /// Decayed weight in units of `2^(seq/h)`; see the module docs.
    weight: f64,
    /// When this tenant last got its slot: counts before that went to `__other__`.
    tracked_since_ms: i64,
    window: TenantWindow,
}

impl TrackedTenant {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn tracked_since_ms(&self) -> i64 {
        self.tracked_since_ms
    }

    pub fn window(&self) -> &TenantWindow {
        &self.window
    }

    pub fn window_mut(&mut self) -> &mut TenantWindow {
        &mut self.window
    }
}

/// What the tracker reports about its own approximation state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerStats {
    pub tracked: usize,
    pub max_tenants: usize,
    pub admitted: u64,
    /// Tenants that lost their slot (to a newcomer or to the byte cap).
    pub evicted: u64,
    /// The part of `evicted` that the byte cap forced.
    pub evicted_for_bytes: u64,
    /// Events in the window at eviction time, now counted under `__other__`.
    pub overflow_events: u64,
    /// Events older than the window when they arrived; counted nowhere.
    pub late_events: u64,
    pub bytes_estimate: usize,
    pub max_bytes: usize,
}

/// The weights' time base: `2^((seq - origin) / half_life)`, cached per bucket.
#[derive(Debug)]
struct ForwardDecay {
    half_life_buckets: f64,
    origin: i64,
    cached: (i64, f64),
}

impl ForwardDecay {
    fn exponent(&self, seq: i64) -> f64 {
        (seq - self.origin) as f64 / self.half_life_buckets
    }

    fn factor(&mut self, seq: i64) -> f64 {
        if self.cached.0 != seq {
            self.cached = (seq, self.exponent(seq).exp2());
        }
        self.cached.1
    }
}

#[derive(Debug)]
pub struct TenantTracker {
    shape: WindowShape,
    max_tenants: usize,
    max_bytes: usize,
    /// Slab of tenants; `None` slots (freed by the byte cap) are listed in `free`.
    slots: Vec<Option<TrackedTenant>>,
    free: Vec<u32>,
    /// Looked up by `&str`, so a known tenant costs no allocation.
    index: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
    other: TenantWindow,
    /// Every event in the window, tracked or not: the denominator of shares and lifts.
    global: CounterRing,
    /// Eviction candidates, lightest last; valid while their weight is at most `victim_threshold`.
    victims: Vec<u32>,
    victim_threshold: f64,
    /// Scratch for victim scans, kept to avoid an allocation per scan: (weight bits, slot).
    /// Weights are never negative, so their bit patterns sort like the numbers.
    scan: Vec<(u64, u32)>,
    decay: ForwardDecay,
    head: Option<i64>,
    /// Sum of `window.heap_bytes() + tenant_overhead(id)` over tracked tenants.
    tenant_bytes: usize,
    empty_window_bytes: usize,
    stats: TrackerStats,
}

impl TenantTracker {
    pub fn new(shape: WindowShape, max_tenants: usize, max_bytes: usize) -> Self {
        let other = TenantWindow::new_hot(&shape);
        Self {
            shape,
            max_tenants: max_tenants.max(1),
            max_bytes,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::default(),
            empty_window_bytes: TenantWindow::new(&shape).heap_bytes(),
            other,
            global: CounterRing::new(shape.buckets),
            victims: Vec::new(),
            victim_threshold: f64::NEG_INFINITY,
            scan: Vec::new(),
            decay: ForwardDecay {
                half_life_buckets: (shape.buckets as f64 / 2.0).max(1.0),
                origin: 0,
                cached: (i64::MIN, 1.0),
            },
            head: None,
            tenant_bytes: 0,
            stats: TrackerStats::default(),
        }
    }

    pub fn shape(&self) -> &WindowShape {
        &self.shape
    }

    /// Counts one event. O(1) amortized; allocation-free for a known tenant. Returns false when
    /// the event is older than the window (counted in `late_events`).
    pub fn record(&mut self, sample: Sample<'_>, now_ms: i64) -> bool {
        let now_seq = self.advance_clock(now_ms);
        // Clock skew: an event from the future counts as now.
        let seq = self.shape.bucket_of(sample.timestamp_ms).min(now_seq);
        if seq <= now_seq - self.shape.buckets as i64 {
            self.stats.late_events += 1;
            return false;
        }
        let slot = match self.index.get(sample.tenant_id) {
            Some(&slot) => slot,
            None => self.admit(sample.tenant_id, now_ms, now_seq),
        };
        let factor = self.decay.factor(now_seq);
        let shape = &self.shape;
        let tenant = self.slots[slot as usize]
            .as_mut()
            .expect("indexed slot is occupied");
        let before = tenant.window.heap_bytes();
        tenant.window.advance(shape, now_seq);
        let endpoint = sample.is_error.then_some(sample.endpoint);
        tenant
            .window
            .record(shape, seq, sample.latency, sample.is_error, endpoint);
        tenant.weight +=
            factor * (1.0 + ERROR_ADMISSION_WEIGHT * f64::from(u8::from(sample.is_error)));
        self.tenant_bytes = self.tenant_bytes - before + tenant.window.heap_bytes();
        self.global.add(seq, 1, u32::from(sample.is_error));
        self.shed_bytes(now_seq);
        true
    }

    /// Brings every window to `now_ms` (what a query needs first). O(tracked).
    pub fn advance_all(&mut self, now_ms: i64) {
        self.advance_all_and(now_ms, |_| {});
    }

    /// [`Self::advance_all`], also handing each window to `visit` in the same pass (one walk
    /// over 100k tenants instead of two).
    pub fn advance_all_and(&mut self, now_ms: i64, mut visit: impl FnMut(&mut TenantWindow)) {
        let now_seq = self.advance_clock(now_ms);
        for tenant in self.slots.iter_mut().flatten() {
            let before = tenant.window.heap_bytes();
            tenant.window.advance(&self.shape, now_seq);
            visit(&mut tenant.window);
            self.tenant_bytes = self.tenant_bytes - before + tenant.window.heap_bytes();
        }
        self.other.advance(&self.shape, now_seq);
    }

    /// One tenant brought to `now_ms`, or `None` when it is not tracked.
    pub fn tenant_at(&mut self, id: &str, now_ms: i64) -> Option<&mut TrackedTenant> {
        let now_seq = self.advance_clock(now_ms);
        self.other.advance(&self.shape, now_seq);
        let slot = *self.index.get(id)?;
        let tenant = self.slots[slot as usize].as_mut()?;
        let before = tenant.window.heap_bytes();
        tenant.window.advance(&self.shape, now_seq);
        self.tenant_bytes = self.tenant_bytes - before + tenant.window.heap_bytes();
        Some(tenant)
    }

    pub fn get(&self, id: &str) -> Option<&TrackedTenant> {
        self.slots[*self.index.get(id)? as usize].as_ref()
    }

    pub fn tenants(&self) -> impl Iterator<Item = &TrackedTenant> {
        self.slots.iter().flatten()
    }

    pub fn tenants_mut(&mut self) -> impl Iterator<Item = &mut TrackedTenant> {
        self.slots.iter_mut().flatten()
    }

    pub fn other(&self) -> &TenantWindow {
        &self.other
    }

    /// Every event in the newest `buckets` buckets, tracked or not.
    pub fn totals(&self, buckets: usize) -> Counts {
        self.global.last(buckets)
    }

    pub fn stats(&self) -> TrackerStats {
        TrackerStats {
            tracked: self.index.len(),
            max_tenants: self.max_tenants,
            bytes_estimate: self.bytes_estimate(),
            max_bytes: self.max_bytes,
            ..self.stats
        }
    }

    /// Heap and table bytes as the allocator counts them: every tenant window, `__other__`, the
    /// index (its buckets: capacity is 7/8 of them, one control byte each) and the slab's used
    /// slots (its spare capacity is never written, so the kernel never backs it with memory).
    pub fn bytes_estimate(&self) -> usize {
        let index_buckets = self.index.capacity() * 8 / 7;
        self.tenant_bytes
            + self.other.heap_bytes()
            + self.global.heap_bytes()
            + malloc_size(self.slots.len() * std::mem::size_of::<Option<TrackedTenant>>())
            + malloc_size(index_buckets * (std::mem::size_of::<(Arc<str>, u32)>() + 1))
            + malloc_size(self.free.capacity() * std::mem::size_of::<u32>())
            + malloc_size(self.victims.capacity() * std::mem::size_of::<u32>())
            + malloc_size(self.scan.capacity() * std::mem::size_of::<(u64, u32)>())
    }

    /// Moves the tracker's clock (never backwards) and rebases weights when they grow large.
    fn advance_clock(&mut self, now_ms: i64) -> i64 {
        let seq = self.shape.bucket_of(now_ms);
        let now_seq = self.head.map_or(seq, |head| head.max(seq));
        if self.head.is_none() {
            self.decay.origin = now_seq;
        }
        self.head = Some(now_seq);
        self.global.advance(now_seq);
        let exponent = self.decay.exponent(now_seq);
        if exponent > MAX_DECAY_EXPONENT {
            // Same factor for everyone: no ordering changes, only the numbers shrink.
            let scale = (-exponent).exp2();
            self.slots
                .iter_mut()
                .flatten()
                .for_each(|t| t.weight *= scale);
            self.victim_threshold *= scale;
            self.decay.origin = now_seq;
            self.decay.cached = (i64::MIN, 1.0);
        }
        now_seq
    }

    fn admit(&mut self, id: &str, now_ms: i64, now_seq: i64) -> u32 {
        self.stats.admitted += 1;
        let live = self.index.len();
        let fits =
            self.bytes_estimate() + self.empty_window_bytes + tenant_overhead(id) <= self.max_bytes;
        let id: Arc<str> = Arc::from(id);
        let slot = if live == 0 || (live < self.max_tenants && fits) {
            let tenant = TrackedTenant {
                id: Arc::clone(&id),
                weight: 0.0,
                tracked_since_ms: now_ms,
                window: TenantWindow::new(&self.shape),
            };
            self.tenant_bytes += tenant.window.heap_bytes() + tenant_overhead(&id);
            match self.free.pop() {
                Some(slot) => {
                    self.slots[slot as usize] = Some(tenant);
                    slot
                }
                None => {
                    self.slots.push(Some(tenant));
                    (self.slots.len() - 1) as u32
                }
            }
        } else {
            let slot = self.pick_victim();
            self.evict(slot, now_seq, true);
            let tenant = self.slots[slot as usize]
                .as_mut()
                .expect("victim slot kept");
            // The inherited weight is the Space-Saving credit (see the module docs).
            tenant.id = Arc::clone(&id);
            tenant.tracked_since_ms = now_ms;
            self.tenant_bytes += tenant.window.heap_bytes() + tenant_overhead(&id);
            slot
        };
        self.index.insert(id, slot);
        slot
    }

    /// Folds a tenant into `__other__`; keeps the slot (window reset, weight kept as the next
    /// tenant's credit) or frees it.
    fn evict(&mut self, slot: u32, now_seq: i64, keep_slot: bool) {
        let shape = &self.shape;
        let tenant = self.slots[slot as usize]
            .as_mut()
            .expect("victim is occupied");
        self.tenant_bytes -= tenant.window.heap_bytes() + tenant_overhead(&tenant.id);
        tenant.window.advance(shape, now_seq);
        self.other.advance(shape, now_seq);
        self.other.absorb(shape, &tenant.window);
        self.stats.overflow_events += tenant.window.counts(shape.buckets).requests;
        self.stats.evicted += 1;
        self.index.remove(&*tenant.id);
        if keep_slot {
            tenant.window.reset();
        } else {
            self.slots[slot as usize] = None;
            self.free.push(slot);
        }
    }

    fn pick_victim(&mut self) -> u32 {
        loop {
            while let Some(slot) = self.victims.pop() {
                let still_light = self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|tenant| tenant.weight <= self.victim_threshold);
                if still_light {
                    return slot;
                }
            }
            self.scan_for_victims();
        }
    }

    /// Collects the lightest eighth of the table, lightest last. O(k), once per k/8 evictions.
    fn scan_for_victims(&mut self) {
        self.scan.clear();
        for (slot, tenant) in self.slots.iter().enumerate() {
            if let Some(tenant) = tenant {
                self.scan.push((tenant.weight.to_bits(), slot as u32));
            }
        }
        assert!(
            !self.scan.is_empty(),
            "a victim is only needed when the table is full"
        );
        let wanted = (self.scan.len() / VICTIM_FRACTION).max(1);
        if self.scan.len() > wanted {
            self.scan.select_nth_unstable(wanted - 1);
            self.scan.truncate(wanted);
        }
        self.scan.sort_unstable();
        self.victim_threshold = f64::from_bits(self.scan[wanted.min(self.scan.len()) - 1].0);
        self.victims.clear();
        self.victims
            .extend(self.scan.iter().rev().map(|&(_, slot)| slot));
    }

    /// Evicts the lightest tenants while the byte estimate is over the cap (always keeping one).
    fn shed_bytes(&mut self, now_seq: i64) {
        while self.bytes_estimate() > self.max_bytes && self.index.len() > 1 {
            let slot = self.pick_victim();
            self.evict(slot, now_seq, false);
            self.stats.evicted_for_bytes += 1;
        }
    }
}

#[cfg(test)]
mod tests;
