//! The availability arithmetic, plain code over spans: how long a probe was Up, Down or without
//! data inside a window, less excluded spans, and the incidents that began in it.

use serde::{Deserialize, Serialize};

use super::Exclusion;
use crate::event::{ProbeState, Timestamp};

/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// What a probe state counts as. `Failing` is Up (not yet confirmed Down: below `fail_after`),
/// `Recovering` is Down (not yet confirmed Up: below `recover_after`), `Unknown` (no check
/// finished, or sentineld stopped) counts as no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Unknown,
    Up,
    Down,
}

impl Class {
    pub fn of(state: ProbeState) -> Self {
        match state {
            ProbeState::Unknown => Class::Unknown,
            ProbeState::Up | ProbeState::Failing => Class::Up,
            ProbeState::Down | ProbeState::Recovering => Class::Down,
        }
    }

    pub(super) fn code(self) -> u8 {
        match self {
            Class::Unknown => 0,
            Class::Up => 1,
            Class::Down => 2,
        }
    }

    pub(super) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Class::Unknown),
            1 => Some(Class::Up),
            2 => Some(Class::Down),
            _ => None,
        }
    }
}

/// The UTC day (days since the epoch) holding `ms`.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// A half-open span of time `[from, to)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
}

impl Span {
    pub fn len(self) -> i64 {
        (self.to - self.from).max(0)
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    pub fn clip(self, other: Span) -> Span {
        Span {
            from: self.from.max(other.from),
            to: self.to.min(other.to),
        }
    }

    pub fn contains(self, ms: i64) -> bool {
        self.from <= ms && ms < self.to
    }
}

/// The exclusions that apply to `probe`, merged into disjoint spans sorted by start.
pub fn merged_exclusions(probe: &str, exclusions: &[Exclusion]) -> Vec<Span> {
    let mut spans: Vec<Span> = exclusions
        .iter()
        .filter(|e| e.probe.as_deref().is_none_or(|p| p == probe))
        .map(|e| Span {
            from: e.from.as_millis(),
            to: e.to.as_millis(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    spans.sort_by_key(|s| s.from);
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.from <= last.to => last.to = last.to.max(span.to),
            _ => merged.push(span),
        }
    }
    merged
}

/// How much of `span` the merged `excluded` spans cover.
pub fn excluded_in(span: Span, excluded: &[Span]) -> i64 {
    excluded.iter().map(|e| e.clip(span).len()).sum()
}

fn is_excluded(ms: i64, excluded: &[Span]) -> bool {
    excluded.iter().any(|e| e.contains(ms))
}

/// What one window adds up to for one probe (JSON field names are stable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Up time over Up + Down time, 0..=1; `null` when the window holds neither.
    pub availability: Option<f64>,
    pub window_ms: i64,
    pub up_ms: i64,
    pub down_ms: i64,
    /// Time with no data: before the first check, while sentineld was stopped, Unknown states.
    pub unknown_ms: i64,
    /// Time inside maintenance windows (left out of everything else).
    pub excluded_ms: i64,
    /// Incidents (Down after not Down) that began in the window outside exclusions.
    pub incidents: u64,
    /// Of those, how many had not recovered by the end of the data.
    pub ongoing: u64,
    /// Time to recover (first Down to the next Up) of the recovered ones, nearest rank.
    pub ttr_median_ms: Option<i64>,
    pub ttr_p95_ms: Option<i64>,
}

/// Accumulates one window's figures.
#[derive(Debug, Default)]
pub struct Tally {
    pub up_ms: i64,
    pub down_ms: i64,
    pub incidents: u64,
    pub ongoing: u64,
    pub ttrs: Vec<i64>,
}

impl Tally {
    /// Count `span` in `class`, clipped to `window`, less the excluded parts.
    pub fn span(&mut self, span: Span, class: Class, window: Span, excluded: &[Span]) {
        let span = span.clip(window);
        if span.is_empty() {
            return;
        }
        let counted = span.len() - excluded_in(span, excluded);
        match class {
            Class::Up => self.up_ms += counted,
            Class::Down => self.down_ms += counted,
            Class::Unknown => {}
        }
    }

    /// An incident that began at `start`; `ttr` once it recovered.
    pub fn incident(&mut self, start: i64, ttr: Option<i64>, window: Span, excluded: &[Span]) {
        if !window.contains(start) || is_excluded(start, excluded) {
            return;
        }
        self.incidents += 1;
        match ttr {
            Some(ttr) => self.ttrs.push(ttr),
            None => self.ongoing += 1,
        }
    }

    pub fn finish(mut self, window: Span, excluded: &[Span]) -> Figures {
        let excluded_ms = excluded_in(window, excluded);
        let known = self.up_ms + self.down_ms;
        self.ttrs.sort_unstable();
        Figures {
            availability: (known > 0).then(|| self.up_ms as f64 / known as f64),
            window_ms: window.len(),
            up_ms: self.up_ms,
            down_ms: self.down_ms,
            unknown_ms: (window.len() - excluded_ms - known).max(0),
            excluded_ms,
            incidents: self.incidents,
            ongoing: self.ongoing,
            ttr_median_ms: percentile(&self.ttrs, 50),
            ttr_p95_ms: percentile(&self.ttrs, 95),
        }
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
/// values at or below it.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// One probe's changes of class, in time order: the reference a full recomputation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub at: i64,
    pub class: Class,
}

/// Figures for `window` recomputed from every change of one probe (no rollups): `changes` in
/// journal order, the last one open until `now`. Incidents follow the rollup's rules: one
/// begins when the class becomes Down while none is open, and ends at the next Up.
pub fn recompute(changes: &[Change], now: i64, window: Span, excluded: &[Span]) -> Figures {
    let mut tally = Tally::default();
    let mut current: Option<(i64, Class)> = None;
    let mut incident: Option<i64> = None;
    let mut incidents: Vec<(i64, Option<i64>)> = Vec::new();
    for change in changes {
        let at = match current {
            Some((since, _)) => change.at.max(since),
            None => change.at,
        };
        if let Some((since, class)) = current {
            if class == change.class {
                continue;
            }
            tally.span(
                Span {
                    from: since,
                    to: at,
                },
                class,
                window,
                excluded,
            );
        }
        match change.class {
            Class::Down if incident.is_none() => incident = Some(at),
            Class::Up => {
                if let Some(start) = incident.take() {
                    incidents.push((start, Some(at - start)));
                }
            }
            _ => {}
        }
        current = Some((at, change.class));
    }
    if let Some((since, class)) = current {
        tally.span(
            Span {
                from: since,
                to: now.max(since),
            },
            class,
            window,
            excluded,
        );
    }
    if let Some(start) = incident {
        incidents.push((start, None));
    }
    for (start, ttr) in incidents {
        tally.incident(start, ttr, window, excluded);
    }
    tally.finish(window, excluded)
}

/// The window `[now - length, now)`.
pub fn window_before(now: Timestamp, length_ms: i64) -> Span {
    Span {
        from: now.as_millis().saturating_sub(length_ms),
        to: now.as_millis(),
    }
}
