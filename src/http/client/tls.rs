//! Our rustls client configs (ring): the system trust store by default, a probe's private CA
//! file, or no verification at all (a probe of a self-signed internal endpoint then only
//! proves the service answers, not who it is).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerification {
    /// The host's trust store (/etc/ssl/certs through rustls-native-certs).
    System,
    /// Only certificates issued by the CAs in this PEM file.
    CaFile(PathBuf),
    Off,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system roots, read once: a thousand https probes must not each parse /etc/ssl/certs.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "skipping an unreadable system CA certificate");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        tracing::debug!(added, ignored, "system trust store loaded");
        roots
    })
}

/// What keeps an https probe from having a TLS setup; the text is shown at the probe's
/// `ca_file` key or in its failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read ca_file {}: {source}", .path.display())]
    ReadCaFile {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("invalid PEM in ca_file {}: {source}", .path.display())]
    InvalidPem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("ca_file {} holds no CA certificate", .path.display())]
    NoCaCertificate { path: PathBuf },
    /// The crypto provider offers none of the default protocol versions.
    #[error("{0}")]
    Protocols(#[source] rustls::Error),
}

/// Read the CA certificates of a PEM file.
pub fn read_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|source| TlsError::ReadCaFile {
            path: path.to_path_buf(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::InvalidPem {
            path: path.to_path_buf(),
            source,
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoCaCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// The trusted roots of a verification that has any: the system store, or a `ca_file`'s CAs
/// (`tls_cert` probes judge a chain against them after the handshake).
pub fn trusted_roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    match ca_file {
        Some(path) => read_ca_file(path),
        None => Ok(system_roots().clone()),
    }
}

/// The crypto provider every config here uses (ring).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    provider()
}

pub fn client_config(verification: &TlsVerification) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?;
    let config = match verification {
        TlsVerification::System => builder
            .with_root_certificates(system_roots().clone())
            .with_no_client_auth(),
        TlsVerification::CaFile(path) => builder
            .with_root_certificates(read_ca_file(path)?)
            .with_no_client_auth(),
        TlsVerification::Off => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A config with no trusted roots, for connectors that only dial `http` URLs: building it
/// reads nothing, and an `https` peer would fail its handshake.
pub fn trusting_nobody() -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `tls_verify = false`: accept any certificate, but still check the handshake signatures so
/// the connection is at least a working TLS session.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn errors_keep_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = read_ca_file(&missing).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read ca_file {}: ", missing.display())),
            "{err}"
        );
        let cause = err.source().expect("the PEM reader's error is kept");
        assert!(
            matches!(
                cause.downcast_ref::<rustls::pki_types::pem::Error>(),
                Some(rustls::pki_types::pem::Error::Io(io)) if io.kind() == std::io::ErrorKind::NotFound
            ),
            "{cause:?}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("ca_file {} holds no CA certificate", empty.display())
        );
    }
}
