//! `sentinelctl analyze`: the failure-pattern findings as a readable report, each with the
//! journal event ids behind it (`sentinelctl events` shows them).

use std::fmt::Write;
use std::time::Duration;

use super::render::table;
use crate::analyze::{Analysis, Evidence};

pub fn report(analysis: &Analysis) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Failure patterns from {} to {} ({} events analyzed)",
        analysis.range.since.to_rfc3339(),
        analysis.range.until.to_rfc3339(),
        analysis.events_analyzed
    );
    if analysis.truncated {
        out.push_str("note: the journal held more events than one analysis reads; only the newest were used\n");
    }
    if analysis.is_quiet() {
        out.push_str("\nNo outages, heals, exhausted budgets or tenant alerts in this range.\n");
        return out;
    }
    failing(&mut out, analysis);
    patterns(&mut out, analysis);
    heals(&mut out, analysis);
    tenants(&mut out, analysis);
    out
}

fn failing(out: &mut String, analysis: &Analysis) {
    table_section(
        out,
        "Probes that went down most",
        &["PROBE", "OUTAGES", "DOWN FOR", "MEDIAN", "NOW", "EVENTS"],
        &analysis.failing_probes,
        |p| {
            vec![
                p.probe.clone(),
                p.downs.to_string(),
                millis(Some(p.down_ms)),
                millis(p.median_down_ms),
                if p.still_down { "down" } else { "up" }.to_string(),
                ids(&p.evidence),
            ]
        },
    );
}

fn patterns(out: &mut String, analysis: &Analysis) {
    let title = "Recurring: down in the same UTC hour on several days";
    line_section(out, title, &analysis.recurring, |r| {
        format!(
            "{}: {:02}:00-{:02}:59 UTC on {} days ({}); events {}",
            r.probe,
            r.hour_utc,
            r.hour_utc,
            r.days.len(),
            r.days.join(", "),
            ids(&r.evidence)
        )
    });
    line_section(out, "Flapping", &analysis.flapping, |f| {
        format!(
            "{}: {} outages within {} from {}, {} transitions in the range; events {}",
            f.probe,
            f.downs_in_window,
            millis(Some(f.window_ms)),
            f.evidence.first.map(|t| t.to_rfc3339()).unwrap_or_default(),
            f.transitions,
            ids(&f.evidence)
        )
    });
    line_section(out, "Failure reasons", &analysis.reason_clusters, |c| {
        let probes: Vec<String> = c.probes.iter().map(|(p, n)| format!("{p} ×{n}")).collect();
        format!(
            "{}: {} outages ({}); events {}",
            c.reason,
            c.evidence.count,
            probes.join(", "),
            ids(&c.evidence)
        )
    });
}

fn heals(out: &mut String, analysis: &Analysis) {
    table_section(
        out,
        "Healing",
        &[
            "PROBE",
            "HEALS OK",
            "SUCCESS",
            "INCIDENTS",
            "MEDIAN RECOVERY",
            "EVENTS",
        ],
        &analysis.heals,
        |h| {
            vec![
                h.probe.clone(),
                format!("{}/{}", h.heals_ok, h.heals),
                h.success_rate
                    .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
                format!("{} ({} healed)", h.incidents_closed, h.incidents_healed),
                millis(h.median_time_to_recover_ms.map(|ms| ms as i64)),
                ids(&h.evidence),
            ]
        },
    );
    let title = "Restart budgets exhausted";
    line_section(out, title, &analysis.budgets_exhausted, |b| {
        format!(
            "{}: gave up {} time(s), after up to {} heals, last at {}; events {}",
            b.probe,
            b.times,
            b.max_attempts,
            b.evidence.last.map(|t| t.to_rfc3339()).unwrap_or_default(),
            ids(&b.evidence)
        )
    });
}

fn tenants(out: &mut String, analysis: &Analysis) {
    line_section(out, "Tenant alerts", &analysis.tenant_spikes, |s| {
        let context = match s.coinciding_probes.is_empty() {
            true => "no probe was down around it".to_string(),
            false => format!("while down: {}", s.coinciding_probes.join(", ")),
        };
        format!(
            "{} {}: {} {} > {} (rule {}); {context}; events {}",
            s.at.to_rfc3339(),
            s.tenant_id,
            s.condition,
            s.value,
            s.threshold,
            s.rule,
            ids(&s.evidence)
        )
    });
}

/// A titled section with one line per finding; nothing at all when there are none.
fn line_section<T>(out: &mut String, title: &str, items: &[T], line: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    section(out, title);
    for item in items {
        let _ = writeln!(out, "{}", line(item));
    }
}

/// A titled table with one row per finding; nothing at all when there are none.
fn table_section<T>(
    out: &mut String,
    title: &str,
    header: &[&str],
    items: &[T],
    row: impl Fn(&T) -> Vec<String>,
) {
    if items.is_empty() {
        return;
    }
    section(out, title);
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    out.push_str(&table(header, &rows));
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}");
}

fn millis(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => "<1s".into(),
        // Whole seconds: milliseconds are noise at the scale of outages.
        Some(ms) => humantime::format_duration(Duration::from_secs((ms / 1000) as u64)).to_string(),
    }
}

fn ids(evidence: &Evidence) -> String {
    let mut text: Vec<String> = evidence
        .event_ids
        .iter()
        .map(|id| format!("#{id}"))
        .collect();
    if evidence.count > evidence.event_ids.len() {
        text.push(format!(
            "(+{} more)",
            evidence.count - evidence.event_ids.len()
        ));
    }
    text.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{FailingProbe, Range};
    use crate::event::Timestamp;

    fn empty() -> Analysis {
        Analysis {
            range: Range {
                since: Timestamp(0),
                until: Timestamp(86_400_000),
            },
            events_analyzed: 0,
            truncated: false,
            failing_probes: vec![],
            recurring: vec![],
            flapping: vec![],
            reason_clusters: vec![],
            heals: vec![],
            budgets_exhausted: vec![],
            tenant_spikes: vec![],
        }
    }

    #[test]
    fn a_section_is_its_title_and_a_line_per_finding_or_nothing() {
        let mut out = String::new();
        line_section(&mut out, "Empty", &[] as &[u8], |n| n.to_string());
        assert_eq!(out, "");
        line_section(&mut out, "Numbers", &[1, 2], |n| format!("#{n}"));
        assert_eq!(out, "\nNumbers\n#1\n#2\n");
    }

    #[test]
    fn quiet_range_says_so() {
        assert!(report(&empty()).contains("No outages"));
    }

    #[test]
    fn failing_probe_row_names_probe_times_and_events() {
        let mut analysis = empty();
        analysis.failing_probes.push(FailingProbe {
            probe: "api".into(),
            downs: 3,
            down_ms: 95_000,
            median_down_ms: Some(500),
            still_down: true,
            evidence: Evidence {
                count: 23,
                first: Some(Timestamp(1)),
                last: Some(Timestamp(2)),
                event_ids: vec![4, 9],
            },
        });
        let text = report(&analysis);
        let row = text.lines().find(|l| l.starts_with("api")).unwrap();
        for part in ["3", "1m 35s", "<1s", "down", "#4 #9 (+21 more)"] {
            assert!(row.contains(part), "{part} in {row}");
        }
    }
}
