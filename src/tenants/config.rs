//! The `[tenants]` section: the detector's windows and caps, ingest limits and tokens, and the
//! `[[tenants.alert]]` rules. Validation here; the detector itself lives in `crate::tenants`.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::tenants::explain::{ExplainConfig, ExplainError, Explainer};
use crate::tenants::{AlertCondition, AlertRule, TenantsConfig, TenantsError};
use crate::units::{ByteSize, HumanDuration, Issue, SecretFile};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsSection {
    /// Off by default: ingest answers 404 and nothing is tracked until a host opts in.
    pub enabled: bool,
    pub window: Spanned<HumanDuration>,
    pub bucket: Spanned<HumanDuration>,
    pub latency_bucket: Spanned<HumanDuration>,
    pub baseline: Spanned<HumanDuration>,
    pub baseline_bucket: Spanned<HumanDuration>,
    pub max_tenants: Spanned<usize>,
    /// Memory cap for all tenant windows together.
    pub max_memory: ByteSize,
    pub max_endpoints_per_tenant: usize,
    /// Status codes that count as errors: "5xx", "500-599", 429, "429".
    pub error_status: Spanned<Vec<StatusPattern>>,
    pub min_requests: u64,
    /// Events older than this (by their own timestamp) are rejected; default: the window.
    pub max_event_age: Option<HumanDuration>,
    /// Events this far ahead of the daemon's clock are rejected as a broken client clock.
    pub max_clock_skew: HumanDuration,
    pub ingest: IngestSection,
    #[serde(rename = "alert")]
    pub alerts: Vec<AlertSection>,
    /// `POST /v1/traces`: how OTLP spans name their tenant.
    pub otlp: OtlpSection,
    /// Dimensions events may carry (`"dims": {"region": "eu-west"}`, or OTLP attributes of the
    /// same name) for `sentinelctl tenants explain`; at most 8.
    pub dimensions: Spanned<Vec<String>>,
    /// `[tenants.explain]`: buckets, caps and thresholds of the explanations.
    pub explain: ExplainSection,
    /// Detector shards by tenant hash; default one per core (docs/scaling.md).
    pub shards: Option<usize>,
}

/// `[tenants.explain]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplainSection {
    /// Width of an explain bucket; must divide the tenants window. Default: the tenants
    /// `bucket`, which does.
    pub bucket: Option<HumanDuration>,
    /// Distinct values per dimension at once (`__other__` included); more count as `__other__`.
    pub max_values: usize,
    /// A request at or above this latency is slow.
    pub slow: HumanDuration,
    /// Bad requests a value needs before it may be named.
    pub min_support: u64,
    /// Tenants with counts of their own (those with most errors and slow requests).
    pub max_tenants: usize,
    /// Memory for all explain counts, next to (not part of) `[tenants] max_memory`.
    pub max_memory: ByteSize,
}

impl Default for ExplainSection {
    fn default() -> Self {
        let config = ExplainConfig::default();
        Self {
            bucket: None,
            max_values: config.max_values,
            slow: HumanDuration(config.slow),
            min_support: config.min_support,
            max_tenants: config.max_tenants,
            max_memory: ByteSize(config.max_bytes as u64),
        }
    }
}

impl Default for TenantsSection {
    fn default() -> Self {
        let detector = TenantsConfig::default();
        let spanned = |d: Duration| Spanned::new(0..0, HumanDuration(d));
        Self {
            enabled: false,
            window: spanned(detector.window),
            bucket: spanned(detector.bucket),
            latency_bucket: spanned(detector.latency_bucket),
            baseline: spanned(detector.baseline),
            baseline_bucket: spanned(detector.baseline_bucket),
            max_tenants: Spanned::new(0..0, detector.max_tenants),
            max_memory: ByteSize(detector.max_bytes as u64),
            max_endpoints_per_tenant: detector.max_endpoints_per_tenant,
            error_status: Spanned::new(0..0, vec![StatusPattern(500..=599)]),
            min_requests: detector.min_requests,
            max_event_age: None,
            max_clock_skew: HumanDuration::from_secs(300),
            ingest: IngestSection::default(),
            alerts: Vec::new(),
            otlp: OtlpSection::default(),
            dimensions: Spanned::new(0..0, Vec::new()),
            explain: ExplainSection::default(),
            shards: None,
        }
    }
}

