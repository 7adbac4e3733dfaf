//! `disk`, `memory` and `load` probes: the host's own resources, as Monit users check them.
//! `/proc` is read under a root (`/proc` itself in the daemon), so tests can use fixture files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::config::{Amount, LoadAverage};
use super::{CheckResult, Failure, FailureReason};

/// Where the daemon reads `meminfo`, `loadavg` and `stat`.
pub const PROC_ROOT: &str = "/proc";

/// Run `measure` off the runtime (statvfs on a dead network mount can hang; the probe's timeout
/// still answers), timing it as the check's latency.
async fn measured(measure: impl FnOnce() -> Result<(), Failure> + Send + 'static) -> CheckResult {
    let started = Instant::now();
    CheckResult::timed(started, crate::panic_policy::run_blocking(measure).await)
}

fn read(root: &Path, file: &str) -> Result<String, Failure> {
    let path = root.join(file);
    std::fs::read_to_string(&path).map_err(|err| {
        Failure::new(
            FailureReason::Io,
            format!("cannot read {}: {err}", path.display()),
        )
    })
}

/// Used space and inodes of the mount holding `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskProbe {
    pub path: PathBuf,
    pub max_used_percent: Option<f64>,
    pub max_inodes_percent: Option<f64>,
}

/// What `statvfs` says of a mount, in the shares `df` shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskUsage {
    /// Used blocks over the blocks an unprivileged user could have (used + available), as `df`.
    pub used_percent: f64,
    /// None on file systems without an inode count (btrfs reports 0 inodes).
    pub inodes_percent: Option<f64>,
}

impl DiskUsage {
    pub fn of(path: &Path) -> Result<Self, Failure> {
        let stat = nix::sys::statvfs::statvfs(path).map_err(|err| {
            Failure::new(
                FailureReason::Io,
                format!("statvfs {}: {}", path.display(), err.desc()),
            )
        })?;
        let (blocks, free, available) = (
            stat.blocks() as f64,
            stat.blocks_free() as f64,
            stat.blocks_available() as f64,
        );
        let used = blocks - free;
        let used_percent = match used + available {
            total if total > 0.0 => used * 100.0 / total,
            _ => 0.0,
        };
        let (files, files_free) = (stat.files() as f64, stat.files_free() as f64);
        let inodes_percent = (files > 0.0).then(|| (files - files_free) * 100.0 / files);
        Ok(Self {
            used_percent,
            inodes_percent,
        })
    }
}

impl DiskProbe {
    pub fn target(&self) -> String {
        format!("disk {}", self.path.display())
    }

    pub async fn check(&self) -> CheckResult {
        let probe = self.clone();
        measured(move || probe.judge(DiskUsage::of(&probe.path)?)).await
    }

