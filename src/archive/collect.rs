//! Turns a heal's `archive = [...]` into bundle entries: files by glob (a container path is
//! mapped to the host through the container's mounts), container logs and state, SQL activity.
//! A source that fails is reported in the manifest; the others still make the bundle.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::beneath::{Refusal, SkipReason, SourceDir};
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

/// Where a container path is on the host: below the host side of one of its mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    /// The mount's host side, which Docker reports and the container cannot move.
    pub mount: PathBuf,
    /// The rest of the path, which the container controls: resolved beneath `mount`.
    pub below: PathBuf,
}

/// The host path behind `inside` (a path in the container): the mount with the longest
/// destination that contains it.
pub fn host_path(mounts: &[Mount], inside: &Path) -> Option<HostPath> {
    mounts
        .iter()
        .filter_map(|mount| {
            let rest = inside.strip_prefix(&mount.destination).ok()?;
            let path = HostPath {
                mount: PathBuf::from(&mount.source),
                below: rest.to_path_buf(),
            };
            Some((mount.destination.len(), path))
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
        match collect_one(docker, sql, plan).await {
            Ok((found, notes)) => {
                entries.extend(found);
                problems.extend(notes);
            }
            Err(err) => problems.push(SourceProblem::new(plan.source(), err.to_string())),
        }
    }
    (entries, problems)
}

async fn collect_one<D: ContainerApi, S: SqlApi>(
    docker: &D,
    sql: &S,
    plan: &SourcePlan,
) -> Result<(Vec<Entry>, Vec<SourceProblem>), ArchiveError> {
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
                None => HostPath {
                    mount: path.clone(),
                    below: PathBuf::new(),
                },
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
                Err(err) => notes.push(SourceProblem::new(source, err.to_string())),
            }
            match docker.logs(container, *tail, *since).await {
                Ok(bytes) => entries.push(Entry {
                    path: format!("{source}/container.log"),
                    source: source.clone(),
                    origin: format!("docker logs --timestamps --tail {tail} {container}"),
                    bytes,
                }),
                Err(err) => notes.push(SourceProblem::new(source, err.to_string())),
            }
            if entries.is_empty() {
                let errors: Vec<String> = notes.into_iter().map(|n| n.error).collect();
                return Err(ArchiveError::Source(errors.join("; ")));
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
/// Nothing outside `root` is read: what a symlink leads out to, a magic link, a FIFO, socket
/// or device is skipped and named (see [`SourceDir`]).
fn read_files(
    source: &str,
    root: &HostPath,
    include: &[String],
    max_bytes: u64,
) -> Result<(Vec<Entry>, Vec<SourceProblem>), ArchiveError> {
    let dir =
        SourceDir::open(&root.mount, &root.below).map_err(|refusal| ArchiveError::SourceDir {
            path: root.mount.join(&root.below),
            refusal,
        })?;
    let patterns: Vec<String> = match include.is_empty() {
        true => vec!["*".into()],
        false => include.to_vec(),
    };
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let skipped = |path: &Path, refusal: Refusal| SourceProblem {
        source: source.to_string(),
        error: format!("skipped {}: it {refusal}", path.display()),
        path: Some(path.display().to_string()),
        skipped: Some(refusal.reason()),
    };
    let mut named = std::collections::BTreeSet::new();
    for pattern in &patterns {
        let found = dir
            .find(pattern)
            .map_err(|err| ArchiveError::Source(format!("invalid glob {pattern}: {err}")))?;
        if found.files.is_empty() && found.skipped.is_empty() {
            notes.push(SourceProblem::new(
                source,
                format!(
                    "nothing matched {}",
                    dir.shown(Path::new(pattern)).display()
                ),
            ));
        }
        if found.truncated {
            notes.push(SourceProblem::new(
                source,
                format!(
                    "stopped looking for {pattern} after {} entries (names listed and paths looked up)",
                    found.looked_at
                ),
            ));
        }
        if let Some(path) = &found.too_deep {
            notes.push(SourceProblem {
                source: source.to_string(),
                error: format!(
                    "{}: deeper than {} levels: not walked (nor anything as deep for {pattern})",
                    path.display(),
                    super::beneath::MAX_DEPTH
                ),
                path: Some(path.display().to_string()),
                skipped: Some(SkipReason::TooDeep),
            });
        }
        for (path, refusal) in found.skipped {
            if named.insert(path.clone()) {
                notes.push(skipped(&path, refusal));
            }
        }
        files.extend(found.files);
    }
    files.sort();
    files.dedup();
    let mut left = max_bytes;
    let mut entries = Vec::new();
    let mut over = 0;
    for file in files {
        if left == 0 {
            over += 1;
            continue;
        }
        let shown = dir.shown(&file);
        let opened = dir.open_file(&file);
        let read = match opened {
            Ok(opened) => read_tail(opened, left),
            // Swapped for a link or a FIFO since it was found: skipped like one.
            Err(refusal) => {
                notes.push(skipped(&file, refusal));
                continue;
            }
        };
        match read {
            Ok((bytes, truncated)) => {
                left -= bytes.len() as u64;
                let origin = match truncated {
                    true => format!("{} (last {} bytes)", shown.display(), bytes.len()),
                    false => shown.display().to_string(),
                };
                entries.push(Entry {
                    path: format!("{source}/{}", file.display()),
                    source: source.to_string(),
                    origin,
                    bytes,
                });
            }
            Err(err) => notes.push(SourceProblem::new(
                source,
                format!("cannot read {}: {err}", shown.display()),
            )),
        }
    }
    if over > 0 {
        notes.push(SourceProblem::new(
            source,
            format!("{over} more files skipped: max_bytes ({max_bytes}) reached"),
        ));
    }
    Ok((entries, notes))
}

/// The last `limit` bytes of `file` (all of it when it fits), and whether it was cut. A file
/// growing meanwhile still yields at most `limit` bytes.
fn read_tail(mut file: std::fs::File, limit: u64) -> std::io::Result<(Vec<u8>, bool)> {
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
    use crate::archive::SkipReason;

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
            ("/var/lib/postgresql/data/log", Some(("/srv/pgdata", "log"))),
            ("/var/lib/postgresql/data", Some(("/srv/pgdata", ""))),
            ("/var/lib/postgresql/other", Some(("/srv/pg", "other"))),
            ("/var/lib/postgresql-old", None),
            ("/etc", None),
        ];
        for (inside, expected) in cases {
            assert_eq!(
                host_path(&mounts, Path::new(inside)),
                expected.map(|(mount, below)| HostPath {
                    mount: mount.into(),
                    below: below.into()
                }),
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
                    timeout: Duration::from_secs(1),
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

    #[tokio::test]
    async fn files_sources_skip_and_name_what_leaves_the_mount() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(data.join("log")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.log"), "OUTSIDE-SECRET\n").unwrap();
        std::fs::write(data.join("log/current.log"), "now\n").unwrap();
        symlink(outside.join("secret.log"), data.join("log/evil.log")).unwrap();
        symlink(&outside, data.join("log/sub")).unwrap();
        symlink("current.log", data.join("log/latest.log")).unwrap();
        nix::unistd::mkfifo(
            &data.join("log/pipe.log"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        symlink(&outside, data.join("moved")).unwrap();
        let docker = FakeDocker {
            mounts: vec![Mount {
                source: data.display().to_string(),
                destination: "/data".into(),
            }],
            running: true,
        };
        let files = |path: &str| SourcePlan::Files {
            source: "logs".into(),
            container: Some("c".into()),
            path: path.into(),
            include: vec!["log/**/*.log".into(), "*.log".into()],
            max_bytes: 1 << 20,
        };
        let (entries, problems) = collect(&docker, &DeadSql, &[files("/data")]).await;
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["logs/log/current.log", "logs/log/latest.log"]);
        assert!(entries.iter().all(|e| e.bytes == b"now\n"));
        assert_eq!(
            entries[1].origin,
            data.join("log/latest.log").display().to_string()
        );
        let skipped: Vec<(Option<&str>, Option<SkipReason>)> = problems
            .iter()
            .map(|p| (p.path.as_deref(), p.skipped))
            .collect();
        assert_eq!(
            skipped,
            [
                (Some("log/evil.log"), Some(SkipReason::EscapesRoot)),
                (Some("log/pipe.log"), Some(SkipReason::NotRegularFile)),
                (Some("log/sub"), Some(SkipReason::EscapesRoot)),
                // `*.log` at the top matched nothing
                (None, None),
            ],
            "{problems:?}"
        );
        assert_eq!(
            problems[0].error,
            "skipped log/evil.log: it leads out of the directory sentineld may read (an absolute symlink, or `..` through one)"
        );

        // the container replaced the source directory itself with a link out of the mount
        let (entries, problems) = collect(&docker, &DeadSql, &[files("/data/moved")]).await;
        assert!(entries.is_empty(), "{entries:?}");
        assert!(
            problems[0].error.ends_with("/data/moved: leads out of the directory sentineld may read (an absolute symlink, or `..` through one)"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_file_growing_while_read_still_yields_at_most_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.log");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    file.write_all(&[b'y'; 65536]).unwrap();
                }
            })
        };
        let root = HostPath {
            mount: dir.path().into(),
            below: PathBuf::new(),
        };
        for _ in 0..20 {
            let (entries, _) = read_files("s", &root, &["*.log".into()], 10_000).unwrap();
            assert!(
                entries[0].bytes.len() <= 10_000,
                "{}",
                entries[0].bytes.len()
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
    }
}
