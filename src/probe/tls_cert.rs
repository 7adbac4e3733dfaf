//! `tls_cert` probe: a TLS handshake with `address`, then the peer's chain judged on its own:
//! expired, not valid for the name, not trusted (system store or `ca_file`), or near its end.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig};
use tokio::io::AsyncWriteExt;

use super::{connect, CheckResult, Failure, FailureReason};
use crate::http::client::tls::{self, TlsError, TlsVerification};

const SECONDS_PER_DAY: i64 = 86_400;

/// Why a `tls_cert` probe cannot be built (shown at its `ca_file` key).
#[derive(Debug, thiserror::Error)]
pub enum TlsCertError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("no usable trust anchor: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("invalid server name \"{name}\": {source}")]
    ServerName {
        name: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
}

#[derive(Debug, Clone)]
pub struct TlsCertProbe {
    pub host: String,
    pub port: u16,
    /// The name the certificate must be valid for (and the SNI sent).
    pub server_name: ServerName<'static>,
    pub min_days_left: u32,
    /// Completes any handshake whose signatures hold, so the chain can be read and judged.
    handshake: Arc<ClientConfig>,
    /// Judges the chain after the handshake: the system store or the `ca_file` CAs.
    verifier: Arc<WebPkiServerVerifier>,
}

impl TlsCertProbe {
    pub fn new(
        host: String,
        port: u16,
        server_name: Option<&str>,
        min_days_left: u32,
        ca_file: Option<&Path>,
    ) -> Result<Self, TlsCertError> {
        let name = server_name.unwrap_or(&host).to_string();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|source| TlsCertError::ServerName { name, source })?;
        let roots = tls::trusted_roots(ca_file)?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), tls::crypto_provider())
                .build()
                .map_err(TlsCertError::Verifier)?;
        Ok(Self {
            host,
            port,
            server_name,
            min_days_left,
            handshake: tls::client_config(&TlsVerification::Off)?,
            verifier,
        })
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        CheckResult::timed(started, self.inspect().await)
    }

    async fn inspect(&self) -> Result<(), Failure> {
        let chain = self.fetch_chain().await?;
        judge(
            &chain,
            &self.server_name,
            self.verifier.as_ref(),
            self.min_days_left,
            SystemTime::now(),
        )
    }

    /// Connect, shake hands (signatures checked, chain not yet judged), and keep the chain.
    async fn fetch_chain(&self) -> Result<Vec<CertificateDer<'static>>, Failure> {
        let stream = connect(&self.host, self.port).await?;
        let connector = tokio_rustls::TlsConnector::from(self.handshake.clone());
        let mut tls = connector
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|err| {
                Failure::new(
                    FailureReason::Tls,
                    format!("TLS handshake with {}:{}: {err}", self.host, self.port),
                )
            })?;
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        // close_notify; the peer's manners do not matter to the verdict
        let _ = tls.shutdown().await;
        if chain.is_empty() {
            return Err(Failure::new(
                FailureReason::Tls,
                "the server sent no certificate",
            ));
        }
        Ok(chain)
    }
}

/// The verdict on a chain at `now`: expired first (whatever else is wrong), then trust and
/// name, then the days left.
fn judge(
    chain: &[CertificateDer<'static>],
    server_name: &ServerName<'static>,
    verifier: &dyn ServerCertVerifier,
    min_days_left: u32,
    now: SystemTime,
) -> Result<(), Failure> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(Failure::new(
            FailureReason::Tls,
            "the server sent no certificate",
        ));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|err| {
        Failure::new(
            FailureReason::Tls,
            format!("cannot parse the server certificate: {err}"),
        )
    })?;
    let not_after = parsed.validity().not_after.timestamp();
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = not_after - now_secs;
    let date = format_date(not_after);
    if left < 0 {
        return Err(Failure::new(
            FailureReason::CertExpired,
            format!(
                "certificate expired {} ago, on {date}",
                days_phrase(-left / SECONDS_PER_DAY)
            ),
        ));
    }
    let unix_now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now_secs).unwrap_or(0),
    ));
    if let Err(err) = verifier.verify_server_cert(leaf, intermediates, server_name, &[], unix_now) {
        return Err(chain_failure(err, server_name));
    }
    let days_left = left / SECONDS_PER_DAY;
    if days_left < i64::from(min_days_left) {
        return Err(Failure::new(
            FailureReason::CertExpiring,
            format!(
                "certificate expires in {} (on {date}), below min_days_left {min_days_left}",
                days_phrase(days_left)
            ),
        ));
    }
    Ok(())
}

