//! The `[journal]` section: retention by age and count, applied on reload.

use serde::Deserialize;

use crate::units::{HumanDuration, Issue};

/// Journal retention: events older than `max_age` or beyond the newest `max_events` are pruned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    pub max_age: HumanDuration,
    pub max_events: u64,
}

impl Default for JournalSection {
    fn default() -> Self {
        Self {
            max_age: HumanDuration::from_secs(30 * 24 * 3600),
            max_events: 1_000_000,
        }
    }
}

impl JournalSection {
    /// Checks `[journal]`; keys are relative to it.
    pub fn validate(&self) -> Result<(), Issue> {
        if self.max_events == 0 {
            return Err(Issue::at(
                "max_events",
                "journal.max_events must be at least 1",
            ));
        }
        Ok(())
    }
}
