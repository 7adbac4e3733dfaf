//! Rollback that needs no accepted config: what a crash left in the chaos journal is undone
//! before the daemon reads its config, and by `sentineld rollback` (the unit's `ExecStopPost=`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::state::{self, StateLock};
use super::{paths, DaemonError};
use crate::chaos::{ChaosEngine, LinuxHost, Recovery};
use crate::config::{self, Bootstrap, ChaosSection};
use crate::docker::DockerEngine;
use crate::event::Bus;
use crate::journal::{JournalStore, DATABASE_FILE};

/// The daemon's first step: choose the state directory from what the config text allows (a
/// broken or missing config falls back to its `[daemon]` section alone, then to the default),
/// lock it, and roll back every experiment an earlier run left, all before the config is
/// parsed. Only a directory that cannot be used or is locked by another daemon stops the start.
pub(super) async fn at_start(
    source: Option<&str>,
    is_root: bool,
    notes: &mut Vec<String>,
) -> Result<(PathBuf, StateLock), DaemonError> {
    let from_config = source.map(Bootstrap::read).unwrap_or_default();
    let wanted = from_config
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::paths::DEFAULT_STATE_DIR));
    let state_dir = paths::state_dir(&wanted, is_root, notes)?;
    let lock = StateLock::acquire(&state_dir)?;
    if from_config.partial {
        tracing::warn!(
            state_dir = %state_dir.display(),
            "the config is not valid TOML; its [daemon] section, read on its own, chose the state directory"
        );
    }
    match undo(&state_dir, &from_config).await {
        Ok(recovery) if recovery.is_empty() => {}
        Ok(recovery) if recovery.is_clean() => tracing::warn!(
            experiments = ?recovery.ids(),
            swept = recovery.swept.len(),
            "rolled back what an earlier run left, before reading the config"
        ),
        Ok(recovery) => tracing::error!(
            "rollback of what an earlier run left is incomplete: {}",
            recovery_lines(&recovery).join("; ")
        ),
        Err(err) => tracing::error!("cannot roll back what an earlier run left: {err}"),
    }
    Ok((state_dir, lock))
}

/// What `sentineld rollback` did, and where.
#[derive(Debug)]
pub struct RollbackOutcome {
    /// The state directory rolled back in; `None` when no candidate holds a journal.
    pub state_dir: Option<PathBuf>,
    /// Every directory looked at, in order.
    pub looked_in: Vec<PathBuf>,
    pub recovery: Recovery,
    /// Why a default was used (unreadable config, ...).
    pub notes: Vec<String>,
}

impl RollbackOutcome {
    /// Everything left behind is undone (or nothing was left).
    pub fn is_clean(&self) -> bool {
        self.recovery.is_clean()
    }

    /// What to print, one line each.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = self.notes.clone();
        match &self.state_dir {
            None => lines.push(format!(
                "nothing to roll back: no journal in {}",
                join_paths(&self.looked_in)
            )),
            Some(dir) if self.recovery.is_empty() => lines.push(format!(
                "nothing to roll back in {}: no unfinished experiment, no orphaned qdisc",
                dir.display()
            )),
            Some(_) => lines.extend(recovery_lines(&self.recovery)),
        }
        lines
    }
}

