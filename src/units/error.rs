//! Errors of our TOML files: every message names the file and, when it comes from the text,
//! line and column; an [`Issue`] found by an area is placed at the key it names. And
//! [`UnitError`]: why a duration, size or rate does not read, with the number's own error kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use toml::de::{DeTable, DeValue};

use super::{Issue, KeyPath, Segment};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or schema error, or a semantic check that points at a value in the file; a
    /// check that failed because of another error (a file the value names) keeps it.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// A semantic check about a key the file does not set, nor any table around it.
    #[error("{path}: {message}")]
    Whole { path: PathBuf, message: String },
}

/// A duration, size or rate that does not read: each message says how to write it, and the
/// parser's own error (humantime's, or the number's) stays reachable as the source.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum UnitError {
    #[error("invalid duration \"{text}\": {source} (write e.g. 30s, 5m, 2h, 7d)")]
    Duration {
        text: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("invalid size \"{text}\": write a number of bytes, or a number and a unit: B, kB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. 8MiB")]
    Size {
        text: String,
        #[source]
        source: Option<NumberError>,
    },
    /// "1.5": a bare number is a whole number of bytes.
    #[error("invalid size \"{text}\": a size without a unit is a whole number of bytes; add a unit, e.g. 1.5KiB")]
    SizeWithoutUnit { text: String },
    /// "1g", "2T": GiB or GB is not guessed.
    #[error(
        "invalid size \"{text}\": write GiB (powers of 1024) or GB (powers of 1000), e.g. 1GiB"
    )]
    SizeAmbiguous { text: String },
    /// "8Mbit", "1MB/s": a rate where a size belongs.
    #[error("invalid size \"{text}\": a size is in bytes (B, kB, KiB, ...); rates such as 8mbit/s are for tbf's rate")]
    SizeIsARate { text: String },
    #[error("size \"{text}\" is too large")]
    SizeTooLarge {
        text: String,
        #[source]
        source: Option<NumberError>,
    },
    #[error("invalid rate \"{text}\": write a number and a unit: bit/s, kbit/s, mbit/s, gbit/s (bits) or B/s, kB/s, MB/s, GB/s (bytes)")]
    Rate {
        text: String,
        #[source]
        source: Option<NumberError>,
    },
    #[error("rate \"{text}\" must be at least 1 B/s")]
    RateTooSmall { text: String },
}

/// Why the number in front of a unit does not read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NumberError {
    #[error(transparent)]
    Whole(#[from] std::num::ParseIntError),
    #[error(transparent)]
    Fraction(#[from] std::num::ParseFloatError),
}

/// Deserializes a TOML file of ours and runs `validate` on it, placing a syntax or schema error
/// at its file:line:col and a finding at the first of its keys that the file sets.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    source: &str,
    path: &Path,
    validate: impl FnOnce(&T) -> Result<(), Issue>,
) -> Result<T, ConfigError> {
    let value: T = toml::from_str(source).map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        invalid_at(source, path, offset, err.message().trim().to_string(), None)
    })?;
    validate(&value).map_err(|issue| place(source, path, &issue))?;
    Ok(value)
}

/// The error that points at `issue`'s key in `source`: the first of its keys the file sets,
/// else the nearest table around the first key, else the file as a whole.
pub fn place(source: &str, path: &Path, issue: &Issue) -> ConfigError {
    let keys = issue.keys();
    let offset = keys
        .iter()
        .find_map(|key| locate(source, key).filter(|found| found.exact))
        .or_else(|| keys.first().and_then(|key| locate(source, key)));
    match offset {
        Some(found) => invalid_at(
            source,
            path,
            found.offset,
            issue.message().to_string(),
            issue.cause(),
        ),
        None => ConfigError::Whole {
            path: path.to_path_buf(),
            message: issue.to_string(),
        },
    }
}

fn invalid_at(
    text: &str,
    path: &Path,
    offset: usize,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
) -> ConfigError {
    let (line, column) = line_column(text, offset);
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message,
        source,
    }
}

/// Where a key path leads in a document: the start of the value it names (`exact`), or of the
/// deepest table on its way that the text writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    offset: usize,
    exact: bool,
}

fn locate(source: &str, key: &KeyPath) -> Option<Found> {
    let root = DeValue::Table(DeTable::parse(source).ok()?.into_inner());
    let mut node = &root;
    let mut found = None;
    for segment in key.segments() {
        let next = match segment {
            Segment::Key(name) => node.get(name.as_str()),
            Segment::Index(index) => node.get(*index),
        };
        let Some(next) = next else {
            return found.map(|offset| Found {
                offset,
                exact: false,
            });
        };
        // Tables only implied by a deeper header (`[a.b]` implies `a`) have no text of their own.
        let span = next.span();
        if !span.is_empty() {
            found = Some(span.start);
        }
        node = next.get_ref();
    }
    found.map(|offset| Found {
        offset,
        exact: true,
    })
}

/// 1-based line and column (in characters) of a byte offset in `source`.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source
        .get(..offset)
        .unwrap_or_else(|| &source[..floor_char_boundary(source, offset)]);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(source: &str, mut offset: usize) -> usize {
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_land_on_their_key_or_the_table_around_it() {
        let source = "[journal]\nmax_events = 0\n\n[[probe]]\nname = \"a\"\n\n[[probe]]\nname = \"b\"\ninterval = \"2s\"\nheal = { action = \"exec\", window = \"0s\" }\n\n[tenants.ingest]\nmax_body = 1\n";
        let cases = [
            (Issue::at("journal.max_events", "m"), "t.toml:2:14: m"),
            (Issue::at("probe[1].name", "m"), "t.toml:8:8: m"),
            // not written: the next key named, else the table the key would be in
            (
                Issue::at("probe[1].timeout", "m").or_at("probe[1].interval"),
                "t.toml:9:12: m",
            ),
            (
                Issue::at("probe[0].timeout", "m").or_at("probe[0].interval"),
                "t.toml:4:1: m",
            ),
            (Issue::at("probe[1].heal.window", "m"), "t.toml:10:36: m"),
            (Issue::at("tenants.ingest.max_body", "m"), "t.toml:13:12: m"),
            // `tenants` is only named in the `[tenants.ingest]` header: point there
            (Issue::at("tenants.window", "m"), "t.toml:12:2: m"),
            // nothing of the key nor of its tables is in the file: about the file as a whole
            (
                Issue::at("chaos.max_concurrent", "m"),
                "t.toml: chaos.max_concurrent: m",
            ),
        ];
        for (issue, expected) in cases {
            let err = place(source, Path::new("t.toml"), &issue).to_string();
            assert_eq!(err, expected, "{issue}");
        }
    }

    #[test]
    fn line_column_table() {
        let source = "a = 1\n[x]\nkey = \"héllo\" bad\n";
        let cases = [
            (0, (1, 1)),
            (4, (1, 5)),
            (6, (2, 1)),
            (10, (3, 1)),
            // after the two-byte 'é' the column counts characters, not bytes
            (source.find("bad").unwrap(), (3, 15)),
            (10_000, (4, 1)),
        ];
        for (offset, expected) in cases {
            assert_eq!(line_column(source, offset), expected, "offset {offset}");
        }
    }
}