/// `POST /v1/events` limits and authentication.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Accepted bearer tokens; empty (and no token_file) means no authentication.
    pub tokens: Vec<String>,
    /// A file with one token per line, read at load and on every reload (keeps secrets out of
    /// the config; a rotated file is a change).
    pub token_file: Option<SecretFile>,
    /// Largest body after gzip decoding; larger requests get 413.
    pub max_body: ByteSize,
    /// Bodies being read or recorded at once; more get 429 (this bounds ingest memory).
    pub max_concurrent_requests: Spanned<usize>,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            token_file: None,
            max_body: ByteSize(8 << 20),
            max_concurrent_requests: Spanned::new(0..0, 16),
        }
    }
}

impl IngestSection {
    /// The configured tokens plus those `token_file` held when the config was loaded.
    pub fn all_tokens(&self) -> Vec<String> {
        let mut tokens = self.tokens.clone();
        if let Some(secret) = self.token_file.as_ref().and_then(SecretFile::content) {
            tokens.extend(secret.tokens().map(String::from));
        }
        tokens
    }
}

/// `[tenants.otlp]`: OTLP trace ingest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpSection {
    /// Attributes that name the tenant, looked for in order on the span, then on its resource.
    pub tenant_attributes: Spanned<Vec<String>>,
}

/// More keys than this is a config mistake (each is looked up on every span).
const MAX_TENANT_ATTRIBUTES: usize = 16;

impl Default for OtlpSection {
    fn default() -> Self {
        Self {
            tenant_attributes: Spanned::new(
                0..0,
                crate::ingest::otlp::DEFAULT_TENANT_ATTRIBUTES
                    .map(String::from)
                    .to_vec(),
            ),
        }
    }
}

impl OtlpSection {
    /// Keys are relative to `[tenants]`.
    fn validate(&self) -> Result<(), Issue> {
        let keys = self.tenant_attributes.get_ref();
        let refuse = |message: String| {
            Err(Issue::at(
                "otlp.tenant_attributes",
                format!("tenants.otlp: {message}"),
            ))
        };
        if keys.is_empty() || keys.len() > MAX_TENANT_ATTRIBUTES {
            return refuse(format!(
                "tenant_attributes needs 1-{MAX_TENANT_ATTRIBUTES} attribute names (got {})",
                keys.len()
            ));
        }
        if let Some(bad) = keys
            .iter()
            .find(|k| k.trim().is_empty() || k.chars().any(char::is_control))
        {
            return refuse(format!(
                "tenant attribute name {bad:?} is empty or has control characters"
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = keys.iter().find(|k| !seen.insert(k.as_str())) {
            return refuse(format!("tenant attribute \"{twice}\" is listed twice"));
        }
        Ok(())
    }
}

/// One `[[tenants.alert]]` rule as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSection {
    pub name: Spanned<String>,
    /// error_share | error_rate | errors | p95 | deviation
    pub when: Spanned<String>,
    /// % for error_share and error_rate, a count for errors, ms for p95, a factor for deviation.
    pub threshold: Spanned<f64>,
    /// Errors a tenant must have in the window before share or rate rules fire.
    #[serde(default = "default_min_errors")]
    pub min_errors: u64,
    /// Defaults to the detector's window.
    pub window: Option<HumanDuration>,
    /// After a resolve, the same tenant does not fire this rule again for this long.
    #[serde(default = "default_cooldown")]
    pub cooldown: HumanDuration,
}

fn default_min_errors() -> u64 {
    10
}

fn default_cooldown() -> HumanDuration {
    HumanDuration::from_secs(15 * 60)
}

/// A status code or range: 503, "503", "5xx", "500-504".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPattern(pub RangeInclusive<u16>);

impl std::str::FromStr for StatusPattern {
    type Err = TenantsError;

    fn from_str(text: &str) -> Result<Self, TenantsError> {
        let code = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|source| TenantsError::StatusPattern {
                    text: text.to_string(),
                    source,
                })
        };
        let out_of_range = || TenantsError::StatusOutOfRange {
            text: text.to_string(),
        };
        let range = if let Some(class) = text.strip_suffix("xx") {
            // "700xx" would overflow a u16: out of range, not a panic
            let first = code(class)?.checked_mul(100).ok_or_else(out_of_range)?;
            first..=first.checked_add(99).ok_or_else(out_of_range)?
        } else if let Some((low, high)) = text.split_once('-') {
            code(low)?..=code(high)?
        } else {
            let single = code(text)?;
            single..=single
        };
        match range.start() <= range.end() && *range.start() >= 100 && *range.end() <= 599 {
            true => Ok(Self(range)),
            false => Err(out_of_range()),
        }
    }
}

