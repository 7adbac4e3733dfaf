//! Stress inside the target: `cpu_stress` and `memory_stress` burners (see `burner`) placed in
//! the target's cgroup before they run, journaled by pid and start time, killed at rollback.
//!
//! The pids land in a record file under `STATE_DIR/chaos-stress/` (written and synced before the
//! burner gets its go); rollback kills what the record names, when pid and start time still match,
//! and the orphan sweep kills any burner carrying our owner mark that no experiment accounts for.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::burner::{self, BurnerArgs, Load};
use super::spec::SpecError;
use crate::event::Timestamp;
use crate::units::{ByteSize, HumanDuration};

/// `cpu_stress`: `workers` threads each busy `load` percent of the time, in the target's cgroup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuStress {
    #[serde(default = "CpuStress::one")]
    pub workers: u32,
    /// Percent of each worker's time spent busy (1..=100).
    #[serde(default = "CpuStress::full")]
    pub load: u8,
    /// Stop earlier than the experiment (never later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
}

impl CpuStress {
    fn one() -> u32 {
        1
    }
    fn full() -> u8 {
        100
    }
}

/// `memory_stress`: allocate `bytes` (or `percent` of the target's memory limit) in the target's
/// cgroup and hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryStress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<ByteSize>,
    /// Percent of the target's memory limit (the experiment's own `memory_limit` when it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// oom_score_adj -1000: the OOM killer picks the target's own processes, not the burner.
    #[serde(default)]
    pub avoid_oom_kill: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
}

/// Largest worker count a cpu_stress may ask for.
pub const MAX_WORKERS: u32 = 256;

pub(super) fn validate_cpu(cpu: &CpuStress) -> Result<(), SpecError> {
    if cpu.workers == 0 || cpu.workers > MAX_WORKERS {
        return Err(SpecError::StressWorkers);
    }
    if !(1..=100).contains(&cpu.load) {
        return Err(SpecError::StressLoad);
    }
    zero_duration(cpu.duration)
}

pub(super) fn validate_memory(memory: &MemoryStress) -> Result<(), SpecError> {
    match (memory.bytes, memory.percent) {
        (Some(bytes), None) if bytes.0 > 0 => {}
        (None, Some(percent)) if percent > 0.0 && percent <= 1000.0 => {}
        _ => return Err(SpecError::MemoryStressAmount),
    }
    zero_duration(memory.duration)
}

fn zero_duration(duration: Option<HumanDuration>) -> Result<(), SpecError> {
    match duration {
        Some(d) if d.get().is_zero() => Err(SpecError::ZeroDuration),
        _ => Ok(()),
    }
}

/// Why a burner could not be placed, journaled, found or killed.
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    #[error("no state directory for burner records (LinuxHost::with_state_dir)")]
    NoStateDir,
    #[error("cannot write the burner record {}: {source}", path.display())]
    Record {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a burner in {cgroups} (joining cgroup.procs or exec of /proc/self/exe failed): {source}")]
    Spawn {
        cgroups: String,
        #[source]
        source: std::io::Error,
    },
    #[error("burner pid {pid} is not in {} after start (it is in {found:?})", dir.display())]
    NotPlaced {
        pid: i32,
        dir: PathBuf,
        found: Vec<(String, String)>,
    },
    #[error("cannot kill burner pid {pid}: {source}")]
    Kill {
        pid: i32,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("burner pid {pid} still runs 2 s after SIGKILL")]
    Survived { pid: i32 },
    /// Some kernels (this project's CI VMs among them) refuse to lower oom_score_adj (EIO).
    #[error("cannot set oom_score_adj -1000 on burner pid {pid} for avoid_oom_kill (the kernel refused it): {source}")]
    OomScore {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("memory_stress percent needs a memory limit on {} (it has none): give bytes, or a memory_limit fault in the same experiment", dir.display())]
    NoLimit { dir: PathBuf },
}

/// A cgroup directory the burner joins, pinned by inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedCgroup {
    pub dir: PathBuf,
    pub inode: u64,
    /// Its path as /proc/PID/cgroup shows it (for the read-back), e.g. "/docker/ab12...".
    pub path: String,
}

