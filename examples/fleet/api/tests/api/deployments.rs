//! Deployments and their health, which follows the node agent of their worker on disk.

use serde_json::json;

use crate::{AGENT, BROKEN, GOOD, start};

#[tokio::test]
async fn the_active_deployments_name_their_worker() {
    let f = start().await;
    let a = f.get_api("/api/v1/deployments/active").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json(),
        json!([
            { "id": "dep-1", "name": "storefront", "node": "us-east-worker-1" },
            { "id": "dep-2", "name": "checkout", "node": "eu-west-worker-1" },
            { "id": "dep-3", "name": "ghost", "node": "us-west-worker-9" },
        ])
    );
}

#[tokio::test]
async fn deployment_health_follows_the_unit_file_of_its_workers_agent() {
    let f = start().await;
    let health = |id: &'static str| {
        let f = &f;
        async move {
            let a = f.get_api(&format!("/api/v1/deployments/{id}/health")).await;
            assert_eq!(a.status, 200, "{a:?}");
            a.json()
        }
    };
    assert_eq!(
        health("dep-1").await,
        json!({ "id": "dep-1", "status": "healthy" })
    );

    f.set_unit("us-east-worker-1", AGENT, Some(BROKEN));
    assert_eq!(
        health("dep-1").await,
        json!({ "id": "dep-1", "status": "unhealthy",
                "reason": "us-east-worker-1: zeitwork-node-agent 4.2.0 crash-loops" })
    );
    assert_eq!(health("dep-2").await["status"], "healthy", "other worker");

    f.set_unit("us-east-worker-1", AGENT, None);
    assert_eq!(
        health("dep-1").await,
        json!({ "id": "dep-1", "status": "unhealthy",
                "reason": "us-east-worker-1: zeitwork-node-agent is not running" })
    );

    f.set_unit("us-east-worker-1", AGENT, Some(GOOD));
    assert_eq!(health("dep-1").await["status"], "healthy");

    assert_eq!(
        health("dep-3").await,
        json!({ "id": "dep-3", "status": "unhealthy",
                "reason": "worker us-west-worker-9 is not in fleet.json" })
    );
}

#[tokio::test]
async fn an_unknown_deployment_is_a_json_404() {
    let f = start().await;
    let a = f.get_api("/api/v1/deployments/dep-9/health").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), json!({ "error": "no deployment with id dep-9" }));
}
