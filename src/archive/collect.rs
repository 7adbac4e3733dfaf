//! Turns a heal's `archive = [...]` into bundle entries: files by glob (a container path is
//! mapped to the host through the container's mounts), container logs and state, SQL activity.
//! A source that fails is reported in the manifest; the others still make the bundle.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::bundle::{Entry, SourceProblem};
use super::evidence::{ContainerApi, Mount, SqlApi};
use super::ArchiveError;
use crate::probe::PostgresProbe;

/// One source, resolved against the probe being healed.
#[derive(Debug, Clone)]
pub enum SourcePlan {
    Files {
        source: String,
        /// `path` inside this container, when set; otherwise `path` is on the host.
        container: Option<String>,
        path: PathBuf,
        include: Vec<String>,
        max_bytes: u64,
    },
    Container {
        source: String,
        container: String,
        tail: u64,
        since: Option<Duration>,
    },
    Activity {
        source: String,
        target: Box<PostgresProbe>,
    },
    /// Named by the heal but not buildable now (e.g. no container to read from).
    Unavailable { source: String, why: String },
}

impl SourcePlan {
    pub fn source(&self) -> &str {
        match self {
            Self::Files { source, .. }
            | Self::Container { source, .. }
            | Self::Activity { source, .. }
            | Self::Unavailable { source, .. } => source,
        }
    }
}

