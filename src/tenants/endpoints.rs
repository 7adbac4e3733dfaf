//! Per-tenant error counts by endpoint, bounded: at most `max_endpoints` names per tenant in the
//! window, the rest under `__other__`, so one careless client cannot explode memory.

use std::collections::VecDeque;

/// The name that stands for every endpoint beyond a tenant's bound.
pub const OTHER_ENDPOINT: &str = "__other__";

/// Index of [`OTHER_ENDPOINT`] in [`Entry::endpoint`].
const OTHER: u16 = u16::MAX;

/// Errors of one endpoint in one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    seq: i64,
    endpoint: u16,
    errors: u32,
}

/// Only errors are kept by endpoint (successes need no attribution), as a time-ordered list of
/// (bucket, endpoint, errors): memory follows how many endpoints actually failed, not the ring size.
#[derive(Debug, Clone, Default)]
pub(crate) struct EndpointErrors {
    names: Vec<Box<str>>,
    /// Errors per name still inside the window; a name whose count is 0 can be recycled.
    window_errors: Vec<u64>,
    other_window_errors: u64,
    /// Sorted by `seq`; expiry pops from the front.
    entries: VecDeque<Entry>,
}

impl EndpointErrors {
    /// Counts `errors` for `endpoint` in bucket `seq`. Allocation-free once the name is known.
    pub(crate) fn add(&mut self, endpoint: &str, seq: i64, errors: u32, max_endpoints: usize) {
        let index = self.index_for(endpoint, max_endpoints);
        match index {
            OTHER => self.other_window_errors += u64::from(errors),
            i => self.window_errors[usize::from(i)] += u64::from(errors),
        }
        // Almost always the newest bucket, so search from the back.
        let mut position = self.entries.len();
        for (i, entry) in self.entries.iter_mut().enumerate().rev() {
            if entry.seq < seq {
                break;
            }
            if entry.seq == seq && entry.endpoint == index {
                entry.errors = entry.errors.saturating_add(errors);
                return;
            }
            position = i;
        }
        let entry = Entry {
            seq,
            endpoint: index,
            errors,
        };
        self.entries.insert(position, entry);
    }

    /// Drops every bucket up to and including `last_expired`.
    pub(crate) fn expire_through(&mut self, last_expired: i64) {
        while let Some(entry) = self.entries.front().copied() {
            if entry.seq > last_expired {
                break;
            }
            self.entries.pop_front();
            match entry.endpoint {
                OTHER => self.other_window_errors -= u64::from(entry.errors),
                i => self.window_errors[usize::from(i)] -= u64::from(entry.errors),
            }
        }
    }

