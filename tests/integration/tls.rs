//! https probes against a real TLS server (openssl s_server) whose certificate comes from a
//! throwaway CA: the system store rejects it, `ca_file` trusts it, `tls_verify = false` skips.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{free_port, text, wait_for, Daemon, KilledOnDrop, Sandbox};

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        text(&output.stderr)
    );
}

/// ca.pem (a throwaway CA) and server.pem/server.key for 127.0.0.1, signed by it.
pub(crate) fn make_certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sentinel smtp test CA",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:false\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

#[test]
fn https_probes_verify_with_system_store_ca_file_or_not_at_all() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path();
    make_certificates(dir);

    let port = free_port();
    let _server = KilledOnDrop(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &port.to_string(),
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-www",
                "-quiet",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(10), "TLS server listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });

    let probe = |name: &str, extra: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"https://127.0.0.1:{port}/\"\ninterval = \"500ms\"\ntimeout = \"500ms\"\nfail_after = 1\n{extra}\n"
        )
    };
    let probes = [
        probe("strict", ""),
        probe(
            "private-ca",
            &format!("ca_file = \"{}\"", dir.join("ca.pem").display()),
        ),
        probe("unverified", "tls_verify = false"),
    ]
    .concat();
    sandbox.write_config(&sandbox.config("", &probes));
    let daemon = Daemon::start(&sandbox, |_| {});
    let states = wait_for(Duration::from_secs(15), "all three decided", || {
        let status = daemon.ctl_json(&["status"]);
        let probes = status["probes"].as_array().unwrap().clone();
        let decided = probes
            .iter()
            .all(|p| p["state"] == "up" || p["state"] == "down");
        decided.then_some(probes)
    });
    let find = |name: &str| states.iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(
        find("private-ca")["state"],
        "up",
        "{:?}",
        find("private-ca")
    );
    assert_eq!(
        find("unverified")["state"],
        "up",
        "{:?}",
        find("unverified")
    );
    let strict = find("strict");
    assert_eq!(strict["state"], "down");
    let failure = strict["last_failure"].as_str().unwrap();
    assert!(
        failure.starts_with("tls: TLS handshake with 127.0.0.1:"),
        "{failure}"
    );
    assert!(failure.contains("UnknownIssuer"), "{failure}");
    assert!(daemon.stop().success());
}
