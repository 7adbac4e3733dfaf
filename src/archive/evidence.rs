//! The edges evidence comes through: the Docker engine (mounts, log tail, inspect state) and
//! PostgreSQL (`pg_stat_activity`), each behind a narrow trait so collection tests with fakes.

use std::future::Future;
use std::time::Duration;

use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::ArchiveError;
use crate::docker::DockerEngine;
use crate::probe::PostgresProbe;

/// A bind mount or volume of a container: `destination` inside, `source` on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub destination: String,
}

pub trait ContainerApi: Send + Sync {
    fn mounts(
        &self,
        container: &str,
    ) -> impl Future<Output = Result<Vec<Mount>, ArchiveError>> + Send;
    /// stdout and stderr, timestamped: the last `tail` lines, from `since` seconds ago.
    fn logs(
        &self,
        container: &str,
        tail: u64,
        since: Option<Duration>,
    ) -> impl Future<Output = Result<Vec<u8>, ArchiveError>> + Send;
    /// Status, ExitCode, OOMKilled, RestartCount, Error, times and the health log.
    fn state(&self, container: &str) -> impl Future<Output = Result<Value, ArchiveError>> + Send;
}

pub trait SqlApi: Send + Sync {
    /// Rows of `pg_stat_activity` as JSON objects.
    fn activity(
        &self,
        target: &PostgresProbe,
    ) -> impl Future<Output = Result<Value, ArchiveError>> + Send;
}

fn docker_error(container: &str) -> impl FnOnce(bollard::errors::Error) -> ArchiveError + '_ {
    move |err| ArchiveError::Source(format!("Docker engine, container {container}: {err}"))
}

async fn engine_client(engine: &DockerEngine) -> Result<bollard::Docker, ArchiveError> {
    engine
        .client()
        .await
        .map_err(|e| ArchiveError::Source(e.to_string()))
}

impl ContainerApi for DockerEngine {
    async fn mounts(&self, container: &str) -> Result<Vec<Mount>, ArchiveError> {
        let client = engine_client(self).await?;
        let inspect = client
            .inspect_container(container, None)
            .await
            .map_err(docker_error(container))?;
        Ok(inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some(Mount {
                    source: m.source?,
                    destination: m.destination?,
                })
            })
            .collect())
    }

    async fn logs(
        &self,
        container: &str,
        tail: u64,
        since: Option<Duration>,
    ) -> Result<Vec<u8>, ArchiveError> {
        let client = engine_client(self).await?;
        let since = since.map_or(0, |ago| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            i32::try_from(now.saturating_sub(ago).as_secs()).unwrap_or(0)
        });
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(since)
            .tail(&tail.to_string())
            .build();
        let mut stream = client.logs(container, Some(options));
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(docker_error(container))?;
            out.extend_from_slice(&chunk.into_bytes());
        }
        Ok(out)
    }

    async fn state(&self, container: &str) -> Result<Value, ArchiveError> {
        let client = engine_client(self).await?;
        let inspect = client
            .inspect_container(container, None)
            .await
            .map_err(docker_error(container))?;
        let state = inspect.state.unwrap_or_default();
        let health = state.health.map(|health| {
            json!({
                "Status": health.status.map(|s| s.to_string()),
                "FailingStreak": health.failing_streak,
                "Log": health.log.unwrap_or_default().into_iter().map(|r| json!({
                    "Start": r.start.map(|t| t.to_string()),
                    "End": r.end.map(|t| t.to_string()),
                    "ExitCode": r.exit_code,
                    "Output": r.output,
                })).collect::<Vec<_>>(),
            })
        });
        Ok(json!({
            "Name": inspect.name,
            "Id": inspect.id,
            "Image": inspect.config.and_then(|c| c.image),
            "RestartCount": inspect.restart_count,
            "State": {
                "Status": state.status.map(|s| s.to_string()),
                "Running": state.running,
                "ExitCode": state.exit_code,
                "OOMKilled": state.oom_killed,
                "Error": state.error,
                "StartedAt": state.started_at,
                "FinishedAt": state.finished_at,
                "Health": health,
            },
        }))
    }
}

/// Connects with the probe's settings, bounded by a short timeout: a dead server costs seconds.
pub struct Postgres;

const ACTIVITY_SQL: &str = "SELECT pid, usename, datname, application_name, \
    host(client_addr) AS client_addr, state, wait_event_type, wait_event, \
    backend_start::text, xact_start::text, query_start::text, state_change::text, \
    left(query, 2000) AS query FROM pg_stat_activity ORDER BY pid";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl SqlApi for Postgres {
    async fn activity(&self, target: &PostgresProbe) -> Result<Value, ArchiveError> {
        let mut config = target.client_config("sentineld-archive");
        config.connect_timeout(CONNECT_TIMEOUT);
        let unreachable = |err: String| {
            ArchiveError::Source(format!("postgres {}:{}: {err}", target.host, target.port))
        };
        let (client, connection) =
            tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tokio_postgres::NoTls))
                .await
                .map_err(|_| unreachable("connect timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?;
        let connection = tokio::spawn(connection);
        let rows = tokio::time::timeout(CONNECT_TIMEOUT, client.simple_query(ACTIVITY_SQL)).await;
        connection.abort();
        let rows = rows
            .map_err(|_| unreachable("query timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let objects: Vec<Value> = rows
            .iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .map(|row| {
                let map: serde_json::Map<String, Value> = row
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, column)| (column.name().to_string(), json!(row.get(i))))
                    .collect();
                Value::Object(map)
            })
            .collect();
        Ok(Value::Array(objects))
    }
}
