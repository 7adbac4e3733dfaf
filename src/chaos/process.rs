//! Processes as targets: identity (pid + start time, so a reused pid is never signalled),
//! their cgroup paths, and signals.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::ChaosError;

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Result<u64, ChaosError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|_| ChaosError::Target(format!("no process {pid}")))?;
    parse_start_time(&stat)
        .ok_or_else(|| ChaosError::Target(format!("cannot read /proc/{pid}/stat")))
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Signal `pid` only if it is still the process we pinned.
pub fn signal_pinned(pid: i32, start: u64, signal: Signal) -> Result<(), ChaosError> {
    match start_time(pid) {
        Ok(now) if now == start => kill(Pid::from_raw(pid), signal)
            .map_err(|err| ChaosError::Target(format!("cannot send {signal} to {pid}: {err}"))),
        _ => Err(ChaosError::TargetGone(format!("process {pid} has exited"))),
    }
}

/// The process's cgroup path in each hierarchy: ("", path) for v2, (controllers, path) for v1.
pub fn cgroups(pid: i32) -> Result<Vec<(String, String)>, ChaosError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|_| ChaosError::Target(format!("no process {pid}")))?;
    Ok(parse_cgroups(&text))
}

fn parse_cgroups(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert!(start_time(std::process::id() as i32).unwrap() > 0);
    }

    #[test]
    fn cgroup_lines_split_into_controllers_and_path() {
        let text = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/user.slice\n";
        assert_eq!(
            parse_cgroups(text),
            [
                ("memory".to_string(), "/docker/abc".to_string()),
                ("cpu,cpuacct".into(), "/docker/abc".into()),
                ("".into(), "/user.slice".into()),
            ]
        );
    }
}
