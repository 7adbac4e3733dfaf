//! The one retry schedule of the crate: waits that double from `initial` up to `max`, no jitter.
//! Healers, the Docker event stream, the archive and notify outboxes and the agent all use it.
//!
//! The schedule itself comes from `exponential-backoff` with jitter off: its integer doubling
//! (`initial × 2ⁿ`, saturating) keeps every wait exact, where float-based crates drift by
//! nanoseconds on waits such as 100 ms. This type adds the failure count the callers share.

use std::time::Duration;

/// Past this many doublings the factor saturates (`2ⁿ` ≥ `u32::MAX`): every later wait is equal.
const SATURATED: u32 = 32;

/// Waits between failed attempts: none before the first failure, then `initial`, `2 × initial`,
/// `4 × initial`, ... capped at `max` (a `max` below `initial` is raised to it). The factor
/// saturates at `u32::MAX`, so waits stop growing at `initial × (2³² − 1)` whatever `max` is.
#[derive(Debug, Clone)]
pub struct Backoff {
    schedule: exponential_backoff::Backoff,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let mut schedule = exponential_backoff::Backoff::new(u32::MAX, initial, max.max(initial));
        schedule.set_jitter(0.0);
        schedule.set_factor(2);
        Self {
            schedule,
            failures: 0,
        }
    }

    /// The wait after `failures` consecutive failures: zero for none, `initial` after the first.
    pub fn wait(&self, failures: u32) -> Duration {
        let Some(doublings) = failures.checked_sub(1) else {
            return Duration::ZERO;
        };
        self.schedule
            .iter()
            .nth(doublings.min(SATURATED) as usize)
            .flatten()
            .unwrap_or(*self.schedule.max())
    }

    /// How long to wait before the next attempt (zero before the first failure).
    pub fn delay(&self) -> Duration {
        self.wait(self.failures)
    }

    /// Count one more failure.
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Count one more failure and return the wait it calls for.
    pub fn next_wait(&mut self) -> Duration {
        self.failed();
        self.delay()
    }

    /// Success: the next failure waits `initial` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures counted since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The hand-written schedules this type replaced, kept here as the reference.
    fn old_heal(initial: Duration, max: Duration, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        initial.saturating_mul(factor).min(max.max(initial))
    }

    fn old_agent(initial: Duration, max: Duration, waits: usize) -> Vec<Duration> {
        let max = max.max(initial);
        let mut next = initial;
        (0..waits)
            .map(|_| {
                let wait = next;
                next = (next * 2).min(max);
                wait
            })
            .collect()
    }

    fn old_archive(attempt: u32, max: Duration) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        Duration::from_secs(1u64 << exponent).min(max)
    }

    #[test]
    fn doubles_from_initial_up_to_max() {
        let mut backoff = Backoff::new(ms(100), ms(350));
        assert_eq!(backoff.delay(), Duration::ZERO);
        let waits: Vec<_> = (0..5).map(|_| backoff.next_wait()).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(350), ms(350), ms(350)]);
        assert_eq!(backoff.failures(), 5);
        backoff.succeeded();
        assert_eq!(backoff.delay(), Duration::ZERO);
        assert_eq!(backoff.next_wait(), ms(100));
    }

    #[test]
    fn heal_schedule_doubles_and_caps() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let mut delays = vec![backoff.delay().as_secs()];
        for _ in 0..5 {
            backoff.failed();
            delays.push(backoff.delay().as_secs());
        }
        assert_eq!(delays, [0, 1, 2, 4, 5, 5]);
        backoff.succeeded();
        assert_eq!(backoff.delay(), Duration::ZERO);
        for _ in 0..100 {
            backoff.failed();
        }
        assert_eq!(
            backoff.delay().as_secs(),
            5,
            "no overflow after many failures"
        );
    }

    #[test]
    fn docker_reconnect_schedule() {
        let backoff = Backoff::new(ms(500), Duration::from_secs(30));
        let waits: Vec<_> = (1..=9).map(|n| backoff.wait(n).as_millis()).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn a_max_below_initial_is_raised_to_it() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(backoff.wait(1), Duration::from_secs(2));
        assert_eq!(backoff.wait(40), Duration::from_secs(2));
    }

    #[test]
    fn huge_failure_counts_saturate_without_panicking() {
        let backoff = Backoff::new(Duration::from_nanos(1), Duration::MAX);
        assert_eq!(backoff.wait(32), Duration::from_nanos(1 << 31));
        assert_eq!(backoff.wait(33), Duration::from_nanos(u64::from(u32::MAX)));
        assert_eq!(
            backoff.wait(u32::MAX),
            Duration::from_nanos(u64::from(u32::MAX))
        );
        let mut backoff = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        for _ in 0..100 {
            backoff.failed();
        }
        assert_eq!(backoff.delay(), Duration::MAX);
    }

    /// Exact equality (to the nanosecond) with each schedule it replaced, over awkward inputs.
    #[test]
    fn same_waits_as_the_hand_written_schedules() {
        let values = [
            Duration::ZERO,
            Duration::from_nanos(1),
            ms(1),
            ms(100),
            ms(333),
            ms(500),
            Duration::from_secs(1),
            Duration::from_millis(1500),
            Duration::from_secs(30),
            Duration::from_secs(300),
            Duration::from_secs(86_400),
        ];
        for initial in values {
            for max in values {
                let backoff = Backoff::new(initial, max);
                for failures in 0..70 {
                    assert_eq!(
                        backoff.wait(failures),
                        old_heal(initial, max, failures),
                        "heal: initial {initial:?} max {max:?} failures {failures}"
                    );
                }
                // The agent doubled without a bound on the factor; the shared rule (the heal's)
                // saturates it at 2³² − 1, which only shows when `max` is over 2³² × `initial`
                // (1 ns to 5 s, 1 ms to 50 days), far outside any configuration.
                if max / u32::MAX <= initial {
                    let mut agent = Backoff::new(initial, max);
                    let waits: Vec<_> = (0..40).map(|_| agent.next_wait()).collect();
                    assert_eq!(
                        waits,
                        old_agent(initial, max, 40),
                        "agent: {initial:?} {max:?}"
                    );
                }
            }
            // The archive and notify outboxes: 1 s doubling up to their `max_retry_delay`.
            let max = initial;
            for attempt in 0..70 {
                assert_eq!(
                    crate::archive::retry_delay(attempt, max),
                    old_archive(attempt, max),
                    "archive: attempt {attempt} max {max:?}"
                );
            }
        }
    }
}
