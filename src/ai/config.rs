//! The `[ai]` section: an optional OpenAI-compatible or Ollama endpoint that turns a report
//! into a plain-language summary. Off by default; nothing else depends on it.

use serde::Deserialize;
use toml::Spanned;

use crate::ai::{AiSettings, Provider};
use crate::units::{HumanDuration, Issue};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AiSection {
    pub enabled: bool,
    pub provider: Provider,
    /// Base URL; default https://api.openai.com (openai) or http://127.0.0.1:11434 (ollama).
    pub endpoint: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
    /// Name of the environment variable holding the API key (the key never goes in the file).
    pub api_key_env: Option<String>,
    pub timeout: HumanDuration,
}

impl Default for AiSection {
    fn default() -> Self {
        Self {
            enabled: false,
            provider: Provider::Openai,
            endpoint: None,
            model: None,
            api_key_env: None,
            timeout: HumanDuration::from_secs(30),
        }
    }
}

impl AiSection {
    /// `None` while disabled.
    pub fn settings(&self) -> Option<AiSettings> {
        if !self.enabled {
            return None;
        }
        Some(AiSettings {
            provider: self.provider,
            endpoint: self.endpoint.as_ref().map_or_else(
                || self.provider.default_endpoint().to_string(),
                |e| e.get_ref().clone(),
            ),
            model: self
                .model
                .as_ref()
                .map(|m| m.get_ref().clone())
                .unwrap_or_default(),
            api_key_env: self.api_key_env.clone(),
            timeout: self.timeout.get(),
        })
    }

    /// Checks `[ai]`; keys are relative to it.
    pub fn validate(&self) -> Result<(), Issue> {
        if let Some(endpoint) = &self.endpoint {
            let url = endpoint.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Issue::at(
                    "endpoint",
                    format!(
                        "invalid ai.endpoint \"{url}\": write http://HOST:PORT or https://HOST"
                    ),
                ));
            }
        }
        let model_missing = self.model.as_ref().is_none_or(|m| m.get_ref().is_empty());
        if self.enabled && model_missing {
            return Err(Issue::at(
                "model",
                "[ai] enabled = true needs model = \"NAME\" (e.g. \"gpt-4o-mini\" or \"llama3.1\")",
            )
            .or_at("enabled"));
        }
        if self.timeout.get().is_zero() {
            return Err(Issue::at("timeout", "ai.timeout must be above zero"));
        }
        Ok(())
    }
}
