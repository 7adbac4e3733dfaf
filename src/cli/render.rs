//! Turns the daemon's JSON answers into what a person reads: aligned tables and short lines.

use std::fmt::Write;

use crate::api::{ReloadOutcome, ReloadReport, StatusResponse};
use crate::event::JournaledEvent;

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// One row per item under `header`, or the `none` line when there are no items.
pub fn table_or<T>(
    none: &str,
    header: &[&str],
    items: &[T],
    row: impl FnMut(&T) -> Vec<String>,
) -> String {
    if items.is_empty() {
        return none.to_string();
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(header, &rows)
}

pub fn status(status: &StatusResponse) -> String {
    let daemon = &status.daemon;
    let mut out = String::new();
    let uptime = humantime::format_duration(std::time::Duration::from_secs(status.uptime_secs));
    let _ = writeln!(
        out,
        "sentineld {} (pid {}), up {uptime}",
        daemon.version, daemon.pid
    );
    let mut facts = vec![
        (
            "config",
            format!(
                "{} ({})",
                daemon.config_path.display(),
                &daemon.config_hash[..12.min(daemon.config_hash.len())]
            ),
        ),
        ("socket", daemon.socket.display().to_string()),
        ("state dir", daemon.state_dir.display().to_string()),
    ];
    facts.push((
        "last reload",
        daemon
            .last_reload
            .as_ref()
            .map_or_else(|| "never".to_string(), reload_line),
    ));
    facts.extend(daemon.notes.iter().map(|n| ("note", n.clone())));
    facts.extend(status.capabilities.iter().map(|c| ("chaos", c.line())));
    for (label, value) in facts {
        let _ = writeln!(out, "{label:<12}{value}");
    }
    out.push('\n');
    let budget = |name: &str| {
        status.heals.iter().find(|h| h.probe == name).map_or_else(
            || "-".to_string(),
            |h| {
                let budget = match h.gave_up {
                    true => "gave up".to_string(),
                    false => format!("{}/{}", h.budget_remaining, h.budget_max),
                };
                match (h.crash_loop, h.holding_until) {
                    (true, _) => format!("crash loop: {budget}"),
                    (false, Some(until)) => {
                        format!("{budget}, holding until {}", until.to_rfc3339())
                    }
                    (false, None) => budget,
                }
            },
        )
    };
    out.push_str(&table_or(
        "no probes configured\n",
        &[
            "PROBE",
            "KIND",
            "STATE",
            "SINCE",
            "LATENCY",
            "RECOVERIES",
            "HEAL",
            "LAST FAILURE",
        ],
        &status.probes,
        |p| {
            vec![
                p.name.clone(),
                p.kind.clone(),
                state_word(p),
                p.since.to_rfc3339(),
                p.last_latency_ms
                    .map_or_else(|| "-".into(), |ms| format!("{ms:.1} ms")),
                p.recoveries_total.to_string(),
                budget(&p.name),
                p.last_failure.clone().unwrap_or_else(|| "-".into()),
            ]
        },
    ));
    out.push_str(&discovered(status));
    out
}

/// Under the tables: which probes `[docker] discover` made, from what, and the labels it could
/// not use ("web: label sentinel.fail_after=\"abc\": expected ...; using the default").
fn discovered(status: &StatusResponse) -> String {
    let mut out = String::new();
    for p in &status.probes {
        let Some(note) = &p.discovered else { continue };
        if out.is_empty() {
            out.push('\n');
        }
        let from = match note.from {
            crate::event::DiscoverySource::Label => "label sentinel.enable=true",
            crate::event::DiscoverySource::Healthcheck => "HEALTHCHECK",
        };
        let _ = writeln!(
            out,
            "discovered  {}: container {} ({}) by {from}",
            p.name, note.container, note.container_id
        );
        for issue in &note.label_issues {
            let _ = writeln!(
                out,
                "label       {}: container {}: {issue}; using the default",
                p.name, note.container
            );
        }
    }
    out
}

/// What `sentinelctl probes` prints.
pub fn probes(status: &StatusResponse) -> String {
    table_or(
        "no probes configured\n",
        &[
            "PROBE",
            "KIND",
            "EVERY",
            "THRESHOLDS",
            "STATE",
            "HEAL",
            "TARGET",
        ],
        &status.probes,
        |p| {
            let heal = status
                .heals
                .iter()
                .find(|h| h.probe == p.name)
                .map_or_else(|| "-".to_string(), |h| h.action.clone());
            vec![
                p.name.clone(),
                p.kind.clone(),
                humantime::format_duration(std::time::Duration::from_millis(p.interval_ms))
                    .to_string(),
                p.thresholds.clone(),
                state_word(p),
                heal,
                p.target.clone(),
            ]
        },
    ) + &discovered(status)
}

/// "down (maintenance m19a… until 2026-12-06T03:00:00.000Z)", "up (silenced)", "up".
fn state_word(p: &crate::probe::ProbeSnapshot) -> String {
    let state = p.state.as_str();
    if let Some(cover) = &p.maintenance {
        return format!(
            "{state} (maintenance {} until {})",
            cover.window,
            cover.until.to_rfc3339()
        );
    }
    match p.silenced_until {
        Some(until) if until > crate::event::Timestamp::now() => format!("{state} (silenced)"),
        _ => state.to_string(),
    }
}

fn reload_line(report: &ReloadReport) -> String {
    let when = report.at.to_rfc3339();
    match report.outcome {
        ReloadOutcome::Rejected => format!(
            "{when} ({}): rejected, old config kept: {}",
            report.trigger,
            report.error.as_deref().unwrap_or("?")
        ),
        outcome => format!("{when} ({}): {}", report.trigger, outcome_word(outcome)),
    }
}

fn outcome_word(outcome: ReloadOutcome) -> &'static str {
    match outcome {
        ReloadOutcome::Applied => "applied",
        ReloadOutcome::Unchanged => "unchanged",
        ReloadOutcome::Rejected => "rejected",
    }
}

