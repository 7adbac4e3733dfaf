//! `/metrics` in the Prometheus text format: counters folded from the bus, gauges and latency
//! histograms read from the probe and heal boards. One series per probe, never per tenant.

mod text;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::{Bus, EventKind};
use crate::heal::{HealBoard, HealSnapshot};
use crate::probe::{ProbeBoard, ProbeSnapshot, ProbeState};
pub use text::{Kind, MetricsText};

/// Counters that only the event stream knows (the boards hold current state, not history).
#[derive(Debug, Default)]
struct Counters {
    transitions: BTreeMap<(String, &'static str), u64>,
    heals: BTreeMap<(String, &'static str), u64>,
    incidents: BTreeMap<(String, &'static str), u64>,
    events_dropped: u64,
}

/// An area that renders its own series (ingest, tenants): `/metrics` appends what it writes.
pub trait MetricsSource: Send + Sync {
    fn render_metrics(&self, out: &mut MetricsText);
}

/// Everything `/metrics` renders from. Cloning shares the same counters and boards.
#[derive(Clone, Default)]
pub struct MetricsView {
    counters: Arc<Mutex<Counters>>,
    pub probes: ProbeBoard,
    pub heals: HealBoard,
    sources: Vec<Arc<dyn MetricsSource>>,
}

impl MetricsView {
    pub fn new(probes: ProbeBoard, heals: HealBoard) -> Self {
        Self {
            counters: Arc::default(),
            probes,
            heals,
            sources: Vec::new(),
        }
    }

    pub fn with_source(mut self, source: Arc<dyn MetricsSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Fold bus events into the counters until `cancel`. It subscribes when called, not when
    /// the future first runs, so call it before the sources start publishing.
    pub fn collect(
        &self,
        bus: &Bus,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = ()> {
        let mut events = bus.subscribe();
        let counters = Arc::clone(&self.counters);
        async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => return,
                    received = events.recv() => received,
                };
                let mut counters = counters.lock().unwrap_or_else(|p| p.into_inner());
                match event {
                    Ok(event) => counters.fold(&event.kind),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        counters.events_dropped += missed
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = render(&counters, &self.probes.snapshot(), &self.heals.snapshot());
        for source in &self.sources {
            source.render_metrics(&mut out);
        }
        out.into_string()
    }
}

impl Counters {
    fn fold(&mut self, kind: &EventKind) {
        match kind {
            EventKind::ProbeTransition { probe, to, .. } => {
                *self
                    .transitions
                    .entry((probe.clone(), to.as_str()))
                    .or_default() += 1;
            }
            EventKind::HealFinished { probe, ok, .. } => {
                let result = if *ok { "ok" } else { "failed" };
                *self.heals.entry((probe.clone(), result)).or_default() += 1;
            }
            EventKind::HealGaveUp { probe, .. } => {
                *self.heals.entry((probe.clone(), "gave_up")).or_default() += 1;
            }
            EventKind::IncidentClosed { probe, healed, .. } => {
                let how = if *healed { "healed" } else { "recovered" };
                *self.incidents.entry((probe.clone(), how)).or_default() += 1;
            }
            _ => {}
        }
    }
}

fn render(counters: &Counters, probes: &[ProbeSnapshot], heals: &[HealSnapshot]) -> MetricsText {
    let mut out = MetricsText::new();
    out.family(
        "sentinel_build_info",
        Kind::Gauge,
        "Version of the running sentineld.",
    )
    .sample(
        "sentinel_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    let name = "sentinel_probe_up";
    out.family(
        name,
        Kind::Gauge,
        "1 when the probe is up, 0 when down or failing, absent before its first check.",
    );
    for p in probes.iter().filter(|p| p.state != ProbeState::Unknown) {
        let up = u8::from(p.state == ProbeState::Up);
        out.sample(name, &[("probe", &p.name), ("kind", &p.kind)], up);
    }

    out.family(
        "sentinel_probe_latency_seconds",
        Kind::Histogram,
        "Duration of probe checks.",
    );
    for p in probes {
        let probe = ("probe", p.name.as_str());
        for (bound, count) in p.latency.cumulative() {
            let le = bound.map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            out.sample(
                "sentinel_probe_latency_seconds_bucket",
                &[probe, ("le", &le)],
                count,
            );
        }
        out.sample(
            "sentinel_probe_latency_seconds_sum",
            &[probe],
            p.latency.sum_seconds(),
        );
        out.sample(
            "sentinel_probe_latency_seconds_count",
            &[probe],
            p.latency.count(),
        );
    }

    let name = "sentinel_probe_checks_total";
    out.family(name, Kind::Counter, "Checks run, by result.");
    for p in probes {
        let probe = ("probe", p.name.as_str());
        let successes = p.checks_total - p.failures_total;
        out.sample(name, &[probe, ("result", "success")], successes);
        out.sample(name, &[probe, ("result", "failure")], p.failures_total);
    }

    per_probe_counts(
        &mut out,
        "sentinel_probe_transitions_total",
        "State transitions since sentineld started, by target state.",
        "to",
        &counters.transitions,
    );

    let name = "sentinel_probe_recoveries_total";
    out.family(
        name,
        Kind::Counter,
        "Down-to-Up recoveries since the probe (re)started.",
    );
    for p in probes {
        out.sample(name, &[("probe", &p.name)], p.recoveries_total);
    }

    per_probe_counts(
        &mut out,
        "sentinel_heals_total",
        "Heal actions by result (ok, failed, gave_up).",
        "result",
        &counters.heals,
    );

    let name = "sentinel_heal_budget_remaining";
    out.family(
        name,
        Kind::Gauge,
        "Heals left in the current restart-budget window.",
    );
    for h in heals {
        out.sample(name, &[("probe", &h.probe)], h.budget_remaining);
    }

    per_probe_counts(
        &mut out,
        "sentinel_incidents_closed_total",
        "Incidents that ended with the probe Up, by how.",
        "how",
        &counters.incidents,
    );

    out.single(
        "sentinel_metrics_events_dropped_total",
        Kind::Counter,
        "Bus events the metrics collector missed by falling behind.",
        counters.events_dropped,
    );
    out
}

/// One counter family from a map keyed on (probe, second label): the event-folded counters.
fn per_probe_counts(
    out: &mut MetricsText,
    name: &str,
    help: &str,
    label: &str,
    counts: &BTreeMap<(String, &'static str), u64>,
) {
    out.family(name, Kind::Counter, help);
    for ((probe, value), count) in counts {
        out.sample(name, &[("probe", probe), (label, value)], count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    /// An http probe with 5 checks, 1 failure and 2 recoveries, no latency observed yet.
    fn snapshot(name: &str, state: ProbeState) -> ProbeSnapshot {
        ProbeSnapshot {
            name: name.into(),
            kind: "http".into(),
            target: String::new(),
            interval_ms: 0,
            thresholds: String::new(),
            state,
            since: Timestamp(0),
            last_check: None,
            last_latency_ms: None,
            last_status_code: None,
            last_failure: None,
            recoveries_total: 2,
            silenced_until: None,
            maintenance: None,
            checks_total: 5,
            failures_total: 1,
            discovered: None,
            latency: Default::default(),
            recent: Default::default(),
        }
    }

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let mut counters = Counters::default();
        counters.fold(&EventKind::ProbeTransition {
            probe: "api".into(),
            from: ProbeState::Up,
            to: ProbeState::Down,
            reason: None,
            status_code: None,
            latency_ms: None,
            recoveries_total: 0,
        });
        counters.fold(&EventKind::HealFinished {
            probe: "api".into(),
            action: "a".into(),
            ok: true,
            detail: "d".into(),
        });
        let mut probe = snapshot("api\"x", ProbeState::Down);
        probe.checks_total = 3;
        probe.latency.observe(0.002);
        let text = render(&counters, &[probe], &[]).into_string();
        for line in [
            "sentinel_probe_up{probe=\"api\\\"x\",kind=\"http\"} 0",
            "sentinel_probe_latency_seconds_bucket{probe=\"api\\\"x\",le=\"0.005\"} 1",
            "sentinel_probe_latency_seconds_bucket{probe=\"api\\\"x\",le=\"+Inf\"} 1",
            "sentinel_probe_checks_total{probe=\"api\\\"x\",result=\"failure\"} 1",
            "sentinel_probe_transitions_total{probe=\"api\",to=\"down\"} 1",
            "sentinel_heals_total{probe=\"api\",result=\"ok\"} 1",
            "sentinel_probe_recoveries_total{probe=\"api\\\"x\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    /// Everything `/metrics` writes for a fixed input, byte for byte: the text as the
    /// hand-written renderers produced it before they shared one writer.
    #[test]
    fn the_whole_text_is_unchanged() {
        let mut counters = Counters::default();
        counters.transitions.insert(("api".into(), "down"), 2);
        counters.transitions.insert(("api".into(), "up"), 1);
        counters.heals.insert(("api".into(), "ok"), 1);
        counters.heals.insert(("db\\x".into(), "gave_up"), 3);
        counters.incidents.insert(("api".into(), "healed"), 1);
        counters.events_dropped = 7;
        let mut up = snapshot("api", ProbeState::Up);
        up.latency.observe(0.002);
        up.latency.observe(0.3);
        up.latency.observe(12.0);
        let probes = [up, snapshot("new\nline \"q\"", ProbeState::Unknown)];
        let heals = [HealSnapshot {
            probe: "api".into(),
            action: "restart".into(),
            budget_remaining: 2,
            budget_max: 3,
            gave_up: false,
            retry_at: None,
            heals_total: 1,
            last_result: None,
            last_ok_at: None,
            holding_until: None,
            relapses: 0,
            crash_loop: false,
            recovered_total: 0,
        }];
        let mut text = render(&counters, &probes, &heals);
        crate::ingest::Ingest::default().render_metrics(&mut text);
        let text = text.into_string();
        let golden = include_str!("golden.prom").replace("{version}", env!("CARGO_PKG_VERSION"));
        assert_eq!(text, golden);
    }
}
