//! CPU quota and memory limits through cgroupfs, v2 and v1 (hybrid hosts use v1), under a
//! root path tests can point at a tempdir. Every change records the values it replaces, to restore them exactly.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spec::{CpuQuota, MemoryLimit};
use super::ChaosError;

pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// v1 reads this (page-rounded i64::MAX) when a memory limit is unset; restore writes -1 instead.
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Unified hierarchy only.
    V2,
    /// Legacy hierarchies per controller.
    V1,
    /// v1 controllers plus a v2 mount at `unified` (handled as v1, where the controllers are).
    Hybrid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Cpu,
    Memory,
}

impl Controller {
    fn v1_dir(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
        }
    }
}

/// Files to write in order, and the previous values to write back in order on rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupChange {
    pub dir: PathBuf,
    /// The directory's inode when planned: a cgroup removed and re-created is not ours to touch.
    pub inode: u64,
    pub apply: Vec<(String, String)>,
    pub restore: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Cgroupfs {
    root: PathBuf,
    layout: Layout,
}

impl Cgroupfs {
    pub fn detect(root: &Path) -> Result<Self, ChaosError> {
        let layout = if root.join("cgroup.controllers").exists() {
            Layout::V2
        } else if root.join("cpu").exists() || root.join("memory").exists() {
            match root.join("unified/cgroup.controllers").exists() {
                true => Layout::Hybrid,
                false => Layout::V1,
            }
        } else {
            return Err(ChaosError::Cgroup(format!(
                "no cgroup hierarchy under {}",
                root.display()
            )));
        };
        Ok(Self {
            root: root.to_path_buf(),
            layout,
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The directory of cgroup `path` (relative to the hierarchy root) for `controller`.
    pub fn dir(&self, controller: Controller, path: &str) -> Result<PathBuf, ChaosError> {
        let relative = Path::new(path.trim_start_matches('/'));
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(ChaosError::Target(format!(
                "invalid cgroup path \"{path}\""
            )));
        }
        Ok(match self.layout {
            Layout::V2 => self.root.join(relative),
            Layout::V1 | Layout::Hybrid => self.root.join(controller.v1_dir()).join(relative),
        })
    }

    /// The cgroup path of `controller` in /proc/PID/cgroup lines (see `process::cgroups`).
    pub fn path_in(&self, controller: Controller, lines: &[(String, String)]) -> Option<String> {
        lines
            .iter()
            .find(|(controllers, _)| match self.layout {
                Layout::V2 => controllers.is_empty(),
                Layout::V1 | Layout::Hybrid => {
                    controllers.split(',').any(|c| c == controller.v1_dir())
                }
            })
            .map(|(_, path)| path.clone())
    }

    /// The memory limit of `dir` in bytes, `None` when unlimited.
    pub fn memory_limit(&self, dir: &Path) -> Result<Option<u64>, ChaosError> {
        let (file, text) = match self.layout {
            Layout::V2 => ("memory.max", read(dir, "memory.max")?),
            Layout::V1 | Layout::Hybrid => {
                ("memory.limit_in_bytes", read(dir, "memory.limit_in_bytes")?)
            }
        };
        match text.as_str() {
            "max" => Ok(None),
            text => match text.parse::<u64>() {
                Ok(bytes) if bytes >= V1_UNLIMITED_FLOOR => Ok(None),
                Ok(bytes) => Ok(Some(bytes)),
                Err(_) => Err(ChaosError::Cgroup(format!(
                    "{}/{file}: unexpected value {text:?}",
                    dir.display()
                ))),
            },
        }
    }

    pub fn plan_cpu(&self, dir: &Path, cpu: &CpuQuota) -> Result<CgroupChange, ChaosError> {
        let (quota, period) = (cpu.quota_us(), cpu.period_us());
        let (apply, restore) = match self.layout {
            Layout::V2 => (
                vec![("cpu.max".into(), format!("{quota} {period}"))],
                vec![("cpu.max".into(), read(dir, "cpu.max")?)],
            ),
            Layout::V1 | Layout::Hybrid => {
                let old_quota = read(dir, "cpu.cfs_quota_us")?;
                let old_period = read(dir, "cpu.cfs_period_us")?;
                // Lift the quota first: a period change is refused while it would break the quota.
                (
                    vec![
                        ("cpu.cfs_quota_us".into(), "-1".into()),
                        ("cpu.cfs_period_us".into(), period.to_string()),
                        ("cpu.cfs_quota_us".into(), quota.to_string()),
                    ],
                    vec![
                        ("cpu.cfs_quota_us".into(), "-1".into()),
                        ("cpu.cfs_period_us".into(), old_period),
                        ("cpu.cfs_quota_us".into(), old_quota),
                    ],
                )
            }
        };
        change(dir, apply, restore)
    }

    pub fn plan_memory(
        &self,
        dir: &Path,
        memory: &MemoryLimit,
    ) -> Result<CgroupChange, ChaosError> {
        let mut apply = Vec::new();
        let mut restore = Vec::new();
        match self.layout {
            Layout::V2 => {
                for (file, value) in [("memory.high", memory.high), ("memory.max", memory.max)] {
                    if let Some(value) = value {
                        restore.push((file.to_string(), read(dir, file)?));
                        apply.push((file.to_string(), value.0.to_string()));
                    }
                }
            }
            Layout::V1 | Layout::Hybrid => {
                if memory.high.is_some() {
                    return Err(ChaosError::Cgroup(
                        "memory high needs cgroup v2 (this host uses v1 memory controllers); use max".into(),
                    ));
                }
                if let Some(max) = memory.max {
                    let old = read(dir, "memory.limit_in_bytes")?;
                    let old = match old.parse::<u64>() {
                        Ok(bytes) if bytes >= V1_UNLIMITED_FLOOR => "-1".to_string(),
                        _ => old,
                    };
                    restore.push(("memory.limit_in_bytes".into(), old));
                    apply.push(("memory.limit_in_bytes".into(), max.0.to_string()));
                }
            }
        }
        change(dir, apply, restore)
    }
}

fn change(
    dir: &Path,
    apply: Vec<(String, String)>,
    restore: Vec<(String, String)>,
) -> Result<CgroupChange, ChaosError> {
    let inode = std::fs::metadata(dir)
        .map_err(|err| ChaosError::Cgroup(format!("{}: {err}", dir.display())))?
        .ino();
    Ok(CgroupChange {
        dir: dir.to_path_buf(),
        inode,
        apply,
        restore,
    })
}

fn read(dir: &Path, file: &str) -> Result<String, ChaosError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .map(|text| text.trim().to_string())
        .map_err(|err| ChaosError::Cgroup(format!("cannot read {}: {err}", path.display())))
}

/// Tries of a v1 memory limit write the kernel answers EBUSY, and the pause between them.
const BUSY_ATTEMPTS: u32 = 5;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Write each value with one write(2), as the kernel expects.
fn write_all(change: &CgroupChange, values: &[(String, String)]) -> Result<(), ChaosError> {
    let inode = std::fs::metadata(&change.dir).map(|m| m.ino()).ok();
    if inode != Some(change.inode) {
        return Err(ChaosError::TargetGone(format!(
            "cgroup {} no longer exists",
            change.dir.display()
        )));
    }
    for (file, value) in values {
        let path = change.dir.join(file);
        let mut written = std::fs::write(&path, value);
        // v1 answers EBUSY when a lower memory limit is below usage it could not reclaim at
        // once (dirty or in-flight pages); a few more tries let writeback finish.
        let mut attempts = 1;
        while file == "memory.limit_in_bytes"
            && attempts < BUSY_ATTEMPTS
            && matches!(&written, Err(err) if err.raw_os_error() == Some(nix::libc::EBUSY))
        {
            std::thread::sleep(BUSY_PAUSE);
            written = std::fs::write(&path, value);
            attempts += 1;
        }
        if let Err(err) = &written {
            if err.raw_os_error() == Some(nix::libc::EBUSY) && file == "memory.limit_in_bytes" {
                let usage = read(&change.dir, "memory.usage_in_bytes")
                    .ok()
                    .and_then(|u| u.parse().ok())
                    .unwrap_or(0);
                return Err(ChaosError::MemoryBelowUsage {
                    file: path,
                    limit: value.parse().unwrap_or(0),
                    usage,
                    attempts,
                    source: written.expect_err("checked"),
                });
            }
        }
        written.map_err(|err| {
            let hint = match err.raw_os_error() {
                Some(nix::libc::EBUSY) => " (the limit is below current usage and reclaim failed)",
                Some(nix::libc::EINVAL) => " (the kernel refused this value)",
                _ => "",
            };
            ChaosError::Cgroup(format!(
                "cannot write {value} to {}: {err}{hint}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

pub fn apply(change: &CgroupChange) -> Result<String, ChaosError> {
    write_all(change, &change.apply)?;
    // Read back: the kernel may round (page size, v1 period) but must not ignore the write.
    let mut seen = Vec::new();
    for (file, _) in &change.apply {
        seen.push(format!("{file}={}", read(&change.dir, file)?));
    }
    seen.dedup();
    Ok(format!("{}: {}", change.dir.display(), seen.join(" ")))
}

pub fn restore(change: &CgroupChange) -> Result<String, ChaosError> {
    write_all(change, &change.restore)?;
    let restored: Vec<String> = change
        .restore
        .iter()
        .map(|(file, value)| format!("{file}={value}"))
        .collect();
    Ok(format!(
        "{} restored: {}",
        change.dir.display(),
        restored.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::ByteSize;

    fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, value) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, value).unwrap();
        }
        root
    }

    fn read_file(root: &Path, path: &str) -> String {
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    #[test]
    fn detects_v1_v2_and_hybrid() {
        let v2 = fixture(&[("cgroup.controllers", "cpu memory")]);
        let v1 = fixture(&[("cpu/tasks", ""), ("memory/tasks", "")]);
        let hybrid = fixture(&[("cpu/tasks", ""), ("unified/cgroup.controllers", "")]);
        let none = fixture(&[("other", "")]);
        assert_eq!(Cgroupfs::detect(v2.path()).unwrap().layout(), Layout::V2);
        assert_eq!(Cgroupfs::detect(v1.path()).unwrap().layout(), Layout::V1);
        assert_eq!(
            Cgroupfs::detect(hybrid.path()).unwrap().layout(),
            Layout::Hybrid
        );
        assert!(Cgroupfs::detect(none.path()).is_err());
    }

    #[test]
    fn v1_cpu_quota_applies_and_restores_exactly() {
        let root = fixture(&[
            ("cpu/app/cpu.cfs_quota_us", "-1\n"),
            ("cpu/app/cpu.cfs_period_us", "100000\n"),
            ("memory/tasks", ""),
        ]);
        let fs = Cgroupfs::detect(root.path()).unwrap();
        let dir = fs.dir(Controller::Cpu, "/app").unwrap();
        let cpu = CpuQuota {
            cpus: 0.2,
            period: "50ms".parse().unwrap(),
        };
        let change = fs.plan_cpu(&dir, &cpu).unwrap();
        apply(&change).unwrap();
        assert_eq!(read_file(root.path(), "cpu/app/cpu.cfs_quota_us"), "10000");
        assert_eq!(read_file(root.path(), "cpu/app/cpu.cfs_period_us"), "50000");
        restore(&change).unwrap();
        assert_eq!(read_file(root.path(), "cpu/app/cpu.cfs_quota_us"), "-1");
        assert_eq!(
            read_file(root.path(), "cpu/app/cpu.cfs_period_us"),
            "100000"
        );
    }

    #[test]
    fn v2_cpu_and_memory_restore_previous_text() {
        let root = fixture(&[
            ("cgroup.controllers", "cpu memory"),
            ("svc/cpu.max", "max 100000\n"),
            ("svc/memory.max", "max\n"),
            ("svc/memory.high", "536870912\n"),
        ]);
        let fs = Cgroupfs::detect(root.path()).unwrap();
        let dir = fs.dir(Controller::Memory, "svc").unwrap();
        let cpu = fs
            .plan_cpu(
                &dir,
                &CpuQuota {
                    cpus: 1.5,
                    period: "100ms".parse().unwrap(),
                },
            )
            .unwrap();
        let memory = fs
            .plan_memory(
                &dir,
                &MemoryLimit {
                    max: Some(ByteSize(64 << 20)),
                    high: Some(ByteSize(32 << 20)),
                },
            )
            .unwrap();
        apply(&cpu).unwrap();
        apply(&memory).unwrap();
        assert_eq!(read_file(root.path(), "svc/cpu.max"), "150000 100000");
        assert_eq!(
            read_file(root.path(), "svc/memory.max"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read_file(root.path(), "svc/memory.high"),
            (32u64 << 20).to_string()
        );
        restore(&memory).unwrap();
        restore(&cpu).unwrap();
        assert_eq!(read_file(root.path(), "svc/cpu.max"), "max 100000");
        assert_eq!(read_file(root.path(), "svc/memory.max"), "max");
        assert_eq!(read_file(root.path(), "svc/memory.high"), "536870912");
    }

    #[test]
    fn v1_unlimited_memory_is_restored_as_minus_one_and_high_is_refused() {
        let root = fixture(&[("memory/app/memory.limit_in_bytes", "9223372036854771712\n")]);
        let fs = Cgroupfs::detect(root.path()).unwrap();
        let dir = fs.dir(Controller::Memory, "app").unwrap();
        let limit = MemoryLimit {
            max: Some(ByteSize(1 << 20)),
            high: None,
        };
        let change = fs.plan_memory(&dir, &limit).unwrap();
        assert_eq!(
            change.restore,
            [("memory.limit_in_bytes".into(), "-1".into())]
        );
        let high = MemoryLimit {
            max: None,
            high: Some(ByteSize(1)),
        };
        let err = fs.plan_memory(&dir, &high).unwrap_err().to_string();
        assert!(err.contains("memory high needs cgroup v2"), "{err}");
    }

    #[test]
    fn paths_cannot_escape_and_a_recreated_cgroup_is_left_alone() {
        let root = fixture(&[
            ("cpu/app/cpu.cfs_quota_us", "-1"),
            ("cpu/app/cpu.cfs_period_us", "100000"),
        ]);
        let fs = Cgroupfs::detect(root.path()).unwrap();
        assert!(fs.dir(Controller::Cpu, "/../etc").is_err());
        let dir = fs.dir(Controller::Cpu, "app").unwrap();
        let cpu = CpuQuota {
            cpus: 0.5,
            period: "100ms".parse().unwrap(),
        };
        let change = fs.plan_cpu(&dir, &cpu).unwrap();
        // Moved away, not deleted: the old directory keeps its inode, so the new one at the
        // same path is certain to get another (a deleted inode number may be reused at once).
        std::fs::rename(&dir, root.path().join("cpu/app-old")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let err = restore(&change).unwrap_err();
        assert!(matches!(err, ChaosError::TargetGone(_)), "{err}");
    }

    #[test]
    fn pid_lines_pick_the_controller_hierarchy() {
        let lines = vec![
            ("memory".to_string(), "/m".to_string()),
            ("cpu,cpuacct".into(), "/c".into()),
            ("".into(), "/u".into()),
        ];
        let v1 = Cgroupfs {
            root: "/x".into(),
            layout: Layout::Hybrid,
        };
        let v2 = Cgroupfs {
            root: "/x".into(),
            layout: Layout::V2,
        };
        assert_eq!(v1.path_in(Controller::Cpu, &lines).as_deref(), Some("/c"));
        assert_eq!(
            v1.path_in(Controller::Memory, &lines).as_deref(),
            Some("/m")
        );
        assert_eq!(v2.path_in(Controller::Cpu, &lines).as_deref(), Some("/u"));
    }
}
