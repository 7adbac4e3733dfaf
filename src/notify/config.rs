//! The `[notify]` section: `[[notify.channel]]` (Slack, Discord, webhook, Alertmanager) and the
//! `[[notify.route]]` rules that pick which events go where. Validation only.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use crate::units::{HumanDuration, Issue, SecretFile};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// The same alert in the same state is not sent twice to a channel within this window.
    pub dedup_window: HumanDuration,
    /// A message still undelivered after this long is given up (and logged).
    pub max_age: HumanDuration,
    /// Longest wait between two delivery attempts of one message.
    pub max_retry_delay: HumanDuration,
    #[serde(rename = "channel")]
    pub channels: Vec<ChannelSection>,
    /// No route at all: every channel gets every notification.
    #[serde(rename = "route")]
    pub routes: Vec<RouteSection>,
}

impl Default for NotifySection {
    fn default() -> Self {
        Self {
            dedup_window: HumanDuration::from_secs(300),
            max_age: HumanDuration::from_secs(24 * 3600),
            max_retry_delay: HumanDuration::from_secs(300),
            channels: Vec::new(),
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Slack,
    Discord,
    Webhook,
    Alertmanager,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    pub name: Spanned<String>,
    pub kind: ChannelKind,
    /// Slack/Discord: the incoming webhook URL; webhook: where to POST; alertmanager: its base URL.
    pub url: Option<Spanned<String>>,
    /// A file whose first line is the URL (keeps webhook tokens out of the config); read at
    /// load and on every reload.
    pub url_file: Option<SecretFile>,
    /// webhook: HMAC-SHA256 key for `X-Sentinel-Signature: sha256=...`.
    pub secret: Option<String>,
    /// A file whose first line is the HMAC key; read at load and on every reload.
    pub secret_file: Option<SecretFile>,
    /// Most messages per minute to this channel; the rest wait their turn (never dropped).
    #[serde(default = "ChannelSection::default_rate_limit")]
    pub rate_limit: u32,
    /// Repeat a firing alert this often while the problem lasts; alertmanager defaults to 1m
    /// (it resolves alerts that stop being sent), the chat channels to never.
    pub remind_every: Option<HumanDuration>,
}

impl ChannelSection {
    fn default_rate_limit() -> u32 {
        30
    }

    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The URL: `url`, or the first line `url_file` held at load (validation made sure there
    /// is one).
    pub fn resolved_url(&self) -> Option<&str> {
        match (&self.url, &self.url_file) {
            (Some(url), _) => Some(url.get_ref()),
            (None, Some(file)) => file.content().map(|secret| secret.first_line()),
            (None, None) => None,
        }
    }

    /// The HMAC key: `secret`, or the first line `secret_file` held at load.
    pub fn resolved_secret(&self) -> Option<&str> {
        match (&self.secret, &self.secret_file) {
            (Some(secret), _) => Some(secret),
            (None, Some(file)) => file.content().map(|secret| secret.first_line()),
            (None, None) => None,
        }
    }

    /// Read `url_file` and `secret_file` (every load and reload does).
    fn read_secrets(&mut self) -> Result<(), Issue> {
        let name = self.name.get_ref().clone();
        for (field, file) in [
            ("url_file", &mut self.url_file),
            ("secret_file", &mut self.secret_file),
        ] {
            if let Some(file) = file {
                file.read(field).map_err(|err| {
                    Issue::at(field, format!("notify channel \"{name}\": {err}")).because(err)
                })?;
            }
        }
        Ok(())
    }

    /// Checks one `[[notify.channel]]`; keys are relative to it.
    fn validate(&self) -> Result<(), Issue> {
        let name = self.name();
        self.validate_url()?;
        if let (None, Some(file)) = (&self.secret, &self.secret_file) {
            file.first_line("secret_file", "the HMAC key on its first line")
                .map_err(|err| {
                    Issue::at("secret_file", format!("notify channel \"{name}\": {err}"))
                        .because(err)
                })?;
        }
        if self.kind != ChannelKind::Webhook
            && (self.secret.is_some() || self.secret_file.is_some())
        {
            return Err(Issue::at(
                "secret",
                format!("notify channel \"{name}\": `secret` only applies to webhook channels"),
            )
            .or_at("secret_file"));
        }
        if self.rate_limit == 0 {
            return Err(Issue::at(
                "rate_limit",
                format!("notify channel \"{name}\": rate_limit must be at least 1 per minute"),
            ));
        }
        Ok(())
    }

    /// The URL is usable. A URL from `url_file` is a secret (webhook URLs carry their token):
    /// errors about it name the file, never its content.
    fn validate_url(&self) -> Result<(), Issue> {
        let name = self.name();
        match (&self.url, &self.url_file) {
            (Some(url), _) => {
                let url = url.get_ref();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Issue::at(
                        "url",
                        format!(
                            "notify channel \"{name}\": url \"{url}\" must start with http:// or https://"
                        ),
                    ));
                }
                Ok(())
            }
            (None, Some(file)) => {
                let problem = |message: String| {
                    Issue::at("url_file", format!("notify channel \"{name}\": {message}"))
                };
                let url = file
                    .first_line("url_file", "a URL on its first line")
                    .map_err(|err| problem(err.to_string()))?;
                let path = file.path().display();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(problem(format!(
                        "url_file {path}: the URL has no http:// or https:// scheme (expected https://HOST/...)"
                    )));
                }
                // HttpTarget's own errors quote the URL: say what is wrong without it.
                if crate::probe::HttpTarget::parse(url).is_err() {
                    return Err(problem(format!(
                        "url_file {path}: the first line is not a valid URL (expected https://HOST[:PORT]/PATH)"
                    )));
                }
                Ok(())
            }
            (None, None) => Err(Issue::at(
                "name",
                format!("notify channel \"{name}\": needs `url` or `url_file`"),
            )),
        }
    }

