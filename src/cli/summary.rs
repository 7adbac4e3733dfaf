//! `--summary` on `sentinelctl report` and `analyze`: the optional AI summary printed after the
//! deterministic findings, under a label that says what it is; a failure is one line, not an error.

use crate::ai::AiSummary;
use crate::api::ClientError;

/// The section printed after the findings.
pub fn section(result: &Result<AiSummary, ClientError>) -> String {
    match result {
        Ok(summary) => format!("\n{}\n{}\n", label(summary), summary.text.trim_end()),
        Err(err) => format!("\nAI summary unavailable: {}\n", one_line(&err.to_string())),
    }
}

/// "AI-generated summary (model X via openai at URL) — not a finding; verify ...".
pub fn label(summary: &AiSummary) -> String {
    format!(
        "AI-generated summary (model {} via {} at {}) — not a finding; verify against the evidence above",
        summary.model, summary.provider, summary.endpoint
    )
}

/// `--json --summary`: the findings and the summary (or why there is none) in one object.
pub fn json(
    key: &str,
    findings: &impl serde::Serialize,
    result: &Result<AiSummary, ClientError>,
) -> serde_json::Value {
    let mut value = serde_json::json!({ key: findings });
    match result {
        Ok(summary) => {
            value["ai_summary"] = serde_json::json!({
                "label": label(summary),
                "summary": summary,
            })
        }
        Err(err) => value["ai_summary_error"] = one_line(&err.to_string()).into(),
    }
    value
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_is_labeled_and_failures_are_one_line() {
        let summary = AiSummary {
            provider: "ollama".into(),
            model: "llama3.1".into(),
            endpoint: "http://127.0.0.1:11434".into(),
            text: "It broke.\nRestart it.\n".into(),
        };
        let cases = [
            (
                Ok(summary),
                "\nAI-generated summary (model llama3.1 via ollama at http://127.0.0.1:11434) — not a finding; verify against the evidence above\nIt broke.\nRestart it.\n",
            ),
            (
                Err(ClientError::Api {
                    status: 502,
                    message: "AI endpoint http://x/api/chat: no answer\n within 2s".into(),
                }),
                "\nAI summary unavailable: AI endpoint http://x/api/chat: no answer within 2s\n",
            ),
        ];
        for (result, want) in cases {
            assert_eq!(section(&result), want);
        }
    }
}
