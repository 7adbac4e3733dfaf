//! `HumanDuration`: durations written the way people write them ("30s", "5m", "1h 30m").

use std::fmt;
use std::time::Duration;

use super::UnitError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text.trim())
            .map(Self)
            .map_err(|source| UnitError::Duration {
                text: text.to_string(),
                source,
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

serde_as_text!(HumanDuration);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let cases = [("30s", 30), ("5m", 300), ("1h 30m", 5400), ("7d", 604_800)];
        for (text, secs) in cases {
            assert_eq!(text.parse::<HumanDuration>().unwrap().get().as_secs(), secs);
        }
    }

    #[test]
    fn rejects_garbage_with_an_example() {
        let err = "5x".parse::<HumanDuration>().unwrap_err().to_string();
        assert!(err.contains("invalid duration \"5x\""), "{err}");
        assert!(err.contains("30s"), "{err}");
    }

    /// humantime's own error stays reachable, not only folded into the message.
    #[test]
    fn refusal_keeps_humantimes_error_as_its_source() {
        use std::error::Error;
        let err = "5x".parse::<HumanDuration>().unwrap_err();
        let source = err.source().expect("humantime's error is the source");
        assert_eq!(
            source.to_string(),
            humantime::parse_duration("5x").unwrap_err().to_string()
        );
    }
}
