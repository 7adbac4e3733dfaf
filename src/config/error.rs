//! Config errors: every message names the file and, when it comes from the text, line and column.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or schema error, or a semantic check that points at a value in the file.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A semantic check about the file as a whole (no single value to point at).
    #[error("{path}: {message}")]
    Whole { path: PathBuf, message: String },
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
    use super::line_column;

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
