//! `RecentChecks`: the last few check results of a probe (latency and pass/fail), kept in the
//! snapshot so the status page can draw a latency history without reading the journal.

use std::collections::VecDeque;

/// How many checks the history keeps: a minute or more at typical intervals, and a sparkline of
/// this many points still reads at phone width.
pub const RECENT_CHECKS: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentCheck {
    pub latency_ms: f64,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentChecks {
    checks: VecDeque<RecentCheck>,
}

impl RecentChecks {
    pub fn push(&mut self, latency_ms: f64, ok: bool) {
        if self.checks.len() == RECENT_CHECKS {
            self.checks.pop_front();
        }
        self.checks.push_back(RecentCheck { latency_ms, ok });
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &RecentCheck> {
        self.checks.iter()
    }

    pub fn len(&self) -> usize {
        self.checks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_checks_in_order() {
        let mut recent = RecentChecks::default();
        for i in 0..RECENT_CHECKS + 5 {
            recent.push(i as f64, i % 2 == 0);
        }
        assert_eq!(recent.len(), RECENT_CHECKS);
        let first = recent.iter().next().unwrap();
        assert_eq!((first.latency_ms, first.ok), (5.0, false));
        assert_eq!(
            recent.iter().last().unwrap().latency_ms,
            (RECENT_CHECKS + 4) as f64
        );
    }
}