/// What a burner does, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "load", rename_all = "snake_case")]
pub enum Burn {
    Cpu { workers: u32, percent: u8 },
    Memory { bytes: u64, avoid_oom_kill: bool },
}

impl Burn {
    fn load(self) -> Load {
        match self {
            Self::Cpu { workers, percent } => Load::Cpu { workers, percent },
            Self::Memory {
                bytes,
                avoid_oom_kill,
            } => Load::Memory {
                bytes,
                avoid_oom_kill,
            },
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Cpu { workers, percent } => format!("{workers} CPU worker(s) at {percent}%"),
            Self::Memory {
                bytes,
                avoid_oom_kill,
            } => format!(
                "{} of memory{}",
                ByteSize(bytes),
                if avoid_oom_kill {
                    " (oom_score_adj -1000)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// One burner, journaled before it exists: where it goes, what it does, until when, and the
/// record file its pid and start time are written to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StressAction {
    pub token: String,
    pub owner: u16,
    pub burn: Burn,
    pub cgroups: Vec<PinnedCgroup>,
    pub until: Timestamp,
    pub record: PathBuf,
}

/// The record of a spawned burner (`chaos-stress/TOKEN.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurnerRecord {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: a pid reused by another process has another.
    pub start: u64,
}

/// The record directory under a state directory.
pub fn record_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("chaos-stress")
}

/// A fresh token: time and a counter, in lowercase hex (also a safe file name).
pub fn token() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{nanos:x}{:x}{:02x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xff
    )
}

/// Write `bytes` to `path` through a synced temporary file and a rename.
pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StressError> {
    let error = |source| StressError::Record {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)?;
    if let Some(dir) = path.parent() {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// The burners this daemon started, kept to reap them (no zombies) once killed.
#[derive(Debug, Default)]
pub struct Burners {
    children: Mutex<HashMap<String, Child>>,
}

impl Burners {
    /// Start the burner of `action` inside its cgroups, journal its pid, then let it burn.
    pub fn start(&self, action: &StressAction) -> Result<String, StressError> {
        let cgroups = action
            .cgroups
            .iter()
            .map(|c| c.dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut procs = Vec::new();
        for cgroup in &action.cgroups {
            let inode = std::fs::metadata(&cgroup.dir).map(|m| m.ino()).ok();
            if inode != Some(cgroup.inode) {
                return Err(StressError::Spawn {
                    cgroups,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("cgroup {} no longer exists", cgroup.dir.display()),
                    ),
                });
            }
            let file = cgroup.dir.join("cgroup.procs");
            procs.push(
                std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).map_err(|_| {
                    StressError::Spawn {
                        cgroups: cgroups.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                    }
                })?,
            );
        }
        let args = BurnerArgs {
            owner: action.owner,
            token: action.token.clone(),
            until_ms: action.until.as_millis(),
            load: action.burn.load(),
            watch: match action.burn {
                Burn::Memory {
                    avoid_oom_kill: true,
                    ..
                } => action
                    .cgroups
                    .first()
                    .map(|c| c.dir.join("cgroup.procs").display().to_string()),
                _ => None,
            },
        };
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0(burner::ARGV0)
            .arg(burner::MODE)
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls (open, write, close) on
        // paths built before the fork; the child joins every cgroup before it runs a line of ours.
        unsafe {
            command.pre_exec(move || {
                for path in &procs {
                    join_cgroup(path)?;
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| StressError::Spawn {
            cgroups: cgroups.clone(),
            source,
        })?;
        let pid = child.id() as i32;
        let placed = (|| {
            let start = super::process::start_time(pid).map_err(|_| StressError::NotPlaced {
                pid,
                dir: PathBuf::new(),
                found: Vec::new(),
            })?;
            let record = BurnerRecord { pid, start };
            write_synced(
                &action.record,
                &serde_json::to_vec(&record).expect("records serialize"),
            )?;
            read_back(pid, &action.cgroups)?;
            if let Burn::Memory {
                avoid_oom_kill: true,
                ..
            } = action.burn
            {
                let file = format!("/proc/{pid}/oom_score_adj");
                let set = std::fs::write(&file, "-1000").and_then(|()| {
                    match std::fs::read_to_string(&file)?.trim() {
                        "-1000" => Ok(()),
                        other => Err(std::io::Error::other(format!("read back {other}"))),
                    }
                });
                set.map_err(|source| StressError::OomScore { pid, source })?;
            }
            Ok(start)
        })();
        let start = match placed {
            Ok(start) => start,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&action.record);
                return Err(err);
            }
        };
        // Journaled and placed: go.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"g");
        }
        super::engine::lock(&self.children).insert(action.token.clone(), child);
        Ok(format!(
            "burner pid {pid} (start {start}) with {} in {cgroups} until {} ms",
            action.burn.describe(),
            action.until.as_millis()
        ))
    }

    /// Kill the burner of `token` (from its record, and any process still carrying its token)
    /// and remove its record; idempotent.
    pub fn stop(&self, token: &str, record: &Path, owner: u16) -> Result<String, StressError> {
        let child = super::engine::lock(&self.children).remove(token);
        let mut lines = Vec::new();
        let recorded: Option<BurnerRecord> = std::fs::read(record)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let mut targets: Vec<(i32, u64)> = Vec::new();
        if let Some(record) = &recorded {
            targets.push((record.pid, record.start));
        }
        for (pid, args) in running_burners() {
            if args.owner == owner && args.token == token && !targets.iter().any(|t| t.0 == pid) {
                if let Ok(start) = super::process::start_time(pid) {
                    targets.push((pid, start));
                }
            }
        }
        for (pid, start) in targets {
            lines.push(kill_pinned(pid, start)?);
        }
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(record);
        if lines.is_empty() {
            lines.push("no burner was running".into());
        }
        Ok(lines.join(", "))
    }
}

/// Write "0" (the calling process) to a cgroup.procs file; async-signal-safe.
fn join_cgroup(path: &std::ffi::CStr) -> std::io::Result<()> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(std::io::Error::from)?;
    let written = nix::unistd::write(&fd, b"0");
    drop(fd);
    match written {
        Ok(_) => Ok(()),
        Err(errno) => Err(std::io::Error::from(errno)),
    }
}

/// The burner's /proc/PID/cgroup names every target cgroup.
fn read_back(pid: i32, cgroups: &[PinnedCgroup]) -> Result<(), StressError> {
    let found = super::process::cgroups(pid).unwrap_or_default();
    for cgroup in cgroups {
        if !found.iter().any(|(_, path)| path == &cgroup.path) {
            return Err(StressError::NotPlaced {
                pid,
                dir: cgroup.dir.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// SIGKILL `pid` if it is still the burner started at `start`, and wait until it is gone.
fn kill_pinned(pid: i32, start: u64) -> Result<String, StressError> {
    use nix::sys::signal::{kill, Signal};
    match super::process::start_time(pid) {
        Ok(now) if now == start && !is_zombie(pid) => {}
        _ => return Ok(format!("burner pid {pid} had exited")),
    }
    kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)
        .map_err(|source| StressError::Kill { pid, source })?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match super::process::start_time(pid) {
            Ok(now) if now == start && !is_zombie(pid) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => return Ok(format!("burner pid {pid} killed")),
        }
    }
    Err(StressError::Survived { pid })
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|s| s == "Z" || s == "X")
        })
        .unwrap_or(true)
}

/// Every burner process on this host (any owner), by pid.
pub fn running_burners() -> Vec<(i32, BurnerArgs)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            BurnerArgs::from_cmdline(&cmdline).map(|args| (pid, args))
        })
        .filter(|(pid, _)| !is_zombie(*pid))
        .collect()
}