    pub fn judge(&self, usage: DiskUsage) -> Result<(), Failure> {
        if let Some(limit) = self.max_used_percent {
            if usage.used_percent > limit {
                return Err(Failure::new(
                    FailureReason::DiskSpace,
                    format!(
                        "{} is {:.1}% full, above max_used_percent {limit}",
                        self.path.display(),
                        usage.used_percent
                    ),
                ));
            }
        }
        if let (Some(limit), Some(used)) = (self.max_inodes_percent, usage.inodes_percent) {
            if used > limit {
                return Err(Failure::new(
                    FailureReason::DiskInodes,
                    format!(
                        "{} uses {used:.1}% of its inodes, above max_inodes_percent {limit}",
                        self.path.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// MemAvailable against a floor.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryProbe {
    pub min_available: Amount,
    pub proc_root: PathBuf,
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
}

impl MemInfo {
    pub fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                let kib = rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
                kib.checked_mul(1024)
            })
        };
        Some(Self {
            total: field("MemTotal")?,
            available: field("MemAvailable")?,
        })
    }

    pub fn read(root: &Path) -> Result<Self, Failure> {
        Self::parse(&read(root, "meminfo")?).ok_or_else(|| {
            Failure::new(
                FailureReason::Io,
                format!(
                    "{} has no MemTotal and MemAvailable lines (Linux 3.14 or later has them)",
                    root.join("meminfo").display()
                ),
            )
        })
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / f64::from(1 << 20))
}

impl MemoryProbe {
    pub fn target(&self) -> String {
        format!("MemAvailable >= {}", self.min_available)
    }

    pub async fn check(&self) -> CheckResult {
        let probe = self.clone();
        measured(move || probe.judge(MemInfo::read(&probe.proc_root)?)).await
    }

    pub fn judge(&self, info: MemInfo) -> Result<(), Failure> {
        let low = match self.min_available {
            Amount::Bytes(floor) => info.available < floor.bytes(),
            Amount::Percent(percent) => {
                (info.available as f64) * 100.0 < percent * info.total as f64
            }
        };
        match low {
            false => Ok(()),
            true => Err(Failure::new(
                FailureReason::MemoryLow,
                format!(
                    "MemAvailable {} of {} ({:.1}%) is below min_available {}",
                    mib(info.available),
                    mib(info.total),
                    info.available as f64 * 100.0 / (info.total.max(1)) as f64,
                    self.min_available
                ),
            )),
        }
    }
}

/// A load average over the online CPUs against a ceiling.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProbe {
    pub max_load_per_core: f64,
    pub average: LoadAverage,
    pub proc_root: PathBuf,
}

/// The three averages of `/proc/loadavg` and the CPUs listed in `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub averages: [f64; 3],
    pub cpus: usize,
}

impl Load {
    pub fn parse(loadavg: &str, stat: &str) -> Option<Self> {
        let mut fields = loadavg.split_whitespace().map(|f| f.parse::<f64>().ok());
        let averages = [fields.next()??, fields.next()??, fields.next()??];
        let cpus = stat
            .lines()
            .filter(|line| {
                // "cpu0 ...", "cpu1 ...": not the "cpu  ..." line of all of them.
                line.strip_prefix("cpu")
                    .and_then(|rest| rest.split_whitespace().next())
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
            })
            .count();
        (cpus > 0 && averages.iter().all(|a| a.is_finite() && *a >= 0.0))
            .then_some(Self { averages, cpus })
    }

    pub fn read(root: &Path) -> Result<Self, Failure> {
        let (loadavg, stat) = (read(root, "loadavg")?, read(root, "stat")?);
        Self::parse(&loadavg, &stat).ok_or_else(|| {
            Failure::new(
                FailureReason::Io,
                format!(
                    "cannot make out the load averages and CPUs of {} and {}",
                    root.join("loadavg").display(),
                    root.join("stat").display()
                ),
            )
        })
    }

    pub fn average(&self, which: LoadAverage) -> f64 {
        match which {
            LoadAverage::One => self.averages[0],
            LoadAverage::Five => self.averages[1],
            LoadAverage::Fifteen => self.averages[2],
        }
    }
}

impl LoadProbe {
    pub fn target(&self) -> String {
        format!(
            "{} load per core <= {}",
            self.average.as_str(),
            self.max_load_per_core
        )
    }

    pub async fn check(&self) -> CheckResult {
        let probe = self.clone();
        measured(move || probe.judge(Load::read(&probe.proc_root)?)).await
    }

