//! The loader's tests: whole files in, the config or the exact file:line:col of an error out.

mod ai;
mod channels;
mod chaos;
mod docker;
mod drill;
mod host;
mod maintenance;
mod net_probes;
mod remedy;
mod systemd;

use std::path::{Path, PathBuf};

use super::*;

fn parse_str(source: &str) -> Result<Config, String> {
    parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
}

#[test]
fn example_config_is_valid() {
    let config = parse_str(EXAMPLE_CONFIG).expect("example config must parse");
    assert!(
        !config.probes.is_empty(),
        "the example must do something visible"
    );
}

#[test]
fn empty_config_uses_defaults() {
    let config = parse_str("").unwrap();
    assert_eq!(
        config.daemon.socket,
        PathBuf::from(paths::DEFAULT_SOCKET_PATH)
    );
    assert_eq!(config.daemon.socket_mode_bits(), 0o660);
    assert_eq!(config.journal.max_events, 1_000_000);
    assert!(config.http.enabled);
}

#[test]
fn errors_point_at_file_line_column() {
    let cases: &[(&str, &str)] = &[
        (
            "[[probe]]\nname = \"a\"\nkind = \"htp\"\n",
            "t.toml:3:8: unknown probe kind \"htp\" (expected one of http, tcp, postgres, docker, exec",
        ),
        ("[daemon]\nsokcet = \"/x\"\n", "t.toml:2:1: unknown field `sokcet`"),
        ("[journal]\nmax_age = \"5x\"\n", "t.toml:2:11: invalid duration \"5x\""),
        (
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\n[probe.heal]\naction = \"exec\"\ncommand = [\"true\"]\nstable_for = \"10 parsecs\"\n",
            "t.toml:8:14: invalid duration \"10 parsecs\"",
        ),
        ("[daemon]\nsocket_mode = \"0999\"\n", "t.toml:2:15: invalid socket_mode \"0999\""),
        ("[http]\nlisten = \"nowhere\"\n", "t.toml:2:10:"),
        (
            "[http]\nmetrics = \"token\"\n",
            "t.toml:2:11: http.metrics = \"token\" needs read_tokens or read_token_file",
        ),
        (
            "[http]\nlisten = \"0.0.0.0:9137\"\ntenants = \"token\"\n",
            "t.toml:3:11: http.tenants = \"token\" needs read_tokens or read_token_file",
        ),
        (
            "[http]\nstatus_page = \"maybe\"\n",
            "t.toml:2:15: unknown variant `maybe`, expected one of `on`, `off`, `token`",
        ),
        (
            "[http]\nread_token_file = \"/nonexistent/read\"\n",
            "t.toml:2:19: http: cannot read read_token_file /nonexistent/read",
        ),
        ("a = [\n", "t.toml:1:6: unclosed array"),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\n",
            "t.toml:3:8: probe \"a\": http probes need `url`",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nurl = \"http://x/\"\n",
            "t.toml:5:7: probe \"a\": `url` does not apply to tcp probes",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"nope\"\n",
            "t.toml:4:11: probe \"a\": invalid address \"nope\": expected host:port",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"ftp://x/\"\n",
            "t.toml:4:7: probe \"a\": unsupported URL scheme",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\ninterval = \"5s\"\ntimeout = \"10s\"\n",
            "t.toml:6:11: probe \"a\": timeout 10s must be above zero and at most the interval (5s)",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nfail_after = 0\n",
            "t.toml:5:14: probe \"a\": fail_after must be between 1 and 64",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:2\"\n",
            "t.toml:6:8: duplicate probe name \"a\"",
        ),
        (
            "[[probe]]\nname = \"a b\"\nkind = \"tcp\"\naddress = \"h:1\"\n",
            "t.toml:2:8: invalid probe name \"a b\"",
        ),
        ("[journal]\nmax_events = 0\n", "t.toml:2:14: journal.max_events must be at least 1"),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nheal = { action = \"docker_restart\" }\n",
            "t.toml:5:8: probe \"a\": heal action docker_restart needs `container`",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nheal = { action = \"reboot\" }\n",
            "t.toml:5:19: unknown variant `reboot`, expected one of `docker_restart`, `exec`, `systemd_restart`",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n",
            "t.toml:5:14: probe \"a\": depends_on needs a `heal` action",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nheal = { action = \"exec\", command = [\"true\"] }\ndepends_on = [\"b\"]\n",
            "t.toml:6:14: probe \"a\": depends_on names an unknown probe: \"b\"",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nheal = { action = \"exec\", command = [\"true\"] }\ndepends_on = [\"b\"]\n[[probe]]\nname = \"b\"\nkind = \"exec\"\ncommand = [\"true\"]\nheal = { action = \"exec\", command = [\"true\"] }\ndepends_on = [\"a\"]\n",
            "t.toml:6:14: depends_on forms a cycle: a -> b -> a",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\ntls_verify = false\n",
            "t.toml:5:14: probe \"a\": `tls_verify` needs an https:// url",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x/\"\nca_file = \"/nonexistent/ca.pem\"\n",
            "t.toml:5:11: probe \"a\": cannot read ca_file /nonexistent/ca.pem",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"postgres\"\n",
            "t.toml:3:8: probe \"a\": postgres probes need `user`",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"postgres\"\nuser = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
            "t.toml:5:17: probe \"a\": cannot read password_file /nonexistent/pw",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"postgres\"\nuser = \"u\"\nmax_connections_used = 150.0\n",
            "t.toml:5:24: probe \"a\": max_connections_used is a percentage",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"postgres\"\nuser = \"u\"\nexpect_role = \"leader\"\n",
            "t.toml:5:15: unknown variant `leader`, expected `primary` or `replica`",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nuser = \"u\"\n",
            "t.toml:5:8: probe \"a\": `user` does not apply to http probes",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"docker\"\n",
            "t.toml:3:8: probe \"a\": docker probes need `container`",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"docker\"\ncontainer = \"c\"\ncrash_loop = { restarts = 0, within = \"1m\" }\n",
            "t.toml:5:14: probe \"a\": crash_loop needs restarts >= 1",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\n",
            "t.toml:3:8: probe \"a\": exec probes need `command`",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = []\n",
            "t.toml:4:11: probe \"a\": command needs a program",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nsend = \"PING\"\n",
            "t.toml:5:8: probe \"a\": `send` does not apply to http probes",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\ncommand = [\"true\"]\nmax_latency = \"1s\"\n",
            "t.toml:5:15: probe \"a\": `max_latency` does not apply to exec probes",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nbody_regex = \"(\"\n",
            "t.toml:5:14: probe \"a\": invalid regular expression",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nmethod = \"FETCH\"\n",
            "t.toml:5:10: probe \"a\": unknown method \"FETCH\" (expected one of GET, HEAD",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nflap = { failures = 5, within = 3 }\n",
            "t.toml:5:8: probe \"a\": flap needs 1 <= failures <= within <= 64",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nexpect_json = { pointer = \"status\", equals = \"ok\" }\n",
            "t.toml:5:27: probe \"a\": invalid JSON pointer \"status\"",
        ),
        (
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nexpect_json = { pointer = \"/s\", equal = 1 }\n",
            "t.toml:5:",
        ),
        (
            "[tenants]\nenabled = true\nbucket = \"7s\"\n",
            "t.toml:3:10: tenants: latency_bucket (1m) must be a whole multiple of bucket (7s)",
        ),
        (
            "[tenants]\nwindow = \"10m\"\nbucket = \"1ms\"\n",
            "t.toml:3:10: tenants: window / bucket is 600000 buckets",
        ),
        ("[tenants]\nmax_tenants = 0\n", "t.toml:2:15: tenants: max_tenants must be at least 1"),
        ("[tenants]\nerror_status = [\"6xx\"]\n", "t.toml:2:17: status pattern \"6xx\" must lie within 100-599"),
        ("[tenants]\nerror_status = []\n", "t.toml:2:16: tenants: error_status needs at least one status pattern"),
        ("[tenants]\nmax_memory = \"lots\"\n", "t.toml:2:14: invalid size \"lots\""),
        ("[tenants]\nwindow = \"10m\"\nwindo = \"5m\"\n", "t.toml:3:1: unknown field `windo`"),
        ("[tenants.ingest]\nmax_concurrent_requests = 0\n", "t.toml:2:27: tenants.ingest: max_concurrent_requests must be at least 1"),
        ("[tenants.otlp]\ntenant_attributes = []\n", "t.toml:2:21: tenants.otlp: tenant_attributes needs 1-16 attribute names (got 0)"),
        (
            "[tenants.otlp]\ntenant_attributes = [\"tenant.id\", \"org\", \"tenant.id\"]\n",
            "t.toml:2:21: tenants.otlp: tenant attribute \"tenant.id\" is listed twice",
        ),
        ("[tenants.otlp]\ntenant_attributes = [\" \"]\n", "t.toml:2:21: tenants.otlp: tenant attribute name \" \" is empty or has control characters"),
        ("[tenants.otlp]\ntenant_attribute = [\"x\"]\n", "t.toml:2:1: unknown field `tenant_attribute`"),
        (
            "[tenants]\ndimensions = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\"]\n",
            "t.toml:2:14: tenants: at most 8 dimensions (got 9)",
        ),
        (
            "[tenants]\ndimensions = [\"region\", \"region\"]\n",
            "t.toml:2:14: tenants: dimension \"region\" is listed twice",
        ),
        (
            "[tenants.explain]\nbucket = \"7s\"\n",
            "t.toml:2:10: tenants: explain bucket (7s) must divide the tenants window (10m)",
        ),
        (
            "[tenants.explain]\nmax_values = 5000\n",
            "t.toml:2:14: tenants: max_values must be 2-1024",
        ),
        (
            "[tenants]\ndimensions = [\"region\"]\n[tenants.explain]\nmax_memory = \"1KiB\"\n",
            "t.toml:4:14: tenants: explain max_memory (1024 bytes) is below",
        ),
        (
            "[tenants.ingest]\ntoken_file = \"/nonexistent/tokens\"\n",
            "t.toml:2:14: tenants.ingest: cannot read token_file /nonexistent/tokens",
        ),
        (
            "[[tenants.alert]]\nname = \"a\"\nwhen = \"error_shares\"\nthreshold = 50\n",
            "t.toml:3:8: tenant alert \"a\": unknown condition \"error_shares\" (expected one of error_share",
        ),
        (
            "[[tenants.alert]]\nname = \"a\"\nwhen = \"error_share\"\nthreshold = 150\n",
            "t.toml:4:13: tenant alert \"a\": threshold 150 out of range for error_share (a percentage above 0, at most 100)",
        ),
        (
            "[[tenants.alert]]\nname = \"a\"\nwhen = \"p95\"\nthreshold = 100\nwindow = \"1h\"\n",
            "t.toml:5:10: tenant alert \"a\": window must be above zero and at most the tenants window (10m)",
        ),
        (
            "[[tenants.alert]]\nname = \"a\"\nwhen = \"p95\"\nthreshold = 100\n[[tenants.alert]]\nname = \"a\"\nwhen = \"errors\"\nthreshold = 5\n",
            "t.toml:6:8: duplicate tenant alert name \"a\"",
        ),
    ];
    for (source, expected) in cases {
        let err = parse_str(source).expect_err(source);
        assert!(
            err.starts_with(expected),
            "source {source:?}\n  got:  {err}\n  want: {expected}"
        );
    }
}

/// Semantic errors (the file parses; a section's own check fails) in every section, each at
/// the exact line:col of the key it is about: the value written there, or, for a key left at
/// its default, the key it conflicts with. Before areas named keys, the first case was reported
/// at 1:1 and several others at no position at all.
#[test]
fn semantic_errors_point_at_their_key() {
    const TCP: &str = "[[probe]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n";
    let cases: Vec<(String, &str)> = vec![
        // probe: timeout left at its default 5s, above the interval written on line 5
        (
            format!("{TCP}interval = \"2s\"\n"),
            "t.toml:5:12: probe \"a\": timeout 5s must be above zero and at most the interval (2s)",
        ),
        (
            format!("{TCP}heal = {{ action = \"exec\", command = [\"true\"], max_attempts = 0 }}\n"),
            "t.toml:5:62: probe \"a\": heal max_attempts must be between 1 and 100",
        ),
        (
            format!("{TCP}heal = {{ action = \"exec\", command = [\"true\"], archive = [\"logs\"] }}\n"),
            "t.toml:5:57: probe \"a\": heal archive names an unknown source \"logs\"",
        ),
        (
            format!("{TCP}heal = {{ action = \"exec\", command = [\"true\"], window = \"1m\", stable_for = \"2m\" }}\n"),
            "t.toml:5:75: probe \"a\": heal stable_for (2m) must be shorter than the heal window (1m)",
        ),
        (
            "[journal]\nmax_age = \"1d\"\nmax_events = 0\n".to_string(),
            "t.toml:3:14: journal.max_events must be at least 1",
        ),
        (
            "[http]\nread_tokens = [\"t\", \" \"]\n".to_string(),
            "t.toml:2:21: http.read_tokens: a token is empty",
        ),
        (
            "[chaos]\nmax_concurrent = 0\n".to_string(),
            "t.toml:2:18: chaos.max_concurrent must be at least 1",
        ),
        (
            "[chaos]\nmax_duration = \"0s\"\n".to_string(),
            "t.toml:2:16: chaos.max_duration must be at least 1s",
        ),
        (
            "[ai]\nenabled = true\n".to_string(),
            "t.toml:2:11: [ai] enabled = true needs model",
        ),
        (
            "[ai]\nmodel = \"m\"\ntimeout = \"0s\"\n".to_string(),
            "t.toml:3:11: ai.timeout must be above zero",
        ),
        (
            "[tenants]\nwindow = \"5m\"\n\n[[tenants.alert]]\nname = \"a\"\nwhen = \"p95\"\nthreshold = 100\nwindow = \"1h\"\n".to_string(),
            "t.toml:8:10: tenant alert \"a\": window must be above zero and at most the tenants window (5m)",
        ),
        (
            "[[notify.channel]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://x/\"\nrate_limit = 0\n".to_string(),
            "t.toml:5:14: notify channel \"h\": rate_limit must be at least 1 per minute",
        ),
        (
            "[[archive.source]]\nname = \"s\"\nkind = \"files\"\npath = \"/var/log\"\ninclude = [\"../x\"]\n".to_string(),
            "t.toml:5:11: archive source \"s\": `include` glob \"../x\" must stay under path",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(source, expected)| {
            let err = parse_str(source).expect_err(source);
            (!err.starts_with(expected))
                .then(|| format!("source {source:?}\n  got:  {err}\n  want: {expected}"))
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
fn dependency_order_puts_parents_first() {
    let probe = |name: &str, parents: &[&str]| {
        let heal = "heal = { action = \"exec\", command = [\"true\"] }\n";
        let depends = if parents.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = parents.iter().map(|p| format!("\"{p}\"")).collect();
            format!("depends_on = [{}]\n", quoted.join(", "))
        };
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"true\"]\n{heal}{depends}"
        )
    };
    let source = [
        probe("web", &["api"]),
        probe("api", &["db", "cache"]),
        probe("db", &[]),
        probe("cache", &[]),
        probe("worker", &["db"]),
    ]
    .concat();
    let config = parse_str(&source).unwrap();
    let order = dependency_order(&config.probes).unwrap();
    assert_eq!(order, ["db", "cache", "api", "web", "worker"]);
}

#[test]
fn secret_file_errors_name_the_file_never_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let hook = |field: &str, path: &str| {
        format!("[[notify.channel]]\nname = \"h\"\nkind = \"webhook\"\n{field} = \"{path}\"\n")
    };
    let no_scheme = file("no-scheme", "hooks.example.com/SECRET-MARKER\n");
    let garbage = file("garbage", "https://exa mple.com/SECRET-MARKER\n");
    let empty = file("empty", "\n");
    let comments = file("comments", "# SECRET-MARKER rotated\n\n");
    let url = file("url", "http://127.0.0.1:9/\n");
    let cases: Vec<(String, String)> = vec![
        (
            hook("url_file", &no_scheme),
            format!("t.toml:4:12: notify channel \"h\": url_file {no_scheme}: the URL has no http:// or https:// scheme"),
        ),
        (
            hook("url_file", &garbage),
            format!("t.toml:4:12: notify channel \"h\": url_file {garbage}: the first line is not a valid URL"),
        ),
        (
            hook("url_file", &empty),
            format!("t.toml:4:12: notify channel \"h\": url_file {empty} is empty (expected a URL on its first line)"),
        ),
        (
            format!("{}secret_file = \"{empty}\"\n", hook("url_file", &url)),
            format!("t.toml:5:15: notify channel \"h\": secret_file {empty} is empty"),
        ),
        (
            format!("[tenants.ingest]\ntoken_file = \"{comments}\"\n"),
            format!("t.toml:2:14: tenants.ingest: token_file {comments} holds no token"),
        ),
    ];
    for (source, expected) in cases {
        let err = parse_str(&source).expect_err(&source);
        assert!(
            err.starts_with(&expected),
            "source {source:?}\n  got:  {err}\n  want: {expected}"
        );
        assert!(!err.contains("MARKER"), "{err}");
    }
}

#[test]
fn missing_file_says_which() {
    let err = load(Path::new("/nonexistent/sentineld.toml")).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("cannot read config /nonexistent/sentineld.toml"));
}

#[test]
fn hash_is_stable_and_content_sensitive() {
    assert_eq!(content_hash(b"a"), content_hash(b"a"));
    assert_ne!(content_hash(b"a"), content_hash(b"b"));
    assert_eq!(content_hash(b"").len(), 64);
}

/// A key whose value fails because of another error (a secret file that cannot be read) is
/// reported at its file:line:col with the same words, and that error stays reachable below
/// it: the secret file's error, then the I/O error the kernel gave. Every secret file does so.
#[test]
fn placed_errors_keep_the_error_behind_them() {
    let cases = [
        ("[tenants.ingest]\n", "token_file", "tenants.ingest: "),
        ("[http]\n", "read_token_file", "http: "),
        (
            "[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\n",
            "url_file",
            "notify channel \"hook\": ",
        ),
        (
            "[[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n",
            "secret_file",
            "notify channel \"hook\": ",
        ),
        (
            "[[probe]]\nname = \"db\"\nkind = \"postgres\"\nuser = \"u\"\n",
            "password_file",
            "probe \"db\": ",
        ),
    ];
    for (head, field, prefix) in cases {
        let source = format!("{head}{field} = \"/nonexistent/secret\"\n");
        let line = source.lines().count();
        let col = field.len() + 4;
        let err = parse(&source, Path::new("t.toml")).unwrap_err();
        let chain: Vec<String> =
            std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
                .map(ToString::to_string)
                .collect();
        let not_found = std::io::Error::from_raw_os_error(2).to_string();
        let read = format!("cannot read {field} /nonexistent/secret: {not_found}");
        assert_eq!(
            chain,
            [
                format!("t.toml:{line}:{col}: {prefix}{read}"),
                read,
                not_found
            ],
            "{source}"
        );
        // each layer ends with the one below: the one-line form says nothing twice
        assert_eq!(crate::logging::error_chain(&err), chain[0]);
    }
}
