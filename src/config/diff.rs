//! What changed between the running config and a new one, so reload touches only that.
//! Secret files count by content: a rotated token is a change, reported by name, never shown.

use std::collections::BTreeMap;

use super::{Config, ProbeConfig};

/// The difference between two valid configs, computed before anything is touched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigDiff {
    pub probes_added: Vec<String>,
    pub probes_removed: Vec<String>,
    pub probes_changed: Vec<String>,
    pub journal_changed: bool,
    /// `enabled` or `listen`: the listener moves, starts or stops.
    pub http_changed: bool,
    /// `metrics`, `status_page`, `tenants` or the read tokens: applied to the running listener.
    pub http_access_changed: bool,
    pub tenants_changed: bool,
    /// Which parts of `[archive]` and `[notify]` differ ("archive sink", "notify channels").
    pub remedy_changed: Vec<String>,
    pub drills_changed: bool,
    /// `[chaos]` (profiles, guardrails); running experiments keep the settings they started with.
    pub chaos_changed: bool,
    pub ai_changed: bool,
    /// `[heartbeat]`: the check-in loop takes the new settings at once.
    pub heartbeat_changed: bool,
    /// `[[maintenance]]`: the schedules are taken at once.
    pub maintenance_changed: bool,
    /// `[docker]` discovery settings (the socket needs a restart).
    pub discovery_changed: bool,
    /// Settings read once at start (`[daemon]`, the Docker socket) that differ: they need a
    /// restart.
    pub restart_required: Vec<String>,
    /// What [`ConfigDiff::changes`] reports: the sections that changed apart from secrets, then
    /// each secret file whose content changed ("ingest tokens (from token_file) changed").
    described: Vec<String>,
}

impl ConfigDiff {
    /// The flags say what to apply (a rotated secret re-applies its section); the description
    /// names a section only when more than its secrets changed.
    pub fn between(old: &Config, new: &Config) -> Self {
        let mut diff = Self::compare(old, new);
        let bare = Self::compare(
            &old.without_secret_contents(),
            &new.without_secret_contents(),
        );
        diff.described = bare.flag_lines();
        diff.described.extend(secret_changes(old, new));
        diff
    }

    fn compare(old: &Config, new: &Config) -> Self {
        let old_probes = by_name(&old.probes);
        let new_probes = by_name(&new.probes);
        let mut diff = ConfigDiff {
            journal_changed: old.journal != new.journal,
            http_changed: (old.http.enabled, old.http.listen)
                != (new.http.enabled, new.http.listen),
            http_access_changed: (
                &old.http.metrics,
                &old.http.status_page,
                &old.http.tenants,
                &old.http.read_tokens,
                &old.http.read_token_file,
            ) != (
                &new.http.metrics,
                &new.http.status_page,
                &new.http.tenants,
                &new.http.read_tokens,
                &new.http.read_token_file,
            ),
            tenants_changed: old.tenants != new.tenants,
            drills_changed: old.drills != new.drills,
            chaos_changed: old.chaos != new.chaos,
            ai_changed: old.ai != new.ai,
            heartbeat_changed: old.heartbeat != new.heartbeat,
            maintenance_changed: old.maintenance != new.maintenance,
            discovery_changed: {
                let (a, b) = (&old.docker, &new.docker);
                (&a.discover, &a.defaults, a.max_discovered, &a.only_label)
                    != (&b.discover, &b.defaults, b.max_discovered, &b.only_label)
            },
            ..Default::default()
        };
        diff.remedy_changed = remedy_changes(old, new);
        for (name, probe) in &new_probes {
            match old_probes.get(name) {
                None => diff.probes_added.push(name.to_string()),
                Some(old_probe) if *old_probe != *probe => {
                    diff.probes_changed.push(name.to_string())
                }
                Some(_) => {}
            }
        }
        diff.probes_removed = old_probes
            .keys()
            .filter(|name| !new_probes.contains_key(*name))
            .map(|name| name.to_string())
            .collect();

        let (a, b) = (&old.daemon, &new.daemon);
        let fields = [
            ("daemon.state_dir", a.state_dir != b.state_dir),
            ("daemon.socket", a.socket != b.socket),
            ("daemon.socket_group", a.socket_group != b.socket_group),
            (
                "daemon.socket_mode",
                a.socket_mode_bits() != b.socket_mode_bits(),
            ),
            ("docker.socket", old.docker.socket != new.docker.socket),
        ];
        diff.restart_required = fields
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(field, _)| field.to_string())
            .collect();
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.changes().is_empty() && self.restart_required.is_empty()
    }

    /// Human-readable list of what a reload will do ("probe api added", "journal retention",
    /// "ingest tokens (from token_file) changed").
    pub fn changes(&self) -> Vec<String> {
        self.described.clone()
    }

    fn flag_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.probes_added.iter().map(|n| format!("probe {n} added")));
        out.extend(
            self.probes_changed
                .iter()
                .map(|n| format!("probe {n} changed")),
        );
        out.extend(
            self.probes_removed
                .iter()
                .map(|n| format!("probe {n} removed")),
        );
        if self.journal_changed {
            out.push("journal retention changed".into());
        }
        if self.http_changed {
            out.push("http listener changed".into());
        }
        if self.http_access_changed {
            out.push("http access changed".into());
        }
        if self.tenants_changed {
            out.push("tenants changed".into());
        }
        out.extend(
            self.remedy_changed
                .iter()
                .map(|part| format!("{part} changed")),
        );
        let flags = [
            (self.chaos_changed, "chaos changed"),
            (self.drills_changed, "drills changed"),
            (self.ai_changed, "ai changed"),
            (self.heartbeat_changed, "heartbeat check-in changed"),
            (self.maintenance_changed, "maintenance schedules changed"),
            (self.discovery_changed, "docker discovery changed"),
        ];
        out.extend(
            flags
                .iter()
                .filter(|(changed, _)| *changed)
                .map(|(_, line)| line.to_string()),
        );
        out
    }
}

