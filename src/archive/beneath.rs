//! Reads a `files` source without ever leaving its directory: every path is resolved by the
//! kernel from the directory's fd (`openat2` RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so a
//! symlink planted by a container can point the root daemon at nothing outside it.
//!
//! A link that stays inside is followed; one that leads out (absolute, `..`, through a linked
//! directory), a `/proc` magic link, a loop, a FIFO, socket or device is refused with a
//! [`Refusal`] that the manifest names. Only regular files are ever opened for reading: the
//! entry is first opened `O_PATH` (which never blocks, nor has a device's open side effects),
//! checked, and that very inode is reopened through `/proc/self/fd`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::units::FileKind;

/// Why an entry was skipped, as the manifest's `problems[].skipped` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    EscapesRoot,
    MagicLink,
    SymlinkLoop,
    NotFound,
    NotRegularFile,
    Unreadable,
    /// A directory more than [`MAX_DEPTH`] levels below the source: not walked.
    TooDeep,
}

/// Why an entry under a source directory was not read.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "leads out of the directory sentineld may read (an absolute symlink, or `..` through one)"
    )]
    EscapesRoot,
    #[error("is a magic link (like /proc/PID/root) that could lead anywhere")]
    MagicLink,
    #[error("is a symlink loop")]
    SymlinkLoop,
    #[error("does not exist (or is a dangling symlink)")]
    NotFound,
    #[error("is {0}, not a regular file")]
    NotRegularFile(FileKind),
    #[error("cannot be read safely: the kernel lacks openat2 (Linux 5.6 or later)")]
    NoOpenat2,
    #[error("cannot be opened")]
    Io(#[source] Errno),
}

impl Refusal {
    pub fn reason(&self) -> SkipReason {
        match self {
            Self::EscapesRoot => SkipReason::EscapesRoot,
            Self::MagicLink => SkipReason::MagicLink,
            Self::SymlinkLoop => SkipReason::SymlinkLoop,
            Self::NotFound => SkipReason::NotFound,
            Self::NotRegularFile(_) => SkipReason::NotRegularFile,
            Self::NoOpenat2 | Self::Io(_) => SkipReason::Unreadable,
        }
    }
}

/// The most entries one pattern may look at: every name read from a directory, and every
/// literal path looked up, counts. A directory holding millions of files, or one reachable by
/// many links, costs time, not safety, but collection must end.
pub(super) const MAX_VISITS: usize = 100_000;

/// The deepest a `**` walk goes, in directories below the source: a container can build a
/// chain far deeper, and the walk recurses once per level.
pub(super) const MAX_DEPTH: usize = 32;

/// How often a lookup the kernel asks to retry (EAGAIN: a rename raced it) is tried.
const RETRIES: usize = 8;

/// A source directory, held open: every path below it is resolved from this fd.
pub struct SourceDir {
    fd: OwnedFd,
    /// The directory's host path, for the manifest's `origin`.
    shown: PathBuf,
}

/// What a pattern found: regular files to read and entries refused, both relative to the
/// source directory, in name order.
#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<(PathBuf, Refusal)>,
    /// Set when the walk stopped at [`MAX_VISITS`] entries.
    pub truncated: bool,
    /// Entries looked at (names listed and literal paths looked up): at most [`MAX_VISITS`].
    pub looked_at: usize,
    /// The first directory (in walk order) more than [`MAX_DEPTH`] levels down that `**` did
    /// not walk into, if any.
    pub too_deep: Option<PathBuf>,
}

enum Part {
    /// `**`: zero or more directories.
    AnyDepth,
    Literal(OsString),
    Glob(glob::Pattern),
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn parts(pattern: &str) -> Result<Vec<Part>, glob::PatternError> {
    let mut parts = Vec::new();
    for piece in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        parts.push(match piece {
            "**" => Part::AnyDepth,
            _ if glob::Pattern::escape(piece) == piece => Part::Literal(piece.into()),
            _ => Part::Glob(glob::Pattern::new(piece)?),
        });
    }
    // `dir/**` means every file below `dir`.
    if matches!(parts.last(), Some(Part::AnyDepth) | None) {
        parts.push(Part::Glob(glob::Pattern::new("*")?));
    }
    Ok(parts)
}

fn how(flags: OFlag, resolve: ResolveFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve)
}

