//! `exec` probe: run a program (no shell), check its exit code and optionally its output.

use std::process::Stdio;
use std::time::Instant;

use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{excerpt, CheckResult, Failure, FailureReason};

/// Output kept for matching and for the failure detail; a chatty program cannot grow us.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ExecProbe {
    pub program: String,
    pub args: Vec<String>,
    pub expect_exit: i32,
    pub output_regex: Option<Regex>,
}

impl ExecProbe {
    /// Runs the program; the caller's timeout drops this future, and `kill_on_drop` then kills
    /// the child, so a hung check never leaves a process behind.
    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        let spawned = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                return CheckResult::failure(
                    started.elapsed(),
                    Failure::new(
                        FailureReason::Exec,
                        format!("cannot run {}: {err}", self.program),
                    ),
                    None,
                )
            }
        };
        // Killing only the direct child would leave a shell's children running after a timeout.
        let _group = child.id().map(ProcessGroupGuard);
        let mut output = Vec::new();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let mut both = stdout.chain(stderr).take(MAX_OUTPUT_BYTES);
        let read = both.read_to_end(&mut output);
        let (read, status) = tokio::join!(read, child.wait());
        let elapsed = started.elapsed();
        let status = match (read, status) {
            (_, Err(err)) | (Err(err), _) => {
                return CheckResult::failure(
                    elapsed,
                    Failure::new(FailureReason::Exec, format!("{}: {err}", self.program)),
                    None,
                )
            }
            (Ok(_), Ok(status)) => status,
        };
        let text = String::from_utf8_lossy(&output);
        let code = status.code();
        if code != Some(self.expect_exit) {
            let how = code.map_or_else(
                || format!("killed by {status}"),
                |c| format!("exit code {c}"),
            );
            return CheckResult::failure(
                elapsed,
                Failure::new(
                    FailureReason::ExitStatus,
                    format!(
                        "{how}, expected {}; output: {}",
                        self.expect_exit,
                        excerpt(&text)
                    ),
                ),
                None,
            );
        }
        if let Some(regex) = &self.output_regex {
            if !regex.is_match(&text) {
                return CheckResult::failure(
                    elapsed,
                    Failure::new(
                        FailureReason::Assertion,
                        format!("output does not match /{regex}/: {}", excerpt(&text)),
                    ),
                    None,
                );
            }
        }
        CheckResult::success(elapsed, None)
    }
}

/// Kills the check's whole process group when the check is dropped (timeout or shutdown).
/// After a normal exit the group is usually empty and the kill finds nothing.
struct ProcessGroupGuard(u32);

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::AnyProbe;

    fn probe(program: &str, args: &[&str], expect_exit: i32, regex: Option<&str>) -> ExecProbe {
        ExecProbe {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            expect_exit,
            output_regex: regex.map(|r| Regex::new(r).unwrap()),
        }
    }

    #[tokio::test]
    async fn exec_table() {
        let cases: Vec<(ExecProbe, Option<FailureReason>)> = vec![
            (probe("/bin/true", &[], 0, None), None),
            (
                probe("/bin/false", &[], 0, None),
                Some(FailureReason::ExitStatus),
            ),
            (probe("/bin/false", &[], 1, None), None),
            (
                probe(
                    "/bin/sh",
                    &["-c", "echo accepting connections"],
                    0,
                    Some("accepting"),
                ),
                None,
            ),
            (
                probe(
                    "/bin/sh",
                    &["-c", "echo no response >&2"],
                    0,
                    Some("accepting"),
                ),
                Some(FailureReason::Assertion),
            ),
            (
                probe("/nonexistent/program", &[], 0, None),
                Some(FailureReason::Exec),
            ),
        ];
        for (probe, expected) in cases {
            let result = probe.check().await;
            assert_eq!(
                result.failure.as_ref().map(|f| f.reason),
                expected,
                "{} {:?}: {:?}",
                probe.program,
                probe.args,
                result.failure
            );
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // the shell's own child must die too, or `touch` would still run after `sleep`
        let script = format!("(sleep 1; touch {}) & wait", marker.display());
        let probe = AnyProbe::Exec(probe("/bin/sh", &["-c", &script], 0, None));
        let result = probe.check(Duration::from_millis(100), None).await;
        assert_eq!(result.failure.unwrap().reason, FailureReason::Timeout);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the timed-out child was killed");
    }
}
