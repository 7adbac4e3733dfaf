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
