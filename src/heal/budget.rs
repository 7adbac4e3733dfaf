//! `RestartBudget` (at most N heals per window; waits between attempts are `crate::backoff`):
//! plain logic on timestamps, so a restart budget is testable without waiting.

use std::collections::VecDeque;
use std::time::Duration;

use crate::event::Timestamp;

#[derive(Debug, Clone)]
pub struct RestartBudget {
    max_attempts: u32,
    window: Duration,
    /// Attempt times inside the window, oldest first.
    attempts: VecDeque<Timestamp>,
}

impl RestartBudget {
    pub fn new(max_attempts: u32, window: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            window,
            attempts: VecDeque::new(),
        }
    }

    /// Seed with attempts made before a daemon restart (read back from the journal).
    pub fn with_history(mut self, attempts: impl IntoIterator<Item = Timestamp>) -> Self {
        self.attempts.extend(attempts);
        self.attempts.make_contiguous().sort();
        self
    }

    fn forget_old(&mut self, now: Timestamp) {
        let start = now.saturating_sub(self.window);
        while self.attempts.front().is_some_and(|at| *at <= start) {
            self.attempts.pop_front();
        }
    }

    /// Ok if an attempt may start now; otherwise when the oldest attempt leaves the window.
    pub fn check(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        self.forget_old(now);
        if (self.attempts.len() as u32) < self.max_attempts {
            return Ok(());
        }
        let oldest = self.attempts.front().copied().unwrap_or(now);
        Err(Timestamp(
            oldest.as_millis() + self.window.as_millis() as i64,
        ))
    }

    pub fn record(&mut self, now: Timestamp) {
        self.attempts.push_back(now);
    }

    pub fn remaining(&mut self, now: Timestamp) -> u32 {
        self.forget_old(now);
        self.max_attempts.saturating_sub(self.attempts.len() as u32)
    }

    /// `sentinelctl heal reset`: forget every attempt.
    pub fn reset(&mut self) {
        self.attempts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_table() {
        // 3 attempts per 60 s; (time s, action, expected) where action 'c' = check, 'r' = record
        let mut budget = RestartBudget::new(3, Duration::from_secs(60));
        let t = |s: i64| Timestamp(s * 1000);
        let steps: &[(i64, char, Result<(), i64>)] = &[
            (0, 'c', Ok(())),
            (0, 'r', Ok(())),
            (10, 'r', Ok(())),
            (20, 'c', Ok(())),
            (20, 'r', Ok(())),
            (30, 'c', Err(60)), // exhausted until the first attempt leaves the window
            (59, 'c', Err(60)),
            (60, 'c', Ok(())),
            (60, 'r', Ok(())),
            (61, 'c', Err(70)),
        ];
        for (at, action, expected) in steps {
            match action {
                'r' => budget.record(t(*at)),
                _ => assert_eq!(budget.check(t(*at)), expected.map_err(t), "t={at}"),
            }
        }
        assert_eq!(budget.remaining(t(61)), 0);
        assert_eq!(budget.remaining(t(90)), 2);
        budget.reset();
        assert_eq!(budget.remaining(t(90)), 3);
    }

    #[test]
    fn history_from_before_a_restart_counts() {
        let mut budget = RestartBudget::new(2, Duration::from_secs(60))
            .with_history([Timestamp(50_000), Timestamp(10_000)]);
        assert_eq!(budget.check(Timestamp(55_000)), Err(Timestamp(70_000)));
        assert_eq!(budget.check(Timestamp(70_000)), Ok(()));
    }
}
