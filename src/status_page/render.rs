//! The page itself: a pure function from [`PageData`] to HTML. Everything that comes from config,
//! events or tenants goes through [`escape`].

use std::fmt::Write;
use std::time::Duration;

use super::sparkline::sparkline;
use super::{ActiveExperiment, DrillView, PageData, TenantsView, BAR_DAYS};
use crate::analyze::Outage;
use crate::event::Timestamp;
use crate::probe::{ProbeSnapshot, ProbeState};

/// Inline, so the page is one response and works with no other route.
const STYLE: &str = include_str!("style.css");
/// Seconds between the page's own reloads (a meta refresh: no script needed).
const REFRESH_SECS: u32 = 15;

/// HTML-escape text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn page(data: &PageData) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta http-equiv=\"refresh\" content=\"{refresh}\">",
            "<title>{title}</title><style>{style}</style></head><body><main>",
            "<header><h1>Sentinel status</h1>",
            "<span class=\"muted small\">updated <time datetime=\"{now}\">{now}</time></span></header>"
        ),
        refresh = REFRESH_SECS,
        title = escape(&title(&data.probes)),
        style = STYLE,
        now = data.now.to_rfc3339(),
    );
    banner(&mut out, &data.probes);
    probes(&mut out, data);
    experiments(&mut out, &data.experiments, data.now.as_millis());
    drills(&mut out, &data.drills);
    incidents(&mut out, data);
    tenants(&mut out, data.tenants.as_ref());
    out.push_str(
        "<footer class=\"muted small\">Read-only view of sentineld. Times are UTC. \
         <code>sentinelctl status</code> and <code>sentinelctl analyze</code> say more.</footer>",
    );
    out.push_str("</main></body></html>\n");
    out
}

fn down_count(probes: &[ProbeSnapshot]) -> usize {
    probes
        .iter()
        .filter(|p| matches!(p.state, ProbeState::Down))
        .count()
}

fn title(probes: &[ProbeSnapshot]) -> String {
    match down_count(probes) {
        0 => "Sentinel status".into(),
        n => format!("({n} down) Sentinel status"),
    }
}

fn banner(out: &mut String, probes: &[ProbeSnapshot]) {
    let down = down_count(probes);
    let wobbly = probes
        .iter()
        .filter(|p| {
            matches!(
                p.state,
                ProbeState::Failing | ProbeState::Recovering | ProbeState::Unknown
            )
        })
        .count();
    let (class, text) = match (probes.len(), down, wobbly) {
        (0, _, _) => ("warn", "No probes are configured.".to_string()),
        (n, 0, 0) => ("", format!("All {n} probes are up.")),
        (n, 0, w) => ("warn", format!("{w} of {n} probes are not settled yet.")),
        (n, d, _) => ("bad", format!("{d} of {n} probes are down.")),
    };
    let _ = write!(out, "<p class=\"banner {class}\" id=\"summary\">{text}</p>");
}

fn probes(out: &mut String, data: &PageData) {
    out.push_str("<section id=\"probes\"><h2>Probes</h2>");
    if data.probes.is_empty() {
        out.push_str("<p class=\"empty\">No probes are configured.</p></section>");
        return;
    }
    out.push_str("<div class=\"grid\">");
    for probe in &data.probes {
        let state = probe.state.as_str();
        let since = duration_between(probe.since.as_millis(), data.now.as_millis());
        let latency = probe
            .last_latency_ms
            .map_or("-".into(), |ms| format!("{ms:.1} ms"));
        let _ = write!(
            out,
            concat!(
                "<article class=\"card probe\" data-probe=\"{name}\" data-state=\"{state}\">",
                "<div class=\"row\"><h3>{name}</h3><span class=\"pill {state}\">{state}</span></div>",
                "<p class=\"target muted small\">{kind} · {target}</p>{spark}",
                "<div class=\"facts small\"><span>last {latency}</span><span>{state} for {since}</span>",
                "<span>{recoveries}</span></div>{bar}"
            ),
            name = escape(&probe.name),
            state = state,
            kind = escape(&probe.kind),
            target = escape(&probe.target),
            spark = sparkline(&probe.recent),
            latency = latency,
            since = since,
            recoveries = match probe.recoveries_total {
                1 => "1 recovery".to_string(),
                n => format!("{n} recoveries"),
            },
            bar = bar(data, &probe.name),
        );
        if let Some(failure) = probe.last_failure.as_deref() {
            let _ = write!(
                out,
                "<p class=\"small muted\">last failure: {}</p>",
                escape(failure)
            );
        }
        out.push_str("</article>");
    }
    out.push_str("</div></section>");
}

/// The last [`BAR_DAYS`] UTC days as one cell each, oldest first, coloured by availability;
/// the `title` says the date and the figure. Days without data are grey, not red.
fn bar(data: &PageData, probe: &str) -> String {
    let cells = data.uptime.get(probe).map(Vec::as_slice).unwrap_or(&[]);
    let today = data.now.as_millis().div_euclid(crate::uptime::DAY_MS);
    let mut out = String::from(
        "<div class=\"bar\" role=\"img\" aria-label=\"availability per day, last 90 days\">",
    );
    for day in today - BAR_DAYS + 1..=today {
        let date = &Timestamp(day * crate::uptime::DAY_MS).to_rfc3339()[..10];
        let cell = cells.iter().find(|c| c.date == date);
        let (class, title) = match cell.and_then(|c| c.availability.map(|a| (a, c.down_ms))) {
            None => ("none", format!("{date}: no data")),
            Some((a, down_ms)) => {
                let class = match a {
                    a if a >= 0.999 => "ok",
                    a if a >= 0.99 => "minor",
                    a if a >= 0.95 => "major",
                    _ => "bad",
                };
                let down = match down_ms {
                    0 => String::new(),
                    ms => format!(", down {}", duration_between(0, ms).replace("&lt;", "<")),
                };
                (class, format!("{date}: {:.2}% up{down}", a * 100.0))
            }
        };
        let _ = write!(
            out,
            "<span class=\"day {class}\" title=\"{}\"></span>",
            escape(&title)
        );
    }
    out.push_str("</div>");
    out
}

