//! Our rustls client configs (ring): the system trust store by default, a probe's private CA
//! file, or no verification at all (a probe of a self-signed internal endpoint then only
//! proves the service answers, not who it is).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::units::FileKind;

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
        source: std::io::Error,
    },
    #[error("ca_file {} is {kind}, not a regular file", .path.display())]
    CaFileNotRegular { path: PathBuf, kind: FileKind },
    #[error("ca_file {} is larger than the {} MiB a CA bundle may hold", .path.display(), MAX_CA_FILE_BYTES >> 20)]
    CaFileTooLarge { path: PathBuf },
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

/// The most a `ca_file` may hold: the host's whole trust store is about 220 KiB.
pub const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// Read the CA certificates of a PEM file. It must be a regular file (a symlink to one is
/// followed) within [`MAX_CA_FILE_BYTES`]: a FIFO or a device named by mistake fails the load at
/// once instead of hanging it or filling memory.
pub fn read_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let bytes = read_bounded(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
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

fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |source| TlsError::ReadCaFile {
        path: path.to_path_buf(),
        source,
    };
    // Non-blocking, so opening a FIFO without a writer returns at once.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(read_error)?;
    let kind = FileKind::of(file.metadata().map_err(read_error)?.file_type());
    if kind != FileKind::Regular {
        return Err(TlsError::CaFileNotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(TlsError::CaFileTooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
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
        let cause = err.source().expect("the read error is kept");
        assert!(
            matches!(
                cause.downcast_ref::<std::io::Error>(),
                Some(io) if io.kind() == std::io::ErrorKind::NotFound
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

    /// A FIFO without a writer, a device that never ends and a file too large are refused at
    /// once, by name, without reading them whole.
    #[test]
    fn special_and_huge_files_are_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let huge = dir.path().join("huge.pem");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(MAX_CA_FILE_BYTES + 1)
            .unwrap();
        let cases = [
            (
                fifo.clone(),
                format!("ca_file {} is a FIFO, not a regular file", fifo.display()),
            ),
            (
                "/dev/zero".into(),
                "ca_file /dev/zero is a character device, not a regular file".to_string(),
            ),
            (
                huge.clone(),
                format!(
                    "ca_file {} is larger than the 4 MiB a CA bundle may hold",
                    huge.display()
                ),
            ),
        ];
        for (path, expected) in cases {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(read_ca_file(&path).map(|_| ())));
            let result = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("read_ca_file returned");
            assert_eq!(result.unwrap_err().to_string(), expected);
        }
    }
}