/// Stress actions for burners and records of `owner` that `known` tokens do not account for.
pub fn orphans(state_dir: Option<&Path>, owner: u16, known: &[String]) -> Vec<StressAction> {
    let mut found: Vec<StressAction> = Vec::new();
    let orphan = |token: String, record: PathBuf, burn: Burn| StressAction {
        token,
        owner,
        burn,
        cgroups: Vec::new(),
        until: Timestamp(0),
        record,
    };
    let records = state_dir.map(record_dir);
    for (_, args) in running_burners() {
        if args.owner != owner || known.contains(&args.token) {
            continue;
        }
        if found.iter().any(|f| f.token == args.token) {
            continue;
        }
        let record = match &records {
            Some(dir) => dir.join(format!("{}.json", args.token)),
            None => PathBuf::from("/nonexistent"),
        };
        let burn = match args.load {
            Load::Cpu { workers, percent } => Burn::Cpu { workers, percent },
            Load::Memory {
                bytes,
                avoid_oom_kill,
            } => Burn::Memory {
                bytes,
                avoid_oom_kill,
            },
        };
        found.push(orphan(args.token, record, burn));
    }
    if let Some(dir) = &records {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(token) = name.strip_suffix(".json") else {
                    continue;
                };
                if known.iter().any(|k| k == token) || found.iter().any(|f| f.token == token) {
                    continue;
                }
                found.push(orphan(
                    token.to_string(),
                    entry.path(),
                    Burn::Cpu {
                        workers: 0,
                        percent: 0,
                    },
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use crate::chaos::spec::ExperimentSpec;

    fn check(faults: &str, target: &str) -> Result<(), String> {
        let json = format!(r#"{{"faults": [{faults}], "target": {{{target}}}}}"#);
        let spec: ExperimentSpec = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn stress_and_fill_faults_are_checked_before_any_kernel_call() {
        let cases: &[(&str, &str, Result<(), &str>)] = &[
            (r#"{"kind":"cpu_stress"}"#, r#""container":"c""#, Ok(())),
            (
                r#"{"kind":"cpu_stress","workers":0}"#,
                r#""pid":1"#,
                Err("cpu_stress workers must be 1..=256"),
            ),
            (
                r#"{"kind":"cpu_stress","load":0}"#,
                r#""pid":1"#,
                Err("cpu_stress load is a percentage"),
            ),
            (
                r#"{"kind":"cpu_stress"}"#,
                r#""interface":"eth0""#,
                Err("cpu_stress needs a target cgroup"),
            ),
            (
                r#"{"kind":"memory_stress","bytes":"64MiB","avoid_oom_kill":true}"#,
                r#""unit":"a.service""#,
                Ok(()),
            ),
            (
                r#"{"kind":"memory_stress","percent":150}"#,
                r#""cgroup":"/x""#,
                Ok(()),
            ),
            (
                r#"{"kind":"memory_stress"}"#,
                r#""cgroup":"/x""#,
                Err("memory_stress needs either bytes"),
            ),
            (
                r#"{"kind":"memory_stress","bytes":"1MiB","percent":5}"#,
                r#""cgroup":"/x""#,
                Err("memory_stress needs either bytes"),
            ),
            (
                r#"{"kind":"memory_stress","bytes":"1MiB","duration":"0s"}"#,
                r#""cgroup":"/x""#,
                Err("duration must be above zero"),
            ),
            (r#"{"kind":"disk_fill","path":"/var/tmp"}"#, "", Ok(())),
            (
                r#"{"kind":"disk_fill","path":"var/tmp"}"#,
                "",
                Err("disk_fill path must be an absolute"),
            ),
            (
                r#"{"kind":"disk_fill","path":"/var/../etc"}"#,
                "",
                Err("disk_fill path must be an absolute"),
            ),
            (
                r#"{"kind":"disk_fill","path":"/var/tmp","max_used_percent":100}"#,
                "",
                Err("disk_fill max_used_percent 100 must be above 0 and below 100"),
            ),
            (
                r#"{"kind":"disk_fill","path":"/var/tmp","bytes":0}"#,
                "",
                Err("disk_fill bytes must be above zero"),
            ),
            (
                r#"{"kind":"cpu_stress","wokers":2}"#,
                r#""pid":1"#,
                Err("unknown field `wokers`"),
            ),
        ];
        for (faults, target, want) in cases {
            let got = check(faults, target);
            match want {
                Ok(()) => assert_eq!(got, Ok(()), "{faults}"),
                Err(prefix) => {
                    let err = got.expect_err(faults);
                    assert!(err.contains(prefix), "{faults}: got {err}, want {prefix}");
                }
            }
        }
    }
}