    /// The endpoint with the most errors in buckets after `since` (ties: the first name seen).
    pub(crate) fn top_since(&self, since: i64) -> Option<(&str, u64)> {
        let mut errors = vec![0u64; self.names.len() + 1];
        for entry in self.entries.iter().filter(|entry| entry.seq > since) {
            let slot = match entry.endpoint {
                OTHER => self.names.len(),
                i => usize::from(i),
            };
            errors[slot] += u64::from(entry.errors);
        }
        let (slot, &most) = errors
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|&(_, errors)| *errors)?;
        (most > 0).then(|| (self.name(slot), most))
    }

    /// Moves `other`'s counts in here, name by name (how an evicted tenant joins `__other__`).
    pub(crate) fn absorb(&mut self, other: &EndpointErrors, max_endpoints: usize) {
        for entry in &other.entries {
            let name = match entry.endpoint {
                OTHER => OTHER_ENDPOINT,
                i => &other.names[usize::from(i)],
            };
            self.add(name, entry.seq, entry.errors, max_endpoints);
        }
    }

    /// No error left in the window.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        use super::ring::malloc_size;
        let names: usize = self.names.iter().map(|name| malloc_size(name.len())).sum();
        names
            + malloc_size(self.names.capacity() * std::mem::size_of::<Box<str>>())
            + malloc_size(self.window_errors.capacity() * std::mem::size_of::<u64>())
            + malloc_size(self.entries.capacity() * std::mem::size_of::<Entry>())
    }

    fn name(&self, slot: usize) -> &str {
        self.names.get(slot).map_or(OTHER_ENDPOINT, |name| name)
    }

    fn index_for(&mut self, endpoint: &str, max_endpoints: usize) -> u16 {
        if endpoint == OTHER_ENDPOINT {
            return OTHER;
        }
        if let Some(i) = self.names.iter().position(|name| &**name == endpoint) {
            return i as u16;
        }
        if self.names.len() < max_endpoints.min(usize::from(OTHER)) {
            self.names.push(endpoint.into());
            self.window_errors.push(0);
            return (self.names.len() - 1) as u16;
        }
        // Full: recycle a name whose errors have all left the window, else count as __other__.
        match self.window_errors.iter().position(|&errors| errors == 0) {
            Some(i) => {
                self.names[i] = endpoint.into();
                i as u16
            }
            None => OTHER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (max endpoints, errors as (endpoint, seq), expire through, since, expected top)
    type Case = (
        usize,
        &'static [(&'static str, i64)],
        i64,
        i64,
        Option<(&'static str, u64)>,
    );

    const CASES: &[Case] = &[
        (4, &[], 0, 0, None),
        (4, &[("/a", 1), ("/b", 1), ("/a", 2)], 0, 0, Some(("/a", 2))),
        // the window moved past /a's errors
        (4, &[("/a", 1), ("/a", 1), ("/b", 3)], 1, 0, Some(("/b", 1))),
        // query over the last bucket only
        (4, &[("/a", 1), ("/a", 1), ("/b", 3)], 0, 2, Some(("/b", 1))),
        // bound of 1: /b and /c count as __other__
        (
            1,
            &[("/a", 1), ("/b", 1), ("/c", 2)],
            0,
            0,
            Some((OTHER_ENDPOINT, 2)),
        ),
        // bound of 1: /b stays under __other__ even after /a's errors expire
        (
            1,
            &[("/a", 1), ("/b", 2), ("/b", 3)],
            1,
            0,
            Some((OTHER_ENDPOINT, 2)),
        ),
        // a late event lands in its own (older) bucket
        (4, &[("/a", 5), ("/b", 3), ("/b", 4)], 3, 0, Some(("/a", 1))),
    ];

    #[test]
    fn top_endpoint_table() {
        for (case, &(max, errors, expire, since, want)) in CASES.iter().enumerate() {
            let mut table = EndpointErrors::default();
            for &(endpoint, seq) in errors {
                table.add(endpoint, seq, 1, max);
            }
            table.expire_through(expire);
            assert_eq!(table.top_since(since), want, "case {case}");
            assert!(table.names.len() <= max, "case {case}");
            let seqs: Vec<i64> = table.entries.iter().map(|entry| entry.seq).collect();
            assert!(
                seqs.windows(2).all(|pair| pair[0] <= pair[1]),
                "case {case}"
            );
        }
    }

    #[test]
    fn a_name_whose_errors_expired_is_recycled() {
        let mut table = EndpointErrors::default();
        table.add("/a", 1, 1, 1);
        table.add("/b", 1, 1, 1);
        table.expire_through(1);
        table.add("/c", 2, 3, 1);
        assert_eq!(table.top_since(0), Some(("/c", 3)));
        assert_eq!(table.names.len(), 1);
    }

    #[test]
    fn absorb_moves_counts_by_name() {
        let (mut from, mut into) = (EndpointErrors::default(), EndpointErrors::default());
        from.add("/pay", 7, 5, 4);
        from.add("/x", 7, 1, 4);
        into.add("/x", 7, 1, 4);
        into.absorb(&from, 4);
        assert_eq!(into.top_since(0), Some(("/pay", 5)));
        into.expire_through(7);
        assert_eq!(into.top_since(0), None);
        assert_eq!(into.window_errors, vec![0, 0]);
    }
}
