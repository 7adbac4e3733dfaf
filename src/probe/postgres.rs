//! `postgres` probe: log in for real (SCRAM-SHA-256, md5 or trust, as the server asks), run a
//! query and check its result; optionally the server's role, replication lag and connection use.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::{CheckResult, Failure, FailureReason};

/// How far inside the runner's timeout the probe's own deadline falls.
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);

/// Expected result of the probe's query (all given conditions must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryExpectation {
    pub rows: Option<u64>,
    /// First column of the first row, as text.
    pub equals: Option<String>,
    /// First column of the first row, as a number.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedRole {
    Primary,
    Replica,
}

#[derive(Debug, Clone)]
pub struct PostgresProbe {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub query: String,
    pub expect: QueryExpectation,
    /// The probe's timeout: connecting and logging in must finish within it, and so must the
    /// queries after, each phase reported apart (a dead server from a stuck one).
    pub timeout: Duration,
    pub statement_timeout: Duration,
    pub expect_role: Option<ExpectedRole>,
    pub max_replication_lag: Option<Duration>,
    /// Highest acceptable share of `max_connections` in use, in percent.
    pub max_connections_used: Option<f64>,
}

impl PostgresProbe {
    /// How to reach the server this probe checks, named `application_name` in
    /// `pg_stat_activity`: the probe and the evidence archive connect the same way.
    pub fn client_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name(application_name);
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        CheckResult::timed(started, self.run().await)
    }

    /// A new connection every check, never a pooled one: a hung postmaster that no longer
    /// accepts or authenticates is seen as such, not hidden behind a session opened earlier.
    /// Two phases under the probe's deadline: no connection or login in time is `timeout`
    /// (dead); logged in but the queries failed or did not finish in time is `query`
    /// (answering but stuck), which the remedy and the heal tell apart.
    async fn run(&self) -> Result<(), Failure> {
        let started = tokio::time::Instant::now();
        // Just inside the runner's own bound, so this verdict, which knows the phase, is the one
        // reported (both timers would otherwise fire at the same instant).
        let deadline = started + self.timeout.saturating_sub(DEADLINE_MARGIN);
        let mut config = self.client_config("sentineld");
        // Bound every statement on the server too, so a stuck query does not pile up.
        config.options(format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_millis()
        ));
        let (client, connection) = tokio::time::timeout_at(deadline, config.connect(NoTls))
            .await
            .map_err(|_| {
                Failure::new(
                    FailureReason::Timeout,
                    format!(
                        "no connection or login within {}",
                        humantime::format_duration(self.timeout)
                    ),
                )
            })?
            .map_err(connect_failure)?;
        let logged_in = started.elapsed();
        let connection = tokio::spawn(connection);
        let result = tokio::time::timeout_at(deadline, self.assert_all(&client))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::new(
                    FailureReason::Query,
                    format!(
                        "logged in after {} ms, but the query did not finish within {}",
                        logged_in.as_millis(),
                        humantime::format_duration(self.timeout)
                    ),
                ))
            });
        drop(client);
        connection.abort();
        result
    }

    async fn assert_all(&self, client: &tokio_postgres::Client) -> Result<(), Failure> {
        let rows = first_values(client, &self.query).await?;
        check_expectation(&self.expect, &rows)?;
        if let Some(role) = self.expect_role {
            let in_recovery = first_values(client, "SELECT pg_is_in_recovery()").await?;
            let actual = match in_recovery.first().and_then(|v| v.as_deref()) {
                Some("t") => ExpectedRole::Replica,
                _ => ExpectedRole::Primary,
            };
            if actual != role {
                return Err(assertion(
                    format!("server is a {actual:?}, expected a {role:?}").to_lowercase(),
                ));
            }
        }
        if let Some(limit) = self.max_replication_lag {
            let lag = first_number(
                client,
                "SELECT CASE WHEN pg_is_in_recovery() \
                 THEN COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) \
                 ELSE 0 END",
            )
            .await?;
            if lag > limit.as_secs_f64() {
                return Err(assertion(format!(
                    "replication lag {lag:.1} s above {}",
                    humantime::format_duration(limit)
                )));
            }
        }
        if let Some(limit) = self.max_connections_used {
            let used = first_number(
                client,
                "SELECT 100.0 * (SELECT count(*) FROM pg_stat_activity) \
                 / current_setting('max_connections')::float",
            )
            .await?;
            if used > limit {
                return Err(assertion(format!(
                    "{used:.0}% of max_connections in use, above {limit}%"
                )));
            }
        }
        Ok(())
    }
}