/// A chain the verifier refused, as a failure with its reason.
fn chain_failure(err: rustls::Error, server_name: &ServerName<'static>) -> Failure {
    let name = server_name.to_str();
    match err {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Failure::new(
            FailureReason::CertNameMismatch,
            format!("certificate is not valid for {name}: {err}"),
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => Failure::new(FailureReason::CertExpired, format!("certificate {err}")),
        other => Failure::new(
            FailureReason::CertUntrusted,
            format!("certificate for {name} is not trusted: {other}"),
        ),
    }
}

fn days_phrase(days: i64) -> String {
    match days {
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

/// A Unix time as `2026-12-09 11:00:00 UTC`.
fn format_date(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("unix time {unix}"))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use rcgen::{CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::ServerConfig;

    use super::*;

    /// A throwaway CA.
    fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sentinel test CA");
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A leaf for `names` valid from `from` to `until` days relative to now, issued by `issuer`
    /// (self-signed when `None`); its PEM chain and key.
    fn leaf(
        names: &[&str],
        from: i64,
        until: i64,
        issuer: Option<&CertifiedIssuer<'static, KeyPair>>,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from);
        params.not_after = now + time::Duration::days(until) + time::Duration::minutes(5);
        let key = KeyPair::generate().unwrap();
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        let mut chain = vec![cert.der().clone()];
        if let Some(issuer) = issuer {
            chain.push(issuer.der().clone());
        }
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (chain, key)
    }

    /// A real TLS server (rustls) on loopback serving `chain` to every client.
    async fn serve(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> SocketAddr {
        let config = ServerConfig::builder_with_provider(tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        address
    }

    fn write_ca(dir: &Path, issuer: &CertifiedIssuer<'static, KeyPair>) -> std::path::PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, issuer.pem()).unwrap();
        path
    }

    /// The four verdicts of the brief, plus an expired certificate, each against a real
    /// handshake on loopback.
    #[tokio::test]
    async fn verdicts_against_real_tls_servers() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = ca();
        let ca_file = write_ca(dir.path(), &issuer);
        struct Case {
            what: &'static str,
            names: &'static [&'static str],
            days: (i64, i64),
            self_signed: bool,
            server_name: Option<&'static str>,
            min_days_left: u32,
            ca_file: bool,
            want: Option<(FailureReason, &'static str)>,
        }
        let cases = [
            Case {
                what: "90 days left",
                names: &["localhost"],
                days: (-1, 90),
                self_signed: false,
                server_name: Some("localhost"),
                min_days_left: 14,
                ca_file: true,
                want: None,
            },
            Case {
                what: "3 days left, 14 wanted",
                names: &["localhost"],
                days: (-30, 3),
                self_signed: false,
                server_name: Some("localhost"),
                min_days_left: 14,
                ca_file: true,
                want: Some((
                    FailureReason::CertExpiring,
                    "certificate expires in 3 days (on ",
                )),
            },
            Case {
                what: "wrong host name",
                names: &["other.example"],
                days: (-1, 90),
                self_signed: false,
                server_name: Some("localhost"),
                min_days_left: 14,
                ca_file: true,
                want: Some((
                    FailureReason::CertNameMismatch,
                    "certificate is not valid for localhost",
                )),
            },
            Case {
                what: "IP address not in the certificate",
                names: &["localhost"],
                days: (-1, 90),
                self_signed: false,
                server_name: None,
                min_days_left: 14,
                ca_file: true,
                want: Some((
                    FailureReason::CertNameMismatch,
                    "certificate is not valid for 127.0.0.1",
                )),
            },
            Case {
                what: "self-signed, no ca_file",
                names: &["localhost"],
                days: (-1, 90),
                self_signed: true,
                server_name: Some("localhost"),
                min_days_left: 14,
                ca_file: false,
                want: Some((
                    FailureReason::CertUntrusted,
                    "certificate for localhost is not trusted",
                )),
            },
            Case {
                what: "expired two days ago",
                names: &["localhost"],
                days: (-30, -3),
                self_signed: false,
                server_name: Some("localhost"),
                min_days_left: 14,
                ca_file: true,
                want: Some((
                    FailureReason::CertExpired,
                    "certificate expired 2 days ago, on ",
                )),
            },
            Case {
                what: "expired and self-signed: expired, not only untrusted",
                names: &["localhost"],
                days: (-30, -3),
                self_signed: true,
                server_name: Some("localhost"),
                min_days_left: 14,
                ca_file: false,
                want: Some((
                    FailureReason::CertExpired,
                    "certificate expired 2 days ago, on ",
                )),
            },
        ];
        for case in cases {
            let issued_by = (!case.self_signed).then_some(&issuer);
            let (chain, key) = leaf(case.names, case.days.0, case.days.1, issued_by);
            let address = serve(chain, key).await;
            let probe = TlsCertProbe::new(
                "127.0.0.1".into(),
                address.port(),
                case.server_name,
                case.min_days_left,
                case.ca_file.then_some(ca_file.as_path()),
            )
            .unwrap();
            let result = tokio::time::timeout(Duration::from_secs(5), probe.check())
                .await
                .expect("the check answers");
            match (&result.failure, case.want) {
                (None, None) => {}
                (Some(failure), Some((reason, start))) => {
                    assert_eq!(failure.reason, reason, "{}: {failure:?}", case.what);
                    assert!(
                        failure.detail.starts_with(start),
                        "{}: {}",
                        case.what,
                        failure.detail
                    );
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.what),
            }
        }
    }

    /// A peer that is not TLS, and a closed port, keep their own reasons.
    #[tokio::test]
    async fn handshake_and_connect_failures_keep_their_reasons() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"HTTP/1.0 400 nope\r\n\r\n").await;
            }
        });
        let probe = TlsCertProbe::new("127.0.0.1".into(), address.port(), None, 14, None).unwrap();
        let failure = probe.check().await.failure.unwrap();
        assert_eq!(failure.reason, FailureReason::Tls, "{failure:?}");
        assert!(
            failure
                .detail
                .starts_with(&format!("TLS handshake with {address}: ")),
            "{failure:?}"
        );

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let probe = TlsCertProbe::new("127.0.0.1".into(), closed.port(), None, 14, None).unwrap();
        assert_eq!(
            probe.check().await.failure.unwrap().reason,
            FailureReason::Refused
        );
    }

    #[test]
    fn dates_and_days_read_plainly() {
        assert_eq!(format_date(1_796_814_000), "2026-12-09 11:00:00 UTC");
        assert_eq!(days_phrase(1), "1 day");
        assert_eq!(days_phrase(0), "0 days");
        assert_eq!(days_phrase(3), "3 days");
    }
}
