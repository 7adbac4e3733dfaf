//! One `[[maintenance]]` schedule as time: a 5-field cron expression (croner) read on the wall
//! clock of an IANA time zone (chrono-tz), and the window each occurrence opens for `duration`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::MaintenanceError;
use crate::event::Timestamp;

/// A parsed schedule: when its windows open, on which clock, and for how long.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
    duration: Duration,
}

impl Schedule {
    /// Parse `expression` (minute hour day-of-month month day-of-week, POSIX/Vixie cron with
    /// croner's `L`, `#`, `W` and `@daily`-style nicknames; no seconds field) in `zone`.
    pub fn new(expression: &str, zone: &str, duration: Duration) -> Result<Self, MaintenanceError> {
        Ok(Self {
            cron: parse_cron(expression)?,
            zone: parse_zone(zone)?,
            duration,
        })
    }

    /// A schedule of instants only (no window): `expression` with five fields, or six with
    /// seconds first (`*/5 * * * * *`), in `zone`. What `[[drill]] schedule` uses.
    pub fn instants(expression: &str, zone: &str) -> Result<Self, MaintenanceError> {
        Ok(Self {
            cron: parse(expression, Seconds::Optional)?,
            zone: parse_zone(zone)?,
            duration: Duration::ZERO,
        })
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The window open at `now`: the last occurrence at or before `now`, while `now` is before
    /// it plus the duration. Occurrences are instants: DST gaps and repeats are croner's rules.
    pub fn active_at(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let now = self.local(now)?;
        let last = self.cron.find_previous_occurrence(&now, true).ok()?;
        let from = Timestamp(last.timestamp_millis());
        let until = Timestamp(
            from.as_millis()
                .saturating_add(self.duration.as_millis() as i64),
        );
        (now.timestamp_millis() < until.as_millis()).then_some((from, until))
    }

    /// The first occurrence strictly after `now`.
    pub fn next_start(&self, now: Timestamp) -> Option<Timestamp> {
        let now = self.local(now)?;
        let next = self.cron.find_next_occurrence(&now, false).ok()?;
        Some(Timestamp(next.timestamp_millis()))
    }

    fn local(&self, at: Timestamp) -> Option<DateTime<Tz>> {
        let utc: DateTime<Utc> = DateTime::from_timestamp_millis(at.as_millis())?;
        Some(self.zone.from_utc_datetime(&utc.naive_utc()))
    }
}

/// A cron expression of five fields; a seconds or year field is refused (windows are minutes).
pub fn parse_cron(expression: &str) -> Result<Cron, MaintenanceError> {
    parse(expression, Seconds::Disallowed)
}

fn parse(expression: &str, seconds: Seconds) -> Result<Cron, MaintenanceError> {
    CronParser::builder()
        .seconds(seconds)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|source| MaintenanceError::Cron {
            expression: expression.to_string(),
            source,
        })
}

/// An IANA zone name ("Europe/Berlin", "UTC"), exactly as the tz database spells it.
pub fn parse_zone(name: &str) -> Result<Tz, MaintenanceError> {
    name.parse::<Tz>()
        .map_err(|_| MaintenanceError::UnknownZone {
            name: name.to_string(),
        })
}

