//! The discovered probes' bookkeeping for the `Probes` component: what each sighted container
//! came to, which discovered probes should run (config probes win, `max_discovered` bounds
//! them), and the label problems already told, so a re-list does not repeat them.

use std::collections::{BTreeMap, BTreeSet};

use crate::docker::config::DiscoverMode;
use crate::docker::discovery::{self, Candidate, ContainerFacts, DiscoveryNote, Finding, Settings};
use crate::docker::sightings::Sighting;
use crate::event::{Bus, DiscoveryEnd, EventKind};
use crate::probe::{ProbeConfig, ProbeKind};

/// Discovery's state: the sighted containers and the discovered probes that run.
pub struct Discovered {
    settings: Settings,
    max: usize,
    /// Every sighted container that discovery takes or reports on, by full id.
    seen: BTreeMap<String, Finding>,
    /// Every container the engine has (by full id), taken or not: what tells a removed
    /// container from one the settings no longer take.
    present: BTreeSet<String>,
    /// The discovered probes that run, by probe name.
    pub running: BTreeMap<String, Candidate>,
}

/// What to change so the running discovered probes match the sighted containers.
#[derive(Debug, Default)]
pub struct Plan {
    pub stop: Vec<(String, Option<DiscoveryEnd>)>,
    pub start: Vec<Candidate>,
}

impl Discovered {
    pub fn new(settings: Settings, max: usize) -> Self {
        Self {
            settings,
            max,
            seen: BTreeMap::new(),
            present: BTreeSet::new(),
            running: BTreeMap::new(),
        }
    }

    /// Whether `[docker] discover` is on.
    pub fn is_on(&self) -> bool {
        self.settings.mode != DiscoverMode::Off
    }

    /// Take reloaded settings; true when they differ. The containers must then be listed
    /// again (each is judged when seen); turned off, nothing is taken from now on.
    pub fn reconfigure(&mut self, settings: Settings, max: usize) -> bool {
        if self.settings == settings && self.max == max {
            return false;
        }
        if settings.mode == DiscoverMode::Off {
            self.seen.clear();
        }
        self.settings = settings;
        self.max = max;
        true
    }

    /// Take what the engine said; label problems not told before go on the bus.
    pub fn absorb(&mut self, sighting: Sighting, bus: &Bus) {
        match sighting {
            Sighting::Seen(facts) => {
                self.present.insert(facts.id.clone());
                self.see(&facts, bus)
            }
            Sighting::Gone(id) => {
                self.seen.remove(&id);
                self.present.remove(&id);
            }
            Sighting::All(all) => {
                let ids: BTreeSet<&str> = all.iter().map(|f| f.id.as_str()).collect();
                self.seen.retain(|id, _| ids.contains(id.as_str()));
                self.present = all.iter().map(|f| f.id.clone()).collect();
                for facts in &all {
                    self.see(facts, bus);
                }
            }
        }
    }

    fn see(&mut self, facts: &ContainerFacts, bus: &Bus) {
        let finding = discovery::discover(facts, &self.settings);
        if finding.candidate.is_none() && finding.issues.is_empty() {
            self.seen.remove(&facts.id);
            return;
        }
        let told = self.seen.get(&facts.id).map(|f| &f.issues);
        if told != Some(&finding.issues) {
            for issue in &finding.issues {
                tracing::warn!(
                    container = facts.name(),
                    "discovery: label {} ignored; using the default",
                    issue.line()
                );
                bus.publish(EventKind::DiscoveryLabelInvalid {
                    container: facts.name().to_string(),
                    container_id: facts.short_id(),
                    label: issue.label.clone(),
                    value: issue.value.clone(),
                    expected: issue.expected.clone(),
                });
            }
        }
        self.seen.insert(facts.id.clone(), finding);
    }

