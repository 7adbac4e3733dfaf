//! The per-probe loop: check on an interval, feed the threshold machine, publish transitions
//! on the probe's own status channel (what healers act on) and on the bus (the record).

use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::ProbeConfig;
use super::heartbeat::HeartbeatClock;
use super::{
    AnyProbe, CheckResult, FlapRule, Heartbeats, ProbeBoard, ProbeSnapshot, ProbeState,
    StatusSender, ThresholdMachine,
};
use crate::docker::DockerEngine;
use crate::event::{Bus, Event, EventKind, Timestamp};

/// Start checking `config` until `cancel` fires. The caller keeps the handle to await the stop.
/// `recoveries_total` continues the count of a previous run, so it survives a daemon restart.
/// Every transition goes to the bus (the record) and to `status`, which its followers cannot miss.
/// A heartbeat probe registers in `heartbeats` and follows its beats instead of checking.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    config: &ProbeConfig,
    docker: &DockerEngine,
    heartbeats: &Heartbeats,
    recoveries_total: u64,
    status: StatusSender,
    bus: Bus,
    board: ProbeBoard,
    cancel: CancellationToken,
    start: FirstCheck,
) -> Option<JoinHandle<()>> {
    let probe = AnyProbe::from_config(config, docker)?;
    let name = config.name().to_string();
    let kind = config.kind().to_string();
    let clock = match &probe {
        AnyProbe::Heartbeat(heartbeat) => {
            Some(heartbeat.clock(heartbeats.register(&name, config.heartbeat_tokens())))
        }
        _ => None,
    };
    let interval = match &probe {
        AnyProbe::Heartbeat(heartbeat) => heartbeat.every,
        _ => config.interval.get_ref().get(),
    };
    let timeout = config.timeout.get_ref().get();
    let max_latency = config.max_latency.as_ref().map(|l| l.get_ref().get());
    // A heartbeat is Down at the first missed deadline or fail beat, Up at the first beat.
    let (fail_after, recover_after) = match clock {
        Some(_) => (1, 1),
        None => (
            *config.fail_after.get_ref(),
            *config.recover_after.get_ref(),
        ),
    };
    let machine = ThresholdMachine::new(fail_after, recover_after)
        .with_flap_rule(config.flap.as_ref().map(|flap| FlapRule {
            failures: flap.get_ref().failures,
            within: flap.get_ref().within,
        }))
        .with_recoveries(recoveries_total);
    let flap = config
        .flap
        .as_ref()
        .map(|f| {
            format!(
                ", down at {} of {}",
                f.get_ref().failures,
                f.get_ref().within
            )
        })
        .unwrap_or_default();
    board.put(
        &name,
        ProbeSnapshot {
            name: name.clone(),
            kind,
            target: probe.target(),
            interval_ms: interval.as_millis() as u64,
            thresholds: match &probe {
                AnyProbe::Heartbeat(_) => "down after every + grace without a beat".to_string(),
                _ => format!("fail {fail_after} / recover {recover_after}{flap}"),
            },
            state: ProbeState::Unknown,
            since: Timestamp::now(),
            last_check: None,
            last_latency_ms: None,
            last_status_code: None,
            last_failure: None,
            recoveries_total,
            silenced_until: None,
            maintenance: None,
            checks_total: 0,
            failures_total: 0,
            discovered: None,
            latency: Default::default(),
            recent: Default::default(),
        },
    );
    Some(tokio::spawn(run(
        name,
        probe,
        Limits {
            interval,
            timeout,
            max_latency,
            start,
        },
        clock,
        machine,
        Outputs { status, bus, board },
        cancel,
    )))
}

/// Where a probe's results go.
struct Outputs {
    /// The lossless channel healers, cascades and drills follow.
    status: StatusSender,
    /// The record: journal, notifiers, metrics, API followers.
    bus: Bus,
    board: ProbeBoard,
}

/// When and how long a probe checks.
struct Limits {
    interval: Duration,
    timeout: Duration,
    max_latency: Option<Duration>,
    start: FirstCheck,
}

/// When a probe's first check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstCheck {
    /// At the probe's own offset within its interval (see [`stagger`]).
    Staggered,
    /// At once: a probe discovered when its container started is checked within the second.
    Now,
}

async fn run(
    name: String,
    probe: AnyProbe,
    limits: Limits,
    mut clock: Option<HeartbeatClock>,
    mut machine: ThresholdMachine,
    outputs: Outputs,
    cancel: CancellationToken,
) {
    let Outputs { status, bus, board } = outputs;
    // Probes started together would otherwise check in lockstep forever: a thousand requests in
    // the same few milliseconds every interval, a memory peak in sentineld and refused
    // connections at small servers. Each probe starts at its own offset instead.
    let offset = match limits.start {
        FirstCheck::Staggered => stagger(&name, limits.interval),
        FirstCheck::Now => Duration::ZERO,
    };
    let first = tokio::time::Instant::now() + offset;
    let mut ticker = tokio::time::interval_at(first, limits.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A container probe also wakes on the engine's events: a death is checked at once, and the
    // interval is only the reconcile that covers a missed event.
    let mut container_events = match &probe {
        AnyProbe::Docker(_) => Some(bus.subscribe()),
        _ => None,
    };
    loop {
        let result = match &mut clock {
            // Pushed: a result per beat, and per `every` while beats are missing.
            Some(clock) => tokio::select! {
                _ = cancel.cancelled() => break,
                result = clock.next() => result,
            },
            None => {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = ticker.tick() => {}
                    _ = next_container_event(&probe, &mut container_events) => ticker.reset(),
                }
                // Boxed: a check's future (connect, TLS, HTTP exchange) is several KB, and held
                // inline it would sit in every probe's task between checks; boxed, only checks
                // in flight hold one (a 1,000-probe fleet: docs/performance.md).
                let check = Box::pin(probe.check(limits.timeout, limits.max_latency));
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    result = check => result,
                }
            }
        };
        let transition = machine.observe(result.is_success());
        update_board(&board, &name, &machine, &result, transition.is_some());
        if let Some(transition) = transition {
            // One time for both: the healer's incident times match the journal's. The bus
            // first, so the record keeps the transition before the heal it causes.
            let at = Timestamp::now();
            announce(
                at,
                &name,
                &machine,
                &result,
                transition.from,
                transition.to,
                &bus,
            );
            let reason = result.failure.as_ref().map(|f| f.reason);
            let recoveries = machine.recoveries_total();
            status.send_modify(|status| status.apply(transition, at, reason, recoveries));
        } else if let (ProbeState::Down, Some(failure)) = (machine.state(), &result.failure) {
            // Still Down, for a new reason (a stuck server that has now died): followers see
            // it, since what a healer does depends on the reason (`crate::remedy::Condition`).
            status.send_if_modified(|status| {
                let changed = status.reason != Some(failure.reason);
                status.reason = Some(failure.reason);
                changed
            });
        }
    }
    board.remove(&name);
}

