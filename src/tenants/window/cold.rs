//! `TenantWindow` as the tracker holds it: cold (a tenant's few recent events, exact, 8 bytes
//! each) until it fills, then hot (a boxed [`HotWindow`] of sketches); hot turns cold when empty.
//!
//! # Why cold is exact
//! A cold window keeps each event as (bucket, latency bin, error). Counts, the window and baseline
//! p95s and the per-endpoint errors are computed from those events with the same bucket and
//! sub-window boundaries the hot form uses, and a quantile of the sorted bins is the bin a sketch
//! would answer (a sketch is exact per bin). So promotion replays the events into a fresh hot
//! window and every figure stays the same; demotion happens only once a hot window holds nothing.
//! Rankings read the full-window counts and p95s from fields kept next to the state, so scanning
//! 100,000 tenants touches one compact slab, never the boxed sketches.

use super::{EndpointErrors, HotWindow, WindowShape, OTHER_ENDPOINT};
use crate::tenants::ring::{malloc_size, Counts};
use crate::tenants::sketch::{LatencyKey, LatencySketch};

/// Events a cold window remembers before it turns hot: at most 512 bytes, against the 10-25 KB a
/// busy hot window's sketches take. Under Zipf traffic most tenants never reach it.
pub const COLD_EVENTS: usize = 64;

const ERROR: u8 = 1;
/// The event's latency was not counted: it arrived after its sub-window had retired.
const NO_LATENCY: u8 = 2;
/// The zero bucket's bin, below every log bin (keys span about -346..=1037).
const ZERO_BIN: i16 = i16::MIN;
/// `head` before the first event.
const NO_HEAD: i64 = i64::MIN;

/// One remembered event. `seq` is the bucket's low 32 bits, read back against the head.
#[derive(Debug, Clone, Copy)]
struct ColdEvent {
    seq: u32,
    bin: i16,
    flags: u8,
}

impl ColdEvent {
    fn seq(self, head: i64) -> i64 {
        head - i64::from((head as u32).wrapping_sub(self.seq))
    }

    fn latency(self) -> Option<LatencyKey> {
        (self.flags & NO_LATENCY == 0)
            .then(|| LatencyKey::from_bin((self.bin != ZERO_BIN).then_some(i32::from(self.bin))))
    }
}

/// The bucket boundaries a cold window needs, derived from the head when it moves.
#[derive(Debug, Clone, Copy, Default)]
struct Bounds {
    /// First bucket whose latency sub-window is still in the window.
    latency_from: i64,
    /// First bucket whose baseline bucket is still kept.
    baseline_from: i64,
}

