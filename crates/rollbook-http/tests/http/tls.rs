//! TLS against a server whose certificate comes from a test CA made by rcgen: trusted through
//! `tls.ca_file`, refused with the system's roots, accepted (with a warning) by `insecure`,
//! and a client certificate for a server that asks for one.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rollbook_exec::runner::{Runner, Stream};
use rollbook_http::HttpRunner;
use rollbook_plan::action::{Action, HttpRequest};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tempfile::NamedTempFile;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::{Hits, attempt, get as get_req};

/// A test CA, a server certificate for `127.0.0.1` and a client certificate, all signed by
/// the CA, with the PEM files a plan would name.
struct Pki {
    ca_file: NamedTempFile,
    client_cert_file: NamedTempFile,
    client_key_file: NamedTempFile,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

fn pem_file(text: &str) -> NamedTempFile {
    let mut f = NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rollbook test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &*ca).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["rollbook-client".to_string()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &*ca).unwrap();

    Pki {
        ca_file: pem_file(&ca.pem()),
        client_cert_file: pem_file(&client_cert.pem()),
        client_key_file: pem_file(&client_key.serialize_pem()),
        ca_der: ca.der().clone(),
        server_chain: vec![server_cert.der().clone(), ca.der().clone()],
        server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
    }
}

/// Accepts TCP connections and completes the TLS handshake before axum sees them. A
/// handshake that fails (a client that refuses the certificate) is dropped, and the next
/// connection is accepted.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An HTTPS server on `127.0.0.1:0` answering `secure hello` on `/`, counting requests;
/// with `client_auth`, it requires a client certificate signed by the test CA.
struct TlsServer {
    addr: SocketAddr,
    hits: Hits,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    async fn start(pki: &Pki, client_auth: bool) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(
                pki.server_chain.clone(),
                PrivateKeyDer::Pkcs8(pki.server_key.clone_key()),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let hits = Hits::default();
        let counter = hits.clone();
        let router = Router::new().route(
            "/",
            get(move || {
                let counter = counter.clone();
                async move {
                    counter.hit();
                    "secure hello"
                }
            }),
        );
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        TlsServer { addr, hits, task }
    }

    fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }
}

fn path(f: &NamedTempFile) -> Option<String> {
    Some(f.path().to_str().unwrap().to_string())
}

#[tokio::test]
async fn a_server_signed_by_the_ca_in_ca_file_is_trusted() {
    let pki = pki();
    let server = TlsServer::start(&pki, false).await;
    let mut req = get_req(&server.url());
    req.tls.ca_file = path(&pki.ca_file);
    let tried = attempt(req).await;
    let result = tried.assert_ok();
    assert_eq!(result["body"], "secure hello");
    assert_eq!(server.hits.get(), 1);
    assert!(
        !tried.text().contains("warning"),
        "no warning when verified: {}",
        tried.text()
    );
}

#[tokio::test]
async fn the_system_roots_refuse_a_certificate_from_an_unknown_ca() {
    let pki = pki();
    let server = TlsServer::start(&pki, false).await;
    let tried = attempt(get_req(&server.url())).await;
    let message = tried.message();
    assert!(
        message.contains("invalid peer certificate: UnknownIssuer"),
        "{message}"
    );
    assert!(
        message.contains("set `tls.ca_file`"),
        "says what to do: {message}"
    );
    assert_eq!(server.hits.get(), 0, "nothing was sent");
}

#[tokio::test]
async fn insecure_accepts_any_certificate_and_warns() {
    let pki = pki();
    let server = TlsServer::start(&pki, false).await;
    let mut req = get_req(&server.url());
    req.tls.insecure = true;
    let tried = attempt(req).await;
    tried.assert_ok();
    assert!(
        tried.lines.contains(&(
            Stream::Stderr,
            "warning: TLS certificate verification is OFF for 127.0.0.1".to_string()
        )),
        "{:?}",
        tried.lines
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_server_asks() {
    let pki = pki();
    let server = TlsServer::start(&pki, true).await;

    let mut without = get_req(&server.url());
    without.tls.ca_file = path(&pki.ca_file);
    let refused = attempt(without.clone()).await;
    let message = refused.message();
    assert!(
        message.contains("CertificateRequired") && message.contains("set `tls.client_cert`"),
        "{message}"
    );
    assert_eq!(server.hits.get(), 0);

    let mut with = without;
    with.tls.client_cert = path(&pki.client_cert_file);
    with.tls.client_key = path(&pki.client_key_file);
    let tried = attempt(with).await;
    assert_eq!(tried.assert_ok()["body"], "secure hello");
    assert_eq!(server.hits.get(), 1);
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_the_attempt_naming_the_file() {
    let mut req = get_req("https://127.0.0.1:9/");
    req.tls.ca_file = Some("/nonexistent/rollbook-ca.pem".into());
    let tried = attempt(req).await;
    let message = tried.message();
    assert!(
        message.starts_with("tls.ca_file `/nonexistent/rollbook-ca.pem`:"),
        "{message}"
    );
}

fn post(url: &str) -> HttpRequest {
    let mut req = get_req(url);
    req.method = "POST".into();
    req
}

#[tokio::test]
async fn check_of_a_post_makes_the_tls_handshake_without_sending_anything() {
    let pki = pki();
    let server = TlsServer::start(&pki, false).await;
    let runner = HttpRunner::new();

    let mut trusted = post(&server.url());
    trusted.tls.ca_file = path(&pki.ca_file);
    let ok = runner.check(&Action::Http(trusted)).await;
    assert_eq!(
        ok.as_deref(),
        Ok("reachable (not sent: POST changes state)")
    );

    let refused = runner.check(&Action::Http(post(&server.url()))).await;
    let err = refused.unwrap_err();
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer") && err.contains("tls.ca_file"),
        "{err}"
    );
    assert_eq!(server.hits.get(), 0, "a POST is never sent by check");
}
