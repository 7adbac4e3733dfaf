//! The notify channel kinds email, pagerduty, telegram, teams and ntfy: the documented examples
//! load, and every new field's mistakes are reported at file:line:col without a secret.

use super::parse_str;
use crate::notify::config::{ChannelKind, SmtpTls};

/// The TOML of docs/notifications.md, as written there.
pub const DOCUMENTED: &str = r#"
[[notify.channel]]
name = "mail"
kind = "email"
host = "smtp.example.com"
port = 587
tls = "starttls"
username = "alerts@example.com"
password = "app-password"
from = "Sentinel <alerts@example.com>"
to = ["ops@example.com", "oncall@example.com"]

[[notify.channel]]
name = "pager"
kind = "pagerduty"
routing_key = "R0123456789ABCDEF0123456789ABCDE"

[[notify.channel]]
name = "telegram"
kind = "telegram"
token = "123456789:AAExampleExampleExampleExampleExam"
chat_id = "-1001234567890"

[[notify.channel]]
name = "teams"
kind = "teams"
url = "https://prod-00.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=xyz"

[[notify.channel]]
name = "phone"
kind = "ntfy"
topic = "sentinel-alerts"
"#;

#[test]
fn documented_channels_load_with_their_defaults() {
    let config = parse_str(DOCUMENTED).unwrap();
    let channels = &config.notify.channels;
    let kinds: Vec<ChannelKind> = channels.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChannelKind::Email,
            ChannelKind::PagerDuty,
            ChannelKind::Telegram,
            ChannelKind::Teams,
            ChannelKind::Ntfy
        ]
    );
    assert_eq!(channels[0].smtp_tls(), SmtpTls::Starttls);
    assert_eq!(channels[0].smtp_port(), 587);
    assert_eq!(channels[0].resolved_url(), None);
    assert_eq!(
        channels[1].resolved_url(),
        Some("https://events.pagerduty.com/v2/enqueue")
    );
    assert_eq!(
        channels[1].resolved_routing_key(),
        Some("R0123456789ABCDEF0123456789ABCDE")
    );
    assert_eq!(channels[2].resolved_url(), Some("https://api.telegram.org"));
    assert_eq!(channels[4].resolved_url(), Some("https://ntfy.sh"));
    let implicit = parse_str(
        "[[notify.channel]]\nname = \"m\"\nkind = \"email\"\nhost = \"h\"\ntls = \"tls\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
    )
    .unwrap();
    assert_eq!(implicit.notify.channels[0].smtp_port(), 465);
}

