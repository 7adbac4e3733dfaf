//! `ChaosHost`: every side effect of the chaos engine behind one narrow, synchronous trait
//! (called on blocking threads), and `LinuxHost`, its implementation on netlink, cgroupfs, signals and Docker.

use std::path::PathBuf;

use bollard::query_parameters::{
    KillContainerOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use nix::sys::signal::Signal;

use super::action::Action;
use super::cgroup::{self, Cgroupfs, Controller};
use super::netlink::RouteSocket;
use super::netns::{self, NetnsPin};
use super::spec::{ContainerAction, ExperimentSpec, Fault};
use super::{process, qdisc, route, tc, unit, Capability, ChaosError};
use crate::docker::DockerEngine;
use crate::systemd::Systemd;

/// A container the engine looked up before planning (Docker is asked once, asynchronously).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedContainer {
    pub id: String,
    pub name: String,
    pub pid: i32,
}

pub trait ChaosHost: Send + Sync + 'static {
    /// Resolve the target, check guardrails and record the pre-image: nothing is changed yet.
    fn plan(
        &self,
        spec: &ExperimentSpec,
        container: Option<&ResolvedContainer>,
    ) -> Result<Vec<Action>, ChaosError>;
    /// Make the change and read it back; the answer says what the kernel now reports.
    fn apply(&self, action: &Action) -> Result<String, ChaosError>;
    /// Undo the change if it is still ours; idempotent.
    fn revert(&self, action: &Action) -> Result<String, ChaosError>;
    /// Qdiscs with our handle in reachable namespaces that `known` does not cover.
    fn orphans(&self, known: &[Action]) -> Vec<Action>;
    fn capabilities(&self) -> Vec<Capability>;
    /// What the kernel holds now of the action's change, for the drift check; `TargetGone`
    /// when its target is not there. The default watches nothing.
    fn observe(&self, _action: &Action) -> Result<super::drift::Observed, ChaosError> {
        Ok(super::drift::Observed::Unwatched)
    }

    /// `plan`, knowing when the experiment ends (burners stop by themselves then).
    fn plan_until(
        &self,
        spec: &ExperimentSpec,
        container: Option<&ResolvedContainer>,
        deadline: crate::event::Timestamp,
    ) -> Result<Vec<Action>, ChaosError> {
        let _ = deadline;
        self.plan(spec, container)
    }
}

pub struct LinuxHost {
    cgroup_root: PathBuf,
    handle_major: u16,
    docker: DockerEngine,
    /// Unit limits go through systemd (opened on first use: hosts without systemd never connect).
    systemd: Systemd,
    runtime: tokio::runtime::Handle,
    capabilities: Vec<Capability>,
    /// Where burner and fill records go (`chaos-stress/`, `chaos-fill/`); stress faults need it.
    state_dir: Option<PathBuf>,
    burners: super::stress::Burners,
}

impl LinuxHost {
    /// Probe the kernel once, now; call from within the runtime.
    pub fn new(cgroup_root: PathBuf, handle_major: u16, docker: DockerEngine) -> Self {
        let mut host = Self::unprobed(cgroup_root, handle_major, docker);
        host.capabilities = host.probe_capabilities();
        host
    }

    /// Without the capability probe (which creates a scratch namespace): enough to roll back
    /// and sweep, which is all `sentineld rollback` does. Call from within the runtime.
    pub fn unprobed(cgroup_root: PathBuf, handle_major: u16, docker: DockerEngine) -> Self {
        Self {
            cgroup_root,
            handle_major,
            docker,
            systemd: Systemd::new(),
            runtime: tokio::runtime::Handle::current(),
            capabilities: Vec::new(),
            state_dir: None,
            burners: super::stress::Burners::default(),
        }
    }

    /// The daemon's state directory: burner pids and fill files are recorded beneath it.
    pub fn with_state_dir(mut self, state_dir: PathBuf) -> Self {
        self.state_dir = Some(state_dir);
        self
    }

    fn cgroups(&self) -> Result<Cgroupfs, ChaosError> {
        Cgroupfs::detect(&self.cgroup_root)
    }

