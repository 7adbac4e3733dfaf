//! Judging a steady-state [`Hypothesis`] against probe state changes: pure, so drills can reuse
//! it for expectations like "probe Up again within 30 s".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chaos::{Hypothesis, RecoverFrom};
use crate::event::{ProbeState, Timestamp};

/// One probe state change (`from` → `to`, e.g. Up → Down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeChange {
    pub at: Timestamp,
    pub from: ProbeState,
    pub to: ProbeState,
}

/// State changes per probe, oldest first.
pub type ProbeHistories = BTreeMap<String, Vec<ProbeChange>>;

/// The span a hypothesis is judged over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// When the faults began to be applied: time zero (a kill takes effect during the apply).
    pub fault_at: Timestamp,
    /// When it was undone; `None` while it is still in place.
    pub rolled_back: Option<Timestamp>,
    /// How far the evidence reaches (now, or the end of the report window).
    pub evaluated_at: Timestamp,
}

/// How a probe broke the hypothesis, with times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub probe: String,
    pub at: Timestamp,
    /// Milliseconds after time zero (the experiment's start).
    pub offset_ms: i64,
    pub what: String,
    /// How long the probe was down, when it came back.
    pub down_ms: Option<i64>,
}

/// The answer to "did the steady state hold?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    Held {
        summary: String,
    },
    Violated {
        summary: String,
        violations: Vec<Violation>,
    },
    /// The experiment states no hypothesis.
    NotStated,
    /// Not decidable yet or from this journal: `reason` says why.
    Inconclusive {
        reason: String,
    },
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Self::Held { .. } => "held",
            Self::Violated { .. } => "violated",
            Self::NotStated => "not stated",
            Self::Inconclusive { .. } => "inconclusive",
        }
    }

    /// One line: "violated: api went down at +2.1s".
    pub fn line(&self) -> String {
        match self {
            Self::Held { summary } => format!("held: {summary}"),
            Self::Violated { violations, .. } => {
                let first: Vec<String> = violations
                    .iter()
                    .map(|v| format!("{} {}", v.probe, v.what))
                    .collect();
                format!("violated: {}", first.join("; "))
            }
            Self::NotStated => "not stated (the experiment has no hypothesis)".into(),
            Self::Inconclusive { reason } => format!("inconclusive: {reason}"),
        }
    }
}

/// Judge `hypothesis` over `histories` within `span`. A violation is final even while the
/// experiment runs; "held" needs the experiment over and every recovery deadline reached.
pub fn judge(hypothesis: &Hypothesis, histories: &ProbeHistories, span: Span) -> Verdict {
    let mut violations = Vec::new();
    let mut pending = Vec::new();
    let none = Vec::new();
    for probe in &hypothesis.steady_state {
        let changes: Vec<&ProbeChange> = histories
            .get(probe)
            .unwrap_or(&none)
            .iter()
            .filter(|c| c.at >= span.fault_at && c.at <= span.evaluated_at)
            .collect();
        judge_probe(
            hypothesis,
            probe,
            &changes,
            span,
            &mut violations,
            &mut pending,
        );
    }
    if !violations.is_empty() {
        return Verdict::Violated {
            summary: hypothesis.describe(),
            violations,
        };
    }
    if span.rolled_back.is_none() {
        return Verdict::Inconclusive {
            reason: "the experiment is still running".into(),
        };
    }
    if !pending.is_empty() {
        return Verdict::Inconclusive {
            reason: format!(
                "{} down and the recovery deadline has not passed yet",
                pending.join(", ")
            ),
        };
    }
    Verdict::Held {
        summary: hypothesis.describe(),
    }
}

fn judge_probe(
    hypothesis: &Hypothesis,
    probe: &str,
    changes: &[&ProbeChange],
    span: Span,
    violations: &mut Vec<Violation>,
    pending: &mut Vec<String>,
) {
    let violation = |at: Timestamp, what: String, down_ms: Option<i64>| Violation {
        probe: probe.to_string(),
        at,
        offset_ms: at.0 - span.fault_at.0,
        what,
        down_ms,
    };
    if let Some(first) = changes.first() {
        if first.from == ProbeState::Down {
            violations.push(violation(
                span.fault_at,
                "was already down when the fault was applied".into(),
                None,
            ));
            return;
        }
    }
    for (index, change) in changes.iter().enumerate() {
        if change.to != ProbeState::Down {
            continue;
        }
        let down = change.at;
        let up = changes[index + 1..]
            .iter()
            .find(|c| c.to == ProbeState::Up)
            .map(|c| c.at);
        let down_ms = up.map(|up| up.0 - down.0);
        let offset = offset_text(down.0 - span.fault_at.0);
        let Some(within) = hypothesis.recover_within else {
            violations.push(violation(down, format!("went down at {offset}"), down_ms));
            continue;
        };
        let from = match (hypothesis.recover_from, span.rolled_back) {
            (RecoverFrom::Down, _) => down,
            (RecoverFrom::Rollback, Some(rolled_back)) => rolled_back.max(down),
            (RecoverFrom::Rollback, None) => {
                pending.push(probe.to_string());
                continue;
            }
        };
        let deadline = Timestamp(from.0 + within.get().as_millis() as i64);
        let what = hypothesis.recover_from.as_str();
        match up {
            Some(up) if up <= deadline => {}
            Some(up) => violations.push(violation(
                down,
                format!(
                    "went down at {offset} and was Up again only {} after the {what} (allowed {within})",
                    seconds(up.0 - from.0)
                ),
                down_ms,
            )),
            None if span.evaluated_at >= deadline => violations.push(violation(
                down,
                format!("went down at {offset} and was still down {within} after the {what}"),
                None,
            )),
            None => pending.push(probe.to_string()),
        }
    }
}

/// "+2.1s": an offset from time zero.
pub fn offset_text(ms: i64) -> String {
    format!("{}{}", if ms < 0 { "-" } else { "+" }, seconds(ms.abs()))
}

/// "2.1s", "1m 05.0s".
pub fn seconds(ms: i64) -> String {
    let tenths = (ms.max(0) + 50) / 100;
    let (minutes, tenths) = (tenths / 600, tenths % 600);
    match minutes {
        0 => format!("{}.{}s", tenths / 10, tenths % 10),
        _ => format!("{minutes}m {:02}.{}s", tenths / 10, tenths % 10),
    }
}
