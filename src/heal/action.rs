//! Heal actions at the edge: restart (or start) a Docker container, or run a command.

use std::time::Duration;

use bollard::query_parameters::RestartContainerOptionsBuilder;
use tokio::process::Command;

use super::HealError;
use crate::docker::DockerEngine;

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
            } => {
                let child = Command::new(program).args(args).kill_on_drop(true).output();
                let output = tokio::time::timeout(*timeout, child)
                    .await
                    .map_err(|_| {
                        HealError::Exec(format!("{program} did not finish within {timeout:?}"))
                    })?
                    .map_err(|err| HealError::Exec(format!("cannot run {program}: {err}")))?;
                if output.status.success() {
                    Ok(format!("{program} exited 0"))
                } else {
                    Err(HealError::Exec(format!(
                        "{program} failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    )))
                }
            }
        }
    }
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
    }
}
