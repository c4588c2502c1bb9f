//! The rustls configuration of one TLS setting (`tls: { ca_file, client_cert, client_key,
//! insecure }`).
//!
//! The runner builds the `rustls::ClientConfig` itself, on the `ring` provider, and hands it to
//! reqwest (`tls_backend_preconfigured`). Why not let reqwest build it: reqwest's own default
//! provider is aws-lc-rs, a second crypto library next to the `ring` that rollbook-sql's
//! rustls already uses; and with `rustls-no-provider` reqwest wants a process-wide default
//! provider installed, which another crate of the same binary could set differently. One
//! config built here also serves `check()`, whose TLS handshake for a request it must not
//! send goes through `tokio-rustls` directly: the preflight and the run trust exactly the same
//! certificates.

use std::sync::Arc;

use rollbook_plan::action::Tls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;

/// The TLS settings of a request, as a map key: requests with equal settings share a client
/// (and so its connection pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TlsKey {
    ca_file: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    insecure: bool,
}

impl From<&Tls> for TlsKey {
    fn from(t: &Tls) -> Self {
        TlsKey {
            ca_file: t.ca_file.clone(),
            client_cert: t.client_cert.clone(),
            client_key: t.client_key.clone(),
            insecure: t.insecure,
        }
    }
}

/// The rustls client configuration for `tls`:
///
/// - `insecure`: no certificate verification at all (the handshake signatures are still
///   checked, so the peer holds the key of the certificate it sent).
/// - `ca_file`: only the CAs in that file are trusted, as `curl --cacert` does: a step that
///   names its CA trusts nothing else.
/// - otherwise the system's roots (rustls-platform-verifier; on Linux the CA bundle under
///   `/etc/ssl`).
///
/// `client_cert` and `client_key` add a client certificate.
pub(crate) fn client_config(tls: &Tls) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider.clone())))
    } else if let Some(path) = &tls.ca_file {
        let mut roots = RootCertStore::empty();
        for cert in read_certs("tls.ca_file", path)? {
            roots.add(cert).map_err(|e| Error::Pem {
                what: "tls.ca_file",
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        builder.with_root_certificates(roots)
    } else {
        match rustls_platform_verifier::Verifier::new(provider.clone()) {
            Ok(v) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(v)),
            // A machine without a CA bundle can still send plain `http://` requests; only
            // an `https://` one fails, and says why.
            Err(e) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoRoots {
                    why: e.to_string(),
                    algorithms: provider.signature_verification_algorithms,
                })),
        }
    };
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let certs = read_certs("tls.client_cert", cert)?;
            let key = read_key(key)?;
            builder.with_client_auth_cert(certs, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read(what: &'static str, path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_string(),
        source,
    })
}

/// Every certificate of a PEM file; a file with none is an error, not an empty trust store.
fn read_certs(what: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(what, path)?;
    let pem_error = |message: String| Error::Pem {
        what,
        path: path.to_string(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read("tls.client_key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| Error::Pem {
        what: "tls.client_key",
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// `insecure: true`: accepts any certificate. The handshake signatures are still verified.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

/// The system has no CA certificates: every certificate is refused, with the reason.
#[derive(Debug)]
struct NoRoots {
    why: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(format!(
            "cannot verify the server's certificate: {} (install the system's CA \
             certificates, or set `tls.ca_file`)",
            self.why
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
