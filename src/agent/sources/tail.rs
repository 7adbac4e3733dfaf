//! Follows one log file by name across rename rotation and truncation (copytruncate), and
//! resumes from a saved (device, inode, offset), even when that file was rotated meanwhile.
//!
//! Plain synchronous reads: the caller decides when to poll (notify event or timer).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::agent::config::StartAt;

/// A file's identity: kept across renames, new when another file takes the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The byte just after a line in a given file: where reading resumes once that line is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePos {
    #[serde(flatten)]
    pub file: FileId,
    pub offset: u64,
}

/// One complete line (newline removed, invalid UTF-8 replaced) and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub end: FilePos,
}

const READ_CHUNK: usize = 64 * 1024;

struct OpenFile {
    file: File,
    /// Where it was opened from: the tailed name, or the rotated name found at resume.
    opened_as: PathBuf,
    id: FileId,
    /// Offset of the first byte of `pending`.
    offset: u64,
    /// Bytes read after the last newline.
    pending: Vec<u8>,
    /// Inside a line longer than the limit: drop bytes until the next newline.
    skipping: bool,
}

/// Tails `path`. Rotation: once the name points at another file, the old one is read until it
/// has been quiet for `rotate_wait` (writers keep appending until they reopen), then the new
/// one from its start. Truncation: a file shorter than our offset is read again from 0.
pub struct FileTail {
    path: PathBuf,
    current: Option<OpenFile>,
    resume: Option<FilePos>,
    start_at: StartAt,
    rotate_wait: Duration,
    /// Since when the old file (after a rotation) has given nothing new.
    quiet_since: Option<Instant>,
    max_line: usize,
    /// Lines dropped for exceeding `max_line`.
    pub too_long: u64,
    missing_reported: bool,
    /// `start_at` applies only to the very first file, never to one that appears later.
    opened_before: bool,
}

