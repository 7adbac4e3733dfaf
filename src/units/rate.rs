//! `Rate`: a rate written with an explicit unit, bits or bytes per second ("8mbit/s", "1MB/s");
//! prefixes are powers of 1000, as in the sizes' `kB`, `MB`, `GB`.

use std::fmt;
use std::num::ParseFloatError;

use super::UnitError;

/// A rate in bytes per second, written with an explicit unit: `tc`'s bare "8mbit" vs "8MBps"
/// mix-up (a factor of 8) is exactly what this type refuses to guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate {
    pub bytes_per_sec: u64,
}

const RATE_UNITS: [(&str, f64); 8] = [
    ("bit/s", 1.0 / 8.0),
    ("kbit/s", 1e3 / 8.0),
    ("mbit/s", 1e6 / 8.0),
    ("gbit/s", 1e9 / 8.0),
    ("B/s", 1.0),
    ("kB/s", 1e3),
    ("MB/s", 1e6),
    ("GB/s", 1e9),
];

impl std::str::FromStr for Rate {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let trimmed = text.trim();
        // Longest unit first, so "kbit/s" is not read as "bit/s".
        let mut units = RATE_UNITS;
        units.sort_by_key(|(unit, _)| std::cmp::Reverse(unit.len()));
        for (unit, factor) in units {
            if let Some(number) = trimmed.strip_suffix(unit) {
                let value: f64 =
                    number
                        .trim()
                        .parse()
                        .map_err(|source: ParseFloatError| UnitError::Rate {
                            text: text.to_string(),
                            source: Some(source.into()),
                        })?;
                let bytes = (value * factor).round();
                if !(1.0..=(u64::MAX as f64)).contains(&bytes) {
                    return Err(UnitError::RateTooSmall {
                        text: text.to_string(),
                    });
                }
                return Ok(Self {
                    bytes_per_sec: bytes as u64,
                });
            }
        }
        Err(UnitError::Rate {
            text: text.to_string(),
            source: None,
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B/s", self.bytes_per_sec)
    }
}

serde_as_text!(Rate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_need_a_unit_and_convert_to_bytes() {
        let cases = [
            ("8mbit/s", 1_000_000),
            ("1MB/s", 1_000_000),
            ("100 kbit/s", 12_500),
            ("1.5 kB/s", 1_500),
            ("800bit/s", 100),
            ("10gbit/s", 1_250_000_000),
            ("5B/s", 5),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<Rate>().unwrap().bytes_per_sec, bytes, "{text}");
        }
        for bad in ["8mbit", "8", "fast", "0B/s", "-1MB/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    /// A number that does not read keeps the float parser's error as the source; a missing
    /// unit has no cause beyond the text itself.
    #[test]
    fn refusals_keep_the_numbers_error() {
        use std::error::Error;
        let err = "1.2.3MB/s".parse::<Rate>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid rate \"1.2.3MB/s\": write a number and a unit"),
            "{err}"
        );
        let source = err.source().expect("the number's error");
        assert_eq!(
            source.to_string(),
            "1.2.3".parse::<f64>().unwrap_err().to_string()
        );
        assert!("8mbit".parse::<Rate>().unwrap_err().source().is_none());
        assert_eq!(
            "0B/s".parse::<Rate>().unwrap_err().to_string(),
            "rate \"0B/s\" must be at least 1 B/s"
        );
    }
}
