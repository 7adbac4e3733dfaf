//! The one writer of the Prometheus text format (0.0.4) behind `/metrics`: HELP and TYPE lines,
//! samples, escaping. Every area that exports series (probes, heals, ingest, tenants, the status
//! page) writes through it.
//!
//! Hand-written on purpose: `prometheus-client`, the official crate, writes OpenMetrics (a
//! counter's TYPE line without `_total`, HELP text given a trailing dot, `# EOF`), which the
//! Prometheus 2.42 `promtool check metrics` we test against flags ("no help text").

use std::fmt::{Display, Write};

/// A metric family's type, as its `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// The text of one scrape, family by family.
#[derive(Debug, Default)]
pub struct MetricsText {
    out: String,
}

impl MetricsText {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a family: its `# HELP` (escaped) and `# TYPE` lines. Samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample line: `name{label="value",...} value`, label values escaped.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, text);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    pub fn as_str(&self) -> &str {
        &self.out
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

/// `\`, `"` and newline escaped, as the text format requires of label values.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut text = MetricsText::new();
        text.family(
            "x_total",
            Kind::Counter,
            "Things, with a \\ and\na newline.",
        )
        .sample("x_total", &[("probe", "a\"b\\c\nd"), ("result", "ok")], 3)
        .sample("x_total", &[], 1.5);
        text.single("y", Kind::Gauge, "Y.", 0u8);
        assert_eq!(
            text.into_string(),
            "# HELP x_total Things, with a \\\\ and\\na newline.\n\
             # TYPE x_total counter\n\
             x_total{probe=\"a\\\"b\\\\c\\nd\",result=\"ok\"} 3\n\
             x_total 1.5\n\
             # HELP y Y.\n\
             # TYPE y gauge\n\
             y 0\n"
        );
    }
}
