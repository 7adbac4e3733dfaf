//! `dns` probe: one query (A, AAAA, CNAME, MX, TXT, SRV) through hickory-resolver to the system
//! resolver or a given server, Down on NXDOMAIN, no answer, a server error or unexpected answers.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::Resolver;

use super::config::DnsRecordType;
use super::{CheckResult, Failure, FailureReason};

#[derive(Debug, Clone)]
pub struct DnsProbe {
    /// The name asked, made absolute: search domains never apply.
    pub name: Name,
    pub record: DnsRecordType,
    /// The server asked; `None` is the system resolver (/etc/resolv.conf).
    pub server: Option<SocketAddr>,
    /// Each must be among the answers (normalized as `normalize` does).
    pub expect_answers: Vec<String>,
    /// How long the resolver waits for an answer; a little under the check's timeout, so a
    /// silent server is reported by the probe with the server's address.
    pub wait: Duration,
}

impl DnsProbe {
    /// The name of a query, absolute (a trailing dot is added when missing).
    pub fn parse_name(text: &str) -> Result<Name, hickory_resolver::proto::ProtoError> {
        if text.trim().is_empty() || text.chars().any(char::is_whitespace) {
            return Err("a name has no blanks and is not empty".into());
        }
        let mut name = Name::from_utf8(text)?;
        name.set_fqdn(true);
        Ok(name)
    }

    /// `ip` or `ip:port` (`[v6]:port`); the port defaults to 53.
    pub fn parse_server(text: &str) -> Option<SocketAddr> {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Some(address);
        }
        let ip = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()?;
        Some(SocketAddr::new(ip, 53))
    }

    pub fn target(&self) -> String {
        let server = self
            .server
            .map_or_else(|| "system resolver".to_string(), |s| s.to_string());
        format!("{} {} @{server}", self.record, self.name)
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        CheckResult::timed(started, self.ask().await)
    }

    /// A resolver per check: nothing cached between checks, and /etc/resolv.conf read now.
    fn resolver(&self) -> Result<Resolver<TokioRuntimeProvider>, Failure> {
        let cannot = |err: NetError| {
            Failure::new(
                FailureReason::Dns,
                format!("cannot set up the resolver: {err}"),
            )
        };
        let mut builder = match self.server {
            Some(server) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut connection| {
                        connection.port = server.port();
                        connection
                    })
                    .collect();
                let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                    server.ip(),
                    true,
                    connections,
                )]);
                Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            }
            None => Resolver::builder_tokio().map_err(cannot)?,
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = self.wait;
        options.attempts = 1;
        options.use_hosts_file = ResolveHosts::Never;
        builder.build().map_err(cannot)
    }

    async fn ask(&self) -> Result<(), Failure> {
        let resolver = self.resolver()?;
        let record_type = record_type(self.record);
        let asked = self.target();
        let lookup = resolver
            .lookup(self.name.clone(), record_type)
            .await
            .map_err(|err| lookup_failure(err, &asked))?;
        let answers: Vec<String> = lookup
            .answers()
            .iter()
            .filter(|record| record.record_type() == record_type)
            .map(|record| render(&record.data))
            .collect();
        if answers.is_empty() {
            return Err(Failure::new(
                FailureReason::NoAnswer,
                format!("{asked}: no {} record", self.record),
            ));
        }
        let received: Vec<String> = answers.iter().map(|a| normalize(self.record, a)).collect();
        let missing: Vec<&String> = self
            .expect_answers
            .iter()
            .filter(|want| !received.contains(&normalize(self.record, want)))
            .collect();
        if !missing.is_empty() {
            return Err(Failure::new(
                FailureReason::Assertion,
                format!(
                    "{asked}: expected {}, received {}",
                    quoted(missing.into_iter()),
                    quoted(answers.iter())
                ),
            ));
        }
        Ok(())
    }
}

fn record_type(record: DnsRecordType) -> RecordType {
    match record {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Cname => RecordType::CNAME,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Txt => RecordType::TXT,
        DnsRecordType::Srv => RecordType::SRV,
    }
}