impl FileTail {
    pub fn new(
        path: PathBuf,
        resume: Option<FilePos>,
        start_at: StartAt,
        rotate_wait: Duration,
        max_line: usize,
    ) -> Self {
        Self {
            path,
            current: None,
            resume,
            start_at,
            rotate_wait,
            quiet_since: None,
            max_line: max_line.max(1),
            too_long: 0,
            missing_reported: false,
            opened_before: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read every complete line available now; true when anything was read.
    pub fn poll(&mut self, now: Instant, emit: &mut dyn FnMut(Line)) -> io::Result<bool> {
        if self.current.is_none() && !self.open(now)? {
            return Ok(false);
        }
        let progress = self.read_current(emit)?;
        if let Some(quiet_since) = self.rotation_pending(now, progress) {
            if now.duration_since(quiet_since) >= self.rotate_wait {
                self.finish_rotated(emit);
                if self.open(now)? {
                    self.read_current(emit)?;
                }
                return Ok(true);
            }
        }
        Ok(progress)
    }

    /// When the name now points at another file, since when the old one has been quiet.
    fn rotation_pending(&mut self, now: Instant, progress: bool) -> Option<Instant> {
        let current = self.current.as_ref()?;
        let moved = match std::fs::metadata(&self.path) {
            Ok(meta) => FileId::of(&meta) != current.id,
            // Renamed and not recreated yet: nothing to switch to.
            Err(_) => false,
        } || current.opened_as != self.path;
        if !moved {
            self.quiet_since = None;
            return None;
        }
        if progress || self.quiet_since.is_none() {
            self.quiet_since = Some(now);
        }
        self.quiet_since
    }

    /// The rotated file is done: a last line without a newline still counts.
    fn finish_rotated(&mut self, emit: &mut dyn FnMut(Line)) {
        if let Some(mut old) = self.current.take() {
            if !old.pending.is_empty() && !old.skipping {
                old.offset += old.pending.len() as u64;
                emit(Line {
                    text: String::from_utf8_lossy(&old.pending).into_owned(),
                    end: FilePos {
                        file: old.id,
                        offset: old.offset,
                    },
                });
            }
            tracing::info!(path = %self.path.display(), "rotated file finished; following the new one");
        }
        self.quiet_since = None;
    }

    /// Open the file to read next; false when it does not exist (yet).
    fn open(&mut self, now: Instant) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if !self.missing_reported {
                    tracing::warn!(path = %self.path.display(), "log file does not exist yet; waiting for it");
                    self.missing_reported = true;
                }
                return Ok(false);
            }
            Err(err) => return Err(err),
        };
        self.missing_reported = false;
        let id = FileId::of(&file.metadata()?);
        let (mut file, opened_as, offset) = match self.resume.take() {
            // A file shorter than the saved offset is caught as truncated by the first read.
            Some(saved) if saved.file == id => (file, self.path.clone(), saved.offset),
            Some(saved) => match find_rotated(&self.path, saved.file) {
                Some(rotated) => {
                    tracing::info!(path = %self.path.display(), rotated = %rotated.display(), "resuming in the rotated file first");
                    self.quiet_since = Some(now);
                    (File::open(&rotated)?, rotated, saved.offset)
                }
                None => {
                    tracing::warn!(path = %self.path.display(), "the file read before the restart was rotated away and is gone; reading the current one from its start");
                    (file, self.path.clone(), 0)
                }
            },
            None if self.start_at == StartAt::End && !self.opened_before => {
                let size = file.metadata()?.len();
                (file, self.path.clone(), size)
            }
            None => (file, self.path.clone(), 0),
        };
        file.seek(SeekFrom::Start(offset))?;
        self.opened_before = true;
        self.current = Some(OpenFile {
            id: FileId::of(&file.metadata()?),
            file,
            opened_as,
            offset,
            pending: Vec::new(),
            skipping: false,
        });
        Ok(true)
    }

    /// Read to the end of the current file, emitting complete lines.
    fn read_current(&mut self, emit: &mut dyn FnMut(Line)) -> io::Result<bool> {
        let Some(current) = self.current.as_mut() else {
            return Ok(false);
        };
        let size = current.file.metadata()?.len();
        if size < current.offset + current.pending.len() as u64 {
            tracing::warn!(path = %self.path.display(), size, offset = current.offset, "log file was truncated; reading it again from the start");
            current.file.seek(SeekFrom::Start(0))?;
            current.offset = 0;
            current.pending.clear();
            current.skipping = false;
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut progress = false;
        loop {
            let read = current.file.read(&mut chunk)?;
            if read == 0 {
                return Ok(progress);
            }
            progress = true;
            current.pending.extend_from_slice(&chunk[..read]);
            self.too_long += split_lines(current, self.max_line, emit);
        }
    }
}

/// Emit the complete lines in `pending`; returns how many were dropped as too long.
fn split_lines(current: &mut OpenFile, max_line: usize, emit: &mut dyn FnMut(Line)) -> u64 {
    let mut dropped = 0;
    let mut start = 0;
    while let Some(newline) = current.pending[start..].iter().position(|b| *b == b'\n') {
        let line = &current.pending[start..start + newline];
        let end = current.offset + (start + newline + 1) as u64;
        if current.skipping {
            current.skipping = false;
        } else if line.len() > max_line {
            dropped += 1;
        } else if !line.is_empty() {
            emit(Line {
                text: String::from_utf8_lossy(line).into_owned(),
                end: FilePos {
                    file: current.id,
                    offset: end,
                },
            });
        }
        start += newline + 1;
    }
    current.offset += start as u64;
    current.pending.drain(..start);
    if current.pending.len() > max_line {
        if !current.skipping {
            dropped += 1;
        }
        current.skipping = true;
        current.offset += current.pending.len() as u64;
        current.pending.clear();
    }
    dropped
}

/// A file next to `path` (e.g. `access.log.1`) that is the file with identity `id`.
fn find_rotated(path: &Path, id: FileId) -> Option<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|candidate| {
            std::fs::symlink_metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && FileId::of(&meta) == id)
        })
}

#[cfg(test)]
#[path = "tail_tests.rs"]
mod tests;
