//! The `[notify]` section: `[[notify.channel]]` (Slack, Discord, webhook, Alertmanager, email,
//! PagerDuty, Telegram, Teams, ntfy) and the `[[notify.route]]` rules that pick which events go
//! where. Validation only.

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
    /// When a probe counts as flapping (one message and one resolve instead of one per change).
    pub flapping: FlappingSection,
}

/// `[notify.flapping]`: more than `transitions` Up/Down changes within `window` is flapping;
/// it has settled after `settle` Up without a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlappingSection {
    pub transitions: u32,
    pub window: HumanDuration,
    pub settle: HumanDuration,
}

impl Default for FlappingSection {
    fn default() -> Self {
        Self {
            transitions: 2,
            window: HumanDuration::from_secs(120),
            settle: HumanDuration::from_secs(30),
        }
    }
}

impl FlappingSection {
    /// Keys are relative to `[notify]`.
    fn validate(&self) -> Result<(), Issue> {
        if self.transitions < 1 {
            return Err(Issue::at(
                "flapping.transitions",
                "notify.flapping.transitions must be at least 1 (more than that many changes is flapping)",
            ));
        }
        if self.window.get() < std::time::Duration::from_secs(1) {
            return Err(Issue::at(
                "flapping.window",
                "notify.flapping.window must be at least 1s",
            ));
        }
        if self.settle.get() < std::time::Duration::from_secs(1) {
            return Err(Issue::at(
                "flapping.settle",
                "notify.flapping.settle must be at least 1s",
            ));
        }
        Ok(())
    }
}