impl<'de> Deserialize<'de> for StatusPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternVisitor;
        impl serde::de::Visitor<'_> for PatternVisitor {
            type Value = StatusPattern;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a status code or pattern such as 503, \"5xx\" or \"500-504\"")
            }

            fn visit_i64<E: serde::de::Error>(self, code: i64) -> Result<StatusPattern, E> {
                code.to_string().parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, code: u64) -> Result<StatusPattern, E> {
                code.to_string().parse().map_err(E::custom)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StatusPattern, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(PatternVisitor)
    }
}

impl TenantsSection {
    /// The detector's settings (already validated by [`TenantsSection::validate`]).
    pub fn detector_config(&self) -> TenantsConfig {
        TenantsConfig {
            window: self.window.get_ref().get(),
            bucket: self.bucket.get_ref().get(),
            latency_bucket: self.latency_bucket.get_ref().get(),
            baseline: self.baseline.get_ref().get(),
            baseline_bucket: self.baseline_bucket.get_ref().get(),
            max_tenants: *self.max_tenants.get_ref(),
            max_bytes: self.max_memory.as_usize(),
            max_endpoints_per_tenant: self.max_endpoints_per_tenant,
            error_statuses: self
                .error_status
                .get_ref()
                .iter()
                .map(|p| p.0.clone())
                .collect(),
            min_requests: self.min_requests,
            shards: self.shards,
        }
    }

    /// The explainer's settings (validated by [`TenantsSection::validate`]).
    pub fn explain_config(&self) -> ExplainConfig {
        ExplainConfig {
            dimensions: self.dimensions.get_ref().clone(),
            window: self.window.get_ref().get(),
            bucket: self.explain.bucket.map_or_else(
                || explain_bucket(self.bucket.get_ref().get(), self.window.get_ref().get()),
                HumanDuration::get,
            ),
            max_values: self.explain.max_values,
            slow: self.explain.slow.get(),
            min_support: self.explain.min_support,
            max_tenants: self.explain.max_tenants,
            max_bytes: self.explain.max_memory.as_usize(),
            error_statuses: self.detector_config().error_statuses,
        }
    }

    pub fn max_event_age(&self) -> Duration {
        self.max_event_age
            .map_or(self.window.get_ref().get(), HumanDuration::get)
    }

    /// The alert rules (validated at load, so none is dropped here).
    pub fn alert_rules(&self) -> Vec<AlertRule> {
        self.alerts
            .iter()
            .filter_map(|alert| alert.rule(self).ok())
            .collect()
    }

    /// Read `token_file` (every load and reload does).
    /// Keys are relative to `[tenants]`.
    pub fn read_secrets(&mut self) -> Result<(), Issue> {
        if let Some(file) = &mut self.ingest.token_file {
            file.read("token_file").map_err(|err| {
                Issue::at("ingest.token_file", format!("tenants.ingest: {err}")).because(err)
            })?;
        }
        Ok(())
    }

    /// Checks `[tenants]`; keys are relative to it.
    pub fn validate(&self) -> Result<(), Issue> {
        if let Err(TenantsError::InvalidConfig { field, message }) = self.detector_config().shape()
        {
            return Err(self.issue_at_field(field, format!("tenants: {message}")));
        }
        if self.error_status.get_ref().is_empty() {
            return Err(Issue::at(
                "error_status",
                "tenants: error_status needs at least one status pattern",
            ));
        }
        if *self.ingest.max_concurrent_requests.get_ref() == 0 {
            return Err(Issue::at(
                "ingest.max_concurrent_requests",
                "tenants.ingest: max_concurrent_requests must be at least 1",
            ));
        }
        if let Some(file) = &self.ingest.token_file {
            // An empty file would silently open ingest to everyone: refuse it instead.
            if file
                .content()
                .is_some_and(|secret| secret.tokens().next().is_none())
            {
                return Err(Issue::at(
                    "ingest.token_file",
                    format!(
                        "tenants.ingest: token_file {} holds no token (one per line; # starts a comment)",
                        file.path().display()
                    ),
                ));
            }
        }
        self.otlp.validate()?;
        if let Err(ExplainError::InvalidConfig { field, message }) =
            Explainer::new(self.explain_config())
        {
            return Err(Issue::at(field, format!("tenants: {message}")));
        }
        let mut names = std::collections::HashSet::new();
        for (i, alert) in self.alerts.iter().enumerate() {
            alert
                .rule(self)
                .map_err(|issue| issue.within(format!("alert[{i}]")))?;
            if !names.insert(alert.name.get_ref()) {
                return Err(Issue::at(
                    format!("alert[{i}].name"),
                    format!("duplicate tenant alert name \"{}\"", alert.name.get_ref()),
                ));
            }
        }
        Ok(())
    }
}