    /// netem and tbf on `lo` of a throwaway namespace: the kernel says whether it has them.
    fn probe_capabilities(&self) -> Vec<Capability> {
        let mut found = Vec::new();
        for (kind, options) in [
            ("netem", tc::netem_options(&probe_netem())),
            ("tbf", tc::tbf_options(&probe_tbf())),
        ] {
            let result = netns::run_in_scratch(|| {
                let mut socket = RouteSocket::open().map_err(|e| ChaosError::Kernel {
                    what: "rtnetlink".into(),
                    detail: e.to_string(),
                })?;
                let outcome = socket.add_root(1, 0x0001_0000, kind, &options, false);
                let _ = socket.delete_root(1, 0x0001_0000, kind);
                Ok(outcome)
            });
            let (available, detail) = match result {
                Ok(Ok(())) => (true, "qdisc created in a scratch netns".to_string()),
                Ok(Err(err))
                    if err.message.as_deref() == Some("Specified qdisc kind is unknown") =>
                {
                    (false, format!("kernel lacks sch_{kind}"))
                }
                Ok(Err(err)) => (false, err.to_string()),
                Err(err) => (false, err.to_string()),
            };
            found.push(Capability {
                name: kind.into(),
                available,
                detail,
            });
        }
        let cgroup = match self.cgroups() {
            Ok(fs) => Capability {
                name: "cgroup".into(),
                available: true,
                detail: format!("{:?} at {}", fs.layout(), self.cgroup_root.display())
                    .to_lowercase(),
            },
            Err(err) => Capability {
                name: "cgroup".into(),
                available: false,
                detail: err.to_string(),
            },
        };
        found.push(cgroup);
        found
    }

    fn netns_pin(
        &self,
        spec: &ExperimentSpec,
        container: Option<&ResolvedContainer>,
    ) -> Result<NetnsPin, ChaosError> {
        let pin = match (&spec.target.netns, container) {
            (Some(name), _) => NetnsPin::named(name)?,
            (None, Some(container)) => NetnsPin::of_pid(container.pid)?,
            (None, None) => NetnsPin::own()?,
        };
        let own = NetnsPin::own()?;
        if pin.path.is_some() && pin.inode == own.inode && pin.device == own.device {
            return Err(ChaosError::Refused(format!(
                "{} is the host's own network namespace (--network host?): the experiment would hit the whole host; target the interface without netns/container if that is meant",
                pin.describe()
            )));
        }
        Ok(pin)
    }

    fn cgroup_dir(
        &self,
        fs: &Cgroupfs,
        controller: Controller,
        spec: &ExperimentSpec,
        container: Option<&ResolvedContainer>,
    ) -> Result<PathBuf, ChaosError> {
        let target = &spec.target;
        let path = if let Some(path) = &target.cgroup {
            path.clone()
        } else if let Some(unit) = &target.unit {
            format!("/system.slice/{unit}")
        } else {
            let pid = match (target.pid, container) {
                (Some(pid), _) => pid,
                (None, Some(container)) => container.pid,
                (None, None) => return Err(ChaosError::Target("no cgroup target".into())),
            };
            fs.path_in(controller, &process::cgroups(pid)?)
                .ok_or_else(|| {
                    ChaosError::Cgroup(format!("pid {pid} has no {controller:?} cgroup"))
                })?
        };
        let dir = fs.dir(controller, &path)?;
        if !dir.is_dir() {
            return Err(ChaosError::Target(format!("no cgroup {}", dir.display())));
        }
        Ok(dir)
    }

    fn docker_call(
        &self,
        id: &str,
        action: ContainerAction,
        undo: bool,
    ) -> Result<String, ChaosError> {
        let engine = self.docker.clone();
        let id = id.to_string();
        self.runtime.block_on(async move {
            let client = engine
                .client()
                .await
                .map_err(|e| ChaosError::Docker(e.to_string()))?;
            let result = match (action, undo) {
                (ContainerAction::Pause, false) => client.pause_container(&id).await,
                (ContainerAction::Pause, true) => client.unpause_container(&id).await,
                (ContainerAction::Kill, _) => {
                    let options = KillContainerOptionsBuilder::default()
                        .signal("SIGKILL")
                        .build();
                    client.kill_container(&id, Some(options)).await
                }
                (ContainerAction::Stop, _) => {
                    let options = StopContainerOptionsBuilder::default().t(10).build();
                    client.stop_container(&id, Some(options)).await
                }
                (ContainerAction::Restart, _) => {
                    let options = RestartContainerOptionsBuilder::default().t(10).build();
                    client.restart_container(&id, Some(options)).await
                }
            };
            result.map_err(|e| ChaosError::Docker(e.to_string()))?;
            let verb = if undo { "unpaused" } else { "done" };
            Ok(format!("docker {action:?} {verb}").to_lowercase())
        })
    }
}

