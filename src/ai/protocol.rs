//! The two wire protocols, pure: the request body each provider expects and where the answer's
//! text sits. OpenAI-compatible `/v1/chat/completions` and Ollama `/api/chat`.

use serde_json::{json, Value};

use super::{AiError, Provider};

/// What the model is asked to do with the document.
pub const INSTRUCTION: &str = "You are given a structured, deterministic report from sentineld, a host \
reliability daemon, as JSON. Summarize it for an on-call engineer in plain language: what happened, \
in order, with the times from the report, and whether the hypothesis held. Then list at most five \
concrete suggested next steps. Only state what the report supports; say so when it does not show \
something. Plain text, no Markdown tables, at most 200 words.";

/// The URL to POST to under `endpoint` (a base URL; an OpenAI base ending in /v1 is accepted).
pub fn url(provider: Provider, endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    match provider {
        Provider::Openai if base.ends_with("/v1") => format!("{base}/chat/completions"),
        Provider::Openai => format!("{base}/v1/chat/completions"),
        Provider::Ollama => format!("{base}/api/chat"),
    }
}

/// The request body: the instruction, then `what` (e.g. "chaos experiment report") as JSON.
pub fn request(provider: Provider, model: &str, what: &str, document: &Value) -> Value {
    let messages = json!([
        { "role": "system", "content": INSTRUCTION },
        { "role": "user", "content": format!("The {what}:\n{document}") },
    ]);
    match provider {
        Provider::Openai => json!({ "model": model, "messages": messages, "temperature": 0.2 }),
        Provider::Ollama => json!({ "model": model, "messages": messages, "stream": false }),
    }
}

/// The summary text out of the provider's answer.
pub fn answer_text(provider: Provider, body: &[u8]) -> Result<String, AiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| AiError::BadAnswer(format!("not JSON ({err}): {}", preview(body))))?;
    let text = match provider {
        Provider::Openai => value.pointer("/choices/0/message/content"),
        Provider::Ollama => value.pointer("/message/content"),
    };
    match text.and_then(Value::as_str).map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text.to_string()),
        _ => Err(AiError::BadAnswer(format!(
            "no {} in the answer: {}",
            match provider {
                Provider::Openai => "choices[0].message.content",
                Provider::Ollama => "message.content",
            },
            preview(body)
        ))),
    }
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_table() {
        let cases = [
            (
                Provider::Openai,
                "https://api.openai.com",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                Provider::Openai,
                "http://127.0.0.1:8000/v1/",
                "http://127.0.0.1:8000/v1/chat/completions",
            ),
            (
                Provider::Ollama,
                "http://127.0.0.1:11434/",
                "http://127.0.0.1:11434/api/chat",
            ),
        ];
        for (provider, endpoint, want) in cases {
            assert_eq!(url(provider, endpoint), want);
        }
    }

    #[test]
    fn requests_carry_model_instruction_and_document() {
        let document = json!({"experiment": "x1"});
        for (provider, extra) in [
            (Provider::Openai, "temperature"),
            (Provider::Ollama, "stream"),
        ] {
            let body = request(provider, "m1", "report", &document);
            assert_eq!(body["model"], "m1");
            assert_eq!(body["messages"][0]["content"], INSTRUCTION);
            assert!(body["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains(r#""experiment":"x1""#));
            assert!(body.get(extra).is_some(), "{provider:?}: {body}");
        }
    }

    #[test]
    fn answers_table() {
        let cases: &[(Provider, &str, Result<&str, &str>)] = &[
            (
                Provider::Openai,
                r#"{"choices":[{"message":{"role":"assistant","content":" ok "}}]}"#,
                Ok("ok"),
            ),
            (
                Provider::Ollama,
                r#"{"message":{"role":"assistant","content":"fine"},"done":true}"#,
                Ok("fine"),
            ),
            (
                Provider::Openai,
                r#"{"message":{"content":"wrong shape"}}"#,
                Err("no choices[0].message.content"),
            ),
            (Provider::Ollama, "<html>", Err("not JSON")),
            (
                Provider::Ollama,
                r#"{"message":{"content":""}}"#,
                Err("no message.content"),
            ),
        ];
        for (provider, body, want) in cases {
            match (answer_text(*provider, body.as_bytes()), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want),
                (Err(err), Err(fragment)) => assert!(err.to_string().contains(fragment), "{err}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }
}
