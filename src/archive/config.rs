//! The `[archive]` section: where evidence bundles are spooled and shipped (local dir or S3), and
//! the `[[archive.source]]` list that a heal's `archive = [...]` names. Validation only.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::probe::{ProbeConfig, ProbeKind};
use crate::units::{is_plain_name, ByteSize, HumanDuration, Issue};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSection {
    /// Bundles are written here first; default `{state_dir}/archive/spool`.
    pub spool_dir: Option<PathBuf>,
    /// Bytes the spool may hold. Uploaded bundles are pruned oldest first to stay below it; an
    /// un-uploaded bundle is never deleted (an `archive_failed` event with stage `quota` instead).
    pub spool_quota: ByteSize,
    /// The heal's restart waits at most this long for the bundle to reach the spool.
    pub timeout: Spanned<HumanDuration>,
    /// Longest wait between two upload attempts of a pending bundle.
    pub max_retry_delay: HumanDuration,
    pub local: Option<LocalSinkSection>,
    pub s3: Option<S3Section>,
    #[serde(rename = "source")]
    pub sources: Vec<SourceSection>,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        Self {
            spool_dir: None,
            spool_quota: ByteSize(1 << 30),
            timeout: Spanned::new(0..0, HumanDuration::from_secs(30)),
            max_retry_delay: HumanDuration::from_secs(300),
            local: None,
            s3: None,
            sources: Vec::new(),
        }
    }
}

/// `[archive.local]`: the sink used when no `[archive.s3]` is configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSinkSection {
    /// Default `{state_dir}/archive/bundles`.
    pub dir: PathBuf,
}

/// `[archive.s3]`: bucket and endpoint; credentials come from the standard AWS chain
/// (environment, profile files, web identity, ECS, instance metadata).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    pub bucket: Spanned<String>,
    #[serde(default = "S3Section::default_region")]
    pub region: String,
    /// Keys are `{prefix}/{timestamp}-{target}/bundle.tar.gz` (and `manifest.json`).
    #[serde(default)]
    pub prefix: String,
    /// An S3-compatible store (MinIO, moto, Ceph): its URL.
    pub endpoint: Option<Spanned<String>>,
    /// Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key`.
    #[serde(default)]
    pub path_style: bool,
    /// Bundles at least this big go up in parts of `part_size`.
    #[serde(default = "S3Section::default_multipart_threshold")]
    pub multipart_threshold: ByteSize,
    #[serde(default = "S3Section::default_part_size")]
    pub part_size: Spanned<ByteSize>,
}

impl S3Section {
    fn default_region() -> String {
        "us-east-1".into()
    }
    fn default_multipart_threshold() -> ByteSize {
        ByteSize(16 << 20)
    }
    fn default_part_size() -> Spanned<ByteSize> {
        Spanned::new(0..0, ByteSize(8 << 20))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Files matching `include` globs under `path` (inside `container` when set).
    Files,
    /// The container's log tail and its inspect state (exit code, OOM, restarts, health log).
    Container,
    /// A `pg_stat_activity` snapshot through a postgres probe's connection settings.
    PgStatActivity,
}

/// One `[[archive.source]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub name: Spanned<String>,
    pub kind: SourceKind,
    /// files: a host directory, or a directory inside `container` (resolved through its mounts).
    pub path: Option<Spanned<PathBuf>>,
    /// files: globs relative to `path`; default every file directly in it.
    pub include: Option<Vec<String>>,
    /// files, container: the container; for `container` sources the healed one by default.
    pub container: Option<Spanned<String>>,
    /// container: last this many log lines.
    pub tail: Option<u64>,
    /// container: only log lines from this far back.
    pub since: Option<HumanDuration>,
    /// pg_stat_activity: the postgres probe whose connection to use; default the healed probe.
    pub probe: Option<Spanned<String>>,
    /// Most bytes this source adds to a bundle; files beyond it are listed as skipped.
    #[serde(default = "SourceSection::default_max_bytes")]
    pub max_bytes: ByteSize,
}

impl SourceSection {
    fn default_max_bytes() -> ByteSize {
        ByteSize(64 << 20)
    }

    pub fn name(&self) -> &str {
        self.name.get_ref()
    }
}

impl ArchiveSection {
    pub fn source(&self, name: &str) -> Option<&SourceSection> {
        self.sources.iter().find(|s| s.name() == name)
    }

