//! Event timestamps as clients send them: RFC 3339 text or epoch milliseconds, to epoch ms.

/// Text that is not an RFC 3339 timestamp; the message is the ingest rejection's, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp \"{text}\": expected RFC 3339 such as 2026-11-23T10:00:00Z, or epoch milliseconds")]
pub struct InvalidTimestamp {
    pub text: String,
}

/// Parses `2026-11-23T10:00:00Z`, `2026-11-23 10:00:00.123+02:00` and friends (RFC 3339, with
/// the space separator RFC 3339 allows) to epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, InvalidTimestamp> {
    let invalid = || InvalidTimestamp {
        text: text.to_string(),
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return Err(invalid());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, InvalidTimestamp> {
        let part = text.get(range).ok_or_else(invalid)?;
        match part.bytes().all(|b| b.is_ascii_digit()) {
            true => part.parse().map_err(|_| invalid()),
            false => Err(invalid()),
        }
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, sep)| bytes[at] != sep)
        || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return Err(invalid());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().map_err(|_| invalid())?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(invalid());
            }
            let value = |a: u8, b: u8| i64::from(a - b'0') * 10 + i64::from(b - b'0');
            let minutes = value(*h1, *h2) * 60 + value(*m1, *m2);
            match sign {
                b'+' => minutes,
                _ => -minutes,
            }
        }
        _ => return Err(invalid()),
    };
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(invalid());
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
            ("2023-11-14t22:13:20z", Some(1_700_000_000_000)),
            ("2023-11-14 22:13:20Z", Some(1_700_000_000_000)),
            ("2023-11-15T00:13:20+02:00", Some(1_700_000_000_000)),
            ("2023-11-14T20:13:20-02:00", Some(1_700_000_000_000)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2023-02-29T00:00:00Z", None),
            ("2023-11-14T22:13:20", None),
            ("2023-11-14T24:00:00Z", None),
            ("2023-13-01T00:00:00Z", None),
            ("2023-11-14T22:13:20.Z", None),
            ("2023-11-14T22:13:20+0200", None),
            ("yesterday", None),
            ("2023-11-14T22:13:2xZ", None),
            ("１970-01-01T00:00:00Z", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339_ms(text).ok(), want, "{text}");
        }
    }
}
