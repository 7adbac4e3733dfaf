//! `docker` probe: the container exists, runs, is not unhealthy, and is not crash-looping
//! (its RestartCount growing too fast). Docker's own events wake it between intervals.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::models::HealthStatusEnum;

use super::{excerpt, CheckResult, Failure, FailureReason};
use crate::docker::{DockerEngine, DockerError};

/// "Crash loop when the container restarted `restarts` times within `within`."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoopRule {
    pub restarts: u32,
    pub within: Duration,
}

#[derive(Debug, Clone)]
pub struct DockerProbe {
    pub engine: DockerEngine,
    /// Name or id, as written in the config.
    pub container: String,
    pub crash_loop: Option<CrashLoopRule>,
    /// RestartCount samples (when seen, value), oldest first, trimmed to the rule's window.
    restart_samples: Arc<Mutex<VecDeque<(Instant, i64)>>>,
}

impl DockerProbe {
    pub fn new(engine: DockerEngine, container: String, crash_loop: Option<CrashLoopRule>) -> Self {
        Self {
            engine,
            container,
            crash_loop,
            restart_samples: Arc::default(),
        }
    }

    /// Does a Docker event about `name`/`id` concern this probe?
    pub fn concerns(&self, name: &str, id: &str) -> bool {
        let wanted = self.container.trim_start_matches('/');
        name.trim_start_matches('/') == wanted || (wanted.len() >= 12 && id.starts_with(wanted))
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        CheckResult::timed(started, self.inspect().await)
    }

    async fn inspect(&self) -> Result<(), Failure> {
        let client = self.engine.client().await.map_err(engine_failure)?;
        let details = match client.inspect_container(&self.container, None).await {
            Ok(details) => details,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(engine_failure(DockerError::NoSuchContainer {
                    container: self.container.clone(),
                }))
            }
            Err(source) => {
                self.engine.reset().await;
                return Err(engine_failure(DockerError::Api {
                    container: self.container.clone(),
                    source,
                }));
            }
        };
        let state = details.state.unwrap_or_default();
        if state.running != Some(true) || state.restarting == Some(true) {
            let status = state
                .status
                .map_or_else(|| "not running".to_string(), |s| s.to_string());
            let exit = state
                .exit_code
                .map_or_else(String::new, |c| format!(", exit code {c}"));
            return Err(if state.oom_killed == Some(true) {
                Failure::new(
                    FailureReason::Oom,
                    format!("{status}{exit}, killed by the OOM killer"),
                )
            } else {
                Failure::new(FailureReason::ContainerExited, format!("{status}{exit}"))
            });
        }
        if state.paused == Some(true) {
            return Err(Failure::new(FailureReason::ContainerExited, "paused"));
        }
        if let Some(health) = state.health {
            if health.status == Some(HealthStatusEnum::UNHEALTHY) {
                let last = health
                    .log
                    .and_then(|log| log.last().and_then(|entry| entry.output.clone()))
                    .unwrap_or_default();
                return Err(Failure::new(
                    FailureReason::Unhealthy,
                    format!("health check failing: {}", excerpt(&last)),
                ));
            }
        }
        if let (Some(rule), Some(count)) = (self.crash_loop, details.restart_count) {
            let restarts = self.record_restarts(rule, Instant::now(), count);
            if restarts >= i64::from(rule.restarts) {
                return Err(Failure::new(
                    FailureReason::CrashLoop,
                    format!(
                        "restarted {restarts} times within {}",
                        humantime::format_duration(rule.within)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Remember `count` at `now`; return how much it grew within the rule's window. The newest
    /// sample from before the window is kept as the baseline, so growth is seen even when checks
    /// are further apart than the window.
    fn record_restarts(&self, rule: CrashLoopRule, now: Instant, count: i64) -> i64 {
        let mut samples = self
            .restart_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        samples.push_back((now, count));
        let outside = |sample: Option<&(Instant, i64)>| {
            sample.is_some_and(|(seen, _)| now.duration_since(*seen) > rule.within)
        };
        while outside(samples.get(1)) {
            samples.pop_front();
        }
        let baseline = samples.front().map_or(count, |(_, c)| *c);
        count - baseline
    }
}

fn engine_failure(err: DockerError) -> Failure {
    match err {
        DockerError::NoSuchContainer { .. } => {
            Failure::new(FailureReason::ContainerMissing, err.to_string())
        }
        _ => Failure::new(FailureReason::Docker, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn crash_loop_counts_growth_within_the_window() {
        let probe = DockerProbe::new(
            DockerEngine::new(Path::new("/nonexistent")),
            "c".into(),
            None,
        );
        let rule = CrashLoopRule {
            restarts: 3,
            within: Duration::from_secs(60),
        };
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        // (seconds, RestartCount, growth within the last minute)
        let cases = [(0, 5, 0), (10, 6, 1), (20, 8, 3), (75, 8, 2), (200, 9, 1)];
        for (secs, count, growth) in cases {
            assert_eq!(
                probe.record_restarts(rule, at(secs), count),
                growth,
                "t={secs}"
            );
        }
    }

    #[test]
    fn matches_events_by_name_or_id_prefix() {
        let engine = DockerEngine::new(Path::new("/nonexistent"));
        let by_name = DockerProbe::new(engine.clone(), "demo".into(), None);
        assert!(by_name.concerns("demo", "abcdef"));
        assert!(by_name.concerns("/demo", "abcdef"));
        assert!(!by_name.concerns("demo2", "abcdef"));
        let by_id = DockerProbe::new(engine, "0123456789ab".into(), None);
        assert!(by_id.concerns("other", "0123456789abcdef"));
        assert!(!by_id.concerns("other", "fedcba"));
    }

    #[tokio::test]
    async fn unreachable_engine_is_a_typed_failure() {
        let probe = DockerProbe::new(
            DockerEngine::new(Path::new("/nonexistent/docker.sock")),
            "c".into(),
            None,
        );
        let failure = probe.check().await.failure.unwrap();
        assert_eq!(failure.reason, FailureReason::Docker);
        assert!(
            failure.detail.contains("/nonexistent/docker.sock"),
            "{}",
            failure.detail
        );
    }
}