/// Longest delay before a probe's first check, so a fresh daemon still reports quickly.
const MAX_STAGGER: Duration = Duration::from_secs(5);

/// Offsets are whole tenths of the span. Fully spread offsets (one timer wake-up per probe)
/// measured 2.7x the CPU of lockstep on a 1,000-probe fleet; ten groups keep the in-flight
/// peak at a tenth while checks still share wake-ups (docs/performance.md).
const STAGGER_SLOTS: u64 = 10;

/// A probe's offset within its interval: derived from its name, so it is the same after every
/// restart (a reload does not bunch probes back together) and spread evenly across probes.
pub fn stagger(name: &str, interval: Duration) -> Duration {
    // FNV-1a: tiny, stable across releases and platforms (std's hasher is neither promised).
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let span = interval.min(MAX_STAGGER).as_millis() as u64;
    Duration::from_millis((hash % STAGGER_SLOTS) * span / STAGGER_SLOTS)
}

/// Wait for a bus event about this probe's container; never returns for other probes.
async fn next_container_event(probe: &AnyProbe, events: &mut Option<broadcast::Receiver<Event>>) {
    let (AnyProbe::Docker(docker), Some(events)) = (probe, events.as_mut()) else {
        return std::future::pending().await;
    };
    loop {
        match events.recv().await {
            Ok(Event {
                kind:
                    EventKind::ContainerEvent {
                        container,
                        container_id,
                        ..
                    },
                ..
            }) if docker.concerns(&container, &container_id) => return,
            Ok(_) => {}
            // Missed some: one of them may have been ours, so check now.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

fn update_board(
    board: &ProbeBoard,
    name: &str,
    machine: &ThresholdMachine,
    result: &CheckResult,
    changed: bool,
) {
    let now = Timestamp::now();
    board.update(name, |snapshot| {
        snapshot.state = machine.state();
        if changed {
            snapshot.since = now;
        }
        snapshot.last_check = Some(now);
        snapshot.last_latency_ms = Some(result.latency.as_secs_f64() * 1000.0);
        snapshot.last_status_code = result.status_code;
        snapshot.last_failure = result
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.reason.as_str(), f.detail));
        snapshot.recoveries_total = machine.recoveries_total();
        snapshot.checks_total += 1;
        snapshot.failures_total += u64::from(!result.is_success());
        snapshot.latency.observe(result.latency.as_secs_f64());
        snapshot
            .recent
            .push(result.latency.as_secs_f64() * 1000.0, result.is_success());
    });
}

fn announce(
    at: Timestamp,
    name: &str,
    machine: &ThresholdMachine,
    result: &CheckResult,
    from: ProbeState,
    to: ProbeState,
    bus: &Bus,
) {
    let status_code = result
        .status_code
        .map_or_else(|| "na".to_string(), |c| c.to_string());
    match (to, &result.failure) {
        // The shape the original Sentinel monitor printed, kept so existing greps still work.
        (ProbeState::Down, Some(failure)) => tracing::warn!(
            "service={name} status=down status_code={status_code} event={} reason={} detail=\"{}\"",
            failure.reason.down_event(),
            failure.reason.as_str(),
            failure.detail
        ),
        (ProbeState::Up, _) => tracing::info!(
            "service={name} status=up status_code={status_code} recoveries_total={} event=healthy",
            machine.recoveries_total()
        ),
        _ => tracing::info!(
            "service={name} status={} status_code={status_code} event=transition from={}",
            to.as_str(),
            from.as_str()
        ),
    }
    bus.publish_event(Event {
        at,
        kind: EventKind::ProbeTransition {
            probe: name.to_string(),
            from,
            to,
            reason: result.failure.as_ref().map(|f| f.reason),
            status_code: result.status_code,
            latency_ms: Some(result.latency.as_secs_f64() * 1000.0),
            recoveries_total: machine.recoveries_total(),
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stagger_is_stable_bounded_and_spread() {
        let second = Duration::from_secs(1);
        assert_eq!(stagger("api", second), stagger("api", second));
        assert!(stagger("api", Duration::from_secs(3600)) < MAX_STAGGER);
        assert_eq!(stagger("api", Duration::ZERO), Duration::ZERO);
        // 1,000 probes over a 1 s interval land in every tenth of the second, none empty
        let mut tenths = [0u32; 10];
        for i in 0..1000 {
            let offset = stagger(&format!("p{i:04}"), second);
            assert!(offset < second);
            tenths[(offset.as_millis() / 100) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|&n| (50..=150).contains(&n)),
            "{tenths:?}"
        );
    }
}
