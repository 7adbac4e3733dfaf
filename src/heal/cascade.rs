//! `depends_on`: when a probe recovers, restart the probes that depend on it (directly or
//! through others), one after another in dependency order.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::HealCommand;
use crate::event::{Bus, Event, EventKind, ProbeState};
use crate::probe::config::{dependency_order, ProbeConfig};

/// How long one dependant's restart may take before the cascade moves on to the next.
const DEPENDANT_TIMEOUT: Duration = Duration::from_secs(120);

/// For each probe, the probes that depend on it directly or transitively, parents first.
pub fn dependants_by_parent(probes: &[ProbeConfig]) -> BTreeMap<String, Vec<String>> {
    let order = dependency_order(probes).unwrap_or_default();
    let direct = |name: &str| -> Vec<&str> {
        probes
            .iter()
            .filter(|p| {
                p.depends_on
                    .as_ref()
                    .is_some_and(|d| d.get_ref().iter().any(|x| x == name))
            })
            .map(|p| p.name())
            .collect()
    };
    let mut plan = BTreeMap::new();
    for probe in probes {
        let mut reached: Vec<&str> = Vec::new();
        let mut frontier = direct(probe.name());
        while let Some(next) = frontier.pop() {
            if !reached.contains(&next) {
                reached.push(next);
                frontier.extend(direct(next));
            }
        }
        if reached.is_empty() {
            continue;
        }
        let ordered: Vec<String> = order
            .iter()
            .filter(|name| reached.contains(&name.as_str()))
            .cloned()
            .collect();
        plan.insert(probe.name().to_string(), ordered);
    }
    plan
}

/// Follow recoveries on the bus and restart dependants through their healers until `cancel`.
pub async fn run(
    plan: BTreeMap<String, Vec<String>>,
    healers: BTreeMap<String, mpsc::Sender<HealCommand>>,
    bus: Bus,
    cancel: CancellationToken,
) {
    let mut events = bus.subscribe();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => event,
        };
        let parent = match event {
            Ok(Event {
                kind:
                    EventKind::ProbeTransition {
                        probe, from, to, ..
                    },
                ..
            }) if to == ProbeState::Up
                && matches!(from, ProbeState::Down | ProbeState::Recovering) =>
            {
                probe
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(dependants) = plan.get(&parent) else {
            continue;
        };
        tracing::info!(
            parent,
            ?dependants,
            "dependency recovered; restarting its dependants in order"
        );
        bus.publish(EventKind::DependencyRecovered {
            parent: parent.clone(),
            dependants: dependants.clone(),
        });
        for dependant in dependants {
            let Some(healer) = healers.get(dependant) else {
                continue;
            };
            if healer.send(HealCommand::Dependency).await.is_err() {
                continue;
            }
            // One at a time: wait until this dependant's action finished (or was refused).
            let waited = tokio::time::timeout(DEPENDANT_TIMEOUT, async {
                loop {
                    match events.recv().await {
                        Ok(Event {
                            kind:
                                EventKind::HealFinished { probe, .. }
                                | EventKind::HealGaveUp { probe, .. },
                            ..
                        }) if probe == *dependant => return,
                        Err(broadcast::error::RecvError::Closed) => return,
                        _ => {}
                    }
                }
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                result = waited => if result.is_err() {
                    tracing::warn!(dependant, "no heal result within {DEPENDANT_TIMEOUT:?}; moving on");
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitive_dependants_in_order() {
        let probe = |name: &str, parents: &str| {
            let depends = if parents.is_empty() {
                String::new()
            } else {
                format!("depends_on = [{parents}]\n")
            };
            format!(
                "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"true\"]\nheal = {{ action = \"exec\", command = [\"true\"] }}\n{depends}"
            )
        };
        let source = [
            probe("web", "\"api\""),
            probe("api", "\"db\""),
            probe("db", ""),
            probe("worker", "\"db\""),
            probe("lonely", ""),
        ]
        .concat();
        #[derive(serde::Deserialize)]
        struct Probes {
            probe: Vec<ProbeConfig>,
        }
        let probes: Probes = toml::from_str(&source).unwrap();
        crate::probe::config::validate_probes(&probes.probe).unwrap();
        let plan = dependants_by_parent(&probes.probe);
        assert_eq!(plan["db"], ["api", "web", "worker"]);
        assert_eq!(plan["api"], ["web"]);
        assert!(!plan.contains_key("web"));
        assert!(!plan.contains_key("lonely"));
    }
}