/// Running chaos experiments with the time they have left.
fn experiments(out: &mut String, running: &[ActiveExperiment], now_ms: i64) {
    out.push_str("<section id=\"experiments\"><h2>Chaos experiments</h2>");
    if running.is_empty() {
        out.push_str("<p class=\"empty\">No chaos experiments are running.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table><thead><tr><th>Experiment</th><th>Target</th>\
         <th class=\"num\">Time left</th></tr></thead><tbody>",
    );
    for experiment in running {
        let _ = write!(
            out,
            "<tr><td>{} <span class=\"muted small\">{}</span></td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&experiment.name),
            escape(&experiment.id),
            escape(&experiment.target),
            duration_between(now_ms, experiment.ends_at.as_millis()),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// Per drill: its last run (when, result, recovery time) and the recovery times of its recent
/// runs, oldest first, with their direction. Nothing when no drill has run.
fn drills(out: &mut String, drills: &[DrillView]) {
    if drills.is_empty() {
        return;
    }
    out.push_str(
        "<section id=\"drills\"><h2>Drills</h2><div class=\"table-wrap\"><table><thead><tr>\
         <th>Drill</th><th>Last run</th><th>Result</th><th class=\"num\">Recovered in</th>\
         <th>Recovery, recent runs</th></tr></thead><tbody>",
    );
    let seconds =
        |ms: Option<u64>| ms.map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
    for drill in drills {
        let Some(last) = drill.runs.last() else {
            continue;
        };
        let pill = match last.outcome {
            crate::event::DrillOutcome::Passed => "up",
            crate::event::DrillOutcome::Failed => "down",
            crate::event::DrillOutcome::Aborted => "failing",
        };
        let trend: Vec<String> = drill.runs.iter().map(|r| seconds(r.recover_ms)).collect();
        let _ = write!(
            out,
            concat!(
                "<tr data-drill=\"{name}\"><td>{name}</td><td><time datetime=\"{at}\">{at}</time></td>",
                "<td><span class=\"pill {pill}\">{outcome}</span></td><td class=\"num\">{recover}</td>",
                "<td class=\"small\">{trend} <span class=\"muted\">({direction})</span></td></tr>"
            ),
            name = escape(&drill.name),
            at = last.ended.to_rfc3339(),
            pill = pill,
            outcome = last.outcome,
            recover = seconds(last.recover_ms),
            trend = trend.join(" → "),
            direction = drill.direction.as_str(),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn incidents(out: &mut String, data: &PageData) {
    out.push_str("<section id=\"incidents\"><h2>Recent incidents</h2>");
    if let Some(error) = &data.journal_error {
        let _ = write!(
            out,
            "<p class=\"empty\">The journal could not be read: {}</p></section>",
            escape(error)
        );
        return;
    }
    if data.incidents.is_empty() {
        out.push_str("<p class=\"empty\">No probe went down in the last 7 days.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table><thead><tr><th>Probe</th><th>Reason</th>\
         <th>Went down</th><th class=\"num\">Time to recover</th></tr></thead><tbody>",
    );
    for outage in &data.incidents {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><time datetime=\"{at}\">{at}</time></td><td class=\"num\">{}</td></tr>",
            escape(&outage.probe),
            escape(&outage.reason),
            recovery(outage),
            at = outage.down_at.to_rfc3339(),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn recovery(outage: &Outage) -> String {
    match outage.up_at {
        Some(up) => duration_between(outage.down_at.as_millis(), up.as_millis()),
        None => "<span class=\"pill down\">ongoing</span>".into(),
    }
}

fn tenants(out: &mut String, view: Option<&TenantsView>) {
    out.push_str("<section id=\"tenants\"><h2>Top tenants right now</h2>");
    let Some(view) = view else {
        out.push_str("<p class=\"empty\">The tenant detector is off ([tenants] enabled = false).</p></section>");
        return;
    };
    if view.top.tenants.is_empty() {
        out.push_str("<p class=\"empty\">No tenant traffic in the current window.</p></section>");
        return;
    }
    let label = escape(&view.error_label);
    let _ = write!(
        out,
        "<p class=\"muted small\">Ranked by share of {label} over the last {}: {} requests, {} {label}.</p>",
        duration_between(0, view.top.window_ms),
        view.top.total_requests,
        view.top.total_errors,
    );
    let _ = write!(
        out,
        "<div class=\"table-wrap\"><table><thead><tr><th>Tenant</th><th class=\"num\">Requests</th>\
         <th class=\"num\">{label}</th><th class=\"num\">Share of {label}</th><th class=\"num\">p95</th></tr></thead><tbody>"
    );
    for tenant in &view.top.tenants {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}%</td><td class=\"num\">{}</td></tr>",
            escape(&tenant.tenant_id),
            tenant.requests,
            tenant.errors,
            tenant.error_share * 100.0,
            tenant.p95_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// "3m 20s": whole seconds, "<1s" below one.
fn duration_between(from_ms: i64, to_ms: i64) -> String {
    let ms = (to_ms - from_ms).max(0);
    if ms < 1000 {
        return "&lt;1s".into();
    }
    humantime::format_duration(Duration::from_secs((ms / 1000) as u64)).to_string()
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
