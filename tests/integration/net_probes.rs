//! The network probe kinds through the real daemon: `tls_cert` against openssl s_server,
//! `dns` against dnsmasq, `icmp` from a namespace of its own to a peer that stops answering.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::chaos::NetnsPair;
use crate::harness::{free_port, require_root, text, Daemon, KilledOnDrop, Sandbox};

/// Wait until `address` accepts TCP connections, or panic with `what`.
fn wait_listening(child: &mut Child, address: SocketAddr, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(address).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status})");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} does not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A certificate for `localhost` with `days_left` left, issued by `issuer` (self-signed when
/// `None`); written as `NAME.pem` / `NAME.key` in `dir`.
fn certificate(
    dir: &Path,
    name: &str,
    days_left: i64,
    issuer: Option<&rcgen::CertifiedIssuer<'static, rcgen::KeyPair>>,
) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now + time::Duration::days(days_left) + time::Duration::minutes(10);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// openssl s_server on a free loopback port with `NAME.pem`/`NAME.key` (and the CA as chain).
fn s_server(dir: &Path, name: &str) -> (KilledOnDrop, u16) {
    let port = free_port();
    let mut child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-cert",
            &format!("{name}.pem"),
            "-key",
            &format!("{name}.key"),
        ])
        .args(["-cert_chain", "ca.pem"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    wait_listening(
        &mut child,
        SocketAddr::from(([127, 0, 0, 1], port)),
        "openssl s_server",
    );
    (KilledOnDrop(child), port)
}

/// `reason: detail` of a probe's last failure.
fn last_failure(probe: &serde_json::Value) -> String {
    probe["last_failure"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The journaled transitions of `name` that went to Down, as `from>down:reason`.
fn downs(daemon: &Daemon, name: &str) -> Vec<String> {
    daemon
        .events("probe_transition")
        .iter()
        .filter(|e| e["probe"] == name && e["to"] == "down")
        .map(|e| {
            format!(
                "{}>down:{}",
                e["from"].as_str().unwrap_or_default(),
                e["reason"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn tls_cert_probes_up_expiring_and_untrusted() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sentinel test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    certificate(dir, "fresh", 90, Some(&ca));
    certificate(dir, "ending", 3, Some(&ca));
    certificate(dir, "selfmade", 90, None);
    let (_fresh, fresh) = s_server(dir, "fresh");
    let (_ending, ending) = s_server(dir, "ending");
    let (_selfmade, selfmade) = s_server(dir, "selfmade");
    let ca_file = dir.join("ca.pem");
    let probe = |name: &str, port: u16, ca: bool| {
        let ca = if ca {
            format!("ca_file = \"{}\"\n", ca_file.display())
        } else {
            String::new()
        };
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"tls_cert\"\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"\nmin_days_left = 14\n{ca}interval = \"300ms\"\ntimeout = \"300ms\"\nfail_after = 1\n\n"
        )
    };
    let probes = [
        probe("fresh", fresh, true),
        probe("ending", ending, true),
        probe("selfmade", selfmade, false),
    ]
    .concat();
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});

    let up = daemon.wait_state("fresh", "up");
    assert_eq!(up["kind"], "tls_cert", "{up}");
    assert_eq!(up["target"], format!("certificate of 127.0.0.1:{fresh}"));

    let down = daemon.wait_state("ending", "down");
    let failure = last_failure(&down);
    assert!(
        failure.starts_with("cert_expiring: certificate expires in 3 days (on ")
            && failure.ends_with(" UTC), below min_days_left 14"),
        "{failure}"
    );
    let down = daemon.wait_state("selfmade", "down");
    assert!(
        last_failure(&down).starts_with("cert_untrusted: certificate for localhost is not trusted"),
        "{down}"
    );
    assert_eq!(downs(&daemon, "ending"), ["unknown>down:cert_expiring"]);
    assert!(daemon.stop().success());
}

/// Whether dnsmasq is installed; its absence fails under CI and skips loudly elsewhere.
fn require_dnsmasq(test: &str) -> bool {
    let installed = Command::new("dnsmasq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs dnsmasq (apt-get install dnsmasq-base)");
        }
        eprintln!(
            "\n!!! SKIPPING {test}: dnsmasq is not installed (allowed only outside CI) !!!\n"
        );
    }
    installed
}

/// dnsmasq in the foreground on 127.0.0.1 only, reading no file of the host, authoritative
/// for `sentinel.test` with `web.sentinel.test` at 127.0.0.9; each test adds its port.
const DNSMASQ: [&str; 11] = [
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--no-poll",
    "--bind-interfaces",
    "--listen-address=127.0.0.1",
    "--user=root",
    "--pid-file=",
    "--local=/sentinel.test/",
    "--host-record=web.sentinel.test,127.0.0.9",
];

/// dnsmasq on a free loopback port, authoritative for `sentinel.test`.
fn dnsmasq(test: &str) -> Option<(KilledOnDrop, SocketAddr)> {
    if !require_dnsmasq(test) {
        return None;
    }
    let port = free_port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new("dnsmasq")
        .args(DNSMASQ)
        .arg("--mx-host=sentinel.test,mail.sentinel.test,10")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq");
    wait_listening(&mut child, address, "dnsmasq");
    Some((KilledOnDrop(child), address))
}

#[test]
fn dns_probes_answer_mismatch_nxdomain_and_silence() {
    let Some((_dnsmasq, server)) = dnsmasq("dns_probes_answer_mismatch_nxdomain_and_silence")
    else {
        return;
    };
    // takes queries and never answers
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_address = silent.local_addr().unwrap();
    let sandbox = Sandbox::new();
    let probe = |name: &str, query: &str, record: &str, expect: &str, server: SocketAddr| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"dns\"\nquery = \"{query}\"\nrecord = \"{record}\"\nserver = \"{server}\"\n{expect}interval = \"500ms\"\ntimeout = \"500ms\"\nfail_after = 1\n\n"
        )
    };
    let probes = [
        probe(
            "web",
            "web.sentinel.test",
            "A",
            "expect_answers = [\"127.0.0.9\"]\n",
            server,
        ),
        probe(
            "mail",
            "sentinel.test",
            "MX",
            "expect_answers = [\"10 mail.sentinel.test\"]\n",
            server,
        ),
        probe(
            "moved",
            "web.sentinel.test",
            "A",
            "expect_answers = [\"127.0.0.10\"]\n",
            server,
        ),
        probe("gone", "gone.sentinel.test", "A", "", server),
        probe("silent", "web.sentinel.test", "A", "", silent_address),
    ]
    .concat();
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});

    let web = daemon.wait_state("web", "up");
    assert_eq!(
        web["target"],
        format!("A web.sentinel.test. @{server}"),
        "{web}"
    );
    daemon.wait_state("mail", "up");
    let moved = daemon.wait_state("moved", "down");
    assert_eq!(
        last_failure(&moved),
        format!("assertion: A web.sentinel.test. @{server}: expected \"127.0.0.10\", received \"127.0.0.9\"")
    );
    let gone = daemon.wait_state("gone", "down");
    assert_eq!(
        last_failure(&gone),
        format!("nxdomain: A gone.sentinel.test. @{server}: NXDOMAIN (the name does not exist)")
    );
    let silent_probe = daemon.wait_state("silent", "down");
    assert!(
        last_failure(&silent_probe).starts_with("timeout: "),
        "{silent_probe}"
    );
    assert_eq!(downs(&daemon, "gone"), ["unknown>down:nxdomain"]);
    drop(silent);
    assert!(daemon.stop().success());
}