impl Bounds {
    fn at(shape: &WindowShape, head: i64) -> Self {
        let slots = shape.latency_slots.max(1) as i64;
        let kept = shape.baseline_slots.max(1) as i64;
        let per_latency = shape.buckets_per_latency;
        Self {
            latency_from: (shape.latency_of(head) - slots + 1) * per_latency,
            baseline_from: (shape.baseline_head_at(head) - kept + 1)
                * shape.latency_per_baseline
                * per_latency,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct ColdWindow {
    events: Vec<ColdEvent>,
    bounds: Bounds,
    /// Only tenants that failed pay for endpoint names.
    endpoints: Option<Box<EndpointErrors>>,
}

/// Figures a ranking reads, computed from a cold window's events.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    window_p95: Option<f64>,
    baseline_p95: Option<f64>,
    baseline_count: u64,
}

impl ColdWindow {
    /// Two passes over the events, which are kept sorted by bin: count the window's and the
    /// baseline's latencies, then walk to the p95 rank of each. O(events), no sorting, so it
    /// runs on every change and a ranking only reads the result.
    fn figures(&self, head: i64) -> Figures {
        let Bounds {
            latency_from,
            baseline_from,
        } = self.bounds;
        let part = |event: &ColdEvent| -> Option<bool> {
            if event.flags & NO_LATENCY != 0 {
                return None;
            }
            let seq = event.seq(head);
            match seq >= latency_from {
                true => Some(true),
                false => (seq >= baseline_from).then_some(false),
            }
        };
        let (mut in_window, mut in_baseline) = (0usize, 0usize);
        for event in &self.events {
            match part(event) {
                Some(true) => in_window += 1,
                Some(false) => in_baseline += 1,
                None => {}
            }
        }
        let rank = |n: usize| (n > 0).then(|| (0.95 * (n - 1) as f64).floor() as usize);
        let (window_rank, baseline_rank) = (rank(in_window), rank(in_baseline));
        let (mut window_p95, mut baseline_p95) = (None, None);
        let (mut seen_window, mut seen_baseline) = (0usize, 0usize);
        for event in &self.events {
            let seen = match part(event) {
                Some(true) => &mut seen_window,
                Some(false) => &mut seen_baseline,
                None => continue,
            };
            let (wanted, p95) = match part(event) {
                Some(true) => (window_rank, &mut window_p95),
                _ => (baseline_rank, &mut baseline_p95),
            };
            if wanted == Some(*seen) {
                *p95 = Some(bin_value(event.bin));
            }
            *seen += 1;
        }
        Figures {
            window_p95,
            baseline_p95,
            baseline_count: in_baseline as u64,
        }
    }

    fn endpoints_mut(&mut self) -> &mut EndpointErrors {
        self.endpoints.get_or_insert_with(Box::default)
    }

    fn heap_bytes(&self) -> usize {
        let events = malloc_size(self.events.capacity() * std::mem::size_of::<ColdEvent>());
        let endpoints = self.endpoints.as_ref().map_or(0, |endpoints| {
            malloc_size(std::mem::size_of::<EndpointErrors>()) + endpoints.heap_bytes()
        });
        events + endpoints
    }
}

/// What a sketch answers for a value in this bin.
fn bin_value(bin: i16) -> f64 {
    LatencyKey::from_bin((bin != ZERO_BIN).then_some(i32::from(bin))).value()
}

#[derive(Debug, Clone)]
enum State {
    Cold(ColdWindow),
    Hot(Box<HotWindow>),
}

/// One tenant's window (also the `__other__` aggregate, which is always hot).
#[derive(Debug, Clone)]
pub struct TenantWindow {
    /// Newest bucket, `NO_HEAD` before the first event: advancing to the same bucket (what a
    /// query over 100k tenants mostly does) reads only this.
    head: i64,
    /// Buckets in the window, so a full-window count needs no shape.
    buckets: u32,
    /// Set when the fields below are current (a cold window recomputes them on every change).
    fresh: bool,
    /// Full-window counts.
    counts: Counts,
    window_p95: Option<f64>,
    baseline_p95: Option<f64>,
    baseline_count: u64,
    heap_bytes: usize,
    state: State,
}

impl TenantWindow {
    /// A cold, empty window: the form every tracked tenant starts in.
    pub fn new(shape: &WindowShape) -> Self {
        Self {
            head: NO_HEAD,
            buckets: shape.buckets as u32,
            fresh: true,
            counts: Counts::default(),
            window_p95: None,
            baseline_p95: None,
            baseline_count: 0,
            heap_bytes: 0,
            state: State::Cold(ColdWindow::default()),
        }
    }

    /// A hot, empty window (what `__other__` is: it absorbs every evicted tenant).
    pub fn new_hot(shape: &WindowShape) -> Self {
        let mut window = Self::new(shape);
        window.state = State::Hot(Box::new(HotWindow::new(shape)));
        window.sync();
        window
    }

    pub fn is_hot(&self) -> bool {
        matches!(self.state, State::Hot(_))
    }

    pub fn head(&self) -> Option<i64> {
        (self.head != NO_HEAD).then_some(self.head)
    }

    /// Moves the window to `now_seq` (see [`HotWindow::advance`]); a hot window left empty
    /// turns cold. O(1) when the head does not move.
    pub fn advance(&mut self, shape: &WindowShape, now_seq: i64) {
        if self.head != NO_HEAD && now_seq <= self.head {
            return;
        }
        match &mut self.state {
            State::Hot(hot) => {
                hot.advance(shape, now_seq);
                if hot.holds_nothing() {
                    self.state = State::Cold(ColdWindow::default());
                }
            }
            State::Cold(cold) if self.head != NO_HEAD => {
                let (old, window_from) = (self.head, now_seq - shape.buckets as i64 + 1);
                let bounds = Bounds::at(shape, now_seq);
                let mut counts = Counts::default();
                cold.events.retain(|event| {
                    let seq = event.seq(old);
                    let counted = seq >= window_from;
                    if counted {
                        counts.requests += 1;
                        counts.errors += u64::from(event.flags & ERROR);
                    }
                    counted || (event.flags & NO_LATENCY == 0 && seq >= bounds.baseline_from)
                });
                if let Some(endpoints) = &mut cold.endpoints {
                    endpoints.expire_through(window_from - 1);
                    if endpoints.is_empty() {
                        cold.endpoints = None;
                    }
                }
                self.counts = counts;
                self.fresh = false;
            }
            State::Cold(_) => {}
        }
        self.head = now_seq;
        if let State::Cold(cold) = &mut self.state {
            cold.bounds = Bounds::at(shape, now_seq);
            if cold.events.is_empty() {
                self.counts = Counts::default();
                (self.window_p95, self.baseline_p95, self.baseline_count) = (None, None, 0);
                self.fresh = true;
            }
        }
        self.refresh_p95s();
        self.sync();
    }

    /// Counts one event in bucket `seq` (see [`HotWindow::record`]); a full cold window turns
    /// hot first. Returns false when `seq` is outside the window.
    pub fn record(
        &mut self,
        shape: &WindowShape,
        seq: i64,
        latency: LatencyKey,
        is_error: bool,
        endpoint: Option<&str>,
    ) -> bool {
        if let State::Cold(cold) = &mut self.state {
            if self.head == NO_HEAD || seq > self.head || seq <= self.head - shape.buckets as i64 {
                return false;
            }
            if cold.events.len() < COLD_EVENTS {
                let mut flags = u8::from(is_error) * ERROR;
                if seq < cold.bounds.latency_from {
                    flags |= NO_LATENCY;
                }
                let bin = latency.bin().map_or(ZERO_BIN, |bin| bin as i16);
                let at = cold.events.partition_point(|event| event.bin <= bin);
                let seq_low = seq as u32;
                let event = ColdEvent {
                    seq: seq_low,
                    bin,
                    flags,
                };
                cold.events.insert(at, event);
                if is_error {
                    let name = endpoint.unwrap_or(OTHER_ENDPOINT);
                    cold.endpoints_mut().add(name, seq, 1, shape.max_endpoints);
                }
                self.counts.requests += 1;
                self.counts.errors += u64::from(is_error);
                self.heap_bytes = cold.heap_bytes();
                self.fresh = false;
                self.refresh_p95s();
                return true;
            }
            self.promote(shape);
        }
        let State::Hot(hot) = &mut self.state else {
            unreachable!("promoted above")
        };
        let counted = hot.record(shape, seq, latency, is_error, endpoint);
        self.sync();
        counted
    }

    /// Replays a cold window's events into a fresh hot window: every figure stays the same.
    fn promote(&mut self, shape: &WindowShape) {
        let State::Cold(cold) = &mut self.state else {
            return;
        };
        let mut hot = Box::new(HotWindow::new(shape));
        if self.head != NO_HEAD {
            hot.advance(shape, self.head);
        }
        for event in &cold.events {
            let error = event.flags & ERROR != 0;
            hot.insert_entry(shape, event.seq(self.head), event.latency(), error);
        }
        if let Some(endpoints) = cold.endpoints.take() {
            hot.endpoints = *endpoints;
        }
        hot.recount_heap_bytes();
        hot.refresh_p95s();
        self.state = State::Hot(hot);
        self.sync();
    }

    /// Requests and errors in the newest `buckets` buckets.
    pub fn counts(&self, buckets: usize) -> Counts {
        if self.head == NO_HEAD {
            return Counts::default();
        }
        if buckets >= self.buckets as usize {
            return self.counts;
        }
        match &self.state {
            State::Hot(hot) => hot.counts(buckets),
            State::Cold(cold) => {
                let since = self.head - buckets as i64 + 1;
                let mut counts = Counts::default();
                for event in cold.events.iter().filter(|e| e.seq(self.head) >= since) {
                    counts.requests += 1;
                    counts.errors += u64::from(event.flags & ERROR);
                }
                counts
            }
        }
    }

    /// Latency over the newest `buckets` buckets, widened to whole sub-windows (see
    /// [`HotWindow::latency`]); a cold window builds it in `scratch`.
    pub fn latency<'a>(
        &'a self,
        shape: &WindowShape,
        buckets: usize,
        scratch: &'a mut LatencySketch,
    ) -> &'a LatencySketch {
        let cold = match &self.state {
            State::Hot(hot) => return hot.latency(shape, buckets, scratch),
            State::Cold(cold) => cold,
        };
        scratch.clear();
        if self.head == NO_HEAD {
            return scratch;
        }
        let slots = shape.latency_slots.max(1) as i64;
        let newest = shape.latency_of(self.head);
        let oldest = shape
            .latency_of(self.head - buckets.max(1) as i64 + 1)
            .max(newest - slots + 1);
        for event in &cold.events {
            let Some(key) = event.latency() else { continue };
            let latency_seq = shape.latency_of(event.seq(self.head));
            if (oldest..=newest).contains(&latency_seq) {
                scratch.insert_key(key, 1);
            }
        }
        scratch
    }

