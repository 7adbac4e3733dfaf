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

/// `[file.dims]` is checked at load: each nginx variable must be in the log format, names and
/// counts as sentineld takes them; errors point at the key.
#[test]
fn dims_are_checked_at_load() {
    let nginx = "[[file]]\npath = \"/a\"\nformat = \"nginx\"\nappend = '$request_time \"$http_x_tenant_id\" $geo'\n[file.dims]\n";
    let json = "[[file]]\npath = \"/a\"\nformat = \"json\"\n[file.dims]\n";
    let too_many: String = (0..33).map(|i| format!("d{i} = \"k{i}\"\n")).collect();
    let at_most: String = (0..32).map(|i| format!("d{i} = \"k{i}\"\n")).collect();
    let long_name = "n".repeat(65);
    let cases: Vec<(String, Option<&str>)> = vec![
        (format!("{nginx}region = \"$geo\"\nagent = \"http_user_agent\"\n"), None),
        (format!("{nginx}region = \"$geo\"\nplan = \"$http_x_plan\"\n"),
            Some("agent.toml:7:8: dims.plan: $http_x_plan is not in the log format `$remote_addr")),
        (format!("{json}region = \"region\"\n\"service.version\" = \"ver\"\n"), None),
        (format!("{json}{at_most}"), None),
        (format!("{json}{too_many}"), Some("agent.toml:4:1: dims maps 33 dimensions; sentineld takes at most 32 per event")),
        (format!("{json}\"\" = \"x\"\n"), Some("agent.toml:5:6: dims: dimension name \"\" must be 1-64 bytes without control characters")),
        (format!("{json}{long_name} = \"x\"\n"), Some("agent.toml:5:69: dims: dimension name \"nnnn")),
        (format!("{json}\"a\\tb\" = \"x\"\n"), Some("agent.toml:5:10: dims: dimension name \"a\\tb\"")),
        (format!("{json}region = \"\"\n"), Some("agent.toml:5:10: dims.region: name the JSON key or nginx variable")),
        (format!("{json}region = \"$\"\n"), Some("agent.toml:5:10: dims.region: name the JSON key")),
        (format!("{json}region = 3\n"), Some("agent.toml:5:10: invalid type: integer `3`, expected a string")),
    ];
    for (source, expected) in cases {
        match (parse_str(&source), expected) {
            (Ok(_), None) => {}
            (Err(err), Some(expected)) => assert!(
                err.starts_with(expected),
                "{source}\n got: {err}\nwant: {expected}"
            ),
            (got, _) => panic!("{source}\n got: {got:?}\nwant: {expected:?}"),
        }
    }
    // the parser carries the mapping, `$` dropped, in name order
    let config = parse_str(&format!(
        "{nginx}region = \"$geo\"\nagent = \"http_user_agent\"\n"
    ))
    .unwrap();
    let LineParser::Nginx { fields, .. } = config.files[0].parser().unwrap() else {
        panic!("not nginx")
    };
    assert_eq!(
        fields.dims,
        [
            ("agent".to_string(), "http_user_agent".to_string()),
            ("region".to_string(), "geo".to_string())
        ]
    );
}
