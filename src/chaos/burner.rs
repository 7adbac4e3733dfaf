//! The burner: `sentineld` re-executed (through /proc/self/exe) in a hidden mode that burns CPU
//! or holds memory inside a target's cgroup until its own deadline; the engine kills it sooner.
//!
//! Why a re-exec and not a thread or a `stress-ng`: a thread cannot live in another cgroup than
//! its process, a bare fork of a multi-threaded daemon may inherit a held lock, and an external
//! binary may be missing. /proc/self/exe is the running daemon's own inode, even after a package
//! upgrade replaced the file, so the burner always matches the daemon that journaled it.
//!
//! The command line is the marker the orphan sweep reads:
//! `sentinel-burner chaos-burner --owner 5e1d --token T --until MS (--cpu W:L | --memory B) [--avoid-oom-kill]`.
//! The burner waits for one byte `g` on stdin before it burns: the daemon sends it only after
//! the burner's pid and start time are on disk, so no burner ever runs unjournaled.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// argv[0] of every burner (what `ps` shows).
pub const ARGV0: &str = "sentinel-burner";
/// argv[1]: the hidden mode `sentineld` checks before parsing its flags.
pub const MODE: &str = "chaos-burner";

/// What one burner does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `workers` threads, each busy `percent` of every 100 ms.
    Cpu { workers: u32, percent: u8 },
    /// Allocate and touch `bytes`, then hold them.
    Memory { bytes: u64, avoid_oom_kill: bool },
}

/// A burner's parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnerArgs {
    pub owner: u16,
    pub token: String,
    /// Milliseconds since the Unix epoch: the burner exits by itself then.
    pub until_ms: i64,
    pub load: Load,
    /// With `avoid_oom_kill`: this cgroup.procs file; the burner exits once it is alone there
    /// (the target's processes are gone), so it never squeezes a restarted container.
    pub watch: Option<String>,
}

/// Why a burner command line is refused (the burner prints it and exits 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BurnerArgsError {
    #[error("burner: missing {0}")]
    Missing(&'static str),
    #[error("burner: bad value for {flag}: {value:?}")]
    Bad { flag: &'static str, value: String },
    #[error("burner: unknown argument {0:?}")]
    Unknown(String),
}

impl BurnerArgs {
    /// The arguments after argv[0] and the mode word.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--owner".to_string(),
            format!("{:x}", self.owner),
            "--token".into(),
            self.token.clone(),
            "--until".into(),
            self.until_ms.to_string(),
        ];
        match self.load {
            Load::Cpu { workers, percent } => {
                args.push("--cpu".into());
                args.push(format!("{workers}:{percent}"));
            }
            Load::Memory {
                bytes,
                avoid_oom_kill,
            } => {
                args.push("--memory".into());
                args.push(bytes.to_string());
                if avoid_oom_kill {
                    args.push("--avoid-oom-kill".into());
                }
            }
        }
        if let Some(watch) = &self.watch {
            args.push("--watch".into());
            args.push(watch.clone());
        }
        args
    }

    /// Parse the arguments after the mode word.
    pub fn parse(args: &[String]) -> Result<Self, BurnerArgsError> {
        let (mut owner, mut token, mut until, mut cpu, mut memory) = (None, None, None, None, None);
        let mut avoid = false;
        let mut watch = None;
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            let mut value =
                |name: &'static str| iter.next().cloned().ok_or(BurnerArgsError::Missing(name));
            match flag.as_str() {
                "--owner" => owner = Some(value("--owner")?),
                "--token" => token = Some(value("--token")?),
                "--until" => until = Some(value("--until")?),
                "--cpu" => cpu = Some(value("--cpu")?),
                "--memory" => memory = Some(value("--memory")?),
                "--avoid-oom-kill" => avoid = true,
                "--watch" => watch = Some(value("--watch")?),
                other => return Err(BurnerArgsError::Unknown(other.to_string())),
            }
        }
        let bad = |flag: &'static str, value: &str| BurnerArgsError::Bad {
            flag,
            value: value.to_string(),
        };
        let owner = owner.ok_or(BurnerArgsError::Missing("--owner"))?;
        let owner = u16::from_str_radix(&owner, 16).map_err(|_| bad("--owner", &owner))?;
        let token = token.ok_or(BurnerArgsError::Missing("--token"))?;
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad("--token", &token));
        }
        let until = until.ok_or(BurnerArgsError::Missing("--until"))?;
        let until_ms = until.parse().map_err(|_| bad("--until", &until))?;
        let load = match (cpu, memory) {
            (Some(cpu), None) => {
                let (workers, percent) = cpu.split_once(':').ok_or_else(|| bad("--cpu", &cpu))?;
                let workers: u32 = workers.parse().map_err(|_| bad("--cpu", &cpu))?;
                let percent: u8 = percent.parse().map_err(|_| bad("--cpu", &cpu))?;
                if workers == 0 || !(1..=100).contains(&percent) {
                    return Err(bad("--cpu", &cpu));
                }
                Load::Cpu { workers, percent }
            }
            (None, Some(memory)) => Load::Memory {
                bytes: memory.parse().map_err(|_| bad("--memory", &memory))?,
                avoid_oom_kill: avoid,
            },
            _ => return Err(BurnerArgsError::Missing("--cpu or --memory")),
        };
        Ok(Self {
            owner,
            token,
            until_ms,
            load,
            watch,
        })
    }

    /// Whether a process's command line (NUL-separated, as in /proc/PID/cmdline) is a burner,
    /// and which.
    pub fn from_cmdline(cmdline: &[u8]) -> Option<Self> {
        let parts: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        match parts.as_slice() {
            [argv0, mode, rest @ ..] if argv0 == ARGV0 && mode == MODE => Self::parse(rest).ok(),
            _ => None,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The burner's whole life; `args` are those after the mode word. Returns the exit code.
pub fn main(args: &[String]) -> u8 {
    let args = match BurnerArgs::parse(args) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{err}");
            return 2;
        }
    };
    // Wait for the daemon's go: EOF first means it died before journaling us.
    let mut go = [0u8; 1];
    match std::io::stdin().read(&mut go) {
        Ok(1) if go[0] == b'g' => {}
        _ => return 0,
    }
    let left = || Duration::from_millis((args.until_ms - now_ms()).max(0) as u64);
    let deadline = Instant::now() + left();
    // What the memory burner holds, alive until the deadline (dropped sooner, it would be freed
    // and uncharged at once).
    let mut held = Vec::new();
    match args.load {
        Load::Cpu { workers, percent } => {
            for _ in 0..workers {
                std::thread::spawn(move || burn_cpu(percent, deadline));
            }
        }
        Load::Memory {
            bytes,
            avoid_oom_kill,
        } => {
            // avoid_oom_kill: the daemon set oom_score_adj -1000 and read it back before `g`.
            let _ = avoid_oom_kill;
            if let Some(watch) = args.watch.clone() {
                std::thread::spawn(move || leave_when_alone(&watch));
            }
            held = hold_memory(bytes, deadline);
            std::hint::black_box(&held);
        }
    }
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
    drop(std::hint::black_box(held));
    0
}