    fn cold_figures(&self) -> Figures {
        match &self.state {
            State::Cold(cold) if !self.fresh => cold.figures(self.head),
            _ => Figures {
                window_p95: self.window_p95,
                baseline_p95: self.baseline_p95,
                baseline_count: self.baseline_count,
            },
        }
    }

    /// p95 of the whole window: O(1), read from the field next to the state.
    pub fn window_p95(&self) -> Option<f64> {
        self.cold_figures().window_p95
    }

    /// p95 of the baseline (the history before the window).
    pub fn baseline_p95(&self) -> Option<f64> {
        self.cold_figures().baseline_p95
    }

    pub fn baseline_count(&self) -> u64 {
        self.cold_figures().baseline_count
    }

    /// Makes the p95s current, so a ranking reads one number per tenant (record and advance
    /// already do: this only matters after a direct change to the events).
    pub fn refresh_p95s(&mut self) {
        if !self.fresh {
            let figures = self.cold_figures();
            self.window_p95 = figures.window_p95;
            self.baseline_p95 = figures.baseline_p95;
            self.baseline_count = figures.baseline_count;
            self.fresh = true;
        }
    }

    /// The endpoint with most errors in the newest `buckets` buckets.
    pub fn top_endpoint(&self, buckets: usize) -> Option<(&str, u64)> {
        match &self.state {
            State::Hot(hot) => hot.top_endpoint(buckets),
            State::Cold(cold) => {
                let since = self.head - buckets as i64;
                cold.endpoints.as_ref()?.top_since(since)
            }
        }
    }

