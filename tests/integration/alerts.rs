//! Alerts people can bear, against the real daemon and a loopback webhook receiver: a flapping
//! probe is one alert and one resolve; a critical alert is not held back by the rate limit that
//! warnings and resolves used up; the alerts of a Down parent's dependants are held (durably,
//! across a daemon restart) and released or folded when it recovers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{free_port, wait_for, Daemon, Sandbox};
use crate::notify::{Receiver, SECRET};

/// An exec probe up while `flag` exists; `extra` adds fields (heal, depends_on).
fn probe(name: &str, flag: &Path, fail_after: u32, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"test -e {}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfail_after = {fail_after}\n{extra}\n\n",
        flag.display()
    )
}

/// `[notify]` with one signed webhook channel on `port`.
fn hook(port: u16, notify_extra: &str, channel_extra: &str) -> String {
    format!(
        "[notify]\nmax_retry_delay = \"1s\"\n{notify_extra}\n\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\n{channel_extra}\n"
    )
}

fn texts(receiver: &Receiver) -> Vec<String> {
    receiver
        .at("/hook")
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h.body["status"].as_str().unwrap_or("?"),
                h.body["text"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn flags(sandbox: &Sandbox, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let flag = sandbox.path().join(format!("{n}.up"));
            std::fs::write(&flag, "").unwrap();
            flag
        })
        .collect()
}

fn outbox_states(daemon: &Daemon) -> Vec<(String, String, String)> {
    daemon.ctl_json(&["outbox"])["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m: &Value| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
            (s("subject"), s("status"), s("state"))
        })
        .collect()
}

