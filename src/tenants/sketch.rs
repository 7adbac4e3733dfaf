//! `LatencySketch`: a mergeable quantile sketch with a relative-error guarantee (DDSketch-style),
//! so a tenant's p50/p95/p99 cost a few hundred bytes of bins instead of every sample.

/// Relative accuracy α: a returned quantile is within ±1% of a value of the true rank.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Bin growth factor γ = (1+α)/(1-α); bin `k` holds values in (γ^(k-1), γ^k].
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// ln γ, written out because `ln` is not `const`; a test checks it against `GAMMA.ln()`.
const LN_GAMMA: f64 = 0.020_000_666_706_669_435;

/// Latencies below 1 µs land in the zero bucket: nothing a request does is that fast, and it keeps
/// the key range (and so the bin count) finite.
pub const MIN_TRACKED_MS: f64 = 0.001;

/// Latencies above ~11.6 days are clamped here, again so the key range stays finite.
pub const MAX_TRACKED_MS: f64 = 1e9;

/// Bins kept before the lowest ones collapse. 1 µs..1e9 ms needs ~1,380 bins, so with the default
/// no collapse ever happens and every quantile keeps the α guarantee; smaller caps trade the
/// accuracy of the lowest quantiles for memory (4 bytes per bin).
pub const DEFAULT_MAX_BINS: u32 = 2048;

/// Where a value goes: the zero bucket (`None`) or a log bin. Computed once per event so the
/// tenant's sub-window sketch and its running window sketch share one `ln`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyKey(Option<i32>);

impl LatencyKey {
    pub fn of(value_ms: f64) -> Self {
        // NaN compares as neither, so it goes to the zero bucket instead of poisoning the key.
        if value_ms.is_nan() || value_ms < MIN_TRACKED_MS {
            return Self(None);
        }
        let value = value_ms.min(MAX_TRACKED_MS);
        Self(Some((value.ln() / LN_GAMMA).ceil() as i32))
    }

    /// The log bin, or `None` for the zero bucket (how a cold window stores the key compactly).
    pub(crate) fn bin(self) -> Option<i32> {
        self.0
    }

    pub(crate) fn from_bin(bin: Option<i32>) -> Self {
        Self(bin)
    }

    /// What a sketch's quantile returns for a value in this key's bin.
    pub(crate) fn value(self) -> f64 {
        self.0.map_or(0.0, value_of_key)
    }
}

/// The representative value of bin `key`: the point whose relative distance to both bin edges is α.
fn value_of_key(key: i32) -> f64 {
    (f64::from(key) * LN_GAMMA).exp() * (2.0 / (1.0 + GAMMA))
}

/// Where a sketch's p95 sits: its bin (`ZERO_KEY` for the zero bucket) and how many values lie
/// above that bin. Kept up to date per insert in O(1) amortized, so ranking 100k tenants by p95
/// reads one number each instead of walking every tenant's bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P95Cursor {
    key: i32,
    above: u64,
}

/// The cursor key of the zero bucket, below every log bin.
const ZERO_KEY: i32 = i32::MIN;

