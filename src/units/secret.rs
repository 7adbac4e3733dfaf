//! Secrets kept in files (`token_file`, `url_file`, `secret_file`, `password_file`,
//! `read_token_file`): read on every load and reload, compared by content so a rotation is a change.
//!
//! A secret file must be a regular file (a symlink to one is followed) of at most 64 KiB, so a
//! FIFO or a device named by mistake fails the load at once instead of hanging or filling memory.
//!
//! The content lives in a [`Secret`], whose `Debug` prints nothing of it: nothing that formats a
//! config (logs, errors, events) can show a secret by accident.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use thiserror::Error;
use toml::Spanned;

use super::FileKind;

/// Text read from a secret file. Compared by content; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text itself: only for the place that uses it (a header, a password, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first line, trimmed (a URL, a password, an HMAC key).
    pub fn first_line(&self) -> &str {
        self.0.lines().next().unwrap_or("").trim()
    }

    /// Non-empty lines that are not `#` comments, trimmed (a token list).
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret file cannot be used. Messages name the file and the problem, never the content.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read {field} {path}: {source}")]
    Read {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{field} {path} is {kind}, not a regular file")]
    NotRegular {
        field: &'static str,
        path: PathBuf,
        kind: FileKind,
    },
    #[error("{field} {path} is larger than the {} KiB a secret file may hold", MAX_SECRET_BYTES / 1024)]
    TooLarge { field: &'static str, path: PathBuf },
    /// The source says where the text breaks; it holds no byte of the file.
    #[error("{field} {path} is not UTF-8 text")]
    NotText {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("{field} {path} is empty (expected {expected})")]
    Empty {
        field: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
}

/// The most a secret file may hold: tokens, a URL, a password, a key are far smaller.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// A path to a secret as written in the config, plus its content once [`SecretFile::read`] ran.
///
/// Equality covers the content: two configs naming the same file differ when the file changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretFile {
    pub path: Spanned<PathBuf>,
    content: Option<Secret>,
}

impl<'de> Deserialize<'de> for SecretFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            path: Spanned::<PathBuf>::deserialize(deserializer)?,
            content: None,
        })
    }
}

impl SecretFile {
    /// A secret file already read (tests and programmatic configs).
    pub fn with_content(path: impl Into<PathBuf>, content: impl Into<String>) -> Self {
        Self {
            path: Spanned::new(0..0, path.into()),
            content: Some(Secret::new(content)),
        }
    }

    pub fn path(&self) -> &Path {
        self.path.get_ref()
    }

