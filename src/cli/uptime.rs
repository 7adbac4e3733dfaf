//! `sentinelctl uptime`: the daemon's uptime report as an aligned table, CSV (header line, one
//! row per probe and window, raw milliseconds), a Markdown table, or its JSON unchanged.

use std::fmt::Write;
use std::time::Duration;

use super::render::table;
use crate::uptime::{Figures, UptimeReport};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UptimeFormat {
    Table,
    Csv,
    Markdown,
    Json,
}

const HEADER: [&str; 9] = [
    "PROBE",
    "WINDOW",
    "AVAILABILITY",
    "DOWN",
    "NO DATA",
    "EXCLUDED",
    "INCIDENTS",
    "MEDIAN TTR",
    "P95 TTR",
];

const CSV_HEADER: &str = "probe,window,from,to,availability_percent,up_ms,down_ms,unknown_ms,excluded_ms,incidents,ongoing,ttr_median_ms,ttr_p95_ms";

pub fn render(report: &UptimeReport, format: UptimeFormat) -> String {
    match format {
        UptimeFormat::Table => text(report),
        UptimeFormat::Csv => csv(report),
        UptimeFormat::Markdown => markdown(report),
        UptimeFormat::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
    }
}

fn percent(figures: &Figures) -> String {
    figures
        .availability
        .map_or("no data".into(), |a| format!("{:.3}%", a * 100.0))
}

fn span(ms: i64) -> String {
    if ms <= 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    humantime::format_duration(Duration::from_secs((ms / 1000) as u64)).to_string()
}

fn incidents(figures: &Figures) -> String {
    match figures.ongoing {
        0 => figures.incidents.to_string(),
        n => format!("{} ({n} ongoing)", figures.incidents),
    }
}

fn rows(report: &UptimeReport) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for probe in &report.probes {
        for window in &probe.windows {
            let f = &window.figures;
            rows.push(vec![
                probe.probe.clone(),
                window.window.clone(),
                percent(f),
                span(f.down_ms),
                span(f.unknown_ms),
                span(f.excluded_ms),
                incidents(f),
                f.ttr_median_ms.map_or("-".into(), span),
                f.ttr_p95_ms.map_or("-".into(), span),
            ]);
        }
    }
    rows
}

pub fn text(report: &UptimeReport) -> String {
    if report.probes.is_empty() {
        return "No probe has changed state in the journal yet.\n".into();
    }
    table(&HEADER, &rows(report))
}

pub fn markdown(report: &UptimeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len()));
    for row in rows(report) {
        let cells: Vec<String> = row
            .iter()
            .map(|c| c.replace('\\', "\\\\").replace('|', "\\|"))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break.
fn field(value: &str) -> String {
    match value.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", value.replace('"', "\"\"")),
        false => value.to_string(),
    }
}

pub fn csv(report: &UptimeReport) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    for probe in &report.probes {
        for (window, spec) in probe.windows.iter().zip(&report.windows) {
            let f = &window.figures;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                field(&probe.probe),
                field(&window.window),
                spec.from.to_rfc3339(),
                spec.to.to_rfc3339(),
                f.availability
                    .map_or(String::new(), |a| format!("{:.4}", a * 100.0)),
                f.up_ms,
                f.down_ms,
                f.unknown_ms,
                f.excluded_ms,
                f.incidents,
                f.ongoing,
                opt(f.ttr_median_ms),
                opt(f.ttr_p95_ms),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use crate::uptime::{ProbeUptime, WindowFigures, WindowSpec};

    fn sample() -> UptimeReport {
        let figures = Figures {
            availability: Some(0.9995),
            window_ms: 86_400_000,
            up_ms: 86_356_800,
            down_ms: 43_200,
            unknown_ms: 0,
            excluded_ms: 0,
            incidents: 2,
            ongoing: 1,
            ttr_median_ms: Some(43_200),
            ttr_p95_ms: Some(43_200),
        };
        UptimeReport {
            now: Timestamp(86_400_000),
            windows: vec![WindowSpec {
                name: "24h".into(),
                from: Timestamp(0),
                to: Timestamp(86_400_000),
            }],
            probes: ["web", "a,\"b\"|c"]
                .iter()
                .map(|name| ProbeUptime {
                    probe: name.to_string(),
                    windows: vec![WindowFigures {
                        window: "24h".into(),
                        figures: figures.clone(),
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn every_format() {
        let report = sample();
        let table = render(&report, UptimeFormat::Table);
        assert!(table.starts_with("PROBE"), "{table}");
        assert!(
            table.contains("99.950%") && table.contains("2 (1 ongoing)"),
            "{table}"
        );
        let csv = render(&report, UptimeFormat::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "web,24h,1970-01-01T00:00:00.000Z,1970-01-02T00:00:00.000Z,99.9500,86356800,43200,0,0,2,1,43200,43200"
        );
        assert!(
            lines[2].starts_with("\"a,\"\"b\"\"|c\",24h,"),
            "{}",
            lines[2]
        );
        let markdown = render(&report, UptimeFormat::Markdown);
        assert!(markdown.starts_with("| PROBE | WINDOW |"), "{markdown}");
        assert!(markdown.contains("| a,\"b\"\\|c | 24h |"), "{markdown}");
        let json: UptimeReport =
            serde_json::from_str(&render(&report, UptimeFormat::Json)).unwrap();
        assert_eq!(json, report);
    }
}
