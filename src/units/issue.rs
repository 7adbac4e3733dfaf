//! `Issue`: a validation finding named by the key it is about (`probe[2].timeout`), so an area
//! can check its own section without knowing where the section sits in the file.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// One step of a key path: a table key or an index into an array (of tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value sits in the TOML document, e.g. `tenants.alert[0].threshold`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// `prefix` followed by this path.
    fn under(mut self, prefix: &KeyPath) -> Self {
        self.0.splice(0..0, prefix.0.iter().cloned());
        self
    }
}

/// `"alert[0].threshold"`: keys separated by dots, each optionally followed by `[index]`s.
impl From<&str> for KeyPath {
    fn from(text: &str) -> Self {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, mut indices) = part
                .split_once('[')
                .map_or((part, ""), |(k, rest)| (k, rest));
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_string()));
            }
            while let Some((index, rest)) = indices.split_once(']') {
                if let Ok(index) = index.parse() {
                    segments.push(Segment::Index(index));
                }
                indices = rest.trim_start_matches('[');
            }
        }
        Self(segments)
    }
}

/// Segments as they are: a key holding a dot (`dims."service.version"`) stays one key.
impl From<Vec<Segment>> for KeyPath {
    fn from(segments: Vec<Segment>) -> Self {
        Self(segments)
    }
}

impl From<String> for KeyPath {
    fn from(text: String) -> Self {
        Self::from(text.as_str())
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A validation finding: what is wrong, and the keys it is about, most precise first. The
/// loader points at the first of them the file sets (a key left at its default is not in the
/// file: `timeout` above `interval` is then reported where `interval` is written).
#[derive(Debug, Clone)]
pub struct Issue {
    keys: Vec<KeyPath>,
    message: String,
    /// The error behind the finding, when there is one (a CA file that does not read): kept so
    /// the placed `ConfigError` still has it as its source.
    source: Option<Arc<dyn Error + Send + Sync>>,
}

/// Two findings are the same when they say the same about the same keys.
impl PartialEq for Issue {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys && self.message == other.message
    }
}

impl Eq for Issue {}

impl Issue {
    /// A finding about `key`, relative to the section being validated.
    pub fn at(key: impl Into<KeyPath>, message: impl Into<String>) -> Self {
        Self {
            keys: vec![key.into()],
            message: message.into(),
            source: None,
        }
    }

    /// The error this finding comes from; the message should already say it in words.
    pub fn because(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The error behind the finding, shared with every error placed from it.
    pub fn cause(&self) -> Option<Arc<dyn Error + Send + Sync>> {
        self.source.clone()
    }

    /// Also about `key`: pointed at when the keys before it are not written in the file.
    pub fn or_at(mut self, key: impl Into<KeyPath>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// The same finding seen from the enclosing table: `within("tenants")` turns `window` into
    /// `tenants.window`, `within("probe[2]")` turns `timeout` into `probe[2].timeout`.
    pub fn within(mut self, prefix: impl Into<KeyPath>) -> Self {
        let prefix = prefix.into();
        self.keys = self.keys.into_iter().map(|k| k.under(&prefix)).collect();
        self
    }

    /// The keys, most precise first.
    pub fn keys(&self) -> &[KeyPath] {
        &self.keys
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.keys.first() {
            Some(key) if !key.0.is_empty() => write!(f, "{key}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl Error for Issue {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_parse_nest_and_print() {
        for text in [
            "probe[2].timeout",
            "tenants.alert[0].threshold",
            "a[1][2].b",
            "x",
        ] {
            assert_eq!(KeyPath::from(text).to_string(), text);
        }
        let issue = Issue::at("timeout", "too long")
            .or_at("interval")
            .within("probe[2]");
        assert_eq!(issue.to_string(), "probe[2].timeout: too long");
        assert_eq!(issue.keys()[1].to_string(), "probe[2].interval");
        assert_eq!(
            KeyPath::from("step[1].expect[0].probe").segments()[1],
            Segment::Index(1)
        );
    }
}
