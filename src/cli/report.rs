//! `sentinelctl report ID`: one experiment's report as plain text for a terminal, or as a
//! Markdown section ready to paste into a post-mortem (`--format markdown`).

use std::fmt::Write;

use super::render::table;
use crate::report::verdict::{offset_text, seconds};
use crate::report::{ExperimentReport, Verdict};

/// `--format`: how the report is printed (`--json` prints the daemon's JSON instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Markdown,
}

pub fn render(report: &ExperimentReport, format: ReportFormat) -> String {
    match format {
        ReportFormat::Text => text(report),
        ReportFormat::Markdown => markdown(report),
    }
}

pub fn text(report: &ExperimentReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", title(report));
    for line in facts(report) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "Verdict: {}", report.verdict.line());
    violations(&mut out, &report.verdict, "  - ");
    let _ = writeln!(out, "\nTimeline (offsets from the start of the experiment)");
    out.push_str(&table(&TIMELINE_HEADER, &timeline_rows(report)));
    if !report.probes.is_empty() {
        let _ = writeln!(out, "\nProbes");
        out.push_str(&table(&PROBE_HEADER, &probe_rows(report)));
    }
    match tenant_rows(report) {
        Some(rows) => {
            let _ = writeln!(out, "\nTenants before vs during the fault");
            out.push_str(&table(&TENANT_HEADER, &rows));
        }
        None => out.push_str("\nTenants: no snapshot (tenant detector not enabled)\n"),
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

pub fn markdown(report: &ExperimentReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", title(report));
    let _ = writeln!(out, "**Verdict: {}**\n", cell(&report.verdict.line()));
    for line in facts(report) {
        let _ = writeln!(out, "- {}", cell(&line));
    }
    violations(&mut out, &report.verdict, "- violation: ");
    let _ = writeln!(out, "\n### Timeline\n");
    out.push_str(&markdown_table(&TIMELINE_HEADER, &timeline_rows(report)));
    if !report.probes.is_empty() {
        let _ = writeln!(out, "\n### Probes\n");
        out.push_str(&markdown_table(&PROBE_HEADER, &probe_rows(report)));
    }
    let _ = writeln!(out, "\n### Tenants before vs during the fault\n");
    match tenant_rows(report) {
        Some(rows) => out.push_str(&markdown_table(&TENANT_HEADER, &rows)),
        None => out.push_str("No snapshot: the tenant detector was not enabled.\n"),
    }
    for note in &report.notes {
        let _ = writeln!(out, "\n> Note: {}", cell(note));
    }
    out
}

fn title(report: &ExperimentReport) -> String {
    match &report.profile {
        Some(profile) => format!("Chaos experiment {} (profile {profile})", report.experiment),
        None => format!("Chaos experiment {}", report.experiment),
    }
}

fn facts(report: &ExperimentReport) -> Vec<String> {
    let mut lines = vec![
        format!("Fault: {} on {}", report.faults.join(" + "), report.target),
        format!(
            "State: {}{}",
            report.state.as_str(),
            report
                .outcome
                .as_ref()
                .map_or(String::new(), |o| format!(" ({o})"))
        ),
    ];
    let since = |at: crate::event::Timestamp| seconds(at.0 - report.created.0);
    let mut started = format!("Started: {}", report.created.to_rfc3339());
    if let Some(applied) = report.fault_applied {
        started.push_str(&format!(", faults in place after {}", since(applied)));
    }
    match report.rolled_back {
        Some(rolled_back) => started.push_str(&format!(
            ", rolled back after {} ({})",
            since(rolled_back),
            report.rollback_trigger.map_or("?", |t| t.as_str())
        )),
        None => started.push_str(", not rolled back yet"),
    }
    lines.push(started);
    lines.push(format!(
        "Hypothesis: {}",
        report
            .hypothesis
            .as_ref()
            .map_or("none stated".to_string(), |h| h.describe())
    ));
    lines
}

fn violations(out: &mut String, verdict: &Verdict, prefix: &str) {
    if let Verdict::Violated { violations, .. } = verdict {
        for v in violations {
            let _ = writeln!(
                out,
                "{prefix}{} {} (at {})",
                v.probe,
                v.what,
                v.at.to_rfc3339()
            );
        }
    }
}

const TIMELINE_HEADER: [&str; 4] = ["OFFSET", "EVENT", "KIND", "WHAT"];
const PROBE_HEADER: [&str; 7] = ["PROBE", "DOWNS", "DETECT", "ACT", "RECOVER", "HEALS", "NOW"];
const TENANT_HEADER: [&str; 5] = [
    "TENANT",
    "ERROR SHARE BEFORE",
    "ERROR SHARE DURING",
    "P95 BEFORE",
    "P95 DURING",
];

fn timeline_rows(report: &ExperimentReport) -> Vec<Vec<String>> {
    report
        .timeline
        .iter()
        .map(|e| {
            vec![
                offset_text(e.offset_ms),
                format!("#{}", e.event_id),
                e.kind.clone(),
                e.text.clone(),
            ]
        })
        .collect()
}

fn probe_rows(report: &ExperimentReport) -> Vec<Vec<String>> {
    let time = |ms: Option<i64>| ms.map_or("-".to_string(), seconds);
    report
        .probes
        .iter()
        .map(|p| {
            vec![
                p.probe.clone(),
                p.downs.to_string(),
                time(p.time_to_detect_ms),
                time(p.time_to_act_ms),
                time(p.time_to_recover_ms),
                p.heals.to_string(),
                p.final_state.to_string(),
            ]
        })
        .collect()
}

fn tenant_rows(report: &ExperimentReport) -> Option<Vec<Vec<String>>> {
    let tenants = report.tenants.as_ref()?;
    let share = |f: Option<f64>| f.map_or("-".to_string(), |s| format!("{:.1}%", s * 100.0));
    let p95 = |f: Option<f64>| f.map_or("-".to_string(), |ms| format!("{ms:.0} ms"));
    Some(
        tenants
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.tenant_id.clone(),
                    share(r.before.as_ref().map(|f| f.error_share)),
                    share(r.during.as_ref().map(|f| f.error_share)),
                    p95(r.before.as_ref().and_then(|f| f.p95_ms)),
                    p95(r.during.as_ref().and_then(|f| f.p95_ms)),
                ]
            })
            .collect(),
    )
}

fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// A table cell or list item: pipes would split the cell, newlines end the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ProbeState, RollbackTrigger, Timestamp};
    use crate::report::{FinalState, ProbeTimes, TimelineEntry, Violation};

    fn sample() -> ExperimentReport {
        ExperimentReport {
            experiment: "x1".into(),
            profile: Some("slow".into()),
            state: crate::chaos::experiment::ExperimentState::RolledBack,
            target: "interface veth-a".into(),
            faults: vec!["tbf rate 1kbit/s".into()],
            created: Timestamp(0),
            fault_applied: Some(Timestamp(1_000)),
            rolled_back: Some(Timestamp(9_000)),
            rollback_trigger: Some(RollbackTrigger::Stop),
            outcome: Some("stop".into()),
            hypothesis: None,
            verdict: Verdict::Violated {
                summary: "net stay Up".into(),
                violations: vec![Violation {
                    probe: "net".into(),
                    at: Timestamp(3_000),
                    offset_ms: 2_000,
                    what: "went down at +2.0s".into(),
                    down_ms: Some(7_000),
                }],
            },
            timeline: vec![TimelineEntry {
                event_id: 7,
                at: Timestamp(3_000),
                offset_ms: 2_000,
                kind: "probe_transition".into(),
                text: "net: up -> down (a|b)".into(),
            }],
            probes: vec![ProbeTimes {
                probe: "net".into(),
                downs: 1,
                time_to_detect_ms: Some(2_000),
                time_to_act_ms: None,
                time_to_recover_ms: Some(7_000),
                heals: 0,
                final_state: FinalState::Moved(ProbeState::Up),
            }],
            tenants: None,
            window_start: Timestamp(0),
            window_end: Timestamp(70_000),
            notes: vec![],
        }
    }

    #[test]
    fn text_and_markdown_carry_the_same_facts() {
        let report = sample();
        let cases = [
            (
                text(&report),
                vec![
                    "Verdict: violated: net went down at +2.0s",
                    "+2.0s   #7",
                    "net    1      2.0s    -    7.0s",
                    "faults in place after 1.0s, rolled back after 9.0s (stop)",
                ],
            ),
            (
                markdown(&report),
                vec![
                    "## Chaos experiment x1 (profile slow)",
                    "**Verdict: violated",
                    "| +2.0s | #7 | probe_transition | net: up -> down (a\\|b) |",
                    "| net | 1 | 2.0s | - | 7.0s | 0 | up |",
                    "No snapshot",
                ],
            ),
        ];
        for (rendered, fragments) in cases {
            for fragment in fragments {
                assert!(
                    rendered.contains(fragment),
                    "{fragment:?} not in\n{rendered}"
                );
            }
        }
    }
}
