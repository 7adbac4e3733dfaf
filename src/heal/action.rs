//! Heal actions at the edge: restart (or start) a Docker container or a systemd unit, or run a
//! command (its output capped, its whole process group killed at the timeout).

use std::process::Stdio;
use std::time::Duration;

use bollard::query_parameters::RestartContainerOptionsBuilder;
use tokio::process::Command;

use super::HealError;
use crate::docker::DockerEngine;
use crate::process::{discard_until_closed, drain, Capture, ProcessGroup};

#[derive(Debug, Clone)]
pub enum HealAction {
    DockerRestart {
        engine: DockerEngine,
        container: String,
        /// How long Docker waits after SIGTERM before SIGKILL when stopping a running container.
        stop_timeout: Duration,
    },
    Exec {
        program: String,
        args: Vec<String>,
        timeout: Duration,
    },
    /// `RestartUnit(unit, "replace")` over D-Bus, then wait for systemd's job to end.
    SystemdRestart {
        systemd: crate::systemd::Systemd,
        unit: String,
        /// How long to wait for the restart job to end.
        timeout: Duration,
    },
}

impl HealAction {
    /// What this action does, for events and logs ("docker restart demo").
    pub fn describe(&self) -> String {
        match self {
            Self::DockerRestart { container, .. } => format!("docker restart {container}"),
            Self::Exec { program, args, .. } => {
                let mut text = program.clone();
                for arg in args {
                    text.push(' ');
                    text.push_str(arg);
                }
                format!("exec {text}")
            }
            Self::SystemdRestart { unit, .. } => format!("systemd restart {unit}"),
        }
    }

    /// Perform the action; Ok carries a short note of what was done.
    pub async fn run(&self) -> Result<String, HealError> {
        match self {
            Self::DockerRestart {
                engine,
                container,
                stop_timeout,
            } => {
                let docker_error = |source| HealError::Docker {
                    container: container.clone(),
                    source,
                };
                let client = engine
                    .client()
                    .await
                    .map_err(|err| HealError::Engine(err.to_string()))?;
                let running = client
                    .inspect_container(container, None)
                    .await
                    .map_err(docker_error)?
                    .state
                    .and_then(|state| state.running)
                    .unwrap_or(false);
                if running {
                    let seconds = i32::try_from(stop_timeout.as_secs()).unwrap_or(i32::MAX);
                    let options = RestartContainerOptionsBuilder::default().t(seconds).build();
                    client
                        .restart_container(container, Some(options))
                        .await
                        .map_err(docker_error)?;
                    Ok(format!("restarted container {container}"))
                } else {
                    client
                        .start_container(container, None)
                        .await
                        .map_err(docker_error)?;
                    Ok(format!("started exited container {container}"))
                }
            }
            Self::Exec {
                program,
                args,
                timeout,
            } => run_command(program, args, *timeout).await,
            Self::SystemdRestart {
                systemd,
                unit,
                timeout,
            } => {
                systemd
                    .restart_unit(unit, *timeout)
                    .await
                    .map_err(|source| HealError::Systemd {
                        unit: unit.clone(),
                        source,
                    })?;
                Ok(format!("restarted unit {unit}"))
            }
        }
    }
}

/// Output of a heal command kept in memory: the first 32 KiB of stdout and of stderr, 64 KiB in
/// all. The rest is read and dropped, so a chatty command neither grows sentineld nor blocks on
/// a full pipe.
const MAX_STREAM_BYTES: usize = 32 * 1024;

/// After the command exits, how long output from processes it left running is still kept;
/// after that their output is read and dropped until they close it.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

