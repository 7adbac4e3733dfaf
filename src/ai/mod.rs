//! The optional AI summary: a report or analysis (JSON) sent to an OpenAI-compatible or Ollama
//! endpoint with a short instruction; the answer is labeled as generated and never replaces the
//! deterministic findings. Off by default (`[ai] enabled = false`); no feature depends on it.

pub mod config;
pub mod protocol;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Most bytes of a provider's answer read: a summary is short.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI or any server speaking its `/v1/chat/completions`.
    Openai,
    /// Ollama's `/api/chat`.
    Ollama,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Ollama => "ollama",
        }
    }

    pub fn default_endpoint(self) -> &'static str {
        match self {
            Self::Openai => "https://api.openai.com",
            Self::Ollama => "http://127.0.0.1:11434",
        }
    }
}

#[derive(Debug, Error)]
pub enum AiError {
    #[error(
        "AI summary is off: set [ai] enabled = true with a provider and model (docs/explain.md)"
    )]
    NotConfigured,
    #[error("environment variable {0} (ai.api_key_env) is not set for sentineld")]
    MissingKey(String),
    #[error("AI endpoint {endpoint}: {source}")]
    Request {
        endpoint: String,
        #[source]
        source: crate::http::client::PostError,
    },
    #[error("AI endpoint answered something unusable: {0}")]
    BadAnswer(String),
}

/// The `[ai]` settings in force.
#[derive(Debug, Clone, PartialEq)]
pub struct AiSettings {
    pub provider: Provider,
    pub endpoint: String,
    pub model: String,
    pub api_key_env: Option<String>,
    pub timeout: Duration,
}

/// A generated summary and where it came from (for the label printed above it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiSummary {
    pub provider: String,
    pub model: String,
    pub endpoint: String,
    pub text: String,
}

/// The daemon's handle: settings replaced on reload, read per request.
#[derive(Debug, Clone, Default)]
pub struct AiService {
    settings: Arc<Mutex<Option<AiSettings>>>,
}

impl AiService {
    pub fn configure(&self, settings: Option<AiSettings>) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    fn settings(&self) -> Option<AiSettings> {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Summarize `document` (`what` names it, e.g. "chaos experiment report").
    pub async fn summarize(
        &self,
        what: &str,
        document: &serde_json::Value,
    ) -> Result<AiSummary, AiError> {
        let settings = self.settings().ok_or(AiError::NotConfigured)?;
        summarize(&settings, what, document).await
    }
}

/// One request to the configured endpoint, bounded by `settings.timeout`.
pub async fn summarize(
    settings: &AiSettings,
    what: &str,
    document: &serde_json::Value,
) -> Result<AiSummary, AiError> {
    let mut headers = Vec::new();
    if let Some(name) = &settings.api_key_env {
        let key = std::env::var(name).map_err(|_| AiError::MissingKey(name.clone()))?;
        headers.push(("authorization".to_string(), format!("Bearer {key}")));
    }
    let url = protocol::url(settings.provider, &settings.endpoint);
    let body = protocol::request(settings.provider, &settings.model, what, document);
    let request_error = |source: crate::http::client::PostError| AiError::Request {
        endpoint: url.clone(),
        source,
    };
    let answer = crate::http::client::post_json(
        &url,
        &headers,
        body.to_string().into_bytes(),
        settings.timeout,
        MAX_ANSWER_BYTES,
    )
    .await
    .map_err(request_error)?
    .success()
    .map_err(request_error)?;
    Ok(AiSummary {
        provider: settings.provider.as_str().to_string(),
        model: settings.model.clone(),
        endpoint: settings.endpoint.clone(),
        text: protocol::answer_text(settings.provider, &answer)?,
    })
}