    pub fn reminder_interval(&self) -> Option<std::time::Duration> {
        let default = match self.kind {
            ChannelKind::Alertmanager => Some(std::time::Duration::from_secs(60)),
            _ => None,
        };
        self.remind_every
            .map(HumanDuration::get)
            .or(default)
            .filter(|d| !d.is_zero())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One `[[notify.route]]`: notifications matching every given filter go to `channels`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub channels: Spanned<Vec<String>>,
    /// Event kinds (`heal_started`, `incident_closed`, `tenant_alert_fired`, ...); empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Probes (or tenant alert rules); empty: all.
    #[serde(default)]
    pub probes: Vec<String>,
    #[serde(default = "RouteSection::default_min_severity")]
    pub min_severity: Severity,
}

impl RouteSection {
    fn default_min_severity() -> Severity {
        Severity::Info
    }
}

impl NotifySection {
    /// Read every channel's `url_file` and `secret_file`.
    /// Keys are relative to `[notify]`.
    pub fn read_secrets(&mut self) -> Result<(), Issue> {
        for (i, channel) in self.channels.iter_mut().enumerate() {
            channel
                .read_secrets()
                .map_err(|issue| issue.within(format!("channel[{i}]")))?;
        }
        Ok(())
    }

    /// Checks `[notify]`; keys are relative to it.
    pub fn validate(&self) -> Result<(), Issue> {
        let mut names = HashSet::new();
        for (i, channel) in self.channels.iter().enumerate() {
            let name = channel.name();
            if !names.insert(name) {
                return Err(Issue::at(
                    format!("channel[{i}].name"),
                    format!("duplicate notify channel \"{name}\""),
                ));
            }
            channel
                .validate()
                .map_err(|issue| issue.within(format!("channel[{i}]")))?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            for wanted in route.channels.get_ref() {
                if !names.contains(wanted.as_str()) {
                    return Err(Issue::at(
                        format!("route[{i}].channels"),
                        format!("notify route names an unknown channel \"{wanted}\""),
                    ));
                }
            }
        }
        Ok(())
    }
}
