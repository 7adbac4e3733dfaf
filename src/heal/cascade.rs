//! `depends_on`: when a probe recovers, restart the probes that depend on it (directly or
//! through others), one after another in dependency order.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Mailbox;
use crate::event::{Bus, EventKind};
use crate::probe::config::{dependency_order, ProbeConfig};
use crate::probe::{Followed, ProbeFeeds};

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

/// Follow the parents' status channels and restart their dependants through their healers
/// until `cancel`. A recovery is seen however busy the bus is: the channel counts recoveries.
pub async fn run(
    plan: BTreeMap<String, Vec<String>>,
    healers: BTreeMap<String, Mailbox>,
    feeds: ProbeFeeds,
    bus: Bus,
    cancel: CancellationToken,
) {
    let parents = plan
        .keys()
        .filter_map(|parent| Some((parent.clone(), feeds.follow(parent)?)));
    let mut parents = Followed::new(parents);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = parents.changed() => {}
        }
        let recovered: Vec<String> = parents
            .take_changes()
            .into_iter()
            .filter(|change| change.now.recovered_since(&change.before))
            .map(|change| change.probe)
            .collect();
        for parent in recovered {
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
                let Ok(done) = healer.restart_for_dependency().await else {
                    continue;
                };
                // One at a time: wait until this dependant's action finished (or was refused).
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    result = tokio::time::timeout(DEPENDANT_TIMEOUT, done) => if result.is_err() {
                        tracing::warn!(dependant, "no heal result within {DEPENDANT_TIMEOUT:?}; moving on");
                    },
                }
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