fn assertion(detail: String) -> Failure {
    Failure::new(FailureReason::Assertion, detail)
}

/// The first column of every row, as text (NULL is None).
async fn first_values(
    client: &tokio_postgres::Client,
    query: &str,
) -> Result<Vec<Option<String>>, Failure> {
    let messages = client
        .simple_query(query)
        .await
        .map_err(|err| Failure::new(FailureReason::Query, describe(&err)))?;
    Ok(messages
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
            _ => None,
        })
        .collect())
}

async fn first_number(client: &tokio_postgres::Client, query: &str) -> Result<f64, Failure> {
    let values = first_values(client, query).await?;
    values
        .first()
        .and_then(|v| v.as_deref())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Failure::new(FailureReason::Query, format!("no number from {query}")))
}

/// Check rows (first column, as text) against the expectation.
pub fn check_expectation(
    expect: &QueryExpectation,
    rows: &[Option<String>],
) -> Result<(), Failure> {
    if let Some(count) = expect.rows {
        if rows.len() as u64 != count {
            return Err(assertion(format!(
                "query returned {} rows, expected {count}",
                rows.len()
            )));
        }
    }
    let first = rows.first().and_then(|v| v.as_deref());
    if let Some(expected) = &expect.equals {
        if first != Some(expected.as_str()) {
            return Err(assertion(format!(
                "first value is {first:?}, expected {expected:?}"
            )));
        }
    }
    if expect.min.is_some() || expect.max.is_some() {
        let value: f64 = first
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| assertion(format!("first value {first:?} is not a number")))?;
        if expect.min.is_some_and(|min| value < min) || expect.max.is_some_and(|max| value > max) {
            let bound = |b: Option<f64>| b.map_or_else(|| "-".to_string(), |b| b.to_string());
            return Err(assertion(format!(
                "first value {value} outside [{}, {}]",
                bound(expect.min),
                bound(expect.max)
            )));
        }
    }
    Ok(())
}

fn connect_failure(err: tokio_postgres::Error) -> Failure {
    if let Some(code) = err.code() {
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Failure::new(FailureReason::Auth, describe(&err));
        }
    }
    let io_kind = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let reason = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => FailureReason::Refused,
        Some(std::io::ErrorKind::TimedOut) => FailureReason::Timeout,
        Some(_) => FailureReason::Io,
        None if err.as_db_error().is_some() => FailureReason::Query,
        None => FailureReason::Protocol,
    };
    Failure::new(reason, describe(&err))
}

/// The server's own message when there is one (it says what is wrong), else the client's.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectation_table() {
        let rows = |values: &[Option<&str>]| -> Vec<Option<String>> {
            values.iter().map(|v| v.map(str::to_string)).collect()
        };
        let expect = |rows, equals: Option<&str>, min, max| QueryExpectation {
            rows,
            equals: equals.map(str::to_string),
            min,
            max,
        };
        let cases = [
            (expect(None, None, None, None), rows(&[]), Ok(())),
            (
                expect(Some(1), None, None, None),
                rows(&[Some("1")]),
                Ok(()),
            ),
            (
                expect(Some(1), None, None, None),
                rows(&[]),
                Err("query returned 0 rows, expected 1"),
            ),
            (
                expect(None, Some("ok"), None, None),
                rows(&[Some("ok")]),
                Ok(()),
            ),
            (
                expect(None, Some("ok"), None, None),
                rows(&[None]),
                Err("first value is None, expected \"ok\""),
            ),
            (
                expect(None, None, Some(1.0), Some(5.0)),
                rows(&[Some("3")]),
                Ok(()),
            ),
            (
                expect(None, None, None, Some(5.0)),
                rows(&[Some("7.5")]),
                Err("first value 7.5 outside [-, 5]"),
            ),
            (
                expect(None, None, Some(0.0), None),
                rows(&[Some("abc")]),
                Err("first value Some(\"abc\") is not a number"),
            ),
        ];
        for (expectation, rows, expected) in cases {
            let got = check_expectation(&expectation, &rows).map_err(|f| f.detail);
            assert_eq!(
                got,
                expected.map_err(String::from),
                "{expectation:?} {rows:?}"
            );
        }
    }
}