    pub fn judge(&self, load: Load) -> Result<(), Failure> {
        let average = load.average(self.average);
        let per_core = average / load.cpus as f64;
        match per_core > self.max_load_per_core {
            false => Ok(()),
            true => Err(Failure::new(
                FailureReason::LoadHigh,
                format!(
                    "{} load {average:.2} over {} CPUs is {per_core:.2} per core, above max_load_per_core {}",
                    self.average.as_str(),
                    load.cpus,
                    self.max_load_per_core
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::ByteSize;

    const MEMINFO: &str = "MemTotal:        2000000 kB\nMemFree:          100000 kB\nMemAvailable:     150000 kB\nBuffers:  1 kB\n";
    const STAT: &str = "cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\nintr 5\nctxt 6\n";

    /// A fixture /proc in a temp dir: the Down paths, read through the real file reading.
    fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn memory_down_and_up_from_fixture_proc() {
        let proc = fixture(&[("meminfo", MEMINFO)]);
        let cases = [
            (Amount::Percent(10.0), Some(FailureReason::MemoryLow)), // 7.5% available
            (Amount::Percent(5.0), None),
            (
                Amount::Bytes(ByteSize(200 << 20)),
                Some(FailureReason::MemoryLow),
            ), // 146 MiB
            (Amount::Bytes(ByteSize(100 << 20)), None),
        ];
        for (min_available, want) in cases {
            let probe = MemoryProbe {
                min_available,
                proc_root: proc.path().to_path_buf(),
            };
            let result = probe.check().await;
            assert_eq!(
                result.failure.as_ref().map(|f| f.reason),
                want,
                "{min_available}: {:?}",
                result.failure
            );
        }
        let old_kernel = fixture(&[("meminfo", "MemTotal: 10 kB\nMemFree: 5 kB\n")]);
        let probe = MemoryProbe {
            min_available: Amount::Percent(1.0),
            proc_root: old_kernel.path().to_path_buf(),
        };
        let failure = probe.check().await.failure.unwrap();
        assert_eq!(failure.reason, FailureReason::Io);
        assert!(
            failure.detail.contains("MemAvailable"),
            "{}",
            failure.detail
        );
    }

    #[tokio::test]
    async fn load_per_core_from_fixture_proc() {
        let proc = fixture(&[("loadavg", "3.50 2.10 0.40 3/456 789\n"), ("stat", STAT)]);
        let cases = [
            (LoadAverage::One, 1.5, Some(FailureReason::LoadHigh)), // 1.75 per core
            (LoadAverage::Five, 1.5, None),                         // 1.05
            (LoadAverage::Five, 1.0, Some(FailureReason::LoadHigh)),
            (LoadAverage::Fifteen, 0.1, Some(FailureReason::LoadHigh)), // 0.2
            (LoadAverage::Fifteen, 0.25, None),
        ];
        for (average, max_load_per_core, want) in cases {
            let probe = LoadProbe {
                max_load_per_core,
                average,
                proc_root: proc.path().to_path_buf(),
            };
            let result = probe.check().await;
            assert_eq!(
                result.failure.as_ref().map(|f| f.reason),
                want,
                "{average:?} {max_load_per_core}: {:?}",
                result.failure
            );
        }
        let broken = fixture(&[("loadavg", "nonsense\n"), ("stat", STAT)]);
        let probe = LoadProbe {
            max_load_per_core: 1.0,
            average: LoadAverage::Five,
            proc_root: broken.path().to_path_buf(),
        };
        assert_eq!(
            probe.check().await.failure.unwrap().reason,
            FailureReason::Io
        );
    }

    /// The real host's figures, read as the daemon reads them.
    #[tokio::test]
    async fn the_real_proc_reads() {
        let info = MemInfo::read(Path::new(PROC_ROOT)).unwrap();
        assert!(
            info.available > 0 && info.available <= info.total,
            "{info:?}"
        );
        let load = Load::read(Path::new(PROC_ROOT)).unwrap();
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        assert!(load.cpus >= 1, "{load:?} (online: {online})");
        let usage = DiskUsage::of(Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&usage.used_percent), "{usage:?}");
    }

    #[test]
    fn disk_judgement() {
        let probe = DiskProbe {
            path: "/data".into(),
            max_used_percent: Some(90.0),
            max_inodes_percent: Some(50.0),
        };
        let usage = |used_percent, inodes_percent| DiskUsage {
            used_percent,
            inodes_percent,
        };
        assert!(probe.judge(usage(89.0, Some(10.0))).is_ok());
        assert_eq!(
            probe.judge(usage(91.0, Some(10.0))).unwrap_err().reason,
            FailureReason::DiskSpace
        );
        assert_eq!(
            probe.judge(usage(10.0, Some(60.0))).unwrap_err().reason,
            FailureReason::DiskInodes
        );
        assert!(probe.judge(usage(10.0, None)).is_ok(), "no inode count");
    }
}