impl LinuxHost {
    /// The main pid of each running container, through the Docker edge; none when Docker is
    /// not there or does not answer within 10 s (the sweep then covers the other namespaces).
    fn container_pids(&self) -> Vec<i32> {
        let engine = self.docker.clone();
        let listed = self.runtime.block_on(async move {
            let work = async {
                let client = engine.client().await.ok()?;
                let running = client
                    .list_containers(Some(
                        bollard::query_parameters::ListContainersOptions::default(),
                    ))
                    .await
                    .ok()?;
                let mut pids = Vec::new();
                for id in running.into_iter().filter_map(|c| c.id) {
                    let pid = client
                        .inspect_container(&id, None)
                        .await
                        .ok()
                        .and_then(|i| i.state)
                        .and_then(|s| s.pid)
                        .unwrap_or(0);
                    if pid > 0 {
                        pids.push(pid as i32);
                    }
                }
                Some(pids)
            };
            tokio::time::timeout(std::time::Duration::from_secs(10), work).await
        });
        match listed {
            Ok(Some(pids)) => pids,
            Ok(None) => {
                tracing::debug!("orphan sweep: no container namespaces (Docker not reachable)");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("orphan sweep: Docker did not list its containers within 10 s; their namespaces are not swept");
                Vec::new()
            }
        }
    }
}

fn probe_netem() -> super::spec::NetemSpec {
    super::spec::NetemSpec {
        delay: Some("1ms".parse().expect("valid")),
        ..Default::default()
    }
}

fn probe_tbf() -> super::spec::TbfSpec {
    super::spec::TbfSpec {
        rate: "1mbit/s".parse().expect("valid"),
        burst: crate::units::ByteSize(16384),
        limit: crate::units::ByteSize(32768),
        destinations: Vec::new(),
        protocol: None,
        direction: Default::default(),
    }
}

impl ChaosHost for LinuxHost {
    fn plan(
        &self,
        spec: &ExperimentSpec,
        container: Option<&ResolvedContainer>,
    ) -> Result<Vec<Action>, ChaosError> {
        self.plan_at(spec, container, None)
    }

    fn plan_until(
        &self,
        spec: &ExperimentSpec,
        container: Option<&ResolvedContainer>,
        deadline: crate::event::Timestamp,
    ) -> Result<Vec<Action>, ChaosError> {
        self.plan_at(spec, container, Some(deadline))
    }

    fn apply(&self, action: &Action) -> Result<String, ChaosError> {
        match action {
            Action::Qdisc {
                netns,
                ifindex,
                handle,
                qdisc,
                options,
                replaced,
                tree,
                ingress,
                ..
            } => qdisc::apply(
                netns,
                *ifindex,
                *handle,
                qdisc,
                options,
                replaced.as_ref(),
                tree.as_ref(),
                ingress.as_deref(),
            ),
            Action::Route {
                netns,
                destination,
                metric,
            } => route::apply(netns, destination, *metric),
            Action::Cgroup(change) => cgroup::apply(change),
            Action::Unit(change) => self.runtime.block_on(unit::apply(&self.systemd, change)),
            Action::Signal { pid, start, signal } => {
                let parsed = super::spec::parse_signal(signal).map_err(ChaosError::Invalid)?;
                process::signal_pinned(*pid, *start, parsed)?;
                Ok(format!("{parsed} sent to pid {pid}"))
            }
            Action::Pause { pid, start } => {
                process::signal_pinned(*pid, *start, Signal::SIGSTOP)?;
                Ok(format!("pid {pid} stopped"))
            }
            Action::Container { id, action, .. } => self.docker_call(id, *action, false),
            Action::Stress(stress) => Ok(self.burners.start(stress)?),
            Action::DiskFill(fill) => Ok(super::diskfill::apply(fill)?),
        }
    }

