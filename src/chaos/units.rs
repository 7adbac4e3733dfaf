//! Units a fault is written in, unambiguous on purpose: rates say bits or bytes per second
//! ("8mbit/s", "1MB/s"), sizes say bytes ("32kB", "16KiB", 1500), percentages are 0..=100.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        // Longest unit first, so "kbit/s" is not read as "bit/s".
        let mut units = RATE_UNITS;
        units.sort_by_key(|(unit, _)| std::cmp::Reverse(unit.len()));
        for (unit, factor) in units {
            if let Some(number) = trimmed.strip_suffix(unit) {
                let value: f64 = number.trim().parse().map_err(|_| rate_error(text))?;
                let bytes = (value * factor).round();
                if !(1.0..=(u64::MAX as f64)).contains(&bytes) {
                    return Err(format!("rate \"{text}\" must be at least 1 B/s"));
                }
                return Ok(Self {
                    bytes_per_sec: bytes as u64,
                });
            }
        }
        Err(rate_error(text))
    }
}

fn rate_error(text: &str) -> String {
    format!(
        "invalid rate \"{text}\": write a number and a unit: bit/s, kbit/s, mbit/s, gbit/s (bits) or B/s, kB/s, MB/s, GB/s (bytes)"
    )
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B/s", self.bytes_per_sec)
    }
}

/// A size in bytes: an integer, or a number with B, kB, MB, GB (powers of 1000) or KiB, MiB,
/// GiB (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: [(&str, u64); 7] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("B", 1),
];

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let error = || {
            format!("invalid size \"{text}\": write bytes, or a number with B, kB, MB, GB, KiB, MiB, GiB")
        };
        if let Ok(bytes) = trimmed.parse::<u64>() {
            return Ok(Self(bytes));
        }
        for (unit, factor) in SIZE_UNITS {
            if let Some(number) = trimmed.strip_suffix(unit) {
                let value: f64 = number.trim().parse().map_err(|_| error())?;
                if value < 0.0 {
                    return Err(error());
                }
                return Ok(Self((value * factor as f64).round() as u64));
            }
        }
        Err(error())
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(bytes) => Ok(Self(bytes)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A probability in percent (0..=100) as the kernel wants it: scaled to 0..=u32::MAX.
pub fn percent_to_u32(percent: f64) -> u32 {
    (percent.clamp(0.0, 100.0) / 100.0 * u32::MAX as f64).round() as u32
}

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

    #[test]
    fn sizes_decimal_and_binary() {
        let cases = [
            ("1500", 1500),
            ("32kB", 32_000),
            ("16KiB", 16_384),
            ("2 MiB", 2 << 20),
            ("1GB", 1_000_000_000),
            ("7B", 7),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>().unwrap().0, bytes, "{text}");
        }
        assert!("12 parsecs".parse::<ByteSize>().is_err());
    }

    #[test]
    fn percent_scaling_matches_iproute2() {
        // tc sends `loss 1%` as 0x028f5c29 (research notes 4.3).
        assert_eq!(percent_to_u32(1.0), 0x028f_5c29);
        assert_eq!(percent_to_u32(100.0), u32::MAX);
        assert_eq!(percent_to_u32(0.0), 0);
    }
}