    /// The discovered probes that should run beside `config`, by name.
    fn desired(&self, config: &[ProbeConfig]) -> (BTreeMap<String, Candidate>, BTreeSet<String>) {
        let mut wanted = BTreeMap::new();
        let mut over_limit = BTreeSet::new();
        // In container-name order, so the same containers win a name or the limit every time.
        let mut candidates: Vec<&Candidate> = self
            .seen
            .values()
            .filter_map(|f| f.candidate.as_ref())
            .collect();
        candidates
            .sort_by(|a, b| (&a.container, &a.container_id).cmp(&(&b.container, &b.container_id)));
        for candidate in candidates {
            if claimed(config, candidate) {
                continue;
            }
            let mut candidate = candidate.clone();
            if wanted.contains_key(&candidate.name) {
                // Two compose containers claim one name (hand-set labels): the later one goes
                // by its container name, which the engine keeps unique.
                candidate.name = candidate.container.clone();
                candidate.probe.name = toml::Spanned::new(0..0, candidate.name.clone());
                if wanted.contains_key(&candidate.name) || claimed(config, &candidate) {
                    continue;
                }
            }
            if wanted.len() >= self.max {
                over_limit.insert(candidate.container_id.clone());
                continue;
            }
            wanted.insert(candidate.name.clone(), candidate);
        }
        (wanted, over_limit)
    }

    /// What to stop and start; `running` is updated as if it was done.
    pub fn plan(&mut self, config: &[ProbeConfig]) -> Plan {
        let (wanted, over_limit) = self.desired(config);
        let mut plan = Plan::default();
        for (name, running) in &self.running {
            match wanted.get(name) {
                Some(now) if now == running => {}
                Some(_) => plan.stop.push((name.clone(), None)),
                None => {
                    let id = &running.container_id;
                    let reason = if !self.present.contains(id) {
                        DiscoveryEnd::ContainerRemoved
                    } else if over_limit.contains(id) {
                        DiscoveryEnd::OverLimit
                    } else if self.seen.get(id).is_none_or(|f| f.candidate.is_none()) {
                        DiscoveryEnd::NotEligible
                    } else {
                        DiscoveryEnd::ConfigProbe
                    };
                    plan.stop.push((name.clone(), Some(reason)));
                }
            }
        }
        for (name, candidate) in &wanted {
            if self.running.get(name) != Some(candidate) {
                plan.start.push(candidate.clone());
            }
        }
        if !over_limit.is_empty() {
            tracing::warn!(
                max = self.max,
                skipped = over_limit.len(),
                "discovery: more containers qualify than docker.max_discovered allows"
            );
        }
        self.running = wanted;
        plan
    }

    /// `config` and the discovered probes, as the cascade and the notifier see them. A
    /// `depends_on` of a discovered probe that would close a cycle is left out.
    pub fn with(&self, config: &[ProbeConfig]) -> Vec<ProbeConfig> {
        let mut all: Vec<ProbeConfig> = config.to_vec();
        all.extend(self.running.values().map(|c| c.probe.clone()));
        if crate::probe::config::dependency_order(&all).is_err() {
            let configured = config.len();
            for probe in &mut all[configured..] {
                probe.depends_on = None;
            }
        }
        all
    }

    /// What status shows of the discovered probe `candidate`.
    pub fn note(&self, candidate: &Candidate) -> DiscoveryNote {
        DiscoveryNote {
            from: candidate.from,
            container: candidate.container.clone(),
            container_id: discovery::short_id(&candidate.container_id),
            label_issues: self
                .seen
                .get(&candidate.container_id)
                .map(|f| f.issues.iter().map(|i| i.line()).collect())
                .unwrap_or_default(),
        }
    }
}

