//! The `[http]` section: the public listener's address and who may read its read routes
//! (`/metrics`, the status page, the tenant ranking), with the read tokens inline or in a secret
//! file.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::{AccessSettings, Exposure};
use crate::units::{Issue, SecretFile};

/// The public TCP listener (`/healthz`, `/metrics`, ingest, the status page) and who may read
/// its read routes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `/metrics`: "on" (anyone who reaches the listener), "off" (404) or "token" (a read token).
    pub metrics: Spanned<Exposure>,
    /// The status page (`GET /`): "on", "off" or "token", as `metrics`.
    pub status_page: Spanned<Exposure>,
    /// `GET /v1/tenants/top`, what `sentinelctl tenants top --peer URL` reads: "off" by default
    /// (tenant names are customer data), "token" for a fleet's peers, or "on".
    pub tenants: Spanned<Exposure>,
    /// Bearer tokens that open the routes set to "token"; they never allow ingest (and ingest
    /// tokens never open these).
    pub read_tokens: Vec<String>,
    /// A file with one read token per line; read at load and on every reload.
    pub read_token_file: Option<SecretFile>,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9137)),
            metrics: Spanned::new(0..0, Exposure::On),
            status_page: Spanned::new(0..0, Exposure::On),
            tenants: Spanned::new(0..0, Exposure::Off),
            read_tokens: Vec::new(),
            read_token_file: None,
        }
    }
}

impl HttpSection {
    /// The inline read tokens plus those `read_token_file` held at load.
    pub fn all_read_tokens(&self) -> Vec<String> {
        let mut tokens = self.read_tokens.clone();
        if let Some(secret) = self.read_token_file.as_ref().and_then(SecretFile::content) {
            tokens.extend(secret.tokens().map(String::from));
        }
        tokens
    }

    /// What the public listener enforces.
    pub fn access_settings(&self) -> AccessSettings {
        AccessSettings {
            metrics: *self.metrics.get_ref(),
            status_page: *self.status_page.get_ref(),
            tenants: *self.tenants.get_ref(),
            read_tokens: self.all_read_tokens(),
        }
    }

    /// Keys are relative to `[http]`.
    pub fn read_secrets(&mut self) -> Result<(), Issue> {
        if let Some(file) = &mut self.read_token_file {
            file.read("read_token_file")
                .map_err(|err| Issue::at("read_token_file", format!("http: {err}")).because(err))?;
        }
        Ok(())
    }

    /// Checks `[http]`; keys are relative to it.
    pub fn validate(&self) -> Result<(), Issue> {
        if let Some(file) = &self.read_token_file {
            if file.content().is_some_and(|s| s.tokens().next().is_none()) {
                return Err(Issue::at(
                    "read_token_file",
                    format!(
                        "http: read_token_file {} holds no token (one per line; # starts a comment)",
                        file.path().display()
                    ),
                ));
            }
        }
        if let Some(i) = self.read_tokens.iter().position(|t| t.trim().is_empty()) {
            return Err(Issue::at(
                format!("read_tokens[{i}]"),
                "http.read_tokens: a token is empty",
            ));
        }
        let no_tokens = self.read_tokens.is_empty() && self.read_token_file.is_none();
        for (field, exposure) in [
            ("metrics", &self.metrics),
            ("status_page", &self.status_page),
            ("tenants", &self.tenants),
        ] {
            if *exposure.get_ref() == Exposure::Token && no_tokens {
                return Err(Issue::at(
                    field,
                    format!("http.{field} = \"token\" needs read_tokens or read_token_file"),
                ));
            }
        }
        Ok(())
    }
}