/// The host path behind `inside` (a path in the container): the mount with the longest
/// destination that contains it.
pub fn host_path(mounts: &[Mount], inside: &Path) -> Option<PathBuf> {
    mounts
        .iter()
        .filter_map(|mount| {
            let rest = inside.strip_prefix(&mount.destination).ok()?;
            Some((mount.destination.len(), Path::new(&mount.source).join(rest)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, path)| path)
}

pub async fn collect<D: ContainerApi, S: SqlApi>(
    docker: &D,
    sql: &S,
    plans: &[SourcePlan],
) -> (Vec<Entry>, Vec<SourceProblem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for plan in plans {
        let problem = |error: String| SourceProblem {
            source: plan.source().to_string(),
            error,
        };
        match collect_one(docker, sql, plan).await {
            Ok((found, notes)) => {
                entries.extend(found);
                problems.extend(notes.into_iter().map(problem));
            }
            Err(err) => problems.push(problem(err.to_string())),
        }
    }
    (entries, problems)
}

async fn collect_one<D: ContainerApi, S: SqlApi>(
    docker: &D,
    sql: &S,
    plan: &SourcePlan,
) -> Result<(Vec<Entry>, Vec<String>), ArchiveError> {
    match plan {
        SourcePlan::Files {
            source,
            container,
            path,
            include,
            max_bytes,
        } => {
            let root = match container {
                Some(container) => {
                    let mounts = docker.mounts(container).await?;
                    host_path(&mounts, path).ok_or_else(|| {
                        ArchiveError::Source(format!(
                            "{} is not on a mount of container {container}, so its files are not reachable from the host",
                            path.display()
                        ))
                    })?
                }
                None => path.clone(),
            };
            let (source, include, max_bytes) = (source.clone(), include.clone(), *max_bytes);
            crate::panic_policy::run_blocking(move || {
                read_files(&source, &root, &include, max_bytes)
            })
            .await
        }
        SourcePlan::Container {
            source,
            container,
            tail,
            since,
        } => {
            let mut entries = Vec::new();
            let mut notes = Vec::new();
            match docker.state(container).await {
                Ok(state) => entries.push(Entry {
                    path: format!("{source}/inspect.json"),
                    source: source.clone(),
                    origin: format!("docker inspect {container}"),
                    bytes: serde_json::to_vec_pretty(&state).expect("JSON value serializes"),
                }),
                Err(err) => notes.push(err.to_string()),
            }
            match docker.logs(container, *tail, *since).await {
                Ok(bytes) => entries.push(Entry {
                    path: format!("{source}/container.log"),
                    source: source.clone(),
                    origin: format!("docker logs --timestamps --tail {tail} {container}"),
                    bytes,
                }),
                Err(err) => notes.push(err.to_string()),
            }
            if entries.is_empty() {
                return Err(ArchiveError::Source(notes.join("; ")));
            }
            Ok((entries, notes))
        }
        SourcePlan::Activity { source, target } => {
            let rows = sql.activity(target).await?;
            Ok((
                vec![Entry {
                    path: format!("{source}/pg_stat_activity.json"),
                    source: source.clone(),
                    origin: format!("pg_stat_activity on {}:{}", target.host, target.port),
                    bytes: serde_json::to_vec_pretty(&rows).expect("JSON value serializes"),
                }],
                vec![],
            ))
        }
        SourcePlan::Unavailable { why, .. } => Err(ArchiveError::Source(why.clone())),
    }
}

/// Files under `root` matching `include`, in name order, within `max_bytes`: a file that does
/// not fit whole contributes its last bytes (a log's end is what a post-mortem reads first).
fn read_files(
    source: &str,
    root: &Path,
    include: &[String],
    max_bytes: u64,
) -> Result<(Vec<Entry>, Vec<String>), ArchiveError> {
    if !root.is_dir() {
        return Err(ArchiveError::Source(format!(
            "{} is not a readable directory",
            root.display()
        )));
    }
    let patterns: Vec<String> = match include.is_empty() {
        true => vec!["*".into()],
        false => include.to_vec(),
    };
    let mut files = Vec::new();
    let mut notes = Vec::new();
    for pattern in &patterns {
        let full = root.join(pattern);
        let matches = glob::glob(&full.to_string_lossy())
            .map_err(|err| ArchiveError::Source(format!("invalid glob {pattern}: {err}")))?;
        let before = files.len();
        files.extend(matches.flatten().filter(|p| p.is_file()));
        if files.len() == before {
            notes.push(format!("nothing matched {}", full.display()));
        }
    }
    files.sort();
    files.dedup();
    let mut left = max_bytes;
    let mut entries = Vec::new();
    let mut skipped = 0;
    for file in files {
        if left == 0 {
            skipped += 1;
            continue;
        }
        let relative = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .to_string_lossy()
            .into_owned();
        match read_tail(&file, left) {
            Ok((bytes, truncated)) => {
                left -= bytes.len() as u64;
                let origin = match truncated {
                    true => format!("{} (last {} bytes)", file.display(), bytes.len()),
                    false => file.display().to_string(),
                };
                entries.push(Entry {
                    path: format!("{source}/{relative}"),
                    source: source.to_string(),
                    origin,
                    bytes,
                });
            }
            Err(err) => notes.push(format!("cannot read {}: {err}", file.display())),
        }
    }
    if skipped > 0 {
        notes.push(format!(
            "{skipped} more files skipped: max_bytes ({max_bytes}) reached"
        ));
    }
    Ok((entries, notes))
}

fn read_tail(path: &Path, limit: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let truncated = size > limit;
    if truncated {
        file.seek(SeekFrom::Start(size - limit))?;
    }
    let mut bytes = Vec::with_capacity(size.min(limit) as usize);
    file.take(limit).read_to_end(&mut bytes)?;
    Ok((bytes, truncated))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn host_path_picks_the_longest_containing_mount() {
        let mounts = vec![
            Mount {
                source: "/srv/pg".into(),
                destination: "/var/lib/postgresql".into(),
            },
            Mount {
                source: "/srv/pgdata".into(),
                destination: "/var/lib/postgresql/data".into(),
            },
        ];
        let cases = [
            ("/var/lib/postgresql/data/log", Some("/srv/pgdata/log")),
            ("/var/lib/postgresql/data", Some("/srv/pgdata")),
            ("/var/lib/postgresql/other", Some("/srv/pg/other")),
            ("/var/lib/postgresql-old", None),
            ("/etc", None),
        ];
        for (inside, expected) in cases {
            assert_eq!(
                host_path(&mounts, Path::new(inside)),
                expected.map(PathBuf::from),
                "{inside}"
            );
        }
    }

    struct FakeDocker {
        mounts: Vec<Mount>,
        running: bool,
    }

    impl ContainerApi for FakeDocker {
        async fn mounts(&self, _: &str) -> Result<Vec<Mount>, ArchiveError> {
            Ok(self.mounts.clone())
        }
        async fn logs(
            &self,
            c: &str,
            tail: u64,
            _: Option<Duration>,
        ) -> Result<Vec<u8>, ArchiveError> {
            match self.running {
                true => Ok(format!("{c} said {tail}\n").into_bytes()),
                false => Err(ArchiveError::Source("no such container".into())),
            }
        }
        async fn state(&self, _: &str) -> Result<Value, ArchiveError> {
            match self.running {
                true => Ok(json!({"State": {"ExitCode": 137, "OOMKilled": false}})),
                false => Err(ArchiveError::Source("no such container".into())),
            }
        }
    }

    struct DeadSql;

    impl SqlApi for DeadSql {
        async fn activity(&self, _: &PostgresProbe) -> Result<Value, ArchiveError> {
            Err(ArchiveError::Source("connection refused".into()))
        }
    }

    #[tokio::test]
    async fn sources_fill_the_bundle_and_failures_become_problems() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("log")).unwrap();
        std::fs::write(data.join("log/a.log"), "first\n").unwrap();
        std::fs::write(data.join("log/b.log"), "0123456789").unwrap();
        std::fs::write(data.join("postgresql.conf"), "port = 5432\n").unwrap();
        let docker = FakeDocker {
            mounts: vec![Mount {
                source: data.display().to_string(),
                destination: "/pgdata".into(),
            }],
            running: true,
        };
        let plans = vec![
            SourcePlan::Files {
                source: "pg".into(),
                container: Some("db".into()),
                path: "/pgdata".into(),
                include: vec![
                    "log/*.log".into(),
                    "postgresql.conf".into(),
                    "pg_hba.conf".into(),
                ],
                // a.log (6) + the last 4 bytes of b.log; postgresql.conf skipped
                max_bytes: 10,
            },
            SourcePlan::Container {
                source: "logs".into(),
                container: "db".into(),
                tail: 5,
                since: None,
            },
            SourcePlan::Activity {
                source: "sql".into(),
                target: Box::new(PostgresProbe {
                    host: "127.0.0.1".into(),
                    port: 1,
                    user: "u".into(),
                    password: None,
                    database: "d".into(),
                    query: "SELECT 1".into(),
                    expect: Default::default(),
                    statement_timeout: Duration::from_secs(1),
                    expect_role: None,
                    max_replication_lag: None,
                    max_connections_used: None,
                }),
            },
        ];
        let (entries, problems) = collect(&docker, &DeadSql, &plans).await;
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "pg/log/a.log",
                "pg/log/b.log",
                "logs/inspect.json",
                "logs/container.log"
            ]
        );
        assert_eq!(entries[1].bytes, b"6789");
        assert!(
            entries[1].origin.ends_with("(last 4 bytes)"),
            "{}",
            entries[1].origin
        );
        assert_eq!(entries[3].bytes, b"db said 5\n");
        let problems: Vec<(String, String)> =
            problems.into_iter().map(|p| (p.source, p.error)).collect();
        assert!(
            problems.iter().any(|(s, e)| s == "pg"
                && e.contains("nothing matched")
                && e.contains("pg_hba.conf")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(s, e)| s == "pg" && e.contains("1 more files skipped")),
            "{problems:?}"
        );
        assert!(
            problems.contains(&("sql".into(), "connection refused".into())),
            "{problems:?}"
        );

        // a container path outside every mount is a problem, not a panic
        let outside = vec![SourcePlan::Files {
            source: "pg".into(),
            container: Some("db".into()),
            path: "/elsewhere".into(),
            include: vec![],
            max_bytes: 10,
        }];
        let (entries, problems) = collect(&docker, &DeadSql, &outside).await;
        assert!(entries.is_empty());
        assert!(
            problems[0].error.contains("not on a mount"),
            "{:?}",
            problems
        );
    }
}
