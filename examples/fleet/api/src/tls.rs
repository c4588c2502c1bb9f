//! The TLS listener's certificates and its accept loop.
//!
//! The CA lives in `DIR/tls`: `ca.pem` (its certificate: what clients trust) and
//! `ca-key.pem` (its key, mode 0600). Both are made on the first start and reused after, so a
//! restart keeps the CA that clients were given. The server certificate (for `localhost`,
//! `127.0.0.1` and the API's address) is made at every start, in memory, signed by that CA.
//! Everything runs on rustls' `ring` provider, as the rest of rollbook does.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The TLS side, ready to serve.
pub struct Pki {
    /// `DIR/tls/ca.pem`.
    pub ca_file: PathBuf,
    pub server_config: Arc<ServerConfig>,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "rollbook fleet CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Writes `path` through a temporary file and a rename, so nobody reads half a file.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The CA of `DIR/tls`: the one there, or a new one written there. Returns its key and its
/// certificate (DER).
fn ca(tls_dir: &Path) -> Result<(KeyPair, CertificateDer<'static>), String> {
    let cert_path = tls_dir.join("ca.pem");
    let key_path = tls_dir.join("ca-key.pem");
    if cert_path.exists() {
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| {
            format!(
                "{} exists but its key {} cannot be read ({e}): remove {} to make a new CA \
                 (clients must then trust the new one)",
                cert_path.display(),
                key_path.display(),
                cert_path.display()
            )
        })?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| format!("{}: not a private key: {e}", key_path.display()))?;
        let cert = CertificateDer::from_pem_file(&cert_path)
            .map_err(|e| format!("{}: not a PEM certificate: {e}", cert_path.display()))?;
        return Ok((key, cert));
    }
    std::fs::create_dir_all(tls_dir)
        .map_err(|e| format!("cannot create {}: {e}", tls_dir.display()))?;
    let key = KeyPair::generate().map_err(|e| format!("cannot make the CA's key: {e}"))?;
    let cert = ca_params()
        .self_signed(&key)
        .map_err(|e| format!("cannot make the CA: {e}"))?;
    // The key first: a ca.pem on disk always has its key next to it.
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok((key, cert.der().clone()))
}

/// Loads or makes the CA in `DIR/tls` and a server certificate for `localhost`, `127.0.0.1`
/// and `address`, and checks that the CA in `ca.pem` verifies it (a `ca-key.pem` of another
/// CA is refused here rather than by every client).
pub fn prepare(dir: &Path, address: IpAddr) -> Result<Pki, String> {
    let tls_dir = dir.join("tls");
    let (ca_key, ca_der) = ca(&tls_dir)?;
    let issuer = Issuer::new(ca_params(), ca_key);

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !names.contains(&address.to_string()) {
        names.push(address.to_string());
    }
    let mut params = CertificateParams::new(names)
        .map_err(|e| format!("cannot make the server certificate: {e}"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "fleet-api");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key =
        KeyPair::generate().map_err(|e| format!("cannot make the server's key: {e}"))?;
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(|e| format!("cannot sign the server certificate: {e}"))?;

    let ca_file = tls_dir.join("ca.pem");
    let mut roots = RootCertStore::empty();
    roots
        .add(ca_der.clone())
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    verifier
        .verify_server_cert(
            server_cert.der(),
            &[],
            &ServerName::try_from("localhost").expect("a valid name"),
            &[],
            UnixTime::now(),
        )
        .map_err(|e| {
            format!(
                "{} does not verify a certificate signed with {}: {e} (remove both to make a \
                 new CA)",
                ca_file.display(),
                tls_dir.join("ca-key.pem").display()
            )
        })?;

    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone(), ca_der],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .map_err(|e| format!("the server certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pki {
        ca_file,
        server_config: Arc::new(config),
    })
}

/// Accepts TCP connections and hands axum only those whose TLS handshake completed. Each
/// handshake runs in its own task, so a slow or hostile client holds up nobody else; one that
/// fails is logged and dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>, name: &'static str) -> Self {
        let local = tcp.local_addr().expect("a bound listener has an address");
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    // Out of file descriptors and the like: wait instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            crate::log(format_args!("{name} TLS handshake with {peer} failed: {e}"))
                        }
                        Err(_) => {
                            crate::log(format_args!("{name} TLS handshake with {peer} timed out"))
                        }
                    }
                });
            }
        });
        TlsListener { ready, local, task }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task is gone (only when the listener is dropped): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
