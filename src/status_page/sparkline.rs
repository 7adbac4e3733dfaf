//! The latency history of one probe as a small inline SVG: a line over the last checks, failed
//! checks marked as dots on the baseline, scaled to the slowest check shown.

use std::fmt::Write;

use crate::probe::RecentChecks;

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 40.0;
/// Room for the stroke and the failure dots at the edges.
const PAD: f64 = 3.0;

/// An `<svg>` element, or a short note when there are too few checks to draw a line.
pub fn sparkline(recent: &RecentChecks) -> String {
    if recent.len() < 2 {
        return r#"<p class="muted small">no latency history yet</p>"#.to_string();
    }
    let max = recent
        .iter()
        .map(|c| c.latency_ms)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let step = (WIDTH - 2.0 * PAD) / (recent.len() - 1) as f64;
    let point = |i: usize, latency_ms: f64| {
        let x = PAD + step * i as f64;
        let y = HEIGHT - PAD - (latency_ms / max) * (HEIGHT - 2.0 * PAD);
        (x, y)
    };
    let mut line = String::new();
    let mut dots = String::new();
    for (i, check) in recent.iter().enumerate() {
        let (x, y) = point(i, check.latency_ms);
        let _ = write!(line, "{x:.1},{y:.1} ");
        if !check.ok {
            let _ = write!(
                dots,
                r#"<circle class="fail" cx="{x:.1}" cy="{:.1}" r="2.5"/>"#,
                HEIGHT - PAD
            );
        }
    }
    let failures = recent.iter().filter(|c| !c.ok).count();
    format!(
        concat!(
            r#"<svg class="spark" viewBox="0 0 {w} {h}" preserveAspectRatio="none" role="img" "#,
            r#"aria-label="latency of the last {n} checks, up to {max:.1} ms, {failures} failed">"#,
            r#"<polyline points="{line}"/>{dots}</svg>"#
        ),
        w = WIDTH,
        h = HEIGHT,
        n = recent.len(),
        max = max,
        failures = failures,
        line = line.trim_end(),
        dots = dots,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (latency ms, passed) per check, oldest first.
    type Checks<'a> = &'a [(f64, bool)];

    #[test]
    fn sparkline_table() {
        let history = |checks: &[(f64, bool)]| {
            let mut recent = RecentChecks::default();
            for (latency, ok) in checks {
                recent.push(*latency, *ok);
            }
            recent
        };
        let cases: [(Checks, &[&str]); 4] = [
            (&[], &["no latency history yet"]),
            (&[(5.0, true)], &["no latency history yet"]),
            (
                &[(10.0, true), (20.0, true)],
                &[
                    r#"points="3.0,20.0 237.0,3.0""#,
                    "last 2 checks, up to 20.0 ms, 0 failed",
                ],
            ),
            (
                &[(0.0, false), (0.0, true), (0.0, false)],
                &[
                    r#"<circle class="fail" cx="3.0""#,
                    r#"cx="237.0""#,
                    "2 failed",
                ],
            ),
        ];
        for (checks, fragments) in cases {
            let svg = sparkline(&history(checks));
            for fragment in fragments {
                assert!(svg.contains(fragment), "{checks:?}: {fragment} in {svg}");
            }
        }
    }
}