fn relative(path: &Path) -> &Path {
    match path.as_os_str().is_empty() {
        true => Path::new("."),
        false => path,
    }
}

/// `openat2` below `dir`, refusing escapes and magic links; errors become [`Refusal`]s.
fn open_beneath(dir: impl AsFd, path: &Path, flags: OFlag) -> Result<OwnedFd, Refusal> {
    let path = relative(path);
    let strict = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        let err = match openat2(dir.as_fd(), path, how(flags, strict)) {
            Ok(fd) => return Ok(fd),
            Err(err) => err,
        };
        return Err(match err {
            Errno::EAGAIN if tries < RETRIES => {
                tries += 1;
                continue;
            }
            Errno::EXDEV => Refusal::EscapesRoot,
            // A magic link (refused by NO_MAGICLINKS) or a loop: without NO_MAGICLINKS a magic
            // link still fails a scoped lookup, but with EXDEV, while a loop stays ELOOP.
            Errno::ELOOP => {
                match openat2(
                    dir.as_fd(),
                    path,
                    how(OFlag::O_PATH, ResolveFlag::RESOLVE_BENEATH),
                ) {
                    Err(Errno::EXDEV) => Refusal::MagicLink,
                    _ => Refusal::SymlinkLoop,
                }
            }
            Errno::ENOENT => Refusal::NotFound,
            Errno::ENOSYS => Refusal::NoOpenat2,
            other => Refusal::Io(other),
        });
    }
}