/// Run the command in a process group of its own; at the timeout (or when the healer stops and
/// drops this future before the command exits) the whole group is killed, the command's children
/// with it. The timeout covers the command alone: once it has exited the group is left alone, so
/// whatever it started on purpose (a service) keeps running, and the output such a process still
/// writes is read and dropped instead of killing it with SIGPIPE.
async fn run_command(
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<String, HealError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(|source| HealError::ExecSpawn {
            program: program.to_string(),
            source,
        })?;
    let mut group = ProcessGroup::led_by(child.id());
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let (mut out, mut err) = (
        Capture::up_to(MAX_STREAM_BYTES),
        Capture::up_to(MAX_STREAM_BYTES),
    );
    let (waited, read_all) = {
        let reading = async {
            let _ = tokio::join!(
                drain(stdout.as_mut(), &mut out),
                drain(stderr.as_mut(), &mut err)
            );
        };
        tokio::pin!(reading);
        let mut read_all = false;
        // Only the wait for the command itself is under the timeout.
        let waited = tokio::time::timeout(timeout, async {
            loop {
                tokio::select! {
                    status = child.wait() => break status,
                    () = &mut reading, if !read_all => read_all = true,
                }
            }
        })
        .await;
        if let Ok(Ok(_)) = waited {
            // Reaped: the group is no longer ours to kill (its id may be empty or reused).
            group.disarm();
            if !read_all {
                // Something the command left running holds its output open: keep what it
                // writes for a moment, then stop keeping it.
                read_all = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut reading)
                    .await
                    .is_ok();
            }
        }
        (waited, read_all)
    };
    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            return Err(HealError::ExecSpawn {
                program: program.to_string(),
                source,
            })
        }
        Err(_) => {
            drop(group);
            return Err(HealError::ExecTimeout {
                program: program.to_string(),
                timeout,
            });
        }
    };
    if !read_all {
        // Closing the pipes would kill a long-lived child with SIGPIPE on its next write.
        tokio::spawn(discard_until_closed(stdout, stderr));
    }
    if status.success() {
        return Ok(format!("{program} exited 0"));
    }
    let output = match err.kept().iter().all(u8::is_ascii_whitespace) {
        true => out.text(),
        false => err.text(),
    };
    Err(HealError::ExecFailed {
        program: program.to_string(),
        status,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exec_action_table() {
        let exec = |program: &str, args: &[&str]| HealAction::Exec {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout: Duration::from_secs(5),
        };
        assert!(exec("/bin/true", &[]).run().await.is_ok());
        let err = exec("/bin/sh", &["-c", "echo broken >&2; exit 3"])
            .run()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
        assert!(exec("/nonexistent", &[]).run().await.is_err());
        assert_eq!(
            exec("/bin/echo", &["a", "b"]).describe(),
            "exec /bin/echo a b"
        );
        // stdout stands in for an empty stderr
        let err = exec("/bin/sh", &["-c", "echo on-stdout; exit 4"])
            .run()
            .await
            .unwrap_err();
        assert!(
            err.to_string().ends_with("(exit status: 4): on-stdout"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn output_is_capped_and_the_cut_is_marked() {
        // 1 MiB on each stream, interleaved so neither pipe may block the other
        let script = "for i in $(seq 16); do head -c 32768 /dev/zero | tr '\\0' e >&2; head -c 32768 /dev/zero | tr '\\0' o; done; exit 1";
        let action = HealAction::Exec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            timeout: Duration::from_secs(20),
        };
        let err = action.run().await.unwrap_err();
        let HealError::ExecFailed { output, .. } = &err else {
            panic!("{err}");
        };
        let kept = output.split(' ').next().unwrap();
        assert_eq!(
            kept.len(),
            MAX_STREAM_BYTES,
            "{}",
            &output[MAX_STREAM_BYTES..]
        );
        assert!(kept.bytes().all(|b| b == b'e'));
        let cut = (16 * 32768 - MAX_STREAM_BYTES).to_string();
        assert!(
            output.ends_with(&format!("[output truncated: {cut} more bytes]")),
            "{}",
            &output[MAX_STREAM_BYTES..]
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // the shell's own child must die too, or `touch` would still run after `sleep`
        let script = format!("(sleep 1; touch {}) & wait", marker.display());
        let action = HealAction::Exec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script],
            timeout: Duration::from_millis(200),
        };
        let err = action.run().await.unwrap_err();
        assert!(matches!(err, HealError::ExecTimeout { .. }), "{err}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !marker.exists(),
            "a child of the timed-out command survived"
        );
    }

    #[tokio::test]
    async fn what_a_finished_command_started_keeps_running() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        // a heal that starts a service in the background and returns at once
        let script = format!("(sleep 0.5; touch {}) >/dev/null 2>&1 &", marker.display());
        let action = HealAction::Exec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script],
            timeout: Duration::from_secs(5),
        };
        action.run().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(marker.exists(), "the started process was killed");
    }

    /// Whether `pid` runs (exists and is not a zombie waiting for its reaper).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(state != 'Z' && state != 'X')
            })
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn a_command_that_exits_just_before_its_timeout_is_not_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pids");
        // A background writer keeps the command's stdout, and writes to it every 100 ms; the
        // command itself exits 0 at 0.93 s of a 1 s timeout, within the 100 ms drain window of it.
        let script = format!(
            "(while :; do echo tick; sleep 0.1; done) & echo \"$$ $!\" > {}; sleep 0.93; exit 0",
            pid_file.display()
        );
        let action = HealAction::Exec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script],
            timeout: Duration::from_secs(1),
        };
        let result = action.run().await;
        let pids = std::fs::read_to_string(&pid_file).unwrap();
        let (group, writer) = pids.trim().split_once(' ').unwrap();
        let (group, writer): (i32, i32) = (group.parse().unwrap(), writer.parse().unwrap());
        struct KillGroup(i32);
        impl Drop for KillGroup {
            fn drop(&mut self) {
                let group = nix::unistd::Pid::from_raw(self.0);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _cleanup = KillGroup(group);
        assert_eq!(result.unwrap(), "/bin/sh exited 0");
        // the writer outlives the drain window and keeps writing: no SIGKILL, no SIGPIPE
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(alive(writer), "the background writer {writer} was killed");
    }
}