#[test]
fn channel_field_errors_point_at_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.display().to_string();
    let missing = dir.path().join("missing.pem").display().to_string();
    let email = |extra: &str| {
        format!("[[notify.channel]]\nname = \"m\"\nkind = \"email\"\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n{extra}")
    };
    let cases: Vec<(String, String)> = vec![
        (
            "[[notify.channel]]\nname = \"m\"\nkind = \"email\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n".into(),
            "t.toml:2:8: notify channel \"m\": email channels need `host`".into(),
        ),
        (
            email("tls = \"ssl\"\n"),
            "t.toml:7:7: unknown variant `ssl`, expected one of `starttls`, `tls`, `none`".into(),
        ),
        (
            email("port = 0\n"),
            "t.toml:7:8: notify channel \"m\": port must be 1 to 65535".into(),
        ),
        (
            "[[notify.channel]]\nname = \"m\"\nkind = \"email\"\nhost = \"h\"\nfrom = \"not an address\"\nto = [\"b@example.com\"]\n".into(),
            "t.toml:5:8: notify channel \"m\": from \"not an address\" is not an email address".into(),
        ),
        (
            "[[notify.channel]]\nname = \"m\"\nkind = \"email\"\nhost = \"h\"\nfrom = \"a@example.com\"\nto = []\n".into(),
            "t.toml:6:6: notify channel \"m\": needs `to`, at least one recipient".into(),
        ),
        (
            "[[notify.channel]]\nname = \"m\"\nkind = \"email\"\nhost = \"h\"\nfrom = \"a@example.com\"\nto = [\"ops\"]\n".into(),
            "t.toml:6:6: notify channel \"m\": recipient \"ops\" is not an email address".into(),
        ),
        (
            "[[notify.channel]]\nname = \"m\"\nkind = \"email\"\nhost = \"h:587\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n".into(),
            "t.toml:4:8: notify channel \"m\": host \"h:587\" must be a bare host name or IP address".into(),
        ),
        (
            email("password = \"pw\"\n"),
            "t.toml:7:12: notify channel \"m\": `password` needs `username`".into(),
        ),
        (
            email("username = \"u\"\n"),
            "t.toml:2:8: notify channel \"m\": email channels need `password` or `password_file`".into(),
        ),
        (
            email(&format!("username = \"u\"\npassword_file = \"{empty}\"\n")),
            format!("t.toml:8:17: notify channel \"m\": password_file {empty} is empty"),
        ),
        (
            email(&format!("ca_file = \"{missing}\"\n")),
            format!("t.toml:7:11: notify channel \"m\": cannot read ca_file {missing}"),
        ),
        (
            email("tls = \"none\"\nca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n"),
            "t.toml:8:11: notify channel \"m\": `ca_file` needs tls = \"starttls\" or \"tls\"".into(),
        ),
        (
            email("url = \"http://x/\"\n"),
            "t.toml:7:7: notify channel \"m\": `url` does not apply to email channels".into(),
        ),
        (
            "[[notify.channel]]\nname = \"s\"\nkind = \"slack\"\nurl = \"http://x/\"\nrouting_key = \"k\"\n".into(),
            "t.toml:5:15: notify channel \"s\": `routing_key` does not apply to slack channels (only to pagerduty)".into(),
        ),
        (
            "[[notify.channel]]\nname = \"p\"\nkind = \"pagerduty\"\n".into(),
            "t.toml:2:8: notify channel \"p\": pagerduty channels need `routing_key` or `routing_key_file`".into(),
        ),
        (
            format!("[[notify.channel]]\nname = \"p\"\nkind = \"pagerduty\"\nrouting_key_file = \"{empty}\"\n"),
            format!("t.toml:4:20: notify channel \"p\": routing_key_file {empty} is empty (expected the secret on its first line)"),
        ),
        (
            format!("[[notify.channel]]\nname = \"p\"\nkind = \"pagerduty\"\nrouting_key = \"k\"\nrouting_key_file = \"{empty}\"\n"),
            "t.toml:5:20: notify channel \"p\": set `routing_key` or `routing_key_file`, not both".into(),
        ),
        (
            "[[notify.channel]]\nname = \"p\"\nkind = \"pagerduty\"\nrouting_key = \"k\"\nurl = \"ftp://x/\"\n".into(),
            "t.toml:5:7: notify channel \"p\": url \"ftp://x/\" must start with http:// or https://".into(),
        ),
        (
            "[[notify.channel]]\nname = \"t\"\nkind = \"telegram\"\nchat_id = \"1\"\n".into(),
            "t.toml:2:8: notify channel \"t\": telegram channels need `token` or `token_file`".into(),
        ),
        (
            "[[notify.channel]]\nname = \"t\"\nkind = \"telegram\"\ntoken = \"12:a/b\"\nchat_id = \"1\"\n".into(),
            "t.toml:4:9: notify channel \"t\": the bot token may only hold letters, digits".into(),
        ),
        (
            "[[notify.channel]]\nname = \"t\"\nkind = \"telegram\"\ntoken = \"12:ab\"\n".into(),
            "t.toml:2:8: notify channel \"t\": telegram channels need `chat_id`".into(),
        ),
        (
            "[[notify.channel]]\nname = \"t\"\nkind = \"telegram\"\ntoken = \"12:ab\"\nchat_id = \"ops\"\n".into(),
            "t.toml:5:11: notify channel \"t\": chat_id \"ops\" is neither a number nor an @channelname".into(),
        ),
        (
            "[[notify.channel]]\nname = \"n\"\nkind = \"ntfy\"\ntopic = \"a/b\"\n".into(),
            "t.toml:4:9: notify channel \"n\": topic \"a/b\" must be 1 to 64 letters, digits, `_` or `-`".into(),
        ),
        (
            "[[notify.channel]]\nname = \"n\"\nkind = \"ntfy\"\ntopic = \"a\"\nchat_id = \"1\"\n".into(),
            "t.toml:5:11: notify channel \"n\": `chat_id` does not apply to ntfy channels (only to telegram)".into(),
        ),
        (
            "[[notify.channel]]\nname = \"n\"\nkind = \"teams\"\n".into(),
            "t.toml:2:8: notify channel \"n\": needs `url` or `url_file`".into(),
        ),
        (
            "[[notify.channel]]\nname = \"x\"\nkind = \"sms\"\n".into(),
            "t.toml:3:8: unknown variant `sms`, expected one of `slack`, `discord`, `webhook`, `alertmanager`, `email`, `pagerduty`, `telegram`, `teams`, `ntfy`".into(),
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(source, expected)| match parse_str(source) {
            Ok(_) => Some(format!("source {source:?}\n  accepted; want: {expected}")),
            Err(err) => (!err.starts_with(expected.as_str()))
                .then(|| format!("source {source:?}\n  got:  {err}\n  want: {expected}")),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn secret_errors_never_show_the_secret() {
    let sources = [
        "[[notify.channel]]\nname = \"t\"\nkind = \"telegram\"\ntoken = \"12:SECRET/MARKER\"\nchat_id = \"1\"\n",
        "[[notify.channel]]\nname = \"s\"\nkind = \"slack\"\nurl = \"http://x/\"\ntoken = \"SECRET-MARKER\"\n",
        "[[notify.channel]]\nname = \"p\"\nkind = \"pagerduty\"\nrouting_key = \"SECRET-MARKER\"\nrouting_key_file = \"/nonexistent\"\n",
    ];
    for source in sources {
        let err = parse_str(source).expect_err(source);
        assert!(!err.contains("MARKER"), "{err}");
    }
}

#[test]
fn channel_secret_files_are_read_and_named_for_reload_reports() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let (key, token, password) = (
        file("key", "ROUTING\n"),
        file("token", "1:TOKEN\n"),
        file("pw", "PASSWORD\n"),
    );
    let source = format!(
        "[[notify.channel]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key_file = \"{key}\"\n\n\
         [[notify.channel]]\nname = \"tg\"\nkind = \"telegram\"\ntoken_file = \"{token}\"\nchat_id = \"@ops\"\n\n\
         [[notify.channel]]\nname = \"mail\"\nkind = \"email\"\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nusername = \"u\"\npassword_file = \"{password}\"\n"
    );
    let config = super::super::parse(&source, std::path::Path::new("t.toml")).unwrap();
    let channels = &config.notify.channels;
    assert_eq!(channels[0].resolved_routing_key(), Some("ROUTING"));
    assert_eq!(channels[1].resolved_token(), Some("1:TOKEN"));
    assert_eq!(channels[2].resolved_password(), Some("PASSWORD"));
    let names: Vec<String> = config.secret_files().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "notify channel pd routing key (from routing_key_file)",
            "notify channel tg token (from token_file)",
            "notify channel mail password (from password_file)",
        ]
    );
    let bare = config.without_secret_contents();
    assert_eq!(bare.notify.channels[0].resolved_routing_key(), None);
    assert_eq!(bare.notify.channels[2].resolved_password(), None);
}

