//! The network edge of notifications: one JSON POST (through `http::client`) with its
//! timeout, and a per-channel sliding-minute rate limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::http::client::PostError;

/// A receiver that has not answered by then counts as down for this attempt.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Error bodies are kept (shortened) in the outbox's last_error; no more is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// POST `body` as JSON to `url` with extra `headers`; Ok when the receiver answered 2xx.
pub async fn post(url: &str, headers: &[(String, String)], body: Vec<u8>) -> Result<(), PostError> {
    crate::http::client::post_json(url, headers, body, POST_TIMEOUT, MAX_ANSWER_BYTES)
        .await
        .and_then(|answer| answer.success())
        .map(|_| ())
}

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
