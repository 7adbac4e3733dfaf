//! The optional AI summary against real HTTP servers on loopback speaking the OpenAI
//! `/v1/chat/completions` and Ollama `/api/chat` protocols: the request carries the report and
//! the model, the answer is printed after the findings under its label, and an endpoint that is
//! slow, down or answers nonsense costs one line, never the command.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{free_port, text, Daemon, KilledOnDrop, Sandbox};
use crate::notify::{Answer, Receiver};

const KEY_VAR: &str = "SENTINEL_TEST_AI_KEY";

fn ai_section(provider: &str, port: u16, model: &str, extra: &str) -> String {
    format!(
        "[ai]\nenabled = true\nprovider = \"{provider}\"\nendpoint = \"http://127.0.0.1:{port}\"\nmodel = \"{model}\"\n{extra}\n"
    )
}

fn answering(port: u16, body: &'static str, delay: Duration) -> Receiver {
    Receiver::answering(port, move |_| Answer {
        delay,
        body: body.into(),
    })
}

fn ctl_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.ctl(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The user message (the document) of the one request `receiver` got at `path`.
fn document_sent(receiver: &Receiver, path: &str) -> (Value, String) {
    let requests = receiver.at(path);
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body = requests[0].body.clone();
    let document = body["messages"][1]["content"].as_str().unwrap().to_string();
    (body, document)
}

#[test]
fn summaries_over_openai_and_ollama_protocols() {
    let (openai_port, ollama_port) = (free_port(), free_port());
    let openai = answering(
        openai_port,
        r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"OPENAI SAYS: the probe recovered."},"finish_reason":"stop"}]}"#,
        Duration::ZERO,
    );
    let ollama = answering(
        ollama_port,
        r#"{"model":"llama-test","message":{"role":"assistant","content":"OLLAMA SAYS: check the heal budget."},"done":true}"#,
        Duration::ZERO,
    );
    let sandbox = Sandbox::new();
    // a real, harmless experiment target: a sleep to SIGSTOP and SIGCONT
    let sleeper = KilledOnDrop(Command::new("sleep").arg("600").spawn().unwrap());
    let profile = format!(
        "[[chaos.profile]]\nname = \"nap\"\ntarget = {{ pid = {} }}\nfaults = [{{ kind = \"pause\" }}]\n",
        sleeper.0.id()
    );
    let ai = |config: String| format!("{config}{profile}");
    let openai_config = ai(ai_section(
        "openai",
        openai_port,
        "gpt-test",
        &format!("api_key_env = \"{KEY_VAR}\""),
    ));
    sandbox.write_config(&sandbox.config("", &openai_config));
    let daemon = Daemon::start(&sandbox, |command| {
        command.env(KEY_VAR, "k3y");
    });

    // analyze --summary: findings first, then the labeled summary
    let out = ctl_ok(&daemon, &["analyze", "--summary"]);
    let label = out
        .find("AI-generated summary (model gpt-test via openai")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(out.find("Failure patterns").unwrap() < label, "{out}");
    assert!(
        out.contains("not a finding; verify against the evidence above\nOPENAI SAYS"),
        "{out}"
    );
    let (body, document) = document_sent(&openai, "/v1/chat/completions");
    assert_eq!(body["model"], "gpt-test");
    assert!(
        document.contains("failure-pattern analysis") && document.contains("\"events_analyzed\""),
        "{document}"
    );
    assert_eq!(
        openai.at("/v1/chat/completions")[0]
            .authorization
            .as_deref(),
        Some("Bearer k3y")
    );

    let started = daemon.ctl_json(&["chaos", "start", "nap"]);
    let id = started["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_string();
    daemon.ctl_json(&["chaos", "stop", &id]);

    // report --summary over Ollama, after a reload switched providers
    sandbox.write_config(
        &sandbox.config("", &ai(ai_section("ollama", ollama_port, "llama-test", ""))),
    );
    ctl_ok(&daemon, &["reload"]);
    let out = ctl_ok(&daemon, &["report", &id, "--summary"]);
    assert!(out.contains(&format!("Chaos experiment {id}")), "{out}");
    assert!(
        out.contains("AI-generated summary (model llama-test via ollama at http://127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.ends_with("OLLAMA SAYS: check the heal budget.\n"),
        "{out}"
    );
    let (body, document) = document_sent(&ollama, "/api/chat");
    assert_eq!(body["model"], "llama-test");
    assert_eq!(body["stream"], false);
    assert!(
        document.contains("chaos experiment report")
            && document.contains(&format!("\"experiment\":\"{id}\"")),
        "{document}"
    );

    // --json --summary: one object with both
    let value = daemon.ctl_json(&["report", &id, "--summary"]);
    assert_eq!(value["report"]["experiment"], id.as_str());
    assert_eq!(value["ai_summary"]["summary"]["model"], "llama-test");
    assert!(daemon.stop().success());
}

#[test]
fn a_slow_dead_or_confused_endpoint_costs_one_line_not_the_command() {
    let (slow_port, nonsense_port, dead_port) = (free_port(), free_port(), free_port());
    let _slow = answering(
        slow_port,
        r#"{"message":{"content":"too late"}}"#,
        Duration::from_secs(5),
    );
    let _nonsense = answering(nonsense_port, "<html>busy</html>", Duration::ZERO);
    let sandbox = Sandbox::new();
    let cases = [
        (slow_port, "timeout = \"1s\"", "no answer within 1s"),
        (nonsense_port, "", "answered something unusable: not JSON"),
        (dead_port, "", "AI endpoint http://127.0.0.1:"),
    ];
    sandbox.write_config(&sandbox.config("", &ai_section("ollama", slow_port, "m", cases[0].1)));
    let daemon = Daemon::start(&sandbox, |_| {});
    for (port, extra, fragment) in cases {
        sandbox.write_config(&sandbox.config("", &ai_section("ollama", port, "m", extra)));
        ctl_ok(&daemon, &["reload"]);
        let started = Instant::now();
        let out = ctl_ok(&daemon, &["analyze", "--summary"]);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
        assert!(out.contains("Failure patterns"), "{out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("AI summary unavailable: "))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains(fragment), "{fragment:?} not in {line}");
        assert!(!out.contains("AI-generated summary"), "{out}");
    }
    // off (the default): says how to turn it on, still one line
    sandbox.write_config(&sandbox.config("", ""));
    ctl_ok(&daemon, &["reload"]);
    let out = ctl_ok(&daemon, &["analyze", "--summary"]);
    assert!(
        out.contains("AI summary unavailable: AI summary is off: set [ai] enabled = true"),
        "{out}"
    );
    assert!(daemon.stop().success());
}
