//! `tls_cert`, `dns` and `icmp` probes as the loader reads them: issue 15's example as written,
//! and every field of theirs refused at its file:line:col.

use std::path::Path;
use std::time::Duration;

use crate::probe::config::DnsRecordType;
use crate::probe::ProbeKind;

fn parse(source: &str) -> Result<crate::config::Config, String> {
    crate::config::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
}

/// The three network probes of issue 15's configuration, exactly as the issue writes them.
const ISSUE_15: &str = r#"
[[probe]]
name = "cert"
kind = "tls_cert"
address = "example.org:443"
min_days_left = 14

[[probe]]
name = "dns"
kind = "dns"
query = "example.org"
record = "A"

[[probe]]
name = "gw"
kind = "icmp"
host = "127.0.0.1"
"#;

#[test]
fn issue_15_network_probes_are_accepted_as_written() {
    let config = parse(ISSUE_15).unwrap();
    let kinds: Vec<(&str, ProbeKind)> =
        config.probes.iter().map(|p| (p.name(), p.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("cert", ProbeKind::TlsCert),
            ("dns", ProbeKind::Dns),
            ("gw", ProbeKind::Icmp)
        ]
    );
    let [cert, dns, gw] = &config.probes[..] else {
        unreachable!()
    };
    assert_eq!(cert.min_days_left.as_ref().map(|d| *d.get_ref()), Some(14));
    assert_eq!(
        dns.record.as_ref().map(|r| *r.get_ref()),
        Some(DnsRecordType::A)
    );
    assert_eq!(
        gw.host.as_ref().map(|h| h.get_ref().as_str()),
        Some("127.0.0.1")
    );

    // built into probes with their defaults
    let docker = crate::docker::DockerEngine::new(Path::new("/nonexistent/docker.sock"));
    match crate::probe::AnyProbe::from_config(cert, &docker) {
        Some(crate::probe::AnyProbe::TlsCert(probe)) => {
            assert_eq!((probe.host.as_str(), probe.port), ("example.org", 443));
            assert_eq!(probe.server_name.to_str(), "example.org");
        }
        other => panic!("{other:?}"),
    }
    match crate::probe::AnyProbe::from_config(dns, &docker) {
        Some(crate::probe::AnyProbe::Dns(probe)) => {
            assert_eq!(probe.target(), "A example.org. @system resolver");
        }
        other => panic!("{other:?}"),
    }
    match crate::probe::AnyProbe::from_config(gw, &docker) {
        Some(crate::probe::AnyProbe::Icmp(probe)) => {
            assert_eq!((probe.count, probe.max_loss_percent), (3, 0.0));
            assert_eq!(probe.wait, Duration::from_millis(4320));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn network_probe_fields_are_refused_at_their_key() {
    const TLS: &str = "[[probe]]\nname = \"a\"\nkind = \"tls_cert\"\n";
    const DNS: &str = "[[probe]]\nname = \"a\"\nkind = \"dns\"\n";
    const ICMP: &str = "[[probe]]\nname = \"a\"\nkind = \"icmp\"\n";
    let cases: Vec<(String, &str)> = vec![
        // tls_cert
        (TLS.into(), "t.toml:3:8: probe \"a\": tls_cert probes need `address`"),
        (
            format!("{TLS}address = \"example.org\"\n"),
            "t.toml:4:11: probe \"a\": invalid address \"example.org\": expected host:port",
        ),
        (
            format!("{TLS}address = \"h:443\"\nmin_days_left = -1\n"),
            "t.toml:5:17: invalid value: integer `-1`, expected u32",
        ),
        (
            format!("{TLS}address = \"h:443\"\nmin_days_left = 4000\n"),
            "t.toml:5:17: probe \"a\": min_days_left must be at most 3650 (ten years)",
        ),
        (
            format!("{TLS}address = \"h:443\"\nserver_name = \"bad name\"\n"),
            "t.toml:5:15: probe \"a\": \"bad name\" is not a DNS name or IP address",
        ),
        (
            format!("{TLS}address = \"bad_host!:443\"\n"),
            "t.toml:4:11: probe \"a\": \"bad_host!\" is not a DNS name or IP address",
        ),
        (
            format!("{TLS}address = \"h:443\"\nca_file = \"/nonexistent/ca.pem\"\n"),
            "t.toml:5:11: probe \"a\": cannot read ca_file /nonexistent/ca.pem",
        ),
        (
            format!("{TLS}address = \"h:443\"\ntls_verify = false\n"),
            "t.toml:5:14: probe \"a\": `tls_verify` does not apply to tls_cert probes",
        ),
        (
            format!("{TLS}address = \"h:443\"\nrecord = \"A\"\n"),
            "t.toml:5:10: probe \"a\": `record` does not apply to tls_cert probes",
        ),
        // dns
        (DNS.into(), "t.toml:3:8: probe \"a\": dns probes need `query`"),
        (
            format!("{DNS}query = \"two words\"\n"),
            "t.toml:4:9: probe \"a\": invalid name to query \"two words\"",
        ),
        (
            format!("{DNS}query = \"h\"\nrecord = \"PTR\"\n"),
            "t.toml:5:10: unknown variant `PTR`, expected one of `A`, `AAAA`, `CNAME`, `MX`, `TXT`, `SRV`",
        ),
        (
            format!("{DNS}query = \"h\"\nserver = \"dns.example\"\n"),
            "t.toml:5:10: probe \"a\": invalid server \"dns.example\": expected ip or ip:port",
        ),
        (
            format!("{DNS}query = \"h\"\nexpect_answers = []\n"),
            "t.toml:5:18: probe \"a\": expect_answers needs at least one answer",
        ),
        (
            format!("{DNS}query = \"h\"\nrecord = \"AAAA\"\nexpect_answers = [\"127.0.0.1\"]\n"),
            "t.toml:6:18: probe \"a\": \"127.0.0.1\" is not a AAAA answer",
        ),
        (
            format!("{DNS}query = \"h\"\nhost = \"h\"\n"),
            "t.toml:5:8: probe \"a\": `host` does not apply to dns probes",
        ),
        // icmp
        (ICMP.into(), "t.toml:3:8: probe \"a\": icmp probes need `host`"),
        (
            format!("{ICMP}host = \"gw; rm\"\n"),
            "t.toml:4:8: probe \"a\": invalid host \"gw; rm\": expected a host name or an IP address",
        ),
        (
            format!("{ICMP}host = \"gw\"\ncount = 0\n"),
            "t.toml:5:9: probe \"a\": count must be between 1 and 100",
        ),
        (
            format!("{ICMP}host = \"gw\"\nmax_loss_percent = 100\n"),
            "t.toml:5:20: probe \"a\": max_loss_percent is a percentage, 0 to below 100",
        ),
        (
            format!("{ICMP}host = \"gw\"\nmax_rtt = \"0s\"\n"),
            "t.toml:5:11: probe \"a\": max_rtt must be above zero",
        ),
        (
            format!("{ICMP}host = \"gw\"\nmax_rtt = \"fast\"\n"),
            "t.toml:5:11: invalid duration \"fast\"",
        ),
        (
            format!("{ICMP}host = \"gw\"\naddress = \"h:1\"\n"),
            "t.toml:5:11: probe \"a\": `address` does not apply to icmp probes",
        ),
    ];
    for (source, expected) in cases {
        let err = parse(&source).expect_err(&source);
        assert!(
            err.starts_with(expected),
            "source {source:?}\n  got:  {err}\n  want: {expected}"
        );
    }
}
