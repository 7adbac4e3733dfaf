//! The `[heartbeat]` section: where sentineld checks in (healthchecks.io, an Uptime Kuma push
//! monitor, Better Stack, another sentineld's heartbeat probe), how often, and how.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::units::{HumanDuration, Issue, SecretFile};

/// How a check-in is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckinMethod {
    /// With a short JSON summary (probes down, last incident).
    #[default]
    Post,
    /// No body (receivers that only count requests).
    Get,
}

/// `[heartbeat]`: absent means sentineld checks in nowhere.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSection {
    /// The check-in URL (often a secret: prefer `url_file`).
    pub url: Option<Spanned<String>>,
    /// A file whose first line is the URL; read at load and on every reload.
    pub url_file: Option<SecretFile>,
    /// Time between check-ins.
    #[serde(default = "HeartbeatSection::default_interval")]
    pub interval: Spanned<HumanDuration>,
    /// "POST" (default) or "GET".
    pub method: Option<Spanned<CheckinMethod>>,
    /// Extra request headers.
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    /// A file whose first line is sent as `Authorization: Bearer LINE`.
    pub token_file: Option<SecretFile>,
    /// A check-in must be answered within this; at most `interval`.
    #[serde(default = "HeartbeatSection::default_timeout")]
    pub timeout: Spanned<HumanDuration>,
}

/// What the check-in loop needs, secrets resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinSettings {
    pub url: String,
    pub interval: std::time::Duration,
    pub method: CheckinMethod,
    pub headers: Vec<(String, String)>,
    pub timeout: std::time::Duration,
}

impl HeartbeatSection {
    fn default_interval() -> Spanned<HumanDuration> {
        Spanned::new(0..0, HumanDuration::from_secs(60))
    }

    fn default_timeout() -> Spanned<HumanDuration> {
        Spanned::new(0..0, HumanDuration::from_secs(10))
    }

    /// Read `url_file` and `token_file`; keys are relative to `[heartbeat]`.
    pub fn read_secrets(&mut self) -> Result<(), Issue> {
        for (field, file) in [
            ("url_file", &mut self.url_file),
            ("token_file", &mut self.token_file),
        ] {
            if let Some(file) = file {
                file.read(field)
                    .map_err(|err| Issue::at(field, format!("heartbeat: {err}")).because(err))?;
            }
        }
        Ok(())
    }

    /// The URL: `url`, or the first line `url_file` held at load.
    pub fn resolved_url(&self) -> Option<&str> {
        match (&self.url, &self.url_file) {
            (Some(url), _) => Some(url.get_ref()),
            (None, Some(file)) => file.content().map(|secret| secret.first_line()),
            (None, None) => None,
        }
    }

    /// Checks `[heartbeat]`; keys are relative to it.
    pub fn validate(&self) -> Result<(), Issue> {
        let url_key = match (&self.url, &self.url_file) {
            (Some(_), Some(_)) => {
                return Err(Issue::at(
                    "url_file",
                    "heartbeat: set `url` or `url_file`, not both",
                ))
            }
            (None, None) => {
                return Err(Issue::at(
                    "url",
                    "heartbeat: [heartbeat] needs `url` (or `url_file`): where to check in",
                ))
            }
            (Some(_), None) => "url",
            (None, Some(_)) => "url_file",
        };
        if let Some(url) = self.resolved_url() {
            if let Err(err) = crate::http::client::HttpTarget::parse(url) {
                // A URL from url_file is a secret: named by its file, never quoted.
                let message = match &self.url_file {
                    Some(file) if url_key == "url_file" => format!(
                        "heartbeat: url_file {} does not hold a usable http:// or https:// URL",
                        file.path().display()
                    ),
                    _ => format!("heartbeat: {err}"),
                };
                return Err(Issue::at(url_key, message).because(err));
            }
        }
        let interval = self.interval.get_ref().get();
        if interval < std::time::Duration::from_secs(1) {
            return Err(Issue::at(
                "interval",
                format!(
                    "heartbeat: interval {} must be at least 1s",
                    self.interval.get_ref()
                ),
            ));
        }
        let timeout = self.timeout.get_ref().get();
        if timeout.is_zero() || timeout > interval {
            return Err(Issue::at(
                "timeout",
                format!(
                    "heartbeat: timeout {} must be above zero and at most the interval ({})",
                    self.timeout.get_ref(),
                    self.interval.get_ref()
                ),
            )
            .or_at("interval"));
        }
        let headers = self.headers.as_ref().map(Spanned::get_ref);
        if let Some((key, value)) = headers.and_then(crate::http::client::invalid_header) {
            return Err(Issue::at(
                "headers",
                format!("heartbeat: invalid header \"{key}: {value}\""),
            ));
        }
        if let Some(file) = &self.token_file {
            if let Err(err) = file.first_line("token_file", "a bearer token") {
                return Err(Issue::at("token_file", format!("heartbeat: {err}")).because(err));
            }
        }
        Ok(())
    }

    /// What the loop uses (after validation).
    pub fn settings(&self) -> Option<CheckinSettings> {
        let mut headers: Vec<(String, String)> = self
            .headers
            .as_ref()
            .map(|h| h.get_ref().clone().into_iter().collect())
            .unwrap_or_default();
        if let Some(token) = self
            .token_file
            .as_ref()
            .and_then(SecretFile::content)
            .map(|s| s.first_line().to_string())
        {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        Some(CheckinSettings {
            url: self.resolved_url()?.to_string(),
            interval: self.interval.get_ref().get(),
            method: self
                .method
                .as_ref()
                .map(|m| *m.get_ref())
                .unwrap_or_default(),
            headers,
            timeout: self.timeout.get_ref().get(),
        })
    }
}
