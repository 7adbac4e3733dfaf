//! Notifications against real receivers on loopback: a webhook receiver that checks the HMAC
//! signature, Slack- and Discord-shaped receivers, all down while the incident happens and
//! across a daemon restart, then up; a real Alertmanager showing the alert fire and resolve;
//! silences recorded as suppressed in the outbox; reminders that survive a daemon restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::harness::{free_port, require_root, wait_for, Daemon, Sandbox};

pub const SECRET: &str = "s3cr3t-for-tests";

/// One received POST.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
    /// For webhooks: whether `X-Sentinel-Signature` is the HMAC of the body with SECRET.
    pub signed: bool,
    pub authorization: Option<String>,
}

/// What a receiver answers: after `delay`, 200 with `body` as JSON.
pub struct Answer {
    pub delay: Duration,
    pub body: String,
}

/// An HTTP receiver on 127.0.0.1:port that answers 200 to every POST and records it.
pub struct Receiver {
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(port: u16) -> Self {
        Self::answering(port, |_| Answer {
            delay: Duration::ZERO,
            body: "ok".into(),
        })
    }

    /// A receiver whose answer to each POST (by path) `answer` decides.
    pub fn answering(port: u16, answer: impl Fn(&str) -> Answer + Send + 'static) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let (mut length, mut signature, mut authorization) = (0usize, None, None);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or(("", ""));
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "x-sentinel-signature" => signature = Some(value.trim().to_string()),
                        "authorization" => authorization = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(&body);
                let expected: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let signed = signature.as_deref() == Some(&format!("sha256={expected}"));
                let answer = answer(&path);
                store.lock().unwrap().push(Received {
                    path,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    signed,
                    authorization,
                });
                std::thread::sleep(answer.delay);
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        answer.body.len(),
                        answer.body
                    )
                    .as_bytes(),
                );
            }
        });
        Self { received }
    }

    pub fn at(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// The flag probe of the archive tests; `heal` is the heal's command (JSON array).
fn incident_config(sandbox: &Sandbox, flag: &Path, heal: &str, port: u16, extra: &str) -> String {
    let logs = sandbox.path().join("app");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("app.log"), "ERROR: pool exhausted\n").unwrap();
    format!(
        r#"[[probe]]
name = "app"
kind = "exec"
command = ["/bin/sh", "-c", "test -e {flag}"]
interval = "200ms"
timeout = "200ms"
fail_after = 2
heal = {{ stable_for = "0s", action = "exec", command = {heal}, backoff = "0s", verify_within = "60s", archive = ["app-logs"] }}

[[archive.source]]
name = "app-logs"
kind = "files"
path = "{logs}"

[notify]
max_retry_delay = "1s"

[[notify.channel]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
secret = "{SECRET}"

[[notify.channel]]
name = "slack"
kind = "slack"
url = "http://127.0.0.1:{port}/slack"

[[notify.channel]]
name = "discord"
kind = "discord"
url = "http://127.0.0.1:{port}/discord"

{extra}
"#,
        flag = flag.display(),
        logs = logs.display(),
    )
}

#[test]
fn alerts_wait_out_a_dead_receiver_and_a_daemon_restart() {
    let sandbox = Sandbox::new();
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    let port = free_port();
    let touch = format!("[\"/bin/touch\", \"{}\"]", flag.display());
    let config = incident_config(&sandbox, &flag, &touch, port, "");
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(Duration::from_secs(15), "app up", || {
        (daemon.probe("app")["state"] == "up").then_some(())
    });

    // the receiver is down for the whole incident
    std::fs::remove_file(&flag).unwrap();
    wait_for(Duration::from_secs(20), "incident closed", || {
        (!daemon.events("incident_closed").is_empty()).then_some(())
    });
    wait_for(Duration::from_secs(20), "failed deliveries", || {
        daemon
            .stderr()
            .contains("notification not delivered")
            .then_some(())
    });
    assert!(daemon.stop().success());

    // receiver back, daemon back: everything queued arrives, in order, signed
    let receiver = Receiver::start(port);
    let daemon = Daemon::start(&sandbox, |_| {});
    let hooks = wait_for(
        Duration::from_secs(30),
        "firing and resolved at the webhook",
        || {
            let hooks = receiver.at("/hook");
            (hooks.len() >= 2).then_some(hooks)
        },
    );
    assert!(hooks.iter().all(|h| h.signed), "{hooks:?}");
    let firing = &hooks[0].body;
    assert_eq!(firing["status"], "firing", "{hooks:?}");
    assert_eq!(firing["kind"], "heal_started");
    let text0 = firing["text"].as_str().unwrap();
    let spool = sandbox.path().join("state/archive/bundles");
    assert!(
        text0.starts_with("🚨 app: 2/2 exec probes failed (non-zero exit) — logs archived to ")
            && text0.contains(&spool.display().to_string())
            && text0.ends_with(&format!("; running /bin/touch {}", flag.display())),
        "{text0}"
    );
    let resolved = &hooks[1].body;
    assert_eq!(resolved["status"], "resolved");
    let text1 = resolved["text"].as_str().unwrap();
    assert!(
        text1.starts_with("✅ app recovered in ") && text1.ends_with(" s"),
        "{text1}"
    );
    assert_eq!(resolved["subject"], firing["subject"]);

    let slack = wait_for(Duration::from_secs(10), "slack messages", || {
        let got = receiver.at("/slack");
        (got.len() >= 2).then_some(got)
    });
    assert_eq!(slack[0].body["text"], text0);
    assert_eq!(slack[0].body["blocks"][0]["text"]["text"], text0);
    assert!(!slack[0].signed, "only webhooks are signed");
    let discord = wait_for(Duration::from_secs(10), "discord messages", || {
        let got = receiver.at("/discord");
        (got.len() >= 2).then_some(got)
    });
    assert_eq!(discord[1].body["embeds"][0]["description"], text1);

    // delivered once: nothing more arrives (dedup, and sent rows are not resent)
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.at("/hook").len(), 2, "{:?}", receiver.at("/hook"));
    assert!(daemon.stop().success());
}

