//! Event timestamps as clients send them: RFC 3339 text or epoch milliseconds, to epoch ms.
//! The grammar is the `time` crate's RFC 3339 parser; this module only adds the two leniencies
//! sentinel always had (a leap second at any minute, read as `:59`) and its error.

use std::borrow::Cow;

use thiserror::Error;
use time::error::{Parse, ParseFromDescription};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A timestamp that is not RFC 3339; the cause says which part is wrong.
#[derive(Debug, Error)]
#[error("invalid timestamp \"{text}\": expected RFC 3339 such as 2026-11-23T10:00:00Z, or epoch milliseconds")]
pub struct TimestampError {
    text: String,
    #[source]
    cause: Parse,
}

/// Parses `2026-11-23T10:00:00Z`, `2026-11-23 10:00:00.123+02:00` and friends (RFC 3339, with
/// the space separator RFC 3339 allows) to epoch milliseconds, sub-millisecond digits dropped.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, TimestampError> {
    let invalid = |cause| TimestampError {
        text: text.to_owned(),
        cause,
    };
    // `time` takes any byte between date and time; RFC 3339 names `T` and, for readability, space.
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        let separator = ParseFromDescription::InvalidComponent("separator");
        return Err(invalid(Parse::ParseFromDescription(separator)));
    }
    // A leap second reads as the second before it, whatever the minute: `time` takes `:60`
    // only at the end of a UTC month and as `:59.999999999`, which would move the milliseconds.
    let text = match text.get(17..19) {
        Some("60") => Cow::Owned(format!("{}59{}", &text[..17], &text[19..])),
        _ => Cow::Borrowed(text),
    };
    let time = OffsetDateTime::parse(&text, &Rfc3339).map_err(invalid)?;
    let millis = time.unix_timestamp_nanos().div_euclid(1_000_000);
    // Four-digit years keep this within ±2.6e14 ms, far inside i64.
    Ok(millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_table() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2023-11-14T22:13:20.123Z", Some(1_700_000_000_123)),
            ("2023-11-14T22:13:20.1Z", Some(1_700_000_000_100)),
            ("2023-11-14T22:13:20.123456789Z", Some(1_700_000_000_123)),
            (
                "2023-11-14T22:13:20.123999999999999Z",
                Some(1_700_000_000_123),
            ),
            ("2023-11-14t22:13:20z", Some(1_700_000_000_000)),
            ("2023-11-14 22:13:20Z", Some(1_700_000_000_000)),
            ("2023-11-15T00:13:20+02:00", Some(1_700_000_000_000)),
            ("2023-11-14T20:13:20-02:00", Some(1_700_000_000_000)),
            ("2023-11-14T22:13:20-00:00", Some(1_700_000_000_000)),
            ("2023-11-15T03:58:20+05:45", Some(1_700_000_000_000)),
            ("2023-11-14T22:13:20.5+23:59", Some(1_699_913_660_500)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000)),
            ("1969-12-31T23:59:59.999Z", Some(-1)),
            ("1969-12-31T23:59:59.9999Z", Some(-1)),
            ("0000-01-01T00:00:00Z", Some(-62_167_219_200_000)),
            ("9999-12-31T23:59:59.999Z", Some(253_402_300_799_999)),
            // Leap seconds read as the second before, with their fraction, at any minute.
            ("2016-12-31T23:59:60Z", Some(1_483_228_799_000)),
            ("2016-12-31T23:59:60.5Z", Some(1_483_228_799_500)),
            ("2023-11-14T22:13:60Z", Some(1_700_000_039_000)),
            ("2023-02-29T00:00:00Z", None),
            ("1900-02-29T00:00:00Z", None),
            ("2023-04-31T00:00:00Z", None),
            ("2023-11-00T00:00:00Z", None),
            ("2023-11-14T22:13:20", None),
            ("2023-11-14T24:00:00Z", None),
            ("2023-11-14T23:60:00Z", None),
            ("2023-11-14T23:59:61Z", None),
            ("2023-13-01T00:00:00Z", None),
            ("2023-11-14T22:13:20.Z", None),
            ("2023-11-14T22:13:20+0200", None),
            ("2023-11-14T22:13:20+02", None),
            ("2023-11-14T22:13:20 +02:00", None),
            ("2023-11-14T22:13:20Z ", None),
            (" 2023-11-14T22:13:20Z", None),
            ("2023-11-14X22:13:20Z", None),
            ("2023-11-14_22:13:20Z", None),
            ("23-11-14T22:13:20Z", None),
            ("+2023-11-14T22:13:20Z", None),
            ("yesterday", None),
            ("", None),
            ("2023-11-14T22:13:2xZ", None),
            ("１970-01-01T00:00:00Z", None),
            ("2023-11-14T22:13:6０Z", None),
            ("2023-11-14é22:13:20Z", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339_ms(text).ok(), want, "{text}");
        }
    }

    /// Offsets outside RFC 3339's grammar (hour 00-23, minute 00-59) are refused; the parser
    /// this replaced took `+99:99` and moved the time by more than four days.
    #[test]
    fn offsets_outside_the_grammar_are_refused_with_their_cause() {
        for text in [
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20+99:99",
            "2023-11-14T22:13:20-00:60",
        ] {
            let err = parse_rfc3339_ms(text).expect_err(text);
            assert!(err.to_string().starts_with("invalid timestamp \""), "{err}");
            let cause = std::error::Error::source(&err).expect("the cause is kept");
            assert!(cause.to_string().contains("offset"), "{text}: {cause}");
        }
    }
}
