//! The `[notify]` section: `[[notify.channel]]` (Slack, Discord, webhook, Alertmanager) and the
//! `[[notify.route]]` rules that pick which events go where. Validation only.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{HumanDuration, Issue};

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
    /// A file whose first line is the URL (keeps webhook tokens out of the config).
    pub url_file: Option<Spanned<PathBuf>>,
    /// webhook: HMAC-SHA256 key for `X-Sentinel-Signature: sha256=...`.
    pub secret: Option<String>,
    pub secret_file: Option<Spanned<PathBuf>>,
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

    /// The URL (from `url` or `url_file`), already checked by validation.
    pub fn resolved_url(&self) -> Result<String, String> {
        match (&self.url, &self.url_file) {
            (Some(url), _) => Ok(url.get_ref().clone()),
            (None, Some(file)) => read_first_line(file.get_ref(), "url_file"),
            (None, None) => Err("needs `url` or `url_file`".into()),
        }
    }

    pub fn resolved_secret(&self) -> Result<Option<String>, String> {
        match (&self.secret, &self.secret_file) {
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(file)) => read_first_line(file.get_ref(), "secret_file").map(Some),
            (None, None) => Ok(None),
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

fn read_first_line(path: &std::path::Path, field: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {field} {}: {err}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").trim().to_string())
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
    pub(super) fn validate(&self) -> Result<(), Issue> {
        let mut names = HashSet::new();
        for channel in &self.channels {
            let name = channel.name();
            if !names.insert(name) {
                return Err(Issue::at(
                    &channel.name,
                    format!("duplicate notify channel \"{name}\""),
                ));
            }
            let problem = |message: String| {
                Issue::at(
                    &channel.name,
                    format!("notify channel \"{name}\": {message}"),
                )
            };
            let url = channel.resolved_url().map_err(problem)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                let at = channel
                    .url
                    .as_ref()
                    .map_or(channel.name.span().start, |u| u.span().start);
                return Err(Issue {
                    offset: Some(at),
                    message: format!(
                        "notify channel \"{name}\": url \"{url}\" must start with http:// or https://"
                    ),
                });
            }
            channel.resolved_secret().map_err(problem)?;
            if channel.kind != ChannelKind::Webhook
                && (channel.secret.is_some() || channel.secret_file.is_some())
            {
                return Err(problem("`secret` only applies to webhook channels".into()));
            }
            if channel.rate_limit == 0 {
                return Err(problem("rate_limit must be at least 1 per minute".into()));
            }
        }
        for route in &self.routes {
            for wanted in route.channels.get_ref() {
                if !names.contains(wanted.as_str()) {
                    return Err(Issue::at(
                        &route.channels,
                        format!("notify route names an unknown channel \"{wanted}\""),
                    ));
                }
            }
        }
        Ok(())
    }
}
