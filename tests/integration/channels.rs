//! The channels beyond Slack, Discord, webhook and Alertmanager, against real receivers on
//! loopback: email to a real SMTP server (aiosmtpd: plain, STARTTLS and implicit TLS with a
//! throwaway CA), PagerDuty, Telegram, Teams and ntfy receivers that check each service's
//! documented payload field by field; and `sentinelctl notify test`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{free_port, text, wait_for, Daemon, Sandbox};
use crate::notify::{Answer, Receiver};
use crate::tls::make_certificates;

/// An exec probe `app`, up while `flag` exists, without a heal (Down alerts, Up resolves),
/// quick retries, and the given channels (and routes).
fn incident_config(flag: &Path, channels: &str) -> String {
    format!(
        r#"[[probe]]
name = "app"
kind = "exec"
command = ["/bin/sh", "-c", "test -e {flag}"]
interval = "200ms"
timeout = "200ms"
fail_after = 1

[notify]
max_retry_delay = "1s"

{channels}
"#,
        flag = flag.display()
    )
}

/// A sandboxed daemon with the incident config; `app` is up when this returns.
fn start(sandbox: &Sandbox, channels: &str) -> (Daemon, PathBuf) {
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    sandbox.write_config(&sandbox.config("", &incident_config(&flag, channels)));
    let daemon = Daemon::start(sandbox, |_| {});
    daemon.wait_state("app", "up");
    (daemon, flag)
}

fn outbox(daemon: &Daemon) -> Vec<Value> {
    daemon.ctl_json(&["outbox"])["messages"]
        .as_array()
        .unwrap()
        .clone()
}

/// `sentinelctl notify test CHANNEL`: (exit success, stdout, stderr).
fn notify_test(daemon: &Daemon, channel: &str) -> (bool, String, String) {
    let output = daemon.ctl(&["notify", "test", channel]);
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

// ---------------------------------------------------------------------------------------------
// email

const SMTP_USER: &str = "sentinel";
const SMTP_PASSWORD: &str = "smtp-pw-SECRET-MARKER";

/// The Python of the venv with aiosmtpd (tests/setup-and-run.sh makes it), or
/// $SENTINEL_SMTP_PYTHON. None (a loud skip) only outside CI.
fn smtp_python() -> Option<PathBuf> {
    let python = std::env::var_os("SENTINEL_SMTP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/smtp-venv/bin/python")
        });
    if python.exists() {
        return Some(python);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing: run tests/setup-and-run.sh (it installs aiosmtpd) or set SENTINEL_SMTP_PYTHON",
            python.display()
        );
    }
    eprintln!(
        "\n!!! SKIPPING the email test: no aiosmtpd venv at {} (allowed only outside CI) !!!\n",
        python.display()
    );
    None
}

/// A real SMTP server (tests/integration/channels/smtp_server.py) on 127.0.0.1:port.
struct SmtpServer {
    child: Child,
    out: PathBuf,
}

impl SmtpServer {
    fn start(python: &Path, mode: &str, port: u16, dir: &Path) -> Self {
        let out = dir.join(format!("smtp-{mode}-{port}"));
        std::fs::create_dir_all(&out).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/integration/channels/smtp_server.py"
        );
        let mut command = Command::new(python);
        command
            .arg(script)
            .arg(mode)
            .arg(port.to_string())
            .arg(&out);
        if mode != "plain" {
            command
                .arg(dir.join("server.pem"))
                .arg(dir.join("server.key"))
                .args([SMTP_USER, SMTP_PASSWORD]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP server");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(
            ready.trim(),
            "ready",
            "the {mode} SMTP server did not start"
        );
        Self { child, out }
    }