/// Secret files named the same way at the same path in both configs whose content differs.
fn secret_changes(old: &Config, new: &Config) -> Vec<String> {
    let before = old.secret_files();
    new.secret_files()
        .into_iter()
        .filter(|(label, file)| {
            before.iter().any(|(old_label, old_file)| {
                old_label == label && old_file.path() == file.path() && old_file != file
            })
        })
        .map(|(label, _)| format!("{label} changed"))
        .collect()
}

/// The parts of `[archive]` and `[notify]` that differ, named as a reload report says them.
fn remedy_changes(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&old.archive, &new.archive);
    let (m, n) = (&old.notify, &new.notify);
    let parts = [
        ("archive sink", a.s3 != b.s3 || a.local != b.local),
        ("archive sources", a.sources != b.sources),
        (
            "archive spool",
            a.spool_dir != b.spool_dir
                || a.spool_quota != b.spool_quota
                || a.timeout != b.timeout
                || a.max_retry_delay != b.max_retry_delay,
        ),
        ("notify channels", m.channels != n.channels),
        ("notify routes", m.routes != n.routes),
        (
            "notify delivery",
            m.dedup_window != n.dedup_window
                || m.max_age != n.max_age
                || m.max_retry_delay != n.max_retry_delay
                || m.flapping != n.flapping,
        ),
    ];
    parts
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(part, _)| part.to_string())
        .collect()
}