/// Exit as soon as `procs` lists no process but this one (checked every 100 ms).
fn leave_when_alone(procs: &str) {
    let me = std::process::id().to_string();
    loop {
        if let Ok(text) = std::fs::read_to_string(procs) {
            if text.lines().all(|pid| pid.trim() == me) {
                std::process::exit(0);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Busy `percent` of each 100 ms slice until `deadline`.
fn burn_cpu(percent: u8, deadline: Instant) {
    let slice = Duration::from_millis(100);
    let busy = slice * u32::from(percent) / 100;
    let mut x: u64 = 1;
    while Instant::now() < deadline {
        let start = Instant::now();
        while start.elapsed() < busy {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        if busy < slice {
            std::thread::sleep(slice - busy);
        }
    }
}

/// Allocate `bytes` in 1 MiB chunks, every page written (so charged to the cgroup).
fn hold_memory(bytes: u64, deadline: Instant) -> Vec<Vec<u8>> {
    const CHUNK: u64 = 1 << 20;
    let mut held = Vec::new();
    let mut done = 0;
    while done < bytes && Instant::now() < deadline {
        let size = CHUNK.min(bytes - done) as usize;
        held.push(vec![0x5a_u8; size]);
        done += size as u64;
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burner_arguments_round_trip_and_bad_ones_are_refused() {
        for load in [
            Load::Cpu {
                workers: 2,
                percent: 80,
            },
            Load::Memory {
                bytes: 64 << 20,
                avoid_oom_kill: true,
            },
            Load::Memory {
                bytes: 1,
                avoid_oom_kill: false,
            },
        ] {
            let args = BurnerArgs {
                owner: 0x5e1d,
                token: "ab12".into(),
                until_ms: 1_700_000_000_000,
                load,
                watch: matches!(
                    load,
                    Load::Memory {
                        avoid_oom_kill: true,
                        ..
                    }
                )
                .then(|| "/sys/fs/cgroup/memory/x/cgroup.procs".to_string()),
            };
            assert_eq!(BurnerArgs::parse(&args.to_args()), Ok(args.clone()));
            let mut cmdline = format!("{ARGV0}\0{MODE}\0").into_bytes();
            for arg in args.to_args() {
                cmdline.extend_from_slice(arg.as_bytes());
                cmdline.push(0);
            }
            assert_eq!(BurnerArgs::from_cmdline(&cmdline), Some(args));
        }
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = ["--owner", "5e1d", "--token", "t1", "--until", "5"];
        for (extra, want) in [
            (vec!["--cpu", "0:50"], "bad value for --cpu"),
            (vec!["--cpu", "1:101"], "bad value for --cpu"),
            (vec!["--memory", "x"], "bad value for --memory"),
            (vec![], "missing --cpu or --memory"),
            (vec!["--cpu", "1:50", "--nope"], "unknown argument"),
        ] {
            let mut args = strings(&base);
            args.extend(strings(&extra));
            let err = BurnerArgs::parse(&args).unwrap_err().to_string();
            assert!(err.contains(want), "{extra:?}: {err}");
        }
        let mut bad_token = strings(&base);
        bad_token[3] = "../x".into();
        bad_token.extend(strings(&["--cpu", "1:50"]));
        assert!(BurnerArgs::parse(&bad_token).is_err());
        // other programs are not burners
        assert_eq!(BurnerArgs::from_cmdline(b"sleep\x003600\x00"), None);
        assert_eq!(BurnerArgs::from_cmdline(b""), None);
    }
}