    /// The messages it accepted, in order.
    fn messages(&self) -> Vec<Value> {
        let mut numbered: Vec<(u32, Value)> = std::fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let n = path.file_stem()?.to_str()?.parse().ok()?;
                let body = std::fs::read(&path).ok()?;
                Some((n, serde_json::from_slice(&body).unwrap()))
            })
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        numbered.into_iter().map(|(_, v)| v).collect()
    }

    fn wait_messages(&self, count: usize, what: &str) -> Vec<Value> {
        wait_for(Duration::from_secs(30), what, || {
            let got = self.messages();
            (got.len() >= count).then_some(got)
        })
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plain, STARTTLS and implicit TLS: each server gets the firing and the resolved email from
/// the configured sender to every recipient, encrypted where asked, after SMTP AUTH with the
/// password from `password_file` or inline; the STARTTLS server is dead during the incident
/// and gets its mail once it is up. The system trust store refuses the test CA.
#[test]
fn email_reaches_a_real_smtp_server_plain_starttls_and_implicit_tls() {
    let Some(python) = smtp_python() else { return };
    let sandbox = Sandbox::new();
    let dir = sandbox.path();
    make_certificates(dir);
    let password_file = dir.join("smtp-password");
    std::fs::write(&password_file, format!("{SMTP_PASSWORD}\n")).unwrap();
    let (plain_port, starttls_port, tls_port) = (free_port(), free_port(), free_port());
    let plain = SmtpServer::start(&python, "plain", plain_port, dir);
    let tls = SmtpServer::start(&python, "tls", tls_port, dir);
    let ca = dir.join("ca.pem");
    let channels = format!(
        r#"[[notify.channel]]
name = "mail-plain"
kind = "email"
host = "127.0.0.1"
port = {plain_port}
tls = "none"
from = "Sentinel <sentinel@example.org>"
to = ["ops@example.org", "oncall@example.org"]

[[notify.channel]]
name = "mail-starttls"
kind = "email"
host = "127.0.0.1"
port = {starttls_port}
ca_file = "{ca}"
username = "{SMTP_USER}"
password_file = "{password_file}"
from = "sentinel@example.org"
to = ["ops@example.org"]

[[notify.channel]]
name = "mail-tls"
kind = "email"
host = "127.0.0.1"
port = {tls_port}
tls = "tls"
ca_file = "{ca}"
username = "{SMTP_USER}"
password = "{SMTP_PASSWORD}"
from = "sentinel@example.org"
to = ["ops@example.org"]

[[notify.channel]]
name = "mail-system-store"
kind = "email"
host = "127.0.0.1"
port = {tls_port}
tls = "tls"
username = "{SMTP_USER}"
password = "{SMTP_PASSWORD}"
from = "sentinel@example.org"
to = ["ops@example.org"]

[[notify.route]]
channels = ["mail-plain", "mail-starttls", "mail-tls"]
"#,
        ca = ca.display(),
        password_file = password_file.display(),
    );
    let (daemon, flag) = start(&sandbox, &channels);

    std::fs::remove_file(&flag).unwrap();
    let firing = plain.wait_messages(1, "the firing email over plain SMTP");
    let tls_firing = tls.wait_messages(1, "the firing email over implicit TLS");
    // the STARTTLS server is not there yet: the message waits and retries
    let pending = wait_for(Duration::from_secs(20), "a failed STARTTLS attempt", || {
        outbox(&daemon).into_iter().find(|m| {
            m["channel"] == "mail-starttls" && m["state"] == "pending" && m["attempts"] != 0
        })
    });
    let error = pending["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("SMTP 127.0.0.1:{starttls_port}")),
        "{pending}"
    );
    let starttls = SmtpServer::start(&python, "starttls", starttls_port, dir);
    let starttls_firing = starttls.wait_messages(1, "the firing email over STARTTLS");

    std::fs::write(&flag, "").unwrap();
    let all = [
        (
            "plain",
            plain.wait_messages(2, "plain resolved"),
            false,
            None,
        ),
        (
            "starttls",
            starttls.wait_messages(2, "starttls resolved"),
            true,
            Some(SMTP_USER),
        ),
        (
            "tls",
            tls.wait_messages(2, "tls resolved"),
            true,
            Some(SMTP_USER),
        ),
    ];
    assert_eq!(firing[0]["subject"], all[0].1[0]["subject"]);
    assert_eq!(tls_firing.len(), 1);
    assert_eq!(starttls_firing.len(), 1);
    for (mode, messages, encrypted, user) in &all {
        let (first, second) = (&messages[0], &messages[1]);
        assert_eq!(first["tls"], *encrypted, "{mode}: {first}");
        assert_eq!(first["auth_user"].as_str(), *user, "{mode}: {first}");
        assert_eq!(first["mail_from"], "sentinel@example.org", "{mode}");
        let subject = first["subject"].as_str().unwrap();
        assert!(
            subject.starts_with("sentineld: app firing ("),
            "{mode}: {subject}"
        );
        assert_eq!(second["subject"], "sentineld: app resolved", "{mode}");
        let body = first["text"].as_str().unwrap();
        assert!(body.contains("app"), "{mode}: {body}");
        assert!(body.contains("sentineld · "), "{mode}: {body}");
        assert!(
            second["text"].as_str().unwrap().contains("app recovered"),
            "{mode}: {second}"
        );
    }
    let (_, plain_messages, _, _) = &all[0];
    assert_eq!(
        plain_messages[0]["rcpt_tos"],
        serde_json::json!(["ops@example.org", "oncall@example.org"])
    );
    assert_eq!(plain_messages[0]["from"], "Sentinel <sentinel@example.org>");
    assert_eq!(
        plain_messages[0]["to"],
        "ops@example.org, oncall@example.org"
    );

    // notify test: the server's reply, through the same path
    let (ok, stdout, stderr) = notify_test(&daemon, "mail-tls");
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("mail-tls (email): test message delivered")
            && stdout.contains("receiver answered: 250 "),
        "{stdout}"
    );
    let test_mail = tls.wait_messages(3, "the test email");
    assert!(
        test_mail[2]["text"]
            .as_str()
            .unwrap()
            .contains("Test message from sentineld"),
        "{}",
        test_mail[2]
    );
    // the system trust store does not know the test CA: refused, and said why
    let (ok, stdout, _) = notify_test(&daemon, "mail-system-store");
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("NOT delivered") && stdout.to_lowercase().contains("certificate"),
        "{stdout}"
    );
    assert_eq!(tls.messages().len(), 3, "nothing arrived without trust");

    let everything = format!(
        "{}{}",
        daemon.stderr(),
        text(&daemon.ctl(&["--json", "outbox"]).stdout)
    );
    assert!(
        !everything.contains(SMTP_PASSWORD),
        "the SMTP password leaked"
    );
    assert!(daemon.stop().success());
}