fn by_name(probes: &[ProbeConfig]) -> BTreeMap<&str, &ProbeConfig> {
    probes.iter().map(|p| (p.name(), p)).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(source: &str) -> Config {
        crate::config::parse(source, Path::new("t.toml")).unwrap()
    }

    const BASE: &str = r#"
[[probe]]
name = "a"
kind = "tcp"
address = "127.0.0.1:1"

[[probe]]
name = "b"
kind = "tcp"
address = "127.0.0.1:2"
"#;

    #[test]
    fn diff_table() {
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            ("identical", BASE, &[], &[]),
            (
                // moving text around changes spans but not meaning: no diff
                "reformatted",
                "[[probe]]\nname=\"a\"\nkind=\"tcp\"\naddress=\"127.0.0.1:1\"\n[[probe]]\nname=\"b\"\nkind=\"tcp\"\naddress=\"127.0.0.1:2\"\n",
                &[],
                &[],
            ),
            (
                "one changed one removed one added",
                "[[probe]]\nname=\"a\"\nkind=\"tcp\"\naddress=\"127.0.0.1:9\"\n[[probe]]\nname=\"c\"\nkind=\"tcp\"\naddress=\"127.0.0.1:3\"\n",
                &["probe c added", "probe a changed", "probe b removed"],
                &[],
            ),
            (
                "journal and daemon",
                &format!("[daemon]\nsocket = \"/tmp/x.sock\"\n[journal]\nmax_events = 5\n{BASE}"),
                &["journal retention changed"],
                &["daemon.socket"],
            ),
            (
                "http listener",
                &format!("[http]\nlisten = \"127.0.0.1:1\"\n{BASE}"),
                &["http listener changed"],
                &[],
            ),
            (
                "http access",
                &format!("[http]\nmetrics = \"off\"\n{BASE}"),
                &["http access changed"],
                &[],
            ),
            (
                "http tenants route",
                &format!("[http]\ntenants = \"on\"\n{BASE}"),
                &["http access changed"],
                &[],
            ),
            (
                "tenants",
                &format!("[tenants]\nenabled = true\n{BASE}"),
                &["tenants changed"],
                &[],
            ),
            (
                "archive sink and notify channel",
                &format!(
                    "[archive.local]\ndir = \"/tmp/evidence\"\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n{BASE}"
                ),
                &["archive sink changed", "notify channels changed"],
                &[],
            ),
            (
                "archive timeout and dedup window",
                &format!("[archive]\ntimeout = \"5s\"\n[notify]\ndedup_window = \"1m\"\n{BASE}"),
                &["archive spool changed", "notify delivery changed"],
                &[],
            ),
            (
                "drills",
                &format!("{BASE}[[chaos.profile]]\nname = \"k\"\ntarget = {{ container = \"c\" }}\nfaults = [{{ kind = \"container\", action = \"kill\" }}]\n[[drill]]\nname = \"g\"\n[[drill.step]]\nprofile = \"k\"\nexpect = [{{ probe = \"a\", stays_up = true }}]\n"),
                &["chaos changed", "drills changed"],
                &[],
            ),
            (
                "ai",
                &format!("{BASE}[ai]\nenabled = true\nprovider = \"ollama\"\nendpoint = \"http://127.0.0.1:11434\"\nmodel = \"m\"\n"),
                &["ai changed"],
                &[],
            ),
            (
                "docker discovery, and the socket",
                &format!("{BASE}[docker]\nsocket = \"/run/other.sock\"\ndiscover = \"labeled\"\n"),
                &["docker discovery changed"],
                &["docker.socket"],
            ),
        ];
        let old = config(BASE);
        for (label, new, changes, restart) in cases {
            let diff = ConfigDiff::between(&old, &config(new));
            assert_eq!(diff.changes(), *changes, "{label}");
            assert_eq!(diff.restart_required, *restart, "{label}");
            assert_eq!(
                diff.is_empty(),
                changes.is_empty() && restart.is_empty(),
                "{label}"
            );
        }
    }

    #[test]
    fn rotated_secret_files_are_changes_named_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        let url = dir.path().join("url");
        let password = dir.path().join("pw");
        let source = format!(
            "[tenants.ingest]\ntoken_file = \"{t}\"\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl_file = \"{u}\"\n[[probe]]\nname = \"db\"\nkind = \"postgres\"\nuser = \"u\"\npassword_file = \"{p}\"\n",
            t = tokens.display(),
            u = url.display(),
            p = password.display()
        );
        std::fs::write(&tokens, "OLD-TOKEN\n").unwrap();
        std::fs::write(&url, "http://127.0.0.1:9/OLD-URL\n").unwrap();
        std::fs::write(&password, "OLD-PW\n").unwrap();
        let before = config(&source);
        assert!(ConfigDiff::between(&before, &config(&source)).is_empty());

        std::fs::write(&tokens, "NEW-TOKEN\n").unwrap();
        std::fs::write(&url, "http://127.0.0.1:9/NEW-URL\n").unwrap();
        std::fs::write(&password, "NEW-PW\n").unwrap();
        let after = config(&source);
        let diff = ConfigDiff::between(&before, &after);
        assert_eq!(
            diff.changes(),
            [
                "ingest tokens (from token_file) changed",
                "notify channel hook URL (from url_file) changed",
                "probe db password (from password_file) changed",
            ]
        );
        // What applies them: the ingest tokens, the channel, the probe restart.
        assert!(diff.tenants_changed);
        assert_eq!(diff.remedy_changed, ["notify channels"]);
        assert_eq!(diff.probes_changed, ["db"]);
        let shown = format!("{diff:?} {after:?}");
        for secret in ["OLD-", "NEW-"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(after.tenants.ingest.all_tokens(), ["NEW-TOKEN"]);
        assert_eq!(
            after.probes[0].postgres_password().as_deref(),
            Some("NEW-PW")
        );
    }
}