impl TenantsSection {
    /// Points at `field`, or, when it was left at its default, at the first duration written:
    /// "window must be a multiple of bucket" is about what the user did write.
    fn issue_at_field(&self, field: &str, message: String) -> Issue {
        [
            "bucket",
            "latency_bucket",
            "window",
            "baseline_bucket",
            "baseline",
        ]
        .into_iter()
        .filter(|duration| *duration != field)
        .fold(Issue::at(field, message), Issue::or_at)
    }
}

impl AlertSection {
    fn rule(&self, section: &TenantsSection) -> Result<AlertRule, Issue> {
        let name = self.name.get_ref();
        let threshold = *self.threshold.get_ref();
        let when = self.when.get_ref().as_str();
        let condition = match AlertCondition::ALL.iter().find(|c| c.as_str() == when) {
            Some(&condition) => condition,
            None => {
                let other = when;
                return Err(Issue::at(
                    "when",
                    format!(
                        "tenant alert \"{name}\": unknown condition \"{other}\" (expected one of error_share, error_rate, errors, p95, deviation)"
                    ),
                ));
            }
        };
        let in_range = match condition {
            AlertCondition::ErrorShare | AlertCondition::ErrorRate => {
                threshold > 0.0 && threshold <= 100.0
            }
            AlertCondition::Deviation => threshold > 1.0 && threshold.is_finite(),
            AlertCondition::Errors | AlertCondition::P95 => {
                threshold > 0.0 && threshold.is_finite()
            }
        };
        if !in_range {
            return Err(Issue::at(
                "threshold",
                format!(
                    "tenant alert \"{name}\": threshold {threshold} out of range for {} ({})",
                    self.when.get_ref(),
                    condition.threshold_unit()
                ),
            ));
        }
        let window = self
            .window
            .map_or(section.window.get_ref().get(), HumanDuration::get);
        if window > section.window.get_ref().get() || window.is_zero() {
            return Err(Issue::at(
                "window",
                format!(
                    "tenant alert \"{name}\": window must be above zero and at most the tenants window ({})",
                    section.window.get_ref()
                ),
            )
            .or_at("name"));
        }
        Ok(AlertRule {
            name: name.clone(),
            condition,
            threshold,
            min_errors: self.min_errors,
            window,
            cooldown: self.cooldown.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    /// A pattern whose number does not read keeps the integer parser's error; one out of
    /// 100-599, even one past a u16 ("700xx"), is refused with the range.
    #[test]
    fn status_pattern_refusals_keep_their_cause_and_never_overflow() {
        let err = "5x0".parse::<StatusPattern>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid status pattern \"5x0\": write e.g. \"5xx\", \"500-504\" or 503"
        );
        let source = err.source().expect("the number's error");
        assert_eq!(
            source.to_string(),
            "5x0".parse::<u16>().unwrap_err().to_string()
        );
        // "657xx" wrapped to 164-263 in a release build (overflow unchecked) and panicked in debug
        for text in ["700xx", "655xx", "657xx", "99", "600", "504-500"] {
            let err = text.parse::<StatusPattern>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("status pattern \"{text}\" must lie within 100-599"),
            );
            assert!(err.source().is_none(), "{text}");
        }
        assert_eq!("5xx".parse(), Ok(StatusPattern(500..=599)));
        assert_eq!("500-504".parse(), Ok(StatusPattern(500..=504)));
    }
}

/// The default explain bucket: the smallest multiple of the tenants `bucket` that divides the
/// window into at most 600 buckets (the window is a whole number of tenants buckets).
fn explain_bucket(bucket: Duration, window: Duration) -> Duration {
    let (bucket_ms, window_ms) = (bucket.as_millis().max(1), window.as_millis());
    let count = window_ms / bucket_ms;
    (1..=count.max(1))
        .find(|k| count % k == 0 && count / k <= 600)
        .map_or(window, |k| bucket * k as u32)
}

#[cfg(test)]
mod explain_bucket_tests {
    use super::*;

    #[test]
    fn the_default_explain_bucket_divides_the_window_into_at_most_600() {
        let s = Duration::from_secs;
        let cases = [
            (s(10), s(600), s(10)),
            (s(10), s(10), s(10)),
            (s(1), s(3600), s(6)),
            (Duration::from_millis(500), s(3600), s(6)),
            (s(7), s(7 * 601), s(7 * 601)),
        ];
        for (bucket, window, want) in cases {
            assert_eq!(
                explain_bucket(bucket, window),
                want,
                "{bucket:?} {window:?}"
            );
        }
    }
}
