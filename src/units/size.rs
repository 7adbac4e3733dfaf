//! `ByteSize`: the one size type of every section, with one rule (docs/configuration.md, "Sizes").
//!
//! A size is a whole number of bytes (TOML integer or string), or a number and a unit. Units
//! are case-insensitive: `B`; `kB`, `MB`, `GB` are powers of 1000; `KiB`, `MiB`, `GiB` powers
//! of 1024; the shorthands `k` and `m` (no `B`) mean KiB and MiB, as they always did here. A
//! fraction is rounded to the nearest byte ("1.5kB" = 1500). Anything else is refused with how
//! to write it: "1g" does not guess between GiB and GB, "8Mbit" is not a size in bytes.

use std::fmt;
use std::num::{ParseFloatError, ParseIntError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::UnitError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Every unit a size may be written in, lower-cased.
const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("k", 1 << 10),
    ("m", 1 << 20),
];

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let owned = || text.to_string();
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        if number.is_empty() {
            return Err(UnitError::Size {
                text: owned(),
                source: None,
            });
        }
        if unit.is_empty() {
            return match number.parse::<u64>() {
                Ok(bytes) => Ok(Self(bytes)),
                Err(_) if number.contains('.') => Err(unit_error(text, "")),
                Err(source) => Err(UnitError::SizeTooLarge {
                    text: owned(),
                    source: Some(source.into()),
                }),
            };
        }
        let Some(factor) = UNITS.iter().find(|(name, _)| *name == unit).map(|u| u.1) else {
            return Err(unit_error(text, &unit));
        };
        let size_error = |source: super::NumberError| UnitError::Size {
            text: owned(),
            source: Some(source),
        };
        if !number.contains('.') {
            // Whole numbers stay exact, whatever their size.
            let whole: u64 = number
                .parse()
                .map_err(|e: ParseIntError| size_error(e.into()))?;
            return whole
                .checked_mul(factor)
                .map(Self)
                .ok_or_else(|| UnitError::SizeTooLarge {
                    text: owned(),
                    source: None,
                });
        }
        let value: f64 = number
            .parse()
            .map_err(|e: ParseFloatError| size_error(e.into()))?;
        let bytes = (value * factor as f64).round();
        if bytes >= u64::MAX as f64 {
            return Err(UnitError::SizeTooLarge {
                text: owned(),
                source: None,
            });
        }
        Ok(Self(bytes as u64))
    }
}

/// Units the rule does not take, with how to write what was probably meant.
fn unit_error(text: &str, unit: &str) -> UnitError {
    let text = text.to_string();
    if unit.is_empty() {
        return UnitError::SizeWithoutUnit { text };
    }
    if matches!(unit, "g" | "t" | "tb" | "tib") {
        return UnitError::SizeAmbiguous { text };
    }
    if unit.contains("bit") || unit.ends_with("bps") || unit.ends_with("/s") {
        return UnitError::SizeIsARate { text };
    }
    UnitError::Size { text, source: None }
}

/// Exact bytes ("16384B"): what events and fault descriptions show, and what reads back as the
/// same size.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl serde::de::Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"8MiB\" or a number of bytes")
            }

            fn visit_u64<E: serde::de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }

            fn visit_i64<E: serde::de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size {bytes} must not be negative")))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ByteSize, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A number of bytes (the chaos specs in the API and the rollback journal).
impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `config/size.rs` and `chaos/units.rs` each accepted keeps its meaning; the two
    /// never gave one text two meanings, so the one rule is their union.
    #[test]
    fn one_rule_reads_what_both_old_rules_read() {
        let cases = [
            // the config sections' rule (case-insensitive, k and m binary)
            ("8MiB", 8 << 20),
            ("8 MiB", 8 << 20),
            ("256mb", 256_000_000),
            ("1GiB", 1 << 30),
            ("512k", 512 << 10),
            ("512K", 512 << 10),
            ("64m", 64 << 20),
            ("2kb", 2_000),
            ("4096", 4096),
            ("12B", 12),
            ("12b", 12),
            // the chaos faults' rule (decimal kB, binary KiB, fractions)
            ("1500", 1500),
            ("32kB", 32_000),
            ("16KiB", 16_384),
            ("2 MiB", 2 << 20),
            ("1GB", 1_000_000_000),
            ("7B", 7),
            ("1.5kB", 1_500),
            ("1.5GiB", 3 << 29),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn refusals_say_how_to_write_it() {
        let cases = [
            ("", "write a number of bytes"),
            ("MiB", "write a number of bytes"),
            (
                "8 parsecs",
                "B, kB, MB, GB (powers of 1000) or KiB, MiB, GiB",
            ),
            ("1.5", "add a unit, e.g. 1.5KiB"),
            ("1g", "write GiB (powers of 1024) or GB (powers of 1000)"),
            ("2T", "write GiB"),
            ("8Mbit", "a size is in bytes"),
            ("1MB/s", "a size is in bytes"),
            ("1.2.3kB", "write a number of bytes"),
            ("99999999999999999999GiB", "write a number of bytes"),
            ("99999999999999999999", "is too large"),
            ("99999999999GiB", "is too large"),
        ];
        for (text, want) in cases {
            let err = text.parse::<ByteSize>().unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    /// Where a number failed to read, its parser's error is the source; where the unit is
    /// what is wrong, there is no deeper cause.
    #[test]
    fn refusals_keep_the_numbers_error() {
        use std::error::Error;
        let cases = [
            (
                "1.2.3kB",
                Some("1.2.3".parse::<f64>().unwrap_err().to_string()),
            ),
            (
                "99999999999999999999GiB",
                Some(
                    "99999999999999999999"
                        .parse::<u64>()
                        .unwrap_err()
                        .to_string(),
                ),
            ),
            (
                "99999999999999999999",
                Some(
                    "99999999999999999999"
                        .parse::<u64>()
                        .unwrap_err()
                        .to_string(),
                ),
            ),
            ("1g", None),
            ("8Mbit", None),
            ("99999999999GiB", None),
        ];
        for (text, want) in cases {
            let err = text.parse::<ByteSize>().unwrap_err();
            assert_eq!(err.source().map(|s| s.to_string()), want, "{text}: {err}");
        }
    }

    #[test]
    fn toml_integers_strings_and_refusals() {
        #[derive(Deserialize)]
        struct T {
            size: ByteSize,
        }
        let read = |text: &str| toml::from_str::<T>(text).map(|t| t.size.0);
        assert_eq!(read("size = 1048576").unwrap(), 1 << 20);
        assert_eq!(read("size = \"1MiB\"").unwrap(), 1 << 20);
        assert!(read("size = -1")
            .unwrap_err()
            .to_string()
            .contains("must not be negative"));
        assert!(read("size = 1.5").is_err());
        assert_eq!(ByteSize(8 << 20).to_string(), "8388608B");
        assert_eq!(ByteSize(1000).to_string().parse(), Ok(ByteSize(1000)));
    }
}