    /// Read the file now (every load and reload does); `field` names it in errors.
    ///
    /// Opened without blocking (a FIFO with no writer does not hang the reload), then it must be
    /// a regular file of at most [`MAX_SECRET_BYTES`]. Symlinks are followed: Kubernetes and
    /// systemd credentials present secrets that way.
    pub fn read(&mut self, field: &'static str) -> Result<(), SecretError> {
        let path = self.path().to_path_buf();
        let read_error = |source| SecretError::Read {
            field,
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&path)
            .map_err(read_error)?;
        let file_type = file.metadata().map_err(read_error)?.file_type();
        if !file_type.is_file() {
            return Err(SecretError::NotRegular {
                field,
                path,
                kind: FileKind::of(file_type),
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_SECRET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge { field, path });
        }
        let text = String::from_utf8(bytes).map_err(|err| SecretError::NotText {
            field,
            path: path.clone(),
            source: err.utf8_error(),
        })?;
        self.content = Some(Secret::new(text));
        Ok(())
    }

    /// The content read at load; `None` only for a config that was never loaded from disk.
    pub fn content(&self) -> Option<&Secret> {
        self.content.as_ref()
    }

    /// The first line, or [`SecretError::Empty`] when there is none.
    pub fn first_line(
        &self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<&str, SecretError> {
        match self.content().map(Secret::first_line) {
            Some(line) if !line.is_empty() => Ok(line),
            _ => Err(SecretError::Empty {
                field,
                path: self.path().to_path_buf(),
                expected,
            }),
        }
    }

    /// Forget the content (what the diff compares when it asks "did anything but secrets change?").
    pub fn forget(&mut self) {
        self.content = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_content() {
        let file = SecretFile::with_content("/etc/x", "hunter2-MARKER");
        let shown = format!("{file:?} {:?}", Secret::new("hunter2-MARKER"));
        assert!(!shown.contains("MARKER"), "{shown}");
        assert!(shown.contains("/etc/x"), "{shown}");
    }

    #[test]
    fn equality_follows_the_content() {
        let a = SecretFile::with_content("/etc/x", "one");
        let b = SecretFile::with_content("/etc/x", "two");
        assert_ne!(a, b);
        assert_eq!(a, SecretFile::with_content("/etc/x", "one"));
    }

    #[test]
    fn lines_and_tokens() {
        let secret = Secret::new("  first \nsecond\n# comment\n\n third\n");
        assert_eq!(secret.first_line(), "first");
        assert_eq!(
            secret.tokens().collect::<Vec<_>>(),
            ["first", "second", "third"]
        );
        let empty = SecretFile::with_content("/etc/empty", "\n");
        let err = empty.first_line("url_file", "a URL").unwrap_err();
        assert_eq!(
            err.to_string(),
            "url_file /etc/empty is empty (expected a URL)"
        );
    }

    #[test]
    fn read_errors_name_the_file() {
        let mut missing = SecretFile::with_content("/nonexistent/secret", "");
        let err = missing.read("secret_file").unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read secret_file /nonexistent/secret: "),
            "{err}"
        );
    }

    /// A file that is not UTF-8 says where its text breaks (the source), and neither the
    /// message nor the source holds a byte of it.
    #[test]
    fn not_text_keeps_where_it_breaks_and_none_of_the_secret() {
        use std::error::Error;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, b"hunter2\xff").unwrap();
        let err = SecretFile::with_content(&path, "")
            .read("token_file")
            .unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            format!("token_file {} is not UTF-8 text", path.display())
        );
        let source = err.source().expect("where the text breaks").to_string();
        assert!(source.contains("from index 7"), "{source}");
        assert!(
            !format!("{text} {source} {err:?}").contains("hunter2"),
            "{err:?}"
        );
    }

    /// `read` on another thread, so a read that blocks fails the test instead of hanging it.
    fn read_within_a_second(path: &Path) -> Result<(), String> {
        let mut file = SecretFile::with_content(path, "");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(file.read("secret_file").map_err(|err| err.to_string()));
        });
        rx.recv_timeout(std::time::Duration::from_secs(1))
            .expect("reading the secret file blocked")
    }

    #[test]
    fn a_fifo_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("secret");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_within_a_second(&fifo).unwrap_err();
        assert_eq!(
            err,
            format!(
                "secret_file {} is a FIFO, not a regular file",
                fifo.display()
            )
        );
    }

    #[test]
    fn a_device_fails_at_once() {
        let err = read_within_a_second(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err,
            "secret_file /dev/zero is a character device, not a regular file"
        );
    }

    #[test]
    fn a_file_over_64_kib_fails_naming_the_limit_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let exactly = "k".repeat(MAX_SECRET_BYTES as usize);
        std::fs::write(&path, &exactly).unwrap();
        read_within_a_second(&path).unwrap();
        std::fs::write(&path, format!("{exactly}MARKER")).unwrap();
        let err = read_within_a_second(&path).unwrap_err();
        assert_eq!(
            err,
            format!(
                "secret_file {} is larger than the 64 KiB a secret file may hold",
                path.display()
            )
        );
        assert!(!err.contains("kkk") && !err.contains("MARKER"), "{err}");
    }

    #[test]
    fn a_symlink_to_a_regular_file_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        // the layout Kubernetes gives a mounted secret: ..data -> a timestamped directory
        let real = dir.path().join("..2024_01_01").join("token");
        std::fs::create_dir(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "s3cret\n").unwrap();
        let link = dir.path().join("token");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut file = SecretFile::with_content(&link, "");
        file.read("token_file").unwrap();
        assert_eq!(file.content().unwrap().first_line(), "s3cret");
    }
}