/// "2026-12-06T02:00Z": how a scheduled window's id names its start (UTC, to the minute).
pub fn minute_utc(at: Timestamp) -> String {
    DateTime::from_timestamp_millis(at.as_millis())
        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC wall time.
    fn utc(text: &str) -> Timestamp {
        let t = DateTime::parse_from_rfc3339(text).expect(text);
        Timestamp(t.timestamp_millis())
    }

    #[test]
    fn active_when_last_occurrence_le_now_lt_it_plus_duration() {
        let min = |m: u64| Duration::from_secs(60 * m);
        // (expression, zone, duration, now, window expected (from, until) or None)
        type Case = (
            &'static str,
            &'static str,
            Duration,
            &'static str,
            Option<(&'static str, &'static str)>,
        );
        let cases: &[Case] = &[
            // every minute for two: always active, from the current minute
            (
                "* * * * *",
                "UTC",
                min(2),
                "2026-03-01T10:00:30Z",
                Some(("2026-03-01T10:00:00Z", "2026-03-01T10:02:00Z")),
            ),
            // exactly at the occurrence: active (<=)
            (
                "0 2 * * *",
                "UTC",
                min(60),
                "2026-03-01T02:00:00Z",
                Some(("2026-03-01T02:00:00Z", "2026-03-01T03:00:00Z")),
            ),
            // exactly at its end: over (<)
            ("0 2 * * *", "UTC", min(60), "2026-03-01T03:00:00Z", None),
            ("0 2 * * *", "UTC", min(60), "2026-03-01T01:59:59Z", None),
            // a zone east of UTC: 02:00 in Berlin (winter, +01:00) is 01:00Z
            (
                "0 2 * * *",
                "Europe/Berlin",
                min(30),
                "2026-01-10T01:10:00Z",
                Some(("2026-01-10T01:00:00Z", "2026-01-10T01:30:00Z")),
            ),
            // ... and in summer (+02:00) it is 00:00Z
            (
                "0 2 * * *",
                "Europe/Berlin",
                min(30),
                "2026-07-10T00:10:00Z",
                Some(("2026-07-10T00:00:00Z", "2026-07-10T00:30:00Z")),
            ),
            // a zone west of UTC crossing midnight: 23:00 in New York (EST, -05:00) is 04:00Z
            (
                "0 23 * * *",
                "America/New_York",
                min(120),
                "2026-01-11T05:30:00Z",
                Some(("2026-01-11T04:00:00Z", "2026-01-11T06:00:00Z")),
            ),
            // Sundays only, from a Monday: over
            ("0 2 * * 0", "UTC", min(60), "2026-03-02T02:30:00Z", None),
            // Sundays only, on a Sunday
            (
                "0 2 * * SUN",
                "UTC",
                min(60),
                "2026-03-01T02:30:00Z",
                Some(("2026-03-01T02:00:00Z", "2026-03-01T03:00:00Z")),
            ),
            // a window longer than a day reaches across the next day
            (
                "0 22 * * 6",
                "UTC",
                min(60 * 30),
                "2026-03-01T03:00:00Z",
                Some(("2026-02-28T22:00:00Z", "2026-03-02T04:00:00Z")),
            ),
            // DST gap in Berlin (2026-03-29, 02:00 -> 03:00): a fixed 02:30 runs at 03:00 local
            // (01:00Z), the first minute after the gap, on the same day
            (
                "30 2 * * *",
                "Europe/Berlin",
                min(60),
                "2026-03-29T01:15:00Z",
                Some(("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z")),
            ),
            // DST repeat in Berlin (2026-10-25, 03:00 -> 02:00): a fixed 02:30 runs once, at
            // its first pass (+02:00, 00:30Z); during the second pass (01:30Z) the window of
            // the first one is still open
            (
                "30 2 * * *",
                "Europe/Berlin",
                min(90),
                "2026-10-25T01:40:00Z",
                Some(("2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z")),
            ),
            (
                "30 2 * * *",
                "Europe/Berlin",
                min(30),
                "2026-10-25T01:40:00Z",
                None,
            ),
            // New York's spring gap (2026-03-08, 02:00 -> 03:00 EDT)
            (
                "30 2 * * *",
                "America/New_York",
                min(60),
                "2026-03-08T07:10:00Z",
                Some(("2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z")),
            ),
        ];
        for (expression, zone, duration, now, want) in cases {
            let schedule = Schedule::new(expression, zone, *duration).unwrap();
            let got = schedule.active_at(utc(now));
            let want = want.map(|(from, until)| (utc(from), utc(until)));
            assert_eq!(
                got.map(|(f, u)| (f.to_rfc3339(), u.to_rfc3339())),
                want.map(|(f, u)| (f.to_rfc3339(), u.to_rfc3339())),
                "{expression} in {zone} for {duration:?} at {now}"
            );
        }
    }

    #[test]
    fn next_start_in_a_zone() {
        let cases = [
            (
                "0 2 * * *",
                "UTC",
                "2026-03-01T02:00:00Z",
                "2026-03-02T02:00:00Z",
            ),
            (
                "0 2 * * *",
                "UTC",
                "2026-03-01T01:00:00Z",
                "2026-03-01T02:00:00Z",
            ),
            (
                "0 2 * * *",
                "Asia/Kolkata",
                "2026-03-01T00:00:00Z",
                "2026-03-01T20:30:00Z",
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2026-03-01T10:07:00Z",
                "2026-03-01T10:15:00Z",
            ),
        ];
        for (expression, zone, now, want) in cases {
            let schedule = Schedule::new(expression, zone, Duration::from_secs(60)).unwrap();
            assert_eq!(
                schedule.next_start(utc(now)).map(Timestamp::to_rfc3339),
                Some(utc(want).to_rfc3339()),
                "{expression} in {zone} after {now}"
            );
        }
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        for expression in [
            "",
            "* * * *",
            "0 0 2 * * *",
            "61 * * * *",
            "0 25 * * *",
            "nope",
        ] {
            let err = parse_cron(expression).unwrap_err();
            assert!(
                matches!(err, MaintenanceError::Cron { .. }),
                "{expression}: {err}"
            );
        }
        for zone in ["", "Mars/Olympus", "europe/berlin", "UTC+2"] {
            assert!(
                matches!(parse_zone(zone), Err(MaintenanceError::UnknownZone { .. })),
                "{zone}"
            );
        }
        assert!(parse_zone("Europe/Berlin").is_ok());
        assert!(parse_cron("@daily").is_ok());
        assert_eq!(minute_utc(utc("2026-12-06T02:00:59Z")), "2026-12-06T02:00Z");
    }
}