/// A `[[probe]]` takes the container (a docker probe of it, a heal that restarts it) or the
/// probe's name: the config wins over labels.
fn claimed(config: &[ProbeConfig], candidate: &Candidate) -> bool {
    let names = |wanted: &str| {
        let wanted = wanted.trim_start_matches('/');
        wanted == candidate.container
            || (wanted.len() >= 12 && candidate.container_id.starts_with(wanted))
    };
    config.iter().any(|p| {
        p.name() == candidate.name
            || (p.kind() == ProbeKind::Docker
                && p.container.as_ref().is_some_and(|c| names(c.get_ref())))
            || p.heal
                .as_ref()
                .and_then(|h| h.get_ref().container.as_deref())
                .is_some_and(names)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::config::{DiscoverMode, DiscoveryDefaults};

    fn facts(id: &str, name: &str) -> ContainerFacts {
        ContainerFacts {
            id: format!("{id:0<64}"),
            name: format!("/{name}"),
            labels: [("sentinel.enable".to_string(), "true".to_string())].into(),
            healthcheck: false,
        }
    }

    fn discovered(max: usize) -> Discovered {
        Discovered::new(
            Settings {
                mode: DiscoverMode::Labeled,
                defaults: DiscoveryDefaults::default(),
                archive_sources: vec![],
                only: None,
            },
            max,
        )
    }

    fn config(toml: &str) -> Vec<ProbeConfig> {
        crate::config::parse(toml, std::path::Path::new("t.toml"))
            .unwrap()
            .probes
    }

    #[test]
    fn config_probes_win_and_the_limit_holds() {
        let bus = Bus::new();
        let mut d = discovered(2);
        d.absorb(
            Sighting::All(vec![
                facts("a1", "web"),
                facts("b2", "db"),
                facts("c3", "cache"),
            ]),
            &bus,
        );
        let plan = d.plan(&[]);
        let started: Vec<&str> = plan.start.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            started,
            ["cache", "db"],
            "the limit keeps the first two by name"
        );
        // A [[probe]] of the container `db` takes it; `web` fits under the limit now.
        let config =
            config("[[probe]]\nname = \"database\"\nkind = \"docker\"\ncontainer = \"db\"\n");
        let plan = d.plan(&config);
        assert_eq!(
            plan.stop,
            vec![("db".to_string(), Some(DiscoveryEnd::ConfigProbe))]
        );
        assert_eq!(
            plan.start
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["web"]
        );
        // The container goes away.
        d.absorb(Sighting::Gone(format!("{:0<64}", "a1")), &bus);
        let plan = d.plan(&config);
        assert_eq!(
            plan.stop,
            vec![("web".to_string(), Some(DiscoveryEnd::ContainerRemoved))]
        );
        assert!(plan.start.is_empty());
        // Nothing new: nothing to do.
        let plan = d.plan(&config);
        assert!(plan.stop.is_empty() && plan.start.is_empty());
    }

    #[test]
    fn a_config_probe_name_wins_over_a_discovered_one() {
        let bus = Bus::new();
        let mut d = discovered(10);
        d.absorb(Sighting::Seen(facts("a1", "web")), &bus);
        let config =
            config("[[probe]]\nname = \"web\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n");
        assert!(d.plan(&config).start.is_empty());
    }

    #[test]
    fn reloaded_settings_take_and_drop_containers_that_are_still_there() {
        let bus = Bus::new();
        let mut d = discovered(10);
        let mut unlabelled = facts("b2", "batch");
        unlabelled.labels.clear();
        unlabelled.healthcheck = true;
        let listing = || Sighting::All(vec![facts("a1", "web"), unlabelled.clone()]);
        d.absorb(listing(), &bus);
        assert_eq!(d.plan(&[]).start.len(), 1, "labeled: web only");

        let mut all = d.settings.clone();
        all.mode = DiscoverMode::All;
        assert!(d.reconfigure(all.clone(), 10));
        assert!(
            !d.reconfigure(all.clone(), 10),
            "the same settings change nothing"
        );
        d.absorb(listing(), &bus);
        let started: Vec<String> = d.plan(&[]).start.into_iter().map(|c| c.name).collect();
        assert_eq!(started, ["batch"], "all: the HEALTHCHECK one too");

        let mut off = all;
        off.mode = DiscoverMode::Off;
        assert!(d.reconfigure(off, 10));
        assert!(!d.is_on());
        let plan = d.plan(&[]);
        assert_eq!(
            plan.stop,
            vec![
                ("batch".to_string(), Some(DiscoveryEnd::NotEligible)),
                ("web".to_string(), Some(DiscoveryEnd::NotEligible)),
            ],
            "still there, no longer taken"
        );
    }
}
