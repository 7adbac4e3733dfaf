//! The settings of the pushed `heartbeat` kind and the host kinds (`disk`, `memory`, `load`):
//! their types, which kinds they belong to, and their validation at the key's line:col.

use std::fmt;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{at, ProbeConfig, ProbeKind};
use crate::units::{ByteSize, HumanDuration, Issue};

/// A heartbeat probe's `grace` when none is written.
pub const DEFAULT_GRACE: HumanDuration = HumanDuration::from_secs(60);

/// The longest `every` + `grace`: a year. Longer is a typo, and the deadline must stay far
/// from what a monotonic clock can add without overflowing.
const MAX_HEARTBEAT_PERIOD: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// An amount of memory: a size ("512MiB", or bytes) or a share of MemTotal ("10%").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Bytes(ByteSize),
    Percent(f64),
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(size) => write!(f, "{size}"),
            Self::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(i64),
            Text(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Bytes(bytes) => u64::try_from(bytes)
                .map(|b| Amount::Bytes(ByteSize(b)))
                .map_err(|_| {
                    serde::de::Error::custom(format!("size {bytes} must not be negative"))
                }),
            Written::Text(text) => match text.trim().strip_suffix('%') {
                Some(number) => number
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite())
                    .map(Amount::Percent)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "invalid percentage \"{text}\": write it like \"10%\""
                        ))
                    }),
                None => text
                    .parse::<ByteSize>()
                    .map(Amount::Bytes)
                    .map_err(serde::de::Error::custom),
            },
        }
    }
}

/// Which of the kernel's load averages a load probe compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum LoadAverage {
    #[serde(rename = "1m")]
    One,
    #[default]
    #[serde(rename = "5m")]
    Five,
    #[serde(rename = "15m")]
    Fifteen,
}

impl LoadAverage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::One => "1m",
            Self::Five => "5m",
            Self::Fifteen => "15m",
        }
    }
}

/// Written in the file (a default's span is empty).
fn written<T>(field: &Spanned<T>) -> bool {
    field.span().end > 0
}

impl ProbeConfig {
    /// The fields of the kinds this file owns, as in `kind_fields`.
    pub(super) fn host_kind_fields(&self) -> [(&'static str, &'static [ProbeKind], bool); 10] {
        use ProbeKind::*;
        [
            ("every", &[Heartbeat], at(&self.every)),
            ("grace", &[Heartbeat], at(&self.grace)),
            ("token", &[Heartbeat], at(&self.token)),
            ("token_file", &[Heartbeat], self.token_file.is_some()),
            ("path", &[Disk], at(&self.path)),
            ("max_used_percent", &[Disk], at(&self.max_used_percent)),
            ("max_inodes_percent", &[Disk], at(&self.max_inodes_percent)),
            ("min_available", &[Memory], at(&self.min_available)),
            ("max_load_per_core", &[Load], at(&self.max_load_per_core)),
            ("load_average", &[Load], at(&self.load_average)),
        ]
    }

    /// A heartbeat is pushed, never checked: the settings of checking do not apply to it.
    /// Runs before the common checks, so `interval` on a heartbeat is named as the mistake.
    pub(super) fn validate_pushed(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        if self.kind() != ProbeKind::Heartbeat {
            return Ok(());
        }
        for (field, set) in [
            ("interval", written(&self.interval)),
            ("timeout", written(&self.timeout)),
            ("fail_after", written(&self.fail_after)),
            ("recover_after", written(&self.recover_after)),
            ("flap", self.flap.is_some()),
        ] {
            if set {
                return Err(Issue::at(
                    field,
                    problem(format!(
                        "`{field}` does not apply to heartbeat probes: they are Down when no beat came within `every` + `grace`, and at once on a fail beat"
                    )),
                ));
            }
        }
        Ok(())
    }

    /// The kind-specific checks of heartbeat, disk, memory and load probes.
    pub(super) fn validate_host(&self, problem: &dyn Fn(String) -> String) -> Result<(), Issue> {
        let percent = |field: &'static str, value: &Option<Spanned<f64>>| match value {
            Some(v) if !(v.get_ref().is_finite() && (0.0..=100.0).contains(v.get_ref())) => Err(
                Issue::at(field, problem(format!("{field} is a percentage, 0 to 100"))),
            ),
            _ => Ok(()),
        };
        match self.kind() {
            ProbeKind::Heartbeat => {
                let every = self.require(&self.every, "every")?.get_ref().get();
                if every.is_zero() {
                    return Err(Issue::at(
                        "every",
                        problem("every must be above zero".into()),
                    ));
                }
                let grace = self.grace.as_ref().map_or(DEFAULT_GRACE, |g| *g.get_ref());
                if every.saturating_add(grace.get()) > MAX_HEARTBEAT_PERIOD {
                    return Err(Issue::at(
                        "every",
                        problem("every + grace must be at most 366 days".into()),
                    )
                    .or_at("grace"));
                }
                if let Some(token) = &self.token {
                    let token = token.get_ref();
                    if token.trim().is_empty() || token.trim() != token {
                        return Err(Issue::at(
                            "token",
                            problem(
                                "token is empty or has spaces around it (they would never match)"
                                    .into(),
                            ),
                        ));
                    }
                }
                if let Some(file) = &self.token_file {
                    if file.content().is_some_and(|s| s.tokens().next().is_none()) {
                        return Err(Issue::at(
                            "token_file",
                            problem(format!(
                                "token_file {} holds no token (one per line; # starts a comment)",
                                file.path().display()
                            )),
                        ));
                    }
                }
                Ok(())
            }
            ProbeKind::Disk => {
                let path = self.require(&self.path, "path")?;
                if !path.get_ref().is_absolute() {
                    return Err(Issue::at(
                        "path",
                        problem(format!(
                            "path \"{}\" must be absolute",
                            path.get_ref().display()
                        )),
                    ));
                }
                if self.max_used_percent.is_none() && self.max_inodes_percent.is_none() {
                    return Err(Issue::at(
                        "max_used_percent",
                        problem(
                            "disk probes need `max_used_percent` or `max_inodes_percent`".into(),
                        ),
                    )
                    .or_at("kind"));
                }
                percent("max_used_percent", &self.max_used_percent)?;
                percent("max_inodes_percent", &self.max_inodes_percent)
            }
            ProbeKind::Memory => {
                let amount = self.require(&self.min_available, "min_available")?;
                match *amount.get_ref() {
                    Amount::Percent(p) if !(p > 0.0 && p <= 100.0) => Err(Issue::at(
                        "min_available",
                        problem("min_available as a percentage is above 0 and at most 100".into()),
                    )),
                    Amount::Bytes(ByteSize(0)) => Err(Issue::at(
                        "min_available",
                        problem("min_available must be above zero".into()),
                    )),
                    _ => Ok(()),
                }
            }
            ProbeKind::Load => {
                let limit = self.require(&self.max_load_per_core, "max_load_per_core")?;
                if !(limit.get_ref().is_finite() && *limit.get_ref() > 0.0) {
                    return Err(Issue::at(
                        "max_load_per_core",
                        problem("max_load_per_core must be above zero, e.g. 2.0".into()),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The tokens a beat of this heartbeat probe may carry (`token` plus `token_file`'s lines
    /// as read at load); empty means no token is needed.
    pub fn heartbeat_tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = self.token.iter().map(|t| t.get_ref().clone()).collect();
        if let Some(secret) = self
            .token_file
            .as_ref()
            .and_then(crate::units::SecretFile::content)
        {
            tokens.extend(secret.tokens().map(String::from));
        }
        tokens
    }
}