/// `sentineld rollback`: roll back in `state_dir`, else in the directory the config at
/// `config_path` names (read tolerantly), else in the default. Idempotent; refuses while a
/// daemon holds the directory, since its experiments are its own to end.
pub async fn rollback(
    config_path: &Path,
    state_dir: Option<PathBuf>,
) -> Result<RollbackOutcome, DaemonError> {
    let is_root = nix::unistd::geteuid().is_root();
    let mut notes = Vec::new();
    let from_config = match config::read_source(config_path) {
        Ok(text) => Bootstrap::read(&text),
        Err(err) => {
            if state_dir.is_none() {
                notes.push(format!("{err}; looking in the default state directory"));
            }
            Bootstrap::default()
        }
    };
    let explicit = state_dir.is_some();
    let wanted = state_dir
        .or_else(|| from_config.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from(config::paths::DEFAULT_STATE_DIR));
    let looked_in = state::candidates(wanted, explicit, is_root);
    // As the daemon does: a non-root run that was not told where skips what it cannot write.
    let usable = |dir: &Path| {
        explicit
            || is_root
            || nix::unistd::access(
                dir,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
            .is_ok()
    };
    let Some(found) = looked_in
        .iter()
        .find(|dir| dir.join(DATABASE_FILE).is_file() && usable(dir))
        .cloned()
    else {
        return Ok(RollbackOutcome {
            state_dir: None,
            looked_in,
            recovery: Recovery::default(),
            notes,
        });
    };
    let _lock = StateLock::acquire(&found)?;
    let recovery = undo(&found, &from_config).await?;
    Ok(RollbackOutcome {
        state_dir: Some(found),
        looked_in,
        recovery,
        notes,
    })
}

/// Roll back every unfinished experiment journaled in `state_dir` and sweep orphans, with the
/// settings of the last accepted config (the daemon that made the changes ran on it), else
/// those of `from_config`; the events go to the journal as the daemon would have stored them.
async fn undo(state_dir: &Path, from_config: &Bootstrap) -> Result<Recovery, DaemonError> {
    let settings = state::last_accepted(state_dir)
        .map(|text| Bootstrap::read(&text))
        .unwrap_or_default()
        .or(from_config.clone());
    let defaults = ChaosSection::default();
    let docker = DockerEngine::new(
        &settings
            .docker_socket
            .unwrap_or_else(|| PathBuf::from(crate::docker::DEFAULT_SOCKET)),
    );
    let host = LinuxHost::unprobed(
        defaults.cgroup_root.clone(),
        settings
            .qdisc_handle
            .unwrap_or(crate::chaos::DEFAULT_HANDLE_MAJOR),
        docker.clone(),
    )
    .with_state_dir(state_dir.to_path_buf());
    let bus = Bus::new();
    let mut events = bus.subscribe();
    let engine = ChaosEngine::open(
        state_dir,
        Arc::new(host),
        defaults.settings(),
        bus.clone(),
        docker,
    )?;
    let recovery = engine.recover().await;
    drop(engine);
    let mut happened = Vec::new();
    while let Ok(event) = events.try_recv() {
        happened.push(event);
    }
    if !happened.is_empty() {
        let path = state_dir.join(DATABASE_FILE);
        let stored =
            crate::panic_policy::run_blocking(move || JournalStore::open(&path)?.append(happened))
                .await;
        if let Err(err) = stored {
            tracing::warn!(error = %err, "rolled back, but the chaos_rolled_back events are not journaled");
        }
    }
    Ok(recovery)
}

fn recovery_lines(recovery: &Recovery) -> Vec<String> {
    let mut lines = Vec::new();
    for experiment in &recovery.experiments {
        lines.push(match experiment.ok {
            true => format!("rolled back {}", experiment.id),
            false => format!("FAILED to roll back {} completely", experiment.id),
        });
        let undone = experiment
            .log
            .iter()
            .filter(|line| !line.starts_with("applied "));
        lines.extend(undone.map(|line| format!("  {line}")));
    }
    for swept in &recovery.swept {
        lines.push(match &swept.result {
            Ok(done) => format!("swept orphan {}: {done}", swept.qdisc),
            Err(err) => format!("FAILED to sweep orphan {}: {err}", swept.qdisc),
        });
    }
    for problem in &recovery.problems {
        lines.push(format!("FAILED: {problem}"));
    }
    lines
}

fn join_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::{ChaosError, Recovered, Swept};

    #[test]
    fn lines_say_what_was_undone_and_what_failed() {
        let outcome = RollbackOutcome {
            state_dir: Some("/s".into()),
            looked_in: vec!["/s".into()],
            recovery: Recovery {
                experiments: vec![
                    Recovered {
                        id: "x1".into(),
                        ok: true,
                        log: vec!["applied a: ok".into(), "reverted a: deleted".into()],
                    },
                    Recovered {
                        id: "x2".into(),
                        ok: false,
                        log: vec!["FAILED to revert b: EPERM".into()],
                    },
                ],
                swept: vec![Swept {
                    qdisc: "tbf 5e1d: on lo".into(),
                    result: Err(ChaosError::Cgroup("no".into())),
                }],
                problems: vec![ChaosError::Journal("row x3: bad".into())],
            },
            notes: vec![],
        };
        assert!(!outcome.is_clean());
        assert_eq!(
            outcome.lines(),
            [
                "rolled back x1",
                "  reverted a: deleted",
                "FAILED to roll back x2 completely",
                "  FAILED to revert b: EPERM",
                "FAILED to sweep orphan tbf 5e1d: on lo: cgroup: no",
                "FAILED: experiment journal: row x3: bad",
            ]
        );
    }

    #[test]
    fn nothing_to_do_is_said_with_where_it_looked() {
        let mut outcome = RollbackOutcome {
            state_dir: None,
            looked_in: vec!["/a".into(), "/b".into()],
            recovery: Recovery::default(),
            notes: vec!["cannot read config /c".into()],
        };
        assert!(outcome.is_clean());
        assert_eq!(
            outcome.lines(),
            [
                "cannot read config /c",
                "nothing to roll back: no journal in /a or /b"
            ]
        );
        outcome.state_dir = Some("/a".into());
        assert_eq!(
            outcome.lines()[1],
            "nothing to roll back in /a: no unfinished experiment, no orphaned qdisc"
        );
    }

    #[tokio::test]
    async fn a_busy_state_dir_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DATABASE_FILE), b"").unwrap();
        let _held = StateLock::acquire(dir.path()).unwrap();
        let err = rollback(Path::new("/nonexistent.toml"), Some(dir.path().into()))
            .await
            .unwrap_err();
        assert!(matches!(err, DaemonError::StateBusy { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_missing_journal_is_nothing_to_do_and_is_not_created() {
        // (A present journal would also sweep this host's namespaces: the integration tests do that.)
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let outcome = rollback(Path::new("/nonexistent.toml"), Some(missing.clone()))
            .await
            .unwrap();
        assert_eq!(outcome.state_dir, None);
        assert_eq!(outcome.looked_in, std::slice::from_ref(&missing));
        assert!(!missing.exists());
    }
}
