//! Log output: journald when systemd connected our stderr to the journal, human-readable
//! stderr otherwise, JSON lines on request.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use clap::ValueEnum;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// journald under systemd, text otherwise
    Auto,
    Text,
    Json,
    Journald,
}

/// Which output `init` chose, so the caller can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Text,
    Json,
    Journald,
}

/// Install the global subscriber. `level` is a default filter; `RUST_LOG` overrides it.
pub fn init(format: LogFormat, level: &str, identifier: &str) -> LogTarget {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let wants_journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()),
        LogFormat::Text | LogFormat::Json => false,
    };
    if wants_journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_syslog_identifier(identifier.to_string())
                    .with_field_prefix(Some("SENTINEL".into()));
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .init();
                return LogTarget::Journald;
            }
            Err(err) => eprintln!("{identifier}: journald unavailable ({err}); logging to stderr"),
        }
    }
    if format == LogFormat::Json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        LogTarget::Json
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
        LogTarget::Text
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for the stream it connected to our stdout/stderr;
/// stderr going there (and not redirected since) means the journal is our log.
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((device, inode)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(meta) => meta.dev() == device && meta.ino() == inode,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_match_stderr() {
        let meta = std::fs::metadata("/proc/self/fd/2").unwrap();
        let matching = format!("{}:{}", meta.dev(), meta.ino());
        assert!(stderr_is_journal(Some(&matching)));
        assert!(!stderr_is_journal(Some(&format!(
            "{}:{}",
            meta.dev(),
            meta.ino() + 1
        ))));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(None));
    }
}

/// An error and its causes on one line, `outer: cause: root`, leaving out a cause whose text the
/// message before it already ends with: most of our errors name their cause in their own text
/// and keep it as `#[source]` too, and a reader should see it once.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config /c: {source}")]
    struct Repeats {
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Wraps {
        #[source]
        source: Repeats,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            error_chain(&Repeats { source: io() }),
            "cannot read config /c: no such file"
        );
        assert_eq!(
            error_chain(&Wraps {
                source: Repeats { source: io() }
            }),
            "cannot start: cannot read config /c: no such file"
        );
    }
}