/// Without `server`, the probe asks the system resolver: sentineld and dnsmasq (on port 53)
/// share a fresh network namespace whose /etc/resolv.conf (`ip netns exec` binds
/// /etc/netns/NAME/resolv.conf over it) names 127.0.0.1.
#[test]
fn dns_probe_asks_the_system_resolver() {
    if !require_root("dns_probe_asks_the_system_resolver") {
        return;
    }
    if !require_dnsmasq("dns_probe_asks_the_system_resolver") {
        return;
    }
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.0));
        }
    }
    let netns = Netns(format!("snt-dns-{}", std::process::id()));
    let run = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
    };
    run(&["netns", "add", &netns.0]);
    run(&["-n", &netns.0, "link", "set", "lo", "up"]);
    let etc = format!("/etc/netns/{}", netns.0);
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(format!("{etc}/resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let _dnsmasq = KilledOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &netns.0, "dnsmasq"])
            .args(DNSMASQ)
            .arg("--port=53")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq"),
    );
    let sandbox = Sandbox::new();
    let probes = "[[probe]]\nname = \"web\"\nkind = \"dns\"\nquery = \"web.sentinel.test\"\nexpect_answers = [\"127.0.0.9\"]\ninterval = \"300ms\"\ntimeout = \"300ms\"\n\n\
                  [[probe]]\nname = \"gone\"\nkind = \"dns\"\nquery = \"gone.sentinel.test\"\ninterval = \"300ms\"\ntimeout = \"300ms\"\nfail_after = 1\n";
    sandbox.write_config(&sandbox.config("", probes));
    let wrapper: Vec<String> = ["ip", "netns", "exec", &netns.0]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let daemon = Daemon::start_with(&sandbox, &wrapper, "text", |_| {});
    let web = daemon.wait_state("web", "up");
    assert_eq!(
        web["target"], "A web.sentinel.test. @system resolver",
        "{web}"
    );
    let gone = daemon.wait_state("gone", "down");
    assert_eq!(
        last_failure(&gone),
        "nxdomain: A gone.sentinel.test. @system resolver: NXDOMAIN (the name does not exist)"
    );
    assert!(daemon.stop().success());
}