/// Counts per log bin in one dense `Vec` covering `offset..offset+len`, grown only as far as the
/// values seen need and never past `max_bins`: when the range would exceed the cap, the lowest
/// bins fold into the lowest kept one (the tail the detector cares about stays exact).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySketch {
    bins: Vec<u32>,
    /// Key of `bins[0]`. Once the cap has been hit, `bins[0]` also holds every lower value.
    offset: i32,
    max_bins: u32,
    zeros: u64,
    count: u64,
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencySketch {
    pub fn new() -> Self {
        Self::with_max_bins(DEFAULT_MAX_BINS)
    }

    pub fn with_max_bins(max_bins: u32) -> Self {
        Self {
            bins: Vec::new(),
            offset: 0,
            max_bins: max_bins.max(1),
            zeros: 0,
            count: 0,
        }
    }

    pub fn insert(&mut self, value_ms: f64) {
        self.insert_key(LatencyKey::of(value_ms), 1);
    }

    pub fn insert_key(&mut self, key: LatencyKey, times: u32) {
        self.count += u64::from(times);
        match key.0 {
            None => self.zeros += u64::from(times),
            Some(key) => {
                self.cover(key, key);
                let index = self.index_of(key);
                self.bins[index] = self.bins[index].saturating_add(times);
            }
        }
    }

    /// Adds every value of `other`, as if they had been inserted here.
    pub fn merge(&mut self, other: &LatencySketch) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.zeros += other.zeros;
        if let Some(last) = other.last_key() {
            self.cover(other.offset, last);
            for (key, &n) in (other.offset..).zip(&other.bins) {
                if n > 0 {
                    let index = self.index_of(key);
                    self.bins[index] = self.bins[index].saturating_add(n);
                }
            }
        }
    }

    /// Removes values previously merged or inserted here: how a running window sketch drops the
    /// sub-window that expires. Exact because the sub-window's collapse point can never be above
    /// this sketch's (this one has seen every value the sub-window has, so its maximum is higher).
    pub(crate) fn subtract(&mut self, other: &LatencySketch) {
        self.count = self.count.saturating_sub(other.count);
        self.zeros = self.zeros.saturating_sub(other.zeros);
        if self.bins.is_empty() {
            return;
        }
        let last = self.last_key().unwrap_or(self.offset);
        for (key, &n) in (other.offset..).zip(&other.bins) {
            if n > 0 && key <= last {
                let index = self.index_of(key);
                self.bins[index] = self.bins[index].saturating_sub(n);
            }
        }
    }

    /// The value at quantile `q` (0..=1) within the relative accuracy, or `None` when empty.
    /// Scans from the nearer end, so p95/p99 touch only the top few dozen bins.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let key = if q <= 0.5 {
            let mut below = self.zeros;
            self.keys().find(|&(_, n)| {
                below += u64::from(n);
                below > rank
            })
        } else {
            // Bin b holds ascending ranks [below, below+n) iff above < count-rank <= above+n.
            let wanted = self.count - rank;
            let mut above = 0u64;
            self.keys().rev().find(|&(_, n)| {
                above += u64::from(n);
                above >= wanted
            })
        };
        // Saturated counters can leave the walk short; the nearest real bin is the honest answer.
        let key = key.map(|(k, _)| k).or_else(|| self.last_key())?;
        Some(value_of_key(key))
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// A fresh cursor on the p95 (one scan), or `None` when empty.
    pub fn p95_cursor(&self) -> Option<P95Cursor> {
        if self.count == 0 {
            return None;
        }
        let wanted = self.count - self.p95_rank();
        let mut above = 0u64;
        for (key, n) in self.keys().rev() {
            if above + u64::from(n) >= wanted {
                return Some(P95Cursor { key, above });
            }
            above += u64::from(n);
        }
        (self.zeros > 0).then_some(P95Cursor {
            key: ZERO_KEY,
            above,
        })
    }

    /// Moves `cursor` after `inserted` was added once (it moves at most one non-empty bin).
    /// `None` when it cannot follow (the bins collapsed under it): take a fresh one.
    pub fn follow_p95(&self, cursor: P95Cursor, inserted: LatencyKey) -> Option<P95Cursor> {
        let mut cursor = cursor;
        if inserted.0.unwrap_or(ZERO_KEY) > cursor.key {
            cursor.above += 1;
        }
        if cursor.key != ZERO_KEY && cursor.key < self.offset {
            return None;
        }
        let wanted = self.count - self.p95_rank();
        while cursor.above >= wanted {
            let (key, n) = self.next_bin_above(cursor.key)?;
            cursor = P95Cursor {
                key,
                above: cursor.above - u64::from(n),
            };
        }
        while cursor.above + self.count_at(cursor.key) < wanted {
            let above = cursor.above + self.count_at(cursor.key);
            cursor = P95Cursor {
                key: self.next_bin_below(cursor.key)?,
                above,
            };
        }
        Some(cursor)
    }

    /// The p95 a cursor points at (what `quantile(0.95)` returns).
    pub fn cursor_value(cursor: P95Cursor) -> f64 {
        match cursor.key {
            ZERO_KEY => 0.0,
            key => value_of_key(key),
        }
    }

    fn p95_rank(&self) -> u64 {
        (0.95 * self.count.saturating_sub(1) as f64).floor() as u64
    }

    fn count_at(&self, key: i32) -> u64 {
        match key {
            ZERO_KEY => self.zeros,
            key => u64::from(self.bins[self.index_of(key)]),
        }
    }

    fn next_bin_above(&self, key: i32) -> Option<(i32, u32)> {
        let from = if key == ZERO_KEY {
            0
        } else {
            self.index_of(key) + 1
        };
        let mut bins = self.keys().skip(from);
        bins.find(|&(_, n)| n > 0)
    }

    fn next_bin_below(&self, key: i32) -> Option<i32> {
        if key == ZERO_KEY {
            return None;
        }
        let below = self
            .keys()
            .take(self.index_of(key))
            .rev()
            .find(|&(_, n)| n > 0);
        below
            .map(|(key, _)| key)
            .or((self.zeros > 0).then_some(ZERO_KEY))
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets every value but keeps the allocation, so a recycled sub-window costs no malloc.
    pub fn clear(&mut self) {
        self.bins.clear();
        self.offset = 0;
        self.zeros = 0;
        self.count = 0;
    }

    /// Heap bytes held (capacity, not length: that is what the allocator gave us), as the
    /// allocator counts them (with its chunk header and rounding).
    pub fn heap_bytes(&self) -> usize {
        super::ring::malloc_size(self.bins.capacity() * std::mem::size_of::<u32>())
    }

    /// Number of bins currently spanned (what the cap bounds).
    pub fn bin_count(&self) -> usize {
        self.bins.len()
    }

    fn keys(&self) -> impl DoubleEndedIterator<Item = (i32, u32)> + ExactSizeIterator + '_ {
        let offset = self.offset;
        let bins = self.bins.iter().copied().enumerate();
        bins.map(move |(i, n)| (offset + i as i32, n))
    }

    fn last_key(&self) -> Option<i32> {
        (!self.bins.is_empty()).then(|| self.offset + self.bins.len() as i32 - 1)
    }

    /// Index for `key` once `cover` has run; keys below the kept range go to the collapsed bin.
    fn index_of(&self, key: i32) -> usize {
        (key.max(self.offset) - self.offset) as usize
    }

    /// Grows the bins to span `low..=high`, as far down as the cap allows; the top always fits,
    /// and anything pushed below the kept range folds into the new lowest bin.
    fn cover(&mut self, low: i32, high: i32) {
        let max = i64::from(self.max_bins);
        let Some(last) = self.last_key() else {
            let span = (i64::from(high) - i64::from(low) + 1).min(max);
            self.offset = (i64::from(high) - span + 1) as i32;
            self.bins.resize(span as usize, 0);
            return;
        };
        if low >= self.offset && high <= last {
            return;
        }
        let new_high = i64::from(high.max(last));
        let new_low = i64::from(low.min(self.offset)).max(new_high - max + 1);
        let offset = i64::from(self.offset);
        if new_low > offset {
            let shift = ((new_low - offset) as usize).min(self.bins.len());
            let folded = self.bins.drain(..shift).fold(0u32, u32::saturating_add);
            self.offset = new_low as i32;
            if self.bins.is_empty() {
                self.bins.push(0);
            }
            self.bins[0] = self.bins[0].saturating_add(folded);
        } else if new_low < offset {
            let grow = (offset - new_low) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = new_low as i32;
        }
        let span = (new_high - i64::from(self.offset) + 1) as usize;
        if span > self.bins.len() {
            self.bins.resize(span, 0);
        }
    }
}

#[cfg(test)]
mod tests;