#[test]
fn flapping_defaults_and_errors_point_at_file_line_column() {
    let defaults = parse_str("").unwrap().notify.flapping;
    assert_eq!(
        (
            defaults.transitions,
            defaults.window.get().as_secs(),
            defaults.settle.get().as_secs()
        ),
        (2, 120, 30)
    );
    let set = parse_str("[notify.flapping]\ntransitions = 5\nwindow = \"10m\"\nsettle = \"2m\"\n")
        .unwrap()
        .notify
        .flapping;
    assert_eq!((set.transitions, set.window.get().as_secs()), (5, 600));
    let cases = [
        (
            "[notify.flapping]\ntransitions = 0\n",
            "t.toml:2:15: notify.flapping.transitions must be at least 1",
        ),
        (
            "[notify]\nflapping = { window = \"0s\" }\n",
            "t.toml:2:23: notify.flapping.window must be at least 1s",
        ),
        (
            "[notify.flapping]\nsettle = \"500ms\"\n",
            "t.toml:2:10: notify.flapping.settle must be at least 1s",
        ),
        ("[notify.flapping]\nwindow = \"soon\"\n", "t.toml:2:10: "),
        (
            "[notify.flapping]\nflaps = 3\n",
            "t.toml:2:1: unknown field `flaps`",
        ),
    ];
    for (source, want) in cases {
        let err = parse_str(source).unwrap_err();
        assert!(err.starts_with(want), "{source}\n got: {err}\nwant: {want}");
    }
}
