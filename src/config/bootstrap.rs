//! The few keys start-up needs before a config is accepted (state directory, chaos handle,
//! Docker socket), read tolerantly, so a crash's faults are undone whatever else the file says.

use std::path::PathBuf;

use toml::{Table, Value};

/// What rollback needs to know, each key only when the text gives a usable value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// `[daemon] state_dir`.
    pub state_dir: Option<PathBuf>,
    /// `[chaos] qdisc_handle`, as a major number.
    pub qdisc_handle: Option<u16>,
    /// `[docker] socket` (a paused container is unpaused through it).
    pub docker_socket: Option<PathBuf>,
    /// The whole text is not TOML: the keys came from their own sections alone.
    pub partial: bool,
}

impl Bootstrap {
    /// Read the keys from `source`, ignoring every other key and any schema error. When the
    /// text is not TOML at all, each section is read on its own (from its `[name]` header to
    /// the next header), so a typo in a probe does not hide the state directory.
    pub fn read(source: &str) -> Self {
        let whole = toml::from_str::<Table>(source).ok();
        let value = |section: &str, key: &str| -> Option<Value> {
            match &whole {
                Some(table) => table.get(section)?.get(key).cloned(),
                None => section_alone(source, section)?.get(key).cloned(),
            }
        };
        let path = |section, key| match value(section, key)? {
            // As the full parse reads it (an empty path fails later, just as it would there).
            Value::String(text) => Some(PathBuf::from(text)),
            _ => None,
        };
        Self {
            state_dir: path("daemon", "state_dir"),
            qdisc_handle: match value("chaos", "qdisc_handle") {
                Some(Value::String(text)) => crate::chaos::config::parse_handle_major(&text),
                _ => None,
            },
            docker_socket: path("docker", "socket"),
            partial: whole.is_none(),
        }
    }

    /// Each key from `self`, else from `other`.
    pub fn or(self, other: Bootstrap) -> Bootstrap {
        Bootstrap {
            state_dir: self.state_dir.or(other.state_dir),
            qdisc_handle: self.qdisc_handle.or(other.qdisc_handle),
            docker_socket: self.docker_socket.or(other.docker_socket),
            partial: self.partial || other.partial,
        }
    }
}

/// The body of the first `[section]` table, parsed on its own.
fn section_alone(source: &str, section: &str) -> Option<Table> {
    let mut lines = source.lines();
    lines.find(|line| header(line).is_some_and(|name| name == section))?;
    let body: Vec<&str> = lines.take_while(|line| header(line).is_none()).collect();
    toml::from_str::<Table>(&body.join("\n")).ok()
}

/// `[name]` or `[[name]]` (spaces and a trailing comment allowed): `name`, or `[[name]]`'s
/// brackets kept so an array of tables never matches a plain section.
fn header(line: &str) -> Option<&str> {
    let line = line.trim();
    if !line.starts_with('[') {
        return None;
    }
    let line = match line.find('#') {
        Some(comment) => line[..comment].trim_end(),
        None => line,
    };
    if line.starts_with("[[") {
        return Some(line);
    }
    line.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn reads_the_keys_of_a_valid_config() {
        let read = Bootstrap::read(
            "[daemon]\nstate_dir = \"/srv/s\"\n[chaos]\nqdisc_handle = \"5e7a:\"\n[docker]\nsocket = \"/d.sock\"\n",
        );
        assert_eq!(
            read,
            Bootstrap {
                state_dir: Some("/srv/s".into()),
                qdisc_handle: Some(0x5e7a),
                docker_socket: Some("/d.sock".into()),
                partial: false,
            }
        );
    }

    #[test]
    fn schema_errors_do_not_matter() {
        let read = Bootstrap::read(
            "[daemon]\nstate_dir = \"/srv/s\"\nsokcet = 1\n[[probe]]\nname = \"a\"\nkind = \"htp\"\n",
        );
        assert_eq!(read.state_dir, Some("/srv/s".into()));
        assert!(!read.partial);
    }

    #[test]
    fn a_syntax_error_elsewhere_still_gives_each_section() {
        let source = "[[probe]]\nname = \"api\nkind = \"tcp\"\n\n[ daemon ]  # where state lives\nstate_dir = \"/srv/s\"\n[daemon.extra]\n[chaos]\nqdisc_handle = \"5e7b\"\n[[chaos.profile]]\nname = \n";
        assert!(toml::from_str::<Table>(source).is_err());
        let read = Bootstrap::read(source);
        assert_eq!(read.state_dir, Some("/srv/s".into()));
        assert_eq!(read.qdisc_handle, Some(0x5e7b));
        assert_eq!(read.docker_socket, None);
        assert!(read.partial);
    }

    #[test]
    fn a_broken_section_or_a_bad_value_gives_nothing_for_it() {
        for source in [
            "[daemon]\nstate_dir = \n",
            "[daemon]\nstate_dir = 5\n",
            "[[daemon]]\nstate_dir = \"/x\"\n",
            "",
            "\u{0}\u{ff}garbage",
        ] {
            assert_eq!(Bootstrap::read(source).state_dir, None, "{source:?}");
        }
        for handle in ["\"0\"", "\"8000\"", "\"zz\"", "5"] {
            let source = format!("[chaos]\nqdisc_handle = {handle}\n");
            assert_eq!(Bootstrap::read(&source).qdisc_handle, None, "{source}");
        }
    }

    /// On any valid config, the tolerant reading agrees with the real one.
    #[test]
    fn agrees_with_the_full_parse() {
        for source in [
            super::super::EXAMPLE_CONFIG,
            "",
            "[daemon]\nstate_dir = \"/srv/s\"\n",
            "daemon = { state_dir = \"/inline\" }\nchaos.qdisc_handle = \"7fff\"\n",
        ] {
            let config = super::super::parse(source, Path::new("t.toml")).unwrap();
            let read = Bootstrap::read(source);
            assert_eq!(
                read.state_dir
                    .unwrap_or_else(|| config.daemon.state_dir.clone()),
                config.daemon.state_dir
            );
            assert_eq!(
                read.qdisc_handle
                    .unwrap_or(crate::chaos::DEFAULT_HANDLE_MAJOR),
                config.chaos.handle_major()
            );
            assert_eq!(
                read.docker_socket
                    .unwrap_or_else(|| config.docker.socket.clone()),
                config.docker.socket
            );
        }
    }

    #[test]
    fn or_prefers_self() {
        let a = Bootstrap {
            state_dir: Some("/a".into()),
            ..Default::default()
        };
        let b = Bootstrap {
            state_dir: Some("/b".into()),
            qdisc_handle: Some(1),
            ..Default::default()
        };
        let both = a.or(b);
        assert_eq!(both.state_dir, Some("/a".into()));
        assert_eq!(both.qdisc_handle, Some(1));
    }
}
