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
    if analysis.failing_probes.is_empty() {
        return;
    }
    section(out, "Probes that went down most");
    let rows: Vec<Vec<String>> = analysis
        .failing_probes
        .iter()
        .map(|p| {
            vec![
                p.probe.clone(),
                p.downs.to_string(),
                millis(Some(p.down_ms)),
                millis(p.median_down_ms),
                if p.still_down { "down" } else { "up" }.to_string(),
                ids(&p.evidence),
            ]
        })
        .collect();
    out.push_str(&table(
        &["PROBE", "OUTAGES", "DOWN FOR", "MEDIAN", "NOW", "EVENTS"],
        &rows,
    ));
}

fn patterns(out: &mut String, analysis: &Analysis) {
    if !analysis.recurring.is_empty() {
        section(out, "Recurring: down in the same UTC hour on several days");
        for r in &analysis.recurring {
            let _ = writeln!(
                out,
                "{}: {:02}:00-{:02}:59 UTC on {} days ({}); events {}",
                r.probe,
                r.hour_utc,
                r.hour_utc,
                r.days.len(),
                r.days.join(", "),
                ids(&r.evidence)
            );
        }
    }
    if !analysis.flapping.is_empty() {
        section(out, "Flapping");
        for f in &analysis.flapping {
            let _ = writeln!(
                out,
                "{}: {} outages within {} from {}, {} transitions in the range; events {}",
                f.probe,
                f.downs_in_window,
                millis(Some(f.window_ms)),
                f.evidence.first.map(|t| t.to_rfc3339()).unwrap_or_default(),
                f.transitions,
                ids(&f.evidence)
            );
        }
    }
    if !analysis.reason_clusters.is_empty() {
        section(out, "Failure reasons");
        for c in &analysis.reason_clusters {
            let probes: Vec<String> = c.probes.iter().map(|(p, n)| format!("{p} ×{n}")).collect();
            let _ = writeln!(
                out,
                "{}: {} outages ({}); events {}",
                c.reason,
                c.evidence.count,
                probes.join(", "),
                ids(&c.evidence)
            );
        }
    }
}

fn heals(out: &mut String, analysis: &Analysis) {
    if !analysis.heals.is_empty() {
        section(out, "Healing");
        let rows: Vec<Vec<String>> = analysis
            .heals
            .iter()
            .map(|h| {
                vec![
                    h.probe.clone(),
                    format!("{}/{}", h.heals_ok, h.heals),
                    h.success_rate
                        .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
                    format!("{} ({} healed)", h.incidents_closed, h.incidents_healed),
                    millis(h.median_time_to_recover_ms.map(|ms| ms as i64)),
                    ids(&h.evidence),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "PROBE",
                "HEALS OK",
                "SUCCESS",
                "INCIDENTS",
                "MEDIAN RECOVERY",
                "EVENTS",
            ],
            &rows,
        ));
    }
    if !analysis.budgets_exhausted.is_empty() {
        section(out, "Restart budgets exhausted");
        for b in &analysis.budgets_exhausted {
            let _ = writeln!(
                out,
                "{}: gave up {} time(s), after up to {} heals, last at {}; events {}",
                b.probe,
                b.times,
                b.max_attempts,
                b.evidence.last.map(|t| t.to_rfc3339()).unwrap_or_default(),
                ids(&b.evidence)
            );
        }
    }
}

fn tenants(out: &mut String, analysis: &Analysis) {
    if analysis.tenant_spikes.is_empty() {
        return;
    }
    section(out, "Tenant alerts");
    for s in &analysis.tenant_spikes {
        let context = match s.coinciding_probes.is_empty() {
            true => "no probe was down around it".to_string(),
            false => format!("while down: {}", s.coinciding_probes.join(", ")),
        };
        let _ = writeln!(
            out,
            "{} {}: {} {} > {} (rule {}); {context}; events {}",
            s.at.to_rfc3339(),
            s.tenant_id,
            s.condition,
            s.value,
            s.threshold,
            s.rule,
            ids(&s.evidence)
        );
    }
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
