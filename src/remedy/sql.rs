//! The PostgreSQL edge of the remedy: one short-lived connection per step, a snapshot of
//! `pg_stat_activity` and `pg_locks`, and `pg_cancel_backend` / `pg_terminate_backend`.

use std::time::Duration;

use tokio_postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow};

use super::plan::{Session, Target};
use super::RemedyError;
use crate::event::RemedyAction;
use crate::probe::PostgresProbe;

/// How long connecting (with login) and each statement of the remedy may take.
pub const SQL_TIMEOUT: Duration = Duration::from_secs(5);

/// The sessions, one row each; waits and blockers only for those waiting on a lock (computing
/// `pg_blocking_pids` for every row would cost more on a busy server, for nothing). `own` is
/// sentineld's own sessions under the probe's role: this one, the evidence archive's, and the
/// probe's checks, whose backend can still wait on the lock after the check gave up at its
/// timeout (a victim of the incident, not its cause).
const SESSIONS_SQL: &str = "SELECT a.pid, a.usename, a.application_name, a.backend_type, a.state, \
    (extract(epoch FROM now() - a.query_start) * 1000)::bigint AS query_ms, \
    (extract(epoch FROM now() - a.state_change) * 1000)::bigint AS state_ms, \
    (extract(epoch FROM now() - a.xact_start) * 1000)::bigint AS xact_ms, \
    CASE WHEN a.wait_event_type = 'Lock' THEN \
      (SELECT (extract(epoch FROM now() - min(l.waitstart)) * 1000)::bigint \
       FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) END AS wait_ms, \
    CASE WHEN a.wait_event_type = 'Lock' THEN \
      array_to_string(pg_blocking_pids(a.pid), ',') END AS blocked_by, \
    left(a.query, 200) AS query, a.backend_start::text, \
    (a.pid = pg_backend_pid() OR (a.usename = current_user \
      AND a.application_name IN ('sentineld', 'sentineld-archive', 'sentineld-remedy'))) AS own \
    FROM pg_stat_activity a ORDER BY a.pid";

/// The evidence: both views whole, as JSON built by the server.
const ACTIVITY_JSON_SQL: &str =
    "SELECT coalesce(json_agg(row_to_json(a) ORDER BY a.pid), '[]')::text \
    FROM (SELECT *, pg_blocking_pids(pid) AS blocking_pids FROM pg_stat_activity) a";
const LOCKS_JSON_SQL: &str =
    "SELECT coalesce(json_agg(row_to_json(l) ORDER BY l.pid), '[]')::text FROM pg_locks l";

/// The state of the server just before a step.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub sessions: Vec<Session>,
    /// `pg_stat_activity` (plus `blocking_pids`) and `pg_locks`, as JSON arrays.
    pub activity_json: String,
    pub locks_json: String,
}

/// A connection for one step; its task ends when it is dropped.
pub struct Connection {
    client: Client,
    task: tokio::task::JoinHandle<()>,
    place: String,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    /// Log in as the probe does, named `sentineld-remedy` in `pg_stat_activity`, each statement
    /// bounded on the server as well.
    pub async fn open(target: &PostgresProbe) -> Result<Self, RemedyError> {
        let place = format!("{}:{}", target.host, target.port);
        let mut config = target.client_config("sentineld-remedy");
        config.connect_timeout(SQL_TIMEOUT).options(format!(
            "-c statement_timeout={} -c lock_timeout=1000",
            SQL_TIMEOUT.as_millis()
        ));
        let connected = tokio::time::timeout(SQL_TIMEOUT, config.connect(NoTls))
            .await
            .map_err(|_| RemedyError::ConnectTimeout {
                place: place.clone(),
                within: SQL_TIMEOUT,
            })?
            .map_err(|source| RemedyError::Connect {
                place: place.clone(),
                source,
            })?;
        let (client, connection) = connected;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            client,
            task,
            place,
        })
    }

    async fn query(&self, sql: &str) -> Result<Vec<SimpleQueryRow>, RemedyError> {
        let messages = tokio::time::timeout(SQL_TIMEOUT, self.client.simple_query(sql))
            .await
            .map_err(|_| RemedyError::QueryTimeout {
                place: self.place.clone(),
                within: SQL_TIMEOUT,
            })?
            .map_err(|source| RemedyError::Query {
                place: self.place.clone(),
                source,
            })?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect())
    }

    pub async fn snapshot(&self) -> Result<Snapshot, RemedyError> {
        let sessions = self
            .query(SESSIONS_SQL)
            .await?
            .iter()
            .filter_map(session)
            .collect();
        let json = |rows: Vec<SimpleQueryRow>| {
            rows.first()
                .and_then(|r| r.get(0).map(str::to_string))
                .unwrap_or_else(|| "[]".into())
        };
        let activity_json = json(self.query(ACTIVITY_JSON_SQL).await?);
        let locks_json = json(self.query(LOCKS_JSON_SQL).await?);
        Ok(Snapshot {
            sessions,
            activity_json,
            locks_json,
        })
    }

    /// Cancel or terminate each target, only if its pid still belongs to the same process
    /// (`backend_start` unchanged); returns whether PostgreSQL signalled it, per target.
    pub async fn signal(
        &self,
        action: RemedyAction,
        targets: &[Target],
    ) -> Result<Vec<bool>, RemedyError> {
        let function = match action {
            RemedyAction::CancelQueries => "pg_cancel_backend",
            RemedyAction::TerminateIdleInTransaction | RemedyAction::TerminateLockBlockers => {
                "pg_terminate_backend"
            }
        };
        let mut results = Vec::with_capacity(targets.len());
        for target in targets {
            let session = &target.session;
            let started = match &session.backend_start {
                Some(at) => format!("backend_start = '{}'", at.replace('\'', "''")),
                None => "backend_start IS NULL".into(),
            };
            // pid is an integer we read; backend_start is quoted above: nothing else is spliced.
            let sql = format!(
                "SELECT coalesce(bool_or({function}(pid)), false) FROM pg_stat_activity \
                 WHERE pid = {} AND {started}",
                session.pid
            );
            let rows = self.query(&sql).await?;
            let signalled = rows.iter().any(|row| row.get(0) == Some("t"));
            results.push(signalled);
        }
        Ok(results)
    }
}

fn session(row: &SimpleQueryRow) -> Option<Session> {
    let text = |i: usize| row.get(i).map(str::to_string);
    let ms = |i: usize| {
        row.get(i)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v.max(0) as u64)
    };
    Some(Session {
        pid: row.get(0)?.parse().ok()?,
        role: text(1),
        application: text(2),
        backend_type: text(3),
        state: text(4),
        query_ms: ms(5),
        state_ms: ms(6),
        xact_ms: ms(7),
        wait_ms: ms(8),
        blocked_by: row
            .get(9)
            .map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default(),
        query: text(10),
        backend_start: text(11),
        own: row.get(12) == Some("t"),
    })
}