// ---------------------------------------------------------------------------------------------
// PagerDuty

/// Down and up again while the receiver is dead and the daemon restarts in between; then the
/// receiver comes up: one trigger and one resolve arrive, in order, with one dedup key and the
/// Events API v2 fields. `notify test` prints the receiver's answer.
#[test]
fn pagerduty_triggers_then_resolves_with_one_dedup_key_across_a_restart() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let key_file = sandbox.path().join("routing-key");
    std::fs::write(&key_file, "R0UTING-KEY-MARKER\n").unwrap();
    let channels = format!(
        "[[notify.channel]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"http://127.0.0.1:{port}/v2/enqueue\"\nrouting_key_file = \"{}\"\n",
        key_file.display()
    );
    let (daemon, flag) = start(&sandbox, &channels);
    std::fs::remove_file(&flag).unwrap();
    daemon.wait_state("app", "down");
    std::fs::write(&flag, "").unwrap();
    daemon.wait_state("app", "up");
    wait_for(Duration::from_secs(20), "failed deliveries", || {
        outbox(&daemon)
            .iter()
            .any(|m| m["channel"] == "pd" && m["attempts"] != 0)
            .then_some(())
    });
    assert!(daemon.stop().success());

    let receiver = Receiver::answering(port, |_| Answer {
        delay: Duration::ZERO,
        body: r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#.into(),
    });
    let daemon = Daemon::start(&sandbox, |_| {});
    let events = wait_for(Duration::from_secs(30), "trigger and resolve", || {
        let got = receiver.at("/v2/enqueue");
        (got.len() >= 2).then_some(got)
    });
    let (trigger, resolve) = (&events[0].body, &events[1].body);
    assert_eq!(trigger["routing_key"], "R0UTING-KEY-MARKER", "{trigger}");
    assert_eq!(trigger["event_action"], "trigger");
    let dedup = trigger["dedup_key"].as_str().unwrap();
    assert!(dedup.ends_with("/probe:app"), "{dedup}");
    let payload = &trigger["payload"];
    let summary = payload["summary"].as_str().unwrap();
    assert!(summary.contains("app"), "{summary}");
    assert!(
        ["critical", "error", "warning", "info"].contains(&payload["severity"].as_str().unwrap()),
        "{payload}"
    );
    assert!(!payload["source"].as_str().unwrap().is_empty(), "{payload}");
    assert!(payload["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(resolve["routing_key"], "R0UTING-KEY-MARKER");
    assert_eq!(resolve["event_action"], "resolve", "{resolve}");
    assert_eq!(resolve["dedup_key"], dedup);

    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(receiver.at("/v2/enqueue").len(), 2, "delivered once each");

    // notify test: the receiver's answer; the test trigger is resolved again at once
    let (ok, stdout, stderr) = notify_test(&daemon, "pd");
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("pd (pagerduty): test message delivered")
            && stdout.contains(r#"receiver answered: 200 {"status":"success""#),
        "{stdout}"
    );
    let events = receiver.at("/v2/enqueue");
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[2].body["event_action"], "trigger");
    assert_eq!(events[2].body["payload"]["severity"], "info");
    assert_eq!(events[3].body["event_action"], "resolve");
    assert_eq!(events[3].body["dedup_key"], events[2].body["dedup_key"]);
    assert_ne!(events[2].body["dedup_key"], dedup);

    let (ok, _, stderr) = notify_test(&daemon, "nope");
    assert!(!ok);
    assert!(stderr.contains("no notify channel \"nope\""), "{stderr}");
    let everything = format!(
        "{}{}",
        daemon.stderr(),
        text(&daemon.ctl(&["--json", "outbox"]).stdout)
    );
    assert!(
        !everything.contains("R0UTING-KEY-MARKER"),
        "the routing key leaked into logs or the outbox"
    );
    assert!(daemon.stop().success());
}

