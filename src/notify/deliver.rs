//! The pace of notifications: a per-channel sliding-minute rate limit (what reaches the
//! network goes through `channel::send`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `per_minute` sends in any 60 s.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: usize,
    sent: VecDeque<Instant>,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1) as usize,
            sent: VecDeque::new(),
        }
    }

    /// None: send now (and count it). Some(wait): over the limit for this long.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        let minute = Duration::from_secs(60);
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.per_minute {
            let oldest = *self.sent.front().expect("full window is not empty");
            return Some(minute - now.duration_since(oldest));
        }
        self.sent.push_back(now);
        None
    }
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
}
