//! Secrets kept in files (`token_file`, `url_file`, `secret_file`, `password_file`,
//! `read_token_file`): read on every load and reload, compared by content so a rotation is a change.
//!
//! The content lives in a [`Secret`], whose `Debug` prints nothing of it: nothing that formats a
//! config (logs, errors, events) can show a secret by accident.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use thiserror::Error;
use toml::Spanned;

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
    #[error("{field} {path} is empty (expected {expected})")]
    Empty {
        field: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
}

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
    pub fn read(&mut self, field: &'static str) -> Result<(), SecretError> {
        let text = std::fs::read_to_string(self.path()).map_err(|source| SecretError::Read {
            field,
            path: self.path().to_path_buf(),
            source,
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
    pub(super) fn forget(&mut self) {
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
}
