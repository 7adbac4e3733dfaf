//! The leaf every config section is written in: durations, sizes, rates, secret files, plain
//! names, and validation findings named by their key. It imports nothing of the crate.
//!
//! Areas own their config sections (`probe/config.rs`, `chaos/config.rs`, ...) and validate
//! them into [`Issue`]s that name a key path; `config/` (and the agent's loader) place those
//! at file:line:col with [`parse_toml`] / [`place`].

mod duration;
mod error;
mod issue;
mod rate;
mod secret;
mod size;

pub use duration::HumanDuration;
pub use error::{line_column, parse_toml, place, ConfigError, NumberError, UnitError};
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
