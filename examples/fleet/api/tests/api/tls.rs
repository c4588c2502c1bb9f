//! The node-agent health endpoint over TLS, verified against DIR/tls/ca.pem, and the CA's
//! life across restarts.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use crate::{AGENT, BROKEN, answer, client, start};

#[tokio::test]
async fn node_agent_health_over_tls_is_verified_against_the_fleets_ca() {
    let f = start().await;
    let port = f.addrs().tls.port();
    for host in ["localhost", "127.0.0.1"] {
        let a = f.get(&format!("https://{host}:{port}/health")).await;
        assert_eq!((a.status, a.body.as_str()), (200, "healthy"), "{host}");
    }

    f.set_unit("us-east-worker-2", AGENT, Some(BROKEN));
    f.set_unit("ap-south-worker-6", AGENT, None);
    let a = f.get(&format!("https://localhost:{port}/health")).await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.body,
        "unhealthy: us-east-worker-2: zeitwork-node-agent 4.2.0 crash-loops; \
         ap-south-worker-6: zeitwork-node-agent is not running",
        "every worker counts, also one the API has no node id for"
    );
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_is_refused_and_the_listener_goes_on() {
    let f = start().await;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_ca = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    let stranger = client(other_ca.pem().as_bytes());
    let url = format!("https://localhost:{}/health", f.addrs().tls.port());

    let err = stranger.get(&url).send().await.unwrap_err();
    let chain = format!("{err:?}");
    assert!(chain.contains("UnknownIssuer"), "{chain}");

    let plain = f.client.get(url.replace("https", "http")).send().await;
    assert!(plain.is_err(), "plain HTTP gets no answer: {plain:?}");

    let a = f.get(&url).await;
    assert_eq!((a.status, a.body.as_str()), (200, "healthy"));
}

#[tokio::test]
async fn the_ca_is_made_once_with_a_private_key_and_kept_across_restarts() {
    let f = start().await;
    let dir = f.dir.path().to_path_buf();
    let ca_pem = std::fs::read_to_string(dir.join("tls/ca.pem")).unwrap();
    assert_eq!(ca_pem.matches("BEGIN CERTIFICATE").count(), 1, "{ca_pem}");
    assert!(
        !ca_pem.contains("PRIVATE KEY"),
        "ca.pem holds the certificate only"
    );
    let key = std::fs::metadata(dir.join("tls/ca-key.pem")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert_eq!(f.addrs().ca_file, dir.join("tls/ca.pem"));

    let old_client = f.client.clone();
    let crate::TestFleet {
        dir: tmp, fleet, ..
    } = f;
    fleet.shutdown(Duration::from_secs(3)).await;

    let again = rollbook_fleet_api::start(tmp.path()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("tls/ca.pem")).unwrap(),
        ca_pem,
        "a restart keeps the CA clients trust"
    );
    let url = format!("https://localhost:{}/health", again.addrs().tls.port());
    let a = answer(old_client.get(&url)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "healthy"),
        "the new server certificate verifies against the old ca.pem"
    );
    drop(again);

    std::fs::remove_file(tmp.path().join("tls/ca-key.pem")).unwrap();
    let refused = rollbook_fleet_api::start(tmp.path()).await.err().unwrap();
    let message = refused.to_string();
    assert!(
        message.contains("ca.pem exists but its key") && message.contains("ca-key.pem"),
        "{message}"
    );
}