fn metadata(fd: OwnedFd) -> Result<(OwnedFd, Metadata), Refusal> {
    let file = File::from(fd);
    let metadata = file
        .metadata()
        .map_err(|e| Refusal::Io(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    Ok((file.into(), metadata))
}

impl SourceDir {
    /// `anchor` is trusted as it is (the configured path, or the host side of a container's
    /// mount); `below` (the rest of a container path) is resolved beneath it, so a directory
    /// the container replaced with a symlink cannot move the whole source.
    pub fn open(anchor: &Path, below: &Path) -> Result<Self, Refusal> {
        let anchor_fd = nix::fcntl::open(
            anchor,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| match err {
            Errno::ENOENT => Refusal::NotFound,
            other => Refusal::Io(other),
        })?;
        let below = below.strip_prefix("/").unwrap_or(below);
        let fd = open_beneath(&anchor_fd, below, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        Ok(Self {
            fd,
            shown: anchor.join(below),
        })
    }

    /// The host path of `relative`, for display only (never opened by this name).
    pub fn shown(&self, relative: &Path) -> PathBuf {
        self.shown.join(relative)
    }

    /// An `O_PATH` handle on `relative` (links inside followed) and what it is.
    fn lookup(&self, relative: &Path) -> Result<(OwnedFd, Metadata), Refusal> {
        metadata(open_beneath(&self.fd, relative, OFlag::O_PATH)?)
    }

    /// What `relative` is (links inside followed); no fd stays open, so a walk holds none
    /// across its recursion.
    fn stat(&self, relative: &Path) -> Result<Metadata, Refusal> {
        self.lookup(relative).map(|(_, metadata)| metadata)
    }

    /// `relative` opened for reading, if it is a regular file inside the directory.
    pub fn open_file(&self, relative: &Path) -> Result<File, Refusal> {
        let (handle, metadata) = self.lookup(relative)?;
        match FileKind::of(metadata.file_type()) {
            FileKind::Regular => {}
            kind => return Err(Refusal::NotRegularFile(kind)),
        }
        // The very inode checked above (a rename since cannot swap in a FIFO or a device).
        let reopen = format!("/proc/self/fd/{}", handle.as_raw_fd());
        let fd = nix::fcntl::open(
            reopen.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(Refusal::Io)?;
        Ok(File::from(fd))
    }

    /// Names in `relative` (a directory), with the type readdir reports when it does, sorted;
    /// at most `limit` of them, and whether that was all.
    fn list(&self, relative: &Path, limit: usize) -> Result<(Names, bool), Refusal> {
        let fd = open_beneath(&self.fd, relative, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(Refusal::Io)?;
        let mut names = Vec::new();
        let mut complete = true;
        for entry in dir.iter() {
            let entry = entry.map_err(Refusal::Io)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if names.len() >= limit {
                complete = false;
                break;
            }
            names.push((OsStr::from_bytes(name).to_owned(), entry.file_type()));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((names, complete))
    }

    /// Whether `name` exists in the directory `parent` as an entry (a dangling link counts),
    /// without following it.
    fn has_entry(&self, parent: &Path, name: &OsStr) -> bool {
        let Ok(parent) = open_beneath(&self.fd, parent, OFlag::O_PATH | OFlag::O_DIRECTORY) else {
            return false;
        };
        nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// Regular files matching `pattern` (a glob relative to the directory: `*`, `?`, `[..]`
    /// within a name, `**` for any depth), and what matched but was refused.
    pub fn find(&self, pattern: &str) -> Result<Found, glob::PatternError> {
        let parts = parts(pattern)?;
        let mut walk = Walk {
            dir: self,
            files: Vec::new(),
            skipped: BTreeMap::new(),
            looked_at: 0,
            truncated: false,
            too_deep: None,
            ancestors: Vec::new(),
        };
        if let Ok(root) = nix::sys::stat::fstat(&self.fd) {
            walk.ancestors.push((root.st_dev, root.st_ino));
        }
        walk.parts(Path::new(""), &parts);
        let mut files = walk.files;
        files.sort();
        files.dedup();
        Ok(Found {
            files,
            skipped: walk.skipped.into_iter().collect(),
            truncated: walk.truncated,
            looked_at: walk.looked_at,
            too_deep: walk.too_deep,
        })
    }
}

/// A directory's names and the types readdir gave them.
type Names = Vec<(OsString, Option<nix::dir::Type>)>;

struct Walk<'a> {
    dir: &'a SourceDir,
    files: Vec<PathBuf>,
    skipped: BTreeMap<PathBuf, Refusal>,
    /// Names listed plus literal paths looked up, charged against [`MAX_VISITS`].
    looked_at: usize,
    truncated: bool,
    too_deep: Option<PathBuf>,
    /// (device, inode) of the directories from the root down to the current one under `**`.
    ancestors: Vec<(u64, u64)>,
}

impl Walk<'_> {
    fn skip(&mut self, path: PathBuf, refusal: Refusal) {
        self.skipped.entry(path).or_insert(refusal);
    }

    /// Charge one literal lookup; false (and the walk marked truncated) once the budget is spent.
    fn budget(&mut self) -> bool {
        if self.looked_at >= MAX_VISITS {
            self.truncated = true;
            return false;
        }
        self.looked_at += 1;
        true
    }

    /// Match `parts` below the directory `at`.
    fn parts(&mut self, at: &Path, parts: &[Part]) {
        let Some((first, rest)) = parts.split_first() else {
            return;
        };
        match first {
            Part::Literal(name) => {
                let path = at.join(name);
                // A literal that is simply absent is "nothing matched", not a skipped entry.
                if self.budget() && self.dir.has_entry(at, name) {
                    self.entry(path, rest);
                }
            }
            Part::Glob(pattern) => {
                let names = self.listing(at);
                self.glob(at, pattern, rest, names.as_deref());
            }
            Part::AnyDepth => {
                // Listed once, for both `**` matching nothing here and `**` going deeper.
                let names = self.listing(at);
                match rest.split_first() {
                    Some((Part::Glob(pattern), after)) => {
                        self.glob(at, pattern, after, names.as_deref())
                    }
                    _ => self.parts(at, rest),
                }
                for (name, kind) in names.iter().flatten() {
                    use nix::dir::Type;
                    if matches!(kind, Some(t) if *t != Type::Directory && *t != Type::Symlink) {
                        continue;
                    }
                    let path = at.join(name);
                    // Only metadata is kept: no fd stays open across the recursion below.
                    let looked = self.dir.stat(&path);
                    match looked {
                        Ok(meta) if meta.is_dir() => {
                            if path.components().count() > MAX_DEPTH {
                                self.too_deep.get_or_insert(path);
                                continue;
                            }
                            let id = (meta.dev(), meta.ino());
                            if self.ancestors.contains(&id) {
                                self.skip(path, Refusal::SymlinkLoop);
                                continue;
                            }
                            self.ancestors.push(id);
                            self.parts(&path, parts);
                            self.ancestors.pop();
                        }
                        Ok(_) => {}
                        Err(refusal) => self.skip(path, refusal),
                    }
                }
            }
        }
    }

    /// Match `pattern` against `names` (the listing of `at`, if it could be listed), then `rest`
    /// below each match.
    fn glob(
        &mut self,
        at: &Path,
        pattern: &glob::Pattern,
        rest: &[Part],
        names: Option<&[(OsString, Option<nix::dir::Type>)]>,
    ) {
        for (name, _) in names.into_iter().flatten() {
            if pattern.matches_with(&name.to_string_lossy(), MATCH) {
                self.entry(at.join(name), rest);
            }
        }
    }

    /// The names in `at`, each charged to the budget: only as many as it has left.
    fn listing(&mut self, at: &Path) -> Option<Names> {
        #[cfg(test)]
        tests::note_open_fds();
        let left = MAX_VISITS.saturating_sub(self.looked_at);
        match self.dir.list(at, left) {
            Ok((names, complete)) => {
                self.looked_at += names.len();
                // Listed partly: said so, as for a walk that ran out of entries.
                self.truncated |= !complete;
                Some(names)
            }
            Err(Refusal::NotFound) => None,
            // A directory that is there but cannot be listed: say so (the root, or a dir).
            Err(refusal) => {
                self.skip(at.to_path_buf(), refusal);
                None
            }
        }
    }

    /// `path` matched its part; `rest` is what must still match below it.
    fn entry(&mut self, path: PathBuf, rest: &[Part]) {
        // Only metadata is kept: no fd stays open across the recursion below.
        let looked = self.dir.stat(&path);
        match (looked, rest.is_empty()) {
            (Ok(meta), true) => match FileKind::of(meta.file_type()) {
                FileKind::Regular => self.files.push(path),
                FileKind::Directory => {}
                kind => self.skip(path, Refusal::NotRegularFile(kind)),
            },
            (Ok(meta), false) if meta.is_dir() => self.parts(&path, rest),
            (Ok(_), false) => {}
            (Err(refusal), _) => self.skip(path, refusal),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::symlink;

    use super::*;

    thread_local! {
        /// The most fds this process had open at any directory listing of this thread's walk,
        /// while measured (`Some`).
        static PEAK_FDS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// Test hook called at every directory listing.
    pub(super) fn note_open_fds() {
        PEAK_FDS.with(|peak| {
            if let Some(most) = peak.get() {
                peak.set(Some(most.max(open_fds())));
            }
        });
    }

    /// A source directory `root` next to an `outside` directory holding a secret.
    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("log/old")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.log"), "OUTSIDE-SECRET").unwrap();
        std::fs::write(root.join("log/current.log"), "now\n").unwrap();
        std::fs::write(root.join("log/old/rotated.log"), "then\n").unwrap();
        std::fs::write(root.join("app.conf"), "x = 1\n").unwrap();
        Tree {
            _dir: dir,
            root,
            outside,
        }
    }

    fn reasons(found: &Found) -> Vec<(String, SkipReason)> {
        found
            .skipped
            .iter()
            .map(|(p, r)| (p.display().to_string(), r.reason()))
            .collect()
    }

    fn names(found: &Found) -> Vec<String> {
        found
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    fn read(dir: &SourceDir, path: &str) -> String {
        let mut text = String::new();
        dir.open_file(Path::new(path))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn links_that_leave_are_refused_and_links_that_stay_are_followed() {
        use SkipReason::*;
        let t = tree();
        let log = t.root.join("log");
        let secret = t.outside.join("secret.log");
        symlink(&secret, log.join("absolute.log")).unwrap();
        symlink("../../outside/secret.log", log.join("dotdot.log")).unwrap();
        symlink(&t.outside, log.join("linked-dir")).unwrap();
        symlink("../..", log.join("up")).unwrap();
        symlink("/etc/shadow", log.join("shadow.log")).unwrap();
        symlink(
            format!("/proc/self/root{}", secret.display()),
            log.join("proc.log"),
        )
        .unwrap();
        // inside: a file link, a link going up and back down, a linked directory
        symlink("current.log", log.join("latest.log")).unwrap();
        symlink("../log/old/rotated.log", log.join("up-and-back.log")).unwrap();
        symlink("old", log.join("archive")).unwrap();
        symlink("missing.log", log.join("dangling.log")).unwrap();

        let dir = SourceDir::open(&t.root, Path::new("")).unwrap();
        let found = dir.find("log/**/*.log").unwrap();
        assert_eq!(
            names(&found),
            [
                "log/archive/rotated.log",
                "log/current.log",
                "log/latest.log",
                "log/old/rotated.log",
                "log/up-and-back.log"
            ]
        );
        assert_eq!(
            reasons(&found),
            [
                ("log/absolute.log".into(), EscapesRoot),
                ("log/dangling.log".into(), NotFound),
                ("log/dotdot.log".into(), EscapesRoot),
                ("log/linked-dir".into(), EscapesRoot),
                ("log/proc.log".into(), EscapesRoot),
                ("log/shadow.log".into(), EscapesRoot),
                ("log/up".into(), EscapesRoot),
            ]
        );
        assert_eq!(read(&dir, "log/latest.log"), "now\n");
        assert_eq!(read(&dir, "log/up-and-back.log"), "then\n");

        // a glob through a linked directory, and a literal path through one
        for pattern in [
            "log/linked-dir/*.log",
            "log/linked-dir/secret.log",
            "log/up/*/*",
        ] {
            let found = dir.find(pattern).unwrap();
            assert!(found.files.is_empty(), "{pattern}: {:?}", found.files);
            let first = pattern.split('/').take(2).collect::<Vec<_>>().join("/");
            assert_eq!(reasons(&found), [(first, EscapesRoot)], "{pattern}");
        }
        // and opening by name directly is refused the same way
        for path in [
            "log/absolute.log",
            "log/dotdot.log",
            "log/linked-dir/secret.log",
        ] {
            let err = dir.open_file(Path::new(path)).unwrap_err();
            assert_eq!(err.reason(), EscapesRoot, "{path}");
        }
    }

    #[test]
    fn the_source_directory_itself_cannot_be_moved_by_a_link_below_the_mount() {
        let t = tree();
        symlink(&t.outside, t.root.join("data")).unwrap();
        symlink("../outside", t.root.join("up")).unwrap();
        for below in ["data", "up", "/data", "log/../../outside"] {
            let err = SourceDir::open(&t.root, Path::new(below)).err().unwrap();
            assert_eq!(err.reason(), SkipReason::EscapesRoot, "{below}");
        }
        let inside = SourceDir::open(&t.root, Path::new("/log")).unwrap();
        assert_eq!(names(&inside.find("*.log").unwrap()), ["current.log"]);
        assert_eq!(inside.shown(Path::new("a")), t.root.join("log/a"));
    }

    #[test]
    fn magic_links_loops_and_special_files_are_named_without_blocking() {
        use SkipReason::*;
        // /proc/self/{root,cwd} are magic links: refused even though they are "inside" /proc/self
        let proc = SourceDir::open(Path::new("/proc/self"), Path::new("")).unwrap();
        for pattern in ["root/etc/hostname", "cwd/*", "root"] {
            let found = proc.find(pattern).unwrap();
            assert!(found.files.is_empty(), "{pattern}: {:?}", found.files);
            assert_eq!(
                reasons(&found),
                [(pattern.split('/').next().unwrap().into(), MagicLink)],
                "{pattern}"
            );
        }

        let t = tree();
        let log = t.root.join("log");
        nix::unistd::mkfifo(&log.join("pipe.log"), Mode::from_bits_truncate(0o644)).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(log.join("sock.log")).unwrap();
        symlink("pipe.log", log.join("to-pipe.log")).unwrap();
        symlink("loop-b.log", log.join("loop-a.log")).unwrap();
        symlink("loop-a.log", log.join("loop-b.log")).unwrap();
        symlink("..", log.join("old/parent")).unwrap();
        let dir = SourceDir::open(&t.root, Path::new("")).unwrap();
        // a FIFO without a writer would block a plain open; this returns at once
        let started = std::time::Instant::now();
        let found = dir.find("**/*.log").unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(names(&found), ["log/current.log", "log/old/rotated.log"]);
        assert_eq!(
            reasons(&found),
            [
                ("log/loop-a.log".into(), SymlinkLoop),
                ("log/loop-b.log".into(), SymlinkLoop),
                ("log/old/parent".into(), SymlinkLoop),
                ("log/pipe.log".into(), NotRegularFile),
                ("log/sock.log".into(), NotRegularFile),
                ("log/to-pipe.log".into(), NotRegularFile),
            ]
        );
        let err = dir.open_file(Path::new("log/pipe.log")).unwrap_err();
        assert!(
            matches!(err, Refusal::NotRegularFile(FileKind::Fifo)),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "is a FIFO, not a regular file");
        let devnull = SourceDir::open(Path::new("/dev"), Path::new("")).unwrap();
        let err = devnull.open_file(Path::new("null")).unwrap_err();
        assert!(
            matches!(err, Refusal::NotRegularFile(FileKind::CharDevice)),
            "{err:?}"
        );
    }

    #[test]
    fn patterns_match_like_glob_within_the_directory() {
        let t = tree();
        std::fs::write(t.root.join(".hidden.conf"), "h").unwrap();
        std::fs::write(t.root.join("log/current.txt"), "t").unwrap();
        let dir = SourceDir::open(&t.root, Path::new("")).unwrap();
        let cases: [(&str, &[&str]); 8] = [
            ("*", &[".hidden.conf", "app.conf"]),
            ("*.conf", &[".hidden.conf", "app.conf"]),
            ("./log/*.log", &["log/current.log"]),
            ("log/current.???", &["log/current.log", "log/current.txt"]),
            ("log/[c]urrent.log", &["log/current.log"]),
            (
                "log/**",
                &["log/current.log", "log/current.txt", "log/old/rotated.log"],
            ),
            ("**/rotated.log", &["log/old/rotated.log"]),
            ("nothing/*.log", &[]),
        ];
        for (pattern, expected) in cases {
            let found = dir.find(pattern).unwrap();
            assert_eq!(names(&found), expected, "{pattern}");
            assert!(found.skipped.is_empty(), "{pattern}: {:?}", found.skipped);
        }
        assert!(dir.find("log/a**").is_err());
    }

    #[test]
    fn a_deep_chain_is_walked_to_the_depth_cap_holding_few_fds() {
        let t = tree();
        let chain = t.root.join("chain");
        let mut deepest = chain.clone();
        for level in 0..200 {
            std::fs::create_dir(&deepest).unwrap();
            std::fs::write(deepest.join("f.log"), format!("{level}")).unwrap();
            deepest.push("d");
        }
        let dir = SourceDir::open(&chain, Path::new("")).unwrap();
        let before = open_fds();
        PEAK_FDS.with(|peak| peak.set(Some(0)));
        let started = std::time::Instant::now();
        let found = dir.find("**/*.log").unwrap();
        let peak = PEAK_FDS.with(|peak| peak.take()).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // directories 0..=32 levels below the source are walked, each holding one f.log
        assert_eq!(found.files.len(), MAX_DEPTH + 1, "{:?}", found.files);
        let level = |n: usize| ["d"; 200][..n].iter().collect::<PathBuf>();
        assert!(found.files.contains(&level(MAX_DEPTH).join("f.log")));
        assert_eq!(found.too_deep, Some(level(MAX_DEPTH + 1)));
        assert!(found.skipped.is_empty(), "{:?}", found.skipped);
        assert!(!found.truncated);
        // no fd per level is held across the recursion (other tests' threads add a few)
        assert!(
            peak <= before + 8,
            "{peak} fds open during the walk, {before} before"
        );
    }

    #[test]
    fn a_big_directory_behind_many_links_is_listed_within_the_budget() {
        let t = tree();
        let big = t.root.join("big");
        std::fs::create_dir(&big).unwrap();
        for n in 0..5_000 {
            std::fs::write(big.join(format!("{n:04}.log")), "").unwrap();
        }
        for n in 0..50 {
            symlink("big", t.root.join(format!("via-{n:02}"))).unwrap();
        }
        let dir = SourceDir::open(&t.root, Path::new("")).unwrap();
        let started = std::time::Instant::now();
        let found = dir.find("**").unwrap();
        let took = started.elapsed();
        assert!(found.truncated);
        assert!(found.looked_at <= MAX_VISITS, "{}", found.looked_at);
        assert!(took < std::time::Duration::from_secs(30), "{took:?}");
        // what sorts first is complete: big/ itself (listed once for `**` and its `*`)
        let in_big = found.files.iter().filter(|f| f.starts_with("big")).count();
        assert_eq!(in_big, 5_000);
    }
}
