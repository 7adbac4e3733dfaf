//! The `[ai]` section: an optional OpenAI-compatible or Ollama endpoint that turns a report
//! into a plain-language summary. Off by default; nothing else depends on it.

use serde::Deserialize;
use toml::Spanned;

use super::{HumanDuration, Issue};
use crate::ai::{AiSettings, Provider};

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

    pub(super) fn validate(&self) -> Result<(), Issue> {
        if let Some(endpoint) = &self.endpoint {
            let url = endpoint.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Issue::at(
                    endpoint,
                    format!(
                        "invalid ai.endpoint \"{url}\": write http://HOST:PORT or https://HOST"
                    ),
                ));
            }
        }
        let model_missing = self.model.as_ref().is_none_or(|m| m.get_ref().is_empty());
        if self.enabled && model_missing {
            return Err(Issue {
                offset: None,
                message: "[ai] enabled = true needs model = \"NAME\" (e.g. \"gpt-4o-mini\" or \"llama3.1\")".into(),
            });
        }
        if self.timeout.get().is_zero() {
            return Err(Issue {
                offset: None,
                message: "ai.timeout must be above zero".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(source: &str) -> Result<super::super::Config, String> {
        super::super::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    /// (source, Ok(Some((endpoint, model))) when enabled / Ok(None) when off, or an error prefix)
    type Case = (
        &'static str,
        Result<Option<(&'static str, &'static str)>, &'static str>,
    );

    #[test]
    fn ai_section_table() {
        let cases: &[Case] = &[
            ("", Ok(None)),
            ("[ai]\nmodel = \"m\"\n", Ok(None)),
            (
                "[ai]\nenabled = true\nmodel = \"gpt-4o-mini\"\n",
                Ok(Some(("https://api.openai.com", "gpt-4o-mini"))),
            ),
            (
                "[ai]\nenabled = true\nprovider = \"ollama\"\nmodel = \"llama3.1\"\n",
                Ok(Some(("http://127.0.0.1:11434", "llama3.1"))),
            ),
            (
                "[ai]\nenabled = true\n",
                Err("t.toml: [ai] enabled = true needs model"),
            ),
            (
                "[ai]\nendpoint = \"localhost:1\"\n",
                Err("t.toml:2:12: invalid ai.endpoint \"localhost:1\""),
            ),
            (
                "[ai]\nprovider = \"bard\"\n",
                Err("t.toml:2:12: unknown variant `bard`"),
            ),
        ];
        for (source, want) in cases {
            match (parse(source), want) {
                (Ok(config), Ok(want)) => {
                    let got = config.ai.settings();
                    let got = got
                        .as_ref()
                        .map(|s| (s.endpoint.as_str(), s.model.as_str()));
                    assert_eq!(got, *want, "{source}");
                }
                (Err(err), Err(prefix)) => assert!(err.starts_with(prefix), "{source}: {err}"),
                (got, want) => panic!("{source}: got {got:?}, want {want:?}"),
            }
        }
    }
}