    fn revert(&self, action: &Action) -> Result<String, ChaosError> {
        match action {
            Action::Qdisc {
                netns,
                ifindex,
                handle,
                qdisc,
                replaced,
                tree,
                ingress,
                ..
            } => qdisc::revert(
                netns,
                *ifindex,
                *handle,
                qdisc,
                replaced.as_ref(),
                tree.as_ref(),
                ingress.as_deref(),
            ),
            Action::Route {
                netns,
                destination,
                metric,
            } => route::revert(netns, destination, *metric),
            Action::Cgroup(change) => cgroup::restore(change),
            Action::Unit(change) => self.runtime.block_on(unit::revert(&self.systemd, change)),
            Action::Pause { pid, start } => {
                process::signal_pinned(*pid, *start, Signal::SIGCONT)?;
                Ok(format!("pid {pid} continued"))
            }
            Action::Container {
                id,
                action: ContainerAction::Pause,
                ..
            } => self.docker_call(id, ContainerAction::Pause, true),
            Action::Signal { .. } | Action::Container { .. } => Ok("nothing to undo".into()),
            Action::Stress(stress) => {
                Ok(self
                    .burners
                    .stop(&stress.token, &stress.record, stress.owner)?)
            }
            Action::DiskFill(fill) => Ok(super::diskfill::revert(fill)?),
        }
    }

    fn orphans(&self, known: &[Action]) -> Vec<Action> {
        let mut pins: Vec<NetnsPin> = NetnsPin::own().into_iter().collect();
        pins.extend(
            netns::named()
                .iter()
                .filter_map(|n| NetnsPin::named(n).ok()),
        );
        // Containers' namespaces, each once (`--network host` ones are the host's own, and
        // containers sharing one with `--network container:` are one namespace).
        for pid in self.container_pids() {
            let Ok(pin) = NetnsPin::of_pid(pid) else {
                continue;
            };
            if !pins
                .iter()
                .any(|p| (p.inode, p.device) == (pin.inode, pin.device))
            {
                pins.push(pin);
            }
        }
        let mut found: Vec<Action> = pins
            .into_iter()
            .flat_map(|pin| {
                let mut found = qdisc::orphans(pin.clone(), self.handle_major, known);
                found.extend(route::orphans(pin, self.handle_major, known));
                found
            })
            .collect();
        let tokens: Vec<String> = known
            .iter()
            .filter_map(|a| match a {
                Action::Stress(s) => Some(s.token.clone()),
                _ => None,
            })
            .collect();
        let files: Vec<PathBuf> = known
            .iter()
            .filter_map(|a| match a {
                Action::DiskFill(f) => Some(f.file.clone()),
                _ => None,
            })
            .collect();
        let state_dir = self.state_dir.as_deref();
        found.extend(
            super::stress::orphans(state_dir, self.handle_major, &tokens)
                .into_iter()
                .map(Action::Stress),
        );
        found.extend(
            super::diskfill::orphans(state_dir, &files)
                .into_iter()
                .map(Action::DiskFill),
        );
        found
    }

    fn capabilities(&self) -> Vec<Capability> {
        self.capabilities.clone()
    }

    fn observe(&self, action: &Action) -> Result<super::drift::Observed, ChaosError> {
        super::observe::observe(action)
    }
}

impl LinuxHost {
    fn plan_at(
        &self,
        spec: &ExperimentSpec,
        container: Option<&ResolvedContainer>,
        deadline: Option<crate::event::Timestamp>,
    ) -> Result<Vec<Action>, ChaosError> {
        let mut actions = Vec::new();

        for fault in &spec.faults {
            let action = match fault {
                Fault::Partition(partition) => {
                    let pin = self.netns_pin(spec, container)?;
                    actions.extend(route::plan(pin, partition, self.handle_major)?);
                    continue;
                }
                Fault::Netem(_) | Fault::Tbf(_) => {
                    let pin = self.netns_pin(spec, container)?;
                    qdisc::plan(pin, spec, fault, self.handle_major)?
                }
                Fault::CpuQuota(_) | Fault::MemoryLimit(_) if spec.target.unit.is_some() => {
                    let name = spec.target.unit.as_deref().unwrap_or_default();
                    let systemd = self.systemd.clone();
                    let fault = fault.clone();
                    let change = self
                        .runtime
                        .block_on(async move { unit::plan(&systemd, name, &fault).await })?;
                    Action::Unit(change)
                }
                Fault::CpuQuota(cpu) => {
                    let fs = self.cgroups()?;
                    let dir = self.cgroup_dir(&fs, Controller::Cpu, spec, container)?;
                    Action::Cgroup(fs.plan_cpu(&dir, cpu)?)
                }
                Fault::MemoryLimit(memory) => {
                    let fs = self.cgroups()?;
                    let dir = self.cgroup_dir(&fs, Controller::Memory, spec, container)?;
                    Action::Cgroup(fs.plan_memory(&dir, memory)?)
                }
                Fault::Signal { signal } => {
                    let pid = spec.target.pid.unwrap_or_default();
                    super::spec::parse_signal(signal).map_err(ChaosError::Invalid)?;
                    Action::Signal {
                        pid,
                        start: process::start_time(pid)?,
                        signal: signal.clone(),
                    }
                }
                Fault::Pause {} => {
                    let pid = spec.target.pid.unwrap_or_default();
                    Action::Pause {
                        pid,
                        start: process::start_time(pid)?,
                    }
                }
                Fault::CpuStress(_) | Fault::MemoryStress(_) => {
                    Action::Stress(self.plan_stress(spec, fault, container, deadline)?)
                }
                Fault::DiskFill(fill) => Action::DiskFill(super::diskfill::plan(
                    fill,
                    self.handle_major,
                    self.state_dir.as_deref(),
                )?),
                Fault::Container { action } => {
                    let container = container.ok_or_else(|| {
                        ChaosError::Target("container fault without a container".into())
                    })?;
                    Action::Container {
                        id: container.id.clone(),
                        name: container.name.clone(),
                        action: *action,
                    }
                }
            };
            actions.push(action);
        }
        Ok(actions)
    }

