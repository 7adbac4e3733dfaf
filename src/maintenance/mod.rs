//! Maintenance windows: scheduled (`[[maintenance]]`, cron in a time zone) and opened at run
//! time (`sentinelctl maintenance start`); owns which probes are in maintenance now, so the
//! healer and the notifier hold back while probes keep being checked and journaled.
//!
//! One shared [`Windows`] answers `covering(probe)`; it journals `maintenance_started` and
//! `maintenance_ended` (who, from, until), rebuilds run-time windows from the journal after a
//! restart, and [`excluded_spans`] turns those events back into spans for uptime figures.

pub mod config;
pub mod schedule;
mod spans;
mod windows;

use std::time::Duration;

use thiserror::Error;

pub use schedule::Schedule;
pub use spans::{excluded_spans, Span};
pub use windows::{
    rebuild, Cover, MaintenanceList, Rebuilt, ScheduleView, StartRequest, Window, Windows,
};

/// The longest window, scheduled or run-time: a window is for maintenance, not for muting a
/// probe for good (that is what removing its heal is for).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often scheduled windows are looked at, to journal their start and end.
pub const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum MaintenanceError {
    #[error("invalid cron expression \"{expression}\": {source}")]
    Cron {
        expression: String,
        #[source]
        source: croner::errors::CronError,
    },
    #[error("unknown time zone \"{name}\": use an IANA name such as \"Europe/Berlin\" or \"UTC\"")]
    UnknownZone { name: String },
    #[error(
        "a window lasts at least 1s and at most {}",
        humantime::format_duration(MAX_DURATION)
    )]
    Duration,
    #[error("the window covers nothing: name a probe (--probe) or a label (--label k=v)")]
    EmptyScope,
    #[error("no such probe: {0}")]
    UnknownProbe(String),
    #[error(transparent)]
    Label(#[from] crate::probe::config::LabelError),
    #[error("a window needs a reason (at most 500 bytes)")]
    Reason,
    #[error("no such maintenance window: {0} (see sentinelctl maintenance list)")]
    NoSuchWindow(String),
}
