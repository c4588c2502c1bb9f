//! The plain-HTTP health endpoints: each operator host's own, the API's, load balancer and
//! edge proxy. All read the unit files at each request.

use crate::{BROKEN, GOOD, start};

const OPERATOR: &str = "zeitwork-operator";
const LB: &str = "zeitwork-load-balancer";
const EDGE: &str = "zeitwork-edge-proxy";

#[tokio::test]
async fn an_operator_host_is_healthy_crash_looping_or_unavailable() {
    let f = start().await;
    let url = f.operator_health("us-east-op-2");
    assert!(url.starts_with("http://127.0.9.2:"), "{url}");

    let a = f.get(&url).await;
    assert_eq!((a.status, a.body.as_str()), (200, "healthy"));

    f.set_unit("us-east-op-2", OPERATOR, Some(BROKEN));
    let a = f.get(&url).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "unhealthy: zeitwork-operator 4.2.0 crash-loops")
    );

    f.set_unit("us-east-op-2", OPERATOR, None);
    let a = f.get(&url).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "unavailable: zeitwork-operator is not running")
    );

    let other = f.get(&f.operator_health("us-east-op-1")).await;
    assert_eq!(other.status, 200, "each host answers for itself");

    f.set_unit("us-east-op-2", OPERATOR, Some(GOOD));
    assert_eq!(f.get(&url).await.status, 200);

    let elsewhere = f.get(&url.replace("/health", "/api/v1/nodes")).await;
    assert_eq!(
        elsewhere.status, 404,
        "an operator host serves /health only"
    );
}

#[tokio::test]
async fn the_api_health_needs_the_operator_on_every_operator_host() {
    let f = start().await;
    let a = f.get_api("/health").await;
    assert_eq!((a.status, a.body.as_str()), (200, "healthy"));

    f.set_unit("us-east-op-2", OPERATOR, Some(BROKEN));
    f.set_unit("us-east-op-3", OPERATOR, None);
    let a = f.get_api("/health").await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.body,
        "unhealthy: us-east-op-2: zeitwork-operator 4.2.0 crash-loops; \
         us-east-op-3: zeitwork-operator is not running"
    );
    assert!(
        !a.body.starts_with("healthy"),
        "a plan's body_contains must not be fooled by the status line"
    );

    // The rest of the API keeps serving while operators are down.
    assert_eq!(f.get_api("/api/v1/nodes").await.status, 200);
    // Other units do not count for 8080.
    f.set_unit("us-east-op-2", OPERATOR, Some(GOOD));
    f.set_unit("us-east-op-3", OPERATOR, Some(GOOD));
    f.set_unit("us-east-op-1", LB, None);
    assert_eq!(f.get_api("/health").await.status, 200);
}

#[tokio::test]
async fn the_load_balancer_and_edge_proxy_ports_follow_their_own_unit() {
    let f = start().await;
    let lb = format!("http://{}/health", f.addrs().load_balancer);
    let edge = format!("http://{}/health", f.addrs().edge_proxy);
    for url in [&lb, &edge] {
        let a = f.get(url).await;
        assert_eq!((a.status, a.body.as_str()), (200, "healthy"), "{url}");
    }

    f.set_unit("us-east-op-1", LB, Some(BROKEN));
    let a = f.get(&lb).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            503,
            "unhealthy: us-east-op-1: zeitwork-load-balancer 4.2.0 crash-loops"
        )
    );
    assert_eq!(f.get(&edge).await.status, 200, "the edge proxy is fine");

    f.set_unit("us-east-op-3", EDGE, None);
    let a = f.get(&edge).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            503,
            "unhealthy: us-east-op-3: zeitwork-edge-proxy is not running"
        )
    );
    assert_eq!(f.get_api("/health").await.status, 200, "operators are fine");

    f.set_unit("us-east-op-1", LB, Some(GOOD));
    f.set_unit("us-east-op-3", EDGE, Some(GOOD));
    assert_eq!(f.get(&lb).await.status, 200);
    assert_eq!(f.get(&edge).await.status, 200);
    assert_eq!(
        f.get(&lb.replace("/health", "/")).await.status,
        404,
        "health ports serve /health only"
    );
}
