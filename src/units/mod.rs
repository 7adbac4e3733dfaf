//! The leaf every config section is written in: durations, sizes, rates, secret files, plain
//! names, and validation findings named by their key. It imports nothing of the crate.
//!
//! Areas own their config sections (`probe/config.rs`, `chaos/config.rs`, ...) and validate
//! them into [`Issue`]s that name a key path; `config/` (and the agent's loader) place those
//! at file:line:col with [`parse_toml`] / [`place`].

/// Serde as text for a unit type: `Display` out, `FromStr` in, its refusal as the message.
macro_rules! serde_as_text {
    ($unit:ty) => {
        impl<'de> serde::Deserialize<'de> for $unit {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $unit {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

mod duration;
mod error;
mod file_kind;
mod issue;
mod rate;
mod secret;
mod size;

pub use duration::HumanDuration;
pub use error::{line_column, parse_toml, place, ConfigError, NumberError, UnitError};
pub use file_kind::FileKind;
pub use issue::{Issue, KeyPath, Segment};
pub use rate::Rate;
pub use secret::{Secret, SecretError, SecretFile};
pub use size::ByteSize;

/// Names of probes, profiles, sources and drills: letters, digits, `-`, `_` and `.`, not empty
/// (they appear in routes, file names and labels unquoted).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