    /// Checks `[archive]`; keys are relative to it. `probes` are those of the config.
    pub fn validate(&self, probes: &[ProbeConfig]) -> Result<(), Issue> {
        if self.timeout.get_ref().get().is_zero() {
            return Err(Issue::at("timeout", "archive: timeout must be above zero"));
        }
        if let Some(s3) = &self.s3 {
            let bucket = s3.bucket.get_ref();
            if bucket.len() < 3 || bucket.contains('/') {
                return Err(Issue::at(
                    "s3.bucket",
                    format!("archive.s3: invalid bucket name \"{bucket}\""),
                ));
            }
            if let Some(endpoint) = &s3.endpoint {
                let text = endpoint.get_ref();
                if !(text.starts_with("http://") || text.starts_with("https://")) {
                    return Err(Issue::at(
                        "s3.endpoint",
                        format!(
                            "archive.s3: endpoint \"{text}\" must start with http:// or https://"
                        ),
                    ));
                }
            }
            // S3 refuses parts below 5 MiB (except the last one).
            if s3.part_size.get_ref().bytes() < 5 << 20 {
                return Err(Issue::at(
                    "s3.part_size",
                    "archive.s3: part_size must be at least 5MiB (S3's smallest part)",
                ));
            }
        }
        let mut names = HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            source
                .validate(probes)
                .map_err(|issue| issue.within(format!("source[{i}]")))?;
            if !names.insert(source.name()) {
                return Err(Issue::at(
                    format!("source[{i}].name"),
                    format!("duplicate archive source \"{}\"", source.name()),
                ));
            }
        }
        Ok(())
    }

    /// Every heal's `archive = [...]` names a `[[archive.source]]`; keys are relative to the
    /// probe list (`[2].heal.archive`).
    pub fn validate_heal_sources(&self, probes: &[ProbeConfig]) -> Result<(), Issue> {
        let names: HashSet<&str> = self.sources.iter().map(SourceSection::name).collect();
        for (i, probe) in probes.iter().enumerate() {
            let Some(heal) = &probe.heal else { continue };
            for wanted in heal.get_ref().archive.iter().flatten() {
                if !names.contains(wanted.as_str()) {
                    let mut known: Vec<&str> = names.iter().copied().collect();
                    known.sort_unstable();
                    return Err(Issue::at(
                        format!("[{i}].heal.archive"),
                        format!(
                            "probe \"{}\": heal archive names an unknown source \"{wanted}\" (define it as [[archive.source]] name = \"{wanted}\"; known: {})",
                            probe.name(),
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl SourceSection {
    fn validate(&self, probes: &[ProbeConfig]) -> Result<(), Issue> {
        let name = self.name();
        if !is_plain_name(name) {
            return Err(Issue::at(
                "name",
                format!(
                    "invalid archive source name \"{name}\": use letters, digits, '-', '_' or '.'"
                ),
            ));
        }
        let problem = |field: &str, what: &str| {
            Issue::at(
                field,
                format!("archive source \"{name}\": `{field}` {what}"),
            )
            .or_at("name")
        };
        let applies = |field: &str, set: bool, kinds: &[SourceKind]| {
            if set && !kinds.contains(&self.kind) {
                return Err(problem(
                    field,
                    &format!("does not apply to {:?} sources", self.kind),
                ));
            }
            Ok(())
        };
        use SourceKind::*;
        applies("path", self.path.is_some(), &[Files])?;
        applies("include", self.include.is_some(), &[Files])?;
        applies("container", self.container.is_some(), &[Files, Container])?;
        applies("tail", self.tail.is_some(), &[Container])?;
        applies("since", self.since.is_some(), &[Container])?;
        applies("probe", self.probe.is_some(), &[PgStatActivity])?;
        match self.kind {
            Files => {
                let Some(path) = &self.path else {
                    return Err(problem("path", "is needed for files sources"));
                };
                if !path.get_ref().is_absolute() {
                    return Err(Issue::at(
                        "path",
                        format!("archive source \"{name}\": path must be absolute"),
                    ));
                }
                for pattern in self.include.iter().flatten() {
                    if let Err(err) = glob::Pattern::new(pattern) {
                        return Err(problem(
                            "include",
                            &format!("has an invalid glob \"{pattern}\": {err}"),
                        ));
                    }
                    if pattern.starts_with('/') || pattern.split('/').any(|part| part == "..") {
                        return Err(problem(
                            "include",
                            &format!("glob \"{pattern}\" must stay under path"),
                        ));
                    }
                }
            }
            PgStatActivity => {
                if let Some(probe) = &self.probe {
                    let postgres = probes
                        .iter()
                        .any(|p| p.name() == probe.get_ref() && p.kind() == ProbeKind::Postgres);
                    if !postgres {
                        return Err(Issue::at(
                            "probe",
                            format!(
                                "archive source \"{name}\": probe \"{}\" is not a postgres probe",
                                probe.get_ref()
                            ),
                        ));
                    }
                }
            }
            Container => {}
        }
        Ok(())
    }
}