#[test]
fn a_flapping_probe_is_one_alert_and_one_resolve() {
    let sandbox = Sandbox::new();
    let web = flags(&sandbox, &["web"]).remove(0);
    let port = free_port();
    let receiver = Receiver::start(port);
    let config = probe("web", &web, 1, "") + &hook(port, "[notify.flapping]\nsettle = \"2s\"", "");
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("web", "up");
    for _ in 0..10 {
        std::fs::remove_file(&web).unwrap();
        daemon.wait_state_within("web", "down", Duration::from_secs(10));
        std::fs::write(&web, "").unwrap();
        daemon.wait_state_within("web", "up", Duration::from_secs(10));
    }
    wait_for(Duration::from_secs(15), "the flapping resolve", || {
        texts(&receiver)
            .iter()
            .any(|t| t.contains("stopped flapping"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let got = texts(&receiver);
    // the first resolve is superseded by the flapping alert if that came before it was tried
    assert!(got.len() == 4 || got.len() == 3, "{got:#?}");
    let n = got.len();
    assert_eq!(
        got[0],
        "firing 🚨 web: 1/1 exec probe failed (non-zero exit)"
    );
    if n == 4 {
        assert!(
            got[1].starts_with("resolved ✅ web recovered in "),
            "{got:?}"
        );
    }
    assert!(
        got[n - 2].starts_with("firing 🔁 web: went down 2 times in ")
            && got[n - 2].ends_with(", still flapping"),
        "{got:?}"
    );
    assert!(
        got[n - 1].starts_with("resolved ✅ web: stopped flapping after 10 outages in "),
        "{got:?}"
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_critical_alert_is_not_held_back_by_a_used_up_rate_limit() {
    let sandbox = Sandbox::new();
    let f = flags(&sandbox, &["a", "b"]);
    let port = free_port();
    let receiver = Receiver::start(port);
    let config =
        probe("a", &f[0], 1, "") + &probe("b", &f[1], 1, "") + &hook(port, "", "rate_limit = 2");
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("a", "up");
    daemon.wait_state("b", "up");
    // a's alert and its resolve use up the channel's 2 messages a minute
    std::fs::remove_file(&f[0]).unwrap();
    daemon.wait_state_within("a", "down", Duration::from_secs(10));
    std::fs::write(&f[0], "").unwrap();
    wait_for(Duration::from_secs(10), "a's alert and resolve", || {
        (texts(&receiver).len() == 2).then_some(())
    });
    std::fs::remove_file(&f[1]).unwrap();
    daemon.wait_state_within("b", "down", Duration::from_secs(10));
    let down_at = Instant::now();
    wait_for(Duration::from_secs(20), "b's alert", || {
        texts(&receiver)
            .iter()
            .any(|t| t.starts_with("firing 🚨 b:"))
            .then_some(())
    });
    let took = down_at.elapsed();
    assert!(
        took <= Duration::from_secs(5),
        "b's critical alert took {took:?} behind the rate limit"
    );
    // b's resolve is no critical: it waits for the minute
    std::fs::write(&f[1], "").unwrap();
    daemon.wait_state("b", "up");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(texts(&receiver).len(), 3, "{:?}", texts(&receiver));
    let pending = outbox_states(&daemon)
        .into_iter()
        .filter(|(s, st, state)| s == "probe:b" && st == "resolved" && state == "pending")
        .count();
    assert_eq!(pending, 1);
    assert!(daemon.stop().success());
}

/// db (no heal) and two dependants with a heal that cannot fix them.
fn family(sandbox: &Sandbox, f: &[PathBuf], port: u16) -> String {
    let heal = "heal = { action = \"exec\", command = [\"/bin/true\"], backoff = \"30s\", max_attempts = 5 }\ndepends_on = [\"db\"]";
    let config = probe("db", &f[0], 2, "")
        + &probe("api", &f[1], 1, heal)
        + &probe("web", &f[2], 1, heal)
        + &hook(port, "", "");
    sandbox.config("", &config)
}

#[test]
fn dependants_of_a_down_parent_are_held_then_released_or_folded() {
    let sandbox = Sandbox::new();
    let f = flags(&sandbox, &["db", "api", "web"]);
    let port = free_port();
    let receiver = Receiver::start(port);
    sandbox.write_config(&family(&sandbox, &f, port));
    let daemon = Daemon::start(&sandbox, |_| {});
    for p in ["db", "api", "web"] {
        daemon.wait_state(p, "up");
    }
    std::fs::remove_file(&f[0]).unwrap();
    daemon.wait_state_within("db", "down", Duration::from_secs(10));
    std::fs::remove_file(&f[1]).unwrap();
    std::fs::remove_file(&f[2]).unwrap();
    wait_for(Duration::from_secs(10), "both dependants held", || {
        let held = outbox_states(&daemon)
            .into_iter()
            .filter(|(_, _, state)| state == "held")
            .count();
        (held == 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        texts(&receiver),
        ["firing 🚨 db: 2/2 exec probes failed (non-zero exit)"]
    );
    // api recovers with its parent; web stays down
    std::fs::write(&f[1], "").unwrap();
    daemon.wait_state("api", "up");
    std::fs::write(&f[0], "").unwrap();
    wait_for(Duration::from_secs(10), "db resolved, web released", || {
        (texts(&receiver).len() >= 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let got = texts(&receiver);
    assert_eq!(got.len(), 3, "{got:#?}");
    let one = |prefix: &str| got.iter().filter(|t| t.starts_with(prefix)).count() == 1;
    assert!(one("resolved ✅ db recovered in "), "{got:?}");
    assert!(
        got.iter()
            .any(|t| t.ends_with(" (+2 dependants were down with it)")),
        "{got:?}"
    );
    assert!(one("firing 🚨 web: "), "web still down: released; {got:?}");
    assert!(
        !got.iter().any(|t| t.contains("api")),
        "api folded: {got:?}"
    );
    let states = outbox_states(&daemon);
    assert!(
        states.contains(&("probe:api".into(), "firing".into(), "folded".into())),
        "{states:?}"
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_held_alert_survives_a_daemon_restart_and_goes_out_after_it() {
    let sandbox = Sandbox::new();
    let f = flags(&sandbox, &["db", "api", "web"]);
    let port = free_port();
    let receiver = Receiver::start(port);
    sandbox.write_config(&family(&sandbox, &f, port));
    let daemon = Daemon::start(&sandbox, |_| {});
    for p in ["db", "api", "web"] {
        daemon.wait_state(p, "up");
    }
    std::fs::remove_file(&f[0]).unwrap();
    daemon.wait_state_within("db", "down", Duration::from_secs(10));
    std::fs::remove_file(&f[2]).unwrap();
    wait_for(Duration::from_secs(10), "web held", || {
        outbox_states(&daemon)
            .contains(&("probe:web".into(), "firing".into(), "held".into()))
            .then_some(())
    });
    assert!(daemon.stop().success());

    // db came back while no sentineld ran; web is still down
    std::fs::write(&f[0], "").unwrap();
    let daemon = Daemon::start(&sandbox, |_| {});
    wait_for(
        Duration::from_secs(15),
        "web's held alert delivered",
        || {
            texts(&receiver)
                .iter()
                .any(|t| t.starts_with("firing 🚨 web: "))
                .then_some(())
        },
    );
    let states = outbox_states(&daemon);
    assert!(
        !states.iter().any(|(_, _, state)| state == "held"),
        "{states:?}"
    );
    // and web's recovery resolves it
    std::fs::write(&f[2], "").unwrap();
    wait_for(Duration::from_secs(15), "web resolved", || {
        texts(&receiver)
            .iter()
            .any(|t| t.starts_with("resolved ✅ web"))
            .then_some(())
    });
    assert!(daemon.stop().success());
}
