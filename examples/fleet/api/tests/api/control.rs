//! `/_fleet/state` and `/_fleet/reset`.

use serde_json::json;

use crate::{BROKEN, GOOD, KEY, answer, fleet_json, start};

#[tokio::test]
async fn the_state_document_reads_the_hosts_units_from_disk() {
    let f = start().await;
    let state = f.get_api("/_fleet/state").await.json();
    assert_eq!(state["hosts"].as_array().unwrap().len(), 7);
    assert_eq!(
        state["hosts"][0],
        json!({ "name": "us-east-op-1", "role": "operator", "address": "127.0.9.1",
                "units": { "zeitwork-operator": GOOD, "zeitwork-load-balancer": GOOD,
                           "zeitwork-edge-proxy": GOOD } })
    );
    assert_eq!(state["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(state["stuck"], json!([]));
    assert_eq!(state["broken_version"], BROKEN);

    f.set_unit("us-east-op-1", "zeitwork-operator", None);
    f.set_unit("us-east-op-1", "zeitwork-edge-proxy", Some(BROKEN));
    f.set_unit("us-east-op-1", "zeitwork-extra", Some("1.0"));
    let state = f.get_api("/_fleet/state").await.json();
    assert_eq!(
        state["hosts"][0]["units"],
        json!({ "zeitwork-operator": null, "zeitwork-load-balancer": GOOD,
                "zeitwork-edge-proxy": BROKEN, "zeitwork-extra": "1.0" })
    );
    assert_eq!(
        state["hosts"][3]["units"],
        json!({ "zeitwork-node-agent": GOOD })
    );
}

#[tokio::test]
async fn reset_puts_the_memory_back_to_the_start_and_reads_fleet_json_again() {
    let f = start().await;
    f.post_api("/api/v1/nodes/node-101/drain").await;
    f.post_api("/_fleet/stuck/us-east-worker-2").await;
    answer(
        f.client
            .post(f.api("/hooks/slack/T/B/X"))
            .json(&json!({ "text": "hi" })),
    )
    .await;
    let incident = || {
        f.client
            .post(f.api("/statuspage/v1/pages/p/incidents"))
            .header("authorization", format!("OAuth {KEY}"))
            .json(&json!({ "incident": { "name": "x", "status": "investigating" } }))
    };
    assert_eq!(answer(incident()).await.json()["id"], "inc-1");
    f.set_unit("us-east-op-1", "zeitwork-operator", None);

    // Someone edits fleet.json (units on disk stay as they are).
    let mut config = fleet_json(100);
    config["hosts"][4]["instances"] = json!(5);
    std::fs::write(f.dir().join("fleet.json"), config.to_string()).unwrap();

    let a = f.post_api("/_fleet/reset").await;
    assert_eq!(a.status, 200, "{a:?}");
    let state = f.get_api("/_fleet/state").await.json();
    let nodes: Vec<_> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["status"].clone(), n["active_instances"].clone()))
        .collect();
    assert_eq!(
        nodes,
        vec![
            (json!("active"), json!(3)),
            (json!("active"), json!(5)),
            (json!("active"), json!(1)),
        ]
    );
    for list in ["node_history", "slack", "statuspage", "stuck"] {
        assert_eq!(state[list], json!([]), "{list}");
    }
    assert_eq!(
        state["hosts"][0]["units"]["zeitwork-operator"],
        json!(null),
        "reset does not touch the disk"
    );
    assert_eq!(
        answer(incident()).await.json()["id"],
        "inc-1",
        "numbering restarts"
    );

    // A fleet.json that no longer loads changes nothing.
    f.post_api("/api/v1/nodes/node-201/drain").await;
    std::fs::write(f.dir().join("fleet.json"), "{ not json").unwrap();
    let a = f.post_api("/_fleet/reset").await;
    assert_eq!(a.status, 500);
    assert!(
        a.json()["error"].as_str().unwrap().contains("fleet.json"),
        "{a:?}"
    );
    let node = f.get_api("/api/v1/nodes/node-201").await.json();
    assert_ne!(node["status"], "active", "{node}");
}