/// A real Alertmanager on loopback, its data in `dir`.
struct Alertmanager {
    child: Child,
    port: u16,
}

impl Alertmanager {
    fn start(dir: &Path) -> Option<Self> {
        let binary = ["prometheus-alertmanager", "alertmanager"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })?;
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: 'null'\n  group_wait: 0s\nreceivers:\n  - name: 'null'\n",
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let am = Self { child, port };
        wait_for(Duration::from_secs(30), "alertmanager ready", || {
            crate::archive::http(port, "GET", "/-/ready", b"")
                .ok()
                .filter(|(status, _)| *status == 200)
        });
        Some(am)
    }

    /// Alerts with `alertname` and their state (`active`, or absent once resolved).
    fn alerts(&self, alertname: &str) -> Vec<Value> {
        let (_, body) = crate::archive::http(
            self.port,
            "GET",
            &format!("/api/v2/alerts?filter=alertname%3D%22{alertname}%22"),
            b"",
        )
        .unwrap();
        serde_json::from_slice::<Vec<Value>>(&body).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn alertmanager_shows_the_alert_firing_then_resolved() {
    if !require_root("alertmanager_shows_the_alert_firing_then_resolved") {
        return;
    }
    let sandbox = Sandbox::new();
    let Some(am) = Alertmanager::start(sandbox.path()) else {
        if std::env::var_os("CI").is_some() {
            panic!("Alertmanager is needed in CI: apt-get install prometheus-alertmanager (tests/setup-and-run.sh does)");
        }
        eprintln!(
            "\n!!! SKIPPING: no prometheus-alertmanager installed (allowed only outside CI) !!!\n"
        );
        return;
    };
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    let port = free_port();
    let channel = format!(
        "[[notify.channel]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:{}\"\n\n[[notify.route]]\nchannels = [\"am\"]\n",
        am.port
    );
    // a heal that fixes nothing: the alert fires and stays until the test fixes the app
    let config = incident_config(&sandbox, &flag, "[\"/bin/true\"]", port, &channel);
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(Duration::from_secs(15), "app up", || {
        (daemon.probe("app")["state"] == "up").then_some(())
    });
    assert!(am.alerts("SentinelProbeDown").is_empty());
    std::fs::remove_file(&flag).unwrap();
    let firing = wait_for(
        Duration::from_secs(30),
        "alert active in Alertmanager",
        || {
            am.alerts("SentinelProbeDown")
                .into_iter()
                .find(|a| a["status"]["state"] == "active")
        },
    );
    assert_eq!(firing["labels"]["probe"], "app");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert!(
        firing["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("🚨 app:"),
        "{firing}"
    );
    std::fs::write(&flag, "").unwrap();
    wait_for(
        Duration::from_secs(30),
        "alert resolved in Alertmanager",
        || {
            // resolved alerts leave the active list (the API lists only unexpired ones)
            let active = am
                .alerts("SentinelProbeDown")
                .into_iter()
                .filter(|a| a["status"]["state"] == "active")
                .count();
            (active == 0).then_some(())
        },
    );
    assert!(daemon.stop().success());
}

/// Exec probes up while their flag file exists, without a heal (they alert on Down), and one
/// signed webhook channel; `channel_extra` goes into the channel (e.g. `remind_every`).
fn unhealed_config(
    flags: &[(&str, &Path)],
    fail_after: u32,
    port: u16,
    channel_extra: &str,
) -> String {
    let mut config = String::new();
    for (name, flag) in flags {
        config.push_str(&format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"test -e {}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfail_after = {fail_after}\n\n",
            flag.display()
        ));
    }
    config.push_str(&format!(
        "[notify]\nmax_retry_delay = \"1s\"\n\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\n{channel_extra}\n"
    ));
    config
}

fn outbox(daemon: &Daemon) -> Vec<Value> {
    daemon.ctl_json(&["outbox"])["messages"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_silenced_probe_alerts_nobody_and_the_outbox_says_suppressed() {
    let sandbox = Sandbox::new();
    let (app, web) = (sandbox.path().join("app.up"), sandbox.path().join("web.up"));
    std::fs::write(&app, "").unwrap();
    std::fs::write(&web, "").unwrap();
    let port = free_port();
    let receiver = Receiver::start(port);
    let config = unhealed_config(&[("app", &app), ("web", &web)], 2, port, "");
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("app", "up");
    daemon.wait_state("web", "up");
    let silenced = daemon.ctl(&["silence", "app", "--for", "30m"]);
    assert!(
        silenced.status.success(),
        "{}",
        crate::harness::text(&silenced.stderr)
    );

    std::fs::remove_file(&app).unwrap();
    std::fs::remove_file(&web).unwrap();
    daemon.wait_state("app", "down");
    // the unsilenced probe's alert arrives: the channel works, and app's would have too
    let hooks = wait_for(Duration::from_secs(20), "web's alert", || {
        let hooks = receiver.at("/hook");
        (!hooks.is_empty()).then_some(hooks)
    });
    assert_eq!(hooks[0].body["subject"], "probe:web", "{hooks:?}");
    let suppressed = wait_for(
        Duration::from_secs(10),
        "app suppressed in the outbox",
        || {
            outbox(&daemon)
                .into_iter()
                .find(|m| m["subject"] == "probe:app")
        },
    );
    assert_eq!(suppressed["state"], "suppressed", "{suppressed}");
    assert_eq!(suppressed["status"], "firing");
    assert_eq!(suppressed["attempts"], 0);
    let delivered = wait_for(Duration::from_secs(10), "web delivered", || {
        outbox(&daemon)
            .into_iter()
            .find(|m| m["subject"] == "probe:web" && m["state"] == "delivered")
    });
    assert_eq!(delivered["channel"], "hook");
    assert_eq!(delivered["attempts"], 1);
    let nothing_about_app_arrived = || {
        std::thread::sleep(Duration::from_secs(1));
        let hooks = receiver.at("/hook");
        assert!(hooks.iter().all(|h| h.body["probe"] != "app"), "{hooks:?}");
    };
    nothing_about_app_arrived();
    let table = crate::harness::text(&daemon.ctl(&["outbox"]).stdout);
    assert!(
        table.contains("probe:app") && table.contains("suppressed (silence or maintenance)"),
        "{table}"
    );

    // both recover: web's alert is resolved (Up closes an unhealed probe's alert), app's
    // resolution stays with its suppressed alert
    std::fs::write(&app, "").unwrap();
    std::fs::write(&web, "").unwrap();
    let resolved = wait_for(Duration::from_secs(20), "web resolved", || {
        receiver
            .at("/hook")
            .into_iter()
            .find(|h| h.body["status"] == "resolved")
    });
    assert_eq!(resolved.body["subject"], "probe:web");
    let text = resolved.body["text"].as_str().unwrap();
    assert!(text.starts_with("✅ web recovered in "), "{text}");
    let app_resolution = wait_for(Duration::from_secs(10), "app's resolution recorded", || {
        outbox(&daemon)
            .into_iter()
            .find(|m| m["subject"] == "probe:app" && m["status"] == "resolved")
    });
    assert_eq!(app_resolution["state"], "suppressed", "{app_resolution}");
    nothing_about_app_arrived();
    let silenced_until = daemon.probe("app")["silenced_until"].clone();
    assert!(silenced_until.is_number(), "{}", daemon.probe("app"));

    // the silence outlives a restart: app fails again under a new daemon, and still nobody hears
    assert!(daemon.stop().success());
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("app", "up");
    assert_eq!(daemon.probe("app")["silenced_until"], silenced_until);
    std::fs::remove_file(&app).unwrap();
    std::fs::remove_file(&web).unwrap();
    daemon.wait_state("app", "down");
    wait_for(Duration::from_secs(20), "web's second alert", || {
        let hooks = receiver.at("/hook");
        let web_firings = hooks
            .iter()
            .filter(|h| h.body["subject"] == "probe:web" && h.body["status"] == "firing")
            .count();
        (web_firings >= 2).then_some(())
    });
    nothing_about_app_arrived();
    assert!(daemon.stop().success());
}

#[test]
fn reminders_go_on_across_a_daemon_restart() {
    let sandbox = Sandbox::new();
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    let port = free_port();
    let receiver = Receiver::start(port);
    let reminders = || -> Vec<Received> {
        receiver
            .at("/hook")
            .into_iter()
            .filter(|h| h.body["status"] == "reminder")
            .collect()
    };
    let remind = "remind_every = \"1s\"";
    let config = unhealed_config(&[("app", &flag)], 2, port, remind);
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("app", "up");
    std::fs::remove_file(&flag).unwrap();
    wait_for(Duration::from_secs(20), "a reminder", || {
        (!reminders().is_empty()).then_some(())
    });
    let firing = receiver.at("/hook")[0].body["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(firing, "🚨 app: 2/2 exec probes failed (non-zero exit)");
    assert!(daemon.stop().success());

    // The problem lasts. The new daemon needs 64 failures (13 s) to call app Down again, so
    // within that only the journaled alert can make it remind.
    let before = reminders().len();
    let config = unhealed_config(&[("app", &flag)], 64, port, remind);
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    let after = wait_for(
        Duration::from_secs(20),
        "a reminder after the restart",
        || {
            let all = reminders();
            (all.len() > before).then(|| all[before].clone())
        },
    );
    let text = after.body["text"].as_str().unwrap();
    assert!(
        text.starts_with("⏰ still failing after ") && text.ends_with(&format!(": {firing}")),
        "{text}"
    );
    assert!(after.signed);
    assert_eq!(daemon.probe("app")["state"], "failing");

    // once app is seen Up again the alert the first daemon fired is resolved, once, and the
    // reminders stop
    std::fs::write(&flag, "").unwrap();
    daemon.wait_state("app", "up");
    let resolved = wait_for(
        Duration::from_secs(10),
        "the orphaned alert resolved",
        || {
            receiver
                .at("/hook")
                .into_iter()
                .find(|h| h.body["status"] == "resolved")
        },
    );
    assert_eq!(resolved.body["subject"], "probe:app");
    let text = resolved.body["text"].as_str().unwrap();
    assert!(
        text.starts_with("✅ app is up again (down since ") && text.contains("sentineld restart"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let settled = reminders().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        reminders().len(),
        settled,
        "no reminders about a probe that is up"
    );
    let resolutions = receiver
        .at("/hook")
        .into_iter()
        .filter(|h| h.body["status"] == "resolved")
        .count();
    assert_eq!(resolutions, 1, "resolved exactly once");
    assert!(daemon.stop().success());
}