/// sentineld runs in namespace `a` of a veth pair (datagram ICMP sockets allowed there by
/// ping_group_range); its peer `b` answers echoes until it is told to ignore them.
#[test]
fn icmp_probes_see_rtt_and_then_total_loss() {
    if !require_root("icmp_probes_see_rtt_and_then_total_loss") {
        return;
    }
    let pair = NetnsPair::new("icmp");
    let sysctl = |ns: &str, setting: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw", setting])
            .output()
            .unwrap();
        assert!(out.status.success(), "{setting}: {}", text(&out.stderr));
    };
    sysctl(&pair.a, "net.ipv4.ping_group_range=0 2147483647");
    let sandbox = Sandbox::new();
    let probes = "[[probe]]\nname = \"lo\"\nkind = \"icmp\"\nhost = \"127.0.0.1\"\nmax_rtt = \"200ms\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\n\
                  [[probe]]\nname = \"peer\"\nkind = \"icmp\"\nhost = \"10.254.0.2\"\ncount = 3\nmax_loss_percent = 34\ninterval = \"1s\"\ntimeout = \"1s\"\nfail_after = 1\n";
    sandbox.write_config(&sandbox.config("", probes));
    let netns = std::fs::File::open(format!("/run/netns/{}", pair.a)).unwrap();
    let daemon = Daemon::start(&sandbox, move |command| {
        // SAFETY: setns is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            command.pre_exec(move || {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
    });
    let lo = daemon.wait_state("lo", "up");
    let rtt = lo["last_latency_ms"].as_f64().unwrap();
    assert!(rtt > 0.0 && rtt < 200.0, "{lo}");
    assert_eq!(lo["target"], "echo 127.0.0.1");
    let peer = daemon.wait_state("peer", "up");
    assert!(peer["last_latency_ms"].as_f64().unwrap() > 0.0, "{peer}");

    sysctl(&pair.b, "net.ipv4.icmp_echo_ignore_all=1");
    let started = Instant::now();
    let down = daemon.wait_state("peer", "down");
    assert_eq!(
        last_failure(&down),
        "packet_loss: 10.254.0.2: 3 sent, 0 received, 100% loss, above max_loss_percent 34"
    );
    eprintln!(
        "peer down {:.1} s after it stopped answering; lo rtt {rtt:.3} ms",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(daemon.probe("lo")["state"], "up");
    sysctl(&pair.b, "net.ipv4.icmp_echo_ignore_all=0");
    daemon.wait_state("peer", "up");
    assert_eq!(downs(&daemon, "peer"), ["up>down:packet_loss"]);
    assert!(daemon.stop().success());
}
