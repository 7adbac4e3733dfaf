//! The agent's counters (lines dropped, events shipped, rejected, lost from the buffer) and a
//! throttle so a flood of bad lines makes one warning per interval, not one per line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Stats {
    /// Lines that did not have the configured shape (not JSON, wrong format, bad numbers).
    pub unparsable: AtomicU64,
    /// Well-formed lines without a tenant: skipped.
    pub no_tenant: AtomicU64,
    /// Lines longer than `max_line_bytes`: dropped.
    pub too_long: AtomicU64,
    /// Datagram events that were not JSON objects.
    pub bad_datagrams: AtomicU64,
    /// Events sentineld accepted.
    pub accepted: AtomicU64,
    /// Events sentineld answered as invalid (200 with `rejected`), or whose whole batch it
    /// refused (400/401/413): not retried.
    pub rejected: AtomicU64,
    /// Events dropped because the disk buffer was full (oldest first) or unwritable.
    pub lost: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) -> u64 {
        counter.fetch_add(n, Ordering::Relaxed) + n
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// One line for the log at shutdown.
    pub fn summary(&self) -> String {
        format!(
            "accepted {}, rejected by sentineld {}, lost from the buffer {}, unparsable lines {}, lines without tenant {}, overlong lines {}, bad datagrams {}",
            Self::get(&self.accepted),
            Self::get(&self.rejected),
            Self::get(&self.lost),
            Self::get(&self.unparsable),
            Self::get(&self.no_tenant),
            Self::get(&self.too_long),
            Self::get(&self.bad_datagrams),
        )
    }
}

/// Lets one warning through per `interval` and counts the ones it held back.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Some(number held back since the last one) when a warning may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_through_per_interval_and_counts_the_rest() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(10));
        let at = |s| start + Duration::from_secs(s);
        let seen: Vec<_> = [0, 1, 2, 9, 10, 11, 25]
            .iter()
            .map(|s| throttle.allow(at(*s)))
            .collect();
        assert_eq!(seen, [Some(0), None, None, None, Some(3), None, Some(1)]);
    }
}
