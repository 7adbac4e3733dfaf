use super::*;

fn parse_str(source: &str) -> Result<AgentConfig, String> {
    parse(source, Path::new("agent.toml")).map_err(|e| e.to_string())
}

#[test]
fn example_config_parses() {
    let config = parse_str(EXAMPLE_CONFIG).unwrap();
    assert!(!config.files.is_empty());
}

#[test]
fn errors_point_at_file_line_column() {
    let cases = [
        ("[output]\nendpont = \"x\"\n[[file]]\npath = \"/a\"\nformat = \"json\"\n", "agent.toml:2:1: unknown field `endpont`"),
        ("[[file]]\npath = \"/a\"\nformat = \"nginx\"\n[file.fields]\ntenant_id = \"$http_x_org\"\n", "agent.toml:5:13: fields.tenant_id: $http_x_org is not in the log format"),
        ("[[file]]\npath = \"/a\"\nformat = \"nginx\"\nappend = '$a$b'\n", "agent.toml:4:10: variables $a and $b"),
        ("[[datagram]]\nlisten = \"tcp://1.2.3.4:5\"\n", "agent.toml:2:10: datagram listen `tcp://1.2.3.4:5` must start with"),
        ("[output]\nendpoint = \"https://x/v1/events\"\n[[datagram]]\nlisten = \"udp://127.0.0.1:1\"\n", "agent.toml:2:12: https endpoints are not supported"),
        ("[buffer]\nmax_bytes = \"12 parsecs\"\n", "agent.toml:2:13: invalid size"),
        ("state_dir = \"/x\"\n", "agent.toml: nothing to ship"),
    ];
    for (source, expected) in cases {
        let err = parse_str(source).unwrap_err();
        assert!(
            err.starts_with(expected),
            "{source:?}\n got: {err}\nwant: {expected}"
        );
    }
}

#[test]
fn nginx_defaults_need_tenant_and_latency_appended() {
    let source = "[[file]]\npath = \"/a\"\nformat = \"nginx\"\nappend = '$request_time \"$http_x_tenant_id\"'\n";
    parse_str(source).unwrap();
    let bare = "[[file]]\npath = \"/a\"\nformat = \"nginx\"\n";
    let err = parse_str(bare).unwrap_err();
    assert!(
        err.contains("$http_x_tenant_id is not in the log format"),
        "{err}"
    );
}

/// A bad listen address or mode keeps the parser's error as its cause, and its message.
#[test]
fn value_errors_keep_their_cause() {
    use std::error::Error;
    let datagram = |listen: &str, mode: Option<&str>| DatagramConfig {
        listen: Spanned::new(0..0, listen.to_string()),
        mode: mode.map(|m| Spanned::new(0..0, m.to_string())),
    };
    let err = datagram("udp://127.0.0.1", None).address().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid UDP address `127.0.0.1`: invalid socket address syntax (write e.g. udp://127.0.0.1:9138)"
    );
    assert!(err
        .source()
        .and_then(|s| s.downcast_ref::<std::net::AddrParseError>())
        .is_some());

    let err = datagram("unix:///s", Some("0o9")).mode_bits().unwrap_err();
    assert_eq!(err.to_string(), "mode `0o9` is not octal like \"0660\"");
    assert!(err
        .source()
        .and_then(|s| s.downcast_ref::<std::num::ParseIntError>())
        .is_some());
    // a number above 0777 has no parser error to keep
    let err = datagram("unix:///s", Some("1777")).mode_bits().unwrap_err();
    assert!(
        matches!(err, AgentError::Mode { source: None, .. }),
        "{err}"
    );
    assert_eq!(
        datagram("unix:///s", Some("0660")).mode_bits().unwrap(),
        Some(0o660)
    );
}
