//! `CounterRing`: requests and errors per time bucket over a sliding window, with running
//! totals; the counting part of every tenant window and of the global totals.

/// What a heap block of `bytes` costs the allocator (glibc malloc: an 8-byte header, 16-byte
/// alignment, 32-byte minimum chunk): the byte cap counts this, not the bytes asked for, so the
/// estimate follows the process's resident memory instead of undercounting small blocks.
pub(crate) const fn malloc_size(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    let chunk = (bytes + 8 + 15) & !15;
    if chunk < 32 {
        32
    } else {
        chunk
    }
}

/// Requests and errors over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct BucketCounts {
    requests: u32,
    errors: u32,
}

/// Requests and errors per bucket, with running totals so the full-window answer is O(1).
#[derive(Debug, Clone)]
pub(crate) struct CounterRing {
    /// Newest bucket; `None` until the first event. Slot of bucket `s` is `s mod len`.
    head: Option<i64>,
    /// Oldest bucket that may hold counts (`i64::MAX` when none): expiry, absorb and clear visit
    /// only the live part of the ring, which for a tenant seen once is one slot, not sixty.
    oldest: i64,
    slots: Box<[BucketCounts]>,
    totals: Counts,
}

impl CounterRing {
    pub(crate) fn new(buckets: usize) -> Self {
        Self {
            head: None,
            oldest: i64::MAX,
            slots: vec![BucketCounts::default(); buckets.max(1)].into_boxed_slice(),
            totals: Counts::default(),
        }
    }

    pub(crate) fn head(&self) -> Option<i64> {
        self.head
    }

    /// Oldest bucket that may hold counts, if any.
    pub(crate) fn oldest(&self) -> Option<i64> {
        (self.oldest != i64::MAX).then_some(self.oldest)
    }

    /// Moves the head to `now_seq`, expiring buckets that left the window (at most one pass over
    /// the ring, however long the ring sat idle).
    pub(crate) fn advance(&mut self, now_seq: i64) {
        let Some(head) = self.head else {
            self.head = Some(now_seq);
            return;
        };
        if now_seq <= head {
            return;
        }
        let len = self.slots.len() as i64;
        for seq in (head - len + 1).max(self.oldest)..=(now_seq - len).min(head) {
            let slot = &mut self.slots[seq.rem_euclid(len) as usize];
            self.totals.requests -= u64::from(slot.requests);
            self.totals.errors -= u64::from(slot.errors);
            *slot = BucketCounts::default();
        }
        self.head = Some(now_seq);
    }

    /// Counts into bucket `seq`; false when `seq` is already outside the window (or the ring has
    /// no head yet: callers advance first).
    pub(crate) fn add(&mut self, seq: i64, requests: u32, errors: u32) -> bool {
        let Some(head) = self.head else { return false };
        let len = self.slots.len() as i64;
        if seq <= head - len || seq > head {
            return false;
        }
        self.oldest = self.oldest.min(seq);
        let slot = &mut self.slots[seq.rem_euclid(len) as usize];
        slot.requests = slot.requests.saturating_add(requests);
        slot.errors = slot.errors.saturating_add(errors);
        self.totals.requests += u64::from(requests);
        self.totals.errors += u64::from(errors);
        true
    }

    /// Totals over the newest `buckets` buckets (the whole window when it asks for more).
    pub(crate) fn last(&self, buckets: usize) -> Counts {
        let Some(head) = self.head else {
            return Counts::default();
        };
        if buckets >= self.slots.len() {
            return self.totals;
        }
        let len = self.slots.len() as i64;
        let mut counts = Counts::default();
        for seq in (head - buckets as i64 + 1)..=head {
            let slot = self.slots[seq.rem_euclid(len) as usize];
            counts.requests += u64::from(slot.requests);
            counts.errors += u64::from(slot.errors);
        }
        counts
    }

    /// Adds `other` bucket by bucket; both must have been advanced to the same head.
    pub(crate) fn absorb(&mut self, other: &CounterRing) {
        let Some(head) = other.head else { return };
        self.advance(head);
        debug_assert_eq!(self.head, Some(head), "absorb needs aligned rings");
        for seq in other.live(head) {
            let slot = seq.rem_euclid(self.slots.len() as i64) as usize;
            let (into, from) = (&mut self.slots[slot], other.slots[slot]);
            into.requests = into.requests.saturating_add(from.requests);
            into.errors = into.errors.saturating_add(from.errors);
        }
        self.oldest = self.oldest.min(other.oldest);
        self.totals.requests += other.totals.requests;
        self.totals.errors += other.totals.errors;
    }

    /// Buckets that may hold counts when the head is `head`.
    fn live(&self, head: i64) -> std::ops::RangeInclusive<i64> {
        (head - self.slots.len() as i64 + 1).max(self.oldest)..=head
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        malloc_size(std::mem::size_of_val(&*self.slots))
    }
}