/// What `sentinelctl reload` prints.
pub fn reload(report: &ReloadReport) -> String {
    match report.outcome {
        ReloadOutcome::Rejected => format!(
            "config rejected; the running config is unchanged:\n  {}\n",
            report.error.as_deref().unwrap_or("unknown error")
        ),
        ReloadOutcome::Unchanged => "config unchanged; nothing to do\n".to_string(),
        ReloadOutcome::Applied => {
            let mut out = String::from("config applied\n");
            if report.changes.is_empty() {
                out.push_str("  (no running component affected)\n");
            }
            for change in &report.changes {
                let _ = writeln!(out, "  {change}");
            }
            for field in &report.restart_required {
                let _ = writeln!(out, "  {field} changed: takes effect after a restart");
            }
            out
        }
    }
}

pub fn event_row(event: &JournaledEvent) -> Vec<String> {
    vec![
        event.id.to_string(),
        event.event.at.to_rfc3339(),
        event.event.kind.name().to_string(),
        event.event.kind.summary(),
    ]
}

pub const EVENT_HEADER: [&str; 4] = ["ID", "TIME", "KIND", "SUMMARY"];

pub fn events(events: &[JournaledEvent]) -> String {
    table_or("no events\n", &EVENT_HEADER, events, event_row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Timestamp};

    #[test]
    fn table_or_prints_the_none_line_for_no_items_and_a_row_per_item() {
        let row = |n: &u8| vec![n.to_string()];
        assert_eq!(table_or("none yet\n", &["N"], &[], row), "none yet\n");
        assert_eq!(table_or("none yet\n", &["N"], &[1, 2], row), "N\n1\n2\n");
    }

    #[test]
    fn table_aligns_columns() {
        let text = table(
            &["A", "LONG HEADER", "C"],
            &[
                vec!["wide value".into(), "x".into(), "last".into()],
                vec!["y".into(), "z".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "A           LONG HEADER  C\n\
             wide value  x            last\n\
             y           z\n"
        );
    }

    #[test]
    fn events_render_one_row_each() {
        let event = JournaledEvent {
            id: 7,
            event: Event {
                at: Timestamp(1_700_000_000_000),
                kind: EventKind::DaemonStopping {
                    reason: "signal".into(),
                },
            },
        };
        let text = events(&[event]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].starts_with("7   2023-11-14T22:13:20.000Z  daemon_stopping  stopping: signal"),
            "{text}"
        );
    }

    #[test]
    fn rejected_reload_shows_the_error() {
        let report = ReloadReport {
            at: Timestamp(0),
            trigger: crate::event::ReloadTrigger::Api,
            outcome: ReloadOutcome::Rejected,
            config_hash: None,
            error: Some("c.toml:3:8: unknown probe kind \"htp\"".into()),
            changes: vec![],
            restart_required: vec![],
        };
        assert!(reload(&report).contains("c.toml:3:8: unknown probe kind"));
    }
}