    /// A burner's journaled plan: the target's cgroups (the fault's own controller first, which
    /// must exist), its load, its end (the experiment's, or earlier), and its record file.
    fn plan_stress(
        &self,
        spec: &ExperimentSpec,
        fault: &Fault,
        container: Option<&ResolvedContainer>,
        deadline: Option<crate::event::Timestamp>,
    ) -> Result<super::stress::StressAction, ChaosError> {
        use super::stress::{Burn, PinnedCgroup, StressAction, StressError};
        use std::os::unix::fs::MetadataExt;
        let state_dir = self.state_dir.as_ref().ok_or(StressError::NoStateDir)?;
        let fs = self.cgroups()?;
        let (first, second, own) = match fault {
            Fault::CpuStress(c) => (Controller::Cpu, Controller::Memory, c.duration),
            Fault::MemoryStress(m) => (Controller::Memory, Controller::Cpu, m.duration),
            _ => unreachable!("only stress faults"),
        };
        let mut cgroups: Vec<PinnedCgroup> = Vec::new();
        for (index, controller) in [first, second].into_iter().enumerate() {
            let dir = match self.cgroup_dir(&fs, controller, spec, container) {
                Ok(dir) => dir,
                Err(err) if index == 0 => return Err(err),
                Err(_) => continue,
            };
            if cgroups.iter().any(|c| c.dir == dir) {
                continue;
            }
            let root = fs.dir(controller, "")?;
            let relative = dir.strip_prefix(&root).unwrap_or(&dir);
            let inode = std::fs::metadata(&dir)
                .map_err(|err| ChaosError::Cgroup(format!("{}: {err}", dir.display())))?
                .ino();
            cgroups.push(PinnedCgroup {
                path: format!("/{}", relative.display()),
                dir,
                inode,
            });
        }
        let burn = match fault {
            Fault::CpuStress(c) => Burn::Cpu {
                workers: c.workers,
                percent: c.load,
            },
            Fault::MemoryStress(m) => {
                let bytes = match (m.bytes, m.percent) {
                    (Some(bytes), _) => bytes.0,
                    (_, percent) => {
                        let own_limit = spec.faults.iter().find_map(|f| match f {
                            Fault::MemoryLimit(limit) => limit.max.map(|b| b.0),
                            _ => None,
                        });
                        let limit = match own_limit {
                            Some(limit) => limit,
                            None => fs.memory_limit(&cgroups[0].dir)?.ok_or_else(|| {
                                StressError::NoLimit {
                                    dir: cgroups[0].dir.clone(),
                                }
                            })?,
                        };
                        (limit as f64 * percent.unwrap_or(100.0) / 100.0) as u64
                    }
                };
                Burn::Memory {
                    bytes,
                    avoid_oom_kill: m.avoid_oom_kill,
                }
            }
            _ => unreachable!("only stress faults"),
        };
        let now = crate::event::Timestamp::now().as_millis();
        let hour = 3_600_000;
        let mut until = deadline.map_or(now + hour, |d| d.as_millis());
        if let Some(own) = own {
            until = until.min(now + own.get().as_millis() as i64);
        }
        let token = super::stress::token();
        Ok(StressAction {
            record: super::stress::record_dir(state_dir).join(format!("{token}.json")),
            token,
            owner: self.handle_major,
            burn,
            cgroups,
            until: crate::event::Timestamp(until),
        })
    }
}
