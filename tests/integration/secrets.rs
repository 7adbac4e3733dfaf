//! Secrets kept in files follow rotation: a rotated `token_file`, `url_file` or `secret_file` is
//! applied by the next reload (and reported by name), and a bad one is refused without its
//! content ever reaching the reload error, the journal or the log.

use std::path::Path;
use std::time::Duration;

use crate::harness::{free_port, text, wait_for, Daemon, Sandbox};
use crate::notify::{Receiver, SECRET};
use crate::tenants::post_events;

/// Write `content` the way rotation tools do: a new file renamed over the old one.
fn rotate(path: &Path, content: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, content).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// Every journaled event, as text.
fn all_events(daemon: &Daemon) -> String {
    text(
        &daemon
            .ctl(&["--json", "events", "--limit", "100000"])
            .stdout,
    )
}

/// `sentinelctl reload`, tolerating the file watcher having applied the same change first.
fn reload_expecting(daemon: &Daemon, change: &str) {
    let output = daemon.ctl(&["reload"]);
    let said = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        said.contains(change) || said.contains("config unchanged"),
        "{said}"
    );
    wait_for(Duration::from_secs(10), change, || {
        daemon
            .events("config_applied")
            .iter()
            .any(|e| e["changes"].as_array().unwrap().iter().any(|c| c == change))
            .then_some(())
    });
}

fn tenant_event() -> &'static [u8] {
    br#"{"tenant_id":"acme","endpoint":"/v1/orders","status_code":200,"latency_ms":3.5}"#
}

#[test]
fn a_rotated_token_file_is_applied_by_reload_and_never_printed() {
    let sandbox = Sandbox::new();
    let tokens = sandbox.path().join("ingest-tokens");
    std::fs::write(&tokens, "OLD-TOKEN-7c1d\n").unwrap();
    let tenants = format!(
        "[tenants]\nenabled = true\n[tenants.ingest]\ntoken_file = \"{}\"\n",
        tokens.display()
    );
    sandbox.write_config(&sandbox.config("", &tenants));
    let daemon = Daemon::start(&sandbox, |_| {});
    let post = |token: &str| {
        let auth = format!("\r\nAuthorization: Bearer {token}");
        post_events(sandbox.port, &auth, tenant_event()).0
    };
    assert_eq!(post("OLD-TOKEN-7c1d"), 200);
    assert_eq!(post("NEW-TOKEN-9e2a"), 401);

    rotate(&tokens, "# rotated\nNEW-TOKEN-9e2a\n");
    reload_expecting(&daemon, "ingest tokens (from token_file) changed");
    assert_eq!(post("OLD-TOKEN-7c1d"), 401, "the old token is refused");
    assert_eq!(post("NEW-TOKEN-9e2a"), 200, "the new token is accepted");

    let status = daemon.ctl_json(&["status"]);
    let seen = [all_events(&daemon), daemon.stderr(), status.to_string()].concat();
    assert!(!seen.contains("TOKEN-"), "a token was printed:\n{seen}");
    assert!(daemon.stop().success());
}

#[test]
fn a_rotated_webhook_url_file_and_secret_file_are_used_after_reload() {
    let sandbox = Sandbox::new();
    let flag = sandbox.path().join("app.up");
    std::fs::write(&flag, "").unwrap();
    let (old_port, new_port) = (free_port(), free_port());
    let old_receiver = Receiver::start(old_port);
    let new_receiver = Receiver::start(new_port);
    let url_file = sandbox.path().join("hook-url");
    let secret_file = sandbox.path().join("hook-secret");
    std::fs::write(&url_file, format!("http://127.0.0.1:{old_port}/hook\n")).unwrap();
    std::fs::write(&secret_file, "an-old-key\n").unwrap();
    let config = format!(
        "[[probe]]\nname = \"app\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"test -e {flag}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfail_after = 2\n\n[notify]\nmax_retry_delay = \"1s\"\n\n[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl_file = \"{url}\"\nsecret_file = \"{secret}\"\n",
        flag = flag.display(),
        url = url_file.display(),
        secret = secret_file.display(),
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});
    daemon.wait_state("app", "up");

    rotate(&url_file, &format!("http://127.0.0.1:{new_port}/hook\n"));
    rotate(&secret_file, &format!("{SECRET}\n"));
    reload_expecting(&daemon, "notify channel hook URL (from url_file) changed");
    reload_expecting(
        &daemon,
        "notify channel hook secret (from secret_file) changed",
    );

    std::fs::remove_file(&flag).unwrap();
    daemon.wait_state("app", "down");
    let hooks = wait_for(Duration::from_secs(20), "the alert at the new URL", || {
        let hooks = new_receiver.at("/hook");
        (!hooks.is_empty()).then_some(hooks)
    });
    assert!(hooks[0].signed, "signed with the rotated key: {hooks:?}");
    assert_eq!(hooks[0].body["subject"], "probe:app", "{hooks:?}");
    assert!(
        old_receiver.at("/hook").is_empty(),
        "the old URL got nothing"
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_bad_url_file_is_refused_by_name_and_its_content_never_shown() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let url_file = sandbox.path().join("hook-url");
    std::fs::write(&url_file, format!("http://127.0.0.1:{port}/hook\n")).unwrap();
    let config = format!(
        "[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl_file = \"{}\"\n",
        url_file.display()
    );
    sandbox.write_config(&sandbox.config("", &config));
    let daemon = Daemon::start(&sandbox, |_| {});

    // A rotation gone wrong: the scheme is missing and the token is in the path.
    let marker = "SECRET-MARKER-31f9";
    rotate(&url_file, &format!("hooks.example.com/services/{marker}\n"));
    let output = daemon.ctl(&["reload"]);
    let (said, complained) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{said}");
    let expected = format!(
        "notify channel \"hook\": url_file {}: the URL has no http:// or https:// scheme",
        url_file.display()
    );
    assert!(complained.contains(&expected), "{complained}");

    let rejected = wait_for(Duration::from_secs(10), "config_rejected", || {
        let events = daemon.events("config_rejected");
        (!events.is_empty()).then_some(events)
    });
    assert!(
        rejected[0]["error"].as_str().unwrap().contains(&expected),
        "{rejected:?}"
    );
    let seen = [said, complained, all_events(&daemon), daemon.stderr()].concat();
    assert!(!seen.contains(marker), "the secret was shown:\n{seen}");
    assert!(daemon.stop().success());
}