/// `notify test` against a dead receiver: exit 1, NOT delivered, and the reason.
#[test]
fn notify_test_says_why_a_dead_receiver_got_nothing() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let channels = format!(
        "[[notify.channel]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"http://127.0.0.1:{port}/v2/enqueue\"\nrouting_key = \"k\"\n"
    );
    let (daemon, _flag) = start(&sandbox, &channels);
    let (ok, stdout, _) = notify_test(&daemon, "pd");
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("pd (pagerduty): test message NOT delivered")
            && stdout.contains(&format!("127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(daemon.stop().success());
}

// ---------------------------------------------------------------------------------------------
// Telegram, Teams, ntfy

/// One incident (down, then up) against `receiver`; returns its two POSTs at `path`.
fn incident(
    sandbox: &Sandbox,
    channels: &str,
    receiver: &Receiver,
    path: &str,
) -> (Daemon, Vec<crate::notify::Received>) {
    let (daemon, flag) = start(sandbox, channels);
    std::fs::remove_file(&flag).unwrap();
    wait_for(Duration::from_secs(20), "the alert", || {
        (!receiver.at(path).is_empty()).then_some(())
    });
    std::fs::write(&flag, "").unwrap();
    let got = wait_for(Duration::from_secs(20), "the resolve", || {
        let got = receiver.at(path);
        (got.len() >= 2).then_some(got)
    });
    (daemon, got)
}

#[test]
fn telegram_gets_send_message_with_chat_id_and_text() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let receiver = Receiver::answering(port, |_| Answer {
        delay: Duration::ZERO,
        body: r#"{"ok":true,"result":{"message_id":7}}"#.into(),
    });
    let token = "123456:ABC-TOKEN_MARKER";
    let token_file = sandbox.path().join("bot-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let channels = format!(
        "[[notify.channel]]\nname = \"tg\"\nkind = \"telegram\"\nurl = \"http://127.0.0.1:{port}\"\ntoken_file = \"{}\"\nchat_id = \"-1001234567890\"\n",
        token_file.display()
    );
    let path = format!("/bot{token}/sendMessage");
    let (daemon, got) = incident(&sandbox, &channels, &receiver, &path);
    let (firing, resolved) = (&got[0].body, &got[1].body);
    assert_eq!(firing["chat_id"], -1001234567890_i64, "{firing}");
    let message = firing["text"].as_str().unwrap();
    assert!(
        message.contains("app") && message.contains("sentineld · "),
        "{message}"
    );
    assert!(
        firing.get("parse_mode").is_none(),
        "plain text, nothing to escape"
    );
    assert!(
        resolved["text"].as_str().unwrap().contains("app recovered"),
        "{resolved}"
    );
    let (ok, stdout, stderr) = notify_test(&daemon, "tg");
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(r#"receiver answered: 200 {"ok":true"#),
        "{stdout}"
    );
    let everything = format!(
        "{}{}",
        daemon.stderr(),
        text(&daemon.ctl(&["--json", "outbox"]).stdout)
    );
    assert!(!everything.contains("TOKEN_MARKER"), "the bot token leaked");
    assert!(daemon.stop().success());
}