/// An answer as `dig +short` writes it, without the trailing dots of names.
fn render(data: &RData) -> String {
    let text = data.to_string();
    match data {
        RData::TXT(_) => text,
        _ => text
            .split(' ')
            .map(|part| part.strip_suffix('.').unwrap_or(part))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Two answers are the same when they normalize alike: addresses by value, names without
/// case or trailing dots, TXT exactly.
fn normalize(record: DnsRecordType, answer: &str) -> String {
    match record {
        DnsRecordType::A | DnsRecordType::Aaaa => answer
            .parse::<IpAddr>()
            .map_or_else(|_| answer.to_string(), |ip| ip.to_string()),
        DnsRecordType::Txt => answer.to_string(),
        _ => answer
            .split_whitespace()
            .map(|part| part.trim_end_matches('.').to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn quoted<'a>(answers: impl Iterator<Item = &'a String>) -> String {
    answers
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lookup that failed, as a failure with its reason.
fn lookup_failure(err: NetError, asked: &str) -> Failure {
    match &err {
        NetError::Dns(DnsError::NoRecordsFound(no))
            if no.response_code == ResponseCode::NXDomain =>
        {
            Failure::new(
                FailureReason::Nxdomain,
                format!("{asked}: NXDOMAIN (the name does not exist)"),
            )
        }
        NetError::Dns(DnsError::NoRecordsFound(no))
            if no.response_code == ResponseCode::NoError =>
        {
            Failure::new(FailureReason::NoAnswer, format!("{asked}: no such record"))
        }
        NetError::Dns(DnsError::NoRecordsFound(no)) => Failure::new(
            FailureReason::Dns,
            format!("{asked}: the server answered {}", no.response_code),
        ),
        NetError::Dns(DnsError::ResponseCode(code)) => Failure::new(
            FailureReason::Dns,
            format!("{asked}: the server answered {code}"),
        ),
        NetError::Timeout => Failure::new(FailureReason::Timeout, format!("{asked}: no answer")),
        NetError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Failure::new(FailureReason::Refused, format!("{asked}: {err}"))
        }
        _ => Failure::new(FailureReason::Dns, format!("{asked}: {err}")),
    }
}

/// A real DNS server for tests: dnsmasq on a free loopback port, authoritative for
/// `sentinel.test` (names it does not hold are NXDOMAIN, nothing is forwarded).
#[cfg(test)]
pub(crate) mod dnsmasq {
    use std::net::SocketAddr;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub struct Dnsmasq {
        child: Child,
        pub address: SocketAddr,
    }

    impl Drop for Dnsmasq {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The records every test zone holds.
    pub const RECORDS: &[&str] = &[
        "--host-record=web.sentinel.test,127.0.0.9,::9",
        "--cname=www.sentinel.test,web.sentinel.test",
        "--mx-host=sentinel.test,mail.sentinel.test,10",
        "--txt-record=sentinel.test,v=spf1 -all",
        "--srv-host=_http._tcp.sentinel.test,web.sentinel.test,8080,1,5",
    ];

    impl Dnsmasq {
        /// Started and answering, or `None` (said loudly) when dnsmasq is not installed
        /// outside CI; under CI its absence fails the test.
        pub fn start(test: &str) -> Option<Self> {
            let installed = Command::new("dnsmasq")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !installed {
                if std::env::var_os("CI").is_some() {
                    panic!("{test} needs dnsmasq (apt-get install dnsmasq-base)");
                }
                eprintln!("\n!!! SKIPPING {test}: dnsmasq is not installed (allowed only outside CI) !!!\n");
                return None;
            }
            for _ in 0..5 {
                let port = std::net::UdpSocket::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let child = Command::new("dnsmasq")
                    .args([
                        "--keep-in-foreground",
                        "--conf-file=/dev/null",
                        "--no-resolv",
                        "--no-hosts",
                        "--no-poll",
                        "--bind-interfaces",
                        "--listen-address=127.0.0.1",
                        "--except-interface=none",
                        "--user=root",
                        "--pid-file=",
                        "--local=/sentinel.test/",
                        &format!("--port={port}"),
                    ])
                    .args(RECORDS)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("dnsmasq starts");
                let mut server = Dnsmasq {
                    child,
                    address: SocketAddr::from(([127, 0, 0, 1], port)),
                };
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(5) {
                    if let Ok(Some(_)) = server.child.try_wait() {
                        break; // the port was taken meanwhile: try another
                    }
                    if std::net::TcpStream::connect(server.address).is_ok() {
                        return Some(server);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            panic!("dnsmasq did not start on a free loopback port");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(server: SocketAddr, name: &str, record: DnsRecordType, expect: &[&str]) -> DnsProbe {
        DnsProbe {
            name: DnsProbe::parse_name(name).unwrap(),
            record,
            server: Some(server),
            expect_answers: expect.iter().map(|a| a.to_string()).collect(),
            wait: Duration::from_millis(900),
        }
    }

    /// Every record type, expected answers met and missed, NXDOMAIN and no answer, against a
    /// real dnsmasq on loopback.
    #[tokio::test]
    async fn queries_against_a_real_dns_server() {
        let Some(server) = dnsmasq::Dnsmasq::start("queries_against_a_real_dns_server") else {
            return;
        };
        use DnsRecordType::*;
        /// (name, record, expected answers, the failure wanted)
        type Case<'a> = (
            &'a str,
            DnsRecordType,
            &'a [&'a str],
            Option<(FailureReason, String)>,
        );
        let cases: Vec<Case> = vec![
            ("web.sentinel.test", A, &["127.0.0.9"], None),
            ("web.sentinel.test", A, &[], None),
            ("web.sentinel.test", Aaaa, &["::9"], None),
            ("www.sentinel.test", Cname, &["web.sentinel.test."], None),
            ("sentinel.test", Mx, &["10 mail.sentinel.test"], None),
            ("sentinel.test", Txt, &["v=spf1 -all"], None),
            (
                "_http._tcp.sentinel.test",
                Srv,
                &["1 5 8080 web.sentinel.test"],
                None,
            ),
            (
                "web.sentinel.test",
                A,
                &["127.0.0.10"],
                Some((
                    FailureReason::Assertion,
                    format!(
                        "A web.sentinel.test. @{} : expected \"127.0.0.10\", received \"127.0.0.9\"",
                        server.address
                    )
                    .replace(" :", ":"),
                )),
            ),
            (
                "gone.sentinel.test",
                A,
                &[],
                Some((
                    FailureReason::Nxdomain,
                    format!(
                        "A gone.sentinel.test. @{}: NXDOMAIN (the name does not exist)",
                        server.address
                    ),
                )),
            ),
            (
                "sentinel.test",
                Srv,
                &[],
                Some((
                    FailureReason::NoAnswer,
                    format!("SRV sentinel.test. @{}: no such record", server.address),
                )),
            ),
        ];
        for (name, record, expect, want) in cases {
            let result = probe(server.address, name, record, expect).check().await;
            assert_eq!(
                result.failure.map(|f| (f.reason, f.detail)),
                want,
                "{record} {name}"
            );
        }
    }

    /// A server that takes the query and never answers: a timeout, within the probe's wait.
    #[tokio::test]
    async fn a_silent_server_is_a_timeout() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap();
        let started = Instant::now();
        let result = probe(address, "web.sentinel.test", DnsRecordType::A, &[])
            .check()
            .await;
        let failure = result.failure.unwrap();
        assert_eq!(failure.reason, FailureReason::Timeout, "{failure:?}");
        assert_eq!(
            failure.detail,
            format!("A web.sentinel.test. @{address}: no answer")
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn names_and_servers_parse() {
        assert_eq!(
            DnsProbe::parse_name("example.org").unwrap().to_string(),
            "example.org."
        );
        assert_eq!(
            DnsProbe::parse_name("example.org.").unwrap().to_string(),
            "example.org."
        );
        assert!(DnsProbe::parse_name("").is_err());
        assert!(DnsProbe::parse_name("a b").is_err());
        assert!(DnsProbe::parse_name(&"x".repeat(64)).is_err());
        let cases = [
            ("127.0.0.1", Some("127.0.0.1:53")),
            ("127.0.0.1:5353", Some("127.0.0.1:5353")),
            ("::1", Some("[::1]:53")),
            ("[::1]:5353", Some("[::1]:5353")),
            ("[::1]", Some("[::1]:53")),
            ("dns.example", None),
            ("127.0.0.1:99999", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                DnsProbe::parse_server(text)
                    .map(|s| s.to_string())
                    .as_deref(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn answers_normalize() {
        assert_eq!(normalize(DnsRecordType::Aaaa, "0:0::1"), "::1");
        assert_eq!(
            normalize(DnsRecordType::Mx, "10  Mail.Example.org."),
            "10 mail.example.org"
        );
        assert_eq!(normalize(DnsRecordType::Txt, "v=spf1 -all"), "v=spf1 -all");
        assert_eq!(
            normalize(DnsRecordType::Cname, "web.example.org."),
            "web.example.org"
        );
    }
}