impl Default for NotifySection {
    fn default() -> Self {
        Self {
            dedup_window: HumanDuration::from_secs(300),
            max_age: HumanDuration::from_secs(24 * 3600),
            max_retry_delay: HumanDuration::from_secs(300),
            channels: Vec::new(),
            routes: Vec::new(),
            flapping: FlappingSection::default(),
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
    /// SMTP (STARTTLS, implicit TLS or plain) through lettre.
    Email,
    /// PagerDuty Events API v2: trigger, then resolve with the same dedup key.
    #[serde(rename = "pagerduty")]
    PagerDuty,
    /// Telegram Bot API `sendMessage`.
    Telegram,
    /// A Microsoft Teams workflow webhook, posted an Adaptive Card.
    Teams,
    /// ntfy's JSON publish form.
    Ntfy,
}

impl ChannelKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Webhook => "webhook",
            Self::Alertmanager => "alertmanager",
            Self::Email => "email",
            Self::PagerDuty => "pagerduty",
            Self::Telegram => "telegram",
            Self::Teams => "teams",
            Self::Ntfy => "ntfy",
        }
    }

    /// The service's own address, for kinds that have one (`url` may point elsewhere).
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            Self::PagerDuty => Some("https://events.pagerduty.com/v2/enqueue"),
            Self::Telegram => Some("https://api.telegram.org"),
            Self::Ntfy => Some("https://ntfy.sh"),
            _ => None,
        }
    }
}

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host or a trusted network (port 25).
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            Self::Starttls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    pub name: Spanned<String>,
    pub kind: ChannelKind,
    /// Slack/Discord/Teams: the incoming webhook URL; webhook: where to POST; alertmanager: its
    /// base URL; pagerduty/telegram/ntfy: the service's base URL (defaults to the real one).
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
    /// pagerduty: the integration's routing key (or `routing_key_file`).
    pub routing_key: Option<Spanned<String>>,
    pub routing_key_file: Option<SecretFile>,
    /// telegram: the bot token; ntfy: an access token (`Authorization: Bearer`). Or `token_file`.
    pub token: Option<Spanned<String>>,
    pub token_file: Option<SecretFile>,
    /// telegram: the chat (a number, or `@channelname`).
    pub chat_id: Option<Spanned<String>>,
    /// ntfy: the topic to publish to.
    pub topic: Option<Spanned<String>>,
    /// email: the SMTP server's host name (also the name its certificate must carry).
    pub host: Option<Spanned<String>>,
    /// email: defaults to 587 (starttls), 465 (tls) or 25 (none).
    pub port: Option<Spanned<u16>>,
    /// email: `starttls` (default), `tls` or `none`.
    pub tls: Option<Spanned<SmtpTls>>,
    /// email: trust only the CAs of this PEM file (default: the system trust store).
    pub ca_file: Option<Spanned<std::path::PathBuf>>,
    /// email: SMTP AUTH user; its password in `password` or `password_file`.
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_file: Option<SecretFile>,
    /// email: the sender, `alerts@example.com` or `Sentinel <alerts@example.com>`.
    pub from: Option<Spanned<String>>,
    /// email: the recipients.
    pub to: Option<Spanned<Vec<String>>>,
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
            (None, None) => self.kind.default_url(),
        }
    }

    /// pagerduty: `routing_key`, or the first line `routing_key_file` held at load.
    pub fn resolved_routing_key(&self) -> Option<&str> {
        inline_or_file(&self.routing_key, &self.routing_key_file)
    }

    /// telegram/ntfy: `token`, or the first line `token_file` held at load.
    pub fn resolved_token(&self) -> Option<&str> {
        inline_or_file(&self.token, &self.token_file)
    }

    /// email: `password`, or the first line `password_file` held at load.
    pub fn resolved_password(&self) -> Option<&str> {
        inline_or_file(&self.password, &self.password_file)
    }

    fn secret_files_mut(&mut self) -> [(&'static str, &mut Option<SecretFile>); 5] {
        [
            ("url_file", &mut self.url_file),
            ("secret_file", &mut self.secret_file),
            ("routing_key_file", &mut self.routing_key_file),
            ("token_file", &mut self.token_file),
            ("password_file", &mut self.password_file),
        ]
    }

    /// Forget every secret file's content (paths kept), for config diffs.
    pub fn forget_secrets(&mut self) {
        for (_, file) in self.secret_files_mut() {
            file.iter_mut().for_each(SecretFile::forget);
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
        for (field, file) in self.secret_files_mut() {
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
        for (field, kinds, set) in self.kind_fields() {
            if set && !kinds.contains(&self.kind) {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(Issue::at(
                    field,
                    format!(
                        "notify channel \"{name}\": `{field}` does not apply to {} channels (only to {})",
                        self.kind.name(),
                        names.join(", ")
                    ),
                ));
            }
        }
        match self.kind {
            ChannelKind::Email => self.validate_email()?,
            ChannelKind::PagerDuty => {
                self.require_secret("routing_key", &self.routing_key, &self.routing_key_file)?;
            }
            ChannelKind::Telegram => {
                let token = self.require_secret("token", &self.token, &self.token_file)?;
                // The token becomes part of the URL path (/bot<TOKEN>/sendMessage).
                if !token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
                {
                    return Err(Issue::at(
                        "token",
                        format!("notify channel \"{name}\": the bot token may only hold letters, digits, `:`, `_` and `-` (as BotFather gives it)"),
                    )
                    .or_at("token_file"));
                }
                let chat = self.require_text("chat_id", &self.chat_id)?;
                if chat.parse::<i64>().is_err() && !chat.starts_with('@') {
                    return Err(Issue::at(
                        "chat_id",
                        format!("notify channel \"{name}\": chat_id \"{chat}\" is neither a number nor an @channelname"),
                    ));
                }
            }
            ChannelKind::Ntfy => {
                let topic = self.require_text("topic", &self.topic)?;
                if topic.len() > 64
                    || !topic
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                {
                    return Err(Issue::at(
                        "topic",
                        format!("notify channel \"{name}\": topic \"{topic}\" must be 1 to 64 letters, digits, `_` or `-` (as ntfy takes it)"),
                    ));
                }
            }
            _ => {}
        }
        if self.kind != ChannelKind::Email {
            self.validate_url()?;
        }
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
            (None, None) if self.kind.default_url().is_some() => Ok(()),
            (None, None) => Err(Issue::at(
                "name",
                format!("notify channel \"{name}\": needs `url` or `url_file`"),
            )),
        }
    }

    /// Every kind-specific field, the kinds it belongs to, and whether it is set.
    fn kind_fields(&self) -> [(&'static str, &'static [ChannelKind], bool); 15] {
        use ChannelKind::*;
        const NOT_EMAIL: &[ChannelKind] = &[
            Slack,
            Discord,
            Webhook,
            Alertmanager,
            PagerDuty,
            Telegram,
            Teams,
            Ntfy,
        ];
        [
            ("url", NOT_EMAIL, self.url.is_some()),
            ("url_file", NOT_EMAIL, self.url_file.is_some()),
            ("routing_key", &[PagerDuty], self.routing_key.is_some()),
            (
                "routing_key_file",
                &[PagerDuty],
                self.routing_key_file.is_some(),
            ),
            ("token", &[Telegram, Ntfy], self.token.is_some()),
            ("token_file", &[Telegram, Ntfy], self.token_file.is_some()),
            ("chat_id", &[Telegram], self.chat_id.is_some()),
            ("topic", &[Ntfy], self.topic.is_some()),
            ("host", &[Email], self.host.is_some()),
            ("port", &[Email], self.port.is_some()),
            ("tls", &[Email], self.tls.is_some()),
            ("ca_file", &[Email], self.ca_file.is_some()),
            ("username", &[Email], self.username.is_some()),
            ("from", &[Email], self.from.is_some()),
            ("to", &[Email], self.to.is_some()),
        ]
    }

    /// The SMTP settings are complete and the addresses parse; `password` needs `username`.
    fn validate_email(&self) -> Result<(), Issue> {
        let name = self.name();
        let problem = |message: String| format!("notify channel \"{name}\": {message}");
        for (field, set) in [
            ("password", self.password.is_some()),
            ("password_file", self.password_file.is_some()),
        ] {
            if set && self.username.is_none() {
                return Err(Issue::at(
                    field,
                    problem(format!("`{field}` needs `username`")),
                ));
            }
        }
        if self.username.is_some() {
            self.require_secret("password", &self.password, &self.password_file)?;
        }
        let host = self.require_text("host", &self.host)?;
        if host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
            return Err(Issue::at(
                "host",
                problem(format!(
                    "host \"{host}\" must be a bare host name or IP address (the port goes in `port`)"
                )),
            ));
        }
        if self.port.as_ref().is_some_and(|p| *p.get_ref() == 0) {
            return Err(Issue::at("port", problem("port must be 1 to 65535".into())));
        }
        let from = self.require_text("from", &self.from)?;
        if let Err(err) = from.parse::<lettre::message::Mailbox>() {
            return Err(Issue::at(
                "from",
                problem(format!(
                    "from \"{from}\" is not an email address (expected alerts@example.com or \"Name <alerts@example.com>\"): {err}"
                )),
            )
            .because(err));
        }
        let Some(to) = self.to.as_ref().filter(|to| !to.get_ref().is_empty()) else {
            return Err(
                Issue::at("to", problem("needs `to`, at least one recipient".into())).or_at("name"),
            );
        };
        for address in to.get_ref() {
            if let Err(err) = address.parse::<lettre::message::Mailbox>() {
                return Err(Issue::at(
                    "to",
                    problem(format!(
                        "recipient \"{address}\" is not an email address: {err}"
                    )),
                )
                .because(err));
            }
        }
        if let Some(file) = &self.ca_file {
            if self.smtp_tls() == SmtpTls::None {
                return Err(Issue::at(
                    "ca_file",
                    problem("`ca_file` needs tls = \"starttls\" or \"tls\"".into()),
                ));
            }
            crate::http::client::tls::read_ca_file(file.get_ref())
                .map_err(|err| Issue::at("ca_file", problem(err.to_string())).because(err))?;
        }
        Ok(())
    }

    /// email: the TLS mode (default STARTTLS).
    pub fn smtp_tls(&self) -> SmtpTls {
        self.tls.as_ref().map(|t| *t.get_ref()).unwrap_or_default()
    }

    /// email: `port`, or the TLS mode's usual port.
    pub fn smtp_port(&self) -> u16 {
        self.port
            .as_ref()
            .map(|p| *p.get_ref())
            .unwrap_or_else(|| self.smtp_tls().default_port())
    }

    /// A non-empty `field`; a missing one is reported at the channel's name.
    fn require_text<'a>(
        &self,
        field: &str,
        value: &'a Option<Spanned<String>>,
    ) -> Result<&'a str, Issue> {
        let name = self.name();
        match value.as_ref().map(|v| v.get_ref().trim()) {
            Some("") => Err(Issue::at(
                field,
                format!("notify channel \"{name}\": `{field}` is empty"),
            )),
            Some(text) => Ok(text),
            None => Err(Issue::at(
                "name",
                format!(
                    "notify channel \"{name}\": {} channels need `{field}`",
                    self.kind.name()
                ),
            )),
        }
    }

    /// `field` inline or the first line of `field_file`; errors name the file, never the secret.
    fn require_secret<'a>(
        &'a self,
        field: &'static str,
        inline: &'a Option<Spanned<String>>,
        file: &'a Option<SecretFile>,
    ) -> Result<&'a str, Issue> {
        let name = self.name();
        let file_field: &'static str = match field {
            "routing_key" => "routing_key_file",
            "token" => "token_file",
            _ => "password_file",
        };
        match (inline, file) {
            (Some(_), Some(_)) => Err(Issue::at(
                file_field,
                format!("notify channel \"{name}\": set `{field}` or `{file_field}`, not both"),
            )),
            (Some(_), None) => self.require_text(field, inline),
            (None, Some(file)) => file
                .first_line(file_field, "the secret on its first line")
                .map_err(|err| {
                    Issue::at(file_field, format!("notify channel \"{name}\": {err}")).because(err)
                }),
            (None, None) => Err(Issue::at(
                "name",
                format!(
                    "notify channel \"{name}\": {} channels need `{field}` or `{file_field}`",
                    self.kind.name()
                ),
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

/// An inline secret, or the first line its file held at load.
fn inline_or_file<'a>(
    inline: &'a Option<Spanned<String>>,
    file: &'a Option<SecretFile>,
) -> Option<&'a str> {
    match (inline, file) {
        (Some(value), _) => Some(value.get_ref().trim()),
        (None, Some(file)) => file.content().map(|secret| secret.first_line()),
        (None, None) => None,
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
        self.flapping.validate()?;
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