#[test]
fn teams_gets_an_adaptive_card_in_a_message_envelope() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let receiver = Receiver::answering(port, |_| Answer {
        delay: Duration::ZERO,
        body: String::new(),
    });
    let channels = format!(
        "[[notify.channel]]\nname = \"teams\"\nkind = \"teams\"\nurl = \"http://127.0.0.1:{port}/workflows/abc/triggers/manual/paths/invoke?sig=x\"\n"
    );
    let path = "/workflows/abc/triggers/manual/paths/invoke?sig=x";
    let (daemon, got) = incident(&sandbox, &channels, &receiver, path);
    for (post, word) in [(&got[0].body, "firing"), (&got[1].body, "resolved")] {
        assert_eq!(post["type"], "message", "{post}");
        let attachments = post["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 1);
        assert_eq!(
            attachments[0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachments[0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(
            card["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        assert!(card["version"].as_str().unwrap().starts_with("1."));
        let body = card["body"].as_array().unwrap();
        assert_eq!(body[0]["type"], "TextBlock");
        assert!(
            body[0]["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("sentineld: app {word}")),
            "{post}"
        );
        assert_eq!(body[1]["type"], "TextBlock");
        assert!(body[1]["text"].as_str().unwrap().contains("app"));
        assert_eq!(body[2]["type"], "FactSet");
        assert_eq!(body[2]["facts"][0]["title"], "Probe");
        assert_eq!(body[2]["facts"][0]["value"], "app");
        assert_eq!(body[2]["facts"][1]["value"], word);
    }
    let (ok, stdout, stderr) = notify_test(&daemon, "teams");
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("receiver answered: 200"), "{stdout}");
    assert!(daemon.stop().success());
}

#[test]
fn ntfy_gets_the_json_publish_form_with_topic_title_priority_and_tags() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let receiver = Receiver::answering(port, |_| Answer {
        delay: Duration::ZERO,
        body: r#"{"id":"abc","event":"message","topic":"sentinel-alerts"}"#.into(),
    });
    let channels = format!(
        "[[notify.channel]]\nname = \"phone\"\nkind = \"ntfy\"\nurl = \"http://127.0.0.1:{port}\"\ntopic = \"sentinel-alerts\"\ntoken = \"tk_NTFY_MARKER\"\n"
    );
    let (daemon, got) = incident(&sandbox, &channels, &receiver, "/");
    let (firing, resolved) = (&got[0].body, &got[1].body);
    assert_eq!(firing["topic"], "sentinel-alerts", "{firing}");
    assert!(
        firing["title"]
            .as_str()
            .unwrap()
            .starts_with("sentineld: app firing"),
        "{firing}"
    );
    assert!(firing["message"].as_str().unwrap().contains("app"));
    let priority = firing["priority"].as_i64().unwrap();
    assert!((4..=5).contains(&priority), "{firing}");
    assert!(firing["tags"]
        .as_array()
        .unwrap()
        .contains(&"sentineld".into()));
    assert_eq!(resolved["priority"], 3, "{resolved}");
    assert_eq!(resolved["tags"][0], "white_check_mark");
    assert_eq!(
        got[0].authorization.as_deref(),
        Some("Bearer tk_NTFY_MARKER")
    );
    let (ok, stdout, stderr) = notify_test(&daemon, "phone");
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(r#"receiver answered: 200 {"id":"abc""#),
        "{stdout}"
    );
    assert!(daemon.stop().success());
}
