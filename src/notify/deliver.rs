//! The pace of notifications: a per-channel sliding-minute rate limit with a lane of its own
//! for critical alerts (what reaches the network goes through `channel::send`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `per_minute` sends in any 60 s, and criticals in a lane of their own: a critical
/// alert never waits for warnings, resolves or reminders (it counts against them, so they
/// yield), only for `per_minute` other criticals in the same 60 s.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: usize,
    sent: VecDeque<Instant>,
    critical: VecDeque<Instant>,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1) as usize,
            sent: VecDeque::new(),
            critical: VecDeque::new(),
        }
    }

    /// `take` for a critical alert: only other criticals can make it wait.
    pub fn take_critical(&mut self, now: Instant) -> Option<Duration> {
        if let Some(wait) = slide(&mut self.critical, self.per_minute, now) {
            return Some(wait);
        }
        self.sent.push_back(now);
        None
    }

    /// None: send now (and count it). Some(wait): over the limit for this long.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        slide(&mut self.sent, self.per_minute, now)
    }
}

/// Sliding-minute window: None (and counted) when under `limit`, else how long to wait.
fn slide(sent: &mut VecDeque<Instant>, limit: usize, now: Instant) -> Option<Duration> {
    let minute = Duration::from_secs(60);
    while sent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= minute)
    {
        sent.pop_front();
    }
    if sent.len() >= limit {
        let oldest = *sent.front().expect("full window is not empty");
        return Some(minute - now.duration_since(oldest));
    }
    sent.push_back(now);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_slides_over_a_minute() {
        let start = Instant::now();
        let mut limit = RateLimit::new(2);
        assert_eq!(limit.take(start), None);
        assert_eq!(limit.take(start + Duration::from_secs(10)), None);
        assert_eq!(
            limit.take(start + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(limit.take(start + Duration::from_secs(60)), None);
        assert_eq!(
            limit.take(start + Duration::from_secs(61)),
            Some(Duration::from_secs(9))
        );
    }

    #[test]
    fn criticals_have_a_lane_of_their_own() {
        let start = Instant::now();
        let mut limit = RateLimit::new(30);
        for i in 0..30 {
            assert_eq!(limit.take(start + Duration::from_millis(i * 100)), None);
        }
        let now = start + Duration::from_secs(4);
        assert!(limit.take(now).is_some(), "warnings wait a minute");
        assert_eq!(limit.take_critical(now), None, "a critical goes at once");
        assert!(
            limit.take(start + Duration::from_secs(60)).is_some(),
            "the critical counted against the others"
        );
        for i in 1..30 {
            assert_eq!(limit.take_critical(now + Duration::from_millis(i)), None);
        }
        assert!(limit.take_critical(now + Duration::from_secs(1)).is_some());
    }
}
