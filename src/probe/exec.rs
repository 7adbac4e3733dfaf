//! `exec` probe: run a program (no shell), check its exit code and optionally its output.

use std::process::Stdio;
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::process::Command;

use super::{excerpt, CheckResult, Failure, FailureReason};
use crate::process::{drain, Capture, ProcessGroup};

/// Output kept for matching and for the failure detail, per stream (stdout, then stderr, are
/// matched as one text); the rest is read and dropped, so a chatty program cannot grow us.
const MAX_STREAM_BYTES: usize = 32 * 1024;

/// After the program exits, how long output from processes it left running is still read.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct ExecProbe {
    pub program: String,
    pub args: Vec<String>,
    pub expect_exit: i32,
    pub output_regex: Option<Regex>,
}

impl ExecProbe {
    /// Runs the program; the caller's timeout drops this future, and the process group guard
    /// then kills the child and everything it started, so a hung check never leaves a process
    /// behind. A check that ends normally kills what the program left running too.
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
        let _group = ProcessGroup::led_by(child.id());
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (mut out, mut err) = (
            Capture::up_to(MAX_STREAM_BYTES),
            Capture::up_to(MAX_STREAM_BYTES),
        );
        // Both pipes are read at once and to their ends: a program that fills one pipe while we
        // wait on the other, or writes more than we keep, must not block until the timeout.
        let (status, read) = {
            let reading = async {
                let (out, err) = tokio::join!(drain(stdout, &mut out), drain(stderr, &mut err));
                out.and(err)
            };
            tokio::pin!(reading);
            let mut read = None;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    done = &mut reading, if read.is_none() => read = Some(done),
                }
            };
            if read.is_none() {
                // A process the program left behind holds its output open: what it writes after a
                // moment is not waited for (the group is killed when this check ends).
                read = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut reading)
                    .await
                    .ok();
            }
            (status, read)
        };
        let elapsed = started.elapsed();
        let status = match (read.unwrap_or(Ok(())), status) {
            (_, Err(err)) | (Err(err), _) => {
                return CheckResult::failure(
                    elapsed,
                    Failure::new(FailureReason::Exec, format!("{}: {err}", self.program)),
                    None,
                )
            }
            (Ok(()), Ok(status)) => status,
        };
        let mut output = out.kept().to_vec();
        output.extend_from_slice(err.kept());
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

    /// Output that fills a pipe, on either stream, or far exceeds what is kept, and a child
    /// left holding the pipes open: each check ends when the program does, with its verdict.
    #[tokio::test]
    async fn chatty_programs_and_their_leftover_children_do_not_stall_the_check() {
        let cases = [
            // 200 KB on stderr before anything on stdout: stdout was read to its end first
            ("head -c 200000 /dev/zero >&2; echo ready", None),
            // 1 MB on stdout: reading stopped at the bound and the program blocked
            ("echo ready; head -c 1000000 /dev/zero | tr '\\0' x", None),
            (
                "head -c 300000 /dev/zero >&2; exit 3",
                Some(FailureReason::ExitStatus),
            ),
            // a background child keeps the pipes open long after the program exited
            ("sleep 30 & echo ready", None),
        ];
        for (script, expected) in cases {
            let probe = AnyProbe::Exec(probe("/bin/sh", &["-c", script], 0, Some("ready")));
            let started = std::time::Instant::now();
            let result = probe.check(Duration::from_secs(5), None).await;
            assert_eq!(
                result.failure.as_ref().map(|f| f.reason),
                expected,
                "{script}: {:?}",
                result.failure
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{script}: took {:?}",
                started.elapsed()
            );
        }
    }
}