    /// Adds everything `other` holds (how an evicted tenant is folded into `__other__`); this
    /// window turns hot. Both windows must have been advanced to the same head.
    pub fn absorb(&mut self, shape: &WindowShape, other: &TenantWindow) {
        let Some(head) = other.head() else { return };
        self.advance(shape, head);
        self.promote(shape);
        let State::Hot(hot) = &mut self.state else {
            unreachable!("promoted above")
        };
        match &other.state {
            State::Hot(from) => hot.absorb(shape, from),
            State::Cold(from) => {
                hot.advance(shape, head);
                for event in &from.events {
                    let error = event.flags & ERROR != 0;
                    hot.insert_entry(shape, event.seq(head), event.latency(), error);
                }
                if let Some(endpoints) = &from.endpoints {
                    hot.endpoints.absorb(endpoints, shape.max_endpoints);
                }
                hot.recount_heap_bytes();
            }
        }
        hot.refresh_p95s();
        self.sync();
    }

    /// Empties the window for reuse by another tenant: cold again, keeping a cold window's
    /// event buffer (a hot window's sketches are freed: the newcomer may never need them).
    pub fn reset(&mut self) {
        match &mut self.state {
            State::Cold(cold) => {
                cold.events.clear();
                cold.endpoints = None;
            }
            State::Hot(_) => self.state = State::Cold(ColdWindow::default()),
        }
        self.head = NO_HEAD;
        self.counts = Counts::default();
        self.window_p95 = None;
        self.baseline_p95 = None;
        self.baseline_count = 0;
        self.fresh = true;
        self.sync();
    }

    /// Heap bytes held as the allocator counts them, kept current on every change.
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }

    /// Copies a hot window's figures next to the state (a cold window's are kept by its paths).
    fn sync(&mut self) {
        match &self.state {
            State::Hot(hot) => {
                self.counts = hot.counts(usize::MAX);
                self.window_p95 = hot.window_p95();
                self.baseline_p95 = hot.baseline_p95();
                self.baseline_count = hot.baseline_count();
                self.fresh = true;
                self.heap_bytes = malloc_size(std::mem::size_of::<HotWindow>()) + hot.heap_bytes();
            }
            State::Cold(cold) => self.heap_bytes = cold.heap_bytes(),
        }
    }
}
